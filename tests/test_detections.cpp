#define BOOST_TEST_MODULE test_detections
#include <boost/test/unit_test.hpp>

#include "stages/detections.hpp"
#include "stages/model.hpp"
#include "stages/object_writer.hpp"
#include "tests/test_support.hpp"

#include <flowinfer/demo.hpp>
#include <flowinfer/errors.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

using namespace flowinfer;

namespace {

// ------------------------------------------------------------------------------------------
// Independent references

double ref_iou(const Box& a, const Box& b) {
    const double w = std::min(a.x2, b.x2) - std::max(a.x1, b.x1);
    const double h = std::min(a.y2, b.y2) - std::max(a.y1, b.y1);
    const double inter = (w > 0 && h > 0) ? w * h : 0.0;
    const double ua = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter;
    return ua > 0 ? inter / ua : 0.0;
}

// Textbook all-pairs greedy NMS, to check the spatially indexed one against.
std::vector<Box> ref_nms(std::vector<Box> boxes, float thr, bool agnostic, int max_det) {
    std::stable_sort(boxes.begin(), boxes.end(), [](const Box& a, const Box& b) { return a.score > b.score; });
    std::vector<Box> kept;
    for (const Box& b : boxes) {
        if (max_det > 0 && static_cast<int>(kept.size()) >= max_det) break;
        bool ok = true;
        for (const Box& k : kept)
            if ((agnostic || k.cls == b.cls) && ref_iou(k, b) > thr) ok = false;
        if (ok) kept.push_back(b);
    }
    return kept;
}

void check_box(const Box& b, float x1, float y1, float x2, float y2, float score, int cls) {
    BOOST_TEST(b.x1 == x1, boost::test_tools::tolerance(1e-5f));
    BOOST_TEST(b.y1 == y1, boost::test_tools::tolerance(1e-5f));
    BOOST_TEST(b.x2 == x2, boost::test_tools::tolerance(1e-5f));
    BOOST_TEST(b.y2 == y2, boost::test_tools::tolerance(1e-5f));
    BOOST_TEST(b.score == score, boost::test_tools::tolerance(1e-5f));
    BOOST_TEST(b.cls == cls);
}

// ------------------------------------------------------------------------------------------
// Slide simulation: discs with exact boxes, tiled like plan does (shift inward at the end).

std::vector<std::int64_t> patch_starts(std::int64_t extent, int P, int overlap) {
    if (extent <= P) return {0};
    std::vector<std::int64_t> v;
    for (std::int64_t x = 0; x + P < extent; x += P - overlap) v.push_back(x);
    v.push_back(extent - P);
    return v;
}

struct SimDisc {
    double x, y, r;
    int cls;
};

// Discs in a hash grid, so placement and look-ups never compare all pairs.
class DiscField {
public:
    explicit DiscField(double cell = 64) : cell_(cell) {}

    bool try_add(const SimDisc& d, double min_gap) {
        bool ok = true;
        near(d.x, d.y, d.r + min_gap + 32, [&](std::size_t i) {
            const SimDisc& o = discs[i];
            if (std::hypot(o.x - d.x, o.y - d.y) < o.r + d.r + min_gap) ok = false;
        });
        if (!ok) return false;
        grid_[key(cell_of(d.x), cell_of(d.y))].push_back(discs.size());
        discs.push_back(d);
        return true;
    }

    template <class F>
    void near(double x, double y, double reach, F&& fn) const {
        for (std::int64_t cy = cell_of(y - reach); cy <= cell_of(y + reach); ++cy)
            for (std::int64_t cx = cell_of(x - reach); cx <= cell_of(x + reach); ++cx) {
                auto it = grid_.find(key(cx, cy));
                if (it == grid_.end()) continue;
                for (std::size_t i : it->second) fn(i);
            }
    }

    // Discs whose box meets [x0, x1) x [y0, y1).
    template <class F>
    void in_rect(double x0, double y0, double x1, double y1, double max_r, F&& fn) const {
        for (std::int64_t cy = cell_of(y0 - max_r); cy <= cell_of(y1 + max_r); ++cy)
            for (std::int64_t cx = cell_of(x0 - max_r); cx <= cell_of(x1 + max_r); ++cx) {
                auto it = grid_.find(key(cx, cy));
                if (it == grid_.end()) continue;
                for (std::size_t i : it->second) {
                    const SimDisc& d = discs[i];
                    if (d.x + d.r > x0 && d.x - d.r < x1 && d.y + d.r > y0 && d.y - d.r < y1) fn(i);
                }
            }
    }

