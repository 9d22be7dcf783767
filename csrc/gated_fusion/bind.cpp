// Python bindings for gated_blend (see gated_fusion.h).
#include "gated_fusion/gated_fusion.h"
#include "registry.h"

namespace py = pybind11;

namespace {
void bind(py::module_& cpu, py::module_* cuda) {
  cpu.def("gated_blend_forward", &signbench::gated_fusion::forward_cpu, py::arg("o_vs"),
          py::arg("o_sv"), py::arg("fv"), py::arg("fs"), py::arg("w"), py::arg("b"),
          py::arg("ln_w"), py::arg("ln_b"), py::arg("y"), py::arg("alpha"), py::arg("mean"),
          py::arg("rstd"), py::arg("N"), py::arg("d"), py::arg("eps"), py::arg("dtype"),
          py::call_guard<py::gil_scoped_release>());
  cpu.def("gated_blend_backward", &signbench::gated_fusion::backward_cpu, py::arg("dy"),
          py::arg("o_vs"), py::arg("o_sv"), py::arg("alpha"), py::arg("mean"), py::arg("rstd"),
          py::arg("ln_w"), py::arg("dz"), py::arg("g_vs"), py::arg("g_sv"),
          py::arg("dln_w_part"), py::arg("dln_b_part"), py::arg("N"), py::arg("d"),
          py::arg("rows_per_part"), py::arg("dtype"), py::call_guard<py::gil_scoped_release>());
#ifdef SIGNBENCH_WITH_CUDA
  cuda->def("gated_blend_forward", &signbench::gated_fusion::forward_cuda, py::arg("o_vs"),
            py::arg("o_sv"), py::arg("fv"), py::arg("fs"), py::arg("w"), py::arg("b"),
            py::arg("ln_w"), py::arg("ln_b"), py::arg("y"), py::arg("alpha"), py::arg("mean"),
            py::arg("rstd"), py::arg("N"), py::arg("d"), py::arg("eps"), py::arg("dtype"),
            py::arg("stream"), py::call_guard<py::gil_scoped_release>());
  cuda->def("gated_blend_backward", &signbench::gated_fusion::backward_cuda, py::arg("dy"),
            py::arg("o_vs"), py::arg("o_sv"), py::arg("alpha"), py::arg("mean"),
            py::arg("rstd"), py::arg("ln_w"), py::arg("dz"), py::arg("g_vs"), py::arg("g_sv"),
            py::arg("dln_w_part"), py::arg("dln_b_part"), py::arg("N"), py::arg("d"),
            py::arg("parts"), py::arg("dtype"), py::arg("stream"),
            py::call_guard<py::gil_scoped_release>());
#else
  (void)cuda;
#endif
}
}  // namespace

SIGNBENCH_REGISTER_OP(gated_fusion, bind);
