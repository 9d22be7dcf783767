// Python bindings for masked_attention (see attention.h).
#include "attention/attention.h"
#include "registry.h"

namespace py = pybind11;

namespace {
void bind(py::module_& cpu, py::module_* cuda) {
  cpu.def("attention_forward", &signbench::attention::forward_cpu, py::arg("q"), py::arg("k"),
          py::arg("v"), py::arg("mask"), py::arg("out"), py::arg("lse"), py::arg("B"),
          py::arg("H"), py::arg("Tq"), py::arg("Tk"), py::arg("dh"), py::arg("half_window"),
          py::arg("scale"), py::arg("dtype"), py::arg("heads_interleaved") = false,
          py::call_guard<py::gil_scoped_release>());
  cpu.def("attention_backward", &signbench::attention::backward_cpu, py::arg("q"), py::arg("k"),
          py::arg("v"), py::arg("mask"), py::arg("out"), py::arg("dout"), py::arg("lse"),
          py::arg("dq"), py::arg("dk"), py::arg("dv"), py::arg("B"), py::arg("H"), py::arg("Tq"),
          py::arg("Tk"), py::arg("dh"), py::arg("half_window"), py::arg("scale"),
          py::arg("dtype"), py::arg("heads_interleaved") = false,
          py::call_guard<py::gil_scoped_release>());
#ifdef SIGNBENCH_WITH_CUDA
  cuda->def("attention_forward", &signbench::attention::forward_cuda, py::arg("q"), py::arg("k"),
            py::arg("v"), py::arg("mask"), py::arg("out"), py::arg("lse"), py::arg("B"),
            py::arg("H"), py::arg("Tq"), py::arg("Tk"), py::arg("dh"), py::arg("half_window"),
            py::arg("scale"), py::arg("dtype"), py::arg("stream"),
            py::call_guard<py::gil_scoped_release>());
  cuda->def("attention_backward", &signbench::attention::backward_cuda, py::arg("q"),
            py::arg("k"), py::arg("v"), py::arg("mask"), py::arg("out"), py::arg("dout"),
            py::arg("lse"), py::arg("dq"), py::arg("dk"), py::arg("dv"), py::arg("B"),
            py::arg("H"), py::arg("Tq"), py::arg("Tk"), py::arg("dh"), py::arg("half_window"),
            py::arg("scale"), py::arg("dtype"), py::arg("delta"), py::arg("stream"),
            py::call_guard<py::gil_scoped_release>());
#else
  (void)cuda;
#endif
}
}  // namespace

SIGNBENCH_REGISTER_OP(attention, bind);
