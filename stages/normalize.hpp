// normalize stage: uint8 RGB -> (x/255 - mean) / std per channel, planar, written straight
// into the patch's slot of a batch buffer, once per batch group of the patch's read group
// (models sharing mean, std and batch size share that buffer). For models on a GPU the RGB
// bytes are copied as they are: the model normalizes on the device.
//
// Thread safety: operator() is const and runs concurrently; each call writes only the slots
// it reserved.
#pragma once

#include "stages/batch_collect.hpp"
#include "stages/messages.hpp"
#include "stages/stage_stats.hpp"

#include <array>
#include <memory>
#include <vector>

namespace flowinfer {

class Normalize {
public:
    struct Target {
        BatchAssembler* assembler = nullptr;
        std::array<float, 3> scale{};  // 1 / (255 std)
        std::array<float, 3> bias{};   // -mean / std
    };
    // targets[g]: the batch groups of read group g.
    Normalize(std::vector<std::vector<Target>> targets, StageCounter& counter)
        : targets_(std::make_shared<const std::vector<std::vector<Target>>>(std::move(targets))),
          counter_(&counter) {}
    static Target target(BatchAssembler& assembler, const BatchGroup& group);

    std::vector<SlotFilled> operator()(const Patch& patch) const;

private:
    std::shared_ptr<const std::vector<std::vector<Target>>> targets_;
    StageCounter* counter_;
};

// The same transform on one interleaved RGB patch into planar floats (exposed for tests
// and for the sequential baseline).
void normalize_rgb(const std::uint8_t* rgb, int pixels, const float scale[3], const float bias[3],
                   float* planar);

}  // namespace flowinfer
