// infer stage: runs one model on the full batches of its batch group. Every model's infer
// node sees every batch (one broadcast); it ignores the batches of other groups.
//
// Thread safety: operator() runs on up to model.slots() threads at once (the node's
// concurrency); each call borrows a distinct slot (a CUDA stream on GPU) from the SlotPool.
// A ModelError from the model's call (an exception in forward, a wrong output shape) fails
// the batch's slide, and only it: a batch never mixes slides (BatchAssembler keeps one open
// batch per slide), and one bad input should not cost the rest of the run. The batch then
// goes on without output, so its patches' tokens return.
#pragma once

#include "stages/messages.hpp"
#include "stages/stage_stats.hpp"

#include <mutex>
#include <optional>
#include <vector>

namespace flowinfer {

class Model;

class SlotPool {
public:
    explicit SlotPool(int slots);
    int acquire();
    void release(int slot);

private:
    std::mutex mu_;
    std::vector<int> free_;
};

class Infer {
public:
    Infer(Model& model, int model_index, int batch_group, SlotPool& slots, StageCounter& counter)
        : model_(&model), index_(model_index), group_(batch_group), slots_(&slots), counter_(&counter) {}
    std::optional<InferResult> operator()(const BatchPtr& batch) const;

private:
    Model* model_;
    int index_;
    int group_;
    SlotPool* slots_;
    StageCounter* counter_;
};

}  // namespace flowinfer
