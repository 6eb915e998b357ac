#include <flowinfer/bench.hpp>
#include <flowinfer/errors.hpp>

#include "stages/blas.hpp"
#include "stages/context.hpp"
#include "stages/json.hpp"
#include "stages/layout.hpp"
#include "stages/model.hpp"
#include "stages/plan.hpp"
#include "stages/read_region.hpp"

#include <fmt/format.h>
#include <tbb/parallel_for.h>
#include <tbb/info.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

namespace fs = std::filesystem;

namespace flowinfer {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

int cores(const Config& cfg) {
    return cfg.threads > 0 ? cfg.threads : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

// The slide and `n` patches of the first model's walk: all of them when there are no more
// than `n`, else 8 runs of n/8 consecutive patches spread evenly over the walk. Runs keep the
// pipeline's locality (neighbouring patches share JPEG tiles in OpenSlide's cache); spreading
// them keeps the mix of tissue and background, which decode at different speeds.
struct Sample {
    SlidePtr ctx;
    std::vector<PatchKey> keys;
};

Sample sample_patches(const Config& cfg, std::int64_t n, SlideReader reader) {
    Sample s;
    s.ctx = std::make_shared<SlideContext>();
    s.ctx->job = SlideJob{0, cfg.slides.front(), {}, 0};
    s.ctx->slide = std::make_unique<Slide>(cfg.slides.front(), reader);
    s.ctx->plans.push_back(plan_slide(*s.ctx->slide, 0, tiling_for(cfg, cfg.models.front()), cfg));
    s.ctx->slide->set_tile_cache_bytes(tile_cache_bytes(*s.ctx->slide, s.ctx->plans, cfg.tile_cache_mb));
    const SlidePlan& plan = s.ctx->plans.front();
    const std::uint64_t count = plan.count(), want = static_cast<std::uint64_t>(std::max<std::int64_t>(1, n));
    if (count <= want) {
        for (std::uint64_t i = 0; i < count; ++i) s.keys.push_back(plan.key(i));
        return s;
    }
    constexpr std::uint64_t kRuns = 8;
    const std::uint64_t run = std::max<std::uint64_t>(1, want / kRuns);
    for (std::uint64_t r = 0; r < kRuns && s.keys.size() < want; ++r)
        for (std::uint64_t i = r * count / kRuns, end = std::min(count, i + run); i < end && s.keys.size() < want; ++i)
            s.keys.push_back(plan.key(i));
    return s;
}

// Readers alone: read_region + RGB on `readers` threads, no model; passes over the sample
// until `seconds` have gone by, each from a cold decoded-tile cache (a pass must decode its
// tiles as the pipeline's one walk does, not find them left by the previous pass). No more
// readers than the pipeline's TBB threads: that is all the pipeline can run at once, and an
// arena asking TBB for more workers than its limit makes TBB print a warning.
double read_ceiling(const Config& cfg, const Sample& s, double seconds) {
    StageCounter counter;
    const ReadRegion read(counter);
    const int threads = cfg.threads > 0 ? cfg.threads : tbb::info::default_concurrency();
    tbb::task_arena arena(std::clamp(cfg.readers, 1, threads));
    std::int64_t patches = 0;
    const auto t0 = Clock::now();
    const Slide& slide = *s.ctx->slide;
    const std::int64_t cache = slide.tile_cache_bytes();
    do {
        slide.set_tile_cache_bytes(0);
        slide.set_tile_cache_bytes(cache);
        arena.execute([&] {
            tbb::parallel_for(std::size_t(0), s.keys.size(), [&](std::size_t i) {
                const Patch p = read(PatchTask{s.ctx, s.keys[i], nullptr});
                if (p.rgb.empty()) throw SlideError(s.ctx->job.path, "read failed: " + s.ctx->error());
            });
        });
        patches += static_cast<std::int64_t>(s.keys.size());
    } while (seconds_since(t0) < seconds);
    return static_cast<double>(patches) / seconds_since(t0);
}

// Patches per second of `model` on an in-memory batch of real patches, `calls` at once.
double model_rate(Model& model, const ModelConfig& mc, const Sample& s, const BenchOptions& opt, int calls) {
    const int patch = s.ctx->plans.front().patch_size;
    const int batch = mc.batch_size;
    StageCounter counter;
    const ReadRegion read(counter);
    const std::size_t per = static_cast<std::size_t>(3) * patch * patch;
    // The batch in the form the pipeline hands the model: uint8 RGB, normalized by run_rgb.
    std::shared_ptr<std::uint8_t> rgb = model.host_bytes(per * batch);
    for (int i = 0; i < batch; ++i) {
        const Patch p = read(PatchTask{s.ctx, s.keys[static_cast<std::size_t>(i) % s.keys.size()], nullptr});
        std::copy(p.rgb.begin(), p.rgb.end(), rgb.get() + per * i);
    }
    const auto infer = [&](int slot) { model.run_rgb(rgb.get(), batch, patch, patch, slot); };
    // Warm-up outside the timed region, in every caller thread (cuDNN autotuning, OpenMP pools).
    std::vector<std::thread> warm;
    for (int k = 0; k < calls; ++k) warm.emplace_back([&, k] { infer(k); });
    for (std::thread& t : warm) t.join();

    // Each caller's own rate, up to its own last batch, summed: timing all of them to the
    // last one's end would count the others' idle wait for it (a U-Net batch takes 0.5 s
    // per core, which cost the 3 s ceiling about 5%).
    std::vector<double> rate(static_cast<std::size_t>(calls), 0.0);
    const auto t0 = Clock::now();
    std::vector<std::thread> callers;
    for (int k = 0; k < calls; ++k)
        callers.emplace_back([&, k] {
            // Time, not a patch count: 1024 patches took a U-Net on one thread 73 s per round.
            std::int64_t b = 0;
            for (; b < 3 || seconds_since(t0) < opt.ceiling_seconds; ++b) infer(k);
            rate[static_cast<std::size_t>(k)] = static_cast<double>(b) * batch / seconds_since(t0);
        });
    for (std::thread& t : callers) t.join();
    double total = 0;
    for (double x : rate) total += x;
    return total;
}

// The model alone on batches already in memory, at its best concurrency (r's model fields).
void model_ceiling(const Config& cfg, const Sample& s, const BenchOptions& opt, BenchResult& r) {
    const ModelConfig& mc = cfg.models.front();
    const std::string device = mc.device.value_or(cfg.device);
    const bool cpu = device == "cpu";
    // (concurrent calls, LibTorch threads per call) to try. CPU: every core in one call is
    // not always best (OpenMP's overhead swamps a light model), so also one thread per call.
    // GPU: overlapping calls on their own streams.
    std::vector<std::pair<int, int>> shapes;
    if (cpu) {
        if (cores(cfg) > 1) shapes.push_back({cores(cfg), 1});
        shapes.push_back({1, cores(cfg)});
        if (cores(cfg) > 1) shapes.push_back({1, 1});
    } else {
        for (int calls = 1; calls <= std::max(2, cfg.infer_slots); ++calls) shapes.push_back({calls, std::max(1, cfg.torch_threads)});
    }
    r.model_patches_per_s = 0;
    for (const auto& [calls, threads] : shapes) {
        Model model(mc, device, threads, calls);
        const double pps = model_rate(model, mc, s, opt, calls);
        r.model_shapes.push_back(BenchResult::Shape{calls, threads, pps});
        if (pps > r.model_patches_per_s) {
            r.model_patches_per_s = pps;
            r.model_concurrency = calls;
            r.model_torch_threads = threads;
        }
        r.device = model.info().device;
        r.precision = model.info().precision;
    }
}

// The index of the median of `v` (for an even count, the upper of the two middle values: with
// two rounds, the better one).
std::size_t median_index(const std::vector<double>& v) {
    std::vector<std::size_t> order(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&v](std::size_t a, std::size_t b) { return v[a] < v[b]; });
    return order[v.size() / 2];
}

double mean_of(const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0.0 : s / static_cast<double>(v.size());
}

}  // namespace

