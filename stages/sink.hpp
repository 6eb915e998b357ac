// What every model's sink node (stitch, classify, detect) does after handling a batch:
// release the batch, and close the model's part of the slide once it has seen every patch.
//
// Thread safety: call from the model's (serial) sink node only; the batch's and tickets'
// counters are atomic because several models' sinks share a batch.
#pragma once

#include "stages/messages.hpp"
#include "stages/stage_stats.hpp"

#include <flowinfer/config.hpp>
#include <flowinfer/errors.hpp>

#include <filesystem>
#include <vector>

namespace flowinfer {

struct SinkOut {
    int tokens = 0;                  // patches every consumer has finished: their tokens go back
    std::vector<WriteMsg> messages;  // for the write node, in order
};

// Stamps `out.messages` with the slide and model, counts them, releases the batch's patches
// (tokens for those no other batch group still holds) and appends the model's end marker
// for the slide when this was its last batch.
void release_batch(const InferResult& r, SinkOut& out);

// The batch's patches, for the model whose sink has finished with it: when it is the last
// model of its batch group, each patch no other batch group still holds returns its token.
void release_tokens(Batch& batch, SinkOut& out);

// A batch of several images' patches (input.images) as one result per image, each on a view
// of its own slots (Batch::view) in slot order, its output rows sliced to match. The shared
// batch's tokens are left to release_tokens.
std::vector<InferResult> split_by_slide(const InferResult& r);

// What every sink's node body does around its own work: time it, skip it for a failed slide,
// turn a ModelError (an output of the wrong shape) or a SlideError into a failed slide, and
// release the batch. An OutputError is not the slide's: it goes on and stops the run.
// body(SlideContext&, ModelSlide&, const SlidePlan&, int n, SinkOut&).
template <class Body>
SinkOut run_sink(const InferResult& r, StageCounter& counter, Body&& body) {
    Batch& batch = *r.batch;
    SlideContext& ctx = *batch.ctx;
    const int n = batch.target.load(std::memory_order_acquire);
    BusyScope busy(counter, n);
    SinkOut out;
    if (!ctx.failed()) {
        try {
            body(ctx, ctx.models[static_cast<std::size_t>(r.model)], ctx.plans[batch.keys[0].group], n, out);
        } catch (const ModelError& e) {
            ctx.fail(e.what());
        } catch (const SlideError& e) {
            ctx.fail(e.what());
        }
    }
    release_batch(r, out);
    return out;
}

// <output_dir>/<slide stem>/, created. Throws OutputError.
std::filesystem::path slide_output_dir(const Config& cfg, const SlideContext& ctx);

// An image's output (input.images): <output_dir>/<model>/<its relative path, extension
// replaced by `ext`>, its directory created. Throws OutputError.
std::string image_output_path(const Config& cfg, const SlideContext& ctx, const std::string& model,
                              const char* ext);

// The first line of a run-wide <model>.csv of images: "image", then the model's columns.
std::string table_header(const std::vector<std::string>& columns);

}  // namespace flowinfer
