#include "stages/model_file.hpp"

#include "stages/model_errors.hpp"

#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/versions.h>

#include <exception>

namespace flowinfer {

ModelFileInfo read_model_file(const std::string& path) {
    ModelFileInfo info;
    info.max_format_version = static_cast<std::int64_t>(caffe2::serialize::kMaxSupportedFileFormatVersion);
    try {
        caffe2::serialize::PyTorchStreamReader reader(path);
        info.archive = true;
        info.format_version = static_cast<std::int64_t>(reader.version());
        static const std::string prefix = "extra/";
        for (const std::string& name : reader.getAllRecords())
            if (name.compare(0, prefix.size(), prefix) == 0) info.extra_files.push_back(name.substr(prefix.size()));
        const std::string record = prefix + kModelMetadataFile;
        if (reader.hasRecord(record)) {
            auto [data, size] = reader.getRecord(record);
            info.flowinfer_json.emplace(static_cast<const char*>(data.get()), size);
        }
    } catch (const std::exception& e) {
        info = ModelFileInfo{};
        info.max_format_version = static_cast<std::int64_t>(caffe2::serialize::kMaxSupportedFileFormatVersion);
        info.not_archive_why = first_line(e.what());
    }
    return info;
}

}  // namespace flowinfer
