// infer stage: runs the model on a full batch.
//
// Thread safety: operator() runs on up to model.slots() threads at once (the node's
// concurrency); each call borrows a distinct slot (a CUDA stream on GPU) from the SlotPool.
// A model failure throws ModelError, which cancels the graph.
#pragma once

#include "stages/messages.hpp"
#include "stages/stage_stats.hpp"

#include <mutex>
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
    Infer(Model& model, SlotPool& slots, StageCounter& counter)
        : model_(&model), slots_(&slots), counter_(&counter) {}
    InferResult operator()(const BatchPtr& batch) const;

private:
    Model* model_;
    SlotPool* slots_;
    StageCounter* counter_;
};

}  // namespace flowinfer
