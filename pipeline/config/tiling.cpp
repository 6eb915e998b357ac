// [tiling]: the patch geometry every model reads unless it sets its own, and which patches run.

#include "pipeline/config/read.hpp"

namespace flowinfer::config {

namespace {

void read_tiling(const Context& c, const toml::table& root, Config& cfg) {
    const toml::table* t = read_table(c, root, "tiling");
    if (!t) return;
    const toml::node* patch = t->get("patch_size");
    const toml::node* overlap = t->get("overlap");
    const toml::node* mpp = t->get("mpp");
    const toml::node* level = t->get("level");

    if (patch) cfg.patch_size = read_int(c, "tiling.patch_size", *patch, 16, 8192);
    if (overlap) cfg.overlap = read_int(c, "tiling.overlap", *overlap, 0);
    if (mpp) cfg.mpp = read_positive(c, "tiling.mpp", *mpp);
    if (level) cfg.level = read_int(c, "tiling.level", *level, 0);
    if (const toml::node* n = t->get("sections"))
        cfg.sections = read_int(c, "tiling.sections", *n, 1);
    if (const toml::node* n = t->get("subsections"))
        cfg.subsections = read_int(c, "tiling.subsections", *n, 1);
    if (const toml::node* n = t->get("tissue")) cfg.tissue = read_bool(c, "tiling.tissue", *n);
    if (const toml::node* n = t->get("tissue_threshold"))
        cfg.tissue_threshold = read_fraction(c, "tiling.tissue_threshold", *n);
    if (const toml::node* n = t->get("roi_threshold")) {
        cfg.roi_threshold = read_fraction(c, "tiling.roi_threshold", *n);
        if (cfg.roi.empty() && !cfg.region)
            c.fail("tiling.roi_threshold", n, "applies only with input.roi or input.region (--region)");
    }

    if (mpp && level)
        c.fail("tiling.level", level,
               "set either tiling.mpp or tiling.level, not both (mpp picks the level itself)");
}

// After [[models]]: a model that sets only one of patch_size and overlap pairs it with the other
// from [tiling], so only the pair it ends up with can be checked.
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

}  // namespace

const TableSchema& tiling_table() {
    static const TableSchema schema{"tiling",
                                    Shape::table,
                                    {"patch_size", "overlap", "mpp", "level", "sections",
                                     "subsections", "tissue", "tissue_threshold", "roi_threshold"},
                                    read_tiling,
                                    check_overlap};
    return schema;
}

}  // namespace flowinfer::config

namespace flowinfer {

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
