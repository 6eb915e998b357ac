// A slide opened for reading: its levels and MPP (always from OpenSlide, so every reader
// plans a slide the same way) and its pixels, from the native tile reader (stages/tiff/
// reader.hpp) where runtime.reader allows and it supports the file, else from OpenSlide.
//
// Thread safety: every const method may be called from any thread at once, so one Slide is
// shared by all readers of that slide. OpenSlide: an openslide_t is thread-safe for reads,
// but once OpenSlide reports an error its handle stays in error state (openslide_get_error
// is sticky): every later read on it fails. A failed OpenSlide read therefore swaps in a
// freshly opened handle (reads in progress keep the old one until they return), so later
// reads work again. A read that ran on the old handle at the time may have failed only
// because another read broke it: the *_isolated reads tell the two apart. The native
// reader has no such shared state: a failed tile fails only the reads that need it.
#pragma once

#include <flowinfer/config.hpp>

#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

typedef struct _openslide openslide_t;

namespace flowinfer {

namespace tiff {
class TiffTileReader;
}
namespace image {
class Source;
}

class Slide {
public:
    // Throws SlideError (missing file, unsupported format, OpenSlide error on open, and with
    // SlideReader::native a file the native reader does not support, saying why).
    explicit Slide(std::string path, SlideReader reader = SlideReader::automatic);
    // One PNG, JPEG or TIFF image of a patch directory (input.images, stages/image/source.hpp):
    // one level, no MPP, decoded by the first read. Throws SlideError (unreadable, not an
    // image, 0 x 0, not 8-bit).
    static std::unique_ptr<Slide> image(std::string path);
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
    // The scanner's objective (openslide.objective-power, e.g. 40); 0 if unknown.
    double objective_power() const;

    // "native" or "openslide": who reads this slide's pixels.
    const char* reader() const { return image_ ? "image" : native_ ? "native" : "openslide"; }
    bool is_image() const { return image_ != nullptr; }
    // Why the native reader does not read this slide ("" when it does, or was not asked to).
    const std::string& native_unavailable() const { return native_why_; }

    // w*h pixels of `level` at (x, y) in that level's own pixels, as RGB (transparency
    // composited onto white, white outside the level). Native: exactly the level's pixels.
    // OpenSlide: read at level-0 position round(x * downsample), which OpenSlide resamples
    // by the sub-pixel remainder when the downsample is not an integer. Throws SlideError
    // naming the level (and tile, natively); see above for OpenSlide's broken handle.
    void read_level(int level, std::int64_t x, std::int64_t y, std::int64_t w, std::int64_t h,
                    std::uint8_t* rgb) const;
    // The same on a handle opened for this call alone (OpenSlide; natively the same read).
    void read_level_isolated(int level, std::int64_t x, std::int64_t y, std::int64_t w, std::int64_t h,
                             std::uint8_t* rgb) const;
    // Whether `level` can be read shrunk by `scale` (2, 4, 8) in the decoder (JPEG's DCT
    // domain), and that read: (x, y) and w x h in the shrunk level's pixels.
    bool reads_scaled(int level, int scale) const;
    void read_level_scaled(int level, int scale, std::int64_t x, std::int64_t y, std::int64_t w, std::int64_t h,
                           std::uint8_t* rgb) const;

    // The native reader's decoded-tile cache (no-ops and zeros with OpenSlide).
    std::string codec(int level) const;  // native: "jpeg", "jpeg2000", libtiff's name; else ""
    int tile_width(int level) const;   // the level's file tile size; OpenSlide: 256
    int tile_height(int level) const;
    void set_tile_cache_bytes(std::int64_t bytes) const;
    std::int64_t tile_cache_bytes() const;
    struct ReadStats {
        std::int64_t tiles_decoded = 0, tile_cache_hits = 0, tile_cache_waits = 0, tile_cache_peak_bytes = 0;
    };
    ReadStats read_stats() const;

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
    Slide() = default;
    struct Handle;
    std::shared_ptr<Handle> current() const;
    void read_on(const Handle& h, std::int64_t x0, std::int64_t y0, int level, std::int64_t w,
                 std::int64_t h_px, std::uint32_t* argb, std::uint8_t* rgb) const;

    [[noreturn]] void fail_native(const std::exception& e) const;
    double number_property(const char* name) const;  // a positive number, else 0
    // read_level through OpenSlide: at level-0 position round(x * downsample).
    void read_level_openslide(int level, std::int64_t x, std::int64_t y, std::int64_t w, std::int64_t h,
                              std::uint8_t* rgb, bool isolated) const;

    std::string path_;
    mutable std::mutex mu_;               // guards handle_ (the pointer, not the reads)
    mutable std::shared_ptr<Handle> handle_;
    struct LevelInfo {
        std::int64_t width = 0, height = 0;
        double downsample = 1.0;
    };
    std::vector<LevelInfo> levels_;       // OpenSlide's, read once at open
    std::unique_ptr<tiff::TiffTileReader> native_;
    std::unique_ptr<image::Source> image_;
    std::string native_why_;
};

}  // namespace flowinfer
