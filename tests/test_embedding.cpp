// task = "embedding": features files read back through HDF5's C API and h5py against
// independent computations (patch means from OpenSlide, the walk order recomputed here), the
// attributes, float16, determinism, tissue and unreadable patches, several models in one read
// and resume. test_embedding_runs has the CLI's failure paths and the memory bound.
#define BOOST_TEST_MODULE test_embedding
#include <boost/test/unit_test.hpp>

#include "stages/embed.hpp"
#include "stages/hdf5/feature_writer.hpp"
#include "tests/embedding_support.hpp"

#include <flowinfer/config.hpp>
#include <flowinfer/demo.hpp>
#include <flowinfer/errors.hpp>
#include <flowinfer/pipeline.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

using namespace flowinfer;
using fit::H5File;
using fit::h5_output;
using fit::read_bytes;

namespace {

const std::string kCli = FLOWINFER_CLI;

// Patch positions along an axis and the walk over them, recomputed from README's rules (shift
// inward at the end; bands of `sections` rows, subsections of `subsections` columns, raster
// order inside), not from the planner's code.
std::vector<std::int64_t> positions(std::int64_t extent, int patch, int overlap) {
    if (extent <= patch) return {0};
    std::vector<std::int64_t> p;
    for (std::int64_t x = 0; x + patch < extent; x += patch - overlap) p.push_back(x);
    if (p.back() != extent - patch) p.push_back(extent - patch);
    return p;
}

struct Walk {
    std::vector<std::pair<std::int64_t, std::int64_t>> xy;  // working-grid top-left, walk order
};

Walk walk(std::int64_t width, std::int64_t height, int patch, int overlap, int sections = 2, int subsections = 8) {
    const auto xs = positions(width, patch, overlap), ys = positions(height, patch, overlap);
    Walk w;
    for (std::size_t r0 = 0; r0 < ys.size(); r0 += static_cast<std::size_t>(sections))
        for (std::size_t c0 = 0; c0 < xs.size(); c0 += static_cast<std::size_t>(subsections))
            for (std::size_t r = r0; r < std::min(ys.size(), r0 + static_cast<std::size_t>(sections)); ++r)
                for (std::size_t c = c0; c < std::min(xs.size(), c0 + static_cast<std::size_t>(subsections)); ++c)
                    w.xy.emplace_back(xs[c], ys[r]);
    return w;
}

// Means of R, G, B / 255 over the patch at (x, y) of `level`, white outside it.
std::array<double, 3> patch_means(const fit::Image& img, std::int64_t x, std::int64_t y, int patch) {
    std::array<double, 3> sum{};
    for (std::int64_t yy = y; yy < y + patch; ++yy)
        for (std::int64_t xx = x; xx < x + patch; ++xx)
            for (int c = 0; c < 3; ++c)
                sum[static_cast<std::size_t>(c)] +=
                    xx < img.width && yy < img.height ? img.at(xx, yy)[c] : 255;
    for (double& s : sum) s /= 255.0 * patch * patch;
    return sum;
}

using Fixture = fit::EmbeddingFixture;

}  // namespace

BOOST_FIXTURE_TEST_SUITE(embedding, Fixture)

