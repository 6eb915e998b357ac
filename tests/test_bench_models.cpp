#define BOOST_TEST_MODULE test_bench_models
#include <boost/test/unit_test.hpp>

#include "stages/model.hpp"
#include "tests/test_support.hpp"

#include <flowinfer/demo.hpp>
#include <flowinfer/errors.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

using namespace flowinfer;

namespace {

ModelConfig config(const std::string& path, int batch_size = 2) {
    ModelConfig cfg;
    cfg.name = "bench";
    cfg.path = path;
    cfg.batch_size = batch_size;
    cfg.activation = Activation::none;  // look at the raw logits
    return cfg;
}

std::vector<float> normal_input(int n, int h, int w, unsigned seed = 11) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> v(static_cast<std::size_t>(n) * 3 * h * w);
    for (float& x : v) x = dist(rng);
    return v;
}

ModelOutput run_model(const std::string& path, int n, int size, unsigned seed = 11) {
    Model m(config(path, n), "cpu", 2, 1);
    const std::vector<float> in = normal_input(n, size, size, seed);
    return m.run(in.data(), n, size, size, 0);
}

// Output [n, 2, size, size], every value finite, logits spread over a sane range (not
// collapsed to a constant, not blown up), and not the same map in both classes.
void check_logits(const ModelOutput& o, int n, int size) {
    BOOST_TEST_REQUIRE((o.shape == std::vector<std::int64_t>{n, 2, size, size}));
    BOOST_TEST(o.n == n);
    BOOST_TEST(o.c == 2);
    BOOST_TEST(o.h == size);
    BOOST_TEST(o.w == size);
    BOOST_TEST_REQUIRE(o.data.size() == static_cast<std::size_t>(n) * 2 * size * size);
    std::size_t non_finite = 0;
    double sum = 0, sum2 = 0, class_diff = 0;
    const std::size_t plane = static_cast<std::size_t>(size) * size;
    for (int b = 0; b < n; ++b)
        for (std::size_t i = 0; i < plane; ++i) {
            const float c0 = o.data[(static_cast<std::size_t>(b) * 2) * plane + i];
            const float c1 = o.data[(static_cast<std::size_t>(b) * 2 + 1) * plane + i];
            if (!std::isfinite(c0) || !std::isfinite(c1)) ++non_finite;
            sum += c0 + c1;
            sum2 += double(c0) * c0 + double(c1) * c1;
            class_diff += std::abs(double(c0) - c1);
        }
    BOOST_TEST_REQUIRE(non_finite == 0u);
    const double count = static_cast<double>(o.data.size());
    const double mean = sum / count;
    const double sd = std::sqrt(std::max(0.0, sum2 / count - mean * mean));
    BOOST_TEST_MESSAGE("logits mean " << mean << " std " << sd);
    BOOST_TEST(sd > 0.01);
    BOOST_TEST(sd < 100.0);
    BOOST_TEST(std::abs(mean) < 100.0);
    BOOST_TEST(class_diff / (count / 2) > 1e-3);  // the two classes differ
}

std::string read_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    BOOST_TEST_REQUIRE(f.good());
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// Multiply-accumulates of one conv layer (stride 1, 'same' padding) on an h x w map.
double conv_macs(double in, double out, double k, double h, double w) {
    return in * out * k * k * h * w;
}

// The architectures as documented in demo.hpp / demo_models.cpp, counted independently.
double light_macs(int size) {
    const double s = size;
    return conv_macs(3, 8, 3, s, s) + conv_macs(8, 2, 1, s, s);
}

double unet_macs(int size, int base) {
    const double c[4] = {double(base), 2.0 * base, 4.0 * base, 8.0 * base};
    double macs = 0, in = 3;
    for (int l = 0; l < 4; ++l) {  // encoder, level l at size / 2^l
        const double s = size >> l;
        macs += conv_macs(in, c[l], 3, s, s) + conv_macs(c[l], c[l], 3, s, s);
        in = c[l];
    }
    for (int l = 2; l >= 0; --l) {  // decoder: upsampled level below + skip
        const double s = size >> l;
        macs += conv_macs(c[l + 1] + c[l], c[l], 3, s, s) + conv_macs(c[l], c[l], 3, s, s);
    }
    return macs + conv_macs(c[0], 2, 1, size, size);  // head
}

}  // namespace

BOOST_AUTO_TEST_CASE(light_model_runs) {
    fit::TempDir dir;
    const std::string path = dir / "light.pt";
    write_demo_model(path, DemoModel::light);
    check_logits(run_model(path, 2, 256), 2, 256);
}

