// TorchScript model runner. One of the only two files that include LibTorch: the pimpl keeps
// torch out of model.hpp so the rest of the project compiles fast and stays torch-free.
#include "stages/model.hpp"

#include <flowinfer/errors.hpp>

#include <ATen/Parallel.h>
#include <torch/csrc/api/include/torch/cuda.h>
#include <torch/script.h>

#ifdef FLOWINFER_WITH_CUDA
// Debian's libtorch-dev ships the c10/cuda headers without their CMake-generated
// cuda_cmake_macros.h (it only sets Windows DLL export flags); skipping it where it is absent
// lets the compile-only CUDA check build against those headers.
#if !__has_include(<c10/cuda/impl/cuda_cmake_macros.h>) && !defined(C10_CUDA_NO_CMAKE_CONFIGURE_FILE)
#define C10_CUDA_NO_CMAKE_CONFIGURE_FILE
#endif
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <exception>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace flowinfer {

namespace {

struct DeviceSpec {
    bool cuda = false;
    int index = 0;
};

DeviceSpec parse_device(const std::string& model, const std::string& device) {
    if (device == "cpu") return {};
    if (device == "cuda") return {true, 0};
    const std::string prefix = "cuda:";
    if (device.size() > prefix.size() && device.compare(0, prefix.size(), prefix) == 0) {
        const std::string digits = device.substr(prefix.size());
        bool all_digits = digits.size() <= 4 && std::all_of(digits.begin(), digits.end(), [](char c) {
                              return std::isdigit(static_cast<unsigned char>(c)) != 0;
                          });
        if (all_digits) return {true, std::stoi(digits)};
    }
    throw ModelError(model, fmt::format("unknown device '{}'; expected cpu, cuda or cuda:N", device));
}

// Local rather than to_string(Precision): keeps this file linkable without the config parser.
const char* precision_name(Precision p) {
    switch (p) {
        case Precision::fp32: return "fp32";
        case Precision::fp16: return "fp16";
        case Precision::bf16: return "bf16";
    }
    return "?";
}

c10::ScalarType precision_dtype(Precision p) {
    switch (p) {
        case Precision::fp16: return torch::kHalf;
        case Precision::bf16: return torch::kBFloat16;
        case Precision::fp32: break;
    }
    return torch::kFloat;
}

// Torch messages can carry long TorchScript tracebacks; for load errors the first line
// already says what is wrong with the file.
std::string first_line(const std::string& text) {
    std::string line = text.substr(0, text.find('\n'));
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    return line;
}

std::string trim_right(std::string text) {
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
    return text;
}

// TorchScript interpreter errors put the model's own message on the last line, after the
// traceback; lead with it so one-line logs still show what the model raised.
std::string forward_message(const std::string& raw) {
    std::string text = trim_right(raw);
    const std::size_t newline = text.rfind('\n');
    if (newline == std::string::npos) return text;
    return text.substr(newline + 1) + "\n" + text;
}

std::string shape_string(const at::Tensor& t) {
    std::string s = "[";
    for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
    return s + "]";
}

torch::jit::Module load_module(const std::string& model, const std::string& path,
                               const c10::Device& device) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec))
        throw ModelError(model, fmt::format("cannot load TorchScript file '{}': {}", path,
                                            std::filesystem::exists(path, ec) ? "not a regular file"
                                                                              : "file not found"));
    try {
        return torch::jit::load(path, device);
    } catch (const c10::Error& e) {
        throw ModelError(model, fmt::format("cannot load TorchScript file '{}': {}", path,
                                            first_line(e.what_without_backtrace())));
    } catch (const std::exception& e) {
        throw ModelError(model, fmt::format("cannot load TorchScript file '{}': {}", path,
                                            first_line(e.what())));
    }
}

// at::set_num_threads is process-wide (an atomic that every thread applies lazily), so a
// later Model with another value wins; that matches "one runtime.torch_threads per run".
void apply_torch_threads(int torch_threads) {
    if (torch_threads > 0) at::set_num_threads(torch_threads);
}

// Models may return auxiliary outputs after the segmentation map (deep supervision, etc.).
at::Tensor first_tensor(const std::string& model, const c10::IValue& result) {
    if (result.isTensor()) return result.toTensor();
    if (result.isTuple()) {
        const auto& elements = result.toTupleRef().elements();
        if (!elements.empty() && elements[0].isTensor()) return elements[0].toTensor();
    }
    throw ModelError(model, fmt::format("forward returned {}; expected a Tensor or a tuple "
                                        "whose first element is a Tensor",
                                        result.tagKind()));
}

void validate_rank(const std::string& model, const at::Tensor& out, int n, int rank,
                   const char* layout) {
    if (out.dim() != rank)
        throw ModelError(model, fmt::format("output has rank {} ({}); expected {}", out.dim(),
                                            shape_string(out), layout));
    if (out.size(0) != n)
        throw ModelError(model, fmt::format("output batch is {} ({}); expected {} (the input batch)",
                                            out.size(0), shape_string(out), n));
    for (int64_t d = 1; d < out.dim(); ++d)
        if (out.size(d) < 1) throw ModelError(model, fmt::format("output {} is empty", shape_string(out)));
}

