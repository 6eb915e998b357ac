// One image file of a patch directory (input.images) as the read stage sees it: its size
// from the header at open, its pixels decoded once, by whichever read needs them first.
//
// Thread safety: every const method may be called from any thread at once. The first read
// decodes the whole file while later reads of the same image wait for it (std::call_once);
// a decode error is kept and thrown again by every read, so each patch of a broken image
// fails the same way.
#pragma once

#include "stages/image/decode.hpp"

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace flowinfer::image {

class Source {
public:
    // Reads the header. Throws ImageError (missing, unreadable, not an image, 0 x 0, 16-bit).
    explicit Source(std::string path);

    const std::string& path() const { return path_; }
    const Info& info() const { return info_; }
    std::int64_t width() const { return info_.width; }
    std::int64_t height() const { return info_.height; }

    // w x h RGB pixels at (x, y), white outside the image (a smaller image is padded as a
    // slide's edge is). Throws ImageError when the file cannot be decoded.
    void read(std::int64_t x, std::int64_t y, std::int64_t w, std::int64_t h, std::uint8_t* rgb) const;

private:
    const std::vector<std::uint8_t>& pixels() const;

    std::string path_;
    Info info_;
    mutable std::once_flag once_;
    mutable std::vector<std::uint8_t> rgb_;
    mutable std::string error_;  // the decode's error, set inside call_once
};

}  // namespace flowinfer::image
