#include "stages/write.hpp"

#include "stages/stitch.hpp"

#include <flowinfer/errors.hpp>

namespace flowinfer {

SlideResult WriteStage::finish(SlideContext& ctx) const {
    SlideResult r;
    r.index = ctx.job.index;
    r.path = ctx.job.path;
    r.patches = static_cast<std::int64_t>(ctx.plan.count());
    if (!ctx.failed()) {
        try {
            if (!ctx.writer) throw OutputError(ctx.output.path, "no output was produced");
            ctx.writer->finish();
            r.outputs.push_back(ctx.output);
        } catch (const OutputError& e) {
            ctx.fail(e.what());
        }
    }
    // Dropping an unfinished writer removes its partial file.
    ctx.writer.reset();
    ctx.stitch.reset();
    r.ok = !ctx.failed();
    if (!r.ok) {
        r.error = ctx.error();
        r.outputs.clear();
    }
    r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - ctx.start).count();
    slides_done_->fetch_add(1, std::memory_order_relaxed);
    return r;
}

std::optional<SlideResult> WriteStage::operator()(const WriteMsg& m) const {
    BusyScope busy(*counter_, m.end ? 0 : 1);
    SlideContext& ctx = *m.ctx;
    if (m.end) {
        ctx.tiles_expected = m.tiles_sent;
    } else {
        ++ctx.tiles_received;
        if (!ctx.failed() && ctx.writer) {
            try {
                ctx.writer->write_tile(m.tx, m.ty, m.tile.data());
            } catch (const OutputError& e) {
                ctx.fail(e.what());
            }
        }
    }
    if (ctx.tiles_expected >= 0 && ctx.tiles_received == ctx.tiles_expected) return finish(ctx);
    return std::nullopt;
}

}  // namespace flowinfer
