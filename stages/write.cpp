#include "stages/write.hpp"

#include "stages/embed.hpp"
#include "stages/hdf5/feature_writer.hpp"
#include "stages/image/png_map.hpp"
#include "stages/object_writer.hpp"
#include "stages/stitch.hpp"

#include <flowinfer/errors.hpp>

#include <cstdio>

namespace flowinfer {

namespace {

void write_rows(const SlideContext& ctx, ModelSlide& ms, const std::vector<ObjectRow>& rows) {
    std::vector<std::pair<std::string, double>> named;
    for (const ObjectRow& r : rows) {
        if (ms.objects) {
            named.clear();
            for (std::size_t i = 0; i < r.measurements.size() && i < ms.measurement_names.size(); ++i)
                named.emplace_back(ms.measurement_names[i], r.measurements[i]);
            ms.objects->write(r.x1, r.y1, r.x2, r.y2, r.cls, named, r.csv);
        }
        if (!ms.table_header.empty()) {  // an image's row of the run's <model>.csv
            std::string line;
            append_csv_field(line, ctx.job.image);
            for (double v : r.csv) {
                line += ',';
                append_csv_number(line, v);
            }
            line += '\n';
            ms.table_lines.emplace(std::make_tuple(r.y1, r.x1, r.y2, r.x2, r.cls), std::move(line));
        }
    }
}

// Rows go into the file in walk order: a message that overtook an earlier one waits for it.
void write_features(ModelSlide& ms, const FeatureRows& rows) {
    if (rows.first != ms.features->rows()) {
        ms.feature_backlog.emplace(rows.first, rows);
        return;
    }
    ms.features->append(rows.xy.data(), rows.values.data(), rows.size());
    for (auto it = ms.feature_backlog.begin(); it != ms.feature_backlog.end() && it->first == ms.features->rows();
         it = ms.feature_backlog.erase(it))
        ms.features->append(it->second.xy.data(), it->second.values.data(), it->second.size());
}

// Finishes every file of the slide, or none: a later failure removes the files already
// renamed into place, so a slide whose outputs fail leaves nothing under a final name. The
// OutputError goes on: a directory or disk that cannot take one slide's files will not take
// the next one's, so it stops the run.
void finish_outputs(SlideContext& ctx) {
    std::vector<std::string> done;
    try {
        for (ModelSlide& ms : ctx.models) {
            if (ms.tiff) {
                ms.tiff->finish();
                done.push_back(ms.tiff->path());
            }
            if (ms.png_map) {
                ms.png_map->finish();
                done.push_back(ms.png_map->path());
            }
            if (ms.objects) {
                ms.objects->finish();
                for (OutputInfo& o : ms.outputs)
                    if (o.format == "geojson" || o.format == "csv") {
                        o.objects = ms.objects->count();
                        done.push_back(o.path);
                    }
            }
            if (ms.features) {
                ms.features->finish();
                for (OutputInfo& o : ms.outputs)
                    if (o.format == "hdf5") o.rows = ms.features->rows();
                done.push_back(ms.features->path());
            }
        }
    } catch (const OutputError&) {
        for (const std::string& p : done) std::remove(p.c_str());
        throw;
    }
}

}  // namespace

SlideResult WriteStage::finish(SlideContext& ctx) const {
    SlideResult r;
    r.index = ctx.job.index;
    r.path = ctx.job.path;
    for (const SlidePlan& p : ctx.plans) {
        r.patches += static_cast<std::int64_t>(p.tissue_filtered ? p.kept.size() : p.count());
        r.patches_skipped += static_cast<std::int64_t>(p.skipped());
    }
    r.patches_unreadable = ctx.patches_unreadable.load(std::memory_order_relaxed);
    r.warnings = ctx.warnings;
    if (ctx.slide) {
        r.reader = ctx.slide->reader();
        const Slide::ReadStats st = ctx.slide->read_stats();
        r.tiles_decoded = st.tiles_decoded;
        r.tile_cache_hits = st.tile_cache_hits;
        r.tile_cache_peak_bytes = st.tile_cache_peak_bytes;
    }
    if (!ctx.failed()) finish_outputs(ctx);
    r.status = ctx.failed() ? SlideStatus::failed : SlideStatus::ok;
    if (r.ok()) {
        for (std::size_t m = 0; m < ctx.models.size(); ++m) {
            ModelSlide& ms = ctx.models[m];
            r.outputs.insert(r.outputs.end(), ms.outputs.begin(), ms.outputs.end());
            if (!ms.table_header.empty()) {
                std::string lines;
                for (const auto& [at, line] : ms.table_lines) lines += line;
                r.table_rows.push_back({cfg_->models[m].name, ms.table_header, std::move(lines)});
            }
        }
        if (!ctx.tissue_preview.empty()) {
            OutputInfo preview;
            preview.kind = "tissue";
            preview.format = "png";
            preview.path = ctx.tissue_preview;
            r.outputs.push_back(preview);
        }
    } else {
        r.error = ctx.error();
    }
    // Dropping unfinished writers removes their partial files.
    for (ModelSlide& ms : ctx.models) {
        ms.tiff.reset();
        ms.png_map.reset();
        ms.objects.reset();
        ms.features.reset();
        ms.stitch.reset();
        ms.embed.reset();
    }
    r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - ctx.start).count();
    slides_done_->fetch_add(1, std::memory_order_relaxed);
    return r;
}

std::optional<SlideResult> WriteStage::operator()(const WriteMsg& m) const {
    BusyScope busy(*counter_, m.kind == WriteMsg::end ? 0 : 1);
    SlideContext& ctx = *m.ctx;
    ModelSlide& ms = ctx.models[static_cast<std::size_t>(m.model)];
    if (m.kind == WriteMsg::end) {
        ms.expected = m.sent;
    } else {
        ++ms.received;
        if (!ctx.failed()) {
            if (m.kind == WriteMsg::tile && ms.tiff) ms.tiff->write_tile(m.tx, m.ty, m.pixels.data());
            if (m.kind == WriteMsg::tile && ms.png_map) ms.png_map->write_tile(m.tx, m.ty, m.pixels.data());
            if (m.kind == WriteMsg::objects) write_rows(ctx, ms, m.rows);
            if (m.kind == WriteMsg::features && ms.features) write_features(ms, m.feature_rows);
        }
    }
    if (ms.finished || ms.expected < 0 || ms.received != ms.expected) return std::nullopt;
    ms.finished = true;
    if (++ctx.models_finished < ctx.models.size()) return std::nullopt;
    return finish(ctx);
}

}  // namespace flowinfer
