// SHA-256 (FIPS 180-4), for the resume records: a model file's digest there is the one
// `sha256sum model.pt` prints, so a user can tell which model file made a slide's outputs.
// Written here because no linked dependency offers it; speed (a few hundred MB/s) is paid once
// per model file and run.
//
// Thread safety: a Sha256 object is not shared between threads; the free functions are
// reentrant.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace flowinfer {

class Sha256 {
public:
    Sha256();
    void update(const void* data, std::size_t size);
    void update(std::string_view s) { update(s.data(), s.size()); }
    // The digest as 64 lowercase hex digits. The object is spent afterwards.
    std::string hex();

private:
    void block(const std::uint8_t* p);
    std::array<std::uint32_t, 8> h_;
    std::array<std::uint8_t, 64> buf_{};
    std::size_t used_ = 0;
    std::uint64_t bytes_ = 0;
};

std::string sha256_hex(std::string_view data);

// The digest of a file's bytes. Throws Error naming the file when it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace flowinfer
