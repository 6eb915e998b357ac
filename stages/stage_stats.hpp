// Per-stage busy time and item counts, updated lock-free from node bodies.
//
// Thread safety: every member is atomic; any thread may add or read at any time.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace flowinfer {

struct StageCounter {
    std::atomic<std::int64_t> busy_ns{0};
    std::atomic<std::int64_t> items{0};
    std::atomic<int> running{0};
    std::atomic<int> peak_running{0};
};

// Adds the lifetime of the scope to `c.busy_ns` and `items` to c.items.
class BusyScope {
public:
    explicit BusyScope(StageCounter& c, std::int64_t items = 1)
        : c_(c), items_(items), start_(std::chrono::steady_clock::now()) {
        const int now = c_.running.fetch_add(1, std::memory_order_relaxed) + 1;
        int peak = c_.peak_running.load(std::memory_order_relaxed);
        while (now > peak && !c_.peak_running.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {}
    }
    ~BusyScope() {
        c_.running.fetch_sub(1, std::memory_order_relaxed);
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::steady_clock::now() - start_).count();
        c_.busy_ns.fetch_add(ns, std::memory_order_relaxed);
        c_.items.fetch_add(items_, std::memory_order_relaxed);
    }
    void set_items(std::int64_t n) { items_ = n; }
    BusyScope(const BusyScope&) = delete;
    BusyScope& operator=(const BusyScope&) = delete;

private:
    StageCounter& c_;
    std::int64_t items_;
    std::chrono::steady_clock::time_point start_;
};

}  // namespace flowinfer
