// Douglas-Peucker simplification of traced contours that keeps a MultiPolygon valid (see
// contour.hpp). Every segment of every ring sits in a uniform grid; a chord that would replace
// a chain of vertices is accepted only if it meets no other segment except at shared endpoints and
// the sliver between chain and chord holds no vertex. A rejected chord is split at its farthest
// vertex and the halves are tried in turn, so one bad spot costs only its own chord.
//
// Thread safety: pure functions; all state is local to each call.
#include "stages/geometry/contour.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>

namespace flowinfer::geom {
namespace {

double orient(const Point& a, const Point& b, const Point& c) {
    return (b.x - a.x) * (c.y - a.y) - (b.y - a.y) * (c.x - a.x);
}

double seg_dist2(const Point& p, const Point& a, const Point& b) {  // squared
    const double vx = b.x - a.x, vy = b.y - a.y, l2 = vx * vx + vy * vy;
    double t = l2 > 0 ? ((p.x - a.x) * vx + (p.y - a.y) * vy) / l2 : 0;
    t = std::clamp(t, 0.0, 1.0);
    const double ex = p.x - (a.x + t * vx), ey = p.y - (a.y + t * vy);
    return ex * ex + ey * ey;
}

bool in_box(const Point& p, const Point& a, const Point& b) {
    return p.x >= std::min(a.x, b.x) && p.x <= std::max(a.x, b.x) && p.y >= std::min(a.y, b.y) &&
           p.y <= std::max(a.y, b.y);
}

// Segments may meet only at a common endpoint (any other contact is a crossing, a touch
// inside a segment, or an overlap).
bool bad_pair(const Point& sa, const Point& sb, const Point& ta, const Point& tb) {
    const double o1 = orient(sa, sb, ta), o2 = orient(sa, sb, tb);
    const double o3 = orient(ta, tb, sa), o4 = orient(ta, tb, sb);
    if (o1 == 0 && o2 == 0) {
        const bool use_x = std::abs(sb.x - sa.x) >= std::abs(sb.y - sa.y);
        auto lo = [&](const Point& a, const Point& b) { return use_x ? std::min(a.x, b.x) : std::min(a.y, b.y); };
        auto hi = [&](const Point& a, const Point& b) { return use_x ? std::max(a.x, b.x) : std::max(a.y, b.y); };
        return std::min(hi(sa, sb), hi(ta, tb)) > std::max(lo(sa, sb), lo(ta, tb));  // one point: endpoints
    }
    if (((o1 > 0 && o2 < 0) || (o1 < 0 && o2 > 0)) && ((o3 > 0 && o4 < 0) || (o3 < 0 && o4 > 0)))
        return true;
    auto inner = [](const Point& p, const Point& a, const Point& b) { return in_box(p, a, b) && !(p == a) && !(p == b); };
    return (o1 == 0 && inner(ta, sa, sb)) || (o2 == 0 && inner(tb, sa, sb)) || (o3 == 0 && inner(sa, ta, tb)) ||
           (o4 == 0 && inner(sb, ta, tb));
}

double shoelace(const std::vector<Point>& r) {  // open ring, doubled
    double s = 0;
    for (std::size_t i = 0; i < r.size(); ++i) {
        const Point& a = r[i];
        const Point& b = r[(i + 1) % r.size()];
        s += a.x * b.y - b.x * a.y;
    }
    return s;
}

// All segments of all rings, in a uniform grid of square cells. A segment id is listed in every
// cell its (slightly widened) course passes; dead segments (replaced by a chord) stay listed and
// are skipped.
class Index {
public:
    struct Seg {
        Point a, b;
        bool alive;
    };
    std::vector<Seg> segs;

    Index(const Box& b, std::size_t nseg, double tol) : ox_(b.x0), oy_(b.y0) {
        const double w = std::max(b.x1 - b.x0, 1.0), h = std::max(b.y1 - b.y0, 1.0);
        // About 8 segments per cell where the rings are dense, never below the tolerance, and at
        // most ~4M cells.
        cs_ = std::max({std::sqrt(w * h / double(std::max<std::size_t>(nseg, 1))) * 3.0, 2.0 * tol,
                        std::sqrt(w * h / 4.0e6), 1e-9});
        gw_ = static_cast<std::int64_t>(w / cs_) + 1;
        gh_ = static_cast<std::int64_t>(h / cs_) + 1;
        cells_.resize(static_cast<std::size_t>(gw_ * gh_));
        segs.reserve(nseg + nseg / 4);
        eps_ = 1e-9 * std::max({w, h, std::abs(ox_), std::abs(oy_), 1.0});
    }

