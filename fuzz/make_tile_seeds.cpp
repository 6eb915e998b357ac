// Writes the seeds of fuzz_tile_decoders (fuzz/fuzz_tile_decoders.cpp says the input format)
// into OUT_DIR: JPEG tiles and JPEGTables of synthetic slides written here (flowinfer synth's
// generic pyramid and its Aperio-style SVS; the smallest tile of a directory, read raw with
// libtiff), JPEG and JPEG 2000 tiles made here, and one small TIFF for read_directories. No
// byte comes from the shared test slides, which must not be copied into the project. Run
// once; the output is checked in as fuzz/corpus/tile_decoders/.
//
//   cmake --build build-fuzz --target make_tile_seeds
//   ./build-fuzz/fuzz/make_tile_seeds fuzz/corpus/tile_decoders
#include "pipeline/synthetic_jp2k.hpp"

#include <flowinfer/demo.hpp>

#include <openjpeg.h>
#include <tiffio.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <jpeglib.h>

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

// fuzz_tile_decoders' header: what, size indices, options, split.
enum What : std::uint8_t { jpeg_tables = 0, jpeg_plain = 1, jp2k_ycbcr = 2, jp2k_rgb = 3, directories = 4 };
int size_index(int s) {
    const int sizes[6] = {8, 16, 64, 240, 256, 15};
    for (int i = 0; i < 6; ++i)
        if (sizes[i] == s) return i;
    throw std::runtime_error("tile size " + std::to_string(s) + " is not one the fuzzer picks");
}
int scale_index(int scale) { return scale == 1 ? 0 : scale == 2 ? 1 : scale == 4 ? 2 : 3; }

Bytes header(What what, int w, int h, bool rgb, int scale, std::size_t split) {
    return {what, static_cast<std::uint8_t>(size_index(w) | size_index(h) << 4),
            static_cast<std::uint8_t>((rgb ? 1 : 0) | scale_index(scale) << 1),
            static_cast<std::uint8_t>(split & 0xff), static_cast<std::uint8_t>(split >> 8)};
}

void write_seed(const fs::path& dir, const std::string& name, Bytes head, const Bytes& body) {
    head.insert(head.end(), body.begin(), body.end());
    std::ofstream(dir / name, std::ios::binary).write(reinterpret_cast<const char*>(head.data()), head.size());
    std::printf("%-28s %6zu bytes\n", name.c_str(), head.size());
}

struct RawTile {
    Bytes tables, tile;
    int w = 0, h = 0;
    bool rgb = false;
};

// The smallest JPEG tile of directory `dir` of a slide, with its JPEGTables.
RawTile smallest_jpeg_tile(const fs::path& path, int dir) {
    TIFF* t = TIFFOpen(path.c_str(), "r");
    if (!t || !TIFFSetDirectory(t, static_cast<tdir_t>(dir))) throw std::runtime_error("cannot open " + path.string());
    std::uint16_t comp = 0, photo = 0;
    std::uint32_t tw = 0, th = 0, count = 0;
    void* tables = nullptr;
    TIFFGetField(t, TIFFTAG_COMPRESSION, &comp);
    TIFFGetField(t, TIFFTAG_PHOTOMETRIC, &photo);
    TIFFGetField(t, TIFFTAG_TILEWIDTH, &tw);
    TIFFGetField(t, TIFFTAG_TILELENGTH, &th);
    if (comp != COMPRESSION_JPEG || !TIFFIsTiled(t)) throw std::runtime_error(path.string() + ": not JPEG tiles");
    RawTile r;
    if (TIFFGetField(t, TIFFTAG_JPEGTABLES, &count, &tables) && tables)
        r.tables.assign(static_cast<std::uint8_t*>(tables), static_cast<std::uint8_t*>(tables) + count);
    const std::uint32_t n = TIFFNumberOfTiles(t);
    std::uint32_t best = 0;
    for (std::uint32_t i = 1; i < n; ++i)
        if (TIFFGetStrileByteCount(t, i) < TIFFGetStrileByteCount(t, best)) best = i;
    r.tile.resize(TIFFGetStrileByteCount(t, best));
    if (TIFFReadRawTile(t, best, r.tile.data(), static_cast<tmsize_t>(r.tile.size())) < 0)
        throw std::runtime_error("cannot read a tile of " + path.string());
    r.w = static_cast<int>(tw);
    r.h = static_cast<int>(th);
    r.rgb = photo == PHOTOMETRIC_RGB;
    TIFFClose(t);
    return r;
}

