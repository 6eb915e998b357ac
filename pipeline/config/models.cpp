// [[models]]: the TorchScript models to run, each with its task, batching and overrides.

#include "pipeline/config/read.hpp"

#include <flowinfer/errors.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

namespace flowinfer::config {

namespace {

// A model with more input channels than this is not an image model flowinfer can feed.
constexpr std::size_t kMaxChannels = 16;

bool valid_model_name(const std::string& name) {
    return !name.empty() && std::all_of(name.begin(), name.end(), [](char ch) {
        return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
               ch == '.' || ch == '_' || ch == '-';
    });
}

std::array<std::uint8_t, 3> read_color(const Context& c, const std::string& key, const toml::node& n) {
    const toml::array* arr = n.as_array();
    if (!arr) wrong_type(c, key, n, "an array of 3 integers 0..255");
    if (arr->size() != 3) c.fail(key, &n, fmt::format("must have 3 integers (R, G, B), got {}", arr->size()));
    std::array<std::uint8_t, 3> rgb{};
    for (std::size_t i = 0; i < 3; ++i)
        rgb[i] = static_cast<std::uint8_t>(read_int(c, fmt::format("{}[{}]", key, i), (*arr)[i], 0, 255));
    return rgb;
}

// classes = ["stroma", "tumor"] or [{name = "tumor", color = [255, 0, 0]}, ...]
std::vector<ClassSpec> read_classes(const Context& c, const std::string& key, const toml::node& n) {
    const toml::array* arr = n.as_array();
    if (!arr) wrong_type(c, key, n, "an array of class names or {name, color} tables");
    std::vector<ClassSpec> out;
    for (std::size_t i = 0; i < arr->size(); ++i) {
        const toml::node& e = (*arr)[i];
        const std::string ekey = fmt::format("{}[{}]", key, i);
        ClassSpec cs;
        if (const toml::table* t = e.as_table()) {
            for (auto&& [k, v] : *t)
                if (k.str() != "name" && k.str() != "color")
                    c.fail(ekey + "." + std::string(k.str()), &v, "unknown key (a class has name and color)");
            cs.name = read_string(c, ekey + ".name", *require(c, t, "name", ekey + ".name"));
            if (const toml::node* col = t->get("color")) cs.color = read_color(c, ekey + ".color", *col);
        } else {
            cs.name = read_string(c, ekey, e);
        }
        if (cs.name.empty()) c.fail(ekey, &e, "class name must not be empty");
        out.push_back(std::move(cs));
    }
    return out;
}

// mean, std: one number per input channel (`channels`).
std::vector<float> read_values(const Context& c, const std::string& key, const toml::node& n, bool positive) {
    const toml::array* arr = n.as_array();
    if (!arr) wrong_type(c, key, n, "an array of numbers, one per input channel");
    if (arr->empty() || arr->size() > kMaxChannels)
        c.fail(key, &n, fmt::format("must have 1 to {} numbers (one per input channel), got {}", kMaxChannels,
                                    arr->size()));
    std::vector<float> out;
    for (std::size_t i = 0; i < arr->size(); ++i) {
        const toml::node& e = (*arr)[i];
        std::string ekey = fmt::format("{}[{}]", key, i);
        double x = read_number(c, ekey, e);
        if (std::fabs(x) > std::numeric_limits<float>::max())
            c.fail(ekey, &e, fmt::format("{} is out of float range", x));
        if (positive && x <= 0) c.fail(ekey, &e, fmt::format("must be > 0 (got {})", x));
        // std is a divisor: a value that is 0 or subnormal as a float (1e-72 passes x > 0)
        // would make every normalized pixel inf or NaN.
        if (positive && static_cast<float>(x) < std::numeric_limits<float>::min())
            c.fail(ekey, &e, fmt::format("must be at least {} (got {})", std::numeric_limits<float>::min(), x));
        out.push_back(static_cast<float>(x));
    }
    return out;
}

// channels = "rgb" | "bgr" | "gray" | [indices into R, G, B]
std::vector<int> read_channels(const Context& c, const std::string& key, const toml::node& n) {
    if (n.is_string()) {
        const std::string s = read_string(c, key, n);
        if (s == "rgb") return {0, 1, 2};
        if (s == "bgr") return {2, 1, 0};
        if (s == "gray") return {kLuma};
        c.fail(key, &n, fmt::format("must be \"rgb\", \"bgr\", \"gray\" or a list of indices into R, G, B such as "
                                    "[1] (got '{}')",
                                    s));
    }
    const toml::array* arr = n.as_array();
    if (!arr) wrong_type(c, key, n, "\"rgb\", \"bgr\", \"gray\" or an array of indices 0..2");
    if (arr->empty() || arr->size() > kMaxChannels)
        c.fail(key, &n, fmt::format("must list 1 to {} channels, got {}", kMaxChannels, arr->size()));
    std::vector<int> out;
    for (std::size_t i = 0; i < arr->size(); ++i)
        out.push_back(read_int(c, fmt::format("{}[{}]", key, i), (*arr)[i], 0, 2));
    return out;
}

// output = an index into a tuple or list, or a dict's key.
OutputSelector read_output(const Context& c, const std::string& key, const toml::node& n) {
    OutputSelector o;
    if (n.is_string()) {
        o.key = read_string(c, key, n);
        if (o.key->empty()) c.fail(key, &n, "must not be empty");
    } else if (n.is_integer()) {
        o.index = read_int(c, key, n, 0, 1 << 16);
    } else {
        wrong_type(c, key, n, "an index (integer) or a dict key (string)");
    }
    return o;
}

// Keys that belong to some tasks only: metadata's such keys are left out for a model whose
// task pipeline.toml changes, and pipeline.toml's are errors (below).
bool meaningful_for(std::string_view k, Task t) {
    if (k == "blend" || k == "output_layout") return t == Task::segmentation;
    if (k == "detection_format" || k == "conf_threshold" || k == "iou_threshold" || k == "max_detections" ||
        k == "class_agnostic")
        return t == Task::detection;
    if (k == "embedding_dtype") return t == Task::embedding;
    if (k.rfind("contour", 0) == 0 || k == "min_area_um2") return t == Task::segmentation;
    if (k == "activation") return t != Task::detection && t != Task::embedding;
    if (k == "classes") return t != Task::embedding;
    return true;
}

// What a model file may say about itself: what the model is, not how a run runs it.
const std::vector<std::string_view>& metadata_keys() {
    static const std::vector<std::string_view> keys = {
        "task", "channels", "mean", "std", "activation", "blend", "classes", "patch_size", "overlap", "mpp",
        "level", "output", "output_layout", "detection_format", "conf_threshold", "iou_threshold",
        "max_detections", "class_agnostic", "embedding_dtype", "contour_classes", "contour_threshold",
        "min_area_um2"};
    return keys;
}

// ImageNet's statistics of the RGB channels a model takes: rgb as is, bgr reversed, [1] G's.
// Luma has none: a grey-level model's mean and std must be given.
bool default_normalization(const std::vector<int>& channels, std::vector<float>& mean, std::vector<float>& std) {
    const ModelConfig defaults;
    mean.clear();
    std.clear();
    for (int ch : channels) {
        if (ch == kLuma) return false;
        mean.push_back(defaults.mean[static_cast<std::size_t>(ch)]);
        std.push_back(defaults.std[static_cast<std::size_t>(ch)]);
    }
    return true;
}

// Every key but name and path, from `m` (pipeline.toml's entry with the metadata merged in;
// `meta` says where keys that `own`, the entry itself, lacks came from).
void read_model_keys(const Context& c, const toml::table& m, const std::string& prefix, ModelConfig& mc,
                     const toml::table* own = nullptr, const std::string& meta = "") {
    auto key = [&](const char* k) { return prefix.empty() ? std::string(k) : prefix + "." + k; };
    auto origin = [&](const char* k) {
        return own && !own->contains(k) && m.contains(k) ? fmt::format(", from {}", meta) : std::string();
    };
    if (const toml::node* n = m.get("task"))
        mc.task = read_choice<Task>(c, key("task"), *n,
                                    {{"segmentation", Task::segmentation},
                                     {"classification", Task::classification},
                                     {"detection", Task::detection},
                                     {"embedding", Task::embedding}});
    if (const toml::node* n = m.get("batch_size"))
        mc.batch_size = read_int(c, key("batch_size"), *n, 1, 4096);
    if (const toml::node* n = m.get("cpu_micro_batch"))
        mc.cpu_micro_batch = read_int(c, key("cpu_micro_batch"), *n, 1, 4096);
    if (const toml::node* n = m.get("precision"))
        mc.precision = read_choice<Precision>(
            c, key("precision"), *n,
            {{"fp32", Precision::fp32}, {"fp16", Precision::fp16}, {"bf16", Precision::bf16}});
    const toml::node* channels = m.get("channels");
    if (channels) mc.channels = read_channels(c, key("channels"), *channels);
    const toml::node* mean = m.get("mean");
    const toml::node* std = m.get("std");
    if (mean) mc.mean = read_values(c, key("mean"), *mean, false);
    if (std) mc.std = read_values(c, key("std"), *std, true);
    const std::size_t count = mc.channels.size();
    if ((!mean || !std) && channels) {
        std::vector<float> dm, ds;
        if (!default_normalization(mc.channels, dm, ds))
            c.fail(key("channels"), channels,
                   fmt::format("{} has no default mean and std: set both ({}, {}), one value per input channel",
                               channels_name(mc.channels), key("mean"), key("std")));
        if (!mean) mc.mean = dm;
        if (!std) mc.std = ds;
    }
    const std::string from = channels ? fmt::format("channels = {}{}", channels_name(mc.channels), origin("channels"))
                                      : "channels = \"rgb\", the default";
    if (mc.mean.size() != count)
        c.fail(key("mean"), mean, fmt::format("has {} values for {} input channel(s) ({}): one value per channel",
                                              mc.mean.size(), count, from));
    if (mc.std.size() != count)
        c.fail(key("std"), std, fmt::format("has {} values for {} input channel(s) ({}): one value per channel",
                                            mc.std.size(), count, from));
    if (const toml::node* n = m.get("activation"))
        mc.activation = read_choice<Activation>(c, key("activation"), *n,
                                                {{"softmax", Activation::softmax},
                                                 {"sigmoid", Activation::sigmoid},
                                                 {"none", Activation::none}});
    if (const toml::node* n = m.get("blend"))
        mc.blend = read_choice<Blend>(c, key("blend"), *n,
                                      {{"average", Blend::average}, {"weighted", Blend::weighted}});
    if (const toml::node* n = m.get("output")) mc.output = read_output(c, key("output"), *n);
    if (const toml::node* n = m.get("output_layout"))
        mc.output_layout = read_choice<OutputLayout>(c, key("output_layout"), *n,
                                                     {{"nchw", OutputLayout::nchw}, {"nhwc", OutputLayout::nhwc}});
    if (const toml::node* n = m.get("device")) mc.device = read_device(c, key("device"), *n);
    if (const toml::node* n = m.get("patch_size")) mc.patch_size = read_int(c, key("patch_size"), *n, 16, 8192);
    if (const toml::node* n = m.get("overlap")) mc.overlap = read_int(c, key("overlap"), *n, 0);
    if (const toml::node* n = m.get("mpp")) mc.mpp = read_positive(c, key("mpp"), *n);
    if (const toml::node* n = m.get("level")) mc.level = read_int(c, key("level"), *n, 0);
    if (mc.mpp && mc.level)
        c.fail(key("level"), m.get("level"), "set either mpp or level for a model, not both");
    if (const toml::node* n = m.get("classes")) mc.classes = read_classes(c, key("classes"), *n);

    // Keys that only mean something for another task are errors, not silently ignored.
    const auto only_for = [&](const char* k, Task task) {
        if (const toml::node* n = m.get(k); n && mc.task != task)
            c.fail(key(k), n, fmt::format("applies to task {} only (this model's task is {})",
                                          to_string(task), to_string(mc.task)));
    };
    only_for("blend", Task::segmentation);
    only_for("output_layout", Task::segmentation);
    for (const char* k : {"detection_format", "conf_threshold", "iou_threshold", "max_detections", "class_agnostic"})
        only_for(k, Task::detection);
    only_for("embedding_dtype", Task::embedding);
    for (const char* k : {"contours", "contour_classes", "contour_threshold", "contour_tolerance", "min_area_um2"})
        only_for(k, Task::segmentation);
    if (const toml::node* n = m.get("activation"); n && mc.task == Task::detection)
        c.fail(key("activation"), n, "does not apply to task detection (scores are decoded as given)");
    // Features are written as the model returns them: an activation over D would change them.
    if (const toml::node* n = m.get("activation"); n && mc.task == Task::embedding)
        c.fail(key("activation"), n, "does not apply to task embedding (features are written as the model returns them)");
    if (const toml::node* n = m.get("classes"); n && mc.task == Task::embedding)
        c.fail(key("classes"), n, "does not apply to task embedding (features have no classes)");
    if (mc.task == Task::embedding) mc.activation = Activation::none;
    if (const toml::node* n = m.get("detection_format"))
        mc.detection_format = read_choice<DetectionFormat>(
            c, key("detection_format"), *n,
            {{"boxes", DetectionFormat::boxes}, {"yolov8", DetectionFormat::yolov8}, {"yolov5", DetectionFormat::yolov5}});
    if (const toml::node* n = m.get("conf_threshold"))
        mc.conf_threshold = static_cast<float>(read_fraction(c, key("conf_threshold"), *n));
    if (const toml::node* n = m.get("iou_threshold"))
        mc.iou_threshold = static_cast<float>(read_fraction(c, key("iou_threshold"), *n));
    if (const toml::node* n = m.get("max_detections"))
        mc.max_detections = read_int(c, key("max_detections"), *n, 1, 1000000);
    if (const toml::node* n = m.get("class_agnostic")) mc.class_agnostic = read_bool(c, key("class_agnostic"), *n);
    if (const toml::node* n = m.get("embedding_dtype"))
        mc.embedding_dtype = read_choice<EmbeddingDtype>(
            c, key("embedding_dtype"), *n, {{"float32", EmbeddingDtype::float32}, {"float16", EmbeddingDtype::float16}});
    read_contour_keys(c, m, prefix, mc);
}

// pipeline.toml's entry with the model's own keys under it: a key pipeline.toml sets wins
// (mpp and level as one), and a key of another task than the entry's is left out.
toml::table merge_metadata(const Context& c, const toml::table& m, const std::string& prefix, const ModelMetadata& meta) {
    for (auto&& [k, v] : meta.keys)
        if (!contains(metadata_keys(), k.str()))
            throw ConfigError(meta.source, std::string(k.str()), 0, 0,
                              fmt::format("is not a key a model file may set (it may set: {})", join(metadata_keys())));
    // Checked alone first, so that a bad value is reported with the file it came from.
    ModelConfig alone;
    read_model_keys(Context{meta.source, c.base_dir, {}}, meta.keys, "", alone);
    Task task = alone.task;
    if (const toml::node* n = m.get("task")) {
        ModelConfig own;
        toml::table t;
        t.insert("task", *n);
        read_model_keys(c, t, prefix, own);
        task = own.task;
    }
    toml::table merged = m;
    const bool own_resolution = m.contains("mpp") || m.contains("level");
    for (auto&& [k, v] : meta.keys) {
        const std::string_view name = k.str();
        if (m.contains(name) || ((name == "mpp" || name == "level") && own_resolution) || !meaningful_for(name, task))
            continue;
        merged.insert(k, v);
    }
    return merged;
}

ModelConfig read_model(const Context& c, const toml::table& m, const std::string& prefix) {
    auto key = [&](const char* k) { return prefix + "." + k; };
    ModelConfig mc;

    const toml::node* name = require(c, &m, "name", key("name"));
    mc.name = read_string(c, key("name"), *name);
    if (!valid_model_name(mc.name))
        c.fail(key("name"), name,
               fmt::format("'{}' must be non-empty and use only letters, digits, '.', '_', '-' "
                           "(it names the output file)",
                           mc.name));

    const toml::node* path = require(c, &m, "path", key("path"));
    std::string p = read_string(c, key("path"), *path);
    if (p.empty()) c.fail(key("path"), path, "must not be empty");
    mc.path = resolve(c, p).string();

    if (const std::optional<ModelMetadata> meta = read_model_metadata(c, key("path"), path, mc.path)) {
        mc.metadata = meta->source;
        read_model_keys(c, merge_metadata(c, m, prefix, *meta), prefix, mc, &m, meta->source);
    } else {
        read_model_keys(c, m, prefix, mc);
    }
    return mc;
}

void check_unique_names(const Context& c, const toml::array& arr,
                        const std::vector<ModelConfig>& models) {
    for (std::size_t i = 1; i < models.size(); ++i)
        for (std::size_t j = 0; j < i; ++j)
            if (models[i].name == models[j].name)
                c.fail(fmt::format("models[{}].name", i), arr[i].as_table()->get("name"),
                       fmt::format("duplicate model name '{}' (also used by models[{}])",
                                   models[i].name, j));
}

void read_models(const Context& c, const toml::table& root, Config& cfg) {
    const toml::node* n = root.get("models");
    if (!n) c.fail("models", toml::source_region{}, "at least one [[models]] entry is required");
    const toml::array* arr = n->as_array();
    if (arr && arr->empty()) c.fail("models", n, "at least one [[models]] entry is required");
    if (!arr || !arr->is_array_of_tables())
        wrong_type(c, "models", *n, "an array of tables ([[models]])");

    for (std::size_t i = 0; i < arr->size(); ++i)
        cfg.models.push_back(read_model(c, *(*arr)[i].as_table(), fmt::format("models[{}]", i)));
    check_unique_names(c, *arr, cfg.models);
}

}  // namespace

}  // namespace flowinfer::config

