// Simplification of traced contours: Douglas-Peucker that keeps every polygon valid and every
// polygon of a MultiPolygon apart (no ring crosses, touches or swallows another, an island in a
// hole stays in it), drop_small, and the speed on large masks. Independent checks in
// tests/contour_support.hpp.
#define BOOST_TEST_MODULE simplify
#include <boost/test/unit_test.hpp>

#include "stages/geometry/contour.hpp"
#include "tests/contour_support.hpp"

#include <chrono>
#include <random>

using namespace fit_geom;

BOOST_AUTO_TEST_CASE(simplify_falls_back_instead_of_breaking_the_polygon) {
    // The bottom edge bulges down to (20, 12): with tolerance 5, Douglas-Peucker alone cuts the
    // bulge off, leaving the rectangle [0, 40] x [0, 10].
    const Ring outer{{40, 0}, {40, 10}, {20, 12}, {0, 10}, {0, 0}, {40, 0}};
    Polygon alone{outer, {}};
    simplify(alone, 5);
    BOOST_TEST(alone.outer.size() == 5u);
    BOOST_TEST(signed_area(alone.outer) == 400.0);
    // A hole across y = 10: the rectangle's bottom edge would cross it.
    Polygon across{outer, {{{18, 8}, {18, 11}, {22, 11}, {22, 8}, {18, 8}}}};
    BOOST_REQUIRE(crossings(across) == 0);
    Polygon q = across;
    simplify(q, 5);
    BOOST_TEST(crossings(q) == 0);
    BOOST_TEST((q.outer == outer));
    // A hole wholly inside the bulge: no crossing, but it would end up outside the outer ring.
    Polygon below{outer, {{{18, 10.5}, {18, 11.5}, {22, 11.5}, {22, 10.5}, {18, 10.5}}}};
    q = below;
    simplify(q, 5);
    BOOST_TEST((q.outer == outer));
    BOOST_TEST(area(q) == area(below));

    Polygon bowtie{{{0, 0}, {2, 2}, {2, 0}, {0, 2}, {0, 0}}, {}};  // the checker can fail
    BOOST_TEST(crossings(bowtie) == 1);
    Polygon same = across;
    simplify(same, 0);
    BOOST_TEST((same.outer == outer));
    Polygon tri{{{0, 0}, {10, 0}, {5, 1}, {0, 0}}, {}};  // would collapse: stays
    simplify(tri, 5);
    BOOST_TEST(tri.outer.size() == 4u);
}

BOOST_AUTO_TEST_CASE(drop_small_specks_and_pinholes) {
    Mask m(40, 20);
    rect(m, 1, 1, 4, 2);      // 3-pixel speck
    rect(m, 10, 5, 20, 15);   // 100 pixels
    rect(m, 25, 2, 37, 14);   // 144 pixels ...
    rect(m, 30, 6, 32, 7, 0); // ... with a 2-pixel hole
    MultiPolygon mp = m.trace();
    BOOST_REQUIRE_EQUAL(mp.size(), 3u);  // raster order: speck (row 1), 12x12 (row 2), 10x10
    BOOST_REQUIRE_EQUAL(mp[1].holes.size(), 1u);
    BOOST_TEST(area(mp[1]) == 142.0);
    drop_small(mp, 5);
    BOOST_REQUIRE_EQUAL(mp.size(), 2u);
    BOOST_TEST(mp[0].holes.empty());
    BOOST_TEST(area(mp[0]) == 144.0);
    BOOST_TEST(area(mp[1]) == 100.0);
    drop_small(mp, 101);
    BOOST_REQUIRE_EQUAL(mp.size(), 1u);
    BOOST_TEST(area(mp[0]) == 144.0);
    drop_small(mp, 0);
    BOOST_TEST(mp.size() == 1u);
}

