#include "pipeline/config/read.hpp"

#include <flowinfer/errors.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>

namespace flowinfer::config {

namespace {

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

}  // namespace

// ---------------------------------------------------------------------------------------------
// Error reporting

// A value written by --set carries no file position; saying so keeps the user from searching
// the file for a line that is not there.
bool Context::is_from_set(const std::string& key) const {
    for (const std::string& k : from_set) {
        if (key == k) return true;
        if (key.size() > k.size() && key.compare(0, k.size(), k) == 0 &&
            (key[k.size()] == '[' || key[k.size()] == '.'))
            return true;
    }
    return false;
}

void Context::fail(const std::string& key, const toml::source_region& at,
                   const std::string& problem) const {
    if (is_from_set(key)) throw ConfigError(file, key, 0, 0, problem + " (from --set)");
    throw ConfigError(file, key, at.begin.line, at.begin.column, problem);
}

void Context::fail(const std::string& key, const toml::node* at, const std::string& problem) const {
    fail(key, at ? at->source() : toml::source_region{}, problem);
}

void wrong_type(const Context& c, const std::string& key, const toml::node& n,
                const char* expected) {
    c.fail(key, &n, fmt::format("expected {}, got {}", expected, type_name(n.type())));
}

// ---------------------------------------------------------------------------------------------
// Unknown keys

void check_all_keys(const Context& c, const toml::table& root,
                    const std::vector<const TableSchema*>& tables) {
    std::vector<std::string_view> top;
    for (const TableSchema* s : tables) top.push_back(s->name);
    check_keys(c, root, "", top);

    for (const TableSchema* s : tables) {
        if (s->shape == Shape::table) {
            if (const toml::table* t = root[s->name].as_table())
                check_keys(c, *t, std::string(s->name), s->keys);
        } else if (const toml::array* entries = root[s->name].as_array()) {
            for (std::size_t i = 0; i < entries->size(); ++i)
                if (const toml::table* t = (*entries)[i].as_table())
                    check_keys(c, *t, fmt::format("{}[{}]", s->name, i), s->keys);
        }
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

int read_int(const Context& c, const std::string& key, const toml::node& n, int lo, int hi) {
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

double read_positive(const Context& c, const std::string& key, const toml::node& n) {
    const double x = read_number(c, key, n);
    if (x <= 0) c.fail(key, &n, fmt::format("must be > 0 (got {})", x));
    return x;
}

double read_fraction(const Context& c, const std::string& key, const toml::node& n) {
    const double x = read_number(c, key, n);
    if (x < 0 || x > 1) c.fail(key, &n, fmt::format("must be between 0 and 1 (got {})", x));
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

std::string read_device(const Context& c, const std::string& key, const toml::node& n) {
    std::string d = read_string(c, key, n);
    if (!valid_device(d))
        c.fail(key, &n, fmt::format("must be cpu, cuda or cuda:N with N >= 0 (got '{}')", d));
    return d;
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

std::filesystem::path resolve(const Context& c, const std::string& p) {
    return (c.base_dir / p).lexically_normal();
}

// ---------------------------------------------------------------------------------------------
// Text

std::string trim(std::string_view s, std::string_view blanks) {
    const auto first = s.find_first_not_of(blanks);
    if (first == std::string_view::npos) return {};
    const auto last = s.find_last_not_of(blanks);
    return std::string(s.substr(first, last - first + 1));
}

bool read_whole_file(const std::string& path, std::string& text, int& error) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) {
        error = errno;
        return false;
    }
    char buf[65536];
    std::size_t got;
    while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, got);
    error = std::ferror(f) ? errno : 0;
    std::fclose(f);
    return error == 0;
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

}  // namespace flowinfer::config
