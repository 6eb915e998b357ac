// A slide's whole extent at low resolution: the view tissue detection thresholds and the
// overlay preview draws on.
//
// Thread safety: reentrant; read_overview() reads the slide from several TBB threads at once
// (a Slide is thread-safe for reads).
#pragma once

#include <cstdint>
#include <vector>

namespace flowinfer {

class Slide;

struct Overview {
    std::int64_t width = 0, height = 0;
    double downsample = 1.0;        // level-0 pixels per overview pixel
    std::vector<std::uint8_t> rgb;  // width*height*3, row-major
};

// The coarsest level whose longer side is >= target_long_side (level 0 when none is), read in
// bounded chunks (about 512x512 level pixels each, a few in parallel; the full level is never
// held) and box-averaged by the integer factor f = ceil(long side / max_long_side) (1 when the
// level is small enough). Pixel (i, j) averages level pixels [i*f, (i+1)*f) x [j*f, (j+1)*f)
// clipped to the level; downsample = level downsample * f. Throws SlideError.
Overview read_overview(const Slide& slide, std::int64_t target_long_side, std::int64_t max_long_side);

}  // namespace flowinfer
