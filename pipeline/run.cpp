#include <flowinfer/errors.hpp>
#include <flowinfer/pipeline.hpp>

#include <fmt/format.h>
#include <tbb/global_control.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <set>
#include <sys/resource.h>
#include <thread>

namespace fs = std::filesystem;

namespace flowinfer {

namespace {

// Two slides with the same file stem would write the same output directory.
void check_output_names(const Config& cfg) {
    std::map<std::string, std::string> seen;
    for (const std::string& s : cfg.slides) {
        const std::string stem = fs::path(s).stem().string();
        auto [it, fresh] = seen.emplace(stem, s);
        if (!fresh)
            throw ConfigError(cfg.source, "input.slides", 0, 0,
                              fmt::format("'{}' and '{}' would both write {}/{}/: rename one", it->second,
                                          s, cfg.output_dir, stem));
    }
}

void write_atomically(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".partial";
    {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        f << text;
        f.flush();
        if (!f) {
            std::remove(tmp.c_str());
            throw OutputError(path, "cannot write");
        }
    }
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) {
        std::remove(tmp.c_str());
        throw OutputError(path, "cannot rename into place: " + ec.message());
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

}  // namespace

RunSummary run(const Config& cfg, ProgressFn progress, void* user) {
    check_output_names(cfg);
    std::error_code ec;
    fs::create_directories(cfg.output_dir, ec);
    if (ec) throw OutputError(cfg.output_dir, "cannot create output directory: " + ec.message());

    std::optional<tbb::global_control> threads;
    if (cfg.threads > 0) threads.emplace(tbb::global_control::max_allowed_parallelism, cfg.threads);

    const auto t0 = std::chrono::steady_clock::now();
    const auto elapsed = [t0] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    RunSummary summary;
    std::vector<std::optional<SlideResult>> results(cfg.slides.size());
    std::exception_ptr failure;
    {
        tbb::flow::graph g;
        SlidePipeline pipeline(g, cfg);
        summary.setup_s = elapsed();
        tbb::flow::function_node<SlideResult> collect(g, tbb::flow::serial, [&](const SlideResult& r) {
            results.at(r.index) = r;
            return tbb::flow::continue_msg();
        });
        tbb::flow::make_edge(tbb::flow::output_port<0>(pipeline), collect);
        {
            std::optional<Ticker> ticker;
            if (progress) ticker.emplace([&] { progress(pipeline.progress(), elapsed(), user); });
            for (std::size_t i = 0; i < cfg.slides.size(); ++i)
                tbb::flow::input_port<0>(pipeline).try_put(SlideJob{static_cast<std::uint32_t>(i), cfg.slides[i]});
            try {
                g.wait_for_all();
            } catch (...) {
                failure = std::current_exception();
            }
        }
        if (progress) progress(pipeline.progress(), elapsed(), user);
        summary.stages = pipeline.stats();
        summary.peak_in_flight = pipeline.progress().peak_in_flight;
        summary.runtime = pipeline.runtime();
    }  // the pipeline's destruction removes partial outputs of unfinished slides

    std::string why = "not processed: the run was cancelled";
    if (failure) {
        try {
            std::rethrow_exception(failure);
        } catch (const std::exception& e) {
            why = fmt::format("not finished: the run was cancelled: {}", e.what());
        } catch (...) {
        }
    }
    for (std::size_t i = 0; i < results.size(); ++i) {
        if (results[i]) {
            if (results[i]->ok) summary.patches += results[i]->patches;
            summary.slides.push_back(std::move(*results[i]));
        } else {
            SlideResult r;
            r.index = static_cast<std::uint32_t>(i);
            r.path = cfg.slides[i];
            r.error = why;
            summary.slides.push_back(std::move(r));
        }
    }
    summary.wall_s = elapsed();
    rusage usage{};
    if (getrusage(RUSAGE_SELF, &usage) == 0) summary.peak_rss_mb = usage.ru_maxrss / 1024.0;
    const double work_s = summary.wall_s - summary.setup_s;
    summary.patches_per_s = work_s > 0 ? summary.patches / work_s : 0.0;
    write_atomically((fs::path(cfg.output_dir) / "summary.json").string(), summary_json(summary));
    if (failure) std::rethrow_exception(failure);
    return summary;
}

}  // namespace flowinfer
