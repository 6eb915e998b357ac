// TorchScript model runner. One of the few files that include LibTorch: the pimpl keeps
// torch out of model.hpp so the rest of the project compiles fast and stays torch-free.
#include "stages/model.hpp"

#include "stages/blas.hpp"
#include "stages/buffer_pool.hpp"
#include "stages/model_errors.hpp"
#include "stages/model_select.hpp"
#include "stages/normalize.hpp"
#include "stages/output_shape.hpp"

#include <flowinfer/errors.hpp>

#include <ATen/Parallel.h>
#include <torch/csrc/api/include/torch/cuda.h>
#include <torch/script.h>

#include <torch/version.h>

#ifdef FLOWINFER_WITH_CUDA
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <exception>
#include <filesystem>
#include <new>
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
    if (device == "cuda") return {true, -1};  // every visible GPU
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

std::string shape_string(const at::Tensor& t) { return flowinfer::shape_string(tensor_shape(t)); }

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
        throw ModelError(model, load_error(path, e.what_without_backtrace(), TORCH_VERSION));
    } catch (const std::exception& e) {
        throw ModelError(model, load_error(path, e.what(), TORCH_VERSION));
    }
}

// at::set_num_threads is process-wide (an atomic that every thread applies lazily), so a
// later Model with another value wins; that matches "one runtime.torch_threads per run".
void apply_torch_threads(int torch_threads) {
    if (torch_threads > 0) at::set_num_threads(torch_threads);
    set_blas_threads(torch_threads > 0 ? torch_threads : at::get_num_threads());
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
    c10::ScalarType dtype = torch::kFloat;
    int slots = 1;
    int torch_threads = 0;  // 0: leave LibTorch's setting alone
    // One module per device: "cuda" runs a copy on every visible GPU; slot k uses
    // devices[k % devices.size()].
    std::vector<c10::Device> devices{c10::Device(c10::kCPU)};
    std::vector<torch::jit::Module> modules;
    std::shared_ptr<BufferPool> pool;
    // Input channels (cfg.channels): the patch's RGB as it is (normalize_rgb), or mapped
    // (normalize_channels); per input channel, scale = 1 / (255 std) and bias = -mean / std.
    bool rgb_order = true;
    std::vector<float> scale, bias;
    std::vector<std::vector<float>> scratch;  // per slot: RGB input normalized on CPU
#ifdef FLOWINFER_WITH_CUDA
    std::vector<at::Tensor> means, stds;         // [1, 3, 1, 1] x 255 per GPU, for RGB in order
    // Otherwise per GPU a 1x1 convolution from RGB to the input channels with the
    // normalization folded in: [C, 3, 1, 1] and [C].
    std::vector<at::Tensor> mix_weight, mix_bias;
    std::vector<c10::cuda::CUDAStream> streams;  // one per slot: slots overlap copies and kernels
#endif

    int in_channels() const { return static_cast<int>(cfg.channels.size()); }

    bool cuda() const { return devices.front().is_cuda(); }
    std::size_t device_of(int slot) const { return static_cast<std::size_t>(slot) % devices.size(); }

    at::Tensor forward(std::size_t d, const at::Tensor& x, int n, int h, int w) {
        c10::IValue result = modules[d].forward({x});
        at::Tensor out = select_output(cfg.name, result, cfg.output, cfg.output_layout);
        check_output_shape(cfg.name, cfg.task, tensor_shape(out), n, h, w);
        // Activation in fp32: softmax in half precision loses the small probabilities.
        if (cfg.task == Task::detection) return out.to(torch::kFloat);
        // Features as the model gives them, [B, D, 1, 1] as [B, D].
        if (cfg.task == Task::embedding) return out.reshape({n, out.size(1)}).to(torch::kFloat);
        return activate(out.to(torch::kFloat), cfg.activation);
    }

    // cfg.cpu_micro_batch patches per forward call: the activations of one 256² patch stay in
    // the core's L2/L3 where a batch of 8 streams through memory (the benchmark light model
    // runs 1.8x faster at 1 than at 8, the U-Net 1.25x). The chunks' outputs are joined into
    // one batch, so callers never see the split.
    ModelOutput run_cpu(const void* input, bool rgb, int n, int h, int w, int slot) {
        const int chunk = std::clamp(cfg.cpu_micro_batch, 1, n);
        const int channels = in_channels();
        const std::size_t pixels = static_cast<std::size_t>(h) * w;
        const std::size_t rgb_values = 3 * pixels, values = channels * pixels;
        std::vector<float>& x = scratch[static_cast<std::size_t>(slot)];
        if (rgb) x.resize(values * chunk);
        std::vector<at::Tensor> parts;
        for (int b0 = 0; b0 < n; b0 += chunk) {
            const int k = std::min(chunk, n - b0);
            float* in = nullptr;
            if (rgb) {
                // One pass into a buffer the slot reuses: it is still in cache when the first
                // layer reads it (the GPU path's tensor expression takes four passes).
                const auto* bytes = static_cast<const std::uint8_t*>(input) + b0 * rgb_values;
                for (int b = 0; b < k; ++b) {
                    float* out = x.data() + b * values;
                    if (rgb_order) normalize_rgb(bytes + b * rgb_values, h * w, scale.data(), bias.data(), out);
                    else normalize_channels(bytes + b * rgb_values, h * w, cfg.channels, scale.data(), bias.data(), out);
                }
                in = x.data();
            } else {
                in = const_cast<float*>(static_cast<const float*>(input)) + b0 * values;  // used in place
            }
            const at::Tensor x_in = torch::from_blob(in, {k, channels, h, w}, torch::kFloat);
            at::Tensor part = forward(0, x_in, k, h, w).contiguous();
            // A model may hand back its input or a view of it (activation none): that memory
            // is the slot's scratch, which the next chunk overwrites.
            if (part.is_alias_of(x_in)) part = part.clone();
            parts.push_back(std::move(part));
        }
        return join_chunks(parts, n);
    }

    // The chunks' outputs as one [n, ...] batch. Segmentation and classification outputs must
    // agree after dim 0; detection outputs may hold different box counts per call (a model
    // pads to its batch's largest), so they are zero-padded to the largest: zero rows score 0
    // and every decoder drops them.
    ModelOutput join_chunks(const std::vector<at::Tensor>& parts, int n) const {
        if (parts.size() == 1) return to_model_output(parts.front());
        std::vector<std::int64_t> shape(parts.front().sizes().begin(), parts.front().sizes().end());
        bool ragged = false;
        for (const at::Tensor& p : parts)
            for (std::size_t d = 1; d < shape.size(); ++d)
                if (p.size(static_cast<int64_t>(d)) != shape[d]) {
                    if (cfg.task != Task::detection)
                        throw ModelError(cfg.name, fmt::format("output {} of a {}-patch call differs from the "
                                                               "first call's {} beyond the batch dimension",
                                                               shape_string(p), p.size(0),
                                                               shape_string(parts.front())));
                    ragged = true;
                    shape[d] = std::max<std::int64_t>(shape[d], p.size(static_cast<int64_t>(d)));
                }
        shape[0] = n;
        ModelOutput out;
        out.shape = shape;
        out.n = n;
        out.c = static_cast<int>(shape[1]);
        if (shape.size() == 4) {
            out.h = static_cast<int>(shape[2]);
            out.w = static_cast<int>(shape[3]);
        }
        std::size_t numel = 1;
        for (std::int64_t d : shape) numel *= static_cast<std::size_t>(d);
        out.data.assign(numel, 0.0f);
        at::Tensor all = torch::from_blob(out.data.data(), shape, torch::kFloat);
        std::int64_t b0 = 0;
        for (const at::Tensor& p : parts) {
            at::Tensor dst = all.narrow(0, b0, p.size(0));
            if (ragged)
                for (int64_t d = 1; d < p.dim(); ++d) dst = dst.narrow(d, 0, p.size(d));
            dst.copy_(p);
            b0 += p.size(0);
        }
        return out;
    }

#ifdef FLOWINFER_WITH_CUDA
    // [n, h, w, 3] uint8 on the device -> normalized [n, 3, h, w] in the model's dtype.
    at::Tensor normalize(std::size_t d, const at::Tensor& rgb) const {
        const at::Tensor x = rgb.permute({0, 3, 1, 2}).to(torch::kFloat);
        if (!rgb_order) return torch::conv2d(x, mix_weight[d], mix_bias[d]).to(dtype).contiguous();
        return ((x - means[d]) / stds[d]).to(dtype).contiguous();
    }

    ModelOutput run_cuda(const void* input, bool rgb, int n, int h, int w, int slot) {
        const std::size_t d = device_of(slot);
        c10::cuda::CUDAGuard device_guard(devices[d]);
        c10::cuda::CUDAStream stream = streams[static_cast<std::size_t>(slot)];
        c10::cuda::CUDAStreamGuard guard(stream);
        // non_blocking overlaps the upload with other slots' kernels (the buffer is pinned,
        // host_buffer()); uint8 RGB is a quarter of the bytes of float32, and is normalized
        // on the device.
        at::Tensor x;
        if (rgb) {
            at::Tensor host = torch::from_blob(const_cast<void*>(input), {n, h, w, 3}, torch::kUInt8);
            x = normalize(d, host.to(devices[d], /*non_blocking=*/true));
        } else {
            at::Tensor host = torch::from_blob(const_cast<void*>(input), {n, in_channels(), h, w}, torch::kFloat);
            x = host.to(devices[d], /*non_blocking=*/true).to(dtype);
        }
        at::Tensor probs = forward(d, x, n, h, w);
        at::Tensor back = torch::empty(probs.sizes(), torch::TensorOptions().dtype(torch::kFloat).pinned_memory(true));
        back.copy_(probs, /*non_blocking=*/true);
        // Waits for this slot's stream only; other slots keep the GPU busy meanwhile.
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
        // fp32 means IEEE fp32 on the GPU too: cuDNN convolutions default to TF32 (a 10-bit
        // mantissa, about 1e-3 relative error), which would make an fp32 map differ from the
        // CPU's. fp16 and bf16 are the fast paths. (Process-wide; TF32 touches fp32 ops only.)
        if (dtype == torch::kFloat) {
            at::globalContext().setAllowTF32CuDNN(false);
            at::globalContext().setAllowTF32CuBLAS(false);
        }
        devices.clear();
        if (spec.index < 0)  // "cuda": every visible GPU, one set of slots each
            for (int i = 0; i < count; ++i) devices.emplace_back(c10::kCUDA, static_cast<c10::DeviceIndex>(i));
        else
            devices.emplace_back(c10::kCUDA, static_cast<c10::DeviceIndex>(spec.index));
        slots *= static_cast<int>(devices.size());
        for (int i = 0; i < slots; ++i)
            streams.push_back(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, devices[device_of(i)].index()));
    }