namespace flowinfer {

ModelConfig load_model_entry(const std::string& path, const std::vector<std::string>& settings) {
    using namespace config;
    toml::table entry;
    entry.insert("name", "model");
    entry.insert("path", path);
    for (const std::string& s : settings) {
        const std::size_t eq = s.find('=');
        const std::string k = trim(s.substr(0, eq));
        if (eq == std::string::npos || k.empty() || !contains(models_table().keys, k) || k == "name" || k == "path")
            throw ConfigError("--set", s, 0, 0, "expected KEY=VALUE with KEY a model key (README, \"Config\")");
        entry.insert_or_assign(k, *parse_override_value(trim(s.substr(eq + 1))).get("v"));
    }
    const Context c{"--set", std::filesystem::current_path(), {}};
    return read_model(c, entry, "model");
}

}  // namespace flowinfer

namespace flowinfer::config {

const TableSchema& models_table() {
    static const TableSchema schema{
        "models",
        Shape::array_of_tables,
        {"name", "path", "task", "batch_size", "precision", "channels", "mean", "std", "activation", "blend",
         "device", "patch_size", "overlap", "mpp", "level", "classes", "detection_format",
         "conf_threshold", "iou_threshold", "max_detections", "class_agnostic", "cpu_micro_batch",
         "embedding_dtype", "output", "output_layout", "contours", "contour_classes", "contour_threshold",
         "contour_tolerance", "min_area_um2"},
        read_models};
    return schema;
}

}  // namespace flowinfer::config

