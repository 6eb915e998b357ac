// flowinfer synth: synthetic slides (generic TIFF, Aperio SVS with JPEG or JPEG 2000 tiles) and
// patch directories of PNG or JPEG tiles, for demos, tests and benchmarks.
#include "pipeline/cli_support.hpp"
#include "pipeline/synthetic_jp2k.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>

namespace flowinfer::cli {

CLI::App* add_synth(CLI::App& app, SynthArgs& a) {
    CLI::App* cmd = app.add_subcommand("synth", "Writes a synthetic H&E-like tiled pyramidal slide (generic TIFF)");
    flowinfer::SyntheticSlideSpec& s = a.spec;
    cmd->add_option("OUT.tiff", a.out, "The slide to write")->required();
    cmd->add_option("--width", s.width, "Level-0 width in pixels")->capture_default_str();
    cmd->add_option("--height", s.height, "Level-0 height in pixels")->capture_default_str();
    cmd->add_option("--mpp", s.mpp, "Microns per pixel (0: no resolution tags)")->capture_default_str();
    cmd->add_option("--seed", s.seed, "Texture and tissue outline")->capture_default_str();
    cmd->add_option("--tissue", s.tissue_fraction, "Share of the area that is tissue")->capture_default_str();
    cmd->add_option("--quality", s.jpeg_quality, "JPEG quality; 0: lossless deflate")->capture_default_str();
    cmd->add_option("--format", a.format,
                    "tiff: generic pyramid (levels every 2x); svs: Aperio-style, the same tiles, levels every 4x; "
                    "svs-jp2k, svs-jp2k-rgb: Aperio JPEG 2000 (33003 YCbCr, 33005 RGB), 240-pixel tiles; "
                    "png-tiles, jpeg-tiles: a directory OUT of --tile px images (a patch directory)")
        ->check(CLI::IsMember({"tiff", "svs", "svs-jp2k", "svs-jp2k-rgb", "png-tiles", "jpeg-tiles"}))
        ->capture_default_str();
    cmd->add_option("--tile", a.tile, "Tile size of png-tiles and jpeg-tiles")->capture_default_str();
    return cmd;
}

int cmd_synth(const SynthArgs& a) {
    if (a.spec.width < 1 || a.spec.height < 1) throw Usage("--width and --height must be positive");
    if (a.spec.jpeg_quality < 0 || a.spec.jpeg_quality > 100) throw Usage("--quality must be 0..100");
    // One updating line on a terminal; nothing in a log (the path printed at the end says it is done).
    flowinfer::SyntheticProgressFn progress;
    if (isatty(STDERR_FILENO)) {
        const auto t0 = std::chrono::steady_clock::now();
        progress = [t0](const flowinfer::SyntheticProgress& p) {
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            const double rate = s > 0 ? static_cast<double>(p.pixels_done) / s : 0.0;
            const double eta = rate > 0 ? static_cast<double>(p.pixels_total - p.pixels_done) / rate : 0.0;
            if (p.finishing)
                std::fprintf(stderr, "\rsynth: rows %lld/%lld  lower levels and sync...\033[K",
                             static_cast<long long>(p.rows_done), static_cast<long long>(p.rows_total));
            else
                std::fprintf(stderr, "\rsynth: rows %lld/%lld (%.0f%%)  %.1f Mpx/s  ETA %dm%02ds\033[K",
                             static_cast<long long>(p.rows_done), static_cast<long long>(p.rows_total),
                             p.rows_total ? 100.0 * p.rows_done / p.rows_total : 0.0, rate / 1e6,
                             static_cast<int>(eta) / 60, static_cast<int>(eta) % 60);
            std::fflush(stderr);
        };
    }
    if (a.format == "png-tiles" || a.format == "jpeg-tiles") {
        const std::int64_t n = flowinfer::write_synthetic_tiles(a.out, a.spec, a.tile, a.format == "jpeg-tiles");
        std::printf("%s (%lld tiles)\n", a.out.c_str(), static_cast<long long>(n));
        return 0;
    }
    if (a.format == "svs") flowinfer::write_synthetic_svs(a.out, a.spec, progress);
    else if (a.format == "svs-jp2k") flowinfer::write_synthetic_jp2k_svs(a.out, a.spec, flowinfer::tiff::Jp2kColour::ycbcr);
    else if (a.format == "svs-jp2k-rgb") flowinfer::write_synthetic_jp2k_svs(a.out, a.spec, flowinfer::tiff::Jp2kColour::rgb);
    else flowinfer::write_synthetic_slide(a.out, a.spec, progress);
    if (progress) std::fprintf(stderr, "\n");
    std::printf("%s\n", a.out.c_str());
    return 0;
}

}  // namespace flowinfer::cli
