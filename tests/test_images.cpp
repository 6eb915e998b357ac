// Patch-directory mode (input.images) through the CLI: a directory the test writes from crops
// of a real slide (libpng, libjpeg, libtiff), of mixed sizes and formats, run with the
// pointwise-mean model (every map pixel is the mean of R, G, B) and a per-channel-mean
// classifier. Every mask pixel and every CSV row is compared with a computation here from
// the images' own pixels (PNG and TIFF as written, JPEG as libjpeg decodes it); then resume,
// and the bad inputs (truncated, CMYK, 16-bit, 0 x 0, a pattern matching nothing), each
// failing alone and naming its file.
#define BOOST_TEST_MODULE test_images
#include <boost/test/unit_test.hpp>

#include "tests/test_support.hpp"

#include <flowinfer/demo.hpp>

#include <fmt/format.h>
#include <jpeglib.h>
#include <png.h>
#include <tiffio.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace fs = std::filesystem;

namespace {

const std::string kCli = FLOWINFER_CLI;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Interleaved 8-bit pixels of `channels` per pixel.
struct Pixels {
    int width = 0, height = 0, channels = 3;
    std::vector<std::uint8_t> px;
};

Pixels crop(const fit::Image& src, int x, int y, int w, int h) {
    Pixels p{w, h, 3, {}};
    for (int r = 0; r < h; ++r)
        for (int c = 0; c < w; ++c)
            for (int k = 0; k < 3; ++k) p.px.push_back(src.at(x + c, y + r)[k]);
    return p;
}

// The RGB the pipeline must see: grey replicated, alpha composited on white.
Pixels as_rgb(const Pixels& p) {
    if (p.channels == 3) return p;
    Pixels out{p.width, p.height, 3, {}};
    for (int i = 0; i < p.width * p.height; ++i) {
        const std::uint8_t* s = &p.px[static_cast<std::size_t>(i) * p.channels];
        const int a = p.channels == 4 ? s[3] : p.channels == 2 ? s[1] : 255;
        for (int k = 0; k < 3; ++k) {
            const int c = p.channels >= 3 ? s[k] : s[0];
            out.px.push_back(static_cast<std::uint8_t>((a * c + (255 - a) * 255 + 127) / 255));
        }
    }
    return out;
}

// libjpeg's own decode of a file, as the independent reading of a JPEG.
Pixels read_jpeg(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    BOOST_REQUIRE(f);
    jpeg_decompress_struct cinfo{};
    jpeg_error_mgr jerr{};
    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, f);
    jpeg_read_header(&cinfo, TRUE);
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    Pixels p{static_cast<int>(cinfo.output_width), static_cast<int>(cinfo.output_height), 3, {}};
    p.px.resize(static_cast<std::size_t>(p.width) * p.height * 3);
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = &p.px[static_cast<std::size_t>(cinfo.output_scanline) * p.width * 3];
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    std::fclose(f);
    return p;
}

Pixels read_gray_png(const std::string& path) {
    png_image img{};
    img.version = PNG_IMAGE_VERSION;
    BOOST_REQUIRE_MESSAGE(png_image_begin_read_from_file(&img, path.c_str()), "cannot read " << path);
    BOOST_REQUIRE_MESSAGE(img.format == PNG_FORMAT_GRAY, path << " is not 8-bit greyscale");
    Pixels p{static_cast<int>(img.width), static_cast<int>(img.height), 1, {}};
    p.px.resize(PNG_IMAGE_SIZE(img));
    BOOST_REQUIRE(png_image_finish_read(&img, nullptr, p.px.data(), 0, nullptr));
    return p;
}

void write_rgb_tiff(const std::string& path, const Pixels& p) {
    TIFF* t = TIFFOpen(path.c_str(), "w");
    BOOST_REQUIRE(t);
    TIFFSetField(t, TIFFTAG_IMAGEWIDTH, p.width);
    TIFFSetField(t, TIFFTAG_IMAGELENGTH, p.height);
    TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 3);
    TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 8);
    TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB);
    TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, 16);
    TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
    for (int r = 0; r < p.height; ++r)
        BOOST_REQUIRE(TIFFWriteScanline(t, const_cast<std::uint8_t*>(&p.px[static_cast<std::size_t>(r) * p.width * 3]),
                                        static_cast<std::uint32_t>(r), 0) == 1);
    TIFFClose(t);
}

