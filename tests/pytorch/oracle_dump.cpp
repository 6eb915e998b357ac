// oracle_dump: flowinfer's raw per-patch outputs of one model over one slide, for the PyTorch
// oracle (tests/pytorch/oracle.py compares them with PyTorch's own outputs on the same patches).
//
//   oracle_dump SLIDE MODEL.pt TASK PATCH OUT_DIR [--batch N] [--micro-batch M] [--slots S]
//
// The patches are laid out by plan_slide (level 0, no overlap), read with Slide::read_rgb and
// run through Model::run_rgb in batches spread over S slots, as the plan, read_region and
// infer stages do, with the model's activation "none": the maps, CSV and boxes the sinks make
// from these outputs round or filter them, which would hide a difference of 1e-4. Writes
// OUT_DIR/coords.npy (int64 [N, 2], level-0 x and y of each patch) and OUT_DIR/outputs.npy
// (float32 [N, ...], the model's output per patch). Exit 1 with the error on stderr.
#include "stages/layout.hpp"
#include "stages/model.hpp"
#include "stages/slide.hpp"

#include <flowinfer/config.hpp>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

using namespace flowinfer;

namespace {

// NumPy's .npy format, version 1.0: magic, header length, a Python dict literal padded with
// spaces to a multiple of 64 bytes, then the data in C order.
void write_npy(const std::string& path, const char* descr, const std::vector<std::int64_t>& shape,
               const void* data, std::size_t bytes) {
    std::string dims;
    for (std::size_t i = 0; i < shape.size(); ++i) dims += std::to_string(shape[i]) + (shape.size() == 1 || i + 1 < shape.size() ? "," : "");
    std::string header = "{'descr': '" + std::string(descr) + "', 'fortran_order': False, 'shape': (" + dims + "), }";
    const std::size_t total = 10 + header.size() + 1;
    header.append((64 - total % 64) % 64, ' ');
    header += '\n';
    std::ofstream out(path, std::ios::binary);
    const std::uint16_t len = static_cast<std::uint16_t>(header.size());
    out.write("\x93NUMPY\x01\x00", 8);
    out.write(reinterpret_cast<const char*>(&len), 2);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
    if (!out) throw std::runtime_error("cannot write " + path);
}

Task parse_task(const std::string& s) {
    if (s == "segmentation") return Task::segmentation;
    if (s == "classification") return Task::classification;
    if (s == "detection") return Task::detection;
    if (s == "embedding") return Task::embedding;
    throw std::runtime_error("unknown task " + s);
}

}  // namespace

int main(int argc, char** argv) {
    try {
        if (argc < 6)
            throw std::runtime_error("usage: oracle_dump SLIDE MODEL TASK PATCH OUT_DIR [--batch N] [--micro-batch M] "
                                     "[--slots S] [--gray MEAN STD] [--output KEY]");
        const std::string slide_path = argv[1], out_dir = argv[5];
        int batch = 8, micro = 1, slots = 1;
        ModelConfig mc;
        for (int i = 6; i + 1 < argc; i += 2) {
            const std::string key = argv[i];
            if (key == "--output") {
                mc.output.key = argv[i + 1];
                continue;
            }
            if (key == "--gray" && i + 2 < argc) {  // channels = "gray", mean, std
                mc.channels = {kLuma};
                mc.mean = {std::stof(argv[i + 1])};
                mc.std = {std::stof(argv[i + 2])};
                ++i;
                continue;
            }
            const int value = std::stoi(argv[i + 1]);
            if (key == "--batch") batch = value;
            else if (key == "--micro-batch") micro = value;
            else if (key == "--slots") slots = value;
            else throw std::runtime_error("unknown option " + key);
        }
        const int patch = std::stoi(argv[4]);

        mc.name = "oracle";
        mc.path = argv[2];
        mc.task = parse_task(argv[3]);
        mc.activation = Activation::none;
        mc.batch_size = batch;
        mc.cpu_micro_batch = micro;
        Config cfg;
        cfg.models = {mc};
        Tiling tiling;
        tiling.patch_size = patch;
        tiling.overlap = 0;
        tiling.level = 0;

        Slide slide(slide_path);
        const SlidePlan plan = plan_slide(slide, 0, tiling, cfg);
        Model model(mc, "cpu", 1, slots);

        const std::size_t values = static_cast<std::size_t>(patch) * patch * 3;
        std::vector<std::uint32_t> argb(static_cast<std::size_t>(patch) * patch);
        std::vector<std::int64_t> coords;
        std::vector<float> outputs;
        std::vector<std::int64_t> shape;
        const std::uint64_t count = plan.count();
        int slot = 0;
        for (std::uint64_t first = 0; first < count; first += static_cast<std::uint64_t>(batch)) {
            const int n = static_cast<int>(std::min<std::uint64_t>(batch, count - first));
            std::shared_ptr<std::uint8_t> rgb = model.host_bytes(values * n);
            for (int b = 0; b < n; ++b) {
                const PatchKey key = plan.key(first + b);
                slide.read_rgb(key.x, key.y, plan.level, patch, patch, argb.data(), rgb.get() + b * values);
                coords.push_back(key.x);
                coords.push_back(key.y);
            }
            ModelOutput out = model.run_rgb(rgb.get(), n, patch, patch, slot);
            slot = (slot + 1) % model.slots();
            if (shape.empty()) shape = out.shape;
            for (std::size_t d = 1; d < shape.size(); ++d)
                if (out.shape[d] != shape[d]) throw std::runtime_error("output shape changed between batches");
            outputs.insert(outputs.end(), out.data.begin(), out.data.end());
        }
        shape[0] = static_cast<std::int64_t>(count);
        write_npy(out_dir + "/coords.npy", "<i8", {static_cast<std::int64_t>(count), 2}, coords.data(),
                  coords.size() * sizeof(std::int64_t));
        write_npy(out_dir + "/outputs.npy", "<f4", shape, outputs.data(), outputs.size() * sizeof(float));
        std::printf("%llu patches\n", static_cast<unsigned long long>(count));
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "oracle_dump: %s\n", e.what());
        return 1;
    }
}
