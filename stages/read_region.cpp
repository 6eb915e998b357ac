#include "stages/read_region.hpp"

#include <flowinfer/errors.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

namespace flowinfer {

namespace {

// Per output pixel, the source pixels it covers and their coverage weights along one axis.
struct AxisWeights {
    std::vector<std::int64_t> first;  // first source index per output pixel
    std::vector<int> count;
    std::vector<float> w;             // count[i] weights per pixel, back to back, summing to 1
    std::vector<std::size_t> offset;
};

AxisWeights axis_weights(double origin, double scale, int n, std::int64_t src_len) {
    AxisWeights a;
    a.first.resize(n);
    a.count.resize(n);
    a.offset.resize(n);
    for (int i = 0; i < n; ++i) {
        const double lo = origin + i * scale, hi = lo + scale;
        std::int64_t s0 = std::max<std::int64_t>(0, static_cast<std::int64_t>(std::floor(lo)));
        std::int64_t s1 = std::min<std::int64_t>(src_len, static_cast<std::int64_t>(std::ceil(hi)));
        if (s1 <= s0) s1 = std::min<std::int64_t>(src_len, s0 + 1);
        a.first[i] = s0;
        a.count[i] = static_cast<int>(s1 - s0);
        a.offset[i] = a.w.size();
        double total = 0;
        for (std::int64_t s = s0; s < s1; ++s) {
            const double cover = std::min<double>(hi, s + 1) - std::max<double>(lo, s);
            a.w.push_back(static_cast<float>(std::max(cover, 0.0)));
            total += std::max(cover, 0.0);
        }
        for (int k = 0; k < a.count[i]; ++k) a.w[a.offset[i] + k] /= total > 0 ? total : 1;
    }
    return a;
}

}  // namespace

void area_resize(const std::uint8_t* src, std::int64_t sw, std::int64_t sh, double ox, double oy,
                 double scale, int n, std::uint8_t* dst) {
    const AxisWeights ax = axis_weights(ox, scale, n, sw);
    const AxisWeights ay = axis_weights(oy, scale, n, sh);
    // Horizontal pass into floats for every source row, then vertical: separable box filter.
    std::vector<float> rows(static_cast<std::size_t>(sh) * n * 3);
    for (std::int64_t y = 0; y < sh; ++y) {
        const std::uint8_t* in = src + y * sw * 3;
        float* out = &rows[static_cast<std::size_t>(y) * n * 3];
        for (int i = 0; i < n; ++i) {
            float acc[3] = {0, 0, 0};
            for (int k = 0; k < ax.count[i]; ++k) {
                const float w = ax.w[ax.offset[i] + k];
                const std::uint8_t* p = in + (ax.first[i] + k) * 3;
                acc[0] += w * p[0];
                acc[1] += w * p[1];
                acc[2] += w * p[2];
            }
            out[3 * i] = acc[0];
            out[3 * i + 1] = acc[1];
            out[3 * i + 2] = acc[2];
        }
    }
    for (int j = 0; j < n; ++j) {
        std::uint8_t* out = dst + static_cast<std::size_t>(j) * n * 3;
        for (int i = 0; i < n * 3; ++i) {
            float acc = 0;
            for (int k = 0; k < ay.count[j]; ++k)
                acc += ay.w[ay.offset[j] + k] * rows[static_cast<std::size_t>(ay.first[j] + k) * n * 3 + i];
            out[i] = static_cast<std::uint8_t>(std::clamp(std::lround(acc), 0L, 255L));
        }
    }
}

Patch ReadRegion::operator()(const PatchTask& task) const {
    BusyScope busy(*counter_);
    Patch patch{task.ctx, task.key, task.ticket, {}};
    const SlideContext& ctx = *task.ctx;
    if (ctx.failed() || task.key.placeholder) return patch;
    const SlidePlan& plan = ctx.plans[task.key.group];
    const Slide& slide = *ctx.slide;
    const int n = plan.patch_size;
    thread_local std::vector<std::uint8_t> region;
    patch.rgb.resize(static_cast<std::size_t>(n) * n * 3);
    // Footprint on the read level: the patch itself, or (resize) its area widened to whole
    // pixels. A shrink by 2, 4 or 8 that the decoder can do itself needs no footprint.
    const bool direct = plan.resize == 1.0;
    const int scale = static_cast<int>(plan.resize);
    const bool scaled = !direct && scale == plan.resize && slide.reads_scaled(plan.level, scale);
    const double fx = task.key.x * plan.resize, fy = task.key.y * plan.resize;
    const std::int64_t x0 = direct ? task.key.x : static_cast<std::int64_t>(std::floor(fx));
    const std::int64_t y0 = direct ? task.key.y : static_cast<std::int64_t>(std::floor(fy));
    const std::int64_t span = direct ? n : static_cast<std::int64_t>(std::ceil(n * plan.resize)) + 1;
    std::uint8_t* into = patch.rgb.data();
    if (!direct && !scaled) {
        region.resize(static_cast<std::size_t>(span * span * 3));
        into = region.data();
    }
    const auto read = [&](bool isolated) {
        if (scaled) slide.read_level_scaled(plan.level, scale, task.key.x, task.key.y, n, n, into);
        else if (isolated) slide.read_level_isolated(plan.level, x0, y0, span, span, into);
        else slide.read_level(plan.level, x0, y0, span, span, into);
    };
    try {
        try {
            read(false);
        } catch (const SlideError&) {
            if (on_error_ == ReadErrorPolicy::fail) throw;
            read(true);  // this region's own error, or a neighbour's that broke the shared handle?
        }
        if (!direct && !scaled) area_resize(region.data(), span, span, fx - x0, fy - y0, plan.resize, n, patch.rgb.data());
    } catch (const SlideError& e) {
        patch.rgb.clear();
        if (on_error_ == ReadErrorPolicy::fail) {
            task.ctx->fail(e.what());
        } else {
            patch.unreadable = true;
            task.ctx->patches_unreadable.fetch_add(1, std::memory_order_relaxed);
        }
    }
    return patch;
}

}  // namespace flowinfer
