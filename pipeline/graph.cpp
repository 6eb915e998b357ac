// The flowinfer graph: every node in flow order, then every edge in flow order.
//
//   jobs -> slide_limit -> plan -> cursors --\
//                                 tokens --> admit -> emit -> read_region -> normalize
//   -> batch_collect -> infer -> stitch -> write -> done
//   emit  -> cursors      (a slide's cursor goes back until its patches are all emitted)
//   stitch -> tokens      (a stitched patch frees its admission token)
//   done -> slide_finished -> slide_limit  (a finished slide lets the next one be planned)
//
// Backpressure: `max_in_flight` tokens circulate, and `emit` needs one per patch, so no
// more patches than that are alive between emit and stitch. At most kSlidesAhead slides are
// open at once.
#include "stages/batch_collect.hpp"
#include "stages/infer.hpp"
#include "stages/model.hpp"
#include "stages/normalize.hpp"
#include "stages/plan.hpp"
#include "stages/read_region.hpp"
#include "stages/stitch.hpp"
#include "stages/write.hpp"

#include <flowinfer/errors.hpp>
#include <flowinfer/pipeline.hpp>

#include <tbb/global_control.h>

#include <algorithm>
#include <thread>

namespace flowinfer {

using namespace tbb::flow;

namespace {

// Two slides open at once lets the next one's first patches overlap the last one's tail.
constexpr int kSlidesAhead = 2;

const char* const kStages[] = {"plan", "read_region", "normalize", "batch_collect",
                               "infer", "stitch", "write"};
enum StageId { kPlan, kRead, kNormalize, kBatch, kInfer, kStitch, kWrite, kStageCount };

int default_torch_threads(const Config& cfg) {
    if (cfg.torch_threads > 0) return cfg.torch_threads;
    const int cores = cfg.threads > 0 ? cfg.threads
                                      : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    // Leave a core to the readers while the model runs, so TBB and OpenMP do not fight.
    return std::max(1, cores - 1);
}

}  // namespace

struct SlidePipeline::Impl {
    using PlanNode = multifunction_node<SlideJob, std::tuple<CursorPtr, SlideResult>>;
    using EmitNode = multifunction_node<std::tuple<Token, CursorPtr>, std::tuple<PatchTask, CursorPtr>>;
    using BatchNode = multifunction_node<SlotFilled, std::tuple<BatchPtr>>;
    using StitchNode = multifunction_node<InferResult, std::tuple<Token, WriteMsg>>;
    using WriteNode = multifunction_node<WriteMsg, std::tuple<SlideResult>>;

    Config cfg;
    Model model;
    StageCounter counters[kStageCount];
    std::atomic<std::int64_t> patches_total{0}, patches_done{0}, slides_done{0};
    std::atomic<std::int64_t> in_flight{0}, peak_in_flight{0};
    BatchAssembler assembler;
    SlotPool slots;

    // Nodes, in flow order.
    queue_node<SlideJob> jobs;
    limiter_node<SlideJob> slide_limit;
    PlanNode plan;
    priority_queue_node<CursorPtr, CursorOrder> cursors;
    buffer_node<Token> tokens;
    join_node<std::tuple<Token, CursorPtr>, reserving> admit;
    EmitNode emit;
    function_node<PatchTask, Patch> read_region;
    function_node<Patch, SlotFilled> normalize;
    BatchNode batch_collect;
    function_node<BatchPtr, InferResult> infer;
    StitchNode stitch;
    WriteNode write;
    broadcast_node<SlideResult> done;
    function_node<SlideResult, continue_msg> slide_finished;

