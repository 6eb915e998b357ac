// [runtime]: devices, threads and how much work may be in flight.

#include "pipeline/config/read.hpp"

namespace flowinfer::config {

namespace {

void read_runtime(const Context& c, const toml::table& root, Config& cfg) {
    const toml::table* t = read_table(c, root, "runtime");
    if (!t) return;
    if (const toml::node* n = t->get("device")) cfg.device = read_device(c, "runtime.device", *n);
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
    if (const toml::node* n = t->get("reader"))
        cfg.reader = read_choice<SlideReader>(c, "runtime.reader", *n,
                                              {{"auto", SlideReader::automatic},
                                               {"native", SlideReader::native},
                                               {"openslide", SlideReader::openslide}});
    if (const toml::node* n = t->get("tile_cache_mb"))
        cfg.tile_cache_mb = read_int(c, "runtime.tile_cache_mb", *n, 0, 1 << 20);
}

// After [[models]]: max_in_flight bounds the patches waiting to be batched, so it is checked
// against every model's batch_size.
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

}  // namespace

const TableSchema& runtime_table() {
    static const TableSchema schema{"runtime",
                                    Shape::table,
                                    {"device", "readers", "max_in_flight", "threads",
                                     "torch_threads", "infer_slots", "on_read_error", "reader",
                                     "tile_cache_mb"},
                                    read_runtime,
                                    check_in_flight};
    return schema;
}

}  // namespace flowinfer::config

namespace flowinfer {

const char* to_string(ReadErrorPolicy p) noexcept {
    switch (p) {
        case ReadErrorPolicy::fail: return "fail";
        case ReadErrorPolicy::skip: return "skip";
    }
    return "?";
}

const char* to_string(SlideReader r) noexcept {
    switch (r) {
        case SlideReader::automatic: return "auto";
        case SlideReader::native: return "native";
        case SlideReader::openslide: return "openslide";
    }
    return "?";
}

}  // namespace flowinfer
