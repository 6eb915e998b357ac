// Synthetic slides and TorchScript models made by flowinfer itself (demo, tests, benchmarks),
// so a fresh machine needs no downloaded data and no Python.
//
// Thread safety: all functions are reentrant; concurrent calls must write different paths.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace flowinfer {

struct SyntheticSlideSpec {
    std::int64_t width = 8192;
    std::int64_t height = 8192;
    double mpp = 0.25;            // written as TIFF resolution tags; 0: none
    std::uint32_t seed = 1;
    double tissue_fraction = 0.5; // about this share of the area is tissue, the rest white
    int jpeg_quality = 85;        // 0: deflate (lossless) instead of JPEG
};

// Where write_synthetic_slide() is. Rows are rows of 256-pixel level-0 tiles, written in order.
struct SyntheticProgress {
    std::int64_t rows_done = 0, rows_total = 0;
    std::int64_t pixels_done = 0, pixels_total = 0;  // level-0 pixels of the rows done, of the slide
    bool finishing = false;  // every row is written; the lower levels and the sync to disk follow
};
// Called on one thread at a time (never concurrently), from inside write_synthetic_slide():
// once before the first tile (rows_done 0), after each tile row, and once with `finishing`
// before the last phase. It should return quickly; an exception it throws abandons the slide
// (no file is left) and propagates.
using SyntheticProgressFn = std::function<void(const SyntheticProgress&)>;

// Writes an H&E-like generic tiled pyramidal TIFF (RGB, 256 tiles) that OpenSlide opens.
// Tiles are made in parallel (oneTBB, all cores of the current arena) and written in order;
// memory stays bounded (a few tiles per core plus the writer's lower levels).
void write_synthetic_slide(const std::string& path, const SyntheticSlideSpec& spec,
                           const SyntheticProgressFn& progress = {});

// The same pixels as an Aperio-style SVS: level 0 and the levels at downsample 4, 16, ...
// (Aperio's spacing: no level at 2x), the same compressed tiles, an Aperio ImageDescription
// with the MPP, so OpenSlide and the native reader see an "aperio" slide.
void write_synthetic_svs(const std::string& path, const SyntheticSlideSpec& spec,
                         const SyntheticProgressFn& progress = {});

// The same level-0 pixels as a patch directory: every whole `tile` x `tile` square as a PNG
// (or a JPEG at spec.jpeg_quality) at <dir>/row-RRR/tile-RRR-CCC.png. Returns the tiles
// written. Throws Error (no whole tile) or OutputError.
std::int64_t write_synthetic_tiles(const std::string& dir, const SyntheticSlideSpec& spec, int tile, bool jpeg);

// The RGB value write_synthetic_slide() puts at level-0 pixel (x, y) before compression
// (lets tests compare against an independent computation with deflate slides).
void synthetic_pixel(const SyntheticSlideSpec& spec, std::int64_t x, std::int64_t y,
                     std::uint8_t rgb[3]);

enum class DemoModel {
    tissue,         // 2 classes: background / tissue (hand-set 3x3 convolutions)
    pointwise_mean, // [1 - m, m], m = mean of the input channels; use mean 0, std 1
    constant,       // every pixel [1 - v, v] with v = param
    throw_after,    // pointwise_mean, but raises "flowinfer test model failure" on call param+1
    throw_above,    // pointwise_mean, but raises the same for a batch holding a patch whose mean
                    // input value is above param (fails bright slides only; zeros pass the probe)
    wrong_rank,     // returns [B, H, W]
    downscale,      // pointwise_mean average-pooled by `param` (output smaller than the patch)
    blob_detector,  // finds dark discs of radius ~param px: [B, N, 6] "boxes" (x1,y1,x2,y2,score,class)
    patch_classifier, // [B, 2]: [1 - m, m], m = mean of the input over channels and pixels
    call_size,      // [B, m]: B = patches in this call, m = pointwise_mean's (cpu_micro_batch tests)
    ragged_boxes,   // "boxes" detections [B, B, 6]: box (0, 0, 8, 8) scoring the patch mean, zero rows
    identity,       // returns its (normalized) input: [B, 3, H, W]
    light,          // benchmark, I/O-bound: conv 3->8 (3x3) + relu, conv 8->2 (1x1); a tissue mask
    unet,           // benchmark, compute-bound: 4-level U-Net, base channels param (0: 16; 16..64)
    // task embedding
    mean_features,        // [B, D]: feature j = mean of input channel j % 3 over the patch; D = param (0: 3)
    mean_features_pooled, // the same as [B, D, 1, 1], as a CNN's pooled last stage returns it
    empty_features,       // [B, 0]: no features (a broken export)
    vit_small,            // benchmark encoder: ViT-S/16 (224 px, 12 blocks, 6 heads, D = 384, class token)
    // shaped like models from the field (models[].channels, output, output_layout)
    one_channel,    // takes [B, 1, H, W] (a 1x1 convolution refuses 3 channels): [1 - y, y], y its input
    dict_output,    // {"aux": [B, 1, H, W] of 0.25, "seg": pointwise_mean's [1 - m, m]}
    tuple_output,   // ([B, 7] zeros, pointwise_mean's [1 - m, m])
    nhwc_mean,      // pointwise_mean's map channels-last: [B, H, W, 2]
};

// A dark disc on a white slide (level-0 pixels).
struct Disc {
    double x = 0, y = 0, r = 8;
};

// White generic tiled pyramidal TIFF (lossless) with dark-purple discs; for detection tests.
void write_disc_slide(const std::string& path, std::int64_t width, std::int64_t height,
                      const std::vector<Disc>& discs, double mpp = 0.25);

// Builds the model with torch::jit::Module::define and saves it as TorchScript, with the
// model keys its kind implies (task, channels, output, ...) as the archive's flowinfer.json
// (README, "Models"); the general test models (pointwise_mean, constant, ...) carry none.
void write_demo_model(const std::string& path, DemoModel kind, float param = 0.0f);
// The same with `flowinfer_json` as the archive's flowinfer.json ("": none).
void write_demo_model(const std::string& path, DemoModel kind, float param, const std::string& flowinfer_json);

}  // namespace flowinfer
