#include "stages/sha256.hpp"

#include <flowinfer/errors.hpp>

#include <fmt/format.h>
#include <openssl/evp.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>

namespace flowinfer {

struct Sha256::Ctx {
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    ~Ctx() { EVP_MD_CTX_free(md); }
};

// libcrypto fails only when out of memory or misconfigured (a FIPS provider without SHA-256
// is not a thing); those are not input errors, so they surface as a plain Error.
static void check(int ok, const char* what) {
    if (ok != 1) throw Error(fmt::format("OpenSSL {} failed for SHA-256", what));
}

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {
    if (!ctx_->md) throw Error("OpenSSL EVP_MD_CTX_new failed");
    check(EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr), "EVP_DigestInit_ex");
}

Sha256::~Sha256() = default;

void Sha256::update(const void* data, std::size_t size) {
    check(EVP_DigestUpdate(ctx_->md, data, size), "EVP_DigestUpdate");
}

std::string Sha256::hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    check(EVP_DigestFinal_ex(ctx_->md, digest, &n), "EVP_DigestFinal_ex");
    std::string out;
    out.reserve(2 * n);
    for (unsigned int i = 0; i < n; ++i) out += fmt::format("{:02x}", digest[i]);
    return out;
}

std::string sha256_hex(std::string_view data) {
    Sha256 s;
    s.update(data);
    return s.hex();
}

std::string sha256_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(fmt::format("{}: cannot read: {}", path, std::strerror(errno)));
    Sha256 s;
    const auto buf = std::make_unique<char[]>(1 << 20);
    for (;;) {
        const ssize_t n = ::read(fd, buf.get(), 1 << 20);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const int err = errno;
            ::close(fd);
            throw Error(fmt::format("{}: cannot read: {}", path, std::strerror(err)));
        }
        if (n == 0) break;
        s.update(buf.get(), static_cast<std::size_t>(n));
    }
    ::close(fd);
    return s.hex();
}

std::string sha256_file_cached(const std::string& path) {
    struct Known {
        std::int64_t size = -1, mtime_ns = -1;
        std::string digest;
    };
    static std::mutex mu;
    static std::map<std::string, Known> known;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) throw Error(fmt::format("{}: cannot read: {}", path, std::strerror(errno)));
    const std::int64_t size = static_cast<std::int64_t>(st.st_size);
    const std::int64_t mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    {
        std::lock_guard<std::mutex> lock(mu);
        const auto it = known.find(path);
        if (it != known.end() && it->second.size == size && it->second.mtime_ns == mtime_ns) return it->second.digest;
    }
    // Hashed outside the lock: another file's digest need not wait for a large checkpoint.
    std::string digest = sha256_file(path);
    std::lock_guard<std::mutex> lock(mu);
    known[path] = Known{size, mtime_ns, digest};
    return digest;
}

}  // namespace flowinfer