namespace {

// Brute force over ALL rings of ALL polygons (segments pruned only by their x ranges): the number
// of segment pairs that meet anywhere but at a common endpoint.
int crossings_all(const MultiPolygon& mp) {
    struct S {
        Point a, b;
        double x0, x1;
    };
    std::vector<S> segs;
    for (const Polygon& p : mp) {
        std::vector<const Ring*> rings{&p.outer};
        for (const Ring& h : p.holes) rings.push_back(&h);
        for (const Ring* r : rings)
            for (std::size_t i = 0; i + 1 < r->size(); ++i) {
                const Point a = (*r)[i], b = (*r)[i + 1];
                segs.push_back({a, b, std::min(a.x, b.x), std::max(a.x, b.x)});
            }
    }
    std::sort(segs.begin(), segs.end(), [](const S& s, const S& t) { return s.x0 < t.x0; });
    int bad = 0;
    for (std::size_t i = 0; i < segs.size(); ++i)
        for (std::size_t j = i + 1; j < segs.size() && segs[j].x0 <= segs[i].x1; ++j)
            bad += segments_conflict(segs[i].a, segs[i].b, segs[j].a, segs[j].b);
    return bad;
}

// Pixels covered by more than one polygon (each filled on its own with the even-odd rasterizer).
std::int64_t overlap_pixels(const MultiPolygon& mp, std::int64_t w, std::int64_t h) {
    std::vector<std::uint8_t> cover(static_cast<std::size_t>(w * h), 0);
    for (const Polygon& p : mp) {
        const std::vector<std::uint8_t> one = rasterize({p}, w, h);
        for (std::size_t k = 0; k < one.size(); ++k) cover[k] = std::uint8_t(std::min(cover[k] + one[k], 2));
    }
    return std::count(cover.begin(), cover.end(), 2);
}

bool oriented_and_closed(const MultiPolygon& mp) {
    for (const Polygon& p : mp) {
        if (p.outer.size() < 4 || !(p.outer.front() == p.outer.back()) || !(signed_area(p.outer) > 0)) return false;
        for (const Ring& h : p.holes)
            if (h.size() < 4 || !(h.front() == h.back()) || !(signed_area(h) < 0)) return false;
    }
    return true;
}

MultiPolygon per_polygon(MultiPolygon mp, double tol) {  // the old way: each polygon on its own
    for (Polygon& p : mp) simplify(p, tol);
    return mp;
}

bool has_vertex(const Ring& r, Point v) { return std::find(r.begin(), r.end(), v) != r.end(); }

// Smoothed noise: bilinear upsampling of a (g+1)^2 grid of uniform noise, plus fine noise.
Mask smooth_noise(int n, int g, double fine, double threshold, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> u(0, 1);
    std::vector<double> coarse(static_cast<std::size_t>((g + 1) * (g + 1)));
    for (double& c : coarse) c = u(rng);
    Mask m(n, n);
    for (int y = 0; y < n; ++y) {
        const double fy = y * double(g) / n;
        const int iy = int(fy);
        const double ty = fy - iy;
        for (int x = 0; x < n; ++x) {
            const double fx = x * double(g) / n;
            const int ix = int(fx);
            const double tx = fx - ix;
            auto c = [&](int a, int b) { return coarse[static_cast<std::size_t>(b * (g + 1) + a)]; };
            const double v = (1 - ty) * ((1 - tx) * c(ix, iy) + tx * c(ix + 1, iy)) +
                             ty * ((1 - tx) * c(ix, iy + 1) + tx * c(ix + 1, iy + 1));
            m.at(x, y) = v + fine * u(rng) > threshold;
        }
    }
    return m;
}

}  // namespace

