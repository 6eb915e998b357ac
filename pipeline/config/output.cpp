// [output]: where the maps go and how their TIFFs are written.

#include "pipeline/config/read.hpp"

#include <limits>

namespace flowinfer::config {

namespace {

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
    if (const toml::node* n = t->get("previews")) cfg.previews = read_bool(c, "output.previews", *n);
}

}  // namespace

const TableSchema& output_table() {
    static const TableSchema schema{
        "output", Shape::table, {"dir", "compression", "deflate_level", "spill_mb", "previews"}, read_output};
    return schema;
}

}  // namespace flowinfer::config
