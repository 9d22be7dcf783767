// Python bindings for the SST converter (see sst.h).
#include "registry.h"
#include "sst/sst.h"

namespace py = pybind11;

namespace {
void bind(py::module_& cpu, py::module_* cuda) {
  namespace sst = signbench::sst;
  cpu.def("sst_forward", &sst::cpu_forward, py::arg("feats"), py::arg("tokens"), py::arg("mask"),
          py::arg("weights"), py::arg("out"), py::arg("raw"), py::arg("argmax"), py::arg("fsum"),
          py::arg("B"), py::arg("N"), py::arg("C"), py::arg("D"), py::arg("scale"),
          py::arg("pool"), py::arg("dtype"), py::call_guard<py::gil_scoped_release>());
  cpu.def("sst_backward", &sst::cpu_backward, py::arg("feats"), py::arg("tokens"),
          py::arg("mask"), py::arg("weights"), py::arg("argmax"), py::arg("fsum"),
          py::arg("dweights"), py::arg("dout"), py::arg("dfeats"), py::arg("dtokens"),
          py::arg("dpooled"), py::arg("B"), py::arg("N"), py::arg("C"), py::arg("D"),
          py::arg("scale"), py::arg("pool"), py::arg("dtype"),
          py::call_guard<py::gil_scoped_release>());
#ifdef SIGNBENCH_WITH_CUDA
  cuda->def("sst_forward", &sst::cuda_forward, py::arg("feats"), py::arg("tokens"),
            py::arg("mask"), py::arg("weights"), py::arg("out"), py::arg("raw"),
            py::arg("argmax"), py::arg("fsum"), py::arg("B"), py::arg("N"), py::arg("C"),
            py::arg("D"), py::arg("scale"), py::arg("pool"), py::arg("dtype"), py::arg("stream"),
            py::call_guard<py::gil_scoped_release>());
  cuda->def("sst_backward", &sst::cuda_backward, py::arg("feats"), py::arg("tokens"),
            py::arg("mask"), py::arg("weights"), py::arg("argmax"), py::arg("fsum"),
            py::arg("dweights"), py::arg("dout"), py::arg("dfeats"), py::arg("dtokens"),
            py::arg("dpooled"), py::arg("B"), py::arg("N"), py::arg("C"), py::arg("D"),
            py::arg("scale"), py::arg("pool"), py::arg("dtype"), py::arg("stream"),
            py::call_guard<py::gil_scoped_release>());
#else
  (void)cuda;
#endif
}
}  // namespace

SIGNBENCH_REGISTER_OP(sst, bind);
