// JPEG tiles of TIFF-family slides (TIFF Compression 7: Aperio SVS, generic tiled TIFF),
// decoded with libjpeg(-turbo) the way OpenSlide 3.4.1 does, so the pixels are the same:
// the directory's JPEGTables loaded first (tiles are abbreviated streams), the colour space
// taken from the TIFF photometric tag rather than guessed from markers (Aperio writes RGB
// tiles without the Adobe marker that would say so), libjpeg's default IDCT and upsampling.
// Optionally decodes at 1/2, 1/4 or 1/8 size in the DCT domain (libjpeg's scaled IDCT),
// skipping most of the IDCT work and the resize pass.
//
// Thread safety: decode_jpeg_tile is reentrant (each call has its own decompressor); the
// tables are only read.
#pragma once

#include "stages/tiff/tile.hpp"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace flowinfer::tiff {

enum class JpegColour { ycbcr, rgb };  // from TIFF PhotometricInterpretation

// Decodes a tile that must be tile_w x tile_h (before scaling) with 3 components, at
// 1/scale size (scale 1, 2, 4 or 8: ceil(tile size / scale) pixels). `tables` may be empty (a self-contained stream).
// Throws TileDecodeError with libjpeg's message on corrupt or truncated data, a missing
// table, or a stream of another size or component count.
DecodedTile decode_jpeg_tile(const std::vector<std::uint8_t>& tables, const std::uint8_t* data, std::size_t size,
                          JpegColour colour, int tile_w, int tile_h, int scale = 1);

}  // namespace flowinfer::tiff