// The patch grid of stages/layout.hpp: step by stride, the last patch shifted inward.
std::vector<int> positions(int extent, int patch, int stride) {
    if (extent <= patch) return {0};
    std::vector<int> out;
    const int n = (extent - patch + stride - 1) / stride + 1;
    for (int i = 0; i < n; ++i) out.push_back(std::min(i * stride, extent - patch));
    return out;
}

constexpr int kPatch = 128, kOverlap = 32;

struct Fixture {
    fit::TempDir dir;
    fit::Image slide = fit::read_level(fit::shared_slide("CMU-1-Small-Region.svs"), 0);
    std::map<std::string, Pixels> rgb;  // relative path -> the RGB the pipeline must see

    // Mixed sizes and formats, in two directories and one level deeper.
    Fixture() {
        fs::create_directories(dir / "in/a");
        fs::create_directories(dir / "in/b/deep");
        const auto keep = [&](const std::string& rel, const Pixels& p) { rgb[rel] = as_rgb(p); };
        Pixels p = crop(slide, 300, 400, kPatch, kPatch);  // one patch
        fit::write_png_image(dir / "in/a/exact.png", p.px, p.width, p.height, 3);
        keep("a/exact.png", p);
        p = crop(slide, 900, 700, 300, 200);  // tiled with overlap
        fit::write_png_image(dir / "in/a/wide.png", p.px, p.width, p.height, 3);
        keep("a/wide.png", p);
        p = crop(slide, 1200, 1500, 77, 50);  // padded white
        Pixels grey{77, 50, 1, {}};
        for (std::size_t i = 0; i < p.px.size(); i += 3) grey.px.push_back(p.px[i + 1]);
        fit::write_png_image(dir / "in/b/small-grey.png", grey.px, 77, 50, 1);
        keep("b/small-grey.png", grey);
        p = crop(slide, 500, 1900, 160, 140);  // RGBA: alpha from a ramp, composited on white
        Pixels rgba{160, 140, 4, {}};
        for (int i = 0; i < 160 * 140; ++i) {
            for (int k = 0; k < 3; ++k) rgba.px.push_back(p.px[static_cast<std::size_t>(i) * 3 + k]);
            rgba.px.push_back(static_cast<std::uint8_t>((i % 160) * 255 / 159));
        }
        fit::write_png_image(dir / "in/b/deep/alpha.png", rgba.px, 160, 140, 4);
        keep("b/deep/alpha.png", rgba);
        p = crop(slide, 1000, 1000, 200, 180);
        fit::write_jpeg_image(dir / "in/b/scan.jpg", p.px, 200, 180, 3, 90);
        rgb["b/scan.jpg"] = read_jpeg(dir / "in/b/scan.jpg");
        p = crop(slide, 100, 2500, 140, 260);
        write_rgb_tiff(dir / "in/b/deep/strip.tif", p);
        keep("b/deep/strip.tif", p);
    }

    // pipeline.toml for `patterns`: the mean model (segmentation) and a 3-class classifier
    // whose outputs are the patch's channel means of x / 255.
    std::string config(const std::string& name, const std::string& patterns, const std::string& extra = "") {
        const std::string path = dir / (name + ".toml");
        fit::write_text(path, fmt::format(R"(
[input]
images = {}
[output]
dir = "{}"
[tiling]
patch_size = {}
overlap = {}
[runtime]
readers = 2
max_in_flight = 24
[[models]]
name = "mean"
path = "{}"
task = "segmentation"
mean = [0, 0, 0]
std = [1, 1, 1]
activation = "none"
batch_size = 5
[[models]]
name = "means"
path = "{}"
task = "classification"
mean = [0, 0, 0]
std = [1, 1, 1]
activation = "none"
batch_size = 5
{}
)",
                                          patterns, dir / ("out-" + name), kPatch, kOverlap,
                                          fit::demo_model(dir, flowinfer::DemoModel::pointwise_mean),
                                          fit::demo_model(dir, flowinfer::DemoModel::mean_features, 3), extra));
        return path;
    }
};

