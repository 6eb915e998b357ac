// Region of interest: the indexes that make "share of this patch inside" cheap to ask tens of
// thousands of times (polygons: edges bucketed into horizontal bands; masks: a summed-area
// table). Reading region files is in roi_geojson.cpp.
//
// Thread safety: a built Region is immutable (const methods only read).

#include "stages/roi.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>

namespace flowinfer {

RegionError::RegionError(std::string path, const std::string& problem)
    : Error(fmt::format("{}: {}", path, problem)), path_(std::move(path)) {}

namespace {

struct Edge {
    double xa, ya, xb, yb;
    std::uint32_t band0;  // first band the edge lies in, so a query counts it once
};

// Area of (the region left of the edge, signed by its direction) ∩ r: the share one edge adds
// to the winding number integrated over r, with winding counted along rays towards -x. A
// closed ring's edges sum to the area of ring ∩ r (counter-clockwise rings positive), which
// needs only the edges whose y-extent meets r's - hence the bands.
double edge_share(const Edge& e, const geom::Box& r) {
    if (e.ya == e.yb) return 0;
    const double t = e.ya > e.yb ? 1.0 : -1.0;
    const double lo = std::max(std::min(e.ya, e.yb), r.y0), hi = std::min(std::max(e.ya, e.yb), r.y1);
    if (hi <= lo) return 0;
    if (std::max(e.xa, e.xb) <= r.x0) return t * (r.x1 - r.x0) * (hi - lo);
    if (std::min(e.xa, e.xb) >= r.x1) return 0;
    const double slope = (e.xb - e.xa) / (e.yb - e.ya);
    auto g = [&](double y) { return r.x1 - std::clamp(e.xa + slope * (y - e.ya), r.x0, r.x1); };
    // The clamp bends where the edge crosses x0 and x1; between bends g is linear, so the
    // trapezoid rule is exact there.
    double ys[4] = {lo, hi, hi, hi};
    int n = 1;
    if (e.xa != e.xb) {
        for (double xc : {r.x0, r.x1}) {
            const double yc = e.ya + (xc - e.xa) * (e.yb - e.ya) / (e.xb - e.xa);
            if (yc > lo && yc < hi) ys[n++] = yc;
        }
    }
    if (n == 3 && ys[1] > ys[2]) std::swap(ys[1], ys[2]);
    ys[n++] = hi;
    double s = 0;
    for (int i = 0; i + 1 < n; ++i) s += 0.5 * (g(ys[i]) + g(ys[i + 1])) * (ys[i + 1] - ys[i]);
    return t * s;
}

struct PolyIndex {
    geom::Box box;
    double area = 0;
    std::vector<Edge> edges;       // the outer ring's first, then the holes'
    std::size_t outer_edges = 0;
    std::vector<geom::Point> hole_points;  // a vertex of each hole
    double band_y0 = 0, band_h = 1;
    std::uint32_t nbands = 1;
    std::vector<std::uint32_t> start, entries;  // edges of band k: entries[start[k] .. start[k+1])

    std::uint32_t band(double y) const {
        const double k = std::floor((y - band_y0) / band_h);
        return static_cast<std::uint32_t>(std::clamp(k, 0.0, double(nbands - 1)));
    }

    explicit PolyIndex(const geom::Polygon& p) : box(geom::bounds(p.outer)), area(geom::area(p)) {
        auto add = [&](const geom::Ring& ring) {
            for (std::size_t i = 0; i + 1 < ring.size(); ++i)
                if (ring[i].y != ring[i + 1].y)  // horizontal edges add nothing
                    edges.push_back({ring[i].x, ring[i].y, ring[i + 1].x, ring[i + 1].y, 0});
        };
        add(p.outer);
        outer_edges = edges.size();
        for (const auto& h : p.holes) {
            add(h);
            if (!h.empty()) hole_points.push_back(h.front());
        }
        // About 8 edges a band, halved while edges spanning many bands (long straight sides)
        // would repeat too often: the bands are a speed-up, their memory must stay O(edges).
        const double height = box.y1 - box.y0;
        std::uint64_t nb = height > 0 ? std::clamp<std::uint64_t>(edges.size() / 8, 1, 1u << 16) : 1;
        for (;; nb /= 2) {
            band_h = height > 0 ? height / double(nb) : 1;
            nbands = static_cast<std::uint32_t>(nb);
            std::uint64_t total = 0;
            for (auto& e : edges) total += band(std::max(e.ya, e.yb)) - band(std::min(e.ya, e.yb)) + 1;
            if (nb == 1 || total <= 8 * edges.size() + 1024) break;
        }
        band_y0 = box.y0;
        start.assign(nbands + 1, 0);
        for (auto& e : edges) {
            e.band0 = band(std::min(e.ya, e.yb));
            for (std::uint32_t k = e.band0, k1 = band(std::max(e.ya, e.yb)); k <= k1; ++k) ++start[k + 1];
        }
        for (std::uint32_t k = 0; k < nbands; ++k) start[k + 1] += start[k];
        entries.resize(start[nbands]);
        std::vector<std::uint32_t> fill(start.begin(), start.end() - 1);
        for (std::uint32_t i = 0; i < edges.size(); ++i) {
            const Edge& e = edges[i];
            for (std::uint32_t k = e.band0, k1 = band(std::max(e.ya, e.yb)); k <= k1; ++k) entries[fill[k]++] = i;
        }
    }

