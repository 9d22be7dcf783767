// out = alpha * x + y on contiguous CPU buffers: the trivial kernel that exercises the whole
// native path (CMake, pybind11, Python wrapper, autograd) before the real fused kernels land.
#include "axpy/axpy.h"

#include <cstdint>

namespace signbench::axpy {

namespace {
template <typename T>
void axpy_impl(const T* x, const T* y, T* out, std::int64_t n, double alpha) {
  const T a = static_cast<T>(alpha);
#pragma omp simd
  for (std::int64_t i = 0; i < n; ++i) out[i] = a * x[i] + y[i];
}
}  // namespace

void cpu(std::uintptr_t x, std::uintptr_t y, std::uintptr_t out, std::int64_t n, double alpha,
         int dtype) {
  switch (to_dtype(dtype)) {
    case DType::Float32:
      axpy_impl(as_ptr<const float>(x), as_ptr<const float>(y), as_ptr<float>(out), n, alpha);
      break;
    case DType::Float64:
      axpy_impl(as_ptr<const double>(x), as_ptr<const double>(y), as_ptr<double>(out), n, alpha);
      break;
    default:
      throw std::invalid_argument("axpy (cpu): dtype must be float32 or float64");
  }
}

}  // namespace signbench::axpy
