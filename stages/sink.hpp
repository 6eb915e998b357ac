// What every model's sink node (stitch, classify, detect) does after handling a batch:
// release the batch, and close the model's part of the slide once it has seen every patch.
//
// Thread safety: call from the model's (serial) sink node only; the batch's and tickets'
// counters are atomic because several models' sinks share a batch.
#pragma once

#include "stages/messages.hpp"

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

}  // namespace flowinfer
