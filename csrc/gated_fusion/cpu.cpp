// gated_blend on CPU. Forward, fp32 (the hot path): the gate pre-activation
// z = [o_vs; o_sv] W^T + b is a blocked GEMM. W^T is packed once per call into zero-padded
// 32-column panels (2d, 32); a task owns kRowBlock rows and all d columns of z in a per-thread
// buffer; the K = 2d reduction runs in kKBlock slices (the o_vs half against the first d rows of
// the panels, the o_sv half against the rest; the concatenation is never built) through the
// register-blocked micro-kernel of csrc/cpu_tile.h (compiled for AVX-512 / AVX2 / baseline,
// picked at load time); then the row epilogue (vectorised sigmoid, blend, LayerNorm, residual)
// runs on the rows while they are in cache. fp64 keeps the simple per-row loop (naive K loop per
// output column). Backward: the row part (LayerNorm / blend / sigmoid) with per-chunk partial
// sums for dln_w / dln_b; the gate GEMMs run in torch. fp32 math for fp32 inputs, fp64 for fp64.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "cpu_tile.h"
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


constexpr std::int64_t kRowBlock = 64;  // rows of z per task
constexpr std::int64_t kKBlock = 256;   // K slice: a (64 x 256) block of A and a (256 x 32) panel

SIGNBENCH_CPU_CLONES
void forward_f32(const float* ovs, const float* osv, const float* fv, const float* fs,
                 const float* w, const float* bias, const float* lw, const float* lb, float* y,
                 float* alpha, float* mean, float* rstd, std::int64_t N, std::int64_t d,
                 float eps) {
  const std::int64_t K = 2 * d;
  const std::int64_t dp = tile::round_up(d, tile::kNR);
  const std::int64_t panels = dp / tile::kNR;
  // wp[p][k][jj] = W[p*32 + jj, k] (0 past d): the B operand, contiguous per K slice.
  std::vector<float> wp(static_cast<std::size_t>(panels * K * tile::kNR), 0.0f);
#pragma omp parallel for schedule(static)
  for (std::int64_t c = 0; c < d; ++c) {
    float* dst = wp.data() + (c / tile::kNR) * K * tile::kNR + (c % tile::kNR);
    const float* src = w + c * K;
    for (std::int64_t k = 0; k < K; ++k) dst[k * tile::kNR] = src[k];
  }
  const bool wide = tile::wide_registers();
  const std::int64_t blocks = (N + kRowBlock - 1) / kRowBlock;
#pragma omp parallel
  {
    std::vector<float> z(static_cast<std::size_t>(kRowBlock * dp));
    std::vector<float> h(static_cast<std::size_t>(dp));
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t blk = 0; blk < blocks; ++blk) {
      const std::int64_t r0 = blk * kRowBlock;
      const std::int64_t rows = std::min(kRowBlock, N - r0);
      for (std::int64_t r = 0; r < rows; ++r) {
        float* zr = z.data() + r * dp;
        std::copy(bias, bias + d, zr);
        std::fill(zr + d, zr + dp, 0.0f);
      }
      for (std::int64_t k0 = 0; k0 < K; k0 += kKBlock) {
        // The slice [k0, k1) may straddle the o_vs / o_sv boundary at d: split it there.
        const std::int64_t k1 = std::min(K, k0 + kKBlock);
        for (std::int64_t ka = k0; ka < k1;) {
          const std::int64_t kb = ka < d ? std::min(k1, d) : k1;
          const float* a = (ka < d ? ovs + ka : osv + (ka - d)) + r0 * d;
          for (std::int64_t pnl = 0; pnl < panels; ++pnl) {
            tile::gemm_acc(rows, tile::kNR, kb - ka, a, d, 1,
                           wp.data() + (pnl * K + ka) * tile::kNR, tile::kNR,
                           z.data() + pnl * tile::kNR, dp, wide);
          }
          ka = kb;
        }
      }
      for (std::int64_t r = 0; r < rows; ++r) {
        const std::int64_t o = (r0 + r) * d;
        float* __restrict__ zr = z.data() + r * dp;
        const float* __restrict__ xv = ovs + o;
        const float* __restrict__ xs = osv + o;
        float* __restrict__ ar = alpha + o;
        float* __restrict__ hr = h.data();
#pragma omp simd
        for (std::int64_t c = 0; c < dp; ++c) zr[c] = -zr[c];
        tile::exp_inplace(zr, dp);  // exp(-z)
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (std::int64_t c = 0; c < d; ++c) {
          const float a_c = 1.0f / (1.0f + zr[c]);
          ar[c] = a_c;
          hr[c] = xs[c] + a_c * (xv[c] - xs[c]);
          sum += hr[c];
        }
        const float mu = sum / static_cast<float>(d);
        float var = 0.0f;
#pragma omp simd reduction(+ : var)
        for (std::int64_t c = 0; c < d; ++c) var += (hr[c] - mu) * (hr[c] - mu);
        const float rs = 1.0f / std::sqrt(var / static_cast<float>(d) + eps);
        mean[r0 + r] = mu;
        rstd[r0 + r] = rs;
        float* __restrict__ yr = y + o;
        const float* __restrict__ fvr = fv + o;
        const float* __restrict__ fsr = fs + o;
#pragma omp simd
        for (std::int64_t c = 0; c < d; ++c) {
          yr[c] = (hr[c] - mu) * rs * lw[c] + lb[c] + 0.5f * (fvr[c] + fsr[c]);
        }
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
      forward_f32(as_ptr<const float>(o_vs), as_ptr<const float>(o_sv), as_ptr<const float>(fv),
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
