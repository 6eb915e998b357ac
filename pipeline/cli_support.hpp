// Pieces of the flowinfer command line (pipeline/cli.cpp) with a job of their own: which shard
// of the slide list and which region of each slide this process takes, and stopping a run cleanly on SIGINT / SIGTERM.
//
// Thread safety: parse_shard and shard_from_slurm are reentrant (the latter reads the
// environment); one StopOnSignals may exist at a time, in the main thread.
#pragma once

#include <flowinfer/demo.hpp>
#include <flowinfer/pipeline.hpp>

#include <CLI/CLI.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace flowinfer::cli {

// A usage error: the CLI prints it with a pointer to --help and exits 2.
struct Usage : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// "--shard I/N" as given on the command line. Throws Usage.
Shard parse_shard(const std::string& text);

// A Slurm job array's task as a shard, or nullopt when no SLURM_ARRAY_* variable is set. `from`
// receives the variables used, for messages. Throws Usage for anything that does not give
// 1 <= I <= N.
std::optional<Shard> shard_from_slurm(std::string& from);

// "--region X,Y,W,H" as input.region's TOML value "[X, Y, W, H]"; the bounds are the config
// reader's to check. Throws Usage when it is not four numbers.
std::string region_value(const std::string& text);

// SIGINT / SIGTERM during a run. The first one stops the run cleanly: no new patches, the
// graph cancelled, temporaries removed, summary.json written with the unfinished slides
// "interrupted". A second signal means "now": the process exits at once with 128 + signal.
class StopOnSignals {
public:
    explicit StopOnSignals(RunStop& stop);
    // The handlers stay: a signal from here to the exit still stops at once.
    ~StopOnSignals();
    StopOnSignals(const StopOnSignals&) = delete;
    StopOnSignals& operator=(const StopOnSignals&) = delete;

    int signal() const;  // the first signal received, or 0

private:
    int read_fd_ = -1, write_fd_ = -1;
    std::thread watcher_;
};

// flowinfer inspect MODEL (pipeline/cli_inspect.cpp): prints what flowinfer knows about the model
// file or WSInfer model directory at `path`, with `settings` ("key=value" model keys); extra
// probe `sizes`. Returns 0 when the model loads and its configured input fits its task, else 1.
// Throws ConfigError (bad settings, bad metadata).
int cmd_inspect(const std::string& path, const std::vector<std::string>& settings, std::vector<int> sizes);

// flowinfer synth (pipeline/cli_synth.cpp).
struct SynthArgs {
    std::string out;
    flowinfer::SyntheticSlideSpec spec;
    std::string format = "tiff";
    int tile = 512;
};
CLI::App* add_synth(CLI::App& app, SynthArgs& a);
int cmd_synth(const SynthArgs& a);

}  // namespace flowinfer::cli
