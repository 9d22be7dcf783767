// Python bindings for axpy (see axpy.h).
#include "axpy/axpy.h"
#include "registry.h"

namespace py = pybind11;

namespace {
void bind(py::module_& cpu, py::module_* cuda) {
  cpu.def("axpy", &signbench::axpy::cpu, py::arg("x"), py::arg("y"), py::arg("out"), py::arg("n"),
          py::arg("alpha"), py::arg("dtype"), py::call_guard<py::gil_scoped_release>());
#ifdef SIGNBENCH_WITH_CUDA
  cuda->def("axpy", &signbench::axpy::cuda, py::arg("x"), py::arg("y"), py::arg("out"),
            py::arg("n"), py::arg("alpha"), py::arg("dtype"), py::arg("stream"),
            py::call_guard<py::gil_scoped_release>());
#else
  (void)cuda;
#endif
}
}  // namespace

SIGNBENCH_REGISTER_OP(axpy, bind);
