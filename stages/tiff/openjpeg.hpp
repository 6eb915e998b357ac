// Owners of OpenJPEG's C objects, for the JPEG 2000 decoder and the synthetic JPEG 2000 writer:
// every path out of a decode or encode, errors included, frees them.
//
// Thread safety: plain owners; an OpenJPEG object is used by one thread at a time.
#pragma once

#include <openjpeg.h>

#include <memory>

namespace flowinfer::tiff {

// One deleter each: opj_stream_t and opj_codec_t are both typedefs of void*.
struct OpjStreamFree {
    void operator()(opj_stream_t* s) const { opj_stream_destroy(s); }
};
struct OpjCodecFree {
    void operator()(opj_codec_t* c) const { opj_destroy_codec(c); }
};
struct OpjImageFree {
    void operator()(opj_image_t* i) const { opj_image_destroy(i); }
};
using OpjStream = std::unique_ptr<opj_stream_t, OpjStreamFree>;
using OpjCodec = std::unique_ptr<opj_codec_t, OpjCodecFree>;
using OpjImage = std::unique_ptr<opj_image_t, OpjImageFree>;

}  // namespace flowinfer::tiff
