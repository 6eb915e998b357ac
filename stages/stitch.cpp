#include "stages/stitch.hpp"

#include "stages/image/png_map.hpp"

#include <flowinfer/errors.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

namespace fs = std::filesystem;

namespace flowinfer {

namespace {

constexpr int T = kOutputTile;

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

// Indices of the patches (positions `pos`, `len` long) overlapping [lo, hi).
std::pair<std::size_t, std::size_t> covering(const std::vector<std::int64_t>& pos, int len,
                                              std::int64_t lo, std::int64_t hi) {
    const auto first = std::lower_bound(pos.begin(), pos.end(), lo - len + 1) - pos.begin();
    const auto last = std::lower_bound(pos.begin(), pos.end(), hi) - pos.begin();
    return {static_cast<std::size_t>(first), static_cast<std::size_t>(last)};
}

// 1 / (sum over patch positions `pos` of the window), per pixel of an axis `len` long.
std::vector<float> inverse_coverage(const std::vector<std::int64_t>& pos, const std::vector<float>& window,
                                    std::int64_t len) {
    std::vector<float> sum(static_cast<std::size_t>(len), 0.0f);
    for (std::int64_t p : pos)
        for (std::size_t k = 0; k < window.size() && p + static_cast<std::int64_t>(k) < len; ++k)
            sum[static_cast<std::size_t>(p) + k] += window[k];
    for (float& w : sum) w = w > 0.0f ? 1.0f / w : 0.0f;
    return sum;
}

}  // namespace

std::vector<std::uint8_t> label_palette(const std::vector<ClassSpec>& classes) {
    // Distinct colours for the first classes (tab10), then a grey ramp.
    static const std::uint8_t base[10][3] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},
                                             {214, 39, 40},  {148, 103, 189}, {140, 86, 75},
                                             {227, 119, 194}, {127, 127, 127}, {188, 189, 34},
                                             {23, 190, 207}};
    std::vector<std::uint8_t> p(256 * 3);
    for (int i = 0; i < 256; ++i)
        for (int c = 0; c < 3; ++c)
            p[3 * i + c] = i < 10 ? base[i][c] : static_cast<std::uint8_t>(i);
    for (std::size_t i = 0; i < classes.size() && i < 256; ++i)
        if (classes[i].color)
            for (int c = 0; c < 3; ++c) p[3 * i + c] = (*classes[i].color)[c];
    return p;
}

std::array<std::uint8_t, 3> label_color(const std::vector<std::uint8_t>& palette, int cls) {
    const std::size_t at = static_cast<std::size_t>(std::clamp(cls, 0, 255)) * 3;
    return {palette[at], palette[at + 1], palette[at + 2]};
}

std::uint8_t map_value(const float* v, int acc_channels, std::size_t stride) {
    if (acc_channels == 1) return probability_byte(v[0]);
    int best = 0;
    for (int a = 1; a < acc_channels; ++a)
        if (v[a * stride] > v[best * stride]) best = a;
    return static_cast<std::uint8_t>(std::min(best, 255));
}