BOOST_AUTO_TEST_CASE(multipolygon_island_one_pixel_inside_a_hole) {
    Mask m(140, 140);
    disc(m, 70, 70, 62);
    disc(m, 70, 70, 32, 0);
    disc(m, 70, 70, 31);  // the island: a 1 px ring of background around it
    const MultiPolygon mp = m.trace();
    BOOST_REQUIRE_EQUAL(mp.size(), 2u);
    BOOST_REQUIRE_EQUAL(mp[0].holes.size(), 1u);
    BOOST_REQUIRE(crossings_all(mp) == 0);
    BOOST_REQUIRE(overlap_pixels(mp, m.w, m.h) == 0);
    // Polygon by polygon, the hole's chords cut into the island: this test can fail.
    const MultiPolygon old = per_polygon(mp, 5);
    BOOST_TEST_MESSAGE("island in hole, per polygon: " << crossings_all(old) << " crossings, "
                                                       << overlap_pixels(old, m.w, m.h) << " px covered twice");
    BOOST_TEST(crossings_all(old) > 0);

    MultiPolygon s = mp;
    simplify(s, 5);
    BOOST_TEST(crossings_all(s) == 0);
    BOOST_TEST(overlap_pixels(s, m.w, m.h) == 0);
    BOOST_TEST(oriented_and_closed(s));
    BOOST_TEST(s[0].outer.size() < mp[0].outer.size());  // it did simplify
    BOOST_TEST(s[0].holes[0].size() < mp[0].holes[0].size());
    BOOST_TEST(s[1].outer.size() < mp[1].outer.size());
    BOOST_TEST(iou(rasterize(s, m.w, m.h), m.px) >= 0.85);  // tolerance 5 on 31-62 px radii
    // Same with an empty MultiPolygon and tolerance 0.
    MultiPolygon none;
    simplify(none, 5);
    BOOST_TEST(none.empty());
    MultiPolygon same = mp;
    simplify(same, 0);
    BOOST_TEST((same[0].outer == mp[0].outer && same[1].outer == mp[1].outer));
}

BOOST_AUTO_TEST_CASE(multipolygon_blobs_touching_at_a_corner) {
    // Two blobs over and under a jagged river (a random walk, 2 rows wide), joined by one
    // diagonal touch at (x0 + 1, s + 1) across the river.
    const int n = 80;
    std::mt19937 rng(7);
    std::vector<int> s(n);
    s[0] = 40;
    for (int x = 1; x < n; ++x) s[x] = std::clamp(s[x - 1] + int(rng() % 3) - 1, 20, 60);
    int x0 = 38;
    while (s[x0] != s[x0 + 1]) ++x0;
    Mask m(n, n);
    for (int x = 0; x < n; ++x)
        for (int y = 0; y < n; ++y) m.at(x, y) = y < s[x] || y >= s[x] + 2;
    m.at(x0, s[x0]) = 1;
    m.at(x0 + 1, s[x0] + 1) = 1;
    const Point touch{double(x0 + 1), double(s[x0] + 1)};
    const MultiPolygon mp = m.trace();
    BOOST_REQUIRE_EQUAL(mp.size(), 2u);
    BOOST_REQUIRE(has_vertex(mp[0].outer, touch));
    BOOST_REQUIRE(has_vertex(mp[1].outer, touch));
    check_traced(m, mp);
    const MultiPolygon old = per_polygon(mp, 3);
    BOOST_TEST_MESSAGE("touching blobs, per polygon: " << crossings_all(old) << " crossings, touch kept "
                                                       << has_vertex(old[0].outer, touch) << has_vertex(old[1].outer, touch));
    BOOST_TEST((crossings_all(old) > 0 || !has_vertex(old[0].outer, touch) || !has_vertex(old[1].outer, touch)));

    MultiPolygon t = mp;
    simplify(t, 3);
    BOOST_TEST(crossings_all(t) == 0);
    BOOST_TEST(has_vertex(t[0].outer, touch));
    BOOST_TEST(has_vertex(t[1].outer, touch));
    BOOST_TEST(overlap_pixels(t, m.w, m.h) == 0);
    BOOST_TEST(oriented_and_closed(t));
    BOOST_TEST(t[0].outer.size() + t[1].outer.size() < mp[0].outer.size() + mp[1].outer.size());
}

