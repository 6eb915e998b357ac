#include "stages/batch_collect.hpp"

#include "stages/model.hpp"

namespace flowinfer {

BatchPtr BatchAssembler::make_batch(const SlidePtr& ctx) const {
    auto b = std::make_shared<Batch>();
    b->ctx = ctx;
    b->group = group_;
    b->consumers.store(consumers_, std::memory_order_relaxed);
    b->capacity = batch_size_;
    b->patch_size = patch_size_;
    b->keys.resize(batch_size_);
    b->tickets.resize(batch_size_);
    b->unreadable.assign(static_cast<std::size_t>(batch_size_), 0);
    const std::size_t values = static_cast<std::size_t>(batch_size_) * 3 * patch_size_ * patch_size_;
    b->rgb = model_->host_bytes(values);
    b->target.store(batch_size_, std::memory_order_relaxed);
    return b;
}

Slot BatchAssembler::reserve(const Patch& patch) {
    const SlidePtr& ctx = patch.ctx;
    const std::uint32_t slide = ctx->job.index;
    const bool image = !ctx->job.image.empty();
    std::lock_guard<std::mutex> lock(mu_);
    // Images share one open batch; a slide has its own.
    const std::uint32_t key = image ? kImages : slide;
    Open& open = open_[key];
    if (!open.batch) {
        open.batch = make_batch(ctx);
        if (image) open.batch->slot_ctx.resize(static_cast<std::size_t>(batch_size_));
    }
    Slot slot{open.batch, open.reserved++};
    slot.batch->keys[slot.index] = patch.key;
    slot.batch->tickets[slot.index] = patch.ticket;
    slot.batch->unreadable[slot.index] = patch.unreadable ? 1 : 0;
    if (image) slot.batch->slot_ctx[static_cast<std::size_t>(slot.index)] = ctx;
    const std::uint64_t total = ++reserved_total_[slide];
    const bool slide_done = total == ctx->plans[patch.key.group].count();
    if (slide_done) reserved_total_.erase(slide);
    if (image && slide_done) ++images_done_;
    // An image's last patch ends the batch only when no other image is still to come.
    const bool last = image ? (ctx->job.images_total == 0 ? slide_done : images_done_ == ctx->job.images_total)
                            : slide_done;
    if (last || open.reserved == batch_size_) {
        // Set before the slot is handed out, so the fill that completes the batch sees it.
        slot.batch->target.store(open.reserved, std::memory_order_release);
        open_.erase(key);
    }
    return slot;
}

std::optional<BatchPtr> BatchCollect::operator()(const SlotFilled& s) const {
    // items: batches sent (summary.json: patches / items is the mean batch fill).
    BusyScope busy(*counter_, 0);
    Batch& b = *s.batch;
    if (++b.filled != b.target.load(std::memory_order_acquire)) return std::nullopt;
    busy.set_items(1);
    return s.batch;
}

}  // namespace flowinfer
