#include "stages/detections.hpp"

#include <flowinfer/errors.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace flowinfer {

namespace {

// A box spanning more cells than this per axis goes to a list every query visits instead:
// a garbage model's huge box must not fill the hash with millions of entries.
constexpr std::int64_t kMaxCellsPerAxis = 8;

std::uint64_t cell_key(std::int64_t cx, std::int64_t cy) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(cx)) << 32) |
           static_cast<std::uint32_t>(cy);
}

template <class T>
double area(const T& b) {
    return std::max(0.0, static_cast<double>(b.x2) - b.x1) * std::max(0.0, static_cast<double>(b.y2) - b.y1);
}

template <class A, class B>
double intersection(const A& a, const B& b) {
    const double w = std::min<double>(a.x2, b.x2) - std::max<double>(a.x1, b.x1);
    const double h = std::min<double>(a.y2, b.y2) - std::max<double>(a.y1, b.y1);
    return w > 0 && h > 0 ? w * h : 0.0;
}

template <class A, class B>
double iou(const A& a, const B& b) {
    const double inter = intersection(a, b);
    const double uni = area(a) + area(b) - inter;
    return uni > 0 ? inter / uni : 0.0;
}

// Spatial hash over boxes with integer ids; used by per-patch NMS.
class BoxHash {
public:
    explicit BoxHash(double cell) : cell_(cell) {}

    void insert(std::uint32_t id, const Box& b) {
        std::int64_t r[4];
        if (!range(b, r)) {
            big_.push_back(id);
            return;
        }
        for (std::int64_t cy = r[1]; cy <= r[3]; ++cy)
            for (std::int64_t cx = r[0]; cx <= r[2]; ++cx) cells_[cell_key(cx, cy)].push_back(id);
    }

    // Calls fn(id) for ids registered in cells b touches (an id may repeat); stops when fn
    // returns true, and returns whether it did.
    template <class F>
    bool any(const Box& b, F&& fn) const {
        for (std::uint32_t id : big_)
            if (fn(id)) return true;
        std::int64_t r[4];
        if (!range(b, r)) {
            // A huge query box: visiting every cell is bounded by the entries there.
            for (const auto& kv : cells_)
                for (std::uint32_t id : kv.second)
                    if (fn(id)) return true;
            return false;
        }
        for (std::int64_t cy = r[1]; cy <= r[3]; ++cy)
            for (std::int64_t cx = r[0]; cx <= r[2]; ++cx) {
                auto it = cells_.find(cell_key(cx, cy));
                if (it == cells_.end()) continue;
                for (std::uint32_t id : it->second)
                    if (fn(id)) return true;
            }
        return false;
    }

private:
    bool range(const Box& b, std::int64_t r[4]) const {
        const double v[4] = {std::floor(b.x1 / cell_), std::floor(b.y1 / cell_),
                             std::floor(b.x2 / cell_), std::floor(b.y2 / cell_)};
        if (v[2] - v[0] >= kMaxCellsPerAxis || v[3] - v[1] >= kMaxCellsPerAxis) return false;
        if (std::abs(v[0]) > 1e9 || std::abs(v[1]) > 1e9) return false;
        for (int i = 0; i < 4; ++i) r[i] = static_cast<std::int64_t>(v[i]);
        return true;
    }

    double cell_;
    std::unordered_map<std::uint64_t, std::vector<std::uint32_t>> cells_;
    std::vector<std::uint32_t> big_;
};

const char* format_name(DetectionFormat f) {
    switch (f) {
        case DetectionFormat::boxes: return "boxes";
        case DetectionFormat::yolov8: return "yolov8";
        case DetectionFormat::yolov5: return "yolov5";
    }
    return "?";
}

}  // namespace

