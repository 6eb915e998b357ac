#include "stages/resume.hpp"

#include "stages/atomic_file.hpp"
#include "stages/json.hpp"
#include "stages/sha256.hpp"

#include <flowinfer/errors.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace flowinfer {

namespace {

// Bumped when the record's meaning changes, so records of an older layout are redone.
constexpr int kRecordFormat = 1;
constexpr const char* kRecordName = ".flowinfer-done.json";
constexpr const char* kComplete = "outputs complete (resume)";

const char* compression_name(Compression c) {
    switch (c) {
        case Compression::deflate: return "deflate";
        case Compression::lzw: return "lzw";
        case Compression::none: return "none";
    }
    return "?";
}

// Shortest text that reads back as the same value: a setting changed in its last bit is a
// different setting.
std::string num(double v) { return fmt::format("{}", v); }

template <class T>
std::string opt(const std::optional<T>& v) {
    return v ? fmt::format("{}", *v) : "none";
}

std::string list(const std::vector<float>& v) {
    std::string out;
    for (float x : v) out += (out.empty() ? "" : ",") + fmt::format("{}", x);
    return out;
}

}  // namespace

std::optional<SlideIdentity> identify_slide(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return std::nullopt;
    SlideIdentity id;
    id.path = path;
    id.size = static_cast<std::int64_t>(st.st_size);
    id.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    return id;
}

std::string resume_settings(const Config& cfg) {
    std::string s = fmt::format("flowinfer-resume {}\n", kRecordFormat);
    s += fmt::format("output.compression={}\noutput.deflate_level={}\n", compression_name(cfg.compression),
                     cfg.compression == Compression::deflate ? cfg.deflate_level : 0);
    // sections/subsections only reorder the walk, but the order in which overlapping patches
    // are blended and detections merged follows it: redoing is the safe side.
    s += fmt::format("tiling.sections={}\ntiling.subsections={}\n", cfg.sections, cfg.subsections);
    s += fmt::format("tiling.tissue={}\n", cfg.tissue);
    if (cfg.tissue) s += fmt::format("tiling.tissue_threshold={}\ntissue_preview={}\n", num(cfg.tissue_threshold), cfg.tissue_preview);
    if (!cfg.roi.empty() || cfg.region) {
        s += fmt::format("input.roi={}\ninput.roi_missing={}\ntiling.roi_threshold={}\n", json_string(cfg.roi),
                         to_string(cfg.roi_missing), num(cfg.roi_threshold));
        if (cfg.region)
            s += fmt::format("input.region={} {} {} {}\n", num((*cfg.region)[0]), num((*cfg.region)[1]),
                             num((*cfg.region)[2]), num((*cfg.region)[3]));
    }
    s += fmt::format("output.previews={}\n", cfg.previews);
    s += fmt::format("runtime.on_read_error={}\n", to_string(cfg.on_read_error));
    // The native reader gives a level's own pixels where OpenSlide resamples (non-integer
    // downsamples) and shrinks JPEG by 2/4/8 in the decoder: other pixels, so other outputs.
    s += fmt::format("runtime.reader={}\n", to_string(cfg.reader));
    for (std::size_t i = 0; i < cfg.models.size(); ++i) {
        const ModelConfig& m = cfg.models[i];
        const Tiling t = tiling_for(cfg, m);
        // Numerics depend on the kind of device and the precision, not on which GPU.
        const std::string device = m.device.value_or(cfg.device);
        const bool cuda = device.rfind("cuda", 0) == 0;
        const Precision precision = m.precision.value_or(cuda ? Precision::fp16 : Precision::fp32);
        const std::string p = fmt::format("models[{}].", i);
        s += fmt::format("{}name={}\n{}task={}\n", p, m.name, p, to_string(m.task));
        s += fmt::format("{}tiling={} {} mpp={} level={}\n", p, t.patch_size, t.overlap, opt(t.mpp), opt(t.level));
        s += fmt::format("{}device={}\n{}precision={}\n", p, cuda ? "cuda" : "cpu", p, to_string(precision));
        s += fmt::format("{}channels={}\n{}mean={}\n{}std={}\n", p, channels_name(m.channels), p, list(m.mean), p,
                         list(m.std));
        s += fmt::format("{}output={}\n{}output_layout={}\n", p, output_name(m.output), p, to_string(m.output_layout));
        s += fmt::format("{}activation={}\n{}blend={}\n", p, to_string(m.activation), p, to_string(m.blend));
        for (const ClassSpec& c : m.classes)
            s += fmt::format("{}class={} {}\n", p, json_string(c.name),
                             c.color ? fmt::format("{},{},{}", (*c.color)[0], (*c.color)[1], (*c.color)[2]) : "auto");
        if (m.task == Task::detection)
            s += fmt::format("{}detection={} conf={} iou={} max={} agnostic={}\n", p, to_string(m.detection_format),
                             num(m.conf_threshold), num(m.iou_threshold), m.max_detections, m.class_agnostic);
        if (m.task == Task::embedding) s += fmt::format("{}embedding_dtype={}\n", p, to_string(m.embedding_dtype));
        if (m.task == Task::segmentation && m.contours) {
            std::string classes;
            for (int c : m.contour_classes) classes += fmt::format("{},", c);
            s += fmt::format("{}contours={} t={} tol={} min_area={}\n", p, classes, num(m.contour_threshold),
                             num(m.contour_tolerance), num(m.min_area_um2));
        }
    }
    return s;
}

