#define BOOST_TEST_MODULE test_jp2k
#include <boost/test/unit_test.hpp>

#include "pipeline/synthetic_jp2k.hpp"
#include "pipeline/synthetic_pixels.hpp"
#include "stages/tiff/jp2k_decoder.hpp"
#include "tests/test_support.hpp"

#include <flowinfer/errors.hpp>

#include <openjpeg.h>
#include <openslide.h>
#include <tbb/parallel_for.h>
#include <tiffio.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

using flowinfer::OutputError;
using flowinfer::SyntheticSlideSpec;
using flowinfer::tiff::decode_jp2k_tile;
using flowinfer::tiff::Jp2kColour;
using flowinfer::tiff::TileDecodeError;

namespace {

using Bytes = std::vector<std::uint8_t>;

struct Osr {
    openslide_t* p;
    explicit Osr(const std::string& path) : p(openslide_open(path.c_str())) {
        BOOST_REQUIRE_MESSAGE(p, "OpenSlide cannot open " << path);
        const char* err = openslide_get_error(p);
        BOOST_REQUIRE_MESSAGE(!err, "OpenSlide: " << (err ? err : ""));
    }
    ~Osr() { openslide_close(p); }
};

struct TiffIn {
    TIFF* t;
    explicit TiffIn(const std::string& path) : t(TIFFOpen(path.c_str(), "r")) { BOOST_REQUIRE(t); }
    ~TiffIn() { TIFFClose(t); }
    Bytes raw_tile(std::uint32_t index) const {
        const tmsize_t n = static_cast<tmsize_t>(TIFFGetStrileByteCount(t, index));
        Bytes b(static_cast<std::size_t>(n));
        BOOST_REQUIRE_EQUAL(TIFFReadRawTile(t, index, b.data(), n), n);
        return b;
    }
};

std::uint32_t tag32(TIFF* t, ttag_t tag) {
    std::uint32_t v = 0;
    BOOST_REQUIRE(TIFFGetField(t, tag, &v));
    return v;
}

// The two slides (one per colour) that the cases below read, written once per run.
struct Slides {
    fit::TempDir dir;
    SyntheticSlideSpec spec;
    std::string path(Jp2kColour c) const { return dir / (c == Jp2kColour::ycbcr ? "ycbcr.svs" : "rgb.svs"); }
    Slides() {
        spec.width = 1000;
        spec.height = 700;
        spec.mpp = 0.25;
        spec.seed = 3;
        for (Jp2kColour c : {Jp2kColour::ycbcr, Jp2kColour::rgb}) {
            const auto t0 = std::chrono::steady_clock::now();
            flowinfer::write_synthetic_jp2k_svs(path(c), spec, c, 240);
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            BOOST_TEST_MESSAGE((c == Jp2kColour::ycbcr ? "33003" : "33005") << " 1000x700 written in " << s << " s");
        }
    }
};
const Slides& slides() {
    static const Slides s;
    return s;
}
std::string path(Jp2kColour c) { return slides().path(c); }

// An OpenJPEG codestream of a w x h grey ramp with the given components' (dx, dy, prec), for
// the inputs write_synthetic_jp2k_svs never makes.
struct Comp {
    unsigned dx = 1, dy = 1, prec = 8;
};
Bytes encode_codestream(int w, int h, const std::vector<Comp>& comps) {
    std::vector<opj_image_cmptparm_t> parm(comps.size());
    for (std::size_t k = 0; k < comps.size(); ++k) {
        std::memset(&parm[k], 0, sizeof parm[k]);
        parm[k].dx = comps[k].dx;
        parm[k].dy = comps[k].dy;
        parm[k].w = (static_cast<unsigned>(w) + comps[k].dx - 1) / comps[k].dx;
        parm[k].h = (static_cast<unsigned>(h) + comps[k].dy - 1) / comps[k].dy;
        parm[k].prec = comps[k].prec;
    }
    opj_image_t* img = opj_image_create(static_cast<OPJ_UINT32>(comps.size()), parm.data(),
                                        comps.size() == 1 ? OPJ_CLRSPC_GRAY : OPJ_CLRSPC_SYCC);
    BOOST_REQUIRE(img);
    img->x1 = static_cast<OPJ_UINT32>(w);
    img->y1 = static_cast<OPJ_UINT32>(h);
    for (std::size_t k = 0; k < comps.size(); ++k)
        for (std::size_t i = 0; i < parm[k].w * parm[k].h; ++i)
            img->comps[k].data[i] = static_cast<OPJ_INT32>((i * 7 + k * 50) % (1u << comps[k].prec));
    opj_cparameters_t p;
    opj_set_default_encoder_parameters(&p);
    p.numresolution = 3;
    opj_codec_t* codec = opj_create_compress(OPJ_CODEC_J2K);
    struct Out {
        Bytes b;
    } out;
    opj_stream_t* s = opj_stream_create(1 << 16, OPJ_FALSE);
    opj_stream_set_user_data(s, &out, nullptr);
    opj_stream_set_write_function(s, [](void* buf, OPJ_SIZE_T n, void* u) -> OPJ_SIZE_T {
        auto& o = static_cast<Out*>(u)->b;
        o.insert(o.end(), static_cast<std::uint8_t*>(buf), static_cast<std::uint8_t*>(buf) + n);
        return n;
    });
    const bool ok = opj_setup_encoder(codec, &p, img) && opj_start_compress(codec, img, s) &&
                    opj_encode(codec, s) && opj_end_compress(codec, s);
    opj_stream_destroy(s);
    opj_destroy_codec(codec);
    opj_image_destroy(img);
    BOOST_REQUIRE(ok);
    return out.b;
}

void check_throws(const Bytes& b, int w, int h, const std::string& what, const std::string& contains = "") {
    Bytes rgb(static_cast<std::size_t>(w) * h * 3);
    try {
        decode_jp2k_tile(b.data(), b.size(), Jp2kColour::ycbcr, w, h, rgb.data());
        BOOST_ERROR(what << ": no TileDecodeError");
    } catch (const TileDecodeError& e) {
        BOOST_TEST_MESSAGE(what << ": " << e.what());
        BOOST_CHECK_MESSAGE(std::strlen(e.what()) > 0, what << ": empty message");
        if (!contains.empty())
            BOOST_CHECK_MESSAGE(std::string(e.what()).find(contains) != std::string::npos,
                                what << ": '" << e.what() << "' lacks '" << contains << "'");
    }
}

// The pixels of each level before compression, computed here independently: level 0 from
// SyntheticPixels, each lower level the rounded 4x4 box average of the one above.
struct Plane {
    std::int64_t w = 0, h = 0;
    Bytes rgb;
    const std::uint8_t* at(std::int64_t x, std::int64_t y) const { return &rgb[3 * static_cast<std::size_t>(y * w + x)]; }
};
std::vector<Plane> truth_levels(const SyntheticSlideSpec& spec, int levels) {
    std::vector<Plane> out(1);
    out[0] = {spec.width, spec.height, Bytes(static_cast<std::size_t>(spec.width * spec.height * 3))};
    flowinfer::SyntheticPixels(spec).render(0, 0, static_cast<int>(spec.width), static_cast<int>(spec.height),
                                            out[0].rgb.data());
    while (static_cast<int>(out.size()) < levels) {
        const Plane& s = out.back();
        Plane d{s.w / 4, s.h / 4, {}};
        d.rgb.resize(static_cast<std::size_t>(d.w * d.h * 3));
        for (std::int64_t j = 0; j < d.h; ++j)
            for (std::int64_t i = 0; i < d.w; ++i)
                for (int c = 0; c < 3; ++c) {
                    unsigned sum = 0;
                    for (int y = 0; y < 4; ++y)
                        for (int x = 0; x < 4; ++x) sum += s.at(4 * i + x, 4 * j + y)[c];
                    d.rgb[3 * static_cast<std::size_t>(j * d.w + i) + c] = static_cast<std::uint8_t>((sum + 8) / 16);
                }
        out.push_back(std::move(d));
    }
    return out;
}

struct Mae {
    double sum = 0;
    std::int64_t n = 0;
    void add(const std::uint8_t* a, const std::uint8_t* b, int count) {
        for (int i = 0; i < count; ++i) sum += std::abs(int(a[i]) - int(b[i]));
        n += count;
    }
    double value() const { return n ? sum / static_cast<double>(n) : 0.0; }
};

}  // namespace

