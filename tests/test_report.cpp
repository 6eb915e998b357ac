// report: the overlay preview (compose_preview over map TIFFs this test writes with libtiff,
// exact blend numbers worked out by hand; boxes; PNG out read back with libpng; the data: URI
// decoded independently with EVP_DecodeBlock) and the HTML run report, loaded in a real
// headless Chromium: rows, escaping, counts, the URL-hash filter and sort, 0 / 2,000 / 10,000
// rows, console errors (a deliberately broken page proves they are detected) and a screenshot.
//
// Thread safety: single-threaded test. Chromium runs as a child process through std::system,
// each run with its own profile directory (tests/browser.hpp).
#define BOOST_TEST_MODULE report
#include <boost/test/unit_test.hpp>

#include "pipeline/report.hpp"
#include "tests/browser.hpp"
#include "tests/test_support.hpp"
#include "stages/preview.hpp"

#include <flowinfer/errors.hpp>

#include <openssl/evp.h>
#include <png.h>
#include <tiffio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

using namespace flowinfer;
namespace fs = std::filesystem;
using Rgb = std::array<std::uint8_t, 3>;
using namespace fit_browser;

namespace {

const fs::path& temp_dir() {  // fresh per run, removed at the end (test_previews keeps a screenshot)
    static const fit::TempDir tmp;
    static const fs::path dir(tmp.path());
    return dir;
}

struct Level {
    std::uint32_t w, h;
    std::vector<std::uint8_t> px;
    void fill(std::uint32_t x0, std::uint32_t y0, std::uint32_t x1, std::uint32_t y1, std::uint8_t v) {
        for (std::uint32_t y = y0; y < y1; ++y)
            for (std::uint32_t x = x0; x < x1; ++x) px[y * w + x] = v;
    }
};
Level blank(std::uint32_t w, std::uint32_t h) { return {w, h, std::vector<std::uint8_t>(std::size_t(w) * h, 0)}; }

// A tiled (16 x 16, deflate) 8-bit 1-channel pyramid, as the map writer lays it out.
void write_map(const std::string& path, const std::vector<Level>& levels, const std::vector<Rgb>* palette) {
    TIFF* t = TIFFOpen(path.c_str(), "w");
    BOOST_REQUIRE(t);
    for (std::size_t i = 0; i < levels.size(); ++i) {
        const Level& l = levels[i];
        TIFFSetField(t, TIFFTAG_IMAGEWIDTH, l.w);
        TIFFSetField(t, TIFFTAG_IMAGELENGTH, l.h);
        TIFFSetField(t, TIFFTAG_TILEWIDTH, 16u);
        TIFFSetField(t, TIFFTAG_TILELENGTH, 16u);
        TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 8);
        TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 1);
        TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
        TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
        if (i > 0) TIFFSetField(t, TIFFTAG_SUBFILETYPE, FILETYPE_REDUCEDIMAGE);
        TIFFSetField(t, TIFFTAG_PHOTOMETRIC, palette ? PHOTOMETRIC_PALETTE : PHOTOMETRIC_MINISBLACK);
        if (palette) {
            std::vector<std::uint16_t> r(256), g(256), b(256);
            for (std::size_t k = 0; k < 256; ++k) {
                const Rgb c = k < palette->size() ? (*palette)[k] : Rgb{0, 0, 0};
                r[k] = c[0] * 257, g[k] = c[1] * 257, b[k] = c[2] * 257;
            }
            TIFFSetField(t, TIFFTAG_COLORMAP, r.data(), g.data(), b.data());
        }
        std::vector<std::uint8_t> tile(256);
        for (std::uint32_t ty = 0; ty < l.h; ty += 16)
            for (std::uint32_t tx = 0; tx < l.w; tx += 16) {
                std::fill(tile.begin(), tile.end(), 0);
                for (std::uint32_t y = ty; y < std::min(l.h, ty + 16); ++y)
                    for (std::uint32_t x = tx; x < std::min(l.w, tx + 16); ++x)
                        tile[(y - ty) * 16 + (x - tx)] = l.px[y * l.w + x];
                BOOST_REQUIRE(TIFFWriteTile(t, tile.data(), tx, ty, 0, 0) >= 0);
            }
        BOOST_REQUIRE(TIFFWriteDirectory(t));
    }
    TIFFClose(t);
}

