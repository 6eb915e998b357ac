// flowinfer bench on a patch directory (input.images): every image through the pipeline, and
// through the same graph on one thread with batches of one image (the seeds' one-image-at-a-
// time loop, in process), interleaved round by round; the medians count.
#include <flowinfer/bench.hpp>
#include <flowinfer/errors.hpp>

#include "stages/json.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <thread>

namespace flowinfer {

namespace {

namespace fs = std::filesystem;

double images_per_s(const RunSummary& s) {
    const auto ok = std::count_if(s.slides.begin(), s.slides.end(), [](const SlideResult& r) { return r.ok(); });
    const double work_s = s.wall_s - s.setup_s;
    return work_s > 0 ? static_cast<double>(ok) / work_s : 0.0;
}

// The upper middle value (of two rounds, the better one), as bench() takes it.
std::size_t median_at(const std::vector<double>& v) {
    std::vector<std::size_t> order(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return v[a] < v[b]; });
    return order[v.size() / 2];
}

}  // namespace

ImageBenchResult bench_images(const Config& base, const BenchOptions& opt) {
    if (!base.image_mode()) throw ConfigError(base.source, "input.images", 0, 0, "bench_images needs input.images");
    Config pipe = base;
    pipe.models = {base.models.front()};
    pipe.output_dir = (fs::path(base.output_dir) / "bench" / "pipeline").string();
    const int cores = pipe.threads > 0 ? pipe.threads : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    // The loop: one image after another, each read, run with every core in LibTorch and
    // written before the next one is opened.
    Config loop = pipe;
    loop.threads = 1;
    loop.readers = 1;
    loop.torch_threads = cores;
    loop.models.front().batch_size = 1;
    loop.max_in_flight = 1;
    loop.output_dir = (fs::path(base.output_dir) / "bench" / "loop").string();

    ImageBenchResult r;
    r.model = pipe.models.front().name;
    r.patch_size = tiling_for(pipe, pipe.models.front()).patch_size;
    r.batch_size = pipe.models.front().batch_size;
    r.readers = pipe.readers;
    r.threads = cores;
    std::vector<RunSummary> loops, pipes;
    std::vector<double> loop_rates, pipe_rates;
    for (int round = 0; round < std::max(1, opt.repeat); ++round) {
        loops.push_back(run(loop));
        loop_rates.push_back(images_per_s(loops.back()));
        pipes.push_back(run(pipe));
        pipe_rates.push_back(images_per_s(pipes.back()));
        r.rounds.push_back({loop_rates.back(), pipe_rates.back()});
    }
    const std::size_t mid = median_at(pipe_rates);
    r.pipeline = std::move(pipes[mid]);
    r.pipeline_images_per_s = pipe_rates[mid];
    r.loop_images_per_s = loop_rates[median_at(loop_rates)];
    r.images = static_cast<std::int64_t>(r.pipeline.slides.size());
    for (const SlideResult& s : r.pipeline.slides) r.failed += s.ok() ? 0 : 1;
    r.patches = r.pipeline.patches;
    r.device = r.pipeline.runtime.device;
    r.precision = r.pipeline.runtime.precision;
    r.torch_threads = r.pipeline.runtime.torch_threads;
    r.speedup_vs_loop = r.loop_images_per_s > 0 ? r.pipeline_images_per_s / r.loop_images_per_s : 0.0;
    return r;
}

std::string image_bench_json(const ImageBenchResult& r) {
    Json rounds = Json::array();
    for (const auto& [loop, pipe] : r.rounds) rounds.push_back({{"loop", loop}, {"pipeline", pipe}});
    const Json j = {{"images", r.images},
                    {"failed", r.failed},
                    {"patches", r.patches},
                    {"model", r.model},
                    {"device", r.device},
                    {"precision", r.precision},
                    {"patch_size", r.patch_size},
                    {"batch_size", r.batch_size},
                    {"readers", r.readers},
                    {"threads", r.threads},
                    {"torch_threads", r.torch_threads},
                    {"loop_images_per_s", r.loop_images_per_s},
                    {"pipeline_images_per_s", r.pipeline_images_per_s},
                    {"pipeline_patches_per_s", r.pipeline.patches_per_s},
                    {"speedup_vs_loop", r.speedup_vs_loop},
                    {"rounds", rounds}};
    return json_text(j);
}

std::string image_bench_table(const ImageBenchResult& r) {
    std::string t = fmt::format("{} images ({} patches, {} failed)  model {}  {} {}  patch {}  batch {}  readers {}  "
                                "threads {}  torch threads {}\n",
                                r.images, r.patches, r.failed, r.model, r.device, r.precision, r.patch_size,
                                r.batch_size, r.readers, r.threads, r.torch_threads);
    t += fmt::format("  {:<32}{:>10.1f} images/s\n", "loop (one image at a time)", r.loop_images_per_s);
    t += fmt::format("  {:<32}{:>10.1f} images/s\n", "pipeline", r.pipeline_images_per_s);
    t += fmt::format("  {:<32}{:>10.2f}x\n", "speedup vs loop", r.speedup_vs_loop);
    if (r.rounds.size() > 1) {
        t += fmt::format("  {:<32}{:>10}{:>10}   (images/s; the medians count)\n", "rounds", "loop", "pipeline");
        for (std::size_t i = 0; i < r.rounds.size(); ++i)
            t += fmt::format("    {:<30}{:>10.1f}{:>10.1f}\n", i + 1, r.rounds[i].first, r.rounds[i].second);
    }
    return t;
}

}  // namespace flowinfer
