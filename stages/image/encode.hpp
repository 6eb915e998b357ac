// 8-bit images encoded in memory: PNG (libpng) and JPEG (libjpeg-turbo), for every image file
// flowinfer writes (masks of images, previews, thumbnails, the tissue preview, synthetic
// patch directories). In memory, so a file is then written whole through
// write_file_atomically and never appears half-written.
//
// Thread safety: reentrant; each call owns its codec state. No shared state.
#pragma once

#include <cstdint>
#include <string>

namespace flowinfer::image {

// `channels` 1 (grey), 3 (RGB) or 4 (RGBA) per pixel, rows top to bottom, no padding.
// `zlib_level` 1..9: 1 with the Sub filter for masks written per image (a third of the
// default's time); 6 with libpng's adaptive filters (its default) otherwise. Throws
// std::runtime_error with libpng's message.
std::string encode_png(const std::uint8_t* pixels, std::int64_t width, std::int64_t height, int channels,
                       int zlib_level = 6);

// RGB at `quality` (1..100), 4:2:0 YCbCr as JPEG tiles usually are. Throws std::runtime_error.
std::string encode_jpeg(const std::uint8_t* rgb, std::int64_t width, std::int64_t height, int quality);

}  // namespace flowinfer::image
