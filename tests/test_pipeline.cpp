// The whole graph on real and synthetic slides: geometry oracle, pyramid, blending,
// batching, backpressure, cancellation, embedding.
#define BOOST_TEST_MODULE test_pipeline
#include <boost/test/unit_test.hpp>

#include "stages/atomic_file.hpp"
#include "stages/slide.hpp"
#include "tests/test_support.hpp"

#include <flowinfer/config.hpp>
#include <flowinfer/demo.hpp>
#include <flowinfer/errors.hpp>
#include <flowinfer/pipeline.hpp>

#include <fmt/format.h>

#include <tiffio.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <thread>

namespace fs = std::filesystem;
using namespace flowinfer;

namespace {

struct Fixture {
    fit::TempDir dir;
    std::string model(DemoModel kind, float param = 0.0f) { return fit::demo_model(dir, kind, param); }
    // A pointwise config: mean 0, std 1, no activation: output = round(255 * mean(RGB)/255).
    Config config(const std::vector<std::string>& slides, const std::string& model_path, int patch = 256,
                  int overlap = 0) {
        return fit::mean_config(slides, model_path, dir / "out", patch, overlap);
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
    BOOST_REQUIRE_MESSAGE(s.slides[i].ok(), s.slides[i].error);
    // One segmentation model: its map, the map's contours and the slide's preview (none, with a
    // warning, for a slide whose overview cannot be read: a corrupt tile).
    const std::size_t n = s.slides[i].outputs.size();
    BOOST_REQUIRE(n == 3u || (n == 2u && !s.slides[i].warnings.empty()));
    BOOST_TEST(s.slides[i].outputs[1].format == "geojson");
    if (n == 3) BOOST_TEST(s.slides[i].outputs[2].kind == "preview");
    BOOST_REQUIRE(s.slides[i].outputs[0].format == "tiff");
    return s.slides[i].outputs[0].path;
}

using fit::identity;

void check_mean_oracle(const std::string& slide, const std::string& output, int shrink, int level = 0,
                       double (*expect)(double) = identity) {
    BOOST_TEST(fit::mean_oracle(slide, output, shrink, level, expect).bad == 0);
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
    // CMU-1 at 0.499 µm/px asked for 0.998: level 0 shrunk by 2 with area averaging (through
    // OpenSlide: the native reader shrinks JPEG by 2 in the decoder, test_reader_pipeline).
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    Config c = config({slide}, model(DemoModel::pointwise_mean), 256, 32);
    c.mpp = 0.998;
    c.reader = SlideReader::openslide;
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
        BOOST_TEST(s.slides.at(0).ok());
        BOOST_TEST(s.slides[0].patches == 18 * 24);
        BOOST_TEST(s.peak_in_flight <= limit);
        BOOST_TEST(s.peak_in_flight >= 4);  // a batch needs batch_size patches alive at once
    }
}

BOOST_AUTO_TEST_CASE(model_exception_fails_its_slide_only) {
    // The model raises for any batch holding a bright patch: every patch of a blank slide
    // (background 245 grey: mean 0.96), no patch of a slide covered in tissue (about 0.75).
    SyntheticSlideSpec spec;
    spec.width = 900;
    spec.height = 700;
    spec.jpeg_quality = 0;
    spec.tissue_fraction = 0;
    write_synthetic_slide(dir / "blank-a.tiff", spec);
    write_synthetic_slide(dir / "blank-c.tiff", spec);
    spec.tissue_fraction = 1;
    write_synthetic_slide(dir / "tissue-b.tiff", spec);
    // Failing slides before and after the good one: its patches follow a failed slide's in
    // the graph, and a failed slide's follow its own.
    Config c = config({dir / "blank-a.tiff", dir / "tissue-b.tiff", dir / "blank-c.tiff"},
                      model(DemoModel::throw_above, 0.9f), 256, 32);
    const RunSummary s = run(c);  // no exception: the run goes on
    BOOST_TEST((s.state == RunState::finished));
    BOOST_REQUIRE_EQUAL(s.slides.size(), 3u);
    for (std::size_t i : {0u, 2u}) {
        BOOST_TEST((s.slides[i].status == SlideStatus::failed));
        BOOST_TEST(s.slides[i].error.find("model 'mean'") != std::string::npos, s.slides[i].error);
        BOOST_TEST(s.slides[i].error.find("flowinfer test model failure") != std::string::npos);
        BOOST_TEST(s.slides[i].outputs.empty());
    }
    check_mean_oracle(dir / "tissue-b.tiff", output_of(s, 1), 1);
    for (const char* stem : {"blank-a", "blank-c"}) BOOST_TEST(!fs::exists(fs::path(c.output_dir) / stem / "mean.tif"));
    BOOST_TEST(fit::files_ending_with(c.output_dir, ".partial").empty());
    const fit::Json j = fit::parse_json(fit::read_text(fs::path(c.output_dir) / "summary.json"));
    BOOST_TEST(j["state"].s == "finished");
    BOOST_TEST(j["counts"]["ok"].n == 1);
    BOOST_TEST(j["counts"]["failed"].n == 2);
    BOOST_TEST(j["slides"][0]["status"].s == "failed");
    BOOST_TEST(j["slides"][0]["error"].s.find("flowinfer test model failure") != std::string::npos);
    BOOST_TEST(j["slides"][1]["status"].s == "ok");
    BOOST_TEST(j["slides"][1]["outputs"][0]["path"].s == output_of(s, 1));

    // A model that fails on every call from some point on fails every slide from there on,
    // each with its error, and the run still ends normally.
    c = config({dir / "tissue-b.tiff", fit::shared_slide("CMU-1-Small-Region.svs")},
               model(DemoModel::throw_after, 3.0f));
    c.output_dir = dir / "out-after";
    const RunSummary t = run(c);
    BOOST_TEST((t.state == RunState::finished));
    for (const SlideResult& r : t.slides) {
        BOOST_TEST((r.status == SlideStatus::failed));
        BOOST_TEST(r.error.find("flowinfer test model failure") != std::string::npos);
    }
    BOOST_TEST(!fs::exists(fs::path(c.output_dir) / "CMU-1-Small-Region" / "mean.tif"));
    BOOST_TEST(fit::files_ending_with(c.output_dir, ".partial").empty());
}

BOOST_AUTO_TEST_CASE(run_stop_ends_the_run_with_what_finished) {
    // A small slide, then one of about 8,000 patches (patch 256 every 32 pixels).
    const std::string a = synthetic("a.tiff", 600, 500), b = synthetic("b.tiff", 3000, 3000);
    Config c = config({a, b}, model(DemoModel::pointwise_mean), 256, 224);
    const std::string summary = fs::path(c.output_dir) / "summary.json";
    RunStop stop;
    std::thread stopper([&] {
        // summary.json is rewritten as each slide finishes: stop once it has the first one.
        for (int i = 0; i < 6000; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
            if (!fs::exists(summary)) continue;
            if (fit::parse_json(fit::read_text(summary))["slides"][0]["status"].s == "ok") break;
        }
        stop.request("stopped by the test");
    });
    const auto t0 = std::chrono::steady_clock::now();
    const RunSummary s = run(c, nullptr, nullptr, &stop);
    stopper.join();
    BOOST_TEST_MESSAGE("run() returned after " << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s");
    BOOST_TEST((s.state == RunState::interrupted));
    BOOST_TEST(s.error == "stopped by the test");
    check_mean_oracle(a, output_of(s, 0), 1);
    BOOST_TEST((s.slides.at(1).status == SlideStatus::interrupted));
    BOOST_TEST(s.slides[1].error == "not finished: the run stopped: stopped by the test");
    BOOST_TEST(!fs::exists(fs::path(c.output_dir) / "b" / "mean.tif"));
    BOOST_TEST(fit::files_ending_with(c.output_dir, ".partial").empty());
    BOOST_TEST(fit::parse_json(fit::read_text(summary))["state"].s == "interrupted");

    // Asked before the run: nothing is started, every slide is interrupted.
    c.output_dir = dir / "out-early";
    const RunSummary e = run(c, nullptr, nullptr, &stop);
    BOOST_TEST((e.state == RunState::interrupted));
    for (const SlideResult& r : e.slides) BOOST_TEST((r.status == SlideStatus::interrupted));
    BOOST_TEST(e.stages.at("read_region").items == 0);
}

BOOST_AUTO_TEST_CASE(atomic_file_replaces_whole_or_not_at_all) {
    const std::string path = dir / "summary.json";
    write_file_atomically(path, "first");
    write_file_atomically(path, "second, longer");
    BOOST_TEST(fit::read_text(path) == "second, longer");
    BOOST_TEST(!fs::exists(partial_path(path)));
    // The temporary cannot be created (a directory is in its place): the old file stays whole.
    fs::create_directories(partial_path(path));
    try {
        write_file_atomically(path, "third");
        BOOST_FAIL("expected OutputError");
    } catch (const OutputError& e) {
        BOOST_TEST(e.path() == path);
        BOOST_TEST(std::string(e.what()).find("cannot create " + partial_path(path)) != std::string::npos, e.what());
    }
    BOOST_TEST(fit::read_text(path) == "second, longer");
    // The final name cannot be replaced (a non-empty directory is there): the temporary goes.
    fs::remove(partial_path(path));
    fs::create_directories(dir / "taken/x");
    BOOST_CHECK_THROW(write_file_atomically(dir / "taken", "data"), OutputError);
    BOOST_TEST(!fs::exists(partial_path(dir / "taken")));
}

BOOST_AUTO_TEST_CASE(output_error_stops_the_run_with_the_path) {
    // The second slide's output directory cannot be created (a file is in the way): not
    // that slide's fault, and the next slide would meet the same directory, so the run stops.
    const std::string a = synthetic("a.tiff", 700, 600), b = synthetic("b.tiff", 700, 600),
                      cc = synthetic("c.tiff", 700, 600);
    Config c = config({a, b, cc}, model(DemoModel::pointwise_mean));
    fs::create_directories(c.output_dir);
    fit::write_text(fs::path(c.output_dir) / "b", "in the way");
    try {
        run(c);
        BOOST_FAIL("expected OutputError");
    } catch (const OutputError& e) {
        BOOST_TEST(e.path() == fs::path(c.output_dir) / "b");
        BOOST_TEST(std::string(e.what()).find("cannot create directory") != std::string::npos, e.what());
    }
    const fit::Json j = fit::parse_json(fit::read_text(fs::path(c.output_dir) / "summary.json"));
    BOOST_TEST(j["state"].s == "failed");
    BOOST_TEST(j["error"].s.find(fs::path(c.output_dir) / "b") != std::string::npos);
    BOOST_TEST(j["slides"][1]["status"].s == "interrupted");
    BOOST_TEST(j["slides"][1]["error"].s.find("cannot create directory") != std::string::npos);
    BOOST_TEST(j["slides"][2]["status"].s != "ok");  // never reached: b's error stops the run first
    // What the summary calls ok is complete on disk; nothing else is under a final name.
    for (const char* stem : {"a", "c"}) {
        const bool ok = j["slides"][stem[0] == 'a' ? 0 : 2]["status"].s == "ok";
        BOOST_TEST(fs::exists(fs::path(c.output_dir) / stem / "mean.tif") == ok, stem);
    }
    BOOST_TEST(fit::files_ending_with(c.output_dir, ".partial").empty());
}

BOOST_AUTO_TEST_CASE(failed_slide_does_not_stop_the_others) {
    const std::string good = fit::shared_slide("CMU-1-Small-Region.svs");
    Config c = config({dir / "missing.svs", fit::shared_slide("negative/unreadable.svs"), good},
                      model(DemoModel::pointwise_mean));
    const RunSummary s = run(c);
    BOOST_REQUIRE_EQUAL(s.slides.size(), 3u);
    BOOST_TEST(!s.slides[0].ok());
    BOOST_TEST(s.slides[0].error.find("missing.svs") != std::string::npos);
    BOOST_TEST(!s.slides[1].ok());
    BOOST_TEST(s.slides[1].error.find("unreadable.svs") != std::string::npos);
    BOOST_TEST(!fs::exists(fs::path(c.output_dir) / "unreadable" / "mean.tif"));
    BOOST_TEST(s.slides[2].ok());
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
    tbb::flow::input_port<0>(pipeline).try_put(SlideJob{0, a, {}, 0});
    tbb::flow::input_port<0>(pipeline).try_put(SlideJob{1, b, {}, 0});
    g.wait_for_all();
    BOOST_REQUIRE_EQUAL(results.size(), 2u);
    for (const SlideResult& r : results) {
        BOOST_TEST(r.ok());
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

BOOST_AUTO_TEST_CASE(key_output_deflate_level) {
    // Same pixels; level 9 spends more time for a smaller file than level 1.
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    Config c = config({slide}, model(DemoModel::pointwise_mean));
    c.deflate_level = 1;
    const std::string fast = output_of(run(c));
    c.deflate_level = 9;
    c.output_dir = dir / "out-9";
    const std::string small = output_of(run(c));
    BOOST_TEST(fs::file_size(small) < fs::file_size(fast));
    BOOST_TEST(fit::read_level(fast, 0).rgb == fit::read_level(small, 0).rgb);
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

// ---------------------------------------------------------------------------------------------
// Several models, classification, tissue detection

namespace {

std::vector<std::vector<std::string>> read_csv(const std::string& path) {
    std::vector<std::vector<std::string>> rows;
    std::string text = fit::read_text(path), line;
    std::size_t at = 0;
    while (at < text.size()) {
        const std::size_t nl = text.find('\n', at);
        line = text.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
        at = nl == std::string::npos ? text.size() : nl + 1;
        if (line.empty()) continue;
        std::vector<std::string> cells;
        std::size_t from = 0;
        for (std::size_t comma; (comma = line.find(',', from)) != std::string::npos; from = comma + 1)
            cells.push_back(line.substr(from, comma - from));
        cells.push_back(line.substr(from));
        rows.push_back(cells);
    }
    return rows;
}

std::size_t count_of(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

const OutputInfo& output_named(const SlideResult& r, const std::string& model, const std::string& format) {
    for (const OutputInfo& o : r.outputs)
        if (o.model == model && o.format == format) return o;
    BOOST_FAIL("no " << format << " output for " << model);
    throw std::logic_error("unreachable");
}

// Mean of R, G, B over a square of the image, / 255.
double region_mean(const fit::Image& img, std::int64_t x0, std::int64_t y0, int side) {
    double acc = 0;
    for (std::int64_t y = y0; y < y0 + side; ++y)
        for (std::int64_t x = x0; x < x0 + side; ++x) {
            const std::uint8_t* p = img.at(std::min(x, img.width - 1), std::min(y, img.height - 1));
            acc += (x < img.width && y < img.height) ? (p[0] + p[1] + p[2]) / 3.0 : 255.0;
        }
    return acc / (double(side) * side) / 255.0;
}

}  // namespace

BOOST_AUTO_TEST_CASE(classification_outputs) {
    // Patch 128 without overlap on 2220 x 2967: 18 x 24 patches (the last column and row
    // shifted inward), so the heatmap is 18 x 24 pixels.
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    Config c = config({slide}, model(DemoModel::patch_classifier), 128, 0);
    c.models[0].task = Task::classification;
    c.models[0].name = "cls";
    c.models[0].classes = {ClassSpec{"dark", std::nullopt}, ClassSpec{"light", std::nullopt}};
    const RunSummary s = run(c);
    BOOST_REQUIRE(s.slides.at(0).ok());
    const SlideResult& r = s.slides[0];
    const std::int64_t cols = 18, rows_n = 24;
    BOOST_TEST(r.patches == cols * rows_n);
    const fit::Image img = fit::read_level(slide, 0);
    const auto at = [](std::int64_t i, std::int64_t extent) { return std::min<std::int64_t>(i * 128, extent - 128); };

    const auto rows = read_csv(output_named(r, "cls", "csv").path);
    BOOST_REQUIRE_EQUAL(rows.size(), std::size_t(cols * rows_n + 1));
    BOOST_TEST(rows[0] == (std::vector<std::string>{"x", "y", "w", "h", "dark", "light"}),
               boost::test_tools::per_element());
    double worst = 0;
    for (std::size_t i = 1; i < rows.size(); ++i) {
        const std::int64_t x = std::stoll(rows[i][0]), y = std::stoll(rows[i][1]);
        BOOST_TEST(std::stod(rows[i][2]) == 128.0);
        const double m = region_mean(img, x, y, 128);
        worst = std::max(worst, std::abs(std::stod(rows[i][5]) - m));
        BOOST_TEST(std::abs(std::stod(rows[i][4]) + std::stod(rows[i][5]) - 1.0) < 1e-4);
    }
    BOOST_TEST(worst < 1e-4);

    // The heatmap: one pixel per patch, round(255 p1), read back through OpenSlide.
    const OutputInfo& map = output_named(r, "cls", "tiff");
    BOOST_TEST(map.width == cols);
    BOOST_TEST(map.height == rows_n);
    BOOST_TEST(map.downsample == 128.0);
    const fit::Image heat = fit::read_level(map.path, 0);
    int worst_px = 0;
    for (std::int64_t row = 0; row < heat.height; ++row)
        for (std::int64_t col = 0; col < heat.width; ++col) {
            const int want = int(std::lround(255 * region_mean(img, at(col, 2220), at(row, 2967), 128)));
            worst_px = std::max(worst_px, std::abs(int(heat.at(col, row)[0]) - want));
        }
    BOOST_TEST(worst_px <= 1);

    const OutputInfo& geo = output_named(r, "cls", "geojson");
    BOOST_TEST(geo.objects == cols * rows_n);
    const std::string text = fit::read_text(geo.path);
    BOOST_TEST(count_of(text, "\"Feature\"") == std::size_t(cols * rows_n));
    BOOST_TEST(count_of(text, "\"tile\"") == std::size_t(cols * rows_n));
}

BOOST_AUTO_TEST_CASE(small_heatmaps_are_zoomed_to_stay_readable) {
    // 700 x 500 at patch 256: 3 x 2 patches; drawn 8 x 8 pixels per patch (24 x 16).
    const std::string slide = synthetic("heat.tiff", 700, 500);
    Config c = config({slide}, model(DemoModel::patch_classifier), 256, 0);
    c.models[0].task = Task::classification;
    const RunSummary s = run(c);
    BOOST_REQUIRE(s.slides.at(0).ok());
    const OutputInfo& map = output_named(s.slides[0], "mean", "tiff");
    BOOST_TEST(map.width == 24);
    BOOST_TEST(map.height == 16);
    BOOST_TEST(map.downsample == 32.0);
    const fit::Image img = fit::read_level(slide, 0);
    const fit::Image heat = fit::read_level(map.path, 0);
    const std::int64_t xs[] = {0, 256, 444}, ys[] = {0, 244};
    for (std::int64_t y = 0; y < 16; ++y)
        for (std::int64_t x = 0; x < 24; ++x)
            BOOST_TEST(std::abs(int(heat.at(x, y)[0]) - int(std::lround(255 * region_mean(img, xs[x / 8], ys[y / 8], 256)))) <= 1);
}

BOOST_AUTO_TEST_CASE(detection_finds_every_disc_once_at_any_overlap) {
    // Discs on a jittered grid, plus discs centred on patch borders and corners of the
    // overlap-0 layout (x, y multiples of 256), so some are cut by every layout.
    std::vector<Disc> discs;
    std::uint32_t h = 12345;
    const auto rnd = [&h] { h = h * 1664525u + 1013904223u; return (h >> 8) / double(1 << 24); };
    for (int gy = 0; gy < 6; ++gy)
        for (int gx = 0; gx < 8; ++gx)
            discs.push_back(Disc{60 + gx * 170 + rnd() * 60, 60 + gy * 170 + rnd() * 60, 7 + rnd() * 4});
    for (double x : {256.0, 512.0, 768.0}) discs.push_back(Disc{x, 128 + x / 4, 9});
    discs.push_back(Disc{512, 512, 10});  // a patch corner at overlap 0
    const std::int64_t w = 1450, hgt = 1100;
    std::vector<Disc> kept;  // drop discs that would touch each other
    for (const Disc& d : discs) {
        bool clear = d.x > d.r + 2 && d.y > d.r + 2 && d.x < w - d.r - 2 && d.y < hgt - d.r - 2;
        for (const Disc& k : kept) clear = clear && std::hypot(d.x - k.x, d.y - k.y) > d.r + k.r + 6;
        if (clear) kept.push_back(d);
    }
    write_disc_slide(dir / "discs.tiff", w, hgt, kept);

    for (int overlap : {0, 128, 204}) {  // 0, 0.5 and 0.8 of the patch
        Config c = config({dir / "discs.tiff"}, model(DemoModel::blob_detector, 10), 256, overlap);
        c.models[0].task = Task::detection;
        c.models[0].name = "blobs";
        c.models[0].conf_threshold = 0.5f;
        c.models[0].classes = {ClassSpec{"disc", std::array<std::uint8_t, 3>{200, 0, 0}}};
        c.output_dir = dir / fmt::format("out-{}", overlap);
        const RunSummary s = run(c);
        BOOST_REQUIRE(s.slides.at(0).ok());
        const auto rows = read_csv(output_named(s.slides[0], "blobs", "csv").path);
        BOOST_REQUIRE(!rows.empty());
        BOOST_TEST(rows[0] == (std::vector<std::string>{"x1", "y1", "x2", "y2", "score", "class"}),
                   boost::test_tools::per_element());
        BOOST_TEST(rows.size() - 1 == kept.size(), "overlap " << overlap);
        std::vector<int> hits(kept.size(), 0);
        double worst = 0;
        for (std::size_t i = 1; i < rows.size(); ++i) {
            const double cx = (std::stod(rows[i][0]) + std::stod(rows[i][2])) / 2;
            const double cy = (std::stod(rows[i][1]) + std::stod(rows[i][3])) / 2;
            std::size_t best = 0;
            for (std::size_t k = 1; k < kept.size(); ++k)
                if (std::hypot(kept[k].x - cx, kept[k].y - cy) < std::hypot(kept[best].x - cx, kept[best].y - cy)) best = k;
            worst = std::max(worst, std::hypot(kept[best].x - cx, kept[best].y - cy));
            ++hits[best];
        }
        BOOST_TEST_MESSAGE("overlap " << overlap << ": " << rows.size() - 1 << " objects for " << kept.size()
                                      << " discs, worst centre error " << worst << " px");
        BOOST_TEST(worst <= 4.0);
        BOOST_TEST(std::count(hits.begin(), hits.end(), 1) == std::ptrdiff_t(kept.size()));
        const OutputInfo& geo = output_named(s.slides[0], "blobs", "geojson");
        BOOST_TEST(geo.objects == std::int64_t(kept.size()));
        const std::string text = fit::read_text(geo.path);
        BOOST_TEST(count_of(text, "\"detection\"") == kept.size());
        BOOST_TEST(count_of(text, "\"disc\"") == kept.size());
        BOOST_TEST(count_of(text, "\"Polygon\"") == kept.size());
    }
}

BOOST_AUTO_TEST_CASE(several_models_read_each_region_once) {
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    Config c = config({slide}, model(DemoModel::pointwise_mean), 256, 0);
    ModelConfig cls = c.models[0];
    cls.name = "cls";
    cls.task = Task::classification;
    cls.path = model(DemoModel::patch_classifier);
    ModelConfig half = c.models[0];  // other normalization: same batches, normalized by its own infer
    half.name = "half";
    half.std = {2, 2, 2};
    c.models.push_back(cls);
    c.models.push_back(half);
    RunSummary s = run(c);
    BOOST_REQUIRE(s.slides.at(0).ok());
    const std::int64_t patches = 9 * 12;
    BOOST_TEST(s.stages.at("read_region").items == patches);  // once, not three times
    BOOST_TEST(s.stages.at("normalize").items == patches);
    BOOST_TEST(s.stages.at("infer:mean").items == patches);
    BOOST_TEST(s.stages.at("infer:cls").items == patches);
    BOOST_TEST(s.stages.at("infer:half").items == patches);
    // mean: map, contours; cls: map, CSV, GeoJSON; half: map, contours; the preview
    BOOST_TEST(s.slides[0].outputs.size() == 2u + 3u + 2u + 1u);
    check_mean_oracle(slide, output_named(s.slides[0], "mean", "tiff").path, 1);
    check_mean_oracle(slide, output_named(s.slides[0], "half", "tiff").path, 1, 0, [](double v) { return v / 2; });
    BOOST_TEST(read_csv(output_named(s.slides[0], "cls", "csv").path).size() == std::size_t(patches + 1));
    BOOST_TEST(s.peak_in_flight <= c.max_in_flight);

    // A model with another patch size needs its own read of the slide.
    ModelConfig small = c.models[0];
    small.name = "small";
    small.patch_size = 128;
    c.models = {c.models[0], small};
    c.output_dir = dir / "out-b";
    s = run(c);
    BOOST_TEST(s.stages.at("read_region").items == patches + 18 * 24);
    check_mean_oracle(slide, output_named(s.slides.at(0), "small", "tiff").path, 1);
}

BOOST_AUTO_TEST_CASE(tissue_detection_skips_background_patches) {
    SyntheticSlideSpec spec;
    spec.width = 3000;
    spec.height = 2000;
    spec.mpp = 0.25;
    spec.tissue_fraction = 0.3;
    spec.jpeg_quality = 0;
    const std::string slide = dir / "tissue.tiff";
    write_synthetic_slide(slide, spec);
    Config c = config({slide}, model(DemoModel::pointwise_mean), 256, 0);
    c.tissue = true;
    c.tissue_threshold = 0.05;
    const RunSummary s = run(c);
    const SlideResult& r = s.slides.at(0);
    BOOST_REQUIRE(r.ok());
    const std::int64_t total = 12 * 8;  // 3000 x 2000 at 256
    BOOST_TEST(r.patches + r.patches_skipped == total);
    BOOST_TEST(r.patches_skipped > 0);
    BOOST_TEST(s.stages.at("read_region").items == r.patches);  // skipped before being read
    // Independent check: each run patch holds tissue, each skipped one (almost) none.
    const fit::Image img = fit::read_level(slide, 0);
    const fit::Image out = fit::read_level(output_of(s), 0);
    std::int64_t run_patches = 0;
    for (std::int64_t py = 0; py < 8; ++py) {
        for (std::int64_t px = 0; px < 12; ++px) {
            const std::int64_t x0 = std::min<std::int64_t>(px * 256, 3000 - 256), y0 = std::min<std::int64_t>(py * 256, 2000 - 256);
            std::int64_t tissue = 0, zero = 0;
            for (std::int64_t y = y0; y < y0 + 256; ++y)
                for (std::int64_t x = x0; x < x0 + 256; ++x) {
                    uint8_t rgb[3];
                    synthetic_pixel(spec, x, y, rgb);
                    tissue += std::min({rgb[0], rgb[1], rgb[2]}) < 215;
                    zero += out.at(x, y)[0] == 0;
                }
            const double share = tissue / 65536.0;
            const bool ran = zero < 65536;  // a skipped patch's own pixels stay 0 unless a neighbour ran
            run_patches += ran && share > 0.0;
            if (share > 0.2) BOOST_TEST(ran, "patch " << px << "," << py << " with " << share << " tissue was skipped");
            if (share == 0.0) BOOST_TEST(zero > 0, "background patch " << px << "," << py << " has no 0 pixel");
        }
    }
    // Pixels that ran still follow the oracle; the rest are exactly 0.
    std::int64_t bad = 0;
    for (std::int64_t y = 0; y < out.height - 1; ++y)
        for (std::int64_t x = 0; x < out.width - 1; ++x) {
            const int got = out.at(x, y)[0];
            const std::uint8_t* p = img.at(x, y);
            const int want = int(std::lround((p[0] + p[1] + p[2]) / 3.0));
            bad += got != 0 && std::abs(got - want) > 3;
        }
    BOOST_TEST(bad == 0);
    BOOST_TEST(run_patches > 0);
}

BOOST_AUTO_TEST_CASE(tissue_detection_on_a_real_slide) {
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    Config c = config({slide}, model(DemoModel::pointwise_mean), 256, 0);
    c.tissue = true;
    c.tissue_preview = true;
    const RunSummary s = run(c);
    const SlideResult& r = s.slides.at(0);
    BOOST_REQUIRE(r.ok());
    BOOST_TEST_MESSAGE("CMU-1-Small-Region: " << r.patches << " patches run, " << r.patches_skipped << " skipped");
    BOOST_TEST(r.patches + r.patches_skipped == 9 * 12);
    BOOST_TEST(r.patches > 0);
    const OutputInfo& png = output_named(r, "", "png");
    BOOST_TEST(fit::read_text(png.path).substr(1, 3) == "PNG");
    // Where the map is 0 the slide is background: mostly near-white.
    const fit::Image img = fit::read_level(slide, 0);
    const fit::Image out = fit::read_level(output_named(r, "mean", "tiff").path, 0);
    std::int64_t zero = 0, zero_white = 0;
    for (std::int64_t i = 0; i < out.width * out.height; ++i) {
        if (out.rgb[3 * i] != 0) continue;
        ++zero;
        zero_white += std::min({img.rgb[3 * i], img.rgb[3 * i + 1], img.rgb[3 * i + 2]}) > 200;
    }
    if (r.patches_skipped > 0) BOOST_TEST(zero_white >= 0.8 * zero);
    // Every tissue-free slide region: a blank slide runs no patch and writes an all-0 map.
    SyntheticSlideSpec blank;
    blank.width = 700;
    blank.height = 500;
    blank.tissue_fraction = 0;
    blank.jpeg_quality = 0;
    write_synthetic_slide(dir / "blank.tiff", blank);
    c.slides = {dir / "blank.tiff"};
    c.output_dir = dir / "out-blank";
    const RunSummary b = run(c);
    BOOST_REQUIRE(b.slides.at(0).ok());
    BOOST_TEST(b.slides[0].patches == 0);
    BOOST_TEST(b.slides[0].patches_skipped == 3 * 2);
    const fit::Image blank_map = fit::read_level(output_named(b.slides[0], "mean", "tiff").path, 0);
    BOOST_TEST(std::all_of(blank_map.rgb.begin(), blank_map.rgb.end(), [](std::uint8_t v) { return v == 0; }));
}

// ---------------------------------------------------------------------------------------------
// runtime.on_read_error

namespace {

// Level-0 patch positions along an axis, shifted inward at the end (the layout's rule,
// written again here).
std::vector<std::int64_t> positions(std::int64_t extent, int patch, int overlap) {
    std::vector<std::int64_t> p;
    for (std::int64_t x = 0;; x += patch - overlap) {
        if (x + patch >= extent) {
            p.push_back(std::max<std::int64_t>(0, extent - patch));
            break;
        }
        p.push_back(x);
    }
    return p;
}

}  // namespace

BOOST_AUTO_TEST_CASE(key_runtime_on_read_error_skip_leaves_the_bad_patches_out) {
    // A JPEG slide and a copy with one corrupt 256x256 tile at (512, 256).
    SyntheticSlideSpec spec;
    spec.width = 1280;
    spec.height = 1024;
    spec.tissue_fraction = 0.9;
    spec.jpeg_quality = 90;
    write_synthetic_slide(dir / "intact.tiff", spec);
    fs::create_directories(dir / "bad");
    fs::copy_file(dir / "intact.tiff", dir / "bad/intact.tiff");
    fit::corrupt_tile(dir / "bad/intact.tiff", 0, 2, 1);
    const std::string intact = dir / "intact.tiff", bad = dir / "bad/intact.tiff";
    BOOST_CHECK_THROW(fit::read_level(bad, 0), std::runtime_error);  // OpenSlide does fail on it

    // "fail" (the default): the slide fails, naming the slide and the region.
    Config c = config({bad}, model(DemoModel::pointwise_mean), 256, 0);
    c.output_dir = dir / "out-fail";
    RunSummary s = run(c);
    BOOST_TEST((s.slides.at(0).status == SlideStatus::failed));
    BOOST_TEST(s.slides[0].error.find(bad) != std::string::npos, s.slides[0].error);
    BOOST_TEST(s.slides[0].error.find("reading level 0") != std::string::npos);
    BOOST_TEST(!fs::exists(dir / "out-fail/intact/mean.tif"));

    for (int overlap : {0, 64}) {
        c = config({intact}, model(DemoModel::pointwise_mean), 256, overlap);
        c.readers = 4;  // reads beside the failing one see the broken handle too
        c.output_dir = dir / fmt::format("out-intact-{}", overlap);
        const fit::Image want = fit::read_level(output_of(run(c)), 0);
        c.slides = {bad};
        c.on_read_error = ReadErrorPolicy::skip;
        c.output_dir = dir / fmt::format("out-skip-{}", overlap);
        s = run(c);
        BOOST_REQUIRE(s.slides.at(0).ok());
        const fit::Image got = fit::read_level(output_of(s), 0);
        BOOST_REQUIRE_EQUAL(got.width, want.width);
        BOOST_REQUIRE_EQUAL(got.height, want.height);

        // Independently: the patches whose footprint meets the corrupt tile are unreadable.
        const auto xs = positions(1280, 256, overlap), ys = positions(1024, 256, overlap);
        const auto meets = [](std::int64_t p, std::int64_t lo) { return p < lo + 256 && p + 256 > lo; };
        std::vector<std::pair<std::int64_t, std::int64_t>> unreadable, readable;
        for (std::int64_t y : ys)
            for (std::int64_t x : xs) (meets(x, 512) && meets(y, 256) ? unreadable : readable).emplace_back(x, y);
        BOOST_TEST(s.slides[0].patches == std::int64_t(xs.size() * ys.size()));
        BOOST_TEST(s.slides[0].patches_unreadable == std::int64_t(unreadable.size()), "overlap " << overlap);
        const fit::Json j = fit::parse_json(fit::read_text(fs::path(c.output_dir) / "summary.json"));
        BOOST_TEST(j["slides"][0]["patches_unreadable"].n == double(unreadable.size()));

        // A pixel only unreadable patches cover is 0; one a readable patch covers is what the
        // intact slide gives (the pointwise model gives every patch the same value there; 1
        // of rounding where fewer patches are averaged). That includes every patch read after
        // the bad one, on the reopened handle.
        const auto covered_by = [](const std::vector<std::pair<std::int64_t, std::int64_t>>& ps, std::int64_t x,
                                   std::int64_t y) {
            for (const auto& [px, py] : ps)
                if (x >= px && x < px + 256 && y >= py && y < py + 256) return true;
            return false;
        };
        std::int64_t zeros = 0, bad_px = 0, worst = 0;
        for (std::int64_t y = 0; y < got.height; ++y)
            for (std::int64_t x = 0; x < got.width; ++x) {
                const int g = got.at(x, y)[0], w = want.at(x, y)[0];
                if (!covered_by(readable, x, y)) {
                    ++zeros;
                    bad_px += g != 0;
                } else {
                    worst = std::max<std::int64_t>(worst, std::abs(g - w));
                    bad_px += std::abs(g - w) > 1;
                }
            }
        BOOST_TEST_MESSAGE("overlap " << overlap << ": " << unreadable.size() << " unreadable patches, " << zeros
                                      << " pixels left out, worst difference elsewhere " << worst);
        BOOST_TEST(zeros > 0);
        BOOST_TEST(bad_px == 0, "overlap " << overlap);
        if (overlap == 0) BOOST_TEST(worst == 0);
    }

    // Classification: no row and a 0 heatmap pixel for the bad patch, the rest as intact.
    c = config({bad}, model(DemoModel::patch_classifier), 256, 0);
    c.models[0].task = Task::classification;
    c.on_read_error = ReadErrorPolicy::skip;
    c.output_dir = dir / "out-cls";
    s = run(c);
    BOOST_REQUIRE(s.slides.at(0).ok());
    BOOST_TEST(s.slides[0].patches_unreadable == 1);
    const auto rows = read_csv(output_named(s.slides[0], "mean", "csv").path);
    BOOST_TEST(rows.size() == 1u + 5 * 4 - 1);
    for (std::size_t i = 1; i < rows.size(); ++i)
        BOOST_TEST(!(rows[i][0] == "512" && rows[i][1] == "256"), "a row for the unreadable patch");
    BOOST_TEST(output_named(s.slides[0], "mean", "geojson").objects == 5 * 4 - 1);
    const fit::Image heat = fit::read_level(output_named(s.slides[0], "mean", "tiff").path, 0);
    const int zoom = int(heat.width / 5);  // small heatmaps are zoomed (see classification)
    BOOST_TEST(int(heat.at(2 * zoom, 1 * zoom)[0]) == 0);
    BOOST_TEST(int(heat.at(1 * zoom, 1 * zoom)[0]) > 0);
}

BOOST_AUTO_TEST_CASE(a_failed_read_does_not_break_later_reads) {
    // OpenSlide's error state is sticky: after the corrupt tile, the same handle fails every
    // read. The Slide swaps in a fresh handle, so the next read of a good region works.
    SyntheticSlideSpec spec;
    spec.width = 768;
    spec.height = 512;
    spec.jpeg_quality = 0;
    write_synthetic_slide(dir / "s.tiff", spec);
    fit::corrupt_tile(dir / "s.tiff", 0, 1, 0);
    const Slide slide(dir / "s.tiff");
    std::vector<std::uint32_t> argb(256 * 256);
    std::vector<std::uint8_t> rgb(256 * 256 * 3);
    BOOST_CHECK_THROW(slide.read_rgb(256, 0, 0, 256, 256, argb.data(), rgb.data()), SlideError);
    for (std::int64_t x : {0, 512}) {
        slide.read_rgb(x, 256, 0, 256, 256, argb.data(), rgb.data());
        std::uint8_t want[3];
        synthetic_pixel(spec, x + 100, 256 + 50, want);
        BOOST_TEST(int(rgb[(50 * 256 + 100) * 3 + 1]) == int(want[1]));
    }
    BOOST_CHECK_THROW(slide.read_rgb_isolated(256, 0, 0, 256, 256, argb.data(), rgb.data()), SlideError);
    slide.read_rgb_isolated(0, 0, 0, 256, 256, argb.data(), rgb.data());
}

BOOST_AUTO_TEST_CASE(key_runtime_on_read_error_skip_on_a_real_corrupt_slide_and_detection) {
    // negative/unreadable.svs: one 16x16 patch, whose tile OpenSlide cannot decode.
    Config c = config({fit::shared_slide("negative/unreadable.svs")}, model(DemoModel::pointwise_mean));
    c.on_read_error = ReadErrorPolicy::skip;
    RunSummary s = run(c);
    BOOST_REQUIRE(s.slides.at(0).ok());
    BOOST_TEST(s.slides[0].patches == 1);
    BOOST_TEST(s.slides[0].patches_unreadable == 1);
    const fit::Image map = fit::read_level(output_of(s), 0);
    BOOST_TEST(map.width == 16);
    BOOST_TEST(std::all_of(map.rgb.begin(), map.rgb.end(), [](std::uint8_t v) { return v == 0; }));

    // Detection: a disc in the corrupt tile is not found, every other disc is, once.
    std::vector<Disc> discs;
    for (int j = 0; j < 3; ++j)
        for (int i = 0; i < 4; ++i) discs.push_back(Disc{128.0 + 256 * i, 128.0 + 256 * j, 10});
    write_disc_slide(dir / "discs.tiff", 1024, 768, discs);
    fit::corrupt_tile(dir / "discs.tiff", 0, 1, 1);
    c = config({dir / "discs.tiff"}, model(DemoModel::blob_detector, 10), 256, 0);
    c.models[0].task = Task::detection;
    c.models[0].conf_threshold = 0.5f;
    c.on_read_error = ReadErrorPolicy::skip;
    c.output_dir = dir / "out-det";
    s = run(c);
    BOOST_REQUIRE(s.slides.at(0).ok());
    BOOST_TEST(s.slides[0].patches_unreadable == 1);
    const auto rows = read_csv(output_named(s.slides[0], "mean", "csv").path);
    BOOST_REQUIRE_EQUAL(rows.size(), 1u + discs.size() - 1);
    for (std::size_t i = 1; i < rows.size(); ++i) {
        const double cx = (std::stod(rows[i][0]) + std::stod(rows[i][2])) / 2;
        const double cy = (std::stod(rows[i][1]) + std::stod(rows[i][3])) / 2;
        BOOST_TEST(std::hypot(cx - 384, cy - 384) > 100, "an object from the unreadable tile");
    }
}

BOOST_AUTO_TEST_SUITE_END()
