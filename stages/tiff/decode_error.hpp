// The error of a tile that cannot be decoded (corrupt or unexpected compressed data).
//
// Thread safety: immutable after construction; may be copied and rethrown on any thread.
#pragma once

#include <stdexcept>

namespace flowinfer::tiff {

// One tile failed: the caller decides whether that fails the slide or only the patch
// (runtime.on_read_error), so this is not a SlideError.
struct TileDecodeError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

}  // namespace flowinfer::tiff
