// Demo / test TorchScript models, built in C++ so no Python or downloaded weights are needed.
// Each one is a torch::jit::Module with registered tensors and a TorchScript forward(), saved
// as a regular TorchScript archive that torch.jit.load (C++ or Python) opens.
#include <flowinfer/demo.hpp>
#include <flowinfer/errors.hpp>

#include <torch/csrc/jit/frontend/resolver.h>
#include <torch/csrc/jit/frontend/sugared_value.h>
#include <torch/script.h>

#include <fmt/format.h>

#include <cmath>
#include <string>

namespace flowinfer {

namespace {

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

// Module::define() without Python only knows `torch`; `raise Exception(...)` needs the
// builtin exception too (the Python frontend gets it from its own resolver).
struct DemoResolver : torch::jit::Resolver {
    std::shared_ptr<torch::jit::SugaredValue> resolveValue(const std::string& name,
                                                           torch::jit::GraphFunction& m,
                                                           const torch::jit::SourceRange& loc) override {
        if (name == "Exception") return std::make_shared<torch::jit::ExceptionValue>(name);
        return torch::jit::nativeResolver()->resolveValue(name, m, loc);
    }
    c10::TypePtr resolveType(const std::string& name, const torch::jit::SourceRange& loc) override {
        return torch::jit::nativeResolver()->resolveType(name, loc);
    }
};

at::Tensor floats(std::initializer_list<float> values, at::IntArrayRef shape) {
    return torch::tensor(std::vector<float>(values), torch::kFloat).reshape(shape);
}

void add_tissue_weights(torch::jit::Module& m) {
    const float mean[3] = {0.485f, 0.456f, 0.406f};
    const float std[3] = {0.229f, 0.224f, 0.225f};
    const float coef[3] = {1.0f / 6.0f, -4.0f / 3.0f, 1.0f / 6.0f};
    // score = sum_c coef_c * (x_c * std_c + mean_c) + 1
    float bias = 1.0f;
    for (int c = 0; c < 3; ++c) bias += coef[c] * mean[c];
    m.register_parameter("score_weight",
                         floats({coef[0] * std[0], coef[1] * std[1], coef[2] * std[2]}, {1, 3, 1, 1}),
                         false);
    m.register_parameter("score_bias", floats({bias}, {1}), false);
    m.register_buffer("box", torch::full({1, 1, 3, 3}, 1.0f / 9.0f, torch::kFloat));
    const float half = kTissueGain / 2.0f;
    m.register_parameter("head_weight", floats({-half, half}, {2, 1, 1, 1}), false);
    m.register_parameter("head_bias",
                         floats({half * kTissueThreshold, -half * kTissueThreshold}, {2}), false);
}

void check_param(const std::string& path, DemoModel kind, float param) {
    if (kind == DemoModel::throw_after && !(param >= 0.0f && param == std::floor(param)))
        throw Error(fmt::format("demo model {}: throw_after needs a whole number of successful "
                                "calls >= 0, got {}",
                                path, param));
    if (kind == DemoModel::downscale && !(param >= 1.0f && param == std::floor(param)))
        throw Error(fmt::format("demo model {}: downscale needs a whole factor >= 1, got {}", path,
                                param));
}

torch::jit::Module build(DemoModel kind, float param) {
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
        case DemoModel::wrong_rank:
            m.define(kWrongRank);
            break;
        case DemoModel::downscale:
            m.register_attribute("factor", c10::IntType::get(), static_cast<int64_t>(param));
            m.define(kDownscale);
            break;
    }
    m.eval();
    return m;
}

}  // namespace

void write_demo_model(const std::string& path, DemoModel kind, float param) {
    check_param(path, kind, param);
    // Building the weights is not training: keep autograd out of it.
    torch::NoGradGuard no_grad;
    try {
        build(kind, param).save(path);
    } catch (const c10::Error& e) {
        throw OutputError(path, fmt::format("cannot write demo model: {}", e.what_without_backtrace()));
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        throw OutputError(path, fmt::format("cannot write demo model: {}", e.what()));
    }
}

}  // namespace flowinfer
