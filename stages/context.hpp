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
#include "stages/tiff/writer.hpp"

#include <vector>

#include <flowinfer/pipeline.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>

namespace flowinfer {

struct StitchState;
struct ClassifyState;
struct DetectState;
class ObjectWriter;

// One model's work on one slide.
struct ModelSlide {
    ModelSlide();
    ModelSlide(ModelSlide&&) noexcept;
    ~ModelSlide();

    // sink (the model's stitch / classify / detect node)
    std::unique_ptr<StitchState> stitch;
    std::unique_ptr<ClassifyState> classify;
    std::unique_ptr<DetectState> detect;
    std::uint64_t consumed = 0;  // patches this model has finished
    std::int64_t sent = 0;       // write messages sent
    // sink, then write
    std::unique_ptr<PyramidTiffWriter> tiff;
    std::unique_ptr<ObjectWriter> objects;
    std::vector<std::string> measurement_names;  // of ObjectRow::measurements
    std::vector<OutputInfo> outputs;
    // write
    std::int64_t received = 0;
    std::int64_t expected = -1;  // known once the sink has seen every patch
    bool finished = false;
};

struct SlideContext {
    SlideContext();
    ~SlideContext();

    SlideJob job;
    std::unique_ptr<Slide> slide;
    std::vector<SlidePlan> plans;  // per read group
    std::chrono::steady_clock::time_point start;
    std::vector<ModelSlide> models;  // per model
    std::string tissue_preview;      // path of the mask preview, if written
    std::atomic<std::int64_t> patches_unreadable{0};  // read_region (on_read_error = "skip")

    // A slide error: the first message wins; later stages skip the slide's work but still
    // pass its patches on, so tokens return and the slide's result is emitted once.
    void fail(const std::string& message);
    bool failed() const { return failed_.load(std::memory_order_acquire); }
    std::string error() const;

    // write
    std::size_t models_finished = 0;

private:
    std::atomic<bool> failed_{false};
    mutable std::mutex mu_;
    std::string error_;
};

using SlidePtr = std::shared_ptr<SlideContext>;

}  // namespace flowinfer
