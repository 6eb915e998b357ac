#include "stages/overview.hpp"

#include "stages/slide.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>

namespace flowinfer {

namespace {
constexpr std::int64_t kChunk = 512;  // level pixels per side of one read (about)
}  // namespace

Overview read_overview(const Slide& slide, std::int64_t target_long_side, std::int64_t max_long_side) {
    // The coarsest level that is still at least target_long_side on its longer side.
    int level = 0;
    for (int l = 1; l < slide.level_count(); ++l)
        if (std::max(slide.level_width(l), slide.level_height(l)) >= target_long_side &&
            slide.level_downsample(l) > slide.level_downsample(level))
            level = l;
    const std::int64_t lw = slide.level_width(level), lh = slide.level_height(level);
    const double lds = slide.level_downsample(level);
    const std::int64_t f =
        std::max<std::int64_t>(1, (std::max(lw, lh) + max_long_side - 1) / max_long_side);

    Overview m;
    m.width = (lw + f - 1) / f;
    m.height = (lh + f - 1) / f;
    m.downsample = lds * static_cast<double>(f);
    const std::int64_t W = m.width, H = m.height;
    m.rgb.assign(static_cast<std::size_t>(W * H * 3), 255);

    // Chunks are whole f x f blocks, so each chunk owns its mask pixels: no shared accumulator.
    const std::int64_t chunk = f * std::max<std::int64_t>(1, kChunk / f);
    const std::int64_t nx = (lw + chunk - 1) / chunk, ny = (lh + chunk - 1) / chunk;
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, nx * ny, 1),
                      [&](const tbb::blocked_range<std::int64_t>& r) {
        std::vector<std::uint8_t> rgb;
        std::vector<std::uint64_t> acc;
        for (std::int64_t c = r.begin(); c < r.end(); ++c) {
            const std::int64_t cx = (c % nx) * chunk, cy = (c / nx) * chunk;
            const std::int64_t cw = std::min(chunk, lw - cx), ch = std::min(chunk, lh - cy);
            rgb.resize(static_cast<std::size_t>(cw * ch * 3));
            slide.read_level(level, cx, cy, cw, ch, rgb.data());
            const std::int64_t ox0 = cx / f, oy0 = cy / f;
            const std::int64_t ow = (cw + f - 1) / f, oh = (ch + f - 1) / f;
            acc.assign(static_cast<std::size_t>(ow * oh * 3), 0);
            for (std::int64_t y = 0; y < ch; ++y) {
                const std::uint8_t* src = rgb.data() + y * cw * 3;
                std::uint64_t* dst = acc.data() + (y / f) * ow * 3;
                for (std::int64_t x = 0; x < cw; ++x) {
                    std::uint64_t* d = dst + (x / f) * 3;
                    d[0] += src[3 * x];
                    d[1] += src[3 * x + 1];
                    d[2] += src[3 * x + 2];
                }
            }
            for (std::int64_t j = 0; j < oh; ++j) {
                const std::int64_t bh = std::min(f, ch - j * f);
                for (std::int64_t i = 0; i < ow; ++i) {
                    const std::uint64_t n = static_cast<std::uint64_t>(bh * std::min(f, cw - i * f));
                    const std::uint64_t* a = acc.data() + (j * ow + i) * 3;
                    std::uint8_t* o = m.rgb.data() + ((oy0 + j) * W + ox0 + i) * 3;
                    for (int k = 0; k < 3; ++k) o[k] = static_cast<std::uint8_t>((a[k] + n / 2) / n);
                }
            }
        }
    });
    return m;
}

}  // namespace flowinfer
