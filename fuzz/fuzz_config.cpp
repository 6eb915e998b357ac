// libFuzzer target: the config loader (include/flowinfer/config.hpp).
//
// Input: TOML text, optionally followed by a line "#--set" and then one --set override per
// line ("tiling.overlap=32"). parse_config() (and, for inputs whose first byte is odd,
// load_config() on the same text written to a file) must either return a Config that keeps
// the documented invariants or throw flowinfer::Error (ConfigError). Any other exception, a
// crash or a sanitizer report is a bug.
//
// Paths resolve against a scratch directory holding a few files, so that globs in
// input.slides can match something.

#include <flowinfer/config.hpp>
#include <flowinfer/errors.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

namespace {

namespace fs = std::filesystem;

[[noreturn]] void bug(const char* what) {
    std::fprintf(stderr, "fuzz_config: invariant violated: %s\n", what);
    std::abort();
}

struct Sandbox {
    fs::path dir;
    fs::path file;  // load_config's input
    Sandbox() {
        std::string templ = (fs::temp_directory_path() / "flowinfer-fuzz-config-XXXXXX").string();
        if (!mkdtemp(templ.data())) bug("cannot create the scratch directory");
        dir = templ;
        fs::create_directories(dir / "slides" / "sub");
        for (const char* name : {"slides/a.svs", "slides/b.tiff", "slides/sub/c.svs", "model.pt"})
            std::ofstream(dir / name) << "x";
        file = dir / "fuzz.toml";
    }
    ~Sandbox() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
};

Sandbox& sandbox() {
    static Sandbox s;
    return s;
}

// A glob that leaves the scratch directory ('..' or an absolute path) makes glob() walk the
// machine's file system: slow and not the loader's logic. Such inputs are skipped.
bool walks_the_file_system(std::string_view text) {
    if (text.find_first_of("*?[") == std::string_view::npos) return false;
    if (text.find("../") != std::string_view::npos || text.find("/..") != std::string_view::npos)
        return true;
    for (std::string_view start : {"\"/", "'/", "=/", "= /", "\\u", "\\U"})
        if (text.find(start) != std::string_view::npos) return true;
    return false;
}

void check(const flowinfer::Config& cfg) {
    if (cfg.slides.empty()) bug("no slides");
    for (const std::string& s : cfg.slides)
        if (s.empty() || s.front() != '/') bug("slide path not absolute");
    if (cfg.output_dir.empty() || cfg.output_dir.front() != '/') bug("output.dir not absolute");
    if (cfg.models.empty()) bug("no models");
    if (cfg.deflate_level < 1 || cfg.deflate_level > 9) bug("deflate_level");
    if (cfg.spill_mb < 0 || cfg.spill_mb > (INT64_MAX >> 20)) bug("spill_mb");
    if (cfg.patch_size < 16 || cfg.patch_size > 8192) bug("patch_size");
    if (cfg.overlap < 0 || cfg.overlap >= cfg.patch_size) bug("overlap");
    if (cfg.mpp && cfg.level) bug("mpp and level");
    if (cfg.mpp && !(*cfg.mpp > 0)) bug("mpp");
    if (cfg.sections < 1 || cfg.subsections < 1) bug("sections");
    if (!(cfg.tissue_threshold >= 0 && cfg.tissue_threshold <= 1)) bug("tissue_threshold");
    if (cfg.readers < 1 || cfg.max_in_flight < 1 || cfg.threads < 0 || cfg.torch_threads < 0 ||
        cfg.infer_slots < 0)
        bug("runtime");
    for (std::size_t i = 0; i < cfg.models.size(); ++i) {
        const flowinfer::ModelConfig& m = cfg.models[i];
        if (m.name.empty() || m.path.empty()) bug("model name/path");
        for (std::size_t j = 0; j < i; ++j)
            if (cfg.models[j].name == m.name) bug("duplicate model name");
        if (m.batch_size < 1 || m.batch_size > cfg.max_in_flight) bug("batch_size");
        if (m.channels.empty() || m.channels.size() > 16) bug("channels");
        for (int ch : m.channels)
            if (ch != flowinfer::kLuma && (ch < 0 || ch > 2)) bug("channel index");
        if (m.mean.size() != m.channels.size() || m.std.size() != m.channels.size()) bug("mean/std size");
        if (m.output.index && (*m.output.index < 0 || m.output.key)) bug("output");
        if (m.output.key && m.output.key->empty()) bug("output key");
        for (float s : m.std)  // a divisor in normalization: 0 or subnormal gives inf/NaN
            if (!(s >= std::numeric_limits<float>::min())) bug("std");
        const flowinfer::Tiling t = flowinfer::tiling_for(cfg, m);
        if (t.patch_size < 16 || t.overlap < 0 || t.overlap >= t.patch_size) bug("model tiling");
        if (!(m.conf_threshold >= 0 && m.conf_threshold <= 1)) bug("conf_threshold");
        if (!(m.iou_threshold >= 0 && m.iou_threshold <= 1)) bug("iou_threshold");
        if (m.max_detections < 1) bug("max_detections");
        if (std::string_view(flowinfer::to_string(m.task)) == "?") bug("task");
        if (m.precision && std::string_view(flowinfer::to_string(*m.precision)) == "?")
            bug("precision");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size > 64 * 1024) return 0;  // the loader's cost is linear; big inputs only slow the search
    std::string text(reinterpret_cast<const char*>(data), size);
    if (walks_the_file_system(text)) return 0;

    std::vector<std::string> overrides;
    static constexpr std::string_view marker = "\n#--set\n";
    if (auto at = text.find(marker); at != std::string::npos) {
        std::string rest = text.substr(at + marker.size());
        text.resize(at);
        std::size_t start = 0;
        while (start <= rest.size() && overrides.size() < 16) {
            std::size_t nl = rest.find('\n', start);
            overrides.push_back(rest.substr(start, nl == std::string::npos ? nl : nl - start));
            if (nl == std::string::npos) break;
            start = nl + 1;
        }
    }

    Sandbox& box = sandbox();
    try {
        flowinfer::Config cfg = flowinfer::parse_config(text, "fuzz.toml", box.dir.string(), overrides);
        check(cfg);
    } catch (const flowinfer::Error& e) {
        if (std::string_view(e.what()).empty()) bug("empty error message");
    }
    // Anything else escapes and libFuzzer reports it (an uncaught exception aborts).

    if (size > 0 && (data[0] & 1)) {
        {
            std::ofstream out(box.file, std::ios::binary | std::ios::trunc);
            out << text;
        }
        try {
            flowinfer::Config cfg = flowinfer::load_config(box.file.string(), overrides);
            check(cfg);
            if (cfg.source != box.file.string()) bug("source");
        } catch (const flowinfer::Error& e) {
            if (std::string_view(e.what()).empty()) bug("empty error message");
        }
    }
    return 0;
}
