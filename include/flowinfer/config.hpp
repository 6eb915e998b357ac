// flowinfer pipeline configuration (pipeline.toml).
//
// Thread safety: load_config() is reentrant. A Config is a plain value: share it read-only
// between threads, or copy it.
//
// The TOML keys, their defaults and their meaning are documented in README.md ("Config").
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace flowinfer {

enum class Task { segmentation, classification, detection, embedding };
// The features dataset's element type (task embedding); the model's output is fp32 either way.
enum class EmbeddingDtype { float32, float16 };
// A segmentation map's dimension order: [B, C, h, w], or channels-last [B, h, w, C].
enum class OutputLayout { nchw, nhwc };

// A model input channel made from the patch's RGB: 0, 1, 2 take R, G or B; kLuma is ITU-R
// BT.601 luma, 0.299 R + 0.587 G + 0.114 B.
constexpr int kLuma = -1;

// Which element of a model's tuple, list or dict output a task reads. Neither set: the output
// itself when it is a tensor, else the first tensor it holds.
struct OutputSelector {
    std::optional<int> index;        // a tuple's or list's element
    std::optional<std::string> key;  // a dict's entry
    bool operator==(const OutputSelector& o) const { return index == o.index && key == o.key; }
};
enum class DetectionFormat { boxes, yolov8, yolov5 };
enum class Precision { fp32, fp16, bf16 };
enum class Activation { softmax, sigmoid, none };
enum class Blend { average, weighted };
enum class Compression { deflate, lzw, none };
// What a region OpenSlide cannot read (a corrupt tile) does: fail its slide, or leave that
// patch out and go on.
enum class ReadErrorPolicy { fail, skip };
// Who reads slide tiles: automatic (the native reader where it supports the slide, else
// OpenSlide), native (fail a slide it does not support), or openslide.
enum class SlideReader { automatic, native, openslide };

// A class name and its display colour (GeoJSON classification, label-map palette).
struct ClassSpec {
    std::string name;
    std::optional<std::array<std::uint8_t, 3>> color;  // none: a fixed palette colour
};

// The patch geometry one model reads: [tiling] with the model's own overrides applied.
struct Tiling {
    int patch_size = 512;
    int overlap = 64;
    std::optional<double> mpp;
    std::optional<int> level;
    bool operator==(const Tiling& o) const {
        return patch_size == o.patch_size && overlap == o.overlap && mpp == o.mpp && level == o.level;
    }
};

struct ModelConfig {
    std::string name;            // output file stem: <output.dir>/<slide stem>/<name>.tif
    std::string path;            // TorchScript file, absolute (resolved against the config's dir)
    Task task = Task::segmentation;
    int batch_size = 8;
    // On CPU a batch goes through the model this many patches per call: a 256² patch's
    // activations fit in the core's cache, a batch of 8 spills to memory (README, "CPU micro-batches").
    // CUDA runs the whole batch.
    int cpu_micro_batch = 1;
    // std::nullopt: fp32 on CPU, fp16 on CUDA.
    std::optional<Precision> precision;
    // The model's input channels, each from the patch's RGB (an index 0..2, or kLuma): "rgb" is
    // {0, 1, 2}, "bgr" {2, 1, 0}, "gray" {kLuma}.
    std::vector<int> channels{0, 1, 2};
    std::vector<float> mean{0.485f, 0.456f, 0.406f};  // per input channel, on x/255
    std::vector<float> std{0.229f, 0.224f, 0.225f};
    OutputSelector output;
    OutputLayout output_layout = OutputLayout::nchw;  // segmentation
    // Where keys not set in pipeline.toml came from: "" (defaults only), or the WSInfer
    // config.json / the archive's flowinfer.json that supplied them (README, "Models").
    std::string metadata;
    Activation activation = Activation::softmax;  // segmentation, classification
    Blend blend = Blend::average;                 // segmentation
    std::optional<std::string> device;            // overrides runtime.device
    // Override [tiling] for this model; models whose tiling is equal share one read.
    std::optional<int> patch_size, overlap, level;
    std::optional<double> mpp;
    std::vector<ClassSpec> classes;
    // detection
    DetectionFormat detection_format = DetectionFormat::boxes;
    float conf_threshold = 0.25f;
    float iou_threshold = 0.45f;
    int max_detections = 300;
    bool class_agnostic = false;
    // embedding
    EmbeddingDtype embedding_dtype = EmbeddingDtype::float32;
    // segmentation: <model>.geojson, the map's classes as QuPath annotations (README, "Contours")
    bool contours = true;
    std::vector<int> contour_classes;  // empty: class 1 of a 1- or 2-channel map, every class > 0 of a label map
    double contour_threshold = 0.5;    // probability maps: a pixel is in class 1 when p >= this
    double contour_tolerance = 1.0;    // map pixels: how far a simplified outline may stray
    double min_area_um2 = 0.0;         // parts (and holes) smaller than this are dropped
};

// One entry of input.images (patch-directory mode), beside its path in Config::slides.
struct ImageInput {
    // The path under the input patterns' common directory; the image's outputs mirror it
    // under output.dir ("a/b.png" -> <output.dir>/<model>/a/b.png).
    std::string relative;
    // Set for a pattern that matched no file: the entry (its path is the pattern) fails with
    // this message and the other images go on.
    std::string problem;
};

// What a slide without its input.roi file does.
enum class RoiMissing { error, all, skip };

struct Config {
    std::string source;  // the config file's path ("" when built in code); used in messages

    // [input]
    // input.slides (globs resolved) and input.manifest (listed files) together: absolute,
    // sorted, without duplicates.
    std::vector<std::string> slides;
    // Regions of interest: a path pattern per slide ("{stem}" is the slide's file name without
    // its extension, "{name}" with it), absolute once read; "" runs the whole slide.
    std::string roi;
    RoiMissing roi_missing = RoiMissing::error;
    // input.region / CLI --region: one level-0 rectangle x, y, w, h for every slide.
    std::optional<std::array<double, 4>> region;
    // input.images: patch-directory mode. One entry per path of `slides`, in the same order
    // (sorted); empty for slides.
    std::vector<ImageInput> images;
    bool image_mode() const { return !images.empty(); }

    // [output]
    std::string output_dir;                        // absolute
    Compression compression = Compression::deflate;
    int deflate_level = 1;  // 1 (fastest) .. 9 (smallest)
    std::int64_t spill_mb = 64;  // lower pyramid levels kept in memory up to this, then a temp file
    bool previews = true;        // <slide stem>/preview.png, and thumbnails in report.html

    // [tiling]
    int patch_size = 512;
    int overlap = 64;
    std::optional<double> mpp;  // at most one of mpp / level; neither: level 0
    std::optional<int> level;
    int sections = 2;      // patch rows per section (row band)
    int subsections = 8;   // patch columns per subsection inside a section
    bool tissue = false;            // skip patches without tissue (mask from a low level)
    double tissue_threshold = 0.05; // least tissue share of a patch's area for it to run
    bool tissue_preview = false;    // CLI --tissue-mask: <dir>/<slide>/tissue-mask.png
    double roi_threshold = 0.05;    // least share of a patch's area inside the ROI for it to run

    // [runtime]
    std::string device = "cpu";  // cpu | cuda | cuda:N
    int readers = 4;
    int max_in_flight = 256;
    int threads = 0;        // TBB worker threads; 0: all cores
    int torch_threads = 0;  // LibTorch intra-op threads; 0: derived (README)
    int infer_slots = 0;    // concurrent infer calls; 0: 1 on CPU, 2 per GPU
    // fail: a read error fails the slide. skip: the patch is left out (0 in maps, no row, no
    // objects) and counted in summary.json's patches_unreadable; the slide goes on.
    ReadErrorPolicy on_read_error = ReadErrorPolicy::fail;
    SlideReader reader = SlideReader::automatic;
    // Decoded tiles kept per open slide by the native reader: a band of tile rows as deep
    // as the walk's sections, at most this many MB (README, "Memory").
    std::int64_t tile_cache_mb = 1024;

    // [[models]]
    std::vector<ModelConfig> models;
};

// The tiling `model` reads: its own patch_size/overlap/mpp/level where set, else cfg's.
Tiling tiling_for(const Config& cfg, const ModelConfig& model);

// Reads and validates a pipeline TOML file. `overrides` are "dotted.key=value" strings
// (the CLI's --set), parsed as TOML values (a bare word that is not valid TOML is taken
// as a string). Throws ConfigError naming the file, the key and its line:column.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// One [[models]] entry on its own, as `flowinfer inspect` shows it: `path` (a TorchScript file
// or a WSInfer model directory, relative to the current directory) with `settings`, "key=value"
// model keys (TOML values; a bare word is a string), and what the model says about itself
// applied as load_config applies it. Throws ConfigError.
ModelConfig load_model_entry(const std::string& path, const std::vector<std::string>& settings = {});

// Same as load_config, from TOML text; `source_name` is used in messages and relative paths
// resolve against `base_dir`.
Config parse_config(const std::string& toml_text, const std::string& source_name,
                    const std::string& base_dir, const std::vector<std::string>& overrides = {});

const char* to_string(Precision p) noexcept;
const char* to_string(Activation a) noexcept;
const char* to_string(Blend b) noexcept;
const char* to_string(Task t) noexcept;
const char* to_string(DetectionFormat f) noexcept;
const char* to_string(ReadErrorPolicy p) noexcept;
const char* to_string(SlideReader r) noexcept;
const char* to_string(EmbeddingDtype d) noexcept;
const char* to_string(OutputLayout l) noexcept;
const char* to_string(RoiMissing r) noexcept;
// As pipeline.toml spells it: "rgb", "bgr" or "gray" (with the quotes), or [2], [0, 1].
std::string channels_name(const std::vector<int>& channels);
// "first tensor", "[1]" or "[\"seg\"]".
std::string output_name(const OutputSelector& output);

}  // namespace flowinfer
