// write stage: hands finished map tiles to each model's pyramidal TIFF writer, objects to its
// GeoJSON/CSV writer and feature rows to its HDF5 writer; once every model's sink has ended the slide and every message it
// sent has arrived, finishes all of the slide's files and emits the slide's result.
// Messages may arrive in any order: each end marker carries its model's message count.
// An OutputError (a file that cannot be written) is thrown on: it stops the run.
//
// Thread safety: operator() must run serially (its node has concurrency 1).
#pragma once

#include "stages/messages.hpp"
#include "stages/stage_stats.hpp"

#include <flowinfer/config.hpp>
#include <flowinfer/pipeline.hpp>

#include <atomic>
#include <optional>

namespace flowinfer {

class WriteStage {
public:
    WriteStage(const Config& cfg, StageCounter& counter, std::atomic<std::int64_t>& slides_done)
        : cfg_(&cfg), counter_(&counter), slides_done_(&slides_done) {}
    std::optional<SlideResult> operator()(const WriteMsg& m) const;

private:
    SlideResult finish(SlideContext& ctx) const;
    const Config* cfg_;
    StageCounter* counter_;
    std::atomic<std::int64_t>* slides_done_;
};

}  // namespace flowinfer