RgbImage solid(int w, int h, Rgb c) {
    RgbImage img{w, h, {}};
    for (int i = 0; i < w * h; ++i) img.rgb.insert(img.rgb.end(), c.begin(), c.end());
    return img;
}
Rgb at(const RgbImage& img, int x, int y) {
    const std::uint8_t* p = img.rgb.data() + (std::size_t(y) * img.width + x) * 3;
    return {p[0], p[1], p[2]};
}

const Rgb kThumb{200, 100, 50};
const Rgb kBlue{31, 119, 180};
const Rgb kTinted{124, 109, 109};  // (55*thumb + 45*blue + 50) / 100, by hand

// Slide 1000 x 760, map downsample 4: level 0 250 x 190 (partial edge tiles), level 1 125 x 95.
// Level 0: 200 in [64,128) x [48,96) and [240,250) x [0,40); 127 (below 128) in rows >= 160.
// Level 1 is level 0 halved plus a marker (255 in [0,8)^2) only it has: which level was read.
std::string seg_map() {
    Level l0 = blank(250, 190), l1 = blank(125, 95);
    l0.fill(64, 48, 128, 96, 200), l0.fill(240, 0, 250, 40, 200), l0.fill(0, 160, 250, 190, 127);
    l1.fill(32, 24, 64, 48, 200), l1.fill(120, 0, 125, 20, 200), l1.fill(0, 80, 125, 95, 127);
    l1.fill(0, 0, 8, 8, 255);
    const std::string path = (temp_dir() / "seg.tif").string();
    write_map(path, {l0, l1}, nullptr);
    return path;
}

}  // namespace

BOOST_AUTO_TEST_CASE(segmentation_tint_and_level_choice) {
    const PreviewMap map{seg_map(), 4.0, PreviewMap::classes, {{0, 0, 0}, kBlue}};
    // 125 x 95 at 8 level-0 px per pixel: level 1 (125 wide) is the smallest not below it.
    const RgbImage a = compose_preview(solid(125, 95, kThumb), 8.0, {map}, {});
    BOOST_TEST(at(a, 40, 30) == kTinted);
    BOOST_TEST(at(a, 32, 24) == kTinted);
    BOOST_TEST(at(a, 63, 47) == kTinted);
    BOOST_TEST(at(a, 31, 30) == kThumb);
    BOOST_TEST(at(a, 64, 47) == kThumb);
    BOOST_TEST(at(a, 124, 10) == kTinted);  // last, partial tile column
    BOOST_TEST(at(a, 4, 4) == kTinted);     // level 1's marker: level 1 was read
    BOOST_TEST(at(a, 10, 90) == kThumb);    // 127 is below the 128 threshold
    int tinted = 0;
    for (int y = 0; y < a.height; ++y)
        for (int x = 0; x < a.width; ++x) tinted += at(a, x, y) == kTinted;
    BOOST_TEST(tinted == 32 * 24 + 5 * 20 + 64);
    // 250 x 190 at 4: level 0, which has no marker.
    const RgbImage b = compose_preview(solid(250, 190, kThumb), 4.0, {map}, {});
    BOOST_TEST(at(b, 4, 4) == kThumb);
    BOOST_TEST(at(b, 64, 48) == kTinted);
    BOOST_TEST(at(b, 63, 48) == kThumb);
    BOOST_TEST(at(b, 249, 0) == kTinted);
    // Larger than level 0: level 0 is read and sampled nearest (2 thumbnail px per map px).
    const RgbImage c = compose_preview(solid(500, 380, kThumb), 2.0, {map}, {});
    BOOST_TEST(at(c, 128, 96) == kTinted);
    BOOST_TEST(at(c, 127, 96) == kThumb);
    BOOST_TEST(at(c, 8, 8) == kThumb);
}

