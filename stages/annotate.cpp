#include "stages/annotate.hpp"

#include "stages/contours.hpp"
#include "stages/overview.hpp"
#include "stages/preview.hpp"
#include "stages/stitch.hpp"

#include <flowinfer/errors.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace flowinfer {

namespace {

// The preview is about this many pixels on its long side (the overview's level gives 512..1024).
constexpr std::int64_t kPreviewLongSide = 1024;
// Beyond this many boxes a preview is a carpet of outlines: the best-scoring ones tell more.
constexpr std::size_t kPreviewMaxBoxes = 20000;


}  // namespace

std::vector<CsvBox> read_detection_csv(const std::string& path, std::size_t limit) {
    std::ifstream in(path);
    if (!in) throw OutputError(path, "cannot read the detections back for the preview");
    std::string line;
    std::getline(in, line);  // header
    std::vector<CsvBox> boxes;
    std::size_t row = 1;
    while (std::getline(in, line)) {
        ++row;
        if (line.empty()) continue;
        for (char& ch : line)
            if (ch == ',') ch = ' ';
        std::istringstream fields(line);
        CsvBox b{};
        double cls = 0;
        if (!(fields >> b.x1 >> b.y1 >> b.x2 >> b.y2 >> b.score >> cls))
            throw OutputError(path, fmt::format("row {} is not x1, y1, x2, y2, score, class", row));
        b.cls = static_cast<int>(cls);
        boxes.push_back(b);
    }
    if (boxes.size() > limit) {
        std::nth_element(boxes.begin(), boxes.begin() + static_cast<std::ptrdiff_t>(limit), boxes.end(),
                         [](const CsvBox& a, const CsvBox& b) { return a.score > b.score; });
        boxes.resize(limit);
    }
    return boxes;
}

std::size_t AnnotateStage::model_of(const OutputInfo& o) const {
    return static_cast<std::size_t>(
        std::find_if(cfg_->models.begin(), cfg_->models.end(), [&](const ModelConfig& mc) { return mc.name == o.model; }) -
        cfg_->models.begin());
}

void AnnotateStage::contours(const SlideContext& ctx, SlideResult& r) const {
    const double mpp = ctx.slide ? ctx.slide->mpp() : 0.0;
    std::vector<OutputInfo> added;
    for (const OutputInfo& o : r.outputs) {
        if (o.format != "tiff" || o.kind != "segmentation") continue;
        const std::size_t m = model_of(o);
        if (m == cfg_->models.size() || !cfg_->models[m].contours) continue;
        OutputInfo g;
        g.model = o.model;
        g.kind = o.kind;
        g.format = "geojson";
        g.path = std::filesystem::path(o.path).replace_extension(".geojson").string();
        const ContourStats st = write_contours(o.path, g.path, o.downsample, mpp, channels_[m], cfg_->models[m]);
        g.objects = st.features;
        g.downsample = st.downsample;
        for (const std::string& w : st.warnings) r.warnings.push_back(w);
        added.push_back(std::move(g));
    }
    r.outputs.insert(r.outputs.end(), added.begin(), added.end());
}

void AnnotateStage::preview(const SlideContext& ctx, SlideResult& r) const {
    if (!ctx.slide) return;
    Overview view = read_overview(*ctx.slide, kPreviewLongSide, kPreviewLongSide);
    std::vector<PreviewMap> maps;
    std::vector<PreviewBox> boxes;
    for (const OutputInfo& o : r.outputs) {
        const std::size_t m = model_of(o);
        if (m == cfg_->models.size()) continue;
        const int channels = channels_[m];
        const std::vector<std::uint8_t> palette = label_palette(cfg_->models[m].classes);
        if (o.format == "tiff") {
            PreviewMap pm;
            pm.path = o.path;
            pm.downsample = o.downsample;
            // A classification heatmap of p(class 1) is a ramp; a label map (either task) is classes.
            pm.kind = o.kind == "classification" && channels <= 2 ? PreviewMap::heat : PreviewMap::classes;
            for (int c = 0; c < std::max(2, channels); ++c) pm.colors.push_back(label_color(palette, c));
            maps.push_back(std::move(pm));
        } else if (o.kind == "detection" && o.format == "csv") {
            for (const CsvBox& b : read_detection_csv(o.path, kPreviewMaxBoxes))
                boxes.push_back({b.x1, b.y1, b.x2, b.y2, label_color(palette, b.cls)});
        }
    }
    RgbImage thumb;
    thumb.width = static_cast<int>(view.width);
    thumb.height = static_cast<int>(view.height);
    thumb.rgb = std::move(view.rgb);
    const RgbImage img = compose_preview(std::move(thumb), view.downsample, maps, boxes);
    OutputInfo p;
    p.kind = "preview";
    p.format = "png";
    p.path = (std::filesystem::path(cfg_->output_dir) / std::filesystem::path(r.path).stem() / "preview.png").string();
    p.width = img.width;
    p.height = img.height;
    p.downsample = view.downsample;
    write_png(p.path, img);
    r.thumbnail = thumbnail_data_uri(img);
    r.outputs.push_back(std::move(p));
}

SlideResult AnnotateStage::operator()(FinishedSlide&& in) const {
    BusyScope busy(*counter_);
    SlideResult r = std::move(in.result);
    // An image's mask is its own preview, and a patch's outline says little: both are for slides.
    if (!r.ok() || in.ctx->is_image()) return r;
    const auto t0 = std::chrono::steady_clock::now();
    contours(*in.ctx, r);
    try {
        if (cfg_->previews) preview(*in.ctx, r);
    } catch (const SlideError& e) {
        // The slide could be read for its patches but not for its overview: its files stand,
        // the preview is missing, and the slide says why.
        r.warnings.push_back(fmt::format("no preview: {}", e.what()));
    }
    r.wall_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
}

}  // namespace flowinfer
