// The whole graph with each slide reader: the geometry oracle on every shared slide and on
// synthetic ones, at several levels and overlaps; summary figures of the native reader; and
// the runtime.reader / runtime.tile_cache_mb keys.
#define BOOST_TEST_MODULE reader_pipeline
#include "test_support.hpp"

#include "pipeline/synthetic_jp2k.hpp"

#include <flowinfer/config.hpp>
#include <flowinfer/demo.hpp>
#include <flowinfer/pipeline.hpp>

#include <fmt/format.h>

#include <cmath>
#include <deque>

using namespace flowinfer;

namespace {

struct Fixture {
    fit::TempDir dir;
    Config config(const std::string& slide, SlideReader reader, int patch, int overlap) {
        Config c = fit::mean_config({slide}, fit::demo_model(dir, DemoModel::pointwise_mean),
                                    dir / fmt::format("out-{}", runs++), patch, overlap);
        c.reader = reader;
        return c;
    }
    const SlideResult& run_ok(const Config& c) {
        summaries.push_back(run(c));
        const RunSummary& s = summaries.back();
        BOOST_REQUIRE(s.slides.size() == 1u);
        BOOST_REQUIRE_MESSAGE(s.slides[0].ok(), s.slides[0].error);
        return s.slides[0];
    }
    int runs = 0;
    std::deque<RunSummary> summaries;  // run_ok hands out references into it
};

const char* name(SlideReader r) { return to_string(r); }

}  // namespace

BOOST_FIXTURE_TEST_SUITE(reader_pipeline, Fixture)

// Levels whose downsample is an integer (and level 0 everywhere) are read pixel-aligned by
// both readers: the oracle holds exactly (within 3, the model's FP rounding) for both. At the
// other levels (CropBreastSlide's 2.0012, 4.0035; the JPEG 2000 SVS's 4.0089) only the
// native reader gives the level's own pixels; OpenSlide's resampled reads are reported.
BOOST_AUTO_TEST_CASE(oracle_with_both_readers_at_several_levels_and_overlaps) {
    SyntheticSlideSpec spec;
    spec.width = 1100;
    spec.height = 900;
    spec.jpeg_quality = 0;
    write_synthetic_slide(dir / "deflate.tiff", spec);
    spec.jpeg_quality = 80;
    write_synthetic_slide(dir / "jpeg.tiff", spec);
    spec.width = 1003;
    spec.height = 701;
    write_synthetic_jp2k_svs(dir / "jp2k.svs", spec, tiff::Jp2kColour::ycbcr, 240);
    struct Case {
        std::string slide;
        std::vector<int> levels;
    };
    const std::vector<Case> cases = {
        {fit::shared_slide("CMU-1-Small-Region.svs"), {0}},
        {fit::shared_slide("CropBreastSlide.tiff"), {0, 1, 2}},
        {fit::shared_slide("boxes.tiff"), {0, 1}},
        {fit::shared_slide("small.svs"), {0}},
        {dir / "deflate.tiff", {0, 1}},
        {dir / "jpeg.tiff", {0, 1}},
        {dir / "jp2k.svs", {0, 1}},
    };
    for (const Case& k : cases) {
        for (const int level : k.levels) {
            const double ds = fit::level_downsample(k.slide, level);
            const bool aligned = ds == std::round(ds);
            for (const SlideReader reader : {SlideReader::native, SlideReader::openslide}) {
                for (const int overlap : {0, 52}) {
                    BOOST_TEST_CONTEXT(k.slide << " level " << level << " " << name(reader) << " overlap " << overlap) {
                        Config c = config(k.slide, reader, 128, overlap);
                        c.level = level;
                        const SlideResult& r = run_ok(c);
                        BOOST_TEST(r.reader == name(reader));
                        BOOST_TEST((r.tiles_decoded > 0) == (reader == SlideReader::native));
                        const fit::OracleStats st = fit::mean_oracle(k.slide, r.outputs.at(0).path, 1, level);
                        if (reader == SlideReader::native || aligned) {
                            BOOST_TEST(st.bad == 0);
                        } else {
                            BOOST_TEST_MESSAGE(fmt::format("OpenSlide at downsample {:.4f}: {:.1f}% off by more than 3",
                                                           ds, 100.0 * st.bad / st.checked));
                        }
                    }
                }
            }
        }
    }
}

