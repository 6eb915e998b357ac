// contour: trace_contours on synthetic masks, checked against an
// independent even-odd rasterizer (polygons filled back at pixel centres must give the mask
// again), pixel counts, ring orientation, and a brute-force O(n^2) segment-crossing check.
//
// Thread safety: single-threaded test code.
#define BOOST_TEST_MODULE contours
#include <boost/test/unit_test.hpp>

#include "stages/geometry/contour.hpp"
#include "tests/contour_support.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

using namespace flowinfer::geom;
using namespace fit_geom;


BOOST_AUTO_TEST_CASE(single_pixel_is_positive_unit_square) {
    Mask m(3, 3);
    m.at(0, 0) = 1;
    const MultiPolygon mp = m.trace();
    BOOST_REQUIRE_EQUAL(mp.size(), 1u);
    BOOST_REQUIRE_EQUAL(mp[0].outer.size(), 5u);
    BOOST_TEST(signed_area(mp[0].outer) == 1.0);
    std::vector<std::pair<double, double>> v;
    for (std::size_t i = 0; i < 4; ++i) v.emplace_back(mp[0].outer[i].x, mp[0].outer[i].y);
    std::sort(v.begin(), v.end());
    BOOST_TEST((v == std::vector<std::pair<double, double>>{{0, 0}, {0, 1}, {1, 0}, {1, 1}}));
    check_traced(m, mp);
}

