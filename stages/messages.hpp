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

// A slide's walk through its plan; re-queued after each emitted patch until exhausted.
struct Cursor {
    SlidePtr ctx;
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

struct PatchTask {
    SlidePtr ctx;
    PatchKey key;
};

// RGB pixels of one patch on the working grid (patch_size^2 * 3, row-major, interleaved);
// empty when the slide has failed.
struct Patch {
    SlidePtr ctx;
    PatchKey key;
    std::vector<std::uint8_t> rgb;
};

// Up to `capacity` normalized patches of one slide, [n, 3, P, P] float32 in `data`.
struct Batch {
    SlidePtr ctx;
    int capacity = 0;
    int patch_size = 0;
    std::vector<PatchKey> keys;   // slot i holds keys[i]
    std::shared_ptr<float> data;  // from Model::host_buffer (pinned on CUDA)
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
    ModelOutput out;  // empty (n = 0) when the slide has failed
};

// stitch -> write: a finished output tile, or (end) the slide's last message count.
struct WriteMsg {
    SlidePtr ctx;
    std::int64_t tx = 0, ty = 0;
    std::vector<std::uint8_t> tile;
    bool end = false;
    std::int64_t tiles_sent = 0;  // with end
};

}  // namespace flowinfer
