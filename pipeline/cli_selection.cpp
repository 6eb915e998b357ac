// What part of the work a `flowinfer run` takes: its shard of the slide list (--shard, a Slurm job
// array) and its region of each slide (--region).
#include "pipeline/cli_support.hpp"

#include <fmt/format.h>

#include <cstdlib>

namespace flowinfer::cli {

namespace {

// A count or index from the command line or the environment: plain decimal digits only, so
// "2x", "-1", " 3" and "" are errors rather than being read as a prefix or as 0.
std::optional<int> parse_index(const std::string& text) {
    if (text.empty() || text.size() > 9 || text.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    return std::stoi(text);
}

}  // namespace

Shard parse_shard(const std::string& text) {
    const std::size_t slash = text.find('/');
    const std::optional<int> i = slash == std::string::npos ? std::nullopt : parse_index(text.substr(0, slash));
    const std::optional<int> n = slash == std::string::npos ? std::nullopt : parse_index(text.substr(slash + 1));
    if (!i || !n) throw Usage(fmt::format("--shard '{}': expected I/N with whole numbers, e.g. --shard 2/8", text));
    if (*n < 1 || *i < 1 || *i > *n)
        throw Usage(fmt::format("--shard '{}': needs 1 <= I <= N (shards are numbered from 1)", text));
    return Shard{*i, *n};
}

// A Slurm job array's task as a shard. SLURM_ARRAY_TASK_MIN makes any first index work
// (--array=0-7 as well as 1-8) and SLURM_ARRAY_TASK_STEP any step (1-15:2); N is
// SLURM_ARRAY_TASK_COUNT, or derived from MIN, MAX and STEP. `from` receives the variables
// used, for messages. Anything that does not give 1 <= I <= N is a usage error: guessing would
// process some slides twice and others never.
std::optional<Shard> shard_from_slurm(std::string& from) {
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
    return Shard{i, n};
}

std::string region_value(const std::string& text) {
    std::vector<std::string> parts;
    std::size_t at = 0;
    for (std::size_t comma; (comma = text.find(',', at)) != std::string::npos; at = comma + 1)
        parts.push_back(text.substr(at, comma - at));
    parts.push_back(text.substr(at));
    for (const std::string& p : parts) {
        char* end = nullptr;
        std::strtod(p.c_str(), &end);
        if (parts.size() != 4 || p.empty() || end != p.c_str() + p.size())
            throw Usage(fmt::format("--region: expected X,Y,W,H in level-0 pixels, got '{}'", text));
    }
    return fmt::format("[{}, {}, {}, {}]", parts[0], parts[1], parts[2], parts[3]);
}

}  // namespace flowinfer::cli