    double clipped(const geom::Box& r) const {
        if (r.x1 <= box.x0 || r.x0 >= box.x1 || r.y1 <= box.y0 || r.y0 >= box.y1) return 0;
        if (r.x0 <= box.x0 && r.x1 >= box.x1 && r.y0 <= box.y0 && r.y1 >= box.y1) return area;
        const std::uint32_t k0 = band(std::max(r.y0, box.y0)), k1 = band(std::min(r.y1, box.y1));
        double s = 0;
        for (std::uint32_t k = k0; k <= k1; ++k)
            for (std::uint32_t j = start[k]; j < start[k + 1]; ++j) {
                const Edge& e = edges[entries[j]];
                if (std::max(e.band0, k0) == k) s += edge_share(e, r);
            }
        return std::clamp(s, 0.0, area);
    }

    // Even-odd crossings of the ray from p towards -x (half-open in y, so a vertex on the ray
    // counts once).
    bool contains(geom::Point p) const {
        if (p.x < box.x0 || p.x > box.x1 || p.y < box.y0 || p.y > box.y1) return false;
        const std::uint32_t k = band(p.y);
        bool in = false;
        for (std::uint32_t j = start[k]; j < start[k + 1]; ++j) {
            const Edge& e = edges[entries[j]];
            if ((e.ya <= p.y) != (e.yb <= p.y) && e.xa + (p.y - e.ya) * (e.xb - e.xa) / (e.yb - e.ya) < p.x) in = !in;
        }
        return in;
    }

    // Inside and farther than eps from every edge: a vertex shared with a neighbour (QuPath's
    // tiles) is not taken for an overlap.
    bool well_inside(geom::Point p, double eps) const {
        if (!contains(p)) return false;
        for (std::uint32_t k = band(p.y - eps), k1 = band(p.y + eps); k <= k1; ++k)
            for (std::uint32_t j = start[k]; j < start[k + 1]; ++j) {
                const Edge& e = edges[entries[j]];
                const double dx = e.xb - e.xa, dy = e.yb - e.ya;
                const double t = std::clamp(((p.x - e.xa) * dx + (p.y - e.ya) * dy) / (dx * dx + dy * dy), 0.0, 1.0);
                if (std::hypot(e.xa + t * dx - p.x, e.ya + t * dy - p.y) <= eps) return false;
            }
        return true;
    }

    // Whether segment a-b properly crosses an edge (touching does not count). Horizontal
    // edges are not indexed; a segment crossing only those also crosses a neighbour.
    bool crosses(geom::Point a, geom::Point b) const {
        auto orient = [](double ax, double ay, double bx, double by, double cx, double cy) {
            const double v = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax);
            return (v > 0) - (v < 0);
        };
        const double ylo = std::max(std::min(a.y, b.y), box.y0), yhi = std::min(std::max(a.y, b.y), box.y1);
        if (ylo > yhi) return false;
        for (std::uint32_t k = band(ylo), k1 = band(yhi); k <= k1; ++k)
            for (std::uint32_t j = start[k]; j < start[k + 1]; ++j) {
                const Edge& e = edges[entries[j]];
                const int o1 = orient(a.x, a.y, b.x, b.y, e.xa, e.ya), o2 = orient(a.x, a.y, b.x, b.y, e.xb, e.yb);
                const int o3 = orient(e.xa, e.ya, e.xb, e.yb, a.x, a.y), o4 = orient(e.xa, e.ya, e.xb, e.yb, b.x, b.y);
                if (o1 * o2 < 0 && o3 * o4 < 0) return true;
            }
        return false;
    }
};

bool overlaps(const geom::Box& a, const geom::Box& b) {
    return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
}

}  // namespace

