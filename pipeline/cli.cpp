// flowinfer command line (CLI11): run, bench, demo, synth, make-model, each with its --help.
#include <flowinfer/bench.hpp>
#include <flowinfer/config.hpp>
#include <flowinfer/demo.hpp>
#include <flowinfer/errors.hpp>
#include <flowinfer/pipeline.hpp>

#include "pipeline/cli_support.hpp"
#include "stages/atomic_file.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

using flowinfer::cli::region_value;
using flowinfer::cli::parse_shard;
using flowinfer::cli::shard_from_slurm;
using flowinfer::cli::StopOnSignals;
using flowinfer::cli::Usage;
using flowinfer::cli::SynthArgs;
using flowinfer::cli::add_synth;
using flowinfer::cli::cmd_synth;

constexpr int kOk = 0, kSlideFailed = 1, kUsage = 2;  // and 128 + signal when interrupted

const char* const kSynopsis = R"(usage:
  flowinfer run CONFIG.toml [--set KEY=VALUE]... [--force] [--shard I/N] [--region X,Y,W,H] [--tissue-mask] [--profile] [--quiet]
  flowinfer bench CONFIG.toml [--set KEY=VALUE]... [--patches N] [--ceiling-seconds S] [--repeat N] [--reads-only]
  flowinfer demo [DIR] [--assets-only]
  flowinfer synth OUT.tiff [--width N] [--height N] [--mpp X] [--seed N] [--tissue F] [--quality Q] [--format F] [--tile N]
  flowinfer make-model OUT.pt --kind KIND [--param X]
  flowinfer inspect MODEL [--set KEY=VALUE]... [--size N]...
  flowinfer COMMAND --help      (what COMMAND does and every option)

exit status: 0 all slides (images) ok, 1 some slide or image failed or the run failed, 2 usage or config error,
  130 / 143 stopped by SIGINT / SIGTERM (unfinished slides are "interrupted" in summary.json;
  a second SIGINT or SIGTERM quits at once)
)";

struct ProgressState {
    bool tty = false;
    bool quiet = false;
    const char* unit = "slides";  // "images" with input.images
    double last_line = -1e9;
};

void show_progress(const flowinfer::Progress& p, double elapsed, void* user) {
    auto* st = static_cast<ProgressState*>(user);
    if (st->quiet) return;
    const double rate = elapsed > 0 ? p.patches_done / elapsed : 0.0;
    const double eta = rate > 0 ? (p.patches_total - p.patches_done) / rate : 0.0;
    const std::string line = fmt::format("patches {}/{}  {:.1f} patches/s  ETA {:.0f}s  {} done {}", p.patches_done,
                                         p.patches_total, rate, eta, st->unit, p.slides_done);
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
        // Of images, only failures and warnings: summary.json lists every image.
        const bool done = r.ok() || r.status == flowinfer::SlideStatus::skipped;
        if (s.images && done) {
            for (const std::string& w : r.warnings) std::printf("warning %s: %s\n", r.path.c_str(), w.c_str());
            continue;
        }
        if (r.status == flowinfer::SlideStatus::skipped) {
            std::printf("skipped %s: %s\n", r.path.c_str(), r.reason.c_str());
        } else if (r.ok()) {
            if (!r.reason.empty()) std::printf("        %s: %s\n", r.path.c_str(), r.reason.c_str());
            for (const auto& o : r.outputs) {
                std::string what = o.format;
                if (o.format == "tiff") what = fmt::format("{}x{} map", o.width, o.height);
                if (o.objects >= 0)
                    what = fmt::format(o.kind == "segmentation" ? "{} annotations" : "{} objects", o.objects);
                if (o.kind == "preview") what = fmt::format("{}x{} preview", o.width, o.height);
                if (o.format == "hdf5") what = fmt::format("{} x {} features", o.rows, o.dim);
                std::printf("ok      %s -> %s (%s)\n", r.path.c_str(), o.path.c_str(), what.c_str());
            }
            if (r.patches_skipped > 0)
                std::printf("        %lld patches run, %lld left out (tissue, region of interest)\n",
                            static_cast<long long>(r.patches), static_cast<long long>(r.patches_skipped));
        } else {
            ++failed;
            std::printf("%-7s %s: %s\n", flowinfer::to_string(r.status), r.path.c_str(), r.error.c_str());
        }
        for (const std::string& w : r.warnings) std::printf("warning %s: %s\n", r.path.c_str(), w.c_str());
    }
    const auto count = [&s](flowinfer::SlideStatus st) {
        return std::count_if(s.slides.begin(), s.slides.end(), [st](const auto& r) { return r.status == st; });
    };
    using St = flowinfer::SlideStatus;
    for (const auto& t : s.tables)
        std::printf("table   %s (%lld rows)\n", t.path.c_str(), static_cast<long long>(t.objects));
    std::printf("%zu %s: %td ok, %td skipped, %td failed, %td interrupted\n", s.slides.size(),
                s.images ? "images" : "slides", count(St::ok), count(St::skipped), count(St::failed),
                count(St::interrupted));
    std::printf("%lld patches in %.2f s (%.2f s loading models; %.1f patches/s after it); summary: %s\n",
                static_cast<long long>(s.patches), s.wall_s, s.setup_s, s.patches_per_s, s.path.c_str());
    if (!s.report.empty()) std::printf("report: %s\n", s.report.c_str());
    return failed ? kSlideFailed : kOk;
}

