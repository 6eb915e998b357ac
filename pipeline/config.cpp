#include <flowinfer/config.hpp>
#include <flowinfer/errors.hpp>

#include <fmt/format.h>
#include <glob.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <set>
#include <string_view>
#include <utility>

namespace flowinfer {

namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Schema

struct Section {
    const char* name;
    std::vector<std::string_view> keys;
};

const std::vector<Section>& sections() {
    static const std::vector<Section> all = {
        {"input", {"slides", "manifest"}},
        {"output", {"dir", "compression", "deflate_level", "spill_mb"}},
        {"tiling",
         {"patch_size", "overlap", "mpp", "level", "sections", "subsections", "tissue",
          "tissue_threshold"}},
        {"runtime",
         {"device", "readers", "max_in_flight", "threads", "torch_threads", "infer_slots",
          "on_read_error"}},
    };
    return all;
}

const std::vector<std::string_view>& model_keys() {
    static const std::vector<std::string_view> keys = {
        "name",       "path",           "task",           "batch_size",     "precision",
        "mean",       "std",            "activation",     "blend",          "device",
        "patch_size", "overlap",        "mpp",            "level",          "classes",
        "detection_format", "conf_threshold", "iou_threshold", "max_detections",
        "class_agnostic", "cpu_micro_batch"};
    return keys;
}

const Section* find_section(std::string_view name) {
    for (const Section& s : sections())
        if (name == s.name) return &s;
    return nullptr;
}

bool contains(const std::vector<std::string_view>& keys, std::string_view k) {
    return std::find(keys.begin(), keys.end(), k) != keys.end();
}

std::string join(const std::vector<std::string_view>& words) {
    std::string out;
    for (std::string_view w : words) {
        if (!out.empty()) out += ", ";
        out += w;
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Error reporting

struct Context {
    std::string file;
    fs::path base_dir;
    std::set<std::string> from_set;  // dotted keys written by --set overrides

    // A value written by --set carries no file position; saying so keeps the user from
    // searching the file for a line that is not there.
    bool is_from_set(const std::string& key) const {
        for (const std::string& k : from_set) {
            if (key == k) return true;
            if (key.size() > k.size() && key.compare(0, k.size(), k) == 0 &&
                (key[k.size()] == '[' || key[k.size()] == '.'))
                return true;
        }
        return false;
    }

    [[noreturn]] void fail(const std::string& key, const toml::source_region& at,
                           const std::string& problem) const {
        if (is_from_set(key)) throw ConfigError(file, key, 0, 0, problem + " (from --set)");
        throw ConfigError(file, key, at.begin.line, at.begin.column, problem);
    }

    [[noreturn]] void fail(const std::string& key, const toml::node* at,
                           const std::string& problem) const {
        fail(key, at ? at->source() : toml::source_region{}, problem);
    }
};

const char* type_name(toml::node_type t) {
    switch (t) {
        case toml::node_type::table: return "table";
        case toml::node_type::array: return "array";
        case toml::node_type::string: return "string";
        case toml::node_type::integer: return "integer";
        case toml::node_type::floating_point: return "float";
        case toml::node_type::boolean: return "boolean";
        case toml::node_type::date: return "date";
        case toml::node_type::time: return "time";
        case toml::node_type::date_time: return "date-time";
        case toml::node_type::none: break;
    }
    return "nothing";
}

[[noreturn]] void wrong_type(const Context& c, const std::string& key, const toml::node& n,
                             const char* expected) {
    c.fail(key, &n, fmt::format("expected {}, got {}", expected, type_name(n.type())));
}

// ---------------------------------------------------------------------------------------------
// Unknown keys. Checked for the whole document before any value, so that a misspelt key is
// reported as such rather than as the required key it was meant to be.

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diag = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            std::size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
            diag = up;
        }
    }
    return row[b.size()];
}

std::string unknown_key_problem(std::string_view key, const std::vector<std::string_view>& known) {
    for (std::string_view k : known)
        if (edit_distance(key, k) <= 2) return fmt::format("unknown key (did you mean '{}'?)", k);
    return fmt::format("unknown key (known keys here: {})", join(known));
}

