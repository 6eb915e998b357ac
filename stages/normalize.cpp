#include "stages/normalize.hpp"

#include <algorithm>

namespace flowinfer {

void normalize_rgb(const std::uint8_t* rgb, int pixels, const float scale[3], const float bias[3],
                   float* planar) {
    float* r = planar;
    float* g = planar + pixels;
    float* b = planar + 2 * pixels;
    for (int i = 0; i < pixels; ++i) {
        r[i] = rgb[3 * i] * scale[0] + bias[0];
        g[i] = rgb[3 * i + 1] * scale[1] + bias[1];
        b[i] = rgb[3 * i + 2] * scale[2] + bias[2];
    }
}

std::vector<SlotFilled> Normalize::operator()(const Patch& patch) const {
    BusyScope busy(*counter_);
    std::vector<SlotFilled> out;
    for (BatchAssembler* assembler : (*assemblers_)[patch.key.group]) {
        Slot slot = assembler->reserve(patch);
        // Failed slides and placeholders carry no pixels; infer skips such batches.
        if (!patch.rgb.empty())
            std::copy(patch.rgb.begin(), patch.rgb.end(), slot.batch->rgb.get() + slot.index * patch.rgb.size());
        out.push_back(SlotFilled{std::move(slot.batch)});
    }
    return out;
}

}  // namespace flowinfer