struct Region::Impl {
    std::string source;
    std::vector<std::string> warnings;
    geom::Box box;
    double area = 0;

    std::vector<PolyIndex> polys;
    // Polygons by grid cell (entries of cell c: cell_entries[cell_start[c] .. cell_start[c+1])),
    // so thousands of small annotations (QuPath detections) are not all asked every query.
    double cell_w = 1, cell_h = 1;
    std::int64_t gnx = 1, gny = 1;
    std::vector<std::uint32_t> cell_start, cell_entries;

    bool is_mask = false;
    std::int64_t mw = 0, mh = 0;
    double sx = 1, sy = 1;
    std::vector<std::uint32_t> sat;  // (mw+1) x (mh+1) inside-pixel counts above and left

    void cells(const geom::Box& b, std::int64_t& cx0, std::int64_t& cy0, std::int64_t& cx1, std::int64_t& cy1) const {
        auto c = [](double v, double o, double s, std::int64_t n) {
            return static_cast<std::int64_t>(std::clamp(std::floor((v - o) / s), 0.0, double(n - 1)));
        };
        cx0 = c(b.x0, box.x0, cell_w, gnx), cx1 = c(b.x1, box.x0, cell_w, gnx);
        cy0 = c(b.y0, box.y0, cell_h, gny), cy1 = c(b.y1, box.y0, cell_h, gny);
    }

    void build_grid() {
        const auto n = static_cast<std::int64_t>(polys.size());
        gnx = gny = std::clamp<std::int64_t>(static_cast<std::int64_t>(std::ceil(std::sqrt(double(n)))), 1, 256);
        cell_w = std::max(box.x1 - box.x0, 1e-9) / double(gnx);
        cell_h = std::max(box.y1 - box.y0, 1e-9) / double(gny);
        cell_start.assign(static_cast<std::size_t>(gnx * gny + 1), 0);
        auto each = [&](auto&& f) {
            for (std::size_t i = 0; i < polys.size(); ++i) {
                std::int64_t cx0, cy0, cx1, cy1;
                cells(polys[i].box, cx0, cy0, cx1, cy1);
                for (auto cy = cy0; cy <= cy1; ++cy)
                    for (auto cx = cx0; cx <= cx1; ++cx) f(cy * gnx + cx, i);
            }
        };
        each([&](std::int64_t c, std::size_t) { ++cell_start[c + 1]; });
        for (std::size_t c = 1; c < cell_start.size(); ++c) cell_start[c] += cell_start[c - 1];
        cell_entries.resize(cell_start.back());
        std::vector<std::uint32_t> fill(cell_start.begin(), cell_start.end() - 1);
        each([&](std::int64_t c, std::size_t i) { cell_entries[fill[c]++] = static_cast<std::uint32_t>(i); });
    }

    // Calls f(polygon index) once for each polygon whose box meets b.
    template <class F>
    void near(const geom::Box& b, F&& f) const {
        if (!overlaps(b, box)) return;
        std::int64_t qx0, qy0, qx1, qy1;
        cells(b, qx0, qy0, qx1, qy1);
        for (auto cy = qy0; cy <= qy1; ++cy)
            for (auto cx = qx0; cx <= qx1; ++cx)
                for (auto j = cell_start[cy * gnx + cx]; j < cell_start[cy * gnx + cx + 1]; ++j) {
                    const PolyIndex& p = polys[cell_entries[j]];
                    if (!overlaps(p.box, b)) continue;
                    std::int64_t px0, py0, px1, py1;
                    cells(p.box, px0, py0, px1, py1);
                    if (std::max(px0, qx0) == cx && std::max(py0, qy0) == cy) f(cell_entries[j]);
                }
    }

    std::uint64_t sat_sum(std::int64_t i0, std::int64_t i1, std::int64_t j0, std::int64_t j1) const {
        const auto W = mw + 1;
        return std::uint64_t(sat[j1 * W + i1]) - sat[j0 * W + i1] - sat[j1 * W + i0] + sat[j0 * W + i0];
    }