// The stitcher maps output pixels back onto the patch with one integer factor, so anything
// else (padding-less convolutions shrinking the map, odd strides) must fail loudly here.
void validate_output(const std::string& model, Task task, const at::Tensor& out, int n, int h, int w) {
    if (task == Task::classification) return validate_rank(model, out, n, 2, "[B, C] for task classification");
    if (task == Task::detection) return validate_rank(model, out, n, 3, "[B, N, 6], [B, 4 + nc, N] or [B, N, 5 + nc] for task detection");
    if (out.dim() != 4)
        throw ModelError(model, fmt::format("output has rank {} ({}); expected [B, C, h, w]",
                                            out.dim(), shape_string(out)));
    if (out.size(0) != n)
        throw ModelError(model, fmt::format("output batch is {} ({}); expected {} (the input batch)",
                                            out.size(0), shape_string(out), n));
    if (out.size(1) < 1 || out.size(2) < 1 || out.size(3) < 1)
        throw ModelError(model, fmt::format("output {} is empty", shape_string(out)));
    const int64_t oh = out.size(2), ow = out.size(3);
    const int64_t s = h / oh;
    if (s < 1 || oh * s != h || ow * s != w)
        throw ModelError(model, fmt::format("output size {}x{} (h x w) is not the input patch {}x{} "
                                            "divided by one integer factor",
                                            oh, ow, h, w));
}

at::Tensor activate(const at::Tensor& logits, Activation activation) {
    switch (activation) {
        case Activation::softmax: return torch::softmax(logits, 1);
        case Activation::sigmoid: return torch::sigmoid(logits);
        case Activation::none: break;
    }
    return logits;
}

ModelOutput to_model_output(const at::Tensor& host_float) {
    at::Tensor t = host_float.contiguous();
    ModelOutput out;
    out.shape.assign(t.sizes().begin(), t.sizes().end());
    out.n = static_cast<int>(t.size(0));
    out.c = static_cast<int>(t.size(1));
    if (t.dim() == 4) {
        out.h = static_cast<int>(t.size(2));
        out.w = static_cast<int>(t.size(3));
    }
    out.data.resize(static_cast<std::size_t>(t.numel()));
    std::memcpy(out.data.data(), t.data_ptr<float>(), out.data.size() * sizeof(float));
    return out;
}

}  // namespace

struct Model::Impl {
    ModelConfig cfg;
    DeviceInfo info;
    c10::Device device{c10::kCPU};
    c10::ScalarType dtype = torch::kFloat;
    int slots = 1;
    int torch_threads = 0;  // 0: leave LibTorch's setting alone
    torch::jit::Module module;
#ifdef FLOWINFER_WITH_CUDA
    std::vector<c10::cuda::CUDAStream> streams;  // one per slot: slots overlap copies and kernels
#endif

    at::Tensor forward(const at::Tensor& x, int n, int h, int w) {
        c10::IValue result = module.forward({x});
        at::Tensor out = first_tensor(cfg.name, result);
        validate_output(cfg.name, cfg.task, out, n, h, w);
        // Activation in fp32: softmax in half precision loses the small probabilities.
        if (cfg.task == Task::detection) return out.to(torch::kFloat);
        return activate(out.to(torch::kFloat), cfg.activation);
    }

    ModelOutput run_cpu(const float* input, int n, int h, int w) {
        // from_blob: the batch buffer is already [n, 3, h, w] float32, no copy needed.
        at::Tensor x = torch::from_blob(const_cast<float*>(input), {n, 3, h, w},
                                        torch::TensorOptions().dtype(torch::kFloat));
        return to_model_output(forward(x, n, h, w));
    }

#ifdef FLOWINFER_WITH_CUDA
    ModelOutput run_cuda(const float* input, int n, int h, int w, int slot) {
        c10::cuda::CUDAStream stream = streams[static_cast<std::size_t>(slot)];
        c10::cuda::CUDAStreamGuard guard(stream);
        at::Tensor host = torch::from_blob(const_cast<float*>(input), {n, 3, h, w},
                                           torch::TensorOptions().dtype(torch::kFloat));
        // non_blocking overlaps the upload with other slots' kernels when `input` is pinned
        // (host_buffer()); the stream sync below keeps `input` alive long enough.
        at::Tensor x = host.to(device, dtype, /*non_blocking=*/true, /*copy=*/false);
        at::Tensor probs = forward(x, n, h, w);
        at::Tensor back = probs.to(torch::kCPU);
        stream.synchronize();
        return to_model_output(back);
    }