BOOST_AUTO_TEST_CASE(features_equal_patch_means_read_through_openslide_in_walk_order) {
    struct Case {
        const char* slide;
        int level, patch, overlap;
    };
    // Level 0 of an Aperio slide, a level at a non-integer downsample (2.0011), a slide
    // smaller than one patch (padded white), with and without overlap.
    const Case cases[] = {{"CMU-1-Small-Region.svs", 0, 224, 0},
                          {"CMU-1-Small-Region.svs", 0, 224, 100},
                          {"CropBreastSlide.tiff", 1, 128, 32},
                          {"small.svs", 0, 32, 0}};
    for (const Case& k : cases) {
        BOOST_TEST_CONTEXT(k.slide << " level " << k.level << " overlap " << k.overlap) {
            const std::string slide = fit::shared_slide(k.slide);
            Config cfg = config({slide}, k.patch, k.overlap);
            cfg.level = k.level;
            cfg.output_dir = dir / fmt::format("out-{}", &k - cases);
            const RunSummary s = run(cfg);
            const OutputInfo o = h5_output(s.slides.at(0));

            const fit::Image img = fit::read_level(slide, k.level);
            const double ds = fit::level_downsample(slide, k.level);
            const Walk w = walk(img.width, img.height, k.patch, k.overlap);
            H5File f(o.path);
            BOOST_TEST(o.rows == static_cast<std::int64_t>(w.xy.size()));
            BOOST_TEST(o.dim == 3);
            BOOST_TEST(f.shape("features") == (std::vector<hsize_t>{w.xy.size(), 3}), boost::test_tools::per_element());
            BOOST_TEST(f.shape("coords") == (std::vector<hsize_t>{w.xy.size(), 2}), boost::test_tools::per_element());
            BOOST_TEST((f.type("features") == std::make_pair(H5T_FLOAT, std::size_t{4})));
            BOOST_TEST((f.type("coords") == std::make_pair(H5T_INTEGER, std::size_t{8})));
            const std::vector<float> feat = f.floats("features");
            const std::vector<std::int64_t> xy = f.ints("coords");
            double worst = 0;
            int bad_coords = 0;
            for (std::size_t i = 0; i < w.xy.size(); ++i) {
                const auto [x, y] = w.xy[i];
                if (xy[2 * i] != std::llround(x * ds) || xy[2 * i + 1] != std::llround(y * ds)) ++bad_coords;
                const auto m = patch_means(img, x, y, k.patch);
                for (int c = 0; c < 3; ++c)
                    worst = std::max(worst, std::abs(feat[3 * i + static_cast<std::size_t>(c)] - m[static_cast<std::size_t>(c)]));
            }
            BOOST_TEST(bad_coords == 0);
            BOOST_TEST_MESSAGE(k.slide << ": " << w.xy.size() << " rows, worst |feature - mean| " << worst);
            BOOST_TEST(worst < 2e-5);
        }
    }
}

BOOST_AUTO_TEST_CASE(coords_attributes_as_trident_writes_them_plus_flowinfers_own) {
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    Config cfg = config({slide}, 224, 32);
    cfg.mpp = 0.998;  // CMU-1 is 0.499 µm/px (20x): read at twice that, 10x
    const OutputInfo o = h5_output(run(cfg).slides.at(0));
    H5File f(o.path);
    BOOST_TEST(f.number("coords", "patch_size") == 224);
    BOOST_TEST(f.number("coords", "patch_size_level0") == 448);
    BOOST_TEST(f.number("coords", "level0_magnification") == 20);
    BOOST_TEST(f.number("coords", "target_magnification") == 10);
    // Whole magnifications are integers, as TRIDENT writes them.
    BOOST_TEST(f.attr_class("coords", "level0_magnification") == H5T_INTEGER);
    BOOST_TEST(f.attr_class("coords", "target_magnification") == H5T_INTEGER);
    BOOST_TEST(f.number("coords", "overlap") == 32);
    BOOST_TEST(f.number("coords", "level0_width") == 2220);
    BOOST_TEST(f.number("coords", "level0_height") == 2967);
    BOOST_TEST(f.text("coords", "name") == "CMU-1-Small-Region");
    BOOST_TEST(f.number("coords", "mpp") == 0.998, boost::test_tools::tolerance(1e-9));
    BOOST_TEST(f.number("coords", "level") == 0);
    BOOST_TEST(f.number("coords", "downsample") == 2.0);
    BOOST_TEST(f.text("coords", "model") == "mean");
    const fit::CmdResult version = fit::run_cmd(kCli + " --version");
    BOOST_TEST(version.output == "flowinfer " + f.text("coords", "flowinfer_version") + "\n");
    // The digest sha256sum prints for the model file.
    const fit::CmdResult sum = fit::run_cmd("sha256sum " + cfg.models[0].path);
    BOOST_REQUIRE(sum.exit_code == 0);
    BOOST_TEST(f.text("coords", "model_sha256") == sum.output.substr(0, 64));
    BOOST_TEST(f.text("features", "name") == "CMU-1-Small-Region");
    BOOST_TEST(f.text("features", "model") == "mean");
    // Coords at 10x step by the patch's level-0 side less the overlap, in level-0 pixels.
    const std::vector<std::int64_t> xy = f.ints("coords");
    BOOST_TEST(xy[0] == 0);
    BOOST_TEST(xy[2] == 2 * (224 - 32));

    // A slide without MPP or objective: magnifications unknown (0), mpp 0.
    cfg = config({fit::shared_slide("CropBreastSlide.tiff")}, 128, 0);
    cfg.level = 2;
    cfg.output_dir = dir / "out-nompp";
    H5File g(h5_output(run(cfg).slides.at(0)).path);
    BOOST_TEST(g.number("coords", "level0_magnification") == 0);
    BOOST_TEST(g.number("coords", "target_magnification") == 0);
    BOOST_TEST(g.number("coords", "mpp") == 0);
    BOOST_TEST(g.number("coords", "level") == 2);
    BOOST_TEST(g.number("coords", "patch_size_level0") == std::llround(128 * fit::level_downsample(fit::shared_slide("CropBreastSlide.tiff"), 2)));
}