    std::uint32_t add(const Point& a, const Point& b) {
        const auto id = static_cast<std::uint32_t>(segs.size());
        segs.push_back({a, b, true});
        walk(a, b, eps_, [&](std::size_t c) { cells_[c].push_back(id); });
        return id;
    }
    std::size_t cell_of(const Point& p) const {
        return static_cast<std::size_t>(cy(p.y) * gw_ + cx(p.x));
    }
    const std::vector<std::uint32_t>& cell(std::size_t c) const { return cells_[c]; }
    std::size_t cell_count() const { return cells_.size(); }
    double eps() const { return eps_; }

    // Calls f(cell) for every cell within distance r (in the max norm) of segment ab.
    template <class F>
    void walk(const Point& a, const Point& b, double r, F&& f) const {
        const std::int64_t y0 = cy(std::min(a.y, b.y) - r), y1 = cy(std::max(a.y, b.y) + r);
        for (std::int64_t y = y0; y <= y1; ++y) {
            const double lo = oy_ + double(y) * cs_ - r, hi = oy_ + double(y + 1) * cs_ + r;
            double xa = a.x, xb = b.x;
            if (a.y != b.y) {
                double ta = (lo - a.y) / (b.y - a.y), tb = (hi - a.y) / (b.y - a.y);
                if (ta > tb) std::swap(ta, tb);
                ta = std::max(ta, 0.0), tb = std::min(tb, 1.0);
                if (ta > tb) continue;
                xa = a.x + ta * (b.x - a.x), xb = a.x + tb * (b.x - a.x);
            }
            const std::int64_t x0 = cx(std::min(xa, xb) - r), x1 = cx(std::max(xa, xb) + r);
            for (std::int64_t x = x0; x <= x1; ++x) f(static_cast<std::size_t>(y * gw_ + x));
        }
    }

private:
    std::int64_t cx(double x) const {
        return std::clamp<std::int64_t>(static_cast<std::int64_t>(std::floor((x - ox_) / cs_)), 0, gw_ - 1);
    }
    std::int64_t cy(double y) const {
        return std::clamp<std::int64_t>(static_cast<std::int64_t>(std::floor((y - oy_) / cs_)), 0, gh_ - 1);
    }
    double ox_, oy_, cs_ = 1, eps_ = 0;
    std::int64_t gw_ = 1, gh_ = 1;
    std::vector<std::vector<std::uint32_t>> cells_;
};

// Even-odd test on the closed path chain[0..] + back to chain[0], true only strictly inside
// (a point on the path is not inside).
bool strictly_inside(const Point& p, const std::vector<Point>& path) {
    bool in = false;
    for (std::size_t i = 0; i < path.size(); ++i) {
        const Point& a = path[i];
        const Point& b = path[(i + 1) % path.size()];
        if (orient(a, b, p) == 0 && in_box(p, a, b)) return false;
        if ((a.y > p.y) != (b.y > p.y) && p.x < a.x + (p.y - a.y) * (b.x - a.x) / (b.y - a.y)) in = !in;
    }
    return in;
}

struct RingRef {
    Ring* ring;
    std::uint32_t base;  // id of the segment from vertex 0 to vertex 1
    std::size_t n;       // vertices of the open ring (segments), 0 for rings left alone
};

class Simplifier {
public:
    Simplifier(MultiPolygon& m, const Box& box, double tol) : tol_(tol), index_(box, count_segs(m), tol) {
        for (Polygon& p : m) {
            add_ring(p.outer);
            for (Ring& h : p.holes) add_ring(h);
        }
        seen_.assign(index_.segs.size(), 0);
        chain_.assign(index_.segs.size(), 0);
        pin_shared();
    }

