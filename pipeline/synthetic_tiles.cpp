// flowinfer synth --format png-tiles | jpeg-tiles: the synthetic slide's level-0 pixels as a
// patch directory, the kind of tile export another tool leaves behind (input.images).
#include <flowinfer/demo.hpp>
#include <flowinfer/errors.hpp>

#include "stages/atomic_file.hpp"
#include "stages/image/encode.hpp"

#include <fmt/format.h>
#include <tbb/parallel_for.h>

#include <cstdio>
#include <filesystem>
#include <vector>

namespace flowinfer {

namespace {
namespace fs = std::filesystem;
}  // namespace

std::int64_t write_synthetic_tiles(const std::string& dir, const SyntheticSlideSpec& spec, int tile, bool jpeg) {
    if (tile < 1) throw Error("synth: the tile size must be positive");
    const std::int64_t cols = spec.width / tile, rows = spec.height / tile;
    if (cols < 1 || rows < 1) throw Error(fmt::format("synth: a {} x {} slide holds no {} px tile", spec.width, spec.height, tile));
    // One subdirectory per tile row, as exporters that mirror the slide's grid write them.
    for (std::int64_t r = 0; r < rows; ++r) {
        std::error_code ec;
        fs::create_directories(fs::path(dir) / fmt::format("row-{:03d}", r), ec);
        if (ec) throw OutputError(dir, "cannot create directory: " + ec.message());
    }
    tbb::parallel_for(std::int64_t{0}, rows * cols, [&](std::int64_t i) {
        const std::int64_t r = i / cols, c = i % cols;
        std::vector<std::uint8_t> rgb(static_cast<std::size_t>(tile) * tile * 3);
        for (int y = 0; y < tile; ++y)
            for (int x = 0; x < tile; ++x)
                synthetic_pixel(spec, c * tile + x, r * tile + y, &rgb[(static_cast<std::size_t>(y) * tile + x) * 3]);
        const std::string path = (fs::path(dir) / fmt::format("row-{:03d}", r) /
                                  fmt::format("tile-{:03d}-{:03d}.{}", r, c, jpeg ? "jpg" : "png"))
                                     .string();
        write_file_atomically(path, jpeg ? image::encode_jpeg(rgb.data(), tile, tile, spec.jpeg_quality > 0 ? spec.jpeg_quality : 90)
                                         : image::encode_png(rgb.data(), tile, tile, 3));
    });
    return rows * cols;
}

}  // namespace flowinfer
