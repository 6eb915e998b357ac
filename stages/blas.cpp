#include "stages/blas.hpp"

#include <dlfcn.h>

#include <atomic>
#include <filesystem>
#include <mutex>

namespace flowinfer {

namespace {

using SetThreads = void (*)(int);

// Looked up at run time: the generic libblas.so.3 that Debian's LibTorch links has no such
// function, the implementation behind it may.
SetThreads find_set_threads() {
    for (const char* name : {"openblas_set_num_threads", "bli_thread_set_num_threads"})
        if (void* f = ::dlsym(RTLD_DEFAULT, name)) return reinterpret_cast<SetThreads>(f);
    return nullptr;
}

}  // namespace

void set_blas_threads(int threads) {
    static const SetThreads set = find_set_threads();
    static std::atomic<int> current{0};  // 0: never set
    static std::mutex mu;
    // Every model call asks; the count changes only between runs (or bench shapes).
    if (!set || threads < 1 || current.load(std::memory_order_acquire) == threads) return;
    std::lock_guard<std::mutex> lock(mu);
    if (current.load(std::memory_order_relaxed) == threads) return;
    set(threads);
    current.store(threads, std::memory_order_release);
}

std::string blas_library() {
    void* sgemm = ::dlsym(RTLD_DEFAULT, "sgemm_");
    if (!sgemm) return "built in";
    Dl_info info{};
    if (::dladdr(sgemm, &info) == 0 || !info.dli_fname) return "unknown";
    // libblas.so.3 is an update-alternatives link; the implementation is where it points.
    std::error_code ec;
    const std::filesystem::path real = std::filesystem::canonical(info.dli_fname, ec);
    return ec ? std::string(info.dli_fname) : real.string();
}

}  // namespace flowinfer
