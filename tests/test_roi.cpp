// Regions of interest (stages/roi.hpp): shares of patch rectangles inside polygons and masks,
// checked against a computation written here (dense point sampling with an even-odd test),
// against geom::clipped_area, and across file forms (GeoJSON, PNG, TIFF, rectangle).
//
// Thread safety: single-threaded tests; files under a temporary directory removed at the end.
#define BOOST_TEST_MODULE roi
#include <boost/test/unit_test.hpp>

#include "tests/test_support.hpp"

#include "stages/roi.hpp"

#include <png.h>
#include <tiffio.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

using namespace flowinfer;
using geom::Box;
using geom::MultiPolygon;
using geom::Point;
using geom::Polygon;
using geom::Ring;

namespace {

const double kPi = 3.14159265358979323846;

std::string tmp(const std::string& name) {
    static const fit::TempDir dir;  // removed when the test ends
    return dir / name;
}

using fit::write_text;

// Even-odd over every ring of every polygon: independent of roi.cpp's winding sums.
bool inside(const MultiPolygon& m, double px, double py) {
    bool in = false;
    auto ring = [&](const Ring& r) {
        for (std::size_t i = 0, j = r.size() - 1; i < r.size(); j = i++)
            if ((r[i].y > py) != (r[j].y > py) && px < (r[j].x - r[i].x) * (py - r[i].y) / (r[j].y - r[i].y) + r[i].x)
                in = !in;
    };
    for (const auto& p : m) {
        ring(p.outer);
        for (const auto& h : p.holes) ring(h);
    }
    return in;
}

double sampled_fraction(const MultiPolygon& m, double x, double y, double w, double h) {
    int n = 0;
    for (int j = 0; j < 64; ++j)
        for (int i = 0; i < 64; ++i) n += inside(m, x + (i + 0.5) * w / 64, y + (j + 0.5) * h / 64);
    return n / 4096.0;
}

Ring circle(double cx, double cy, double r, int n, bool ccw = true, double wobble = 0, int lobes = 0) {
    Ring ring;
    for (int k = 0; k < n; ++k) {
        const double t = 2 * kPi * k / n * (ccw ? 1 : -1);
        const double rr = r + wobble * std::sin(lobes * t);
        ring.push_back({cx + rr * std::cos(t), cy + rr * std::sin(t)});
    }
    ring.push_back(ring.front());
    return ring;
}

Polygon poly(Ring outer, std::vector<Ring> holes = {}) { return Polygon{std::move(outer), std::move(holes)}; }

// A mask of mw x mh pixels for a w x h slide: a pixel is inside when its centre is.
std::vector<std::uint8_t> rasterize(const MultiPolygon& m, int mw, int mh, double w, double h) {
    std::vector<std::uint8_t> px(std::size_t(mw) * mh);
    for (int j = 0; j < mh; ++j)
        for (int i = 0; i < mw; ++i) px[std::size_t(j) * mw + i] = inside(m, (i + 0.5) * w / mw, (j + 0.5) * h / mh) ? 255 : 0;
    return px;
}

std::string ring_json(const Ring& r, bool close = true) {
    std::string s = "[";
    for (std::size_t i = 0; i < r.size() - (close ? 0 : 1); ++i)
        s += (i ? "," : "") + std::string("[") + std::to_string(r[i].x) + "," + std::to_string(r[i].y) + "]";
    return s + "]";
}
std::string polygon_json(const Polygon& p) {
    std::string s = "[" + ring_json(p.outer);
    for (const auto& h : p.holes) s += "," + ring_json(h);
    return s + "]";
}

// The shapes checked by sampling: concave (a flower, an L), a hole, two parts.
MultiPolygon test_shapes() {
    MultiPolygon m;
    m.push_back(poly(circle(4096, 4096, 2600, 400, true, 700, 5), {circle(4096, 4096, 700, 120, false)}));
    m.push_back(poly({{200, 200}, {1500, 200}, {1500, 500}, {600, 500}, {600, 1700}, {200, 1700}, {200, 200}}));
    return m;
}

std::string expect_error(const std::function<void()>& f) {
    try {
        f();
    } catch (const RegionError& e) {
        return e.what();
    }
    BOOST_FAIL("no RegionError");
    return {};
}

bool has(const std::string& s, const std::string& part) {
    if (s.find(part) != std::string::npos) return true;
    BOOST_TEST_MESSAGE("'" << part << "' not in: " << s);
    return false;
}

}  // namespace

