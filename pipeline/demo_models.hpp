// What the demo-model builders share (pipeline/demo_models.cpp, pipeline/demo_encoders.cpp):
// LibTorch files only, like them.
//
// Thread safety: WeightRng is not shared between threads; the builders are reentrant.
#pragma once

#include <flowinfer/demo.hpp>

#include <torch/csrc/jit/frontend/resolver.h>
#include <torch/csrc/jit/frontend/sugared_value.h>
#include <torch/script.h>

#include <cstdint>

namespace flowinfer::demo {

// Deterministic weights without touching torch's global generator (write_demo_model() is
// reentrant): splitmix64, the same numbers on every platform and every run.
class WeightRng {
public:
    explicit WeightRng(std::uint64_t seed) : state_(seed) {}
    // Uniform in [-1, 1).
    float symmetric() {
        std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        return static_cast<float>(static_cast<double>(z >> 11) * 0x1.0p-52 - 1.0);
    }

private:
    std::uint64_t state_;
};

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

// The embedding-task kinds (pipeline/demo_encoders.cpp): mean_features, mean_features_pooled,
// empty_features and vit_small. check_encoder_param throws Error for a `param` the kind does
// not take.
bool is_encoder(DemoModel kind);
void check_encoder_param(const std::string& path, DemoModel kind, float param);
torch::jit::Module build_encoder(DemoModel kind, float param);

// The kinds shaped like models from the field (pipeline/demo_layouts.cpp): one_channel,
// dict_output, tuple_output, nhwc_mean.
bool is_layout_model(DemoModel kind);
torch::jit::Module build_layout_model(DemoModel kind);

}  // namespace flowinfer::demo