BenchResult bench(const Config& base, const BenchOptions& opt) {
    if (base.slides.empty()) throw ConfigError(base.source, "input.slides", 0, 0, "bench needs a slide");
    Config cfg = base;
    cfg.slides = {base.slides.front()};
    cfg.models = {base.models.front()};
    BenchResult r;
    r.slide = cfg.slides.front();
    r.model = cfg.models.front().name;
    r.patch_size = tiling_for(cfg, cfg.models.front()).patch_size;
    r.batch_size = cfg.models.front().batch_size;
    r.readers = cfg.readers;
    r.threads = cores(cfg);

    const Sample sample = sample_patches(cfg, opt.ceiling_patches, cfg.reader);
    r.reader = sample.ctx->slide->reader();
    // Both readers on the same patches, interleaved round by round (the native one only where
    // it reads the slide), so their ratio is measured side by side: the sample of the reader
    // in use, and one of the other reader.
    const bool native = r.reader == "native";
    const Sample other =
        sample_patches(cfg, opt.ceiling_patches, native ? SlideReader::openslide : SlideReader::automatic);
    std::vector<std::pair<std::string, const Sample*>> by_reader = {{r.reader, &sample}};
    if (other.ctx->slide->reader() != r.reader) by_reader.emplace_back(other.ctx->slide->reader(), &other);

    // The seeds' "original code": one thread reads, normalizes, runs and stitches one batch
    // after another. One TBB thread runs the same graph with no overlap at all; LibTorch
    // keeps every core, as a plain script's model call would.
    Config seq = cfg;
    seq.threads = 1;
    seq.readers = 1;
    seq.torch_threads = cores(cfg);
    seq.max_in_flight = cfg.models.front().batch_size;
    seq.output_dir = (fs::path(cfg.output_dir) / "bench" / "sequential").string();
    Config pipe = cfg;
    pipe.output_dir = (fs::path(cfg.output_dir) / "bench" / "pipeline").string();
    struct Sampler {
        static void fn(const Progress& p, double, void* user) {
            static_cast<std::vector<double>*>(user)->push_back(static_cast<double>(p.in_flight));
        }
    };

    const int rounds = std::max(1, opt.repeat);
    std::vector<RunSummary> seq_runs, pipe_runs;
    std::vector<double> mean_occupancy;
    for (int round = 0; round < rounds; ++round) {
        BenchResult::Round& now = r.rounds.emplace_back();
        for (std::size_t k = 0; k < by_reader.size(); ++k) {
            const auto& [name, smp] = by_reader[(k + static_cast<std::size_t>(round)) % by_reader.size()];
            now.read_by_reader[name] = read_ceiling(cfg, *smp, opt.ceiling_seconds);
        }
        now.read = now.read_by_reader.at(r.reader);
        if (opt.reads_only) continue;
        BenchResult m;
        model_ceiling(cfg, sample, opt, m);
        now.model = m.model_patches_per_s;
        r.model_shapes.insert(r.model_shapes.end(), m.model_shapes.begin(), m.model_shapes.end());
        r.device = m.device;
        r.precision = m.precision;
        r.blas = blas_library();

        seq_runs.push_back(run(seq));
        now.sequential = seq_runs.back().patches_per_s;
        std::vector<double> occupancy;
        pipe_runs.push_back(run(pipe, &Sampler::fn, &occupancy));
        now.pipeline = pipe_runs.back().patches_per_s;
        mean_occupancy.push_back(mean_of(occupancy));
    }

    // Each figure is its median over the rounds, not its best: the best of a few windows
    // rewards whichever measurement happened to catch a fast stretch of a shared machine,
    // and read, model and pipeline catch different ones.
    std::vector<double> read;
    for (const BenchResult::Round& x : r.rounds) read.push_back(x.read);
    r.read_patches_per_s = read[median_index(read)];
    for (const auto& [name, smp] : by_reader) {
        std::vector<double> v;
        for (const BenchResult::Round& x : r.rounds) v.push_back(x.read_by_reader.at(name));
        r.read_patches_per_s_by_reader[name] = v[median_index(v)];
    }
    if (opt.reads_only) return r;
    // The model ceiling: the shape with the best median (every round tries the same shapes,
    // in the same order).
    r.model_patches_per_s = 0;
    const std::size_t per_round = r.model_shapes.size() / static_cast<std::size_t>(rounds);
    for (std::size_t first = 0; first < per_round; ++first) {
        const BenchResult::Shape& shape = r.model_shapes[first];
        std::vector<double> rates;
        for (std::size_t i = first; i < r.model_shapes.size(); i += per_round) rates.push_back(r.model_shapes[i].patches_per_s);
        const double median = rates[median_index(rates)];
        if (median > r.model_patches_per_s) {
            r.model_patches_per_s = median;
            r.model_concurrency = shape.calls;
            r.model_torch_threads = shape.torch_threads;
        }
    }
    std::vector<double> rates;
    for (const RunSummary& x : seq_runs) rates.push_back(x.patches_per_s);
    r.sequential = std::move(seq_runs[median_index(rates)]);
    r.sequential_patches_per_s = r.sequential.patches_per_s;
    rates.clear();
    for (const RunSummary& x : pipe_runs) rates.push_back(x.patches_per_s);
    const std::size_t mid = median_index(rates);
    r.pipeline = std::move(pipe_runs[mid]);
    r.pipeline_patches_per_s = r.pipeline.patches_per_s;
    r.mean_in_flight = mean_occupancy[mid];
    r.torch_threads = r.pipeline.runtime.torch_threads;

    const bool gpu = r.device.rfind("cuda", 0) == 0;
    r.micro_batch = gpu ? r.batch_size : std::min(r.batch_size, cfg.models.front().cpu_micro_batch);
    r.bound_patches_per_s = gpu ? std::min(r.read_patches_per_s, r.model_patches_per_s)
                                : 1.0 / (1.0 / r.read_patches_per_s + 1.0 / r.model_patches_per_s);
    r.efficiency = r.pipeline_patches_per_s / r.bound_patches_per_s;
    r.speedup_vs_sequential = r.pipeline_patches_per_s / r.sequential_patches_per_s;
    return r;
}

