// Python bindings for sparsemax (see sparsemax.h).
#include "registry.h"
#include "sparsemax/sparsemax.h"

namespace py = pybind11;

namespace {
void bind(py::module_& cpu, py::module_* cuda) {
  namespace sm = signbench::sparsemax;
  cpu.def("sparsemax_forward", &sm::cpu_forward, py::arg("x"), py::arg("out"), py::arg("rows"),
          py::arg("k"), py::arg("dtype"), py::call_guard<py::gil_scoped_release>());
  cpu.def("sparsemax_backward", &sm::cpu_backward, py::arg("p"), py::arg("g"), py::arg("gin"),
          py::arg("rows"), py::arg("k"), py::arg("dtype"),
          py::call_guard<py::gil_scoped_release>());
#ifdef SIGNBENCH_WITH_CUDA
  cuda->def("sparsemax_forward", &sm::cuda_forward, py::arg("x"), py::arg("out"), py::arg("rows"),
            py::arg("k"), py::arg("dtype"), py::arg("stream"),
            py::call_guard<py::gil_scoped_release>());
  cuda->def("sparsemax_backward", &sm::cuda_backward, py::arg("p"), py::arg("g"), py::arg("gin"),
            py::arg("rows"), py::arg("k"), py::arg("dtype"), py::arg("stream"),
            py::call_guard<py::gil_scoped_release>());
#else
  (void)cuda;
#endif
}
}  // namespace

SIGNBENCH_REGISTER_OP(sparsemax, bind);
