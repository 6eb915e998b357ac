#define BOOST_TEST_MODULE test_model
#include <boost/test/unit_test.hpp>

#include "stages/blas.hpp"
#include "stages/model.hpp"
#include "stages/model_errors.hpp"
#include "stages/normalize.hpp"
#include "tests/test_support.hpp"

#include <flowinfer/demo.hpp>
#include <flowinfer/errors.hpp>

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace flowinfer;

namespace {

ModelConfig config(const std::string& path, Activation activation = Activation::none) {
    ModelConfig cfg;
    cfg.name = "m";
    cfg.path = path;
    cfg.activation = activation;
    return cfg;
}

std::string demo(const fit::TempDir& dir, const std::string& file, DemoModel kind, float param = 0) {
    std::string path = dir / file;
    write_demo_model(path, kind, param);
    return path;
}

std::vector<float> random_input(int n, int h, int w, float lo, float hi, unsigned seed = 7) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(static_cast<std::size_t>(n) * 3 * h * w);
    for (float& x : v) x = dist(rng);
    return v;
}

// Channel mean at (b, y, x) of an [n, 3, h, w] buffer, computed independently of torch.
double channel_mean(const std::vector<float>& in, int h, int w, int b, int y, int x) {
    double sum = 0;
    for (int c = 0; c < 3; ++c) sum += in[((static_cast<std::size_t>(b) * 3 + c) * h + y) * w + x];
    return sum / 3.0;
}

float at(const ModelOutput& o, int b, int c, int y, int x) {
    return o.data[((static_cast<std::size_t>(b) * o.c + c) * o.h + y) * o.w + x];
}

// [n, 3, h, w] of one RGB colour, normalized like the demo pipeline (x/255, ImageNet mean/std).
std::vector<float> imagenet_patch(int n, int h, int w, const int rgb[3]) {
    const float mean[3] = {0.485f, 0.456f, 0.406f};
    const float sd[3] = {0.229f, 0.224f, 0.225f};
    std::vector<float> v(static_cast<std::size_t>(n) * 3 * h * w);
    for (int b = 0; b < n; ++b)
        for (int c = 0; c < 3; ++c)
            for (int i = 0; i < h * w; ++i)
                v[(static_cast<std::size_t>(b) * 3 + c) * h * w + i] = (rgb[c] / 255.0f - mean[c]) / sd[c];
    return v;
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

// Only these two messages mean "no GPU here"; any other ModelError is a real failure.
bool is_no_cuda(const ModelError& e) {
    return contains(e.what(), "no CUDA support") || contains(e.what(), "no CUDA GPU is available");
}

}  // namespace

BOOST_AUTO_TEST_CASE(pointwise_mean_matches_independent_computation) {
    fit::TempDir dir;
    Model model(config(demo(dir, "pm.pt", DemoModel::pointwise_mean)), "cpu", 0, 0);
    const int n = 3, h = 16, w = 12;
    auto in = random_input(n, h, w, 0.0f, 1.0f);
    ModelOutput out = model.run(in.data(), n, h, w, 0);
    BOOST_TEST(out.n == n);
    BOOST_TEST(out.c == 2);
    BOOST_TEST(out.h == h);
    BOOST_TEST(out.w == w);
    BOOST_REQUIRE_EQUAL(out.data.size(), static_cast<std::size_t>(n * 2 * h * w));
    double worst = 0;
    for (int b = 0; b < n; ++b)
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) {
                double m = channel_mean(in, h, w, b, y, x);
                worst = std::max(worst, std::abs(at(out, b, 0, y, x) - (1 - m)));
                worst = std::max(worst, std::abs(at(out, b, 1, y, x) - m));
            }
    BOOST_TEST(worst < 1e-5);
}

