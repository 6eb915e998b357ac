// normalize stage: places each patch's uint8 RGB into the slot it reserves in a batch buffer,
// once per batch group of the patch's read group (models sharing a read, a batch size and a
// device kind share that buffer). The arithmetic, (x/255 - mean) / std per channel into
// planar floats, runs in each model's infer call (Model::run_rgb), where the batch is about to
// be used: on a GPU after a quarter of float32's upload, on CPU into a per-slot buffer that is
// still in cache when the model reads it. Done here it wrote 4 bytes per value into batches
// that waited cold in the queue, and inference ran about 10% slower for it.
//
// Thread safety: operator() is const and runs concurrently; each call writes only the slots
// it reserved.
#pragma once

#include "stages/batch_collect.hpp"
#include "stages/messages.hpp"
#include "stages/stage_stats.hpp"

#include <memory>
#include <vector>

namespace flowinfer {

class Normalize {
public:
    // assemblers[g]: the batch groups of read group g.
    Normalize(std::vector<std::vector<BatchAssembler*>> assemblers, StageCounter& counter)
        : assemblers_(std::make_shared<const std::vector<std::vector<BatchAssembler*>>>(std::move(assemblers))),
          counter_(&counter) {}

    std::vector<SlotFilled> operator()(const Patch& patch) const;

private:
    std::shared_ptr<const std::vector<std::vector<BatchAssembler*>>> assemblers_;
    StageCounter* counter_;
};

// (x/255 - mean) / std of one interleaved RGB patch into planar floats, with
// scale = 1 / (255 std) and bias = -mean / std per channel.
void normalize_rgb(const std::uint8_t* rgb, int pixels, const float scale[3], const float bias[3],
                   float* planar);

}  // namespace flowinfer