BOOST_AUTO_TEST_CASE(multipolygon_random_smoothed_noise) {
    const Mask m = smooth_noise(400, 25, 0.1, 0.5, 4242);
    const MultiPolygon mp = m.trace();
    std::size_t holes = 0, verts = 0;
    for (const Polygon& p : mp) {
        holes += p.holes.size();
        verts += p.outer.size();
        for (const Ring& h : p.holes) verts += h.size();
    }
    // Islands in holes: polygons whose first vertex lies inside a hole of another polygon.
    int islands = 0;
    {
        const std::vector<std::uint8_t> filled_holes = [&] {
            MultiPolygon hs;
            for (const Polygon& p : mp)
                for (const Ring& h : p.holes) hs.push_back({h, {}});
            return rasterize(hs, m.w, m.h);
        }();
        for (const Polygon& p : mp) {
            const auto x = std::int64_t(p.outer[0].x), y = std::int64_t(p.outer[0].y);
            islands += filled_holes[static_cast<std::size_t>(y * m.w + x)] != 0;
        }
    }
    BOOST_TEST_MESSAGE("400x400 noise: " << mp.size() << " polygons, " << holes << " holes, " << islands
                                         << " islands in holes, " << verts << " vertices");
    BOOST_TEST(mp.size() > 200u);
    BOOST_TEST(islands > 10);
    BOOST_REQUIRE(overlap_pixels(mp, m.w, m.h) == 0);
    for (double tol : {1.0, 3.0}) {
        MultiPolygon s = mp;
        simplify(s, tol);
        std::size_t after = 0;
        for (const Polygon& p : s) {
            after += p.outer.size();
            for (const Ring& h : p.holes) after += h.size();
        }
        const double v = iou(rasterize(s, m.w, m.h), m.px);
        const MultiPolygon old = per_polygon(mp, tol);
        BOOST_TEST_MESSAGE("tolerance " << tol << ": vertices " << verts << " -> " << after << ", IoU " << v
                                        << "; per polygon: " << crossings_all(old) << " crossings");
        BOOST_TEST(crossings_all(s) == 0);
        BOOST_TEST(overlap_pixels(s, m.w, m.h) == 0);
        BOOST_TEST(oriented_and_closed(s));
        BOOST_TEST(after < verts);
        if (tol == 1.0) BOOST_TEST(v >= 0.97);
        if (tol == 3.0) BOOST_TEST(crossings_all(old) > 0);
    }
}

BOOST_AUTO_TEST_CASE(multipolygon_simplify_4000_squared_is_fast) {
    const Mask m = smooth_noise(4000, 800, 0.3, 0.6, 99);
    MultiPolygon parts = m.trace();
    MultiPolygon holey = smooth_noise(4000, 800, 0.3, 0.3, 98).trace();  // mostly foreground: holes
    std::size_t most_holes = 0, verts = 0;
    for (const Polygon& p : holey) most_holes = std::max(most_holes, p.holes.size());
    for (const Polygon& p : parts) verts += p.outer.size();
    BOOST_TEST(parts.size() > 50000u);
    BOOST_TEST(most_holes > 5000u);
    const auto t0 = std::chrono::steady_clock::now();
    simplify(parts, 2);
    const auto t1 = std::chrono::steady_clock::now();
    simplify(holey, 2);
    const auto t2 = std::chrono::steady_clock::now();
    const double a = std::chrono::duration<double>(t1 - t0).count(), b = std::chrono::duration<double>(t2 - t1).count();
    BOOST_TEST_MESSAGE("4000x4000: " << parts.size() << " parts (" << verts << " vertices) simplified in " << a
                                     << " s; " << holey.size() << " polygons, one with " << most_holes
                                     << " holes, in " << b << " s");
    BOOST_TEST(a < 20.0);
    BOOST_TEST(b < 20.0);
    BOOST_TEST(oriented_and_closed(parts));
    BOOST_TEST(oriented_and_closed(holey));
}