BOOST_AUTO_TEST_CASE(polygon_fractions_match_point_sampling) {
    const MultiPolygon m = test_shapes();
    const Region r = Region::from_polygons(m, "shapes");
    BOOST_TEST(r.warnings().empty());
    BOOST_TEST(std::abs(r.area() - geom::area(m)) < 1e-6 * r.area());
    std::mt19937 rng(7);
    std::uniform_real_distribution<double> pos(-300, 8000), size(20, 900);
    int checked = 0, partial = 0;
    double worst = 0;
    for (int k = 0; k < 3000; ++k) {
        const double x = pos(rng), y = pos(rng), w = size(rng), h = size(rng);
        const double got = r.fraction_in(x, y, w, h), want = sampled_fraction(m, x, y, w, h);
        worst = std::max(worst, std::abs(got - want));
        BOOST_TEST(std::abs(got - want) <= 1.0 / 64 + 1e-9, "at " << x << "," << y << " " << w << "x" << h << ": " << got << " vs " << want);
        ++checked;
        partial += got > 0.01 && got < 0.99;
    }
    BOOST_TEST_MESSAGE("3000 rectangles, " << partial << " partial, worst |roi - sampled| = " << worst);
    BOOST_TEST(partial > 300);  // the comparison is about boundaries, not blank space
    // Wholly inside the hole, wholly inside the ring, the L's notch.
    BOOST_TEST(r.fraction_in(4000, 4000, 100, 100) == 0.0);
    BOOST_TEST(r.fraction_in(4096 + 1200, 4000, 100, 100) == 1.0);
    BOOST_TEST(r.fraction_in(700, 600, 700, 700) == 0.0);
    BOOST_TEST(r.fraction_in(100, 100, 0, 10) == 0.0);
}

BOOST_AUTO_TEST_CASE(agrees_with_clipped_area_and_is_fast) {
    // 20,000 vertices, a wobbly outline with a hole; 50,000 patch-sized queries.
    const Polygon p = poly(circle(5000, 5000, 4000, 20000, true, 300, 37), {circle(5000, 5000, 900, 2000, false, 50, 11)});
    const Region r = Region::from_polygons({p}, "big");
    std::mt19937 rng(11);
    std::uniform_real_distribution<double> pos(0, 10000);
    std::vector<Box> q(50000);
    for (auto& b : q) {
        b.x0 = std::floor(pos(rng) / 256) * 256, b.y0 = std::floor(pos(rng) / 256) * 256;
        b.x1 = b.x0 + 256, b.y1 = b.y0 + 256;
    }
    const auto t0 = std::chrono::steady_clock::now();
    double sum = 0;
    for (const auto& b : q) sum += r.fraction_in(b.x0, b.y0, 256, 256);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    BOOST_TEST_MESSAGE("22,000-vertex polygon x 50,000 queries: " << secs << " s (sum " << sum << ")");
#if !defined(__SANITIZE_ADDRESS__) && !defined(__OPTIMIZE__)
    BOOST_TEST_MESSAGE("unoptimized build: time not checked");
#elif !defined(__SANITIZE_ADDRESS__)
    BOOST_TEST(secs < 2.0);
#endif
    double worst = 0;
    int partial = 0;
    for (std::size_t k = 0; k < 1500; ++k) {
        const double want = geom::clipped_area(p, q[k]) / (256.0 * 256.0);
        const double got = r.fraction_in(q[k].x0, q[k].y0, 256, 256);
        worst = std::max(worst, std::abs(got - want));
        partial += want > 0 && want < 1;
    }
    BOOST_TEST_MESSAGE("vs clipped_area over 1500 queries (" << partial << " partial): worst " << worst);
    BOOST_TEST(worst < 1e-9);
    BOOST_TEST(partial > 50);
}