    // Inside mask pixels in [u0, u1) x [v0, v1) (mask pixel units), cut pixels by overlap.
    double mask_area(double u0, double u1, double v0, double v1) const {
        struct Span { std::int64_t lo, hi; double w; };
        auto spans = [](double a, double b, Span* out) {
            const auto i0 = static_cast<std::int64_t>(std::floor(a)), i1 = static_cast<std::int64_t>(std::floor(b));
            if (i0 == i1) { out[0] = {i0, i0 + 1, b - a}; return 1; }
            int n = 0;
            out[n++] = {i0, i0 + 1, double(i0 + 1) - a};
            if (i1 > i0 + 1) out[n++] = {i0 + 1, i1, 1.0};
            if (b > double(i1)) out[n++] = {i1, i1 + 1, b - double(i1)};
            return n;
        };
        Span xs[3], ys[3];
        const int nx = spans(u0, u1, xs), ny = spans(v0, v1, ys);
        double s = 0;
        for (int a = 0; a < ny; ++a)
            for (int b = 0; b < nx; ++b) s += ys[a].w * xs[b].w * double(sat_sum(xs[b].lo, xs[b].hi, ys[a].lo, ys[a].hi));
        return s;
    }
};

Region::Region() : impl_(std::make_shared<Impl>()) {}

Region Region::from_polygons(geom::MultiPolygon m, std::string source, std::vector<std::string> warnings) {
    auto impl = std::make_shared<Impl>();
    impl->source = std::move(source);
    impl->warnings = std::move(warnings);
    for (auto& p : m) {
        if (p.outer.empty()) continue;
        geom::normalize(p);
        if (geom::area(p) > 0) impl->polys.emplace_back(p);
    }
    if (!impl->polys.empty()) {
        impl->box = impl->polys[0].box;
        for (const auto& p : impl->polys) {
            impl->box = {std::min(impl->box.x0, p.box.x0), std::min(impl->box.y0, p.box.y0),
                         std::max(impl->box.x1, p.box.x1), std::max(impl->box.y1, p.box.y1)};
        }
    }
    impl->build_grid();
    // A polygon wholly inside another adds nothing to the union but would count twice in the
    // sum of areas; QuPath files nest annotations often (a tumour inside the tissue outline).
    std::vector<char> drop(impl->polys.size(), 0);
    std::set<std::pair<std::uint32_t, std::uint32_t>> partial;
    for (std::size_t b = 0; b < impl->polys.size(); ++b) {
        const PolyIndex& B = impl->polys[b];
        impl->near(B.box, [&](std::uint32_t a) {
            if (a == b || drop[a] || drop[b]) return;
            const PolyIndex& A = impl->polys[a];
            const double eps = 1e-9 * std::max({1.0, std::abs(A.box.x1), std::abs(A.box.y1)});
            std::size_t in = 0;
            bool crossing = false;
            for (std::size_t i = 0; i < B.edges.size(); ++i) {
                const Edge& e = B.edges[i];
                in += i < B.outer_edges && A.well_inside({e.xa, e.ya}, eps);
                if (!crossing && A.crosses({e.xa, e.ya}, {e.xb, e.yb})) crossing = true;
            }
            // B's outer ring inside A without crossing, and no hole of A inside B: B ⊂ A.
            bool contained = B.outer_edges > 0 && in == B.outer_edges && !crossing;
            for (const auto& h : A.hole_points) contained = contained && !B.contains(h);
            if (contained) {
                drop[b] = 1;
                impl->warnings.push_back(fmt::format("{}: polygon {} lies inside polygon {}; counted once", impl->source, b, a));
            } else if (in > 0 || crossing) {
                partial.insert({std::min<std::uint32_t>(a, b), std::max<std::uint32_t>(a, b)});
            }
        });
    }
    if (!partial.empty())
        impl->warnings.push_back(fmt::format(
            "{}: {} pair(s) of polygons overlap in part (polygons {} and {} the first); the overlap counts twice, so "
            "shares near it read high",
            impl->source, partial.size(), partial.begin()->first, partial.begin()->second));
    if (std::find(drop.begin(), drop.end(), 1) != drop.end()) {
        std::vector<PolyIndex> kept;
        for (std::size_t i = 0; i < impl->polys.size(); ++i)
            if (!drop[i]) kept.push_back(std::move(impl->polys[i]));
        impl->polys = std::move(kept);
        impl->build_grid();
    }
    for (const auto& p : impl->polys) impl->area += p.area;
    return Region(std::move(impl));
}

