// Synthetic slides written as tiled pyramidal TIFFs: the H&E-like slide (its pixels come from
// synthetic_pixels.cpp) and the disc slide of the detection tests.
#include <flowinfer/demo.hpp>

#include "pipeline/synthetic_pixels.hpp"
#include "stages/tiff/writer.hpp"

#include <flowinfer/errors.hpp>

#include <fmt/format.h>
#include <tbb/parallel_pipeline.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace flowinfer {

void write_synthetic_slide(const std::string& path, const SyntheticSlideSpec& spec,
                           const SyntheticProgressFn& progress) {
    const SyntheticPixels pixels(spec);
    TiffLayout layout;
    layout.width = spec.width;
    layout.height = spec.height;
    layout.channels = 3;
    layout.tile = 256;
    layout.jpeg = spec.jpeg_quality > 0;
    layout.jpeg_quality = spec.jpeg_quality > 0 ? spec.jpeg_quality : 90;
    layout.compression = Compression::deflate;
    layout.mpp = spec.mpp > 0 ? spec.mpp : 0.0;
    layout.description = fmt::format("flowinfer synthetic slide seed={} mpp={}", spec.seed, spec.mpp);

    PyramidTiffWriter writer(path, layout);
    const int T = layout.tile;
    const std::int64_t nx = writer.tiles_x(), ny = writer.tiles_y();
    const std::int64_t tiles = nx * ny;
    const std::size_t tile_bytes = static_cast<std::size_t>(T) * T * 3;

    SyntheticProgress prog;
    prog.rows_total = ny;
    prog.pixels_total = spec.width * spec.height;
    if (progress) progress(prog);

    // Tiles are made and compressed in parallel, and handed to the writer in raster order,
    // one at a time (its other methods are serial). At most `tokens` tiles are in flight, each
    // in a buffer of the pool, so memory stays bounded by tokens * tile_bytes (plus their
    // compressed bytes) whatever the slide size.
    const int threads = tbb::this_task_arena::max_concurrency();
    const std::size_t tokens = static_cast<std::size_t>(std::max(4, 4 * threads));
    std::vector<std::vector<std::uint8_t>> pool(tokens, std::vector<std::uint8_t>(tile_bytes));
    std::vector<std::uint8_t*> free_bufs;
    for (auto& b : pool) free_bufs.push_back(b.data());
    std::mutex pool_mutex;
    struct Item {
        std::int64_t index = -1;
        std::uint8_t* pixels = nullptr;
        EncodedTile encoded;
    };
    // A failure (a throwing progress callback, a write error) is kept and rethrown once the
    // pipeline has drained, not thrown through it: oneTBB does not destroy the items in flight
    // when a filter throws, and these own their compressed bytes.
    std::mutex error_mutex;
    std::exception_ptr error;
    std::atomic<bool> failed{false};
    const auto keep_error = [&] {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        failed = true;
    };
    std::int64_t next = 0;
    const auto make = [&](tbb::flow_control& fc) {
        Item it;
        if (next >= tiles || failed) {
            fc.stop();
            return it;
        }
        it.index = next++;
        std::lock_guard<std::mutex> lock(pool_mutex);
        // A token is only free once its item left the last stage, which returned its buffer.
        if (free_bufs.empty()) throw std::logic_error("write_synthetic_slide: buffer pool exhausted");
        it.pixels = free_bufs.back();
        free_bufs.pop_back();
        return it;
    };
    const auto render = [&](Item it) {
        if (failed) return it;
        try {
            const std::int64_t x0 = it.index % nx * T, y0 = it.index / nx * T;
            pixels.render(x0, y0, T, T, it.pixels);
            it.encoded = writer.encode_tile(it.pixels);
        } catch (...) {
            keep_error();
        }
        return it;
    };
    const auto write = [&](Item it) {
        const std::int64_t tx = it.index % nx, ty = it.index / nx;
        if (!failed) {
            try {
                writer.write_tile(tx, ty, it.pixels, std::move(it.encoded));
                if (tx == nx - 1) {
                    prog.rows_done = ty + 1;
                    prog.pixels_done = std::min(spec.height, (ty + 1) * T) * spec.width;
                    if (progress) progress(prog);
                }
            } catch (...) {
                keep_error();
            }
        }
        std::lock_guard<std::mutex> lock(pool_mutex);
        free_bufs.push_back(it.pixels);
    };
    tbb::parallel_pipeline(tokens, tbb::make_filter<void, Item>(tbb::filter_mode::serial_in_order, make) &
                                       tbb::make_filter<Item, Item>(tbb::filter_mode::parallel, render) &
                                       tbb::make_filter<Item, void>(tbb::filter_mode::serial_in_order, write));
    if (error) std::rethrow_exception(error);
    prog.finishing = true;
    if (progress) progress(prog);
    writer.finish();
}

