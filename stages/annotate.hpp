// annotate stage: what is made from a slide's finished files: each segmentation map's
// contours (<model>.geojson, QuPath annotations) and the overlay preview (preview.png, and
// its thumbnail for report.html). Runs after write, so it reads only complete files.
// An OutputError (a file that cannot be written or read back) is thrown on: it stops the run.
//
// Thread safety: operator() is const and may run concurrently for different slides.
#pragma once

#include "stages/messages.hpp"
#include "stages/stage_stats.hpp"

#include <flowinfer/config.hpp>

namespace flowinfer {

class AnnotateStage {
public:
    // channels[m]: model m's output channels C (its probe).
    AnnotateStage(const Config& cfg, std::vector<int> channels, StageCounter& counter)
        : cfg_(&cfg), channels_(std::move(channels)), counter_(&counter) {}
    SlideResult operator()(FinishedSlide&& in) const;

private:
    std::size_t model_of(const OutputInfo& o) const;  // its index in cfg.models; models.size() if none
    void contours(const SlideContext& ctx, SlideResult& r) const;
    void preview(const SlideContext& ctx, SlideResult& r) const;
    const Config* cfg_;
    std::vector<int> channels_;
    StageCounter* counter_;
};

// Boxes of a detection CSV (x1, y1, x2, y2, score, class): at most `limit`, the
// highest-scoring first. Throws OutputError naming the file.
struct CsvBox {
    double x1, y1, x2, y2, score;
    int cls;
};
std::vector<CsvBox> read_detection_csv(const std::string& path, std::size_t limit);

}  // namespace flowinfer
