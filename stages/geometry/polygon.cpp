#include "stages/geometry/polygon.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace flowinfer::geom {

double signed_area(const Ring& r) {
    const std::size_t n = r.size();
    if (n < 3) return 0.0;
    double s = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        const Point& a = r[i];
        const Point& b = r[(i + 1) % n];  // closed rings add a zero term
        s += a.x * b.y - b.x * a.y;
    }
    return s / 2.0;
}

double area(const Polygon& p) {
    double a = std::abs(signed_area(p.outer));
    for (const Ring& h : p.holes) a -= std::abs(signed_area(h));
    return a;
}

double area(const MultiPolygon& m) {
    double a = 0.0;
    for (const Polygon& p : m) a += area(p);
    return a;
}

Box bounds(const Ring& r) {
    Box b{std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity(),
          -std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()};
    for (const Point& p : r) {
        b.x0 = std::min(b.x0, p.x);
        b.y0 = std::min(b.y0, p.y);
        b.x1 = std::max(b.x1, p.x);
        b.y1 = std::max(b.y1, p.y);
    }
    return b;
}

Box bounds(const MultiPolygon& m) {
    Box b{std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity(),
          -std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()};
    for (const Polygon& p : m) {
        const Box o = bounds(p.outer);
        b = {std::min(b.x0, o.x0), std::min(b.y0, o.y0), std::max(b.x1, o.x1), std::max(b.y1, o.y1)};
    }
    return b;
}

namespace {

void close(Ring& r) {
    if (!r.empty() && !(r.front() == r.back())) r.push_back(r.front());
}

void orient(Ring& r, bool ccw) {
    close(r);
    if ((signed_area(r) > 0) != ccw) std::reverse(r.begin(), r.end());
}

// One Sutherland-Hodgman pass: keep the side of an axis-aligned line where inside() holds.
template <class Inside, class Cross>
Ring clip_pass(const Ring& in, Inside inside, Cross cross) {
    Ring out;
    if (in.empty()) return out;
    out.reserve(in.size() + 4);
    Point prev = in.back();
    bool prev_in = inside(prev);
    for (const Point& cur : in) {
        const bool cur_in = inside(cur);
        if (cur_in != prev_in) out.push_back(cross(prev, cur));
        if (cur_in) out.push_back(cur);
        prev = cur;
        prev_in = cur_in;
    }
    return out;
}

double clipped_ring_area(const Ring& r, const Box& b) {
    const Box rb = bounds(r);
    if (rb.x1 <= b.x0 || rb.x0 >= b.x1 || rb.y1 <= b.y0 || rb.y0 >= b.y1) return 0.0;
    if (rb.x0 >= b.x0 && rb.x1 <= b.x1 && rb.y0 >= b.y0 && rb.y1 <= b.y1) return std::abs(signed_area(r));
    Ring open(r.begin(), r.end() - (r.size() > 1 && r.front() == r.back() ? 1 : 0));
    const auto at_x = [](double x) {
        return [x](const Point& a, const Point& c) { return Point{x, a.y + (c.y - a.y) * (x - a.x) / (c.x - a.x)}; };
    };
    const auto at_y = [](double y) {
        return [y](const Point& a, const Point& c) { return Point{a.x + (c.x - a.x) * (y - a.y) / (c.y - a.y), y}; };
    };
    open = clip_pass(open, [&](const Point& p) { return p.x >= b.x0; }, at_x(b.x0));
    open = clip_pass(open, [&](const Point& p) { return p.x <= b.x1; }, at_x(b.x1));
    open = clip_pass(open, [&](const Point& p) { return p.y >= b.y0; }, at_y(b.y0));
    open = clip_pass(open, [&](const Point& p) { return p.y <= b.y1; }, at_y(b.y1));
    return std::abs(signed_area(open));
}

struct Segment {
    Point a, b;
    int ring;
    std::size_t index;  // within the ring
    double xmin() const { return std::min(a.x, b.x); }
    double xmax() const { return std::max(a.x, b.x); }
};

double cross(const Point& o, const Point& a, const Point& b) {
    return (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x);
}

bool on_segment(const Point& p, const Point& a, const Point& b) {
    return std::min(a.x, b.x) <= p.x && p.x <= std::max(a.x, b.x) && std::min(a.y, b.y) <= p.y &&
           p.y <= std::max(a.y, b.y);
}

int sign(double v) { return (v > 0) - (v < 0); }

// Two segments that share more than isolated points, or cross at a point interior to both.
// Touching at an end point is allowed: rings may meet at a vertex.
bool conflict(const Segment& s, const Segment& t, Point& where) {
    const int d1 = sign(cross(t.a, t.b, s.a)), d2 = sign(cross(t.a, t.b, s.b));
    const int d3 = sign(cross(s.a, s.b, t.a)), d4 = sign(cross(s.a, s.b, t.b));
    if (d1 * d2 < 0 && d3 * d4 < 0) {
        const double u = cross(t.a, t.b, s.a) / (cross(t.a, t.b, s.a) - cross(t.a, t.b, s.b));
        where = {s.a.x + u * (s.b.x - s.a.x), s.a.y + u * (s.b.y - s.a.y)};
        return true;
    }
    if (d1 == 0 && d2 == 0) {  // collinear: any overlap of positive length
        const bool horizontal = std::abs(s.b.x - s.a.x) >= std::abs(s.b.y - s.a.y);
        const auto key = [&](const Point& p) { return horizontal ? p.x : p.y; };
        const double lo = std::max(std::min(key(s.a), key(s.b)), std::min(key(t.a), key(t.b)));
        const double hi = std::min(std::max(key(s.a), key(s.b)), std::max(key(t.a), key(t.b)));
        if (hi > lo) {
            where = s.a;
            return true;
        }
        return false;
    }
    // One end lies inside the other segment (a T-touch): allowed only at a vertex of both.
    const auto touches = [&](const Point& p, const Segment& other) {
        return sign(cross(other.a, other.b, p)) == 0 && on_segment(p, other.a, other.b) && !(p == other.a) &&
               !(p == other.b);
    };
    for (const Point& p : {s.a, s.b})
        if (touches(p, t)) {
            where = p;
            return true;
        }
    for (const Point& p : {t.a, t.b})
        if (touches(p, s)) {
            where = p;
            return true;
        }
    return false;
}

std::string ring_name(int r) { return r == 0 ? std::string("the outer ring") : fmt::format("hole {}", r - 1); }

}  // namespace

