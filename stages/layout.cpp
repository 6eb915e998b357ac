#include "stages/layout.hpp"

#include "stages/slide.hpp"

#include <flowinfer/config.hpp>
#include <flowinfer/errors.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace flowinfer {

namespace {

// A level within this relative distance of the requested mpp is read as is.
constexpr double kMppTolerance = 0.02;

void choose_level(const Slide& slide, const Config& cfg, SlidePlan& plan) {
    if (cfg.level) {
        if (*cfg.level >= slide.level_count())
            throw SlideError(slide.path(), fmt::format("tiling.level = {} but the slide has {} level(s)",
                                                       *cfg.level, slide.level_count()));
        plan.level = *cfg.level;
        plan.resize = 1.0;
        plan.mpp = slide.mpp() * slide.level_downsample(plan.level);
        return;
    }
    const double mpp0 = slide.mpp();
    if (!cfg.mpp) {
        plan.level = 0;
        plan.mpp = mpp0;
        return;
    }
    const double target = *cfg.mpp;
    if (mpp0 <= 0.0)
        throw SlideError(slide.path(), fmt::format("tiling.mpp = {} but the slide has no resolution "
                                                   "(openslide.mpp-x); set tiling.level instead", target));
    if (target < mpp0 * (1.0 - kMppTolerance))
        throw SlideError(slide.path(), fmt::format("tiling.mpp = {} is finer than the slide's level 0 "
                                                   "({} µm/px); flowinfer does not upsample", target, mpp0));
    // Finest level that is not coarser than the target (beyond tolerance); exact match wins.
    int best = 0;
    for (int l = 0; l < slide.level_count(); ++l) {
        const double m = mpp0 * slide.level_downsample(l);
        if (std::abs(m - target) <= kMppTolerance * target) {
            best = l;
            plan.level = l;
            plan.resize = 1.0;
            plan.mpp = m;
            return;
        }
        if (m < target) best = l;
    }
    plan.level = best;
    plan.resize = target / (mpp0 * slide.level_downsample(best));
    plan.mpp = target;
}

}  // namespace

std::vector<std::int64_t> axis_positions(std::int64_t extent, int patch, int stride) {
    std::vector<std::int64_t> pos;
    if (extent <= patch) return {0};
    std::int64_t p = 0;
    for (; p + patch < extent; p += stride) pos.push_back(p);
    const std::int64_t last = extent - patch;
    if (pos.empty() || pos.back() < last) pos.push_back(last);
    return pos;
}

PatchKey SlidePlan::key(std::uint64_t seq) const {
    const std::uint64_t ncols = xs.size(), nrows = ys.size();
    const std::uint64_t band = std::uint64_t(sections) * ncols;
    const std::uint64_t r0 = (seq / band) * sections;
    const std::uint64_t rows_in = std::min<std::uint64_t>(sections, nrows - r0);
    std::uint64_t rem = seq - r0 * ncols;
    const std::uint64_t sub = rows_in * std::uint64_t(subsections);
    const std::uint64_t c0 = (rem / sub) * subsections;
    const std::uint64_t cols_in = std::min<std::uint64_t>(subsections, ncols - c0);
    rem -= (c0 / subsections) * sub;
    const std::uint64_t row = r0 + rem / cols_in, col = c0 + rem % cols_in;
    return PatchKey{slide, level, xs[col], ys[row], seq};
}

SlidePlan plan_slide(const Slide& slide, std::uint32_t index, const Config& cfg) {
    SlidePlan plan;
    plan.slide = index;
    choose_level(slide, cfg, plan);
    plan.level_downsample = slide.level_downsample(plan.level);
    plan.level_width = slide.level_width(plan.level);
    plan.level_height = slide.level_height(plan.level);
    plan.grid_width = std::max<std::int64_t>(1, std::int64_t(std::floor(plan.level_width / plan.resize)));
    plan.grid_height = std::max<std::int64_t>(1, std::int64_t(std::floor(plan.level_height / plan.resize)));
    plan.patch_size = cfg.patch_size;
    plan.overlap = cfg.overlap;
    plan.sections = cfg.sections;
    plan.subsections = cfg.subsections;
    const int stride = cfg.patch_size - cfg.overlap;
    plan.xs = axis_positions(plan.grid_width, cfg.patch_size, stride);
    plan.ys = axis_positions(plan.grid_height, cfg.patch_size, stride);
    return plan;
}

}  // namespace flowinfer