BOOST_AUTO_TEST_CASE(geojson_and_png_mask_pick_the_same_patches) {
    const MultiPolygon m = test_shapes();
    std::string fc = R"({"type":"FeatureCollection","features":[)";
    for (std::size_t i = 0; i < m.size(); ++i)
        fc += std::string(i ? "," : "") + R"({"type":"Feature","properties":{"objectType":"annotation"},"geometry":{"type":"Polygon","coordinates":)" +
              polygon_json(m[i]) + "}}";
    write_text(tmp("shapes.geojson"), fc + "]}");
    fit::write_png_image(tmp("shapes.png"), rasterize(m, 512, 512, 8192, 8192), 512, 512);
    fit::write_gray_tiff(tmp("shapes.tif"), rasterize(m, 512, 512, 8192, 8192), 512, 512);
    const Region g = load_region(tmp("shapes.geojson"), 8192, 8192);
    const Region p = load_region(tmp("shapes.png"), 8192, 8192);
    const Region t = load_region(tmp("shapes.tif"), 8192, 8192);
    BOOST_TEST(g.warnings().empty());
    BOOST_TEST(p.warnings().empty());
    int compared = 0, agree = 0, selected = 0, tiff_same = 0;
    double worst = 0;
    for (int j = 0; j < 32; ++j)
        for (int i = 0; i < 32; ++i) {
            const double fg = g.fraction_in(i * 256, j * 256, 256, 256), fp = p.fraction_in(i * 256, j * 256, 256, 256);
            worst = std::max(worst, std::abs(fg - fp));
            tiff_same += t.fraction_in(i * 256, j * 256, 256, 256) == fp;
            if (std::abs(fg - 0.5) < 0.05) continue;
            ++compared;
            agree += (fg >= 0.5) == (fp >= 0.5);
            selected += fg >= 0.5;
        }
    BOOST_TEST_MESSAGE("1024 patches: " << compared << " compared, " << agree << " agree, " << selected
                                        << " selected; worst |polygon - mask| " << worst);
    BOOST_TEST(compared == 1018);
    BOOST_TEST(agree == compared);
    BOOST_TEST(selected == 318);
    BOOST_TEST(worst < 0.04);
    BOOST_TEST(tiff_same == 1024);  // the TIFF holds the same pixels
    BOOST_TEST(std::abs(p.area() - g.area()) < 0.002 * g.area());
}

BOOST_AUTO_TEST_CASE(masks_at_other_resolutions) {
    // Axis-aligned sides on multiples of 20 level-0 px (exact in both masks) and slanted ones.
    const MultiPolygon m{poly({{1000, 1000}, {9000, 1000}, {9000, 2000}, {3000, 2000}, {5900, 5000}, {1000, 5000}, {1000, 1000}})};
    const Region g = Region::from_polygons(m, "poly");
    const Region a = Region::from_mask(rasterize(m, 500, 300, 10000, 6000), 500, 300, 10000, 6000, "500x300");
    const Region b = Region::from_mask(rasterize(m, 1000, 600, 10000, 6000), 1000, 600, 10000, 6000, "1000x600");
    BOOST_TEST(a.warnings().empty());
    double worst_a = 0, worst_b = 0;
    for (double y = 0; y < 6000; y += 256)
        for (double x = 0; x < 10000; x += 256) {
            const double f = g.fraction_in(x, y, 256, 256);
            worst_a = std::max(worst_a, std::abs(a.fraction_in(x, y, 256, 256) - f));
            worst_b = std::max(worst_b, std::abs(b.fraction_in(x, y, 256, 256) - f));
        }
    BOOST_TEST_MESSAGE("mask vs polygon: 500x300 worst " << worst_a << ", 1000x600 worst " << worst_b);
    BOOST_TEST(worst_a <= 0.02);
    BOOST_TEST(worst_b <= 0.02);
    const Box bb = a.bounds();
    BOOST_TEST((bb.x0 == 1000 && bb.y0 == 1000 && bb.x1 == 9000 && bb.y1 == 5000));
    // A mask that does not have the slide's shape is stretched, with a warning.
    const Region s = Region::from_mask(rasterize(m, 500, 500, 10000, 6000), 500, 500, 10000, 6000, "square.png");
    BOOST_TEST(s.warnings().size() == 1u);
    BOOST_TEST(has(s.warnings().at(0), "square.png: the mask's aspect ratio (500x500"));
}