bool earlier(const toml::source_region& a, const toml::source_region& b) {
    return std::make_pair(a.begin.line, a.begin.column) <
           std::make_pair(b.begin.line, b.begin.column);
}

// Reports the first unknown key in file order (toml::table iterates in key order).
void check_keys(const Context& c, const toml::table& t, const std::string& prefix,
                const std::vector<std::string_view>& known) {
    const toml::node* worst = nullptr;
    std::string_view worst_key;
    for (auto&& [k, v] : t) {
        if (contains(known, k.str())) continue;
        if (!worst || earlier(v.source(), worst->source())) {
            worst = &v;
            worst_key = k.str();
        }
    }
    if (worst) {
        std::string full = prefix.empty() ? std::string(worst_key)
                                          : prefix + "." + std::string(worst_key);
        c.fail(full, worst, unknown_key_problem(worst_key, known));
    }
}

void check_all_keys(const Context& c, const toml::table& root) {
    std::vector<std::string_view> top;
    for (const Section& s : sections()) top.push_back(s.name);
    top.push_back("models");
    check_keys(c, root, "", top);

    for (const Section& s : sections())
        if (const toml::table* t = root[s.name].as_table()) check_keys(c, *t, s.name, s.keys);

    if (const toml::array* models = root["models"].as_array()) {
        for (std::size_t i = 0; i < models->size(); ++i)
            if (const toml::table* m = (*models)[i].as_table())
                check_keys(c, *m, fmt::format("models[{}]", i), model_keys());
    }
}

// ---------------------------------------------------------------------------------------------
// Typed readers

std::int64_t read_int64(const Context& c, const std::string& key, const toml::node& n,
                        std::int64_t lo, std::int64_t hi) {
    const auto* v = n.as_integer();
    if (!v) wrong_type(c, key, n, "an integer");
    std::int64_t x = v->get();
    if (x >= lo && x <= hi) return x;
    // Only a real upper limit is worth naming when the value is too small.
    if (x < lo && hi >= INT_MAX) c.fail(key, &n, fmt::format("must be >= {} (got {})", lo, x));
    c.fail(key, &n, fmt::format("must be between {} and {} (got {})", lo, hi, x));
}

// The upper bound defaults to INT_MAX so that a huge value is rejected instead of wrapping
// when narrowed to int.
int read_int(const Context& c, const std::string& key, const toml::node& n, int lo,
             int hi = INT_MAX) {
    return static_cast<int>(read_int64(c, key, n, lo, hi));
}

double read_number(const Context& c, const std::string& key, const toml::node& n) {
    double x = 0;
    if (const auto* i = n.as_integer())
        x = static_cast<double>(i->get());
    else if (const auto* f = n.as_floating_point())
        x = f->get();
    else
        wrong_type(c, key, n, "a number");
    if (!std::isfinite(x)) c.fail(key, &n, "must be a finite number");
    return x;
}

std::string read_string(const Context& c, const std::string& key, const toml::node& n) {
    const auto* s = n.as_string();
    if (!s) wrong_type(c, key, n, "a string");
    return s->get();
}

bool read_bool(const Context& c, const std::string& key, const toml::node& n) {
    const auto* b = n.as_boolean();
    if (!b) wrong_type(c, key, n, "a boolean");
    return b->get();
}

double read_fraction(const Context& c, const std::string& key, const toml::node& n) {
    const double x = read_number(c, key, n);
    if (x < 0 || x > 1) c.fail(key, &n, fmt::format("must be between 0 and 1 (got {})", x));
    return x;
}

template <typename E>
using Choices = std::vector<std::pair<std::string_view, E>>;

template <typename E>
E read_choice(const Context& c, const std::string& key, const toml::node& n,
              const Choices<E>& choices) {
    std::string s = read_string(c, key, n);
    std::vector<std::string_view> names;
    for (const auto& [name, e] : choices) {
        if (s == name) return e;
        names.push_back(name);
    }
    c.fail(key, &n, fmt::format("must be one of: {} (got '{}')", join(names), s));
}

