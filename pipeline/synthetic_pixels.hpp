// The synthetic H&E-like slide's pixels (flowinfer synth, the demo and benchmark slides).
// Every pixel is a pure function of (spec, x, y): tiles can be computed in any order and in
// parallel, and tests recompute any pixel independently (synthetic_pixel() in demo.hpp).
//
// Thread safety: render() is const and may run on many threads at once.
#pragma once

#include <flowinfer/demo.hpp>

#include <cstdint>
#include <memory>

namespace flowinfer {

class SyntheticPixels {
public:
    explicit SyntheticPixels(const SyntheticSlideSpec& spec);
    ~SyntheticPixels();
    SyntheticPixels(const SyntheticPixels&) = delete;
    SyntheticPixels& operator=(const SyntheticPixels&) = delete;

    // Pixels [x0, x0 + w) x [y0, y0 + h) as row-major RGB (w * h * 3 bytes). Pixels past the
    // slide's edge are computed too (JPEG blocks on the edge then hold plausible content).
    void render(std::int64_t x0, std::int64_t y0, int w, int h, std::uint8_t* rgb) const;

private:
    struct Gen;
    std::unique_ptr<Gen> gen_;
};

}  // namespace flowinfer
