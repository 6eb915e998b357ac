// Single image files (PNG, JPEG, TIFF), as other tools export patches into a directory: the
// header alone, or the whole image as 8-bit RGB, for the read stage. The format is told by
// the file's first bytes, not its name (exports are often misnamed). What cannot become exact
// 8-bit RGB (16-bit samples, CMYK JPEG, float TIFF, truncated data) is refused with an
// ImageError (a SlideError saying "image") naming the file and the problem, rather than
// decoded to something approximate: a patch that silently turned grey would be classified
// as if it were tissue.
//
// Thread safety: both functions are reentrant; each call owns its libpng / libjpeg / libtiff
// state and routes the libraries' messages to its own buffers. No shared state.
#pragma once

#include <flowinfer/errors.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace flowinfer::image {

enum class Format { png, jpeg, tiff };

const char* to_string(Format f) noexcept;  // "PNG", "JPEG", "TIFF"

struct Info {
    Format format = Format::png;
    std::int64_t width = 0, height = 0;
    // As stored: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA. A PNG palette is 3, or 4 with tRNS;
    // tRNS on a grey or RGB PNG counts as alpha (2, 4). A TIFF palette or CMYK is 3.
    int channels = 0;
};

// Header only (no pixel decode), with the same refusals as decode_rgb as far as the header
// tells: a caller can screen a directory of patches before the pipeline starts.
// Throws ImageError(path, problem).
Info read_info(const std::string& path);

// The whole image as interleaved 8-bit RGB, width*height*3 bytes, row-major, top row first.
// Grey is replicated to R=G=B; alpha is composited on white:
// out = round((a*c + (255-a)*255)/255) (TIFF associated alpha: min(255, c + 255 - a); a TIFF
// extra sample marked "unspecified" is not alpha and is ignored). PNG palettes and 1/2/4-bit
// grey are expanded, tRNS becomes alpha. A multi-page TIFF gives its first page. Refused:
// 16-bit (any depth but 8, except low-bit PNG grey and palettes), CMYK/YCCK JPEG, TIFF float
// or signed samples, over 4 samples per pixel or a compression libtiff lacks, empty images,
// images over 2^31 pixels or 4 GiB of RGB, progressive JPEGs of over 1000 scans, and
// truncated or corrupt data (a libjpeg warning counts as corrupt, in TIFF too).
// Throws ImageError(path, problem); `info`, when given, is filled as far as the header was read.
std::vector<std::uint8_t> decode_rgb(const std::string& path, Info* info = nullptr);

}  // namespace flowinfer::image