BOOST_AUTO_TEST_CASE(magnification_follows_tridents_rule) {
    const std::pair<double, double> cases[] = {{0.0, 0},    {0.12, 80}, {0.17, 60}, {0.25, 40}, {0.2527, 40},
                                               {0.499, 20}, {0.5, 20},  {1.0, 10},  {2.0, 5},   {4.0, 2.5}};
    for (const auto& [mpp, mag] : cases) BOOST_TEST(magnification_of_mpp(mpp) == mag, "mpp " << mpp);
}

BOOST_AUTO_TEST_CASE(h5py_reads_shapes_dtypes_and_attributes_and_float16_is_float32_rounded) {
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    Config cfg = config({slide}, 224, 0, 384);  // a foundation-model-sized D
    cfg.output_dir = dir / "f32";
    const std::string f32 = h5_output(run(cfg).slides.at(0)).path;
    cfg.models[0].embedding_dtype = EmbeddingDtype::float16;
    cfg.output_dir = dir / "f16";
    const std::string f16 = h5_output(run(cfg).slides.at(0)).path;
    {
        H5File f(f16);
        BOOST_TEST((f.type("features") == std::make_pair(H5T_FLOAT, std::size_t{2})));
        // HDF5's own conversion of the stored halves gives back the float32 features to
        // float16's precision (11 bits: relative 2^-11).
        const std::vector<float> half = f.floats("features"), full = H5File(f32).floats("features");
        BOOST_REQUIRE(half.size() == full.size());
        for (std::size_t i = 0; i < half.size(); ++i)
            BOOST_TEST_REQUIRE(std::abs(half[i] - full[i]) <= std::abs(full[i]) * 0x1p-11f);
    }
    const fit::CmdResult r =
        fit::run_cmd("/usr/bin/python3 " + std::string(FLOWINFER_SOURCE_DIR) + "/tests/h5py_read.py " + f32 + " " + f16);
    BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.output);
    const fit::Json j = fit::parse_json(r.output);
    BOOST_TEST_MESSAGE("h5py: " << r.output.substr(0, 600));
    BOOST_TEST(j["datasets"]["features"]["dtype"].s == "<f4");
    BOOST_TEST(j["half"]["datasets"]["features"]["dtype"].s == "<f2");
    BOOST_TEST(j["datasets"]["coords"]["dtype"].s == "<i8");
    BOOST_TEST(j["datasets"]["features"]["shape"][0].n == 140);
    BOOST_TEST(j["datasets"]["features"]["shape"][1].n == 384);
    BOOST_TEST(j["datasets"]["coords"]["shape"][1].n == 2);
    BOOST_TEST(j["datasets"]["features"]["maxshape"][0].n == -1);  // extendible along N
    BOOST_TEST(j["finite"].b);
    BOOST_TEST(j["half_equals_rounded"].b);
    const fit::Json& a = j["attrs"]["coords"];
    for (const char* k : {"patch_size", "patch_size_level0", "level0_magnification", "target_magnification", "overlap",
                          "level0_width", "level0_height", "level"})
        BOOST_TEST(a[k]["type"].s == "int", k);
    for (const char* k : {"mpp", "downsample"}) BOOST_TEST(a[k]["type"].s == "float", k);
    for (const char* k : {"name", "model", "model_sha256", "flowinfer_version"}) BOOST_TEST(a[k]["type"].s == "str", k);
    BOOST_TEST(a["level0_magnification"]["value"].n == 20);
    BOOST_TEST(j["first_row"][0].n == j["first_row"][3].n);  // feature 3 is channel 0's mean again
}