// Both colours: OpenSlide 3.4.1 reads the file as Aperio, and every tile that our decoder
// decodes is byte-identical to what openslide_read_region gives for it (all tiles of levels 0
// and 1, the corner tile of level 2, whose downsample is not an integer).
BOOST_AUTO_TEST_CASE(decoder_matches_openslide_and_synthetic_pixels) {
    const std::vector<Plane> truth = truth_levels(slides().spec, 3);
    for (Jp2kColour colour : {Jp2kColour::ycbcr, Jp2kColour::rgb}) {
        const std::string file = path(colour);
        BOOST_TEST_CONTEXT((colour == Jp2kColour::ycbcr ? "33003" : "33005")) {
            const char* vendor = openslide_detect_vendor(file.c_str());
            BOOST_REQUIRE(vendor);
            BOOST_CHECK_EQUAL(std::string(vendor), "aperio");
            Osr osr(file);
            BOOST_REQUIRE_EQUAL(openslide_get_level_count(osr.p), 3);
            for (int l = 0; l < 3; ++l) {
                std::int64_t w = 0, h = 0;
                openslide_get_level_dimensions(osr.p, l, &w, &h);
                BOOST_CHECK_EQUAL(w, truth[static_cast<std::size_t>(l)].w);  // 1000x700, 250x175, 62x43
                BOOST_CHECK_EQUAL(h, truth[static_cast<std::size_t>(l)].h);
            }
            const char* mpp = openslide_get_property_value(osr.p, OPENSLIDE_PROPERTY_NAME_MPP_X);
            BOOST_REQUIRE(mpp);
            BOOST_CHECK_CLOSE(std::atof(mpp), 0.25, 1e-9);

            // The thumbnail is stored uncompressed: exactly every 4th level-0 pixel.
            const char* const* assoc = openslide_get_associated_image_names(osr.p);
            BOOST_REQUIRE(assoc && assoc[0]);
            BOOST_CHECK_EQUAL(std::string(assoc[0]), "thumbnail");
            std::int64_t tw = 0, th = 0;
            openslide_get_associated_image_dimensions(osr.p, "thumbnail", &tw, &th);
            BOOST_REQUIRE_EQUAL(tw, 250);
            BOOST_REQUIRE_EQUAL(th, 175);
            std::vector<std::uint32_t> thumb(static_cast<std::size_t>(tw * th));
            openslide_read_associated_image(osr.p, "thumbnail", thumb.data());
            int thumb_bad = 0;
            for (std::int64_t j = 0; j < th; ++j)
                for (std::int64_t i = 0; i < tw; ++i) {
                    const std::uint32_t p = thumb[static_cast<std::size_t>(j * tw + i)];
                    const std::uint8_t* q = truth[0].at(4 * i, 4 * j);
                    thumb_bad += p != (0xff000000u | unsigned(q[0]) << 16 | unsigned(q[1]) << 8 | q[2]);
                }
            BOOST_CHECK_EQUAL(thumb_bad, 0);

            TiffIn tif(file);
            Mae mae[3], as_rgb;
            int tiled_dir = -1;
            for (tdir_t dir = 0; dir < TIFFNumberOfDirectories(tif.t); ++dir) {
                BOOST_REQUIRE(TIFFSetDirectory(tif.t, dir));
                if (!TIFFIsTiled(tif.t)) continue;
                const int level = ++tiled_dir;
                BOOST_REQUIRE_LT(level, 3);
                std::uint16_t compression = 0;
                BOOST_REQUIRE(TIFFGetField(tif.t, TIFFTAG_COMPRESSION, &compression));
                BOOST_CHECK_EQUAL(compression, colour == Jp2kColour::ycbcr ? 33003 : 33005);
                const int T = static_cast<int>(tag32(tif.t, TIFFTAG_TILEWIDTH));
                BOOST_REQUIRE_EQUAL(T, 240);
                const Plane& want = truth[static_cast<std::size_t>(level)];
                BOOST_REQUIRE_EQUAL(tag32(tif.t, TIFFTAG_IMAGEWIDTH), want.w);
                BOOST_REQUIRE_EQUAL(tag32(tif.t, TIFFTAG_IMAGELENGTH), want.h);
                const double ds = openslide_get_level_downsample(osr.p, level);
                Bytes rgb(static_cast<std::size_t>(T) * T * 3), wrong(rgb.size());
                std::vector<std::uint32_t> argb(static_cast<std::size_t>(T) * T);
                for (std::int64_t ty = 0; ty * T < want.h; ++ty)
                    for (std::int64_t tx = 0; tx * T < want.w; ++tx) {
                        // Level-0 coordinates of a tile corner are exact only for integer downsamples.
                        if (ds != std::floor(ds) && (tx | ty) != 0) continue;
                        const Bytes raw = tif.raw_tile(TIFFComputeTile(tif.t, static_cast<std::uint32_t>(tx * T),
                                                                       static_cast<std::uint32_t>(ty * T), 0, 0));
                        decode_jp2k_tile(raw.data(), raw.size(), colour, T, T, rgb.data());
                        const int cw = static_cast<int>(std::min<std::int64_t>(T, want.w - tx * T));
                        const int ch = static_cast<int>(std::min<std::int64_t>(T, want.h - ty * T));
                        openslide_read_region(osr.p, argb.data(), static_cast<std::int64_t>(tx * T * ds),
                                              static_cast<std::int64_t>(ty * T * ds), level, cw, ch);
                        BOOST_REQUIRE(!openslide_get_error(osr.p));
                        int mismatches = 0;
                        for (int y = 0; y < ch; ++y)
                            for (int x = 0; x < cw; ++x) {
                                const std::uint32_t p = argb[static_cast<std::size_t>(y) * cw + x];
                                const std::uint8_t* q = &rgb[3 * (static_cast<std::size_t>(y) * T + x)];
                                mismatches += p != (0xff000000u | unsigned(q[0]) << 16 | unsigned(q[1]) << 8 | q[2]);
                            }
                        BOOST_CHECK_MESSAGE(mismatches == 0, "level " << level << " tile (" << tx << ", " << ty
                                                                      << "): " << mismatches << " pixels differ");
                        if (colour == Jp2kColour::ycbcr && level == 0)
                            decode_jp2k_tile(raw.data(), raw.size(), Jp2kColour::rgb, T, T, wrong.data());
                        for (int y = 0; y < ch; ++y) {
                            const std::size_t row = static_cast<std::size_t>(y) * T * 3;
                            mae[level].add(&rgb[row], want.at(tx * T, ty * T + y), cw * 3);
                            if (colour == Jp2kColour::ycbcr && level == 0)
                                as_rgb.add(&wrong[row], want.at(tx * T, ty * T + y), cw * 3);
                        }
                    }
            }
            BOOST_CHECK_EQUAL(tiled_dir, 2);
            // Measured (compression ratio 12, seed 3), levels 0, 1, 2: 33003 1.98, 2.61, 1.90;
            // 33005 1.89, 2.40, 0.35 grey levels. The same 33003 tiles decoded as if their
            // components were RGB: 53.8.
            BOOST_TEST_MESSAGE("mean |decoded - synthetic|, levels 0, 1, 2: " << mae[0].value() << ", "
                               << mae[1].value() << ", " << mae[2].value());
            BOOST_CHECK_LT(mae[0].value(), 4.0);
            BOOST_CHECK_LT(mae[1].value(), 6.0);
            if (colour == Jp2kColour::ycbcr) {
                BOOST_TEST_MESSAGE("33003 decoded as RGB: " << as_rgb.value());
                BOOST_CHECK_GT(as_rgb.value(), 4.0 * 4);
            }
        }
    }
}

