#include "stages/plan.hpp"

#include <flowinfer/errors.hpp>

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
        ctx->plan = plan_slide(*ctx->slide, job.index, *cfg_);
        total_->fetch_add(static_cast<std::int64_t>(ctx->plan.count()), std::memory_order_relaxed);
        out.cursor = std::make_shared<Cursor>(Cursor{std::move(ctx), 0});
    } catch (const SlideError& e) {
        out.failure.index = job.index;
        out.failure.path = job.path;
        out.failure.ok = false;
        out.failure.error = e.what();
        out.failure.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    return out;
}

}  // namespace flowinfer
