#include "stages/plan.hpp"

#include "stages/tissue.hpp"

#include <flowinfer/errors.hpp>

#include <filesystem>
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
        ctx->slide = std::make_unique<Slide>(job.path);
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

}  // namespace flowinfer
