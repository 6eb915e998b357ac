// Regions of interest through the whole pipeline: the patches a GeoJSON region, a mask image
// (PNG, TIFF) or --region lets run, against an independent footprint computation here (dense
// point sampling with an even-odd test); tissue and region together; input.roi_missing; and the
// bad inputs (not GeoJSON, a self-intersecting outline, an empty mask, a region outside the
// slide), each naming its file while the rest of the run goes on.
#define BOOST_TEST_MODULE test_roi_runs
#include <boost/test/unit_test.hpp>

#include "tests/test_support.hpp"

#include <flowinfer/config.hpp>
#include <flowinfer/errors.hpp>
#include <flowinfer/pipeline.hpp>

#include <fmt/format.h>

#include <array>
#include <cstdio>
#include <set>
#include <sstream>

using namespace flowinfer;

namespace {

const std::string kCli = FLOWINFER_CLI;
using Pt = std::array<double, 2>;
using Rings = std::vector<std::vector<Pt>>;  // every ring of one region (outers and holes)
using Patches = std::set<std::pair<long, long>>;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

bool inside(const Rings& rings, double x, double y) {
    bool in = false;
    for (const auto& r : rings)
        for (std::size_t i = 0, j = r.size() - 1; i < r.size(); j = i++)
            if ((r[i][1] > y) != (r[j][1] > y) && x < (r[j][0] - r[i][0]) * (y - r[i][1]) / (r[j][1] - r[i][1]) + r[i][0])
                in = !in;
    return in;
}

// Share of the square [x, x+side)^2 inside, from 32 x 32 samples at cell centres.
double sampled_fraction(const Rings& rings, double x, double y, double side) {
    int n = 0;
    for (int j = 0; j < 32; ++j)
        for (int i = 0; i < 32; ++i) n += inside(rings, x + (i + 0.5) * side / 32, y + (j + 0.5) * side / 32);
    return n / 1024.0;
}

std::string geojson(const std::vector<Rings>& polygons, const std::string& extra_feature = "") {
    std::string out = "{\"type\": \"FeatureCollection\", \"features\": [";
    for (std::size_t p = 0; p < polygons.size(); ++p) {
        out += fmt::format("{}{{\"type\": \"Feature\", \"properties\": {{\"objectType\": \"annotation\"}}, "
                           "\"geometry\": {{\"type\": \"Polygon\", \"coordinates\": [",
                           p ? ", " : "");
        for (std::size_t r = 0; r < polygons[p].size(); ++r) {
            out += r ? ", [" : "[";
            for (std::size_t k = 0; k < polygons[p][r].size(); ++k)
                out += fmt::format("{}[{}, {}]", k ? ", " : "", polygons[p][r][k][0], polygons[p][r][k][1]);
            out += "]";
        }
        out += "]}}";
    }
    return out + extra_feature + "]}\n";
}

struct Fixture {
    fit::TempDir dir;
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");  // 2220 x 2967
    std::string model = fit::demo_model(dir, DemoModel::patch_classifier);

