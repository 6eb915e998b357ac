// Host batch buffers, recycled: a batch's buffer comes back to the pool when the batch dies,
// so a run allocates (and, on CUDA, pins) a handful of buffers instead of one per batch.
//
// Thread safety: get() and allocations() may be called from any thread. A buffer handed out
// keeps the pool alive, so buffers may outlive the pool's owner (the Model).
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>

namespace flowinfer {

class BufferPool : public std::enable_shared_from_this<BufferPool> {
public:
    // Makes a new block of `bytes` (plain or pinned memory: the Model's choice).
    using Alloc = std::function<std::shared_ptr<void>(std::size_t)>;
    explicit BufferPool(Alloc alloc) : alloc_(std::move(alloc)) {}

    // A free block of exactly `bytes`, or a new one. Create the pool with make_shared.
    std::shared_ptr<void> get(std::size_t bytes);
    // Blocks made so far (a block handed out again is not counted).
    std::size_t allocations() const { return allocations_.load(std::memory_order_relaxed); }

private:
    Alloc alloc_;
    std::atomic<std::size_t> allocations_{0};
    std::mutex mu_;
    std::multimap<std::size_t, std::shared_ptr<void>> free_;
};

}  // namespace flowinfer
