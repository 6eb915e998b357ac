// normalize stage: uint8 RGB -> (x/255 - mean) / std per channel, planar, written straight
// into the patch's slot of its batch buffer.
//
// Thread safety: operator() is const and runs concurrently; each call writes only the slot
// it reserved.
#pragma once

#include "stages/batch_collect.hpp"
#include "stages/messages.hpp"
#include "stages/stage_stats.hpp"

#include <array>
#include <vector>

namespace flowinfer {

class Normalize {
public:
    Normalize(const std::vector<float>& mean, const std::vector<float>& std,
              BatchAssembler& assembler, StageCounter& counter);
    SlotFilled operator()(const Patch& patch) const;

private:
    std::array<float, 3> scale_{};  // 1 / (255 std)
    std::array<float, 3> bias_{};   // -mean / std
    BatchAssembler* assembler_;
    StageCounter* counter_;
};

// The same transform on one interleaved RGB patch into planar floats (exposed for tests
// and for the sequential baseline).
void normalize_rgb(const std::uint8_t* rgb, int pixels, const float scale[3], const float bias[3],
                   float* planar);

}  // namespace flowinfer
