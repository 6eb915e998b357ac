#include "stages/infer.hpp"

#include "stages/model.hpp"

#include <flowinfer/errors.hpp>

#include <stdexcept>

namespace flowinfer {

SlotPool::SlotPool(int slots) {
    for (int i = slots - 1; i >= 0; --i) free_.push_back(i);
}

int SlotPool::acquire() {
    std::lock_guard<std::mutex> lock(mu_);
    // The node's concurrency equals the slot count, so a free slot always exists.
    if (free_.empty()) throw std::logic_error("infer: more concurrent calls than slots");
    const int s = free_.back();
    free_.pop_back();
    return s;
}

void SlotPool::release(int slot) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(slot);
}

std::optional<InferResult> Infer::operator()(const BatchPtr& batch) const {
    if (batch->group != group_) return std::nullopt;
    const int n = batch->target.load(std::memory_order_acquire);
    InferResult r{batch, index_, {}};
    if (batch->all_failed() || !batch->any_readable()) return r;
    BusyScope busy(*counter_, n);
    struct Lease {
        SlotPool* pool;
        int slot;
        ~Lease() { pool->release(slot); }
    } lease{slots_, slots_->acquire()};
    try {
        r.out = model_->run_rgb(batch->rgb.get(), n, batch->patch_size, batch->patch_size, lease.slot);
    } catch (const ModelError& e) {
        for (int i = 0; i < n; ++i) batch->ctx_of(i)->fail(e.what());
        r.out = ModelOutput{};
    }
    return r;
}

}  // namespace flowinfer
