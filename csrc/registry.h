// Self-registration of op bindings, so adding a kernel means adding a folder csrc/<op>/ and
// touching no shared file.
//
// Each op's bind.cpp defines `void bind(pybind11::module_& cpu, pybind11::module_* cuda)` that
// adds its functions to the `_C.cpu` submodule and, when CUDA kernels are compiled in
// (cuda != nullptr), to `_C.cuda`; then `SIGNBENCH_REGISTER_OP(name, bind)` records it.
// PYBIND11_MODULE in bindings.cpp calls every recorded binder in name order.
#pragma once

#include <pybind11/pybind11.h>

namespace signbench {

using BindFn = void (*)(pybind11::module_& cpu, pybind11::module_* cuda);

int register_op(const char* name, BindFn fn);
void bind_all(pybind11::module_& cpu, pybind11::module_* cuda);

}  // namespace signbench

#define SIGNBENCH_REGISTER_OP(name, fn) \
  static const int signbench_registered_##name = ::signbench::register_op(#name, fn)
