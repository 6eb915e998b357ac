// fuzz_config links no LibTorch: its configs name model files that do not exist, so reading a
// TorchScript archive's metadata (stages/model_file.cpp) has nothing to find.
#include "stages/model_file.hpp"

namespace flowinfer {

ModelFileInfo read_model_file(const std::string&) {
    ModelFileInfo info;
    info.not_archive_why = "not read by the fuzzer";
    return info;
}

}  // namespace flowinfer
