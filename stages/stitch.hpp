// stitch stage: places model outputs on the slide's output grid, blends overlaps and emits
// each 256x256 output tile as soon as every patch covering it has been stitched.
//
// Output grid: the model's output [B, C, h, w] may be smaller than the patch by an integer
// factor s = patch / h (inferred from the first batch); output pixel (u, v) covers working-
// grid pixels [s*u, s*u + s). A patch at grid (x, y) lands at (x / s, y / s), rounded down.
//
// Values: the activation is applied per patch by infer; overlapping patches are averaged
// (blend "average") or weighted by a window that ramps up over the overlap from each patch
// border (blend "weighted"), which down-weights the border pixels a model sees with little
// context. The TIFF gets one 8-bit channel: for C == 1, round(255 * out0); for C == 2,
// round(255 * out1) (the probability of class 1); for C > 2 the argmax class index, with a
// palette.
//
// Memory: only tiles that some, but not all, of their patches have reached are held: about
// the output width times (section height + overlap), one float per pixel (C <= 2) or C.
//
// Thread safety: operator() must run serially (its node has concurrency 1).
#pragma once

#include "stages/messages.hpp"
#include "stages/stage_stats.hpp"

#include <flowinfer/config.hpp>

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
    std::vector<int> col_cover, row_cover;  // patches that cover each tile column / row
    std::vector<float> window;              // per output-patch pixel, along one axis
    // Patches lie on a grid and the window is separable, so the blend weight summed over all
    // patches at (x, y) is weight_x[x] * weight_y[y]: no per-pixel weight needs storing.
    std::vector<float> weight_x, weight_y;

    struct Acc {
        std::vector<float> sum;  // acc_channels * T * T, weighted
        int received = 0;
    };
    std::unordered_map<std::int64_t, Acc> open;
    std::size_t peak_open = 0;
};

class Stitch {
public:
    Stitch(const Config& cfg, StageCounter& counter) : cfg_(&cfg), counter_(&counter) {}

    struct Out {
        int tokens = 0;                 // patches finished: their tokens go back
        std::vector<WriteMsg> messages; // tiles, then the slide's end marker if it is done
    };
    Out operator()(const InferResult& r) const;

private:
    void start_slide(SlideContext& ctx, const ModelOutput& out) const;
    void add_patch(SlideContext& ctx, const PatchKey& key, const float* data, int h, int w,
                   std::vector<WriteMsg>& messages) const;

    const Config* cfg_;
    StageCounter* counter_;
};

// 256-entry RGB palette for label maps (class i -> colour i).
std::vector<std::uint8_t> label_palette();

}  // namespace flowinfer
