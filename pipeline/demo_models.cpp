// Demo / test TorchScript models, built in C++ so no Python or downloaded weights are needed.
// Each one is a torch::jit::Module with registered tensors and a TorchScript forward(), saved
// as a regular TorchScript archive that torch.jit.load (C++ or Python) opens.
#include "pipeline/demo_models.hpp"

#include <flowinfer/demo.hpp>
#include <flowinfer/errors.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace flowinfer {

namespace {

using demo::DemoResolver;
using demo::WeightRng;

// The pointwise models document their output as [1 - m, m]; shared so they cannot drift.
constexpr const char* kPointwiseMean = R"JIT(
def forward(self, x):
    m = x.mean(dim=1, keepdim=True)
    return torch.cat([1.0 - m, m], 1)
)JIT";

// Tissue detector with hand-set weights (no training). On the un-normalized colour
// (r, g, b in [0, 1]) the score is chroma + darkness:
//   (r + b) / 2 - g  +  1 - (r + g + b) / 3  =  r / 6 - 4 g / 3 + b / 6 + 1
// about 0.04 on slide background (~245 grey) and 0.5 to 0.8 on eosin pink / haematoxylin
// purple. The 1x1 convolution folds the ImageNet normalization back in, so the model expects
// the demo's ImageNet mean/std input. A normalized 3x3 box filter smooths the score (dividing
// by the box over ones keeps patch borders unbiased by the zero padding), and a 1x1 head
// turns it into logits [-L/2, L/2] with L = gain * (score - threshold): softmax or sigmoid
// then gives p(tissue) > 0.5 exactly when the smoothed score passes the threshold.
constexpr float kTissueThreshold = 0.2f;
constexpr float kTissueGain = 20.0f;

constexpr const char* kTissue = R"JIT(
def forward(self, x):
    score = torch.conv2d(x, self.score_weight, self.score_bias)
    ones = torch.ones_like(score)
    smooth = torch.conv2d(score, self.box, None, [1, 1], [1, 1]) / torch.conv2d(ones, self.box, None, [1, 1], [1, 1])
    return torch.conv2d(smooth, self.head_weight, self.head_bias)
)JIT";

constexpr const char* kConstant = R"JIT(
def forward(self, x):
    one = torch.ones([x.size(0), 1, x.size(2), x.size(3)], dtype=x.dtype, device=x.device)
    return torch.cat([one * (1.0 - self.value), one * self.value], 1)
)JIT";

constexpr const char* kThrowAfter = R"JIT(
def forward(self, x):
    self.calls += 1
    if self.calls > self.successful_calls:
        raise Exception("flowinfer test model failure")
    m = x.mean(dim=1, keepdim=True)
    return torch.cat([1.0 - m, m], 1)
)JIT";

constexpr const char* kThrowAbove = R"JIT(
def forward(self, x):
    m = x.mean(dim=1, keepdim=True)
    if bool((m.mean(dim=[1, 2, 3]) > self.threshold).any()):
        raise Exception("flowinfer test model failure")
    return torch.cat([1.0 - m, m], 1)
)JIT";

constexpr const char* kWrongRank = R"JIT(
def forward(self, x):
    return x.mean(1)
)JIT";

constexpr const char* kDownscale = R"JIT(
def forward(self, x):
    m = x.mean(dim=1, keepdim=True)
    y = torch.cat([1.0 - m, m], 1)
    return torch.avg_pool2d(y, [self.factor, self.factor], [self.factor, self.factor])
)JIT";

// Patch-level classifier: one score pair per patch, for classification-task tests.
constexpr const char* kPatchClassifier = R"JIT(
def forward(self, x):
    m = x.mean(dim=[1, 2, 3]).unsqueeze(1)
    return torch.cat([1.0 - m, m], 1)
)JIT";

// Reveals how a batch was split into calls (models[].cpu_micro_batch): [B, m], B the number of
// patches in this call.
constexpr const char* kCallSize = R"JIT(
def forward(self, x):
    m = x.mean(dim=1, keepdim=True)
    return torch.cat([torch.ones_like(m) * x.size(0), m], 1)
)JIT";