BOOST_AUTO_TEST_CASE(float_to_half_rounds_to_nearest_even) {
    using hdf5::float_to_half;
    const std::pair<float, std::uint16_t> cases[] = {
        {0.0f, 0x0000},          {-0.0f, 0x8000},          {1.0f, 0x3c00},          {-2.0f, 0xc000},
        {65504.0f, 0x7bff},      {65519.0f, 0x7bff},       {65520.0f, 0x7c00},      {1e10f, 0x7c00},
        {0x1p-14f, 0x0400},      {0x1p-24f, 0x0001},       {0x1p-25f, 0x0000},      {0x1.8p-25f, 0x0001},
        {0x1.002p0f, 0x3c00},    {0x1.006p0f, 0x3c02},     {0x1.ffep-15f, 0x0400},  {0.1f, 0x2e66},
        {std::numeric_limits<float>::infinity(), 0x7c00}};
    for (const auto& [f, h] : cases) BOOST_TEST(float_to_half(f) == h, std::hexfloat << f);
    const std::uint16_t nan = float_to_half(std::numeric_limits<float>::quiet_NaN());
    BOOST_TEST(((nan & 0x7c00) == 0x7c00 && (nan & 0x3ff) != 0));
}

BOOST_AUTO_TEST_CASE(row_order_puts_rows_back_into_walk_order) {
    // Positions arrive shuffled within windows of 64 (as batches finishing out of order do),
    // every fifth without a row (unreadable).
    const int n = 1000, dim = 2;
    std::vector<std::uint64_t> seq(n);
    std::iota(seq.begin(), seq.end(), 0);
    std::mt19937 rng(7);
    for (int i = 0; i < n; i += 64) std::shuffle(seq.begin() + i, seq.begin() + std::min(n, i + 64), rng);
    RowOrder order;
    FeatureRows out;
    for (std::uint64_t s : seq) {
        const float f[dim] = {static_cast<float>(s), -static_cast<float>(s)};
        order.put(s, s % 5 != 0, static_cast<std::int64_t>(s), 0, f, dim, out);
    }
    BOOST_TEST(order.next() == static_cast<std::uint64_t>(n));
    BOOST_TEST(order.waiting() == 0u);
    BOOST_TEST(order.peak_waiting() < 64u);
    BOOST_REQUIRE(out.size() == static_cast<std::size_t>(n - n / 5));
    std::size_t i = 0;
    for (int s = 0; s < n; ++s) {
        if (s % 5 == 0) continue;
        BOOST_TEST_REQUIRE(out.xy[2 * i] == s);
        BOOST_TEST_REQUIRE(out.values[2 * i] == static_cast<float>(s));
        ++i;
    }
}

BOOST_AUTO_TEST_CASE(same_inputs_give_a_byte_identical_file_whatever_the_timing) {
    const std::string slide = synthetic("det.tiff", 3000, 2000);
    std::string first;
    struct Setting {
        int threads, readers, batch, micro, in_flight;
    };
    for (const Setting& s : {Setting{1, 1, 1, 1, 4}, Setting{2, 4, 7, 3, 64}, Setting{0, 8, 32, 1, 256}}) {
        Config cfg = config({slide}, 64, 16, 8);
        cfg.threads = s.threads;
        cfg.readers = s.readers;
        cfg.models[0].batch_size = s.batch;
        cfg.models[0].cpu_micro_batch = s.micro;
        cfg.max_in_flight = s.in_flight;
        cfg.infer_slots = 2;
        cfg.output_dir = dir / fmt::format("out-{}-{}", s.readers, s.batch);
        const std::string bytes = read_bytes(h5_output(run(cfg).slides.at(0)).path);
        if (first.empty()) first = bytes;
        BOOST_TEST((bytes == first), "threads " << s.threads << ", batch " << s.batch);
    }
}

