#include "stages/plan.hpp"

#include "stages/roi.hpp"
#include "stages/tissue.hpp"

#include <flowinfer/errors.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>

namespace flowinfer {

namespace {

namespace fs = std::filesystem;

std::string replace_all(std::string s, const std::string& what, const std::string& with) {
    for (std::size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + with.size()))
        s.replace(at, what.size(), with);
    return s;
}

}  // namespace

std::string roi_path(const std::string& pattern, const std::string& slide_path) {
    const fs::path slide(slide_path);
    return replace_all(replace_all(pattern, "{stem}", slide.stem().string()), "{name}", slide.filename().string());
}

std::optional<Region> PlanStage::region(const SlideJob& job, const Slide& slide, PlanOutcome& out,
                                        std::vector<std::string>& warnings) const {
    const std::int64_t w = slide.level_width(0), h = slide.level_height(0);
    std::optional<Region> roi;
    if (cfg_->region) {
        const auto& r = *cfg_->region;
        roi = rectangle_region(r[0], r[1], r[2], r[3]);
    } else if (!cfg_->roi.empty()) {
        const std::string path = roi_path(cfg_->roi, job.path);
        std::error_code ec;
        if (!fs::exists(path, ec)) {
            const std::string what = fmt::format("no region of interest: '{}' does not exist (input.roi)", path);
            switch (cfg_->roi_missing) {
                case RoiMissing::error: throw SlideError(job.path, what);
                case RoiMissing::all: warnings.push_back(what + "; the whole slide is run (input.roi_missing = \"all\")"); return roi;
                case RoiMissing::skip:
                    out.failure.status = SlideStatus::skipped;
                    out.failure.reason = what + " (input.roi_missing = \"skip\")";
                    return roi;
            }
        }
        roi = load_region(path, w, h);
        for (const std::string& warning : roi->warnings()) warnings.push_back(warning);
    } else {
        return roi;
    }
    const geom::Box b = roi->bounds();
    if (roi->empty() || b.x1 <= 0 || b.y1 <= 0 || b.x0 >= double(w) || b.y0 >= double(h))
        throw SlideError(job.path, fmt::format("the region of interest {} ({:.0f}, {:.0f})-({:.0f}, {:.0f}) lies outside the "
                                               "slide ({} x {} level-0 pixels)",
                                               roi->source(), b.x0, b.y0, b.x1, b.y1, w, h));
    return roi;
}