BOOST_AUTO_TEST_CASE(empty_full_and_bad_input) {
    Mask z(40, 30);
    BOOST_TEST(z.trace().empty());
    Mask f(17, 9);
    std::fill(f.px.begin(), f.px.end(), 1);
    const MultiPolygon mp = f.trace();
    BOOST_REQUIRE_EQUAL(mp.size(), 1u);
    BOOST_TEST(mp[0].outer.size() == 5u);
    BOOST_TEST(mp[0].holes.empty());
    BOOST_TEST(area(mp[0]) == 153.0);
    check_traced(f, mp);
    BOOST_TEST(trace_contours(nullptr, 0, 0).empty());
    BOOST_CHECK_THROW(trace_contours(nullptr, 4, 4), std::invalid_argument);
    BOOST_CHECK_THROW(trace_contours(f.px.data(), -1, 4), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(disc_annulus_and_two_holes) {
    Mask d(100, 100);
    disc(d, 50, 50, 40);
    Mask a(120, 120);
    disc(a, 60, 60, 50);
    disc(a, 60, 60, 22, 0);
    Mask t(140, 120);
    disc(t, 70, 60, 55);
    disc(t, 50, 60, 12, 0);
    disc(t, 92, 55, 9, 0);
    const std::size_t holes[] = {0, 1, 2};
    int k = 0;
    for (const Mask* m : {&d, &a, &t}) {
        const MultiPolygon mp = m->trace();
        BOOST_REQUIRE_EQUAL(mp.size(), 1u);
        BOOST_TEST(mp[0].holes.size() == holes[k++]);
        check_traced(*m, mp);
        check_simplified(*m, mp, 0.98);
    }
}

BOOST_AUTO_TEST_CASE(island_inside_a_hole_is_its_own_polygon) {
    Mask m(30, 30);
    rect(m, 2, 2, 28, 28);
    rect(m, 8, 8, 22, 22, 0);
    rect(m, 12, 12, 18, 18);
    const MultiPolygon mp = m.trace();
    BOOST_REQUIRE_EQUAL(mp.size(), 2u);
    BOOST_TEST(mp[0].holes.size() == 1u);
    BOOST_TEST(area(mp[0]) == 26.0 * 26 - 14 * 14);
    BOOST_TEST(mp[1].holes.empty());
    BOOST_TEST(area(mp[1]) == 36.0);
    check_traced(m, mp);
}

BOOST_AUTO_TEST_CASE(squares_touching_along_an_edge_or_a_corner) {
    Mask e(20, 20);
    rect(e, 2, 2, 6, 6);
    rect(e, 6, 3, 9, 6);
    MultiPolygon mp = e.trace();
    BOOST_REQUIRE_EQUAL(mp.size(), 1u);
    BOOST_TEST(mp[0].outer.size() == 7u);  // six corners
    BOOST_TEST(area(mp[0]) == 25.0);
    check_traced(e, mp);

    Mask c(20, 20);
    rect(c, 2, 2, 6, 6);
    rect(c, 6, 6, 9, 9);
    mp = c.trace();
    BOOST_REQUIRE_EQUAL(mp.size(), 2u);
    BOOST_TEST(area(mp[0]) == 16.0);
    BOOST_TEST(area(mp[1]) == 9.0);
    int shared = 0;
    for (std::size_t i = 0; i + 1 < mp[0].outer.size(); ++i)
        for (std::size_t j = 0; j + 1 < mp[1].outer.size(); ++j) shared += mp[0].outer[i] == mp[1].outer[j];
    BOOST_TEST(shared == 1);
    check_traced(c, mp);
}

BOOST_AUTO_TEST_CASE(self_touching_component_gets_a_touching_hole) {
    // The background pixel (2,3) reaches the outside only through a corner: OGC wants it as a
    // hole touching the outer ring at (3,3), not as an outer ring visiting (3,3) twice.
    Mask m(6, 6);
    for (auto [x, y] : std::vector<std::pair<int, int>>{{2, 2}, {1, 2}, {1, 3}, {1, 4}, {2, 4}, {3, 4}, {3, 3}})
        m.at(x, y) = 1;
    const MultiPolygon mp = m.trace();
    BOOST_REQUIRE_EQUAL(mp.size(), 1u);
    BOOST_REQUIRE_EQUAL(mp[0].holes.size(), 1u);
    BOOST_TEST(signed_area(mp[0].holes[0]) == -1.0);
    BOOST_TEST(std::count(mp[0].outer.begin() + 1, mp[0].outer.end(), Point{3, 3}) == 1);
    BOOST_TEST(std::count(mp[0].holes[0].begin() + 1, mp[0].holes[0].end(), Point{3, 3}) == 1);
    Polygon s = mp[0];
    simplify(s, 1.0);  // the notch may straighten, but the touch point stays and nothing crosses
    BOOST_TEST(std::count(s.outer.begin() + 1, s.outer.end(), Point{3, 3}) == 1);
    BOOST_TEST(crossings(s) == 0);
    BOOST_TEST(iou(rasterize({s}, 6, 6), m.px) >= 0.5);
    check_traced(m, mp);
}

BOOST_AUTO_TEST_CASE(checkerboard_lines_and_border) {
    Mask cb(8, 8);
    for (int y = 0; y < 8; ++y)
        for (int x = 0; x < 8; ++x) cb.at(x, y) = (x + y) % 2 == 0;
    MultiPolygon mp = cb.trace();
    BOOST_REQUIRE_EQUAL(mp.size(), 32u);
    for (const Polygon& p : mp) BOOST_TEST((p.outer.size() == 5u && area(p) == 1.0 && p.holes.empty()));
    BOOST_TEST((mp[1].outer[0] == Point{2, 0}));  // raster order of first pixels
    check_traced(cb, mp);

    Mask line(30, 10);
    rect(line, 3, 4, 27, 5);
    for (int i = 0; i < 8; ++i) line.at(i + 1, i + 1) = line.at(i + 2, i + 1) = 1;  // staircase
    mp = line.trace();
    BOOST_REQUIRE_EQUAL(mp.size(), 1u);
    check_traced(line, mp);
    check_simplified(line, mp, 0.5);

    Mask frame(25, 15);  // touches every border, its hole does not
    rect(frame, 0, 0, 25, 15);
    rect(frame, 2, 2, 23, 13, 0);
    rect(frame, 10, 5, 12, 15);  // a pillar down to the bottom border, splitting the hole
    mp = frame.trace();
    BOOST_REQUIRE_EQUAL(mp.size(), 1u);
    BOOST_TEST(mp[0].outer.size() == 5u);
    BOOST_TEST(signed_area(mp[0].outer) == 375.0);
    BOOST_TEST(mp[0].holes.size() == 1u);  // the pillar only dents the hole from below
    check_traced(frame, mp);
}

BOOST_AUTO_TEST_CASE(random_blobs) {
    std::mt19937 rng(12345);
    std::uniform_real_distribution<double> u(0, 1);
    const int n = 300, g = 30;
    std::vector<double> coarse((g + 1) * (g + 1));
    for (double& c : coarse) c = u(rng);
    Mask m(n, n);
    for (int y = 0; y < n; ++y)
        for (int x = 0; x < n; ++x) {  // bilinear upsampling of coarse noise, plus fine noise
            const double fx = x * double(g) / n, fy = y * double(g) / n;
            const int ix = int(fx), iy = int(fy);
            const double tx = fx - ix, ty = fy - iy;
            auto c = [&](int a, int b) { return coarse[b * (g + 1) + a]; };
            const double v = (1 - ty) * ((1 - tx) * c(ix, iy) + tx * c(ix + 1, iy)) +
                             ty * ((1 - tx) * c(ix, iy + 1) + tx * c(ix + 1, iy + 1));
            m.at(x, y) = v + 0.15 * u(rng) > 0.55;
        }
    const MultiPolygon mp = m.trace();
    std::size_t holes = 0;
    for (const Polygon& p : mp) holes += p.holes.size();
    BOOST_TEST_MESSAGE("random blobs: " << mp.size() << " polygons, " << holes << " holes, " << m.count() << " px");
    BOOST_TEST(mp.size() > 20u);
    BOOST_TEST(holes > 5u);
    check_traced(m, mp);
    check_simplified(m, mp, 0.9);

    Mask noise(120, 120);  // pixel noise: saddles everywhere, nested self-touching boundaries
    for (auto& v : noise.px) v = u(rng) < 0.5;
    const MultiPolygon np = noise.trace();
    check_traced(noise, np);
    for (Polygon p : np) {
        simplify(p, 1.0);
        BOOST_TEST(crossings(p) == 0);
    }
}

BOOST_AUTO_TEST_CASE(four_hundred_discs_on_4000_squared) {
    Mask m(4000, 4000);
    for (int j = 0; j < 20; ++j)
        for (int i = 0; i < 20; ++i) {
            const double cx = 100 + 200 * i, cy = 100 + 200 * j;
            for (int y = int(cy) - 81; y <= int(cy) + 81; ++y)
                for (int x = int(cx) - 81; x <= int(cx) + 81; ++x)
                    if (std::hypot(x + 0.5 - cx, y + 0.5 - cy) <= 80) m.at(x, y) = 1;
        }
    const auto t0 = std::chrono::steady_clock::now();
    const MultiPolygon mp = m.trace();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    BOOST_TEST_MESSAGE("4000x4000, 400 discs: trace " << s << " s");
    BOOST_REQUIRE_EQUAL(mp.size(), 400u);
    BOOST_TEST(area(mp) == double(m.count()));
    for (const Polygon& p : mp) BOOST_TEST((p.holes.empty() && signed_area(p.outer) > 0));
    BOOST_TEST(mp[21].outer[0].y < mp[40].outer[0].y);  // raster order
}

// ---- simplify(MultiPolygon&): validity across polygons -------------------------------------