// Returns its input: with activation none the output is the normalized patch itself.
constexpr const char* kIdentity = R"JIT(
def forward(self, x):
    return x
)JIT";

// A "boxes" detector whose box count is the call's batch size, as models that pad to their
// batch's largest count do: one box (0, 0, 8, 8) scoring the patch's mean, then zero rows.
constexpr const char* kRaggedBoxes = R"JIT(
def forward(self, x):
    B = x.size(0)
    out = torch.zeros([B, B, 6], dtype=x.dtype, device=x.device)
    out[:, 0, 2] = 8.0
    out[:, 0, 3] = 8.0
    out[:, 0, 4] = x.mean(dim=[1, 2, 3])
    return out
)JIT";

// Dark-disc detector with no trained weights, emitting the "boxes" detection format.
// The disc score is the share of dark pixels under a disc-shaped kernel of the expected
// radius: the correlation of a convex blob with a convex kernel has a single maximum, so a
// disc gives one peak (a tiny position ramp, smaller than one kernel pixel's share, breaks
// exact ties on plateaus). The box is not drawn around the peak with the nominal radius but
// measured from the dark mask's row/column projections in a window around the peak: a disc
// cut by the patch border then gets a box of exactly its visible part (the zero padding
// stands for "outside the patch"), which is what lets the slide-level merger join halves.
// It takes the run of dark rows (columns) nearest the peak rather than the run through it:
// the kernel covers a small piece in a patch corner from many centres, and the tie-break
// may pick one just off the piece. The confidence is the dark share of the box over a
// disc's share of its own bounding box (pi/4): a cut piece fills its clipped box about as a
// disc does, so it scores near 1 however little of it the patch shows. Everything runs in
// fp32: the ramp would vanish in fp16.
constexpr const char* kBlobDetector = R"JIT(
def forward(self, x):
    x = x.float()
    B = x.size(0)
    H = x.size(2)
    W = x.size(3)
    rad = self.radius
    dark = ((1.0 - x.mean(dim=1, keepdim=True)) > self.dark_threshold).float()
    k = self.kernel.to(x.device)
    score = torch.conv2d(dark, k, None, [1, 1], [rad, rad])
    ramp = torch.arange(H * W, device=x.device).float().reshape(1, 1, H, W) * (self.tie_step / (H * W))
    ranked = score + ramp
    pooled = torch.max_pool2d(ranked, [2 * rad + 1, 2 * rad + 1], [1, 1], [rad, rad])
    peaks = (ranked == pooled) & (score > self.peak_threshold)
    flat = torch.where(peaks, ranked, torch.zeros_like(ranked)).reshape(B, H * W)
    n = min(self.max_objects, H * W)
    vals, idx = torch.topk(flat, n, 1)
    py = torch.div(idx, W, rounding_mode="floor")
    px = idx - py * W
    R = 2 * rad + 2
    padded = torch.constant_pad_nd(dark, [R, R, R, R], 0.0).reshape(B, H + 2 * R, W + 2 * R)
    off = torch.arange(2 * R + 1, device=x.device)
    bi = torch.arange(B, device=x.device).reshape(B, 1, 1, 1)
    iy = (py.unsqueeze(2) + off.reshape(1, 1, 2 * R + 1)).unsqueeze(3)
    ix = (px.unsqueeze(2) + off.reshape(1, 1, 2 * R + 1)).unsqueeze(2)
    win = padded[bi, iy, ix]
    rows = win.amax(3) > 0.5
    cols = win.amax(2) > 0.5
    ylo, yhi = self.nearest_run(rows, R)
    xlo, xhi = self.nearest_run(cols, R)
    y1 = py - R + ylo
    y2 = py - R + yhi + 1
    x1 = px - R + xlo
    x2 = px - R + xhi + 1
    span = off.reshape(1, 1, 2 * R + 1)
    rin = ((span >= ylo.unsqueeze(2)) & (span <= yhi.unsqueeze(2))).float()
    cin = ((span >= xlo.unsqueeze(2)) & (span <= xhi.unsqueeze(2))).float()
    filled = (win * rin.unsqueeze(3) * cin.unsqueeze(2)).sum([2, 3])
    box_area = ((yhi - ylo + 1) * (xhi - xlo + 1)).float()
    conf = (filled / (box_area * self.disc_fill)).clamp(0.0, 1.0)
    valid = (vals > 0) & rows.any(2) & cols.any(2)
    out = torch.stack([x1.float(), y1.float(), x2.float(), y2.float(), conf, torch.zeros_like(conf)], 2)
    return out * valid.unsqueeze(2).float()

