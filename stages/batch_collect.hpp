// batch_collect stage: groups a slide's patches into batches of `batch_size`. Images
// (input.images) share batches: every image's patches fill one open batch, and the last one
// goes when the last image job (SlideJob::images_total) has all its patches in it.
//
// Normalize writes each patch straight into a slot of the batch buffer it reserved from its
// batch group's BatchAssembler; batch_collect counts the filled
// slots and sends a batch on once all its slots are written. A slide's last batch holds
// fewer slots; it is flushed as soon as its last patch is normalized.
//
// Thread safety: BatchAssembler::reserve() is thread-safe (one mutex, held for a few
// instructions). BatchCollect::operator() must run serially (its node has concurrency 1).
#pragma once

#include "stages/messages.hpp"
#include "stages/stage_stats.hpp"

#include <map>
#include <mutex>
#include <optional>

namespace flowinfer {

class Model;

struct Slot {
    BatchPtr batch;
    int index = 0;
};

class BatchAssembler {
public:
    // `model` provides the buffers (pinned when it runs on CUDA); `consumers` models share
    // each batch.
    BatchAssembler(const Model& model, int group, const BatchGroup& spec, int patch_size)
        : model_(&model), group_(group), batch_size_(spec.batch_size),
          consumers_(static_cast<int>(spec.models.size())), patch_size_(patch_size) {}
    Slot reserve(const Patch& patch);

private:
    struct Open {
        BatchPtr batch;
        int reserved = 0;
    };
    BatchPtr make_batch(const SlidePtr& ctx) const;

    const Model* model_;
    int group_;
    int batch_size_;
    int consumers_;
    int patch_size_;
    std::mutex mu_;
    static constexpr std::uint32_t kImages = UINT32_MAX;    // the open batch every image shares
    std::map<std::uint32_t, Open> open_;                    // slide index (or kImages) -> open batch
    std::uint32_t images_done_ = 0;                         // images whose every patch has a slot
    std::map<std::uint32_t, std::uint64_t> reserved_total_;  // slide index -> slots handed out
};

class BatchCollect {
public:
    explicit BatchCollect(StageCounter& counter) : counter_(&counter) {}
    // The batch when this slot completed it.
    std::optional<BatchPtr> operator()(const SlotFilled& s) const;

private:
    StageCounter* counter_;
};

}  // namespace flowinfer
