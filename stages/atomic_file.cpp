#include "stages/atomic_file.hpp"

#include <flowinfer/errors.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fcntl.h>
#include <unistd.h>

namespace flowinfer {

namespace {

// 0, or the errno of a failed fsync. Not every file system can sync (some FUSE mounts):
// only a real failure to store the data counts.
int fsync_error(int fd) {
    while (::fsync(fd) != 0) {
        if (errno == EINTR) continue;
        return errno == EINVAL || errno == EROFS ? 0 : errno;
    }
    return 0;
}

}  // namespace

std::string partial_path(const std::string& final_path) { return final_path + ".partial"; }

void sync_file(int fd, const std::string& path) {
    if (const int err = fsync_error(fd))
        throw OutputError(path, fmt::format("cannot sync to disk: {}", std::strerror(err)));
}

void commit_file(const std::string& partial, const std::string& final_path) {
    if (std::rename(partial.c_str(), final_path.c_str()) != 0) {
        const int err = errno;
        ::unlink(partial.c_str());
        throw OutputError(final_path, fmt::format("cannot rename {} to the final name: {}", partial, std::strerror(err)));
    }
    std::string dir = std::filesystem::path(final_path).parent_path().string();
    if (dir.empty()) dir = ".";
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;  // the file is complete; only the rename's durability is at stake
    try {
        sync_file(fd, final_path);
    } catch (...) {
        ::close(fd);
        throw;
    }
    ::close(fd);
}

void sync_and_commit(const std::string& partial, const std::string& final_path) {
    const int fd = ::open(partial.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        const int err = errno;
        ::unlink(partial.c_str());
        throw OutputError(final_path, fmt::format("cannot open {} to sync it: {}", partial, std::strerror(err)));
    }
    try {
        sync_file(fd, final_path);
    } catch (...) {
        ::close(fd);
        ::unlink(partial.c_str());
        throw;
    }
    ::close(fd);
    commit_file(partial, final_path);
}

void write_file_atomically(const std::string& path, std::string_view bytes, Sync sync) {
    const std::string tmp = partial_path(path);
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw OutputError(path, fmt::format("cannot create {}: {}", tmp, std::strerror(errno)));
    const auto fail = [&](const std::string& problem) {
        ::close(fd);
        ::unlink(tmp.c_str());
        throw OutputError(path, problem);
    };
    for (std::size_t done = 0; done < bytes.size();) {
        const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail(fmt::format("cannot write {}: {}", tmp, std::strerror(n < 0 ? errno : ENOSPC)));
        done += static_cast<std::size_t>(n);
    }
    if (sync == Sync::now)
        if (const int err = fsync_error(fd)) fail(fmt::format("cannot sync {} to disk: {}", tmp, std::strerror(err)));
    if (::close(fd) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        throw OutputError(path, fmt::format("cannot write {}: {}", tmp, std::strerror(err)));
    }
    if (sync == Sync::now) {
        commit_file(tmp, path);
    } else if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        throw OutputError(path, fmt::format("cannot rename {} to the final name: {}", tmp, std::strerror(err)));
    }
}

void sync_filesystem(const std::string& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) throw OutputError(dir, fmt::format("cannot open it to sync its files: {}", std::strerror(errno)));
    const int rc = ::syncfs(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0) throw OutputError(dir, fmt::format("cannot sync its files to disk: {}", std::strerror(err)));
}

}  // namespace flowinfer
