// load_config / parse_config: the TOML document, the --set overrides applied to it, and the
// tables read from it. Each table's keys and checks live in its own file (input.cpp, ...).

#include "pipeline/config/read.hpp"

#include <flowinfer/errors.hpp>

#include <algorithm>
#include <cstring>
#include <optional>

namespace flowinfer {

using namespace config;

namespace {

namespace fs = std::filesystem;

// In the order they are read and then checked, which is the order their errors are reported in;
// also the order of the top-level keys in "known keys here".
const std::vector<const TableSchema*>& tables() {
    static const std::vector<const TableSchema*> all = {
        &input_table(), &output_table(), &tiling_table(), &runtime_table(), &models_table()};
    return all;
}

const TableSchema* find_table(std::string_view name) {
    for (const TableSchema* t : tables())
        if (name == t->name) return t;
    return nullptr;
}

// ---------------------------------------------------------------------------------------------
// --set overrides

struct OverrideTarget {
    const TableSchema* table;
    std::optional<std::size_t> index;  // an entry of an array of tables ([[models]])
    std::string leaf;
    std::string dotted;  // canonical spelling used in messages
};

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
    const TableSchema* t = parts.empty() ? nullptr : find_table(parts[0]);
    if (t && t->shape == Shape::table && parts.size() == 2 && contains(t->keys, parts[1]))
        return {t, std::nullopt, parts[1], parts[0] + "." + parts[1]};
    if (t && t->shape == Shape::array_of_tables && parts.size() == 3 && is_index(parts[1]) &&
        contains(t->keys, parts[2])) {
        std::size_t i = std::stoul(parts[1]);
        return {t, i, parts[2], fmt::format("{}[{}].{}", t->name, i, parts[2])};
    }
    throw ConfigError(c.file, key, 0, 0, "unknown key given with --set");
}

toml::table& override_table(const Context& c, toml::table& root, std::string_view name) {
    toml::node* n = root.get(name);
    if (!n) n = &root.insert(name, toml::table{}).first->second;
    if (!n->is_table()) wrong_type(c, std::string(name), *n, "a table");
    return *n->as_table();
}

toml::table& override_entry(const Context& c, toml::table& root, std::string_view name,
                            std::size_t index) {
    toml::node* n = root.get(name);
    if (!n) n = &root.insert(name, toml::array{}).first->second;
    toml::array* arr = n->as_array();
    if (!arr)
        wrong_type(c, std::string(name), *n, fmt::format("an array of tables ([[{}]])", name).c_str());
    // Index == size appends, so a model can be described entirely on the command line.
    if (index == arr->size()) arr->push_back(toml::table{});
    if (index > arr->size())
        throw ConfigError(c.file, fmt::format("{}[{}]", name, index), 0, 0,
                          fmt::format("--set addresses {}[{}] but there are only {} "
                                      "[[{}]] entries",
                                      name, index, arr->size(), name));
    toml::node& m = (*arr)[index];
    if (!m.is_table()) wrong_type(c, fmt::format("{}[{}]", name, index), m, "a table");
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
    toml::table& t = target.index ? override_entry(c, root, target.table->name, *target.index)
                                  : override_table(c, root, target.table->name);
    toml::table value = parse_override_value(trim(std::string_view(text).substr(eq + 1)));
    // Copying a toml node drops its source region, which is what we want: the position of
    // "v" in the scratch document means nothing in the config file.
    t.insert_or_assign(target.leaf, *value.get("v"));
    c.from_set.insert(target.dotted);
}

// ---------------------------------------------------------------------------------------------

Config build(Context& c, toml::table& root, const std::vector<std::string>& overrides) {
    for (const std::string& o : overrides) apply_override(c, root, o);
    check_all_keys(c, root, tables());

    Config cfg;
    cfg.source = c.file;
    for (const TableSchema* t : tables()) t->read(c, root, cfg);
    for (const TableSchema* t : tables())
        if (t->check) t->check(c, root, cfg);
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
    std::string text;
    int err = 0;
    if (!read_whole_file(path, text, err))
        throw ConfigError(path, "", 0, 0, fmt::format("cannot read: {}", std::strerror(err)));
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

}  // namespace flowinfer
