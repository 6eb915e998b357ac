// Runs the installed flowinfer graph inside this program's own tbb::flow::graph.
#include <flowinfer/config.hpp>
#include <flowinfer/demo.hpp>
#include <flowinfer/pipeline.hpp>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    const std::string dir = argv[1];
    flowinfer::SyntheticSlideSpec spec;
    spec.width = 700;
    spec.height = 600;
    flowinfer::write_synthetic_slide(dir + "/slide.tiff", spec);
    flowinfer::write_demo_model(dir + "/tissue.pt", flowinfer::DemoModel::tissue);

    flowinfer::Config cfg;
    cfg.output_dir = dir + "/out";
    cfg.patch_size = 256;
    cfg.overlap = 32;
    cfg.max_in_flight = 16;
    flowinfer::ModelConfig model;
    model.name = "tissue";
    model.path = dir + "/tissue.pt";
    model.batch_size = 4;
    cfg.models.push_back(model);

    tbb::flow::graph g;
    flowinfer::SlidePipeline pipeline(g, cfg);
    int ok = 0;
    tbb::flow::function_node<flowinfer::SlideResult> sink(g, tbb::flow::serial,
                                                           [&](const flowinfer::SlideResult& r) {
                                                               std::printf("%s: %s\n", r.path.c_str(),
                                                                           r.ok() ? "ok" : r.error.c_str());
                                                               ok += r.ok();
                                                               return tbb::flow::continue_msg();
                                                           });
    tbb::flow::make_edge(tbb::flow::output_port<0>(pipeline), sink);
    tbb::flow::input_port<0>(pipeline).try_put(flowinfer::SlideJob{0, dir + "/slide.tiff", {}, 0});
    g.wait_for_all();
    return ok == 1 ? 0 : 1;
}
