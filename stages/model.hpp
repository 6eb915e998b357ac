// TorchScript model runner (LibTorch behind a pimpl: this header includes no torch).
//
// Thread safety: run() / run_rgb() may be called concurrently with distinct `slot` values in
// [0, slots()); calls with the same slot must not overlap. host_buffer() and host_bytes() are
// thread-safe, and their buffers may outlive the Model.
//
// Devices: "cpu", "cuda:N", or "cuda" for every visible GPU (one module copy and `slots`
// streams per GPU; slot k runs on GPU k % count).
#pragma once

#include <flowinfer/config.hpp>
#include <flowinfer/errors.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace flowinfer {

// The model's output as float32 host memory, after the activation (segmentation and
// classification). `shape` is the full shape; n, c, h, w name its dims where the task has
// them: segmentation [n, c, h, w], classification [n, c], detection [n, d1, d2], embedding
// [n, c] (c = D features).
struct ModelOutput {
    std::vector<std::int64_t> shape;
    int n = 0, c = 0, h = 0, w = 0;
    std::vector<float> data;
};

struct DeviceInfo {
    std::string device;      // "cpu" or "cuda:N"
    std::string precision;   // "fp32" | "fp16" | "bf16"
    int torch_threads = 0;   // intra-op threads in effect
    int slots = 1;
};

// CUDA GPUs this process can use: 0 in a CPU-only build, and 0 where a CUDA build finds no
// GPU or no driver (as on CI's machines). Thread-safe.
int cuda_device_count();

// The LibTorch this build runs ("1.13.1", "2.11.0").
std::string libtorch_version();

// A model that does not fit one of its model keys (output, output_layout, channels): a run
// reports it as a config error on models[i].<key> (pipeline/graph.cpp).
class ModelSettingError : public ModelError {
public:
    ModelSettingError(std::string model, std::string key, std::string problem)
        : ModelError(std::move(model), problem), key_(std::move(key)), problem_(std::move(problem)) {}
    const std::string& key() const noexcept { return key_; }
    const std::string& problem() const noexcept { return problem_; }

private:
    std::string key_, problem_;
};

// One all-zero patch through the model, for `flowinfer inspect`: what forward() returned
// (describe_output's words) and the shape of the tensor models[].output selects.
struct TrialRun {
    bool ok = false;
    std::string error;   // forward's own message, or why the selection does not fit
    std::string result;  // "Tensor [1, 2, 256, 256]", "dict {...}", ...
    std::vector<std::int64_t> selected;
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

    // Host buffers for a batch: `count` floats or bytes, from a pool (freed buffers are
    // reused), pinned when the model runs on CUDA.
    std::shared_ptr<float> host_buffer(std::size_t count) const;
    std::shared_ptr<std::uint8_t> host_bytes(std::size_t count) const;
    // Buffers the pool has allocated so far (a buffer handed out again is not counted), and
    // whether `p` lies in page-locked memory (always false on CPU).
    std::size_t host_allocations() const;
    bool host_pinned(const void* p) const;

    // Runs the model on `n` patches: input [n, 3, h, w] float32 contiguous (already
    // normalized). Validates the output for the model's task (check_output_shape in
    // stages/output_shape.hpp) and applies the configured activation over dim 1 (not for
    // detection and embedding; an embedding's [n, D, 1, 1] comes back as [n, D]). Throws
    // ModelError carrying the model's name and the original message.
    ModelOutput run(const float* input, int n, int h, int w, int slot);
    // The same from uint8 RGB [n, h, w, 3] (interleaved, as read; the pipeline's batches):
    // normalized with the model's mean and std where the model runs (on the device for CUDA).
    ModelOutput run_rgb(const std::uint8_t* rgb, int n, int h, int w, int slot);

    // Runs an all-zero batch through every slot (CUDA: cuDNN autotuning for this shape); on
    // CPU one call of one micro-batch (oneDNN builds its kernels per shape).
    void warm_up(int batch, int patch_size);

    // Runs one all-zero patch of `patch_size` through the model (slot 0) and returns its
    // output: learns the output geometry and validates it before any slide is read. A model
    // whose first layer wants another number of input channels than models[].channels gives
    // throws ModelSettingError on "channels", saying how many it wants.
    ModelOutput probe(int patch_size);

    // One all-zero batch of 1 x `channels` x `size` x `size` (slot 0), whatever the model's
    // config says; never throws for what the model does (TrialRun::error).
    TrialRun trial(int channels, int size);

    int slots() const;
    const DeviceInfo& info() const;
    const std::string& name() const;

private:
    ModelOutput run_any(const void* input, bool rgb, int n, int h, int w, int slot);
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace flowinfer