BOOST_AUTO_TEST_CASE(activations_match_hand_computation) {
    fit::TempDir dir;
    std::string path = demo(dir, "pm.pt", DemoModel::pointwise_mean);
    const int n = 2, h = 8, w = 8;
    // Wide range so softmax / sigmoid are far from linear.
    auto in = random_input(n, h, w, -4.0f, 4.0f, 11);
    Model softmax(config(path, Activation::softmax), "cpu", 0, 0);
    Model sigmoid(config(path, Activation::sigmoid), "cpu", 0, 0);
    Model none(config(path, Activation::none), "cpu", 0, 0);
    ModelOutput os = softmax.run(in.data(), n, h, w, 0);
    ModelOutput og = sigmoid.run(in.data(), n, h, w, 0);
    ModelOutput on = none.run(in.data(), n, h, w, 0);
    double worst = 0;
    for (int b = 0; b < n; ++b)
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) {
                double m = channel_mean(in, h, w, b, y, x);
                double l0 = 1 - m, l1 = m;
                double p1 = std::exp(l1) / (std::exp(l0) + std::exp(l1));
                worst = std::max(worst, std::abs(at(os, b, 0, y, x) - (1 - p1)));
                worst = std::max(worst, std::abs(at(os, b, 1, y, x) - p1));
                worst = std::max(worst, std::abs(at(og, b, 0, y, x) - 1 / (1 + std::exp(-l0))));
                worst = std::max(worst, std::abs(at(og, b, 1, y, x) - 1 / (1 + std::exp(-l1))));
                worst = std::max(worst, std::abs(at(on, b, 0, y, x) - l0));
                worst = std::max(worst, std::abs(at(on, b, 1, y, x) - l1));
            }
    BOOST_TEST(worst < 1e-5);
}

BOOST_AUTO_TEST_CASE(constant_model_fills_every_pixel) {
    fit::TempDir dir;
    Model model(config(demo(dir, "c.pt", DemoModel::constant, 0.3f)), "cpu", 0, 0);
    const int n = 2, h = 5, w = 7;
    auto in = random_input(n, h, w, 0.0f, 1.0f);
    ModelOutput out = model.run(in.data(), n, h, w, 0);
    BOOST_REQUIRE_EQUAL(out.data.size(), static_cast<std::size_t>(n * 2 * h * w));
    for (int b = 0; b < n; ++b)
        for (int i = 0; i < h * w; ++i) {
            BOOST_TEST(at(out, b, 0, i / w, i % w) == 0.7f, boost::test_tools::tolerance(1e-6f));
            BOOST_TEST(at(out, b, 1, i / w, i % w) == 0.3f, boost::test_tools::tolerance(1e-6f));
        }
}

BOOST_AUTO_TEST_CASE(downscale_output_is_block_means) {
    fit::TempDir dir;
    const int k = 4, n = 2, h = 16, w = 8;
    Model model(config(demo(dir, "d.pt", DemoModel::downscale, k)), "cpu", 0, 0);
    auto in = random_input(n, h, w, 0.0f, 1.0f, 3);
    ModelOutput out = model.run(in.data(), n, h, w, 0);
    BOOST_TEST(out.n == n);
    BOOST_TEST(out.c == 2);
    BOOST_TEST(out.h == h / k);
    BOOST_TEST(out.w == w / k);
    double worst = 0;
    for (int b = 0; b < n; ++b)
        for (int by = 0; by < h / k; ++by)
            for (int bx = 0; bx < w / k; ++bx) {
                double sum = 0;
                for (int y = by * k; y < (by + 1) * k; ++y)
                    for (int x = bx * k; x < (bx + 1) * k; ++x) sum += channel_mean(in, h, w, b, y, x);
                double m = sum / (k * k);
                worst = std::max(worst, std::abs(at(out, b, 1, by, bx) - m));
                worst = std::max(worst, std::abs(at(out, b, 0, by, bx) - (1 - m)));
            }
    BOOST_TEST(worst < 1e-5);
}

BOOST_AUTO_TEST_CASE(downscale_by_a_non_dividing_factor_is_rejected) {
    fit::TempDir dir;
    Model model(config(demo(dir, "d.pt", DemoModel::downscale, 4)), "cpu", 0, 0);
    auto in = random_input(1, 18, 18, 0.0f, 1.0f);
    try {
        model.run(in.data(), 1, 18, 18, 0);
        BOOST_FAIL("expected ModelError");
    } catch (const ModelError& e) {
        BOOST_TEST_MESSAGE(e.what());
        BOOST_TEST(contains(e.what(), "integer factor"));
    }
}

