// hyper_modulate on CPU: out = act(gamma * LayerNorm(fv * fk) + beta), rows in parallel (OpenMP).
//
// Forward: per row, mean then centred variance of x = fv*fk (two passes over the row, which is
// in L1; vector-lane partial sums per 256-element chunk, chunks added in double so long rows of
// magnitude ~1e3 keep their digits), then one pass writing out. Backward: one pass per row
// recomputing x_hat, the pre-activation and the activation grad, writing dgamma/dbeta and caching
// x_hat, dx_hat in a per-thread scratch row, then one pass for dfv/dfk. dln_w/dln_b: per-thread
// partial rows (fp32 for 64 rows at a time, then flushed into fp64), summed at the end
// (deterministic for a fixed thread count). The activation-free case (the module's default) has
// branch-free, vectorised loops; fp32 is compiled per ISA (AVX-512 / AVX2 / baseline, picked at
// load time, see csrc/cpu_tile.h).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu_tile.h"
#include "hyper/hyper.h"

namespace signbench::hyper {

namespace {

template <typename T>
inline T act_forward(T z, int act) {
  switch (act) {
    case 1: return z < T(0) ? T(0) : z;  // NaN passes through
    case 2: return T(0.5) * z * (T(1) + std::erf(z * T(0.70710678118654752440)));
    case 3: return T(1) / (T(1) + std::exp(-z));
    case 4: return z / (T(1) + std::exp(-z));
    default: return z;
  }
}

template <typename T>
inline T act_grad(T z, int act) {
  switch (act) {
    case 1: return z > T(0) ? T(1) : T(0);
    case 2: {
      const T cdf = T(0.5) * (T(1) + std::erf(z * T(0.70710678118654752440)));
      return cdf + z * T(0.39894228040143267794) * std::exp(T(-0.5) * z * z);
    }
    case 3: {
      const T s = T(1) / (T(1) + std::exp(-z));
      return s * (T(1) - s);
    }
    case 4: {
      const T s = T(1) / (T(1) + std::exp(-z));
      return s * (T(1) + z * (T(1) - s));
    }
    default: return T(1);
  }
}

void check_act(int act) {
  if (act < 0 || act > 4) {
    throw std::invalid_argument("hyper_modulate (cpu): unknown activation code " +
                                std::to_string(act));
  }
}

// Row sums are taken in T lanes (vectorisable) over chunks of kChunk elements, and the chunks are
// added in double: a ~1e3-magnitude row keeps its digits without a per-element double
// conversion (which stopped the loops from vectorising).
constexpr std::int64_t kChunk = 256;
// Rows between flushes of the per-thread T partial sums of dln_w / dln_b into double.
constexpr std::int64_t kFlushRows = 64;

template <typename T>
SIGNBENCH_INLINE void forward_body(const T* fv, const T* fk, const T* gamma, const T* beta,
                                   const T* w, const T* b, T* out, T* mean, T* rstd,
                                   std::int64_t rows, std::int64_t d, double eps, int act) {
#pragma omp parallel for schedule(static)
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t o = r * d;
    const T* __restrict__ xv = fv + o;
    const T* __restrict__ xk = fk + o;
    double sum = 0.0;
    for (std::int64_t j0 = 0; j0 < d; j0 += kChunk) {
      const std::int64_t j1 = std::min(d, j0 + kChunk);
      T part = 0;
#pragma omp simd reduction(+ : part)
      for (std::int64_t j = j0; j < j1; ++j) part += xv[j] * xk[j];
      sum += static_cast<double>(part);
    }
    const T mu = static_cast<T>(sum / static_cast<double>(d));
    double sq = 0.0;
    for (std::int64_t j0 = 0; j0 < d; j0 += kChunk) {
      const std::int64_t j1 = std::min(d, j0 + kChunk);
      T part = 0;
#pragma omp simd reduction(+ : part)
      for (std::int64_t j = j0; j < j1; ++j) {
        const T c = xv[j] * xk[j] - mu;
        part += c * c;
      }
      sq += static_cast<double>(part);
    }
    const T rs = static_cast<T>(1.0 / std::sqrt(sq / static_cast<double>(d) + eps));
    mean[r] = mu;
    rstd[r] = rs;
    const T* __restrict__ g = gamma + o;
    const T* __restrict__ be = beta + o;
    T* __restrict__ y = out + o;
    if (act == 0) {
#pragma omp simd
      for (std::int64_t j = 0; j < d; ++j) {
        y[j] = g[j] * ((xv[j] * xk[j] - mu) * rs * w[j] + b[j]) + be[j];
      }
    } else {
      for (std::int64_t j = 0; j < d; ++j) {
        const T yn = (xv[j] * xk[j] - mu) * rs * w[j] + b[j];
        y[j] = act_forward(g[j] * yn + be[j], act);
      }
    }
  }
}

template <typename T>
SIGNBENCH_INLINE void backward_body(const T* dout, const T* fv, const T* fk, const T* gamma,
                                    const T* beta, const T* w, const T* b, const T* mean,
                                    const T* rstd, T* dfv, T* dfk, T* dgamma, T* dbeta, T* dw,
                                    T* db, std::int64_t rows, std::int64_t d, int act) {
  int threads = 1;
#ifdef _OPENMP
  threads = omp_get_max_threads();
#endif
  std::vector<double> partial(static_cast<std::size_t>(2 * threads * d), 0.0);
#pragma omp parallel num_threads(threads)
  {
    int tid = 0;
#ifdef _OPENMP
    tid = omp_get_thread_num();
#endif
    double* pw = partial.data() + static_cast<std::int64_t>(2 * tid) * d;
    double* pb = pw + d;
    std::vector<T> xhat(static_cast<std::size_t>(d)), dxhat(static_cast<std::size_t>(d));
    std::vector<T> gbuf(static_cast<std::size_t>(d));
    std::vector<T> fw(static_cast<std::size_t>(d), T(0)), fb(static_cast<std::size_t>(d), T(0));
    std::int64_t pending = 0;
#pragma omp for schedule(static)
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::int64_t o = r * d;
      const T mu = mean[r], rs = rstd[r];
      const T* __restrict__ xv = fv + o;
      const T* __restrict__ xk = fk + o;
      const T* __restrict__ gm = gamma + o;
      T* __restrict__ g = gbuf.data();
      if (act == 0) {
        std::copy(dout + o, dout + o + d, g);
      } else {
        for (std::int64_t j = 0; j < d; ++j) {
          const T y = (xv[j] * xk[j] - mu) * rs * w[j] + b[j];
          g[j] = dout[o + j] * act_grad(gm[j] * y + beta[o + j], act);
        }
      }
      T* __restrict__ xh_row = xhat.data();
      T* __restrict__ dxh_row = dxhat.data();
      T* __restrict__ fwr = fw.data();
      T* __restrict__ fbr = fb.data();
      T* __restrict__ dg = dgamma + o;
      T* __restrict__ dbt = dbeta + o;
      double c1 = 0.0, c2 = 0.0;
      for (std::int64_t j0 = 0; j0 < d; j0 += kChunk) {
        const std::int64_t j1 = std::min(d, j0 + kChunk);
        T p1 = 0, p2 = 0;
#pragma omp simd reduction(+ : p1, p2)
        for (std::int64_t j = j0; j < j1; ++j) {
          const T xh = (xv[j] * xk[j] - mu) * rs;
          const T y = xh * w[j] + b[j];
          dg[j] = g[j] * y;
          dbt[j] = g[j];
          const T dy = g[j] * gm[j];
          fwr[j] += dy * xh;
          fbr[j] += dy;
          const T dxh = dy * w[j];
          p1 += dxh * xh;
          p2 += dxh;
          xh_row[j] = xh;
          dxh_row[j] = dxh;
        }
        c1 += static_cast<double>(p1);
        c2 += static_cast<double>(p2);
      }
      const T m1 = static_cast<T>(c1 / static_cast<double>(d));
      const T m2 = static_cast<T>(c2 / static_cast<double>(d));
      T* __restrict__ gv = dfv + o;
      T* __restrict__ gk = dfk + o;
#pragma omp simd
      for (std::int64_t j = 0; j < d; ++j) {
        const T dx = (dxh_row[j] - xh_row[j] * m1 - m2) * rs;
        gv[j] = dx * xk[j];
        gk[j] = dx * xv[j];
      }
      if (++pending == kFlushRows) {
        for (std::int64_t j = 0; j < d; ++j) {
          pw[j] += static_cast<double>(fwr[j]);
          pb[j] += static_cast<double>(fbr[j]);
          fwr[j] = fbr[j] = T(0);
        }
        pending = 0;
      }
    }
    for (std::int64_t j = 0; j < d; ++j) {
      pw[j] += static_cast<double>(fw[static_cast<std::size_t>(j)]);
      pb[j] += static_cast<double>(fb[static_cast<std::size_t>(j)]);
    }
  }
  for (std::int64_t j = 0; j < d; ++j) {
    double sw = 0.0, sb = 0.0;
    for (int t = 0; t < threads; ++t) {
      sw += partial[static_cast<std::size_t>(2 * t * d + j)];
      sb += partial[static_cast<std::size_t>((2 * t + 1) * d + j)];
    }
    dw[j] = static_cast<T>(sw);
    db[j] = static_cast<T>(sb);
  }
}

