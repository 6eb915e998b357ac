#include "stages/tiff/tile_cache.hpp"

#include <algorithm>

namespace flowinfer::tiff {

void TileCache::set_capacity(std::int64_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    capacity_ = std::max<std::int64_t>(0, bytes);
    evict_locked();
}

std::int64_t TileCache::capacity() const {
    std::lock_guard<std::mutex> lock(mu_);
    return capacity_;
}

TileCacheStats TileCache::stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
}

void TileCache::evict_locked() {
    while (bytes_ > capacity_ && !lru_.empty()) {
        const auto it = entries_.find(lru_.back());
        bytes_ -= it->second->bytes;
        entries_.erase(it);
        lru_.pop_back();
        ++stats_.evicted;
    }
}

std::shared_ptr<const DecodedTile> TileCache::get(std::uint64_t key, const std::function<DecodedTile()>& decode) {
    std::shared_ptr<Entry> e;
    {
        std::unique_lock<std::mutex> lock(mu_);
        const auto it = entries_.find(key);
        if (it != entries_.end()) {
            e = it->second;
            if (e->done) {
                lru_.splice(lru_.begin(), lru_, e->lru);
                ++stats_.hits;
                return e->tile;
            }
            ++stats_.waited;
            done_.wait(lock, [&] { return e->done; });
            if (e->error) std::rethrow_exception(e->error);
            return e->tile;
        }
        e = std::make_shared<Entry>();
        entries_.emplace(key, e);
        ++stats_.decoded;
    }
    std::shared_ptr<const DecodedTile> tile;
    std::exception_ptr error;
    try {
        tile = std::make_shared<const DecodedTile>(decode());
    } catch (...) {
        error = std::current_exception();
    }
    {
        std::lock_guard<std::mutex> lock(mu_);
        e->done = true;
        if (error) {
            e->error = error;
            entries_.erase(key);
        } else {
            e->tile = tile;
            e->bytes = static_cast<std::int64_t>(tile->rgb.size());
            lru_.push_front(key);
            e->lru = lru_.begin();
            bytes_ += e->bytes;
            stats_.peak_bytes = std::max(stats_.peak_bytes, bytes_);
            evict_locked();
        }
    }
    done_.notify_all();
    if (error) std::rethrow_exception(error);
    return tile;
}

}  // namespace flowinfer::tiff