const toml::table* read_table(const Context& c, const toml::table& root, const char* name) {
    const toml::node* n = root.get(name);
    if (!n) return nullptr;
    if (!n->is_table()) wrong_type(c, name, *n, "a table");
    return n->as_table();
}

const toml::node* require(const Context& c, const toml::table* t, const char* key,
                          const std::string& full_key) {
    const toml::node* n = t ? t->get(key) : nullptr;
    if (!n) c.fail(full_key, t, "required key is missing");
    return n;
}

fs::path resolve(const Context& c, const std::string& p) {
    return (c.base_dir / p).lexically_normal();
}

// ---------------------------------------------------------------------------------------------
// [input]

bool has_glob_chars(const std::string& s) {
    return s.find_first_of("*?[") != std::string::npos;
}

// The config's directory is a literal prefix of every pattern: escape it so that a directory
// named like "scans[2024]" is not read as a character class.
std::string glob_escape(const std::string& s) {
    std::string out;
    for (char ch : s) {
        if (ch == '*' || ch == '?' || ch == '[' || ch == ']' || ch == '\\') out += '\\';
        out += ch;
    }
    return out;
}

std::vector<std::string> expand_glob(const Context& c, const std::string& key,
                                     const toml::node& n, const std::string& entry) {
    fs::path rel(entry);
    std::string pattern = rel.is_absolute()
                              ? entry
                              : glob_escape(c.base_dir.lexically_normal().string()) + "/" + entry;
    glob_t g{};
    int rc = glob(pattern.c_str(), GLOB_NOSORT, nullptr, &g);
    std::vector<std::string> files;
    if (rc == 0) {
        for (std::size_t i = 0; i < g.gl_pathc; ++i) {
            std::error_code ec;
            // A slide is a file; a pattern like "dir/*" must not pull in subdirectories.
            if (!fs::is_directory(g.gl_pathv[i], ec))
                files.push_back(fs::path(g.gl_pathv[i]).lexically_normal().string());
        }
    }
    globfree(&g);
    if (rc != 0 && rc != GLOB_NOMATCH)
        c.fail(key, &n, fmt::format("cannot expand pattern '{}' (read error)", entry));
    if (files.empty()) c.fail(key, &n, fmt::format("pattern '{}' matches no file", entry));
    std::sort(files.begin(), files.end());
    return files;
}

std::vector<std::string> expand_entry(const Context& c, const std::string& key,
                                      const toml::node& n, const std::string& entry) {
    fs::path literal = resolve(c, entry);
    std::error_code ec;
    // A file whose name really contains '[' or '?' is taken as itself.
    if (!has_glob_chars(entry) || fs::exists(literal, ec)) return {literal.string()};
    return expand_glob(c, key, n, entry);
}

std::string trim_blanks(std::string_view s) {
    const auto first = s.find_first_not_of(" \t\r");
    if (first == std::string_view::npos) return {};
    const auto last = s.find_last_not_of(" \t\r");
    return std::string(s.substr(first, last - first + 1));
}