void write_disc_slide(const std::string& path, std::int64_t width, std::int64_t height,
                      const std::vector<Disc>& discs, double mpp) {
    if (width <= 0 || height <= 0)
        throw OutputError(path, fmt::format("disc slide needs a positive size, got {}x{}", width, height));
    TiffLayout layout;
    layout.width = width;
    layout.height = height;
    layout.channels = 3;
    layout.tile = 256;
    layout.compression = Compression::deflate;
    layout.mpp = mpp > 0 ? mpp : 0.0;
    layout.description = fmt::format("flowinfer disc slide discs={} mpp={}", discs.size(), mpp);

    PyramidTiffWriter writer(path, layout);
    const int T = layout.tile;
    const std::int64_t nx = writer.tiles_x();
    const std::size_t tile_bytes = static_cast<std::size_t>(T) * T * 3;

    // Bucket the discs by tile row so a row only looks at the discs that can reach it: the
    // slide may hold many thousands of them.
    std::vector<std::vector<std::size_t>> by_row(static_cast<std::size_t>(writer.tiles_y()));
    for (std::size_t i = 0; i < discs.size(); ++i) {
        const Disc& d = discs[i];
        const double reach = std::abs(d.r) + 1;
        const auto lo = static_cast<std::int64_t>(std::floor((d.y - reach) / T));
        const auto hi = static_cast<std::int64_t>(std::floor((d.y + reach) / T));
        for (std::int64_t ty = std::max<std::int64_t>(0, lo);
             ty <= std::min<std::int64_t>(writer.tiles_y() - 1, hi); ++ty)
            by_row[static_cast<std::size_t>(ty)].push_back(i);
    }

    const double dark[3] = {60, 30, 110};
    std::vector<std::uint8_t> row(tile_bytes * static_cast<std::size_t>(nx));
    // Coverage (0..1) of each pixel of the tile row, so overlapping discs do not darken twice.
    std::vector<float> cover(static_cast<std::size_t>(nx) * T * T);
    for (std::int64_t ty = 0; ty < writer.tiles_y(); ++ty) {
        std::fill(cover.begin(), cover.end(), 0.0f);
        const std::int64_t y0 = ty * T;
        const std::int64_t row_w = nx * T;
        for (std::size_t i : by_row[static_cast<std::size_t>(ty)]) {
            const Disc& d = discs[i];
            const double r = std::abs(d.r);
            const auto ya = std::max<std::int64_t>(y0, static_cast<std::int64_t>(std::floor(d.y - r - 1)));
            const auto yb = std::min<std::int64_t>(y0 + T - 1, static_cast<std::int64_t>(std::ceil(d.y + r + 1)));
            const auto xa = std::max<std::int64_t>(0, static_cast<std::int64_t>(std::floor(d.x - r - 1)));
            const auto xb = std::min<std::int64_t>(row_w - 1, static_cast<std::int64_t>(std::ceil(d.x + r + 1)));
            for (std::int64_t y = ya; y <= yb; ++y) {
                for (std::int64_t x = xa; x <= xb; ++x) {
                    // Pixel (x, y) covers [x, x+1) x [y, y+1): a one-pixel linear ramp across
                    // the rim approximates its covered share (anti-aliasing).
                    const double dist = std::hypot(x + 0.5 - d.x, y + 0.5 - d.y);
                    const auto a = static_cast<float>(std::clamp(r - dist + 0.5, 0.0, 1.0));
                    float& c = cover[static_cast<std::size_t>((y - y0) * row_w + x)];
                    c = std::max(c, a);
                }
            }
        }
        for (std::int64_t tx = 0; tx < nx; ++tx) {
            std::uint8_t* tile = row.data() + tile_bytes * static_cast<std::size_t>(tx);
            for (int py = 0; py < T; ++py) {
                for (int px = 0; px < T; ++px) {
                    const float a = cover[static_cast<std::size_t>(py * row_w + tx * T + px)];
                    for (int c = 0; c < 3; ++c)
                        tile[(py * T + px) * 3 + c] =
                            static_cast<std::uint8_t>(std::lround(255 + (dark[c] - 255) * a));
                }
            }
            writer.write_tile(tx, ty, tile);
        }
    }
    writer.finish();
}

}  // namespace flowinfer