// A shrink by 2 (tiling.mpp twice the slide's): OpenSlide's full decode is area-averaged
// exactly; the native reader decodes JPEG at 1/2 in the DCT domain, which is close to it
// (test_reader measures how close) but not equal.
BOOST_AUTO_TEST_CASE(oracle_when_shrinking_by_2) {
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    for (const SlideReader reader : {SlideReader::native, SlideReader::openslide}) {
        BOOST_TEST_CONTEXT(name(reader)) {
            Config c = config(slide, reader, 256, 32);
            c.mpp = 0.998;
            const SlideResult& r = run_ok(c);
            BOOST_TEST(r.outputs.at(0).downsample == 2.0, boost::test_tools::tolerance(1e-9));
            const fit::OracleStats st = fit::mean_oracle(slide, r.outputs.at(0).path, 2);
            if (reader == SlideReader::openslide) {
                BOOST_TEST(st.bad == 0);
            } else {
                BOOST_TEST(st.mean < 1.0);
                BOOST_TEST(st.bad < st.checked / 100);
            }
        }
    }
    // Within the 2% tolerance of 2 (0.98 / 0.499 = 1.964): the same exact shrink by 2.
    Config c = config(slide, SlideReader::native, 256, 32);
    c.mpp = 0.98;
    const SlideResult& r = run_ok(c);
    BOOST_TEST(r.outputs.at(0).downsample == 2.0, boost::test_tools::tolerance(1e-9));
}

// runtime.reader = "auto" takes the native reader for TIFF-family slides; summary.json says so
// and gives its tile figures. runtime.tile_cache_mb bounds the cache: with 1 MB the overlapping
// walk decodes tiles again, with the default it decodes each once.
BOOST_AUTO_TEST_CASE(key_runtime_reader_and_tile_cache_mb) {
    SyntheticSlideSpec spec;
    spec.width = 2600;
    spec.height = 1300;
    write_synthetic_slide(dir / "s.tiff", spec);
    const std::string slide = dir / "s.tiff";
    Config c = config(slide, SlideReader::automatic, 256, 204);
    const SlideResult& a = run_ok(c);
    BOOST_TEST(a.reader == "native");
    const std::int64_t tiles = 11 * 6;  // every level-0 tile, once
    BOOST_TEST(a.tiles_decoded == tiles);
    BOOST_TEST(a.tile_cache_hits > 0);
    const std::string json = fit::read_text(c.output_dir + "/summary.json");
    const fit::Json j = fit::parse_json(json);
    BOOST_TEST(j["slides"][0]["reader"].s == "native");
    BOOST_TEST(j["slides"][0]["tiles_decoded"].n == tiles);
    BOOST_TEST(j["slides"][0]["tile_cache_peak_mb"].n > 0.0);

    c = config(slide, SlideReader::automatic, 256, 204);
    c.tile_cache_mb = 1;
    const SlideResult& small = run_ok(c);
    BOOST_TEST(small.tiles_decoded > 2 * tiles);
    BOOST_TEST(small.tile_cache_peak_bytes <= (1 << 20) + 256 * 256 * 3);
    BOOST_TEST(fit::read_level(small.outputs.at(0).path, 0).rgb == fit::read_level(a.outputs.at(0).path, 0).rgb);

    c = config(slide, SlideReader::openslide, 256, 204);
    const SlideResult& o = run_ok(c);
    BOOST_TEST(o.reader == "openslide");
    BOOST_TEST(o.tiles_decoded == 0);
    BOOST_TEST(!fit::parse_json(fit::read_text(c.output_dir + "/summary.json"))["slides"][0].has("tiles_decoded"));
}

BOOST_AUTO_TEST_SUITE_END()