def nearest_run(self, v: Tensor, R: int) -> Tuple[Tensor, Tensor]:
    L = 2 * R + 1
    vi = v.long()
    prev = torch.constant_pad_nd(vi, [1, 0], 0)[:, :, :L]
    label = torch.cumsum(vi * (1 - prev), 2) * vi
    dist = (torch.arange(L, device=v.device) - R).abs() + (1 - vi) * (4 * L)
    want = label.gather(2, dist.argmin(2, keepdim=True))
    run = ((label == want) & v).float()
    lo = run.argmax(2)
    hi = (L - 1) - run.flip([2]).argmax(2)
    return lo, hi
)JIT";

// Benchmark models with fixed pseudo-random weights (no training; the light model's head is
// hand-set, see add_light_weights): they have to cost what a real model of their shape
// costs and keep their activations finite and O(1), in fp32
// and after module.to(torch::kHalf). Only ops with CUDA Half kernels are used (conv2d, relu,
// max_pool2d, upsample_nearest2d, cat).
//
// light (I/O-bound): conv 3->8 (3x3, pad 1) + relu, conv 8->2 (1x1): 232 MACs per pixel; its
// output is a tissue mask (see add_light_weights).
constexpr const char* kLight = R"JIT(
def forward(self, x):
    h = torch.relu(torch.conv2d(x, self.conv1_weight, self.conv1_bias, [1, 1], [1, 1]))
    return torch.conv2d(h, self.conv2_weight, self.conv2_bias)
)JIT";

// unet (compute-bound): 4 resolution levels with c, 2c, 4c, 8c channels (c = base), two 3x3
// conv + relu per level down and up, 2x2 max-pool down, nearest x2 upsample + concatenation
// with the skip on the way up, 1x1 head to 2 logits. H and W must be multiples of 8. (No
// batch norm: a trained one folds into the convolution's weight and bias anyway.)
// torch.nn.functional is out of reach of define(), so the upsample is the aten op itself,
// sized from the skip it is concatenated with.
constexpr const char* kUnet = R"JIT(
def forward(self, x):
    e1 = self.block(x, self.enc1_w1, self.enc1_b1, self.enc1_w2, self.enc1_b2)
    e2 = self.block(torch.max_pool2d(e1, [2, 2], [2, 2]), self.enc2_w1, self.enc2_b1, self.enc2_w2, self.enc2_b2)
    e3 = self.block(torch.max_pool2d(e2, [2, 2], [2, 2]), self.enc3_w1, self.enc3_b1, self.enc3_w2, self.enc3_b2)
    e4 = self.block(torch.max_pool2d(e3, [2, 2], [2, 2]), self.enc4_w1, self.enc4_b1, self.enc4_w2, self.enc4_b2)
    d3 = self.block(self.up_cat(e4, e3), self.dec3_w1, self.dec3_b1, self.dec3_w2, self.dec3_b2)
    d2 = self.block(self.up_cat(d3, e2), self.dec2_w1, self.dec2_b1, self.dec2_w2, self.dec2_b2)
    d1 = self.block(self.up_cat(d2, e1), self.dec1_w1, self.dec1_b1, self.dec1_w2, self.dec1_b2)
    return torch.conv2d(d1, self.head_weight, self.head_bias)

def block(self, x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
    x = torch.relu(torch.conv2d(x, w1, b1, [1, 1], [1, 1]))
    return torch.relu(torch.conv2d(x, w2, b2, [1, 1], [1, 1]))

def up_cat(self, x: Tensor, skip: Tensor) -> Tensor:
    up = torch.upsample_nearest2d(x, [skip.size(2), skip.size(3)])
    return torch.cat([up, skip], 1)
)JIT";