    // pipeline.toml: patch_classifier on `slides`, 256 px patches without overlap, with `input`
    // and `tiling` lines added to those tables.
    std::string config(const std::vector<std::string>& slides, const std::string& input, const std::string& tiling = "",
                       const std::string& out = "out") {
        std::string list;
        for (const std::string& s : slides) list += fmt::format("{}\"{}\"", list.empty() ? "" : ", ", s);
        const std::string path = dir / (out + ".toml");
        fit::write_text(path, fmt::format("[input]\nslides = [{}]\n{}\n[output]\ndir = \"{}\"\npreviews = false\n"
                                          "[tiling]\npatch_size = 256\noverlap = 0\n{}\n[runtime]\nreaders = 2\n"
                                          "torch_threads = 1\n[[models]]\nname = \"cls\"\npath = \"{}\"\n"
                                          "task = \"classification\"\nmean = [0, 0, 0]\nstd = [1, 1, 1]\n",
                                          list, input, dir / out, tiling, model));
        return path;
    }
    // The patches a run's CSV lists (level-0 top-left), for slide `stem`.
    Patches patches(const std::string& out, const std::string& stem = "CMU-1-Small-Region") {
        Patches p;
        std::istringstream csv(fit::read_text(dir / (out + "/" + stem + "/cls.csv")));
        std::string line;
        std::getline(csv, line);
        while (std::getline(csv, line)) {
            double x = 0, y = 0;
            BOOST_REQUIRE(std::sscanf(line.c_str(), "%lf,%lf", &x, &y) == 2);
            p.insert({std::lround(x), std::lround(y)});
        }
        return p;
    }
    Patches all() {
        static Patches every;
        if (every.empty()) {
            run(load_config(config({slide}, "", "", "all")));
            every = patches("all");
        }
        return every;
    }
};

// A concave outline with a hole, its outer ring clockwise as some tools write it.
const Rings kRegion = {{{100, 100}, {150, 2500}, {1000, 2800}, {1200, 1300}, {2100, 1500}, {1900, 150}, {100, 100}},
                       {{500, 600}, {900, 600}, {900, 1000}, {500, 1000}, {500, 600}}};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(roi_runs, Fixture)

BOOST_AUTO_TEST_CASE(a_geojson_region_runs_the_patches_an_independent_footprint_computation_picks) {
    fit::write_text(dir / "CMU-1-Small-Region.geojson", geojson({kRegion}));
    const Patches every = all();
    BOOST_TEST(every.size() == 108u);
    for (double t : {0.05, 0.5, 0.9}) {
        const std::string out = fmt::format("t{}", std::lround(t * 100));
        const RunSummary s = run(load_config(config({slide}, fmt::format("roi = \"{}/{{stem}}.geojson\"", dir.path()),
                                                    fmt::format("roi_threshold = {}", t), out)));
        BOOST_REQUIRE_MESSAGE(s.slides[0].ok(), s.slides[0].error);
        const Patches ran = patches(out);
        std::size_t expected = 0, compared = 0, agree = 0;
        for (const auto& [x, y] : every) {
            const double f = sampled_fraction(kRegion, double(x), double(y), 256);
            if (std::abs(f - t) < 1.5 / 32) continue;  // the sampling's own error
            ++compared;
            expected += f >= t;
            agree += (f >= t) == (ran.count({x, y}) > 0);
        }
        BOOST_TEST_MESSAGE("roi_threshold " << t << ": " << ran.size() << " of " << every.size() << " run; " << agree
                                            << " of " << compared << " agree with sampling");
        BOOST_TEST(agree == compared);
        BOOST_TEST(compared > 90u);
        BOOST_TEST(s.slides[0].patches == static_cast<std::int64_t>(ran.size()));
        BOOST_TEST(s.slides[0].patches_skipped == static_cast<std::int64_t>(every.size() - ran.size()));
        BOOST_TEST(expected > 0u);
    }
}

BOOST_AUTO_TEST_CASE(masks_give_the_same_patches_as_the_same_region_in_geojson) {
    // A rectilinear region on multiples of 3 px, drawn into 740 x 989 masks (3 level-0 px each):
    // the same region exactly, so the same patches.
    const Rings region = {{{300, 150}, {1800, 150}, {1800, 1200}, {900, 1200}, {900, 2700}, {300, 2700}, {300, 150}},
                          {{600, 450}, {600, 900}, {1200, 900}, {1200, 450}, {600, 450}}};
    fit::write_text(dir / "r.geojson", geojson({region}));
    std::vector<std::uint8_t> px(740 * 989);
    for (int y = 0; y < 989; ++y)
        for (int x = 0; x < 740; ++x) px[std::size_t(y) * 740 + x] = inside(region, 3 * x + 1.5, 3 * y + 1.5) ? 255 : 0;
    fit::write_png_image(dir / "r.png", px, 740, 989);
    fit::write_gray_tiff(dir / "r.tif", px, 740, 989);
    std::map<std::string, Patches> ran;
    for (const char* ext : {"geojson", "png", "tif"}) {
        const RunSummary s =
            run(load_config(config({slide}, fmt::format("roi = \"{}/r.{}\"", dir.path(), ext), "roi_threshold = 0.3", ext)));
        BOOST_REQUIRE_MESSAGE(s.slides[0].ok(), s.slides[0].error);
        ran[ext] = patches(ext);
    }
    BOOST_TEST_MESSAGE("geojson " << ran["geojson"].size() << ", png " << ran["png"].size() << ", tiff " << ran["tif"].size());
    BOOST_TEST(ran["geojson"].size() > 20u);
    BOOST_TEST(ran["geojson"].size() < all().size());
    BOOST_TEST((ran["png"] == ran["geojson"]));
    BOOST_TEST((ran["tif"] == ran["geojson"]));
}

BOOST_AUTO_TEST_CASE(region_flag_runs_one_rectangle_and_tissue_and_region_must_both_hold) {
    const std::string cfg = config({slide}, "", "", "rect");
    const fit::CmdResult r = fit::run_cmd(kCli + " run " + cfg + " -q --region 300,400,900,700");
    BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.output);
    const Patches ran = patches("rect");
    std::size_t expected = 0;
    for (const auto& [x, y] : all()) {
        const double ix = std::max(0.0, std::min(x + 256.0, 1200.0) - std::max(double(x), 300.0));
        const double iy = std::max(0.0, std::min(y + 256.0, 1100.0) - std::max(double(y), 400.0));
        const bool in = ix * iy / (256.0 * 256.0) >= 0.05;
        expected += in;
        BOOST_TEST((ran.count({x, y}) > 0) == in, "patch " << x << "," << y);
    }
    BOOST_TEST(ran.size() == expected);
    BOOST_TEST(ran.size() == 16u);  // columns 256..1024 x rows 256..1024 reach 5 %
    // Tissue detection and the region: a patch runs when both hold.
    run(load_config(config({slide}, "", "tissue = true", "tissue")));
    run(load_config(config({slide}, "region = [300, 400, 900, 700]", "tissue = true", "both")));
    Patches both_expected;
    for (const auto& p : patches("tissue"))
        if (ran.count(p)) both_expected.insert(p);
    BOOST_TEST((patches("both") == both_expected));
    BOOST_TEST(patches("tissue").size() > both_expected.size());
}

