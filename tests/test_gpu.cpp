// CUDA: precision, concurrent slots, pinned buffers, failures and multi-GPU. Every case is
// labelled "gpu" and skipped (reported as such) where no CUDA GPU is visible: CI's machines,
// and any CPU-only build (test_model checks the error there). scripts/gpu-check.sh runs them on
// a GPU host (--run_test=@gpu).
#define BOOST_TEST_MODULE test_gpu
#include <boost/test/unit_test.hpp>

#include "stages/model.hpp"
#include "tests/test_support.hpp"

#include <flowinfer/config.hpp>
#include <flowinfer/demo.hpp>
#include <flowinfer/pipeline.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

namespace fs = std::filesystem;
namespace utf = boost::unit_test;
using namespace flowinfer;

namespace {

// Every CUDA case: labelled "gpu", skipped (and reported so) without a GPU.
#define GPU_CASE *utf::label("gpu") * utf::precondition(fit::has_cuda_gpu)

struct Fixture {
    fit::TempDir dir;
    std::string model(DemoModel kind, float param = 0.0f) { return fit::demo_model(dir, kind, param); }
    std::string slide(const std::string& name, std::int64_t side, double tissue = 0.5) {
        const std::string path = dir / name;
        SyntheticSlideSpec spec;
        spec.width = spec.height = side;
        spec.tissue_fraction = tissue;
        spec.jpeg_quality = 0;
        if (!fs::exists(path)) write_synthetic_slide(path, spec);
        return path;
    }
    Config config(const std::vector<std::string>& slides, const std::string& model_path,
                  const std::string& out, Precision precision, const std::string& device = "cuda:0") {
        Config c;
        c.source = "test_gpu";
        c.slides = slides;
        c.output_dir = dir / out;
        c.patch_size = 256;
        c.overlap = 32;
        c.readers = 4;
        c.max_in_flight = 128;
        c.device = device;
        ModelConfig m;
        m.name = "m";
        m.path = model_path;
        m.batch_size = 8;
        m.precision = precision;
        c.models.push_back(m);
        return c;
    }
};

std::string map_of(const RunSummary& s, std::size_t i = 0) {
    BOOST_REQUIRE(s.slides.size() > i);
    BOOST_REQUIRE_MESSAGE(s.slides[i].ok(), s.slides[i].error);
    return s.slides[i].outputs.at(0).path;
}

struct MapDiff {
    int max = 0;
    double over_one = 0;  // share of pixels differing by more than one grey level
};

MapDiff compare_maps(const std::string& a, const std::string& b) {
    const fit::Image x = fit::read_level(a, 0), y = fit::read_level(b, 0);
    BOOST_REQUIRE_EQUAL(x.width, y.width);
    BOOST_REQUIRE_EQUAL(x.height, y.height);
    MapDiff d;
    std::int64_t over = 0;
    for (std::size_t i = 0; i < x.rgb.size(); i += 3) {
        const int diff = std::abs(int(x.rgb[i]) - int(y.rgb[i]));
        d.max = std::max(d.max, diff);
        over += diff > 1;
    }
    d.over_one = double(over) / double(x.rgb.size() / 3);
    return d;
}

ModelConfig model_config(const std::string& path, Precision p) {
    ModelConfig cfg;
    cfg.name = "m";
    cfg.path = path;
    cfg.precision = p;
    cfg.activation = Activation::softmax;
    return cfg;
}

std::vector<std::uint8_t> random_rgb(std::size_t count, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> dist(0, 255);
    std::vector<std::uint8_t> v(count);
    for (auto& b : v) b = static_cast<std::uint8_t>(dist(rng));
    return v;
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(cuda, Fixture)

// Tolerances, in grey levels of the map (255 x p(tissue)). The tissue model's probability is
// sigmoid(L) with L = 20 (score - 0.2), so at the tissue border (p near 0.5) a relative input
// error e moves a pixel by up to about 0.25 x 20 x 2.6 e x 255: fp16 (e = 2^-11) about 1.6
// levels, bf16 (e = 2^-8) about 13. fp16 within 3, bf16 within 16, and in both fewer than
// 2% of pixels more than one level off; CUDA fp32 (TF32 off) within 1 of the CPU's map.
BOOST_AUTO_TEST_CASE(fp16_and_bf16_maps_agree_with_fp32, GPU_CASE) {
    const std::string s = slide("he.tiff", 2048);
    const std::string m = model(DemoModel::tissue);
    const std::string ref = map_of(run(config({s}, m, "fp32", Precision::fp32)));
    Config cpu = config({s}, m, "cpu", Precision::fp32, "cpu");
    const MapDiff on_cpu = compare_maps(ref, map_of(run(cpu)));
    BOOST_TEST_MESSAGE("cuda fp32 vs cpu: max " << on_cpu.max << ", >1: " << on_cpu.over_one);
    BOOST_TEST(on_cpu.max <= 1);
    const MapDiff h = compare_maps(ref, map_of(run(config({s}, m, "fp16", Precision::fp16))));
    const MapDiff b = compare_maps(ref, map_of(run(config({s}, m, "bf16", Precision::bf16))));
    BOOST_TEST_MESSAGE("fp16 vs fp32: max " << h.max << ", >1: " << h.over_one);
    BOOST_TEST_MESSAGE("bf16 vs fp32: max " << b.max << ", >1: " << b.over_one);
    BOOST_TEST(h.max <= 3);
    BOOST_TEST(b.max <= 16);
    BOOST_TEST(h.over_one < 0.02);
    BOOST_TEST(b.over_one < 0.02);
}

// Two slots on one GPU: each call uploads, runs and downloads on its own stream and waits on
// that stream alone, so a second call runs while the first is still on the GPU. The infer
// stage's peak concurrency counts calls in flight at once (between upload and the stream's
// synchronize): two means two streams held work at the same moment. A heavy model (U-Net
// with 64 base channels, fp32, batches of 16 patches of 512 px) keeps each call on the GPU
// far longer than reading the next batch takes, so the second slot is always wanted.
BOOST_AUTO_TEST_CASE(infer_slots_overlap, GPU_CASE) {
    const std::string s = slide("big.tiff", 4096, 1.0);
    Config c = config({s}, model(DemoModel::unet, 64), "slots", Precision::fp32);
    c.patch_size = 512;
    c.overlap = 0;
    c.infer_slots = 2;
    c.models[0].batch_size = 16;
    c.max_in_flight = 128;
    const RunSummary r = run(c);
    BOOST_REQUIRE_MESSAGE(r.slides.at(0).ok(), r.slides.at(0).error);
    BOOST_TEST(r.runtime.infer_slots == 2);
    BOOST_TEST(r.stages.at("infer").peak_concurrency == 2);
}

BOOST_AUTO_TEST_CASE(pinned_buffers_are_reused, GPU_CASE) {
    Model m(model_config(model(DemoModel::pointwise_mean), Precision::fp16), "cuda:0", 0, 2);
    const int n = 8, side = 128;
    const std::size_t count = static_cast<std::size_t>(n) * side * side * 3;
    const std::vector<std::uint8_t> src = random_rgb(count, 3);
    const void* first = nullptr;
    for (int batch = 0; batch < 50; ++batch) {
        std::shared_ptr<std::uint8_t> buf = m.host_bytes(count);
        if (!first) first = buf.get();
        BOOST_TEST(m.host_pinned(buf.get()));
        std::copy(src.begin(), src.end(), buf.get());
        const ModelOutput out = m.run_rgb(buf.get(), n, side, side, batch % m.slots());
        BOOST_TEST(out.n == n);
    }
    // One buffer at a time was alive: the pool handed the same pinned block out 50 times.
    BOOST_TEST(m.host_allocations() == 1u);
    BOOST_TEST(m.host_bytes(count).get() == first);
    BOOST_TEST(!m.host_pinned(src.data()));
}

BOOST_AUTO_TEST_CASE(a_model_that_throws_on_the_gpu_fails_its_slide_only, GPU_CASE) {
    // As test_pipeline's CPU case: the model raises for a batch holding a bright patch, so the
    // blank slide fails and the one covered in tissue goes through.
    const std::string blank = slide("blank.tiff", 900, 0.0), tissue = slide("tissue.tiff", 900, 1.0);
    Config c = config({blank, tissue}, model(DemoModel::throw_above, 0.9f), "throw", Precision::fp32);
    c.models[0].mean = {0, 0, 0};
    c.models[0].std = {1, 1, 1};
    c.models[0].activation = Activation::none;
    const RunSummary r = run(c);
    BOOST_TEST((r.state == RunState::finished));
    BOOST_REQUIRE_EQUAL(r.slides.size(), 2u);
    BOOST_TEST((r.slides[0].status == SlideStatus::failed));
    BOOST_TEST(r.slides[0].error.find("flowinfer test model failure") != std::string::npos, r.slides[0].error);
    BOOST_TEST(r.slides[1].ok(), r.slides[1].error);
    BOOST_TEST(fit::files_ending_with(c.output_dir, ".partial").empty());
}

BOOST_AUTO_TEST_CASE(cuda_uses_every_visible_gpu, GPU_CASE) {
    const int gpus = cuda_device_count();
    const std::string path = model(DemoModel::tissue);
    Model all(model_config(path, Precision::fp32), "cuda", 0, 2);
    Model cpu(model_config(path, Precision::fp32), "cpu", 1, 1);
    BOOST_TEST(all.slots() == 2 * gpus);
    BOOST_TEST(all.info().device == fmt::format("cuda (x{})", gpus));
    const int n = 2, side = 64;
    const std::vector<std::uint8_t> src = random_rgb(static_cast<std::size_t>(n) * side * side * 3, 5);
    const ModelOutput want = cpu.run_rgb(src.data(), n, side, side, 0);
    std::shared_ptr<std::uint8_t> buf = all.host_bytes(src.size());
    std::copy(src.begin(), src.end(), buf.get());
    for (int slot = 0; slot < all.slots(); ++slot) {  // slot k runs on GPU k % gpus
        const ModelOutput got = all.run_rgb(buf.get(), n, side, side, slot);
        BOOST_REQUIRE_EQUAL(got.data.size(), want.data.size());
        float worst = 0;
        for (std::size_t i = 0; i < got.data.size(); ++i) worst = std::max(worst, std::abs(got.data[i] - want.data[i]));
        BOOST_TEST(worst < 1e-4f, "slot " << slot << " differs from the CPU by " << worst);
    }
    try {
        Model beyond(model_config(path, Precision::fp32), fmt::format("cuda:{}", gpus), 0, 0);
        BOOST_ERROR("cuda:" << gpus << " was accepted with " << gpus << " GPU(s)");
    } catch (const std::exception& e) {
        BOOST_TEST(std::string(e.what()).find("device(s) are available") != std::string::npos, e.what());
    }
}

BOOST_AUTO_TEST_SUITE_END()