at::Tensor floats(std::initializer_list<float> values, at::IntArrayRef shape) {
    return torch::tensor(std::vector<float>(values), torch::kFloat).reshape(shape);
}

// The tissue score above as one linear map of the normalized input: weight per channel and
// bias (score = sum_c coef_c * (x_c * std_c + mean_c) + 1).
struct TissueScore {
    float weight[3];
    float bias;
};

TissueScore tissue_score() {
    const float mean[3] = {0.485f, 0.456f, 0.406f};
    const float std[3] = {0.229f, 0.224f, 0.225f};
    const float coef[3] = {1.0f / 6.0f, -4.0f / 3.0f, 1.0f / 6.0f};
    TissueScore t{{}, 1.0f};
    for (int c = 0; c < 3; ++c) {
        t.weight[c] = coef[c] * std[c];
        t.bias += coef[c] * mean[c];
    }
    return t;
}

void add_tissue_weights(torch::jit::Module& m) {
    const TissueScore t = tissue_score();
    m.register_parameter("score_weight", floats({t.weight[0], t.weight[1], t.weight[2]}, {1, 3, 1, 1}), false);
    m.register_parameter("score_bias", floats({t.bias}, {1}), false);
    m.register_buffer("box", torch::full({1, 1, 3, 3}, 1.0f / 9.0f, torch::kFloat));
    const float half = kTissueGain / 2.0f;
    m.register_parameter("head_weight", floats({-half, half}, {2, 1, 1, 1}), false);
    m.register_parameter("head_bias",
                         floats({half * kTissueThreshold, -half * kTissueThreshold}, {2}), false);
}

// Registers <name>_weight-style tensors `w` [out, in, k, k] and `b` [out]. The weights are
// uniform with variance gain / fan_in (gain 2: Kaiming for a following relu, which keeps the
// second moment of the activations through the layer; gain 1 for the linear head); the
// biases are small (+-0.05) so a layer is not purely linear-through-the-origin.
void add_conv(torch::jit::Module& m, WeightRng& rng, const std::string& w, const std::string& b,
              std::int64_t out, std::int64_t in, std::int64_t k, double gain) {
    const std::int64_t fan_in = in * k * k;
    const float bound = static_cast<float>(std::sqrt(3.0 * gain / static_cast<double>(fan_in)));
    std::vector<float> wv(static_cast<std::size_t>(out * fan_in));
    for (float& v : wv) v = bound * rng.symmetric();
    std::vector<float> bv(static_cast<std::size_t>(out));
    for (float& v : bv) v = 0.05f * rng.symmetric();
    m.register_parameter(w, torch::tensor(wv, torch::kFloat).reshape({out, in, k, k}), false);
    m.register_parameter(b, torch::tensor(bv, torch::kFloat), false);
}

// The light model's output is a tissue mask, not noise: feature 0 of the first convolution
// is the tissue score (centre tap only, so the zero padding at patch borders does not leak
// in) and the head reads only it, with logits +-(G/2) (score - threshold). The other seven
// features keep random weights and cost what real features cost. Why: a trained model's map
// is mostly flat with edges, which deflate shrinks many times over; random weights made a
// white-noise map that deflate shrank only 1.9x, so the benchmark timed writing a map no
// real model produces (about 10% of the light model's run on 2 cores).
constexpr float kLightGain = 100.0f;

void add_light_weights(torch::jit::Module& m) {
    WeightRng rng(0x6C69676874ull);  // "light"
    add_conv(m, rng, "conv1_weight", "conv1_bias", 8, 3, 3, 2.0);
    const TissueScore t = tissue_score();
    {
        torch::NoGradGuard no_grad;
        at::Tensor w = m.attr("conv1_weight").toTensor();
        w[0].zero_();
        for (int c = 0; c < 3; ++c) w[0][c][1][1] = t.weight[c];
        m.attr("conv1_bias").toTensor()[0] = t.bias;
    }
    const float half = kLightGain / 2.0f;
    std::vector<float> head(2 * 8, 0.0f);
    head[0 * 8] = -half;
    head[1 * 8] = half;
    m.register_parameter("conv2_weight", torch::tensor(head, torch::kFloat).reshape({2, 8, 1, 1}), false);
    m.register_parameter("conv2_bias", floats({half * kTissueThreshold, -half * kTissueThreshold}, {2}), false);
}