Region Region::from_mask(std::vector<std::uint8_t> mask, std::int64_t mw, std::int64_t mh, std::int64_t slide_w,
                         std::int64_t slide_h, std::string source) {
    if (mw <= 0 || mh <= 0 || static_cast<std::uint64_t>(mw) * static_cast<std::uint64_t>(mh) != mask.size())
        throw RegionError(source, fmt::format("a {}x{} mask needs {} values, not {}", mw, mh, mw * mh, mask.size()));
    if (slide_w <= 0 || slide_h <= 0) throw RegionError(source, fmt::format("the slide's size {}x{} is not positive", slide_w, slide_h));
    // Counts stay below 2^32 and the table below 4 GiB.
    if ((mw + 1) * (mh + 1) > (std::int64_t(1) << 30))
        throw RegionError(source, fmt::format("the {}x{} mask is too large (over 2^30 pixels); downsample it", mw, mh));
    auto impl = std::make_shared<Impl>();
    impl->source = std::move(source);
    impl->is_mask = true;
    impl->mw = mw, impl->mh = mh;
    impl->sx = double(slide_w) / double(mw), impl->sy = double(slide_h) / double(mh);
    const double ra = double(mw) / double(mh), rs = double(slide_w) / double(slide_h);
    if (std::abs(ra / rs - 1) > 0.05)
        impl->warnings.push_back(fmt::format(
            "{}: the mask's aspect ratio ({}x{}, {:.3f}) differs from the slide's ({}x{}, {:.3f}) by {:.0f}%; it is stretched to fit",
            impl->source, mw, mh, ra, slide_w, slide_h, rs, 100 * std::abs(ra / rs - 1)));
    const auto W = mw + 1;
    impl->sat.assign(static_cast<std::size_t>(W * (mh + 1)), 0);
    std::int64_t i0 = mw, i1 = -1, j0 = mh, j1 = -1;
    for (std::int64_t j = 0; j < mh; ++j) {
        std::uint32_t row = 0;
        for (std::int64_t i = 0; i < mw; ++i) {
            const bool in = mask[static_cast<std::size_t>(j * mw + i)] != 0;
            row += in;
            if (in) i0 = std::min(i0, i), i1 = std::max(i1, i), j0 = std::min(j0, j), j1 = std::max(j1, j);
            impl->sat[(j + 1) * W + i + 1] = impl->sat[j * W + i + 1] + row;
        }
    }
    if (i1 < 0) throw RegionError(impl->source, "the mask is empty (no nonzero pixel)");
    impl->box = {i0 * impl->sx, j0 * impl->sy, (i1 + 1) * impl->sx, (j1 + 1) * impl->sy};
    impl->area = double(impl->sat.back()) * impl->sx * impl->sy;
    return Region(std::move(impl));
}

double Region::fraction_in(double x, double y, double w, double h) const {
    if (!(w > 0 && h > 0) || impl_->area <= 0) return 0;
    const Impl& r = *impl_;
    double inside = 0;
    if (r.is_mask) {
        const double u0 = std::clamp(x / r.sx, 0.0, double(r.mw)), u1 = std::clamp((x + w) / r.sx, 0.0, double(r.mw));
        const double v0 = std::clamp(y / r.sy, 0.0, double(r.mh)), v1 = std::clamp((y + h) / r.sy, 0.0, double(r.mh));
        if (u1 > u0 && v1 > v0) inside = r.mask_area(u0, u1, v0, v1) * r.sx * r.sy;
    } else {
        const geom::Box q{x, y, x + w, y + h};
        r.near(q, [&](std::uint32_t i) { inside += r.polys[i].clipped(q); });
    }
    return std::clamp(inside / (w * h), 0.0, 1.0);
}

geom::Box Region::bounds() const { return impl_->box; }
bool Region::empty() const { return !(impl_->area > 0); }
double Region::area() const { return impl_->area; }
const std::string& Region::source() const { return impl_->source; }
const std::vector<std::string>& Region::warnings() const { return impl_->warnings; }

}  // namespace flowinfer
