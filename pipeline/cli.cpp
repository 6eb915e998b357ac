// flowinfer command line: run, demo, synth, make-model.
#include <flowinfer/bench.hpp>
#include <flowinfer/config.hpp>
#include <flowinfer/demo.hpp>
#include <flowinfer/errors.hpp>
#include <flowinfer/pipeline.hpp>

#include "stages/atomic_file.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;

namespace {

constexpr int kOk = 0, kSlideFailed = 1, kUsage = 2;  // and 128 + signal when interrupted

const char* const kHelp = R"(flowinfer: whole-slide inference on one TBB flow graph

usage:
  flowinfer run CONFIG.toml [--set KEY=VALUE]... [--force] [--shard I/N] [--tissue-mask] [--profile] [--quiet]
      Runs every [[models]] entry over every slide of CONFIG in one pass; writes
      <output.dir>/<slide>/<model>.tif (maps), .geojson and .csv (objects, tiles) and
      <output.dir>/summary.json.
      Resumes: a slide whose outputs are complete and were made from the same slide file,
      model files, settings and flowinfer version is skipped (its record is
      <output.dir>/<slide>/.flowinfer-done.json).
      --set overrides a config key, e.g. --set tiling.overlap=32 --set models.0.batch_size=4
      --force processes every slide, complete or not
      --shard I/N processes slides I, I+N, I+2N, ... (from 1) of the sorted slide list and
          writes <output.dir>/summary-I-of-N.json. Without it, a Slurm job array's
          SLURM_ARRAY_TASK_ID with SLURM_ARRAY_TASK_COUNT (or _MIN/_MAX) picks the shard.
      --tissue-mask writes <output.dir>/<slide>/tissue-mask.png (with tiling.tissue = true)
      --profile prints each stage's busy time and which stage was the bottleneck
  flowinfer bench CONFIG.toml [--set KEY=VALUE]... [--patches N] [--ceiling-seconds S] [--repeat N]
      Measures, on the first slide and model of CONFIG: the readers alone, the model alone,
      the sequential baseline and the pipeline, each the median of --repeat (5) interleaved
      rounds (ceilings: windows of --ceiling-seconds, 3); prints a table and writes
      <output.dir>/bench.json.
  flowinfer demo [DIR] [--assets-only]
      Makes a synthetic H&E-like slide and a demo tissue-segmentation model in DIR
      (default ./flowinfer-demo), writes DIR/pipeline.toml and runs it. Also writes the
      slide and models that configs/*.toml use (discs.tiff, blobs.pt, classifier.pt).
  flowinfer synth OUT.tiff [--width N] [--height N] [--mpp X] [--seed N] [--tissue F] [--quality Q]
      Writes a synthetic tiled pyramidal slide (JPEG quality Q, 0 = lossless deflate).
  flowinfer make-model OUT.pt --kind KIND [--param X]
      KIND: tissue, pointwise_mean, constant, throw_after, throw_above, wrong_rank, downscale,
      blob_detector (param: disc radius), patch_classifier, call_size, ragged_boxes, identity,
      light (benchmark: two small convolutions), unet (benchmark: 4 levels, param: base channels)
      Writes a TorchScript model built without Python.
  flowinfer --help | --version

exit status: 0 all slides ok, 1 some slide failed or the run failed, 2 usage or config error,
  130 / 143 stopped by SIGINT / SIGTERM (unfinished slides are "interrupted" in summary.json;
  a second SIGINT or SIGTERM quits at once)
)";

struct Usage : std::runtime_error {
    using std::runtime_error::runtime_error;
};

std::string need_value(const std::vector<std::string>& a, std::size_t& i) {
    if (i + 1 >= a.size()) throw Usage(fmt::format("{} needs a value", a[i]));
    return a[++i];
}

double parse_number(const std::string& opt, const std::string& v) {
    char* end = nullptr;
    const double d = std::strtod(v.c_str(), &end);
    if (v.empty() || *end) throw Usage(fmt::format("{}: '{}' is not a number", opt, v));
    return d;
}

struct ProgressState {
    bool tty = false;
    bool quiet = false;
    double last_line = -1e9;
};

void show_progress(const flowinfer::Progress& p, double elapsed, void* user) {
    auto* st = static_cast<ProgressState*>(user);
    if (st->quiet) return;
    const double rate = elapsed > 0 ? p.patches_done / elapsed : 0.0;
    const double eta = rate > 0 ? (p.patches_total - p.patches_done) / rate : 0.0;
    const std::string line = fmt::format("patches {}/{}  {:.1f} patches/s  ETA {:.0f}s  slides done {}",
                                         p.patches_done, p.patches_total, rate, eta, p.slides_done);
    if (st->tty) {
        std::fprintf(stderr, "\r%s\033[K", line.c_str());
    } else if (elapsed - st->last_line >= 5.0) {
        std::fprintf(stderr, "%s\n", line.c_str());
        st->last_line = elapsed;
    }
    std::fflush(stderr);
}

int report(const flowinfer::RunSummary& s) {
    int failed = 0;
    for (const auto& r : s.slides) {
        if (r.status == flowinfer::SlideStatus::skipped) {
            std::printf("skipped %s: %s\n", r.path.c_str(), r.reason.c_str());
        } else if (r.ok()) {
            if (!r.reason.empty()) std::printf("        %s: %s\n", r.path.c_str(), r.reason.c_str());
            for (const auto& o : r.outputs) {
                std::string what = o.format;
                if (o.format == "tiff") what = fmt::format("{}x{} map", o.width, o.height);
                if (o.objects >= 0) what = fmt::format("{} objects", o.objects);
                std::printf("ok      %s -> %s (%s)\n", r.path.c_str(), o.path.c_str(), what.c_str());
            }
            if (r.patches_skipped > 0)
                std::printf("        %lld patches run, %lld skipped as background\n",
                            static_cast<long long>(r.patches), static_cast<long long>(r.patches_skipped));
        } else {
            ++failed;
            std::printf("%-7s %s: %s\n", flowinfer::to_string(r.status), r.path.c_str(), r.error.c_str());
        }
    }
    const auto count = [&s](flowinfer::SlideStatus st) {
        return std::count_if(s.slides.begin(), s.slides.end(), [st](const auto& r) { return r.status == st; });
    };
    using St = flowinfer::SlideStatus;
    std::printf("%zu slides: %td ok, %td skipped, %td failed, %td interrupted\n", s.slides.size(), count(St::ok),
                count(St::skipped), count(St::failed), count(St::interrupted));
    std::printf("%lld patches in %.2f s (%.2f s loading models; %.1f patches/s after it); summary: %s\n",
                static_cast<long long>(s.patches), s.wall_s, s.setup_s, s.patches_per_s, s.path.c_str());
    return failed ? kSlideFailed : kOk;
}

// SIGINT / SIGTERM during a run. The first one stops the run cleanly: no new patches, the
// graph cancelled, temporaries removed, summary.json written with the unfinished slides
// "interrupted". That takes locks and allocates, which a signal handler must not, so the
// handler only records the signal and writes a byte to a pipe (both async-signal-safe); a
// watcher thread reads the pipe and asks the run to stop. A second signal means "now": the
// handler calls _exit at once.
std::atomic<int> g_signal{0};
std::atomic<int> g_wake_fd{-1};  // the pipe's write end
static_assert(std::atomic<int>::is_always_lock_free, "used from a signal handler");

extern "C" void on_stop_signal(int sig) {
    int none = 0;
    if (!g_signal.compare_exchange_strong(none, sig)) ::_exit(128 + sig);
    const int saved = errno;
    const char byte = 1;
    if (const int fd = g_wake_fd.load(); fd >= 0) (void)!::write(fd, &byte, 1);
    errno = saved;
}

class StopOnSignals {
public:
    explicit StopOnSignals(flowinfer::RunStop& stop) {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
        read_fd_ = fds[0];
        write_fd_ = fds[1];
        g_wake_fd.store(write_fd_);
        watcher_ = std::thread([this, &stop] {
            char byte = 0;
            while (::read(read_fd_, &byte, 1) < 0 && errno == EINTR) {}
            const int sig = g_signal.load();
            if (sig == 0) return;  // woken by the destructor
            const char* name = sig == SIGINT ? "SIGINT" : "SIGTERM";
            std::fprintf(stderr, "\nflowinfer: %s: stopping; unfinished slides are marked interrupted "
                                 "(send it again to quit at once)\n", name);
            stop.request(fmt::format("interrupted by {}", name));
        });
        struct sigaction sa {};
        sa.sa_handler = on_stop_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        ::sigaction(SIGINT, &sa, nullptr);
        ::sigaction(SIGTERM, &sa, nullptr);
    }
    // The handlers stay: a signal from here to the exit still stops at once. The pipe stays
    // open (two descriptors until exit), so the handler never writes to a reused descriptor.
    ~StopOnSignals() {
        const char byte = 0;
        (void)!::write(write_fd_, &byte, 1);
        watcher_.join();
    }
    StopOnSignals(const StopOnSignals&) = delete;
    StopOnSignals& operator=(const StopOnSignals&) = delete;

    int signal() const { return g_signal.load(); }

private:
    int read_fd_ = -1, write_fd_ = -1;
    std::thread watcher_;
};

// A count or index from the command line or the environment: plain decimal digits only, so
// "2x", "-1", " 3" and "" are errors rather than being read as a prefix or as 0.
std::optional<int> parse_index(const std::string& text) {
    if (text.empty() || text.size() > 9 || text.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    return std::stoi(text);
}

flowinfer::Shard parse_shard(const std::string& text) {
    const std::size_t slash = text.find('/');
    const std::optional<int> i = slash == std::string::npos ? std::nullopt : parse_index(text.substr(0, slash));
    const std::optional<int> n = slash == std::string::npos ? std::nullopt : parse_index(text.substr(slash + 1));
    if (!i || !n) throw Usage(fmt::format("--shard '{}': expected I/N with whole numbers, e.g. --shard 2/8", text));
    if (*n < 1 || *i < 1 || *i > *n)
        throw Usage(fmt::format("--shard '{}': needs 1 <= I <= N (shards are numbered from 1)", text));
    return flowinfer::Shard{*i, *n};
}

// A Slurm job array's task as a shard. SLURM_ARRAY_TASK_MIN makes any first index work
// (--array=0-7 as well as 1-8) and SLURM_ARRAY_TASK_STEP any step (1-15:2); N is
// SLURM_ARRAY_TASK_COUNT, or derived from MIN, MAX and STEP. `from` receives the variables
// used, for messages. Anything that does not give 1 <= I <= N is a usage error: guessing would
// process some slides twice and others never.
std::optional<flowinfer::Shard> shard_from_slurm(std::string& from) {
    const char* const names[] = {"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN",
                                 "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_STEP"};
    std::optional<int> v[5];
    for (int k = 0; k < 5; ++k) {
        const char* text = std::getenv(names[k]);
        if (!text) continue;
        v[k] = parse_index(text);
        if (!v[k]) throw Usage(fmt::format("{}='{}' is not a whole number; pass --shard I/N", names[k], text));
        from += fmt::format("{}{}={}", from.empty() ? "" : " ", names[k], *v[k]);
    }
    const auto& [id, count, min, max, step_var] = v;
    if (!id) {
        if (!from.empty()) throw Usage(fmt::format("{} is set but SLURM_ARRAY_TASK_ID is not; pass --shard I/N", from));
        return std::nullopt;
    }
    const int step = step_var.value_or(1);
    if (step < 1) throw Usage(fmt::format("{}: the step must be at least 1; pass --shard I/N", from));
    if (!count && !(min && max))
        throw Usage(fmt::format("{}: needs SLURM_ARRAY_TASK_COUNT or SLURM_ARRAY_TASK_MIN and _MAX to know the "
                                "number of shards; pass --shard I/N", from));
    if (min && max && *max < *min) throw Usage(fmt::format("{}: SLURM_ARRAY_TASK_MAX < SLURM_ARRAY_TASK_MIN", from));
    const int n = count ? *count : (*max - *min) / step + 1;
    int i = *id;
    if (min) {
        if (*id < *min || (*id - *min) % step != 0)
            throw Usage(fmt::format("{}: the task ID is not MIN + a multiple of STEP; pass --shard I/N", from));
        i = (*id - *min) / step + 1;
    }
    if (n < 1 || i < 1 || i > n)
        throw Usage(fmt::format("{}: gives shard {}/{}, outside 1..{}; submit the array as --array=1-N (or 0-(N-1)), "
                                "or pass --shard I/N", from, i, n, n));
    return flowinfer::Shard{i, n};
}

int cmd_run(const std::vector<std::string>& a) {
    std::string config;
    std::vector<std::string> overrides;
    bool tissue_mask = false, profile = false;
    flowinfer::RunOptions options;
    options.resume = true;
    std::string shard_from;
    ProgressState progress;
    progress.tty = isatty(STDERR_FILENO);
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (a[i] == "--set") overrides.push_back(need_value(a, i));
        else if (a[i].rfind("--set=", 0) == 0) overrides.push_back(a[i].substr(6));
        else if (a[i] == "--quiet" || a[i] == "-q") progress.quiet = true;
        else if (a[i] == "--tissue-mask") tissue_mask = true;
        else if (a[i] == "--profile") profile = true;
        else if (a[i] == "--force") options.resume = false;
        else if (a[i] == "--shard" || a[i].rfind("--shard=", 0) == 0) {
            options.shard = parse_shard(a[i] == "--shard" ? need_value(a, i) : a[i].substr(8));
            shard_from = "--shard";
        }
        else if (!a[i].empty() && a[i][0] == '-') throw Usage("unknown option " + a[i]);
        else if (config.empty()) config = a[i];
        else throw Usage("run takes one config file");
    }
    if (config.empty()) throw Usage("run needs a config file");
    if (!options.shard) options.shard = shard_from_slurm(shard_from);
    flowinfer::Config cfg = flowinfer::load_config(config, overrides);
    if (tissue_mask) {
        if (!cfg.tissue) throw Usage("--tissue-mask needs tiling.tissue = true");
        cfg.tissue_preview = true;
    }
    if (options.shard)
        std::fprintf(stderr, "flowinfer: shard %d/%d (%s): %zu of %zu slides\n", options.shard->index,
                     options.shard->count, shard_from.c_str(), flowinfer::shard_slides(cfg.slides, *options.shard).size(),
                     cfg.slides.size());
    flowinfer::RunStop stop;
    StopOnSignals signals(stop);
    options.progress = show_progress;
    options.user = &progress;
    options.stop = &stop;
    const flowinfer::RunSummary s = flowinfer::run(cfg, options);
    if (progress.tty && !progress.quiet) std::fprintf(stderr, "\n");
    if (profile) std::fputs(flowinfer::profile_report(s, cfg).c_str(), stdout);
    const int rc = report(s);
    return s.state == flowinfer::RunState::interrupted ? 128 + signals.signal() : rc;
}

int cmd_bench(const std::vector<std::string>& a) {
    std::string config;
    std::vector<std::string> overrides;
    flowinfer::BenchOptions opt;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (a[i] == "--set") overrides.push_back(need_value(a, i));
        else if (a[i] == "--patches") opt.ceiling_patches = static_cast<std::int64_t>(parse_number(a[i], need_value(a, i)));
        else if (a[i] == "--ceiling-seconds") opt.ceiling_seconds = parse_number(a[i], need_value(a, i));
        else if (a[i] == "--repeat") opt.repeat = static_cast<int>(parse_number(a[i], need_value(a, i)));
        else if (!a[i].empty() && a[i][0] == '-') throw Usage("unknown option " + a[i]);
        else if (config.empty()) config = a[i];
        else throw Usage("bench takes one config file");
    }
    if (config.empty()) throw Usage("bench needs a config file");
    if (opt.ceiling_patches < 1) throw Usage("--patches must be at least 1");
    if (opt.repeat < 1) throw Usage("--repeat must be at least 1");
    if (!(opt.ceiling_seconds >= 0)) throw Usage("--ceiling-seconds must be >= 0");
    const flowinfer::Config cfg = flowinfer::load_config(config, overrides);
    const flowinfer::BenchResult r = flowinfer::bench(cfg, opt);
    std::fputs(flowinfer::bench_table(r).c_str(), stdout);
    const fs::path out = fs::path(cfg.output_dir) / "bench.json";
    flowinfer::write_file_atomically(out.string(), flowinfer::bench_json(r));
    std::printf("bench: %s\n", out.c_str());
    return kOk;
}

// Slide and models for configs/detection.toml: dark discs on a jittered grid, some on the
// borders of 256-pixel patches.
void write_demo_detection_assets(const fs::path& dir) {
    std::vector<flowinfer::Disc> discs;
    std::uint32_t h = 2024;
    const auto rnd = [&h] { h = h * 1664525u + 1013904223u; return (h >> 8) / double(1 << 24); };
    for (int gy = 0; gy < 6; ++gy)
        for (int gx = 0; gx < 6; ++gx)
            discs.push_back(flowinfer::Disc{80 + gx * 160 + rnd() * 40, 80 + gy * 160 + rnd() * 40, 7 + rnd() * 4});
    flowinfer::write_disc_slide((dir / "discs.tiff").string(), 1024, 1024, discs);
    flowinfer::write_demo_model((dir / "blobs.pt").string(), flowinfer::DemoModel::blob_detector, 12);
    flowinfer::write_demo_model((dir / "classifier.pt").string(), flowinfer::DemoModel::patch_classifier);
}

int cmd_demo(const std::vector<std::string>& args) {
    std::vector<std::string> a;
    bool run_it = true;
    for (const std::string& s : args) {
        if (s == "--assets-only") run_it = false;
        else if (!s.empty() && s[0] == '-') throw Usage("unknown option " + s);
        else a.push_back(s);
    }
    if (a.size() > 1) throw Usage("demo takes at most one directory");
    const fs::path dir = fs::absolute(a.empty() ? fs::path("flowinfer-demo") : fs::path(a[0]));
    fs::create_directories(dir);
    flowinfer::SyntheticSlideSpec spec;
    spec.width = 8192;
    spec.height = 6144;
    spec.mpp = 0.25;
    const fs::path slide = dir / "synthetic-he.tiff", model = dir / "tissue.pt", toml = dir / "pipeline.toml";
    std::printf("demo: writing %s (%lldx%lld, %.2f um/px)\n", slide.c_str(), static_cast<long long>(spec.width),
                static_cast<long long>(spec.height), spec.mpp);
    flowinfer::write_synthetic_slide(slide.string(), spec);
    std::printf("demo: building %s (TorchScript, no Python)\n", model.c_str());
    flowinfer::write_demo_model(model.string(), flowinfer::DemoModel::tissue);
    std::ofstream(toml) << R"([input]
slides = ["synthetic-he.tiff"]

[output]
dir = "out"

[tiling]
patch_size = 256
overlap = 32
mpp = 0.5

[runtime]
device = "cpu"
readers = 2
max_in_flight = 64

[[models]]
name = "tissue"
path = "tissue.pt"
task = "segmentation"
batch_size = 8
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
activation = "softmax"
)";
    std::printf("demo: writing discs.tiff, blobs.pt and classifier.pt for configs/detection.toml, "
                "configs/classification.toml and configs/multi.toml\n");
    write_demo_detection_assets(dir);
    if (!run_it) return kOk;
    std::printf("demo: running %s\n", toml.c_str());
    const int rc = cmd_run({toml.string()});
    std::printf("demo: the tissue probability map is %s (open it with QuPath or openslide)\n",
                (dir / "out" / "synthetic-he" / "tissue.tif").c_str());
    return rc;
}

int cmd_synth(const std::vector<std::string>& a) {
    flowinfer::SyntheticSlideSpec spec;
    std::string out;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (a[i] == "--width") spec.width = static_cast<std::int64_t>(parse_number(a[i], need_value(a, i)));
        else if (a[i] == "--height") spec.height = static_cast<std::int64_t>(parse_number(a[i], need_value(a, i)));
        else if (a[i] == "--mpp") spec.mpp = parse_number(a[i], need_value(a, i));
        else if (a[i] == "--seed") spec.seed = static_cast<std::uint32_t>(parse_number(a[i], need_value(a, i)));
        else if (a[i] == "--tissue") spec.tissue_fraction = parse_number(a[i], need_value(a, i));
        else if (a[i] == "--quality") spec.jpeg_quality = static_cast<int>(parse_number(a[i], need_value(a, i)));
        else if (!a[i].empty() && a[i][0] == '-') throw Usage("unknown option " + a[i]);
        else if (out.empty()) out = a[i];
        else throw Usage("synth takes one output path");
    }
    if (out.empty()) throw Usage("synth needs an output path");
    if (spec.width < 1 || spec.height < 1) throw Usage("--width and --height must be positive");
    if (spec.jpeg_quality < 0 || spec.jpeg_quality > 100) throw Usage("--quality must be 0..100");
    flowinfer::write_synthetic_slide(out, spec);
    std::printf("%s\n", out.c_str());
    return kOk;
}

int cmd_make_model(const std::vector<std::string>& a) {
    std::string out, kind;
    float param = 0.0f;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (a[i] == "--kind") kind = need_value(a, i);
        else if (a[i] == "--param") param = static_cast<float>(parse_number(a[i], need_value(a, i)));
        else if (!a[i].empty() && a[i][0] == '-') throw Usage("unknown option " + a[i]);
        else if (out.empty()) out = a[i];
        else throw Usage("make-model takes one output path");
    }
    using flowinfer::DemoModel;
    const std::pair<const char*, DemoModel> kinds[] = {
        {"tissue", DemoModel::tissue},         {"pointwise_mean", DemoModel::pointwise_mean},
        {"constant", DemoModel::constant},     {"throw_after", DemoModel::throw_after},
        {"throw_above", DemoModel::throw_above},
        {"wrong_rank", DemoModel::wrong_rank}, {"downscale", DemoModel::downscale},
        {"blob_detector", DemoModel::blob_detector}, {"patch_classifier", DemoModel::patch_classifier},
        {"call_size", DemoModel::call_size},   {"ragged_boxes", DemoModel::ragged_boxes},
        {"identity", DemoModel::identity},
        {"light", DemoModel::light},           {"unet", DemoModel::unet}};
    if (out.empty()) throw Usage("make-model needs an output path");
    for (const auto& [name, k] : kinds) {
        if (kind == name) {
            flowinfer::write_demo_model(out, k, param);
            std::printf("%s\n", out.c_str());
            return kOk;
        }
    }
    std::string names;
    for (const auto& [name, k] : kinds) names += (names.empty() ? "" : ", ") + std::string(name);
    throw Usage(fmt::format("make-model: --kind '{}' is not one of {}", kind, names));
}

}  // namespace

// Batches, model activations and outputs are megabytes each and die within milliseconds.
// glibc serves such blocks with mmap and returns them with munmap, so every batch paid for
// fresh zeroed pages (page faults); measured on the light benchmark model, inference ran 2.6x
// slower. Keep them in the heap instead (no mmap at all: a U-Net's 33 MB activations exceed
// the largest mmap threshold glibc allows), and keep a freed heap top for reuse. One arena:
// each thread's own arena lives in 64 MB mmapped heaps that glibc unmaps as soon as they
// empty, so a U-Net call on a TBB worker still faulted in every activation (1.4 million page
// faults and a fifth of the CPU time in the kernel per benchmark run, 0.2 million with one
// arena, and 10% more patches/s).
void tune_malloc() {
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    mallopt(M_TOP_PAD, 64 << 20);
    mallopt(M_ARENA_MAX, 1);
}

int main(int argc, char** argv) {
    tune_malloc();
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty()) {
        std::fputs(kHelp, stderr);
        return kUsage;
    }
    const std::string cmd = args.front();
    const std::vector<std::string> rest(args.begin() + 1, args.end());
    try {
        if (cmd == "--help" || cmd == "-h" || cmd == "help") {
            std::fputs(kHelp, stdout);
            return kOk;
        }
        if (cmd == "--version") {
            std::printf("flowinfer %s\n", FLOWINFER_VERSION);
            return kOk;
        }
        if (cmd == "run") return cmd_run(rest);
        if (cmd == "demo") return cmd_demo(rest);
        if (cmd == "bench") return cmd_bench(rest);
        if (cmd == "synth") return cmd_synth(rest);
        if (cmd == "make-model") return cmd_make_model(rest);
        throw Usage("unknown command '" + cmd + "'");
    } catch (const Usage& e) {
        std::fprintf(stderr, "flowinfer: %s\n(see flowinfer --help)\n", e.what());
        return kUsage;
    } catch (const flowinfer::ConfigError& e) {
        std::fprintf(stderr, "flowinfer: config error: %s\n", e.what());
        return kUsage;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "\nflowinfer: error: %s\n", e.what());
        return kSlideFailed;
    }
}
