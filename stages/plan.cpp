#include "stages/plan.hpp"

#include "stages/tissue.hpp"

#include <flowinfer/errors.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>

namespace flowinfer {

PlanOutcome PlanStage::operator()(const SlideJob& job) const {
    BusyScope busy(*counter_);
    const auto start = std::chrono::steady_clock::now();
    PlanOutcome out;
    try {
        auto ctx = std::make_shared<SlideContext>();
        ctx->job = job;
        ctx->start = start;
        ctx->slide = std::make_unique<Slide>(job.path, cfg_->reader);
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
                                            static_cast<std::uint16_t>(g), mask ? &*mask : nullptr));
            total_->fetch_add(static_cast<std::int64_t>(ctx->plans.back().count()), std::memory_order_relaxed);
        }
        ctx->slide->set_tile_cache_bytes(tile_cache_bytes(*ctx->slide, ctx->plans, cfg_->tile_cache_mb));
        ctx->models.resize(cfg_->models.size());
        out.cursor = std::make_shared<Cursor>(Cursor{std::move(ctx), 0, 0});
    } catch (const SlideError& e) {  // an OutputError (mask preview) is not this slide's: it stops the run
        out.failure.index = job.index;
        out.failure.path = job.path;
        out.failure.status = SlideStatus::failed;
        out.failure.error = e.what();
        out.failure.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    return out;
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
