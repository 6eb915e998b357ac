// flowinfer bench: the pipeline measured against its own ceilings, in one process, on the
// same slide, model, device and settings.
//
// Thread safety: bench() runs one measurement after another and must not run concurrently
// with another bench() or run() in the same process (LibTorch's thread count is global).
#pragma once

#include <flowinfer/config.hpp>
#include <flowinfer/pipeline.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace flowinfer {

struct BenchOptions {
    std::int64_t ceiling_patches = 4096;  // patches the read ceiling cycles through (all, if fewer)
    // Each ceiling measurement (the reads; the model, per shape) runs at least this long: near
    // the pipeline's own run time on the benchmark slides, so that on a machine whose speed
    // drifts from second to second the ceilings and the pipeline average over windows of
    // about the same length.
    double ceiling_seconds = 3.0;
    // Every measurement runs this many times, interleaved, and the median counts: on a shared
    // machine one window says more about the neighbours than about flowinfer. (On the 2-core
    // CI machine one measurement varies by up to 40% from one round to the next.)
    int repeat = 5;
    // Only the read ceilings (every reader that reads the slide): no model, no runs. For
    // comparing readers on walks too long to run whole (overlap 0.8 on a large slide).
    bool reads_only = false;
};

struct BenchResult {
    std::string slide, model, device, precision;
    std::string blas;  // CPU: the BLAS library LibTorch calls (the file defining sgemm_)
    int patch_size = 0, batch_size = 0, readers = 0, threads = 0;
    int micro_batch = 0;          // patches per forward call (CPU: cpu_micro_batch; GPU: batch_size)
    int torch_threads = 0;        // the pipeline's
    int model_concurrency = 1;    // concurrent model calls at the model's best
    int model_torch_threads = 0;  // LibTorch threads at the model's best
    struct Shape {
        int calls = 1, torch_threads = 1;
        double patches_per_s = 0;
    };
    std::vector<Shape> model_shapes;  // every (calls x threads) the model ceiling tried
    std::string reader;  // the slide reader runtime.reader chose ("native" or "openslide")
    double read_patches_per_s = 0;  // with `reader`
    // The read ceiling of each reader that reads the slide, measured in the same rounds.
    std::map<std::string, double> read_patches_per_s_by_reader;
    double model_patches_per_s = 0;
    double sequential_patches_per_s = 0;
    double pipeline_patches_per_s = 0;
    double bound_patches_per_s = 0;  // min(read, model) on a GPU; 1/(1/read + 1/model) on CPU
    double efficiency = 0;           // pipeline / bound
    double speedup_vs_sequential = 0;
    double mean_in_flight = 0;       // sampled patches in flight during the pipeline run
    // Every round's four figures (patches/s; model: that round's best shape), in order: the
    // spread says how noisy the machine was around the medians.
    struct Round {
        double read = 0, model = 0, sequential = 0, pipeline = 0;
        std::map<std::string, double> read_by_reader;
    };
    std::vector<Round> rounds;
    RunSummary pipeline, sequential;
};

// Runs the four measurements on cfg's first slide with its first model, writing the two
// runs' outputs under <output_dir>/bench/. Throws like run().
BenchResult bench(const Config& cfg, const BenchOptions& options = {});

std::string bench_json(const BenchResult& r);
std::string bench_table(const BenchResult& r);

// flowinfer bench on input.images: every image through the pipeline with cfg's first model,
// and through the same graph on one thread, one image at a time (batches of one, LibTorch on
// every core): the seeds' original loop, in process. `repeat` interleaved rounds; the medians
// count. Outputs go under <output_dir>/bench/{pipeline,loop}/.
struct ImageBenchResult {
    std::string model, device, precision;
    std::int64_t images = 0, failed = 0, patches = 0;
    int patch_size = 0, batch_size = 0, readers = 0, threads = 0, torch_threads = 0;
    double loop_images_per_s = 0, pipeline_images_per_s = 0, speedup_vs_loop = 0;
    std::vector<std::pair<double, double>> rounds;  // (loop, pipeline) images/s per round
    RunSummary pipeline;                            // the median round's
};
ImageBenchResult bench_images(const Config& cfg, const BenchOptions& options = {});
std::string image_bench_json(const ImageBenchResult& r);
std::string image_bench_table(const ImageBenchResult& r);

// "stage: busy_s, utilization" lines and the bottleneck of a run (flowinfer run --profile).
std::string profile_report(const RunSummary& s, const Config& cfg);

}  // namespace flowinfer
