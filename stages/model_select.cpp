#include "stages/model_select.hpp"

#include "stages/model.hpp"
#include "stages/output_shape.hpp"

#include <fmt/format.h>

namespace flowinfer {

namespace {

std::string dict_keys(const c10::impl::GenericDict& d) {
    std::string keys;
    for (const auto& e : d) keys += (keys.empty() ? "" : ", ") + (e.key().isString() ? e.key().toStringRef() : "?");
    return keys;
}

// The first tensor inside a tuple, list or dict (in the dict's insertion order), depth first.
const at::Tensor* first_tensor(const c10::IValue& v) {
    if (v.isTensor()) return &v.toTensor();
    if (v.isTuple())
        for (const c10::IValue& e : v.toTupleRef().elements())
            if (const at::Tensor* t = first_tensor(e)) return t;
    if (v.isList())
        for (const c10::IValue& e : v.toListRef())
            if (const at::Tensor* t = first_tensor(e)) return t;
    if (v.isGenericDict())
        for (const auto& e : v.toGenericDict())
            if (const at::Tensor* t = first_tensor(e.value())) return t;
    return nullptr;
}

c10::IValue element(const std::string& model, const c10::IValue& result, const OutputSelector& s) {
    const std::string what = describe_output(result);
    if (s.index) {
        std::size_t count = 0;
        if (result.isTuple()) count = result.toTupleRef().elements().size();
        else if (result.isList()) count = result.toListRef().size();
        else
            throw ModelSettingError(model, "output",
                                    fmt::format("output = {} picks an element of a tuple or list, but forward returned {}{}",
                                                *s.index, what,
                                                result.isGenericDict() ? ": set output to one of its keys" : ""));
        if (static_cast<std::size_t>(*s.index) >= count)
            throw ModelSettingError(model, "output",
                                    fmt::format("output = {} is out of range: forward returned {} of {} element(s)",
                                                *s.index, what, count));
        return result.isTuple() ? result.toTupleRef().elements()[static_cast<std::size_t>(*s.index)]
                                : result.toListRef()[static_cast<std::size_t>(*s.index)];
    }
    if (!result.isGenericDict())
        throw ModelSettingError(model, "output",
                                fmt::format("output = \"{}\" picks a dict entry, but forward returned {}{}", *s.key, what,
                                            result.isTuple() || result.isList() ? ": set output to an index" : ""));
    const c10::impl::GenericDict d = result.toGenericDict();
    for (const auto& e : d)
        if (e.key().isString() && e.key().toStringRef() == *s.key) return e.value();
    throw ModelSettingError(model, "output",
                            fmt::format("output = \"{}\": forward's dict has no such key (it has: {})", *s.key, dict_keys(d)));
}

}  // namespace

at::Tensor select_output(const std::string& model, const c10::IValue& result, const OutputSelector& selector,
                         OutputLayout layout) {
    const c10::IValue chosen = selector.index || selector.key ? element(model, result, selector) : result;
    const at::Tensor* t = first_tensor(chosen);
    if (!t)
        throw ModelSettingError(model, "output",
                                fmt::format("forward returned {}, which holds no tensor{}", describe_output(result),
                                            selector.index || selector.key ? " at " + output_name(selector) : ""));
    if (layout == OutputLayout::nchw) return *t;
    if (t->dim() != 4)
        throw ModelSettingError(model, "output_layout",
                                fmt::format("output_layout = \"nhwc\" needs a map [B, h, w, C]; the output is {}",
                                            shape_string(tensor_shape(*t))));
    return t->permute({0, 3, 1, 2});
}

std::vector<std::int64_t> tensor_shape(const at::Tensor& t) { return {t.sizes().begin(), t.sizes().end()}; }

std::string describe_output(const c10::IValue& v) {
    if (v.isTensor()) return "Tensor " + shape_string(tensor_shape(v.toTensor()));
    std::string s;
    if (v.isTuple() || v.isList()) {
        const auto items = v.isTuple() ? std::vector<c10::IValue>(v.toTupleRef().elements().begin(),
                                                                  v.toTupleRef().elements().end())
                                       : std::vector<c10::IValue>(v.toListRef().begin(), v.toListRef().end());
        for (const c10::IValue& e : items) s += (s.empty() ? "" : ", ") + describe_output(e);
        return (v.isTuple() ? "tuple (" : "list [") + s + (v.isTuple() ? ")" : "]");
    }
    if (v.isGenericDict()) {
        for (const auto& e : v.toGenericDict())
            s += (s.empty() ? "" : ", ") + (e.key().isString() ? e.key().toStringRef() : std::string("?")) + ": " +
                 describe_output(e.value());
        return "dict {" + s + "}";
    }
    return v.tagKind();
}

}  // namespace flowinfer
