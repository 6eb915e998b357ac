// The flowinfer graph: every node in flow order, then every edge in flow order.
//
//   jobs -> slide_limit -> plan -> cursors --+
//                                 tokens --> admit -> emit -> read_region -> normalize
//   -> batch_collect -> batches -> infer[m] -> sink[m] -> write -> annotate -> done   (per model m)
//   emit    -> cursors  (a slide's cursor goes back until its patches are all emitted)
//   sink[m] -> tokens   (a patch every model has finished frees its admission token)
//   done -> slide_finished -> slide_limit  (a finished slide lets the next one be planned)
//
// sink[m] is the model's task stage: stitch (segmentation), classify, detect or embed.
// annotate makes what is made from a slide's finished files (contours, the preview).
//
// Backpressure: `max_in_flight` tokens circulate, and `emit` needs one per patch, so no
// more patches than that are alive between emit and the last sink that uses them. At most
// kSlidesAhead slides (slides_ahead() images) are open at once.
//
// Stopping (SlidePipeline::stop, on SIGINT/SIGTERM): plan and emit drop what reaches them, so
// no slide is opened and no patch admitted from then on, even before the graph's
// cancellation (run() cancels it next) has reached every node.
#include "stages/annotate.hpp"
#include "stages/batch_collect.hpp"
#include "stages/classify.hpp"
#include "stages/detect.hpp"
#include "stages/embed.hpp"
#include "stages/infer.hpp"
#include "stages/model.hpp"
#include "stages/normalize.hpp"
#include "stages/plan.hpp"
#include "stages/read_region.hpp"
#include "stages/stitch.hpp"
#include "stages/write.hpp"

#include <flowinfer/errors.hpp>
#include <flowinfer/pipeline.hpp>

#include <fmt/format.h>
#include <tbb/global_control.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace flowinfer {

using namespace tbb::flow;

namespace {

// Two slides open at once lets the next one's first patches overlap the last one's tail.
constexpr int kSlidesAhead = 2;

// Images are small and share batches: enough of them open to fill two batches of the largest
// batch size while the readers decode the next ones, within the patch tokens.
int slides_ahead(const Config& cfg) {
    if (!cfg.image_mode()) return kSlidesAhead;
    int batch = 1;
    for (const ModelConfig& m : cfg.models) batch = std::max(batch, m.batch_size);
    return std::clamp(2 * batch + std::max(1, cfg.readers), kSlidesAhead, std::max(kSlidesAhead, cfg.max_in_flight));
}

enum StageId { kPlan, kRead, kNormalize, kBatch, kWrite, kAnnotate, kFixedStages };
const char* const kStages[] = {"plan", "read_region", "normalize", "batch_collect", "write", "annotate"};

int cores(const Config& cfg) {
    return cfg.threads > 0 ? cfg.threads : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

// On CPU every node body runs on TBB's threads: a model call per core, each with one LibTorch
// thread, so reads, normalization and inference share the cores without an OpenMP pool
// spinning beside TBB's (oversubscription), and a light model is not slowed by OpenMP's
// fork/join overhead. On CUDA the host side only feeds the GPU.
int default_torch_threads(const Config& cfg) { return cfg.torch_threads > 0 ? cfg.torch_threads : 1; }

int default_infer_slots(const Config& cfg, const std::string& device) {
    if (cfg.infer_slots > 0) return cfg.infer_slots;
    return device == "cpu" ? cores(cfg) : 0;  // 0: the model's own default (2 per GPU)
}

const char* sink_name(Task t) {
    switch (t) {
        case Task::segmentation: return "stitch";
        case Task::classification: return "classify";
        case Task::detection: return "detect";
        case Task::embedding: return "embed";
    }
    return "sink";
}

}  // namespace

struct SlidePipeline::Impl {
    using PlanNode = multifunction_node<SlideJob, std::tuple<CursorPtr, SlideResult>>;
    using EmitNode = multifunction_node<std::tuple<Token, CursorPtr>, std::tuple<PatchTask, CursorPtr>>;
    using NormalizeNode = multifunction_node<Patch, std::tuple<SlotFilled>>;
    using BatchNode = multifunction_node<SlotFilled, std::tuple<BatchPtr>>;
    using InferNode = multifunction_node<BatchPtr, std::tuple<InferResult>>;
    using SinkNode = multifunction_node<InferResult, std::tuple<Token, WriteMsg>>;
    using WriteNode = multifunction_node<WriteMsg, std::tuple<FinishedSlide>>;
    using AnnotateNode = multifunction_node<FinishedSlide, std::tuple<SlideResult>>;