// Tiles decoded on many threads at once equal the same tiles decoded one at a time.
BOOST_AUTO_TEST_CASE(decoder_is_reentrant) {
    for (Jp2kColour colour : {Jp2kColour::ycbcr, Jp2kColour::rgb}) {
        TiffIn tif(path(colour));
        const int tiles = static_cast<int>(TIFFNumberOfTiles(tif.t));
        std::vector<Bytes> raw, serial;
        for (int i = 0; i < tiles; ++i) {
            raw.push_back(tif.raw_tile(static_cast<std::uint32_t>(i)));
            serial.emplace_back(240 * 240 * 3);
            decode_jp2k_tile(raw.back().data(), raw.back().size(), colour, 240, 240, serial.back().data());
        }
        std::vector<Bytes> parallel(static_cast<std::size_t>(tiles * 4), Bytes(240 * 240 * 3));
        tbb::parallel_for(0, tiles * 4, [&](int i) {
            const Bytes& b = raw[static_cast<std::size_t>(i % tiles)];
            decode_jp2k_tile(b.data(), b.size(), colour, 240, 240, parallel[static_cast<std::size_t>(i)].data());
        });
        for (int i = 0; i < tiles * 4; ++i)
            BOOST_CHECK(parallel[static_cast<std::size_t>(i)] == serial[static_cast<std::size_t>(i % tiles)]);
    }
}

