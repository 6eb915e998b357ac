// embed stage (embedding models): one feature vector [D] per patch, written as
// <output.dir>/<slide stem>/<model>.h5 (stages/hdf5/feature_writer.hpp): `features` [N, D]
// and `coords` [N, 2] (level-0 top-left), one row per patch that ran and was read, in the
// walk's order, so the file is the same for the same inputs whatever the thread timing.
// Batches finish out of order (several infer slots, reads of different speed), so rows wait
// in a RowOrder until every earlier patch has been seen. An unreadable patch
// (on_read_error = "skip") and a slide's placeholder have no row.
//
// Memory: the writer's one chunk (about 1 MB) plus the rows that arrived ahead of an earlier
// patch, which is still in flight: about max_in_flight rows at most.
//
// Thread safety: operator() must run serially (its node has concurrency 1).
#pragma once

#include "stages/messages.hpp"
#include "stages/sink.hpp"
#include "stages/stage_stats.hpp"

#include <flowinfer/config.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace flowinfer {

// Puts rows that arrive in any order back into walk order: put() takes walk position `seq`
// (each of 0 .. count-1 exactly once), with or without a row, and moves every row that is
// now in order to `ready` (whose `first` it sets when `ready` is empty).
class RowOrder {
public:
    void put(std::uint64_t seq, bool has_row, std::int64_t x, std::int64_t y, const float* features, int dim,
             FeatureRows& ready);
    std::uint64_t next() const { return next_; }     // every position before it has been put
    std::int64_t rows() const { return rows_; }      // rows moved to `ready` so far
    std::size_t waiting() const { return waiting_.size(); }
    std::size_t peak_waiting() const { return peak_; }

private:
    struct Row {
        bool has_row = false;
        std::int64_t x = 0, y = 0;
        std::vector<float> features;
    };
    std::uint64_t next_ = 0;
    std::int64_t rows_ = 0;
    std::map<std::uint64_t, Row> waiting_;
    std::size_t peak_ = 0;
};

struct EmbedState {
    RowOrder order;
};

// Magnification from µm per pixel, TRIDENT's rule (its _fetch_magnification), so files
// from both tools agree: below 0.16 µm/px 80x, 0.2 60x, 0.3 40x, 0.6 20x, 1.2 10x, 2.4 5x;
// coarser: 10 / mpp. 0 for an unknown (0) mpp.
double magnification_of_mpp(double mpp);

class Embed {
public:
    // dim: D, the model's features per patch (from its start-up probe). Hashes the model file
    // (sha256_file_cached) for the files' attributes.
    Embed(const Config& cfg, int model, int dim, StageCounter& counter);
    SinkOut operator()(const InferResult& r) const;

private:
    void start_slide(SlideContext& ctx, const SlidePlan& plan) const;

    const Config* cfg_;
    int model_;
    int dim_;
    std::string model_sha256_;
    StageCounter* counter_;
};

}  // namespace flowinfer
