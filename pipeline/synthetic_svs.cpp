// The synthetic slide as an Aperio-style SVS: the generic pyramid of write_synthetic_slide()
// written to a scratch file, then its directories 0, 2, 4, ... (downsamples 1, 4, 16, ...,
// Aperio's spacing) copied tile by tile, compressed bytes unchanged, into a file whose
// ImageDescription OpenSlide's aperio driver recognises. A level-0 JPEG slide with no level
// at 2x is what a 40x scan read at 20x is: the shrink-by-2 case of the native reader.
#include <flowinfer/demo.hpp>
#include <flowinfer/errors.hpp>

#include "stages/atomic_file.hpp"
#include "stages/tiff/directory.hpp"

#include <fmt/format.h>
#include <tiffio.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <vector>

namespace flowinfer {

namespace {

struct Close {
    void operator()(TIFF* t) const { TIFFClose(t); }
};

}  // namespace

void write_synthetic_svs(const std::string& path, const SyntheticSlideSpec& spec,
                         const SyntheticProgressFn& progress) {
    const std::string scratch = partial_path(path) + ".pyramid.tiff";
    struct Remove {
        std::string path;
        ~Remove() { std::remove(path.c_str()); }
    } remove_scratch{scratch}, remove_partial{partial_path(path)};
    write_synthetic_slide(scratch, spec, progress);

    std::string error;
    TIFFOpenOptions* opts = TIFFOpenOptionsAlloc();
    TIFFOpenOptionsSetErrorHandlerExtR(opts, tiff::capture_error, &error);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, tiff::ignore_warning, nullptr);
    std::unique_ptr<TIFF, Close> in(TIFFOpenExt(scratch.c_str(), "r", opts));
    // BigTIFF when level 0 alone may pass 4 GB, as the generic writer decides.
    const bool big = spec.width * spec.height * 3 > (std::int64_t(3) << 30);
    std::unique_ptr<TIFF, Close> out(TIFFOpenExt(partial_path(path).c_str(), big ? "w8" : "w", opts));
    TIFFOpenOptionsFree(opts);
    if (!in || !out) throw OutputError(path, "cannot open the SVS being written: " + error);
    const std::string description = fmt::format(
        "Aperio Image Library v12.0.15 (flowinfer synthetic)\r\n{}x{} [0,0 {}x{}] (256x256) {} Q={}|AppMag = {}|MPP = {}",
        spec.width, spec.height, spec.width, spec.height, spec.jpeg_quality > 0 ? "JPEG/RGB" : "Deflate/RGB",
        spec.jpeg_quality, spec.mpp > 0 && spec.mpp <= 0.35 ? 40 : 20, spec.mpp);
    for (tdir_t d = 0; d < TIFFNumberOfDirectories(in.get()); d += 2) {
        if (!TIFFSetDirectory(in.get(), d) || !tiff::copy_directory_raw(in.get(), out.get(), d == 0 ? description : ""))
            throw OutputError(path, fmt::format("cannot copy level {} into the SVS: {}", d / 2, error));
    }
    out.reset();  // TIFFClose flushes
    if (!error.empty()) throw OutputError(path, "writing the SVS: " + error);
    {
        std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(partial_path(path).c_str(), "rb"), std::fclose);
        if (!f) throw OutputError(path, "the SVS being written disappeared");
        sync_file(fileno(f.get()), path);
    }
    commit_file(partial_path(path), path);
}

}  // namespace flowinfer