    std::vector<SimDisc> discs;

private:
    std::int64_t cell_of(double v) const { return static_cast<std::int64_t>(std::floor(v / cell_)); }
    static std::uint64_t key(std::int64_t a, std::int64_t b) {
        return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
    }
    double cell_;
    std::unordered_map<std::uint64_t, std::vector<std::size_t>> grid_;
};

// Discs centred on interior patch borders and corners of the tiling (with small offsets, so
// the pieces are unequal), then random ones; all inside the slide.
void place_discs(DiscField& f, std::int64_t W, std::int64_t H, int P, int overlap, double r_lo,
                 double r_hi, double min_gap, int random_tries, std::mt19937& rng, int classes) {
    std::uniform_real_distribution<double> U(0, 1);
    auto radius = [&] { return r_lo + (r_hi - r_lo) * U(rng); };
    auto inside = [&](const SimDisc& d) {
        return d.x - d.r >= 2 && d.y - d.r >= 2 && d.x + d.r <= W - 2 && d.y + d.r <= H - 2;
    };
    auto lines = [&](std::int64_t extent) {
        std::set<double> v;
        const auto s = patch_starts(extent, P, overlap);
        for (std::size_t i = 0; i < s.size(); ++i) {
            if (i > 0) v.insert(static_cast<double>(s[i]));
            if (i + 1 < s.size()) v.insert(static_cast<double>(s[i] + P));
        }
        return std::vector<double>(v.begin(), v.end());
    };
    const auto vx = lines(W), vy = lines(H);
    int cls = 0;
    for (double x : vx)
        for (double y : vy) {
            const double r = radius();
            SimDisc d{x + (U(rng) - 0.5) * r, y + (U(rng) - 0.5) * r, r, cls++ % classes};
            if (inside(d)) f.try_add(d, min_gap);
        }
    for (double x : vx)
        for (int k = 0; k < 3; ++k) {
            const double r = radius();
            SimDisc d{x + (U(rng) - 0.5) * 1.6 * r, U(rng) * static_cast<double>(H), r, cls++ % classes};
            if (inside(d)) f.try_add(d, min_gap);
        }
    for (double y : vy)
        for (int k = 0; k < 3; ++k) {
            const double r = radius();
            SimDisc d{U(rng) * static_cast<double>(W), y + (U(rng) - 0.5) * 1.6 * r, r, cls++ % classes};
            if (inside(d)) f.try_add(d, min_gap);
        }
    for (int k = 0; k < random_tries; ++k) {
        const double r = radius();
        SimDisc d{U(rng) * static_cast<double>(W), U(rng) * static_cast<double>(H), r, cls++ % classes};
        if (inside(d)) f.try_add(d, min_gap);
    }
}

struct Patch {
    std::int64_t x, y;
    PatchPlacement place;
};

std::vector<Patch> tile_slide(std::int64_t W, std::int64_t H, int P, int overlap) {
    std::vector<Patch> out;
    for (std::int64_t y : patch_starts(H, P, overlap))
        for (std::int64_t x : patch_starts(W, P, overlap)) {
            Patch p{x, y, {}};
            p.place.ox = static_cast<double>(x);
            p.place.oy = static_cast<double>(y);
            p.place.scale = 1;
            p.place.width = p.place.height = P;
            p.place.edge_left = x == 0;
            p.place.edge_top = y == 0;
            p.place.edge_right = x + P >= W;
            p.place.edge_bottom = y + P >= H;
            out.push_back(p);
        }
    return out;
}

struct FeedStats {
    std::vector<SlideObject> objects;
    std::size_t max_live = 0;
    std::size_t patches = 0;
};

// Adds patches two patch rows at a time in a shuffled order, calling flush_above with the
// top of the highest patch not yet added after every patch (the strongest promise the
// contract allows).
template <class Detect>
FeedStats feed(ObjectMerger& merger, const std::vector<Patch>& patches, Detect&& detect, std::mt19937& rng) {
    std::map<std::int64_t, std::vector<const Patch*>> rows;
    for (const Patch& p : patches) rows[p.y].push_back(&p);
    std::map<std::int64_t, std::size_t> remaining;
    for (auto& kv : rows) remaining[kv.first] = kv.second.size();
    FeedStats st;
    auto it = rows.begin();
    while (it != rows.end()) {
        std::vector<const Patch*> section;
        for (int k = 0; k < 2 && it != rows.end(); ++k, ++it)
            section.insert(section.end(), it->second.begin(), it->second.end());
        std::shuffle(section.begin(), section.end(), rng);
        for (const Patch* p : section) {
            merger.add_patch(p->place, detect(*p));
            ++st.patches;
            st.max_live = std::max(st.max_live, merger.live());
            if (--remaining[p->y] == 0) remaining.erase(p->y);
            if (!remaining.empty()) {
                auto flushed = merger.flush_above(static_cast<double>(remaining.begin()->first));
                st.objects.insert(st.objects.end(), flushed.begin(), flushed.end());
            }
        }
    }
    auto rest = merger.finish();
    st.objects.insert(st.objects.end(), rest.begin(), rest.end());
    BOOST_TEST(merger.live() == 0u);
    return st;
}

struct MatchReport {
    std::size_t unmatched_objects = 0;
    std::size_t missed = 0, duplicated = 0, wrong_class = 0;
    double max_centre_error = 0;
};

// Each object to the disc nearest its centre (within `tol`); every disc must get exactly one.
MatchReport match(const DiscField& f, const std::vector<SlideObject>& objects, double tol, bool check_class) {
    MatchReport rep;
    std::vector<int> hits(f.discs.size(), 0);
    for (const SlideObject& o : objects) {
        const double cx = (o.x1 + o.x2) / 2, cy = (o.y1 + o.y2) / 2;
        double best = 1e300;
        std::size_t best_i = 0;
        f.near(cx, cy, tol + 64, [&](std::size_t i) {
            const double d = std::hypot(f.discs[i].x - cx, f.discs[i].y - cy);
            if (d < best) {
                best = d;
                best_i = i;
            }
        });
        if (best > tol) {
            ++rep.unmatched_objects;
            if (rep.unmatched_objects <= 5)
                BOOST_TEST_MESSAGE("unmatched object (" << o.x1 << ", " << o.y1 << ")-(" << o.x2 << ", " << o.y2
                                   << ") cls " << o.cls << "; nearest disc (" << f.discs[best_i].x << ", "
                                   << f.discs[best_i].y << ") r " << f.discs[best_i].r << " at " << best);
            continue;
        }
        ++hits[best_i];
        rep.max_centre_error = std::max(rep.max_centre_error, best);
        if (check_class && f.discs[best_i].cls != o.cls) ++rep.wrong_class;
    }
    for (int h : hits) {
        if (h == 0) ++rep.missed;
        if (h > 1) ++rep.duplicated;
    }
    return rep;
}

// What a good detector reports for exact discs: the visible part of each disc's box, with
// sub-pixel noise on the edges the patch did not cut; slivers under 2 px are not seen.
std::vector<Box> simulated_detections(const DiscField& f, const Patch& p, int P, double max_r) {
    std::vector<Box> out;
    const double x0 = static_cast<double>(p.x), y0 = static_cast<double>(p.y);
    f.in_rect(x0, y0, x0 + P, y0 + P, max_r, [&](std::size_t i) {
        const SimDisc& d = f.discs[i];
        std::mt19937 noise(static_cast<unsigned>(i * 7919 + static_cast<std::size_t>(p.x) * 31 +
                                                 static_cast<std::size_t>(p.y) * 1000003));
        std::uniform_real_distribution<double> J(-0.6, 0.6);
        double b[4] = {d.x - d.r - x0, d.y - d.r - y0, d.x + d.r - x0, d.y + d.r - y0};
        for (double& v : b) v += J(noise);
        b[0] = std::max(0.0, b[0]);
        b[1] = std::max(0.0, b[1]);
        b[2] = std::min<double>(P, b[2]);
        b[3] = std::min<double>(P, b[3]);
        if (b[2] - b[0] < 2 || b[3] - b[1] < 2) return;
        const float score = 0.5f + 0.5f * static_cast<float>(std::uniform_real_distribution<double>(0, 1)(noise));
        out.push_back(Box{static_cast<float>(b[0]), static_cast<float>(b[1]), static_cast<float>(b[2]),
                          static_cast<float>(b[3]), score, d.cls});
    });
    return out;
}

// ------------------------------------------------------------------------------------------
// Pixels: an independent rendering of what write_disc_slide draws, and the model runner.

// Coverage of pixel (x, y) by a disc: the same one-pixel rim ramp the slide uses.
double coverage(double cx, double cy, double r, std::int64_t x, std::int64_t y) {
    const double dist = std::hypot(x + 0.5 - cx, y + 0.5 - cy);
    return std::clamp(r - dist + 0.5, 0.0, 1.0);
}

std::array<std::uint8_t, 3> disc_pixel(const std::vector<Disc>& discs, std::int64_t x, std::int64_t y) {
    double a = 0;
    for (const Disc& d : discs) a = std::max(a, coverage(d.x, d.y, d.r, x, y));
    const double dark[3] = {60, 30, 110};
    std::array<std::uint8_t, 3> rgb{};
    for (int c = 0; c < 3; ++c) rgb[c] = static_cast<std::uint8_t>(std::lround(255 + (dark[c] - 255) * a));
    return rgb;
}

// The box the detector should give for a disc seen by a patch: the bounding box of the
// patch pixels the disc darkens past half (the detector's dark mask), in patch pixels.
bool visible_box(const Disc& d, std::int64_t ox, std::int64_t oy, int P, double out[4]) {
    std::int64_t bx1 = P, by1 = P, bx2 = -1, by2 = -1;
    for (std::int64_t y = 0; y < P; ++y)
        for (std::int64_t x = 0; x < P; ++x)
            if (coverage(d.x, d.y, d.r, ox + x, oy + y) > 0.5) {
                bx1 = std::min(bx1, x);
                by1 = std::min(by1, y);
                bx2 = std::max(bx2, x);
                by2 = std::max(by2, y);
            }
    if (bx2 < 0) return false;
    out[0] = static_cast<double>(bx1);
    out[1] = static_cast<double>(by1);
    out[2] = static_cast<double>(bx2 + 1);
    out[3] = static_cast<double>(by2 + 1);
    return true;
}

// The demo models through flowinfer's own runner (fp32 on CPU, no activation: the
// detector's boxes and the classifier's scores come back as the model wrote them).
class Runner {
public:
    Runner(const std::string& path, Task task) : model_(config(path, task), "cpu", 2, 1) {}
    // input [n, 3, h, w]; returns the output and its shape.
    std::vector<float> run(const std::vector<float>& input, int n, int h, int w, std::vector<std::int64_t>& shape) {
        ModelOutput out = model_.run(input.data(), n, h, w, 0);
        shape = out.shape;
        return std::move(out.data);
    }

private:
    static ModelConfig config(const std::string& path, Task task) {
        ModelConfig cfg;
        cfg.name = "demo";
        cfg.path = path;
        cfg.task = task;
        cfg.mean = {0, 0, 0};
        cfg.std = {1, 1, 1};
        cfg.activation = Activation::none;
        return cfg;
    }
    Model model_;
};

// Patch (ox, oy, P) of an RGB image as [3, P, P] floats in [0, 1] (mean 0, std 1), appended.
void append_patch(std::vector<float>& out, const fit::Image& img, std::int64_t ox, std::int64_t oy, int P) {
    const std::size_t base = out.size();
    out.resize(base + 3 * static_cast<std::size_t>(P) * P);
    for (int c = 0; c < 3; ++c)
        for (int y = 0; y < P; ++y)
            for (int x = 0; x < P; ++x)
                out[base + (static_cast<std::size_t>(c) * P + y) * P + x] = img.at(ox + x, oy + y)[c] / 255.0f;
}

std::vector<std::vector<Box>> run_detector(Runner& model, const fit::Image& img,
                                           const std::vector<Patch>& patches, int P, const DetectionParams& dp) {
    std::vector<std::vector<Box>> out;
    const std::size_t batch = 8;
    for (std::size_t i = 0; i < patches.size(); i += batch) {
        const std::size_t n = std::min(batch, patches.size() - i);
        std::vector<float> in;
        for (std::size_t k = 0; k < n; ++k) append_patch(in, img, patches[i + k].x, patches[i + k].y, P);
        std::vector<std::int64_t> shape;
        auto y = model.run(in, static_cast<int>(n), P, P, shape);
        BOOST_REQUIRE(shape.size() == 3u);
        BOOST_REQUIRE(shape[0] == static_cast<std::int64_t>(n));
        BOOST_REQUIRE(shape[2] == 6);
        for (std::size_t k = 0; k < n; ++k)
            out.push_back(decode_patch("blob", y.data() + k * shape[1] * 6, shape[1], 6, dp));
    }
    return out;
}

std::size_t count_of(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (std::size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + what.size())) ++n;
    return n;
}

}  // namespace

