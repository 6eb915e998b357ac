#include "stages/sink.hpp"

namespace flowinfer {

std::filesystem::path slide_output_dir(const Config& cfg, const SlideContext& ctx) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::path(cfg.output_dir) / fs::path(ctx.job.path).stem();
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw OutputError(dir.string(), "cannot create directory: " + ec.message());
    return dir;
}

void release_batch(const InferResult& r, SinkOut& out) {
    Batch& batch = *r.batch;
    SlideContext& ctx = *batch.ctx;
    ModelSlide& ms = ctx.models[static_cast<std::size_t>(r.model)];
    for (WriteMsg& m : out.messages) {
        m.ctx = batch.ctx;
        m.model = r.model;
    }
    ms.sent += static_cast<std::int64_t>(out.messages.size());

    const int n = batch.target.load(std::memory_order_acquire);
    if (batch.consumers.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        for (int i = 0; i < n; ++i)
            if (batch.tickets[static_cast<std::size_t>(i)]->pending.fetch_sub(1, std::memory_order_acq_rel) == 1)
                ++out.tokens;
    }
    ms.consumed += static_cast<std::uint64_t>(n);
    if (ms.consumed == ctx.plans[batch.keys[0].group].count()) {
        WriteMsg end;
        end.ctx = batch.ctx;
        end.model = r.model;
        end.kind = WriteMsg::end;
        end.sent = ms.sent;
        out.messages.push_back(std::move(end));
    }
}

}  // namespace flowinfer
