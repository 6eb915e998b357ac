#include "pipeline/cli_support.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace flowinfer::cli {

namespace {

// Stopping takes locks and allocates, which a signal handler must not, so the handler only
// records the signal and writes a byte to a pipe (both async-signal-safe); a watcher thread
// reads the pipe and asks the run to stop. A second signal: the handler calls _exit at once.
std::atomic<int> g_signal{0};
std::atomic<int> g_wake_fd{-1};  // the pipe's write end
static_assert(std::atomic<int>::is_always_lock_free, "used from a signal handler");

extern "C" void on_stop_signal(int sig) {
    int none = 0;
    if (!g_signal.compare_exchange_strong(none, sig)) ::_exit(128 + sig);
    const int saved = errno;
    const char byte = 1;
    if (const int fd = g_wake_fd.load(); fd >= 0) (void)!::write(fd, &byte, 1);
    errno = saved;
}

}  // namespace

StopOnSignals::StopOnSignals(RunStop& stop) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
    read_fd_ = fds[0];
    write_fd_ = fds[1];
    g_wake_fd.store(write_fd_);
    watcher_ = std::thread([this, &stop] {
        char byte = 0;
        while (::read(read_fd_, &byte, 1) < 0 && errno == EINTR) {}
        const int sig = g_signal.load();
        if (sig == 0) return;  // woken by the destructor
        const char* name = sig == SIGINT ? "SIGINT" : "SIGTERM";
        std::fprintf(stderr, "\nflowinfer: %s: stopping; unfinished slides are marked interrupted "
                             "(send it again to quit at once)\n", name);
        stop.request(fmt::format("interrupted by {}", name));
    });
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
}

// The pipe stays open (two descriptors until exit), so the handler never writes to a reused
// descriptor.
StopOnSignals::~StopOnSignals() {
    const char byte = 0;
    (void)!::write(write_fd_, &byte, 1);
    watcher_.join();
}

int StopOnSignals::signal() const { return g_signal.load(); }

}  // namespace flowinfer::cli