// ==========================================================================================
BOOST_AUTO_TEST_SUITE(decode)

BOOST_AUTO_TEST_CASE(boxes_format_skips_padding_and_low_scores) {
    const std::vector<float> data = {
        10, 20, 30, 40, 0.9f, 1,      // kept
        0, 0, 0, 0, 0, 0,             // padding
        100, 100, 120, 130, 0.3f, 0,  // kept
        50, 50, 60, 60, 0.1f, 2,      // under conf 0.25
        0, 0, 0, 0, 0, 0,             // padding
    };
    DetectionParams p;
    auto b = decode_patch("m", data.data(), 5, 6, p);
    BOOST_REQUIRE(b.size() == 2u);
    check_box(b[0], 10, 20, 30, 40, 0.9f, 1);
    check_box(b[1], 100, 100, 120, 130, 0.3f, 0);

    p.conf_threshold = 0.05f;
    BOOST_TEST(decode_patch("m", data.data(), 5, 6, p).size() == 3u);
    p.conf_threshold = 0.0f;  // padding stays padding even with no threshold
    BOOST_TEST(decode_patch("m", data.data(), 5, 6, p).size() == 3u);
    BOOST_TEST(decode_patch("m", nullptr, 0, 6, p).empty());
}

BOOST_AUTO_TEST_CASE(yolov8_channel_major) {
    // [4 + nc, N] with nc = 3, N = 4; column i is one anchor.
    const int nc = 3, N = 4;
    const float anchors[N][4 + nc] = {
        {50, 60, 20, 10, 0.1f, 0.8f, 0.3f},   // -> (40, 55, 60, 65), class 1, 0.8
        {200, 200, 30, 30, 0.2f, 0.1f, 0.24f}, // best 0.24 < 0.25: dropped
        {51, 60, 20, 10, 0.0f, 0.7f, 0.0f},   // same class as anchor 0, IoU 0.9: suppressed
        {50, 61, 20, 12, 0.1f, 0.2f, 0.6f},   // class 2 on top of anchor 0: kept per class
    };
    std::vector<float> data(static_cast<std::size_t>((4 + nc) * N));
    for (int i = 0; i < N; ++i)
        for (int c = 0; c < 4 + nc; ++c) data[static_cast<std::size_t>(c * N + i)] = anchors[i][c];
    DetectionParams p;
    p.format = DetectionFormat::yolov8;
    auto b = decode_patch("m", data.data(), 4 + nc, N, p);
    BOOST_REQUIRE(b.size() == 2u);
    check_box(b[0], 40, 55, 60, 65, 0.8f, 1);
    check_box(b[1], 40, 55, 60, 67, 0.6f, 2);

    p.class_agnostic = true;  // anchor 3: IoU with anchor 0 = 200/240 > 0.45
    b = decode_patch("m", data.data(), 4 + nc, N, p);
    BOOST_REQUIRE(b.size() == 1u);
    check_box(b[0], 40, 55, 60, 65, 0.8f, 1);

    p.class_agnostic = false;
    p.iou_threshold = 0.95f;  // anchor 2 (IoU 0.9 with anchor 0) survives now
    b = decode_patch("m", data.data(), 4 + nc, N, p);
    BOOST_REQUIRE(b.size() == 3u);
    check_box(b[1], 41, 55, 61, 65, 0.7f, 1);
}

