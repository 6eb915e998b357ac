// input.images: the image files of a patch directory, from glob patterns with "**".
//
// glob(3) has no "**": a pattern is split at its first component with a wildcard (the
// literal part before it is the base directory) and the rest is matched component by
// component with fnmatch(3) while walking the base, "**" standing for any number of
// directories (none included). Hidden files and directories match only a pattern component
// that starts with '.' (FNM_PERIOD), as in a shell.

#include "pipeline/config/read.hpp"

#include <fnmatch.h>

#include <algorithm>
#include <map>

namespace flowinfer::config {

namespace {

namespace fs = std::filesystem;

bool has_wildcard(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

// Whether `parts[i..]` matches the path components `names[j..]`.
bool match_from(const std::vector<std::string>& parts, std::size_t i, const std::vector<std::string>& names,
                std::size_t j) {
    if (i == parts.size()) return j == names.size();
    if (parts[i] == "**") {
        for (std::size_t k = j; k <= names.size(); ++k) {
            if (k > j && names[k - 1][0] == '.') break;  // "**" does not enter hidden directories
            if (match_from(parts, i + 1, names, k)) return true;
        }
        return false;
    }
    if (j == names.size()) return false;
    return fnmatch(parts[i].c_str(), names[j].c_str(), FNM_PERIOD) == 0 && match_from(parts, i + 1, names, j + 1);
}

struct Pattern {
    fs::path base;                   // the literal directory before the first wildcard
    std::vector<std::string> parts;  // the components from there on
};

Pattern split(const fs::path& pattern) {
    Pattern p;
    bool wild = false;
    for (const fs::path& part : pattern) {
        const std::string s = part.string();
        if (!wild && !has_wildcard(s)) p.base /= part;
        else {
            wild = true;
            p.parts.push_back(s);
        }
    }
    if (!wild) {  // a literal file: its directory is the base
        p.parts = {p.base.filename().string()};
        p.base = p.base.parent_path();
    }
    return p;
}

std::vector<fs::path> expand(const Pattern& p) {
    std::vector<fs::path> out;
    std::error_code ec;
    if (!fs::is_directory(p.base, ec)) return out;
    const bool deep = std::find(p.parts.begin(), p.parts.end(), "**") != p.parts.end();
    if (!deep && p.parts.size() == 1) {
        for (const fs::directory_entry& e : fs::directory_iterator(p.base, ec))
            if (!e.is_directory(ec) && fnmatch(p.parts[0].c_str(), e.path().filename().c_str(), FNM_PERIOD) == 0)
                out.push_back(e.path());
        return out;
    }
    const std::size_t depth_max = deep ? SIZE_MAX : p.parts.size();
    fs::recursive_directory_iterator it(p.base, fs::directory_options::skip_permission_denied, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
        const fs::path rel = it->path().lexically_relative(p.base);
        std::vector<std::string> names;
        for (const fs::path& n : rel) names.push_back(n.string());
        if (it->is_directory(ec)) {
            if (static_cast<std::size_t>(it.depth()) + 1 >= depth_max) it.disable_recursion_pending();
            continue;
        }
        if (match_from(p.parts, 0, names, 0)) out.push_back(it->path());
    }
    return out;
}

// The deepest directory holding every base: what outputs mirror the images' paths under.
fs::path common_dir(const std::vector<fs::path>& bases) {
    fs::path common = bases.front();
    for (const fs::path& b : bases) {
        fs::path shared;
        auto i = common.begin(), j = b.begin();
        for (; i != common.end() && j != b.end() && *i == *j; ++i, ++j) shared /= *i;
        common = shared;
    }
    return common;
}

}  // namespace

void read_images(const Context& c, const toml::node& n, Config& cfg) {
    const toml::array* arr = n.as_array();
    if (!arr) wrong_type(c, "input.images", n, "an array of glob patterns (\"tiles/**/*.png\")");
    if (arr->empty()) c.fail("input.images", &n, "must list at least one pattern");
    std::vector<Pattern> patterns;
    std::vector<std::string> texts;
    for (std::size_t i = 0; i < arr->size(); ++i) {
        const std::string key = fmt::format("input.images[{}]", i);
        const std::string entry = read_string(c, key, (*arr)[i]);
        if (entry.empty()) c.fail(key, &(*arr)[i], "must not be empty");
        patterns.push_back(split(resolve(c, entry).lexically_normal()));
        texts.push_back(entry);
    }
    std::vector<fs::path> bases;
    for (const Pattern& p : patterns) bases.push_back(p.base);
    const fs::path root = common_dir(bases);
    // path -> relative path; a pattern that matches nothing is an entry of its own that fails.
    std::map<std::string, ImageInput> found;
    for (std::size_t i = 0; i < patterns.size(); ++i) {
        const std::vector<fs::path> files = expand(patterns[i]);
        if (files.empty()) {
            const std::string where = (patterns[i].base / fs::path()).string();
            ImageInput bad;
            bad.relative = texts[i];
            bad.problem = fmt::format("input.images[{}]: pattern '{}' matches no file (looked under {})", i,
                                      texts[i], where);
            found.emplace(resolve(c, texts[i]).lexically_normal().string(), std::move(bad));
        }
        for (const fs::path& f : files) {
            const fs::path path = f.lexically_normal();
            found.emplace(path.string(), ImageInput{path.lexically_relative(root).string(), {}});
        }
    }
    for (auto& [path, input] : found) {
        cfg.slides.push_back(path);
        cfg.images.push_back(std::move(input));
    }
}

// A pattern reaches a file of output.dir when output.dir lies under its base and the
// pattern goes deeper than the base ("**", or a directory component).
void check_images(const Context& c, const toml::table& root, const Config& cfg) {
    const toml::node* n = root["input"]["images"].node();
    const toml::array* arr = n ? n->as_array() : nullptr;
    if (!arr) return;
    const fs::path out = fs::path(cfg.output_dir).lexically_normal();
    for (std::size_t i = 0; i < arr->size(); ++i) {
        const auto text = (*arr)[i].value<std::string>();
        if (!text) continue;
        const Pattern p = split(resolve(c, *text).lexically_normal());
        const fs::path rel = out.lexically_relative(p.base);
        const bool under = !rel.empty() && *rel.begin() != "..";
        const bool deep = p.parts.size() > 1 || std::find(p.parts.begin(), p.parts.end(), "**") != p.parts.end();
        if (under && deep)
            c.fail(fmt::format("input.images[{}]", i), &(*arr)[i],
                   fmt::format("'{}' reaches into output.dir '{}': its outputs would be read as images by the next "
                               "run; put output.dir elsewhere",
                               *text, out.string()));
    }
}

}  // namespace flowinfer::config