std::vector<Box> nms(std::vector<Box> boxes, float iou_threshold, bool class_agnostic,
                     int max_detections) {
    std::vector<std::uint32_t> order(boxes.size());
    std::iota(order.begin(), order.end(), 0u);
    std::stable_sort(order.begin(), order.end(),
                     [&](std::uint32_t a, std::uint32_t b) { return boxes[a].score > boxes[b].score; });

    // Cell about the typical box size: a box then registers in a few cells and a query
    // meets only its neighbours.
    std::vector<float> sides;
    sides.reserve(boxes.size());
    for (const Box& b : boxes) sides.push_back(std::max(b.x2 - b.x1, b.y2 - b.y1));
    double cell = 1.0;
    if (!sides.empty()) {
        std::nth_element(sides.begin(), sides.begin() + static_cast<std::ptrdiff_t>(sides.size() / 2), sides.end());
        const double median = sides[sides.size() / 2];
        if (std::isfinite(median) && median > 1.0) cell = median;
    }

    const std::size_t limit = max_detections > 0 ? static_cast<std::size_t>(max_detections)
                                                 : std::numeric_limits<std::size_t>::max();
    BoxHash hash(cell);
    std::vector<Box> kept;
    for (std::uint32_t i : order) {
        if (kept.size() >= limit) break;
        const Box& b = boxes[i];
        const bool suppressed = hash.any(b, [&](std::uint32_t k) {
            const Box& o = kept[k];
            return (class_agnostic || o.cls == b.cls) && iou(o, b) > iou_threshold;
        });
        if (suppressed) continue;
        hash.insert(static_cast<std::uint32_t>(kept.size()), b);
        kept.push_back(b);
    }
    return kept;
}

std::vector<Box> decode_patch(const std::string& model_name, const float* data, std::int64_t d1,
                              std::int64_t d2, const DetectionParams& p) {
    const char* fname = format_name(p.format);
    auto bad_dims = [&](const char* expected) {
        return ModelError(model_name, fmt::format("detection output per patch is [{}, {}], which "
                                                  "cannot be the {} format: expected {}",
                                                  d1, d2, fname, expected));
    };
    if (d1 < 0 || d2 < 0) throw bad_dims("non-negative dims");
    std::int64_t n = 0, nc = 0;
    switch (p.format) {
        case DetectionFormat::boxes:
            if (d2 != 6) throw bad_dims("[N, 6] (x1, y1, x2, y2, score, class)");
            n = d1;
            break;
        case DetectionFormat::yolov8:
            if (d1 < 5) throw bad_dims("[4 + classes, N] with at least one class");
            n = d2;
            nc = d1 - 4;
            break;
        case DetectionFormat::yolov5:
            if (d2 < 6) throw bad_dims("[N, 5 + classes] with at least one class");
            n = d1;
            nc = d2 - 5;
            break;
    }
    if (n > 0 && !data) throw ModelError(model_name, "detection output has no data");

    auto check_finite = [&](std::int64_t row, std::initializer_list<float> values) {
        for (float v : values)
            if (!std::isfinite(v))
                throw ModelError(model_name, fmt::format("detection {} of a patch ({} format) "
                                                         "holds a non-finite value",
                                                         row, fname));
    };

    std::vector<Box> boxes;
    for (std::int64_t i = 0; i < n; ++i) {
        Box b{};
        if (p.format == DetectionFormat::boxes) {
            const float* r = data + i * 6;
            // Padding rows first: a model pads with zeros, and a NaN there is no detection.
            if (!(r[4] > 0.0f) && !std::isnan(r[4])) continue;
            check_finite(i, {r[0], r[1], r[2], r[3], r[4], r[5]});
            const float c = std::round(r[5]);
            if (c < 0 || c > static_cast<float>(std::numeric_limits<int>::max() / 2))
                throw ModelError(model_name, fmt::format("detection {} of a patch has class {}, "
                                                         "not a class index",
                                                         i, r[5]));
            b = Box{r[0], r[1], r[2], r[3], r[4], static_cast<int>(c)};
        } else {
            float cx, cy, w, h, obj = 1.0f;
            auto at = [&](std::int64_t k) {
                return p.format == DetectionFormat::yolov8 ? data[k * d2 + i] : data[i * d2 + k];
            };
            cx = at(0);
            cy = at(1);
            w = at(2);
            h = at(3);
            const std::int64_t first = p.format == DetectionFormat::yolov8 ? 4 : 5;
            if (p.format == DetectionFormat::yolov5) obj = at(4);
            std::int64_t best = 0;
            float best_p = at(first);
            for (std::int64_t k = 1; k < nc; ++k) {
                const float v = at(first + k);
                if (v > best_p) {
                    best_p = v;
                    best = k;
                }
            }
            const float score = obj * best_p;
            if (!(score > 0.0f) && !std::isnan(score)) continue;
            check_finite(i, {cx, cy, w, h, score});
            b = Box{cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, score, static_cast<int>(best)};
        }
        if (b.score < p.conf_threshold) continue;
        boxes.push_back(b);
    }
    return nms(std::move(boxes), p.iou_threshold, p.class_agnostic, p.max_detections);
}