BOOST_AUTO_TEST_CASE(yolov5_objectness_times_class) {
    // [N, 5 + nc], nc = 2.
    const std::vector<float> data = {
        100, 50, 40, 20, 0.5f, 0.2f, 0.9f,  // 0.45, class 1, (80, 40, 120, 60)
        10, 10, 4, 4, 0.9f, 0.25f, 0.1f,    // 0.225 < 0.25: dropped
        30, 30, 10, 10, 0.8f, 0.5f, 0.4f,   // 0.4, class 0, (25, 25, 35, 35)
    };
    DetectionParams p;
    p.format = DetectionFormat::yolov5;
    auto b = decode_patch("m", data.data(), 3, 7, p);
    BOOST_REQUIRE(b.size() == 2u);
    check_box(b[0], 80, 40, 120, 60, 0.45f, 1);
    check_box(b[1], 25, 25, 35, 35, 0.4f, 0);
    p.conf_threshold = 0.2f;
    b = decode_patch("m", data.data(), 3, 7, p);
    BOOST_REQUIRE(b.size() == 3u);
    check_box(b[2], 8, 8, 12, 12, 0.225f, 0);
}

BOOST_AUTO_TEST_CASE(nms_per_class_agnostic_and_max_detections) {
    const std::vector<Box> boxes = {
        {0, 0, 10, 10, 0.9f, 0},
        {1, 0, 11, 10, 0.8f, 0},  // IoU 90/110 with the first, same class
        {0, 1, 10, 11, 0.7f, 1},  // IoU 90/110 with the first, other class
        {50, 50, 60, 60, 0.6f, 0},
    };
    auto k = nms(boxes, 0.45f, false, 300);
    BOOST_REQUIRE(k.size() == 3u);
    BOOST_TEST(k[0].score == 0.9f);
    BOOST_TEST(k[1].score == 0.7f);
    BOOST_TEST(k[2].score == 0.6f);
    k = nms(boxes, 0.45f, true, 300);
    BOOST_REQUIRE(k.size() == 2u);
    BOOST_TEST(k[1].score == 0.6f);
    k = nms(boxes, 0.45f, false, 2);
    BOOST_REQUIRE(k.size() == 2u);
    BOOST_TEST(k[1].score == 0.7f);

    // max_detections in decode: 10 separate boxes, the best 3 in score order.
    std::vector<float> rows;
    for (int i = 0; i < 10; ++i) {
        const float x = 30.0f * static_cast<float>(i);
        const float s = 0.3f + 0.05f * static_cast<float>((i * 7) % 10);
        rows.insert(rows.end(), {x, 0, x + 20, 20, s, 0});
    }
    DetectionParams p;
    p.max_detections = 3;
    auto d = decode_patch("m", rows.data(), 10, 6, p);
    BOOST_REQUIRE(d.size() == 3u);
    BOOST_TEST(d[0].score == 0.75f, boost::test_tools::tolerance(1e-6f));
    BOOST_TEST(d[1].score == 0.70f, boost::test_tools::tolerance(1e-6f));
    BOOST_TEST(d[2].score == 0.65f, boost::test_tools::tolerance(1e-6f));
}