BOOST_AUTO_TEST_CASE(wrong_rank_output_is_a_model_error) {
    fit::TempDir dir;
    Model model(config(demo(dir, "r.pt", DemoModel::wrong_rank)), "cpu", 0, 0);
    auto in = random_input(8, 64, 64, 0.0f, 1.0f);
    try {
        model.run(in.data(), 8, 64, 64, 0);
        BOOST_FAIL("expected ModelError");
    } catch (const ModelError& e) {
        BOOST_TEST_MESSAGE(e.what());
        BOOST_TEST(e.model() == "m");
        BOOST_TEST(contains(e.what(), "rank 3"));
        // The shape of the failing call: cpu_micro_batch (default 1) patches.
        BOOST_TEST(contains(e.what(), "[1, 64, 64]"));
    }
}

BOOST_AUTO_TEST_CASE(throw_after_fails_on_the_third_call) {
    fit::TempDir dir;
    Model model(config(demo(dir, "t.pt", DemoModel::throw_after, 2)), "cpu", 0, 0);
    auto in = random_input(1, 4, 4, 0.0f, 1.0f);
    BOOST_CHECK_NO_THROW(model.run(in.data(), 1, 4, 4, 0));
    ModelOutput second = model.run(in.data(), 1, 4, 4, 0);
    BOOST_TEST(std::abs(at(second, 0, 1, 0, 0) - channel_mean(in, 4, 4, 0, 0, 0)) < 1e-5);
    try {
        model.run(in.data(), 1, 4, 4, 0);
        BOOST_FAIL("expected ModelError on the third call");
    } catch (const ModelError& e) {
        BOOST_TEST_MESSAGE(e.what());
        BOOST_TEST(e.model() == "m");
        BOOST_TEST(contains(e.what(), "flowinfer test model failure"));
        BOOST_TEST(contains(e.what(), "forward failed"));
        const std::string what = e.what();
        BOOST_TEST(contains(what.substr(0, what.find('\n')), "flowinfer test model failure"));
    }
}

BOOST_AUTO_TEST_CASE(missing_and_garbage_files_name_the_path) {
    fit::TempDir dir;
    std::string missing = dir / "no-such-model.pt";
    try {
        Model model(config(missing), "cpu", 0, 0);
        BOOST_FAIL("expected ModelError");
    } catch (const ModelError& e) {
        BOOST_TEST_MESSAGE(e.what());
        BOOST_TEST(contains(e.what(), missing));
    }
    std::string garbage = dir / "garbage.pt";
    fit::write_text(garbage, "this is not a TorchScript archive\n");
    try {
        Model model(config(garbage), "cpu", 0, 0);
        BOOST_FAIL("expected ModelError");
    } catch (const ModelError& e) {
        BOOST_TEST_MESSAGE(e.what());
        BOOST_TEST(contains(e.what(), garbage));
    }
}

BOOST_AUTO_TEST_CASE(demo_models_are_torchscript_zip_archives) {
    fit::TempDir dir;
    for (auto kind : {DemoModel::tissue, DemoModel::pointwise_mean, DemoModel::constant,
                      DemoModel::throw_after, DemoModel::wrong_rank, DemoModel::downscale,
                      DemoModel::call_size, DemoModel::ragged_boxes, DemoModel::identity}) {
        std::string path = demo(dir, "z.pt", kind, 2);
        std::ifstream f(path, std::ios::binary);
        char magic[4] = {};
        f.read(magic, 4);
        BOOST_TEST((magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4));
        BOOST_CHECK_NO_THROW(Model(config(path), "cpu", 0, 0));
    }
    BOOST_CHECK_THROW(write_demo_model(dir / "bad.pt", DemoModel::downscale, 0.0f), Error);
}

// Without a GPU (a CPU-only build, or a CUDA build on CI's machines) asking for one is a
// clear error; with one, test_gpu covers the devices.
BOOST_AUTO_TEST_CASE(cuda_without_a_gpu_is_a_model_error, *boost::unit_test::precondition(fit::has_no_cuda_gpu)) {
    fit::TempDir dir;
    ModelConfig cfg = config(demo(dir, "pm.pt", DemoModel::pointwise_mean));
    cfg.precision = Precision::fp16;
    for (const char* device : {"cuda", "cuda:0"}) {
        try {
            Model model(cfg, device, 0, 0);
            BOOST_ERROR("a CUDA model was made without a GPU (" << device << ")");
        } catch (const ModelError& e) {
            BOOST_TEST_MESSAGE(e.what());
            BOOST_TEST(is_no_cuda(e));
        }
    }
}

