// flowinfer inspect MODEL: what flowinfer knows about a model without a slide. The file (archive
// format version, extra files), the model keys it says about itself (WSInfer's config.json,
// flowinfer.json) and the ones in effect, whether this LibTorch loads it (and which operator it
// lacks when not), what one all-zero patch gives for a few channel counts and sizes, and which
// tasks that output fits.
#include "pipeline/cli_support.hpp"

#include "stages/model.hpp"
#include "stages/model_file.hpp"
#include "stages/output_shape.hpp"
#include "stages/sha256.hpp"

#include <flowinfer/config.hpp>
#include <flowinfer/errors.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>

namespace fs = std::filesystem;

namespace flowinfer::cli {

namespace {

std::string values(const std::vector<float>& v) {
    std::string s;
    for (float x : v) s += (s.empty() ? "" : ", ") + fmt::format("{}", x);
    return "[" + s + "]";
}

std::string resolution(const ModelConfig& m) {
    if (m.mpp) return fmt::format("mpp {}", *m.mpp);
    if (m.level) return fmt::format("level {}", *m.level);
    return "[tiling]'s mpp or level";
}

// What the task would make of `shape` (a batch of one patch of `size`).
std::string task_verdict(const ModelConfig& m, Task task, const std::vector<std::int64_t>& shape, int size) {
    try {
        check_output_shape(m.name, task, shape, 1, size, size);
    } catch (const ModelError& e) {
        const std::string what = e.what();
        const std::string prefix = fmt::format("model '{}': ", m.name);
        return "no: " + (what.rfind(prefix, 0) == 0 ? what.substr(prefix.size()) : what);
    }
    switch (task) {
        case Task::segmentation:
            return fmt::format("yes: {} class map(s) at 1/{} of the patch", shape[1], size / shape[2]);
        case Task::classification: return fmt::format("yes: {} class scores", shape[1]);
        case Task::detection: return fmt::format("yes: [{} x {}] per patch (see detection_format)", shape[1], shape[2]);
        case Task::embedding: return fmt::format("yes: D = {}", shape[1]);
    }
    return "?";
}

}  // namespace

int cmd_inspect(const std::string& path, const std::vector<std::string>& settings, std::vector<int> sizes) {
    const ModelConfig m = load_model_entry(path, settings);
    std::printf("model        %s\n", m.path.c_str());
    std::error_code ec;
    const auto bytes = fs::file_size(m.path, ec);
    const ModelFileInfo file = read_model_file(m.path);
    if (file.archive)
        std::printf("file         %s, TorchScript archive of file format version %lld (LibTorch %s reads up to %lld)\n",
                    bytes >= 1000000 ? fmt::format("{:.1f} MB", bytes / 1e6).c_str()
                                     : fmt::format("{:.1f} kB", bytes / 1e3).c_str(),
                    static_cast<long long>(file.format_version), libtorch_version().c_str(),
                    static_cast<long long>(file.max_format_version));
    else
        std::printf("file         %s\n", ec ? ec.message().c_str() : ("not a TorchScript archive: " + file.not_archive_why).c_str());
    if (!ec) std::printf("sha256       %s\n", sha256_file_cached(m.path).c_str());
    std::string extras;
    for (const std::string& e : file.extra_files) extras += (extras.empty() ? "" : ", ") + e;
    if (!extras.empty()) std::printf("extra files  %s\n", extras.c_str());
    std::printf("metadata     %s\n", m.metadata.empty() ? "none (pipeline.toml's keys and the defaults)" : m.metadata.c_str());
    if (file.flowinfer_json && m.metadata == m.path + ":" + kModelMetadataFile) {
        std::string text = *file.flowinfer_json;
        std::replace(text.begin(), text.end(), '\n', ' ');
        std::printf("             %s\n", text.c_str());
    }
    std::printf("model keys   task %s, channels %s, mean %s, std %s, activation %s, output %s, output_layout %s\n",
                to_string(m.task), channels_name(m.channels).c_str(), values(m.mean).c_str(), values(m.std).c_str(),
                to_string(m.activation), output_name(m.output).c_str(), to_string(m.output_layout));
    const int patch = m.patch_size.value_or(Tiling{}.patch_size);
    std::printf("tiling       patch %d%s, %s%s\n", patch, m.patch_size ? "" : " ([tiling]'s default)", resolution(m).c_str(),
                m.overlap ? fmt::format(", overlap {}", *m.overlap).c_str() : "");
    if (!m.classes.empty()) {
        std::string names;
        for (const ClassSpec& c : m.classes) names += (names.empty() ? "" : ", ") + c.name;
        std::printf("classes      %s\n", names.c_str());
    }

    std::unique_ptr<Model> model;
    try {
        model = std::make_unique<Model>(m, "cpu", 0, 1);
    } catch (const ModelError& e) {
        std::printf("load         FAILED: %s\n", e.what());
        return 1;
    }
    std::printf("load         ok (LibTorch %s, cpu, fp32)\n", libtorch_version().c_str());

    // The channel count the config gives first, then grey-level and RGB; the configured size
    // first, then common ones.
    std::vector<int> channel_counts = {static_cast<int>(m.channels.size())};
    for (int c : {1, 3})
        if (std::find(channel_counts.begin(), channel_counts.end(), c) == channel_counts.end()) channel_counts.push_back(c);
    sizes.insert(sizes.begin(), patch);
    for (int s : {224, 256, 512}) sizes.push_back(s);
    std::vector<int> unique_sizes;
    for (int s : sizes)
        if (std::find(unique_sizes.begin(), unique_sizes.end(), s) == unique_sizes.end()) unique_sizes.push_back(s);
    std::printf("probe        one all-zero patch (batch 1): forward's result, and the tensor output selects\n");
    TrialRun configured;
    for (int c : channel_counts)
        for (int s : unique_sizes) {
            const TrialRun t = model->trial(c, s);
            if (c == channel_counts.front() && s == patch) configured = t;
            std::printf("  %d channel%s %5d px  %s\n", c, c == 1 ? " " : "s", s,
                        t.ok ? fmt::format("{} -> {}", t.result, shape_string(t.selected)).c_str()
                             : ("error: " + t.error).c_str());
        }
    if (!configured.ok) {
        std::printf("tasks        none: the configured input (%zu channel(s), %d px) fails\n", m.channels.size(), patch);
        return 1;
    }
    std::printf("tasks        for %s at %d px:\n", shape_string(configured.selected).c_str(), patch);
    for (Task t : {Task::segmentation, Task::classification, Task::detection, Task::embedding})
        std::printf("  %-15s %s%s\n", to_string(t), task_verdict(m, t, configured.selected, patch).c_str(),
                    t == m.task ? "   <- task" : "");
    const std::string verdict = task_verdict(m, m.task, configured.selected, patch);
    return verdict.rfind("yes", 0) == 0 ? 0 : 1;
}

}  // namespace flowinfer::cli