struct RunArgs {
    std::string config;
    std::vector<std::string> overrides;
    std::string shard;
    std::string region;
    CLI::Option* shard_given = nullptr;
    bool quiet = false, tissue_mask = false, profile = false, force = false;
};

// --set KEY=VALUE, one value per occurrence, so that `--set a=1 CONFIG.toml` keeps its config.
void add_overrides(CLI::App& cmd, std::vector<std::string>& overrides) {
    cmd.add_option("--set", overrides, "Overrides a config key, e.g. --set tiling.overlap=32 "
                                       "--set models.0.batch_size=4 (repeatable)")
        ->type_name("KEY=VALUE")
        ->allow_extra_args(false);
}

CLI::App* add_run(CLI::App& app, RunArgs& a) {
    CLI::App* cmd = app.add_subcommand("run", "Runs every [[models]] entry over every slide of CONFIG in one pass");
    cmd->footer("Writes <output.dir>/<slide>/<model>.tif (maps), .geojson and .csv (objects, tiles), .h5\n"
                "(features) and <output.dir>/summary.json. Resumes: a slide whose outputs are complete and were made from\n"
                "the same slide file, model files, settings and flowinfer version is skipped (its record is\n"
                "<output.dir>/<slide>/.flowinfer-done.json).\n"
                "With --shard I/N the summary is <output.dir>/summary-I-of-N.json. Without --shard, a Slurm job\n"
                "array's SLURM_ARRAY_TASK_ID with SLURM_ARRAY_TASK_COUNT (or _MIN/_MAX) picks the shard.");
    cmd->add_option("CONFIG.toml", a.config, "The pipeline config")->required();
    add_overrides(*cmd, a.overrides);
    cmd->add_flag("--force", a.force, "Processes every slide, complete or not");
    a.shard_given = cmd->add_option("--shard", a.shard,
                                    "Processes slides I, I+N, I+2N, ... (from 1) of the sorted slide list")
                        ->type_name("I/N");
    cmd->add_option("--region", a.region, "Runs only this level-0 rectangle of every slide (input.region)")
        ->type_name("X,Y,W,H");
    cmd->add_flag("--tissue-mask", a.tissue_mask,
                  "Writes <output.dir>/<slide>/tissue-mask.png (with tiling.tissue = true)");
    cmd->add_flag("--profile", a.profile, "Prints each stage's busy time and which stage was the bottleneck");
    cmd->add_flag("-q,--quiet", a.quiet, "No progress line");
    return cmd;
}

