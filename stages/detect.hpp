// detect stage (detection models): decodes each patch's raw output (boxes / yolov8 / yolov5)
// with per-patch NMS, maps boxes to level-0 pixels and merges the objects that overlapping
// patches share (ObjectMerger: whole views beat cut ones, cut pieces are joined), streaming:
// once every patch before a section has been seen, the objects above that section are final
// and go to <model>.geojson (QuPath detections) and <model>.csv (x1, y1, x2, y2, score,
// class) as they are. An unreadable patch (on_read_error = "skip") contributes no objects.
//
// Memory: live objects are those near the unfinished sections, plus one bit per patch.
//
// Thread safety: operator() must run serially (its node has concurrency 1).
#pragma once

#include "stages/detections.hpp"
#include "stages/messages.hpp"
#include "stages/sink.hpp"
#include "stages/stage_stats.hpp"

#include <flowinfer/config.hpp>

#include <vector>

namespace flowinfer {

struct DetectState {
    ObjectMerger merger;
    std::vector<bool> seen;      // per walk position of the plan
    std::uint64_t watermark = 0; // every patch before it has been seen
};

class Detect {
public:
    Detect(const Config& cfg, int model, StageCounter& counter);
    SinkOut operator()(const InferResult& r) const;

private:
    void start_slide(SlideContext& ctx, const SlidePlan& plan) const;
    static void add_rows(const std::vector<SlideObject>& objects, std::vector<WriteMsg>& messages);

    const Config* cfg_;
    int model_;
    DetectionParams params_;
    StageCounter* counter_;
};

}  // namespace flowinfer