// input.manifest: one slide path per line; blank lines and lines starting with '#' are
// skipped; relative paths are relative to the manifest's own directory (a manifest is often
// written next to the slides it lists, by another tool). Every listed file must exist: a
// typo in a list of thousands is better caught before the night starts than after.
std::vector<std::string> read_manifest(const Context& c, const toml::node& n) {
    const std::string key = "input.manifest";
    const std::string entry = read_string(c, key, n);
    if (entry.empty()) c.fail(key, &n, "must not be empty");
    const fs::path manifest = resolve(c, entry);
    std::error_code ec;
    if (fs::is_directory(manifest, ec))
        c.fail(key, &n, fmt::format("manifest '{}' is a directory, not a list of slides", manifest.string()));
    std::FILE* f = std::fopen(manifest.c_str(), "rb");
    if (!f) c.fail(key, &n, fmt::format("cannot read manifest '{}': {}", manifest.string(), std::strerror(errno)));
    std::string text;
    char buf[65536];
    std::size_t got;
    while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, got);
    const int err = std::ferror(f) ? errno : 0;
    std::fclose(f);
    if (err) c.fail(key, &n, fmt::format("cannot read manifest '{}': {}", manifest.string(), std::strerror(err)));

    const fs::path dir = manifest.parent_path();
    std::vector<std::string> slides;
    std::uint32_t line_no = 0;
    for (std::size_t at = 0; at < text.size();) {
        const std::size_t nl = std::min(text.find('\n', at), text.size());
        const std::string_view line(text.data() + at, nl - at);
        at = nl + 1;
        ++line_no;
        const std::string path = trim_blanks(line);
        if (path.empty() || path[0] == '#') continue;
        const auto column = static_cast<std::uint32_t>(line.find_first_not_of(" \t") + 1);
        const fs::path p = (dir / path).lexically_normal();
        const auto problem = [&](const std::string& what) {
            return ConfigError(manifest.string(), key, line_no, column, what);
        };
        if (!fs::exists(p, ec)) throw problem(fmt::format("listed slide '{}' does not exist", p.string()));
        if (fs::is_directory(p, ec)) throw problem(fmt::format("listed path '{}' is a directory, not a slide", p.string()));
        slides.push_back(p.string());
    }
    if (slides.empty())
        throw ConfigError(manifest.string(), key, 0, 0, "the manifest lists no slide");
    return slides;
}

// input.slides and input.manifest together: one list, sorted and without duplicates, so the
// same inputs always give the same slide order (and summary.json the same order of entries),
// whatever order the globs or the manifest produced.
void read_input(const Context& c, const toml::table& root, Config& cfg) {
    const toml::table* t = read_table(c, root, "input");
    const toml::node* n = t ? t->get("slides") : nullptr;
    const toml::node* manifest = t ? t->get("manifest") : nullptr;
    if (!n && !manifest) c.fail("input.slides", t, "required key is missing (give input.slides, input.manifest or both)");

    std::set<std::string> slides;
    if (n) {
        const toml::array* arr = n->as_array();
        if (!arr) wrong_type(c, "input.slides", *n, "an array of strings");
        if (arr->empty()) c.fail("input.slides", n, "must list at least one slide or pattern");
        for (std::size_t i = 0; i < arr->size(); ++i) {
            const toml::node& e = (*arr)[i];
            std::string key = fmt::format("input.slides[{}]", i);
            std::string entry = read_string(c, key, e);
            if (entry.empty()) c.fail(key, &e, "must not be empty");
            for (std::string& p : expand_entry(c, "input.slides", e, entry)) slides.insert(std::move(p));
        }
    }
    if (manifest)
        for (std::string& p : read_manifest(c, *manifest)) slides.insert(std::move(p));
    cfg.slides.assign(slides.begin(), slides.end());
}

// ---------------------------------------------------------------------------------------------
// [output]

// spill_mb is turned into bytes downstream; this bound keeps that product inside int64.
constexpr std::int64_t kMaxSpillMb = std::numeric_limits<std::int64_t>::max() >> 20;

void read_output(const Context& c, const toml::table& root, Config& cfg) {
    const toml::table* t = read_table(c, root, "output");
    const toml::node* dir = require(c, t, "dir", "output.dir");
    std::string d = read_string(c, "output.dir", *dir);
    if (d.empty()) c.fail("output.dir", dir, "must not be empty");
    cfg.output_dir = resolve(c, d).string();

    if (const toml::node* n = t->get("compression"))
        cfg.compression = read_choice<Compression>(c, "output.compression", *n,
                                                   {{"deflate", Compression::deflate},
                                                    {"lzw", Compression::lzw},
                                                    {"none", Compression::none}});
    if (const toml::node* n = t->get("deflate_level"))
        cfg.deflate_level = read_int(c, "output.deflate_level", *n, 1, 9);
    if (const toml::node* n = t->get("spill_mb"))
        cfg.spill_mb = read_int64(c, "output.spill_mb", *n, 0, kMaxSpillMb);
}

// ---------------------------------------------------------------------------------------------
// [tiling]