BOOST_AUTO_TEST_CASE(a_slide_without_its_roi_file_follows_roi_missing) {
    const std::string other = fit::shared_slide("small.svs");
    fit::write_text(dir / "CMU-1-Small-Region.geojson", geojson({kRegion}));
    const std::string roi = fmt::format("roi = \"{}/{{stem}}.geojson\"\n", dir.path());
    const auto statuses = [&](const std::string& missing, const std::string& out) {
        const RunSummary s = run(load_config(config({slide, other}, roi + missing, "", out)));
        return s;
    };
    const RunSummary e = statuses("", "e");
    BOOST_TEST(e.slides[0].ok());
    BOOST_TEST((e.slides[1].status == SlideStatus::failed));
    BOOST_TEST(contains(e.slides[1].error, dir / "small.geojson"));
    const RunSummary a = statuses("roi_missing = \"all\"", "a");
    BOOST_TEST(a.slides[1].ok());
    BOOST_REQUIRE(a.slides[1].warnings.size() == 1u);
    BOOST_TEST(contains(a.slides[1].warnings[0], "small.geojson"));
    BOOST_TEST(a.slides[1].patches_skipped == 0);
    const RunSummary k = statuses("roi_missing = \"skip\"", "k");
    BOOST_TEST((k.slides[1].status == SlideStatus::skipped));
    BOOST_TEST(contains(k.slides[1].reason, "roi_missing"));
    BOOST_TEST(k.slides[0].patches == a.slides[0].patches);
}

