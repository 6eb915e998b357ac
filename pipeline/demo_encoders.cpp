// Demo encoders for task embedding, built with torch::jit::Module::define like the other demo
// models: an exact "mean colour" encoder the tests check against an independent computation,
// broken ones for the error paths, and a ViT-S/16-like foundation-model stand-in for the
// benchmark (random weights: it costs what a ViT-S costs; its features mean nothing).
#include "pipeline/demo_models.hpp"

#include <flowinfer/errors.hpp>

#include <fmt/format.h>

#include <cmath>
#include <vector>

namespace flowinfer::demo {

namespace {

// Feature j is the mean of input channel j % 3 over the patch: with mean 0 and std 1 that is
// the mean of R, G or B over 255, which a test recomputes from the slide.
constexpr const char* kMeanFeatures = R"JIT(
def forward(self, x):
    return x.mean(dim=[2, 3]).index_select(1, self.channel)
)JIT";

constexpr const char* kMeanFeaturesPooled = R"JIT(
def forward(self, x):
    return x.mean(dim=[2, 3]).index_select(1, self.channel).unsqueeze(2).unsqueeze(3)
)JIT";

constexpr const char* kEmptyFeatures = R"JIT(
def forward(self, x):
    return x.mean(dim=[2, 3])[:, :0]
)JIT";

// ViT-S/16 as timm's vit_small_patch16_224 computes it (pre-norm blocks, class token, learned
// position embedding, GELU MLP of 4x, final LayerNorm, the class token's features out), with
// attention written as matmul and softmax so LibTorch 1.13, which has no
// scaled_dot_product_attention, runs it. The 12 blocks' weights are stacked along a first
// dimension of 12 so one loop runs them; linear weights are stored [in, out] for matmul.
constexpr int kVitDim = 384, kVitHeads = 6, kVitDepth = 12, kVitPatch = 16, kVitSize = 224;
constexpr const char* kVitSmall = R"JIT(
def forward(self, x):
    if x.size(2) != 224 or x.size(3) != 224:
        raise Exception("vit_small takes 224 x 224 patches: set patch_size = 224")
    B = x.size(0)
    t = torch.conv2d(x, self.patch_w, self.patch_b, [16, 16]).flatten(2).transpose(1, 2)
    t = torch.cat([self.cls_token.expand(B, -1, -1), t], 1) + self.pos_embed
    N = t.size(1)
    for i in range(12):
        h = torch.layer_norm(t, [384], self.ln1_w[i], self.ln1_b[i], 1e-6)
        qkv = (torch.matmul(h, self.qkv_w[i]) + self.qkv_b[i]).reshape(B, N, 3, 6, 64).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(torch.matmul(qkv[0], qkv[1].transpose(-2, -1)) * 0.125, -1)
        o = torch.matmul(attn, qkv[2]).transpose(1, 2).reshape(B, N, 384)
        t = t + torch.matmul(o, self.proj_w[i]) + self.proj_b[i]
        h = torch.layer_norm(t, [384], self.ln2_w[i], self.ln2_b[i], 1e-6)
        h = torch.gelu(torch.matmul(h, self.fc1_w[i]) + self.fc1_b[i])
        t = t + torch.matmul(h, self.fc2_w[i]) + self.fc2_b[i]
    t = torch.layer_norm(t, [384], self.norm_w, self.norm_b, 1e-6)
    return t[:, 0]
)JIT";

// timm's initialization scale (truncated normal, std 0.02) as a uniform of the same variance.
at::Tensor random(WeightRng& rng, std::vector<std::int64_t> shape, double std = 0.02) {
    std::int64_t n = 1;
    for (std::int64_t d : shape) n *= d;
    const float bound = static_cast<float>(std * std::sqrt(3.0));
    std::vector<float> v(static_cast<std::size_t>(n));
    for (float& x : v) x = bound * rng.symmetric();
    return torch::tensor(v, torch::kFloat).reshape(shape);
}

void add_vit_weights(torch::jit::Module& m) {
    WeightRng rng(0x7669745F73ull);  // "vit_s"
    const std::int64_t D = kVitDim, L = kVitDepth, P = kVitPatch, T = (kVitSize / P) * (kVitSize / P) + 1;
    const auto param = [&m](const char* name, at::Tensor t) { m.register_parameter(name, std::move(t), false); };
    param("patch_w", random(rng, {D, 3, P, P}));
    param("patch_b", torch::zeros({D}));
    param("cls_token", random(rng, {1, 1, D}));
    param("pos_embed", random(rng, {1, T, D}));
    for (const char* n : {"ln1_w", "ln2_w"}) param(n, torch::ones({L, D}));
    for (const char* n : {"ln1_b", "ln2_b", "proj_b", "fc2_b"}) param(n, torch::zeros({L, D}));
    param("qkv_w", random(rng, {L, D, 3 * D}));
    param("qkv_b", torch::zeros({L, 3 * D}));
    param("proj_w", random(rng, {L, D, D}));
    param("fc1_w", random(rng, {L, D, 4 * D}));
    param("fc1_b", torch::zeros({L, 4 * D}));
    param("fc2_w", random(rng, {L, 4 * D, D}));
    param("norm_w", torch::ones({D}));
    param("norm_b", torch::zeros({D}));
}

std::int64_t feature_count(float param) { return param > 0.0f ? static_cast<std::int64_t>(param) : 3; }

}  // namespace

bool is_encoder(DemoModel kind) {
    return kind == DemoModel::mean_features || kind == DemoModel::mean_features_pooled ||
           kind == DemoModel::empty_features || kind == DemoModel::vit_small;
}

void check_encoder_param(const std::string& path, DemoModel kind, float param) {
    const bool mean = kind == DemoModel::mean_features || kind == DemoModel::mean_features_pooled;
    if (mean && !(param >= 0.0f && param <= 65536.0f && param == std::floor(param)))
        throw Error(fmt::format("demo model {}: mean_features needs a whole number of features in [1, 65536] "
                                "(0: 3), got {}",
                                path, param));
    if (!mean && param != 0.0f)
        throw Error(fmt::format("demo model {}: this kind takes no --param, got {}", path, param));
}

torch::jit::Module build_encoder(DemoModel kind, float param) {
    torch::jit::Module m("__torch__.flowinfer.DemoEncoder");
    switch (kind) {
        case DemoModel::mean_features:
        case DemoModel::mean_features_pooled:
            m.register_buffer("channel", torch::arange(feature_count(param), torch::kLong).remainder(3));
            m.define(kind == DemoModel::mean_features ? kMeanFeatures : kMeanFeaturesPooled);
            break;
        case DemoModel::empty_features:
            m.define(kEmptyFeatures);
            break;
        case DemoModel::vit_small:
            static_assert(kVitDim == kVitHeads * 64, "kVitSmall hard-codes 6 heads of 64 and scale 64^-0.5");
            add_vit_weights(m);
            m.define(kVitSmall, std::make_shared<DemoResolver>());
            break;
        default:
            throw Error(fmt::format("demo model kind {} is not an encoder", static_cast<int>(kind)));
    }
    m.eval();
    return m;
}

}  // namespace flowinfer::demo