void add_unet_weights(torch::jit::Module& m, std::int64_t base) {
    WeightRng rng(0x756E6574ull + static_cast<std::uint64_t>(base));  // "unet"
    const std::int64_t c[4] = {base, 2 * base, 4 * base, 8 * base};
    std::int64_t in = 3;
    for (int l = 0; l < 4; ++l) {
        const std::string p = fmt::format("enc{}_", l + 1);
        add_conv(m, rng, p + "w1", p + "b1", c[l], in, 3, 2.0);
        add_conv(m, rng, p + "w2", p + "b2", c[l], c[l], 3, 2.0);
        in = c[l];
    }
    for (int l = 2; l >= 0; --l) {
        // Input: the upsampled level below (c[l + 1] channels) and the skip (c[l]).
        const std::string p = fmt::format("dec{}_", l + 1);
        add_conv(m, rng, p + "w1", p + "b1", c[l], c[l + 1] + c[l], 3, 2.0);
        add_conv(m, rng, p + "w2", p + "b2", c[l], c[l], 3, 2.0);
    }
    add_conv(m, rng, "head_weight", "head_bias", 2, c[0], 1, 1.0);
}

void check_param(const std::string& path, DemoModel kind, float param) {
    if (demo::is_encoder(kind)) return demo::check_encoder_param(path, kind, param);
    if (kind == DemoModel::throw_after && !(param >= 0.0f && param == std::floor(param)))
        throw Error(fmt::format("demo model {}: throw_after needs a whole number of successful "
                                "calls >= 0, got {}",
                                path, param));
    if (kind == DemoModel::blob_detector && !(param >= 0.0f && param <= 256.0f))
        throw Error(fmt::format("demo model {}: blob_detector needs a disc radius in [0, 256] "
                                "(0: 8), got {}",
                                path, param));
    if (kind == DemoModel::downscale && !(param >= 1.0f && param == std::floor(param)))
        throw Error(fmt::format("demo model {}: downscale needs a whole factor >= 1, got {}", path,
                                param));
    if (kind == DemoModel::unet &&
        !(param == 0.0f || (param >= 16.0f && param <= 64.0f && param == std::floor(param))))
        throw Error(fmt::format("demo model {}: unet needs a whole number of base channels in "
                                "[16, 64] (0: 16), got {}",
                                path, param));
}

