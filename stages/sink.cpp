#include "stages/sink.hpp"

#include "stages/object_writer.hpp"

namespace flowinfer {

std::filesystem::path slide_output_dir(const Config& cfg, const SlideContext& ctx) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::path(cfg.output_dir) / fs::path(ctx.job.path).stem();
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw OutputError(dir.string(), "cannot create directory: " + ec.message());
    return dir;
}

std::string image_output_path(const Config& cfg, const SlideContext& ctx, const std::string& model,
                              const char* ext) {
    namespace fs = std::filesystem;
    const fs::path path = (fs::path(cfg.output_dir) / model / ctx.job.image).replace_extension(ext);
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    if (ec) throw OutputError(path.parent_path().string(), "cannot create directory: " + ec.message());
    return path.string();
}

std::string table_header(const std::vector<std::string>& columns) {
    std::string h = "image";
    for (const std::string& c : columns) {
        h += ',';
        append_csv_field(h, c);
    }
    return h + '\n';
}

void release_tokens(Batch& batch, SinkOut& out) {
    const int n = batch.target.load(std::memory_order_acquire);
    if (batch.consumers.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        for (int i = 0; i < n; ++i)
            if (batch.tickets[static_cast<std::size_t>(i)]->pending.fetch_sub(1, std::memory_order_acq_rel) == 1)
                ++out.tokens;
    }
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
    if (!batch.view) release_tokens(batch, out);
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

std::vector<InferResult> split_by_slide(const InferResult& r) {
    const Batch& batch = *r.batch;
    const int n = batch.target.load(std::memory_order_acquire);
    std::vector<InferResult> parts;
    std::vector<int> part_of(static_cast<std::size_t>(n), -1);
    std::vector<std::vector<int>> slots;
    for (int i = 0; i < n; ++i) {
        int p = -1;
        for (std::size_t k = 0; k < parts.size(); ++k)
            if (parts[k].batch->ctx == batch.ctx_of(i)) p = static_cast<int>(k);
        if (p < 0) {
            p = static_cast<int>(parts.size());
            auto v = std::make_shared<Batch>();
            v->ctx = batch.ctx_of(i);
            v->group = batch.group;
            v->patch_size = batch.patch_size;
            v->view = true;
            parts.push_back(InferResult{std::move(v), r.model, {}});
            slots.emplace_back();
        }
        slots[static_cast<std::size_t>(p)].push_back(i);
    }
    const bool ran = r.out.n == n && n > 0;
    const std::size_t per = ran ? r.out.data.size() / static_cast<std::size_t>(n) : 0;
    for (std::size_t p = 0; p < parts.size(); ++p) {
        Batch& v = *parts[p].batch;
        const std::vector<int>& own = slots[p];
        const int k = static_cast<int>(own.size());
        v.capacity = k;
        v.target.store(k, std::memory_order_relaxed);
        v.consumers.store(1, std::memory_order_relaxed);
        for (int i : own) {
            v.keys.push_back(batch.keys[static_cast<std::size_t>(i)]);
            v.tickets.push_back(batch.tickets[static_cast<std::size_t>(i)]);
            v.unreadable.push_back(batch.unreadable[static_cast<std::size_t>(i)]);
        }
        if (!ran) continue;
        ModelOutput& o = parts[p].out;
        o = ModelOutput{r.out.shape, k, r.out.c, r.out.h, r.out.w, {}};
        if (!o.shape.empty()) o.shape[0] = k;
        o.data.reserve(per * static_cast<std::size_t>(k));
        for (int i : own)
            o.data.insert(o.data.end(), r.out.data.begin() + static_cast<std::ptrdiff_t>(per * i),
                          r.out.data.begin() + static_cast<std::ptrdiff_t>(per * (i + 1)));
    }
    return parts;
}

}  // namespace flowinfer
