// flowinfer pipeline: the whole-slide inference graph, as a function and as a flow-graph node.
//
// Thread safety:
// - run() may be called from any thread; concurrent calls, in one process or several, must use
//   different output dirs or different shards of one slide list (a shard writes only its own
//   slides' directories and its own summary-I-of-N.json).
// - SlidePipeline is a tbb::flow::composite_node: construct it with the user's graph, connect
//   it with make_edge, and feed it with try_put like any other node. Its constructor loads the
//   model(s) and may throw ModelError. It must outlive every wait_for_all() on its graph.
//   stats() and progress() may be read from any thread at any time (atomics); stop() may be
//   called from any thread at any time.
// - Errors that belong to one slide fail that slide only, and its SlideResult says status
//   "failed": it cannot be opened, a tile is corrupt, it has no MPP, or the model threw or
//   returned a wrong shape for one of its batches (a batch holds patches of one slide only).
//   Errors that are not about one slide cancel the graph and are rethrown by its
//   wait_for_all(): an output that cannot be written (OutputError: unwritable directory, full
//   disk) or a model that cannot be loaded (ModelError, from the constructor).
#pragma once

#include <flowinfer/config.hpp>

#include <tbb/flow_graph.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
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
    // Patch-directory mode (input.images): the image's path under the patterns' common
    // directory, which its outputs mirror (Config::images); "" for a slide.
    std::string image;
    // Image jobs: the image jobs put into this run. Patches of several images share a batch,
    // and the last, partial batch goes once every one of them has been read. 0: each image's
    // last patch sends its batch (right, but small batches).
    std::uint32_t images_total = 0;
};

struct OutputInfo {
    std::string model;
    std::string kind;    // the model's task: "segmentation", "classification", "detection", "embedding"
    // "tiff" (a map), "geojson", "csv", "hdf5" (features), "png" (kind "tissue": the mask
    // preview; kind "preview": the overlay preview)
    std::string format;
    std::string path;    // final file; only present once complete
    std::int64_t width = 0;   // maps: pixels
    std::int64_t height = 0;
    double downsample = 1.0;  // maps: one output pixel = this many level-0 pixels
    std::int64_t objects = -1;  // geojson/csv: features written
    std::int64_t rows = -1;     // hdf5: feature rows (N, one per patch run and read)
    std::int64_t dim = 0;       // hdf5: features per row (D)
};

// A slide's state in summary.json.
// - pending: not finished when the summary was written (summary.json is rewritten as each
//   slide finishes, so a killed run leaves the slides it had not finished pending);
// - ok: every output written;
// - failed: a slide error; `error` says what;
// - interrupted: the run stopped before the slide finished (a signal, or an error that is
//   not about one slide); `error` says why. Nothing of it is left under a final name.
// - skipped: not processed, because its resume record says its outputs are complete and were
//   made from the same slide file, model files, settings and flowinfer version (RunOptions::
//   resume); `reason` says so, and the outputs and patch counts are the record's.
enum class SlideStatus { pending, ok, failed, interrupted, skipped };
const char* to_string(SlideStatus s) noexcept;