BOOST_AUTO_TEST_CASE(label_map_reads_indices_not_colours) {
    // Palette entries differ from the caller's colours, so reading colours instead of indices
    // (TIFFReadRGBA) would give other numbers. Class 3 has no caller colour: the file's.
    const std::vector<Rgb> pal{{0, 0, 0}, {9, 9, 9}, {1, 2, 3}, {0, 255, 0}};
    Level l0 = blank(64, 48);
    l0.fill(0, 0, 32, 48, 1), l0.fill(32, 0, 64, 24, 2), l0.fill(32, 24, 48, 48, 3);  // [48,64)x[24,48): 0
    const std::string path = (temp_dir() / "labels.tif").string();
    write_map(path, {l0}, &pal);
    const PreviewMap map{path, 16.0, PreviewMap::classes, {{0, 0, 0}, {10, 20, 30}, {200, 0, 100}}};
    const RgbImage img = compose_preview(solid(64, 48, kThumb), 16.0, {map}, {});
    BOOST_TEST(at(img, 5, 5) == (Rgb{115, 64, 41}));     // class 1: (55*t + 45*(10,20,30) + 50) / 100
    BOOST_TEST(at(img, 40, 5) == (Rgb{200, 55, 73}));    // class 2: colour[2] = (200,0,100)
    BOOST_TEST(at(img, 40, 30) == (Rgb{110, 170, 28}));  // class 3: the file's (0,255,0)
    BOOST_TEST(at(img, 50, 30) == kThumb);               // class 0: untinted
}

BOOST_AUTO_TEST_CASE(heatmap_ramp) {
    BOOST_TEST(heat_ramp(0.0) == (Rgb{68, 1, 84}));
    BOOST_TEST(heat_ramp(1.0) == (Rgb{253, 231, 37}));
    BOOST_TEST(heat_ramp(0.5) == (Rgb{33, 145, 140}));
    BOOST_TEST(heat_ramp(128 / 255.0) == (Rgb{33, 145, 140}));  // 33.48, 145.44, 139.67 rounded
    Level l0 = blank(20, 10);
    l0.fill(0, 0, 10, 10, 255), l0.fill(10, 0, 15, 10, 128);  // [15,20): 0 = not run
    const std::string path = (temp_dir() / "heat.tif").string();
    write_map(path, {l0}, nullptr);
    // Heatmap pixel = one 64-px patch stride; thumbnail at 16: 4 thumbnail px per map px.
    const RgbImage img = compose_preview(solid(80, 40, kThumb), 16.0, {{path, 64.0, PreviewMap::heat, {}}}, {});
    BOOST_TEST(at(img, 0, 0) == (Rgb{227, 166, 44}));   // (thumb + (253,231,37) + 1) / 2
    BOOST_TEST(at(img, 39, 39) == (Rgb{227, 166, 44}));
    BOOST_TEST(at(img, 40, 0) == (Rgb{117, 123, 95}));  // (thumb + (33,145,140) + 1) / 2
    BOOST_TEST(at(img, 60, 20) == kThumb);
    BOOST_TEST(at(img, 79, 39) == kThumb);
}

BOOST_AUTO_TEST_CASE(boxes_outline_and_clip) {
    const Rgb grey{90, 90, 90}, red{255, 0, 0};
    // Level-0 (20,20)-(40,36) at 2 px per pixel: pixels [10,19] x [10,17], 2-px outline.
    // (70,50)-(100,100): [35,49] x [25,49], clipped to the 40 x 30 image.
    const std::vector<PreviewBox> boxes{{20, 20, 40, 36, red}, {70, 50, 100, 100, red}, {-50, -50, -10, -10, red}};
    const RgbImage img = compose_preview(solid(40, 30, grey), 2.0, {}, boxes);
    BOOST_TEST(at(img, 10, 14) == red);
    BOOST_TEST(at(img, 11, 14) == red);
    BOOST_TEST(at(img, 19, 17) == red);
    BOOST_TEST(at(img, 12, 10) == red);
    BOOST_TEST(at(img, 12, 12) == grey);
    BOOST_TEST(at(img, 17, 15) == grey);
    BOOST_TEST(at(img, 9, 10) == grey);
    BOOST_TEST(at(img, 20, 10) == grey);
    BOOST_TEST(at(img, 39, 25) == red);
    BOOST_TEST(at(img, 39, 28) == grey);  // the right edge is outside the image
    int n = 0;
    for (int y = 0; y < img.height; ++y)
        for (int x = 0; x < img.width; ++x) n += at(img, x, y) == red;
    BOOST_TEST(n == (10 * 8 - 6 * 4) + (5 * 5 - 3 * 3));  // 56 + 16
}

