// What a person looks at after a run: each slide's preview.png (read back with libpng and
// checked pixel by pixel against the blend rule over the same run without results) and
// report.html of a real run with an ok, a failed and an ok slide, loaded in headless Chromium:
// one row per slide with its status, thumbnails, no console errors, the status filter, and a
// screenshot kept for people to look at.
#define BOOST_TEST_MODULE test_previews
#include <boost/test/unit_test.hpp>

#include "tests/browser.hpp"
#include "tests/test_support.hpp"

#include <flowinfer/config.hpp>
#include <flowinfer/pipeline.hpp>

#include <fmt/format.h>
#include <png.h>

#include <filesystem>

using namespace flowinfer;
namespace fs = std::filesystem;

namespace {

const std::string kCli = FLOWINFER_CLI;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

struct Png {
    int width = 0, height = 0;
    std::vector<std::uint8_t> rgb;
};

Png read_png(const std::string& path) {
    png_image img{};
    img.version = PNG_IMAGE_VERSION;
    BOOST_REQUIRE_MESSAGE(png_image_begin_read_from_file(&img, path.c_str()), "cannot read " << path);
    img.format = PNG_FORMAT_RGB;
    Png out;
    out.width = static_cast<int>(img.width);
    out.height = static_cast<int>(img.height);
    out.rgb.resize(PNG_IMAGE_SIZE(img));
    BOOST_REQUIRE(png_image_finish_read(&img, nullptr, out.rgb.data(), 0, nullptr));
    return out;
}

struct Fixture {
    fit::TempDir dir;
    // pipeline.toml: `entries` ([[models]] lines each) on `slides`, 256 px patches.
    std::string config(const std::vector<std::string>& slides, const std::vector<std::string>& entries,
                       const std::string& out, const std::string& output_extra = "") {
        std::string list, models;
        for (const std::string& s : slides) list += fmt::format("{}\"{}\"", list.empty() ? "" : ", ", s);
        for (const std::string& e : entries) models += "[[models]]\n" + e + "\n";
        const std::string path = dir / (out + ".toml");
        fit::write_text(path, fmt::format("[input]\nslides = [{}]\n[output]\ndir = \"{}\"\n{}\n[tiling]\npatch_size = 256\n"
                                          "overlap = 0\n[runtime]\nreaders = 2\ntorch_threads = 1\n{}",
                                          list, dir / out, output_extra, models));
        return path;
    }
    std::string constant(float v) { return fit::demo_model(dir, DemoModel::constant, v); }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(previews, Fixture)

BOOST_AUTO_TEST_CASE(a_segmentation_preview_tints_what_the_map_holds_by_the_blend_rule) {
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    // constant 1 puts every pixel in class 1 (value 255); constant 0 in none (value 0): the
    // second preview is the bare thumbnail, the first that thumbnail tinted in class 1's colour.
    const auto preview_of = [&](float v, const std::string& out) {
        const RunSummary s = run(load_config(config({slide}, {fmt::format("name = \"seg\"\npath = \"{}\"", constant(v))}, out)));
        BOOST_REQUIRE_MESSAGE(s.slides[0].ok(), s.slides[0].error);
        std::string path;
        for (const OutputInfo& o : s.slides[0].outputs)
            if (o.kind == "preview") path = o.path;
        BOOST_TEST(path == dir / (out + "/CMU-1-Small-Region/preview.png"));
        BOOST_TEST(contains(s.slides[0].thumbnail, "data:image/png;base64,"));
        return read_png(path);
    };
    const Png tinted = preview_of(1.0f, "one"), bare = preview_of(0.0f, "zero");
    BOOST_TEST(tinted.width == bare.width);
    BOOST_TEST(tinted.height == bare.height);
    BOOST_TEST(std::max(bare.width, bare.height) >= 512);
    BOOST_TEST(std::max(bare.width, bare.height) <= 1024);
    const int color[3] = {255, 127, 14};  // tab10's class 1
    std::int64_t off = 0;
    for (std::size_t i = 0; i < bare.rgb.size(); ++i)
        off += tinted.rgb[i] != (55 * bare.rgb[i] + 45 * color[i % 3] + 50) / 100;
    BOOST_TEST_MESSAGE("preview " << bare.width << "x" << bare.height << ": " << off << " samples off the blend rule");
    BOOST_TEST(off == 0);
    // A thumbnail is not white: the slide is there.
    std::int64_t dark = 0;
    for (std::size_t i = 0; i < bare.rgb.size(); i += 3) dark += bare.rgb[i] < 200;
    BOOST_TEST(dark > static_cast<std::int64_t>(bare.rgb.size() / 3 / 4));
    // output.previews = false: no preview, no thumbnail.
    const RunSummary s = run(load_config(config({slide}, {fmt::format("name = \"seg\"\npath = \"{}\"", constant(1))}, "off",
                                                "previews = false")));
    BOOST_TEST(s.slides[0].thumbnail.empty());
    BOOST_TEST(!fs::exists(dir / "off/CMU-1-Small-Region/preview.png"));
}

BOOST_AUTO_TEST_CASE(detections_and_heatmaps_are_drawn_over_the_thumbnail) {
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    const std::string boxes = fit::demo_model(dir, DemoModel::ragged_boxes);
    const std::string cls = fit::demo_model(dir, DemoModel::patch_classifier);
    run(load_config(config({slide}, {fmt::format("name = \"seg\"\npath = \"{}\"", constant(0))}, "bare")));
    const RunSummary s = run(load_config(config(
        {slide},
        {fmt::format("name = \"det\"\npath = \"{}\"\ntask = \"detection\"\nmean = [0, 0, 0]\nstd = [1, 1, 1]\n"
                     "conf_threshold = 0.01",
                     boxes),
         fmt::format("name = \"cls\"\npath = \"{}\"\ntask = \"classification\"\nmean = [0, 0, 0]\nstd = [1, 1, 1]", cls)},
        "drawn")));
    BOOST_REQUIRE_MESSAGE(s.slides[0].ok(), s.slides[0].error);
    const Png bare = read_png(dir / "bare/CMU-1-Small-Region/preview.png");
    const Png drawn = read_png(dir / "drawn/CMU-1-Small-Region/preview.png");
    BOOST_REQUIRE(bare.rgb.size() == drawn.rgb.size());
    // The heatmap changes every run patch's pixels; the boxes sit at each patch's corner.
    std::int64_t changed = 0;
    for (std::size_t i = 0; i < bare.rgb.size(); ++i) changed += bare.rgb[i] != drawn.rgb[i];
    BOOST_TEST(changed > static_cast<std::int64_t>(bare.rgb.size() / 2));
}

BOOST_AUTO_TEST_CASE(the_report_of_a_real_run_in_a_browser) {
    const std::vector<std::string> slides = {fit::shared_slide("CMU-1-Small-Region.svs"),
                                             fit::shared_slide("negative/unopenable.tiff"),
                                             fit::shared_slide("small.svs")};
    const std::string cfg = config(slides, {fmt::format("name = \"seg\"\npath = \"{}\"", fit::demo_model(dir, DemoModel::tissue))},
                                   "run");
    const fit::CmdResult r = fit::run_cmd(kCli + " run " + cfg + " -q");
    BOOST_TEST(r.exit_code == 1, r.output);  // one slide failed
    BOOST_TEST(contains(r.output, "report: " + dir / "run/report.html"), r.output);
    const fs::path report = dir / "run/report.html";
    BOOST_REQUIRE(fs::exists(report));
    BOOST_TEST(!fs::exists(report.string() + ".partial"));
    const fit_browser::Browser b = fit_browser::run_browser(dir.path(), report, "");
    BOOST_TEST(!fit_browser::console_lines(b.log), b.log);
    const std::vector<std::string> rows = fit_browser::row_tags(b.dom);
    BOOST_REQUIRE(rows.size() == 3u);
    // Rows in the summary's order: sorted paths.
    BOOST_TEST(fit_browser::status_of(rows[0]) == "ok");
    BOOST_TEST(fit_browser::status_of(rows[1]) == "failed");
    BOOST_TEST(fit_browser::status_of(rows[2]) == "ok");
    BOOST_TEST(contains(b.dom, "CMU-1-Small-Region.svs"));
    BOOST_TEST(contains(b.dom, "unopenable.tiff"));
    std::size_t thumbs = 0;
    for (std::size_t p = b.dom.find("src=\"data:image/png;base64,"); p != std::string::npos;
         p = b.dom.find("src=\"data:image/png;base64,", p + 1))
        ++thumbs;
    BOOST_TEST(thumbs == 2u);  // the ok slides'
    BOOST_TEST(contains(b.dom, "CMU-1-Small-Region/seg.tif"));
    BOOST_TEST(contains(b.dom, "CMU-1-Small-Region/seg.geojson"));
    const fit_browser::Browser f = fit_browser::run_browser(dir.path(), report, "#status=failed");
    const std::vector<std::string> filtered = fit_browser::row_tags(f.dom);
    BOOST_REQUIRE(filtered.size() == 3u);
    BOOST_TEST(fit_browser::hidden(filtered[0]));
    BOOST_TEST(!fit_browser::hidden(filtered[1]));
    BOOST_TEST(fit_browser::hidden(filtered[2]));
    // The screenshot people look at; kept beside the test binary.
    const fs::path shot = fs::absolute("artifacts/report-screenshot.png");
    fs::create_directories(shot.parent_path());
    fs::remove(shot);
    fit_browser::run_browser(dir.path(), report, "", "--screenshot='" + shot.string() + "' --window-size=1280,900");
    BOOST_TEST(fs::exists(shot));
    BOOST_TEST(fs::file_size(shot) > 10000u);
    BOOST_TEST_MESSAGE("report screenshot: " << shot.string());
    // The summary agrees with the report.
    const fit::Json summary = fit::parse_json(fit::read_text(dir / "run/summary.json"));
    BOOST_TEST(summary["counts"]["ok"].n == 2);
    BOOST_TEST(summary["counts"]["failed"].n == 1);
}

BOOST_AUTO_TEST_SUITE_END()