BOOST_AUTO_TEST_CASE(nms_matches_all_pairs_reference) {
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> pos(0, 600), size(4, 60), score(0, 1);
    for (int round = 0; round < 4; ++round) {
        std::vector<Box> boxes;
        for (int i = 0; i < 2000; ++i) {
            const float x = pos(rng), y = pos(rng), w = size(rng) * (i % 97 == 0 ? 8.0f : 1.0f), h = size(rng);
            boxes.push_back({x, y, x + w, y + h, score(rng), i % 3});
        }
        for (bool agnostic : {false, true}) {
            const int max_det = round == 3 ? 50 : 0;
            auto got = nms(boxes, 0.3f, agnostic, max_det);
            auto want = ref_nms(boxes, 0.3f, agnostic, max_det);
            BOOST_REQUIRE(got.size() == want.size());
            for (std::size_t i = 0; i < got.size(); ++i) {
                BOOST_TEST(got[i].x1 == want[i].x1);
                BOOST_TEST(got[i].score == want[i].score);
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(malformed_outputs_are_model_errors) {
    const std::vector<float> data(64, 0.5f);
    auto expect = [&](DetectionFormat f, std::int64_t d1, std::int64_t d2) {
        DetectionParams p;
        p.format = f;
        try {
            decode_patch("det", data.data(), d1, d2, p);
            BOOST_ERROR("no ModelError for [" << d1 << ", " << d2 << "]");
        } catch (const ModelError& e) {
            BOOST_TEST(e.model() == "det");
            BOOST_TEST(std::string(e.what()).find("cannot be the") != std::string::npos);
        }
    };
    expect(DetectionFormat::yolov8, 4, 10);
    expect(DetectionFormat::yolov8, 0, 10);
    expect(DetectionFormat::yolov5, 10, 5);
    expect(DetectionFormat::boxes, 10, 5);
    expect(DetectionFormat::boxes, 7, 7);
    expect(DetectionFormat::boxes, -1, 6);

    std::vector<float> nan_row = {0, 0, 10, 10, 0.9f, std::nanf("")};
    BOOST_CHECK_THROW(decode_patch("det", nan_row.data(), 1, 6, DetectionParams{}), ModelError);
    std::vector<float> neg_cls = {0, 0, 10, 10, 0.9f, -1};
    BOOST_CHECK_THROW(decode_patch("det", neg_cls.data(), 1, 6, DetectionParams{}), ModelError);
}

BOOST_AUTO_TEST_SUITE_END()

// ==========================================================================================
BOOST_AUTO_TEST_SUITE(merger)

PatchPlacement placement(double ox, double oy, int P, bool l, bool t, bool r, bool b) {
    PatchPlacement p;
    p.ox = ox;
    p.oy = oy;
    p.width = p.height = P;
    p.edge_left = l;
    p.edge_top = t;
    p.edge_right = r;
    p.edge_bottom = b;
    return p;
}

BOOST_AUTO_TEST_CASE(halves_at_zero_overlap_become_their_union) {
    // Disc box (240, 100)-(260, 120) on the border x = 256 of two 256 patches.
    ObjectMerger m;
    m.add_patch(placement(0, 0, 256, true, true, false, true), {{240, 100, 256, 120, 0.7f, 0}});
    m.add_patch(placement(256, 0, 256, false, true, true, true), {{0, 101, 4, 119, 0.6f, 0}});
    auto o = m.finish();
    BOOST_REQUIRE(o.size() == 1u);
    BOOST_TEST(o[0].x1 == 240.0);
    BOOST_TEST(o[0].x2 == 260.0);
    BOOST_TEST(o[0].y1 == 100.0);
    BOOST_TEST(o[0].y2 == 120.0);
    BOOST_TEST(o[0].score == 0.7f);

    // Different classes are different objects.
    ObjectMerger m2;
    m2.add_patch(placement(0, 0, 256, true, true, false, true), {{240, 100, 256, 120, 0.7f, 0}});
    m2.add_patch(placement(256, 0, 256, false, true, true, true), {{0, 101, 4, 119, 0.6f, 1}});
    BOOST_TEST(m2.finish().size() == 2u);

    // Whole boxes side by side across the border are not joined.
    ObjectMerger m3;
    m3.add_patch(placement(0, 0, 256, true, true, false, true), {{230, 100, 250, 120, 0.7f, 0}});
    m3.add_patch(placement(256, 0, 256, false, true, true, true), {{6, 100, 26, 120, 0.6f, 0}});
    BOOST_TEST(m3.finish().size() == 2u);
}

BOOST_AUTO_TEST_CASE(quarters_at_a_corner_in_every_order) {
    // Disc box (246, 240)-(262, 258) around the corner (256, 256) of four 256 patches.
    struct Q {
        PatchPlacement p;
        Box b;
    };
    const std::vector<Q> q = {
        {placement(0, 0, 256, true, true, false, false), {246, 240, 256, 256, 0.9f, 0}},
        {placement(256, 0, 256, false, true, true, false), {0, 240.5f, 6, 256, 0.5f, 0}},
        {placement(0, 256, 256, true, false, false, true), {246.3f, 0, 256, 2, 0.4f, 0}},
        {placement(256, 256, 256, false, false, true, true), {0, 0, 6, 2, 0.3f, 0}},
    };
    std::array<int, 4> order = {0, 1, 2, 3};
    int orders = 0;
    do {
        ObjectMerger m;
        for (int i : order) m.add_patch(q[static_cast<std::size_t>(i)].p, {q[static_cast<std::size_t>(i)].b});
        auto o = m.finish();
        BOOST_REQUIRE(o.size() == 1u);
        BOOST_TEST(o[0].x1 == 246.0);
        BOOST_TEST(o[0].y1 == 240.0);
        BOOST_TEST(o[0].x2 == 262.0);
        BOOST_TEST(o[0].y2 == 258.0);
        BOOST_TEST(o[0].score == 0.9f);
        ++orders;
    } while (std::next_permutation(order.begin(), order.end()));
    BOOST_TEST(orders == 24);
}

BOOST_AUTO_TEST_CASE(whole_beats_cut_and_score_breaks_ties) {
    // Overlap 128: the disc (100..116) is whole in patch A (x 0..256) and cut in patch B,
    // which starts at x = 110 and sees only 110..116.
    ObjectMerger m;
    m.add_patch(placement(110, 0, 256, false, true, true, true), {{0, 50, 6, 66, 0.99f, 0}});
    m.add_patch(placement(0, 0, 256, true, true, false, true), {{100, 50, 116, 66, 0.6f, 0}});
    auto o = m.finish();
    BOOST_REQUIRE(o.size() == 1u);
    BOOST_TEST(o[0].x1 == 100.0);
    BOOST_TEST(o[0].x2 == 116.0);
    BOOST_TEST(o[0].score == 0.6f);

    ObjectMerger n;  // two whole copies: the higher score wins, in either order
    n.add_patch(placement(0, 0, 256, true, true, false, true), {{100, 50, 116, 66, 0.6f, 0}});
    n.add_patch(placement(50, 0, 256, false, true, true, true), {{50.5f, 50, 66.5f, 66, 0.8f, 0}});
    o = n.finish();
    BOOST_REQUIRE(o.size() == 1u);
    BOOST_TEST(o[0].x1 == 100.5);
    BOOST_TEST(o[0].score == 0.8f);
}

BOOST_AUTO_TEST_CASE(flush_above_keeps_pieces_that_may_still_join) {
    ObjectMerger m;
    m.add_patch(placement(0, 0, 256, true, true, true, false),
                {{10, 10, 30, 30, 0.9f, 0}, {100, 240, 120, 256, 0.8f, 0}, {200, 230, 220, 250, 0.7f, 0}});
    BOOST_TEST(m.live() == 3u);
    // Next patch row starts at 256: the whole boxes above it go, the piece cut at 256 stays.
    auto f = m.flush_above(256);
    BOOST_REQUIRE(f.size() == 2u);
    BOOST_TEST(f[0].y1 == 10.0);
    BOOST_TEST(f[1].y1 == 230.0);
    BOOST_TEST(m.live() == 1u);
    m.add_patch(placement(0, 256, 256, true, false, true, true), {{100, 0, 120, 4, 0.5f, 0}});
    f = m.flush_above(1e9);
    BOOST_REQUIRE(f.size() == 1u);
    BOOST_TEST(f[0].y1 == 240.0);
    BOOST_TEST(f[0].y2 == 260.0);
    BOOST_TEST(m.live() == 0u);
    BOOST_TEST(m.finish().empty());
}

BOOST_AUTO_TEST_CASE(simulated_slide_at_overlaps_0_half_and_0_8) {
    const int P = 256;
    const std::int64_t W = 1500, H = 1300;
    for (int overlap : {0, 128, 204}) {
        std::mt19937 rng(static_cast<unsigned>(100 + overlap));
        DiscField f;
        place_discs(f, W, H, P, overlap, 5, 14, 4, 3000, rng, 2);
        const auto patches = tile_slide(W, H, P, overlap);
        std::size_t cut_boxes = 0;
        ObjectMerger merger;
        auto st = feed(merger, patches, [&](const Patch& p) {
            auto b = simulated_detections(f, p, P, 14);
            for (const Box& x : b)
                if (x.x1 <= 0 || x.y1 <= 0 || x.x2 >= P || x.y2 >= P) ++cut_boxes;
            return b;
        }, rng);
        const auto rep = match(f, st.objects, 4.0, true);
        BOOST_TEST_MESSAGE("overlap " << overlap << ": " << f.discs.size() << " discs, " << st.patches
                                      << " patches, " << cut_boxes << " clipped boxes, " << st.objects.size()
                                      << " objects, max centre error " << rep.max_centre_error
                                      << " px, peak live " << st.max_live);
        BOOST_TEST(f.discs.size() > 300u);
        BOOST_TEST(cut_boxes > 100u);
        BOOST_TEST(st.objects.size() == f.discs.size());
        BOOST_TEST(rep.missed == 0u);
        BOOST_TEST(rep.duplicated == 0u);
        BOOST_TEST(rep.unmatched_objects == 0u);
        BOOST_TEST(rep.wrong_class == 0u);
        BOOST_TEST(rep.max_centre_error <= 4.0);
    }
}

BOOST_AUTO_TEST_CASE(class_agnostic_merges_across_classes) {
    const int P = 256;
    const std::int64_t W = 900, H = 700;
    std::mt19937 rng(77);
    DiscField f;
    place_discs(f, W, H, P, 0, 6, 12, 4, 1500, rng, 3);
    // Each patch reports a class of its own: only a class-agnostic merge can join pieces.
    ObjectMerger merger(0.45f, true);
    auto st = feed(merger, tile_slide(W, H, P, 0), [&](const Patch& p) {
        auto b = simulated_detections(f, p, P, 12);
        for (Box& x : b) x.cls = static_cast<int>((p.x / P + p.y / P) % 3);
        return b;
    }, rng);
    const auto rep = match(f, st.objects, 4.0, false);
    BOOST_TEST(st.objects.size() == f.discs.size());
    BOOST_TEST(rep.missed == 0u);
    BOOST_TEST(rep.duplicated == 0u);
}

BOOST_AUTO_TEST_CASE(live_objects_stay_bounded_on_a_tall_slide) {
    const int P = 256;
    const std::int64_t W = 800, H = 40000;
    for (int overlap : {0, 128}) {
        std::mt19937 rng(static_cast<unsigned>(9 + overlap));
        DiscField f;
        place_discs(f, W, H, P, overlap, 5, 12, 4, 40000, rng, 2);
        ObjectMerger merger;
        auto st = feed(merger, tile_slide(W, H, P, overlap),
                       [&](const Patch& p) { return simulated_detections(f, p, P, 12); }, rng);
        const auto rep = match(f, st.objects, 4.0, true);
        BOOST_TEST_MESSAGE("tall slide, overlap " << overlap << ": " << f.discs.size() << " discs, "
                                                  << st.objects.size() << " objects, peak live "
                                                  << st.max_live);
        BOOST_TEST(f.discs.size() > 5000u);
        BOOST_TEST(st.objects.size() == f.discs.size());
        BOOST_TEST(rep.missed == 0u);
        BOOST_TEST(rep.duplicated == 0u);
        // One band of patch rows holds about W * 3P / (area per disc) objects.
        BOOST_TEST(st.max_live * 20 < f.discs.size());
    }
}

BOOST_AUTO_TEST_SUITE_END()

// ==========================================================================================
BOOST_AUTO_TEST_SUITE(disc_slide_and_models)

BOOST_AUTO_TEST_CASE(disc_slide_pixels_match_an_independent_rendering) {
    fit::TempDir dir;
    const std::string path = dir / "discs.tiff";
    const std::vector<Disc> discs = {{100.3, 80.7, 8}, {255.5, 256.2, 8}, {0.4, 300.6, 10}, {600, 500, 20.5}};
    write_disc_slide(path, 700, 530, discs, 0.5);
    BOOST_TEST(fit::level_count(path) >= 2);
    // OpenSlide 3.4.1 does not turn a generic TIFF's resolution into openslide.mpp-x.
    BOOST_TEST(!fit::property(path, "tiff.XResolution").empty());
    const fit::Image img = fit::read_level(path, 0);
    BOOST_REQUIRE(img.width == 700);
    BOOST_REQUIRE(img.height == 530);
    std::int64_t mismatches = 0, dark = 0;
    for (std::int64_t y = 0; y < img.height; ++y)
        for (std::int64_t x = 0; x < img.width; ++x) {
            const auto want = disc_pixel(discs, x, y);
            for (int c = 0; c < 3; ++c)
                if (img.at(x, y)[c] != want[c]) ++mismatches;
            if (want[0] < 128) ++dark;
        }
    BOOST_TEST(mismatches == 0);
    BOOST_TEST(dark > 1500);
    BOOST_TEST(static_cast<int>(img.at(100, 80)[0]) == 60);
    BOOST_TEST(static_cast<int>(img.at(100, 80)[1]) == 30);
    BOOST_TEST(static_cast<int>(img.at(100, 80)[2]) == 110);
    BOOST_TEST(static_cast<int>(img.at(400, 100)[1]) == 255);
    BOOST_CHECK_THROW(write_disc_slide(dir / "x.tiff", 0, 10, discs), Error);
}

BOOST_AUTO_TEST_CASE(patch_classifier_outputs_the_patch_mean) {
    fit::TempDir dir;
    write_demo_model(dir / "cls.pt", DemoModel::patch_classifier);
    Runner model(dir / "cls.pt", Task::classification);
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> U(0, 1);
    const int n = 3, h = 16, w = 24;
    std::vector<float> in(static_cast<std::size_t>(n) * 3 * h * w);
    for (float& v : in) v = U(rng);
    std::vector<std::int64_t> shape;
    auto out = model.run(in, n, h, w, shape);
    BOOST_REQUIRE(shape == (std::vector<std::int64_t>{n, 2}));
    for (int b = 0; b < n; ++b) {
        double sum = 0;
        for (std::size_t i = 0; i < 3u * h * w; ++i) sum += in[static_cast<std::size_t>(b) * 3 * h * w + i];
        const double m = sum / (3.0 * h * w);
        BOOST_TEST(out[static_cast<std::size_t>(2 * b + 1)] == m, boost::test_tools::tolerance(1e-5));
        BOOST_TEST(out[static_cast<std::size_t>(2 * b)] == 1 - m, boost::test_tools::tolerance(1e-5));
    }
}

BOOST_AUTO_TEST_CASE(blob_detector_whole_and_cut_discs_in_one_patch) {
    fit::TempDir dir;
    const int P = 256;
    const double r = 8;
    // Patch at (300, 300) of a 900x900 slide; discs whole inside it and cut on each side and
    // at a corner, at several depths (centre inside, on, and outside the border).
    const double o = 300;
    const std::vector<Disc> discs = {
        {o + 60.3, o + 70.6, r},  {o + 180.7, o + 150.2, r}, {o + 128.4, o + 220.9, r},  // whole
        {o + 3.4, o + 40.3, r},   {o - 2.6, o + 120.4, r},  {o + 0.3, o + 200.7, r},     // left
        {o + 252.6, o + 40.2, r}, {o + 258.3, o + 120.6, r}, {o + 256.2, o + 200.3, r},  // right
        {o + 60.2, o + 2.7, r},   {o + 140.4, o - 3.3, r},  {o + 210.6, o + 0.4, r},     // top
        {o + 60.4, o + 253.3, r}, {o + 140.3, o + 259.4, r}, {o + 210.7, o + 256.3, r},  // bottom
        {o - 1.6, o - 2.3, r},    {o + 257.4, o + 258.2, r},                            // corners
    };
    write_disc_slide(dir / "d.tiff", 900, 900, discs, 0.25);
    const fit::Image img = fit::read_level(dir / "d.tiff", 0);
    write_demo_model(dir / "blob.pt", DemoModel::blob_detector, 0);  // radius 8 by default
    Runner model(dir / "blob.pt", Task::detection);

    // Batch of two: the patch, and an empty white patch (all padding rows).
    std::vector<float> in;
    append_patch(in, img, 300, 300, P);
    append_patch(in, img, 600, 10, P);
    std::vector<std::int64_t> shape;
    auto out = model.run(in, 2, P, P, shape);
    BOOST_REQUIRE(shape.size() == 3u);
    BOOST_TEST(shape[0] == 2);
    BOOST_TEST(shape[1] == 64);
    BOOST_TEST(shape[2] == 6);
    const float* second = out.data() + shape[1] * 6;
    BOOST_TEST(std::all_of(second, second + shape[1] * 6, [](float v) { return v == 0.0f; }));

    std::vector<Box> raw;
    for (std::int64_t i = 0; i < shape[1]; ++i) {
        const float* row = out.data() + i * 6;
        if (row[4] > 0) raw.push_back({row[0], row[1], row[2], row[3], row[4], static_cast<int>(row[5])});
    }
    BOOST_TEST_MESSAGE("blob_detector: " << raw.size() << " raw detections for " << discs.size() << " discs");
    BOOST_TEST(raw.size() == discs.size());  // one per disc, no duplicate peaks

    const auto dets = decode_patch("blob", out.data(), shape[1], 6, DetectionParams{});
    BOOST_TEST(dets.size() == discs.size());
    double worst_edge = 0, worst_centre = 0;
    for (std::size_t k = 0; k < discs.size(); ++k) {
        const Disc& d = discs[k];
        double want[4];
        BOOST_REQUIRE(visible_box(d, 300, 300, P, want));
        const bool whole = d.x - d.r >= o && d.y - d.r >= o && d.x + d.r <= o + P && d.y + d.r <= o + P;
        // The detection whose centre is nearest the visible box's centre.
        const double vx = (want[0] + want[2]) / 2, vy = (want[1] + want[3]) / 2;
        const Box* best = nullptr;
        double best_d = 1e9;
        for (const Box& b : dets) {
            const double dd = std::hypot((b.x1 + b.x2) / 2 - vx, (b.y1 + b.y2) / 2 - vy);
            if (dd < best_d) {
                best_d = dd;
                best = &b;
            }
        }
        BOOST_REQUIRE(best);
        BOOST_TEST_CONTEXT("disc " << k << " at (" << d.x - o << ", " << d.y - o << ") in the patch") {
            const double got[4] = {best->x1, best->y1, best->x2, best->y2};
            for (int e = 0; e < 4; ++e) {
                BOOST_TEST(std::abs(got[e] - want[e]) <= 1.0);
                worst_edge = std::max(worst_edge, std::abs(got[e] - want[e]));
            }
            BOOST_TEST(best->score >= 0.25f);
            BOOST_TEST(best->cls == 0);
            if (whole) {
                const double cx = (best->x1 + best->x2) / 2 + o, cy = (best->y1 + best->y2) / 2 + o;
                const double err = std::hypot(cx - d.x, cy - d.y);
                worst_centre = std::max(worst_centre, err);
                BOOST_TEST(err <= 2.0);
                BOOST_TEST(std::abs((best->x2 - best->x1) - 2 * r) <= 2.0);
                BOOST_TEST(std::abs((best->y2 - best->y1) - 2 * r) <= 2.0);
            } else {
                // Clipped at the patch: a cut disc's box must touch the border it crosses.
                if (d.x - d.r < o) BOOST_TEST(best->x1 == 0.0f);
                if (d.y - d.r < o) BOOST_TEST(best->y1 == 0.0f);
                if (d.x + d.r > o + P) BOOST_TEST(best->x2 == static_cast<float>(P));
                if (d.y + d.r > o + P) BOOST_TEST(best->y2 == static_cast<float>(P));
            }
        }
    }
    BOOST_TEST_MESSAGE("blob_detector: worst edge error " << worst_edge << " px, worst whole-disc centre error "
                                                          << worst_centre << " px");
}

BOOST_AUTO_TEST_CASE(blob_detector_on_a_slide_merged_at_overlaps_0_half_and_0_8) {
    fit::TempDir dir;
    const int P = 256;
    const std::int64_t W = 1100, H = 900;
    const double r = 8;
    // One slide for the three tilings: border and corner discs of each, then random ones.
    // 28 px between rims keeps a neighbour out of the detector's measuring window.
    DiscField f;
    std::mt19937 rng(11);
    for (int overlap : {0, 128, 204}) place_discs(f, W, H, P, overlap, r, r, 28, 0, rng, 1);
    place_discs(f, W, H, P, 0, r, r, 28, 2000, rng, 1);
    std::vector<Disc> discs;
    for (const SimDisc& d : f.discs) discs.push_back({d.x, d.y, d.r});
    write_disc_slide(dir / "s.tiff", W, H, discs, 0.25);
    const fit::Image img = fit::read_level(dir / "s.tiff", 0);
    write_demo_model(dir / "blob.pt", DemoModel::blob_detector, static_cast<float>(r));
    Runner model(dir / "blob.pt", Task::detection);

    DetectionParams dp;
    for (int overlap : {0, 128, 204}) {
        const auto patches = tile_slide(W, H, P, overlap);
        const auto per_patch = run_detector(model, img, patches, P, dp);
        std::unordered_map<std::int64_t, std::size_t> index;
        for (std::size_t i = 0; i < patches.size(); ++i) index[patches[i].y * 1000003 + patches[i].x] = i;
        std::size_t cut = 0;
        for (const auto& v : per_patch)
            for (const Box& b : v)
                if (b.x1 <= 0 || b.y1 <= 0 || b.x2 >= P || b.y2 >= P) ++cut;
        ObjectMerger merger(dp.iou_threshold);
        auto st = feed(merger, patches, [&](const Patch& p) { return per_patch[index.at(p.y * 1000003 + p.x)]; }, rng);
        const auto rep = match(f, st.objects, 4.0, false);
        BOOST_TEST_MESSAGE("blob_detector on slide, overlap " << overlap << ": " << discs.size() << " discs, "
                                                              << patches.size() << " patches, " << cut
                                                              << " border-touching boxes, " << st.objects.size()
                                                              << " objects, max centre error "
                                                              << rep.max_centre_error << " px");
        BOOST_TEST(discs.size() > 150u);
        BOOST_TEST(cut > 20u);
        BOOST_TEST(st.objects.size() == discs.size());
        BOOST_TEST(rep.missed == 0u);
        BOOST_TEST(rep.duplicated == 0u);
        BOOST_TEST(rep.unmatched_objects == 0u);
        BOOST_TEST(rep.max_centre_error <= 4.0);
    }
}

BOOST_AUTO_TEST_CASE(blob_detector_rejects_a_bad_radius) {
    fit::TempDir dir;
    BOOST_CHECK_THROW(write_demo_model(dir / "b.pt", DemoModel::blob_detector, -1), Error);
}

BOOST_AUTO_TEST_SUITE_END()

// ==========================================================================================
BOOST_AUTO_TEST_SUITE(object_writer)

BOOST_AUTO_TEST_CASE(geojson_and_csv_read_back) {
    fit::TempDir dir;
    const std::string geo = dir / "cells.geojson", csv = dir / "cells.csv";
    {
        ObjectWriter w(geo, csv, "detection", {{"Tumor", 200, 0, 0}, {"Stroma \"b\"\\", 0, 150, 0}},
                       {"x1", "y1", "x2", "y2", "class", "score"});
        w.write(10, 20, 30.5, 40, 0, {{"score", 0.75}, {"area", 410}}, {10, 20, 30.5, 40, 0, 0.75});
        w.write(1234567.3, 5, 1234580, 17, 1, {{"score", std::nan("")}}, {1234567.3, 5, 1234580, 17, 1, 0.123456789});
        w.write(0, 0, 1, 1, 5, {}, {0, 0, 1, 1, 5, 1});
        BOOST_TEST(w.count() == 3);
        BOOST_TEST(fit::exists(geo + ".partial"));
        BOOST_TEST(fit::exists(csv + ".partial"));
        BOOST_TEST(!fit::exists(geo));
        BOOST_TEST(!fit::exists(csv));
        BOOST_CHECK_THROW(w.write(0, 0, 1, 1, 0, {}, {1, 2}), OutputError);
        w.finish();
        BOOST_CHECK_THROW(w.write(0, 0, 1, 1, 0, {}, {0, 0, 1, 1, 0, 1}), OutputError);
    }
    BOOST_TEST(!fit::exists(geo + ".partial"));
    BOOST_TEST(!fit::exists(csv + ".partial"));
    const std::string g = fit::read_text(geo);
    BOOST_TEST(g.rfind("{\"type\":\"FeatureCollection\",\"features\":[", 0) == 0u);
    BOOST_TEST(count_of(g, "\"type\":\"Feature\",") == 3u);
    BOOST_TEST(count_of(g, "\"objectType\":\"detection\"") == 3u);
    BOOST_TEST(g.find("\"geometry\":{\"type\":\"Polygon\",\"coordinates\":"
                      "[[[10,20],[30.5,20],[30.5,40],[10,40],[10,20]]]}") != std::string::npos);
    BOOST_TEST(g.find("\"classification\":{\"name\":\"Tumor\",\"color\":[200,0,0]}") != std::string::npos);
    BOOST_TEST(g.find("\"measurements\":{\"score\":0.75,\"area\":410}") != std::string::npos);
    BOOST_TEST(g.find("\"name\":\"Stroma \\\"b\\\"\\\\\",\"color\":[0,150,0]") != std::string::npos);
    BOOST_TEST(g.find("\"measurements\":{\"score\":null}") != std::string::npos);
    BOOST_TEST(g.find("[[[1234567.3,5],[1234580,5]") != std::string::npos);
    BOOST_TEST(g.find("\"classification\":{\"name\":\"class 5\",\"color\":[140,86,75]}") != std::string::npos);
    BOOST_TEST(g.find("\"measurements\":{}") != std::string::npos);

    // Brackets balance outside strings, and every id is a distinct uuid-shaped string.
    int depth = 0, min_depth = 0;
    bool in_str = false;
    for (std::size_t i = 0; i < g.size(); ++i) {
        const char c = g[i];
        if (in_str) {
            if (c == '\\') ++i;
            else if (c == '"') in_str = false;
            continue;
        }
        if (c == '"') in_str = true;
        if (c == '{' || c == '[') ++depth;
        if (c == '}' || c == ']') min_depth = std::min(min_depth, --depth);
    }
    BOOST_TEST(depth == 0);
    BOOST_TEST(min_depth == 0);
    BOOST_TEST(!in_str);
    std::set<std::string> ids;
    for (std::size_t p = g.find("\"id\":\""); p != std::string::npos; p = g.find("\"id\":\"", p + 1)) {
        const std::string id = g.substr(p + 6, 36);
        BOOST_TEST(id[8] == '-');
        BOOST_TEST(id[14] == '4');
        BOOST_TEST(g[p + 6 + 36] == '"');
        ids.insert(id);
    }
    BOOST_TEST(ids.size() == 3u);

    std::istringstream lines(fit::read_text(csv));
    std::vector<std::string> rows;
    for (std::string line; std::getline(lines, line);) rows.push_back(line);
    BOOST_REQUIRE(rows.size() == 4u);
    BOOST_TEST(rows[0] == "x1,y1,x2,y2,class,score");
    BOOST_TEST(rows[1] == "10,20,30.5,40,0,0.75");
    BOOST_TEST(rows[2] == "1234567.3,5,1234580,17,1,0.123457");
    BOOST_TEST(rows[3] == "0,0,1,1,5,1");
}

BOOST_AUTO_TEST_CASE(tiles_and_geojson_only) {
    fit::TempDir dir;
    ObjectWriter w(dir / "t.geojson", "", "tile", {{"a,b", 1, 2, 3}}, {});
    w.write(0, 0, 256, 256, 0, {{"p", 0.5}}, {});
    w.finish();
    const std::string g = fit::read_text(dir / "t.geojson");
    BOOST_TEST(count_of(g, "\"objectType\":\"tile\"") == 1u);
    BOOST_TEST(g.find("\"name\":\"a,b\"") != std::string::npos);
    BOOST_TEST(!fit::exists(dir / "t.geojson.partial"));
}

BOOST_AUTO_TEST_CASE(unfinished_writer_leaves_no_files) {
    fit::TempDir dir;
    const std::string geo = dir / "x.geojson", csv = dir / "x.csv";
    {
        ObjectWriter w(geo, csv, "detection", {}, {"a"});
        w.write(0, 0, 1, 1, 0, {}, {1});
    }
    BOOST_TEST(!fit::exists(geo));
    BOOST_TEST(!fit::exists(csv));
    BOOST_TEST(!fit::exists(geo + ".partial"));
    BOOST_TEST(!fit::exists(csv + ".partial"));
}

BOOST_AUTO_TEST_CASE(errors_are_output_errors) {
    fit::TempDir dir;
    BOOST_CHECK_THROW(ObjectWriter(dir / "no/such/dir.geojson", dir / "a.csv", "detection", {}, {}), OutputError);
    BOOST_TEST(!fit::exists(dir / "a.csv.partial"));
    BOOST_CHECK_THROW(ObjectWriter(dir / "a.geojson", dir / "a.csv", "cell", {}, {}), OutputError);
    // The CSV cannot be renamed onto a directory: neither final file may remain.
    fit::write_text(dir / "keep.txt", "x");
    const std::string geo = dir / "b.geojson";
    const std::string csv_dir = dir / "b.csv";
    BOOST_REQUIRE(fit::run_cmd("mkdir -p '" + csv_dir + "/sub'").exit_code == 0);
    ObjectWriter w(geo, csv_dir, "detection", {}, {});
    w.write(0, 0, 1, 1, 0, {}, {});
    BOOST_CHECK_THROW(w.finish(), OutputError);
    BOOST_TEST(!fit::exists(geo));
    BOOST_TEST(!fit::exists(geo + ".partial"));
}

BOOST_AUTO_TEST_SUITE_END()