BOOST_AUTO_TEST_CASE(png_round_trip_and_errors) {
    RgbImage img = solid(37, 23, kThumb);
    for (std::size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = static_cast<std::uint8_t>(i * 7 + i / 3);
    const std::string path = (temp_dir() / "preview.png").string();
    write_png(path, img);
    BOOST_TEST(!fs::exists(path + ".partial"));
    png_image back{};
    back.version = PNG_IMAGE_VERSION;
    BOOST_REQUIRE(png_image_begin_read_from_file(&back, path.c_str()));
    back.format = PNG_FORMAT_RGB;
    BOOST_TEST(back.width == 37u);
    BOOST_TEST(back.height == 23u);
    std::vector<std::uint8_t> px(PNG_IMAGE_SIZE(back));
    BOOST_REQUIRE(png_image_finish_read(&back, nullptr, px.data(), 0, nullptr));
    BOOST_TEST(px == img.rgb, boost::test_tools::per_element());
    const std::string bad = (temp_dir() / "no-such-dir" / "p.png").string();
    try {
        write_png(bad, img);
        BOOST_FAIL("no OutputError");
    } catch (const OutputError& e) {
        BOOST_TEST(e.path() == bad);
    }
    BOOST_CHECK_THROW(write_png(path, RgbImage{}), OutputError);
    BOOST_CHECK_THROW(compose_preview(RgbImage{2, 2, {1, 2, 3}}, 1.0, {}, {}), std::invalid_argument);
    BOOST_CHECK_THROW(compose_preview(solid(4, 4, kThumb), 1.0, {{bad, 1.0, PreviewMap::heat, {}}}, {}), OutputError);
}

namespace {
std::vector<std::uint8_t> decode_uri(const std::string& uri) {
    const std::string prefix = "data:image/png;base64,";
    BOOST_REQUIRE(uri.compare(0, prefix.size(), prefix) == 0);
    const std::string b64 = uri.substr(prefix.size());
    BOOST_REQUIRE(b64.size() % 4 == 0);
    std::vector<std::uint8_t> out(b64.size() / 4 * 3);
    const int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(b64.data()), int(b64.size()));
    BOOST_REQUIRE(n >= 0);
    const std::size_t pad = std::count(b64.end() - 2, b64.end(), '=');  // EVP_DecodeBlock keeps padding zeros
    out.resize(std::size_t(n) - pad);
    return out;
}
std::uint32_t be32(const std::uint8_t* p) { return std::uint32_t(p[0]) << 24 | p[1] << 16 | p[2] << 8 | p[3]; }
}  // namespace

BOOST_AUTO_TEST_CASE(thumbnail_data_uri_decodes) {
    RgbImage stripes = solid(320, 160, {0, 0, 0});  // columns alternately 0 and 255
    for (int y = 0; y < 160; ++y)
        for (int x = 1; x < 320; x += 2) std::fill_n(stripes.rgb.begin() + (y * 320 + x) * 3, 3, 255);
    const std::vector<std::uint8_t> png = decode_uri(thumbnail_data_uri(stripes, 160));
    const std::uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    BOOST_REQUIRE(png.size() > 33);
    BOOST_TEST(std::equal(sig, sig + 8, png.begin()));
    BOOST_TEST(std::string(png.begin() + 12, png.begin() + 16) == "IHDR");
    BOOST_TEST(be32(&png[16]) == 160u);
    BOOST_TEST(be32(&png[20]) == 80u);
    png_image img{};
    img.version = PNG_IMAGE_VERSION;
    BOOST_REQUIRE(png_image_begin_read_from_memory(&img, png.data(), png.size()));
    img.format = PNG_FORMAT_RGB;
    std::vector<std::uint8_t> px(PNG_IMAGE_SIZE(img));
    BOOST_REQUIRE(png_image_finish_read(&img, nullptr, px.data(), 0, nullptr));
    BOOST_TEST(std::all_of(px.begin(), px.end(), [](std::uint8_t v) { return v == 128; }));  // 127.5 averaged
    const std::vector<std::uint8_t> small = decode_uri(thumbnail_data_uri(solid(100, 50, kThumb), 160));
    BOOST_TEST(be32(&small[16]) == 100u);  // never enlarged
    BOOST_TEST(be32(&small[20]) == 50u);
    BOOST_TEST(thumbnail_data_uri(RgbImage{}).empty());
}

// ---- the HTML report -------------------------------------------------------------------------