BOOST_AUTO_TEST_CASE(tissue_filtered_and_unreadable_patches_have_no_row) {
    // Tissue: only the patches run get rows, in walk order, a subset of the full walk's.
    const std::string cmu = fit::shared_slide("CMU-1-Small-Region.svs");
    Config cfg = config({cmu}, 128, 0);
    cfg.output_dir = dir / "all";
    const std::vector<std::int64_t> all = H5File(h5_output(run(cfg).slides.at(0)).path).ints("coords");
    cfg.tissue = true;
    cfg.output_dir = dir / "tissue";
    const RunSummary s = run(cfg);
    const OutputInfo o = h5_output(s.slides.at(0));
    BOOST_TEST(o.rows == s.slides[0].patches);
    BOOST_TEST(s.slides[0].patches_skipped > 0);
    BOOST_TEST(o.rows + s.slides[0].patches_skipped == static_cast<std::int64_t>(all.size() / 2));
    const std::vector<std::int64_t> kept = H5File(o.path).ints("coords");
    std::size_t j = 0;  // kept is `all` with rows taken out
    for (std::size_t i = 0; i < all.size() / 2 && j < kept.size() / 2; ++i)
        if (all[2 * i] == kept[2 * j] && all[2 * i + 1] == kept[2 * j + 1]) ++j;
    BOOST_TEST(j == kept.size() / 2);

    // Unreadable (runtime.on_read_error = "skip"): a corrupt tile's patches have no row.
    const std::string slide = synthetic("corrupt.tiff", 1024, 768);
    fit::corrupt_tile(slide, 0, 1, 1);  // level-0 tile (256..512, 256..512)
    cfg = config({slide}, 128, 0);
    cfg.on_read_error = ReadErrorPolicy::skip;
    cfg.output_dir = dir / "corrupt";
    const RunSummary c = run(cfg);
    const OutputInfo co = h5_output(c.slides.at(0));
    BOOST_TEST(c.slides[0].patches_unreadable == 4);
    BOOST_TEST(co.rows == c.slides[0].patches - 4);
    const std::vector<std::int64_t> xy = H5File(co.path).ints("coords");
    for (std::size_t i = 0; i < xy.size(); i += 2)
        BOOST_TEST(!(xy[i] >= 256 && xy[i] < 512 && xy[i + 1] >= 256 && xy[i + 1] < 512), xy[i] << "," << xy[i + 1]);
}

BOOST_AUTO_TEST_CASE(several_models_share_one_read) {
    // A tissue classifier and two encoders ([B, D] and [B, D, 1, 1]) on one read of each patch.
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    Config cfg = config({slide}, 224, 0, 16);
    ModelConfig pooled = cfg.models[0];
    pooled.name = "pooled";
    pooled.path = model(DemoModel::mean_features_pooled, 16);
    pooled.embedding_dtype = EmbeddingDtype::float16;
    ModelConfig cls = cfg.models[0];
    cls.name = "tissue";
    cls.task = Task::classification;
    cls.path = model(DemoModel::patch_classifier);
    cfg.models.push_back(pooled);
    cfg.models.push_back(cls);
    const RunSummary s = run(cfg);
    BOOST_REQUIRE(s.slides.at(0).ok());
    BOOST_TEST(s.stages.at("read_region").items == s.slides[0].patches);  // each patch read once
    BOOST_TEST(s.slides[0].outputs.size() == 6u);  // 2 features files, the classifier's map, CSV, GeoJSON; preview
    const OutputInfo a = h5_output(s.slides[0], "mean");
    const OutputInfo b = h5_output(s.slides[0], "pooled");
    BOOST_TEST(a.dim == 16);
    BOOST_TEST(b.dim == 16);
    BOOST_TEST(a.rows == b.rows);
    const std::vector<float> fa = H5File(a.path).floats("features"), fb = H5File(b.path).floats("features");
    BOOST_REQUIRE(fa.size() == fb.size());
    for (std::size_t i = 0; i < fa.size(); ++i) BOOST_TEST_REQUIRE(std::abs(fa[i] - fb[i]) <= fa[i] * 0x1p-11f);
    BOOST_TEST((H5File(a.path).ints("coords") == H5File(b.path).ints("coords")));
}

