// The typed messages that flow between the graph's nodes, in flow order.
//
// Thread safety: a message is owned by the node body that holds it; shared parts (the
// SlideContext, a Batch's buffer) follow the rules in their own headers.
#pragma once

#include "stages/context.hpp"
#include "stages/model.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace flowinfer {

// One admission ticket for a patch; `max_in_flight` of them circulate (tokens -> emit ->
// ... -> stitch -> tokens), which bounds the patches alive in the graph.
struct Token {};

// A slide's walk through its plans (one per read group, in order); re-queued after each
// emitted patch until exhausted.
struct Cursor {
    SlidePtr ctx;
    std::uint16_t group = 0;
    std::uint64_t next = 0;
};
using CursorPtr = std::shared_ptr<Cursor>;

// priority_queue_node pops the "largest": make that the earliest slide, so slides finish in
// order and at most the tail of one overlaps the head of the next.
struct CursorOrder {
    bool operator()(const CursorPtr& a, const CursorPtr& b) const {
        return a->ctx->job.index > b->ctx->job.index;
    }
};

// A patch is alive until every batch group of its read group has finished with it; the last
// one returns its token.
struct PatchTicket {
    explicit PatchTicket(int consumers) : pending(consumers) {}
    std::atomic<int> pending;
};
using TicketPtr = std::shared_ptr<PatchTicket>;

struct PatchTask {
    SlidePtr ctx;
    PatchKey key;
    TicketPtr ticket;
};

// RGB pixels of one patch on the working grid (patch_size^2 * 3, row-major, interleaved);
// empty when the slide has failed, the patch is a placeholder, or it is unreadable.
struct Patch {
    SlidePtr ctx;
    PatchKey key;
    TicketPtr ticket;
    std::vector<std::uint8_t> rgb;
    bool unreadable = false;  // OpenSlide could not read it (runtime.on_read_error = "skip")
};

// Up to `capacity` patches of one slide, shared by every model of its batch group, as raw RGB
// [n, P, P, 3] uint8 in `rgb`. Each model normalizes where it runs (Model::run_rgb): a quarter
// of float32's bytes to upload to a GPU, and on CPU a quarter of the memory traffic between
// the normalize stage and inference.
//
// Patch-directory mode: a batch holds patches of several images; `slot_ctx[i]` is slot i's
// image (slot_ctx is empty for a slide's batch, whose slots are all `ctx`'s; with images,
// `ctx` is slot 0's). The sinks see one view per image (split_by_slide, sink.hpp).
struct Batch {
    SlidePtr ctx;
    std::vector<SlidePtr> slot_ctx;
    const SlidePtr& ctx_of(int i) const { return slot_ctx.empty() ? ctx : slot_ctx[static_cast<std::size_t>(i)]; }
    // Whether no slot's slide can use the batch's output.
    bool all_failed() const {
        if (slot_ctx.empty()) return ctx->failed();
        const int n = target.load(std::memory_order_acquire);
        for (int i = 0; i < n; ++i)
            if (!slot_ctx[static_cast<std::size_t>(i)]->failed()) return false;
        return true;
    }
    int group = 0;  // batch group
    int capacity = 0;
    int patch_size = 0;
    std::vector<PatchKey> keys;   // slot i holds keys[i]
    std::vector<TicketPtr> tickets;
    // Slot i's patch could not be read: its slot holds no pixels, sinks leave it out. Set by
    // the assembler (under its lock) when the slot is reserved.
    std::vector<std::uint8_t> unreadable;
    // Whether any slot holds pixels (not unreadable, not a placeholder).
    bool any_readable() const {
        const int n = target.load(std::memory_order_acquire);
        for (int i = 0; i < n; ++i)
            if (!unreadable[static_cast<std::size_t>(i)] && !keys[static_cast<std::size_t>(i)].placeholder) return true;
        return false;
    }
    std::atomic<int> consumers{0};  // models still to finish with this batch
    // One image's part of a shared batch (split_by_slide): its tokens are the shared batch's,
    // released once by the sink that split it. A view has no pixels (`rgb` is null).
    bool view = false;
    std::shared_ptr<std::uint8_t> rgb;  // from Model::host_bytes (pinned for a GPU)
    // Slots that will be filled: capacity, or fewer for a slide's last batch. Set by the
    // assembler before the slot that completes the batch is handed out.
    std::atomic<int> target{0};
    int filled = 0;  // batch_collect only
};
using BatchPtr = std::shared_ptr<Batch>;

// normalize -> batch_collect: one slot of `batch` has been written.
struct SlotFilled {
    BatchPtr batch;
};

struct InferResult {
    BatchPtr batch;
    int model = 0;
    ModelOutput out;  // empty (n = 0) when the slide has failed or the batch has no pixels
};

// One GeoJSON feature / CSV row, level-0 pixels.
struct ObjectRow {
    double x1 = 0, y1 = 0, x2 = 0, y2 = 0;
    int cls = 0;
    std::vector<double> measurements;  // named by the model's sink
    std::vector<double> csv;
};

// sink -> write: a finished TIFF tile, objects, feature rows, or (end) the model's message
// count for a slide.
struct WriteMsg {
    enum Kind { tile, objects, features, end };
    SlidePtr ctx;
    int model = 0;
    Kind kind = tile;
    std::int64_t tx = 0, ty = 0;
    std::vector<std::uint8_t> pixels;
    std::vector<ObjectRow> rows;
    FeatureRows feature_rows;
    std::int64_t sent = 0;  // with end: messages the sink sent before it
};

// write -> annotate: a slide whose files are final, for the outputs made from them (contours,
// the preview).
struct FinishedSlide {
    SlidePtr ctx;
    SlideResult result;
};

}  // namespace flowinfer
