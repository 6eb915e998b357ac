#include <flowinfer/pipeline.hpp>

#include "stages/json.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace flowinfer {

namespace {

std::string quote(const std::string& s) { return json_string(s); }

std::string number(double v) { return std::isfinite(v) ? fmt::format("{:.6g}", v) : "null"; }

}  // namespace

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
    std::string j = fmt::format("{{\n  \"state\": {},\n", quote(to_string(s.state)));
    if (!s.error.empty()) j += fmt::format("  \"error\": {},\n", quote(s.error));
    if (s.shard)
        j += fmt::format("  \"shard\": {{\"index\": {}, \"count\": {}, \"slides_total\": {}, \"slides_sha256\": {}}},\n",
                         s.shard->index, s.shard->count, s.slides_total, quote(s.slides_sha256));
    // One count per status, in this order; a new status only needs adding here.
    constexpr SlideStatus kOrder[] = {SlideStatus::ok, SlideStatus::skipped, SlideStatus::failed,
                                      SlideStatus::interrupted, SlideStatus::pending};
    j += "  \"counts\": {";
    for (SlideStatus st : kOrder) {
        const auto n = std::count_if(s.slides.begin(), s.slides.end(), [st](const SlideResult& r) { return r.status == st; });
        j += fmt::format("{}{}: {}", st == kOrder[0] ? "" : ", ", quote(to_string(st)), n);
    }
    j += "},\n";
    j += "  \"slides\": [";
    for (std::size_t i = 0; i < s.slides.size(); ++i) {
        const SlideResult& r = s.slides[i];
        j += i ? ",\n    {" : "\n    {";
        j += fmt::format("\"path\": {}, \"status\": {}, ", quote(r.path), quote(to_string(r.status)));
        if (!r.error.empty()) j += fmt::format("\"error\": {}, ", quote(r.error));
        if (!r.reason.empty()) j += fmt::format("\"reason\": {}, ", quote(r.reason));
        j += fmt::format("\"patches\": {}, \"patches_skipped\": {}, \"patches_unreadable\": {}, \"wall_s\": {}, "
                         "\"outputs\": [",
                         r.patches, r.patches_skipped, r.patches_unreadable, number(r.wall_s));
        for (std::size_t k = 0; k < r.outputs.size(); ++k) {
            const OutputInfo& o = r.outputs[k];
            j += fmt::format("{}{{\"model\": {}, \"kind\": {}, \"format\": {}, \"path\": {}", k ? ", " : "",
                             quote(o.model), quote(o.kind), quote(o.format), quote(o.path));
            if (o.format == "tiff")
                j += fmt::format(", \"width\": {}, \"height\": {}, \"downsample\": {}", o.width, o.height,
                                 number(o.downsample));
            if (o.objects >= 0) j += fmt::format(", \"objects\": {}", o.objects);
            j += "}";
        }
        j += "]}";
    }
    j += s.slides.empty() ? "],\n" : "\n  ],\n";
    j += fmt::format("  \"patches\": {},\n  \"wall_s\": {},\n  \"setup_s\": {},\n  \"patches_per_s\": {},\n",
                     s.patches, number(s.wall_s), number(s.setup_s), number(s.patches_per_s));
    const RuntimeInfo& rt = s.runtime;
    j += fmt::format("  \"peak_in_flight\": {},\n  \"peak_rss_mb\": {},\n", s.peak_in_flight,
                     number(s.peak_rss_mb));
    j += fmt::format("  \"runtime\": {{\"device\": {}, \"precision\": {}, \"readers\": {}, \"threads\": {}, "
                     "\"torch_threads\": {}, \"infer_slots\": {}, \"max_in_flight\": {}, \"batch_size\": {}}},\n",
                     quote(rt.device), quote(rt.precision), rt.readers, rt.threads, rt.torch_threads,
                     rt.infer_slots, rt.max_in_flight, rt.batch_size);
    j += "  \"stages\": {";
    bool first = true;
    for (const auto& [name, st] : s.stages) {
        j += fmt::format("{}\n    {}: {{\"busy_s\": {}, \"items\": {}, \"peak_concurrency\": {}}}",
                         first ? "" : ",", quote(name), number(st.busy_s), st.items, st.peak_concurrency);
        first = false;
    }
    j += first ? "}\n}\n" : "\n  }\n}\n";
    return j;
}

}  // namespace flowinfer