BOOST_AUTO_TEST_CASE(resume_skips_a_complete_file_and_a_changed_dtype_redoes_it) {
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    Config cfg = config({slide}, 224, 0);
    RunOptions opt;
    opt.resume = true;
    const RunSummary first = run(cfg, opt);
    const OutputInfo o = h5_output(first.slides.at(0));
    const RunSummary again = run(cfg, opt);
    BOOST_TEST((again.slides.at(0).status == SlideStatus::skipped));
    BOOST_REQUIRE(again.slides[0].outputs.size() == 2u);  // the features file and the preview
    BOOST_TEST(again.slides[0].outputs[0].rows == o.rows);  // from the record
    BOOST_TEST(again.slides[0].outputs[0].dim == 3);
    BOOST_TEST(again.slides[0].outputs[1].kind == "preview");
    cfg.models[0].embedding_dtype = EmbeddingDtype::float16;
    const RunSummary redo = run(cfg, opt);
    BOOST_TEST((redo.slides.at(0).status == SlideStatus::ok));
    BOOST_TEST(redo.slides[0].reason == "redone: settings changed");
    BOOST_TEST(H5File(o.path).type("features").second == 2u);
}


// encoder's features at fp16, bf16 and fp32 against the CPU's fp32, row by row.
BOOST_AUTO_TEST_CASE(vit_features_on_cuda_match_the_cpu,
                     *boost::unit_test::label("gpu") * boost::unit_test::precondition(fit::has_cuda_gpu)) {
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    Config cfg = config({slide}, 224, 0);
    cfg.models[0].path = model(DemoModel::vit_small);
    cfg.models[0].mean = {0.485f, 0.456f, 0.406f};
    cfg.models[0].std = {0.229f, 0.224f, 0.225f};
    cfg.output_dir = dir / "cpu";
    const std::vector<float> ref = H5File(h5_output(run(cfg).slides.at(0)).path).floats("features");
    // fp32 is IEEE fp32 on the GPU (TF32 off); the halves keep cosine similarity high.
    const std::pair<Precision, double> cases[] = {{Precision::fp32, 0.99999}, {Precision::fp16, 0.999},
                                                  {Precision::bf16, 0.99}};
    for (const auto& [precision, min_cos] : cases) {
        cfg.device = "cuda:0";
        cfg.models[0].precision = precision;
        cfg.models[0].batch_size = 32;
        cfg.output_dir = dir / to_string(precision);
        const std::vector<float> got = H5File(h5_output(run(cfg).slides.at(0)).path).floats("features");
        BOOST_REQUIRE(got.size() == ref.size());
        double worst = 1;
        for (std::size_t r = 0; r < ref.size() / 384; ++r) {
            double ab = 0, aa = 0, bb = 0;
            for (std::size_t j = r * 384; j < (r + 1) * 384; ++j) {
                ab += double(ref[j]) * got[j];
                aa += double(ref[j]) * ref[j];
                bb += double(got[j]) * got[j];
            }
            worst = std::min(worst, ab / std::sqrt(aa * bb));
        }
        BOOST_TEST_MESSAGE(to_string(precision) << ": worst row cosine similarity to CPU fp32 " << worst);
        BOOST_TEST(worst > min_cos, to_string(precision));
    }
}

BOOST_AUTO_TEST_SUITE_END()