PlanOutcome PlanStage::operator()(const SlideJob& job) const {
    BusyScope busy(*counter_);
    const auto start = std::chrono::steady_clock::now();
    PlanOutcome out;
    try {
        auto ctx = std::make_shared<SlideContext>();
        ctx->job = job;
        ctx->start = start;
        if (!job.image.empty()) {
            plan_image(*ctx);
            out.cursor = std::make_shared<Cursor>(Cursor{std::move(ctx), 0, 0});
            return out;
        }
        ctx->slide = std::make_unique<Slide>(job.path, cfg_->reader);
        std::vector<std::string> warnings;
        const std::optional<Region> roi = region(job, *ctx->slide, out, warnings);
        if (out.failure.status == SlideStatus::skipped) {
            out.failure.index = job.index;
            out.failure.path = job.path;
            return out;
        }
        std::optional<TissueMask> mask;
        if (cfg_->tissue) {
            mask = compute_tissue_mask(*ctx->slide);
            if (cfg_->tissue_preview) {
                namespace fs = std::filesystem;
                const fs::path dir = fs::path(cfg_->output_dir) / fs::path(job.path).stem();
                std::error_code ec;
                fs::create_directories(dir, ec);
                ctx->tissue_preview = (dir / "tissue-mask.png").string();
                write_mask_preview(ctx->tissue_preview, *mask);
            }
        }
        const auto& groups = topology_->read_groups;
        for (std::size_t g = 0; g < groups.size(); ++g) {
            ctx->plans.push_back(plan_slide(*ctx->slide, job.index, groups[g].tiling, *cfg_,
                                            static_cast<std::uint16_t>(g), mask ? &*mask : nullptr,
                                            roi ? &*roi : nullptr));
            if (roi && ctx->plans.back().kept.empty())
                warnings.push_back(fmt::format("no patch of read group {} has {} of its area inside the region of "
                                               "interest {} (tiling.roi_threshold): nothing ran",
                                               g, cfg_->roi_threshold, roi->source()));
            total_->fetch_add(static_cast<std::int64_t>(ctx->plans.back().count()), std::memory_order_relaxed);
        }
        ctx->slide->set_tile_cache_bytes(tile_cache_bytes(*ctx->slide, ctx->plans, cfg_->tile_cache_mb));
        ctx->models.resize(cfg_->models.size());
        ctx->warnings = std::move(warnings);
        out.cursor = std::make_shared<Cursor>(Cursor{std::move(ctx), 0, 0});
    } catch (const OutputError&) {  // the mask preview's directory or disk: not this slide's, it stops the run
        throw;
    } catch (const Error& e) {  // SlideError, RegionError (its region file): this slide's alone
        out.failure.index = job.index;
        out.failure.path = job.path;
        out.failure.status = SlideStatus::failed;
        out.failure.error = e.what();
        out.failure.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    return out;
}

// An image is read at its own pixels (it has no pyramid and no MPP: tiling.mpp and
// tiling.level are for slides). One that cannot be opened still walks one placeholder patch
// per read group, as a failed slide: its patches are what tells the batch assembler that
// the image is done (the last images' patches share a batch that waits for every image).
void PlanStage::plan_image(SlideContext& ctx) const {
    const auto& groups = topology_->read_groups;
    ctx.models.resize(cfg_->models.size());
    try {
        ctx.slide = Slide::image(ctx.job.path);
    } catch (const SlideError& e) {
        ctx.fail(e.what());
    }
    for (std::size_t g = 0; g < groups.size(); ++g) {
        Tiling t = groups[g].tiling;
        t.mpp.reset();
        t.level.reset();
        SlidePlan plan;
        if (ctx.slide) {
            plan = plan_slide(*ctx.slide, ctx.job.index, t, *cfg_, static_cast<std::uint16_t>(g));
        } else {
            plan.slide = ctx.job.index;
            plan.group = static_cast<std::uint16_t>(g);
            plan.patch_size = t.patch_size;
            plan.overlap = t.overlap;
            plan.xs = plan.ys = {0};
            plan.tissue_filtered = true;  // no patch kept: one placeholder
        }
        total_->fetch_add(static_cast<std::int64_t>(plan.count()), std::memory_order_relaxed);
        ctx.plans.push_back(std::move(plan));
    }
}

std::int64_t tile_cache_bytes(const Slide& slide, const std::vector<SlidePlan>& plans, std::int64_t cap_mb) {
    std::map<std::pair<int, int>, std::int64_t> band;  // by (level, decoded scale)
    for (const SlidePlan& p : plans) {
        const int scale = p.resize == static_cast<int>(p.resize) && slide.reads_scaled(p.level, static_cast<int>(p.resize))
                              ? static_cast<int>(p.resize)
                              : 1;
        const std::int64_t tw = slide.tile_width(p.level), th = slide.tile_height(p.level);
        const double level_px = p.resize / scale;  // decoded pixels per working-grid pixel
        const double rows_px = ((p.sections - 1.0) * (p.patch_size - p.overlap) + p.patch_size) * level_px;
        const auto rows = static_cast<std::int64_t>(std::ceil(rows_px * scale / th)) + 1;
        const std::int64_t across = (p.level_width + tw - 1) / tw;
        const std::int64_t bytes = rows * across * (tw / scale) * (th / scale) * 3;
        auto& b = band[{p.level, scale}];
        b = std::max(b, bytes);
    }
    std::int64_t total = 0;
    for (const auto& [k, b] : band) total += b;
    return std::min(total, cap_mb << 20);
}

}  // namespace flowinfer
