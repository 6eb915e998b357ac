#include <flowinfer/pipeline.hpp>

#include "stages/json.hpp"

#include <algorithm>

namespace flowinfer {

const char* to_string(SlideStatus s) noexcept {
    switch (s) {
        case SlideStatus::pending: return "pending";
        case SlideStatus::ok: return "ok";
        case SlideStatus::failed: return "failed";
        case SlideStatus::interrupted: return "interrupted";
        case SlideStatus::skipped: return "skipped";
    }
    return "?";
}

const char* to_string(RunState s) noexcept {
    switch (s) {
        case RunState::running: return "running";
        case RunState::finished: return "finished";
        case RunState::interrupted: return "interrupted";
        case RunState::failed: return "failed";
    }
    return "?";
}

std::string summary_json(const RunSummary& s) {
    Json j;
    j["state"] = to_string(s.state);
    if (!s.error.empty()) j["error"] = s.error;
    if (s.shard)
        j["shard"] = {{"index", s.shard->index}, {"count", s.shard->count}, {"slides_total", s.slides_total},
                      {"slides_sha256", s.slides_sha256}};
    // One count per status, in this order; a new status only needs adding here.
    constexpr SlideStatus kOrder[] = {SlideStatus::ok, SlideStatus::skipped, SlideStatus::failed,
                                      SlideStatus::interrupted, SlideStatus::pending};
    Json& counts = j["counts"] = Json::object();
    for (SlideStatus st : kOrder)
        counts[to_string(st)] =
            std::count_if(s.slides.begin(), s.slides.end(), [st](const SlideResult& r) { return r.status == st; });
    Json& slides = j[s.images ? "images" : "slides"] = Json::array();
    for (const SlideResult& r : s.slides) {
        Json e = {{"path", r.path}, {"status", to_string(r.status)}};
        if (!r.error.empty()) e["error"] = r.error;
        if (!r.reason.empty()) e["reason"] = r.reason;
        if (!r.warnings.empty()) e["warnings"] = r.warnings;
        e["patches"] = r.patches;
        // An image entry keeps what varies from image to image: a 100,000-image summary is
        // tens of MB already.
        if (!s.images || r.patches_unreadable) e["patches_unreadable"] = r.patches_unreadable;
        if (!s.images) e["patches_skipped"] = r.patches_skipped;
        if (!r.reader.empty() && !s.images) e["reader"] = r.reader;
        if (r.reader == "native") {
            e["tiles_decoded"] = r.tiles_decoded;
            e["tile_cache_hits"] = r.tile_cache_hits;
            e["tile_cache_peak_mb"] = static_cast<double>(r.tile_cache_peak_bytes) / (1 << 20);
        }
        e["wall_s"] = r.wall_s;
        Json& outputs = e["outputs"] = Json::array();
        for (const OutputInfo& o : r.outputs) {
            Json out = s.images ? Json{{"model", o.model}, {"format", o.format}, {"path", o.path}}
                                : Json{{"model", o.model}, {"kind", o.kind}, {"format", o.format}, {"path", o.path}};
            if (!s.images) add_output_details(out, o);
            else if (o.objects >= 0) out["objects"] = o.objects;
            outputs.push_back(std::move(out));
        }
        slides.push_back(std::move(e));
    }
    if (s.images) {
        Json& tables = j["tables"] = Json::array();
        for (const OutputInfo& o : s.tables) {
            Json t = {{"model", o.model}, {"kind", o.kind}, {"format", o.format}, {"path", o.path}};
            add_output_details(t, o);
            tables.push_back(std::move(t));
        }
        const double work_s = s.wall_s - s.setup_s;
        const auto ok = std::count_if(s.slides.begin(), s.slides.end(), [](const SlideResult& r) { return r.ok(); });
        j["images_per_s"] = work_s > 0 ? static_cast<double>(ok) / work_s : 0.0;
    }
    j["patches"] = s.patches;
    j["wall_s"] = s.wall_s;
    j["setup_s"] = s.setup_s;
    j["patches_per_s"] = s.patches_per_s;
    j["peak_in_flight"] = s.peak_in_flight;
    j["peak_rss_mb"] = s.peak_rss_mb;
    const RuntimeInfo& rt = s.runtime;
    j["runtime"] = {{"device", rt.device},           {"precision", rt.precision},
                    {"readers", rt.readers},         {"threads", rt.threads},
                    {"torch_threads", rt.torch_threads}, {"infer_slots", rt.infer_slots},
                    {"max_in_flight", rt.max_in_flight}, {"batch_size", rt.batch_size}};
    Json& stages = j["stages"] = Json::object();
    for (const auto& [name, st] : s.stages)
        stages[name] = {{"busy_s", st.busy_s}, {"items", st.items}, {"peak_concurrency", st.peak_concurrency}};
    return json_text(j);
}

}  // namespace flowinfer