#endif
};

Model::Model(const ModelConfig& cfg, const std::string& device, int torch_threads, int slots)
    : impl_(std::make_unique<Impl>()) {
    Impl& m = *impl_;
    m.cfg = cfg;
    check_channels(cfg);
    m.rgb_order = cfg.channels == std::vector<int>{0, 1, 2};
    for (std::size_t c = 0; c < cfg.channels.size(); ++c) {
        m.scale.push_back(1.0f / (255.0f * cfg.std[c]));
        m.bias.push_back(-cfg.mean[c] / cfg.std[c]);
    }
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
    if (spec.cuda) m.init_cuda(spec);
#endif

    // Loading and dtype conversion run outside InferenceMode: parameters created as inference
    // tensors could not be converted in place by module.to().
    torch::NoGradGuard no_grad;
    for (const c10::Device& d : m.devices) {
        torch::jit::Module module = load_module(cfg.name, cfg.path, d);
        module.eval();
        try {
            if (m.dtype != torch::kFloat) module.to(m.dtype);
        } catch (const c10::Error& e) {
            throw ModelError(cfg.name, fmt::format("cannot convert to {}: {}", precision_name(precision),
                                                   first_line(e.what_without_backtrace())));
        }
        m.modules.push_back(std::move(module));
#ifdef FLOWINFER_WITH_CUDA
        const auto opts = torch::TensorOptions().dtype(torch::kFloat).device(d);
        if (m.rgb_order) {
            m.means.push_back(torch::tensor(std::vector<float>{cfg.mean[0] * 255.0f, cfg.mean[1] * 255.0f, cfg.mean[2] * 255.0f}, opts)
                                  .view({1, 3, 1, 1}));
            m.stds.push_back(torch::tensor(std::vector<float>{cfg.std[0] * 255.0f, cfg.std[1] * 255.0f, cfg.std[2] * 255.0f}, opts)
                                 .view({1, 3, 1, 1}));
        } else {
            const std::vector<float> w = channel_weights(cfg.channels, m.scale);
            const auto count = static_cast<std::int64_t>(cfg.channels.size());
            m.mix_weight.push_back(torch::tensor(w, opts).view({count, 3, 1, 1}));
            m.mix_bias.push_back(torch::tensor(m.bias, opts));
        }
#endif
    }

    m.scratch.resize(static_cast<std::size_t>(m.slots));
    const bool pinned = m.cuda();
    m.pool = std::make_shared<BufferPool>([pinned](std::size_t bytes) -> std::shared_ptr<void> {
        if (pinned) {
            // Pinned memory lets the upload run asynchronously; the owner keeps the tensor.
            at::Tensor t = at::empty({static_cast<int64_t>(bytes)}, at::TensorOptions().dtype(at::kByte).pinned_memory(true));
            void* data = t.data_ptr();
            return std::shared_ptr<void>(data, [t](void*) mutable { t.reset(); });
        }
        return std::shared_ptr<void>(::operator new(bytes, std::align_val_t(64)),
                                     [](void* p) { ::operator delete(p, std::align_val_t(64)); });
    });

    m.info.device = !spec.cuda ? std::string("cpu") : spec.index < 0 ? fmt::format("cuda (x{})", m.devices.size())
                                                                    : fmt::format("cuda:{}", spec.index);
    m.info.precision = precision_name(precision);
    m.info.torch_threads = at::get_num_threads();
    m.info.slots = m.slots;
}