// ---------------------------------------------------------------------------------------
// ObjectMerger

ObjectMerger::ObjectMerger(float iou_threshold, bool class_agnostic)
    : iou_threshold_(iou_threshold), class_agnostic_(class_agnostic) {}

bool ObjectMerger::cell_range(const Obj& o, double pad, std::int64_t r[4]) const {
    const double v[4] = {std::floor((o.x1 - pad) / cell_), std::floor((o.y1 - pad) / cell_),
                         std::floor((o.x2 + pad) / cell_), std::floor((o.y2 + pad) / cell_)};
    if (v[2] - v[0] >= kMaxCellsPerAxis || v[3] - v[1] >= kMaxCellsPerAxis) return false;
    if (std::abs(v[0]) > 1e9 || std::abs(v[1]) > 1e9) return false;
    for (int i = 0; i < 4; ++i) r[i] = static_cast<std::int64_t>(v[i]);
    return true;
}

std::uint32_t ObjectMerger::allocate(const Obj& o) {
    std::uint32_t id;
    if (!free_.empty()) {
        id = free_.back();
        free_.pop_back();
        objs_[id] = o;
    } else {
        id = static_cast<std::uint32_t>(objs_.size());
        objs_.push_back(o);
        stamp_.push_back(0);
    }
    objs_[id].alive = true;
    return id;
}

void ObjectMerger::insert(std::uint32_t id) {
    std::int64_t r[4];
    if (!cell_range(objs_[id], 0.0, r)) {
        big_.push_back(id);
    } else {
        for (std::int64_t cy = r[1]; cy <= r[3]; ++cy)
            for (std::int64_t cx = r[0]; cx <= r[2]; ++cx) grid_[cell_key(cx, cy)].push_back(id);
    }
    ++live_;
}

void ObjectMerger::erase(std::uint32_t id) {
    auto drop = [id](std::vector<std::uint32_t>& v) {
        auto it = std::find(v.begin(), v.end(), id);
        if (it != v.end()) {
            *it = v.back();
            v.pop_back();
        }
    };
    std::int64_t r[4];
    if (!cell_range(objs_[id], 0.0, r)) {
        drop(big_);
    } else {
        for (std::int64_t cy = r[1]; cy <= r[3]; ++cy)
            for (std::int64_t cx = r[0]; cx <= r[2]; ++cx) {
                auto it = grid_.find(cell_key(cx, cy));
                if (it == grid_.end()) continue;
                drop(it->second);
                if (it->second.empty()) grid_.erase(it);
            }
    }
    objs_[id].alive = false;
    free_.push_back(id);
    --live_;
}

template <class F>
void ObjectMerger::for_each_near(const Obj& o, double pad, F&& fn) {
    // Stamps make each object visited once although it sits in several cells.
    if (++query_ == 0) {
        std::fill(stamp_.begin(), stamp_.end(), 0u);
        query_ = 1;
    }
    auto visit = [&](std::uint32_t id) {
        if (stamp_[id] == query_) return;
        stamp_[id] = query_;
        fn(id);
    };
    for (std::uint32_t id : big_) visit(id);
    std::int64_t r[4];
    if (!cell_range(o, pad, r)) {
        // A huge object meets everything; bounded by the live objects, which flush keeps few.
        for (const auto& kv : grid_)
            for (std::uint32_t id : kv.second) visit(id);
        return;
    }
    for (std::int64_t cy = r[1]; cy <= r[3]; ++cy)
        for (std::int64_t cx = r[0]; cx <= r[2]; ++cx) {
            auto it = grid_.find(cell_key(cx, cy));
            if (it == grid_.end()) continue;
            for (std::uint32_t id : it->second) visit(id);
        }
}

