// Per-slide state shared by the stages through the messages that flow between them.
//
// Thread safety: `job`, `slide` and `plan` are set by the plan stage before the first message
// leaves it and are read-only afterwards. fail()/failed()/error() are thread-safe. The fields
// marked "stitch" are touched only by the (serial) stitch node, those marked "write" only by
// the (serial) write node; `writer` is created by stitch before it sends the first tile and
// used only by write afterwards.
#pragma once

#include "stages/layout.hpp"
#include "stages/slide.hpp"
#include "stages/tiff_writer.hpp"

#include <flowinfer/pipeline.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>

namespace flowinfer {

struct StitchState;

struct SlideContext {
    SlideContext();
    ~SlideContext();

    SlideJob job;
    std::unique_ptr<Slide> slide;
    SlidePlan plan;
    std::chrono::steady_clock::time_point start;

    // A slide error: the first message wins; later stages skip the slide's work but still
    // pass its patches on, so tokens return and the slide's result is emitted once.
    void fail(const std::string& message);
    bool failed() const { return failed_.load(std::memory_order_acquire); }
    std::string error() const;

    // stitch
    std::unique_ptr<StitchState> stitch;
    std::uint64_t stitched = 0;
    std::int64_t tiles_sent = 0;
    // stitch, then write
    std::unique_ptr<PyramidTiffWriter> writer;
    OutputInfo output;
    // write
    std::int64_t tiles_received = 0;
    std::int64_t tiles_expected = -1;  // known once stitch has seen every patch

private:
    std::atomic<bool> failed_{false};
    mutable std::mutex mu_;
    std::string error_;
};

using SlidePtr = std::shared_ptr<SlideContext>;

}  // namespace flowinfer
