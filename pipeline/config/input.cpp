// [input]: the slides to run, from globs (input.slides) and/or a list file (input.manifest).

#include "pipeline/config/read.hpp"

#include <flowinfer/errors.hpp>

#include <glob.h>

#include <algorithm>
#include <cstring>

namespace flowinfer::config {

namespace {

namespace fs = std::filesystem;

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
    std::string text;
    int err = 0;
    if (!read_whole_file(manifest.string(), text, err))
        c.fail(key, &n, fmt::format("cannot read manifest '{}': {}", manifest.string(), std::strerror(err)));

    const fs::path dir = manifest.parent_path();
    std::vector<std::string> slides;
    std::uint32_t line_no = 0;
    for (std::size_t at = 0; at < text.size();) {
        const std::size_t nl = std::min(text.find('\n', at), text.size());
        const std::string_view line(text.data() + at, nl - at);
        at = nl + 1;
        ++line_no;
        const std::string path = trim(line, " \t\r");
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

// input.roi, input.roi_missing and input.region: which part of each slide runs.
void read_regions(const Context& c, const toml::table& t, Config& cfg) {
    if (const toml::node* n = t.get("roi")) {
        const std::string pattern = read_string(c, "input.roi", *n);
        if (pattern.empty()) c.fail("input.roi", n, "must not be empty");
        // Only {stem} and {name} are placeholders; any other brace is a typo worth stopping for.
        for (std::size_t at = pattern.find('{'); at != std::string::npos; at = pattern.find('{', at + 1))
            if (pattern.compare(at, 6, "{stem}") != 0 && pattern.compare(at, 6, "{name}") != 0)
                c.fail("input.roi", n,
                       fmt::format("'{}': only {{stem}} (the slide's file name without its extension) and "
                                   "{{name}} (with it) may be used",
                                   pattern));
        cfg.roi = resolve(c, pattern).string();
    }
    if (const toml::node* n = t.get("roi_missing")) {
        if (cfg.roi.empty()) c.fail("input.roi_missing", n, "applies only with input.roi");
        cfg.roi_missing = read_choice<RoiMissing>(c, "input.roi_missing", *n,
                                                  {{"error", RoiMissing::error}, {"all", RoiMissing::all},
                                                   {"skip", RoiMissing::skip}});
    }
    if (const toml::node* n = t.get("region")) {
        const toml::array* arr = n->as_array();
        if (!arr || arr->size() != 4) wrong_type(c, "input.region", *n, "an array [x, y, w, h] of level-0 pixels");
        std::array<double, 4> r{};
        for (std::size_t i = 0; i < 4; ++i) r[i] = read_number(c, fmt::format("input.region[{}]", i), *arr->get(i));
        if (!(r[0] >= 0 && r[1] >= 0)) c.fail("input.region", n, "x and y must be >= 0 (level-0 pixels)");
        if (!(r[2] > 0 && r[3] > 0)) c.fail("input.region", n, "w and h must be > 0 (level-0 pixels)");
        if (!cfg.roi.empty())
            c.fail("input.region", n, "set either input.roi (a file per slide) or input.region, not both");
        cfg.region = r;
    }
}

// input.slides and input.manifest together: one list, sorted and without duplicates, so the
// same inputs always give the same slide order (and summary.json the same order of entries),
// whatever order the globs or the manifest produced.
void read_input(const Context& c, const toml::table& root, Config& cfg) {
    const toml::table* t = read_table(c, root, "input");
    const toml::node* n = t ? t->get("slides") : nullptr;
    const toml::node* manifest = t ? t->get("manifest") : nullptr;
    if (const toml::node* images = t ? t->get("images") : nullptr) {
        if (n || manifest)
            c.fail("input.images", images, "a run reads either slides (input.slides, input.manifest) or images, not both");
        for (const char* key : {"roi", "roi_missing", "region"})
            if (const toml::node* k = t->get(key))
                c.fail(fmt::format("input.{}", key), k, "applies to slides; with input.images every image runs whole");
        read_images(c, *images, cfg);
        return;
    }
    if (!n && !manifest)
        c.fail("input.slides", t, "required key is missing (give input.slides, input.manifest or both, or input.images)");

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
    if (t) read_regions(c, *t, cfg);
}

void check_input(const Context& c, const toml::table& root, const Config& cfg) {
    if (!cfg.image_mode()) return;
    if (cfg.tissue)
        c.fail("tiling.tissue", root["tiling"]["tissue"].node(),
               "applies to slides; with input.images every patch of an image runs");
    check_images(c, root, cfg);
}

}  // namespace

const TableSchema& input_table() {
    static const TableSchema schema{"input",    Shape::table, {"slides", "manifest", "images", "roi", "roi_missing", "region"},
                                    read_input, check_input};
    return schema;
}

}  // namespace flowinfer::config