namespace {
const std::string kEvil = "<script>alert(1)</script> & \"quotes\"";

ReportData three_slides() {
    ReportData d{"run <1> & \"x\"", "finished", "2024-05-01 10:00", "configs/demo.toml", {}};
    const std::string uri = thumbnail_data_uri(
        compose_preview(solid(125, 95, {230, 200, 220}), 8.0, {{seg_map(), 4.0, PreviewMap::classes, {}}},
                        {{100, 100, 300, 200, {214, 39, 40}}}),
        64);
    d.rows.push_back({"slide-\xC3\xBC-<b>.svs", "ok", 1234, 12.5,
                      {{"tumor map", "maps/a b#c.tif"}, {"js", "javascript:alert(1)"}}, "", uri, "p/preview.png"});
    d.rows.push_back({"bad.svs", "failed", 0, 3.25, {}, kEvil, "", ""});
    d.rows.push_back({"late.svs", "interrupted", 77, 40.0, {}, "stopped", "http://example.com/x.png", ""});
    return d;
}


fs::path write(const std::string& name, const ReportData& d) {
    const fs::path p = temp_dir() / name;
    write_report(p.string(), d);
    BOOST_TEST(!fs::exists(p.string() + ".partial"));
    return p;
}
}  // namespace

BOOST_AUTO_TEST_CASE(report_html_static) {
    const std::string h = report_html(three_slides());
    BOOST_TEST(h.find(kEvil) == std::string::npos);
    BOOST_TEST(h.find("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;") != std::string::npos);
    BOOST_TEST(h.find("href=\"maps/a%20b%23c.tif\"") != std::string::npos);
    BOOST_TEST(h.find("href=\"javascript%3Aalert%281%29\"") != std::string::npos);
    BOOST_TEST(h.find("example.com") == std::string::npos);  // not a data: URI: left out
    BOOST_TEST(h.find("http://") == std::string::npos);
    BOOST_TEST(h.find("https://") == std::string::npos);
    ReportData d;
    d.rows.push_back({"bad\xFF\xC3name\x01", "ok", 0, 0, {}, "", "", ""});
    BOOST_TEST(report_html(d).find("bad\xEF\xBF\xBD\xEF\xBF\xBDname\xEF\xBF\xBD<") != std::string::npos);
    const std::string bad = (temp_dir() / "no-such-dir" / "report.html").string();
    try {
        write_report(bad, d);
        BOOST_FAIL("no OutputError");
    } catch (const OutputError& e) {
        BOOST_TEST(e.path() == bad);
    }
}

BOOST_AUTO_TEST_CASE(report_in_browser) {
    const fs::path page = write("report.html", three_slides());
    const Browser b = run_browser(temp_dir(), page, "");
    BOOST_TEST(b.rc == 0);
    BOOST_TEST(!console_lines(b.log), b.log);
    const auto rows = row_tags(b.dom);
    BOOST_REQUIRE(rows.size() == 3u);
    BOOST_TEST(status_of(rows[0]) == "ok");
    BOOST_TEST(status_of(rows[1]) == "failed");
    BOOST_TEST(status_of(rows[2]) == "interrupted");
    BOOST_TEST(std::none_of(rows.begin(), rows.end(), hidden));
    BOOST_TEST(b.dom.find("&lt;script&gt;alert(1)&lt;/script&gt; &amp; \"quotes\"") != std::string::npos);
    std::size_t scripts = 0;
    for (std::size_t p = b.dom.find("<script"); p != std::string::npos; p = b.dom.find("<script", p + 1)) ++scripts;
    BOOST_TEST(scripts == 1u);  // the report's own; nothing injected
    BOOST_TEST(b.dom.find("slide-\xC3\xBC-&lt;b&gt;.svs") != std::string::npos);
    for (const char* c : {"total\">3<", "ok\">1<", "failed\">1<", "interrupted\">1<", "skipped\">0<", "pending\">0<"})
        BOOST_TEST(b.dom.find(std::string("id=\"count-") + c) != std::string::npos, c);
    BOOST_TEST(b.dom.find("<img src=\"data:image/png;base64,") != std::string::npos);

    // The filter read from the hash on load.
    const Browser f = run_browser(temp_dir(), page, "#status=failed");
    BOOST_TEST(!console_lines(f.log), f.log);
    const auto fr = row_tags(f.dom);
    BOOST_REQUIRE(fr.size() == 3u);
    BOOST_TEST(hidden(fr[0]));
    BOOST_TEST(!hidden(fr[1]));
    BOOST_TEST(hidden(fr[2]));
    BOOST_TEST(f.dom.find("id=\"shown\">1<") != std::string::npos);

    // Sort by time (column 4) descending, plus a filter: 40 s, 12.5 s, 3.25 s.
    const Browser s = run_browser(temp_dir(), page, "#sort=4-desc&status=ok,interrupted");
    BOOST_TEST(!console_lines(s.log), s.log);
    const auto sr = row_tags(s.dom);
    BOOST_REQUIRE(sr.size() == 3u);
    BOOST_TEST(status_of(sr[0]) == "interrupted");
    BOOST_TEST(status_of(sr[1]) == "ok");
    BOOST_TEST(status_of(sr[2]) == "failed");
    BOOST_TEST((!hidden(sr[0]) && !hidden(sr[1]) && hidden(sr[2])));

    // A hash nobody wrote (bad escapes, unknown keys): ignored, all rows shown, no error.
    const Browser m = run_browser(temp_dir(), page, "#status=%E0%A4%A&sort=99&x");
    BOOST_TEST(!console_lines(m.log), m.log);
    const auto mr = row_tags(m.dom);
    BOOST_TEST(mr.size() == 3u);
    BOOST_TEST(std::none_of(mr.begin(), mr.end(), hidden));

    // The screenshot the lead looks at.
    const fs::path shot = temp_dir() / "report-screenshot.png";
    const Browser p = run_browser(temp_dir(), page, "", "--screenshot='" + shot.string() + "' --window-size=1280,800");
    BOOST_TEST(p.rc == 0);
    const std::string png = read_file(shot);
    BOOST_REQUIRE(png.size() > 8u);
    BOOST_TEST(png.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0);
    std::cout << "test_report: screenshot " << shot.string() << " (" << png.size() << " bytes)" << std::endl;
}