BOOST_AUTO_TEST_CASE(bad_input_throws_tile_decode_error) {
    TiffIn tif(path(Jp2kColour::ycbcr));
    const Bytes good = tif.raw_tile(0);
    Bytes rgb(240 * 240 * 3);
    BOOST_CHECK_NO_THROW(decode_jp2k_tile(good.data(), good.size(), Jp2kColour::ycbcr, 240, 240, rgb.data()));

    check_throws({}, 240, 240, "empty", "empty");
    BOOST_CHECK_THROW(decode_jp2k_tile(nullptr, 0, Jp2kColour::rgb, 240, 240, rgb.data()), TileDecodeError);
    check_throws(Bytes(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(good.size() / 2)), 240, 240,
                 "truncated", "OpenJPEG error:");
    check_throws(Bytes(good.begin(), good.begin() + 20), 240, 240, "cut in the main header");
    check_throws(good, 224, 240, "narrower than expected", "expected 224x240");
    check_throws(good, 240, 256, "shorter than expected", "expected 240x256");
    check_throws(encode_codestream(240, 240, {Comp{}}), 240, 240, "1 component", "expected 3 components, found 1");
    check_throws(encode_codestream(240, 240, {Comp{}, Comp{}, Comp{}, Comp{}}), 240, 240, "4 components",
                 "found 4");
    check_throws(encode_codestream(240, 240, {Comp{1, 1, 12}, Comp{2, 1, 12}, Comp{2, 1, 12}}), 240, 240,
                 "12-bit", "expected 8-bit unsigned");
    // OpenSlide would read past the chroma rows here (239 / 120 = 1 sample per pixel).
    check_throws(encode_codestream(239, 240, {Comp{}, Comp{2, 1}, Comp{2, 1}}), 239, 240, "odd width, 2x chroma",
                 "does not evenly cover");
    // 4:2:0 and 3x3 chroma are no Aperio layout but are well defined: OpenSlide's slow path.
    const Bytes sub420 = encode_codestream(240, 240, {Comp{}, Comp{2, 2}, Comp{2, 2}});
    BOOST_CHECK_NO_THROW(decode_jp2k_tile(sub420.data(), sub420.size(), Jp2kColour::ycbcr, 240, 240, rgb.data()));
    const Bytes sub3 = encode_codestream(240, 240, {Comp{}, Comp{3, 3}, Comp{3, 3}});
    BOOST_CHECK_NO_THROW(decode_jp2k_tile(sub3.data(), sub3.size(), Jp2kColour::rgb, 240, 240, rgb.data()));

    std::mt19937 rng(11);
    for (int i = 0; i < 200; ++i) {
        Bytes junk(1 + rng() % 4096);
        for (auto& b : junk) b = static_cast<std::uint8_t>(rng());
        if (i % 2) junk[0] = 0xff, junk[1] = 0x4f;  // SOC: OpenJPEG goes on to parse the rest
        check_throws(junk, 240, 240, "random bytes");
    }
    // A mutated tile may still decode (JPEG 2000 tolerates damaged code-blocks); whatever it
    // does, it must throw TileDecodeError or succeed, without touching memory it does not own
    // (the ASan build checks the latter).
    int thrown = 0;
    for (int i = 0; i < 300; ++i) {
        Bytes bad = good;
        for (int k = 0, n = 1 + static_cast<int>(rng() % 8); k < n; ++k)
            bad[rng() % (i % 3 == 0 ? std::min<std::size_t>(bad.size(), 200) : bad.size())] =
                static_cast<std::uint8_t>(rng());
        try {
            decode_jp2k_tile(bad.data(), bad.size(), i % 2 ? Jp2kColour::rgb : Jp2kColour::ycbcr, 240, 240, rgb.data());
        } catch (const TileDecodeError& e) {
            ++thrown;
            BOOST_CHECK(std::strlen(e.what()) > 0);
        }
    }
    BOOST_TEST_MESSAGE("mutated tiles rejected: " << thrown << " of 300");
}

