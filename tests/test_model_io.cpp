// Models from the field: input channels (models[].channels) against an independent
// computation, tuple and dict outputs (models[].output), channels-last maps
// (models[].output_layout), WSInfer model directories, self-describing models (the archive's
// flowinfer.json) and their precedence, `flowinfer inspect`, and the errors of each.
#define BOOST_TEST_MODULE test_model_io
#include <boost/test/unit_test.hpp>

#include "tests/model_io_support.hpp"

#include <flowinfer/config.hpp>
#include <flowinfer/demo.hpp>
#include <flowinfer/errors.hpp>
#include <flowinfer/pipeline.hpp>

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;
namespace utf = boost::unit_test;
using namespace flowinfer;

namespace {

const std::string kCli = FLOWINFER_CLI;

using Fixture = fit::ModelFixture;
using fit::config_error_of;
using fit::contains;

// The map against the slide's own level-0 pixels through `expected` (an 8-bit value from R, G,
// B): pixels off by more than one, and the worst difference.
template <class F>
std::pair<std::int64_t, int> compare_map(const std::string& slide, const std::string& map, F expected) {
    const fit::Image src = fit::read_level(slide, 0), out = fit::read_level(map, 0);
    BOOST_REQUIRE(out.width == src.width);
    BOOST_REQUIRE(out.height == src.height);
    std::int64_t bad = 0;
    int worst = 0;
    for (std::int64_t y = 0; y < out.height; ++y)
        for (std::int64_t x = 0; x < out.width; ++x) {
            const std::uint8_t* p = src.at(x, y);
            const int d = std::abs(out.at(x, y)[0] - static_cast<int>(std::lround(expected(p[0], p[1], p[2]))));
            worst = std::max(worst, d);
            bad += d > 1;
        }
    return {bad, worst};
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(model_io, Fixture)

BOOST_AUTO_TEST_CASE(grey_and_single_channel_inputs_equal_an_independent_computation) {
    // one_channel's map is its input (mean 0, std 1, no activation): round(255 * y / 255) for y
    // BT.601 luma (its flowinfer.json says "gray") or G (channels = [1] in pipeline.toml).
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    const std::string m = model(DemoModel::one_channel);
    const Config cfg = config(slide, {fmt::format("name = \"gray\"\npath = \"{}\"\nactivation = \"none\"", m),
                                      fmt::format("name = \"green\"\npath = \"{}\"\nactivation = \"none\"\nchannels = [1]", m)});
    BOOST_TEST(cfg.models[0].channels == std::vector<int>{kLuma}, boost::test_tools::per_element());
    BOOST_TEST(cfg.models[0].metadata == m + ":flowinfer.json");
    BOOST_TEST(cfg.models[1].channels == std::vector<int>{1}, boost::test_tools::per_element());
    const RunSummary s = run(cfg);
    const auto [gray_bad, gray_worst] =
        compare_map(slide, map_of(s, "gray"), [](int r, int g, int b) { return 0.299 * r + 0.587 * g + 0.114 * b; });
    const auto [green_bad, green_worst] = compare_map(slide, map_of(s, "green"), [](int, int g, int) { return g; });
    BOOST_TEST_MESSAGE("gray: worst " << gray_worst << "; green: worst " << green_worst);
    BOOST_TEST(gray_bad == 0);
    BOOST_TEST(green_worst == 0);
}

BOOST_AUTO_TEST_CASE(a_model_that_wants_other_channels_says_how_many_and_names_channels) {
    const std::string slide = fit::shared_slide("small.svs");
    const Config cfg = config(slide, {fmt::format("name = \"gray\"\npath = \"{}\"\nchannels = \"rgb\"\nmean = [0, 0, 0]\n"
                                                  "std = [1, 1, 1]",
                                                  model(DemoModel::one_channel))});
    const auto [key, what] = config_error_of(cfg);
    BOOST_TEST(key == "models[0].channels");
    BOOST_TEST(contains(what, "the model takes 1 input channel(s); channels = \"rgb\" gives 3"), what);
    BOOST_TEST(contains(what, dir / "pipeline.toml"));
    // Through the CLI: a config error, exit 2.
    const fit::CmdResult r = fit::run_cmd(kCli + " run " + dir / "pipeline.toml" + " --quiet");
    BOOST_TEST(r.exit_code == 2, r.output);
    BOOST_TEST(contains(r.output, "key 'models[0].channels'"));
}

BOOST_AUTO_TEST_CASE(tuple_and_dict_outputs_give_the_element_output_names) {
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    const std::string mean01 = "mean = [0, 0, 0]\nstd = [1, 1, 1]\nactivation = \"none\"";
    const std::string plain = model_with("dict-plain.pt", DemoModel::dict_output, "");
    const Config cfg = config(slide, {fmt::format("name = \"dict\"\npath = \"{}\"\n{}", model(DemoModel::dict_output), mean01),
                                      fmt::format("name = \"tuple\"\npath = \"{}\"\n{}", model(DemoModel::tuple_output), mean01),
                                      fmt::format("name = \"first\"\npath = \"{}\"\n{}", plain, mean01)});
    BOOST_TEST(output_name(cfg.models[0].output) == "[\"seg\"]");  // the models' own flowinfer.json
    BOOST_TEST(output_name(cfg.models[1].output) == "[1]");
    BOOST_TEST(output_name(cfg.models[2].output) == "the first tensor");
    const RunSummary s = run(cfg);
    // "seg" and element 1 are pointwise_mean's map; the first tensor of the dict is "aux", 0.25.
    BOOST_TEST(fit::mean_oracle(slide, map_of(s, "dict"), 1).bad == 0);
    BOOST_TEST(fit::mean_oracle(slide, map_of(s, "tuple"), 1).bad == 0);
    const fit::Image aux = fit::read_level(map_of(s, "first"), 0);
    BOOST_TEST(int(aux.at(100, 100)[0]) == 64);  // round(255 x 0.25)

    struct Bad {
        std::string entry, says;
    };
    const std::string dict = model(DemoModel::dict_output), tuple = model(DemoModel::tuple_output);
    const Bad bad[] = {
        {fmt::format("path = \"{}\"\noutput = \"nope\"", dict), "output = \"nope\": forward's dict has no such key (it has: aux, seg)"},
        {fmt::format("path = \"{}\"\noutput = 0", dict), "output = 0 picks an element of a tuple or list, but forward returned dict {aux: "},
        {fmt::format("path = \"{}\"\noutput = 5", tuple), "output = 5 is out of range: forward returned tuple (Tensor [1, 7], Tensor [1, 2, 256, 256]) of 2 element(s)"},
        {fmt::format("path = \"{}\"\noutput = \"seg\"", tuple), "output = \"seg\" picks a dict entry, but forward returned tuple"},
    };
    for (const Bad& b : bad) {
        const auto [key, what] = config_error_of(config(slide, {"name = \"m\"\n" + b.entry + "\n" + mean01}));
        BOOST_TEST(key == "models[0].output");
        BOOST_TEST(contains(what, b.says), what);
    }
}

BOOST_AUTO_TEST_CASE(a_channels_last_map_equals_its_channels_first_twin) {
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    const std::string mean01 = "mean = [0, 0, 0]\nstd = [1, 1, 1]\nactivation = \"none\"";
    const Config cfg = config(slide, {fmt::format("name = \"nhwc\"\npath = \"{}\"\n{}", model(DemoModel::nhwc_mean), mean01),
                                      fmt::format("name = \"nchw\"\npath = \"{}\"\n{}", model(DemoModel::pointwise_mean), mean01)});
    BOOST_TEST((cfg.models[0].output_layout == OutputLayout::nhwc));
    const RunSummary s = run(cfg);
    const fit::Image a = fit::read_level(map_of(s, "nhwc"), 0), b = fit::read_level(map_of(s, "nchw"), 0);
    BOOST_TEST((a.rgb == b.rgb));
    BOOST_TEST(fit::mean_oracle(slide, map_of(s, "nhwc"), 1).bad == 0);
    // Read as channels-first, the map is 256 x 2: the error says what to set.
    try {
        run(config(slide, {fmt::format("name = \"m\"\npath = \"{}\"\n{}\noutput_layout = \"nchw\"", model(DemoModel::nhwc_mean), mean01)}));
        BOOST_ERROR("no error");
    } catch (const ModelError& e) {
        BOOST_TEST(contains(e.what(), "output size 256x2 (h x w)"), e.what());
        BOOST_TEST(contains(e.what(), "set output_layout = \"nhwc\""), e.what());
    }
}

// CUDA (gpu-labelled; skipped without a GPU): the input channels are mapped on the device (a
// 1x1 convolution from RGB); the grey-level map at fp32 equals the CPU's.
BOOST_AUTO_TEST_CASE(grey_input_on_cuda_matches_the_cpu, *utf::label("gpu") * utf::precondition(fit::has_cuda_gpu)) {
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    const std::string entry = fmt::format("name = \"gray\"\npath = \"{}\"\nactivation = \"none\"", model(DemoModel::one_channel));
    const fit::Image cpu = fit::read_level(map_of(run(config(slide, {entry})), "gray"), 0);
    Config gpu = config(slide, {entry + "\nprecision = \"fp32\"\ndevice = \"cuda:0\""}, "");
    gpu.output_dir = dir / "out-gpu";
    const fit::Image got = fit::read_level(map_of(run(gpu), "gray"), 0);
    BOOST_REQUIRE(got.rgb.size() == cpu.rgb.size());
    int worst = 0;
    for (std::size_t i = 0; i < got.rgb.size(); ++i) worst = std::max(worst, std::abs(int(got.rgb[i]) - int(cpu.rgb[i])));
    BOOST_TEST(worst <= 1);
}

BOOST_AUTO_TEST_SUITE_END()