// The light model's map is a tissue mask: logit(tissue) - logit(background) = 100 (score - 0.2)
// with score = r/6 - 4g/3 + b/6 + 1 on colours in [0, 1], computed here from the colour alone.
BOOST_AUTO_TEST_CASE(light_model_maps_tissue) {
    fit::TempDir dir;
    const std::string path = dir / "light.pt";
    write_demo_model(path, DemoModel::light);
    Model m(config(path, 1), "cpu", 1, 1);
    const float mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
    struct Colour {
        const char* name;
        float rgb[3];
        bool tissue;
    };
    const Colour colours[] = {{"background", {245, 245, 245}, false},
                              {"eosin", {230, 150, 200}, true},
                              {"haematoxylin", {115, 75, 155}, true},
                              {"grey 215", {215, 215, 215}, false}};
    const int size = 32;
    const std::size_t plane = static_cast<std::size_t>(size) * size;
    for (const Colour& c : colours) {
        std::vector<float> in(3 * plane);
        for (int ch = 0; ch < 3; ++ch)
            std::fill_n(in.begin() + ch * plane, plane, (c.rgb[ch] / 255.0f - mean[ch]) / sd[ch]);
        const ModelOutput o = m.run(in.data(), 1, size, size, 0);
        BOOST_TEST_REQUIRE(o.data.size() == 2 * plane);
        const double score = c.rgb[0] / 255.0 / 6 - 4 * c.rgb[1] / 255.0 / 3 + c.rgb[2] / 255.0 / 6 + 1;
        double worst = 0;
        for (std::size_t i = 0; i < plane; ++i)  // borders included: no padding leaks in
            worst = std::max(worst, std::abs((o.data[plane + i] - o.data[i]) - 100.0 * (score - 0.2)));
        BOOST_TEST_INFO(c.name << ": score " << score);
        BOOST_TEST(worst < 1e-3);
        BOOST_TEST((score > 0.2) == c.tissue);
    }
}

BOOST_AUTO_TEST_CASE(unet_model_runs_256_base16) {
    fit::TempDir dir;
    const std::string path = dir / "unet.pt";
    write_demo_model(path, DemoModel::unet);  // base 16
    check_logits(run_model(path, 2, 256), 2, 256);
}

BOOST_AUTO_TEST_CASE(unet_model_runs_512_base32) {
    fit::TempDir dir;
    const std::string path = dir / "unet32.pt";
    write_demo_model(path, DemoModel::unet, 32);
    check_logits(run_model(path, 1, 512), 1, 512);
}

BOOST_AUTO_TEST_CASE(unet_needs_multiples_of_8_only) {
    // 264 = 8 * 33: odd sizes after three poolings still come back to the input size.
    fit::TempDir dir;
    const std::string path = dir / "unet.pt";
    write_demo_model(path, DemoModel::unet);
    check_logits(run_model(path, 1, 264), 1, 264);
}

BOOST_AUTO_TEST_CASE(unet_costs_far_more_than_light) {
    const double light = light_macs(256);
    const double unet16 = unet_macs(256, 16);
    const double unet32 = unet_macs(256, 32);
    BOOST_TEST_MESSAGE("MACs per 256x256 patch: light " << light << ", unet(16) " << unet16
                                                        << ", unet(32) " << unet32);
    BOOST_TEST(light == 232.0 * 256 * 256);
    BOOST_TEST(unet16 == 40784.0 * 256 * 256);
    BOOST_TEST(unet16 / light > 50.0);
    BOOST_TEST(unet32 / unet16 > 3.9);  // conv cost grows ~quadratically with the channels
}

BOOST_AUTO_TEST_CASE(weights_are_deterministic) {
    fit::TempDir a, b;
    for (DemoModel kind : {DemoModel::light, DemoModel::unet}) {
        // Same file name in two directories: TorchScript names the archive's root after it.
        write_demo_model(a / "m.pt", kind);
        write_demo_model(b / "m.pt", kind);
        BOOST_TEST((read_bytes(a / "m.pt") == read_bytes(b / "m.pt")));
        const ModelOutput x = run_model(a / "m.pt", 1, 64, 3);
        const ModelOutput y = run_model(b / "m.pt", 1, 64, 3);
        BOOST_TEST((x.data == y.data));
    }
}

BOOST_AUTO_TEST_CASE(unet_param_is_checked) {
    fit::TempDir dir;
    BOOST_CHECK_THROW(write_demo_model(dir / "u.pt", DemoModel::unet, 8), Error);
    BOOST_CHECK_THROW(write_demo_model(dir / "u.pt", DemoModel::unet, 65), Error);
    BOOST_CHECK_THROW(write_demo_model(dir / "u.pt", DemoModel::unet, 20.5f), Error);
    BOOST_CHECK_NO_THROW(write_demo_model(dir / "u.pt", DemoModel::unet, 64));
}
