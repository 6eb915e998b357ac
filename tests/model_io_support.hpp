// What the model-io tests share: a pipeline.toml written and loaded as a user's file is (so
// models' own keys apply), demo models with chosen metadata, outputs by model name.
#pragma once

#include "tests/test_support.hpp"

#include <flowinfer/config.hpp>
#include <flowinfer/demo.hpp>
#include <flowinfer/errors.hpp>
#include <flowinfer/pipeline.hpp>

#include <fmt/format.h>

#include <string>
#include <utility>
#include <vector>

namespace fit {

using namespace flowinfer;

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

struct ModelFixture {
    TempDir dir;
    std::string model(DemoModel kind) { return demo_model(dir, kind); }
    // The model saved with its own flowinfer.json ("" for none), as `name`.
    std::string model_with(const std::string& name, DemoModel kind, const std::string& json) {
        const std::string path = dir / name;
        write_demo_model(path, kind, 0.0f, json);
        return path;
    }
    // pipeline.toml with one [[models]] entry per element of `entries` (TOML lines each), on
    // `slide`, patch 256 without overlap, loaded as a user's file is.
    Config config(const std::string& slide, const std::vector<std::string>& entries, const std::string& extra = "") {
        std::string text = fmt::format("[input]\nslides = [\"{}\"]\n[output]\ndir = \"{}\"\n[tiling]\npatch_size = 256\n"
                                       "overlap = 0\n[runtime]\nreaders = 2\nmax_in_flight = 32\ntorch_threads = 1\n{}",
                                       slide, dir / "out", extra);
        for (const std::string& e : entries) text += "[[models]]\n" + e + "\n";
        write_text(dir / "pipeline.toml", text);
        return load_config(dir / "pipeline.toml");
    }
    std::string map_of(const RunSummary& s, const std::string& model) {
        BOOST_REQUIRE_MESSAGE(s.slides.at(0).ok(), s.slides.at(0).error);
        for (const OutputInfo& o : s.slides[0].outputs)
            if (o.model == model && o.format == "tiff") return o.path;
        BOOST_FAIL("no map for " << model);
        return "";
    }
};

// ConfigError's key and message from running `cfg`.
inline std::pair<std::string, std::string> config_error_of(const Config& cfg) {
    try {
        run(cfg);
    } catch (const ConfigError& e) {
        return {e.key(), e.what()};
    }
    BOOST_ERROR("no ConfigError");
    return {};
}

}  // namespace fit