void Stitch::start_slide(SlideContext& ctx, const SlidePlan& plan, std::vector<WriteMsg>& messages) const {
    const ModelConfig& model = cfg_->models[static_cast<std::size_t>(model_)];
    ModelSlide& ms = ctx.models[static_cast<std::size_t>(model_)];
    auto st = std::make_unique<StitchState>();
    st->scale = plan.patch_size / out_patch_;
    st->out_patch = out_patch_;
    st->channels = channels_;
    st->acc_channels = channels_ > 2 ? channels_ : 1;
    st->width = (plan.grid_width + st->scale - 1) / st->scale;
    st->height = (plan.grid_height + st->scale - 1) / st->scale;
    st->tiles_x = (st->width + T - 1) / T;
    st->tiles_y = (st->height + T - 1) / T;
    for (std::int64_t x : plan.xs) st->out_x.push_back(x / st->scale);
    for (std::int64_t y : plan.ys) st->out_y.push_back(y / st->scale);
    st->window = blend_window(model.blend, st->out_patch, plan.overlap / st->scale);
    st->inv_wx = inverse_coverage(st->out_x, st->window, st->width);
    st->inv_wy = inverse_coverage(st->out_y, st->window, st->height);
    st->expected.assign(static_cast<std::size_t>(st->tiles_x * st->tiles_y), 0);
    for (std::size_t i = 0; i < st->out_y.size(); ++i) {
        for (std::size_t j = 0; j < st->out_x.size(); ++j) {
            if (!plan.runs(j, i) || (plan.tissue_filtered && plan.kept.empty())) continue;
            const std::int64_t x1 = std::min(st->width, st->out_x[j] + st->out_patch);
            const std::int64_t y1 = std::min(st->height, st->out_y[i] + st->out_patch);
            for (std::int64_t ty = st->out_y[i] / T; ty * T < y1; ++ty)
                for (std::int64_t tx = st->out_x[j] / T; tx * T < x1; ++tx)
                    ++st->expected[static_cast<std::size_t>(ty * st->tiles_x + tx)];
        }
    }

    OutputInfo info;
    info.model = model.name;
    info.kind = to_string(model.task);
    info.format = "tiff";
    info.width = st->width;
    info.height = st->height;
    info.downsample = plan.downsample() * st->scale;
    if (ctx.is_image()) {  // a PNG beside the image's place in the input tree
        info.format = "png";
        info.path = image_output_path(*cfg_, ctx, model.name, ".png");
        ms.png_map = std::make_unique<image::PngMapWriter>(info.path, st->width, st->height, T);
    } else {
        info.path = (slide_output_dir(*cfg_, ctx) / (model.name + ".tif")).string();
    }

    TiffLayout layout;
    layout.width = st->width;
    layout.height = st->height;
    layout.channels = 1;
    layout.tile = T;
    layout.compression = cfg_->compression;
    layout.deflate_level = cfg_->deflate_level;
    layout.mpp = plan.mpp > 0 ? plan.mpp * st->scale : 0.0;
    layout.spill_bytes = cfg_->spill_mb << 20;
    if (channels_ > 2) layout.palette_rgb = label_palette(model.classes);
    layout.description = fmt::format(
        "flowinfer {} model={} classes={} activation={} value={} downsample={}", FLOWINFER_VERSION,
        model.name, channels_, to_string(model.activation),
        channels_ > 2 ? "argmax" : (channels_ == 2 ? "round(255*p1)" : "round(255*p0)"), info.downsample);
    if (!ms.png_map) ms.tiff = std::make_unique<PyramidTiffWriter>(info.path, std::move(layout));
    ms.outputs.push_back(info);
    StitchState& s = *st;
    ms.stitch = std::move(st);
    // Tiles no running patch reaches are background: written now, as zeros.
    for (std::int64_t ty = 0; ty < s.tiles_y; ++ty)
        for (std::int64_t tx = 0; tx < s.tiles_x; ++tx)
            if (s.expected[static_cast<std::size_t>(ty * s.tiles_x + tx)] == 0)
                finish_tile(s, plan, tx, ty, nullptr, messages);
}

void Stitch::finish_tile(StitchState& st, const SlidePlan& plan, std::int64_t tx, std::int64_t ty,
                         const StitchState::Acc* acc, std::vector<WriteMsg>& messages) const {
    WriteMsg msg;
    msg.kind = WriteMsg::tile;
    msg.tx = tx;
    msg.ty = ty;
    msg.pixels.assign(static_cast<std::size_t>(T) * T, 0);
    if (acc) {
        const std::int64_t x0 = tx * T, x1 = std::min(st.width, x0 + T);
        const std::int64_t y0 = ty * T, y1 = std::min(st.height, y0 + T);
        const int w = static_cast<int>(x1 - x0);
        const auto [c0, c1] = covering(st.out_x, st.out_patch, x0, x1);
        const auto [r0, r1] = covering(st.out_y, st.out_patch, y0, y1);
        bool all_run = true;
        for (std::size_t i = r0; i < r1 && all_run; ++i)
            for (std::size_t j = c0; j < c1 && all_run; ++j) all_run = st.runs(plan, j, i);
        // The blend weight of each pixel: the windows of the running patches covering it,
        // summed. Where they all run it is the separable product; otherwise add them up.
        thread_local std::vector<float> weight;
        if (!all_run) {
            weight.assign(static_cast<std::size_t>(T) * T, 0.0f);
            for (std::size_t i = r0; i < r1; ++i) {
                for (std::size_t j = c0; j < c1; ++j) {
                    if (!st.runs(plan, j, i)) continue;
                    const std::int64_t ya = std::max(y0, st.out_y[i]), yb = std::min(y1, st.out_y[i] + st.out_patch);
                    const std::int64_t xa = std::max(x0, st.out_x[j]), xb = std::min(x1, st.out_x[j] + st.out_patch);
                    const float* win = &st.window[static_cast<std::size_t>(xa - st.out_x[j])];
                    for (std::int64_t y = ya; y < yb; ++y) {
                        const float wy = st.window[static_cast<std::size_t>(y - st.out_y[i])];
                        float* row = &weight[static_cast<std::size_t>(y - y0) * T + static_cast<std::size_t>(xa - x0)];
                        for (std::int64_t k = 0; k < xb - xa; ++k) row[k] += wy * win[k];
                    }
                }
            }
        }
        const std::size_t plane = static_cast<std::size_t>(T) * T;
        const float* inv_wx = &st.inv_wx[static_cast<std::size_t>(x0)];
        for (std::int64_t y = y0; y < y1; ++y) {
            const std::size_t row = static_cast<std::size_t>(y - y0) * T;
            std::uint8_t* out = &msg.pixels[row];
            const float* sum = &acc->sum[row];
            if (all_run && st.acc_channels == 1) {
                const float inv_wy = st.inv_wy[static_cast<std::size_t>(y)];
                for (int k = 0; k < w; ++k) out[k] = probability_byte(sum[k] * inv_wy * inv_wx[k]);
                continue;
            }
            for (int k = 0; k < w; ++k) {
                // Zero weight: outside every patch, or skipped by tissue detection.
                const bool covered = all_run ? st.inv_wy[static_cast<std::size_t>(y)] > 0.0f && inv_wx[k] > 0.0f
                                             : weight[row + k] > 0.0f;
                if (!covered) continue;
                if (st.acc_channels == 1) out[k] = probability_byte(sum[k] / weight[row + k]);
                else out[k] = map_value(sum + k, st.acc_channels, plane);
            }
        }
    }
    messages.push_back(std::move(msg));
}