bool ObjectMerger::same_object(const Obj& a, const Obj& b) const {
    if (!class_agnostic_ && a.cls != b.cls) return false;
    const double tol = std::max(a.tol, b.tol);
    const double inter = intersection(a, b);
    const double aa = area(a), ab = area(b);
    const double uni = aa + ab - inter;
    if (uni > 0 && inter / uni > iou_threshold_) return true;

    const bool a_cut = a.cut[0] || a.cut[1] || a.cut[2] || a.cut[3];
    const bool b_cut = b.cut[0] || b.cut[1] || b.cut[2] || b.cut[3];
    if (!a_cut && !b_cut) return false;

    // A cut piece mostly inside the other box, and within its extent along the axes it is
    // cut on: the other one sees past the border that cut it. Along a cut axis the other
    // box gets the touch slack, so a sliver (whose depth is of the order of the noise of
    // the edges) still counts as inside.
    auto inside = [tol](const Obj& cut, const Obj& other) {
        const bool x_cut = cut.cut[0] || cut.cut[2];
        const bool y_cut = cut.cut[1] || cut.cut[3];
        if (!x_cut && !y_cut) return false;
        const double px = x_cut ? tol : 0.0, py = y_cut ? tol : 0.0;
        if (x_cut && (cut.x1 < other.x1 - px || cut.x2 > other.x2 + px)) return false;
        if (y_cut && (cut.y1 < other.y1 - py || cut.y2 > other.y2 + py)) return false;
        const double w = std::min(cut.x2, other.x2 + px) - std::max(cut.x1, other.x1 - px);
        const double h = std::min(cut.y2, other.y2 + py) - std::max(cut.y1, other.y1 - py);
        const double a = area(cut);
        return w > 0 && h > 0 && a > 0 && w * h / a > 0.5;
    };
    if (inside(a, b) || inside(b, a)) return true;
    if (!a_cut || !b_cut) return false;

    // Pieces that face each other across cut borders and touch or overlap there.
    auto overlap_share = [](double lo1, double hi1, double lo2, double hi2) {
        const double ov = std::min(hi1, hi2) - std::max(lo1, lo2);
        const double ext = std::min(hi1 - lo1, hi2 - lo2);
        return ext > 0 ? ov / ext : 0.0;
    };
    // `lo` is cut on its far side (right/bottom), `hi` on its near side (left/top).
    auto facing_x = [&](const Obj& lo, const Obj& hi) {
        return lo.cut[2] && hi.cut[0] && hi.x1 <= lo.x2 + tol && lo.x1 <= hi.x1 + tol &&
               lo.x2 <= hi.x2 + tol && overlap_share(lo.y1, lo.y2, hi.y1, hi.y2) >= 0.5;
    };
    auto facing_y = [&](const Obj& lo, const Obj& hi) {
        return lo.cut[3] && hi.cut[1] && hi.y1 <= lo.y2 + tol && lo.y1 <= hi.y1 + tol &&
               lo.y2 <= hi.y2 + tol && overlap_share(lo.x1, lo.x2, hi.x1, hi.x2) >= 0.5;
    };
    return facing_x(a, b) || facing_x(b, a) || facing_y(a, b) || facing_y(b, a);
}

ObjectMerger::Obj ObjectMerger::combine(const Obj& a, const Obj& b) {
    const bool a_seen_whole = !(a.cut[0] || a.cut[1] || a.cut[2] || a.cut[3] || a.assembled);
    const bool b_seen_whole = !(b.cut[0] || b.cut[1] || b.cut[2] || b.cut[3] || b.assembled);
    if (a_seen_whole && b_seen_whole) return a.score >= b.score ? a : b;
    if (a_seen_whole || b_seen_whole) return a_seen_whole ? a : b;

    // Two pieces of one object: each is a clipped view of it, so their union is still
    // within the object. A side is cut only if the piece reaching furthest there is cut
    // (on a tie, only if both are: one of them saw the object end there).
    Obj u = a;
    u.assembled = true;
    u.score = std::max(a.score, b.score);
    u.tol = std::max(a.tol, b.tol);
    const double eps = 1e-6;
    auto side = [&](double va, double vb, bool ca, bool cb, bool want_min, double& out, bool& cut) {
        if (std::abs(va - vb) <= eps) {
            out = want_min ? std::min(va, vb) : std::max(va, vb);
            cut = ca && cb;
        } else if ((va < vb) == want_min) {
            out = va;
            cut = ca;
        } else {
            out = vb;
            cut = cb;
        }
    };
    side(a.x1, b.x1, a.cut[0], b.cut[0], true, u.x1, u.cut[0]);
    side(a.y1, b.y1, a.cut[1], b.cut[1], true, u.y1, u.cut[1]);
    side(a.x2, b.x2, a.cut[2], b.cut[2], false, u.x2, u.cut[2]);
    side(a.y2, b.y2, a.cut[3], b.cut[3], false, u.y2, u.cut[3]);
    return u;
}

