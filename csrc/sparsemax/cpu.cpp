// Sparsemax on CPU rows: exact sort-based threshold (see sparsemax.h), OpenMP over rows.
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "sparsemax/sparsemax.h"

namespace signbench::sparsemax {

namespace {
template <typename T>
void forward_impl(const T* x, T* out, std::int64_t rows, std::int64_t k) {
#pragma omp parallel
  {
    std::vector<T> scratch;
#pragma omp for schedule(static)
    for (std::int64_t r = 0; r < rows; ++r) sparsemax_row(x + r * k, out + r * k, k, scratch);
  }
}

template <typename T>
void backward_impl(const T* p, const T* g, T* gin, std::int64_t rows, std::int64_t k) {
#pragma omp parallel for schedule(static)
  for (std::int64_t r = 0; r < rows; ++r) {
    sparsemax_backward_row(p + r * k, g + r * k, gin + r * k, k);
  }
}
}  // namespace

void cpu_forward(std::uintptr_t x, std::uintptr_t out, std::int64_t rows, std::int64_t k,
                 int dtype) {
  if (rows < 0 || k < 0) throw std::invalid_argument("sparsemax (cpu): negative size");
  switch (to_dtype(dtype)) {
    case DType::Float32:
      forward_impl(as_ptr<const float>(x), as_ptr<float>(out), rows, k);
      break;
    case DType::Float64:
      forward_impl(as_ptr<const double>(x), as_ptr<double>(out), rows, k);
      break;
    default:
      throw std::invalid_argument("sparsemax (cpu): dtype must be float32 or float64");
  }
}

void cpu_backward(std::uintptr_t p, std::uintptr_t g, std::uintptr_t gin, std::int64_t rows,
                  std::int64_t k, int dtype) {
  if (rows < 0 || k < 0) throw std::invalid_argument("sparsemax (cpu): negative size");
  switch (to_dtype(dtype)) {
    case DType::Float32:
      backward_impl(as_ptr<const float>(p), as_ptr<const float>(g), as_ptr<float>(gin), rows, k);
      break;
    case DType::Float64:
      backward_impl(as_ptr<const double>(p), as_ptr<const double>(g), as_ptr<double>(gin), rows,
                    k);
      break;
    default:
      throw std::invalid_argument("sparsemax (cpu): dtype must be float32 or float64");
  }
}

}  // namespace signbench::sparsemax