void read_tiling(const Context& c, const toml::table& root, Config& cfg) {
    const toml::table* t = read_table(c, root, "tiling");
    if (!t) return;
    const toml::node* patch = t->get("patch_size");
    const toml::node* overlap = t->get("overlap");
    const toml::node* mpp = t->get("mpp");
    const toml::node* level = t->get("level");

    if (patch) cfg.patch_size = read_int(c, "tiling.patch_size", *patch, 16, 8192);
    if (overlap) cfg.overlap = read_int(c, "tiling.overlap", *overlap, 0);
    if (mpp) {
        double x = read_number(c, "tiling.mpp", *mpp);
        if (x <= 0) c.fail("tiling.mpp", mpp, fmt::format("must be > 0 (got {})", x));
        cfg.mpp = x;
    }
    if (level) cfg.level = read_int(c, "tiling.level", *level, 0);
    if (const toml::node* n = t->get("sections"))
        cfg.sections = read_int(c, "tiling.sections", *n, 1);
    if (const toml::node* n = t->get("subsections"))
        cfg.subsections = read_int(c, "tiling.subsections", *n, 1);
    if (const toml::node* n = t->get("tissue")) cfg.tissue = read_bool(c, "tiling.tissue", *n);
    if (const toml::node* n = t->get("tissue_threshold"))
        cfg.tissue_threshold = read_fraction(c, "tiling.tissue_threshold", *n);

    if (mpp && level)
        c.fail("tiling.level", level,
               "set either tiling.mpp or tiling.level, not both (mpp picks the level itself)");
}

void check_overlap(const Context& c, const toml::table& root, const Config& cfg) {
    if (cfg.overlap >= cfg.patch_size) {
        const toml::node* at = root["tiling"]["overlap"].node();
        if (!at) at = root["tiling"]["patch_size"].node();
        c.fail("tiling.overlap", at,
               fmt::format("must be smaller than tiling.patch_size ({}), got {}", cfg.patch_size,
                           cfg.overlap));
    }
    for (std::size_t i = 0; i < cfg.models.size(); ++i) {
        const Tiling t = tiling_for(cfg, cfg.models[i]);
        if (t.overlap < t.patch_size) continue;
        const toml::node* at = root["models"][i]["overlap"].node();
        if (!at) at = root["models"][i]["patch_size"].node();
        c.fail(fmt::format("models[{}].overlap", i), at,
               fmt::format("the model's overlap ({}) must be smaller than its patch_size ({})",
                           t.overlap, t.patch_size));
    }
}

// ---------------------------------------------------------------------------------------------
// [runtime]

// "cuda:N": N is a plain decimal device index that fits an int.
bool valid_device(const std::string& d) {
    if (d == "cpu" || d == "cuda") return true;
    const std::string_view prefix = "cuda:";
    if (d.size() <= prefix.size() || d.compare(0, prefix.size(), prefix) != 0) return false;
    std::string_view digits = std::string_view(d).substr(prefix.size());
    if (digits.size() > 9) return false;
    return std::all_of(digits.begin(), digits.end(),
                       [](char ch) { return ch >= '0' && ch <= '9'; });
}

void read_runtime(const Context& c, const toml::table& root, Config& cfg) {
    const toml::table* t = read_table(c, root, "runtime");
    if (!t) return;
    if (const toml::node* n = t->get("device")) {
        cfg.device = read_string(c, "runtime.device", *n);
        if (!valid_device(cfg.device))
            c.fail("runtime.device", n,
                   fmt::format("must be cpu, cuda or cuda:N with N >= 0 (got '{}')", cfg.device));
    }
    if (const toml::node* n = t->get("readers"))
        cfg.readers = read_int(c, "runtime.readers", *n, 1, 256);
    if (const toml::node* n = t->get("max_in_flight"))
        cfg.max_in_flight = read_int(c, "runtime.max_in_flight", *n, 1);
    if (const toml::node* n = t->get("threads"))
        cfg.threads = read_int(c, "runtime.threads", *n, 0);
    if (const toml::node* n = t->get("torch_threads"))
        cfg.torch_threads = read_int(c, "runtime.torch_threads", *n, 0);
    if (const toml::node* n = t->get("infer_slots"))
        cfg.infer_slots = read_int(c, "runtime.infer_slots", *n, 0);
    if (const toml::node* n = t->get("on_read_error"))
        cfg.on_read_error = read_choice<ReadErrorPolicy>(c, "runtime.on_read_error", *n,
                                                         {{"fail", ReadErrorPolicy::fail},
                                                          {"skip", ReadErrorPolicy::skip}});
}