// fp32 entry points, compiled per ISA (csrc/cpu_tile.h); fp64 uses the bodies directly.
SIGNBENCH_CPU_CLONES
void forward_f32(const float* fv, const float* fk, const float* gamma, const float* beta,
                 const float* w, const float* b, float* out, float* mean, float* rstd,
                 std::int64_t rows, std::int64_t d, double eps, int act) {
  forward_body(fv, fk, gamma, beta, w, b, out, mean, rstd, rows, d, eps, act);
}

SIGNBENCH_CPU_CLONES
void backward_f32(const float* dout, const float* fv, const float* fk, const float* gamma,
                  const float* beta, const float* w, const float* b, const float* mean,
                  const float* rstd, float* dfv, float* dfk, float* dgamma, float* dbeta,
                  float* dw, float* db, std::int64_t rows, std::int64_t d, int act) {
  backward_body(dout, fv, fk, gamma, beta, w, b, mean, rstd, dfv, dfk, dgamma, dbeta, dw, db,
                rows, d, act);
}

}  // namespace

void cpu_forward(std::uintptr_t fv, std::uintptr_t fk, std::uintptr_t gamma, std::uintptr_t beta,
                 std::uintptr_t ln_w, std::uintptr_t ln_b, std::uintptr_t out,
                 std::uintptr_t mean, std::uintptr_t rstd, std::int64_t rows, std::int64_t d,
                 double eps, int act, int dtype) {
  check_act(act);
  if (rows <= 0 || d <= 0) return;
  switch (to_dtype(dtype)) {
    case DType::Float32:
      forward_f32(as_ptr<const float>(fv), as_ptr<const float>(fk), as_ptr<const float>(gamma),
                  as_ptr<const float>(beta), as_ptr<const float>(ln_w),
                  as_ptr<const float>(ln_b), as_ptr<float>(out), as_ptr<float>(mean),
                  as_ptr<float>(rstd), rows, d, eps, act);
      break;
    case DType::Float64:
      forward_body(as_ptr<const double>(fv), as_ptr<const double>(fk),
                   as_ptr<const double>(gamma), as_ptr<const double>(beta),
                   as_ptr<const double>(ln_w), as_ptr<const double>(ln_b), as_ptr<double>(out),
                   as_ptr<double>(mean), as_ptr<double>(rstd), rows, d, eps, act);
      break;
    default:
      throw std::invalid_argument("hyper_modulate (cpu): dtype must be float32 or float64");
  }
}

