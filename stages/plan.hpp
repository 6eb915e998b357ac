// plan stage: opens a slide, lays out its patches and starts its cursor.
//
// Thread safety: operator() is const and may run concurrently for different slides.
#pragma once

#include "stages/messages.hpp"
#include "stages/stage_stats.hpp"

#include <flowinfer/config.hpp>
#include <flowinfer/pipeline.hpp>

#include "stages/roi.hpp"

#include <atomic>
#include <optional>

namespace flowinfer {

// Either a cursor over the slide's patches, or (cursor == nullptr) the failed result of a
// slide that could not be opened or planned.
struct PlanOutcome {
    CursorPtr cursor;
    SlideResult failure;
};

class PlanStage {
public:
    PlanStage(const Config& cfg, const Topology& topology, StageCounter& counter,
              std::atomic<std::int64_t>& patches_total)
        : cfg_(&cfg), topology_(&topology), counter_(&counter), total_(&patches_total) {}
    PlanOutcome operator()(const SlideJob& job) const;

private:
    // The slide's region of interest (input.roi, input.region), if any; sets out.failure's
    // status to skipped for input.roi_missing = "skip". Throws SlideError.
    std::optional<Region> region(const SlideJob& job, const Slide& slide, PlanOutcome& out,
                                 std::vector<std::string>& warnings) const;
    // An image of input.images: its plans, or a failed context with placeholder plans.
    void plan_image(SlideContext& ctx) const;
    const Config* cfg_;
    const Topology* topology_;
    StageCounter* counter_;
    std::atomic<std::int64_t>* total_;
};

// input.roi's pattern for one slide: {stem} and {name} replaced by its file name without and
// with its extension.
std::string roi_path(const std::string& pattern, const std::string& slide_path);

// The decoded-tile cache a slide's walk needs to decode every tile once: per plan, a band
// of tile rows across the read level as deep as a section of patch rows plus one tile row
// (neighbouring sections share a row), at the decoded scale; at most cap_mb MB in all.
std::int64_t tile_cache_bytes(const Slide& slide, const std::vector<SlidePlan>& plans, std::int64_t cap_mb);

}  // namespace flowinfer
