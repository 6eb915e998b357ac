// Decoded tiles of one slide, shared by all its readers, so that the walk decodes each tile
// once however much neighbouring patches overlap. Least recently used tiles are dropped
// once the decoded bytes pass the capacity (set from the walk's band of tile rows, see
// reader.hpp); a tile a reader still holds stays alive until it lets go, so memory is at
// most capacity + one tile per patch being assembled.
//
// Concurrent misses on one tile decode it once: the first reader decodes, the others wait
// for its result (or its error, which is not cached: a later read tries again).
//
// Thread safety: every method may be called from any thread at once.
#pragma once

#include "stages/tiff/tile.hpp"

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace flowinfer::tiff {

struct TileCacheStats {
    std::int64_t decoded = 0;  // tiles decoded (misses)
    std::int64_t hits = 0;     // found decoded
    std::int64_t waited = 0;   // found being decoded by another reader, and waited for it
    std::int64_t evicted = 0;
    std::int64_t peak_bytes = 0;  // decoded bytes held by the cache at most
};

class TileCache {
public:
    explicit TileCache(std::int64_t capacity_bytes = 0) : capacity_(capacity_bytes) {}
    void set_capacity(std::int64_t bytes);
    std::int64_t capacity() const;

    // The tile under `key`, from the cache or from `decode` (run on the calling thread,
    // outside the cache's lock). Rethrows decode's exception to every reader waiting for it.
    std::shared_ptr<const DecodedTile> get(std::uint64_t key, const std::function<DecodedTile()>& decode);

    TileCacheStats stats() const;

private:
    struct Entry {
        std::shared_ptr<const DecodedTile> tile;
        std::exception_ptr error;
        bool done = false;
        std::list<std::uint64_t>::iterator lru;  // valid once done without error
        std::int64_t bytes = 0;
    };
    void evict_locked();

    mutable std::mutex mu_;
    std::condition_variable done_;
    std::unordered_map<std::uint64_t, std::shared_ptr<Entry>> entries_;
    std::list<std::uint64_t> lru_;  // front: most recent; decoded entries only
    std::int64_t capacity_ = 0, bytes_ = 0;
    TileCacheStats stats_;
};

}  // namespace flowinfer::tiff