int cmd_run(const RunArgs& a) {
    flowinfer::RunOptions options;
    options.resume = !a.force;
    std::string shard_from;
    if (a.shard_given && a.shard_given->count() > 0) {  // none: the demo's own run
        options.shard = parse_shard(a.shard);
        shard_from = "--shard";
    }
    ProgressState progress;
    progress.tty = isatty(STDERR_FILENO);
    progress.quiet = a.quiet;
    if (!options.shard) options.shard = shard_from_slurm(shard_from);
    std::vector<std::string> overrides = a.overrides;
    if (!a.region.empty()) overrides.push_back("input.region=" + region_value(a.region));
    flowinfer::Config cfg = flowinfer::load_config(a.config, overrides);
    if (a.tissue_mask) {
        if (!cfg.tissue) throw Usage("--tissue-mask needs tiling.tissue = true");
        cfg.tissue_preview = true;
    }
    if (cfg.image_mode()) {
        progress.unit = "images";
        // Images have no MPP and no pyramid: a resolution asked of slides cannot be applied.
        for (const auto& m : cfg.models) {
            const flowinfer::Tiling t = flowinfer::tiling_for(cfg, m);
            if (t.mpp || t.level)
                std::fprintf(stderr, "flowinfer: model '%s': tiling.%s is for slides; images are read at their own pixels\n",
                             m.name.c_str(), t.mpp ? "mpp" : "level");
        }
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
    if (a.profile) std::fputs(flowinfer::profile_report(s, cfg).c_str(), stdout);
    const int rc = report(s);
    return s.state == flowinfer::RunState::interrupted ? 128 + signals.signal() : rc;
}

struct BenchArgs {
    std::string config;
    std::vector<std::string> overrides;
    flowinfer::BenchOptions opt;
};

CLI::App* add_bench(CLI::App& app, BenchArgs& a) {
    CLI::App* cmd = app.add_subcommand(
        "bench", "Measures the pipeline against its own ceilings on the first slide and model of CONFIG\n"
                 "(with input.images: every image, against a one-image-at-a-time loop)");
    cmd->footer("Measures the readers alone, the model alone, the sequential baseline and the pipeline, each\n"
                "the median of --repeat interleaved rounds; prints a table and writes <output.dir>/bench.json\n"
                "(benchmarks/README.md explains every key).");
    cmd->add_option("CONFIG.toml", a.config, "The pipeline config")->required();
    add_overrides(*cmd, a.overrides);
    cmd->add_option("--patches", a.opt.ceiling_patches, "Patches the read ceiling cycles through")
        ->capture_default_str();
    cmd->add_option("--ceiling-seconds", a.opt.ceiling_seconds, "Length of each ceiling window")
        ->capture_default_str();
    cmd->add_option("--repeat", a.opt.repeat, "Interleaved rounds; the median counts")->capture_default_str();
    cmd->add_flag("--reads-only", a.opt.reads_only, "Only the read ceilings, of every reader that reads the slide");
    return cmd;
}

int cmd_bench(const BenchArgs& a) {
    const flowinfer::BenchOptions& opt = a.opt;
    if (opt.ceiling_patches < 1) throw Usage("--patches must be at least 1");
    if (opt.repeat < 1) throw Usage("--repeat must be at least 1");
    if (!(opt.ceiling_seconds >= 0)) throw Usage("--ceiling-seconds must be >= 0");
    const flowinfer::Config cfg = flowinfer::load_config(a.config, a.overrides);
    if (cfg.image_mode()) {
        const flowinfer::ImageBenchResult r = flowinfer::bench_images(cfg, opt);
        std::fputs(flowinfer::image_bench_table(r).c_str(), stdout);
        const fs::path out = fs::path(cfg.output_dir) / "bench.json";
        flowinfer::write_file_atomically(out.string(), flowinfer::image_bench_json(r));
        std::printf("bench: %s\n", out.c_str());
        return r.failed ? kSlideFailed : kOk;
    }
    const flowinfer::BenchResult r = flowinfer::bench(cfg, opt);
    std::fputs(flowinfer::bench_table(r).c_str(), stdout);
    const fs::path out = fs::path(cfg.output_dir) / "bench.json";
    std::error_code ec;
    fs::create_directories(cfg.output_dir, ec);  // --reads-only runs nothing that would make it
    flowinfer::write_file_atomically(out.string(), flowinfer::bench_json(r));
    std::printf("bench: %s\n", out.c_str());
    return kOk;
}

// Slide and models for configs/detection.toml (dark discs on a jittered grid, some on the
// borders of 256-pixel patches), classification.toml and embedding.toml.
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
    flowinfer::write_demo_model((dir / "vit_small.pt").string(), flowinfer::DemoModel::vit_small);
}

