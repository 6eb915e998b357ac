#include "stages/normalize.hpp"

namespace flowinfer {

Normalize::Target Normalize::target(BatchAssembler& assembler, const BatchGroup& group) {
    Target t;
    t.assembler = &assembler;
    for (int c = 0; c < 3; ++c) {
        t.scale[c] = 1.0f / (255.0f * group.std[c]);
        t.bias[c] = -group.mean[c] / group.std[c];
    }
    return t;
}

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
    for (const Target& t : (*targets_)[patch.key.group]) {
        Slot slot = t.assembler->reserve(patch);
        // Failed slides and placeholders carry no pixels; infer skips such batches.
        if (!patch.rgb.empty()) {
            const int n = slot.batch->patch_size;
            const std::size_t values = static_cast<std::size_t>(3) * n * n;
            if (slot.batch->rgb)  // normalized on the device
                std::copy(patch.rgb.begin(), patch.rgb.end(), slot.batch->rgb.get() + slot.index * values);
            else
                normalize_rgb(patch.rgb.data(), n * n, t.scale.data(), t.bias.data(),
                              slot.batch->floats.get() + slot.index * values);
        }
        out.push_back(SlotFilled{std::move(slot.batch)});
    }
    return out;
}

}  // namespace flowinfer