torch::jit::Module build(DemoModel kind, float param) {
    if (demo::is_encoder(kind)) return demo::build_encoder(kind, param);
    if (demo::is_layout_model(kind)) return demo::build_layout_model(kind);
    torch::jit::Module m("__torch__.flowinfer.DemoModel");
    switch (kind) {
        case DemoModel::tissue:
            add_tissue_weights(m);
            m.define(kTissue);
            break;
        case DemoModel::pointwise_mean:
            m.define(kPointwiseMean);
            break;
        case DemoModel::constant:
            m.register_attribute("value", c10::FloatType::get(), static_cast<double>(param));
            m.define(kConstant);
            break;
        case DemoModel::throw_after:
            m.register_attribute("calls", c10::IntType::get(), int64_t{0});
            m.register_attribute("successful_calls", c10::IntType::get(),
                                 static_cast<int64_t>(param));
            m.define(kThrowAfter, std::make_shared<DemoResolver>());
            break;
        case DemoModel::throw_above:
            m.register_attribute("threshold", c10::FloatType::get(), static_cast<double>(param));
            m.define(kThrowAbove, std::make_shared<DemoResolver>());
            break;
        case DemoModel::wrong_rank:
            m.define(kWrongRank);
            break;
        case DemoModel::downscale:
            m.register_attribute("factor", c10::IntType::get(), static_cast<int64_t>(param));
            m.define(kDownscale);
            break;
        case DemoModel::blob_detector: {
            const double r = param > 0.0f ? static_cast<double>(param) : 8.0;
            const int rad = std::max(1, static_cast<int>(std::ceil(r)));
            // Disc-shaped averaging kernel: weights sum to 1, so the score is the dark share.
            at::Tensor kernel = torch::zeros({1, 1, 2 * rad + 1, 2 * rad + 1}, torch::kFloat);
            auto acc = kernel.accessor<float, 4>();
            int count = 0;
            for (int dy = -rad; dy <= rad; ++dy)
                for (int dx = -rad; dx <= rad; ++dx)
                    if (dx * dx + dy * dy <= r * r) {
                        acc[0][0][dy + rad][dx + rad] = 1.0f;
                        ++count;
                    }
            kernel /= static_cast<float>(count);
            m.register_buffer("kernel", kernel);
            m.register_attribute("radius", c10::IntType::get(), static_cast<int64_t>(rad));
            // Half the darkness of the demo discs (mean (60+30+110)/3 on white): the mask edge
            // then sits on the disc's anti-aliased rim.
            m.register_attribute("dark_threshold", c10::FloatType::get(), 0.37);
            // A visible part under a tenth of the kernel is too little to call a disc.
            m.register_attribute("peak_threshold", c10::FloatType::get(), 0.1);
            // Below the 1/count step between distinct scores, so it only breaks exact ties.
            m.register_attribute("tie_step", c10::FloatType::get(), 0.5 / count);
            m.register_attribute("max_objects", c10::IntType::get(), int64_t{64});
            m.register_attribute("disc_fill", c10::FloatType::get(), 0.7853981633974483);
            m.define(kBlobDetector);
            break;
        }
        case DemoModel::patch_classifier:
            m.define(kPatchClassifier);
            break;
        case DemoModel::call_size:
            m.define(kCallSize);
            break;
        case DemoModel::ragged_boxes:
            m.define(kRaggedBoxes);
            break;
        case DemoModel::identity:
            m.define(kIdentity);
            break;
        case DemoModel::light:
            add_light_weights(m);
            m.define(kLight);
            break;
        case DemoModel::unet:
            add_unet_weights(m, param > 0.0f ? static_cast<std::int64_t>(param) : 16);
            m.define(kUnet);
            break;
        default:  // the encoders and layout models, built above
            break;
    }
    m.eval();
    return m;
}

// What each kind says about itself in its flowinfer.json (README, "Models"): the keys that are
// the model's nature. The test utilities (pointwise_mean, throw_after, ...) serve several
// tasks and say nothing.
std::string metadata_of(DemoModel kind) {
    switch (kind) {
        case DemoModel::tissue:
        case DemoModel::light:
        case DemoModel::unet: return R"({"task": "segmentation"})";
        case DemoModel::patch_classifier: return R"({"task": "classification"})";
        case DemoModel::blob_detector:
        case DemoModel::ragged_boxes: return R"({"task": "detection", "detection_format": "boxes"})";
        case DemoModel::mean_features:
        case DemoModel::mean_features_pooled:
        case DemoModel::empty_features: return R"({"task": "embedding"})";
        case DemoModel::vit_small:
            return R"({"task": "embedding", "patch_size": 224, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]})";
        case DemoModel::one_channel: return R"({"channels": "gray", "mean": [0], "std": [1]})";
        case DemoModel::dict_output: return R"({"output": "seg"})";
        case DemoModel::tuple_output: return R"({"output": 1})";
        case DemoModel::nhwc_mean: return R"({"output_layout": "nhwc"})";
        default: return "";
    }
}

}  // namespace

void write_demo_model(const std::string& path, DemoModel kind, float param) {
    write_demo_model(path, kind, param, metadata_of(kind));
}

void write_demo_model(const std::string& path, DemoModel kind, float param, const std::string& flowinfer_json) {
    check_param(path, kind, param);
    // Building the weights is not training: keep autograd out of it.
    torch::NoGradGuard no_grad;
    try {
        torch::jit::ExtraFilesMap extra;
        if (!flowinfer_json.empty()) extra["flowinfer.json"] = flowinfer_json;
        build(kind, param).save(path, extra);
    } catch (const c10::Error& e) {
        throw OutputError(path, fmt::format("cannot write demo model: {}", e.what_without_backtrace()));
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        throw OutputError(path, fmt::format("cannot write demo model: {}", e.what()));
    }
}

}  // namespace flowinfer
