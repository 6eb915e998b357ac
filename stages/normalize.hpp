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

#include <flowinfer/config.hpp>

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

// The same into the model's input channels (ModelConfig::channels): channel c is RGB channel
// channels[c], or BT.601 luma for kLuma, times scale[c] plus bias[c].
void normalize_channels(const std::uint8_t* rgb, int pixels, const std::vector<int>& channels, const float* scale,
                        const float* bias, float* planar);

// The same as a [C, 3] matrix from RGB to the input channels, scale folded in (the GPU path's
// 1x1 convolution).
std::vector<float> channel_weights(const std::vector<int>& channels, const std::vector<float>& scale);

// Throws ModelError unless `model`'s channels are 1..16 indices 0..2 or kLuma and its mean and
// std have one value per channel (a ModelConfig made in code skips the config's checks).
void check_channels(const ModelConfig& model);

}  // namespace flowinfer
