#include "stages/stitch.hpp"

#include <flowinfer/errors.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

namespace fs = std::filesystem;

namespace flowinfer {

namespace {

constexpr int T = kOutputTile;

// Patches (positions `pos`, each `len` long on the output grid) that overlap each tile.
std::vector<int> cover_counts(const std::vector<std::int64_t>& pos, int scale, int len,
                              std::int64_t extent, std::int64_t tiles) {
    std::vector<int> cover(static_cast<std::size_t>(tiles), 0);
    for (std::int64_t p : pos) {
        const std::int64_t lo = p / scale, hi = std::min(extent, lo + len);
        for (std::int64_t t = lo / T; t * T < hi; ++t) ++cover[static_cast<std::size_t>(t)];
    }
    return cover;
}

// Sum of the window over the patches covering each output pixel along one axis.
std::vector<float> axis_weights(const std::vector<std::int64_t>& pos, int scale,
                                const std::vector<float>& window, std::int64_t extent) {
    std::vector<float> sum(static_cast<std::size_t>(extent), 0.0f);
    for (std::int64_t p : pos) {
        const std::int64_t lo = p / scale;
        for (std::size_t i = 0; i < window.size() && lo + std::int64_t(i) < extent; ++i)
            sum[static_cast<std::size_t>(lo) + i] += window[i];
    }
    return sum;
}

std::vector<float> blend_window(Blend blend, int len, int overlap) {
    std::vector<float> w(static_cast<std::size_t>(len), 1.0f);
    if (blend == Blend::weighted) {
        // Ramp from 1/(overlap+1) at the border to 1 once `overlap` pixels in; never 0, so
        // slide-edge pixels covered by one patch only still get a value.
        for (int i = 0; i < len; ++i) {
            const int d = std::min(i, len - 1 - i);
            w[static_cast<std::size_t>(i)] = std::min(1.0f, float(d + 1) / float(overlap + 1));
        }
    }
    return w;
}

std::string slide_stem(const std::string& path) { return fs::path(path).stem().string(); }

}  // namespace

std::vector<std::uint8_t> label_palette() {
    // Distinct colours for the first classes (tab10), then a grey ramp.
    static const std::uint8_t base[10][3] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},
                                             {214, 39, 40},  {148, 103, 189}, {140, 86, 75},
                                             {227, 119, 194}, {127, 127, 127}, {188, 189, 34},
                                             {23, 190, 207}};
    std::vector<std::uint8_t> p(256 * 3);
    for (int i = 0; i < 256; ++i)
        for (int c = 0; c < 3; ++c)
            p[3 * i + c] = i < 10 ? base[i][c] : static_cast<std::uint8_t>(i);
    return p;
}

void Stitch::start_slide(SlideContext& ctx, const ModelOutput& out) const {
    const SlidePlan& plan = ctx.plan;
    const ModelConfig& model = cfg_->models.front();
    auto st = std::make_unique<StitchState>();
    st->scale = plan.patch_size / out.h;
    st->out_patch = out.h;
    st->channels = out.c;
    st->acc_channels = out.c > 2 ? out.c : 1;
    st->width = (plan.grid_width + st->scale - 1) / st->scale;
    st->height = (plan.grid_height + st->scale - 1) / st->scale;
    st->tiles_x = (st->width + T - 1) / T;
    st->tiles_y = (st->height + T - 1) / T;
    st->col_cover = cover_counts(plan.xs, st->scale, st->out_patch, st->width, st->tiles_x);
    st->row_cover = cover_counts(plan.ys, st->scale, st->out_patch, st->height, st->tiles_y);
    st->window = blend_window(model.blend, st->out_patch, plan.overlap / st->scale);
    st->weight_x = axis_weights(plan.xs, st->scale, st->window, st->width);
    st->weight_y = axis_weights(plan.ys, st->scale, st->window, st->height);

    OutputInfo& info = ctx.output;
    info.model = model.name;
    info.kind = to_string(model.task);
    info.width = st->width;
    info.height = st->height;
    info.downsample = plan.downsample() * st->scale;
    info.path = (fs::path(cfg_->output_dir) / slide_stem(ctx.job.path) / (model.name + ".tif")).string();

    TiffLayout layout;
    layout.width = st->width;
    layout.height = st->height;
    layout.channels = 1;
    layout.tile = T;
    layout.compression = cfg_->compression;
    layout.mpp = plan.mpp > 0 ? plan.mpp * st->scale : 0.0;
    layout.spill_bytes = cfg_->spill_mb << 20;
    if (out.c > 2) layout.palette_rgb = label_palette();
    layout.description = fmt::format(
        "flowinfer {} model={} classes={} activation={} value={} downsample={}", FLOWINFER_VERSION,
        model.name, out.c, to_string(model.activation),
        out.c > 2 ? "argmax" : (out.c == 2 ? "round(255*p1)" : "round(255*p0)"), info.downsample);
    std::error_code ec;
    fs::create_directories(fs::path(info.path).parent_path(), ec);
    if (ec) throw OutputError(info.path, "cannot create directory: " + ec.message());
    ctx.writer = std::make_unique<PyramidTiffWriter>(info.path, std::move(layout));
    ctx.stitch = std::move(st);
}

