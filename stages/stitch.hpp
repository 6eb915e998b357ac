// stitch stage (segmentation models): places model outputs on the slide's output grid,
// blends overlaps and emits each 256x256 output tile as soon as every patch covering it has
// been stitched.
//
// Output grid: the model's output [B, C, h, w] may be smaller than the patch by an integer
// factor s = patch / h (found by probing the model at start-up); output pixel (u, v) covers
// working-grid pixels [s*u, s*u + s). A patch at grid (x, y) lands at (x / s, y / s),
// rounded down.
//
// Values: the activation is applied per patch by infer; overlapping patches are averaged
// (blend "average") or weighted by a window that ramps up over the overlap from each patch
// border (blend "weighted"), which down-weights the border pixels a model sees with little
// context. The TIFF gets one 8-bit channel: for C == 1, round(255 * out0); for C == 2,
// round(255 * out1) (the probability of class 1); for C > 2 the argmax class index, with a
// palette. Pixels that no running patch covers (tissue detection skipped them, or they were
// unreadable) are 0.
//
// Memory: only tiles that some, but not all, of their patches have reached are held: about
// the output width times (section height + overlap), one float per pixel (C <= 2) or C.
//
// Thread safety: operator() must run serially (its node has concurrency 1).
#pragma once

#include "stages/messages.hpp"
#include "stages/sink.hpp"
#include "stages/stage_stats.hpp"

#include <flowinfer/config.hpp>

#include <array>
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace flowinfer {

constexpr int kOutputTile = 256;

struct StitchState {
    int scale = 1;       // working-grid pixels per output pixel
    int out_patch = 0;   // patch size on the output grid
    int channels = 0;    // model channels C
    int acc_channels = 1;
    std::int64_t width = 0, height = 0;
    std::int64_t tiles_x = 0, tiles_y = 0;
    std::vector<std::int64_t> out_x, out_y;  // patch positions on the output grid
    std::vector<int> expected;               // per tile: running patches that cover it
    std::vector<float> window;               // per output-patch pixel, along one axis
    // 1 / (sum of the windows of every patch position) along x and y (0 where none reaches).
    // The blend weight is separable, so where every patch covering a tile runs, a pixel's
    // total weight is wx * wy: no per-tile pass over the covering patches.
    std::vector<float> inv_wx, inv_wy;
    // Per patch (row-major over out_y x out_x): unreadable (on_read_error = "skip"), so left
    // out like a patch tissue detection skipped. Empty while no patch is.
    std::vector<std::uint8_t> missing;
    // Whether patch (col, row) adds to the map: planned to run and not missing.
    bool runs(const SlidePlan& plan, std::size_t col, std::size_t row) const {
        return plan.runs(col, row) && (missing.empty() || !missing[row * out_x.size() + col]);
    }

    struct Acc {
        std::vector<float> sum;  // acc_channels * T * T, weighted
        int received = 0;
    };
    std::unordered_map<std::int64_t, Acc> open;
};

class Stitch {
public:
    // `probe_shape`: the model's output shape for one patch, [1, C, h, w].
    Stitch(const Config& cfg, int model, std::vector<std::int64_t> probe_shape, StageCounter& counter)
        : cfg_(&cfg), model_(model), channels_(static_cast<int>(probe_shape.at(1))),
          out_patch_(static_cast<int>(probe_shape.at(2))), counter_(&counter) {}
    SinkOut operator()(const InferResult& r) const;

private:
    void start_slide(SlideContext& ctx, const SlidePlan& plan, std::vector<WriteMsg>& messages) const;
    // data == nullptr: a missing patch, counted as received for its tiles, adding nothing.
    void add_patch(StitchState& st, const SlidePlan& plan, const PatchKey& key, const float* data,
                   std::vector<WriteMsg>& messages) const;
    void finish_tile(StitchState& st, const SlidePlan& plan, std::int64_t tx, std::int64_t ty,
                     const StitchState::Acc* acc, std::vector<WriteMsg>& messages) const;

    const Config* cfg_;
    int model_;
    int channels_;
    int out_patch_;
    StageCounter* counter_;
};

// 256-entry RGB palette for label maps (class i -> colour i; `classes` colours first).
std::vector<std::uint8_t> label_palette(const std::vector<ClassSpec>& classes = {});
// Class `cls`'s colour in such a palette (clamped to 0..255).
std::array<std::uint8_t, 3> label_color(const std::vector<std::uint8_t>& palette, int cls);

// round(255 * p) for p clamped to [0, 1]; NaN gives 0. (Not lround: a libm call per pixel.)
inline std::uint8_t probability_byte(float p) {
    return static_cast<std::uint8_t>(p > 0.0f ? (p < 1.0f ? p * 255.0f + 0.5f : 255.0f) : 0.0f);
}

// 8-bit map value of one output pixel: see the header comment.
std::uint8_t map_value(const float* values, int acc_channels, std::size_t stride);

}  // namespace flowinfer