    // One loaded model and what runs it.
    struct ModelRun {
        std::unique_ptr<Model> model;
        std::unique_ptr<SlotPool> slots;
        ModelOutput probe;
        StageCounter infer_counter, sink_counter;
    };

    // The models, loaded and probed before any node exists, and their batch buffers.
    struct Models {
        std::deque<ModelRun> runs;  // deque: counters are atomics, never moved
        std::deque<BatchAssembler> assemblers;
        Models(const Config& cfg, const Topology& topology);
    };

    Config cfg;
    Topology topology;
    Models models;
    std::deque<ModelRun>& runs = models.runs;
    StageCounter counters[kFixedStages];
    std::atomic<std::int64_t> patches_total{0}, patches_done{0}, slides_done{0};
    std::atomic<std::int64_t> in_flight{0}, peak_in_flight{0};
    std::atomic<bool> stopping{false};
    std::mutex observer_mu;
    std::function<void(const SlideResult&)> observer;

    template <class Port>
    void publish(SlideResult&& r, Port& port) {
        {
            std::lock_guard<std::mutex> lock(observer_mu);
            if (observer) observer(r);
        }
        port.try_put(std::move(r));
    }

    // Nodes, in flow order.
    queue_node<SlideJob> jobs;
    limiter_node<SlideJob> slide_limit;
    PlanNode plan;
    priority_queue_node<CursorPtr, CursorOrder> cursors;
    buffer_node<Token> tokens;
    join_node<std::tuple<Token, CursorPtr>, reserving> admit;
    EmitNode emit;
    function_node<PatchTask, Patch> read_region;
    NormalizeNode normalize;
    BatchNode batch_collect;
    broadcast_node<BatchPtr> batches;
    std::vector<std::unique_ptr<InferNode>> infer;  // per model
    std::vector<std::unique_ptr<SinkNode>> sink;    // per model
    WriteNode write;
    AnnotateNode annotate;
    broadcast_node<SlideResult> done;
    function_node<SlideResult, continue_msg> slide_finished;

    Normalize make_normalize() {
        std::vector<std::vector<BatchAssembler*>> assemblers(topology.read_groups.size());
        for (std::size_t b = 0; b < topology.batch_groups.size(); ++b)
            assemblers[static_cast<std::size_t>(topology.batch_groups[b].read_group)].push_back(&models.assemblers[b]);
        return Normalize(std::move(assemblers), counters[kNormalize]);
    }

    // The task stage of model m, as a node body.
    std::function<void(const InferResult&, SinkNode::output_ports_type&)> make_sink(int m) {
        ModelRun& r = runs[static_cast<std::size_t>(m)];
        const auto forward = [this](auto stage) {
            return [this, stage](const InferResult& in, SinkNode::output_ports_type& out) {
                SinkOut o;
                if (in.batch->slot_ctx.empty()) {
                    o = stage(in);
                } else {  // several images: each its own part, the tokens once
                    for (const InferResult& part : split_by_slide(in)) {
                        SinkOut p = stage(part);
                        for (WriteMsg& msg : p.messages) o.messages.push_back(std::move(msg));
                    }
                    release_tokens(*in.batch, o);
                }
                for (WriteMsg& msg : o.messages) std::get<1>(out).try_put(std::move(msg));
                in_flight.fetch_sub(o.tokens, std::memory_order_relaxed);
                patches_done.fetch_add(o.tokens, std::memory_order_relaxed);
                for (int i = 0; i < o.tokens; ++i) std::get<0>(out).try_put(Token{});
            };
        };
        switch (cfg.models[static_cast<std::size_t>(m)].task) {
            case Task::segmentation: return forward(Stitch(cfg, m, r.probe.shape, r.sink_counter));
            case Task::classification: return forward(Classify(cfg, m, r.probe.c, r.sink_counter));
            case Task::detection: return forward(Detect(cfg, m, r.sink_counter));
            case Task::embedding: return forward(Embed(cfg, m, r.probe.c, r.sink_counter));
        }
        throw std::logic_error("unknown task");
    }

    std::vector<int> probe_channels() const {
        std::vector<int> c;
        for (const ModelRun& r : runs) c.push_back(r.probe.c);
        return c;
    }

    int consumers(std::uint16_t read_group) const {
        return static_cast<int>(topology.read_groups[read_group].batch_groups.size());
    }