std::string bench_json(const BenchResult& r) {
    Json j = {{"slide", r.slide},
              {"model", r.model},
              {"device", r.device},
              {"precision", r.precision},
              {"blas", r.blas},
              {"patch_size", r.patch_size},
              {"batch_size", r.batch_size},
              {"micro_batch", r.micro_batch},
              {"readers", r.readers},
              {"threads", r.threads},
              {"torch_threads", r.torch_threads},
              {"model_concurrency", r.model_concurrency},
              {"model_torch_threads", r.model_torch_threads},
              {"patches", r.pipeline.patches},
              {"reader", r.reader},
              {"read_patches_per_s", r.read_patches_per_s},
              {"read_patches_per_s_by_reader", r.read_patches_per_s_by_reader},
              {"model_patches_per_s", r.model_patches_per_s},
              {"sequential_patches_per_s", r.sequential_patches_per_s},
              {"pipeline_patches_per_s", r.pipeline_patches_per_s},
              {"bound_patches_per_s", r.bound_patches_per_s},
              {"efficiency", r.efficiency},
              {"speedup_vs_sequential", r.speedup_vs_sequential},
              {"max_in_flight", r.pipeline.runtime.max_in_flight},
              {"peak_in_flight", r.pipeline.peak_in_flight},
              {"mean_in_flight", r.mean_in_flight}};
    Json& shapes = j["model_shapes"] = Json::array();
    for (const BenchResult::Shape& sh : r.model_shapes)
        shapes.push_back({{"calls", sh.calls}, {"torch_threads", sh.torch_threads}, {"patches_per_s", sh.patches_per_s}});
    Json& rounds = j["rounds"] = Json::array();
    for (const BenchResult::Round& x : r.rounds)
        rounds.push_back({{"read", x.read},
                          {"read_by_reader", x.read_by_reader},
                          {"model", x.model},
                          {"sequential", x.sequential},
                          {"pipeline", x.pipeline}});
    Json& stages = j["stages"] = Json::object();
    for (const auto& [name, st] : r.pipeline.stages)
        stages[name] = {{"busy_s", st.busy_s},
                        {"items", st.items},
                        {"peak_concurrency", st.peak_concurrency},
                        {"utilization", r.pipeline.wall_s > 0 ? st.busy_s / r.pipeline.wall_s : 0.0}};
    return json_text(j);
}