// A self-contained stream from a tables-only stream and an abbreviated tile: the tables
// without their EOI, then the tile without its SOI.
Bytes merge(const RawTile& r) {
    Bytes out(r.tables.begin(), r.tables.end() - 2);
    out.insert(out.end(), r.tile.begin() + 2, r.tile.end());
    return out;
}

// A w x h JPEG of a colour ramp made with libjpeg: progressive 4:2:0 YCbCr, or baseline RGB
// without a colour transform (as Aperio's RGB tiles).
Bytes encode_jpeg(int w, int h, bool rgb, bool progressive) {
    jpeg_compress_struct c{};
    jpeg_error_mgr err{};
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    unsigned char* buf = nullptr;
    unsigned long size = 0;
    jpeg_mem_dest(&c, &buf, &size);
    c.image_width = static_cast<JDIMENSION>(w);
    c.image_height = static_cast<JDIMENSION>(h);
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 75, TRUE);
    if (rgb) jpeg_set_colorspace(&c, JCS_RGB);
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    std::vector<std::uint8_t> row(static_cast<std::size_t>(w) * 3);
    while (c.next_scanline < c.image_height) {
        for (int x = 0; x < w; ++x) {
            row[x * 3] = static_cast<std::uint8_t>(x * 255 / w);
            row[x * 3 + 1] = static_cast<std::uint8_t>(c.next_scanline * 255 / c.image_height);
            row[x * 3 + 2] = static_cast<std::uint8_t>(128 + (x ^ c.next_scanline) % 64);
        }
        JSAMPROW p = row.data();
        jpeg_write_scanlines(&c, &p, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    Bytes out(buf, buf + size);
    free(buf);
    return out;
}

// A w x h J2K codestream whose components 1 and 2 are subsampled dx x dy (not a layout
// write_synthetic_jp2k_svs makes: the decoder's general unpacking path).
Bytes encode_j2k(int w, int h, unsigned dx, unsigned dy) {
    opj_image_cmptparm_t parm[3];
    std::memset(parm, 0, sizeof parm);
    for (int k = 0; k < 3; ++k) {
        parm[k].dx = k ? dx : 1;
        parm[k].dy = k ? dy : 1;
        parm[k].w = (static_cast<unsigned>(w) + parm[k].dx - 1) / parm[k].dx;
        parm[k].h = (static_cast<unsigned>(h) + parm[k].dy - 1) / parm[k].dy;
        parm[k].prec = 8;
    }
    opj_image_t* img = opj_image_create(3, parm, OPJ_CLRSPC_SYCC);
    img->x1 = static_cast<OPJ_UINT32>(w);
    img->y1 = static_cast<OPJ_UINT32>(h);
    for (int k = 0; k < 3; ++k)
        for (std::size_t i = 0; i < parm[k].w * parm[k].h; ++i)
            img->comps[k].data[i] = static_cast<OPJ_INT32>((i * 7 + k * 50) % 256);
    opj_cparameters_t p;
    opj_set_default_encoder_parameters(&p);
    p.numresolution = 2;
    opj_codec_t* codec = opj_create_compress(OPJ_CODEC_J2K);
    Bytes out;
    opj_stream_t* s = opj_stream_create(1 << 16, OPJ_FALSE);
    opj_stream_set_user_data(s, &out, nullptr);
    opj_stream_set_write_function(s, [](void* b, OPJ_SIZE_T n, void* u) -> OPJ_SIZE_T {
        auto& o = *static_cast<Bytes*>(u);
        o.insert(o.end(), static_cast<std::uint8_t*>(b), static_cast<std::uint8_t*>(b) + n);
        return n;
    });
    const bool ok = opj_setup_encoder(codec, &p, img) && opj_start_compress(codec, img, s) &&
                    opj_encode(codec, s) && opj_end_compress(codec, s);
    opj_stream_destroy(s);
    opj_destroy_codec(codec);
    opj_image_destroy(img);
    if (!ok) throw std::runtime_error("OpenJPEG could not encode");
    return out;
}

Bytes raw_tile(const fs::path& path, int dir, std::uint32_t index) {
    TIFF* t = TIFFOpen(path.c_str(), "r");
    if (!t || !TIFFSetDirectory(t, static_cast<tdir_t>(dir))) throw std::runtime_error("cannot open " + path.string());
    Bytes b(TIFFGetStrileByteCount(t, index));
    if (TIFFReadRawTile(t, index, b.data(), static_cast<tmsize_t>(b.size())) < 0)
        throw std::runtime_error("cannot read a tile of " + path.string());
    TIFFClose(t);
    return b;
}

Bytes file_bytes(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
        return 2;
    }
    const fs::path out = argv[1];
    fs::create_directories(out);
    const fs::path tmp = fs::temp_directory_path() / "flowinfer-make-tile-seeds";
    try {
        fs::create_directories(tmp);
        // Synthetic H&E slides: a generic JPEG pyramid (256 tiles, its smallest level) and the
        // same tiles in an Aperio-style SVS.
        flowinfer::SyntheticSlideSpec he;
        he.width = 700;
        he.height = 500;
        he.jpeg_quality = 80;
        flowinfer::write_synthetic_slide((tmp / "he.tiff").string(), he);
        flowinfer::write_synthetic_svs((tmp / "he.svs").string(), he);
        const RawTile gen = smallest_jpeg_tile(tmp / "he.tiff", 0);
        write_seed(out, "jpeg-tables-synthetic-256", header(jpeg_tables, gen.w, gen.h, gen.rgb, 1, gen.tables.size()),
                   [&] { Bytes b = gen.tables; b.insert(b.end(), gen.tile.begin(), gen.tile.end()); return b; }());
        write_seed(out, "jpeg-plain-synthetic-256-scale8", header(jpeg_plain, gen.w, gen.h, gen.rgb, 8, 0), merge(gen));
        const RawTile top = smallest_jpeg_tile(tmp / "he.tiff", 1);
        write_seed(out, "jpeg-tables-synthetic-level1-scale2",
                   header(jpeg_tables, top.w, top.h, top.rgb, 2, top.tables.size()),
                   [&] { Bytes b = top.tables; b.insert(b.end(), top.tile.begin(), top.tile.end()); return b; }());
        const RawTile svs = smallest_jpeg_tile(tmp / "he.svs", 0);
        write_seed(out, "jpeg-tables-svs-scale4", header(jpeg_tables, svs.w, svs.h, svs.rgb, 4, svs.tables.size()),
                   [&] { Bytes b = svs.tables; b.insert(b.end(), svs.tile.begin(), svs.tile.end()); return b; }());

        // Made here: an odd size, progressive 4:2:0; a non-square RGB tile.
        write_seed(out, "jpeg-plain-15-progressive", header(jpeg_plain, 15, 15, false, 2, 0),
                   encode_jpeg(15, 15, false, true));
        write_seed(out, "jpeg-plain-8x16-rgb", header(jpeg_plain, 8, 16, true, 1, 0), encode_jpeg(8, 16, true, false));

        // JPEG 2000: write_synthetic_jp2k_svs's tiles (33003 with 2x1 chroma, 33005), 64 x 64.
        flowinfer::SyntheticSlideSpec spec;
        spec.width = 64;
        spec.height = 64;
        spec.seed = 7;
        spec.tissue_fraction = 1.0;
        for (auto c : {flowinfer::tiff::Jp2kColour::ycbcr, flowinfer::tiff::Jp2kColour::rgb}) {
            const bool ycc = c == flowinfer::tiff::Jp2kColour::ycbcr;
            const fs::path svs = tmp / (ycc ? "ycbcr.svs" : "rgb.svs");
            flowinfer::write_synthetic_jp2k_svs(svs.string(), spec, c, 64);
            write_seed(out, ycc ? "jp2k-ycbcr-64" : "jp2k-rgb-64", header(ycc ? jp2k_ycbcr : jp2k_rgb, 64, 64, false, 1, 0),
                       raw_tile(svs, 0, 0));
            if (ycc) write_seed(out, "tiff-jp2k-svs-64", header(directories, 8, 8, false, 1, 0), file_bytes(svs));
        }
        write_seed(out, "jp2k-ycbcr-15-sub3x5", header(jp2k_ycbcr, 15, 15, false, 1, 0), encode_j2k(15, 15, 3, 5));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "make_tile_seeds: %s\n", e.what());
        fs::remove_all(tmp);
        return 1;
    }
    fs::remove_all(tmp);
    return 0;
}