void ObjectMerger::add_patch(const PatchPlacement& patch, const std::vector<Box>& boxes) {
    const double s = patch.scale;
    if (cell_ <= 0) {
        const double extent = std::max(patch.width, patch.height) * s;
        cell_ = std::isfinite(extent) && extent >= 1.0 ? extent : 256.0;
    }
    // One patch pixel of slack for "touches the border": the model's box edges are whole
    // pixels, and anti-aliased rims may end a pixel short.
    constexpr float kCutSlack = 1.0f;
    const double tol = 2.0 + s;
    for (const Box& b : boxes) {
        if (!(b.x2 > b.x1) || !(b.y2 > b.y1) || !std::isfinite(b.x1) || !std::isfinite(b.y1) ||
            !std::isfinite(b.x2) || !std::isfinite(b.y2))
            continue;
        Obj o{};
        o.x1 = patch.ox + b.x1 * s;
        o.y1 = patch.oy + b.y1 * s;
        o.x2 = patch.ox + b.x2 * s;
        o.y2 = patch.oy + b.y2 * s;
        o.score = b.score;
        o.cls = b.cls;
        o.cut[0] = !patch.edge_left && b.x1 <= kCutSlack;
        o.cut[1] = !patch.edge_top && b.y1 <= kCutSlack;
        o.cut[2] = !patch.edge_right && b.x2 >= static_cast<float>(patch.width) - kCutSlack;
        o.cut[3] = !patch.edge_bottom && b.y2 >= static_cast<float>(patch.height) - kCutSlack;
        o.tol = tol;
        o.assembled = false;

        // Absorb one matching live object at a time, the most overlapping first, and look
        // again: a union can reach pieces the original box did not (the quarters at a patch
        // corner), while a box that lost to a live object is that object again, which
        // already differs from every other live one. Combining all first-round matches at
        // once could instead let two distinct live objects meet through the new box.
        for (;;) {
            std::uint32_t best = 0;
            double best_share = -1;
            for_each_near(o, o.tol, [&](std::uint32_t id) {
                const Obj& l = objs_[id];
                if (!same_object(o, l)) return;
                const double m = std::min(area(o), area(l));
                const double share = m > 0 ? intersection(o, l) / m : 0.0;
                if (share > best_share) {
                    best_share = share;
                    best = id;
                }
            });
            if (best_share < 0) break;
            o = combine(o, objs_[best]);
            erase(best);
        }
        insert(allocate(o));
    }
}

std::vector<SlideObject> ObjectMerger::take(double y, bool all) {
    std::vector<std::uint32_t> ids;
    // A scan of the live objects: flushing keeps them to about one band of patches.
    for (std::uint32_t id = 0; id < objs_.size(); ++id) {
        const Obj& o = objs_[id];
        if (!o.alive) continue;
        if (!all && !(o.y2 < y && !(o.cut[3] && o.y2 + o.tol >= y))) continue;
        ids.push_back(id);
    }
    std::vector<SlideObject> out;
    out.reserve(ids.size());
    for (std::uint32_t id : ids) {
        const Obj& o = objs_[id];
        out.push_back(SlideObject{o.x1, o.y1, o.x2, o.y2, o.score, o.cls});
        erase(id);
    }
    std::sort(out.begin(), out.end(), [](const SlideObject& a, const SlideObject& b) {
        return a.y1 != b.y1 ? a.y1 < b.y1 : a.x1 < b.x1;
    });
    return out;
}

std::vector<SlideObject> ObjectMerger::flush_above(double y) { return take(y, false); }

std::vector<SlideObject> ObjectMerger::finish() { return take(0, true); }

}  // namespace flowinfer
