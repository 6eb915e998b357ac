#include "stages/layout.hpp"

#include "stages/slide.hpp"
#include "stages/roi.hpp"
#include "stages/tissue.hpp"

#include <flowinfer/config.hpp>
#include <flowinfer/errors.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace flowinfer {

namespace {

// A level within this relative distance of the requested mpp is read as is.
constexpr double kMppTolerance = 0.02;

void choose_level(const Slide& slide, const Tiling& cfg, SlidePlan& plan) {
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
    // A shrink within the tolerance of 2, 4 or 8 is made exactly that, as a level within it
    // is read as is: whole level pixels per output pixel, and JPEG levels decode at that
    // size in the DCT domain (a 40x Aperio level at 0.2527 µm/px read at 0.5: 1.979 -> 2).
    for (const int k : {2, 4, 8}) {
        if (std::abs(plan.resize - k) <= kMppTolerance * k) {
            plan.resize = k;
            plan.mpp = mpp0 * slide.level_downsample(best) * k;
        }
    }
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

PatchKey SlidePlan::grid_key(std::uint64_t seq) const {
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
    PatchKey k;
    k.slide = slide;
    k.group = group;
    k.level = level;
    k.x = xs[col];
    k.y = ys[row];
    k.seq = seq;
    return k;
}

PatchKey SlidePlan::key(std::uint64_t seq) const {
    if (!tissue_filtered) return grid_key(seq);
    if (kept.empty()) {
        PatchKey k = grid_key(0);
        k.placeholder = true;
        return k;
    }
    PatchKey k = grid_key(kept[seq]);
    k.seq = seq;
    return k;
}

bool SlidePlan::runs(std::size_t col, std::size_t row) const {
    return run_grid.empty() || run_grid[row * xs.size() + col];
}

double SlidePlan::section_top(std::uint64_t seq) const {
    const std::uint64_t pos = tissue_filtered ? (kept.empty() ? 0 : kept[seq]) : seq;
    const std::uint64_t row = (pos / (std::uint64_t(sections) * xs.size())) * sections;
    return static_cast<double>(ys[row]) * downsample();
}

Topology make_topology(const Config& cfg) {
    Topology t;
    for (std::size_t m = 0; m < cfg.models.size(); ++m) {
        const ModelConfig& mc = cfg.models[m];
        const Tiling tiling = tiling_for(cfg, mc);
        int rg = 0;
        while (rg < int(t.read_groups.size()) && !(t.read_groups[rg].tiling == tiling)) ++rg;
        if (rg == int(t.read_groups.size())) t.read_groups.push_back(ReadGroup{tiling, {}});
        const bool gpu = mc.device.value_or(cfg.device).rfind("cuda", 0) == 0;
        int bg = -1;
        for (int b : t.read_groups[rg].batch_groups) {
            const BatchGroup& g = t.batch_groups[b];
            if (g.batch_size == mc.batch_size && g.gpu == gpu) bg = b;
        }
        if (bg < 0) {
            bg = int(t.batch_groups.size());
            t.batch_groups.push_back(BatchGroup{rg, mc.batch_size, gpu, {}});
            t.read_groups[rg].batch_groups.push_back(bg);
        }
        t.batch_groups[bg].models.push_back(int(m));
        t.model_batch_group.push_back(bg);
    }
    return t;
}

SlidePlan plan_slide(const Slide& slide, std::uint32_t index, const Tiling& tiling,
                     const Config& cfg, std::uint16_t group, const TissueMask* mask, const Region* roi) {
    SlidePlan plan;
    plan.slide = index;
    plan.group = group;
    choose_level(slide, tiling, plan);
    plan.level_downsample = slide.level_downsample(plan.level);
    plan.level_width = slide.level_width(plan.level);
    plan.level_height = slide.level_height(plan.level);
    plan.grid_width = std::max<std::int64_t>(1, std::int64_t(std::floor(plan.level_width / plan.resize)));
    plan.grid_height = std::max<std::int64_t>(1, std::int64_t(std::floor(plan.level_height / plan.resize)));
    plan.patch_size = tiling.patch_size;
    plan.overlap = tiling.overlap;
    plan.sections = cfg.sections;
    plan.subsections = cfg.subsections;
    const int stride = tiling.patch_size - tiling.overlap;
    plan.xs = axis_positions(plan.grid_width, tiling.patch_size, stride);
    plan.ys = axis_positions(plan.grid_height, tiling.patch_size, stride);
    if (mask || roi) {
        plan.tissue_filtered = true;
        plan.run_grid.assign(plan.grid_count(), false);
        const double ds = plan.downsample(), side = tiling.patch_size * ds;
        for (std::uint64_t pos = 0; pos < plan.grid_count(); ++pos) {
            const PatchKey k = plan.grid_key(pos);
            if (mask && mask->fraction_in(k.x * ds, k.y * ds, side, side) < cfg.tissue_threshold) continue;
            if (roi && roi->fraction_in(k.x * ds, k.y * ds, side, side) < cfg.roi_threshold) continue;
            plan.kept.push_back(static_cast<std::uint32_t>(pos));
            const auto col = std::lower_bound(plan.xs.begin(), plan.xs.end(), k.x) - plan.xs.begin();
            const auto row = std::lower_bound(plan.ys.begin(), plan.ys.end(), k.y) - plan.ys.begin();
            plan.run_grid[static_cast<std::size_t>(row) * plan.xs.size() + static_cast<std::size_t>(col)] = true;
        }
    }
    return plan;
}

}  // namespace flowinfer