BOOST_AUTO_TEST_CASE(browser_detects_script_errors) {
    // The same report with one bad call at the start of its script: the check must see it.
    std::string h = report_html(three_slides());
    const std::string anchor = "(function () {";
    const std::size_t at = h.find(anchor);
    BOOST_REQUIRE(at != std::string::npos);
    h.insert(at + anchor.size(), " no_such_function();");
    const fs::path page = temp_dir() / "broken.html";
    std::ofstream(page) << h;
    const Browser b = run_browser(temp_dir(), page, "");
    BOOST_TEST(console_lines(b.log));
    BOOST_TEST(b.log.find("Uncaught ReferenceError") != std::string::npos, b.log);
}

BOOST_AUTO_TEST_CASE(report_sizes_in_browser) {
    ReportData d{"sizes", "running", "", "", {}};
    const Browser e = run_browser(temp_dir(), write("empty.html", d), "#sort=1&status=failed");
    BOOST_TEST(!console_lines(e.log), e.log);
    BOOST_TEST(row_tags(e.dom).empty());
    BOOST_TEST(e.dom.find("No slides yet.") != std::string::npos);

    const char* statuses[] = {"ok", "failed", "skipped", "interrupted", "pending"};
    const std::string uri = thumbnail_data_uri(solid(24, 16, {120, 80, 160}));
    for (int i = 0; i < 10000; ++i)
        d.rows.push_back({"slide-" + std::to_string(i) + ".svs", statuses[i % 5], i * 7 % 1000, (i * 37 % 500) / 10.0,
                          {{"map", "maps/" + std::to_string(i) + ".tif"}}, i % 5 == 1 ? "boom <" + std::to_string(i) : "",
                          uri, ""});
    ReportData two = d;
    two.rows.resize(2000);
    const Browser b = run_browser(temp_dir(), write("rows2000.html", two), "");
    BOOST_TEST(!console_lines(b.log), b.log);
    BOOST_TEST(row_tags(b.dom).size() == 2000u);

    // 10,000 rows sorted by patches and filtered on load.
    const Browser t = run_browser(temp_dir(), write("rows10000.html", d), "#sort=3-desc&status=failed");
    BOOST_TEST(!console_lines(t.log), t.log);
    const auto rows = row_tags(t.dom);
    BOOST_REQUIRE(rows.size() == 10000u);
    BOOST_TEST(std::count_if(rows.begin(), rows.end(), [](const std::string& r) { return !hidden(r); }) == 2000);
    BOOST_TEST(t.dom.find("id=\"shown\">2000<") != std::string::npos);
}
