// OpenSlide handle (RAII) shared by the plan and read_region stages.
//
// Thread safety: an openslide_t is thread-safe for reads, so one Slide is shared by all
// readers of that slide. Once OpenSlide reports an error the handle stays in error state:
// every later read throws.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

typedef struct _openslide openslide_t;

namespace flowinfer {

class Slide {
public:
    // Throws SlideError (missing file, unsupported format, OpenSlide error on open).
    explicit Slide(std::string path);
    ~Slide();
    Slide(const Slide&) = delete;
    Slide& operator=(const Slide&) = delete;

    const std::string& path() const { return path_; }
    int level_count() const;
    std::int64_t level_width(int level) const;
    std::int64_t level_height(int level) const;
    double level_downsample(int level) const;
    // µm per level-0 pixel: openslide.mpp-x, else the TIFF resolution tags; 0 if unknown.
    double mpp() const;

    // Reads w*h pixels at (x0, y0) in level-0 coordinates from `level` and stores them as
    // RGB, transparent pixels composited onto white (OpenSlide returns premultiplied ARGB,
    // transparent outside the slide). `argb_scratch` must hold w*h words. Throws SlideError.
    void read_rgb(std::int64_t x0, std::int64_t y0, int level, std::int64_t w, std::int64_t h,
                  std::uint32_t* argb_scratch, std::uint8_t* rgb) const;

private:
    std::string path_;
    openslide_t* osr_ = nullptr;
};

}  // namespace flowinfer