RunFingerprint::RunFingerprint(const Config& cfg) : version_(FLOWINFER_VERSION) {
    settings_sha256_ = sha256_hex(resume_settings(cfg));
    std::map<std::string, std::string> by_path;
    for (const ModelConfig& m : cfg.models) {
        auto it = by_path.find(m.path);
        if (it == by_path.end()) {
            try {
                it = by_path.emplace(m.path, sha256_file_cached(m.path)).first;
            } catch (const Error& e) {
                throw ModelError(m.name, fmt::format("cannot hash the model file for resume records: {}", e.what()));
            }
        }
        models_.push_back(ModelDigest{m.name, it->second});
    }
}

std::string RunFingerprint::key(const SlideIdentity& slide) const {
    Sha256 h;
    h.update(fmt::format("flowinfer-resume {}\nversion={}\nsettings={}\n", kRecordFormat, version_, settings_sha256_));
    for (const ModelDigest& m : models_) h.update(fmt::format("model={} {}\n", m.name, m.sha256));
    h.update(fmt::format("slide={}\nsize={}\nmtime_ns={}\n", slide.path, slide.size, slide.mtime_ns));
    return h.hex();
}

std::string done_record_path(const Config& cfg, const std::string& slide) {
    return (fs::path(cfg.output_dir) / fs::path(slide).stem() / kRecordName).string();
}

std::string image_record_path(const Config& cfg, const std::string& relative) {
    return (fs::path(cfg.output_dir) / ".flowinfer-done" / (relative + ".json")).string();
}

