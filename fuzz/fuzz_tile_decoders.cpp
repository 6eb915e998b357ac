// libFuzzer target: the native reader's tile decoders (stages/tiff/jpeg_decoder.hpp,
// stages/tiff/jp2k_decoder.hpp) and its directory reader (stages/tiff/ifd.hpp).
//
// Input: a 5-byte header, then the body.
//   byte 0   what to run, % 5: 0 JPEG with JPEGTables, 1 JPEG without tables (a self-contained
//            stream), 2 JPEG 2000 YCbCr (33003), 3 JPEG 2000 RGB (33005), 4 read_directories()
//            on a file holding the body
//   byte 1   the expected tile size: width kSizes[(b & 15) % 6], height kSizes[(b >> 4) % 6]
//   byte 2   JPEG only: bit 0 the colour (0 YCbCr, 1 RGB), bits 1-2 the scale (1, 2, 4, 8)
//   byte 3-4 JPEG with tables only: little-endian split point; the first min(split, size) body
//            bytes are the tables, the rest the tile
// A decoder must either return pixels of the documented size or throw TileDecodeError; on
// failure decode_jp2k_tile must leave its output untouched, on success it must write all of
// it. Any other exception escapes (an uncaught exception aborts), and a crash, a sanitizer
// report, a leak or a timeout is a bug too. libjpeg, OpenJPEG and libtiff are the system's,
// not instrumented: the search is guided by flowinfer's code only, and ASan checks only the
// accesses flowinfer's code makes (the JPEG 2000 unpacking reads OpenJPEG's buffers).
//
// Seeds: fuzz/corpus/tile_decoders/, made by fuzz/make_tile_seeds.cpp (README says how).

#include "stages/tiff/tile.hpp"
#include "stages/tiff/ifd.hpp"
#include "stages/tiff/jp2k_decoder.hpp"
#include "stages/tiff/jpeg_decoder.hpp"

#include <tiffio.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

