// JPEG 2000 tiles of Aperio SVS files (TIFF Compression 33003 and 33005), decoded to the same
// pixels as OpenSlide 3.4.1: each tile is a raw J2K codestream; 33003 holds Y, Cb, Cr
// components (chroma usually at half the horizontal resolution), 33005 holds R, G, B.
//
// Thread safety: decode_jp2k_tile is reentrant (one OpenJPEG codec per call, no shared mutable
// state); concurrent calls need distinct output buffers.
#pragma once

#include "stages/tiff/decode_error.hpp"

#include <cstddef>
#include <cstdint>

namespace flowinfer::tiff {

enum class Jp2kColour { ycbcr, rgb };  // Aperio 33003, 33005

// Decodes one tile (a raw J2K codestream of `size` bytes) that must be w x h, into
// w*h*3 bytes of RGB, row-major. The same pixels as OpenSlide 3.4.1. Reentrant.
// Throws TileDecodeError saying what failed (OpenJPEG's own message, prefixed
// "OpenJPEG error: ", where it gave one). Never prints; on failure `rgb` is left untouched.
void decode_jp2k_tile(const std::uint8_t* data, std::size_t size, Jp2kColour colour, int w, int h,
                      std::uint8_t* rgb);

}  // namespace flowinfer::tiff