BOOST_AUTO_TEST_CASE(partial_mask_pixels_count_by_overlap) {
    // 2x2 mask on a 10x10 slide: only the top-left 5x5 is inside.
    const Region r = Region::from_mask({1, 0, 0, 0}, 2, 2, 10, 10, "m");
    BOOST_TEST(r.fraction_in(2.5, 0, 5, 5) == 0.5, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(r.fraction_in(1, 1, 2, 2) == 1.0, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(r.fraction_in(4, 4, 2, 2) == 0.25, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(r.fraction_in(-5, -5, 10, 10) == 0.25, boost::test_tools::tolerance(1e-12));  // outside the slide is outside
    BOOST_TEST(r.fraction_in(0, 0, 10, 10) == 0.25, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(r.area() == 25.0);
    // Alpha 0 is outside whatever the colour; any nonzero channel is inside.
    std::vector<std::uint8_t> rgba = {255, 255, 255, 0, 0, 0, 9, 255, 0, 0, 0, 255, 0, 0, 0, 0};
    fit::write_png_image(tmp("rgba.png"), rgba, 2, 2, 4);
    const Region a = load_region(tmp("rgba.png"), 10, 10);
    BOOST_TEST(a.area() == 25.0);
    BOOST_TEST(a.fraction_in(5, 0, 5, 5) == 1.0);
}

BOOST_AUTO_TEST_CASE(geojson_forms) {
    const std::string ring = "[[0,0],[100,0],[100,50],[0,50],[0,0]]";
    const std::string geom = R"({"type":"Polygon","coordinates":[)" + ring + "]}";
    const std::string feature = R"({"type":"Feature","properties":{"objectType":"detection"},"geometry":)" + geom + "}";
    const std::vector<std::string> forms = {
        R"({"type":"FeatureCollection","features":[)" + feature + "]}",
        feature,
        geom,
        "[" + feature + "]",
        R"({"type":"GeometryCollection","geometries":[)" + geom + "]}",
        R"({"type":"MultiPolygon","coordinates":[[)" + ring + "]]}",
        R"({"type":"Polygon","coordinates":[[[0,0],[100,0],[100,50],[0,50]]]})",  // not closed
        R"({"type":"Polygon","coordinates":[[[0,0],[0,50],[100,50],[100,0],[0,0]]]})",  // clockwise
    };
    for (std::size_t i = 0; i < forms.size(); ++i) {
        const Region r = region_from_geojson_text(forms[i], "form");
        BOOST_TEST(r.area() == 5000.0, "form " << i);
        BOOST_TEST(r.warnings().empty(), "form " << i);
        BOOST_TEST(r.fraction_in(50, 25, 100, 50) == 0.25, "form " << i);
        const Box b = r.bounds();
        BOOST_TEST((b.x0 == 0 && b.y0 == 0 && b.x1 == 100 && b.y1 == 50), "form " << i);
    }
    // Null geometries and points are skipped with a warning naming the feature.
    const Region r = region_from_geojson_text(
        R"([{"type":"Feature","geometry":null},{"type":"Feature","properties":{"name":"dot"},"geometry":{"type":"Point","coordinates":[1,2]}},)" +
            feature + "]",
        "mixed.geojson");
    BOOST_TEST(r.area() == 5000.0);
    BOOST_REQUIRE(r.warnings().size() == 2u);
    BOOST_TEST(has(r.warnings()[0], "mixed.geojson: feature 0: no geometry"));
    BOOST_TEST(has(r.warnings()[1], "mixed.geojson: feature 1 (\"dot\"): a Point is not an area; left out"));
}

BOOST_AUTO_TEST_CASE(nested_and_overlapping_polygons) {
    const Polygon tissue = poly(circle(1000, 1000, 800, 200));
    const Polygon tumour = poly(circle(1000, 1000, 300, 100));
    const Region nested = Region::from_polygons({tissue, tumour}, "nested");
    BOOST_TEST(nested.area() == geom::area(tissue), boost::test_tools::tolerance(1e-9));
    BOOST_TEST(nested.fraction_in(900, 900, 100, 100) == 1.0);
    BOOST_REQUIRE(nested.warnings().size() == 1u);
    BOOST_TEST(has(nested.warnings()[0], "nested: polygon 1 lies inside polygon 0"));
    // Tiles sharing sides are not overlaps.
    const Region tiles = Region::from_polygons(
        {poly({{0, 0}, {10, 0}, {10, 10}, {0, 10}, {0, 0}}), poly({{10, 0}, {20, 0}, {20, 10}, {10, 10}, {10, 0}})}, "tiles");
    BOOST_TEST(tiles.warnings().empty());
    BOOST_TEST(tiles.fraction_in(5, 0, 10, 10) == 1.0);
    const Region part = Region::from_polygons({tissue, poly(circle(1700, 1000, 300, 100))}, "part");
    BOOST_REQUIRE(part.warnings().size() == 1u);
    BOOST_TEST(has(part.warnings()[0], "part: 1 pair(s) of polygons overlap in part"));
}

BOOST_AUTO_TEST_CASE(bad_input) {
    write_text(tmp("bad.geojson"), "{not json");
    std::string e = expect_error([] { load_region(tmp("bad.geojson"), 100, 100); });
    BOOST_TEST(has(e, tmp("bad.geojson") + ": not JSON: "));
    BOOST_TEST(has(e, "parse error at line 1, column "));
    e = expect_error([] { region_from_geojson_text(R"({"a":1})", "a.json"); });
    BOOST_TEST(has(e, "a.json: not GeoJSON: expected a FeatureCollection"));
    const std::string bowtie = R"({"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[0,0],[10,10],[10,0],[0,14],[0,0]]]}})";
    e = expect_error([&] { region_from_geojson_text(bowtie, "bow.geojson"); });
    BOOST_TEST(has(e, "bow.geojson: no Polygon or MultiPolygon"));
    BOOST_TEST(has(e, "crosses itself"));
    const Region r = region_from_geojson_text(
        "[" + bowtie + R"(,{"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[20,0],[30,0],[30,10],[20,10],[20,0]]]}}])",
        "bow2.geojson");
    BOOST_REQUIRE(r.warnings().size() == 1u);
    BOOST_TEST(has(r.warnings()[0], "bow2.geojson: feature 0: "));
    BOOST_TEST(has(r.warnings()[0], "crosses itself near ("));
    BOOST_TEST(has(r.warnings()[0], "; left out"));
    BOOST_TEST(r.area() == 100.0);
    BOOST_TEST(r.fraction_in(20, 0, 20, 10) == 0.5);
    fit::write_png_image(tmp("zero.png"), std::vector<std::uint8_t>(64, 0), 8, 8);
    e = expect_error([] { load_region(tmp("zero.png"), 100, 100); });
    BOOST_TEST(has(e, tmp("zero.png") + ": the mask is empty (no nonzero pixel)"));
    e = expect_error([] { load_region(tmp("missing.geojson"), 100, 100); });
    BOOST_TEST(has(e, tmp("missing.geojson") + ": cannot open"));
    e = expect_error([] { load_region(tmp("missing.png"), 100, 100); });
    BOOST_TEST(has(e, tmp("missing.png") + ": cannot open"));
    e = expect_error([] { load_region(tmp("missing.tiff"), 100, 100); });
    BOOST_TEST(has(e, tmp("missing.tiff") + ": not a readable TIFF"));
    write_text(tmp("line.geojson"), R"({"type":"Feature","geometry":{"type":"LineString","coordinates":[[0,0],[5,5]]}})");
    e = expect_error([] { load_region(tmp("line.geojson"), 100, 100); });
    BOOST_TEST(has(e, "line.geojson: no Polygon or MultiPolygon"));
    BOOST_TEST(has(e, "a LineString is not an area"));
    write_text(tmp("fake.png"), "not a png at all");
    e = expect_error([] { load_region(tmp("fake.png"), 100, 100); });
    BOOST_TEST(has(e, "fake.png: not a PNG file"));
    e = expect_error([] { load_region(tmp("region.svg"), 100, 100); });
    BOOST_TEST(has(e, "region.svg: unknown kind of region file"));
    e = expect_error([] { rectangle_region(0, 0, -5, 5); });
    BOOST_TEST(has(e, "--region 0,0,-5,5: "));
}

BOOST_AUTO_TEST_CASE(rectangle_fractions_are_exact) {
    const Region r = rectangle_region(1000, 2000, 512, 256);
    BOOST_TEST(r.area() == 512.0 * 256);
    BOOST_TEST(r.fraction_in(1000, 2000, 512, 256) == 1.0);
    BOOST_TEST(r.fraction_in(1256, 2128, 512, 256) == 0.25);
    BOOST_TEST(r.fraction_in(900, 1900, 200, 200) == 0.25);
    BOOST_TEST(r.fraction_in(1512, 2000, 10, 10) == 0.0);
    BOOST_TEST(r.fraction_in(999.5, 2000, 1, 1) == 0.5);
    BOOST_TEST(r.fraction_in(1100.25, 2100, 1000, 1000) == (411.75 * 156) / 1e6, boost::test_tools::tolerance(1e-14));
    BOOST_TEST(r.source() == "--region 1000,2000,512,256");
    BOOST_TEST(!r.empty());
    BOOST_TEST(Region().empty());
    BOOST_TEST(Region().fraction_in(0, 0, 10, 10) == 0.0);
}
