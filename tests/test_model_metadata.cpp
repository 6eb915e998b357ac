// What models say about themselves: WSInfer model directories (config.json), self-describing
// TorchScript files (flowinfer.json) and the precedence pipeline.toml > model file > defaults,
// `flowinfer inspect`, and the errors of each.
#define BOOST_TEST_MODULE test_model_metadata
#include <boost/test/unit_test.hpp>

#include "tests/model_io_support.hpp"

#include <flowinfer/config.hpp>
#include <flowinfer/demo.hpp>
#include <flowinfer/errors.hpp>
#include <flowinfer/pipeline.hpp>

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;
using namespace flowinfer;
using fit::contains;

namespace {

const std::string kCli = FLOWINFER_CLI;

// WSInfer's breast-tumor model config, as its zoo publishes it, but read at CMU-1's own
// resolution without a resize so a test can recompute the outputs from OpenSlide's pixels.
const char* const kWsinferConfig = R"({
    "spec_version": "1.0",
    "architecture": "resnet34",
    "num_classes": 2,
    "class_names": ["Other", "Tumor"],
    "patch_size_pixels": 224,
    "spacing_um_px": 0.499,
    "transform": [
        {"name": "ToTensor"},
        {"name": "Normalize", "arguments": {"mean": [0.7238, 0.5716, 0.6779], "std": [0.112, 0.1459, 0.1089]}}
    ]
})";

struct Fixture : fit::ModelFixture {
    // A WSInfer model directory: config.json and torchscript_model.pt, the patch classifier
    // ([1 - m, m], m the patch's mean over channels and pixels), saved without flowinfer.json.
    std::string wsinfer_dir(const std::string& name, const std::string& config_json) {
        const fs::path d = fs::path(dir.path()) / name;
        fs::create_directories(d);
        write_demo_model((d / "torchscript_model.pt").string(), DemoModel::patch_classifier, 0.0f, "");
        fit::write_text((d / "config.json").string(), config_json);
        return d.string();
    }
};

std::string replace(std::string text, const std::string& from, const std::string& to) {
    const std::size_t at = text.find(from);
    BOOST_REQUIRE_MESSAGE(at != std::string::npos, from);
    return text.replace(at, from.size(), to);
}

