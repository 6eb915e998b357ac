// The native tile reader for TIFF-family slides (Aperio SVS, generic tiled TIFF and BigTIFF,
// flowinfer's own outputs): reads each tile's bytes with pread() and decodes them itself,
// into a decoded-tile cache shared by all readers of the slide, then assembles regions by
// copying rows out of the decoded tiles.
//
// Why not OpenSlide for these: OpenSlide 3.4.1 keeps 32 MB of tiles for all its readers,
// less than one tile row of a real slide, so overlapping patches decode their tiles again
// and again; and it takes level-0 coordinates, so at a level whose downsample is not an
// integer (every real Aperio level) each patch is resampled by a sub-pixel offset. Here a
// region is addressed in the level's own pixels and holds exactly those pixels.
//
// Codecs (the same decoding as OpenSlide, so pixels are equal where OpenSlide reads a level
// pixel-aligned): JPEG through libjpeg (jpeg_decoder.hpp), Aperio JPEG 2000 (33003, 33005)
// through OpenJPEG (jp2k_decoder.hpp), anything else libtiff can decode (deflate, LZW, none,
// palette, greyscale, alpha, ...) through libtiff's RGBA interface on a pool of handles.
// JPEG levels can also be read at 1/2, 1/4 and 1/8 size, decoded in the DCT domain.
//
// Levels are OpenSlide's (the caller passes its level sizes; the reader finds the directory
// of each the way OpenSlide's aperio and generic-tiff drivers do), so the two readers plan a
// slide identically. Aperio's zero-length tiles (an encoder bug) are drawn from the level
// above, as OpenSlide does, and white at level 0.
//
// Thread safety: open() is reentrant; a TiffTileReader's methods may be called from any
// thread at once.
#pragma once

#include "stages/tiff/tile_cache.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace flowinfer::tiff {

struct LevelShape {
    std::int64_t width = 0, height = 0;
    double downsample = 1.0;
};

class TiffTileReader {
public:
    // The reader, or null with `why_not` saying what it does not support (the vendor, a
    // level's compression or photometric, ...). Throws TileDecodeError when the file's
    // TIFF structure cannot be read.
    static std::unique_ptr<TiffTileReader> open(const std::string& path, const std::string& vendor,
                                                const std::vector<LevelShape>& levels, std::string& why_not);
    ~TiffTileReader();
    TiffTileReader(const TiffTileReader&) = delete;
    TiffTileReader& operator=(const TiffTileReader&) = delete;

    // w x h pixels of `level` shrunk by `scale` (1, or 2/4/8 where scales() says so), from
    // (x, y) in that shrunk level's pixels, as RGB; white outside the level. Throws
    // TileDecodeError naming the level and tile.
    void read(int level, std::int64_t x, std::int64_t y, std::int64_t w, std::int64_t h, int scale,
              std::uint8_t* rgb) const;
    // Whether read() at 1/scale decodes in the DCT domain (a JPEG level whose tiles divide by scale).
    bool scales(int level, int scale) const;

    int tile_width(int level) const;
    int tile_height(int level) const;
    std::string codec(int level) const;  // "jpeg", "jpeg2000", or libtiff's compression name
    void set_cache_bytes(std::int64_t bytes);
    std::int64_t cache_bytes() const;
    TileCacheStats cache_stats() const;

private:
    struct Impl;
    explicit TiffTileReader(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace flowinfer::tiff
