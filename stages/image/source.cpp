#include "stages/image/source.hpp"

#include <flowinfer/errors.hpp>

#include <algorithm>
#include <cstring>

namespace flowinfer::image {

Source::Source(std::string path) : path_(std::move(path)), info_(read_info(path_)) {}

const std::vector<std::uint8_t>& Source::pixels() const {
    std::call_once(once_, [this] {
        try {
            rgb_ = decode_rgb(path_);
            if (rgb_.size() != static_cast<std::size_t>(info_.width * info_.height * 3))
                error_ = "the decoded image differs in size from its header";
        } catch (const SlideError& e) {
            // ImageError's message starts with the path, which the rethrow adds again.
            const std::string prefix = "image " + path_ + ": ";
            const std::string what = e.what();
            error_ = what.rfind(prefix, 0) == 0 ? what.substr(prefix.size()) : what;
        }
    });
    if (!error_.empty()) throw ImageError(path_, error_);
    return rgb_;
}

void Source::read(std::int64_t x, std::int64_t y, std::int64_t w, std::int64_t h, std::uint8_t* rgb) const {
    const std::vector<std::uint8_t>& px = pixels();
    const std::int64_t W = info_.width, H = info_.height;
    for (std::int64_t r = 0; r < h; ++r) {
        std::uint8_t* out = rgb + r * w * 3;
        const std::int64_t sy = y + r;
        if (sy < 0 || sy >= H) {
            std::memset(out, 255, static_cast<std::size_t>(w * 3));
            continue;
        }
        const std::int64_t x0 = std::clamp<std::int64_t>(x, 0, W), x1 = std::clamp<std::int64_t>(x + w, 0, W);
        if (x1 <= x0) {
            std::memset(out, 255, static_cast<std::size_t>(w * 3));
            continue;
        }
        std::memset(out, 255, static_cast<std::size_t>((x0 - x) * 3));
        std::memcpy(out + (x0 - x) * 3, px.data() + (sy * W + x0) * 3, static_cast<std::size_t>((x1 - x0) * 3));
        std::memset(out + (x1 - x) * 3, 255, static_cast<std::size_t>((x + w - x1) * 3));
    }
}

}  // namespace flowinfer::image
