#include "stages/normalize.hpp"

#include <flowinfer/errors.hpp>

#include <fmt/format.h>

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

namespace {
// ITU-R BT.601 luma, as torchvision's rgb_to_grayscale and PIL's "L" weigh R, G and B.
constexpr float kLumaWeights[3] = {0.299f, 0.587f, 0.114f};
}  // namespace

void normalize_channels(const std::uint8_t* rgb, int pixels, const std::vector<int>& channels, const float* scale,
                        const float* bias, float* planar) {
    for (std::size_t c = 0; c < channels.size(); ++c) {
        float* out = planar + c * static_cast<std::size_t>(pixels);
        const float s = scale[c], b = bias[c];
        if (channels[c] == kLuma) {
            for (int i = 0; i < pixels; ++i)
                out[i] = (kLumaWeights[0] * rgb[3 * i] + kLumaWeights[1] * rgb[3 * i + 1] + kLumaWeights[2] * rgb[3 * i + 2]) * s + b;
        } else {
            const std::uint8_t* in = rgb + channels[c];
            for (int i = 0; i < pixels; ++i) out[i] = in[3 * i] * s + b;
        }
    }
}

std::vector<float> channel_weights(const std::vector<int>& channels, const std::vector<float>& scale) {
    std::vector<float> w(channels.size() * 3, 0.0f);
    for (std::size_t c = 0; c < channels.size(); ++c)
        for (int k = 0; k < 3; ++k)
            w[3 * c + static_cast<std::size_t>(k)] =
                (channels[c] == kLuma ? kLumaWeights[k] : (channels[c] == k ? 1.0f : 0.0f)) * scale[c];
    return w;
}

void check_channels(const ModelConfig& model) {
    const std::size_t n = model.channels.size();
    if (n < 1 || n > 16)
        throw ModelError(model.name, fmt::format("channels lists {} input channels; 1 to 16 are possible", n));
    for (int ch : model.channels)
        if (ch != kLuma && (ch < 0 || ch > 2))
            throw ModelError(model.name, fmt::format("channels holds {}: an input channel is 0 (R), 1 (G), 2 (B) or luma", ch));
    if (model.mean.size() != n || model.std.size() != n)
        throw ModelError(model.name, fmt::format("mean and std have {} and {} values for {} input channel(s) ({}): one "
                                                 "value per channel",
                                                 model.mean.size(), model.std.size(), n, channels_name(model.channels)));
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