BOOST_AUTO_TEST_CASE(unknown_devices_are_model_errors) {
    fit::TempDir dir;
    std::string path = demo(dir, "pm.pt", DemoModel::pointwise_mean);
    BOOST_CHECK_THROW(Model(config(path), "gpu", 0, 0), ModelError);
    BOOST_CHECK_THROW(Model(config(path), "cuda:x", 0, 0), ModelError);
}

BOOST_AUTO_TEST_CASE(half_precision_on_cpu_is_a_model_error) {
    fit::TempDir dir;
    ModelConfig cfg = config(demo(dir, "pm.pt", DemoModel::pointwise_mean));
    for (Precision p : {Precision::fp16, Precision::bf16}) {
        cfg.precision = p;
        try {
            Model model(cfg, "cpu", 0, 0);
            BOOST_FAIL("expected ModelError");
        } catch (const ModelError& e) {
            BOOST_TEST_MESSAGE(e.what());
            BOOST_TEST(contains(e.what(), "needs device cuda"));
        }
    }
    cfg.precision = Precision::fp32;
    BOOST_CHECK_NO_THROW(Model(cfg, "cpu", 0, 0));
}

BOOST_AUTO_TEST_CASE(device_info_and_torch_threads) {
    fit::TempDir dir;
    Model model(config(demo(dir, "pm.pt", DemoModel::pointwise_mean)), "cpu", 2, 0);
    BOOST_TEST(model.info().torch_threads == 2);
    BOOST_TEST(model.info().device == "cpu");
    BOOST_TEST(model.info().precision == "fp32");
    BOOST_TEST(model.info().slots == 1);
    BOOST_TEST(model.slots() == 1);
    BOOST_TEST(model.name() == "m");
    auto in = random_input(1, 4, 4, 0.0f, 1.0f);
    BOOST_CHECK_THROW(model.run(in.data(), 1, 4, 4, 1), ModelError);
    BOOST_CHECK_THROW(model.run(in.data(), 1, 4, 4, -1), ModelError);
}

