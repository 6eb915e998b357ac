// What every table of pipeline.toml is read with: the error context, the typed readers, the
// table schema and the unknown-key check. Internal to the config loader (pipeline/config/).
#pragma once

#include <flowinfer/config.hpp>

#include <fmt/format.h>
#include <toml++/toml.h>

#include <climits>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace flowinfer::config {

struct Context {
    std::string file;
    std::filesystem::path base_dir;
    std::set<std::string> from_set;  // dotted keys written by --set overrides

    bool is_from_set(const std::string& key) const;

    [[noreturn]] void fail(const std::string& key, const toml::source_region& at,
                           const std::string& problem) const;
    [[noreturn]] void fail(const std::string& key, const toml::node* at,
                           const std::string& problem) const;
};

[[noreturn]] void wrong_type(const Context& c, const std::string& key, const toml::node& n,
                             const char* expected);

// ---------------------------------------------------------------------------------------------
// Schema

enum class Shape {
    table,            // [name]
    array_of_tables,  // [[name]]: every entry holds `keys`; messages and --set say name[i]
};

// One top-level table: the keys it accepts and how it is read. Each table's file defines its
// own next to its reader, so that adding a key is one edit in one place.
struct TableSchema {
    std::string_view name;
    Shape shape;
    std::vector<std::string_view> keys;
    void (*read)(const Context& c, const toml::table& root, Config& cfg);
    // Checks that need other tables; run after every table has been read.
    void (*check)(const Context& c, const toml::table& root, const Config& cfg) = nullptr;
};

const TableSchema& input_table();    // input.cpp
// input.images (patch-directory mode): fills cfg.slides and cfg.images.
void read_images(const Context& c, const toml::node& n, Config& cfg);  // images.cpp
// That no pattern reaches into output.dir (its outputs would be read as images next run).
void check_images(const Context& c, const toml::table& root, const Config& cfg);
const TableSchema& output_table();   // output.cpp
const TableSchema& tiling_table();   // tiling.cpp
const TableSchema& runtime_table();  // runtime.cpp
const TableSchema& models_table();   // models.cpp

// Unknown keys. Checked for the whole document before any value, so that a misspelt key is
// reported as such rather than as the required key it was meant to be.
void check_all_keys(const Context& c, const toml::table& root,
                    const std::vector<const TableSchema*>& tables);

// ---------------------------------------------------------------------------------------------
// Typed readers

std::int64_t read_int64(const Context& c, const std::string& key, const toml::node& n,
                        std::int64_t lo, std::int64_t hi);

// The upper bound defaults to INT_MAX so that a huge value is rejected instead of wrapping
// when narrowed to int.
int read_int(const Context& c, const std::string& key, const toml::node& n, int lo,
             int hi = INT_MAX);

double read_number(const Context& c, const std::string& key, const toml::node& n);
double read_positive(const Context& c, const std::string& key, const toml::node& n);
double read_fraction(const Context& c, const std::string& key, const toml::node& n);
std::string read_string(const Context& c, const std::string& key, const toml::node& n);
bool read_bool(const Context& c, const std::string& key, const toml::node& n);
// cpu | cuda | cuda:N
std::string read_device(const Context& c, const std::string& key, const toml::node& n);

bool contains(const std::vector<std::string_view>& keys, std::string_view k);
std::string join(const std::vector<std::string_view>& words);

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

const toml::table* read_table(const Context& c, const toml::table& root, const char* name);

const toml::node* require(const Context& c, const toml::table* t, const char* key,
                          const std::string& full_key);

std::filesystem::path resolve(const Context& c, const std::string& p);

// ---------------------------------------------------------------------------------------------
// Model metadata (metadata.cpp)

// What a model says about itself (README, "Models"): a WSInfer model directory's config.json
// (`path` then becomes the directory's TorchScript file), or the flowinfer.json inside a
// TorchScript archive, as model keys. std::nullopt: neither. Throws ConfigError naming the
// metadata file and its key.
struct ModelMetadata {
    toml::table keys;
    std::string source;  // "<dir>/config.json" or "<file>:flowinfer.json"
};
std::optional<ModelMetadata> read_model_metadata(const Context& c, const std::string& key, const toml::node* at,
                                                 std::string& path);

// A segmentation model's contour keys (contours.cpp); after its task and classes are read
// (read_model_keys refuses them on other tasks).
void read_contour_keys(const Context& c, const toml::table& m, const std::string& prefix, ModelConfig& mc);

// A --set value: {v = value} (a bare word that is not TOML: the string).
toml::table parse_override_value(const std::string& text);

// ---------------------------------------------------------------------------------------------
// Text

std::string trim(std::string_view s, std::string_view blanks = " \t");

// The whole file into `text`; false with `error` set to the errno of the failed open or read.
bool read_whole_file(const std::string& path, std::string& text, int& error);

}  // namespace flowinfer::config