std::string bench_table(const BenchResult& r) {
    const auto read_lines = [&r] {
        std::string t =
            fmt::format("  {:<28}{:>12.1f} patches/s\n", fmt::format("read ceiling ({})", r.reader), r.read_patches_per_s);
        for (const auto& [name, pps] : r.read_patches_per_s_by_reader)
            t += fmt::format("    {:<26}{:>12.1f} patches/s\n", name + " reader", pps);
        return t;
    };
    if (r.pipeline_patches_per_s == 0) {  // --reads-only
        std::string t = fmt::format("slide {}  patch {}  readers {}  threads {}\n", fs::path(r.slide).filename().string(),
                                    r.patch_size, r.readers, r.threads);
        t += read_lines();
        for (std::size_t i = 0; i < r.rounds.size(); ++i) {
            std::string line = fmt::format("    round {:<20}", i + 1);
            for (const auto& [name, pps] : r.rounds[i].read_by_reader) line += fmt::format("{:>12.1f} {}", pps, name);
            t += line + "\n";
        }
        return t;
    }
    std::string t = fmt::format("slide {}  model {}  {} {}  patch {}  batch {} (forward calls of {})  readers {}  "
                                "threads {}  torch threads {} (model ceiling: {} call(s) x {} threads)\n",
                                fs::path(r.slide).filename().string(), r.model, r.device, r.precision, r.patch_size,
                                r.batch_size, r.micro_batch, r.readers, r.threads, r.torch_threads, r.model_concurrency,
                                r.model_torch_threads);
    if (r.device == "cpu") t += fmt::format("  BLAS: {}\n", r.blas);
    t += read_lines();
    t += fmt::format("  {:<28}{:>12.1f} patches/s\n", "model ceiling", r.model_patches_per_s);
    for (const BenchResult::Shape& sh : r.model_shapes)
        t += fmt::format("    {:<26}{:>12.1f} patches/s\n",
                         fmt::format("{} call(s) x {} thread(s)", sh.calls, sh.torch_threads), sh.patches_per_s);
    t += fmt::format("  {:<28}{:>12.1f} patches/s\n", "bound", r.bound_patches_per_s);
    t += fmt::format("  {:<28}{:>12.1f} patches/s\n", "sequential (seeds' design)", r.sequential_patches_per_s);
    t += fmt::format("  {:<28}{:>12.1f} patches/s\n", "pipeline", r.pipeline_patches_per_s);
    t += fmt::format("  {:<28}{:>12.2f}\n", "efficiency (pipeline/bound)", r.efficiency);
    t += fmt::format("  {:<28}{:>12.2f}x\n", "speedup vs sequential", r.speedup_vs_sequential);
    if (r.rounds.size() > 1) {
        t += fmt::format("  {:<28}{:>10}{:>10}{:>12}{:>10}   (patches/s; model: the best shape; the medians count)\n", "rounds", "read",
                         "model", "sequential", "pipeline");
        for (std::size_t i = 0; i < r.rounds.size(); ++i)
            t += fmt::format("    {:<26}{:>10.1f}{:>10.1f}{:>12.1f}{:>10.1f}\n", i + 1, r.rounds[i].read,
                             r.rounds[i].model, r.rounds[i].sequential, r.rounds[i].pipeline);
    }
    return t;
}

