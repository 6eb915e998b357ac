// What the geometry tests share: masks drawn from shapes, an independent even-odd rasterizer,
// brute-force crossing checks and the checks every traced or simplified result must pass.
//
// Thread safety: plain functions on the caller's values.
#pragma once

#include <boost/test/unit_test.hpp>

#include "stages/geometry/contour.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

using namespace flowinfer::geom;

namespace fit_geom {

struct Mask {
    std::int64_t w, h;
    std::vector<std::uint8_t> px;
    Mask(std::int64_t w_, std::int64_t h_) : w(w_), h(h_), px(static_cast<std::size_t>(w_ * h_), 0) {}
    std::uint8_t& at(std::int64_t x, std::int64_t y) { return px[static_cast<std::size_t>(y * w + x)]; }
    std::int64_t count() const { return std::count(px.begin(), px.end(), 1); }
    MultiPolygon trace() const { return trace_contours(px.data(), w, h); }
};

inline void disc(Mask& m, double cx, double cy, double r, std::uint8_t v = 1) {
    for (std::int64_t y = 0; y < m.h; ++y)
        for (std::int64_t x = 0; x < m.w; ++x)
            if (std::hypot(x + 0.5 - cx, y + 0.5 - cy) <= r) m.at(x, y) = v;
}

inline void rect(Mask& m, std::int64_t x0, std::int64_t y0, std::int64_t x1, std::int64_t y1, std::uint8_t v = 1) {
    for (std::int64_t y = y0; y < y1; ++y)
        for (std::int64_t x = x0; x < x1; ++x) m.at(x, y) = v;
}

// Independent rasterizer: even-odd over all rings of a polygon, sampled at pixel centres with
// scanline crossings; polygons are OR-ed.
inline std::vector<std::uint8_t> rasterize(const MultiPolygon& mp, std::int64_t w, std::int64_t h) {
    std::vector<std::uint8_t> out(static_cast<std::size_t>(w * h), 0);
    std::vector<double> xs;
    for (const Polygon& p : mp) {
        std::vector<const Ring*> rings{&p.outer};
        for (const Ring& r : p.holes) rings.push_back(&r);
        for (std::int64_t y = 0; y < h; ++y) {
            const double yc = y + 0.5;
            xs.clear();
            for (const Ring* r : rings)
                for (std::size_t i = 0; i + 1 < r->size(); ++i) {
                    const Point a = (*r)[i], b = (*r)[i + 1];
                    if ((a.y <= yc && b.y > yc) || (b.y <= yc && a.y > yc))
                        xs.push_back(a.x + (yc - a.y) / (b.y - a.y) * (b.x - a.x));
                }
            std::sort(xs.begin(), xs.end());
            for (std::size_t k = 0; k + 1 < xs.size(); k += 2)
                for (std::int64_t x = std::max<std::int64_t>(0, std::int64_t(std::floor(xs[k])));
                     x < w && x + 0.5 < xs[k + 1]; ++x)
                    if (x + 0.5 > xs[k]) out[static_cast<std::size_t>(y * w + x)] = 1;
        }
    }
    return out;
}

inline double iou(const std::vector<std::uint8_t>& a, const std::vector<std::uint8_t>& b) {
    std::int64_t i = 0, u = 0;
    for (std::size_t k = 0; k < a.size(); ++k) i += a[k] && b[k], u += a[k] || b[k];
    return u ? double(i) / double(u) : 1.0;
}

// Brute force: two segments of a polygon may only meet at a point that is an endpoint of both.
// Exact on integer coordinates (long double cross products).
inline bool segments_conflict(Point p1, Point p2, Point q1, Point q2) {
    auto cross = [](Point o, Point a, Point b) {
        return (long double)(a.x - o.x) * (b.y - o.y) - (long double)(a.y - o.y) * (b.x - o.x);
    };
    auto sgn = [](long double v) { return (v > 0) - (v < 0); };
    const int d1 = sgn(cross(q1, q2, p1)), d2 = sgn(cross(q1, q2, p2));
    const int d3 = sgn(cross(p1, p2, q1)), d4 = sgn(cross(p1, p2, q2));
    auto within = [](Point a, Point b, Point c) {  // c on the closed box of ab
        return std::min(a.x, b.x) <= c.x && c.x <= std::max(a.x, b.x) && std::min(a.y, b.y) <= c.y &&
               c.y <= std::max(a.y, b.y);
    };
    if (d1 * d2 < 0 && d3 * d4 < 0) return true;  // proper crossing
    if (d1 == 0 && d2 == 0 && d3 == 0 && d4 == 0) {  // collinear: overlap longer than a point?
        int shared = 0;
        for (Point c : {q1, q2}) shared += within(p1, p2, c) && !(c == p1) && !(c == p2);
        for (Point c : {p1, p2}) shared += within(q1, q2, c) && !(c == q1) && !(c == q2);
        const bool same = (p1 == q1 && p2 == q2) || (p1 == q2 && p2 == q1);
        return shared > 0 || same;
    }
    auto touch = [&](Point c, Point a, Point b) { return within(a, b, c) && !(c == a) && !(c == b); };
    return (d1 == 0 && touch(p1, q1, q2)) || (d2 == 0 && touch(p2, q1, q2)) || (d3 == 0 && touch(q1, p1, p2)) ||
           (d4 == 0 && touch(q2, p1, p2));
}

inline int crossings(const Polygon& p) {
    std::vector<std::pair<Point, Point>> segs;
    for (const Ring* r : [&] {
             std::vector<const Ring*> v{&p.outer};
             for (const Ring& h : p.holes) v.push_back(&h);
             return v;
         }())
        for (std::size_t i = 0; i + 1 < r->size(); ++i) segs.emplace_back((*r)[i], (*r)[i + 1]);
    int bad = 0;
    for (std::size_t i = 0; i < segs.size(); ++i)
        for (std::size_t j = i + 1; j < segs.size(); ++j)
            bad += segments_conflict(segs[i].first, segs[i].second, segs[j].first, segs[j].second);
    return bad;
}

// A ring visiting one point twice is not simple (OGC); contours must split such rings.
inline bool ring_simple(const Ring& r) {
    std::vector<std::pair<double, double>> v;
    for (std::size_t i = 0; i + 1 < r.size(); ++i) v.emplace_back(r[i].x, r[i].y);
    std::sort(v.begin(), v.end());
    return std::adjacent_find(v.begin(), v.end()) == v.end();
}

inline bool collinear_free(const Ring& r) {
    const std::size_t n = r.size() - 1;
    for (std::size_t i = 0; i < n; ++i) {
        const Point a = r[(i + n - 1) % n], b = r[i], c = r[i + 1];
        if ((b.x - a.x) * (c.y - b.y) - (b.y - a.y) * (c.x - b.x) == 0) return false;
    }
    return true;
}

// Structural checks on traced (unsimplified) output, and the round trip through the rasterizer.
inline void check_traced(const Mask& m, const MultiPolygon& mp) {
    double total = 0;
    for (const Polygon& p : mp) {
        std::vector<const Ring*> rings{&p.outer};
        for (const Ring& h : p.holes) rings.push_back(&h);
        for (const Ring* r : rings) {
            BOOST_REQUIRE_GE(r->size(), 5u);  // pixel rings have at least 4 corners
            BOOST_TEST((r->front() == r->back()));
            BOOST_TEST(ring_simple(*r));
            BOOST_TEST(collinear_free(*r));
        }
        BOOST_TEST(signed_area(p.outer) > 0);
        for (const Ring& h : p.holes) BOOST_TEST(signed_area(h) < 0);
        BOOST_TEST(crossings(p) == 0);
        total += area(p);
    }
    BOOST_TEST(total == double(m.count()));
    BOOST_TEST((rasterize(mp, m.w, m.h) == m.px));
}

// simplify(1.0): still valid, closed, oriented, and close to the mask.
inline void check_simplified(const Mask& m, MultiPolygon mp, double min_iou) {
    std::size_t before = 0, after = 0;
    for (Polygon& p : mp) {
        before += p.outer.size();
        simplify(p, 1.0);
        after += p.outer.size();
        BOOST_TEST(crossings(p) == 0);
        BOOST_TEST(signed_area(p.outer) > 0);
        for (const Ring& h : p.holes) BOOST_TEST((h.size() >= 4 && h.front() == h.back() && signed_area(h) < 0));
        BOOST_TEST((p.outer.size() >= 4 && p.outer.front() == p.outer.back()));
    }
    const double v = iou(rasterize(mp, m.w, m.h), m.px);
    BOOST_TEST_MESSAGE("simplify: outer points " << before << " -> " << after << ", IoU " << v);
    BOOST_TEST(v >= min_iou);
    BOOST_TEST(after <= before);
}

}  // namespace fit_geom
