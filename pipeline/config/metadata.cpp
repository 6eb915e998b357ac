// What a model says about itself: a WSInfer model directory's config.json, or the
// flowinfer.json inside a TorchScript archive. Both become model keys as if written in
// [[models]]; models.cpp applies them under pipeline.toml's (README, "Models").

#include "pipeline/config/read.hpp"

#include "stages/model_file.hpp"

#include <flowinfer/errors.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>

namespace flowinfer::config {

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// WSInfer's model zoo names its TorchScript file so (wsinfer_zoo.client.HF_TORCHSCRIPT_NAME).
constexpr const char* kWsinferModelFile = "torchscript_model.pt";

[[noreturn]] void fail(const std::string& file, const std::string& key, const std::string& problem) {
    throw ConfigError(file, key, 0, 0, problem);
}

Json parse_json(const std::string& file, const std::string& text) {
    try {
        return Json::parse(text);
    } catch (const Json::parse_error& e) {
        fail(file, "", fmt::format("not valid JSON (byte {}): {}", e.byte, e.what()));
    }
}

// A JSON value as the TOML node read_model would see in pipeline.toml.
void put(const std::string& file, const std::string& key, const Json& j, toml::table& t, const std::string& name);

toml::array to_array(const std::string& file, const std::string& key, const Json& j) {
    toml::array a;
    for (std::size_t i = 0; i < j.size(); ++i) {
        const std::string k = fmt::format("{}[{}]", key, i);
        const Json& e = j[i];
        if (e.is_object()) {
            toml::table t;
            for (const auto& [name, v] : e.items()) put(file, k + "." + name, v, t, name);
            a.push_back(std::move(t));
        } else if (e.is_array()) {
            a.push_back(to_array(file, k, e));
        } else if (e.is_string()) {
            a.push_back(e.get<std::string>());
        } else if (e.is_boolean()) {
            a.push_back(e.get<bool>());
        } else if (e.is_number_integer()) {
            a.push_back(e.get<std::int64_t>());
        } else if (e.is_number()) {
            a.push_back(e.get<double>());
        } else {
            fail(file, k, "null is not a value");
        }
    }
    return a;
}

void put(const std::string& file, const std::string& key, const Json& j, toml::table& t, const std::string& name) {
    if (j.is_object()) {
        toml::table sub;
        for (const auto& [k, v] : j.items()) put(file, key + "." + k, v, sub, k);
        t.insert_or_assign(name, std::move(sub));
    } else if (j.is_array()) {
        t.insert_or_assign(name, to_array(file, key, j));
    } else if (j.is_string()) {
        t.insert_or_assign(name, j.get<std::string>());
    } else if (j.is_boolean()) {
        t.insert_or_assign(name, j.get<bool>());
    } else if (j.is_number_integer()) {
        t.insert_or_assign(name, j.get<std::int64_t>());
    } else if (j.is_number()) {
        t.insert_or_assign(name, j.get<double>());
    } else {
        fail(file, key, "null is not a value");
    }
}

// --- WSInfer (SBU-BMI/wsinfer-zoo, schemas/model-config.schema.json, spec_version 1.0) ------

const Json& member(const std::string& file, const Json& j, const char* key) {
    const auto it = j.find(key);
    if (it == j.end()) fail(file, key, "missing (WSInfer's model config requires it)");
    return *it;
}

std::int64_t positive_int(const std::string& file, const std::string& key, const Json& v) {
    if (!v.is_number_integer() || v.get<std::int64_t>() < 1) fail(file, key, fmt::format("must be an integer >= 1, got {}", v.dump()));
    return v.get<std::int64_t>();
}

toml::array numbers3(const std::string& file, const std::string& key, const Json& v) {
    if (!v.is_array() || v.size() != 3 || !std::all_of(v.begin(), v.end(), [](const Json& e) { return e.is_number(); }))
        fail(file, key, fmt::format("must be 3 numbers (R, G, B), got {}", v.dump()));
    toml::array a;
    for (const Json& e : v) a.push_back(e.get<double>());
    return a;
}

// Resize's size: an integer or [n] or [n, n]; flowinfer reads square patches.
std::int64_t resize_size(const std::string& file, const std::string& key, const Json& v) {
    if (v.is_array() && (v.size() == 1 || (v.size() == 2 && v[0] == v[1]))) return positive_int(file, key, v[0]);
    if (v.is_array())
        fail(file, key, fmt::format("{} is not square: flowinfer reads square patches", v.dump()));
    return positive_int(file, key, v);
}

void check_arguments(const std::string& file, const std::string& key, const Json& args,
                     std::initializer_list<const char*> allowed) {
    if (!args.is_object()) fail(file, key, "must be an object");
    for (const auto& [k, v] : args.items())
        if (std::none_of(allowed.begin(), allowed.end(), [&k = k](const char* a) { return k == a; }))
            fail(file, key + "." + k, "is an argument flowinfer cannot honour");
}

toml::table wsinfer_keys(const std::string& file, const Json& j) {
    if (!j.is_object()) fail(file, "", "must be a JSON object (WSInfer's model config)");
    const Json& spec = member(file, j, "spec_version");
    if (spec != "1.0") fail(file, "spec_version", fmt::format("{} is not a version flowinfer reads (\"1.0\")", spec.dump()));
    if (!member(file, j, "architecture").is_string()) fail(file, "architecture", "must be a string");
    const std::int64_t classes = positive_int(file, "num_classes", member(file, j, "num_classes"));
    const Json& names = member(file, j, "class_names");
    if (!names.is_array() || !std::all_of(names.begin(), names.end(), [](const Json& e) { return e.is_string(); }))
        fail(file, "class_names", "must be an array of strings");
    if (static_cast<std::int64_t>(names.size()) != classes)
        fail(file, "class_names", fmt::format("has {} names for num_classes = {}", names.size(), classes));
    const std::int64_t patch = positive_int(file, "patch_size_pixels", member(file, j, "patch_size_pixels"));
    const Json& spacing = member(file, j, "spacing_um_px");
    if (!spacing.is_number() || !(spacing.get<double>() > 0))
        fail(file, "spacing_um_px", fmt::format("must be a number > 0, got {}", spacing.dump()));

    // WSInfer reads patch_size_pixels at spacing_um_px and applies the transforms in order.
    const Json& transform = member(file, j, "transform");
    if (!transform.is_array()) fail(file, "transform", "must be an array of {name, arguments}");
    std::int64_t size = patch;
    bool to_tensor = false;
    toml::table out;
    out.insert("mean", toml::array{0.0, 0.0, 0.0});
    out.insert("std", toml::array{1.0, 1.0, 1.0});
    for (std::size_t i = 0; i < transform.size(); ++i) {
        const std::string key = fmt::format("transform[{}]", i);
        const Json& t = transform[i];
        if (!t.is_object() || !t.contains("name") || !t["name"].is_string())
            fail(file, key, "must be an object with a name");
        const std::string name = t["name"].get<std::string>();
        const Json args = t.value("arguments", Json::object());
        if (name == "Resize" && !to_tensor) {
            check_arguments(file, key + ".arguments", args, {"size", "antialias"});
            size = resize_size(file, key + ".arguments.size", member(file, args, "size"));
        } else if (name == "ToTensor" && !to_tensor) {
            check_arguments(file, key + ".arguments", args, {});
            to_tensor = true;
        } else if (name == "Normalize" && to_tensor) {
            check_arguments(file, key + ".arguments", args, {"mean", "std", "inplace"});
            out.insert_or_assign("mean", numbers3(file, key + ".arguments.mean", member(file, args, "mean")));
            out.insert_or_assign("std", numbers3(file, key + ".arguments.std", member(file, args, "std")));
        } else if (name == "Resize" || name == "ToTensor" || name == "Normalize") {
            fail(file, key + ".name", fmt::format("'{}' in this place is a transform flowinfer cannot apply (it applies "
                                                  "Resize, then ToTensor, then Normalize, each once)",
                                                  name));
        } else {
            fail(file, key + ".name", fmt::format("'{}' is not a transform flowinfer can apply (Resize, ToTensor, "
                                                  "Normalize)",
                                                  name));
        }
    }
    if (!to_tensor) fail(file, "transform", "has no ToTensor: flowinfer's patches are x / 255, as ToTensor makes them");
    out.insert("task", "classification");
    out.insert("activation", classes > 1 ? "softmax" : "sigmoid");  // as wsinfer's run_inference
    toml::array class_names;
    for (const Json& n : names) class_names.push_back(n.get<std::string>());
    out.insert("classes", std::move(class_names));
    // Resizing patch_size_pixels at spacing_um_px to `size` is reading `size` pixels over the
    // same field of view: size pixels at spacing * patch / size.
    out.insert("patch_size", size);
    out.insert("mpp", spacing.get<double>() * static_cast<double>(patch) / static_cast<double>(size));
    out.insert("overlap", 0);  // WSInfer's patches tile the slide without overlap
    return out;
}

std::optional<ModelMetadata> wsinfer_directory(const Context& c, const std::string& key, const toml::node* at,
                                               std::string& path) {
    const fs::path dir = path;
    const fs::path config = dir / "config.json";
    std::error_code ec;
    if (!fs::is_regular_file(config, ec))
        c.fail(key, at, fmt::format("'{}' is a directory without config.json: not a WSInfer model directory", path));
    fs::path model = dir / kWsinferModelFile;
    if (!fs::is_regular_file(model, ec)) {
        std::vector<fs::path> pts;
        for (const auto& e : fs::directory_iterator(dir, ec))
            if (e.path().extension() == ".pt" && e.is_regular_file(ec)) pts.push_back(e.path());
        if (pts.size() != 1)
            c.fail(key, at, fmt::format("'{}' holds no {} (WSInfer's name) and {} other .pt files: name the model file",
                                        path, kWsinferModelFile, pts.size()));
        model = pts.front();
    }
    std::string text;
    int err = 0;
    if (!read_whole_file(config.string(), text, err))
        c.fail(key, at, fmt::format("cannot read {}: {}", config.string(), std::strerror(err)));
    ModelMetadata meta;
    meta.source = config.string();
    meta.keys = wsinfer_keys(meta.source, parse_json(meta.source, text));
    path = model.string();
    return meta;
}

}  // namespace

std::optional<ModelMetadata> read_model_metadata(const Context& c, const std::string& key, const toml::node* at,
                                                 std::string& path) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) return wsinfer_directory(c, key, at, path);
    if (!fs::is_regular_file(path, ec)) return std::nullopt;  // the model's load says what is wrong
    const ModelFileInfo info = read_model_file(path);
    if (!info.flowinfer_json) return std::nullopt;
    ModelMetadata meta;
    meta.source = fmt::format("{}:{}", path, kModelMetadataFile);
    const Json j = parse_json(meta.source, *info.flowinfer_json);
    if (!j.is_object()) fail(meta.source, "", "must be a JSON object of model keys");
    for (const auto& [k, v] : j.items()) put(meta.source, k, v, meta.keys, k);
    return meta;
}

}  // namespace flowinfer::config