namespace flowinfer {

const char* to_string(Precision p) noexcept {
    switch (p) {
        case Precision::fp32: return "fp32";
        case Precision::fp16: return "fp16";
        case Precision::bf16: return "bf16";
    }
    return "?";
}

const char* to_string(Activation a) noexcept {
    switch (a) {
        case Activation::softmax: return "softmax";
        case Activation::sigmoid: return "sigmoid";
        case Activation::none: return "none";
    }
    return "?";
}

const char* to_string(Blend b) noexcept {
    switch (b) {
        case Blend::average: return "average";
        case Blend::weighted: return "weighted";
    }
    return "?";
}

const char* to_string(Task t) noexcept {
    switch (t) {
        case Task::segmentation: return "segmentation";
        case Task::classification: return "classification";
        case Task::detection: return "detection";
        case Task::embedding: return "embedding";
    }
    return "?";
}

const char* to_string(DetectionFormat f) noexcept {
    switch (f) {
        case DetectionFormat::boxes: return "boxes";
        case DetectionFormat::yolov8: return "yolov8";
        case DetectionFormat::yolov5: return "yolov5";
    }
    return "?";
}

const char* to_string(EmbeddingDtype d) noexcept {
    switch (d) {
        case EmbeddingDtype::float32: return "float32";
        case EmbeddingDtype::float16: return "float16";
    }
    return "?";
}

const char* to_string(RoiMissing r) noexcept {
    switch (r) {
        case RoiMissing::error: return "error";
        case RoiMissing::all: return "all";
        case RoiMissing::skip: return "skip";
    }
    return "?";
}

const char* to_string(OutputLayout l) noexcept {
    switch (l) {
        case OutputLayout::nchw: return "nchw";
        case OutputLayout::nhwc: return "nhwc";
    }
    return "?";
}

std::string channels_name(const std::vector<int>& channels) {
    if (channels == std::vector<int>{0, 1, 2}) return "\"rgb\"";
    if (channels == std::vector<int>{2, 1, 0}) return "\"bgr\"";
    if (channels == std::vector<int>{kLuma}) return "\"gray\"";
    std::string s;
    for (int ch : channels) s += (s.empty() ? "" : ", ") + (ch == kLuma ? std::string("luma") : std::to_string(ch));
    return "[" + s + "]";
}

std::string output_name(const OutputSelector& output) {
    if (output.index) return fmt::format("[{}]", *output.index);
    if (output.key) return fmt::format("[\"{}\"]", *output.key);
    return "the first tensor";
}

}  // namespace flowinfer
