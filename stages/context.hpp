// Per-slide state shared by the stages through the messages that flow between them.
//
// Thread safety: `job`, `slide` and `plan` are set by the plan stage before the first message
// leaves it and are read-only afterwards. fail()/failed()/error() are thread-safe. The fields
// marked "sink" are touched only by the model's (serial) sink node, those marked "write" only
// by the (serial) write node; the output writers (`tiff`, `objects`, `features`) are created
// by the sink before it sends the first message and used only by write afterwards.
#pragma once

#include "stages/layout.hpp"
#include "stages/slide.hpp"
#include "stages/tiff/writer.hpp"

#include <vector>

#include <flowinfer/pipeline.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

namespace flowinfer {

struct StitchState;
struct ClassifyState;
struct DetectState;
struct EmbedState;
class ObjectWriter;
namespace hdf5 {
class FeatureWriter;
}
namespace image {
class PngMapWriter;
}

// Rows of an embedding model's features file, in walk order: rows first, first + 1, ...
// (the write node appends them in that order whatever order the messages arrive in).
struct FeatureRows {
    std::int64_t first = 0;
    std::vector<std::int64_t> xy;  // 2 per row: the patch's level-0 top-left (x, y)
    std::vector<float> values;     // D per row
    std::size_t size() const { return xy.size() / 2; }
};

// One model's work on one slide.
struct ModelSlide {
    ModelSlide();
    ModelSlide(ModelSlide&&) noexcept;
    ~ModelSlide();

    // sink (the model's stitch / classify / detect / embed node)
    std::unique_ptr<StitchState> stitch;
    std::unique_ptr<ClassifyState> classify;
    std::unique_ptr<DetectState> detect;
    std::unique_ptr<EmbedState> embed;
    std::uint64_t consumed = 0;  // patches this model has finished
    std::int64_t sent = 0;       // write messages sent
    // sink, then write
    std::unique_ptr<PyramidTiffWriter> tiff;
    std::unique_ptr<ObjectWriter> objects;
    std::unique_ptr<hdf5::FeatureWriter> features;
    std::unique_ptr<image::PngMapWriter> png_map;  // an image's segmentation map (input.images)
    std::vector<std::string> measurement_names;  // of ObjectRow::measurements
    // An image's rows of the run-wide <model>.csv (input.images): the header (set by the sink
    // when the model has such a table) and the rows (write), by position (y, x, then the far
    // corner and class), so that the rows of an image come in one order whatever order its
    // batches finished in.
    std::string table_header;
    std::multimap<std::tuple<double, double, double, double, int>, std::string> table_lines;
    std::vector<OutputInfo> outputs;
    // write
    std::map<std::int64_t, FeatureRows> feature_backlog;  // arrived ahead of earlier rows, by first row
    std::int64_t received = 0;
    std::int64_t expected = -1;  // known once the sink has seen every patch
    bool finished = false;
};

struct SlideContext {
    SlideContext();
    ~SlideContext();

    SlideJob job;
    bool is_image() const { return !job.image.empty(); }
    std::unique_ptr<Slide> slide;
    std::vector<SlidePlan> plans;  // per read group
    std::chrono::steady_clock::time_point start;
    std::vector<ModelSlide> models;  // per model
    std::string tissue_preview;      // path of the mask preview, if written
    std::vector<std::string> warnings;  // plan: problems that did not stop the slide
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
