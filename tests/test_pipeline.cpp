// The whole graph on real and synthetic slides: geometry oracle, pyramid, blending,
// batching, backpressure, cancellation, embedding.
#define BOOST_TEST_MODULE test_pipeline
#include <boost/test/unit_test.hpp>

#include "tests/test_support.hpp"

#include <flowinfer/config.hpp>
#include <flowinfer/demo.hpp>
#include <flowinfer/errors.hpp>
#include <flowinfer/pipeline.hpp>

#include <fmt/format.h>

#include <tiffio.h>

#include <cmath>
#include <filesystem>

namespace fs = std::filesystem;
using namespace flowinfer;

namespace {

struct Fixture {
    fit::TempDir dir;
    std::string model(DemoModel kind, float param = 0.0f) {
        const std::string path = dir / fmt::format("model-{}-{}.pt", int(kind), param);
        if (!fs::exists(path)) write_demo_model(path, kind, param);
        return path;
    }
    // A pointwise config: mean 0, std 1, no activation: output = round(255 * mean(RGB)/255).
    Config config(const std::vector<std::string>& slides, const std::string& model_path, int patch = 256,
                  int overlap = 0) {
        Config c;
        c.source = "test";
        c.slides = slides;
        c.output_dir = dir / "out";
        c.patch_size = patch;
        c.overlap = overlap;
        c.readers = 2;
        c.max_in_flight = 32;
        c.torch_threads = 1;
        ModelConfig m;
        m.name = "mean";
        m.path = model_path;
        m.batch_size = 4;
        m.mean = {0, 0, 0};
        m.std = {1, 1, 1};
        m.activation = Activation::none;
        c.models.push_back(m);
        return c;
    }
    std::string synthetic(const std::string& name, std::int64_t w, std::int64_t h, double mpp = 0.25) {
        const std::string path = dir / name;
        SyntheticSlideSpec spec;
        spec.width = w;
        spec.height = h;
        spec.mpp = mpp;
        spec.jpeg_quality = 0;  // lossless, so the oracle can also use synthetic_pixel
        write_synthetic_slide(path, spec);
        return path;
    }
};

std::string output_of(const RunSummary& s, std::size_t i = 0) {
    BOOST_REQUIRE(s.slides.size() > i);
    BOOST_REQUIRE_MESSAGE(s.slides[i].ok, s.slides[i].error);
    BOOST_REQUIRE_EQUAL(s.slides[i].outputs.size(), 1u);
    return s.slides[i].outputs[0].path;
}

// The oracle: every output pixel equals the mean of R, G, B of the slide's own pixels at
// the working resolution (area-averaged by `shrink`), within +-3, except the last row and
// column.
// `expect` maps the mean grey level (0..255) to the expected output value.
double identity(double v) { return v; }

void check_mean_oracle(const std::string& slide, const std::string& output, int shrink, int level = 0,
                       double (*expect)(double) = identity) {
    const fit::Image src = fit::read_level(slide, level);
    const fit::Image out = fit::read_level(output, 0);
    BOOST_TEST(out.width == src.width / shrink);
    BOOST_TEST(out.height == src.height / shrink);
    std::int64_t bad = 0, checked = 0;
    int worst = 0;
    for (std::int64_t y = 0; y + 1 < out.height; ++y) {
        for (std::int64_t x = 0; x + 1 < out.width; ++x) {
            double acc = 0;
            for (int dy = 0; dy < shrink; ++dy)
                for (int dx = 0; dx < shrink; ++dx) {
                    const std::uint8_t* p = src.at(x * shrink + dx, y * shrink + dy);
                    acc += (p[0] + p[1] + p[2]) / 3.0;
                }
            const int want = int(std::lround(expect(acc / (shrink * shrink))));
            const int got = out.at(x, y)[0];
            worst = std::max(worst, std::abs(got - want));
            bad += std::abs(got - want) > 3;
            ++checked;
        }
    }
    BOOST_TEST_MESSAGE(fmt::format("{}: {} pixels, worst |diff| {}", output, checked, worst));
    BOOST_TEST(checked > 0);
    BOOST_TEST(bad == 0);
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(pipeline, Fixture)

BOOST_AUTO_TEST_CASE(oracle_cmu_small_region_at_several_overlaps) {
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    for (int overlap : {0, 48, 100}) {
        Config c = config({slide}, model(DemoModel::pointwise_mean), 256, overlap);
        c.output_dir = dir / fmt::format("out-{}", overlap);
        const RunSummary s = run(c);
        check_mean_oracle(slide, output_of(s), 1);
    }
}

BOOST_AUTO_TEST_CASE(oracle_crop_breast_slide_weighted_blend) {
    const std::string slide = fit::shared_slide("CropBreastSlide.tiff");
    Config c = config({slide}, model(DemoModel::pointwise_mean), 256, 64);
    c.models[0].blend = Blend::weighted;
    check_mean_oracle(slide, output_of(run(c)), 1);
}

BOOST_AUTO_TEST_CASE(oracle_synthetic_not_a_multiple_of_the_stride) {
    const std::string slide = synthetic("odd.tiff", 1001, 777);
    for (int overlap : {0, 40}) {
        Config c = config({slide}, model(DemoModel::pointwise_mean), 256, overlap);
        c.output_dir = dir / fmt::format("out-{}", overlap);
        check_mean_oracle(slide, output_of(run(c)), 1);
    }
}

BOOST_AUTO_TEST_CASE(oracle_mpp_resize) {
    // CMU-1 at 0.499 µm/px asked for 0.998: level 0 shrunk by 2 with area averaging.
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    Config c = config({slide}, model(DemoModel::pointwise_mean), 256, 32);
    c.mpp = 0.998;
    const RunSummary s = run(c);
    BOOST_TEST(s.slides[0].outputs.at(0).downsample == 2.0, boost::test_tools::tolerance(1e-9));
    check_mean_oracle(slide, output_of(s), 2);
}

BOOST_AUTO_TEST_CASE(output_is_a_pyramid_that_openslide_reads) {
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    const std::string out = output_of(run(config({slide}, model(DemoModel::pointwise_mean))));
    const int levels = fit::level_count(out);
    BOOST_TEST(levels >= 2);
    for (int l = 0; l < levels; ++l) {
        BOOST_TEST(fit::level_downsample(out, l) == std::pow(2.0, l), boost::test_tools::tolerance(0.01));
        const fit::Image img = fit::read_level(out, l);
        BOOST_TEST(img.width > 0);
    }
    // MPP carried over from the slide (0.499 µm/px) as resolution tags in pixels per cm.
    BOOST_TEST(fit::property(out, "tiff.ResolutionUnit") == "centimeter");
    BOOST_TEST(10000.0 / std::stod(fit::property(out, "tiff.XResolution")) == 0.499,
               boost::test_tools::tolerance(0.001));
}

BOOST_AUTO_TEST_CASE(constant_model_gives_a_constant_image_without_seams) {
    const std::string slide = synthetic("const.tiff", 900, 700);
    for (Blend blend : {Blend::average, Blend::weighted}) {
        for (int overlap : {0, 37, 128}) {
            Config c = config({slide}, model(DemoModel::constant, 0.6f), 256, overlap);
            c.models[0].blend = blend;
            c.output_dir = dir / fmt::format("out-{}-{}", int(blend), overlap);
            const fit::Image img = fit::read_level(output_of(run(c)), 0);
            const int want = int(std::lround(0.6 * 255));
            std::int64_t off = 0;
            for (std::int64_t i = 0; i < img.width * img.height; ++i) off += img.rgb[3 * i] != want;
            BOOST_TEST(off == 0, "blend " << int(blend) << " overlap " << overlap);
        }
    }
}

BOOST_AUTO_TEST_CASE(partial_last_batch_is_flushed_and_patches_counted) {
    // 1001 x 777 at patch 256, overlap 0: 4 x 4 = 16 patches; batch 5 leaves one of 1.
    const std::string slide = synthetic("partial.tiff", 1001, 777);
    Config c = config({slide}, model(DemoModel::pointwise_mean));
    c.models[0].batch_size = 5;
    const RunSummary s = run(c);
    BOOST_TEST(s.slides.at(0).patches == 16);
    BOOST_TEST(s.stages.at("infer").items == 16);
    BOOST_TEST(s.stages.at("read_region").items == 16);
    check_mean_oracle(slide, output_of(s), 1);
}

BOOST_AUTO_TEST_CASE(backpressure_bounds_patches_in_flight) {
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    for (int limit : {4, 12}) {
        Config c = config({slide}, model(DemoModel::pointwise_mean), 128, 0);
        c.readers = 4;
        c.models[0].batch_size = 4;
        c.max_in_flight = limit;
        c.output_dir = dir / fmt::format("out-{}", limit);
        const RunSummary s = run(c);
        BOOST_TEST(s.slides.at(0).ok);
        BOOST_TEST(s.slides[0].patches == 18 * 24);
        BOOST_TEST(s.peak_in_flight <= limit);
        BOOST_TEST(s.peak_in_flight >= 4);  // a batch needs batch_size patches alive at once
    }
}

BOOST_AUTO_TEST_CASE(model_failure_cancels_and_leaves_no_output) {
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    Config c = config({slide}, model(DemoModel::throw_after, 3.0f));
    try {
        run(c);
        BOOST_FAIL("expected ModelError");
    } catch (const ModelError& e) {
        BOOST_TEST(std::string(e.what()).find("flowinfer test model failure") != std::string::npos);
    }
    const fs::path out = fs::path(c.output_dir) / "CMU-1-Small-Region";
    BOOST_TEST(!fs::exists(out / "mean.tif"));
    BOOST_TEST(!fs::exists(out / "mean.tif.partial"));
    const std::string summary = fit::read_text(fs::path(c.output_dir) / "summary.json");
    BOOST_TEST(summary.find("\"status\": \"failed\"") != std::string::npos);
    BOOST_TEST(summary.find("flowinfer test model failure") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(failed_slide_does_not_stop_the_others) {
    const std::string good = fit::shared_slide("CMU-1-Small-Region.svs");
    Config c = config({dir / "missing.svs", fit::shared_slide("negative/unreadable.svs"), good},
                      model(DemoModel::pointwise_mean));
    const RunSummary s = run(c);
    BOOST_REQUIRE_EQUAL(s.slides.size(), 3u);
    BOOST_TEST(!s.slides[0].ok);
    BOOST_TEST(s.slides[0].error.find("missing.svs") != std::string::npos);
    BOOST_TEST(!s.slides[1].ok);
    BOOST_TEST(s.slides[1].error.find("unreadable.svs") != std::string::npos);
    BOOST_TEST(!fs::exists(fs::path(c.output_dir) / "unreadable" / "mean.tif"));
    BOOST_TEST(s.slides[2].ok);
    check_mean_oracle(good, output_of(s, 2), 1);
}

BOOST_AUTO_TEST_CASE(slide_smaller_than_a_patch) {
    const std::string slide = fit::shared_slide("small.svs");
    const RunSummary s = run(config({slide}, model(DemoModel::pointwise_mean)));
    const std::string out = output_of(s);
    BOOST_TEST(s.slides[0].patches == 1);
    const fit::Image img = fit::read_level(out, 0);
    BOOST_TEST(img.width == 16);
    BOOST_TEST(img.height == 16);
    check_mean_oracle(slide, out, 1);
}

BOOST_AUTO_TEST_CASE(downscaled_model_output) {
    // A model whose output is 4x smaller than its input: the map is 4x smaller too.
    const std::string slide = synthetic("down.tiff", 1024, 768);
    const RunSummary s = run(config({slide}, model(DemoModel::downscale, 4.0f), 256, 64));
    const std::string out = output_of(s);
    BOOST_TEST(s.slides[0].outputs[0].downsample == 4.0, boost::test_tools::tolerance(1e-9));
    check_mean_oracle(slide, out, 4);
}

BOOST_AUTO_TEST_CASE(embedding_the_composite_node_in_a_user_graph) {
    const std::string a = synthetic("a.tiff", 600, 500), b = fit::shared_slide("small.svs");
    Config c = config({}, model(DemoModel::pointwise_mean));
    tbb::flow::graph g;
    SlidePipeline pipeline(g, c);
    std::vector<SlideResult> results;
    tbb::flow::function_node<SlideResult> sink(g, tbb::flow::serial, [&](const SlideResult& r) {
        results.push_back(r);
        return tbb::flow::continue_msg();
    });
    tbb::flow::make_edge(tbb::flow::output_port<0>(pipeline), sink);
    tbb::flow::input_port<0>(pipeline).try_put(SlideJob{0, a});
    tbb::flow::input_port<0>(pipeline).try_put(SlideJob{1, b});
    g.wait_for_all();
    BOOST_REQUIRE_EQUAL(results.size(), 2u);
    for (const SlideResult& r : results) {
        BOOST_TEST(r.ok);
        BOOST_TEST(fs::exists(r.outputs.at(0).path));
    }
    BOOST_TEST(pipeline.progress().patches_done == pipeline.progress().patches_total);
    BOOST_TEST(pipeline.stats().at("infer").items == 3 * 2 + 1);  // 600x500 at 256: 3x2 patches
}

// Every config key changes what comes out: one case per key not covered above.

BOOST_AUTO_TEST_CASE(key_output_compression) {
    const std::string slide = synthetic("compress.tiff", 700, 600);
    const std::pair<Compression, int> cases[] = {
        {Compression::deflate, COMPRESSION_ADOBE_DEFLATE}, {Compression::lzw, COMPRESSION_LZW},
        {Compression::none, COMPRESSION_NONE}};
    for (auto [key, tag] : cases) {
        Config c = config({slide}, model(DemoModel::pointwise_mean));
        c.compression = key;
        c.output_dir = dir / fmt::format("out-{}", tag);
        const std::string out = output_of(run(c));
        TIFF* t = TIFFOpen(out.c_str(), "r");
        BOOST_REQUIRE(t);
        std::uint16_t got = 0;
        TIFFGetField(t, TIFFTAG_COMPRESSION, &got);
        TIFFClose(t);
        BOOST_TEST(got == tag);
    }
}

BOOST_AUTO_TEST_CASE(key_output_spill_mb) {
    // Spilling every lower-level tile to the temporary file gives the same pyramid.
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    Config c = config({slide}, model(DemoModel::pointwise_mean));
    const std::string in_memory = output_of(run(c));
    c.spill_mb = 0;
    c.output_dir = dir / "out-spill";
    const std::string spilled = output_of(run(c));
    BOOST_REQUIRE_EQUAL(fit::level_count(in_memory), fit::level_count(spilled));
    for (int l = 0; l < fit::level_count(spilled); ++l)
        BOOST_TEST(fit::read_level(in_memory, l).rgb == fit::read_level(spilled, l).rgb);
}

BOOST_AUTO_TEST_CASE(key_tiling_level) {
    const std::string slide = synthetic("pyr.tiff", 2048, 1536);
    Config c = config({slide}, model(DemoModel::pointwise_mean), 256, 32);
    c.level = 1;
    const RunSummary s = run(c);
    BOOST_TEST(s.slides.at(0).outputs.at(0).downsample == 2.0, boost::test_tools::tolerance(1e-9));
    BOOST_TEST(s.slides[0].outputs[0].width == 1024);
    check_mean_oracle(slide, output_of(s), 1, 1);
}

BOOST_AUTO_TEST_CASE(key_tiling_sections_and_subsections_keep_the_output) {
    // The walk order (tested in test_plan) must not change a single output pixel.
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    Config c = config({slide}, model(DemoModel::pointwise_mean), 256, 40);
    c.sections = 1;
    c.subsections = 1;
    const std::string a = output_of(run(c));
    c.sections = 5;
    c.subsections = 3;
    c.output_dir = dir / "out-b";
    const std::string b = output_of(run(c));
    BOOST_TEST(fit::read_level(a, 0).rgb == fit::read_level(b, 0).rgb);
}

BOOST_AUTO_TEST_CASE(key_models_mean_and_std) {
    // (x/255 - 0) / 2: the pointwise model then outputs half the grey level.
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    Config c = config({slide}, model(DemoModel::pointwise_mean));
    c.models[0].std = {2, 2, 2};
    check_mean_oracle(slide, output_of(run(c)), 1, 0, [](double v) { return v / 2; });
    // (x/255 - 0.5) / 0.5 = 2x - 1, clamped to [0, 1] by the 8-bit output.
    c.models[0].std = {0.5, 0.5, 0.5};
    c.models[0].mean = {0.5, 0.5, 0.5};
    c.output_dir = dir / "out-b";
    check_mean_oracle(slide, output_of(run(c)), 1, 0,
                      [](double v) { return 255 * std::clamp(2 * v / 255 - 1, 0.0, 1.0); });
}

BOOST_AUTO_TEST_CASE(key_models_activation) {
    const std::string slide = synthetic("act.tiff", 700, 600);
    Config c = config({slide}, model(DemoModel::pointwise_mean));
    c.models[0].activation = Activation::softmax;  // softmax([1-m, m])[1] = 1 / (1 + e^(1-2m))
    check_mean_oracle(slide, output_of(run(c)), 1, 0,
                      [](double v) { return 255 / (1 + std::exp(1 - 2 * v / 255)); });
    c.models[0].activation = Activation::sigmoid;  // sigmoid(m) on channel 1
    c.output_dir = dir / "out-b";
    check_mean_oracle(slide, output_of(run(c)), 1, 0,
                      [](double v) { return 255 / (1 + std::exp(-v / 255)); });
}

BOOST_AUTO_TEST_CASE(key_runtime_threads_readers_slots) {
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    Config c = config({slide}, model(DemoModel::pointwise_mean), 128, 0);
    c.readers = 1;
    c.torch_threads = 2;
    c.infer_slots = 1;
    RunSummary s = run(c);
    BOOST_TEST(s.stages.at("read_region").peak_concurrency == 1);
    BOOST_TEST(s.runtime.readers == 1);
    BOOST_TEST(s.runtime.torch_threads == 2);
    BOOST_TEST(s.runtime.infer_slots == 1);
    BOOST_TEST(s.runtime.device == "cpu");
    BOOST_TEST(s.runtime.precision == "fp32");
    // One TBB thread: no two node bodies of any stage ever run at once.
    c.threads = 1;
    c.readers = 4;
    c.torch_threads = 1;
    c.output_dir = dir / "out-b";
    s = run(c);
    BOOST_TEST(s.runtime.threads == 1);
    BOOST_TEST(s.runtime.torch_threads == 1);
    for (const auto& [name, st] : s.stages) BOOST_TEST(st.peak_concurrency == 1, name);
    const std::string json = fit::read_text(dir / "out-b/summary.json");
    BOOST_TEST(json.find("\"threads\": 1") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