struct SlideResult {
    std::uint32_t index = 0;
    std::string path;
    SlideStatus status = SlideStatus::pending;
    bool ok() const { return status == SlideStatus::ok; }
    std::string error;  // failed, interrupted: what went wrong
    // skipped: "outputs complete (resume)"; a slide processed although it had a resume record:
    // why that record did not do ("redone: model 'x' file changed"); otherwise empty.
    std::string reason;
    std::int64_t patches = 0;             // patches run (every read group)
    std::int64_t patches_skipped = 0;     // left out by tissue detection
    std::int64_t patches_unreadable = 0;  // of `patches`, left out as unreadable (on_read_error = "skip")
    // Who read the pixels: "native" or "openslide" (runtime.reader); empty if never opened.
    std::string reader;
    // Native reader: tiles decoded, found in the decoded-tile cache, and the cache's most bytes.
    std::int64_t tiles_decoded = 0, tile_cache_hits = 0, tile_cache_peak_bytes = 0;
    double wall_s = 0.0;
    std::vector<OutputInfo> outputs;
    // Problems that did not stop the slide, each naming its file or key (a region file's
    // skipped feature, a missing ROI with input.roi_missing = "all", a key not applied).
    std::vector<std::string> warnings;
    // The overlay preview as a small PNG "data:" URI (output.previews), for report.html.
    std::string thumbnail;
    // Patch-directory mode: the image's lines of each run-wide <output.dir>/<model>.csv
    // (classification, detection), each starting with the image's relative path.
    struct TableRows {
        std::string model;
        std::string header;  // the CSV's first line, with its newline
        std::string lines;   // this image's rows, each ending in a newline
    };
    std::vector<TableRows> table_rows;
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

// One of `count` parts of a slide list, for running a cohort as a job array (`index` from 1).
// Slide k of the list (0-based) belongs to shard (k mod count) + 1: round-robin, so each shard
// gets a spread of the list (and of its slide sizes, when the list is ordered by scanner or
// date), and shard sizes differ by at most one.
struct Shard {
    int index = 1;
    int count = 1;
};

// The slides of `slides` that belong to `shard` (in list order). Throws Error when the shard
// is not 1 <= index <= count.
std::vector<std::string> shard_slides(const std::vector<std::string>& slides, const Shard& shard);

// The summary file a run writes: "summary.json", or "summary-I-of-N.json" for a shard, so
// shards writing one output directory never write the same file.
std::string summary_file_name(const std::optional<Shard>& shard);
// The HTML report beside it: "report.html", or "report-I-of-N.html" for a shard. One
// self-contained file (no network): a table of slides with their status, patches, time,
// outputs, errors and preview thumbnails, sortable and filterable by status.
std::string report_file_name(const std::optional<Shard>& shard);

// The run as a whole, in summary.json's "state".
// - running: a summary written while slides are still being processed;
// - finished: every slide has a result (ok, failed or skipped);
// - interrupted: stopped on request (RunStop: SIGINT, SIGTERM in the CLI);
// - failed: stopped by an error that is not about one slide (RunSummary::error).
enum class RunState { running, finished, interrupted, failed };
const char* to_string(RunState s) noexcept;

struct RunSummary {
    RunState state = RunState::running;
    std::string error;  // interrupted, failed: why the run stopped
    std::string path;   // the summary file written: <output.dir>/summary_file_name(shard)
    // report.html, rewritten with it: <output.dir>/report_file_name(shard); "" for images
    std::string report;
    std::optional<Shard> shard;
    // Of the whole list (every shard): its length and the SHA-256 of its paths (one per line),
    // so per-shard summaries can be checked to come from one list.
    std::size_t slides_total = 0;
    std::string slides_sha256;
    std::vector<SlideResult> slides;  // this shard's (all of them without a shard)
    // Patch-directory mode: the run-wide <output.dir>/<model>.csv files (classification,
    // detection; "<model>-I-of-N.csv" for shard I of N), `objects` their rows.
    std::vector<OutputInfo> tables;
    // Patch-directory mode (input.images): summary.json lists `slides` as "images", one
    // entry per image, and adds images_per_s.
    bool images = false;
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

    // Stops admitting work: no further slide is opened and no further patch enters the
    // graph. Patches already admitted still flow; cancel the graph to drop them too.
    void stop();

    // `fn` sees every SlideResult from the node body that made it, before it is sent on
    // output port 0, so a result is not lost when the graph is cancelled just after it (its
    // files are then already under their final names). Calls are serialised; an exception
    // thrown by `fn` cancels the graph like any node's. Set it before the first try_put.
    void observe_results(std::function<void(const SlideResult&)> fn);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Observer for run(): called from a background thread about twice a second.
using ProgressFn = void (*)(const Progress&, double elapsed_s, void* user);

// Asks a run() to stop (the CLI's SIGINT/SIGTERM): no new patch is admitted, the graph is
// cancelled, unfinished slides' temporary files are removed, and run() returns a summary
// whose state is "interrupted" instead of throwing.
// Thread safety: request() and requested() may be called from any thread, before or during
// run(); request() is not async-signal-safe (it takes a mutex): call it from a normal thread.
class RunStop {
public:
    void request(const std::string& reason);
    bool requested() const { return requested_.load(std::memory_order_acquire); }
    std::string reason() const;
    // For run(): `fn` is called once when a stop is requested (at once if it already was);
    // nullptr removes it. request() and this call exclude each other, so once it returns
    // with nullptr the previous `fn` is not running and will not run.
    void on_request(std::function<void()> fn);

private:
    mutable std::mutex mu_;
    std::atomic<bool> requested_{false};
    std::string reason_;
    std::function<void()> fn_;
};

struct RunOptions {
    // Skip a slide whose resume record (<output.dir>/<slide stem>/.flowinfer-done.json) matches
    // this run and whose recorded outputs all exist with their recorded sizes; see README,
    // "Resume". Off: every slide is processed (the CLI's --force). Records are written either
    // way, as the last step of every slide that ends ok.
    bool resume = false;
    std::optional<Shard> shard;  // none: every slide of cfg
    ProgressFn progress = nullptr;
    void* user = nullptr;
    RunStop* stop = nullptr;  // ends the run early: see RunStop
};

// Processes the slides of cfg (of options.shard, if set) in one graph, writes outputs, resume
// records and <output_dir>/summary_file_name(shard). The summary is written before the first
// slide and rewritten (atomically) as each slide finishes, so a killed run leaves a valid
// summary of what it finished. Slide failures are reported in the summary. An error that is
// not about one slide (a model that cannot be loaded or read, an output that cannot be
// written) is rethrown after partial outputs are removed and the summary is written with
// state "failed". No model is loaded when every slide is skipped.
RunSummary run(const Config& cfg, const RunOptions& options);

// run() over every slide, without resume.
RunSummary run(const Config& cfg, ProgressFn progress = nullptr, void* user = nullptr,
               RunStop* stop = nullptr);

// summary.json text for `s` (the schema in README.md).
std::string summary_json(const RunSummary& s);

}  // namespace flowinfer