namespace {

using BlasThreads = int (*)();

BlasThreads openblas_get_num_threads() {
    return reinterpret_cast<BlasThreads>(::dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
}

boost::test_tools::assertion_result runs_on_openblas(boost::unit_test::test_unit_id) {
    // The file that defines sgemm_ decides: OpenBLAS's LAPACK can be loaded beside netlib's BLAS.
    boost::test_tools::assertion_result r(openblas_get_num_threads() != nullptr &&
                                          blas_library().find("openblas") != std::string::npos);
    r.message() << "LibTorch does not call OpenBLAS here (" << blas_library() << ")";
    return r;
}

}  // namespace

// OpenBLAS starts a thread per core in every call unless told otherwise; with one model call
// per core that is cores x cores threads. Each call gets its LibTorch thread count.
BOOST_AUTO_TEST_CASE(openblas_threads_follow_the_torch_threads, *boost::unit_test::precondition(runs_on_openblas)) {
    const BlasThreads threads = openblas_get_num_threads();
    fit::TempDir dir;
    const std::string path = demo(dir, "pm.pt", DemoModel::pointwise_mean);
    Model per_core(config(path), "cpu", 1, 2);  // the pipeline's CPU default: a call per core
    BOOST_TEST(threads() == 1);
    {
        Model wide(config(path), "cpu", 2, 0);
        BOOST_TEST(threads() == 2);
    }
    auto in = random_input(1, 4, 4, 0.0f, 1.0f);
    per_core.run(in.data(), 1, 4, 4, 0);  // the call restores its own count
    BOOST_TEST(threads() == 1);
}

BOOST_AUTO_TEST_CASE(concurrent_slots_give_the_same_results) {
    fit::TempDir dir;
    Model model(config(demo(dir, "t.pt", DemoModel::tissue), Activation::softmax), "cpu", 0, 2);
    BOOST_REQUIRE_EQUAL(model.slots(), 2);
    const int n = 2, h = 32, w = 32;
    auto in = random_input(n, h, w, -2.0f, 2.5f, 5);
    ModelOutput reference = model.run(in.data(), n, h, w, 0);
    std::vector<ModelOutput> results(2);
    std::vector<std::thread> threads;
    for (int slot = 0; slot < 2; ++slot)
        threads.emplace_back([&, slot] {
            for (int i = 0; i < 5; ++i) results[slot] = model.run(in.data(), n, h, w, slot);
        });
    for (auto& t : threads) t.join();
    for (const auto& r : results) BOOST_TEST(r.data == reference.data);
}

BOOST_AUTO_TEST_CASE(tissue_model_separates_pink_and_purple_from_white) {
    fit::TempDir dir;
    Model model(config(demo(dir, "t.pt", DemoModel::tissue), Activation::softmax), "cpu", 0, 0);
    const int h = 16, w = 16;
    const int pink[3] = {230, 150, 200}, purple[3] = {120, 80, 160}, white[3] = {245, 245, 245},
              paper[3] = {235, 232, 238};
    auto p_tissue = [&](const int rgb[3], float& lo, float& hi) {
        auto in = imagenet_patch(1, h, w, rgb);
        ModelOutput out = model.run(in.data(), 1, h, w, 0);
        BOOST_REQUIRE_EQUAL(out.c, 2);
        lo = 1, hi = 0;
        for (int i = 0; i < h * w; ++i) {
            float p = at(out, 0, 1, i / w, i % w);
            lo = std::min(lo, p), hi = std::max(hi, p);
            BOOST_REQUIRE(std::abs(p + at(out, 0, 0, i / w, i % w) - 1) < 1e-5);
        }
    };
    float lo, hi;
    p_tissue(pink, lo, hi);
    BOOST_TEST_MESSAGE("pink p(tissue) in [" << lo << ", " << hi << "]");
    BOOST_TEST(lo > 0.5f);
    p_tissue(purple, lo, hi);
    BOOST_TEST_MESSAGE("purple p(tissue) in [" << lo << ", " << hi << "]");
    BOOST_TEST(lo > 0.5f);
    p_tissue(white, lo, hi);
    BOOST_TEST_MESSAGE("white p(tissue) in [" << lo << ", " << hi << "]");
    BOOST_TEST(hi < 0.5f);
    p_tissue(paper, lo, hi);
    BOOST_TEST_MESSAGE("off-white p(tissue) in [" << lo << ", " << hi << "]");
    BOOST_TEST(hi < 0.5f);

    // Left half white, right half pink: the 3x3 smoothing must not leak past one pixel, and
    // the zero padding at the patch border must not turn white corners into tissue.
    auto white_in = imagenet_patch(1, h, w, white);
    auto pink_in = imagenet_patch(1, h, w, pink);
    for (int c = 0; c < 3; ++c)
        for (int y = 0; y < h; ++y)
            for (int x = w / 2; x < w; ++x) white_in[(c * h + y) * w + x] = pink_in[(c * h + y) * w + x];
    ModelOutput mixed = model.run(white_in.data(), 1, h, w, 0);
    for (int y = 0; y < h; ++y) {
        for (int x = 0; x < w / 2 - 1; ++x) BOOST_TEST(at(mixed, 0, 1, y, x) < 0.5f);
        for (int x = w / 2 + 1; x < w; ++x) BOOST_TEST(at(mixed, 0, 1, y, x) > 0.5f);
    }
}

BOOST_AUTO_TEST_CASE(host_buffer_is_writable) {
    fit::TempDir dir;
    Model model(config(demo(dir, "pm.pt", DemoModel::pointwise_mean)), "cpu", 0, 0);
    const std::size_t count = 3 * 64 * 64 * 4;
    std::shared_ptr<float> a = model.host_buffer(count);
    std::shared_ptr<float> b = model.host_buffer(count);
    BOOST_REQUIRE(a);
    BOOST_TEST(a.get() != b.get());
    for (std::size_t i = 0; i < count; ++i) a.get()[i] = static_cast<float>(i % 97) / 97.0f;
    double sum = 0;
    for (std::size_t i = 0; i < count; ++i) sum += a.get()[i];
    BOOST_TEST(sum > 0);
    BOOST_TEST(a.get()[count - 1] == static_cast<float>((count - 1) % 97) / 97.0f);
    ModelOutput out = model.run(a.get(), 4, 64, 64, 0);
    BOOST_TEST(out.n == 4);
}

BOOST_AUTO_TEST_CASE(rgb_input_matches_normalized_floats_in_every_slot) {
    // run_rgb (the pipeline's uint8 batches, normalized where the model runs) must equal
    // normalize_rgb followed by run().
    fit::TempDir dir;
    ModelConfig cfg = config(demo(dir, "m.pt", DemoModel::pointwise_mean));
    cfg.mean = {0.485f, 0.456f, 0.406f};
    cfg.std = {0.229f, 0.224f, 0.225f};
    Model model(cfg, "cpu", 1, 2);
    const int n = 2, h = 16, w = 24, pixels = h * w;
    std::vector<std::uint8_t> rgb(static_cast<std::size_t>(n) * pixels * 3);
    std::mt19937 rng(3);
    for (auto& v : rgb) v = static_cast<std::uint8_t>(rng() & 0xff);
    float scale[3], bias[3];
    for (int c = 0; c < 3; ++c) {
        scale[c] = 1.0f / (255.0f * cfg.std[c]);
        bias[c] = -cfg.mean[c] / cfg.std[c];
    }
    std::vector<float> planar(rgb.size());
    for (int b = 0; b < n; ++b)
        normalize_rgb(rgb.data() + b * pixels * 3, pixels, scale, bias, planar.data() + b * pixels * 3);
    const ModelOutput a = model.run(planar.data(), n, h, w, 0);
    for (int slot = 0; slot < 2; ++slot) {
        const ModelOutput r = model.run_rgb(rgb.data(), n, h, w, slot);
        BOOST_REQUIRE(a.shape == r.shape);
        double worst = 0;
        for (std::size_t i = 0; i < a.data.size(); ++i) worst = std::max(worst, double(std::abs(a.data[i] - r.data[i])));
        BOOST_TEST(worst < 1e-5);
    }
    // A smaller batch after a larger one in the same slot reads only its own patches.
    const ModelOutput one = model.run_rgb(rgb.data() + pixels * 3, 1, h, w, 1);
    BOOST_REQUIRE(one.n == 1);
    for (std::size_t i = 0; i < one.data.size(); ++i)
        BOOST_TEST(std::abs(one.data[i] - a.data[a.data.size() / 2 + i]) < 1e-5);
}

BOOST_AUTO_TEST_CASE(cpu_micro_batch_splits_calls_and_joins_their_outputs) {
    // call_size writes each call's patch count into channel 0 and the channel mean into 1: a
    // batch of 8 in calls of 3 must come back as calls of 3, 3 and 2, every patch in its place.
    fit::TempDir dir;
    const int n = 8, h = 6, w = 5;
    const auto in = random_input(n, h, w, -1.0f, 1.0f);
    for (const auto& [micro, sizes] : std::vector<std::pair<int, std::vector<int>>>{
             {0, {1, 1, 1, 1, 1, 1, 1, 1}},  // 0: the default (1)
             {3, {3, 3, 3, 3, 3, 3, 2, 2}},
             {8, {8, 8, 8, 8, 8, 8, 8, 8}},
             {100, {8, 8, 8, 8, 8, 8, 8, 8}}}) {
        ModelConfig cfg = config(demo(dir, "c.pt", DemoModel::call_size));
        if (micro > 0) cfg.cpu_micro_batch = micro;
        Model model(cfg, "cpu", 1, 1);
        const ModelOutput out = model.run(in.data(), n, h, w, 0);
        BOOST_REQUIRE((out.shape == std::vector<std::int64_t>{n, 2, h, w}));
        for (int b = 0; b < n; ++b) {
            BOOST_TEST(at(out, b, 0, h - 1, w - 1) == sizes[static_cast<std::size_t>(b)]);
            BOOST_TEST(std::abs(at(out, b, 1, 2, 3) - channel_mean(in, h, w, b, 2, 3)) < 1e-5);
        }
    }

    // Detection outputs may differ in box count per call: ragged_boxes returns [B, B, 6].
    // Calls of 3, 3 and 2 join as [8, 3, 6], the last call's rows padded with zeros.
    ModelConfig cfg = config(demo(dir, "r.pt", DemoModel::ragged_boxes));
    cfg.task = Task::detection;
    cfg.cpu_micro_batch = 3;
    Model model(cfg, "cpu", 1, 1);
    const ModelOutput out = model.run(in.data(), n, h, w, 0);
    BOOST_REQUIRE((out.shape == std::vector<std::int64_t>{n, 3, 6}));
    for (int b = 0; b < n; ++b) {
        const float* rows = out.data.data() + static_cast<std::size_t>(b) * 3 * 6;
        double mean = 0;
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) mean += channel_mean(in, h, w, b, y, x);
        mean /= h * w;
        BOOST_TEST(rows[2] == 8.0f);
        BOOST_TEST(std::abs(rows[4] - mean) < 1e-5);
        for (int i = 6; i < 18; ++i) BOOST_TEST(rows[i] == 0.0f);
    }
}