void normalize(Polygon& p) {
    orient(p.outer, true);
    for (Ring& h : p.holes) orient(h, false);
}

double clipped_area(const Polygon& p, const Box& box) {
    if (box.empty()) return 0.0;
    double a = clipped_ring_area(p.outer, box);
    for (const Ring& h : p.holes) a -= clipped_ring_area(h, box);
    return std::max(0.0, a);
}

std::optional<std::string> invalid_reason(const Polygon& p) {
    std::vector<const Ring*> rings{&p.outer};
    for (const Ring& h : p.holes) rings.push_back(&h);
    std::vector<Segment> segs;
    for (std::size_t r = 0; r < rings.size(); ++r) {
        const Ring& ring = *rings[r];
        if (ring.size() < 4 || !(ring.front() == ring.back()))
            return fmt::format("{} has {} points; a closed ring needs at least 4", ring_name(static_cast<int>(r)),
                               ring.size());
        for (const Point& pt : ring)
            if (!std::isfinite(pt.x) || !std::isfinite(pt.y))
                return fmt::format("{} has a coordinate that is not a finite number", ring_name(static_cast<int>(r)));
        for (std::size_t i = 0; i + 1 < ring.size(); ++i)
            if (!(ring[i] == ring[i + 1])) segs.push_back({ring[i], ring[i + 1], static_cast<int>(r), i});
    }
    std::sort(segs.begin(), segs.end(), [](const Segment& a, const Segment& b) { return a.xmin() < b.xmin(); });
    for (std::size_t i = 0; i < segs.size(); ++i) {
        const Segment& s = segs[i];
        for (std::size_t j = i + 1; j < segs.size() && segs[j].xmin() <= s.xmax(); ++j) {
            const Segment& t = segs[j];
            if (std::max(s.a.y, s.b.y) < std::min(t.a.y, t.b.y) || std::max(t.a.y, t.b.y) < std::min(s.a.y, s.b.y))
                continue;
            Point where;
            if (!conflict(s, t, where)) continue;
            if (s.ring == t.ring)
                return fmt::format("{} crosses itself near ({:.6g}, {:.6g})", ring_name(s.ring), where.x, where.y);
            return fmt::format("{} crosses {} near ({:.6g}, {:.6g})", ring_name(std::max(s.ring, t.ring)),
                               ring_name(std::min(s.ring, t.ring)), where.x, where.y);
        }
    }
    for (std::size_t r = 0; r < rings.size(); ++r)
        if (signed_area(*rings[r]) == 0.0) return fmt::format("{} encloses no area", ring_name(static_cast<int>(r)));
    // A hole must lie inside the outer ring: with no crossings, one vertex off the outer ring decides.
    for (std::size_t h = 0; h < p.holes.size(); ++h) {
        const Box hb = bounds(p.holes[h]), ob = bounds(p.outer);
        if (hb.x0 < ob.x0 || hb.y0 < ob.y0 || hb.x1 > ob.x1 || hb.y1 > ob.y1)
            return fmt::format("hole {} lies outside the outer ring", h);
    }
    return std::nullopt;
}

}  // namespace flowinfer::geom
