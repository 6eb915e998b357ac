#include "stages/buffer_pool.hpp"

namespace flowinfer {

std::shared_ptr<void> BufferPool::get(std::size_t bytes) {
    std::shared_ptr<void> block;
    {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = free_.find(bytes);
        if (it != free_.end()) {
            block = std::move(it->second);
            free_.erase(it);
        }
    }
    if (!block) {
        block = alloc_(bytes);
        allocations_.fetch_add(1, std::memory_order_relaxed);
    }
    void* data = block.get();
    // The deleter keeps the pool alive, so buffers may outlive the Model.
    return std::shared_ptr<void>(data, [pool = shared_from_this(), block, bytes](void*) mutable {
        std::lock_guard<std::mutex> lock(pool->mu_);
        pool->free_.emplace(bytes, std::move(block));
    });
}

}  // namespace flowinfer