namespace {

namespace fs = std::filesystem;
using flowinfer::tiff::TileDecodeError;

constexpr int kSizes[6] = {8, 16, 64, 240, 256, 15};
constexpr int kScales[4] = {1, 2, 4, 8};
constexpr std::size_t kHeader = 5;
// Tiles are a few 100 kB at most; bigger inputs only slow the search. The tile sizes above
// bound what the harness allocates (256 x 256 x 3 bytes, twice), far under 64 MB.
constexpr std::size_t kMaxInput = 1 << 20;

[[noreturn]] void bug(const char* what) {
    std::fprintf(stderr, "fuzz_tile_decoders: invariant violated: %s\n", what);
    __builtin_trap();
}

void check_message(const TileDecodeError& e) {
    if (e.what()[0] == '\0') bug("empty TileDecodeError message");
}

void fuzz_jpeg(bool with_tables, std::uint8_t opts, std::size_t split, const std::uint8_t* body,
               std::size_t n, int w, int h) {
    const auto colour = (opts & 1) ? flowinfer::tiff::JpegColour::rgb : flowinfer::tiff::JpegColour::ycbcr;
    const int scale = kScales[(opts >> 1) & 3];
    std::vector<std::uint8_t> tables;
    if (with_tables) {
        if (split > n) split = n;
        tables.assign(body, body + split);
        body += split;
        n -= split;
    }
    // The decoder reads the tile in place: a copy of exactly n bytes lets ASan see an overread.
    const std::vector<std::uint8_t> tile(body, body + n);
    try {
        const flowinfer::tiff::DecodedTile t =
            flowinfer::tiff::decode_jpeg_tile(tables, tile.data(), tile.size(), colour, w, h, scale);
        if (t.width != (w + scale - 1) / scale || t.height != (h + scale - 1) / scale)
            bug("JPEG: decoded size is not ceil(tile size / scale)");
        if (t.rgb.size() != static_cast<std::size_t>(t.width) * t.height * 3) bug("JPEG: rgb.size()");
    } catch (const TileDecodeError& e) {
        check_message(e);
    }
}

void fuzz_jp2k(flowinfer::tiff::Jp2kColour colour, const std::uint8_t* body, std::size_t n, int w, int h) {
    const std::vector<std::uint8_t> tile(body, body + n);
    const std::size_t bytes = static_cast<std::size_t>(w) * h * 3;
    std::vector<std::uint8_t> rgb(bytes, 0xa5);
    try {
        flowinfer::tiff::decode_jp2k_tile(tile.data(), tile.size(), colour, w, h, rgb.data());
    } catch (const TileDecodeError& e) {
        check_message(e);
        for (std::uint8_t v : rgb)
            if (v != 0xa5) bug("JPEG 2000: a failed decode wrote to the output");
        return;
    }
    // Decoded: every byte must have been written (and the decoder deterministic). A second
    // decode over another fill value must give the same bytes.
    std::vector<std::uint8_t> again(bytes, 0x5a);
    try {
        flowinfer::tiff::decode_jp2k_tile(tile.data(), tile.size(), colour, w, h, again.data());
    } catch (const TileDecodeError&) {
        bug("JPEG 2000: a tile decoded once failed the second time");
    }
    if (rgb != again) bug("JPEG 2000: output bytes left unwritten, or two decodes differ");
}

// read_directories() opens a path: the body goes to a file on tmpfs where there is one. The
// file is unlinked at once and named through /proc/self/fd, so that no run, not even one that
// crashes, leaves it behind.
struct Scratch {
    int fd = -1;
    std::string path;
    Scratch() {
        const fs::path dir = fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
        std::string templ = (dir / "flowinfer-fuzz-ifd-XXXXXX").string();
        fd = mkstemp(templ.data());
        if (fd < 0) bug("cannot create the scratch file");
        unlink(templ.c_str());
        path = "/proc/self/fd/" + std::to_string(fd);
    }
    ~Scratch() { close(fd); }
};

void fuzz_directories(const std::uint8_t* body, std::size_t n) {
    static Scratch scratch;
    if (ftruncate(scratch.fd, 0) != 0) bug("cannot truncate the scratch file");
    for (std::size_t done = 0; done < n;) {
        const ssize_t k = pwrite(scratch.fd, body + done, n - done, static_cast<off_t>(done));
        if (k <= 0) bug("cannot write the scratch file");
        done += static_cast<std::size_t>(k);
    }
    try {
        const std::vector<flowinfer::tiff::TiffDirectory> dirs = flowinfer::tiff::read_directories(scratch.path);
        if (dirs.empty()) bug("read_directories returned no directory");
        for (const auto& d : dirs) {
            if (d.offsets.size() != d.byte_counts.size()) bug("offsets and byte counts differ in number");
            if (!d.tiled && !d.offsets.empty()) bug("tile offsets in a stripped directory");
            if (d.tiled && (d.tile_w <= 0 || d.tile_h <= 0 || d.width <= 0 || d.height <= 0))
                bug("tiled directory with an empty image or tile");
            // The reader indexes offsets by row * tiles_across() + col: at least one per tile
            // of the grid (ImageDepth > 1 or separate planes make more).
            if (d.tiled && d.offsets.size() < static_cast<std::size_t>(d.tiles_across() * d.tiles_down()))
                bug("fewer tile offsets than tiles in the grid");
        }
    } catch (const TileDecodeError& e) {
        check_message(e);
    }
}

void ignore_tiff(const char*, const char*, va_list) {}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    // read_directories installs its own handlers per open; these catch anything else.
    TIFFSetWarningHandler(ignore_tiff);
    TIFFSetErrorHandler(ignore_tiff);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < kHeader || size > kMaxInput) return 0;
    const int what = data[0] % 5;
    const int w = kSizes[(data[1] & 15) % 6], h = kSizes[(data[1] >> 4) % 6];
    const std::uint8_t opts = data[2];
    const std::size_t split = data[3] | static_cast<std::size_t>(data[4]) << 8;
    const std::uint8_t* body = data + kHeader;
    const std::size_t n = size - kHeader;
    switch (what) {
        case 0: fuzz_jpeg(true, opts, split, body, n, w, h); break;
        case 1: fuzz_jpeg(false, opts, split, body, n, w, h); break;
        case 2: fuzz_jp2k(flowinfer::tiff::Jp2kColour::ycbcr, body, n, w, h); break;
        case 3: fuzz_jp2k(flowinfer::tiff::Jp2kColour::rgb, body, n, w, h); break;
        default: fuzz_directories(body, n); break;
    }
    return 0;
}
