#include "stages/detect.hpp"

#include "stages/classify.hpp"
#include "stages/object_writer.hpp"
#include "stages/stitch.hpp"

#include <flowinfer/errors.hpp>

#include <filesystem>

namespace fs = std::filesystem;

namespace flowinfer {

Detect::Detect(const Config& cfg, int model, StageCounter& counter)
    : cfg_(&cfg), model_(model), counter_(&counter) {
    const ModelConfig& m = cfg.models[static_cast<std::size_t>(model)];
    params_.format = m.detection_format;
    params_.conf_threshold = m.conf_threshold;
    params_.iou_threshold = m.iou_threshold;
    params_.max_detections = m.max_detections;
    params_.class_agnostic = m.class_agnostic;
}

void Detect::start_slide(SlideContext& ctx, const SlidePlan& plan) const {
    const ModelConfig& model = cfg_->models[static_cast<std::size_t>(model_)];
    ModelSlide& ms = ctx.models[static_cast<std::size_t>(model_)];
    std::vector<ClassInfo> classes;
    const auto palette = label_palette(model.classes);
    for (std::size_t c = 0; c < model.classes.size() && c < 256; ++c)
        classes.push_back(ClassInfo{model.classes[c].name, palette[3 * c], palette[3 * c + 1], palette[3 * c + 2]});
    OutputInfo geojson, csv;
    geojson.model = csv.model = model.name;
    geojson.kind = csv.kind = to_string(model.task);
    geojson.format = "geojson";
    csv.format = "csv";
    const std::vector<std::string> header{"x1", "y1", "x2", "y2", "score", "class"};
    if (ctx.is_image()) {  // a GeoJSON per image; the rows go to the run's <model>.csv
        geojson.path = image_output_path(*cfg_, ctx, model.name, ".geojson");
        ms.table_header = table_header(header);
        ms.outputs = {geojson};
    } else {
        const fs::path dir = slide_output_dir(*cfg_, ctx);
        geojson.path = (dir / (model.name + ".geojson")).string();
        csv.path = (dir / (model.name + ".csv")).string();
        ms.outputs = {geojson, csv};
    }
    ms.objects = std::make_unique<ObjectWriter>(geojson.path, csv.path, "detection", classes, header);
    ms.measurement_names = {"score"};
    auto st = std::make_unique<DetectState>(DetectState{ObjectMerger(params_.iou_threshold, params_.class_agnostic), {}, 0});
    st->seen.assign(plan.count(), false);
    ms.detect = std::move(st);
}

void Detect::add_rows(const std::vector<SlideObject>& objects, std::vector<WriteMsg>& messages) {
    if (objects.empty()) return;
    WriteMsg m;
    m.kind = WriteMsg::objects;
    for (const SlideObject& o : objects) {
        ObjectRow r;
        r.x1 = o.x1;
        r.y1 = o.y1;
        r.x2 = o.x2;
        r.y2 = o.y2;
        r.cls = o.cls;
        r.measurements = {o.score};
        r.csv = {o.x1, o.y1, o.x2, o.y2, o.score, double(o.cls)};
        m.rows.push_back(std::move(r));
    }
    messages.push_back(std::move(m));
}

SinkOut Detect::operator()(const InferResult& r) const {
    return run_sink(r, *counter_, [&](SlideContext& ctx, ModelSlide& ms, const SlidePlan& plan, int n, SinkOut& out) {
        const Batch& batch = *r.batch;
        if (!ms.detect) start_slide(ctx, plan);
        DetectState& st = *ms.detect;
        const std::string& name = cfg_->models[static_cast<std::size_t>(model_)].name;
        const double ds = plan.downsample();
        for (int i = 0; i < n; ++i) {
            const PatchKey& k = batch.keys[static_cast<std::size_t>(i)];
            st.seen[k.seq] = true;
            // A placeholder, or an unreadable patch: nothing ran, no objects.
            if (r.out.n != n || batch.unreadable[static_cast<std::size_t>(i)]) continue;
            const std::int64_t d1 = r.out.shape.at(1), d2 = r.out.shape.at(2);
            PatchPlacement place;
            place.ox = k.x * ds;
            place.oy = k.y * ds;
            place.scale = ds;
            place.width = place.height = plan.patch_size;
            place.edge_left = k.x == 0;
            place.edge_top = k.y == 0;
            place.edge_right = k.x + plan.patch_size >= plan.grid_width;
            place.edge_bottom = k.y + plan.patch_size >= plan.grid_height;
            st.merger.add_patch(place, decode_patch(name, r.out.data.data() + static_cast<std::size_t>(i) * d1 * d2,
                                                    d1, d2, params_));
        }
        while (st.watermark < st.seen.size() && st.seen[st.watermark]) ++st.watermark;
        if (st.watermark == st.seen.size()) add_rows(st.merger.finish(), out.messages);
        else add_rows(st.merger.flush_above(plan.section_top(st.watermark)), out.messages);
    });
}

}  // namespace flowinfer