    void run() {
        for (const RingRef& r : rings_)
            if (r.n >= 4) simplify_ring(r);
    }

private:
    static std::size_t count_segs(const MultiPolygon& m) {
        std::size_t n = 0;
        for (const Polygon& p : m) {
            n += p.outer.size();
            for (const Ring& h : p.holes) n += h.size();
        }
        return n;
    }

    void add_ring(Ring& r) {
        const auto base = static_cast<std::uint32_t>(index_.segs.size());
        for (std::size_t k = 0; k + 1 < r.size(); ++k) index_.add(r[k], r[k + 1]);
        const bool closed = r.size() >= 2 && r.front() == r.back();
        rings_.push_back({&r, base, closed ? r.size() - 1 : 0});
    }

    // Vertices where rings touch (one point visited twice, by one ring or two rings of any
    // polygons) must stay put: moving one would open a gap or make a crossing. Each vertex is the
    // start of one segment, listed in the cell of that start.
    void pin_shared() {
        pinned_.assign(index_.segs.size(), 0);
        std::vector<std::pair<std::pair<double, double>, std::uint32_t>> here;
        for (std::size_t c = 0; c < index_.cell_count(); ++c) {
            here.clear();
            for (std::uint32_t id : index_.cell(c)) {
                const Point& a = index_.segs[id].a;
                if (index_.cell_of(a) == c) here.push_back({{a.x, a.y}, id});
            }
            std::sort(here.begin(), here.end());
            for (std::size_t i = 0; i + 1 < here.size(); ++i)
                if (here[i].first == here[i + 1].first) pinned_[here[i].second] = pinned_[here[i + 1].second] = 1;
        }
    }

    // Whether the chord pts[i] -> pts[j % n] may replace the chain between them; r bounds the
    // distance of the chain from the chord.
    bool chord_fits(const RingRef& rr, const std::vector<Point>& pts, std::size_t i, std::size_t j, double r) {
        const std::size_t n = rr.n;
        const Point& v = pts[i % n];
        const Point& w = pts[j % n];
        if (++stamp_ == 0) {  // wrapped: clear the marks
            std::fill(seen_.begin(), seen_.end(), 0);
            std::fill(chain_.begin(), chain_.end(), 0);
            stamp_ = 1;
        }
        path_.clear();
        for (std::size_t k = i; k < j; ++k) {
            const std::uint32_t id = rr.base + static_cast<std::uint32_t>(k % n);
            seen_[id] = chain_[id] = stamp_;
            path_.push_back(pts[k % n]);
        }
        path_.push_back(w);
        bool ok = true;
        index_.walk(v, w, index_.eps(), [&](std::size_t c) {
            if (!ok) return;
            for (std::uint32_t id : index_.cell(c)) {
                if (seen_[id] == stamp_) continue;
                seen_[id] = stamp_;
                const Index::Seg& s = index_.segs[id];
                if (s.alive && bad_pair(v, w, s.a, s.b)) {
                    ok = false;
                    return;
                }
            }
        });
        if (!ok) return false;
        // The sliver between chain and chord lies within r of the chord (in the convex hull of
        // the chain): no vertex of any ring may be strictly inside it.
        const double r2 = (r + index_.eps()) * (r + index_.eps());
        index_.walk(v, w, r + index_.eps(), [&](std::size_t c) {
            if (!ok) return;
            for (std::uint32_t id : index_.cell(c)) {
                const Index::Seg& s = index_.segs[id];
                if (!s.alive || chain_[id] == stamp_ || index_.cell_of(s.a) != c) continue;
                if (seg_dist2(s.a, v, w) <= r2 && strictly_inside(s.a, path_)) {
                    ok = false;
                    return;
                }
            }
        });
        return ok;
    }