BOOST_AUTO_TEST_CASE(bad_region_files_fail_their_slide_and_name_the_file) {
    const std::string other = fit::shared_slide("small.svs");
    // small.svs' region is not GeoJSON; CMU-1's has a bow-tie beside a good outline.
    fit::write_text(dir / "small.geojson", "<svg>not json</svg>");
    const Rings bowtie = {{{0, 0}, {500, 500}, {500, 0}, {0, 700}, {0, 0}}};
    fit::write_text(dir / "CMU-1-Small-Region.geojson", geojson({bowtie, kRegion}));
    const std::string cfg = config({slide, other}, fmt::format("roi = \"{}/{{stem}}.geojson\"", dir.path()), "", "bad");
    const fit::CmdResult r = fit::run_cmd(kCli + " run " + cfg + " -q");
    BOOST_TEST(r.exit_code == 1, r.output);
    BOOST_TEST(contains(r.output, dir / "small.geojson"), r.output);
    BOOST_TEST(contains(r.output, "not JSON"));
    BOOST_TEST(contains(r.output, "crosses itself"), r.output);  // the warning, printed
    const fit::Json summary = fit::parse_json(fit::read_text(dir / "bad/summary.json"));
    BOOST_TEST(summary["slides"][std::size_t(0)]["status"].s == "ok");
    BOOST_TEST(contains(summary["slides"][std::size_t(0)]["warnings"][std::size_t(0)].s, "feature 0"));
    BOOST_TEST(summary["slides"][std::size_t(1)]["status"].s == "failed");
    // An empty mask, and a region outside the slide.
    fit::write_png_image(dir / "empty.png", std::vector<std::uint8_t>(100, 0), 10, 10);
    const RunSummary m = run(load_config(config({slide}, fmt::format("roi = \"{}/empty.png\"", dir.path()), "", "m")));
    BOOST_TEST((m.slides[0].status == SlideStatus::failed));
    BOOST_TEST(contains(m.slides[0].error, "empty.png"));
    BOOST_TEST(contains(m.slides[0].error, "empty"));
    const RunSummary o = run(load_config(config({slide}, "region = [5000, 5000, 100, 100]", "", "o")));
    BOOST_TEST((o.slides[0].status == SlideStatus::failed));
    BOOST_TEST(contains(o.slides[0].error, "outside the slide (2220 x 2967"), o.slides[0].error);
}

BOOST_AUTO_TEST_CASE(region_keys_are_checked) {
    const auto key_of = [&](const std::string& input, const std::string& tiling) {
        try {
            load_config(config({slide}, input, tiling, "k"));
        } catch (const ConfigError& e) {
            return std::string(e.key());
        }
        return std::string("no error");
    };
    BOOST_TEST(key_of("roi = \"{slide}.geojson\"", "") == "input.roi");
    BOOST_TEST(key_of("roi_missing = \"all\"", "") == "input.roi_missing");  // without input.roi
    BOOST_TEST(key_of("roi = \"a.png\"\nroi_missing = \"maybe\"", "") == "input.roi_missing");
    BOOST_TEST(key_of("region = [0, 0, 0, 10]", "") == "input.region");
    BOOST_TEST(key_of("region = [0, 0, 10]", "") == "input.region");
    BOOST_TEST(key_of("roi = \"a.png\"\nregion = [0, 0, 10, 10]", "") == "input.region");
    BOOST_TEST(key_of("", "roi_threshold = 0.5") == "tiling.roi_threshold");
    BOOST_TEST(key_of("region = [0, 0, 10, 10]", "roi_threshold = 1.5") == "tiling.roi_threshold");
    const fit::CmdResult r = fit::run_cmd(kCli + " run " + config({slide}, "", "", "k") + " --region 1,2,3");
    BOOST_TEST(r.exit_code == 2);
    BOOST_TEST(contains(r.output, "--region: expected X,Y,W,H"), r.output);
}

BOOST_AUTO_TEST_SUITE_END()