std::vector<std::vector<std::string>> read_csv(const std::string& path) {
    std::vector<std::vector<std::string>> rows;
    std::istringstream in(fit::read_text(path));
    for (std::string line; std::getline(in, line);) {
        std::vector<std::string> f;
        std::stringstream s(line);
        for (std::string cell; std::getline(s, cell, ',');) f.push_back(cell);
        rows.push_back(f);
    }
    return rows;
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(every_mask_pixel_and_csv_row_equals_the_images_own_means, Fixture) {
    const fit::CmdResult r = fit::run_cmd(kCli + " run " + config("ok", R"(["in/a/*.png", "in/b/**/*.*"])") + " 2>&1");
    BOOST_TEST_INFO(r.output);
    BOOST_REQUIRE_EQUAL(r.exit_code, 0);
    const std::string out = dir / "out-ok";
    BOOST_TEST(contains(r.output, "6 images: 6 ok"));

    // Masks: mirrored paths, the image's size, round(mean of R, G, B), white padding unseen.
    for (const auto& [rel, src] : rgb) {
        const std::string mask_path = (fs::path(out) / "mean" / rel).replace_extension(".png").string();
        BOOST_TEST_CONTEXT(mask_path) {
            const Pixels mask = read_gray_png(mask_path);
            BOOST_REQUIRE_EQUAL(mask.width, src.width);
            BOOST_REQUIRE_EQUAL(mask.height, src.height);
            int bad = 0;
            for (int i = 0; i < src.width * src.height; ++i) {
                const std::uint8_t* s = &src.px[static_cast<std::size_t>(i) * 3];
                const double mean = (s[0] + s[1] + s[2]) / 3.0;
                bad += std::abs(mask.px[static_cast<std::size_t>(i)] - std::lround(mean)) > 0;
            }
            BOOST_TEST(bad == 0);
        }
    }

    // One CSV for the run: a row per patch, the patch's channel means (padding is white).
    const auto rows = read_csv(out + "/means.csv");
    BOOST_REQUIRE(!rows.empty());
    BOOST_TEST(fmt::format("{}", fmt::join(rows[0], ",")) == "image,x,y,w,h,class 0,class 1,class 2");
    std::size_t expected_rows = 0;
    double worst = 0;
    for (const auto& [rel, src] : rgb) {
        const int stride = kPatch - kOverlap;
        for (int y : positions(src.height, kPatch, stride))
            for (int x : positions(src.width, kPatch, stride)) {
                ++expected_rows;
                double sum[3] = {0, 0, 0};
                for (int r = y; r < y + kPatch; ++r)
                    for (int c = x; c < x + kPatch; ++c)
                        for (int k = 0; k < 3; ++k)
                            sum[k] += r < src.height && c < src.width ? src.px[(static_cast<std::size_t>(r) * src.width + c) * 3 + k]
                                                                      : 255;
                const auto row = std::find_if(rows.begin(), rows.end(), [&](const auto& f) {
                    return f.size() == 8 && f[0] == rel && f[1] == std::to_string(x) && f[2] == std::to_string(y);
                });
                BOOST_TEST_CONTEXT(rel << " (" << x << ", " << y << ")") {
                    BOOST_REQUIRE(row != rows.end());
                    for (int k = 0; k < 3; ++k)
                        worst = std::max(worst, std::abs(std::stod((*row)[5 + k]) - sum[k] / (kPatch * kPatch) / 255.0));
                }
            }
    }
    BOOST_TEST(rows.size() == expected_rows + 1);
    BOOST_TEST(worst < 2e-6);  // six significant digits

    // summary.json: one entry per image, the table, images/s.
    const fit::Json s = fit::parse_json(fit::read_text(out + "/summary.json"));
    BOOST_TEST(s["images"].items.size() == 6u);
    BOOST_TEST(s["tables"][0]["path"].s == out + "/means.csv");
    BOOST_TEST(s["tables"][0]["objects"].n == static_cast<double>(expected_rows));
    BOOST_TEST(s["images_per_s"].n > 0);
    BOOST_TEST(!fit::exists(out + "/report.html"));
    // Images share batches: the patches of all six fill batches of 5 (both models share them),
    // and only the very last is partial. Batches of one image each would number 8.
    BOOST_TEST(s["stages"]["batch_collect"]["items"].n == static_cast<double>((expected_rows + 4) / 5));
    BOOST_TEST(s["peak_in_flight"].n <= 24);  // runtime.max_in_flight

    // Resume: nothing redone, the table rewritten with the same rows; a lost mask redoes its image.
    const std::string table = fit::read_text(out + "/means.csv");
    fs::remove((fs::path(out) / "mean/b/scan.png"));
    const fit::CmdResult again = fit::run_cmd(kCli + " run " + (dir / "ok.toml") + " 2>&1");
    BOOST_TEST_INFO(again.output);
    BOOST_REQUIRE_EQUAL(again.exit_code, 0);
    BOOST_TEST(contains(again.output, "6 images: 1 ok, 5 skipped"));
    BOOST_TEST(fit::read_text(out + "/means.csv") == table);
    BOOST_TEST(fit::exists(out + "/mean/b/scan.png"));
}

BOOST_FIXTURE_TEST_CASE(bad_images_fail_alone_and_name_their_file, Fixture) {
    fs::create_directories(dir / "in/bad");
    const std::string good = fit::read_text(dir / "in/a/exact.png");
    fit::write_text(dir / "in/bad/truncated.png", good.substr(0, good.size() / 2));
    Pixels p = crop(slide, 300, 400, 64, 64);
    std::vector<std::uint8_t> cmyk;
    for (std::size_t i = 0; i < p.px.size(); i += 3) cmyk.insert(cmyk.end(), {p.px[i], p.px[i + 1], p.px[i + 2], 0});
    fit::write_jpeg_image(dir / "in/bad/cmyk.jpg", cmyk, 64, 64, 4);
    fit::write_png16_image(dir / "in/bad/deep.png", std::vector<std::uint16_t>(64 * 64, 40000), 64, 64, 1);
    fit::write_text(dir / "in/bad/text.png", "not an image\n");
    // A PNG header that claims 0 x 0 (signature, then an IHDR chunk; its CRC is never reached).
    std::string zero("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\0\0\0\0\0\x08\x02\0\0\0\0\0\0\0", 33);
    fit::write_text(dir / "in/bad/zero.png", zero);
    const fit::CmdResult r =
        fit::run_cmd(kCli + " run " + config("bad", R"(["in/a/exact.png", "in/bad/*", "in/none/*.png"])") + " 2>&1");
    BOOST_TEST_INFO(r.output);
    BOOST_TEST(r.exit_code == 1);
    BOOST_TEST(contains(r.output, "7 images: 1 ok, 0 skipped, 6 failed"));
    const std::map<std::string, std::string> expect = {
        {"truncated.png", "truncated.png"}, {"cmyk.jpg", "CMYK"},         {"deep.png", "16-bit"},
        {"text.png", "not a PNG, JPEG or TIFF"}, {"zero.png", "0 x 0"}, {"none/*.png", "matches no file"}};
    const fit::Json s = fit::parse_json(fit::read_text(dir / "out-bad/summary.json"));
    for (const auto& [name, phrase] : expect) {
        bool found = false;
        for (const fit::Json& e : s["images"].items)
            if (contains(e["path"].s, name)) {
                found = true;
                BOOST_TEST_CONTEXT(e["path"].s) {
                    BOOST_TEST(e["status"].s == "failed");
                    BOOST_TEST(contains(e["error"].s, phrase), e["error"].s);
                    if (name != "none/*.png")  // "image <path>: <problem>"
                        BOOST_TEST(contains(e["error"].s, "image " + e["path"].s + ": "), e["error"].s);
                    BOOST_TEST(contains(r.output, e["error"].s));
                }
            }
        BOOST_TEST(found, name);
    }
    // The good image is whole; nothing of the bad ones is left under a final name.
    BOOST_TEST(fit::exists(dir / "out-bad/mean/a/exact.png"));
    BOOST_TEST(fit::files_ending_with(dir / "out-bad/mean", ".png").size() == 1u);
    BOOST_TEST(read_csv(dir / "out-bad/means.csv").size() == 2u);
}

BOOST_FIXTURE_TEST_CASE(image_keys_are_checked, Fixture) {
    const std::string cfg = config("keys", R"(["in/**/*.png"])");
    const auto fails = [&](const std::string& set, const std::string& phrase) {
        const fit::CmdResult r = fit::run_cmd(kCli + " run " + cfg + " --set '" + set + "' 2>&1");
        BOOST_TEST_CONTEXT(set) {
            BOOST_TEST(r.exit_code == 2);
            BOOST_TEST(contains(r.output, phrase), r.output);
        }
    };
    fails("input.images=\"in/a/*.png\"", "input.images");
    fails("input.images=[]", "must list at least one pattern");
    fails("input.slides=[\"x.svs\"]", "either slides (input.slides, input.manifest) or images");
    fails("input.region=[0, 0, 10, 10]", "with input.images every image runs whole");
    fails("tiling.tissue=true", "with input.images every patch of an image runs");
    fails("output.dir=\"" + (dir / "in/a/out") + "\"", "outputs would be read as images by the next run");
}

BOOST_FIXTURE_TEST_CASE(synth_writes_a_patch_directory_that_bench_runs, Fixture) {
    // 3 x 2 whole tiles of 128 px (the last partial column and row are left out), lossless.
    const std::string tiles = dir / "tiles";
    const fit::CmdResult w = fit::run_cmd(kCli + " synth " + tiles +
                                          " --format png-tiles --tile 128 --width 400 --height 300 --seed 7 2>&1");
    BOOST_TEST_INFO(w.output);
    BOOST_REQUIRE_EQUAL(w.exit_code, 0);
    BOOST_TEST(contains(w.output, "(6 tiles)"));
    BOOST_REQUIRE(fit::files_ending_with(tiles, ".png").size() == 6u);
    flowinfer::SyntheticSlideSpec spec;
    spec.width = 400;
    spec.height = 300;
    spec.seed = 7;
    png_image img{};
    img.version = PNG_IMAGE_VERSION;
    const std::string tile = tiles + "/row-001/tile-001-002.png";
    BOOST_REQUIRE(png_image_begin_read_from_file(&img, tile.c_str()));
    img.format = PNG_FORMAT_RGB;
    std::vector<std::uint8_t> px(PNG_IMAGE_SIZE(img));
    BOOST_REQUIRE(png_image_finish_read(&img, nullptr, px.data(), 0, nullptr));
    int bad = 0;
    for (int y = 0; y < 128; ++y)
        for (int x = 0; x < 128; ++x) {
            std::uint8_t rgb[3];
            flowinfer::synthetic_pixel(spec, 256 + x, 128 + y, rgb);
            for (int k = 0; k < 3; ++k) bad += px[(static_cast<std::size_t>(y) * 128 + x) * 3 + k] != rgb[k];
        }
    BOOST_TEST(bad == 0);

    const fit::CmdResult b =
        fit::run_cmd(kCli + " bench " + config("bench", R"(["tiles/**/*.png"])") + " --repeat 2 2>&1");
    BOOST_TEST_INFO(b.output);
    BOOST_REQUIRE_EQUAL(b.exit_code, 0);
    BOOST_TEST(contains(b.output, "loop (one image at a time)"));
    const fit::Json j = fit::parse_json(fit::read_text(dir / "out-bench/bench.json"));
    BOOST_TEST(j["images"].n == 6);
    BOOST_TEST(j["failed"].n == 0);
    BOOST_TEST(j["rounds"].items.size() == 2u);
    BOOST_TEST(j["pipeline_images_per_s"].n > 0);
    BOOST_TEST(j["loop_images_per_s"].n > 0);
    BOOST_TEST(j["speedup_vs_loop"].n == j["pipeline_images_per_s"].n / j["loop_images_per_s"].n,
               boost::test_tools::tolerance(1e-9));
    // Both designs wrote every mask.
    BOOST_TEST(fit::files_ending_with(dir / "out-bench/bench/pipeline/mean", ".png").size() == 6u);
    BOOST_TEST(fit::files_ending_with(dir / "out-bench/bench/loop/mean", ".png").size() == 6u);
}