Model::~Model() = default;

std::shared_ptr<float> Model::host_buffer(std::size_t count) const {
    return std::static_pointer_cast<float>(impl_->pool->get(count * sizeof(float)));
}

std::shared_ptr<std::uint8_t> Model::host_bytes(std::size_t count) const {
    return std::static_pointer_cast<std::uint8_t>(impl_->pool->get(count));
}

std::size_t Model::host_allocations() const { return impl_->pool->allocations(); }

bool Model::host_pinned(const void* p) const {
#ifdef FLOWINFER_WITH_CUDA
    if (impl_->cuda()) return at::detail::getCUDAHooks().isPinnedPtr(p);
#endif
    (void)p;
    return false;
}

std::string libtorch_version() { return TORCH_VERSION; }

int cuda_device_count() {
#ifdef FLOWINFER_WITH_CUDA
    try {
        return torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
    } catch (const std::exception&) {
        return 0;  // a driver too old for the runtime, a broken install: no usable GPU
    }
#else
    return 0;
#endif
}

ModelOutput Model::run(const float* input, int n, int h, int w, int slot) { return run_any(input, false, n, h, w, slot); }

ModelOutput Model::run_rgb(const std::uint8_t* rgb, int n, int h, int w, int slot) {
    return run_any(rgb, true, n, h, w, slot);
}