void check_in_flight(const Context& c, const toml::table& root, const Config& cfg) {
    for (std::size_t i = 0; i < cfg.models.size(); ++i) {
        int batch = cfg.models[i].batch_size;
        if (cfg.max_in_flight >= batch) continue;
        const toml::node* at = root["runtime"]["max_in_flight"].node();
        if (!at) at = root["models"][i]["batch_size"].node();
        c.fail("runtime.max_in_flight", at,
               fmt::format("{} is smaller than models[{}].batch_size ({}): patches could never "
                           "fill a batch; raise max_in_flight or lower batch_size",
                           cfg.max_in_flight, i, batch));
    }
}

// ---------------------------------------------------------------------------------------------
// [[models]]

bool valid_model_name(const std::string& name) {
    return !name.empty() && std::all_of(name.begin(), name.end(), [](char ch) {
        return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
               ch == '.' || ch == '_' || ch == '-';
    });
}

Task read_task(const Context& c, const std::string& key, const toml::node& n) {
    std::string s = read_string(c, key, n);
    if (s == "segmentation") return Task::segmentation;
    if (s == "classification") return Task::classification;
    if (s == "detection") return Task::detection;
    c.fail(key, &n, fmt::format("must be one of: segmentation, classification, detection (got '{}')", s));
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

std::vector<float> read_triplet(const Context& c, const std::string& key, const toml::node& n,
                                bool positive) {
    const toml::array* arr = n.as_array();
    if (!arr) wrong_type(c, key, n, "an array of 3 numbers");
    if (arr->size() != 3)
        c.fail(key, &n, fmt::format("must have exactly 3 numbers (one per RGB channel), got {}",
                                    arr->size()));
    std::vector<float> out;
    for (std::size_t i = 0; i < 3; ++i) {
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

    if (const toml::node* n = m.get("task")) mc.task = read_task(c, key("task"), *n);
    if (const toml::node* n = m.get("batch_size"))
        mc.batch_size = read_int(c, key("batch_size"), *n, 1, 4096);
    if (const toml::node* n = m.get("cpu_micro_batch"))
        mc.cpu_micro_batch = read_int(c, key("cpu_micro_batch"), *n, 1, 4096);
    if (const toml::node* n = m.get("precision"))
        mc.precision = read_choice<Precision>(
            c, key("precision"), *n,
            {{"fp32", Precision::fp32}, {"fp16", Precision::fp16}, {"bf16", Precision::bf16}});
    if (const toml::node* n = m.get("mean")) mc.mean = read_triplet(c, key("mean"), *n, false);
    if (const toml::node* n = m.get("std")) mc.std = read_triplet(c, key("std"), *n, true);
    if (const toml::node* n = m.get("activation"))
        mc.activation = read_choice<Activation>(c, key("activation"), *n,
                                                {{"softmax", Activation::softmax},
                                                 {"sigmoid", Activation::sigmoid},
                                                 {"none", Activation::none}});
    if (const toml::node* n = m.get("blend"))
        mc.blend = read_choice<Blend>(c, key("blend"), *n,
                                      {{"average", Blend::average}, {"weighted", Blend::weighted}});
    if (const toml::node* n = m.get("device")) {
        mc.device = read_string(c, key("device"), *n);
        if (!valid_device(*mc.device))
            c.fail(key("device"), n, fmt::format("must be cpu, cuda or cuda:N with N >= 0 (got '{}')", *mc.device));
    }
    if (const toml::node* n = m.get("patch_size")) mc.patch_size = read_int(c, key("patch_size"), *n, 16, 8192);
    if (const toml::node* n = m.get("overlap")) mc.overlap = read_int(c, key("overlap"), *n, 0);
    if (const toml::node* n = m.get("mpp")) {
        const double x = read_number(c, key("mpp"), *n);
        if (x <= 0) c.fail(key("mpp"), n, fmt::format("must be > 0 (got {})", x));
        mc.mpp = x;
    }
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
    for (const char* k : {"detection_format", "conf_threshold", "iou_threshold", "max_detections", "class_agnostic"})
        only_for(k, Task::detection);
    if (const toml::node* n = m.get("activation"); n && mc.task == Task::detection)
        c.fail(key("activation"), n, "does not apply to task detection (scores are decoded as given)");
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

// ---------------------------------------------------------------------------------------------
// --set overrides

struct OverrideTarget {
    std::string section;               // "tiling", or "models"
    std::optional<std::size_t> index;  // models only
    std::string leaf;
    std::string dotted;  // canonical spelling used in messages
};

std::string trim(std::string_view s) {
    auto first = s.find_first_not_of(" \t");
    if (first == std::string_view::npos) return {};
    auto last = s.find_last_not_of(" \t");
    return std::string(s.substr(first, last - first + 1));
}

// "models[0].x" and "models.0.x" both become {"models", "0", "x"}.
std::vector<std::string> split_key(const std::string& key) {
    std::string flat;
    for (char ch : key) {
        if (ch == '[') flat += '.';
        else if (ch != ']') flat += ch;
    }
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (;;) {
        std::size_t dot = flat.find('.', start);
        parts.push_back(flat.substr(start, dot - start));
        if (dot == std::string::npos) break;
        start = dot + 1;
    }
    return parts;
}

bool is_index(const std::string& s) {
    return !s.empty() && s.size() <= 6 &&
           std::all_of(s.begin(), s.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
}

bool well_bracketed(const std::string& key) {
    std::size_t open = key.find('[');
    if (open == std::string::npos) return key.find(']') == std::string::npos;
    std::size_t close = key.find(']', open);
    return close != std::string::npos && key.find_first_of("[]", close + 1) == std::string::npos &&
           (close + 1 == key.size() || key[close + 1] == '.');
}

OverrideTarget parse_override_key(const Context& c, const std::string& key) {
    std::vector<std::string> parts = well_bracketed(key) ? split_key(key)
                                                         : std::vector<std::string>{};
    if (parts.size() == 2) {
        const Section* s = find_section(parts[0]);
        if (s && contains(s->keys, parts[1]))
            return {parts[0], std::nullopt, parts[1], parts[0] + "." + parts[1]};
    }
    if (parts.size() == 3 && parts[0] == "models" && is_index(parts[1]) &&
        contains(model_keys(), parts[2])) {
        std::size_t i = std::stoul(parts[1]);
        return {"models", i, parts[2], fmt::format("models[{}].{}", i, parts[2])};
    }
    throw ConfigError(c.file, key, 0, 0, "unknown key given with --set");
}

// The value is TOML when it parses as one ("8", "0.5", "[1, 2, 3]", "\"x\""); anything else
// is the bare string the user most likely meant ("cuda:1", "out/dir").
toml::table parse_override_value(const std::string& text) {
    try {
        toml::table t = toml::parse("v = " + text);
        if (t.size() == 1 && t.contains("v")) return t;
    } catch (const toml::parse_error&) {
    }
    toml::table t;
    t.insert("v", text);
    return t;
}

toml::table& override_section(const Context& c, toml::table& root, const std::string& name) {
    toml::node* n = root.get(name);
    if (!n) n = &root.insert(name, toml::table{}).first->second;
    if (!n->is_table()) wrong_type(c, name, *n, "a table");
    return *n->as_table();
}

toml::table& override_model(const Context& c, toml::table& root, std::size_t index) {
    toml::node* n = root.get("models");
    if (!n) n = &root.insert("models", toml::array{}).first->second;
    toml::array* arr = n->as_array();
    if (!arr) wrong_type(c, "models", *n, "an array of tables ([[models]])");
    // Index == size appends, so a model can be described entirely on the command line.
    if (index == arr->size()) arr->push_back(toml::table{});
    if (index > arr->size())
        throw ConfigError(c.file, fmt::format("models[{}]", index), 0, 0,
                          fmt::format("--set addresses models[{}] but there are only {} "
                                      "[[models]] entries",
                                      index, arr->size()));
    toml::node& m = (*arr)[index];
    if (!m.is_table()) wrong_type(c, fmt::format("models[{}]", index), m, "a table");
    return *m.as_table();
}

void apply_override(Context& c, toml::table& root, const std::string& text) {
    std::size_t eq = text.find('=');
    if (eq == std::string::npos)
        throw ConfigError(c.file, "", 0, 0,
                          fmt::format("--set '{}': expected dotted.key=value", text));
    std::string key = trim(std::string_view(text).substr(0, eq));
    if (key.empty())
        throw ConfigError(c.file, "", 0, 0, fmt::format("--set '{}': the key is empty", text));

    OverrideTarget target = parse_override_key(c, key);
    toml::table& t = target.index ? override_model(c, root, *target.index)
                                  : override_section(c, root, target.section);
    toml::table value = parse_override_value(trim(std::string_view(text).substr(eq + 1)));
    // Copying a toml node drops its source region, which is what we want: the position of
    // "v" in the scratch document means nothing in the config file.
    t.insert_or_assign(target.leaf, *value.get("v"));
    c.from_set.insert(target.dotted);
}

// ---------------------------------------------------------------------------------------------

Config build(Context& c, toml::table& root, const std::vector<std::string>& overrides) {
    for (const std::string& o : overrides) apply_override(c, root, o);
    check_all_keys(c, root);

    Config cfg;
    cfg.source = c.file;
    read_input(c, root, cfg);
    read_output(c, root, cfg);
    read_tiling(c, root, cfg);
    read_runtime(c, root, cfg);
    read_models(c, root, cfg);
    check_overlap(c, root, cfg);
    check_in_flight(c, root, cfg);
    return cfg;
}

toml::table parse_toml(const std::string& text, const std::string& source_name) {
    try {
        return toml::parse(text, source_name);
    } catch (const toml::parse_error& e) {
        throw ConfigError(source_name, "", e.source().begin.line, e.source().begin.column,
                          std::string(e.description()));
    }
}

std::string read_file(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw ConfigError(path, "", 0, 0, fmt::format("cannot read: {}", std::strerror(errno)));
    std::string text;
    char buf[65536];
    std::size_t got;
    while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, got);
    int err = std::ferror(f) ? errno : 0;
    std::fclose(f);
    if (err) throw ConfigError(path, "", 0, 0, fmt::format("cannot read: {}", std::strerror(err)));
    return text;
}

}  // namespace

Config parse_config(const std::string& toml_text, const std::string& source_name,
                    const std::string& base_dir, const std::vector<std::string>& overrides) {
    Context c;
    c.file = source_name;
    c.base_dir = fs::absolute(base_dir.empty() ? fs::path(".") : fs::path(base_dir));
    toml::table root = parse_toml(toml_text, source_name);
    return build(c, root, overrides);
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
    std::string text = read_file(path);
    fs::path dir = fs::absolute(path).parent_path().lexically_normal();
    return parse_config(text, path, dir.string(), overrides);
}

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

const char* to_string(ReadErrorPolicy p) noexcept {
    switch (p) {
        case ReadErrorPolicy::fail: return "fail";
        case ReadErrorPolicy::skip: return "skip";
    }
    return "?";
}

Tiling tiling_for(const Config& cfg, const ModelConfig& m) {
    Tiling t;
    t.patch_size = m.patch_size.value_or(cfg.patch_size);
    t.overlap = m.overlap.value_or(cfg.overlap);
    if (m.mpp) t.mpp = m.mpp;
    else if (m.level) t.level = m.level;
    else {
        t.mpp = cfg.mpp;
        t.level = cfg.level;
    }
    return t;
}

}  // namespace flowinfer
