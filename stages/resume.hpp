// Resume records: <output.dir>/<slide stem>/.flowinfer-done.json, written as the last step of
// a slide that ends ok, after every output is under its final name. It holds a key, the
// SHA-256 of everything that decides the slide's outputs:
// - the settings that change output bytes (resume_settings(): tiling, tissue, models' keys,
//   output compression...; not thread counts, readers, max_in_flight, batch sizes or device
//   indices, which change speed only);
// - every model file's bytes (SHA-256, hashed once per run);
// - the slide file's identity: path, size and modification time (stat only; see below);
// - flowinfer's version;
// and the list of outputs with their sizes. A slide is complete when the record parses, its
// key equals this run's and every listed output exists with its recorded size.
//
// The slide's identity comes from stat(), not from its content: deciding to skip a slide must
// not read it (thousands of multi-GB slides on a network file system), and a slide replaced by
// a scanner or a copy gets a new size or mtime. A file rewritten in place with the same size
// and an mtime set back by hand would pass; --force covers that.
//
// Thread safety: RunFingerprint is immutable after construction (share it read-only); the
// functions are reentrant; concurrent calls must use different slides.
#pragma once

#include <flowinfer/config.hpp>
#include <flowinfer/pipeline.hpp>

#include "stages/atomic_file.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace flowinfer {

struct SlideIdentity {
    std::string path;
    std::int64_t size = 0;
    std::int64_t mtime_ns = 0;  // st_mtim, in ns since the epoch
    bool operator==(const SlideIdentity& o) const {
        return path == o.path && size == o.size && mtime_ns == o.mtime_ns;
    }
};

// The slide's identity from stat(); std::nullopt when it cannot be stat'ed (the slide is then
// processed, and fails with the reason).
std::optional<SlideIdentity> identify_slide(const std::string& path);

struct ModelDigest {
    std::string name;    // models[].name
    std::string sha256;  // of the file's bytes
};

// The settings text hashed into every key: one "key=value" line per setting that changes a
// slide's output bytes, with defaults resolved (a model's tiling, precision and device kind).
std::string resume_settings(const Config& cfg);

// What every slide of one run shares.
class RunFingerprint {
public:
    // Hashes each model file once (two models of one file share the digest). Throws ModelError
    // naming the model and file when a file cannot be read.
    explicit RunFingerprint(const Config& cfg);

    const std::string& version() const { return version_; }
    const std::string& settings_sha256() const { return settings_sha256_; }
    const std::vector<ModelDigest>& models() const { return models_; }
    // The key of one slide: SHA-256 over the version, the settings, the model digests and the
    // slide's identity.
    std::string key(const SlideIdentity& slide) const;

private:
    std::string version_;
    std::string settings_sha256_;
    std::vector<ModelDigest> models_;
};

// <output.dir>/<slide stem>/.flowinfer-done.json
std::string done_record_path(const Config& cfg, const std::string& slide);
// An image's (input.images): <output.dir>/.flowinfer-done/<its relative path>.json. The
// record also keeps the image's rows of the run-wide <model>.csv, which each run writes
// whole from its images' rows, those it skips included.
std::string image_record_path(const Config& cfg, const std::string& relative);

// A record as read back.
struct DoneRecord {
    std::string key;
    std::string version;
    std::string settings_sha256;
    std::vector<ModelDigest> models;
    SlideIdentity slide;
    std::int64_t patches = 0, patches_skipped = 0, patches_unreadable = 0;
    struct Output {
        OutputInfo info;  // path: absolute (the record keeps it relative to its directory)
        std::int64_t size = 0;
    };
    std::vector<Output> outputs;
    std::vector<SlideResult::TableRows> table_rows;  // an image's rows of the run's tables
};

// Whether a slide may be skipped, and why (not).
struct ResumeCheck {
    bool complete = false;
    // complete: "outputs complete (resume)"; else what did not match ("model 'x' file changed",
    // "output missing: x.tif"); empty when there is no record at all.
    std::string reason;
    std::optional<DoneRecord> record;  // complete: the record
};

// Reads the record at `record_path` and compares it with this run. `slide` is the slide's
// identity now (std::nullopt: it cannot be stat'ed, so not complete). Never throws: an
// unreadable or malformed record is "not complete".
ResumeCheck check_done(const std::string& record_path, const RunFingerprint& run,
                       const std::optional<SlideIdentity>& slide);

// Writes the record of a slide that ended ok, atomically (stages/atomic_file.hpp); the sizes
// are stat'ed from the outputs now under their final names. Throws OutputError.
void write_done_record(const std::string& record_path, const RunFingerprint& run,
                       const SlideIdentity& slide, const SlideResult& result, Sync sync = Sync::now);

// Removes a record before its slide is processed again, so that a redo cut short never leaves
// a record beside outputs it does not describe. A missing record is fine; any other failure
// throws OutputError (processing the slide would leave the stale record behind).
void remove_done_record(const std::string& record_path);

}  // namespace flowinfer