ModelOutput Model::run_any(const void* input, bool rgb, int n, int h, int w, int slot) {
    Impl& m = *impl_;
    if (slot < 0 || slot >= m.slots)
        throw ModelError(m.cfg.name, fmt::format("slot {} out of range [0, {})", slot, m.slots));
    if (n < 1 || h < 1 || w < 1)
        throw ModelError(m.cfg.name, fmt::format("empty input batch [{}, 3, {}, {}]", n, h, w));
    // LibTorch applies its thread count to a thread on that thread's first parallel op only,
    // so a thread that ran another model (or another run) before keeps a stale count.
    if (m.torch_threads > 0 && at::get_num_threads() != m.torch_threads) at::set_num_threads(m.torch_threads);
    set_blas_threads(m.torch_threads);  // see stages/blas.hpp
    // InferenceMode is thread-local, so each calling thread sets it for itself.
    c10::InferenceMode inference;
    try {
#ifdef FLOWINFER_WITH_CUDA
        if (m.cuda()) return m.run_cuda(input, rgb, n, h, w, slot);
#endif
        return m.run_cpu(input, rgb, n, h, w, slot);
    } catch (const ModelError&) {
        throw;
    } catch (const c10::Error& e) {
        throw ModelError(m.cfg.name, "forward failed: " + forward_message(e.what_without_backtrace()));
    } catch (const std::exception& e) {
        throw ModelError(m.cfg.name, "forward failed: " + forward_message(e.what()));
    }
}

