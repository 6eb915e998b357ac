// TorchScript model runner (LibTorch behind a pimpl: this header includes no torch).
//
// Thread safety: run() may be called concurrently with distinct `slot` values in
// [0, slots()); calls with the same slot must not overlap. host_buffer() is thread-safe.
#pragma once

#include <flowinfer/config.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace flowinfer {

struct ModelOutput {
    int n = 0, c = 0, h = 0, w = 0;
    std::vector<float> data;  // [n, c, h, w], after the activation, float32, host memory
};

struct DeviceInfo {
    std::string device;      // "cpu" or "cuda:N"
    std::string precision;   // "fp32" | "fp16" | "bf16"
    int torch_threads = 0;   // intra-op threads in effect
    int slots = 1;
};

class Model {
public:
    // Loads cfg.path with torch::jit::load (eval, InferenceMode). device: "cpu" | "cuda" |
    // "cuda:N". torch_threads > 0 sets LibTorch's intra-op threads. slots: concurrent infer
    // calls (0: 1 on CPU, 2 on CUDA). Throws ModelError (missing/invalid file, CUDA asked for
    // in a CPU-only build or with no GPU, bf16/fp16 on CPU).
    Model(const ModelConfig& cfg, const std::string& device, int torch_threads, int slots);
    ~Model();
    Model(const Model&) = delete;
    Model& operator=(const Model&) = delete;

    // A host buffer of `count` floats for a batch (pinned when the model runs on CUDA).
    std::shared_ptr<float> host_buffer(std::size_t count) const;

    // Runs the model on `n` patches: input [n, 3, h, w] float32 contiguous (already
    // normalized). Applies the configured activation over the channel dim. Validates the
    // output: rank 4, batch n, h and w divide the input's by the same integer factor.
    // Throws ModelError carrying the model's name and the original message.
    ModelOutput run(const float* input, int n, int h, int w, int slot);

    int slots() const;
    const DeviceInfo& info() const;
    const std::string& name() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace flowinfer