    void init_cuda(const DeviceSpec& spec) {
        if (!torch::cuda::is_available())
            throw ModelError(cfg.name, "device cuda requested but no CUDA GPU is available");
        const auto count = static_cast<int>(torch::cuda::device_count());
        if (spec.index >= count)
            throw ModelError(cfg.name, fmt::format("device cuda:{} requested but only {} CUDA "
                                                   "device(s) are available",
                                                   spec.index, count));
        // Patch batches have a fixed shape, the case cuDNN autotuning pays off for.
        at::globalContext().setBenchmarkCuDNN(true);
        const auto index = static_cast<c10::DeviceIndex>(spec.index);
        for (int i = 0; i < slots; ++i)
            streams.push_back(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, index));
    }
#endif
};

Model::Model(const ModelConfig& cfg, const std::string& device, int torch_threads, int slots)
    : impl_(std::make_unique<Impl>()) {
    Impl& m = *impl_;
    m.cfg = cfg;
    const DeviceSpec spec = parse_device(cfg.name, device);
#ifndef FLOWINFER_WITH_CUDA
    if (spec.cuda)
        throw ModelError(cfg.name, fmt::format("device {}: this flowinfer build has no CUDA support "
                                               "(LibTorch is CPU-only)",
                                               device));
#endif
    const Precision precision = cfg.precision.value_or(spec.cuda ? Precision::fp16 : Precision::fp32);
    if (!spec.cuda && precision != Precision::fp32)
        throw ModelError(cfg.name, fmt::format("precision {} needs device cuda",
                                               precision_name(precision)));
    m.slots = spec.cuda ? (slots > 0 ? slots : 2) : std::max(1, slots);
    m.dtype = precision_dtype(precision);
    apply_torch_threads(torch_threads);
    m.torch_threads = torch_threads;
#ifdef FLOWINFER_WITH_CUDA
    if (spec.cuda) {
        m.device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(spec.index));
        m.init_cuda(spec);
    }
#endif

    // Loading and dtype conversion run outside InferenceMode: parameters created as inference
    // tensors could not be converted in place by module.to().
    torch::NoGradGuard no_grad;
    m.module = load_module(cfg.name, cfg.path, m.device);
    m.module.eval();
    try {
        if (m.dtype != torch::kFloat) m.module.to(m.dtype);
    } catch (const c10::Error& e) {
        throw ModelError(cfg.name, fmt::format("cannot convert to {}: {}", precision_name(precision),
                                               first_line(e.what_without_backtrace())));
    }

    m.info.device = spec.cuda ? fmt::format("cuda:{}", spec.index) : std::string("cpu");
    m.info.precision = precision_name(precision);
    m.info.torch_threads = at::get_num_threads();
    m.info.slots = m.slots;
}

Model::~Model() = default;

std::shared_ptr<float> Model::host_buffer(std::size_t count) const {
#ifdef FLOWINFER_WITH_CUDA
    if (impl_->device.is_cuda()) {
        // Pinned memory lets the upload run asynchronously; the deleter owns the tensor so the
        // caching host allocator gets the block back when the last user lets go.
        at::Tensor t = at::empty({static_cast<int64_t>(count)},
                                 at::TensorOptions().dtype(at::kFloat).pinned_memory(true));
        float* data = t.data_ptr<float>();
        return std::shared_ptr<float>(data, [t](float*) mutable { t.reset(); });
    }
#endif
    return std::shared_ptr<float>(new float[count], std::default_delete<float[]>());
}

ModelOutput Model::run(const float* input, int n, int h, int w, int slot) {
    Impl& m = *impl_;
    if (slot < 0 || slot >= m.slots)
        throw ModelError(m.cfg.name, fmt::format("slot {} out of range [0, {})", slot, m.slots));
    if (n < 1 || h < 1 || w < 1)
        throw ModelError(m.cfg.name, fmt::format("empty input batch [{}, 3, {}, {}]", n, h, w));
    // LibTorch applies its thread count to a thread on that thread's first parallel op only,
    // so a thread that ran another model (or another run) before keeps a stale count.
    if (m.torch_threads > 0 && at::get_num_threads() != m.torch_threads) at::set_num_threads(m.torch_threads);
    // InferenceMode is thread-local, so each calling thread sets it for itself.
    c10::InferenceMode inference;
    try {
#ifdef FLOWINFER_WITH_CUDA
        if (m.device.is_cuda()) return m.run_cuda(input, n, h, w, slot);
#endif
        return m.run_cpu(input, n, h, w);
    } catch (const ModelError&) {
        throw;
    } catch (const c10::Error& e) {
        throw ModelError(m.cfg.name, "forward failed: " + forward_message(e.what_without_backtrace()));
    } catch (const std::exception& e) {
        throw ModelError(m.cfg.name, "forward failed: " + forward_message(e.what()));
    }
}

ModelOutput Model::probe(int patch_size) {
    const std::size_t count = static_cast<std::size_t>(3) * patch_size * patch_size;
    std::shared_ptr<float> input = host_buffer(count);
    std::fill(input.get(), input.get() + count, 0.0f);
    return run(input.get(), 1, patch_size, patch_size, 0);
}

int Model::slots() const { return impl_->slots; }

const DeviceInfo& Model::info() const { return impl_->info; }

const std::string& Model::name() const { return impl_->cfg.name; }

}  // namespace flowinfer