BOOST_AUTO_TEST_CASE(micro_batches_keep_outputs_that_alias_the_input) {
    // identity hands back the normalized input, which on CPU lives in the slot's scratch
    // buffer: every patch must come back as itself, not as the last chunk written there.
    fit::TempDir dir;
    ModelConfig cfg = config(demo(dir, "i.pt", DemoModel::identity));
    cfg.mean = {0, 0, 0};
    cfg.std = {1, 1, 1};
    Model model(cfg, "cpu", 1, 1);
    const int n = 3, h = 4, w = 5, pixels = h * w;
    std::vector<std::uint8_t> rgb(static_cast<std::size_t>(n) * pixels * 3);
    for (int b = 0; b < n; ++b)
        std::fill(rgb.begin() + b * pixels * 3, rgb.begin() + (b + 1) * pixels * 3, static_cast<std::uint8_t>(51 * (b + 1)));
    const ModelOutput out = model.run_rgb(rgb.data(), n, h, w, 0);
    BOOST_REQUIRE((out.shape == std::vector<std::int64_t>{n, 3, h, w}));
    for (int b = 0; b < n; ++b)
        for (int c = 0; c < 3; ++c) BOOST_TEST(std::abs(at(out, b, c, h - 1, w - 1) - 51.0f * (b + 1) / 255.0f) < 1e-6f, b);
}

