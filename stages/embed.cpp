#include "stages/embed.hpp"

#include "stages/hdf5/feature_writer.hpp"
#include "stages/sha256.hpp"

#include <flowinfer/errors.hpp>

#include <fmt/format.h>

#include <cmath>
#include <filesystem>

namespace fs = std::filesystem;

namespace flowinfer {

void RowOrder::put(std::uint64_t seq, bool has_row, std::int64_t x, std::int64_t y, const float* features, int dim,
                   FeatureRows& ready) {
    const auto emit = [&](std::int64_t rx, std::int64_t ry, const float* f, int d) {
        if (ready.xy.empty()) ready.first = rows_;
        ++rows_;
        ready.xy.push_back(rx);
        ready.xy.push_back(ry);
        ready.values.insert(ready.values.end(), f, f + d);
    };
    if (seq != next_) {
        Row& r = waiting_[seq];
        r.has_row = has_row;
        r.x = x;
        r.y = y;
        if (has_row) r.features.assign(features, features + dim);
        peak_ = std::max(peak_, waiting_.size());
        return;
    }
    if (has_row) emit(x, y, features, dim);
    ++next_;
    for (auto it = waiting_.begin(); it != waiting_.end() && it->first == next_; it = waiting_.erase(it), ++next_)
        if (it->second.has_row) emit(it->second.x, it->second.y, it->second.features.data(), dim);
}

double magnification_of_mpp(double mpp) {
    if (!(mpp > 0)) return 0;
    constexpr std::pair<double, double> kBuckets[] = {{0.16, 80}, {0.2, 60}, {0.3, 40}, {0.6, 20}, {1.2, 10}, {2.4, 5}};
    for (const auto& [below, mag] : kBuckets)
        if (mpp < below) return mag;
    return 10.0 / mpp;
}

Embed::Embed(const Config& cfg, int model, int dim, StageCounter& counter)
    : cfg_(&cfg), model_(model), dim_(dim), counter_(&counter) {
    const ModelConfig& m = cfg.models[static_cast<std::size_t>(model)];
    try {
        model_sha256_ = sha256_file_cached(m.path);
    } catch (const Error& e) {
        throw ModelError(m.name, fmt::format("cannot hash the model file for the features files: {}", e.what()));
    }
}

void Embed::start_slide(SlideContext& ctx, const SlidePlan& plan) const {
    const ModelConfig& model = cfg_->models[static_cast<std::size_t>(model_)];
    ModelSlide& ms = ctx.models[static_cast<std::size_t>(model_)];
    const Slide& slide = *ctx.slide;

    hdf5::CoordsAttributes a;
    a.patch_size = plan.patch_size;
    a.patch_size_level0 = std::llround(plan.patch_size * plan.downsample());
    // Scanners record the objective too, but it says what the optics were, not what the pixels
    // are (a 40x scan saved at 0.5 µm/px); the MPP does, and TRIDENT uses it first as well.
    const double mpp0 = slide.mpp();
    a.level0_magnification = mpp0 > 0 ? magnification_of_mpp(mpp0) : slide.objective_power();
    a.target_magnification = a.level0_magnification / plan.downsample();
    // 40 / 3 is not worth 16 digits; whole magnifications stay whole.
    a.target_magnification = std::round(a.target_magnification * 1e6) / 1e6;
    a.overlap = plan.overlap;
    a.level0_width = slide.level_width(0);
    a.level0_height = slide.level_height(0);
    a.name = fs::path(ctx.job.path).stem().string();
    a.mpp = plan.mpp;
    a.level = plan.level;
    a.downsample = plan.downsample();
    a.model = model.name;
    a.model_sha256 = model_sha256_;
    a.flowinfer_version = FLOWINFER_VERSION;

    OutputInfo h5;
    h5.model = model.name;
    h5.kind = to_string(model.task);
    h5.format = "hdf5";
    h5.path = ctx.is_image() ? image_output_path(*cfg_, ctx, model.name, ".h5")
                             : (slide_output_dir(*cfg_, ctx) / (model.name + ".h5")).string();
    h5.dim = dim_;
    ms.features = std::make_unique<hdf5::FeatureWriter>(h5.path, dim_, model.embedding_dtype, a,
                                                        static_cast<std::int64_t>(plan.count()));
    ms.outputs = {h5};
    ms.embed = std::make_unique<EmbedState>();
}

SinkOut Embed::operator()(const InferResult& r) const {
    return run_sink(r, *counter_, [&](SlideContext& ctx, ModelSlide& ms, const SlidePlan& plan, int n, SinkOut& out) {
        const Batch& batch = *r.batch;
        if (!ms.embed) start_slide(ctx, plan);
        const bool ran = r.out.n == n;  // not for a placeholder, nor a batch of unreadable patches
        if (ran && r.out.c != dim_)
            throw ModelError(cfg_->models[static_cast<std::size_t>(model_)].name,
                             fmt::format("output has {} features per patch; it had {} at start-up", r.out.c, dim_));
        const double ds = plan.downsample();
        WriteMsg rows;
        rows.kind = WriteMsg::features;
        for (int i = 0; i < n; ++i) {
            const PatchKey& k = batch.keys[static_cast<std::size_t>(i)];
            const bool has_row = ran && !batch.unreadable[static_cast<std::size_t>(i)];
            ms.embed->order.put(k.seq, has_row, std::llround(k.x * ds), std::llround(k.y * ds),
                                has_row ? r.out.data.data() + static_cast<std::size_t>(i) * dim_ : nullptr, dim_,
                                rows.feature_rows);
        }
        if (rows.feature_rows.size() > 0) out.messages.push_back(std::move(rows));
    });
}

}  // namespace flowinfer
