// flowinfer pipeline: the whole-slide inference graph, as a function and as a flow-graph node.
//
// Thread safety:
// - run() may be called from any thread; concurrent calls must use different output dirs.
// - SlidePipeline is a tbb::flow::composite_node: construct it with the user's graph, connect
//   it with make_edge, and feed it with try_put like any other node. Its constructor loads the
//   model(s) and may throw ModelError. It must outlive every wait_for_all() on its graph.
//   stats() and progress() may be read from any thread at any time (atomics).
// - A model error (load failure, exception in forward, wrong output shape) cancels the graph
//   it runs in and is rethrown by that graph's wait_for_all(). A slide error (cannot open,
//   corrupt tile, no MPP) fails that slide only: its SlideResult says status "failed".
#pragma once

#include <flowinfer/config.hpp>

#include <tbb/flow_graph.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

namespace flowinfer {

// One slide to process. `index` orders slides inside the graph (lower first) and names the
// slide in messages between stages: it must be unique among the slides fed to one
// SlidePipeline.
struct SlideJob {
    std::uint32_t index = 0;
    std::string path;
};

struct OutputInfo {
    std::string model;
    std::string kind;    // the model's task: "segmentation", "classification", "detection"
    std::string format;  // "tiff" (a map), "geojson", "csv", "png" (tissue mask preview)
    std::string path;    // final file; only present once complete
    std::int64_t width = 0;   // maps: pixels
    std::int64_t height = 0;
    double downsample = 1.0;  // maps: one output pixel = this many level-0 pixels
    std::int64_t objects = -1;  // geojson/csv: features written
};

struct SlideResult {
    std::uint32_t index = 0;
    std::string path;
    bool ok = false;
    std::string error;  // set when !ok
    std::int64_t patches = 0;          // patches run (every read group)
    std::int64_t patches_skipped = 0;  // left out by tissue detection
    double wall_s = 0.0;
    std::vector<OutputInfo> outputs;
};

struct StageStats {
    double busy_s = 0.0;  // summed over the stage's concurrent bodies
    std::int64_t items = 0;
    int peak_concurrency = 0;  // most bodies of the stage seen running at once
};

// The settings in effect (defaults resolved), as reported in summary.json.
struct RuntimeInfo {
    std::string device;
    std::string precision;
    int readers = 0;
    int threads = 0;        // TBB worker threads available
    int torch_threads = 0;  // LibTorch intra-op threads
    int infer_slots = 0;
    int max_in_flight = 0;
    int batch_size = 0;
};

struct Progress {
    std::int64_t patches_done = 0;
    std::int64_t patches_total = 0;  // of slides planned so far
    std::int64_t slides_done = 0;
    std::int64_t peak_in_flight = 0;  // patches admitted but not yet stitched, observed maximum
    std::int64_t in_flight = 0;       // the same, now
};

struct RunSummary {
    std::vector<SlideResult> slides;
    std::int64_t patches = 0;
    double wall_s = 0.0;
    // Of wall_s, the time spent loading and warming up the models before the first slide;
    // paid once per run, whatever the number of slides.
    double setup_s = 0.0;
    double patches_per_s = 0.0;  // patches / (wall_s - setup_s)
    std::map<std::string, StageStats> stages;  // plan, read_region, normalize, ...
    std::int64_t peak_in_flight = 0;
    double peak_rss_mb = 0.0;  // of the whole process, at the end of the run
    RuntimeInfo runtime;
};

class SlidePipeline
    : public tbb::flow::composite_node<std::tuple<SlideJob>, std::tuple<SlideResult>> {
public:
    SlidePipeline(tbb::flow::graph& g, const Config& cfg);
    ~SlidePipeline();
    SlidePipeline(const SlidePipeline&) = delete;
    SlidePipeline& operator=(const SlidePipeline&) = delete;

    std::map<std::string, StageStats> stats() const;
    Progress progress() const;
    RuntimeInfo runtime() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Observer for run(): called from a background thread about twice a second.
using ProgressFn = void (*)(const Progress&, double elapsed_s, void* user);

// Processes every slide of cfg in one graph, writes outputs and <output_dir>/summary.json.
// Slide failures are reported in the summary; a model or output error is rethrown after
// partial outputs are removed.
RunSummary run(const Config& cfg, ProgressFn progress = nullptr, void* user = nullptr);

// summary.json text for `s` (the schema in README.md).
std::string summary_json(const RunSummary& s);

}  // namespace flowinfer
