// pybind11 module harness._C: `cpu` (C++ kernels on CPU buffers) and, when compiled in, `cuda`
// (CUDA kernels on GPU buffers). Kernels take raw pointers (ints), sizes and a dtype code; the
// Python wrappers in harness/ops/ validate tensors before calling in here.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "registry.h"

namespace signbench {

namespace {
std::vector<std::pair<std::string, BindFn>>& registry() {
  static std::vector<std::pair<std::string, BindFn>> binders;
  return binders;
}
}  // namespace

int register_op(const char* name, BindFn fn) {
  registry().emplace_back(name, fn);
  return static_cast<int>(registry().size());
}

void bind_all(pybind11::module_& cpu, pybind11::module_* cuda) {
  auto binders = registry();
  std::sort(binders.begin(), binders.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [name, fn] : binders) fn(cpu, cuda);
}

}  // namespace signbench

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
  if constexpr (kHasCuda) {
    auto cuda = m.def_submodule("cuda", "CUDA kernels on GPU buffers");
    signbench::bind_all(cpu, &cuda);
  } else {
    signbench::bind_all(cpu, nullptr);
  }
}