struct DemoArgs {
    std::string dir = "flowinfer-demo";
    bool assets_only = false;
};

CLI::App* add_demo(CLI::App& app, DemoArgs& a) {
    CLI::App* cmd = app.add_subcommand(
        "demo", "Makes a synthetic slide and a demo model in DIR, writes DIR/pipeline.toml and runs it");
    cmd->footer("The slide is H&E-like, the model a tissue segmenter (TorchScript, built without Python).\n"
                "Also writes the slide and models that configs/*.toml use (discs.tiff, blobs.pt, classifier.pt,\n"
                "vit_small.pt).");
    cmd->add_option("DIR", a.dir, "Where the demo's files go")->capture_default_str();
    cmd->add_flag("--assets-only", a.assets_only, "Writes the files without running the pipeline");
    return cmd;
}

int cmd_demo(const DemoArgs& a) {
    const bool run_it = !a.assets_only;
    const fs::path dir = fs::absolute(fs::path(a.dir));
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
    std::printf("demo: writing discs.tiff, blobs.pt, classifier.pt and vit_small.pt for configs/detection.toml, "
                "configs/classification.toml, configs/multi.toml and configs/embedding.toml\n");
    write_demo_detection_assets(dir);
    if (!run_it) return kOk;
    std::printf("demo: running %s\n", toml.c_str());
    RunArgs run;
    run.config = toml.string();
    const int rc = cmd_run(run);
    std::printf("demo: the tissue probability map is %s (open it with QuPath or openslide)\n",
                (dir / "out" / "synthetic-he" / "tissue.tif").c_str());
    return rc;
}

using flowinfer::DemoModel;
const std::pair<const char*, DemoModel> kModelKinds[] = {
    {"tissue", DemoModel::tissue},         {"pointwise_mean", DemoModel::pointwise_mean},
    {"constant", DemoModel::constant},     {"throw_after", DemoModel::throw_after},
    {"throw_above", DemoModel::throw_above},
    {"wrong_rank", DemoModel::wrong_rank}, {"downscale", DemoModel::downscale},
    {"blob_detector", DemoModel::blob_detector}, {"patch_classifier", DemoModel::patch_classifier},
    {"call_size", DemoModel::call_size},   {"ragged_boxes", DemoModel::ragged_boxes},
    {"identity", DemoModel::identity},
    {"light", DemoModel::light},           {"unet", DemoModel::unet},
    {"mean_features", DemoModel::mean_features}, {"mean_features_pooled", DemoModel::mean_features_pooled},
    {"empty_features", DemoModel::empty_features}, {"vit_small", DemoModel::vit_small},
    {"one_channel", DemoModel::one_channel}, {"dict_output", DemoModel::dict_output},
    {"tuple_output", DemoModel::tuple_output}, {"nhwc_mean", DemoModel::nhwc_mean}};

std::string model_kind_names() {
    std::string names;
    for (const auto& [name, k] : kModelKinds) names += (names.empty() ? "" : ", ") + std::string(name);
    return names;
}

struct MakeModelArgs {
    std::string out, kind;
    float param = 0.0f;
};

CLI::App* add_make_model(CLI::App& app, MakeModelArgs& a) {
    CLI::App* cmd = app.add_subcommand("make-model", "Writes a TorchScript model built without Python");
    cmd->footer("KIND light is the light benchmark model (two small convolutions); unet the benchmark U-Net\n"
                "(4 levels, --param: base channels); blob_detector's --param is the disc radius.\n"
                "vit_small is a ViT-S/16-like encoder for task embedding (224 px, D = 384, random weights);\n"
                "mean_features returns per-channel patch means ([B, D], --param: D).");
    cmd->add_option("OUT.pt", a.out, "The model file to write")->required();
    cmd->add_option("--kind", a.kind, "One of " + model_kind_names())->type_name("KIND");
    cmd->add_option("--param", a.param, "A number some kinds take");
    return cmd;
}

