// Many slides, no lost work: resume records (skip what is complete, redo what changed,
// --force), shards (--shard and a Slurm job array's variables, run concurrently), and a run
// interrupted then resumed.
#define BOOST_TEST_MODULE test_batch
#include <boost/test/unit_test.hpp>

#include "tests/test_support.hpp"

#include "stages/json.hpp"
#include "stages/resume.hpp"
#include "stages/sha256.hpp"

#include <flowinfer/config.hpp>
#include <flowinfer/demo.hpp>
#include <flowinfer/errors.hpp>
#include <flowinfer/pipeline.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <thread>

namespace fs = std::filesystem;
using namespace flowinfer;

namespace {

const std::string kCli = FLOWINFER_CLI;
const char* const kSlurmVars[] = {"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN",
                                  "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_STEP"};

// Run inside a Slurm job array, the tests' own CLI runs would each process one shard.
struct NoSlurmArray {
    NoSlurmArray() {
        for (const char* v : kSlurmVars) ::unsetenv(v);
    }
};

// Sets environment variables for the CLI runs in its scope (children inherit them).
struct ScopedEnv {
    std::vector<std::string> names;
    explicit ScopedEnv(const std::vector<std::pair<std::string, std::string>>& vars) {
        for (const auto& [k, v] : vars) {
            ::setenv(k.c_str(), v.c_str(), 1);
            names.push_back(k);
        }
    }
    ~ScopedEnv() {
        for (const std::string& k : names) ::unsetenv(k.c_str());
    }
};

std::string normal(const std::string& p) { return fs::path(p).lexically_normal().string(); }

// A file's bytes and modification time, to show that a skipped slide's files are untouched.
struct FileState {
    std::string bytes;
    fs::file_time_type mtime;
    bool operator==(const FileState& o) const { return bytes == o.bytes && mtime == o.mtime; }
};

std::map<std::string, FileState> snapshot(const std::string& dir) {
    std::map<std::string, FileState> files;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.is_regular_file()) files[e.path().string()] = {fit::read_text(e.path().string()), fs::last_write_time(e.path())};
    return files;
}

// path -> status, from a summary's slides.
std::map<std::string, std::string> statuses(const fit::Json& summary) {
    std::map<std::string, std::string> out;
    for (const fit::Json& s : summary["slides"].items) out[s["path"].s] = s["status"].s;
    return out;
}

const fit::Json& entry(const fit::Json& summary, const std::string& path) {
    for (const fit::Json& s : summary["slides"].items)
        if (s["path"].s == path) return s;
    throw std::runtime_error("summary has no slide " + path);
}

// A model, a config over a list of slides, and the CLI.
struct Batch {
    fit::TempDir dir;
    std::vector<std::string> slides;  // normalized, as the config lists them
    std::string out;

    Batch() : out(dir / "out") { write_demo_model(dir / "mean.pt", DemoModel::pointwise_mean); }

    void synth(const std::string& name, int width, int height, int seed = 1) {
        const auto r = fit::run_cmd(fmt::format("{} synth {} --width {} --height {} --seed {}", kCli, dir / name, width,
                                                height, seed));
        BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.output);
    }

    // The config; `tiling` is the [tiling] table's keys besides patch_size.
    std::string config(const std::string& tiling = "overlap = 16") {
        std::string list;
        for (const std::string& s : slides) list += (list.empty() ? "\"" : ", \"") + s + "\"";
        const std::string path = dir / "pipeline.toml";
        fit::write_text(path, fmt::format(R"([input]
slides = [{}]
[output]
dir = "out"
[tiling]
patch_size = 256
{}
[runtime]
readers = 2
max_in_flight = 16
torch_threads = 1
[[models]]
name = "mean"
path = "mean.pt"
batch_size = 4
mean = [0, 0, 0]
std = [1, 1, 1]
activation = "none"
)", list, tiling));
        return path;
    }

    fit::CmdResult run(const std::string& args = "") {
        const fit::CmdResult r = fit::run_cmd(kCli + " run " + (dir / "pipeline.toml") + " --quiet " + args);
        BOOST_TEST_MESSAGE("flowinfer run " << args << ": exit " << r.exit_code << "\n" << r.output);
        return r;
    }
    fit::Json summary(const std::string& name = "summary.json") { return fit::parse_json(fit::read_text(out + "/" + name)); }
    std::string slide_dir(const std::string& slide) const { return out + "/" + fs::path(slide).stem().string(); }
    std::string record(const std::string& slide) const { return slide_dir(slide) + "/.flowinfer-done.json"; }
};

// The statuses a run gave: every slide in `expect`, with that status.
void check_statuses(const fit::Json& summary, const std::map<std::string, std::string>& expect) {
    const auto got = statuses(summary);
    BOOST_TEST(got.size() == expect.size());
    for (const auto& [path, status] : expect) {
        BOOST_TEST_CONTEXT(path) {
            BOOST_REQUIRE(got.count(path) == 1u);
            BOOST_TEST(got.at(path) == status);
        }
    }
}

}  // namespace

