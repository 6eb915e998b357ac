#include "stages/normalize.hpp"

namespace flowinfer {

Normalize::Normalize(const std::vector<float>& mean, const std::vector<float>& std,
                     BatchAssembler& assembler, StageCounter& counter)
    : assembler_(&assembler), counter_(&counter) {
    for (int c = 0; c < 3; ++c) {
        scale_[c] = 1.0f / (255.0f * std[c]);
        bias_[c] = -mean[c] / std[c];
    }
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

SlotFilled Normalize::operator()(const Patch& patch) const {
    BusyScope busy(*counter_);
    Slot slot = assembler_->reserve(patch.ctx, patch.key);
    // A failed slide's patches carry no pixels; its batches are skipped by infer.
    if (!patch.rgb.empty()) {
        const int n = slot.batch->patch_size;
        const int pixels = n * n;
        normalize_rgb(patch.rgb.data(), pixels, scale_.data(), bias_.data(),
                      slot.batch->data.get() + static_cast<std::size_t>(slot.index) * 3 * pixels);
    }
    return SlotFilled{std::move(slot.batch)};
}

}  // namespace flowinfer
