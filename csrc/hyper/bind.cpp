// Python bindings for hyper_modulate (see hyper.h).
#include "hyper/hyper.h"
#include "registry.h"

namespace py = pybind11;

namespace {
void bind(py::module_& cpu, py::module_* cuda) {
  cpu.def("hyper_modulate_fwd", &signbench::hyper::cpu_forward, py::arg("fv"), py::arg("fk"),
          py::arg("gamma"), py::arg("beta"), py::arg("ln_w"), py::arg("ln_b"), py::arg("out"),
          py::arg("mean"), py::arg("rstd"), py::arg("rows"), py::arg("d"), py::arg("eps"),
          py::arg("act"), py::arg("dtype"), py::call_guard<py::gil_scoped_release>());
  cpu.def("hyper_modulate_bwd", &signbench::hyper::cpu_backward, py::arg("dout"), py::arg("fv"),
          py::arg("fk"), py::arg("gamma"), py::arg("beta"), py::arg("ln_w"), py::arg("ln_b"),
          py::arg("mean"), py::arg("rstd"), py::arg("dfv"), py::arg("dfk"), py::arg("dgamma"),
          py::arg("dbeta"), py::arg("dln_w"), py::arg("dln_b"), py::arg("rows"), py::arg("d"),
          py::arg("act"), py::arg("dtype"), py::call_guard<py::gil_scoped_release>());
#ifdef SIGNBENCH_WITH_CUDA
  cuda->def("hyper_modulate_fwd", &signbench::hyper::cuda_forward, py::arg("fv"), py::arg("fk"),
            py::arg("gamma"), py::arg("beta"), py::arg("ln_w"), py::arg("ln_b"), py::arg("out"),
            py::arg("mean"), py::arg("rstd"), py::arg("rows"), py::arg("d"), py::arg("eps"),
            py::arg("act"), py::arg("dtype"), py::arg("stream"),
            py::call_guard<py::gil_scoped_release>());
  cuda->def("hyper_modulate_bwd_blocks", &signbench::hyper::cuda_backward_blocks,
            py::arg("rows"), py::arg("d"), py::arg("dtype"));
  cuda->def("hyper_modulate_bwd", &signbench::hyper::cuda_backward, py::arg("dout"),
            py::arg("fv"), py::arg("fk"), py::arg("gamma"), py::arg("beta"), py::arg("ln_w"),
            py::arg("ln_b"), py::arg("mean"), py::arg("rstd"), py::arg("dfv"), py::arg("dfk"),
            py::arg("dgamma"), py::arg("dbeta"), py::arg("dln_w_part"), py::arg("dln_b_part"),
            py::arg("rows"), py::arg("d"), py::arg("blocks"), py::arg("act"), py::arg("dtype"),
            py::arg("stream"), py::call_guard<py::gil_scoped_release>());
#else
  (void)cuda;
#endif
}
}  // namespace

SIGNBENCH_REGISTER_OP(hyper, bind);