BOOST_AUTO_TEST_CASE(host_buffers_come_from_a_pool) {
    fit::TempDir dir;
    Model model(config(demo(dir, "m.pt", DemoModel::pointwise_mean)), "cpu", 1, 1);
    const float* first = nullptr;
    {
        std::shared_ptr<float> a = model.host_buffer(1 << 20);
        first = a.get();
        a.get()[(1 << 20) - 1] = 1.0f;
    }
    std::shared_ptr<float> b = model.host_buffer(1 << 20);  // the freed buffer comes back
    BOOST_TEST(b.get() == first);
    std::shared_ptr<float> c = model.host_buffer(1 << 20);  // a second one while b lives
    BOOST_TEST(c.get() != b.get());
    std::shared_ptr<std::uint8_t> bytes = model.host_bytes(100);
    bytes.get()[99] = 7;
    // Buffers may outlive their model.
    std::shared_ptr<float> kept;
    {
        Model other(config(demo(dir, "m.pt", DemoModel::pointwise_mean)), "cpu", 1, 1);
        kept = other.host_buffer(16);
    }
    kept.get()[15] = 2.0f;
    BOOST_TEST(kept.get()[15] == 2.0f);
}

BOOST_AUTO_TEST_CASE(cuda_fp16_matches_fp32,
                     *boost::unit_test::label("gpu") * boost::unit_test::precondition(fit::has_cuda_gpu)) {
    fit::TempDir dir;
    for (auto kind : {DemoModel::tissue, DemoModel::pointwise_mean}) {
        std::string path = demo(dir, "g.pt", kind);
        ModelConfig cfg32 = config(path, Activation::softmax);
        cfg32.precision = Precision::fp32;
        ModelConfig cfg16 = cfg32;
        cfg16.precision = Precision::fp16;
        Model gpu32(cfg32, "cuda", 0, 0);
        Model gpu16(cfg16, "cuda", 0, 0);
        Model cpu(cfg32, "cpu", 0, 0);
        const int gpus = cuda_device_count();
        BOOST_TEST(gpu32.slots() == 2 * gpus);
        BOOST_TEST(gpu16.info().precision == "fp16");
        BOOST_TEST(gpu16.info().device == "cuda (x" + std::to_string(gpus) + ")");
        const int n = 4, h = 64, w = 64;
        auto src = random_input(n, h, w, -2.0f, 2.5f, 9);
        std::shared_ptr<float> in = gpu32.host_buffer(src.size());
        std::copy(src.begin(), src.end(), in.get());
        for (int slot = 0; slot < 2; ++slot) {
            ModelOutput o32 = gpu32.run(in.get(), n, h, w, slot);
            ModelOutput o16 = gpu16.run(in.get(), n, h, w, slot);
            ModelOutput oc = cpu.run(src.data(), n, h, w, 0);
            BOOST_REQUIRE_EQUAL(o32.data.size(), oc.data.size());
            BOOST_REQUIRE_EQUAL(o16.data.size(), oc.data.size());
            double d16 = 0, dcpu = 0;
            for (std::size_t i = 0; i < oc.data.size(); ++i) {
                d16 = std::max(d16, static_cast<double>(std::abs(o16.data[i] - o32.data[i])));
                dcpu = std::max(dcpu, static_cast<double>(std::abs(oc.data[i] - o32.data[i])));
            }
            BOOST_TEST_MESSAGE("max |fp16 - fp32| " << d16 << ", max |cpu - cuda fp32| " << dcpu);
            BOOST_TEST(d16 < 1e-2);
            BOOST_TEST(dcpu < 1e-4);
        }
    }
}