    Impl(graph& g, const Config& c)
        : cfg(c),
          topology(make_topology(cfg)),
          models(cfg, topology),
          jobs(g),
          slide_limit(g, slides_ahead(cfg)),
          plan(g, serial,
               [this, st = PlanStage(cfg, topology, counters[kPlan], patches_total)](
                   const SlideJob& job, PlanNode::output_ports_type& out) {
                   if (stopping.load(std::memory_order_relaxed)) return;
                   PlanOutcome o = st(job);
                   if (o.cursor) std::get<0>(out).try_put(std::move(o.cursor));
                   else publish(std::move(o.failure), std::get<1>(out));
               }),
          cursors(g),
          tokens(g),
          admit(g),
          emit(g, serial,
               [this](const std::tuple<Token, CursorPtr>& in, EmitNode::output_ports_type& out) {
                   if (stopping.load(std::memory_order_relaxed)) return;  // token and cursor dropped
                   const CursorPtr& cur = std::get<1>(in);
                   const SlidePlan& p = cur->ctx->plans[cur->group];
                   const PatchKey key = p.key(cur->next++);
                   std::get<0>(out).try_put(
                       PatchTask{cur->ctx, key, std::make_shared<PatchTicket>(consumers(key.group))});
                   const std::int64_t now = in_flight.fetch_add(1, std::memory_order_relaxed) + 1;
                   std::int64_t peak = peak_in_flight.load(std::memory_order_relaxed);
                   while (now > peak && !peak_in_flight.compare_exchange_weak(peak, now)) {}
                   if (cur->next == p.count()) {
                       ++cur->group;
                       cur->next = 0;
                   }
                   if (cur->group < cur->ctx->plans.size()) std::get<1>(out).try_put(cur);
               }),
          read_region(g, std::max(1, cfg.readers), ReadRegion(counters[kRead], cfg.on_read_error)),
          normalize(g, unlimited,
                    [st = make_normalize()](const Patch& p, NormalizeNode::output_ports_type& out) {
                        for (SlotFilled& s : st(p)) std::get<0>(out).try_put(std::move(s));
                    }),
          batch_collect(g, serial,
                        [st = BatchCollect(counters[kBatch])](const SlotFilled& s, BatchNode::output_ports_type& out) {
                            if (auto b = st(s)) std::get<0>(out).try_put(std::move(*b));
                        }),
          batches(g),
          write(g, serial,
                [this, st = WriteStage(cfg, counters[kWrite], slides_done)](const WriteMsg& m,
                                                                      WriteNode::output_ports_type& out) {
                    if (auto r = st(m)) std::get<0>(out).try_put(FinishedSlide{m.ctx, std::move(*r)});
                }),
          annotate(g, unlimited,
                   [this, st = AnnotateStage(cfg, probe_channels(), counters[kAnnotate])](
                       FinishedSlide in, AnnotateNode::output_ports_type& out) {
                       publish(st(std::move(in)), std::get<0>(out));
                   }),
          done(g),
          slide_finished(g, serial, [](const SlideResult&) { return continue_msg(); }) {
        // The per-model nodes, in flow order.
        for (std::size_t m = 0; m < cfg.models.size(); ++m) {
            ModelRun& r = runs[m];
            infer.push_back(std::make_unique<InferNode>(
                g, r.model->slots(),
                [st = Infer(*r.model, static_cast<int>(m), topology.model_batch_group[m], *r.slots, r.infer_counter)](
                    const BatchPtr& b, InferNode::output_ports_type& out) {
                    if (auto res = st(b)) std::get<0>(out).try_put(std::move(*res));
                }));
            sink.push_back(std::make_unique<SinkNode>(g, serial, make_sink(static_cast<int>(m))));
        }

        // Edges, in flow order.
        make_edge(jobs, slide_limit);
        make_edge(slide_limit, plan);
        make_edge(output_port<0>(plan), cursors);
        make_edge(output_port<1>(plan), done);
        make_edge(tokens, input_port<0>(admit));
        make_edge(cursors, input_port<1>(admit));
        make_edge(admit, emit);
        make_edge(output_port<0>(emit), read_region);
        make_edge(output_port<1>(emit), cursors);
        make_edge(read_region, normalize);
        make_edge(output_port<0>(normalize), batch_collect);
        make_edge(output_port<0>(batch_collect), batches);
        for (std::size_t m = 0; m < cfg.models.size(); ++m) {
            make_edge(batches, *infer[m]);
            make_edge(output_port<0>(*infer[m]), *sink[m]);
            make_edge(output_port<0>(*sink[m]), tokens);
            make_edge(output_port<1>(*sink[m]), write);
        }
        make_edge(output_port<0>(write), annotate);
        make_edge(output_port<0>(annotate), done);
        make_edge(done, slide_finished);
        make_edge(slide_finished, slide_limit.decrementer());

        for (int i = 0; i < cfg.max_in_flight; ++i) tokens.try_put(Token{});
    }
};

SlidePipeline::Impl::Models::Models(const Config& cfg, const Topology& topology) {
    for (std::size_t i = 0; i < cfg.models.size(); ++i) {
        const ModelConfig& mc = cfg.models[i];
        ModelRun& r = runs.emplace_back();
        const std::string device = mc.device.value_or(cfg.device);
        r.model = std::make_unique<Model>(mc, device, default_torch_threads(cfg), default_infer_slots(cfg, device));
        r.slots = std::make_unique<SlotPool>(r.model->slots());
        try {
            r.probe = r.model->probe(tiling_for(cfg, mc).patch_size);
        } catch (const ModelSettingError& e) {
            // The model is fine; the config asks it for what it does not do.
            throw ConfigError(cfg.source, fmt::format("models[{}].{}", i, e.key()), 0, 0,
                              fmt::format("model '{}': {}", mc.name, e.problem()));
        }
        r.model->warm_up(mc.batch_size, tiling_for(cfg, mc).patch_size);
    }
    for (std::size_t b = 0; b < topology.batch_groups.size(); ++b) {
        const BatchGroup& g = topology.batch_groups[b];
        assemblers.emplace_back(*runs[static_cast<std::size_t>(g.models.front())].model, static_cast<int>(b), g,
                                topology.read_groups[static_cast<std::size_t>(g.read_group)].tiling.patch_size);
    }
}

SlidePipeline::SlidePipeline(graph& g, const Config& cfg)
    : composite_node(g), impl_(std::make_unique<Impl>(g, cfg)) {
    set_external_ports(input_ports_type(impl_->jobs), output_ports_type(impl_->done));
}

SlidePipeline::~SlidePipeline() = default;

void SlidePipeline::stop() { impl_->stopping.store(true, std::memory_order_relaxed); }

void SlidePipeline::observe_results(std::function<void(const SlideResult&)> fn) {
    std::lock_guard<std::mutex> lock(impl_->observer_mu);
    impl_->observer = std::move(fn);
}

namespace {
StageStats stats_of(const StageCounter& c) {
    StageStats s;
    s.busy_s = c.busy_ns.load() * 1e-9;
    s.items = c.items.load();
    s.peak_concurrency = c.peak_running.load();
    return s;
}
void add_to(StageStats& total, const StageStats& s) {
    total.busy_s += s.busy_s;
    total.items += s.items;
    total.peak_concurrency = std::max(total.peak_concurrency, s.peak_concurrency);
}
}  // namespace

std::map<std::string, StageStats> SlidePipeline::stats() const {
    std::map<std::string, StageStats> m;
    for (int i = 0; i < kFixedStages; ++i) m[kStages[i]] = stats_of(impl_->counters[i]);
    // Per model, and summed over models under the stage's plain name.
    for (std::size_t k = 0; k < impl_->runs.size(); ++k) {
        const ModelConfig& mc = impl_->cfg.models[k];
        const StageStats inf = stats_of(impl_->runs[k].infer_counter);
        const StageStats snk = stats_of(impl_->runs[k].sink_counter);
        m["infer:" + mc.name] = inf;
        m[std::string(sink_name(mc.task)) + ":" + mc.name] = snk;
        add_to(m["infer"], inf);
        add_to(m[sink_name(mc.task)], snk);
    }
    return m;
}

Progress SlidePipeline::progress() const {
    Progress p;
    p.patches_done = impl_->patches_done.load();
    p.patches_total = impl_->patches_total.load();
    p.slides_done = impl_->slides_done.load();
    p.peak_in_flight = impl_->peak_in_flight.load();
    p.in_flight = impl_->in_flight.load();
    return p;
}

RuntimeInfo SlidePipeline::runtime() const {
    const Config& cfg = impl_->cfg;
    const DeviceInfo& d = impl_->runs.front().model->info();
    RuntimeInfo r;
    r.device = d.device;
    r.precision = d.precision;
    r.readers = cfg.readers;
    r.threads = static_cast<int>(
        tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism));
    r.torch_threads = d.torch_threads;
    r.infer_slots = impl_->runs.front().model->slots();
    r.max_in_flight = cfg.max_in_flight;
    r.batch_size = cfg.models.front().batch_size;
    return r;
}

}  // namespace flowinfer