std::vector<std::vector<std::string>> csv_rows(const std::string& path) {
    std::vector<std::vector<std::string>> rows;
    std::istringstream in(fit::read_text(path));
    for (std::string line; std::getline(in, line);) {
        std::vector<std::string> cells;
        std::istringstream l(line);
        for (std::string cell; std::getline(l, cell, ',');) cells.push_back(cell);
        rows.push_back(cells);
    }
    return rows;
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(model_metadata, Fixture)

BOOST_AUTO_TEST_CASE(a_wsinfer_directory_gives_task_resolution_patch_classes_and_normalization) {
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    const std::string d = wsinfer_dir("breast-tumor", kWsinferConfig);
    const Config cfg = config(slide, {fmt::format("name = \"tumor\"\npath = \"{}\"", d)});
    const ModelConfig& m = cfg.models.at(0);
    BOOST_TEST(m.path == d + "/torchscript_model.pt");
    BOOST_TEST(m.metadata == d + "/config.json");
    BOOST_TEST((m.task == Task::classification));
    BOOST_TEST((m.activation == Activation::softmax));  // wsinfer's run_inference, for 2 classes
    BOOST_TEST(*m.patch_size == 224);
    BOOST_TEST(*m.mpp == 0.499);
    BOOST_TEST(*m.overlap == 0);
    BOOST_REQUIRE(m.classes.size() == 2u);
    BOOST_TEST(m.classes[1].name == "Tumor");
    BOOST_TEST(m.mean == (std::vector<float>{0.7238f, 0.5716f, 0.6779f}), boost::test_tools::per_element());

    // Every CSV row's probabilities, recomputed from OpenSlide's pixels at the row's patch:
    // softmax([1 - m, m]) with m the mean over channels of (mean(x)/255 - mean_c) / std_c.
    const RunSummary s = run(cfg);
    BOOST_REQUIRE(s.slides.at(0).ok());
    const auto rows = csv_rows(dir / "out/CMU-1-Small-Region/tumor.csv");
    BOOST_REQUIRE(rows.size() > 1u);
    BOOST_TEST(rows[0] == (std::vector<std::string>{"x", "y", "w", "h", "Other", "Tumor"}), boost::test_tools::per_element());
    BOOST_TEST(rows.size() - 1 == 10u * 14u);  // 2220 x 2967 at 224 px: 10 x 14 patches
    const fit::Image img = fit::read_level(slide, 0);
    double worst = 0;
    for (std::size_t r = 1; r < rows.size(); ++r) {
        const long x = std::stol(rows[r][0]), y = std::stol(rows[r][1]);
        double mm = 0;
        for (int c = 0; c < 3; ++c) {
            double sum = 0;
            for (long yy = y; yy < y + 224; ++yy)
                for (long xx = x; xx < x + 224; ++xx) sum += img.at(xx, yy)[c];
            mm += (sum / (224.0 * 224.0 * 255.0) - m.mean[c]) / m.std[c];
        }
        mm /= 3;
        const double tumor = 1.0 / (1.0 + std::exp((1.0 - mm) - mm));
        worst = std::max(worst, std::abs(std::stod(rows[r][5]) - tumor));
    }
    BOOST_TEST_MESSAGE("worst |p(Tumor) - recomputed| " << worst);
    BOOST_TEST(worst < 2e-5);  // the CSV's 6 significant digits
}

BOOST_AUTO_TEST_CASE(a_wsinfer_resize_is_the_same_field_of_view_read_at_the_resized_size) {
    // The breast-tumor model: 350 px at 0.25 µm/px resized to 224 is 224 px at 0.390625 µm/px.
    std::string json = replace(kWsinferConfig, "\"patch_size_pixels\": 224", "\"patch_size_pixels\": 350");
    json = replace(json, "\"spacing_um_px\": 0.499", "\"spacing_um_px\": 0.25");
    json = replace(json, "{\"name\": \"ToTensor\"}", "{\"name\": \"Resize\", \"arguments\": {\"size\": [224, 224]}}, {\"name\": \"ToTensor\"}");
    const ModelConfig m = load_model_entry(wsinfer_dir("resized", json));
    BOOST_TEST(*m.patch_size == 224);
    BOOST_TEST(*m.mpp == 0.390625);
    // pipeline.toml's keys win: its own normalization and resolution; the rest stays WSInfer's.
    const ModelConfig o = load_model_entry(wsinfer_dir("resized2", json), {"mean=[0, 0, 0]", "std=[1, 1, 1]", "level=0"});
    BOOST_TEST(o.mean == (std::vector<float>{0, 0, 0}), boost::test_tools::per_element());
    BOOST_TEST(!o.mpp.has_value());
    BOOST_TEST(*o.level == 0);
    BOOST_TEST(o.classes.at(0).name == "Other");
}

BOOST_AUTO_TEST_CASE(a_wsinfer_config_flowinfer_cannot_honour_is_an_error_naming_file_and_key) {
    struct Bad {
        std::string json, key, says;
    };
    const Bad bad[] = {
        {replace(kWsinferConfig, "\"ToTensor\"}", "\"ToTensor\"}, {\"name\": \"RandomCrop\", \"arguments\": {\"size\": 200}}"),
         "transform[1].name", "'RandomCrop' is not a transform flowinfer can apply (Resize, ToTensor, Normalize)"},
        {replace(kWsinferConfig, "{\"name\": \"ToTensor\"}", "{\"name\": \"Resize\", \"arguments\": {\"size\": [224, 200]}}, {\"name\": \"ToTensor\"}"),
         "transform[0].arguments.size", "[224,200] is not square"},
        {replace(kWsinferConfig, "{\"name\": \"ToTensor\"}", "{\"name\": \"Resize\", \"arguments\": {\"size\": 224, \"interpolation\": 3}}, {\"name\": \"ToTensor\"}"),
         "transform[0].arguments.interpolation", "an argument flowinfer cannot honour"},
        {replace(kWsinferConfig, "\"spacing_um_px\": 0.499,", ""), "spacing_um_px", "missing"},
        {replace(kWsinferConfig, "[\"Other\", \"Tumor\"]", "[\"Tumor\"]"), "class_names", "has 1 names for num_classes = 2"},
        {replace(kWsinferConfig, "{\"name\": \"ToTensor\"},", ""), "transform[0].name", "'Normalize' in this place"},
        {"{\"spec_version\": ", "", "not valid JSON"},
    };
    for (const Bad& b : bad) {
        const std::string d = wsinfer_dir(fmt::format("bad-{}", &b - bad), b.json);
        try {
            load_model_entry(d);
            BOOST_ERROR("no error for " << b.says);
        } catch (const ConfigError& e) {
            BOOST_TEST(e.file() == d + "/config.json");
            BOOST_TEST(e.key() == b.key);
            BOOST_TEST(contains(e.what(), b.says), e.what());
        }
    }
    // Through the CLI: exit 2, naming the file.
    const std::string cfg = dir / "pipeline.toml";
    fit::write_text(cfg, fmt::format("[input]\nslides = [\"{}\"]\n[output]\ndir = \"{}\"\n[[models]]\nname = \"m\"\npath = \"{}\"\n",
                                     fit::shared_slide("small.svs"), dir / "out", dir / "bad-0"));
    const fit::CmdResult r = fit::run_cmd(kCli + " run " + cfg + " --quiet");
    BOOST_TEST(r.exit_code == 2);
    BOOST_TEST(contains(r.output, dir / "bad-0/config.json: key 'transform[1].name'"), r.output);
    // A directory that is not a WSInfer model: its path key, in pipeline.toml.
    fs::create_directories(dir / "empty");
    try {
        config(fit::shared_slide("small.svs"), {fmt::format("name = \"m\"\npath = \"{}\"", dir / "empty")});
        BOOST_ERROR("no error");
    } catch (const ConfigError& e) {
        BOOST_TEST(e.key() == "models[0].path");
        BOOST_TEST(contains(e.what(), "without config.json"), e.what());
    }
}

BOOST_AUTO_TEST_CASE(pipeline_toml_wins_over_the_model_file_which_wins_over_the_defaults) {
    const std::string m = model_with("self.pt", DemoModel::patch_classifier,
                                     R"({"task": "classification", "classes": ["benign", "tumor"], "mean": [0, 0, 0],
                                         "std": [1, 1, 1], "activation": "none", "patch_size": 128, "mpp": 0.998})");
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    ModelConfig c = config(slide, {fmt::format("name = \"m\"\npath = \"{}\"", m)}).models.at(0);
    BOOST_TEST((c.task == Task::classification));
    BOOST_TEST(c.classes.at(1).name == "tumor");
    BOOST_TEST((c.activation == Activation::none));
    BOOST_TEST(*c.patch_size == 128);
    BOOST_TEST(*c.mpp == 0.998);
    BOOST_TEST(c.batch_size == 8);  // not the file's to say: the default
    // pipeline.toml sets activation and a level: the file's mpp goes with it (mpp and level are
    // one choice), the rest stays the file's.
    c = config(slide, {fmt::format("name = \"m\"\npath = \"{}\"\nactivation = \"softmax\"\nlevel = 0", m)}).models.at(0);
    BOOST_TEST((c.activation == Activation::softmax));
    BOOST_TEST(!c.mpp.has_value());
    BOOST_TEST(c.classes.at(0).name == "benign");
    // --set is pipeline.toml too.
    Config o = load_config(dir / "pipeline.toml", {"models.0.patch_size=64"});
    BOOST_TEST(*o.models.at(0).patch_size == 64);
    // Another task in pipeline.toml: the file's keys of its own task are left out.
    c = config(slide, {fmt::format("name = \"m\"\npath = \"{}\"\ntask = \"embedding\"", m)}).models.at(0);
    BOOST_TEST((c.task == Task::embedding));
    BOOST_TEST(c.classes.empty());

    // Bad metadata: named by the file it is in.
    struct Bad {
        std::string json, key, says;
    };
    const Bad bad[] = {{R"({"mean": "x"})", "mean", "expected an array of numbers"},
                       {R"({"name": "x"})", "name", "is not a key a model file may set"},
                       {R"({"channels": "grey"})", "channels", "must be \"rgb\", \"bgr\", \"gray\""},
                       {R"([1, 2])", "", "must be a JSON object"},
                       {R"({"mean": [0, 0, 0)", "", "not valid JSON"}};
    for (const Bad& b : bad) {
        const std::string path = model_with(fmt::format("bad-{}.pt", &b - bad), DemoModel::patch_classifier, b.json);
        try {
            load_model_entry(path);
            BOOST_ERROR("no error for " << b.json);
        } catch (const ConfigError& e) {
            BOOST_TEST(e.file() == path + ":flowinfer.json");
            BOOST_TEST(e.key() == b.key);
            BOOST_TEST(contains(e.what(), b.says), e.what());
        }
    }
}

