// sparsemax: Euclidean projection of each row onto the probability simplex (Martins & Astudillo
// 2016). Rows of a contiguous (rows, K) buffer. See harness/ops/sparsemax.py.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include "common.h"

namespace signbench::sparsemax {

// CPU: fp32 / fp64 (the Python wrapper upcasts fp16 / bf16 to fp32).
void cpu_forward(std::uintptr_t x, std::uintptr_t out, std::int64_t rows, std::int64_t k,
                 int dtype);
void cpu_backward(std::uintptr_t p, std::uintptr_t g, std::uintptr_t gin, std::int64_t rows,
                  std::int64_t k, int dtype);

// CUDA: fp32 / fp64 / fp16 / bf16 (fp32 math for halves), on the stream given as an integer.
void cuda_forward(std::uintptr_t x, std::uintptr_t out, std::int64_t rows, std::int64_t k,
                  int dtype, std::uintptr_t stream);
void cuda_backward(std::uintptr_t p, std::uintptr_t g, std::uintptr_t gin, std::int64_t rows,
                   std::int64_t k, int dtype, std::uintptr_t stream);

// Sparsemax of one row z[0..k) (exact, sort-based: Algorithm 1 of HyperSign) into out[0..k).
// `scratch` must hold k values. Shared with the SST converter's CPU kernel. A row holding a
// NaN or +/-Inf becomes all-NaN. Returns nothing; out may alias z.
template <typename T>
inline void sparsemax_row(const T* z, T* out, std::int64_t k, std::vector<T>& scratch) {
  bool finite = true;
  T zmax = -std::numeric_limits<T>::infinity();
  for (std::int64_t i = 0; i < k; ++i) {
    if (!std::isfinite(z[i])) finite = false;
    zmax = std::max(zmax, z[i]);
  }
  if (!finite) {
    for (std::int64_t i = 0; i < k; ++i) out[i] = std::numeric_limits<T>::quiet_NaN();
    return;
  }
  scratch.resize(static_cast<std::size_t>(k));
  for (std::int64_t i = 0; i < k; ++i) scratch[i] = z[i] - zmax;
  std::sort(scratch.begin(), scratch.end(), std::greater<T>());
  T cumsum = 0, tau_sum = 0;
  std::int64_t support = 1;
  for (std::int64_t j = 0; j < k; ++j) {
    cumsum += scratch[j];
    if (T(1) + T(j + 1) * scratch[j] > cumsum) {
      support = j + 1;
      tau_sum = cumsum;
    }
  }
  const T tau = (tau_sum - T(1)) / static_cast<T>(support);
  for (std::int64_t i = 0; i < k; ++i) out[i] = std::max(z[i] - zmax - tau, T(0));
}

// Jacobian-vector product of one row: gin = g - mean_S(g) on S = {p > 0}, 0 elsewhere
// (0 * p keeps NaN rows NaN). gin may alias g.
template <typename T>
inline void sparsemax_backward_row(const T* p, const T* g, T* gin, std::int64_t k) {
  T sum = 0;
  std::int64_t count = 0;
  for (std::int64_t i = 0; i < k; ++i) {
    if (p[i] > T(0)) {
      sum += g[i];
      ++count;
    }
  }
  const T mean = count > 0 ? sum / static_cast<T>(count) : T(0);
  for (std::int64_t i = 0; i < k; ++i) gin[i] = p[i] > T(0) ? g[i] - mean : T(0) * p[i];
}

}  // namespace signbench::sparsemax