void cpu_backward(std::uintptr_t dout, std::uintptr_t fv, std::uintptr_t fk,
                  std::uintptr_t gamma, std::uintptr_t beta, std::uintptr_t ln_w,
                  std::uintptr_t ln_b, std::uintptr_t mean, std::uintptr_t rstd,
                  std::uintptr_t dfv, std::uintptr_t dfk, std::uintptr_t dgamma,
                  std::uintptr_t dbeta, std::uintptr_t dln_w, std::uintptr_t dln_b,
                  std::int64_t rows, std::int64_t d, int act, int dtype) {
  check_act(act);
  if (d <= 0) return;
  if (rows < 0) rows = 0;
  switch (to_dtype(dtype)) {
    case DType::Float32:
      backward_f32(as_ptr<const float>(dout), as_ptr<const float>(fv), as_ptr<const float>(fk),
                   as_ptr<const float>(gamma), as_ptr<const float>(beta),
                   as_ptr<const float>(ln_w), as_ptr<const float>(ln_b),
                   as_ptr<const float>(mean), as_ptr<const float>(rstd), as_ptr<float>(dfv),
                   as_ptr<float>(dfk), as_ptr<float>(dgamma), as_ptr<float>(dbeta),
                   as_ptr<float>(dln_w), as_ptr<float>(dln_b), rows, d, act);
      break;
    case DType::Float64:
      backward_body(as_ptr<const double>(dout), as_ptr<const double>(fv),
                    as_ptr<const double>(fk), as_ptr<const double>(gamma),
                    as_ptr<const double>(beta), as_ptr<const double>(ln_w),
                    as_ptr<const double>(ln_b), as_ptr<const double>(mean),
                    as_ptr<const double>(rstd), as_ptr<double>(dfv), as_ptr<double>(dfk),
                    as_ptr<double>(dgamma), as_ptr<double>(dbeta), as_ptr<double>(dln_w),
                    as_ptr<double>(dln_b), rows, d, act);
      break;
    default:
      throw std::invalid_argument("hyper_modulate (cpu): dtype must be float32 or float64");
  }
}

}  // namespace signbench::hyper
