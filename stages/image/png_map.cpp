#include "stages/image/png_map.hpp"

#include "stages/atomic_file.hpp"
#include "stages/image/encode.hpp"

#include <flowinfer/errors.hpp>

#include <algorithm>
#include <cstring>

namespace flowinfer::image {

PngMapWriter::PngMapWriter(std::string path, std::int64_t width, std::int64_t height, int tile)
    : path_(std::move(path)), width_(width), height_(height), tile_(tile),
      values_(static_cast<std::size_t>(width * height), 0) {}

void PngMapWriter::write_tile(std::int64_t tx, std::int64_t ty, const std::uint8_t* values) {
    const std::int64_t x0 = tx * tile_, y0 = ty * tile_;
    const std::int64_t w = std::min<std::int64_t>(tile_, width_ - x0), h = std::min<std::int64_t>(tile_, height_ - y0);
    for (std::int64_t y = 0; y < h; ++y)
        std::memcpy(&values_[static_cast<std::size_t>((y0 + y) * width_ + x0)], values + y * tile_,
                    static_cast<std::size_t>(std::max<std::int64_t>(0, w)));
}

void PngMapWriter::finish() {
    std::string png;
    try {
        png = encode_png(values_.data(), width_, height_, 1, /*zlib_level=*/1);
    } catch (const std::runtime_error& e) {
        throw OutputError(path_, std::string("cannot encode the map: ") + e.what());
    }
    // The run syncs its image outputs in bulk (Sync::later, atomic_file.hpp).
    write_file_atomically(path_, png, Sync::later);
}

}  // namespace flowinfer::image
