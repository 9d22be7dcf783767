// gated_blend on CPU: one row at a time (OpenMP over rows); the gate pre-activation z is a naive
// K = 2d dot product per output column against a contiguous row of W (no concat is built), then
// sigmoid, blend, LayerNorm and residual in a d-wide scratch row. Backward: the row part
// (LayerNorm / blend / sigmoid) with per-chunk partial sums for dln_w / dln_b; the gate GEMMs run
// in torch. fp32 math for fp32 inputs, fp64 for fp64.
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "gated_fusion/gated_fusion.h"

namespace signbench::gated_fusion {

namespace {

template <typename T>
void forward_impl(const T* ovs, const T* osv, const T* fv, const T* fs, const T* w, const T* b,
                  const T* lw, const T* lb, T* y, T* alpha, T* mean, T* rstd, std::int64_t N,
                  std::int64_t d, T eps) {
#pragma omp parallel
  {
    std::vector<T> h(static_cast<std::size_t>(d));
#pragma omp for schedule(static)
    for (std::int64_t r = 0; r < N; ++r) {
      const T* xv = ovs + r * d;
      const T* xs = osv + r * d;
      T* ar = alpha + r * d;
      T sum = 0;
      for (std::int64_t c = 0; c < d; ++c) {
        const T* wc = w + c * 2 * d;
        T z = b[c];
        for (std::int64_t k = 0; k < d; ++k) z += xv[k] * wc[k];
        for (std::int64_t k = 0; k < d; ++k) z += xs[k] * wc[d + k];
        const T a = T(1) / (T(1) + std::exp(-z));
        ar[c] = a;
        h[c] = xs[c] + a * (xv[c] - xs[c]);
        sum += h[c];
      }
      const T mu = sum / static_cast<T>(d);
      T var = 0;
      for (std::int64_t c = 0; c < d; ++c) var += (h[c] - mu) * (h[c] - mu);
      const T rs = T(1) / std::sqrt(var / static_cast<T>(d) + eps);
      mean[r] = mu;
      rstd[r] = rs;
      T* yr = y + r * d;
      for (std::int64_t c = 0; c < d; ++c) {
        yr[c] = (h[c] - mu) * rs * lw[c] + lb[c] + T(0.5) * (fv[r * d + c] + fs[r * d + c]);
      }
    }
  }
}

template <typename T>
void backward_impl(const T* dy, const T* ovs, const T* osv, const T* alpha, const T* mean,
                   const T* rstd, const T* lw, T* dz, T* g_vs, T* g_sv, T* dlw, T* dlb,
                   std::int64_t N, std::int64_t d, std::int64_t rows_per_part) {
  const std::int64_t parts = (N + rows_per_part - 1) / rows_per_part;
#pragma omp parallel
  {
    std::vector<T> xhat(static_cast<std::size_t>(d));
#pragma omp for schedule(static)
    for (std::int64_t p = 0; p < parts; ++p) {
      T* pw = dlw + p * d;
      T* pb = dlb + p * d;
      for (std::int64_t c = 0; c < d; ++c) pw[c] = pb[c] = 0;
      const std::int64_t r_end = (p + 1) * rows_per_part < N ? (p + 1) * rows_per_part : N;
      for (std::int64_t r = p * rows_per_part; r < r_end; ++r) {
        const std::int64_t o = r * d;
        T c1 = 0, c2 = 0;
        for (std::int64_t c = 0; c < d; ++c) {
          const T h = osv[o + c] + alpha[o + c] * (ovs[o + c] - osv[o + c]);
          xhat[c] = (h - mean[r]) * rstd[r];
          const T dx = dy[o + c] * lw[c];
          c1 += dx * xhat[c];
          c2 += dx;
          pw[c] += dy[o + c] * xhat[c];
          pb[c] += dy[o + c];
        }
        c1 /= static_cast<T>(d);
        c2 /= static_cast<T>(d);
        for (std::int64_t c = 0; c < d; ++c) {
          const T dh = (dy[o + c] * lw[c] - c2 - xhat[c] * c1) * rstd[r];
          const T a = alpha[o + c];
          dz[o + c] = dh * (ovs[o + c] - osv[o + c]) * a * (T(1) - a);
          g_vs[o + c] = dh * a;
          g_sv[o + c] = dh - dh * a;
        }
      }
    }
  }
}

}  // namespace

void forward_cpu(std::uintptr_t o_vs, std::uintptr_t o_sv, std::uintptr_t fv, std::uintptr_t fs,
                 std::uintptr_t w, std::uintptr_t b, std::uintptr_t ln_w, std::uintptr_t ln_b,
                 std::uintptr_t y, std::uintptr_t alpha, std::uintptr_t mean, std::uintptr_t rstd,
                 std::int64_t N, std::int64_t d, double eps, int dtype) {
  switch (to_dtype(dtype)) {
    case DType::Float32:
      forward_impl(as_ptr<const float>(o_vs), as_ptr<const float>(o_sv), as_ptr<const float>(fv),
                   as_ptr<const float>(fs), as_ptr<const float>(w), as_ptr<const float>(b),
                   as_ptr<const float>(ln_w), as_ptr<const float>(ln_b), as_ptr<float>(y),
                   as_ptr<float>(alpha), as_ptr<float>(mean), as_ptr<float>(rstd), N, d,
                   static_cast<float>(eps));
      break;
    case DType::Float64:
      forward_impl(as_ptr<const double>(o_vs), as_ptr<const double>(o_sv),
                   as_ptr<const double>(fv), as_ptr<const double>(fs), as_ptr<const double>(w),
                   as_ptr<const double>(b), as_ptr<const double>(ln_w),
                   as_ptr<const double>(ln_b), as_ptr<double>(y), as_ptr<double>(alpha),
                   as_ptr<double>(mean), as_ptr<double>(rstd), N, d, eps);
      break;
    default:
      throw std::invalid_argument("gated_blend_forward (cpu): dtype must be float32 or float64");
  }
}

void backward_cpu(std::uintptr_t dy, std::uintptr_t o_vs, std::uintptr_t o_sv,
                  std::uintptr_t alpha, std::uintptr_t mean, std::uintptr_t rstd,
                  std::uintptr_t ln_w, std::uintptr_t dz, std::uintptr_t g_vs, std::uintptr_t g_sv,
                  std::uintptr_t dln_w_part, std::uintptr_t dln_b_part, std::int64_t N,
                  std::int64_t d, std::int64_t rows_per_part, int dtype) {
  if (rows_per_part < 1) throw std::invalid_argument("gated_blend_backward: rows_per_part < 1");
  switch (to_dtype(dtype)) {
    case DType::Float32:
      backward_impl(as_ptr<const float>(dy), as_ptr<const float>(o_vs), as_ptr<const float>(o_sv),
                    as_ptr<const float>(alpha), as_ptr<const float>(mean),
                    as_ptr<const float>(rstd), as_ptr<const float>(ln_w), as_ptr<float>(dz),
                    as_ptr<float>(g_vs), as_ptr<float>(g_sv), as_ptr<float>(dln_w_part),
                    as_ptr<float>(dln_b_part), N, d, rows_per_part);
      break;
    case DType::Float64:
      backward_impl(as_ptr<const double>(dy), as_ptr<const double>(o_vs),
                    as_ptr<const double>(o_sv), as_ptr<const double>(alpha),
                    as_ptr<const double>(mean), as_ptr<const double>(rstd),
                    as_ptr<const double>(ln_w), as_ptr<double>(dz), as_ptr<double>(g_vs),
                    as_ptr<double>(g_sv), as_ptr<double>(dln_w_part), as_ptr<double>(dln_b_part),
                    N, d, rows_per_part);
      break;
    default:
      throw std::invalid_argument("gated_blend_backward (cpu): dtype must be float32 or float64");
  }
}

}  // namespace signbench::gated_fusion