BOOST_TEST_GLOBAL_FIXTURE(NoSlurmArray);

// ---------------------------------------------------------------------------------------------
// Building blocks

BOOST_AUTO_TEST_CASE(sha256_matches_the_standard_vectors) {
    // FIPS 180-2 examples and the NIST long message.
    BOOST_TEST(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    BOOST_TEST(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    BOOST_TEST(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
               "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const std::string million(1000000, 'a');
    BOOST_TEST(sha256_hex(million) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    // Fed in pieces that straddle the 64-byte blocks: the same digest.
    for (std::size_t piece : {1u, 7u, 63u, 64u, 65u, 1000u}) {
        Sha256 h;
        for (std::size_t at = 0; at < million.size(); at += piece) h.update(std::string_view(million).substr(at, piece));
        BOOST_TEST(h.hex() == sha256_hex(million), piece);
    }
    // 55, 56 and 64 bytes: the padding's edge cases (Python hashlib's digests).
    BOOST_TEST(sha256_hex(std::string(55, 'a')) == "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
    BOOST_TEST(sha256_hex(std::string(56, 'a')) == "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
    BOOST_TEST(sha256_hex(std::string(64, 'a')) == "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
    fit::TempDir dir;
    fit::write_text(dir / "f", million);
    BOOST_TEST(sha256_file(dir / "f") == sha256_hex(million));
    BOOST_CHECK_THROW(sha256_file(dir / "absent"), Error);
}

// What the resume records and summaries rely on from nlohmann::json (stages/json.hpp).
BOOST_AUTO_TEST_CASE(json_helpers_escape_strings_and_keep_64_bit_integers) {
    BOOST_TEST(json_string("x\"\\\n\x01\xc3\xa9") == "\"x\\\"\\\\\\n\\u0001\xc3\xa9\"");
    // A path that is not UTF-8 is still written, with U+FFFD for the bad byte.
    BOOST_TEST(json_string("a\xff" "b") == "\"a\xef\xbf\xbd" "b\"");
    // An mtime in ns and a file size beyond a double's 53 bits come back exactly.
    const std::int64_t big = 1795249496217143714;
    const std::string text = json_text(Json{{"mtime_ns", big}, {"nan", std::nan("")}, {"order", 1}, {"a", 2}});
    BOOST_TEST(text.back() == '\n');
    BOOST_TEST(text.find("\"order\"") < text.find("\"a\""));  // members in the order they were set
    const Json back = Json::parse(text);
    BOOST_TEST(back["mtime_ns"].get<std::int64_t>() == big);
    BOOST_TEST(back["nan"].is_null());  // JSON has no NaN
    for (const char* bad : {"", "{", "{\"a\": 1,}", "[1 2]", "01", "{} {}", "\"a\nb\""})
        BOOST_TEST(Json::parse(bad, nullptr, false).is_discarded(), bad);
}

BOOST_AUTO_TEST_CASE(shards_split_the_list_round_robin) {
    const std::vector<std::string> seven = {"a", "b", "c", "d", "e", "f", "g"};
    BOOST_TEST(shard_slides(seven, {1, 3}) == (std::vector<std::string>{"a", "d", "g"}));
    BOOST_TEST(shard_slides(seven, {2, 3}) == (std::vector<std::string>{"b", "e"}));
    BOOST_TEST(shard_slides(seven, {3, 3}) == (std::vector<std::string>{"c", "f"}));
    BOOST_TEST(shard_slides(seven, {1, 1}) == seven);
    BOOST_TEST(shard_slides(seven, {8, 8}).empty());
    BOOST_TEST(shard_slides(seven, {7, 8}) == (std::vector<std::string>{"g"}));
    BOOST_CHECK_THROW(shard_slides(seven, {0, 3}), Error);
    BOOST_CHECK_THROW(shard_slides(seven, {4, 3}), Error);
    BOOST_CHECK_THROW(shard_slides(seven, {1, 0}), Error);
    BOOST_TEST(summary_file_name(std::nullopt) == "summary.json");
    BOOST_TEST(summary_file_name(Shard{2, 8}) == "summary-2-of-8.json");
}

BOOST_AUTO_TEST_CASE(settings_hash_covers_what_changes_outputs_only) {
    fit::TempDir dir;
    write_demo_model(dir / "m.pt", DemoModel::pointwise_mean);
    fit::write_text(dir / "s.tiff", "x");
    const std::string base = R"([input]
slides = ["s.tiff"]
[output]
dir = "out"
[[models]]
name = "m"
path = "m.pt"
)";
    const auto settings = [&](const std::vector<std::string>& set) {
        return resume_settings(parse_config(base, "t.toml", dir.path(), set));
    };
    const std::string plain = settings({});
    // Speed and memory knobs: the same outputs, the same settings.
    for (const char* same : {"runtime.readers=1", "runtime.threads=1", "runtime.max_in_flight=64", "runtime.torch_threads=2",
                             "runtime.infer_slots=3", "models.0.batch_size=2", "output.spill_mb=1", "output.dir=elsewhere",
                             "tiling.tissue_threshold=0.5" /* tissue is off */})
        BOOST_TEST(settings({same}) == plain, same);
    BOOST_TEST(settings({"runtime.device=cuda:0"}) == settings({"runtime.device=cuda:1"}));
    // Everything that changes an output's bytes: a different settings text.
    for (const char* differs :
         {"tiling.patch_size=256", "tiling.overlap=32", "tiling.mpp=0.5", "tiling.level=1", "tiling.sections=3",
          "tiling.subsections=4", "tiling.tissue=true", "output.compression=lzw", "output.deflate_level=6",
          "runtime.on_read_error=skip", "runtime.device=cuda", "models.0.name=n", "models.0.task=classification",
          "models.0.precision=bf16", "models.0.mean=[0.5, 0.5, 0.5]", "models.0.std=[0.5, 0.5, 0.5]",
          "models.0.activation=sigmoid", "models.0.blend=weighted", "models.0.overlap=8", "models.0.classes=[\"a\", \"b\"]"})
        BOOST_TEST(settings({differs}) != plain, differs);
    BOOST_TEST(settings({"tiling.tissue=true", "tiling.tissue_threshold=0.5"}) != settings({"tiling.tissue=true"}));
    // fp16 is the default on CUDA: saying so changes nothing.
    BOOST_TEST(settings({"runtime.device=cuda", "models.0.precision=fp16"}) == settings({"runtime.device=cuda"}));
}

// ---------------------------------------------------------------------------------------------
// (a) Resume

BOOST_FIXTURE_TEST_CASE(resume_skips_complete_slides_and_redoes_what_changed, Batch) {
    synth("syn.tiff", 600, 500);
    const std::string cmu = normal(fit::shared_slide("CMU-1-Small-Region.svs"));
    const std::string small = normal(fit::shared_slide("small.svs"));
    const std::string syn = normal(dir / "syn.tiff");
    const std::string bad = normal(fit::shared_slide("negative/unreadable.svs"));
    slides = {cmu, small, syn, bad};
    config();
    const std::vector<std::string> good = {cmu, small, syn};
    const auto all = [&](const std::string& status) {
        return std::map<std::string, std::string>{{cmu, status}, {small, status}, {syn, status}, {bad, "failed"}};
    };
    // A bad slide fails every run, and is never recorded as done.
    const auto bad_retried = [&](const fit::Json& s) {
        BOOST_TEST(entry(s, bad)["error"].s.find("Bogus marker length") != std::string::npos);
        BOOST_TEST(!fs::exists(record(bad)));
    };

    // First run: three ok, one failed, a record beside each good slide's outputs.
    auto r = run();
    BOOST_TEST(r.exit_code == 1);
    auto s = summary();
    check_statuses(s, all("ok"));
    bad_retried(s);
    BOOST_TEST(s["counts"]["ok"].n == 3);
    BOOST_TEST(s["counts"]["skipped"].n == 0);
    for (const std::string& g : good) BOOST_TEST(fs::exists(record(g)), g);
    const double cmu_patches = entry(s, cmu)["patches"].n;
    BOOST_TEST(cmu_patches == 10 * 13);  // 2220 x 2967, patch 256, stride 240
    // The record is the slide's last file: nothing in the directory is newer.
    for (const auto& [path, st] : snapshot(slide_dir(cmu)))
        BOOST_TEST((st.mtime <= fs::last_write_time(record(cmu))), path);
    // Its model digest is the file's SHA-256, as sha256sum prints it.
    const auto rec = fit::parse_json(fit::read_text(record(cmu)));
    BOOST_TEST(rec["models"][0]["sha256"].s == sha256_file(dir / "mean.pt"));
    BOOST_TEST(rec["slide"]["size"].n == static_cast<double>(fs::file_size(cmu)));
    BOOST_TEST(rec["outputs"][0]["file"].s == "mean.tif");
    BOOST_TEST(rec["outputs"][0]["size"].n == static_cast<double>(fs::file_size(slide_dir(cmu) + "/mean.tif")));

    // Second run: the three are skipped, their files untouched; the bad one is retried.
    std::map<std::string, std::map<std::string, FileState>> before;
    for (const std::string& g : good) before[g] = snapshot(slide_dir(g));
    r = run();
    BOOST_TEST(r.exit_code == 1);
    BOOST_TEST(r.output.find("skipped " + cmu + ": outputs complete (resume)") != std::string::npos);
    BOOST_TEST(r.output.find("4 slides: 0 ok, 3 skipped, 1 failed, 0 interrupted") != std::string::npos);
    s = summary();
    check_statuses(s, all("skipped"));
    bad_retried(s);
    BOOST_TEST(s["counts"]["skipped"].n == 3);
    BOOST_TEST(s["state"].s == "finished");
    for (const std::string& g : good) {
        BOOST_TEST(entry(s, g)["reason"].s == "outputs complete (resume)");
        BOOST_TEST((snapshot(slide_dir(g)) == before[g]), g);
    }
    // A skipped slide's entry still lists its outputs and figures (from the record).
    BOOST_TEST(entry(s, cmu)["patches"].n == cmu_patches);
    BOOST_TEST(entry(s, cmu)["outputs"][0]["path"].s == slide_dir(cmu) + "/mean.tif");
    BOOST_TEST(entry(s, cmu)["outputs"][0]["width"].n == 2220);
    BOOST_TEST(s["patches"].n == 0);  // nothing ran

    // Every good slide skipped, none failing: nothing is loaded (no model, no device).
    slides = good;
    config();
    r = run();
    BOOST_TEST(r.exit_code == 0);
    BOOST_TEST(summary()["runtime"]["device"].s == "");
    BOOST_TEST(summary()["runtime"]["infer_slots"].n == 0);
    slides = {cmu, small, syn, bad};
    config();

    // A skipped slide is not even opened: its bytes replaced (same size, mtime put back) go
    // unnoticed. (This is the limit of a stat() identity; --force covers it.)
    const std::string syn_bytes = fit::read_text(syn);
    const auto syn_mtime = fs::last_write_time(syn);
    fit::write_text(syn, std::string(syn_bytes.size(), '\0'));
    fs::last_write_time(syn, syn_mtime);
    r = run();
    check_statuses(summary(), all("skipped"));
    fit::write_text(syn, syn_bytes);
    fs::last_write_time(syn, syn_mtime);

    // Settings that change speed only: still skipped.
    r = run("--set runtime.readers=1 --set runtime.max_in_flight=8 --set runtime.threads=1 --set models.0.batch_size=2");
    check_statuses(summary(), all("skipped"));

    // A different model file at the same path: all redone, with new bytes.
    write_demo_model(dir / "mean.pt", DemoModel::constant, 0.25f);
    r = run();
    BOOST_TEST(r.exit_code == 1);
    s = summary();
    check_statuses(s, all("ok"));
    bad_retried(s);
    for (const std::string& g : good) {
        BOOST_TEST(entry(s, g)["reason"].s == "redone: model 'mean' file changed", g);
        BOOST_TEST(fit::read_text(slide_dir(g) + "/mean.tif") != before[g].at(slide_dir(g) + "/mean.tif").bytes, g);
    }
    BOOST_TEST(r.output.find(cmu + ": redone: model 'mean' file changed") != std::string::npos);
    check_statuses((run(), summary()), all("skipped"));

    // A tiling key: all redone, at the new geometry.
    config("overlap = 32");
    r = run();
    s = summary();
    check_statuses(s, all("ok"));
    for (const std::string& g : good) BOOST_TEST(entry(s, g)["reason"].s == "redone: settings changed", g);
    BOOST_TEST(entry(s, cmu)["patches"].n == 10 * 14);  // stride 224 on 2220 x 2967
    config("overlap = 32\nsections = 3");
    s = (run(), summary());
    check_statuses(s, all("ok"));
    check_statuses((run(), summary()), all("skipped"));

    // A slide touched, then replaced: that slide only is redone.
    fs::last_write_time(syn, fs::last_write_time(syn) + std::chrono::seconds(1));
    s = (run(), summary());
    check_statuses(s, {{cmu, "skipped"}, {small, "skipped"}, {syn, "ok"}, {bad, "failed"}});
    BOOST_TEST(entry(s, syn)["reason"].s == "redone: slide file changed (modification time)");
    synth("syn.tiff", 700, 400, 2);
    s = (run(), summary());
    check_statuses(s, {{cmu, "skipped"}, {small, "skipped"}, {syn, "ok"}, {bad, "failed"}});
    BOOST_TEST(entry(s, syn)["reason"].s.find("redone: slide file changed") == 0u);
    BOOST_TEST(entry(s, syn)["outputs"][0]["width"].n == 700);

    // An output deleted, or cut short: that slide only is redone.
    fs::remove(slide_dir(small) + "/mean.tif");
    s = (run(), summary());
    check_statuses(s, {{cmu, "skipped"}, {small, "ok"}, {syn, "skipped"}, {bad, "failed"}});
    BOOST_TEST(entry(s, small)["reason"].s == "redone: output missing: mean.tif");
    BOOST_TEST(fs::exists(slide_dir(small) + "/mean.tif"));
    fs::resize_file(slide_dir(cmu) + "/mean.tif", 1000);
    s = (run(), summary());
    check_statuses(s, {{cmu, "ok"}, {small, "skipped"}, {syn, "skipped"}, {bad, "failed"}});
    BOOST_TEST(entry(s, cmu)["reason"].s == "redone: output changed size: mean.tif");
    BOOST_TEST(fit::read_level(slide_dir(cmu) + "/mean.tif", 0).width == 2220);

    // A damaged record: redone, not trusted.
    fit::write_text(record(small), "{\"flowinfer_resume\": 1, \"key\": ");
    s = (run(), summary());
    check_statuses(s, {{cmu, "skipped"}, {small, "ok"}, {syn, "skipped"}, {bad, "failed"}});
    BOOST_TEST(entry(s, small)["reason"].s == "redone: resume record unreadable");

    // --force: everything redone, records rewritten.
    for (const std::string& g : good) before[g] = snapshot(slide_dir(g));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // distinct mtimes on coarse clocks
    r = run("--force");
    BOOST_TEST(r.exit_code == 1);
    s = summary();
    check_statuses(s, all("ok"));
    bad_retried(s);
    for (const std::string& g : good) {
        BOOST_TEST(entry(s, g)["reason"].s == "redone: forced (resume off)", g);
        BOOST_TEST((fs::last_write_time(slide_dir(g) + "/mean.tif") > before[g].at(slide_dir(g) + "/mean.tif").mtime), g);
        BOOST_TEST(fs::exists(record(g)), g);
    }
    check_statuses((run(), summary()), all("skipped"));
}

// ---------------------------------------------------------------------------------------------
// (b) Shards

namespace {

struct Cohort : Batch {
    std::vector<std::string> sorted;  // the list every shard computes
    std::string bad;
    Cohort() {
        synth("syn-a.tiff", 600, 500, 1);
        synth("syn-b.tiff", 900, 700, 2);
        bad = normal(fit::shared_slide("negative/unreadable.svs"));
        slides = {normal(fit::shared_slide("CMU-1-Small-Region.svs")), normal(fit::shared_slide("CropBreastSlide.tiff")),
                  normal(fit::shared_slide("boxes.tiff")), normal(fit::shared_slide("small.svs")),
                  normal(dir / "syn-a.tiff"), normal(dir / "syn-b.tiff"), bad};
        // The config lists them out of order: shards must agree on the sorted list.
        std::reverse(slides.begin(), slides.end());
        config();
        sorted = slides;
        std::sort(sorted.begin(), sorted.end());
    }
    std::vector<std::string> expected_shard(int i, int n) const {
        std::vector<std::string> mine;
        for (std::size_t k = 0; k < sorted.size(); ++k)
            if (static_cast<int>(k % static_cast<std::size_t>(n)) == i - 1) mine.push_back(sorted[k]);
        return mine;
    }
    static std::vector<std::string> paths(const fit::Json& summary) {
        std::vector<std::string> p;
        for (const fit::Json& s : summary["slides"].items) p.push_back(s["path"].s);
        return p;
    }
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(three_concurrent_shards_process_every_slide_once, Cohort) {
    // Started at once, into one output directory.
    std::vector<std::unique_ptr<fit::Child>> children;
    for (int i = 1; i <= 3; ++i)
        children.push_back(std::make_unique<fit::Child>(std::vector<std::string>{
            kCli, "run", dir / "pipeline.toml", "--quiet", "--shard", fmt::format("{}/3", i)}));
    std::vector<fit::CmdResult> results;
    for (auto& c : children) results.push_back(c->wait());

    std::multiset<std::string> seen;
    std::set<std::string> hashes;
    int ok = 0;
    for (int i = 1; i <= 3; ++i) {
        BOOST_TEST_CONTEXT("shard " << i) {
            const fit::CmdResult& r = results[static_cast<std::size_t>(i - 1)];
            BOOST_TEST_MESSAGE(r.output);
            const std::vector<std::string> mine = expected_shard(i, 3);
            const bool has_bad = std::count(mine.begin(), mine.end(), bad) > 0;
            BOOST_TEST(r.exit_code == (has_bad ? 1 : 0));
            BOOST_TEST(r.output.find(fmt::format("shard {}/3 (--shard): {} of 7 slides", i, mine.size())) != std::string::npos);
            const fit::Json s = summary(fmt::format("summary-{}-of-3.json", i));
            BOOST_TEST(s["state"].s == "finished");
            BOOST_TEST(s["shard"]["index"].n == i);
            BOOST_TEST(s["shard"]["count"].n == 3);
            BOOST_TEST(s["shard"]["slides_total"].n == 7);
            hashes.insert(s["shard"]["slides_sha256"].s);
            BOOST_TEST(paths(s) == mine, boost::test_tools::per_element());
            for (const fit::Json& e : s["slides"].items) {
                seen.insert(e["path"].s);
                if (e["path"].s == bad) {
                    BOOST_TEST(e["status"].s == "failed");
                    BOOST_TEST(!fs::exists(record(bad)));
                    continue;
                }
                BOOST_TEST(e["status"].s == "ok", e["path"].s);
                ++ok;
                BOOST_TEST(fs::exists(record(e["path"].s)));
                BOOST_TEST(fit::read_level(e["outputs"][0]["path"].s, 0).width > 0);
            }
        }
    }
    // Union = the whole list, and no slide in two shards.
    BOOST_TEST(std::vector<std::string>(seen.begin(), seen.end()) == sorted, boost::test_tools::per_element());
    BOOST_TEST(ok == 6);
    BOOST_TEST(hashes.size() == 1u);  // one list for all
    BOOST_TEST(!fs::exists(out + "/summary.json"));
    BOOST_TEST(fit::files_ending_with(out, ".partial").empty());

    // Slurm's variables pick the same shard as --shard (and it resumes: all its good slides
    // are skipped). ID with COUNT; 0-based arrays through MIN; MIN/MAX without COUNT; a step.
    struct EnvCase {
        std::vector<std::pair<std::string, std::string>> env;
        int shard;
    };
    const EnvCase env_cases[] = {
        {{{"SLURM_ARRAY_TASK_ID", "2"}, {"SLURM_ARRAY_TASK_COUNT", "3"}}, 2},
        {{{"SLURM_ARRAY_TASK_ID", "0"}, {"SLURM_ARRAY_TASK_COUNT", "3"}, {"SLURM_ARRAY_TASK_MIN", "0"}}, 1},
        {{{"SLURM_ARRAY_TASK_ID", "12"}, {"SLURM_ARRAY_TASK_MIN", "10"}, {"SLURM_ARRAY_TASK_MAX", "12"}}, 3},
        {{{"SLURM_ARRAY_TASK_ID", "5"}, {"SLURM_ARRAY_TASK_MIN", "1"}, {"SLURM_ARRAY_TASK_MAX", "5"},
          {"SLURM_ARRAY_TASK_STEP", "2"}}, 3},
    };
    for (const EnvCase& c : env_cases) {
        BOOST_TEST_CONTEXT("env case for shard " << c.shard) {
            const std::string name = fmt::format("summary-{}-of-3.json", c.shard);
            fs::remove(out + "/" + name);
            ScopedEnv env(c.env);
            const fit::CmdResult r = run();
            BOOST_TEST(r.output.find(fmt::format("shard {}/3 (SLURM_ARRAY_TASK_ID=", c.shard)) != std::string::npos);
            const fit::Json s = summary(name);
            BOOST_TEST(paths(s) == expected_shard(c.shard, 3), boost::test_tools::per_element());
            for (const fit::Json& e : s["slides"].items)
                BOOST_TEST(e["status"].s == (e["path"].s == bad ? "failed" : "skipped"));
        }
    }
    // --shard wins over the environment.
    {
        ScopedEnv env({{"SLURM_ARRAY_TASK_ID", "1"}, {"SLURM_ARRAY_TASK_COUNT", "3"}});
        fs::remove(out + "/summary-2-of-3.json");
        run("--shard 2/3");
        BOOST_TEST(fs::exists(out + "/summary-2-of-3.json"));
    }
    // A shard with no slide still writes its summary.
    auto r = run("--shard 8/8");
    BOOST_TEST(r.exit_code == 0);
    const fit::Json empty = summary("summary-8-of-8.json");
    BOOST_TEST(empty["state"].s == "finished");
    BOOST_TEST(empty["slides"].items.empty());
    BOOST_TEST(empty["counts"]["ok"].n + empty["counts"]["skipped"].n + empty["counts"]["failed"].n == 0);
    BOOST_TEST(empty["shard"]["slides_total"].n == 7);
}

BOOST_FIXTURE_TEST_CASE(bad_shards_are_usage_errors, Batch) {
    slides = {normal(fit::shared_slide("small.svs"))};
    config();
    for (const char* bad : {"0/3", "4/3", "1/0", "0/0", "abc", "2", "2/", "/3", "-1/3", "1/3x", "1.5/3", "2/3/4", "''"}) {
        const fit::CmdResult r = run(std::string("--shard ") + bad);
        BOOST_TEST(r.exit_code == 2, bad);
        BOOST_TEST(r.output.find("--shard '") != std::string::npos, bad);
    }
    BOOST_TEST(run("--shard").exit_code == 2);
    struct EnvCase {
        std::vector<std::pair<std::string, std::string>> env;
        const char* says;
    };
    const EnvCase cases[] = {
        {{{"SLURM_ARRAY_TASK_ID", "4"}, {"SLURM_ARRAY_TASK_COUNT", "3"}}, "gives shard 4/3"},
        {{{"SLURM_ARRAY_TASK_ID", "0"}, {"SLURM_ARRAY_TASK_COUNT", "3"}}, "gives shard 0/3"},
        {{{"SLURM_ARRAY_TASK_ID", "x"}, {"SLURM_ARRAY_TASK_COUNT", "3"}}, "SLURM_ARRAY_TASK_ID='x' is not a whole number"},
        {{{"SLURM_ARRAY_TASK_ID", "2"}}, "needs SLURM_ARRAY_TASK_COUNT"},
        {{{"SLURM_ARRAY_TASK_ID", "2"}, {"SLURM_ARRAY_TASK_MIN", "1"}}, "needs SLURM_ARRAY_TASK_COUNT"},
        {{{"SLURM_ARRAY_TASK_COUNT", "3"}}, "SLURM_ARRAY_TASK_ID is not"},
        {{{"SLURM_ARRAY_TASK_ID", "1"}, {"SLURM_ARRAY_TASK_MIN", "3"}, {"SLURM_ARRAY_TASK_MAX", "5"}}, "not MIN + a multiple"},
        {{{"SLURM_ARRAY_TASK_ID", "2"}, {"SLURM_ARRAY_TASK_MIN", "1"}, {"SLURM_ARRAY_TASK_MAX", "5"},
          {"SLURM_ARRAY_TASK_STEP", "2"}}, "not MIN + a multiple"},
        {{{"SLURM_ARRAY_TASK_ID", "3"}, {"SLURM_ARRAY_TASK_MIN", "3"}, {"SLURM_ARRAY_TASK_MAX", "1"}}, "MAX < SLURM_ARRAY_TASK_MIN"},
    };
    for (const EnvCase& c : cases) {
        ScopedEnv env(c.env);
        const fit::CmdResult r = run();
        BOOST_TEST(r.exit_code == 2, c.says);
        BOOST_TEST(r.output.find(c.says) != std::string::npos, c.says);
    }
    // Nothing was run by any of them.
    BOOST_TEST(!fs::exists(out));
}

// ---------------------------------------------------------------------------------------------
// (c) Interrupted, then resumed

namespace {

using Clock = std::chrono::steady_clock;

std::optional<fit::Json> try_summary(const std::string& path) {
    try {
        return fit::parse_json(fit::read_text(path));
    } catch (const std::exception&) {
        return std::nullopt;  // not written yet
    }
}

// Waits until `slide` is ok in the summary; false when the child ends first or after 120 s.
bool wait_slide_ok(fit::Child& child, const std::string& summary, const std::string& slide) {
    const auto t0 = Clock::now();
    while (child.running() && Clock::now() - t0 < std::chrono::seconds(120)) {
        if (fs::exists(summary))
            if (auto j = try_summary(summary); j && statuses(*j)[slide] == "ok") return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(an_interrupted_run_resumes_where_it_stopped, Batch) {
    // A small slide that finishes at once and a big one that takes seconds (patch 256 every
    // 32 pixels on 3200 x 3200: 8649 patches).
    synth("a-small.tiff", 600, 500);
    synth("b-big.tiff", 3200, 3200);
    const std::string a = normal(dir / "a-small.tiff"), b = normal(dir / "b-big.tiff");
    slides = {a, b};
    config("overlap = 224");
    const std::vector<std::string> argv = {kCli, "run", dir / "pipeline.toml", "--quiet"};

    // Interrupted once the small slide is ok.
    {
        fit::Child child(argv);
        BOOST_REQUIRE(wait_slide_ok(child, out + "/summary.json", a));
        child.signal(SIGINT);
        const fit::CmdResult r = child.wait();
        BOOST_TEST_MESSAGE(r.output);
        BOOST_TEST(r.exit_code == 130);
    }
    auto s = summary();
    BOOST_TEST(s["state"].s == "interrupted");
    check_statuses(s, {{a, "ok"}, {b, "interrupted"}});
    BOOST_TEST(fs::exists(record(a)));
    BOOST_TEST(!fs::exists(record(b)));
    BOOST_TEST(!fs::exists(slide_dir(b) + "/mean.tif"));
    const auto a_files = snapshot(slide_dir(a));

    // Resumed: the small one skipped (untouched), the big one done.
    auto r = run();
    BOOST_TEST(r.exit_code == 0);
    s = summary();
    BOOST_TEST(s["state"].s == "finished");
    check_statuses(s, {{a, "skipped"}, {b, "ok"}});
    BOOST_TEST((snapshot(slide_dir(a)) == a_files));
    BOOST_TEST(fs::exists(record(b)));
    BOOST_TEST(fit::read_level(slide_dir(b) + "/mean.tif", 0).width == 3200);
    BOOST_TEST(entry(s, b)["patches"].n == 93 * 93);

    // A redo cut short: its record went first, so the next run redoes it again, though its
    // old outputs are still there; the slide that finished keeps its new record.
    {
        fit::Child child({kCli, "run", dir / "pipeline.toml", "--quiet", "--force"});
        // The forced run rewrites a's summary entry as ok (it was skipped a moment ago).
        BOOST_REQUIRE(wait_slide_ok(child, out + "/summary.json", a));
        BOOST_TEST(!fs::exists(record(b)));
        BOOST_TEST(fs::exists(slide_dir(b) + "/mean.tif"));  // the old map, until the new one is renamed over it
        child.signal(SIGTERM);
        BOOST_TEST(child.wait().exit_code == 143);
    }
    BOOST_TEST(fs::exists(record(a)));
    BOOST_TEST(!fs::exists(record(b)));
    r = run();
    BOOST_TEST(r.exit_code == 0);
    s = summary();
    check_statuses(s, {{a, "skipped"}, {b, "ok"}});
    BOOST_TEST(!entry(s, b).has("reason"));  // no record left: b is done as if for the first time
    BOOST_TEST(fs::exists(record(b)));
}

// ---------------------------------------------------------------------------------------------
// configs/slurm: the array script and the cohort config, with a stand-in for srun

BOOST_AUTO_TEST_CASE(slurm_array_script_runs_the_cohort_one_shard_per_task) {
    fit::TempDir dir;
    // The config points at ../../flowinfer-demo/: give it one next to a copy of configs/.
    fs::copy(fs::path(FLOWINFER_SOURCE_DIR) / "configs", dir / "configs", fs::copy_options::recursive);
    BOOST_REQUIRE(fit::run_cmd(kCli + " demo " + (dir / "flowinfer-demo") + " --assets-only").exit_code == 0);
    // srun without Slurm: drop its options, run the command.
    fs::create_directories(dir / "bin");
    fit::write_text(dir / "bin/srun", "#!/bin/sh\nwhile [ \"${1#-}\" != \"$1\" ]; do shift; done\nexec \"$@\"\n");
    fs::permissions(dir / "bin/srun", fs::perms::owner_all);
    const std::string out = dir / "flowinfer-demo/out-cohort";
    const auto task = [&](int id) {
        // The GPU device of the config is swapped for the CPU here; everything else is the script's.
        const auto r = fit::run_cmd(fmt::format(
            "cd {} && PATH={}:$PATH FLOWINFER={} SLURM_ARRAY_TASK_ID={} SLURM_ARRAY_TASK_COUNT=2 SLURM_CPUS_PER_TASK=2 "
            "bash configs/slurm/cohort.sbatch configs/slurm/cohort.toml --quiet --set runtime.device=cpu",
            dir.path(), dir / "bin", kCli, id));
        BOOST_TEST_MESSAGE("task " << id << ": exit " << r.exit_code << "\n" << r.output);
        return r;
    };
    std::set<std::string> seen;
    for (int id : {1, 2}) {
        const auto r = task(id);
        BOOST_TEST(r.exit_code == 0);
        BOOST_TEST(r.output.find(fmt::format("shard {}/2 (SLURM_ARRAY_TASK_ID={} SLURM_ARRAY_TASK_COUNT=2): 1 of 2 slides",
                                             id, id)) != std::string::npos);
        const fit::Json s = fit::parse_json(fit::read_text(out + fmt::format("/summary-{}-of-2.json", id)));
        BOOST_TEST(s["counts"]["ok"].n == 1);
        for (const fit::Json& e : s["slides"].items) {
            seen.insert(fs::path(e["path"].s).filename().string());
            BOOST_TEST(e["outputs"].items.size() == 6u);  // tissue map, contours; classifier map, CSV, GeoJSON; preview
        }
    }
    BOOST_TEST((seen == std::set<std::string>{"discs.tiff", "synthetic-he.tiff"}));
    // Submitted again: nothing left to do.
    const auto again = task(2);
    BOOST_TEST(again.exit_code == 0);
    BOOST_TEST(fit::parse_json(fit::read_text(out + "/summary-2-of-2.json"))["counts"]["skipped"].n == 1);
    // A bad shard setting fails the task as a usage error.
    const auto bad = fit::run_cmd(fmt::format("cd {} && PATH={}:$PATH FLOWINFER={} SLURM_ARRAY_TASK_ID=3 SLURM_ARRAY_TASK_COUNT=2 "
                                              "bash configs/slurm/cohort.sbatch configs/slurm/cohort.toml",
                                              dir.path(), dir / "bin", kCli));
    BOOST_TEST(bad.exit_code == 2);
}