BOOST_AUTO_TEST_CASE(inspect_says_what_it_knows_without_a_slide) {
    auto r = fit::run_cmd(kCli + " inspect " + model(DemoModel::one_channel));
    BOOST_TEST(r.exit_code == 0, r.output);
    for (const char* part : {"TorchScript archive of file format version", "extra files  flowinfer.json",
                             ":flowinfer.json", "channels \"gray\", mean [0], std [1]", "load         ok",
                             "1 channel    512 px  Tensor [1, 2, 512, 512] -> [1, 2, 512, 512]",
                             "3 channels   224 px  error: ", "to have 1 channels, but got 3 channels",
                             "segmentation    yes: 2 class map(s) at 1/1 of the patch   <- task",
                             "classification  no: output has rank 4"})
        BOOST_TEST(contains(r.output, part), part << "\n" << r.output);
    // A dict output with a key it lacks: the configured input fails, exit 1.
    r = fit::run_cmd(kCli + " inspect " + model(DemoModel::dict_output) + " --set output=nope");
    BOOST_TEST(r.exit_code == 1);
    BOOST_TEST(contains(r.output, "error: output = \"nope\": forward's dict has no such key (it has: aux, seg)"), r.output);
    // A WSInfer directory: its config.json, resolution and classes.
    r = fit::run_cmd(kCli + " inspect " + wsinfer_dir("wsinfer", kWsinferConfig) + " --size 350");
    BOOST_TEST(r.exit_code == 0, r.output);
    for (const char* part : {"config.json", "task classification", "patch 224, mpp 0.499, overlap 0", "classes      Other, Tumor",
                             "3 channels   350 px  Tensor [1, 2]", "classification  yes: 2 class scores   <- task"})
        BOOST_TEST(contains(r.output, part), part << "\n" << r.output);
    // Not a model: what LibTorch says, exit 1; a bad key: exit 2.
    fit::write_text(dir / "notes.pt", "not a model");
    r = fit::run_cmd(kCli + " inspect " + dir / "notes.pt");
    BOOST_TEST(r.exit_code == 1);
    BOOST_TEST(contains(r.output, "not a TorchScript archive"), r.output);
    BOOST_TEST(contains(r.output, "load         FAILED"), r.output);
    r = fit::run_cmd(kCli + " inspect " + model(DemoModel::one_channel) + " --set channels=[5]");
    BOOST_TEST(r.exit_code == 2);
    BOOST_TEST(contains(r.output, "key 'model.channels[0]': must be between 0 and 2"), r.output);
}

BOOST_AUTO_TEST_SUITE_END()