int cmd_make_model(const MakeModelArgs& a) {
    for (const auto& [name, k] : kModelKinds) {
        if (a.kind == name) {
            flowinfer::write_demo_model(a.out, k, a.param);
            std::printf("%s\n", a.out.c_str());
            return kOk;
        }
    }
    throw Usage(fmt::format("make-model: --kind '{}' is not one of {}", a.kind, model_kind_names()));
}

struct InspectArgs {
    std::string model;
    std::vector<std::string> settings;
    std::vector<int> sizes;
};

CLI::App* add_inspect(CLI::App& app, InspectArgs& a) {
    CLI::App* cmd = app.add_subcommand(
        "inspect", "Says what flowinfer knows about a model (a TorchScript file or a WSInfer model directory)");
    cmd->footer("Prints the file's format version and extra files, the model keys it carries (flowinfer.json,\n"
                "WSInfer's config.json) and those in effect, whether this LibTorch loads it (and which operator it\n"
                "lacks), forward's result for one all-zero patch at several channel counts and sizes, and which\n"
                "tasks the output fits. Exit 0 when the configured input fits the task, 1 otherwise.");
    cmd->add_option("MODEL", a.model, "The model file or WSInfer model directory")->required();
    cmd->add_option("--set", a.settings, "A model key, e.g. --set channels=gray --set output=1 (repeatable)")
        ->type_name("KEY=VALUE")
        ->allow_extra_args(false);
    cmd->add_option("--size", a.sizes, "Also probe this patch size (repeatable)")->allow_extra_args(false);
    return cmd;
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
    CLI::App app{"flowinfer: whole-slide inference on one TBB flow graph", "flowinfer"};
    app.footer(kSynopsis);
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("flowinfer ") + FLOWINFER_VERSION);
    RunArgs run;
    BenchArgs bench;
    DemoArgs demo;
    SynthArgs synth;
    MakeModelArgs make_model;
    InspectArgs inspect;
    CLI::App* const commands[] = {add_run(app, run),     add_bench(app, bench),           add_demo(app, demo),
                                  add_synth(app, synth), add_make_model(app, make_model), add_inspect(app, inspect)};
    const std::string first = argc > 1 ? argv[1] : "";
    if (argc < 2) {
        std::fputs(app.help().c_str(), stderr);
        return kUsage;
    }
    // Usage errors point at the help of the command they belong to.
    const auto see = [&app] {
        const std::vector<CLI::App*> chosen = app.get_subcommands();
        return chosen.empty() ? std::string("flowinfer --help") : "flowinfer " + chosen[0]->get_name() + " --help";
    };
    try {
        if (first == "help") {
            std::fputs(app.help().c_str(), stdout);
            return kOk;
        }
        // CLI11 would say "A subcommand is required" for a misspelt one.
        const bool known = std::any_of(std::begin(commands), std::end(commands),
                                       [&](const CLI::App* c) { return c->get_name() == first; });
        if (!known && (first.empty() || first[0] != '-'))
            throw Usage("unknown command '" + first + "'");
        try {
            app.parse(argc, argv);
        } catch (const CLI::Success& e) {  // --help, --version
            return app.exit(e);
        } catch (const CLI::ParseError& e) {
            std::fprintf(stderr, "flowinfer: %s\n(see %s)\n", e.what(), see().c_str());
            return kUsage;
        }
        if (commands[0]->parsed()) return cmd_run(run);
        if (commands[1]->parsed()) return cmd_bench(bench);
        if (commands[2]->parsed()) return cmd_demo(demo);
        if (commands[3]->parsed()) return cmd_synth(synth);
        if (commands[5]->parsed()) return flowinfer::cli::cmd_inspect(inspect.model, inspect.settings, inspect.sizes);
        return cmd_make_model(make_model);
    } catch (const Usage& e) {
        std::fprintf(stderr, "flowinfer: %s\n(see %s)\n", e.what(), see().c_str());
        return kUsage;
    } catch (const flowinfer::ConfigError& e) {
        std::fprintf(stderr, "flowinfer: config error: %s\n", e.what());
        return kUsage;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "\nflowinfer: error: %s\n", e.what());
        return kSlideFailed;
    }
}
