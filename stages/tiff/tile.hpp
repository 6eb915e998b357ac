// A decoded tile, and the error of a tile that cannot be decoded (corrupt or unexpected
// compressed data): what every tile decoder of the native reader returns or throws.
//
// Thread safety: plain values; an error may be copied and rethrown on any thread.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <vector>

namespace flowinfer::tiff {

struct DecodedTile {
    int width = 0, height = 0;      // pixels (a scaled decode is smaller than the file's tile)
    std::vector<std::uint8_t> rgb;  // width * height * 3, transparency composited onto white
};

// One tile failed: the caller decides whether that fails the slide or only the patch
// (runtime.on_read_error), so this is not a SlideError.
struct TileDecodeError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

}  // namespace flowinfer::tiff