BOOST_AUTO_TEST_CASE(generator_failure_leaves_no_file) {
    fit::TempDir dir;
    SyntheticSlideSpec spec;
    spec.width = 300;
    spec.height = 200;
    fit::write_text(dir / "plain", "not a directory");
    for (const std::string& path : {dir / "missing/slide.svs", dir / "plain/slide.svs"}) {
        BOOST_CHECK_THROW(flowinfer::write_synthetic_jp2k_svs(path, spec, Jp2kColour::ycbcr), OutputError);
        BOOST_CHECK(!fit::exists(path));
        BOOST_CHECK(!fit::exists(path + ".partial"));
    }
    const std::string bad_tile = dir / "tile.svs";
    BOOST_CHECK_THROW(flowinfer::write_synthetic_jp2k_svs(bad_tile, spec, Jp2kColour::rgb, 100), OutputError);
    BOOST_CHECK(!fit::exists(bad_tile));
    BOOST_CHECK(!fit::exists(bad_tile + ".partial"));
}

// The size the reader's tests and benchmarks write: a few seconds at most on 2 cores.
BOOST_AUTO_TEST_CASE(generator_speed_2000x1500) {
    fit::TempDir dir;
    SyntheticSlideSpec spec;
    spec.width = 2000;
    spec.height = 1500;
    for (Jp2kColour colour : {Jp2kColour::ycbcr, Jp2kColour::rgb}) {
        const auto t0 = std::chrono::steady_clock::now();
        flowinfer::write_synthetic_jp2k_svs(dir / "big.svs", spec, colour);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        BOOST_TEST_MESSAGE((colour == Jp2kColour::ycbcr ? "33003" : "33005") << " 2000x1500 written in " << s << " s");
        BOOST_CHECK_EQUAL(fit::level_count(dir / "big.svs"), 3);
    }
}
