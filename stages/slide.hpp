// OpenSlide handle (RAII) shared by the plan and read_region stages.
//
// Thread safety: an openslide_t is thread-safe for reads, so one Slide is shared by all
// readers of that slide. Once OpenSlide reports an error its handle stays in error state
// (openslide_get_error is sticky): every later read on it fails. A failed read_rgb()
// therefore swaps in a freshly opened handle (reads in progress keep the old one until they
// return), so later reads work again. A read that ran on the old handle at the time may
// have failed only because another read broke it: read_rgb_isolated() tells the two apart.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
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
    // transparent outside the slide). `argb_scratch` must hold w*h words. Throws SlideError;
    // the shared handle is then replaced (see above).
    void read_rgb(std::int64_t x0, std::int64_t y0, int level, std::int64_t w, std::int64_t h,
                  std::uint32_t* argb_scratch, std::uint8_t* rgb) const;

    // The same read on a handle opened for this call alone: it fails only if the region
    // itself cannot be read. Slower (it opens the file); for re-checking a failed read.
    void read_rgb_isolated(std::int64_t x0, std::int64_t y0, int level, std::int64_t w, std::int64_t h,
                           std::uint32_t* argb_scratch, std::uint8_t* rgb) const;

private:
    struct Handle;
    std::shared_ptr<Handle> current() const;
    void read_on(const Handle& h, std::int64_t x0, std::int64_t y0, int level, std::int64_t w,
                 std::int64_t h_px, std::uint32_t* argb, std::uint8_t* rgb) const;

    std::string path_;
    mutable std::mutex mu_;               // guards handle_ (the pointer, not the reads)
    mutable std::shared_ptr<Handle> handle_;
};

}  // namespace flowinfer
