#include "stages/image/encode.hpp"

#include <jpeglib.h>
#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace flowinfer::image {

namespace {

void append(png_structp png, png_bytep data, png_size_t n) {
    static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<const char*>(data), n);
}
void no_flush(png_structp) {}
void png_fail(png_structp png, png_const_charp message) {
    std::snprintf(static_cast<char*>(png_get_error_ptr(png)), 256, "%s", message);
    png_longjmp(png, 1);
}
void no_warning(png_structp, png_const_charp) {}

// No C++ object lives in this frame, so libpng's longjmp on error skips no destructor.
bool png_rows(const std::uint8_t* pixels, std::int64_t width, std::int64_t height, int channels, int level,
              std::string* out, char* error) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, error, png_fail, no_warning);
    if (!png) return false;
    png_infop info = png_create_info_struct(png);
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return false;
    }
    const int type = channels == 1 ? PNG_COLOR_TYPE_GRAY : channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGBA;
    png_set_write_fn(png, out, append, no_flush);
    png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8, type,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, level);
    png_set_filter(png, PNG_FILTER_TYPE_BASE, level <= 3 ? PNG_FILTER_SUB : PNG_ALL_FILTERS);
    png_write_info(png, info);
    const std::int64_t stride = width * channels;
    for (std::int64_t y = 0; y < height; ++y) png_write_row(png, pixels + y * stride);
    png_write_end(png, nullptr);
    png_destroy_write_struct(&png, &info);
    return true;
}

}  // namespace

std::string encode_png(const std::uint8_t* pixels, std::int64_t width, std::int64_t height, int channels,
                       int zlib_level) {
    if (width < 1 || height < 1 || width > 0x7fffffff / 4 || height > 0x7fffffff ||
        (channels != 1 && channels != 3 && channels != 4) || zlib_level < 1 || zlib_level > 9)
        throw std::runtime_error("cannot encode a PNG of " + std::to_string(width) + "x" + std::to_string(height) +
                                 " pixels of " + std::to_string(channels) + " channels");
    std::string png;
    char error[256] = "unknown error";
    if (!png_rows(pixels, width, height, channels, zlib_level, &png, error))
        throw std::runtime_error(std::string("libpng: ") + error);
    return png;
}

std::string encode_jpeg(const std::uint8_t* rgb, std::int64_t width, std::int64_t height, int quality) {
    if (width < 1 || height < 1 || width > 65500 || height > 65500 || quality < 1 || quality > 100)
        throw std::runtime_error("cannot encode a JPEG of " + std::to_string(width) + "x" + std::to_string(height) +
                                 " pixels at quality " + std::to_string(quality));
    // Within these bounds an in-memory encode of RGB has nothing left to fail on: libjpeg's
    // default error handler (which exits) is never reached.
    jpeg_compress_struct c{};
    jpeg_error_mgr err{};
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    unsigned char* buf = nullptr;
    unsigned long size = 0;
    jpeg_mem_dest(&c, &buf, &size);
    c.image_width = static_cast<JDIMENSION>(width);
    c.image_height = static_cast<JDIMENSION>(height);
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = const_cast<std::uint8_t*>(rgb + static_cast<std::size_t>(c.next_scanline) * width * 3);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    std::string out(reinterpret_cast<const char*>(buf), size);
    std::free(buf);
    return out;
}

}  // namespace flowinfer::image
