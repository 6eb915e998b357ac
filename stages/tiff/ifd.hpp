// The image file directories of a TIFF-family slide, as far as the native tile reader needs
// them: geometry, codec tags and where every tile's bytes are. Read once with libtiff when
// the slide opens; tiles are then read with pread() at those offsets, so reading needs no
// libtiff handle (a TIFF* is not thread-safe) except for codecs decoded through libtiff.
//
// Thread safety: read_directories is reentrant; a TiffDirectory is immutable once built.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace flowinfer::tiff {

struct TiffDirectory {
    int index = 0;  // TIFFCurrentDirectory
    bool tiled = false;
    std::uint32_t subfile_type = 0;
    std::int64_t width = 0, height = 0;
    int tile_w = 0, tile_h = 0;
    std::uint16_t compression = 1, photometric = 0, planar = 1, bits = 8, samples = 1;
    std::vector<std::uint8_t> jpeg_tables;  // TIFFTAG_JPEGTABLES, may be empty
    std::vector<std::uint64_t> offsets, byte_counts;  // per tile, row-major (tiled only)

    std::int64_t tiles_across() const { return tile_w > 0 ? (width + tile_w - 1) / tile_w : 0; }
    std::int64_t tiles_down() const { return tile_h > 0 ? (height + tile_h - 1) / tile_h : 0; }
};

// Every top-level directory in file order. Throws TileDecodeError naming the problem when
// libtiff cannot read the file's structure.
std::vector<TiffDirectory> read_directories(const std::string& path);

}  // namespace flowinfer::tiff
