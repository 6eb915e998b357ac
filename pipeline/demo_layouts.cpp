// Demo models shaped like models from the field, for models[].channels, output and
// output_layout: a one-channel (grey-level) network, dict and tuple outputs, a channels-last
// map. Each computes pointwise_mean's map [1 - m, m] (or its one-channel counterpart) so the
// tests can check the pixels against an independent computation.
#include "pipeline/demo_models.hpp"

#include <flowinfer/errors.hpp>

#include <fmt/format.h>

namespace flowinfer::demo {

namespace {

// A 1x1 convolution over one channel: given 3 channels it fails as a grey-level network's
// first layer does ("expected input[...] to have 1 channels, but got 3 channels instead").
constexpr const char* kOneChannel = R"JIT(
def forward(self, x):
    y = torch.conv2d(x, self.weight)
    return torch.cat([1.0 - y, y], 1)
)JIT";

// HoVer-Net-style heads: the auxiliary one first, so that only models[].output finds the map.
constexpr const char* kDictOutput = R"JIT(
def forward(self, x) -> Dict[str, Tensor]:
    m = x.mean(dim=1, keepdim=True)
    return {"aux": torch.ones_like(m) * 0.25, "seg": torch.cat([1.0 - m, m], 1)}
)JIT";

constexpr const char* kTupleOutput = R"JIT(
def forward(self, x) -> Tuple[Tensor, Tensor]:
    m = x.mean(dim=1, keepdim=True)
    return torch.zeros([x.size(0), 7], dtype=x.dtype, device=x.device), torch.cat([1.0 - m, m], 1)
)JIT";

constexpr const char* kNhwcMean = R"JIT(
def forward(self, x):
    m = x.mean(dim=1, keepdim=True)
    return torch.cat([1.0 - m, m], 1).permute(0, 2, 3, 1)
)JIT";

}  // namespace

bool is_layout_model(DemoModel kind) {
    return kind == DemoModel::one_channel || kind == DemoModel::dict_output || kind == DemoModel::tuple_output ||
           kind == DemoModel::nhwc_mean;
}

torch::jit::Module build_layout_model(DemoModel kind) {
    torch::jit::Module m("__torch__.flowinfer.DemoLayout");
    switch (kind) {
        case DemoModel::one_channel:
            m.register_parameter("weight", torch::ones({1, 1, 1, 1}, torch::kFloat), false);
            m.define(kOneChannel);
            break;
        case DemoModel::dict_output:
            m.define(kDictOutput);
            break;
        case DemoModel::tuple_output:
            m.define(kTupleOutput);
            break;
        case DemoModel::nhwc_mean:
            m.define(kNhwcMean);
            break;
        default:
            throw Error(fmt::format("demo model kind {} is not a layout model", static_cast<int>(kind)));
    }
    m.eval();
    return m;
}

}  // namespace flowinfer::demo
