#include "stages/classify.hpp"

#include "stages/object_writer.hpp"
#include "stages/stitch.hpp"

#include <flowinfer/errors.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

namespace fs = std::filesystem;

namespace flowinfer {

namespace {
constexpr int T = kOutputTile;
// OpenSlide 3.4.1 with libtiff 4.5 misreads TIFF levels under 16 pixels on a side.
constexpr std::int64_t kMinReadableSide = 16;
}

std::string class_name(const std::vector<ClassSpec>& classes, int i) {
    return i >= 0 && static_cast<std::size_t>(i) < classes.size() ? classes[static_cast<std::size_t>(i)].name
                                                                   : fmt::format("class {}", i);
}

void Classify::start_slide(SlideContext& ctx, const SlidePlan& plan) const {
    const ModelConfig& model = cfg_->models[static_cast<std::size_t>(model_)];
    ModelSlide& ms = ctx.models[static_cast<std::size_t>(model_)];
    auto st = std::make_unique<ClassifyState>();
    st->heat.assign(plan.grid_count(), 0);
    const std::int64_t shortest = static_cast<std::int64_t>(std::min(plan.xs.size(), plan.ys.size()));
    st->zoom = static_cast<int>(shortest >= kMinReadableSide ? 1 : (kMinReadableSide + shortest - 1) / shortest);
    const int stride = plan.patch_size - plan.overlap;

    std::vector<ClassInfo> classes;
    std::vector<std::string> header = {"x", "y", "w", "h"};
    for (int c = 0; c < channels_; ++c) {
        ClassInfo ci;
        ci.name = class_name(model.classes, c);
        const auto palette = label_palette(model.classes);
        ci.r = palette[3 * c];
        ci.g = palette[3 * c + 1];
        ci.b = palette[3 * c + 2];
        classes.push_back(ci);
        header.push_back(ci.name);
        ms.measurement_names.push_back(ci.name);
    }
    if (ctx.is_image()) {  // rows of the run's <model>.csv only: no heatmap of a few patches
        ms.table_header = table_header(header);
        ms.classify = std::move(st);
        return;
    }
    const fs::path dir = slide_output_dir(*cfg_, ctx);
    OutputInfo map;
    map.model = model.name;
    map.kind = to_string(model.task);
    map.format = "tiff";
    map.path = (dir / (model.name + ".tif")).string();
    map.width = static_cast<std::int64_t>(plan.xs.size()) * st->zoom;
    map.height = static_cast<std::int64_t>(plan.ys.size()) * st->zoom;
    map.downsample = stride * plan.downsample() / st->zoom;
    TiffLayout layout;
    layout.width = map.width;
    layout.height = map.height;
    layout.tile = T;
    layout.compression = cfg_->compression;
    layout.deflate_level = cfg_->deflate_level;
    layout.mpp = plan.mpp > 0 ? plan.mpp * stride / st->zoom : 0.0;
    layout.spill_bytes = cfg_->spill_mb << 20;
    if (channels_ > 2) layout.palette_rgb = label_palette(model.classes);
    layout.description = fmt::format("flowinfer {} model={} task=classification classes={} value={} "
                                     "pixel=one patch (stride {} px at level {})",
                                     FLOWINFER_VERSION, model.name, channels_,
                                     channels_ > 2 ? "argmax" : (channels_ == 2 ? "round(255*p1)" : "round(255*p0)"),
                                     stride, plan.level);
    ms.tiff = std::make_unique<PyramidTiffWriter>(map.path, std::move(layout));

    OutputInfo geojson = map, csv = map;
    geojson.format = "geojson";
    geojson.path = (dir / (model.name + ".geojson")).string();
    csv.format = "csv";
    csv.path = (dir / (model.name + ".csv")).string();
    for (OutputInfo* o : {&geojson, &csv}) o->width = o->height = 0, o->downsample = 1.0;
    ms.objects = std::make_unique<ObjectWriter>(geojson.path, csv.path, "tile", classes, header);
    ms.outputs = {map, geojson, csv};
    ms.classify = std::move(st);
}

void Classify::heatmap_tiles(const ClassifyState& st, const SlidePlan& plan,
                             std::vector<WriteMsg>& messages) const {
    const std::int64_t cols = static_cast<std::int64_t>(plan.xs.size());
    const std::int64_t w = cols * st.zoom, h = static_cast<std::int64_t>(plan.ys.size()) * st.zoom;
    for (std::int64_t ty = 0; ty * T < h; ++ty) {
        for (std::int64_t tx = 0; tx * T < w; ++tx) {
            WriteMsg m;
            m.kind = WriteMsg::tile;
            m.tx = tx;
            m.ty = ty;
            m.pixels.assign(static_cast<std::size_t>(T) * T, 0);
            for (std::int64_t y = ty * T; y < std::min(h, (ty + 1) * T); ++y)
                for (std::int64_t x = tx * T; x < std::min(w, (tx + 1) * T); ++x)
                    m.pixels[static_cast<std::size_t>((y - ty * T) * T + (x - tx * T))] =
                        st.heat[static_cast<std::size_t>((y / st.zoom) * cols + x / st.zoom)];
            messages.push_back(std::move(m));
        }
    }
}

SinkOut Classify::operator()(const InferResult& r) const {
    return run_sink(r, *counter_, [&](SlideContext& ctx, ModelSlide& ms, const SlidePlan& plan, int n, SinkOut& out) {
        const Batch& batch = *r.batch;
        if (!ms.classify) start_slide(ctx, plan);
        if (r.out.n == n) {
            if (r.out.c != channels_)
                throw ModelError(cfg_->models[static_cast<std::size_t>(model_)].name,
                                 fmt::format("output has {} classes; it had {} at start-up", r.out.c, channels_));
            WriteMsg rows;
            rows.kind = WriteMsg::objects;
            const double ds = plan.downsample(), side = plan.patch_size * ds;
            for (int i = 0; i < n; ++i) {
                if (batch.unreadable[static_cast<std::size_t>(i)]) continue;  // no row; its heatmap pixel stays 0
                const PatchKey& k = batch.keys[static_cast<std::size_t>(i)];
                const float* p = r.out.data.data() + static_cast<std::size_t>(i) * channels_;
                const std::size_t col = std::lower_bound(plan.xs.begin(), plan.xs.end(), k.x) - plan.xs.begin();
                const std::size_t row = std::lower_bound(plan.ys.begin(), plan.ys.end(), k.y) - plan.ys.begin();
                const int acc = channels_ > 2 ? channels_ : 1;
                ms.classify->heat[row * plan.xs.size() + col] = map_value(channels_ == 2 ? p + 1 : p, acc, 1);
                ObjectRow o;
                o.x1 = k.x * ds;
                o.y1 = k.y * ds;
                o.x2 = o.x1 + side;
                o.y2 = o.y1 + side;
                o.cls = static_cast<int>(std::max_element(p, p + channels_) - p);
                o.measurements.assign(p, p + channels_);
                o.csv = {o.x1, o.y1, side, side};
                o.csv.insert(o.csv.end(), p, p + channels_);
                rows.rows.push_back(std::move(o));
            }
            out.messages.push_back(std::move(rows));
        }
        if (!ctx.is_image() && ms.consumed + static_cast<std::uint64_t>(n) == plan.count()) heatmap_tiles(*ms.classify, plan, out.messages);
    });
}

}  // namespace flowinfer
