// SHA-256 for the resume records: a model file's digest there is the one `sha256sum model.pt`
// prints, so a user can tell which model file made a slide's outputs. OpenSSL's libcrypto
// (EVP interface) computes it: a vetted implementation with SHA-NI/AVX2 code paths, where a
// multi-gigabyte foundation-model checkpoint is hashed at disk speed.
//
// Thread safety: a Sha256 object is not shared between threads; the free functions are
// thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace flowinfer {

class Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;
    void update(const void* data, std::size_t size);
    void update(std::string_view s) { update(s.data(), s.size()); }
    // The digest as 64 lowercase hex digits. The object is spent afterwards.
    std::string hex();

private:
    struct Ctx;
    std::unique_ptr<Ctx> ctx_;  // keeps <openssl/evp.h> out of the callers
};

std::string sha256_hex(std::string_view data);

// The digest of a file's bytes, read in 1 MiB pieces (memory stays flat for any file size).
// Throws Error naming the file when it cannot be read.
std::string sha256_file(const std::string& path);

// sha256_file, remembered for the process on (path, size, modification time): a model file's
// digest goes into the resume records and into each features file's attributes, and a
// multi-gigabyte foundation-model checkpoint is hashed once per run. A file rewritten since
// (another size or mtime) is hashed again. Thread-safe.
std::string sha256_file_cached(const std::string& path);

}  // namespace flowinfer
