// Contour tracing of binary masks into polygons with holes and the removal of small parts
// (see contour.hpp; simplification is in simplify.cpp).
//
// Thread safety: pure functions; all state is local to each call.
#include "stages/geometry/contour.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <stdexcept>
#include <unordered_map>
#include <utility>

namespace flowinfer::geom {
namespace {

constexpr std::uint32_t kTopDone = 0x80000000u;  // label bit: the pixel's top edge was traced
constexpr std::uint32_t kNoLabel = 0x7FFFFFFFu;

// Two-pass union-find labelling. Roots are kept at the smallest provisional label, and
// provisional labels are handed out in raster order, so numbering roots in label order numbers
// components in raster order of their first pixel.
std::uint32_t label_components(const std::uint8_t* mask, std::int64_t w, std::int64_t h,
                               std::vector<std::uint32_t>& lab) {
    lab.assign(static_cast<std::size_t>(w * h), kNoLabel);
    std::vector<std::uint32_t> parent;
    auto find = [&](std::uint32_t a) {
        while (parent[a] != a) a = parent[a] = parent[parent[a]];
        return a;
    };
    for (std::int64_t y = 0; y < h; ++y) {
        for (std::int64_t x = 0; x < w; ++x) {
            const std::int64_t i = y * w + x;
            if (!mask[i]) continue;
            const std::uint32_t up = y > 0 ? lab[i - w] : kNoLabel;
            const std::uint32_t left = x > 0 ? lab[i - 1] : kNoLabel;
            if (up == kNoLabel && left == kNoLabel) {
                lab[i] = static_cast<std::uint32_t>(parent.size());
                parent.push_back(lab[i]);
            } else if (up == kNoLabel || left == kNoLabel || up == left) {
                lab[i] = up == kNoLabel ? left : up;
            } else {
                lab[i] = left;
                const std::uint32_t a = find(up), b = find(left);
                if (a < b) parent[b] = a;
                else if (b < a) parent[a] = b;
            }
        }
    }
    std::vector<std::uint32_t> final_id(parent.size());
    std::uint32_t count = 0;
    for (std::uint32_t p = 0; p < parent.size(); ++p)
        final_id[p] = parent[p] == p ? count++ : final_id[find(p)];  // root < p: already numbered
    for (auto& l : lab)
        if (l != kNoLabel) l = final_id[l];
    return count;
}

struct IPt {
    std::int64_t x, y;
    bool operator==(const IPt& o) const { return x == o.x && y == o.y; }
    bool operator<(const IPt& o) const { return y != o.y ? y < o.y : x < o.x; }
};

std::int64_t doubled_area(const std::vector<IPt>& r) {  // open ring
    std::int64_t s = 0;
    for (std::size_t i = 0; i < r.size(); ++i) {
        const IPt& a = r[i];
        const IPt& b = r[(i + 1) % r.size()];
        s += a.x * b.y - b.x * a.y;
    }
    return s;
}

Ring to_ring(const std::vector<IPt>& pts) {
    Ring r;
    r.reserve(pts.size() + 1);
    for (const IPt& p : pts) r.push_back({double(p.x), double(p.y)});
    r.push_back(r.front());
    return r;
}

// A traced boundary passes a saddle vertex twice when the component touches itself there
// (or a hole touches itself). OGC wants simple rings, so cut such a boundary into loops at the
// repeated vertices; each loop keeps a corner there (the two joined edges are perpendicular).
void split_loops(const std::vector<IPt>& pts, const std::vector<std::size_t>& saddles,
                 std::vector<std::vector<IPt>>& loops) {
    std::vector<IPt> keys;
    for (std::size_t i : saddles) keys.push_back(pts[i]);
    std::sort(keys.begin(), keys.end());
    if (std::adjacent_find(keys.begin(), keys.end()) == keys.end()) {
        loops.push_back(pts);
        return;
    }
    std::vector<IPt> dups;  // saddles this boundary passes twice
    for (std::size_t k = 0; k + 1 < keys.size(); ++k)
        if (keys[k] == keys[k + 1]) dups.push_back(keys[k]);
    auto key = [](const IPt& p) { return (std::uint64_t(p.y) << 32) | std::uint64_t(p.x); };
    std::unordered_map<std::uint64_t, std::size_t> open;  // repeated saddle -> position in stack
    std::vector<IPt> stack;
    std::size_t next_saddle = 0;
    for (std::size_t i = 0; i < pts.size(); ++i) {
        const bool is_saddle = next_saddle < saddles.size() && saddles[next_saddle] == i;
        if (is_saddle) ++next_saddle;
        if (!is_saddle || !std::binary_search(dups.begin(), dups.end(), pts[i])) {
            stack.push_back(pts[i]);
            continue;
        }
        auto it = open.find(key(pts[i]));
        if (it == open.end()) {
            open.emplace(key(pts[i]), stack.size());
            stack.push_back(pts[i]);
            continue;
        }
        const std::size_t s = it->second;
        loops.emplace_back(stack.begin() + static_cast<std::ptrdiff_t>(s), stack.end());
        for (std::size_t k = s; k < stack.size(); ++k) {  // each entry is popped once: O(n) overall
            auto o = open.find(key(stack[k]));
            if (o != open.end() && o->second == k) open.erase(o);
        }
        stack.resize(s + 1);  // a pixel corner has two boundary visits at most: v is closed now
    }
    loops.push_back(std::move(stack));
}

}  // namespace

MultiPolygon trace_contours(const std::uint8_t* mask, std::int64_t width, std::int64_t height) {
    if (width < 0 || height < 0) throw std::invalid_argument("trace_contours: negative mask size");
    if (width == 0 || height == 0) return {};
    if (!mask) throw std::invalid_argument("trace_contours: null mask with nonzero size");
    if (width > (std::int64_t(1) << 31) / height)
        throw std::invalid_argument("trace_contours: mask over 2^31 pixels");
    const std::int64_t w = width, h = height;
    std::vector<std::uint32_t> lab;
    const std::uint32_t count = label_components(mask, w, h, lab);
    MultiPolygon out(count);
    if (count == 0) return out;

    auto fg = [&](std::int64_t x, std::int64_t y) {
        return x >= 0 && y >= 0 && x < w && y < h && mask[y * w + x] != 0;
    };
    // Directions E, S, W, N: each is the clockwise-on-screen turn of the one before. Edges run
    // with the foreground on their screen-right side, which makes outer rings positive in the
    // shoelace sum of these y-down numbers. The two pixels ahead of a vertex: R(ight), L(eft).
    static constexpr int dx[4] = {1, 0, -1, 0}, dy[4] = {0, 1, 0, -1};
    static constexpr int rx[4] = {0, -1, -1, 0}, ry[4] = {0, 0, -1, -1};
    static constexpr int lx[4] = {0, 0, -1, -1}, ly[4] = {-1, 0, 0, -1};
    auto saddle = [&](std::int64_t x, std::int64_t y) {
        const bool a = fg(x - 1, y - 1), b = fg(x, y - 1), c = fg(x - 1, y), d = fg(x, y);
        return a == d && b == c && a != b;
    };

    std::vector<IPt> pts;
    std::vector<std::size_t> saddles;
    std::vector<std::vector<IPt>> loops;
    for (std::int64_t y = 0; y < h; ++y) {
        for (std::int64_t x = 0; x < w; ++x) {
            const std::int64_t i = y * w + x;
            // Every ring has a top edge (an eastward edge); starting only there and marking
            // those edges is enough to trace each ring once.
            if (!mask[i] || (y > 0 && mask[i - w]) || (lab[i] & kTopDone)) continue;
            const std::uint32_t comp = lab[i];
            pts.clear();
            saddles.clear();
            std::int64_t vx = x, vy = y;
            int d = 0;
            pts.push_back({vx, vy});
            if (saddle(vx, vy)) saddles.push_back(0);
            for (;;) {
                if (d == 0) lab[static_cast<std::size_t>(vy * w + vx)] |= kTopDone;
                vx += dx[d];
                vy += dy[d];
                // Turning right first keeps to the current pixel at a saddle, so components
                // meeting at a corner stay apart (4-connectivity).
                int nd;
                if (!fg(vx + rx[d], vy + ry[d])) nd = (d + 1) & 3;
                else if (!fg(vx + lx[d], vy + ly[d])) nd = d;
                else nd = (d + 3) & 3;
                if (vx == x && vy == y && nd == 0) {
                    if (d == 0) {  // start was not a corner (cannot happen from a raster scan)
                        pts.erase(pts.begin());
                        for (auto& s : saddles) --s;  // the start was no saddle either
                    }
                    break;
                }
                if (nd != d) {
                    if (saddle(vx, vy)) saddles.push_back(pts.size());
                    pts.push_back({vx, vy});
                }
                d = nd;
            }
            loops.clear();
            split_loops(pts, saddles, loops);
            for (const auto& loop : loops) {
                Polygon& poly = out[comp];
                if (doubled_area(loop) > 0) {
                    assert(poly.outer.empty());
                    poly.outer = to_ring(loop);
                } else {
                    poly.holes.push_back(to_ring(loop));
                }
            }
        }
    }
    return out;
}

void drop_small(MultiPolygon& m, double min_area) {
    if (!(min_area > 0)) return;
    for (Polygon& p : m)
        p.holes.erase(std::remove_if(p.holes.begin(), p.holes.end(),
                                     [&](const Ring& h) { return std::abs(signed_area(h)) < min_area; }),
                      p.holes.end());
    m.erase(std::remove_if(m.begin(), m.end(), [&](const Polygon& p) { return area(p) < min_area; }), m.end());
}

}  // namespace flowinfer::geom
