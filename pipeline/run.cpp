#include <flowinfer/errors.hpp>
#include <flowinfer/pipeline.hpp>

#include "pipeline/report.hpp"
#include "stages/atomic_file.hpp"
#include "stages/resume.hpp"
#include "stages/sha256.hpp"

#include <fmt/format.h>
#include <tbb/global_control.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <optional>
#include <sys/resource.h>
#include <thread>

namespace fs = std::filesystem;

namespace flowinfer {

namespace {

// Two slides with the same file stem would write the same output directory; two images
// whose relative paths differ only in their extension, the same outputs.
void check_output_names(const Config& cfg) {
    std::map<std::string, std::string> seen;
    if (cfg.image_mode()) {
        for (std::size_t i = 0; i < cfg.slides.size(); ++i) {
            if (!cfg.images[i].problem.empty()) continue;
            const std::string out = fs::path(cfg.images[i].relative).replace_extension().string();
            auto [it, fresh] = seen.emplace(out, cfg.slides[i]);
            if (!fresh)
                throw ConfigError(cfg.source, "input.images", 0, 0,
                                  fmt::format("'{}' and '{}' would both write {}/<model>/{}.*: rename one",
                                              it->second, cfg.slides[i], cfg.output_dir, out));
        }
        return;
    }
    for (const std::string& s : cfg.slides) {
        const std::string stem = fs::path(s).stem().string();
        auto [it, fresh] = seen.emplace(stem, s);
        if (!fresh)
            throw ConfigError(cfg.source, "input.slides", 0, 0,
                              fmt::format("'{}' and '{}' would both write {}/{}/: rename one", it->second,
                                          s, cfg.output_dir, stem));
    }
}

// Calls `fn` about twice a second on its own thread until stopped.
class Ticker {
public:
    template <class Fn>
    explicit Ticker(Fn fn) : thread_([this, fn] {
        std::unique_lock<std::mutex> lock(mu_);
        while (!cv_.wait_for(lock, std::chrono::milliseconds(500), [this] { return stop_; })) fn();
    }) {}
    ~Ticker() {
        {
            std::lock_guard<std::mutex> lock(mu_);
            stop_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::thread thread_;
};

std::string message_of(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        return x.what();
    } catch (...) {
        return "unknown error";
    }
}

// The record's outputs stand in for the slide's: a summary of a resumed run still lists every
// output, whatever run made it.
SlideResult skipped_result(SlideResult r, const ResumeCheck& check) {
    r.status = SlideStatus::skipped;
    r.reason = check.reason;
    r.patches = check.record->patches;
    r.patches_skipped = check.record->patches_skipped;
    r.patches_unreadable = check.record->patches_unreadable;
    for (const DoneRecord::Output& o : check.record->outputs) r.outputs.push_back(o.info);
    r.table_rows = check.record->table_rows;
    return r;
}

// Patch-directory mode: the run's <output.dir>/<model>.csv (classification, detection), one
// file per model from every ok or skipped image's rows, in input order (whatever order the
// images finished in). Rewritten whole by every run, so a resumed run's table still holds the
// rows of the images it skipped (kept in their resume records).
std::vector<OutputInfo> write_tables(const Config& cfg, const std::vector<SlideResult>& results,
                                     const std::optional<Shard>& shard) {
    std::map<std::string, std::pair<std::string, std::int64_t>> text;  // model -> (csv, rows)
    std::vector<std::string> order;
    for (const SlideResult& r : results) {
        if (r.status != SlideStatus::ok && r.status != SlideStatus::skipped) continue;
        for (const SlideResult::TableRows& t : r.table_rows) {
            auto [it, fresh] = text.try_emplace(t.model, t.header, 0);
            if (fresh) order.push_back(t.model);
            it->second.first += t.lines;
            it->second.second += std::count(t.lines.begin(), t.lines.end(), '\n');
        }
    }
    std::vector<OutputInfo> out;
    for (const std::string& model : order) {
        OutputInfo o;
        o.model = model;
        for (const ModelConfig& m : cfg.models)
            if (m.name == model) o.kind = to_string(m.task);
        o.format = "csv";
        o.path = (fs::path(cfg.output_dir) /
                  (shard ? fmt::format("{}-{}-of-{}.csv", model, shard->index, shard->count) : model + ".csv"))
                     .string();
        o.objects = text[model].second;
        write_file_atomically(o.path, text[model].first);
        out.push_back(std::move(o));
    }
    return out;
}

}  // namespace

std::vector<std::string> shard_slides(const std::vector<std::string>& slides, const Shard& shard) {
    if (shard.count < 1 || shard.index < 1 || shard.index > shard.count)
        throw Error(fmt::format("shard {}/{}: needs 1 <= I <= N", shard.index, shard.count));
    std::vector<std::string> mine;
    for (std::size_t k = static_cast<std::size_t>(shard.index - 1); k < slides.size(); k += static_cast<std::size_t>(shard.count))
        mine.push_back(slides[k]);
    return mine;
}

namespace {

// report.html's view of the summary: paths relative to the output directory, where it lies.
ReportData report_data(const RunSummary& s, const Config& cfg, const std::string& started) {
    namespace fs = std::filesystem;
    const auto relative = [&](const std::string& p) { return fs::path(p).lexically_relative(cfg.output_dir).string(); };
    ReportData d;
    d.title = fmt::format("flowinfer: {}", fs::path(cfg.source).filename().string());
    d.state = to_string(s.state);
    d.started = started;
    d.config = cfg.source;
    for (const SlideResult& r : s.slides) {
        ReportRow& row = d.rows.emplace_back();
        row.slide = fs::path(r.path).filename().string();
        row.status = to_string(r.status);
        row.patches = r.patches;
        row.wall_s = r.wall_s;
        row.error = !r.error.empty() ? r.error : r.reason;
        for (const std::string& w : r.warnings) row.error += (row.error.empty() ? "warning: " : "\nwarning: ") + w;
        row.thumbnail_uri = r.thumbnail;
        for (const OutputInfo& o : r.outputs) {
            if (o.kind == "preview") row.preview = relative(o.path);
            row.outputs.emplace_back(o.kind == "preview" || o.kind == "tissue" ? o.kind : o.model + "." + o.format,
                                     relative(o.path));
        }
    }
    return d;
}

std::string now_text() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    localtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

}  // namespace

constexpr double kReportEvery_s = 5.0;
constexpr double kImageSummaryEvery_s = 2.0;

std::string report_file_name(const std::optional<Shard>& shard) {
    return shard ? fmt::format("report-{}-of-{}.html", shard->index, shard->count) : "report.html";
}

std::string summary_file_name(const std::optional<Shard>& shard) {
    return shard ? fmt::format("summary-{}-of-{}.json", shard->index, shard->count) : "summary.json";
}

void RunStop::request(const std::string& reason) {
    std::lock_guard<std::mutex> lock(mu_);
    if (requested_.load(std::memory_order_relaxed)) return;
    reason_ = reason;
    requested_.store(true, std::memory_order_release);
    if (fn_) fn_();
}

std::string RunStop::reason() const {
    std::lock_guard<std::mutex> lock(mu_);
    return reason_;
}

void RunStop::on_request(std::function<void()> fn) {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = std::move(fn);
    if (fn_ && requested_.load(std::memory_order_relaxed)) fn_();
}

RunSummary run(const Config& cfg, ProgressFn progress, void* user, RunStop* stop) {
    RunOptions options;
    options.progress = progress;
    options.user = user;
    options.stop = stop;
    return run(cfg, options);
}

RunSummary run(const Config& cfg, const RunOptions& options) {
    // Checked over the whole list, so every shard of one list fails alike.
    check_output_names(cfg);
    const std::vector<std::string> slides = options.shard ? shard_slides(cfg.slides, *options.shard) : cfg.slides;
    const ProgressFn progress = options.progress;
    void* const user = options.user;
    RunStop* const stop = options.stop;
    std::error_code ec;
    fs::create_directories(cfg.output_dir, ec);
    if (ec) throw OutputError(cfg.output_dir, "cannot create output directory: " + ec.message());

    std::optional<tbb::global_control> threads;
    if (cfg.threads > 0) threads.emplace(tbb::global_control::max_allowed_parallelism, cfg.threads);

    const auto t0 = std::chrono::steady_clock::now();
    const auto elapsed = [t0] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    RunSummary summary;
    summary.path = (fs::path(cfg.output_dir) / summary_file_name(options.shard)).string();
    summary.shard = options.shard;
    summary.report = (fs::path(cfg.output_dir) / report_file_name(options.shard)).string();
    const std::string started = now_text();
    summary.slides_total = cfg.slides.size();
    Sha256 list_hash;
    for (const std::string& s : cfg.slides) list_hash.update(s + "\n");
    summary.slides_sha256 = list_hash.hex();
    // Patch-directory mode: each entry's image, beside `slides`.
    std::vector<ImageInput> images;
    if (cfg.image_mode()) {
        std::map<std::string, const ImageInput*> by_path;
        for (std::size_t i = 0; i < cfg.slides.size(); ++i) by_path[cfg.slides[i]] = &cfg.images[i];
        for (const std::string& s : slides) images.push_back(*by_path.at(s));
        summary.report.clear();  // a row per image of a cohort of 100,000 is no report
        summary.images = true;
    }
    for (std::size_t i = 0; i < slides.size(); ++i) {
        SlideResult& r = summary.slides.emplace_back();
        r.index = static_cast<std::uint32_t>(i);
        r.path = slides[i];
    }
    const auto record_path = [&](std::size_t i) {
        return images.empty() ? done_record_path(cfg, slides[i]) : image_record_path(cfg, images[i].relative);
    };
    // The figures of the run so far, then the summary: the figures are cheap next to the
    // slide that has just finished.
    double last_report = -1e9;
    const auto write_summary = [&](const SlidePipeline* pipeline) {
        summary.patches = 0;
        for (const SlideResult& r : summary.slides)
            if (r.ok()) summary.patches += r.patches;
        if (pipeline) {
            summary.stages = pipeline->stats();
            summary.peak_in_flight = pipeline->progress().peak_in_flight;
        }
        summary.wall_s = elapsed();
        rusage usage{};
        if (getrusage(RUSAGE_SELF, &usage) == 0) summary.peak_rss_mb = usage.ru_maxrss / 1024.0;
        const double work_s = summary.wall_s - summary.setup_s;
        summary.patches_per_s = work_s > 0 ? summary.patches / work_s : 0.0;
        write_file_atomically(summary.path, summary_json(summary));
        // The report carries every slide's thumbnail (about 10-40 kB each): rewritten per
        // finished slide, a cohort of thousands would write its size squared. Between slides
        // it waits kReportEvery_s; the run's first and last summaries always write it.
        const double now = elapsed();
        if (!summary.report.empty() && (!pipeline || now - last_report >= kReportEvery_s)) {
            write_report(summary.report, report_data(summary, cfg, started));
            last_report = now;
        }
    };
    // Images finish by the hundred per second: their summary is rewritten at most every
    // kImageSummaryEvery_s (and at the start and end), not per image, and never more often
    // than 20 times its own writing time (100,000 entries take a few tenths of a second), so
    // it costs the run at most about 5%.
    double last_summary = -1e9, summary_cost = 0;
    const auto image_finished = [&](const SlidePipeline* pipeline) {
        const double t = elapsed();
        if (t - last_summary < std::max(kImageSummaryEvery_s, 20 * summary_cost)) return;
        write_summary(pipeline);
        last_summary = elapsed();
        summary_cost = last_summary - t;
    };
    // Before any model is loaded: an output directory that cannot take the summary fails now.
    write_summary(nullptr);

    std::exception_ptr failure;
    try {
        // Resume: which slides are done already. Only stat() and the records are read here; a
        // skipped slide is never opened. A slide to be processed loses its record first.
        const RunFingerprint fingerprint(cfg);
        std::vector<std::optional<SlideIdentity>> identity(slides.size());
        std::vector<SlideJob> jobs;
        for (std::size_t i = 0; i < slides.size(); ++i) {
            SlideResult& r = summary.slides[i];
            if (!images.empty() && !images[i].problem.empty()) {
                r.status = SlideStatus::failed;
                r.error = images[i].problem;
                continue;
            }
            identity[i] = identify_slide(r.path);
            const std::string record = record_path(i);
            if (options.resume) {
                const ResumeCheck check = check_done(record, fingerprint, identity[i]);
                if (check.complete) {
                    r = skipped_result(std::move(r), check);
                    continue;
                }
                if (!check.reason.empty()) r.reason = "redone: " + check.reason;
            } else if (fs::exists(record, ec)) {
                r.reason = "redone: forced (resume off)";
            }
            // The unlink reaches the disk no later than the first output renamed beside it:
            // commit_file syncs that directory. (An image's outputs are not synced one by one;
            // a record that outlives a crash still fails the check on its outputs' sizes.)
            remove_done_record(record);
            jobs.push_back(SlideJob{r.index, r.path, images.empty() ? std::string() : images[i].relative, 0});
        }
        if (!images.empty())
            for (SlideJob& job : jobs) job.images_total = static_cast<std::uint32_t>(jobs.size());
        write_summary(nullptr);
        if (jobs.empty()) {
            // Every slide skipped, or none in this shard: no model is loaded.
            summary.setup_s = elapsed();
        } else {
            tbb::flow::graph g;
            SlidePipeline pipeline(g, cfg);
            summary.setup_s = elapsed();
            summary.runtime = pipeline.runtime();
            // The record is the slide's last file: written once every output is under its final
            // name, and only for a slide that ended ok.
            pipeline.observe_results([&](const SlideResult& r) {
                SlideResult& entry = summary.slides.at(r.index);
                std::string reason = std::move(entry.reason);
                entry = r;
                // The run's own reason (a redo) unless the slide brings one (roi_missing = "skip").
                if (entry.reason.empty()) entry.reason = std::move(reason);
                if (r.ok() && identity[r.index])
                    write_done_record(record_path(r.index), fingerprint, *identity[r.index], r,
                                      images.empty() ? Sync::now : Sync::later);
                if (images.empty()) write_summary(&pipeline);
                else image_finished(&pipeline);
            });
            // Removed before the pipeline and graph go, however this block is left.
            struct StopHook {
                RunStop* stop;
                ~StopHook() {
                    if (stop) stop->on_request(nullptr);
                }
            } hook{stop};
            if (stop) stop->on_request([&] {
                pipeline.stop();
                g.cancel();
            });
            {
                std::optional<Ticker> ticker;
                if (progress) ticker.emplace([&] { progress(pipeline.progress(), elapsed(), user); });
                if (!stop || !stop->requested())
                    for (const SlideJob& job : jobs) tbb::flow::input_port<0>(pipeline).try_put(job);
                try {
                    g.wait_for_all();
                } catch (...) {
                    failure = std::current_exception();
                }
            }
            pipeline.observe_results(nullptr);
            if (progress) progress(pipeline.progress(), elapsed(), user);
            summary.stages = pipeline.stats();
            summary.peak_in_flight = pipeline.progress().peak_in_flight;
        }
    } catch (...) {  // hashing or loading a model, removing a record
        failure = std::current_exception();
    }  // the pipeline's destruction removes partial outputs of unfinished slides

    if (failure) {
        summary.state = RunState::failed;
        summary.error = message_of(failure);
    } else if (stop && stop->requested()) {
        summary.state = RunState::interrupted;
        summary.error = stop->reason();
    } else {
        summary.state = RunState::finished;
    }
    for (SlideResult& r : summary.slides) {
        if (r.status != SlideStatus::pending) continue;
        r.status = SlideStatus::interrupted;
        r.error = summary.state == RunState::finished
                      ? "no result (internal error: the graph finished without this slide)"
                      : "not finished: the run stopped: " + summary.error;
    }
    try {
        // Rows of the images that finished, whatever stopped the run: they are complete, and
        // their resume records say so.
        if (!images.empty()) {
            summary.tables = write_tables(cfg, summary.slides, options.shard);
            sync_filesystem(cfg.output_dir);  // every mask and record renamed unsynced (Sync::later)
        }
        write_summary(nullptr);
    } catch (const OutputError&) {
        // The summary written after the last finished slide stays; the first error says more.
        if (!failure) throw;
    }
    if (failure) std::rethrow_exception(failure);
    return summary;
}

}  // namespace flowinfer
