// pybind11 bindings for harness._C. Each kernel takes raw pointers (ints), sizes and a dtype code;
// the Python wrappers in harness/ops/ validate tensors before calling in here.
#include <pybind11/pybind11.h>

#include "cpu/kernels.h"
#ifdef SIGNBENCH_WITH_CUDA
#include "cuda/kernels.h"
#endif

namespace py = pybind11;

namespace {
constexpr bool kHasCuda =
#ifdef SIGNBENCH_WITH_CUDA
    true;
#else
    false;
#endif
}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "SignBench native kernels (C++ for CPU tensors, CUDA for GPU tensors)";
  m.def("has_cuda", [] { return kHasCuda; }, "Whether the CUDA kernels were compiled in.");

  auto cpu = m.def_submodule("cpu", "C++ kernels on CPU buffers");
  cpu.def("axpy", &signbench::cpu::axpy, py::arg("x"), py::arg("y"), py::arg("out"), py::arg("n"),
          py::arg("alpha"), py::arg("dtype"), py::call_guard<py::gil_scoped_release>());

#ifdef SIGNBENCH_WITH_CUDA
  auto cuda = m.def_submodule("cuda", "CUDA kernels on GPU buffers");
  cuda.def("axpy", &signbench::cuda::axpy, py::arg("x"), py::arg("y"), py::arg("out"),
           py::arg("n"), py::arg("alpha"), py::arg("dtype"), py::arg("stream"),
           py::call_guard<py::gil_scoped_release>());
#endif
}