std::string profile_report(const RunSummary& s, const Config& cfg) {
    // A stage saturates when its bodies are busy for all the concurrency it is allowed.
    const auto allowed = [&](const std::string& name) -> double {
        if (name == "read_region") return std::max(1, cfg.readers);
        if (name == "normalize") return std::max(1, s.runtime.threads);
        if (name.rfind("infer", 0) == 0) return std::max(1, s.runtime.infer_slots);
        return 1;
    };
    std::string out = fmt::format("{:<22}{:>10}{:>8}{:>12}{:>14}\n", "stage", "busy_s", "items", "peak conc.",
                                  "saturation");
    std::string worst;
    double worst_sat = -1;
    for (const auto& [name, st] : s.stages) {
        const double sat = s.wall_s > 0 ? st.busy_s / (s.wall_s * allowed(name)) : 0.0;
        out += fmt::format("{:<22}{:>10.3f}{:>8}{:>12}{:>13.0f}%\n", name, st.busy_s, st.items, st.peak_concurrency,
                           100 * sat);
        if (name.find(':') == std::string::npos && sat > worst_sat) {
            worst_sat = sat;
            worst = name;
        }
    }
    out += fmt::format("bottleneck: {} (busy {:.0f}% of the time it could run); peak {} of {} patches in flight\n",
                       worst, 100 * worst_sat, s.peak_in_flight, s.runtime.max_in_flight);
    return out;
}

}  // namespace flowinfer
