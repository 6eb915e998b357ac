// classify stage (classification models): one [C] probability vector per patch.
//
// Outputs per slide: a pyramidal TIFF heatmap with one pixel per patch (pixel (col, row) is
// the patch in grid column col, row row; one pixel spans a patch stride; a heatmap under 16
// pixels on a side is drawn with k x k pixels per patch instead, because OpenSlide 3.4.1 with
// libtiff 4.5 misreads TIFF levels that small; summary.json's downsample says which; the value follows
// the map rule of stitch.hpp: round(255 p1) for C == 2, round(255 p0) for C == 1, the argmax
// class with a palette for C > 2; patches that did not run are 0), <model>.csv (x, y, w, h
// in level-0 pixels and one probability column per class) and <model>.geojson (one
// objectType "tile" rectangle per patch, classified by its argmax class, probabilities as
// measurements), which QuPath imports. An unreadable patch (on_read_error = "skip") has no
// row and no feature, and its heatmap pixel is 0.
//
// Memory: the heatmap is one byte per patch; rows stream to the writer as batches finish.
//
// Thread safety: operator() must run serially (its node has concurrency 1).
#pragma once

#include "stages/messages.hpp"
#include "stages/sink.hpp"
#include "stages/stage_stats.hpp"

#include <flowinfer/config.hpp>

#include <vector>

namespace flowinfer {

struct ClassifyState {
    std::vector<std::uint8_t> heat;  // xs.size() * ys.size(), row-major
    int zoom = 1;                    // map pixels per patch along each axis
};

class Classify {
public:
    Classify(const Config& cfg, int model, int channels, StageCounter& counter)
        : cfg_(&cfg), model_(model), channels_(channels), counter_(&counter) {}
    SinkOut operator()(const InferResult& r) const;

private:
    void start_slide(SlideContext& ctx, const SlidePlan& plan) const;
    void heatmap_tiles(const ClassifyState& st, const SlidePlan& plan, std::vector<WriteMsg>& messages) const;

    const Config* cfg_;
    int model_;
    int channels_;
    StageCounter* counter_;
};

// The name of class i: `classes`' name, else "class i".
std::string class_name(const std::vector<ClassSpec>& classes, int i);

}  // namespace flowinfer
