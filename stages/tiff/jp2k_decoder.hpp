// JPEG 2000 tiles of Aperio SVS files (TIFF Compression 33003 and 33005), decoded to the same
// pixels as OpenSlide 3.4.1: each tile is a raw J2K codestream; 33003 holds Y, Cb, Cr
// components (chroma usually at half the horizontal resolution), 33005 holds R, G, B.
//
// Thread safety: decode_jp2k_tile is reentrant (one OpenJPEG codec per call, no shared mutable
// state); concurrent calls need distinct output buffers.
#pragma once

#include "stages/tiff/tile.hpp"

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

// OpenJPEG message handlers (opj_set_error_handler & co.) shared with the JPEG 2000 writer:
// the first keeps OpenJPEG's first error, trimmed, in the std::string that `user` points
// to; the second drops a message. Neither throws (they run inside OpenJPEG's C code).
void keep_first_opj_error(const char* msg, void* user) noexcept;
void ignore_opj_message(const char* msg, void* user) noexcept;

}  // namespace flowinfer::tiff