void Stitch::add_patch(StitchState& st, const SlidePlan& plan, const PatchKey& key,
                       const float* data, std::vector<WriteMsg>& messages) const {
    const int w = st.out_patch, h = st.out_patch;
    const std::int64_t ox = key.x / st.scale, oy = key.y / st.scale;
    const std::int64_t x_end = std::min(st.width, ox + w), y_end = std::min(st.height, oy + h);
    const std::size_t plane = static_cast<std::size_t>(h) * w;
    const int first_ch = st.channels == 2 ? 1 : 0;
    for (std::int64_t ty = oy / T; ty * T < y_end; ++ty) {
        for (std::int64_t tx = ox / T; tx * T < x_end; ++tx) {
            const std::int64_t id = ty * st.tiles_x + tx;
            StitchState::Acc& acc = st.open[id];
            if (acc.sum.empty()) acc.sum.assign(static_cast<std::size_t>(st.acc_channels) * T * T, 0.0f);
            const std::int64_t y0 = std::max(oy, ty * T), y1 = std::min(y_end, (ty + 1) * T);
            const std::int64_t x0 = std::max(ox, tx * T), x1 = std::min(x_end, (tx + 1) * T);
            const float* win = &st.window[static_cast<std::size_t>(x0 - ox)];
            const int n = static_cast<int>(x1 - x0);
            for (int a = 0; data && a < st.acc_channels; ++a) {
                const float* src_plane = data + static_cast<std::size_t>(first_ch + a) * plane;
                float* dst_plane = acc.sum.data() + static_cast<std::size_t>(a) * T * T;
                for (std::int64_t y = y0; y < y1; ++y) {
                    const int py = static_cast<int>(y - oy);
                    const float wy = st.window[static_cast<std::size_t>(py)];
                    const float* src = src_plane + static_cast<std::size_t>(py) * w + static_cast<std::size_t>(x0 - ox);
                    float* dst = dst_plane + static_cast<std::size_t>(y - ty * T) * T + static_cast<std::size_t>(x0 - tx * T);
                    for (int k = 0; k < n; ++k) dst[k] += wy * win[k] * src[k];
                }
            }
            if (++acc.received < st.expected[static_cast<std::size_t>(id)]) continue;
            finish_tile(st, plan, tx, ty, &acc, messages);
            st.open.erase(id);
        }
    }
}

SinkOut Stitch::operator()(const InferResult& r) const {
    return run_sink(r, *counter_, [&](SlideContext& ctx, ModelSlide& ms, const SlidePlan& plan, int n, SinkOut& out) {
        const Batch& batch = *r.batch;
        if (!ms.stitch) start_slide(ctx, plan, out.messages);
        const bool ran = r.out.n == n;  // not for a placeholder, nor a batch of unreadable patches
        if (ran && (r.out.c != channels_ || r.out.h != out_patch_ || r.out.w != out_patch_))
            throw ModelError(cfg_->models[static_cast<std::size_t>(model_)].name,
                             fmt::format("output shape changed: [{}, {}, {}, {}] after [1, {}, {}, {}] at start-up",
                                         r.out.n, r.out.c, r.out.h, r.out.w, channels_, out_patch_, out_patch_));
        StitchState& st = *ms.stitch;
        const std::size_t per = static_cast<std::size_t>(channels_) * out_patch_ * out_patch_;
        for (int i = 0; i < n; ++i) {
            const PatchKey& key = batch.keys[static_cast<std::size_t>(i)];
            if (batch.unreadable[static_cast<std::size_t>(i)]) {
                // Left out before any tile it covers is finished: received, nothing added.
                if (st.missing.empty()) st.missing.assign(st.out_x.size() * st.out_y.size(), 0);
                const std::size_t col = std::lower_bound(plan.xs.begin(), plan.xs.end(), key.x) - plan.xs.begin();
                const std::size_t row = std::lower_bound(plan.ys.begin(), plan.ys.end(), key.y) - plan.ys.begin();
                st.missing[row * st.out_x.size() + col] = 1;
                add_patch(st, plan, key, nullptr, out.messages);
            } else if (ran) {
                add_patch(st, plan, key, r.out.data.data() + i * per, out.messages);
            }
        }
    });
}

}  // namespace flowinfer