void Stitch::add_patch(SlideContext& ctx, const PatchKey& key, const float* data, int h, int w,
                       std::vector<WriteMsg>& messages) const {
    StitchState& st = *ctx.stitch;
    const std::int64_t ox = key.x / st.scale, oy = key.y / st.scale;
    const std::int64_t x_end = std::min(st.width, ox + w), y_end = std::min(st.height, oy + h);
    const std::size_t plane = static_cast<std::size_t>(h) * w;
    const int first_ch = st.channels == 2 ? 1 : 0;
    for (std::int64_t ty = oy / T; ty * T < y_end; ++ty) {
        for (std::int64_t tx = ox / T; tx * T < x_end; ++tx) {
            const std::int64_t id = ty * st.tiles_x + tx;
            StitchState::Acc& acc = st.open[id];
            if (acc.sum.empty()) {
                acc.sum.assign(static_cast<std::size_t>(st.acc_channels) * T * T, 0.0f);
                st.peak_open = std::max(st.peak_open, st.open.size());
            }
            const std::int64_t y0 = std::max(oy, ty * T), y1 = std::min(y_end, (ty + 1) * T);
            const std::int64_t x0 = std::max(ox, tx * T), x1 = std::min(x_end, (tx + 1) * T);
            for (std::int64_t y = y0; y < y1; ++y) {
                const int py = static_cast<int>(y - oy);
                const float wy = st.window[static_cast<std::size_t>(py)];
                const std::size_t row = static_cast<std::size_t>(y - ty * T) * T;
                for (std::int64_t x = x0; x < x1; ++x) {
                    const int px = static_cast<int>(x - ox);
                    const float wgt = wy * st.window[static_cast<std::size_t>(px)];
                    const std::size_t at = row + static_cast<std::size_t>(x - tx * T);
                    const std::size_t src = static_cast<std::size_t>(py) * w + px;
                    for (int a = 0; a < st.acc_channels; ++a)
                        acc.sum[a * static_cast<std::size_t>(T) * T + at] +=
                            wgt * data[(first_ch + a) * plane + src];
                }
            }
            if (++acc.received < st.col_cover[tx] * st.row_cover[ty]) continue;

            WriteMsg msg;
            msg.ctx = nullptr;  // set by the caller
            msg.tx = tx;
            msg.ty = ty;
            msg.tile.assign(static_cast<std::size_t>(T) * T, 0);
            for (std::size_t i = 0; i < msg.tile.size(); ++i) {
                const std::int64_t x = tx * T + std::int64_t(i % T), y = ty * T + std::int64_t(i / T);
                if (x >= st.width || y >= st.height) continue;  // outside the image
                const float wsum = st.weight_x[static_cast<std::size_t>(x)] * st.weight_y[static_cast<std::size_t>(y)];
                if (st.acc_channels == 1) {
                    const float v = std::clamp(acc.sum[i] / wsum, 0.0f, 1.0f);
                    msg.tile[i] = static_cast<std::uint8_t>(std::lround(v * 255.0f));
                } else {
                    int best = 0;
                    for (int a = 1; a < st.acc_channels; ++a)
                        if (acc.sum[a * static_cast<std::size_t>(T) * T + i] >
                            acc.sum[best * static_cast<std::size_t>(T) * T + i])
                            best = a;
                    msg.tile[i] = static_cast<std::uint8_t>(std::min(best, 255));
                }
            }
            st.open.erase(id);
            messages.push_back(std::move(msg));
        }
    }
}

Stitch::Out Stitch::operator()(const InferResult& r) const {
    Batch& batch = *r.batch;
    SlideContext& ctx = *batch.ctx;
    const int n = batch.target.load(std::memory_order_acquire);
    BusyScope busy(*counter_, n);
    Out out;
    out.tokens = n;
    if (!ctx.failed() && r.out.n == n) {
        try {
            if (!ctx.stitch) start_slide(ctx, r.out);
            const StitchState& st = *ctx.stitch;
            if (r.out.c != st.channels || r.out.h != st.out_patch || r.out.w != st.out_patch)
                throw ModelError(cfg_->models.front().name,
                                 fmt::format("output shape changed within a slide: [{}, {}, {}, {}] "
                                             "after [*, {}, {}, {}]", r.out.n, r.out.c, r.out.h,
                                             r.out.w, st.channels, st.out_patch, st.out_patch));
            const std::size_t per = static_cast<std::size_t>(r.out.c) * r.out.h * r.out.w;
            for (int i = 0; i < n; ++i)
                add_patch(ctx, batch.keys[i], r.out.data.data() + i * per, r.out.h, r.out.w, out.messages);
        } catch (const OutputError& e) {
            ctx.fail(e.what());
        }
    }
    for (WriteMsg& m : out.messages) m.ctx = batch.ctx;
    ctx.tiles_sent += static_cast<std::int64_t>(out.messages.size());
    ctx.stitched += static_cast<std::uint64_t>(n);
    if (ctx.stitched == ctx.plan.count()) {
        WriteMsg end;
        end.ctx = batch.ctx;
        end.end = true;
        end.tiles_sent = ctx.tiles_sent;
        out.messages.push_back(std::move(end));
    }
    return out;
}

}  // namespace flowinfer