    Impl(graph& g, const Config& c)
        : cfg(c),
          model(cfg.models.front(), cfg.device, default_torch_threads(cfg), cfg.infer_slots),
          assembler(model, cfg.models.front().batch_size, cfg.patch_size),
          slots(model.slots()),
          jobs(g),
          slide_limit(g, kSlidesAhead),
          plan(g, serial,
               [st = PlanStage(cfg, counters[kPlan], patches_total)](const SlideJob& job, PlanNode::output_ports_type& out) {
                   PlanOutcome o = st(job);
                   if (o.cursor) std::get<0>(out).try_put(std::move(o.cursor));
                   else std::get<1>(out).try_put(std::move(o.failure));
               }),
          cursors(g),
          tokens(g),
          admit(g),
          emit(g, serial,
               [this](const std::tuple<Token, CursorPtr>& in, EmitNode::output_ports_type& out) {
                   const CursorPtr& cur = std::get<1>(in);
                   const SlidePlan& p = cur->ctx->plan;
                   std::get<0>(out).try_put(PatchTask{cur->ctx, p.key(cur->next++)});
                   const std::int64_t now = in_flight.fetch_add(1, std::memory_order_relaxed) + 1;
                   std::int64_t peak = peak_in_flight.load(std::memory_order_relaxed);
                   while (now > peak && !peak_in_flight.compare_exchange_weak(peak, now)) {}
                   if (cur->next < p.count()) std::get<1>(out).try_put(cur);
               }),
          read_region(g, std::max(1, cfg.readers), ReadRegion(counters[kRead])),
          normalize(g, unlimited,
                    Normalize(cfg.models.front().mean, cfg.models.front().std, assembler,
                              counters[kNormalize])),
          batch_collect(g, serial,
                        [st = BatchCollect(counters[kBatch])](const SlotFilled& s, BatchNode::output_ports_type& out) {
                            if (auto b = st(s)) std::get<0>(out).try_put(std::move(*b));
                        }),
          infer(g, model.slots(), Infer(model, slots, counters[kInfer])),
          stitch(g, serial,
                 [this, st = Stitch(cfg, counters[kStitch])](const InferResult& r, StitchNode::output_ports_type& out) {
                     Stitch::Out o = st(r);
                     for (WriteMsg& m : o.messages) std::get<1>(out).try_put(std::move(m));
                     in_flight.fetch_sub(o.tokens, std::memory_order_relaxed);
                     patches_done.fetch_add(o.tokens, std::memory_order_relaxed);
                     for (int i = 0; i < o.tokens; ++i) std::get<0>(out).try_put(Token{});
                 }),
          write(g, serial,
                [st = WriteStage(counters[kWrite], slides_done)](const WriteMsg& m, WriteNode::output_ports_type& out) {
                    if (auto r = st(m)) std::get<0>(out).try_put(std::move(*r));
                }),
          done(g),
          slide_finished(g, serial, [](const SlideResult&) { return continue_msg(); }) {
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
        make_edge(normalize, batch_collect);
        make_edge(output_port<0>(batch_collect), infer);
        make_edge(infer, stitch);
        make_edge(output_port<0>(stitch), tokens);
        make_edge(output_port<1>(stitch), write);
        make_edge(output_port<0>(write), done);
        make_edge(done, slide_finished);
        make_edge(slide_finished, slide_limit.decrementer());

        for (int i = 0; i < cfg.max_in_flight; ++i) tokens.try_put(Token{});
    }
};

SlidePipeline::SlidePipeline(graph& g, const Config& cfg)
    : composite_node(g), impl_(std::make_unique<Impl>(g, cfg)) {
    set_external_ports(input_ports_type(impl_->jobs), output_ports_type(impl_->done));
}

SlidePipeline::~SlidePipeline() = default;

std::map<std::string, StageStats> SlidePipeline::stats() const {
    std::map<std::string, StageStats> m;
    for (int i = 0; i < kStageCount; ++i) {
        StageStats& s = m[kStages[i]];
        s.busy_s = impl_->counters[i].busy_ns.load() * 1e-9;
        s.items = impl_->counters[i].items.load();
        s.peak_concurrency = impl_->counters[i].peak_running.load();
    }
    return m;
}

RuntimeInfo SlidePipeline::runtime() const {
    const Config& cfg = impl_->cfg;
    const DeviceInfo& d = impl_->model.info();
    RuntimeInfo r;
    r.device = d.device;
    r.precision = d.precision;
    r.readers = cfg.readers;
    r.threads = static_cast<int>(
        tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism));
    r.torch_threads = d.torch_threads;
    r.infer_slots = impl_->model.slots();
    r.max_in_flight = cfg.max_in_flight;
    r.batch_size = cfg.models.front().batch_size;
    return r;
}

Progress SlidePipeline::progress() const {
    Progress p;
    p.patches_done = impl_->patches_done.load();
    p.patches_total = impl_->patches_total.load();
    p.slides_done = impl_->slides_done.load();
    p.peak_in_flight = impl_->peak_in_flight.load();
    return p;
}

}  // namespace flowinfer
