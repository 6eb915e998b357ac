// The flowinfer command line: exit codes and messages for good and bad input.
#define BOOST_TEST_MODULE test_cli
#include <boost/test/unit_test.hpp>

#include "tests/test_support.hpp"

#include <flowinfer/demo.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <optional>
#include <thread>
#include <unistd.h>

namespace fs = std::filesystem;
using namespace flowinfer;

namespace {

const std::string kCli = FLOWINFER_CLI;

struct Fixture {
    fit::TempDir dir;
    Fixture() { write_demo_model(dir / "mean.pt", DemoModel::pointwise_mean); }

    // A config over `slide` with the model at `model`; `extra` is appended verbatim.
    std::string config(const std::string& slide, const std::string& model = "mean.pt",
                       const std::string& extra = "") {
        const std::string path = dir / "pipeline.toml";
        fit::write_text(path, fmt::format(R"([input]
slides = ["{}"]
[output]
dir = "out"
[tiling]
patch_size = 256
overlap = 16
[runtime]
readers = 2
max_in_flight = 16
torch_threads = 1
[[models]]
name = "mean"
path = "{}"
batch_size = 4
mean = [0, 0, 0]
std = [1, 1, 1]
activation = "none"
{})", slide, model, extra));
        return path;
    }
    fit::CmdResult run(const std::string& args) { return fit::run_cmd(kCli + " " + args); }
    bool contains(const fit::CmdResult& r, const std::string& what) {
        const bool ok = r.output.find(what) != std::string::npos;
        BOOST_TEST_MESSAGE("exit " << r.exit_code << ": " << r.output);
        if (!ok) BOOST_TEST_MESSAGE("output was: " << r.output);
        return ok;
    }
};

// Run inside a Slurm job array, every `flowinfer run` below would process one shard only.
struct NoSlurmArray {
    NoSlurmArray() {
        for (const char* v : {"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN",
                              "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_STEP"})
            ::unsetenv(v);
    }
};

}  // namespace

BOOST_TEST_GLOBAL_FIXTURE(NoSlurmArray);

BOOST_FIXTURE_TEST_SUITE(cli, Fixture)

BOOST_AUTO_TEST_CASE(help_and_version) {
    auto r = run("--help");
    BOOST_TEST(r.exit_code == 0);
    BOOST_TEST(contains(r, "flowinfer run CONFIG.toml"));
    r = run("--version");
    BOOST_TEST(r.exit_code == 0);
    BOOST_TEST(contains(r, "flowinfer 0."));
    r = run("frobnicate");
    BOOST_TEST(r.exit_code == 2);
    BOOST_TEST(contains(r, "unknown command"));
    r = run("");
    BOOST_TEST(r.exit_code == 2);
}

// Every command has its own --help (exit 0, its options listed) and refuses an unknown option
// with exit 2 and a pointer to that help.
BOOST_AUTO_TEST_CASE(every_command_has_help_and_usage_errors_exit_2) {
    const std::pair<const char*, const char*> commands[] = {
        {"run", "--shard"}, {"bench", "--ceiling-seconds"}, {"demo", "--assets-only"},
        {"synth", "--quality"}, {"make-model", "--kind"}};
    for (const auto& [cmd, option] : commands) {
        auto r = run(std::string(cmd) + " --help");
        BOOST_TEST(r.exit_code == 0, cmd);
        BOOST_TEST(contains(r, std::string("Usage: flowinfer ") + cmd), cmd);
        BOOST_TEST(contains(r, option), cmd);
        r = run(std::string(cmd) + " " + (dir / "x") + " --no-such-option");
        BOOST_TEST(r.exit_code == 2, cmd);
        BOOST_TEST(contains(r, "--no-such-option"), cmd);
        BOOST_TEST(contains(r, std::string("flowinfer ") + cmd + " --help"), cmd);
    }
    // Values are checked: a number that is not one, a missing value, a missing positional.
    auto r = run("synth " + (dir / "s.tiff") + " --width 7O0");
    BOOST_TEST(r.exit_code == 2);
    BOOST_TEST(contains(r, "--width"));
    BOOST_TEST(!fs::exists(dir / "s.tiff"));
    BOOST_TEST(run("bench").exit_code == 2);
    BOOST_TEST(run("run " + config(fit::shared_slide("small.svs")) + " --set").exit_code == 2);
    // --set takes one value per occurrence: the config after it is still the config.
    r = run("run --set tiling.overlap=0 " + config(fit::shared_slide("small.svs")) + " --quiet");
    BOOST_TEST(r.exit_code == 0, r.output);
}

BOOST_AUTO_TEST_CASE(run_ok_writes_summary) {
    auto r = run("run " + config(fit::shared_slide("CMU-1-Small-Region.svs")) + " --quiet");
    BOOST_TEST(r.exit_code == 0);
    BOOST_TEST(contains(r, "ok "));
    const std::string summary = fit::read_text(dir / "out/summary.json");
    BOOST_TEST(summary.find("\"status\": \"ok\"") != std::string::npos);
    BOOST_TEST(summary.find("\"patches_per_s\"") != std::string::npos);
    BOOST_TEST(fit::parse_json(summary)["stages"]["read_region"].has("busy_s"));
    BOOST_TEST(fs::exists(dir / "out/CMU-1-Small-Region/mean.tif"));
}

BOOST_AUTO_TEST_CASE(set_overrides_a_key) {
    // patch_size 128 with overlap 0 on 2220x2967: 18 x 24 patches.
    auto r = run("run " + config(fit::shared_slide("CMU-1-Small-Region.svs")) +
                 " --quiet --set tiling.patch_size=128 --set tiling.overlap=0");
    BOOST_TEST(r.exit_code == 0);
    BOOST_TEST(contains(r, "432 patches"));
    r = run("run " + config(fit::shared_slide("CMU-1-Small-Region.svs")) + " --set tiling.overlap=999");
    BOOST_TEST(r.exit_code == 2);
    BOOST_TEST(contains(r, "tiling.overlap"));
}

BOOST_AUTO_TEST_CASE(missing_slide_fails_with_its_name) {
    auto r = run("run " + config(dir / "nope.svs") + " --quiet");
    BOOST_TEST(r.exit_code == 1);
    BOOST_TEST(contains(r, "nope.svs"));
    BOOST_TEST(contains(r, "file not found"));
    const std::string summary = fit::read_text(dir / "out/summary.json");
    BOOST_TEST(summary.find("\"status\": \"failed\"") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(each_negative_slide_fails_cleanly) {
    for (const char* name : {"unopenable.tiff", "unreadable.svs", "smalltif.tif"}) {
        auto r = run("run " + config(fit::shared_slide(std::string("negative/") + name)) + " --quiet");
        BOOST_TEST(r.exit_code == 1, name);
        BOOST_TEST(contains(r, name));
        BOOST_TEST(contains(r, "failed"));
        const std::string stem = fs::path(name).stem().string();
        BOOST_TEST(!fs::exists(dir / ("out/" + stem + "/mean.tif")), name);
        BOOST_TEST(!fs::exists(dir / ("out/" + stem + "/mean.tif.partial")), name);
    }
    // With on_read_error = "skip", the corrupt tile is one unreadable patch, not a failure.
    auto r = run("run " + config(fit::shared_slide("negative/unreadable.svs")) +
                 " --quiet --set runtime.on_read_error=skip");
    BOOST_TEST(r.exit_code == 0);
    const fit::Json j = fit::parse_json(fit::read_text(dir / "out/summary.json"));
    BOOST_TEST(j["slides"][0]["status"].s == "ok");
    BOOST_TEST(j["slides"][0]["patches_unreadable"].n == 1);
    BOOST_TEST(fs::exists(dir / "out/unreadable/mean.tif"));
}

BOOST_AUTO_TEST_CASE(small_slide_works) {
    auto r = run("run " + config(fit::shared_slide("small.svs")) + " --quiet");
    BOOST_TEST(r.exit_code == 0);
    BOOST_TEST(fs::exists(dir / "out/small/mean.tif"));
}

BOOST_AUTO_TEST_CASE(bad_model_files) {
    const std::string slide = fit::shared_slide("small.svs");
    auto r = run("run " + config(slide, "absent.pt") + " --quiet");
    BOOST_TEST(r.exit_code == 1);
    BOOST_TEST(contains(r, "absent.pt"));
    fit::write_text(dir / "garbage.pt", "this is not a TorchScript archive");
    r = run("run " + config(slide, "garbage.pt") + " --quiet");
    BOOST_TEST(r.exit_code == 1);
    BOOST_TEST(contains(r, "garbage.pt"));
    write_demo_model(dir / "rank.pt", DemoModel::wrong_rank);
    r = run("run " + config(slide, "rank.pt") + " --quiet");
    BOOST_TEST(r.exit_code == 1);
    BOOST_TEST(contains(r, "rank 3"));
    BOOST_TEST(!fs::exists(dir / "out/small/mean.tif"));
}

BOOST_AUTO_TEST_CASE(device_and_precision_this_build_cannot_serve) {
    const std::string slide = fit::shared_slide("small.svs");
    auto r = run("run " + config(slide) + " --quiet --set runtime.device=cuda");
    BOOST_TEST(r.exit_code == 1);
    BOOST_TEST((contains(r, "no CUDA support") || contains(r, "no CUDA GPU")));
    r = run("run " + config(slide) + " --quiet --set models.0.precision=fp16");
    BOOST_TEST(r.exit_code == 1);
    BOOST_TEST(contains(r, "fp16"));
    r = run("run " + config(slide) + " --quiet --set runtime.device=tpu");
    BOOST_TEST(r.exit_code == 2);
    BOOST_TEST(contains(r, "runtime.device"));
}

BOOST_AUTO_TEST_CASE(model_that_throws_mid_slide) {
    write_demo_model(dir / "throw.pt", DemoModel::throw_after, 5);
    auto r = run("run " + config(fit::shared_slide("CMU-1-Small-Region.svs"), "throw.pt") + " --quiet");
    BOOST_TEST(r.exit_code == 1);
    BOOST_TEST(contains(r, "flowinfer test model failure"));
    BOOST_TEST(!fs::exists(dir / "out/CMU-1-Small-Region/mean.tif"));
    BOOST_TEST(!fs::exists(dir / "out/CMU-1-Small-Region/mean.tif.partial"));
}

BOOST_AUTO_TEST_CASE(config_errors_exit_2_with_position) {
    const std::string slide = fit::shared_slide("small.svs");
    // TOML syntax error: line 19 is the appended text.
    auto r = run("run " + config(slide, "mean.pt", "blend = [1,"));
    BOOST_TEST(r.exit_code == 2);
    BOOST_TEST(contains(r, "pipeline.toml:"));
    // Unknown key, with its line:column.
    r = run("run " + config(slide, "mean.pt", "bach_size = 3"));
    BOOST_TEST(r.exit_code == 2);
    BOOST_TEST(contains(r, "models[0].bach_size"));
    BOOST_TEST(contains(r, "pipeline.toml:19:13"));
    // Wrong type.
    r = run("run " + config(slide, "mean.pt", "blend = 3"));
    BOOST_TEST(r.exit_code == 2);
    BOOST_TEST(contains(r, "blend"));
    r = run("run " + (dir / "absent.toml"));
    BOOST_TEST(r.exit_code == 2);
    BOOST_TEST(contains(r, "absent.toml"));
}

BOOST_AUTO_TEST_CASE(manifest_runs_its_slides_and_a_bad_entry_exits_2) {
    fs::create_directories(dir / "lists");
    fit::write_text(dir / "lists/slides.txt", "# two slides\n" + fit::shared_slide("small.svs") + "\n\n" +
                                                  fit::shared_slide("CMU-1-Small-Region.svs") + "\n");
    const std::string cfg = config(fit::shared_slide("small.svs"));
    auto r = run("run " + cfg + " --quiet --set input.manifest=lists/slides.txt");
    BOOST_TEST(r.exit_code == 0);
    const std::string summary = fit::read_text(dir / "out/summary.json");
    // Sorted, de-duplicated: small.svs is both in input.slides and in the manifest.
    const std::size_t cmu = summary.find("CMU-1-Small-Region.svs"), small = summary.find("small.svs\"");
    BOOST_TEST(cmu != std::string::npos);
    BOOST_TEST(small != std::string::npos);
    BOOST_TEST(cmu < small);
    BOOST_TEST(summary.find("small.svs\"", small + 1) == std::string::npos);
    BOOST_TEST(fs::exists(dir / "out/CMU-1-Small-Region/mean.tif"));
    BOOST_TEST(fs::exists(dir / "out/small/mean.tif"));

    fit::write_text(dir / "lists/slides.txt", fit::shared_slide("small.svs") + "\ntypo.svs\n");
    r = run("run " + cfg + " --quiet --set input.manifest=lists/slides.txt");
    BOOST_TEST(r.exit_code == 2);
    BOOST_TEST(contains(r, dir / "lists/slides.txt:2:1: key 'input.manifest': listed slide '" + dir / "lists/typo.svs" +
                               "' does not exist"));
}

BOOST_AUTO_TEST_CASE(make_model_and_synth_commands) {
    auto r = run("synth " + (dir / "s.tiff") + " --width 700 --height 500 --quality 0");
    BOOST_TEST(r.exit_code == 0);
    BOOST_TEST(fit::read_level(dir / "s.tiff", 0).width == 700);
    // --format: the Aperio-style SVS (JPEG, JPEG 2000 YCbCr and RGB), which OpenSlide sees as such.
    for (const char* f : {"svs", "svs-jp2k", "svs-jp2k-rgb"}) {
        const std::string out = dir / (std::string(f) + ".svs");
        r = run("synth " + out + " --width 1100 --height 700 --format " + f);
        BOOST_TEST(r.exit_code == 0, f << ": " << r.output);
        BOOST_TEST(fit::property(out, "openslide.vendor") == "aperio", f);
        BOOST_TEST(fit::level_count(out) >= 2, f);
        BOOST_TEST(fit::level_downsample(out, 1) == 4.0, boost::test_tools::tolerance(0.01));
    }
    BOOST_TEST(fit::property(dir / "svs-jp2k.svs", "aperio.MPP") == "0.25");
    r = run("synth " + (dir / "x.svs") + " --format ndpi");
    BOOST_TEST(r.exit_code == 2);
    BOOST_TEST(contains(r, "--format"));
    r = run("make-model " + (dir / "c.pt") + " --kind constant --param 0.25");
    BOOST_TEST(r.exit_code == 0);
    r = run("make-model " + (dir / "c.pt") + " --kind nonsense");
    BOOST_TEST(r.exit_code == 2);
    BOOST_TEST(contains(r, "nonsense"));
}

BOOST_AUTO_TEST_CASE(demo_runs_end_to_end) {
    // README command 1's last step: writes the slide and models, then runs its pipeline.toml.
    const auto r = run("demo " + (dir / "d"));
    BOOST_TEST(r.exit_code == 0, r.output);
    BOOST_TEST(contains(r, "1 ok"));
    BOOST_TEST(contains(r, "the tissue probability map is " + dir / "d/out/synthetic-he/tissue.tif"));
    BOOST_TEST(fit::read_level(dir / "d/out/synthetic-he/tissue.tif", 0).width == 4096);
}

BOOST_AUTO_TEST_CASE(every_config_in_configs_runs) {
    // The configs point at ../flowinfer-demo/: give them one next to a copy of configs/.
    fs::copy(fs::path(FLOWINFER_SOURCE_DIR) / "configs", dir / "configs");
    auto r = run("demo " + (dir / "flowinfer-demo") + " --assets-only");
    BOOST_REQUIRE(r.exit_code == 0);
    int seen = 0;
    for (const auto& e : fs::directory_iterator(dir / "configs")) {
        // bench-*.toml need the large benchmark slides (benchmarks/run.sh makes them).
        if (e.path().extension() != ".toml" || e.path().filename().string().rfind("bench-", 0) == 0) continue;
        ++seen;
        r = run("run " + e.path().string() + " --quiet");
        BOOST_TEST(r.exit_code == 0, e.path().filename() << ": " << r.output);
        BOOST_TEST(contains(r, "ok "), e.path().filename());
    }
    BOOST_TEST(seen >= 4);
}

BOOST_AUTO_TEST_CASE(bench_writes_every_figure) {
    // Not a speed test: checks that every figure is measured and the derived ones add up.
    const std::string cfg = config(fit::shared_slide("CMU-1-Small-Region.svs"));
    auto r = run("bench " + cfg + " --patches 24 --ceiling-seconds 0.2 --repeat 3 --set models.0.cpu_micro_batch=3");
    BOOST_REQUIRE(r.exit_code == 0);
    BOOST_TEST(contains(r, "efficiency"));
    BOOST_TEST(contains(r, "batch 4 (forward calls of 3)"));
    const std::string json = fit::read_text(dir / "out/bench.json");
    const auto value = [&json](const std::string& key) {
        const std::size_t at = json.find("\"" + key + "\": ");
        BOOST_REQUIRE_MESSAGE(at != std::string::npos, key);
        return std::stod(json.substr(at + key.size() + 4));
    };
    for (const char* k : {"read_patches_per_s", "model_patches_per_s", "sequential_patches_per_s",
                          "pipeline_patches_per_s", "bound_patches_per_s"})
        BOOST_TEST(value(k) > 0, k);
    const double read = value("read_patches_per_s"), model = value("model_patches_per_s");
    BOOST_TEST(value("bound_patches_per_s") == 1 / (1 / read + 1 / model), boost::test_tools::tolerance(1e-4));
    BOOST_TEST(value("efficiency") == value("pipeline_patches_per_s") / value("bound_patches_per_s"),
               boost::test_tools::tolerance(1e-4));
    BOOST_TEST(value("speedup_vs_sequential") ==
                   value("pipeline_patches_per_s") / value("sequential_patches_per_s"),
               boost::test_tools::tolerance(1e-4));
    // Every round is recorded, and the figures are the medians of the rounds (the model's: of
    // its best shape, which the rounds' own best need not be).
    for (const char* k : {"read", "sequential", "pipeline"}) {
        std::vector<double> rounds;
        for (std::size_t at = json.find("\"rounds\": ["); (at = json.find(std::string("\"") + k + "\": ", at)) != std::string::npos;
             at += 1)
            rounds.push_back(std::stod(json.substr(at + std::strlen(k) + 4)));
        BOOST_TEST_REQUIRE(rounds.size() == 3u, k);
        std::sort(rounds.begin(), rounds.end());
        BOOST_TEST(rounds[1] == value(std::string(k) + "_patches_per_s"), boost::test_tools::tolerance(1e-4));
    }
    // model_shapes: the same shapes each round, in order; the ceiling is the best median.
    std::vector<double> shapes;
    const std::size_t shapes_end = json.find("\"rounds\": [");
    for (std::size_t at = json.find("\"model_shapes\": ["); (at = json.find("\"patches_per_s\": ", at)) < shapes_end; at += 1)
        shapes.push_back(std::stod(json.substr(at + 17)));
    BOOST_TEST_REQUIRE(shapes.size() % 3 == 0u);
    BOOST_TEST_REQUIRE(shapes.size() >= 3u);
    const std::size_t per_round = shapes.size() / 3;
    double best_median = 0;
    for (std::size_t k = 0; k < per_round; ++k) {
        std::vector<double> v{shapes[k], shapes[k + per_round], shapes[k + 2 * per_round]};
        std::sort(v.begin(), v.end());
        best_median = std::max(best_median, v[1]);
    }
    BOOST_TEST(best_median == value("model_patches_per_s"), boost::test_tools::tolerance(1e-4));
    BOOST_TEST(value("batch_size") == 4);
    BOOST_TEST(value("micro_batch") == 3);
    BOOST_TEST(value("patches") == 10 * 13);  // 2220 x 2967 at patch 256, stride 240
    BOOST_TEST(json.find("\"device\": \"cpu\"") != std::string::npos);
    BOOST_TEST(fit::parse_json(json)["stages"]["read_region"].has("busy_s"));
    BOOST_TEST(fit::parse_json(json)["blas"].s != "");
    // Both readers, each the median of its rounds; read_patches_per_s is the one in use.
    const fit::Json j = fit::parse_json(json);
    BOOST_TEST(j["reader"].s == "native");
    for (const char* name : {"native", "openslide"}) {
        std::vector<double> v;
        for (const fit::Json& round : j["rounds"].items) v.push_back(round["read_by_reader"][name].n);
        BOOST_REQUIRE(v.size() == 3u);
        std::sort(v.begin(), v.end());
        BOOST_TEST(j["read_patches_per_s_by_reader"][name].n == v[1], name);
    }
    BOOST_TEST(j["read_patches_per_s_by_reader"]["native"].n == read, boost::test_tools::tolerance(1e-4));
    BOOST_TEST(contains(r, "openslide reader"));
    // --reads-only: the reader ceilings alone, nothing run.
    r = run("bench " + cfg + " --reads-only --patches 8 --ceiling-seconds 0.05 --repeat 2 --set output.dir=" +
            (dir / "reads"));
    BOOST_REQUIRE(r.exit_code == 0);
    const fit::Json ro = fit::parse_json(fit::read_text(dir / "reads/bench.json"));
    BOOST_TEST(ro["read_patches_per_s_by_reader"]["native"].n > 0);
    BOOST_TEST(ro["read_patches_per_s_by_reader"]["openslide"].n > 0);
    BOOST_TEST(ro["pipeline_patches_per_s"].n == 0);
    BOOST_TEST(ro["rounds"].items.size() == 2u);
    BOOST_TEST(!fit::files_ending_with(dir / "reads", ".tif").size());
    // More readers than cores: still no library warning (TBB's "number of workers is
    // currently limited" came from the read ceiling's arena).
    const unsigned readers = 2 * std::thread::hardware_concurrency() + 1;
    r = run("bench " + cfg + fmt::format(" --patches 8 --ceiling-seconds 0 --repeat 1 --set runtime.readers={}", readers));
    BOOST_TEST(r.exit_code == 0);
    BOOST_TEST(!contains(r, "Warning"), r.output);
    // --profile names the bottleneck.
    r = run("run " + cfg + " --quiet --profile");
    BOOST_TEST(r.exit_code == 0);
    BOOST_TEST(contains(r, "bottleneck: "));
}

// ---------------------------------------------------------------------------------------------
// Many slides, no lost work: signals, a killed run, a full disk, an unwritable directory

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// summary.json, parsed, whenever it exists. It is only ever renamed into place whole, so a
// file that exists and does not parse is a bug, reported as a test error.
std::optional<fit::Json> read_summary(const std::string& path) {
    if (!fs::exists(path)) return std::nullopt;
    try {
        return fit::parse_json(fit::read_text(path));
    } catch (const std::exception& e) {
        BOOST_ERROR("summary.json exists but is not valid JSON: " << e.what());
        return std::nullopt;
    }
}

// Waits until summary.json says the first slide is ok (it is rewritten as each slide
// finishes); false after `timeout_s` or when the child has ended.
bool wait_first_slide_ok(fit::Child& child, const std::string& summary, double timeout_s = 120) {
    const auto t0 = Clock::now();
    while (seconds_since(t0) < timeout_s && child.running()) {
        if (auto j = read_summary(summary); j && (*j)["slides"][0]["status"].s == "ok") return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
}

// A small slide that finishes at once and a big one that runs for tens of seconds (patch 256
// every 32 pixels: about 14,000 patches), both made with the synth command.
struct TwoSlides : Fixture {
    std::string cfg;
    TwoSlides() {
        BOOST_REQUIRE(fit::run_cmd(kCli + " synth " + (dir / "a-small.tiff") + " --width 600 --height 500").exit_code == 0);
        BOOST_REQUIRE(fit::run_cmd(kCli + " synth " + (dir / "b-big.tiff") + " --width 4000 --height 4000").exit_code == 0);
        cfg = config(dir / "a-small.tiff", "mean.pt", "");
        std::string text = fit::read_text(cfg);
        text.replace(text.find("slides = ["), std::string("slides = [").size(), "slides = [\"" + dir / "b-big.tiff" + "\", ");
        text.replace(text.find("overlap = 16"), std::string("overlap = 16").size(), "overlap = 224");
        fit::write_text(cfg, text);
    }
    fit::Child start(const std::string& out) {
        return fit::Child({kCli, "run", cfg, "--quiet", "--set", "output.dir=" + out});
    }
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(sigint_and_sigterm_stop_cleanly_and_fast, TwoSlides) {
    for (const auto& [sig, name, code] : {std::tuple{SIGINT, "SIGINT", 130}, std::tuple{SIGTERM, "SIGTERM", 143}}) {
        BOOST_TEST_CONTEXT(name) {
            const std::string out = dir / ("out-" + std::string(name));
            fit::Child child = start(out);
            BOOST_REQUIRE(wait_first_slide_ok(child, out + "/summary.json"));
            std::this_thread::sleep_for(std::chrono::seconds(1));  // well into the big slide
            BOOST_REQUIRE(child.running());
            const auto t0 = Clock::now();
            child.signal(sig);
            const fit::CmdResult r = child.wait();
            const double took = seconds_since(t0);
            BOOST_TEST_MESSAGE(name << ": exit " << r.exit_code << " after " << took << " s: " << r.output);
            BOOST_TEST(r.exit_code == code);
            BOOST_TEST(took < 3.0);
            BOOST_TEST(r.output.find("stopping") != std::string::npos);
            BOOST_TEST(fit::files_ending_with(out, ".partial").empty());
            const auto j = read_summary(out + "/summary.json");
            BOOST_REQUIRE(j);
            BOOST_TEST((*j)["state"].s == "interrupted");
            BOOST_TEST((*j)["error"].s == std::string("interrupted by ") + name);
            BOOST_TEST((*j)["counts"]["ok"].n == 1);
            BOOST_TEST((*j)["counts"]["interrupted"].n == 1);
            // What finished is complete and readable; what did not left nothing behind.
            BOOST_TEST((*j)["slides"][0]["status"].s == "ok");
            const std::string map = (*j)["slides"][0]["outputs"][0]["path"].s;
            BOOST_TEST(map == out + "/a-small/mean.tif");
            BOOST_TEST(fit::read_level(map, 0).width == 600);
            BOOST_TEST((*j)["slides"][1]["status"].s == "interrupted");
            BOOST_TEST((*j)["slides"][1]["error"].s.find(name) != std::string::npos);
            BOOST_TEST(!fs::exists(out + "/b-big/mean.tif"));
        }
    }
}

BOOST_FIXTURE_TEST_CASE(a_second_signal_exits_at_once, TwoSlides) {
    // The first signal starts the clean stop; a second one during it ends the process with
    // that signal's code at once (the clean stop would have exited 130 for the first).
    const std::string out = dir / "out";
    fit::Child child = start(out);
    BOOST_REQUIRE(wait_first_slide_ok(child, out + "/summary.json"));
    child.signal(SIGINT);
    const auto t0 = Clock::now();
    while (child.running() && seconds_since(t0) < 10) {
        if (child.output().find("stopping") != std::string::npos) {
            child.signal(SIGTERM);
            break;
        }
    }
    const fit::CmdResult r = child.wait();
    BOOST_TEST_MESSAGE("exit " << r.exit_code << ": " << r.output);
    BOOST_TEST(r.exit_code == 143);
}

BOOST_FIXTURE_TEST_CASE(a_killed_run_leaves_a_valid_summary_of_what_finished, TwoSlides) {
    const std::string out = dir / "out";
    fit::Child child = start(out);
    BOOST_REQUIRE(wait_first_slide_ok(child, out + "/summary.json"));
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    child.signal(SIGKILL);
    BOOST_TEST(child.wait().exit_code == 128 + SIGKILL);
    const auto j = read_summary(out + "/summary.json");
    BOOST_REQUIRE(j);
    BOOST_TEST((*j)["state"].s == "running");
    BOOST_TEST((*j)["slides"][0]["status"].s == "ok");
    BOOST_TEST(fit::read_level((*j)["slides"][0]["outputs"][0]["path"].s, 0).width == 600);
    BOOST_TEST((*j)["slides"][1]["status"].s == "pending");
    BOOST_TEST(!fs::exists(out + "/b-big/mean.tif"));  // at most its .partial: SIGKILL cannot be cleaned up after
}

BOOST_AUTO_TEST_CASE(full_disk_stops_the_run_naming_the_file_and_leaves_no_partial) {
    // RLIMIT_FSIZE makes every write past 100 kB fail with EFBIG, as a full disk fails with
    // ENOSPC: summary.json (a few kB) fits, the maps and object files do not.
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    struct Case {
        const char* what;
        std::vector<std::string> set;
        const char* file;
    };
    const Case cases[] = {
        {"segmentation map", {}, "mean.tif"},
        {"classification objects", {"models.0.task=classification", "tiling.patch_size=32", "tiling.overlap=0",
                                    "models.0.batch_size=64", "runtime.max_in_flight=256"},
         "mean."},
    };
    const std::string cfg = config(slide);
    write_demo_model(dir / "cls.pt", DemoModel::patch_classifier);
    for (const Case& c : cases) {
        BOOST_TEST_CONTEXT(c.what) {
            const std::string out = dir / ("out-" + std::to_string(&c - cases));
            std::vector<std::string> argv = {kCli, "run", cfg, "--quiet", "--set", "output.dir=" + out};
            for (const std::string& s : c.set) argv.insert(argv.end(), {"--set", s});
            if (!c.set.empty()) argv.insert(argv.end(), {"--set", "models.0.path=" + dir / "cls.pt"});
            fit::Child child(argv, 100 * 1024);
            const fit::CmdResult r = child.wait();
            BOOST_TEST_MESSAGE(r.output);
            BOOST_TEST(r.exit_code == 1);
            BOOST_TEST(r.output.find("File too large") != std::string::npos);
            BOOST_TEST(r.output.find(out + "/CMU-1-Small-Region/" + c.file) != std::string::npos);
            BOOST_TEST(fit::files_ending_with(out, ".partial").empty());
            for (const char* f : {"mean.tif", "mean.geojson", "mean.csv"})
                BOOST_TEST(!fs::exists(out + "/CMU-1-Small-Region/" + f), f);
            const auto j = read_summary(out + "/summary.json");
            BOOST_REQUIRE(j);
            BOOST_TEST((*j)["state"].s == "failed");
            BOOST_TEST((*j)["error"].s.find("File too large") != std::string::npos);
            BOOST_TEST((*j)["slides"][0]["status"].s == "interrupted");
        }
    }
    // Not even summary.json fits: the run stops before loading the model, naming it.
    const std::string out = dir / "out-tiny";
    fit::Child child({kCli, "run", cfg, "--quiet", "--set", "output.dir=" + out}, 64);
    const fit::CmdResult r = child.wait();
    BOOST_TEST(r.exit_code == 1);
    BOOST_TEST(r.output.find(out + "/summary.json: cannot write") != std::string::npos, r.output);
    BOOST_TEST(fit::files_ending_with(out, "").size() == 0u);  // an empty directory
}

BOOST_AUTO_TEST_CASE(unwritable_output_directory_is_a_clear_error) {
    const std::string slide = fit::shared_slide("small.svs");
    // A path through a regular file: no user, root included, can create it.
    fit::write_text(dir / "file", "x");
    auto r = run("run " + config(slide) + " --quiet --set output.dir=file/out");
    BOOST_TEST(r.exit_code == 1);
    BOOST_TEST(contains(r, "output " + dir / "file/out: cannot create output directory"));
    // A directory without write permission (root writes anyway: checked for other users).
    if (::geteuid() != 0) {
        fs::create_directories(dir / "ro");
        fs::permissions(dir / "ro", fs::perms::owner_read | fs::perms::owner_exec);
        r = run("run " + config(slide) + " --quiet --set output.dir=ro");
        BOOST_TEST(r.exit_code == 1);
        BOOST_TEST(contains(r, dir / "ro/summary.json"));
        BOOST_TEST(contains(r, "Permission denied"));
        fs::permissions(dir / "ro", fs::perms::owner_all);
        BOOST_TEST(fit::files_ending_with(dir / "ro", "").empty());
    } else {
        BOOST_TEST_MESSAGE("running as root: the permission case is left to non-root runs");
    }
}

BOOST_AUTO_TEST_SUITE_END()
