// What a TorchScript file says about itself without being loaded: whether it is a TorchScript
// archive, its file format version, and its extra files (`torch.jit.save(..., _extra_files=...)`),
// among them flowinfer.json, the model keys a self-describing model carries (README, "Models").
// Torch-free to include; the reading is LibTorch's (PyTorchStreamReader).
//
// Thread safety: reentrant.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace flowinfer {

struct ModelFileInfo {
    bool archive = false;              // a ZIP-based TorchScript archive
    std::string not_archive_why;       // else, what LibTorch said
    std::int64_t format_version = -1;  // the archive's file format version
    std::int64_t max_format_version = -1;  // the newest this LibTorch reads
    std::vector<std::string> extra_files;  // names under extra/
    std::optional<std::string> flowinfer_json;
};

// Never throws for a bad file: a file that is not an archive says so in not_archive_why (the
// model's load reports it properly). The name of the metadata file inside the archive:
inline constexpr const char* kModelMetadataFile = "flowinfer.json";
ModelFileInfo read_model_file(const std::string& path);

}  // namespace flowinfer