    void simplify_ring(const RingRef& rr) {
        Ring& ring = *rr.ring;
        const std::size_t n = rr.n;
        const std::vector<Point> pts(ring.begin(), ring.end() - 1);
        std::vector<char> kept(n, 0);
        for (std::size_t k = 0; k < n; ++k) kept[k] = pinned_[rr.base + k];
        std::size_t far = 0;
        double far_d = -1;
        for (std::size_t k = 0; k < n; ++k) {
            const double dd = (pts[k].x - pts[0].x) * (pts[k].x - pts[0].x) + (pts[k].y - pts[0].y) * (pts[k].y - pts[0].y);
            if (dd > far_d) far_d = dd, far = k;
        }
        kept[0] = kept[far] = 1;
        std::vector<std::size_t> anchors;
        for (std::size_t k = 0; k < n; ++k)
            if (kept[k]) anchors.push_back(k);
        if (anchors.size() < 2) return;  // all points equal
        if (anchors.size() == 2 && std::all_of(pts.begin(), pts.end(), [&](const Point& q) {
                return seg_dist2(q, pts[0], pts[far]) <= tol_ * tol_;
            }))
            return;  // Douglas-Peucker would collapse the ring: it keeps its original points
        std::vector<std::pair<std::size_t, std::size_t>> work;  // (from, to), to up to from + n
        for (std::size_t k = anchors.size(); k-- > 0;)
            work.emplace_back(anchors[k], k + 1 < anchors.size() ? anchors[k + 1] : anchors[0] + n);
        std::vector<char> removed(n, 0);
        std::vector<std::uint32_t> chords;
        while (!work.empty()) {
            const auto [a, b] = work.back();
            work.pop_back();
            if (b <= a + 1) continue;
            double best = -1;
            std::size_t at = a;
            for (std::size_t k = a + 1; k < b; ++k) {
                const double dd = seg_dist2(pts[k % n], pts[a % n], pts[b % n]);
                if (dd > best) best = dd, at = k;
            }
            if (best > tol_ * tol_ || !chord_fits(rr, pts, a, b, std::sqrt(best))) {
                work.emplace_back(at, b);  // Douglas-Peucker split, or a rejected chord: a first
                work.emplace_back(a, at);
                continue;
            }
            for (std::size_t k = a; k < b; ++k) {
                index_.segs[rr.base + k % n].alive = false;
                if (k > a) removed[k % n] = 1;
            }
            chords.push_back(index_.add(pts[a % n], pts[b % n]));
            seen_.resize(index_.segs.size(), 0);
            chain_.resize(index_.segs.size(), 0);
        }
        if (chords.empty()) return;
        std::vector<Point> out;
        for (std::size_t k = 0; k < n; ++k)
            if (!removed[k]) out.push_back(pts[k]);
        const double before = shoelace(pts), after = shoelace(out);
        if (out.size() < 3 || after == 0 || (after > 0) != (before > 0)) {  // collapsed or turned over
            for (std::uint32_t id : chords) index_.segs[id].alive = false;
            for (std::size_t k = 0; k < n; ++k) index_.segs[rr.base + k].alive = true;
            return;
        }
        out.push_back(out.front());
        ring = std::move(out);
    }

    double tol_;
    Index index_;
    std::vector<RingRef> rings_;
    std::vector<char> pinned_;                  // by original segment id (= its start vertex)
    std::vector<std::uint32_t> seen_, chain_;  // per segment: last query that saw it / its chain
    std::uint32_t stamp_ = 0;
    std::vector<Point> path_;
};

}  // namespace

void simplify(MultiPolygon& m, double tolerance) {
    if (!(tolerance > 0)) return;
    Box box{HUGE_VAL, HUGE_VAL, -HUGE_VAL, -HUGE_VAL};
    auto grow = [&](const Ring& r) {
        for (const Point& q : r)
            box = {std::min(box.x0, q.x), std::min(box.y0, q.y), std::max(box.x1, q.x), std::max(box.y1, q.y)};
    };
    for (const Polygon& p : m) {
        grow(p.outer);
        for (const Ring& h : p.holes) grow(h);
    }
    if (!(box.x1 >= box.x0 && box.y1 >= box.y0)) return;  // no points (or NaN)
    Simplifier(m, box, tolerance).run();
}

void simplify(Polygon& p, double tolerance) {
    if (!(tolerance > 0)) return;
    MultiPolygon one(1);
    one[0] = std::move(p);
    simplify(one, tolerance);
    p = std::move(one[0]);
}

}  // namespace flowinfer::geom
