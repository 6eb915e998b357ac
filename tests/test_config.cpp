#define BOOST_TEST_MODULE test_config
#include <boost/test/unit_test.hpp>

#include <flowinfer/config.hpp>
#include <flowinfer/errors.hpp>

#include "tests/test_support.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using flowinfer::Config;
using flowinfer::ConfigError;
using namespace flowinfer;

namespace {

// The smallest valid config; tests append sections to it or replace parts of it.
const std::string kInput = "[input]\nslides = [\"a.svs\"]\n";     // lines 1-2
const std::string kOutput = "[output]\ndir = \"out\"\n";          // lines 3-4 after kInput
const std::string kModel = "[[models]]\nname = \"m\"\npath = \"m.pt\"\n";
const std::string kMinimal = kInput + kOutput + kModel;           // 7 lines
const std::string kBase = "/srv/run";

Config parse(const std::string& text, const std::vector<std::string>& overrides = {}) {
    return flowinfer::parse_config(text, "cfg.toml", kBase, overrides);
}

ConfigError error_of(const std::string& text, const std::vector<std::string>& overrides = {}) {
    try {
        parse(text, overrides);
    } catch (const ConfigError& e) {
        return e;
    }
    BOOST_ERROR("expected a ConfigError for:\n" << text);
    return ConfigError("", "", 0, 0, "no error raised");
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

// Checks the structured fields and that the message carries the file, the key, the
// position and the problem, as a user would read them.
void expect_error(const ConfigError& e, const std::string& key, std::uint32_t line,
                  std::uint32_t column, const std::string& problem) {
    std::string msg = e.what();
    BOOST_TEST_CONTEXT(msg) {
        BOOST_TEST(e.file() == "cfg.toml");
        BOOST_TEST(e.key() == key);
        BOOST_TEST(e.line() == line);
        BOOST_TEST(e.column() == column);
        std::string where = line ? "cfg.toml:" + std::to_string(line) + ":" + std::to_string(column)
                                 : "cfg.toml";
        BOOST_TEST(msg.rfind(where + ": ", 0) == 0);
        if (!key.empty()) BOOST_TEST(contains(msg, "key '" + key + "'"));
        BOOST_TEST(contains(msg, problem));
    }
}

void expect_error(const std::string& text, const std::string& key, std::uint32_t line,
                  std::uint32_t column, const std::string& problem) {
    BOOST_TEST_CONTEXT(text) { expect_error(error_of(text), key, line, column, problem); }
}

void touch(const std::string& path) { fit::write_text(path, "x"); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// Parsing into fields

BOOST_AUTO_TEST_CASE(every_key_lands_in_its_field) {
    fit::TempDir dir;
    fs::create_directories(dir / "slides");
    touch(dir / "slides/b.ndpi");
    touch(dir / "slides/a.ndpi");
    fit::write_text(dir / "pipeline.toml", R"(
[input]
slides = ["one.svs", "slides/*.ndpi"]

[output]
dir = "results"
compression = "lzw"
deflate_level = 7
spill_mb = 1024

[tiling]
patch_size = 256
overlap = 32
mpp = 0.25
sections = 3
subsections = 5

[runtime]
device = "cuda:1"
readers = 7
max_in_flight = 64
threads = 3
torch_threads = 2
infer_slots = 5

[[models]]
name = "tumor-v2.1_x"
path = "models/unet.pt"
task = "segmentation"
batch_size = 16
cpu_micro_batch = 4
precision = "bf16"
mean = [1, 0.5, 0.25]
std = [2, 0.5, 0.125]
activation = "sigmoid"
blend = "weighted"
)");
    Config c = flowinfer::load_config(dir / "pipeline.toml");
    BOOST_TEST(c.source == dir / "pipeline.toml");
    std::vector<std::string> slides{dir / "one.svs", dir / "slides/a.ndpi", dir / "slides/b.ndpi"};
    BOOST_TEST(c.slides == slides, boost::test_tools::per_element());
    BOOST_TEST(c.output_dir == dir / "results");
    BOOST_TEST((c.compression == flowinfer::Compression::lzw));
    BOOST_TEST(c.spill_mb == 1024);
    BOOST_TEST(c.deflate_level == 7);
    BOOST_TEST(c.patch_size == 256);
    BOOST_TEST(c.overlap == 32);
    BOOST_TEST(c.mpp.has_value());
    BOOST_TEST(c.mpp.value_or(0) == 0.25);
    BOOST_TEST(!c.level.has_value());
    BOOST_TEST(c.sections == 3);
    BOOST_TEST(c.subsections == 5);
    BOOST_TEST(c.device == "cuda:1");
    BOOST_TEST(c.readers == 7);
    BOOST_TEST(c.max_in_flight == 64);
    BOOST_TEST(c.threads == 3);
    BOOST_TEST(c.torch_threads == 2);
    BOOST_TEST(c.infer_slots == 5);
    BOOST_TEST_REQUIRE(c.models.size() == 1u);
    const flowinfer::ModelConfig& m = c.models[0];
    BOOST_TEST(m.name == "tumor-v2.1_x");
    BOOST_TEST(m.path == dir / "models/unet.pt");
    BOOST_TEST((m.task == flowinfer::Task::segmentation));
    BOOST_TEST(m.batch_size == 16);
    BOOST_TEST(m.cpu_micro_batch == 4);
    BOOST_TEST((m.precision == flowinfer::Precision::bf16));
    BOOST_TEST(m.mean == (std::vector<float>{1.0f, 0.5f, 0.25f}), boost::test_tools::per_element());
    BOOST_TEST(m.std == (std::vector<float>{2.0f, 0.5f, 0.125f}), boost::test_tools::per_element());
    BOOST_TEST((m.activation == flowinfer::Activation::sigmoid));
    BOOST_TEST((m.blend == flowinfer::Blend::weighted));
}

BOOST_AUTO_TEST_CASE(absent_keys_keep_their_defaults) {
    Config c = parse(kMinimal);
    const Config d;
    const flowinfer::ModelConfig dm;
    BOOST_TEST(c.source == "cfg.toml");
    BOOST_TEST((c.compression == d.compression));
    BOOST_TEST(c.spill_mb == d.spill_mb);
    BOOST_TEST(c.patch_size == d.patch_size);
    BOOST_TEST(c.overlap == d.overlap);
    BOOST_TEST(!c.mpp.has_value());
    BOOST_TEST(!c.level.has_value());
    BOOST_TEST(c.sections == d.sections);
    BOOST_TEST(c.subsections == d.subsections);
    BOOST_TEST(c.device == "cpu");
    BOOST_TEST(c.readers == d.readers);
    BOOST_TEST(c.max_in_flight == d.max_in_flight);
    BOOST_TEST(c.threads == 0);
    BOOST_TEST(c.torch_threads == 0);
    BOOST_TEST(c.infer_slots == 0);
    BOOST_TEST((c.on_read_error == flowinfer::ReadErrorPolicy::fail));
    BOOST_TEST_REQUIRE(c.models.size() == 1u);
    const flowinfer::ModelConfig& m = c.models[0];
    BOOST_TEST((m.task == dm.task));
    BOOST_TEST(m.batch_size == dm.batch_size);
    BOOST_TEST(m.cpu_micro_batch == 1);
    BOOST_TEST(!m.precision.has_value());
    BOOST_TEST(m.mean == dm.mean, boost::test_tools::per_element());
    BOOST_TEST(m.std == dm.std, boost::test_tools::per_element());
    BOOST_TEST((m.activation == dm.activation));
    BOOST_TEST((m.blend == dm.blend));
}

BOOST_AUTO_TEST_CASE(level_and_integer_mpp) {
    Config c = parse(kMinimal + "[tiling]\nlevel = 2\n");
    BOOST_TEST(c.level.value_or(-1) == 2);
    BOOST_TEST(!c.mpp.has_value());

    c = parse(kMinimal + "[tiling]\nmpp = 1\n");
    BOOST_TEST(c.mpp.value_or(0) == 1.0);
}

BOOST_AUTO_TEST_CASE(device_spellings) {
    for (const char* d : {"cpu", "cuda", "cuda:0", "cuda:12"}) {
        BOOST_TEST_CONTEXT(d) {
            BOOST_TEST(parse(kMinimal + "[runtime]\ndevice = \"" + d + "\"\n").device == d);
        }
    }
}

BOOST_AUTO_TEST_CASE(enum_spellings) {
    using flowinfer::to_string;
    BOOST_TEST(to_string(flowinfer::Precision::fp32) == std::string("fp32"));
    BOOST_TEST(to_string(flowinfer::Precision::fp16) == std::string("fp16"));
    BOOST_TEST(to_string(flowinfer::Precision::bf16) == std::string("bf16"));
    BOOST_TEST(to_string(flowinfer::Activation::softmax) == std::string("softmax"));
    BOOST_TEST(to_string(flowinfer::Activation::sigmoid) == std::string("sigmoid"));
    BOOST_TEST(to_string(flowinfer::Activation::none) == std::string("none"));
    BOOST_TEST(to_string(flowinfer::Blend::average) == std::string("average"));
    BOOST_TEST(to_string(flowinfer::Blend::weighted) == std::string("weighted"));
    BOOST_TEST(to_string(flowinfer::Task::segmentation) == std::string("segmentation"));
    // Each spelling parses back to the same value.
    for (auto p : {flowinfer::Precision::fp32, flowinfer::Precision::fp16,
                   flowinfer::Precision::bf16}) {
        Config c = parse(kMinimal + "precision = \"" + to_string(p) + "\"\n");
        BOOST_TEST((c.models[0].precision == p));
    }
    for (auto a : {flowinfer::Activation::softmax, flowinfer::Activation::sigmoid,
                   flowinfer::Activation::none}) {
        Config c = parse(kMinimal + "activation = \"" + to_string(a) + "\"\n");
        BOOST_TEST((c.models[0].activation == a));
    }
    const std::vector<std::pair<std::string, flowinfer::Compression>> compressions = {
        {"deflate", flowinfer::Compression::deflate},
        {"lzw", flowinfer::Compression::lzw},
        {"none", flowinfer::Compression::none}};
    for (const auto& [spelling, value] : compressions) {
        Config c = parse(kInput + "[output]\ndir = \"o\"\ncompression = \"" + spelling + "\"\n" +
                         kModel);
        BOOST_TEST((c.compression == value));
    }
    for (auto p : {flowinfer::ReadErrorPolicy::fail, flowinfer::ReadErrorPolicy::skip}) {
        Config c = parse(kMinimal + "[runtime]\non_read_error = \"" + to_string(p) + "\"\n");
        BOOST_TEST((c.on_read_error == p));
        BOOST_TEST((parse(kMinimal, {std::string("runtime.on_read_error=") + to_string(p)}).on_read_error == p));
    }
    BOOST_TEST(to_string(flowinfer::ReadErrorPolicy::skip) == std::string("skip"));
    expect_error(kMinimal + "[runtime]\non_read_error = \"ignore\"\n", "runtime.on_read_error", 9, 17,
                 "must be one of: fail, skip (got 'ignore')");
    BOOST_TEST((parse(kMinimal).reader == flowinfer::SlideReader::automatic));
    for (auto r : {flowinfer::SlideReader::automatic, flowinfer::SlideReader::native, flowinfer::SlideReader::openslide}) {
        BOOST_TEST((parse(kMinimal + "[runtime]\nreader = \"" + to_string(r) + "\"\n").reader == r));
        BOOST_TEST((parse(kMinimal, {std::string("runtime.reader=") + to_string(r)}).reader == r));
    }
    expect_error(kMinimal + "[runtime]\nreader = \"cucim\"\n", "runtime.reader", 9, 10,
                 "must be one of: auto, native, openslide (got 'cucim')");
    BOOST_TEST(parse(kMinimal).tile_cache_mb == 1024);
    BOOST_TEST(parse(kMinimal + "[runtime]\ntile_cache_mb = 0\n").tile_cache_mb == 0);
    BOOST_TEST(parse(kMinimal, {"runtime.tile_cache_mb=64"}).tile_cache_mb == 64);
    expect_error(kMinimal + "[runtime]\ntile_cache_mb = -1\n", "runtime.tile_cache_mb", 9, 17, "between 0 and");
}

// ---------------------------------------------------------------------------------------------
// Paths

BOOST_AUTO_TEST_CASE(relative_paths_resolve_against_the_config_dir) {
    Config c = flowinfer::parse_config(
        "[input]\nslides = [\"./a.svs\", \"../shared/b.svs\", \"/abs/c.svs\"]\n"
        "[output]\ndir = \"sub/out\"\n"
        "[[models]]\nname = \"m\"\npath = \"../models/m.pt\"\n",
        "cfg.toml", "/data/run", {});
    std::vector<std::string> slides{"/abs/c.svs", "/data/run/a.svs", "/data/shared/b.svs"};
    BOOST_TEST(c.slides == slides, boost::test_tools::per_element());
    BOOST_TEST(c.output_dir == "/data/run/sub/out");
    BOOST_TEST(c.models[0].path == "/data/models/m.pt");
}

BOOST_AUTO_TEST_CASE(load_config_uses_the_files_directory_even_when_given_relative) {
    fit::TempDir dir;
    fit::write_text(dir / "p.toml", kMinimal);
    std::string rel = fs::relative(dir / "p.toml", fs::current_path()).string();
    Config c = flowinfer::load_config(rel);
    BOOST_TEST(c.source == rel);
    BOOST_TEST(c.output_dir == dir / "out");
    BOOST_TEST(c.models[0].path == dir / "m.pt");
    BOOST_TEST_REQUIRE(c.slides.size() == 1u);
    BOOST_TEST(c.slides[0] == dir / "a.svs");  // kept although it does not exist
    BOOST_TEST(fs::path(c.slides[0]).is_absolute());
}

BOOST_AUTO_TEST_CASE(unreadable_file) {
    fit::TempDir dir;
    std::string missing = dir / "nope.toml";
    try {
        flowinfer::load_config(missing);
        BOOST_ERROR("expected a ConfigError");
    } catch (const ConfigError& e) {
        BOOST_TEST(e.file() == missing);
        BOOST_TEST(e.line() == 0u);
        BOOST_TEST(std::string(e.what()) ==
                   missing + ": cannot read: No such file or directory");
    }
    BOOST_CHECK_THROW(flowinfer::load_config(dir.path()), ConfigError);  // a directory
}

// ---------------------------------------------------------------------------------------------
// Globs

BOOST_AUTO_TEST_CASE(globs_expand_sorted_deduplicated_and_files_only) {
    fit::TempDir dir;
    for (const char* f : {"c.svs", "a.svs", "b.svs", "x.ndpi"}) touch(dir / f);
    fs::create_directories(dir / "d.svs");  // a directory matching the pattern is not a slide
    fit::write_text(dir / "p.toml",
                    "[input]\nslides = [\"b.svs\", \"*.svs\", \"missing.svs\", \"*.ndpi\"]\n" +
                        kOutput + kModel);
    Config c = flowinfer::load_config(dir / "p.toml");
    // One sorted list, whatever the order of the entries.
    std::vector<std::string> want{dir / "a.svs", dir / "b.svs", dir / "c.svs",
                                  dir / "missing.svs", dir / "x.ndpi"};
    BOOST_TEST(c.slides == want, boost::test_tools::per_element());
}

// ---------------------------------------------------------------------------------------------
// input.manifest

namespace {
// A ConfigError from load_config, or a failed test.
ConfigError load_error(const std::string& path, const std::vector<std::string>& overrides = {}) {
    try {
        flowinfer::load_config(path, overrides);
    } catch (const ConfigError& e) {
        return e;
    }
    BOOST_ERROR("expected a ConfigError for " << path);
    return ConfigError("", "", 0, 0, "no error raised");
}
}  // namespace

BOOST_AUTO_TEST_CASE(manifest_and_globs_make_one_sorted_list) {
    fit::TempDir dir;
    fs::create_directories(dir / "sub");
    fs::create_directories(dir / "lists");
    for (const char* f : {"a.svs", "c.svs", "z.ndpi", "sub/b.svs", "sub/y.mrxs"}) touch(dir / f);
    // Relative to the manifest's directory (lists/), comments, blanks, padding, CRLF, an
    // absolute path and duplicates of each other and of a glob match.
    fit::write_text(dir / "lists/m.txt", "# scanned 2024-05-01\n"
                                         "\n"
                                         "../z.ndpi\n"
                                         "  ../sub/y.mrxs  \r\n"
                                         "\t# a comment after a tab\n" +
                                             dir / "sub/b.svs" + "\n"
                                             "../a.svs\n"
                                             "../sub/../z.ndpi\n");
    fit::write_text(dir / "p.toml", "[input]\nslides = [\"*.svs\"]\nmanifest = \"lists/m.txt\"\n" + kOutput + kModel);
    Config c = flowinfer::load_config(dir / "p.toml");
    std::vector<std::string> want{dir / "a.svs", dir / "c.svs", dir / "sub/b.svs", dir / "sub/y.mrxs", dir / "z.ndpi"};
    BOOST_TEST(c.slides == want, boost::test_tools::per_element());

    // The manifest alone.
    fit::write_text(dir / "q.toml", "[input]\nmanifest = \"lists/m.txt\"\n" + kOutput + kModel);
    c = flowinfer::load_config(dir / "q.toml");
    want = {dir / "a.svs", dir / "sub/b.svs", dir / "sub/y.mrxs", dir / "z.ndpi"};
    BOOST_TEST(c.slides == want, boost::test_tools::per_element());

    // Given with --set, relative to the config's directory like every path.
    c = flowinfer::load_config(dir / "p.toml", {"input.manifest=lists/m.txt", "input.slides=[\"c.svs\"]"});
    want = {dir / "a.svs", dir / "c.svs", dir / "sub/b.svs", dir / "sub/y.mrxs", dir / "z.ndpi"};
    BOOST_TEST(c.slides == want, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(manifest_errors_name_the_manifest_and_line) {
    fit::TempDir dir;
    touch(dir / "a.svs");
    fs::create_directories(dir / "adir");
    // A listed file that does not exist: the manifest's path, line 4, the entry's column.
    fit::write_text(dir / "m.txt", "a.svs\n# comment\n\n   gone.svs\n");
    fit::write_text(dir / "p.toml", "[input]\nmanifest = \"m.txt\"\n" + kOutput + kModel);
    ConfigError e = load_error(dir / "p.toml");
    BOOST_TEST(e.file() == dir / "m.txt");
    BOOST_TEST(e.key() == "input.manifest");
    BOOST_TEST(e.line() == 4u);
    BOOST_TEST(e.column() == 4u);
    BOOST_TEST(std::string(e.what()) == dir / "m.txt" + ":4:4: key 'input.manifest': listed slide '" +
                                            dir / "gone.svs" + "' does not exist");

    // A listed directory.
    fit::write_text(dir / "m.txt", "adir\n");
    e = load_error(dir / "p.toml");
    BOOST_TEST(e.file() == dir / "m.txt");
    BOOST_TEST(e.line() == 1u);
    BOOST_TEST(contains(e.what(), "is a directory, not a slide"));

    // Nothing listed.
    fit::write_text(dir / "m.txt", "# only a comment\n\n");
    e = load_error(dir / "p.toml");
    BOOST_TEST(e.file() == dir / "m.txt");
    BOOST_TEST(contains(e.what(), "the manifest lists no slide"));

    // The manifest itself is missing: the config's file, the key's line:column, the path.
    fit::write_text(dir / "p.toml", "[input]\nslides = [\"a.svs\"]\nmanifest = \"absent.txt\"\n" + kOutput + kModel);
    e = load_error(dir / "p.toml");
    BOOST_TEST(e.file() == dir / "p.toml");
    BOOST_TEST(e.key() == "input.manifest");
    BOOST_TEST(e.line() == 3u);
    BOOST_TEST(e.column() == 12u);
    BOOST_TEST(contains(e.what(), "cannot read manifest '" + dir / "absent.txt" + "': No such file or directory"));

    // A directory given as the manifest.
    e = load_error(dir / "p.toml", {"input.manifest=adir"});
    BOOST_TEST(e.line() == 0u);  // from --set: no position in the file
    BOOST_TEST(contains(e.what(), "is a directory, not a list of slides"));
    BOOST_TEST(contains(e.what(), "(from --set)"));

    // Neither key.
    expect_error("[input]\n" + kOutput + kModel, "input.slides", 1, 1, "give input.slides, input.manifest or both");
    expect_error("[input]\nmanifest = 3\n" + kOutput + kModel, "input.manifest", 2, 12, "expected a string");
}

BOOST_AUTO_TEST_CASE(glob_with_absolute_pattern_and_question_mark) {
    fit::TempDir dir;
    for (const char* f : {"s1.svs", "s2.svs", "s10.svs"}) touch(dir / f);
    Config c = parse("[input]\nslides = [\"" + dir.path() + "/s?.svs\"]\n" + kOutput + kModel);
    std::vector<std::string> want{dir / "s1.svs", dir / "s2.svs"};
    BOOST_TEST(c.slides == want, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(glob_chars_in_the_config_dir_are_literal) {
    fit::TempDir dir;
    fs::create_directories(dir / "scans[1]");
    touch(dir / "scans[1]/a.svs");
    Config c = flowinfer::parse_config("[input]\nslides = [\"*.svs\"]\n" + kOutput + kModel,
                                       "cfg.toml", dir / "scans[1]", {});
    BOOST_TEST_REQUIRE(c.slides.size() == 1u);
    BOOST_TEST(c.slides[0] == dir / "scans[1]/a.svs");
}

BOOST_AUTO_TEST_CASE(existing_file_with_bracket_in_name_is_taken_literally) {
    fit::TempDir dir;
    touch(dir / "slide[1].svs");
    Config c = flowinfer::parse_config("[input]\nslides = [\"slide[1].svs\"]\n" + kOutput + kModel,
                                       "cfg.toml", dir.path(), {});
    BOOST_TEST_REQUIRE(c.slides.size() == 1u);
    BOOST_TEST(c.slides[0] == dir / "slide[1].svs");
}

BOOST_AUTO_TEST_CASE(glob_matching_nothing_is_an_error_at_the_entry) {
    fit::TempDir dir;
    touch(dir / "a.svs");
    fit::write_text(dir / "p.toml",
                    "[input]\nslides = [\"a.svs\",\n  \"x/*.svs\"]\n" + kOutput + kModel);
    try {
        flowinfer::load_config(dir / "p.toml");
        BOOST_ERROR("expected a ConfigError");
    } catch (const ConfigError& e) {
        BOOST_TEST(e.key() == "input.slides");
        BOOST_TEST(e.line() == 3u);
        BOOST_TEST(e.column() == 3u);
        BOOST_TEST(std::string(e.what()) ==
                   dir / "p.toml" + ":3:3: key 'input.slides': pattern 'x/*.svs' matches no file");
    }
}

// ---------------------------------------------------------------------------------------------
// Syntax errors

BOOST_AUTO_TEST_CASE(syntax_error_position) {
    ConfigError e = error_of("[input]\nslides = [\"a.svs\"\n[output]\n");
    BOOST_TEST(e.key() == "");
    BOOST_TEST(e.line() == 3u);
    BOOST_TEST(std::string(e.what()).rfind("cfg.toml:3:", 0) == 0);

    e = error_of("[tiling]\npatch_size = = 3\n");
    BOOST_TEST(e.line() == 2u);
    BOOST_TEST(e.column() == 14u);
    BOOST_TEST(std::string(e.what()).rfind("cfg.toml:2:14: ", 0) == 0);

    e = error_of(kMinimal + "[tiling]\npatch_size = 99999999999999999999\n");
    BOOST_TEST(e.line() == 9u);
}

// ---------------------------------------------------------------------------------------------
// Unknown keys

BOOST_AUTO_TEST_CASE(unknown_key_in_each_table) {
    expect_error(kMinimal + "colour = 1\n", "models[0].colour", 8, 10, "unknown key");
    expect_error("extra = 1\n" + kMinimal, "extra", 1, 9, "unknown key");
    expect_error("[inputs]\n" + kMinimal, "inputs", 1, 1, "unknown key");
    expect_error("[input]\nslides = [\"a.svs\"]\nslide = [\"b\"]\n" + kOutput + kModel,
                 "input.slide", 3, 9, "did you mean 'slides'");
    expect_error(kInput + "[output]\ndir = \"o\"\ncompresion = \"lzw\"\n" + kModel,
                 "output.compresion", 5, 14, "did you mean 'compression'");
    expect_error(kMinimal + "[tiling]\noverlapp = 3\n", "tiling.overlapp", 9, 12,
                 "did you mean 'overlap'");
    expect_error(kMinimal + "[runtime]\ngpu = 1\n", "runtime.gpu", 9, 7, "unknown key");
    expect_error(kMinimal + "bach_size = 4\n", "models[0].bach_size", 8, 13,
                 "did you mean 'batch_size'");
}

BOOST_AUTO_TEST_CASE(a_misspelt_required_key_is_reported_as_unknown_not_missing) {
    expect_error("[input]\nslide = [\"a.svs\"]\n" + kOutput + kModel, "input.slide", 2, 9,
                 "unknown key");
}

// ---------------------------------------------------------------------------------------------
// Missing required keys

BOOST_AUTO_TEST_CASE(missing_required_keys) {
    expect_error(kOutput + kModel, "input.slides", 0, 0, "required key is missing");
    expect_error("[input]\n" + kOutput + kModel, "input.slides", 1, 1, "required key is missing");
    expect_error(kInput + kModel, "output.dir", 0, 0, "required key is missing");
    expect_error(kInput + kOutput, "models", 0, 0, "at least one [[models]] entry");
    expect_error("models = []\n" + kInput + kOutput, "models", 1, 10,
                 "at least one [[models]] entry");
    expect_error(kInput + kOutput + "[[models]]\npath = \"m.pt\"\n", "models[0].name", 5, 1,
                 "required key is missing");
    expect_error(kInput + kOutput + "[[models]]\nname = \"m\"\n", "models[0].path", 5, 1,
                 "required key is missing");
}

// ---------------------------------------------------------------------------------------------
// Wrong types

BOOST_AUTO_TEST_CASE(wrong_types) {
    expect_error(kMinimal + "[tiling]\npatch_size = \"512\"\n", "tiling.patch_size", 9, 14,
                 "expected an integer, got string");
    expect_error(kMinimal + "[tiling]\npatch_size = 512.0\n", "tiling.patch_size", 9, 14,
                 "expected an integer, got float");
    expect_error(kMinimal + "[tiling]\nmpp = \"0.5\"\n", "tiling.mpp", 9, 7,
                 "expected a number, got string");
    expect_error(kMinimal + "[runtime]\ndevice = 0\n", "runtime.device", 9, 10,
                 "expected a string, got integer");
    expect_error(kMinimal + "[runtime]\nreaders = true\n", "runtime.readers", 9, 11,
                 "expected an integer, got boolean");
    expect_error("[input]\nslides = \"a.svs\"\n" + kOutput + kModel, "input.slides", 2, 10,
                 "expected an array of strings, got string");
    expect_error("[input]\nslides = [\"a.svs\", 3]\n" + kOutput + kModel, "input.slides[1]", 2,
                 20, "expected a string, got integer");
    expect_error("output = 3\n" + kInput + kModel, "output", 1, 10,
                 "expected a table, got integer");
    expect_error(kInput + kOutput + "[models]\nname = \"m\"\n", "models", 5, 1,
                 "expected an array of tables ([[models]]), got table");
    expect_error(kMinimal + "mean = \"imagenet\"\n", "models[0].mean", 8, 8,
                 "expected an array of numbers, one per input channel, got string");
    expect_error(kMinimal + "mean = [0.5, \"x\", 0.5]\n", "models[0].mean[1]", 8, 14,
                 "expected a number, got string");
    expect_error(kMinimal + "precision = 16\n", "models[0].precision", 8, 13,
                 "expected a string, got integer");
}

// ---------------------------------------------------------------------------------------------
// Impossible values

BOOST_AUTO_TEST_CASE(impossible_values) {
    struct Case {
        std::string extra;  // appended after kMinimal (so inside [[models]] unless a header)
        std::string key;
        std::uint32_t line, column;
        std::string problem;
    };
    const std::vector<Case> cases = {
        {"[tiling]\npatch_size = 8\n", "tiling.patch_size", 9, 14,
         "must be between 16 and 8192 (got 8)"},
        {"[tiling]\npatch_size = 9000\n", "tiling.patch_size", 9, 14, "between 16 and 8192"},
        {"[tiling]\noverlap = -1\n", "tiling.overlap", 9, 11, "must be >= 0 (got -1)"},
        {"[tiling]\nmpp = 0\n", "tiling.mpp", 9, 7, "must be > 0"},
        {"[tiling]\nmpp = -0.5\n", "tiling.mpp", 9, 7, "must be > 0"},
        {"[tiling]\nmpp = inf\n", "tiling.mpp", 9, 7, "finite"},
        {"[tiling]\nlevel = -1\n", "tiling.level", 9, 9, "must be >= 0 (got -1)"},
        {"[tiling]\nsections = 0\n", "tiling.sections", 9, 12, "must be >= 1"},
        {"[tiling]\nsubsections = 0\n", "tiling.subsections", 9, 15, "must be >= 1"},
        {"[runtime]\ndevice = \"gpu\"\n", "runtime.device", 9, 10, "cpu, cuda or cuda:N"},
        {"[runtime]\ndevice = \"cuda:\"\n", "runtime.device", 9, 10, "cuda:N"},
        {"[runtime]\ndevice = \"cuda:-1\"\n", "runtime.device", 9, 10, "cuda:N"},
        {"[runtime]\ndevice = \"cuda:99999999999\"\n", "runtime.device", 9, 10, "cuda:N"},
        {"[runtime]\nreaders = 0\n", "runtime.readers", 9, 11, "between 1 and 256"},
        {"[runtime]\nreaders = 257\n", "runtime.readers", 9, 11, "between 1 and 256"},
        {"[runtime]\nmax_in_flight = 0\n", "runtime.max_in_flight", 9, 17, "must be >= 1"},
        {"[runtime]\nthreads = -2\n", "runtime.threads", 9, 11, "must be >= 0"},
        {"[runtime]\ntorch_threads = -1\n", "runtime.torch_threads", 9, 17, "must be >= 0"},
        {"[runtime]\ninfer_slots = -1\n", "runtime.infer_slots", 9, 15, "must be >= 0"},
        // Values beyond int must be refused, not wrapped.
        {"[runtime]\nthreads = 4294967297\n", "runtime.threads", 9, 11,
         "must be between 0 and 2147483647 (got 4294967297)"},
        {"[tiling]\nlevel = 9223372036854775807\n", "tiling.level", 9, 9, "2147483647"},
        {"name = \"bad name\"\n", "models[0].name", 6, 8, "only letters, digits"},
        {"name = \"a/b\"\n", "models[0].name", 6, 8, "only letters, digits"},
        {"name = \"\"\n", "models[0].name", 6, 8, "non-empty"},
        {"path = \"\"\n", "models[0].path", 7, 8, "must not be empty"},
        {"task = \"regression\"\n", "models[0].task", 8, 8,
         "must be one of: segmentation, classification, detection, embedding (got 'regression')"},
        {"batch_size = 0\n", "models[0].batch_size", 8, 14, "between 1 and 4096"},
        {"batch_size = 4097\n", "models[0].batch_size", 8, 14, "between 1 and 4096"},
        {"cpu_micro_batch = 0\n", "models[0].cpu_micro_batch", 8, 19, "between 1 and 4096"},
        {"precision = \"int8\"\n", "models[0].precision", 8, 13,
         "must be one of: fp32, fp16, bf16 (got 'int8')"},
        {"mean = [0.5, 0.5]\n", "models[0].mean", 8, 8, "has 2 values for 3 input channel(s)"},
        {"mean = [0.5, 0.5, 0.5, 0.5]\n", "models[0].mean", 8, 8, "has 4 values for 3 input channel(s)"},
        {"mean = [0.5, 0.5, 1e300]\n", "models[0].mean[2]", 8, 19, "out of float range"},
        {"std = [0.5, 0, 0.5]\n", "models[0].std[1]", 8, 13, "must be > 0"},
        {"std = [0.5, 0.5, -1]\n", "models[0].std[2]", 8, 18, "must be > 0"},
        {"std = [0.5, 1e-72, 0.5]\n", "models[0].std[1]", 8, 13, "must be at least"},  // fuzz_config
        {"activation = \"relu\"\n", "models[0].activation", 8, 14,
         "must be one of: softmax, sigmoid, none (got 'relu')"},
        {"blend = \"max\"\n", "models[0].blend", 8, 9,
         "must be one of: average, weighted (got 'max')"},
    };
    for (const Case& c : cases) {
        std::string text = kMinimal + c.extra;
        // name/path cases replace the model's own line instead of adding a duplicate key.
        if (c.extra.rfind("name = ", 0) == 0)
            text = kInput + kOutput + "[[models]]\n" + c.extra + "path = \"m.pt\"\n";
        else if (c.extra.rfind("path = ", 0) == 0)
            text = kInput + kOutput + "[[models]]\nname = \"m\"\n" + c.extra;
        expect_error(text, c.key, c.line, c.column, c.problem);
    }
}

BOOST_AUTO_TEST_CASE(output_values) {
    expect_error(kInput + "[output]\ndir = \"o\"\ncompression = \"zip\"\n" + kModel,
                 "output.compression", 5, 15, "must be one of: deflate, lzw, none (got 'zip')");
    expect_error(kInput + "[output]\ndir = \"o\"\ndeflate_level = 0\n" + kModel, "output.deflate_level", 5,
                 17, "must be between 1 and 9");
    expect_error(kInput + "[output]\ndir = \"o\"\nspill_mb = -1\n" + kModel, "output.spill_mb", 5,
                 12, "must be >= 0 (got -1)");
    expect_error(kInput + "[output]\ndir = \"o\"\nspill_mb = 9223372036854775807\n" + kModel,
                 "output.spill_mb", 5, 12, "must be between 0 and 8796093022207");
    expect_error(kInput + "[output]\ndir = \"\"\n" + kModel, "output.dir", 4, 7,
                 "must not be empty");
    Config c = parse(kInput + "[output]\ndir = \"o\"\nspill_mb = 0\n" + kModel);
    BOOST_TEST(c.spill_mb == 0);
}

BOOST_AUTO_TEST_CASE(empty_slides_and_empty_entry) {
    expect_error("[input]\nslides = []\n" + kOutput + kModel, "input.slides", 2, 10,
                 "at least one");
    expect_error("[input]\nslides = [\"\"]\n" + kOutput + kModel, "input.slides[0]", 2, 11,
                 "must not be empty");
}

// ---------------------------------------------------------------------------------------------
// Cross-key checks

BOOST_AUTO_TEST_CASE(overlap_must_be_smaller_than_patch_size) {
    expect_error(kMinimal + "[tiling]\npatch_size = 64\noverlap = 64\n", "tiling.overlap", 10, 11,
                 "must be smaller than tiling.patch_size (64), got 64");
    // The default overlap (64) against a small patch: reported at patch_size.
    expect_error(kMinimal + "[tiling]\npatch_size = 32\n", "tiling.overlap", 9, 14,
                 "must be smaller than tiling.patch_size (32)");
    BOOST_TEST(parse(kMinimal + "[tiling]\npatch_size = 64\noverlap = 63\n").overlap == 63);
}

BOOST_AUTO_TEST_CASE(mpp_and_level_are_exclusive) {
    expect_error(kMinimal + "[tiling]\nmpp = 0.5\nlevel = 1\n", "tiling.level", 10, 9,
                 "set either tiling.mpp or tiling.level, not both");
}

BOOST_AUTO_TEST_CASE(max_in_flight_must_hold_a_batch) {
    ConfigError e = error_of(kMinimal + "batch_size = 32\n[runtime]\nmax_in_flight = 16\n");
    expect_error(e, "runtime.max_in_flight", 10, 17,
                 "16 is smaller than models[0].batch_size (32)");
    BOOST_TEST(contains(e.what(), "could never fill a batch"));
    // Default max_in_flight (256) against a large batch: reported at the batch size.
    expect_error(kMinimal + "batch_size = 512\n", "runtime.max_in_flight", 8, 14,
                 "256 is smaller than models[0].batch_size (512)");
    BOOST_TEST(parse(kMinimal + "batch_size = 16\n[runtime]\nmax_in_flight = 16\n")
                   .max_in_flight == 16);
}

BOOST_AUTO_TEST_CASE(several_model_entries) {
    std::string two = kMinimal + "\n[[models]]\nname = \"n\"\npath = \"n.pt\"\ntask = \"detection\"\n";
    const Config c = parse(two);
    BOOST_REQUIRE_EQUAL(c.models.size(), 2u);
    BOOST_TEST(c.models[1].name == "n");
    BOOST_TEST((c.models[1].task == Task::detection));
    std::string same = kMinimal + "[[models]]\nname = \"m\"\npath = \"n.pt\"\n";
    expect_error(same, "models[1].name", 9, 8, "duplicate model name 'm'");
    // Entries after the first are still checked for typos.
    expect_error(kMinimal + "[[models]]\nnme = \"n\"\n", "models[1].nme", 9, 7, "unknown key");
}

// ---------------------------------------------------------------------------------------------
// Overrides

BOOST_AUTO_TEST_CASE(override_value_types) {
    Config c = parse(kMinimal, {"tiling.patch_size=256", "tiling.mpp=0.5", "runtime.device=cuda:1",
                                "output.compression=\"none\"", "models.0.mean=[1, 2, 3]",
                                "output.spill_mb = 7", "models[0].precision=fp16"});
    BOOST_TEST(c.patch_size == 256);
    BOOST_TEST(c.mpp.value_or(0) == 0.5);
    BOOST_TEST(c.device == "cuda:1");  // not valid TOML: taken as a bare string
    BOOST_TEST((c.compression == flowinfer::Compression::none));
    BOOST_TEST(c.models[0].mean == (std::vector<float>{1, 2, 3}), boost::test_tools::per_element());
    BOOST_TEST(c.spill_mb == 7);
    BOOST_TEST((c.models[0].precision == flowinfer::Precision::fp16));

    c = parse(kMinimal, {"input.slides=[\"/x/a.svs\", \"b.svs\"]", "output.dir=elsewhere/out"});
    std::vector<std::string> slides{kBase + "/b.svs", "/x/a.svs"};
    BOOST_TEST(c.slides == slides, boost::test_tools::per_element());
    BOOST_TEST(c.output_dir == kBase + "/elsewhere/out");
}

BOOST_AUTO_TEST_CASE(override_model_keys_both_syntaxes) {
    Config c = parse(kMinimal, {"models.0.batch_size=4", "models[0].blend=weighted"});
    BOOST_TEST(c.models[0].batch_size == 4);
    BOOST_TEST((c.models[0].blend == flowinfer::Blend::weighted));
    c = parse(kMinimal, {"models[0].batch_size=4", "models.0.blend=weighted"});
    BOOST_TEST(c.models[0].batch_size == 4);
    BOOST_TEST((c.models[0].blend == flowinfer::Blend::weighted));
}

BOOST_AUTO_TEST_CASE(override_creates_missing_tables_and_keys) {
    Config c = parse(kMinimal, {"tiling.level=3", "runtime.readers=2"});
    BOOST_TEST(c.level.value_or(-1) == 3);
    BOOST_TEST(c.readers == 2);
    // Required keys may come from the command line alone, a model included.
    c = parse("", {"input.slides=[\"a.svs\"]", "output.dir=o", "models.0.name=m",
                   "models.0.path=m.pt"});
    BOOST_TEST(c.slides.at(0) == kBase + "/a.svs");
    BOOST_TEST(c.models.at(0).name == "m");
    BOOST_TEST(c.models.at(0).path == kBase + "/m.pt");
    // Later overrides win.
    BOOST_TEST(parse(kMinimal, {"runtime.readers=2", "runtime.readers=5"}).readers == 5);
}

BOOST_AUTO_TEST_CASE(overrides_are_validated_like_the_file) {
    ConfigError e = error_of(kMinimal, {"tiling.patch_size=abc"});
    expect_error(e, "tiling.patch_size", 0, 0, "expected an integer, got string");
    BOOST_TEST(contains(e.what(), "--set"));

    e = error_of(kMinimal + "[tiling]\npatch_size = 512\n", {"tiling.patch_size=4"});
    expect_error(e, "tiling.patch_size", 0, 0, "between 16 and 8192");

    e = error_of(kMinimal, {"models.0.batch_size=512", "runtime.max_in_flight=8"});
    expect_error(e, "runtime.max_in_flight", 0, 0, "8 is smaller than models[0].batch_size (512)");

    e = error_of(kMinimal, {"tiling.level=1", "tiling.mpp=0.5"});
    expect_error(e, "tiling.level", 0, 0, "not both");

    e = error_of(kMinimal, {"input.slides=[\"nothing-here-*.svs\"]"});
    expect_error(e, "input.slides", 0, 0, "pattern 'nothing-here-*.svs' matches no file");
}

BOOST_AUTO_TEST_CASE(override_errors) {
    ConfigError e = error_of(kMinimal, {"tiling.overlapp=3"});
    expect_error(e, "tiling.overlapp", 0, 0, "--set");
    e = error_of(kMinimal, {"models.0.bach_size=3"});
    expect_error(e, "models.0.bach_size", 0, 0, "unknown key given with --set");
    e = error_of(kMinimal, {"colour=red"});
    expect_error(e, "colour", 0, 0, "unknown key given with --set");
    e = error_of(kMinimal, {"tiling=3"});
    expect_error(e, "tiling", 0, 0, "unknown key given with --set");
    e = error_of(kMinimal, {"models[x].name=3"});
    expect_error(e, "models[x].name", 0, 0, "unknown key given with --set");

    e = error_of(kMinimal, {"tiling.patch_size"});
    expect_error(e, "", 0, 0, "--set 'tiling.patch_size': expected dotted.key=value");
    e = error_of(kMinimal, {"=3"});
    expect_error(e, "", 0, 0, "the key is empty");

    e = error_of(kMinimal, {"models.2.name=x"});
    expect_error(e, "models[2]", 0, 0, "only 1 [[models]] entries");

    // A section that the file defines as something else cannot be descended into.
    e = error_of("tiling = 1\n" + kMinimal, {"tiling.mpp=1"});
    expect_error(e, "tiling", 1, 10, "expected a table, got integer");
}

BOOST_AUTO_TEST_CASE(override_appending_a_second_model) {
    const Config c = parse(kMinimal, {"models.1.name=n", "models.1.path=n.pt", "models.1.task=classification"});
    BOOST_REQUIRE_EQUAL(c.models.size(), 2u);
    BOOST_TEST((c.models[1].task == Task::classification));
}

// ---------------------------------------------------------------------------------------------
// Task-specific and per-model keys

BOOST_AUTO_TEST_CASE(detection_keys) {
    const std::string det = kInput + kOutput +
                            "[[models]]\nname = \"d\"\npath = \"d.pt\"\ntask = \"detection\"\n"
                            "detection_format = \"yolov8\"\nconf_threshold = 0.4\niou_threshold = 0.6\n"
                            "max_detections = 50\nclass_agnostic = true\n"
                            "classes = [\"nucleus\", {name = \"mitosis\", color = [255, 0, 0]}]\n";
    const Config c = parse(det);
    const ModelConfig& m = c.models.at(0);
    BOOST_TEST((m.task == Task::detection));
    BOOST_TEST((m.detection_format == DetectionFormat::yolov8));
    BOOST_TEST(m.conf_threshold == 0.4f);
    BOOST_TEST(m.iou_threshold == 0.6f);
    BOOST_TEST(m.max_detections == 50);
    BOOST_TEST(m.class_agnostic);
    BOOST_REQUIRE_EQUAL(m.classes.size(), 2u);
    BOOST_TEST(m.classes[0].name == "nucleus");
    BOOST_TEST(!m.classes[0].color.has_value());
    BOOST_TEST(m.classes[1].name == "mitosis");
    BOOST_TEST(int((*m.classes[1].color)[0]) == 255);
    BOOST_TEST(std::string(to_string(DetectionFormat::yolov5)) == "yolov5");
    // Each detection key is refused on another task, naming the key and the task.
    expect_error(kMinimal + "conf_threshold = 0.5\n", "models[0].conf_threshold", 8, 18,
                 "applies to task detection only");
    const std::string det_min = kInput + kOutput +
                                "[[models]]\nname = \"d\"\npath = \"d.pt\"\ntask = \"detection\"\n";  // 8 lines
    expect_error(det + "activation = \"softmax\"\n", "models[0].activation", 15, 14,
                 "does not apply to task detection");
    expect_error(det + "blend = \"weighted\"\n", "models[0].blend", 15, 9, "applies to task segmentation only");
    expect_error(det_min + "iou_threshold = 1.5\n", "models[0].iou_threshold", 9, 17, "between 0 and 1");
    expect_error(det_min + "detection_format = \"ssd\"\n", "models[0].detection_format", 9, 20,
                 "must be one of: boxes, yolov8, yolov5");
    expect_error(kMinimal + "classes = [{name = \"a\", colour = [1, 2, 3]}]\n",
                 "models[0].classes[0].colour", 8, 34, "unknown key");
    expect_error(kMinimal + "classes = [{name = \"a\", color = [1, 2, 300]}]\n",
                 "models[0].classes[0].color[2]", 8, 40, "between 0 and 255");
}

BOOST_AUTO_TEST_CASE(embedding_keys) {
    const std::string emb = kInput + kOutput +
                            "[[models]]\nname = \"e\"\npath = \"e.pt\"\ntask = \"embedding\"\n";  // 8 lines
    const Config c = parse(emb);
    BOOST_TEST((c.models.at(0).task == Task::embedding));
    BOOST_TEST((c.models[0].embedding_dtype == EmbeddingDtype::float32));
    // Features are written as the model returns them.
    BOOST_TEST((c.models[0].activation == Activation::none));
    BOOST_TEST((parse(emb + "embedding_dtype = \"float16\"\n").models[0].embedding_dtype == EmbeddingDtype::float16));
    BOOST_TEST((parse(emb, {"models.0.embedding_dtype=float16"}).models[0].embedding_dtype == EmbeddingDtype::float16));
    BOOST_TEST(std::string(to_string(Task::embedding)) == "embedding");
    BOOST_TEST(std::string(to_string(EmbeddingDtype::float16)) == "float16");
    expect_error(emb + "embedding_dtype = \"bfloat16\"\n", "models[0].embedding_dtype", 9, 19,
                 "must be one of: float32, float16 (got 'bfloat16')");
    expect_error(kMinimal + "embedding_dtype = \"float16\"\n", "models[0].embedding_dtype", 8, 19,
                 "applies to task embedding only");
    expect_error(emb + "activation = \"softmax\"\n", "models[0].activation", 9, 14,
                 "does not apply to task embedding");
    expect_error(emb + "classes = [\"a\"]\n", "models[0].classes", 9, 11, "does not apply to task embedding");
    expect_error(emb + "conf_threshold = 0.5\n", "models[0].conf_threshold", 9, 18, "applies to task detection only");
    expect_error(emb + "blend = \"average\"\n", "models[0].blend", 9, 9, "applies to task segmentation only");
}

BOOST_AUTO_TEST_CASE(input_channels_output_and_layout_keys) {
    // channels: three names or indices into R, G, B; mean and std follow the channels.
    BOOST_TEST(parse(kMinimal).models[0].channels == (std::vector<int>{0, 1, 2}), boost::test_tools::per_element());
    Config c = parse(kMinimal + "channels = \"bgr\"\n");
    BOOST_TEST(c.models[0].channels == (std::vector<int>{2, 1, 0}), boost::test_tools::per_element());
    BOOST_TEST(c.models[0].mean == (std::vector<float>{0.406f, 0.456f, 0.485f}), boost::test_tools::per_element());
    c = parse(kMinimal + "channels = [1]\n");
    BOOST_TEST(c.models[0].channels == std::vector<int>{1}, boost::test_tools::per_element());
    BOOST_TEST(c.models[0].std == std::vector<float>{0.224f}, boost::test_tools::per_element());
    c = parse(kMinimal + "channels = \"gray\"\nmean = [0.5]\nstd = [0.25]\n");
    BOOST_TEST(c.models[0].channels == std::vector<int>{kLuma}, boost::test_tools::per_element());
    BOOST_TEST(c.models[0].mean == std::vector<float>{0.5f}, boost::test_tools::per_element());
    BOOST_TEST(parse(kMinimal, {"models.0.channels=[0, 2]", "models.0.mean=[0, 0]", "models.0.std=[1, 1]"})
                   .models[0].channels == (std::vector<int>{0, 2}), boost::test_tools::per_element());
    BOOST_TEST(channels_name({kLuma}) == "\"gray\"");
    BOOST_TEST(channels_name({2}) == "[2]");
    expect_error(kMinimal + "channels = [3]\n", "models[0].channels[0]", 8, 13, "between 0 and 2");
    expect_error(kMinimal + "channels = \"grey\"\n", "models[0].channels", 8, 12, "must be \"rgb\", \"bgr\", \"gray\"");
    expect_error(kMinimal + "channels = []\n", "models[0].channels", 8, 12, "must list 1 to 16 channels");
    expect_error(kMinimal + "channels = \"gray\"\n", "models[0].channels", 8, 12,
                 "\"gray\" has no default mean and std: set both (models[0].mean, models[0].std)");
    expect_error(kMinimal + "channels = \"gray\"\nmean = [0.5, 0.5, 0.5]\nstd = [1]\n", "models[0].mean", 9, 8,
                 "has 3 values for 1 input channel(s) (channels = \"gray\"): one value per channel");
    expect_error(kMinimal + "std = [0.2]\n", "models[0].std", 8, 7,
                 "has 1 values for 3 input channel(s) (channels = \"rgb\", the default)");
    // output: an index or a key; output_layout: segmentation maps only.
    c = parse(kMinimal + "output = 1\n");
    BOOST_TEST(*c.models[0].output.index == 1);
    BOOST_TEST(output_name(c.models[0].output) == "[1]");
    c = parse(kMinimal + "output = \"seg\"\noutput_layout = \"nhwc\"\n");
    BOOST_TEST(*c.models[0].output.key == "seg");
    BOOST_TEST((c.models[0].output_layout == OutputLayout::nhwc));
    BOOST_TEST(output_name(parse(kMinimal).models[0].output) == "the first tensor");
    expect_error(kMinimal + "output = -1\n", "models[0].output", 8, 10, "between 0 and");
    expect_error(kMinimal + "output = \"\"\n", "models[0].output", 8, 10, "must not be empty");
    expect_error(kMinimal + "output = 1.5\n", "models[0].output", 8, 10, "expected an index (integer) or a dict key (string)");
    expect_error(kMinimal + "output_layout = \"hwc\"\n", "models[0].output_layout", 8, 17, "must be one of: nchw, nhwc");
    expect_error(kMinimal + "task = \"classification\"\noutput_layout = \"nhwc\"\n", "models[0].output_layout", 9, 17,
                 "applies to task segmentation only");
}

BOOST_AUTO_TEST_CASE(per_model_tiling_and_device) {
    const Config c = parse(kMinimal + "patch_size = 224\noverlap = 0\nmpp = 1.0\ndevice = \"cuda:1\"\n"
                                      "[tiling]\npatch_size = 512\noverlap = 64\nlevel = 1\n"
                                      "tissue = true\ntissue_threshold = 0.2\n");
    const ModelConfig& m = c.models.at(0);
    BOOST_TEST(*m.device == "cuda:1");
    const Tiling t = tiling_for(c, m);
    BOOST_TEST(t.patch_size == 224);
    BOOST_TEST(t.overlap == 0);
    BOOST_TEST(*t.mpp == 1.0);
    BOOST_TEST(!t.level.has_value());  // the model's mpp replaces the config's level
    BOOST_TEST(c.tissue);
    BOOST_TEST(c.tissue_threshold == 0.2);
    ModelConfig plain;
    const Tiling d = tiling_for(c, plain);
    BOOST_TEST(d.patch_size == 512);
    BOOST_TEST(*d.level == 1);
    expect_error(kMinimal + "patch_size = 64\noverlap = 64\n", "models[0].overlap", 9, 11,
                 "must be smaller than its patch_size (64)");
    expect_error(kMinimal + "mpp = 0.5\nlevel = 1\n", "models[0].level", 9, 9, "not both");
    expect_error(kMinimal + "device = \"gpu\"\n", "models[0].device", 8, 10, "cuda:N");
    expect_error(kMinimal + "[tiling]\ntissue = 1\n", "tiling.tissue", 9, 10, "expected a boolean");
    expect_error(kMinimal + "[tiling]\ntissue_threshold = 2\n", "tiling.tissue_threshold", 9, 20,
                 "between 0 and 1");
}
