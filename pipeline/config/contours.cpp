// [[models]] keys of segmentation contours: which classes of the finished map become QuPath
// annotations, and how their outlines are cut and simplified (README, "Contours").

#include "pipeline/config/read.hpp"

namespace flowinfer::config {

namespace {

std::vector<int> read_contour_classes(const Context& c, const std::string& key, const toml::node& n,
                                      const std::vector<ClassSpec>& classes) {
    const toml::array* arr = n.as_array();
    if (!arr) wrong_type(c, key, n, "an array of class indices or class names");
    if (arr->empty()) c.fail(key, &n, "must list at least one class (set contours = false for none)");
    std::vector<int> out;
    for (std::size_t i = 0; i < arr->size(); ++i) {
        const toml::node& e = (*arr)[i];
        const std::string k = fmt::format("{}[{}]", key, i);
        int cls = -1;
        if (e.is_string()) {
            const std::string name = read_string(c, k, e);
            for (std::size_t j = 0; j < classes.size(); ++j)
                if (classes[j].name == name) cls = static_cast<int>(j);
            if (cls < 0) c.fail(k, &e, fmt::format("'{}' is not one of the model's classes", name));
        } else {
            cls = read_int(c, k, e, 0, 255);  // a map pixel holds one byte
        }
        for (int seen : out)
            if (seen == cls) c.fail(k, &e, fmt::format("class {} is listed twice", cls));
        out.push_back(cls);
    }
    return out;
}

}  // namespace

void read_contour_keys(const Context& c, const toml::table& m, const std::string& prefix, ModelConfig& mc) {
    auto key = [&](const char* k) { return prefix.empty() ? std::string(k) : prefix + "." + k; };
    if (const toml::node* n = m.get("contours")) mc.contours = read_bool(c, key("contours"), *n);
    if (const toml::node* n = m.get("contour_classes"))
        mc.contour_classes = read_contour_classes(c, key("contour_classes"), *n, mc.classes);
    if (const toml::node* n = m.get("contour_threshold"))
        mc.contour_threshold = read_fraction(c, key("contour_threshold"), *n);
    if (const toml::node* n = m.get("contour_tolerance")) {
        mc.contour_tolerance = read_number(c, key("contour_tolerance"), *n);
        if (!(mc.contour_tolerance >= 0.0 && mc.contour_tolerance <= 1e6))
            c.fail(key("contour_tolerance"), n, "must be between 0 (no simplification) and 1e6 map pixels");
    }
    if (const toml::node* n = m.get("min_area_um2")) {
        mc.min_area_um2 = read_number(c, key("min_area_um2"), *n);
        if (!(mc.min_area_um2 >= 0.0 && mc.min_area_um2 < 1e15))
            c.fail(key("min_area_um2"), n, "must be 0 (keep every part) or a positive area in µm²");
    }
}

}  // namespace flowinfer::config