namespace {

// Typed reads of a record; false for a missing or mistyped member. Integers must be written
// as integers: nlohmann keeps them exact (a size or a nanosecond mtime is beyond a double's
// 53 bits), and a fraction or an out-of-range value is a record flowinfer did not write.
bool get(const Json& o, const char* key, std::string& out) {
    const auto it = o.find(key);
    if (it == o.end() || !it->is_string()) return false;
    out = it->get<std::string>();
    return true;
}

bool get(const Json& o, const char* key, std::int64_t& out) {
    const auto it = o.find(key);
    if (it == o.end() || !it->is_number_integer()) return false;
    if (it->is_number_unsigned() && it->get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) return false;
    out = it->get<std::int64_t>();
    return true;
}

bool get(const Json& o, const char* key, double& out) {
    const auto it = o.find(key);
    if (it == o.end() || !it->is_number()) return false;
    out = it->get<double>();
    return true;
}

std::optional<DoneRecord> parse_record(const std::string& text, const fs::path& dir) {
    const Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) return std::nullopt;  // also a parse error (discarded)
    std::int64_t format = 0;
    if (!get(j, "flowinfer_resume", format) || format != kRecordFormat) return std::nullopt;
    DoneRecord r;
    const auto slide = j.find("slide");
    const auto models = j.find("models");
    const auto outputs = j.find("outputs");
    if (!get(j, "key", r.key) || !get(j, "flowinfer", r.version) || !get(j, "settings_sha256", r.settings_sha256) ||
        !get(j, "patches", r.patches) || !get(j, "patches_skipped", r.patches_skipped) ||
        !get(j, "patches_unreadable", r.patches_unreadable) || slide == j.end() || !slide->is_object() ||
        !get(*slide, "path", r.slide.path) || !get(*slide, "size", r.slide.size) ||
        !get(*slide, "mtime_ns", r.slide.mtime_ns) || models == j.end() || !models->is_array() ||
        outputs == j.end() || !outputs->is_array())
        return std::nullopt;
    for (const Json& m : *models) {
        ModelDigest d;
        if (!m.is_object() || !get(m, "name", d.name) || !get(m, "sha256", d.sha256)) return std::nullopt;
        r.models.push_back(std::move(d));
    }
    for (const Json& o : *outputs) {
        DoneRecord::Output out;
        std::string file;
        if (!o.is_object() || !get(o, "file", file) || !get(o, "size", out.size) || !get(o, "model", out.info.model) ||
            !get(o, "kind", out.info.kind) || !get(o, "format", out.info.format) || file.empty())
            return std::nullopt;
        out.info.path = (dir / file).lexically_normal().string();  // an absolute `file` stays itself
        get(o, "width", out.info.width);
        get(o, "height", out.info.height);
        get(o, "downsample", out.info.downsample);
        get(o, "objects", out.info.objects);
        get(o, "rows", out.info.rows);
        get(o, "dim", out.info.dim);
        r.outputs.push_back(std::move(out));
    }
    if (const auto tables = j.find("table_rows"); tables != j.end()) {
        if (!tables->is_array()) return std::nullopt;
        for (const Json& t : *tables) {
            SlideResult::TableRows rows;
            if (!t.is_object() || !get(t, "model", rows.model) || !get(t, "header", rows.header) ||
                !get(t, "lines", rows.lines))
                return std::nullopt;
            r.table_rows.push_back(std::move(rows));
        }
    }
    return r;
}

// Why a record whose key differs does not do, from its parts.
std::string mismatch(const DoneRecord& r, const RunFingerprint& run, const SlideIdentity& slide) {
    if (r.version != run.version()) return fmt::format("flowinfer version changed ({} -> {})", r.version, run.version());
    if (r.settings_sha256 != run.settings_sha256()) return "settings changed";
    for (const ModelDigest& m : run.models()) {
        const auto was = std::find_if(r.models.begin(), r.models.end(), [&](const ModelDigest& d) { return d.name == m.name; });
        if (was == r.models.end()) return fmt::format("model '{}' is new", m.name);
        if (was->sha256 != m.sha256) return fmt::format("model '{}' file changed", m.name);
    }
    if (r.slide.path != slide.path) return fmt::format("slide path changed (was {})", r.slide.path);
    if (r.slide.size != slide.size) return "slide file changed (size)";
    if (r.slide.mtime_ns != slide.mtime_ns) return "slide file changed (modification time)";
    return "record key differs";
}

std::string read_small_file(const std::string& path, bool& found) {
    std::ifstream f(path, std::ios::binary);
    found = static_cast<bool>(f);
    std::ostringstream s;
    if (found) s << f.rdbuf();
    return s.str();
}

}  // namespace