void Model::warm_up(int batch, int patch_size) {
    // First calls are slow: cuDNN autotunes per input shape, oneDNN builds its kernels for
    // the shape, the allocators grow. Pay for it here (on every GPU slot), not on the first
    // batches of the first slide (the benchmark's model ceiling is warmed up the same way).
    const std::size_t count = static_cast<std::size_t>(batch) * patch_size * patch_size * 3;
    std::shared_ptr<std::uint8_t> input = host_bytes(count);
    std::fill(input.get(), input.get() + count, std::uint8_t(0));
    // CPU slots share the same kernels: one call of one micro-batch warms them all.
    const bool cuda = impl_->cuda();
    const int n = cuda ? batch : std::min(batch, impl_->cfg.cpu_micro_batch);
    for (int slot = 0; slot < (cuda ? slots() : 1); ++slot) run_rgb(input.get(), n, patch_size, patch_size, slot);
}

ModelOutput Model::probe(int patch_size) {
    const Impl& m = *impl_;
    const std::size_t count = static_cast<std::size_t>(m.in_channels()) * patch_size * patch_size;
    std::shared_ptr<float> input = host_buffer(count);
    std::fill(input.get(), input.get() + count, 0.0f);
    try {
        return run(input.get(), 1, patch_size, patch_size, 0);
    } catch (const ModelSettingError&) {
        throw;
    } catch (const ModelError& e) {
        const auto [wanted, given] = channel_mismatch(e.what());
        if (wanted == 0) throw;
        throw ModelSettingError(m.cfg.name, "channels",
                                fmt::format("the model takes {} input channel(s); channels = {} gives {}. Set channels "
                                            "(\"gray\", or indices into R, G, B such as [1]) and mean and std with one "
                                            "value per channel",
                                            wanted, channels_name(m.cfg.channels), given));
    }
}

TrialRun Model::trial(int channels, int size) {
    Impl& m = *impl_;
    TrialRun t;
    c10::InferenceMode inference;
    try {
        const at::Tensor x = torch::zeros({1, channels, size, size}, torch::TensorOptions().dtype(m.dtype).device(m.devices.front()));
        const c10::IValue result = m.modules.front().forward({x});
        t.result = describe_output(result);
        t.selected = tensor_shape(select_output(m.cfg.name, result, m.cfg.output, m.cfg.output_layout));
        t.ok = true;
    } catch (const ModelSettingError& e) {
        t.error = e.problem();
    } catch (const c10::Error& e) {
        t.error = first_line(forward_message(e.what_without_backtrace()));
    } catch (const std::exception& e) {
        t.error = first_line(forward_message(e.what()));
    }
    return t;
}

int Model::slots() const { return impl_->slots; }

const DeviceInfo& Model::info() const { return impl_->info; }

const std::string& Model::name() const { return impl_->cfg.name; }

}  // namespace flowinfer