// What LibTorch 1.13 raises for a file calling an operator it lacks (a torch 2.x ViT), as
// tests/pytorch/oracle.py sees it end to end on the Debian build.
BOOST_AUTO_TEST_CASE(load_error_names_a_missing_operator) {
    const std::string raw =
        "\nUnknown builtin op: aten::scaled_dot_product_attention.\nHere are some suggestions: \n"
        "\taten::_scaled_dot_product_attention\n\nThe original call is:\n  File \"code/__torch__/timm.py\", "
        "line 32\n    x = torch.scaled_dot_product_attention(q, k, v)\n";
    const std::string msg = load_error("vit.pt", raw, "1.13.0");
    BOOST_TEST(msg == "cannot load TorchScript file 'vit.pt': it calls operator "
                      "aten::scaled_dot_product_attention, which this LibTorch (1.13.0) does not have; "
                      "the file was saved by a newer PyTorch. Run it with flowinfer built against a "
                      "newer LibTorch, such as the one in a PyPI torch wheel: scripts/torch-venv.sh "
                      "BUILD_DIR (README, \"PyTorch 2.x and CUDA\")");
    // Any other load error keeps its first non-blank line.
    BOOST_TEST(load_error("m.pt", "\n  PytorchStreamReader failed locating file constants.pkl  \nmore", "2.11.0") ==
               "cannot load TorchScript file 'm.pt': PytorchStreamReader failed locating file constants.pkl");
    BOOST_TEST(forward_message("Traceback\n  line\nRuntimeError: boom\n") ==
               "RuntimeError: boom\nTraceback\n  line\nRuntimeError: boom");
    // A convolution that wants other channels (LibTorch 1.13 and 2.x word it the same).
    BOOST_TEST((channel_mismatch("forward failed: RuntimeError: Given groups=1, weight of size [16, 1, 3, 3], expected "
                                 "input[1, 3, 256, 256] to have 1 channels, but got 3 channels instead\n...") ==
                std::pair<int, int>{1, 3}));
    BOOST_TEST((channel_mismatch("expected input[8, 1, 64, 64] to have 12 channels, but got 1 channels instead") ==
                std::pair<int, int>{12, 1}));
    BOOST_TEST((channel_mismatch("RuntimeError: boom") == std::pair<int, int>{0, 0}));
}
