// Object detection building blocks: decoding a detector's raw per-patch output into boxes,
// per-patch NMS, and merging the boxes of overlapping patches into one set of slide objects.
//
// Thread safety: decode_patch() and nms() are pure functions, safe from any thread.
// An ObjectMerger is not synchronized: one thread (or a serial flow-graph node) at a time.
// Distinct mergers are independent.
//
// Why the merger is more than a slide-level NMS: a patch sees only part of an object that
// crosses its border, so the detector reports a "cut" box (the visible part). Plain NMS would
// keep both a cut box and the whole box of the same object when their IoU is small, and with
// no overlap between patches no patch sees a border-straddling object whole at all; its
// pieces must be joined instead. The merger therefore knows which boxes are cut and prefers
// whole boxes, and unions cut pieces of the same object.
#pragma once

#include <flowinfer/config.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace flowinfer {

// DetectionFormat lives in <flowinfer/config.hpp> (models[].detection_format).

struct DetectionParams {
    DetectionFormat format = DetectionFormat::boxes;
    float conf_threshold = 0.25f;
    float iou_threshold = 0.45f;
    int max_detections = 300;  // per patch, after NMS; 0 or less: no limit
    bool class_agnostic = false;
};

// In patch (model input) pixels; x2/y2 are the far edges (a box of one pixel at column c
// has x1 = c, x2 = c + 1).
struct Box {
    float x1, y1, x2, y2, score;
    int cls;
};

// Decodes one patch's raw output and runs per-patch NMS. Per-patch dims (d1, d2):
//  boxes : [N, 6] = x1, y1, x2, y2, score, class; rows with score <= 0 are padding.
//  yolov8: [4 + nc, N] = cx, cy, w, h, class scores (already probabilities), channel-major.
//  yolov5: [N, 5 + nc] = cx, cy, w, h, objectness, class probs; score = obj * class prob.
// The class is the argmax of the class scores. Boxes scoring below conf_threshold (or <= 0)
// are dropped, then NMS (per class unless class_agnostic), then the best max_detections,
// highest score first. Throws ModelError(model_name, ...) when the dims cannot be that
// format (e.g. yolov8 with d1 < 5, boxes with d2 != 6) or a kept row holds a non-finite
// number or a negative class.
std::vector<Box> decode_patch(const std::string& model_name, const float* data, std::int64_t d1,
                              std::int64_t d2, const DetectionParams& p);

// Greedy NMS: highest score first (ties: earlier box first); a box is suppressed when its
// IoU with a kept box of the same class (any class if class_agnostic) is > iou_threshold.
// Kept boxes sit in a spatial grid, so each box is compared only with kept boxes near it.
std::vector<Box> nms(std::vector<Box> boxes, float iou_threshold, bool class_agnostic,
                     int max_detections);

// Level-0 pixels.
struct SlideObject {
    double x1, y1, x2, y2;
    float score;
    int cls;
};

// Where one patch lies on the slide.
struct PatchPlacement {
    double ox = 0, oy = 0;  // level-0 position of the patch's top-left corner
    double scale = 1;       // level-0 pixels per patch pixel
    int width = 0, height = 0;  // patch size in patch pixels
    // Borders lying on the slide edge: a box touching them is complete, not cut.
    bool edge_left = false, edge_top = false, edge_right = false, edge_bottom = false;
};

// Merges the detections of overlapping patches into slide objects, each object once.
//
// A box within ~1 patch pixel of an interior patch border is "cut" on that side. A new box
// is compared only with live objects in nearby cells of a spatial hash (cell = one patch's
// level-0 extent) and of the same class (any if class_agnostic). It is the same object as a
// live one when:
//  - IoU > iou_threshold; or
//  - one of them is cut, lies within the other's extent on the axes it is cut on, and has
//    more than half its area inside the other (both with the touch slack along the cut
//    axes, so slivers a few pixels deep still count); or
//  - both are cut on facing sides (one on the right, the other on the left, or bottom/top),
//    touch or overlap across those sides (gap <= 2 level-0 px + 1 patch px) and overlap by
//    at least half the smaller extent on the other axis (pieces of one object that no patch
//    sees whole: overlap 0, or an overlap narrower than the object).
// Then: a box one patch saw whole beats anything else; two such boxes: the higher score
// wins; otherwise (cut pieces, or unions of pieces) the two are replaced by their union
// (score = max), cut on a side only where the piece giving that side is. A union is
// compared again with its new neighbours, so the four quarters of an object cut at a patch
// corner become one object in any arrival order (three quarters already span the whole box
// and are no longer cut, but the fourth still joins them rather than being dropped).
class ObjectMerger {
public:
    explicit ObjectMerger(float iou_threshold = 0.45f, bool class_agnostic = false);

    // Boxes of one patch, in that patch's pixels (as decode_patch returns them). Boxes with
    // no area or non-finite coordinates are ignored. Patches may come in any order among
    // those the caller has not flushed past.
    void add_patch(const PatchPlacement& patch, const std::vector<Box>& boxes);

    // The caller promises that no future patch reaches above level-0 row y (every later
    // patch has oy >= y). Returns and forgets the objects with y2 < y, sorted by (y1, x1),
    // except one cut at its bottom within the touch distance of y: a patch starting at y
    // may still hold its other piece.
    std::vector<SlideObject> flush_above(double y);

    // Returns (sorted by (y1, x1)) and forgets every remaining object.
    std::vector<SlideObject> finish();

    std::size_t live() const { return live_; }

private:
    struct Obj {
        double x1, y1, x2, y2;
        float score;
        int cls;
        // cut[0..3]: left, top, right, bottom.
        bool cut[4];
        bool assembled;  // a union of pieces, not one patch's view of the whole object
        double tol;  // level-0 slack: 2 px plus one patch pixel of the patch that saw it
        bool alive;
    };

    std::vector<SlideObject> take(double y, bool all);
    bool same_object(const Obj& a, const Obj& b) const;
    static Obj combine(const Obj& a, const Obj& b);
    void insert(std::uint32_t id);
    void erase(std::uint32_t id);
    std::uint32_t allocate(const Obj& o);
    template <class F>
    void for_each_near(const Obj& o, double pad, F&& fn);
    bool cell_range(const Obj& o, double pad, std::int64_t r[4]) const;

    float iou_threshold_;
    bool class_agnostic_;
    double cell_ = 0;  // level-0 side of a grid cell; set by the first patch
    std::vector<Obj> objs_;
    std::vector<std::uint32_t> free_;
    std::unordered_map<std::uint64_t, std::vector<std::uint32_t>> grid_;
    std::vector<std::uint32_t> big_;  // objects spanning too many cells to register in each
    std::vector<std::uint32_t> stamp_;  // per object: the query that last visited it
    std::uint32_t query_ = 0;
    std::size_t live_ = 0;
};

}  // namespace flowinfer