ResumeCheck check_done(const std::string& record_path, const RunFingerprint& run,
                       const std::optional<SlideIdentity>& slide) {
    ResumeCheck c;
    bool found = false;
    const std::string text = read_small_file(record_path, found);
    if (!found) return c;  // never done: no reason to give
    std::optional<DoneRecord> r = parse_record(text, fs::path(record_path).parent_path());
    if (!r) {
        c.reason = "resume record unreadable";
        return c;
    }
    if (!slide) {
        c.reason = "slide file cannot be read";
        return c;
    }
    if (r->key != run.key(*slide)) {
        c.reason = mismatch(*r, run, *slide);
        return c;
    }
    for (const DoneRecord::Output& o : r->outputs) {
        struct stat st {};
        if (::stat(o.info.path.c_str(), &st) != 0) {
            c.reason = fmt::format("output missing: {}", fs::path(o.info.path).filename().string());
            return c;
        }
        if (static_cast<std::int64_t>(st.st_size) != o.size) {
            c.reason = fmt::format("output changed size: {}", fs::path(o.info.path).filename().string());
            return c;
        }
    }
    c.complete = true;
    c.reason = kComplete;
    c.record = std::move(r);
    return c;
}

void write_done_record(const std::string& record_path, const RunFingerprint& run, const SlideIdentity& slide,
                       const SlideResult& result, Sync sync) {
    const fs::path dir = fs::path(record_path).parent_path();
    Json j = {{"flowinfer_resume", kRecordFormat},
              {"key", run.key(slide)},
              {"flowinfer", run.version()},
              {"settings_sha256", run.settings_sha256()}};
    Json& models = j["models"] = Json::array();
    for (const ModelDigest& m : run.models()) models.push_back({{"name", m.name}, {"sha256", m.sha256}});
    j["slide"] = {{"path", slide.path}, {"size", slide.size}, {"mtime_ns", slide.mtime_ns}};
    j["patches"] = result.patches;
    j["patches_skipped"] = result.patches_skipped;
    j["patches_unreadable"] = result.patches_unreadable;
    Json& outputs = j["outputs"] = Json::array();
    for (const OutputInfo& o : result.outputs) {
        struct stat st {};
        if (::stat(o.path.c_str(), &st) != 0)
            throw OutputError(o.path, fmt::format("cannot stat a finished output for the resume record: {}",
                                                  std::strerror(errno)));
        // Relative to the record, so an output directory that is moved keeps its records.
        const fs::path rel = fs::path(o.path).lexically_relative(dir);
        const bool inside = !rel.empty() && *rel.begin() != "..";
        Json e = {{"file", inside ? rel.string() : o.path},
                  {"size", static_cast<std::int64_t>(st.st_size)},
                  {"model", o.model},
                  {"kind", o.kind},
                  {"format", o.format}};
        add_output_details(e, o);
        outputs.push_back(std::move(e));
    }
    if (!result.table_rows.empty()) {
        Json& tables = j["table_rows"] = Json::array();
        for (const SlideResult::TableRows& t : result.table_rows)
            tables.push_back({{"model", t.model}, {"header", t.header}, {"lines", t.lines}});
    }
    std::error_code ec;
    fs::create_directories(dir, ec);  // an image's record lies in a tree of its own
    if (ec) throw OutputError(dir.string(), "cannot create the resume record's directory: " + ec.message());
    write_file_atomically(record_path, json_text(j), sync);
}

void remove_done_record(const std::string& record_path) {
    // ENOTDIR: something else holds the slide directory's name, so there is no record either;
    // writing the slide's outputs then fails with that directory's path.
    if (::unlink(record_path.c_str()) != 0 && errno != ENOENT && errno != ENOTDIR)
        throw OutputError(record_path, fmt::format("cannot remove the resume record before redoing its slide: {}",
                                                   std::strerror(errno)));
}

}  // namespace flowinfer
