// gated_blend on CUDA (fp32 / fp16 / bf16 storage, fp32 math; d <= 1024).
//
// Forward: a block of 256 threads owns kRows rows and all d columns; the kRows rows of
// [o_vs | o_sv] are staged in shared memory (fp32, kRows x 2d), each thread owns d / 256 output
// columns and accumulates z = b + [o_vs | o_sv] . W[c, :] for all kRows rows at once (every W
// element loaded is reused kRows times); sigmoid, blend, LayerNorm (block reductions, fp32) and
// the residual follow without leaving the block. This is a plain CUDA-core kernel; the Triton
// kernel is the tensor-core GEMM-tiled version of the same fusion.
// Backward (row part): `parts` blocks stride over the rows, one row at a time; each block keeps
// its dln_w / dln_b partial sums in registers and writes one partial row at the end (the host sums
// them: deterministic, no atomics).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "cuda_common.cuh"
#include "gated_fusion/gated_fusion.h"

namespace signbench::gated_fusion {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kRows = 4;
constexpr unsigned kFull = 0xffffffffu;

// Sums v[r] over the block for every r; red holds R * kWarps floats.
template <int R>
__device__ __forceinline__ void block_sum(float (&v)[R], float* red) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int r = 0; r < R; ++r) {
    for (int o = 16; o > 0; o >>= 1) v[r] += __shfl_xor_sync(kFull, v[r], o);
    if (lane == 0) red[r * kWarps + warp] = v[r];
  }
  __syncthreads();
#pragma unroll
  for (int r = 0; r < R; ++r) {
    float s = 0.f;
    for (int w = 0; w < kWarps; ++w) s += red[r * kWarps + w];
    v[r] = s;
  }
  __syncthreads();
}

template <typename T, int CPT>
__global__ void __launch_bounds__(kThreads)
    fwd_kernel(const T* __restrict__ ovs, const T* __restrict__ osv, const T* __restrict__ fv,
               const T* __restrict__ fs, const T* __restrict__ w, const T* __restrict__ bias,
               const T* __restrict__ lw, const T* __restrict__ lb, T* __restrict__ y,
               float* __restrict__ alpha, float* __restrict__ mean, float* __restrict__ rstd,
               std::int64_t N, int d, float eps) {
  extern __shared__ float smem[];
  float* x_s = smem;                     // kRows x 2d: [o_vs | o_sv]
  __shared__ float red[kRows * kWarps];
  const std::int64_t r0 = static_cast<std::int64_t>(blockIdx.x) * kRows;
  const int two_d = 2 * d;
  for (int x = threadIdx.x; x < kRows * two_d; x += kThreads) {
    const int r = x / two_d, k = x % two_d;
    const std::int64_t row = r0 + r;
    float val = 0.f;
    if (row < N) val = k < d ? to_float(ovs[row * d + k]) : to_float(osv[row * d + k - d]);
    x_s[x] = val;
  }
  __syncthreads();

  float a[kRows][CPT], h[kRows][CPT];
#pragma unroll
  for (int t = 0; t < CPT; ++t) {
    const int c = threadIdx.x + kThreads * t;
    float z[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) z[r] = 0.f;
    if (c < d) {
      const T* wc = w + static_cast<std::int64_t>(c) * two_d;
      const float b = to_float(bias[c]);
#pragma unroll
      for (int r = 0; r < kRows; ++r) z[r] = b;
      for (int k = 0; k < two_d; ++k) {
        const float wk = to_float(wc[k]);
#pragma unroll
        for (int r = 0; r < kRows; ++r) z[r] += x_s[r * two_d + k] * wk;
      }
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      a[r][t] = 1.f / (1.f + expf(-z[r]));
      const float xv = c < d ? x_s[r * two_d + c] : 0.f;
      const float xs = c < d ? x_s[r * two_d + d + c] : 0.f;
      h[r][t] = c < d ? xs + a[r][t] * (xv - xs) : 0.f;
    }
  }
  float mu[kRows], var[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    mu[r] = 0.f;
#pragma unroll
    for (int t = 0; t < CPT; ++t) mu[r] += h[r][t];
  }
  block_sum<kRows>(mu, red);
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    mu[r] /= static_cast<float>(d);
    var[r] = 0.f;
#pragma unroll
    for (int t = 0; t < CPT; ++t) {
      const int c = threadIdx.x + kThreads * t;
      const float diff = c < d ? h[r][t] - mu[r] : 0.f;
      var[r] += diff * diff;
    }
  }
  block_sum<kRows>(var, red);
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const std::int64_t row = r0 + r;
    if (row >= N) continue;
    const float rs = rsqrtf(var[r] / static_cast<float>(d) + eps);
    if (threadIdx.x == 0) {
      mean[row] = mu[r];
      rstd[row] = rs;
    }
#pragma unroll
    for (int t = 0; t < CPT; ++t) {
      const int c = threadIdx.x + kThreads * t;
      if (c >= d) continue;
      const std::int64_t o = row * d + c;
      const float res = 0.5f * (to_float(fv[o]) + to_float(fs[o]));
      y[o] = from_float<T>((h[r][t] - mu[r]) * rs * to_float(lw[c]) + to_float(lb[c]) + res);
      alpha[o] = a[r][t];
    }
  }
}

template <typename T, int CPT>
__global__ void __launch_bounds__(kThreads)
    bwd_kernel(const T* __restrict__ dy, const T* __restrict__ ovs, const T* __restrict__ osv,
               const float* __restrict__ alpha, const float* __restrict__ mean,
               const float* __restrict__ rstd, const T* __restrict__ lw, T* __restrict__ dz,
               T* __restrict__ g_vs, T* __restrict__ g_sv, float* __restrict__ dlw_part,
               float* __restrict__ dlb_part, std::int64_t N, int d) {
  __shared__ float red[2 * kWarps];
  float pw[CPT], pb[CPT], gamma[CPT];
#pragma unroll
  for (int t = 0; t < CPT; ++t) {
    const int c = threadIdx.x + kThreads * t;
    pw[t] = pb[t] = 0.f;
    gamma[t] = c < d ? to_float(lw[c]) : 0.f;
  }
  for (std::int64_t row = blockIdx.x; row < N; row += gridDim.x) {
    const float mu = mean[row], rs = rstd[row];
    float g[CPT], xhat[CPT], a[CPT], diff[CPT], dyv[CPT];
    float sums[2] = {0.f, 0.f};  // sum(dxhat * xhat), sum(dxhat)
#pragma unroll
    for (int t = 0; t < CPT; ++t) {
      const int c = threadIdx.x + kThreads * t;
      g[t] = xhat[t] = a[t] = diff[t] = dyv[t] = 0.f;
      if (c < d) {
        const std::int64_t o = row * d + c;
        const float xv = to_float(ovs[o]), xs = to_float(osv[o]);
        a[t] = alpha[o];
        diff[t] = xv - xs;
        xhat[t] = (xs + a[t] * diff[t] - mu) * rs;
        dyv[t] = to_float(dy[o]);
        g[t] = dyv[t] * gamma[t];
        sums[0] += g[t] * xhat[t];
        sums[1] += g[t];
        pw[t] += dyv[t] * xhat[t];
        pb[t] += dyv[t];
      }
    }
    block_sum<2>(sums, red);
    const float c1 = sums[0] / static_cast<float>(d), c2 = sums[1] / static_cast<float>(d);
#pragma unroll
    for (int t = 0; t < CPT; ++t) {
      const int c = threadIdx.x + kThreads * t;
      if (c >= d) continue;
      const std::int64_t o = row * d + c;
      const float dh = (g[t] - c2 - xhat[t] * c1) * rs;
      dz[o] = from_float<T>(dh * diff[t] * a[t] * (1.f - a[t]));
      g_vs[o] = from_float<T>(dh * a[t]);
      g_sv[o] = from_float<T>(dh - dh * a[t]);
    }
  }
#pragma unroll
  for (int t = 0; t < CPT; ++t) {
    const int c = threadIdx.x + kThreads * t;
    if (c < d) {
      dlw_part[static_cast<std::int64_t>(blockIdx.x) * d + c] = pw[t];
      dlb_part[static_cast<std::int64_t>(blockIdx.x) * d + c] = pb[t];
    }
  }
}

void check_dim(std::int64_t d) {
  if (d < 1 || d > 4 * kThreads) {
    throw std::invalid_argument("gated_blend (cuda): d must be in [1, 1024], got " +
                                std::to_string(d));
  }
}

template <typename T, int CPT>
void forward_typed(std::uintptr_t ovs, std::uintptr_t osv, std::uintptr_t fv, std::uintptr_t fs,
                   std::uintptr_t w, std::uintptr_t b, std::uintptr_t lw, std::uintptr_t lb,
                   std::uintptr_t y, std::uintptr_t alpha, std::uintptr_t mean,
                   std::uintptr_t rstd, std::int64_t N, int d, float eps, cudaStream_t stream) {
  const std::size_t smem = sizeof(float) * kRows * 2 * d;  // <= 32 KiB for d <= 1024
  const auto blocks = static_cast<unsigned>((N + kRows - 1) / kRows);
  fwd_kernel<T, CPT><<<blocks, kThreads, smem, stream>>>(
      as_ptr<const T>(ovs), as_ptr<const T>(osv), as_ptr<const T>(fv), as_ptr<const T>(fs),
      as_ptr<const T>(w), as_ptr<const T>(b), as_ptr<const T>(lw), as_ptr<const T>(lb),
      as_ptr<T>(y), as_ptr<float>(alpha), as_ptr<float>(mean), as_ptr<float>(rstd), N, d, eps);
  check_cuda(cudaGetLastError(), "gated_blend forward (cuda) launch");
}

template <typename T, int CPT>
void backward_typed(std::uintptr_t dy, std::uintptr_t ovs, std::uintptr_t osv,
                    std::uintptr_t alpha, std::uintptr_t mean, std::uintptr_t rstd,
                    std::uintptr_t lw, std::uintptr_t dz, std::uintptr_t g_vs, std::uintptr_t g_sv,
                    std::uintptr_t dlw, std::uintptr_t dlb, std::int64_t N, int d,
                    std::int64_t parts, cudaStream_t stream) {
  bwd_kernel<T, CPT><<<static_cast<unsigned>(parts), kThreads, 0, stream>>>(
      as_ptr<const T>(dy), as_ptr<const T>(ovs), as_ptr<const T>(osv),
      as_ptr<const float>(alpha), as_ptr<const float>(mean), as_ptr<const float>(rstd),
      as_ptr<const T>(lw), as_ptr<T>(dz), as_ptr<T>(g_vs), as_ptr<T>(g_sv), as_ptr<float>(dlw),
      as_ptr<float>(dlb), N, d);
  check_cuda(cudaGetLastError(), "gated_blend backward (cuda) launch");
}

// CPT = output columns per thread (d / 256 rounded up to a power of two).
#define SIGNBENCH_GATE_BY_DIM(FN, T, ...) \
  do {                                     \
    if (d <= kThreads) {                   \
      FN<T, 1>(__VA_ARGS__);               \
    } else if (d <= 2 * kThreads) {        \
      FN<T, 2>(__VA_ARGS__);               \
    } else {                               \
      FN<T, 4>(__VA_ARGS__);               \
    }                                      \
  } while (0)

#define SIGNBENCH_GATE_DISPATCH(FN, ...)                                                  \
  do {                                                                                    \
    switch (to_dtype(dtype)) {                                                            \
      case DType::Float32:                                                                \
        SIGNBENCH_GATE_BY_DIM(FN, float, __VA_ARGS__);                                    \
        break;                                                                            \
      case DType::Float16:                                                                \
        SIGNBENCH_GATE_BY_DIM(FN, __half, __VA_ARGS__);                                   \
        break;                                                                            \
      case DType::BFloat16:                                                               \
        SIGNBENCH_GATE_BY_DIM(FN, __nv_bfloat16, __VA_ARGS__);                            \
        break;                                                                            \
      default:                                                                            \
        throw std::invalid_argument(                                                      \
            "gated_blend (cuda): dtype must be float32, float16 or bfloat16");            \
    }                                                                                     \
  } while (0)

}  // namespace

void forward_cuda(std::uintptr_t o_vs, std::uintptr_t o_sv, std::uintptr_t fv, std::uintptr_t fs,
                  std::uintptr_t w, std::uintptr_t b, std::uintptr_t ln_w, std::uintptr_t ln_b,
                  std::uintptr_t y, std::uintptr_t alpha, std::uintptr_t mean, std::uintptr_t rstd,
                  std::int64_t N, std::int64_t d, double eps, int dtype, std::uintptr_t stream) {
  check_dim(d);
  if (N == 0) return;
  auto s = reinterpret_cast<cudaStream_t>(stream);
  SIGNBENCH_GATE_DISPATCH(forward_typed, o_vs, o_sv, fv, fs, w, b, ln_w, ln_b, y, alpha, mean,
                          rstd, N, static_cast<int>(d), static_cast<float>(eps), s);
}

void backward_cuda(std::uintptr_t dy, std::uintptr_t o_vs, std::uintptr_t o_sv,
                   std::uintptr_t alpha, std::uintptr_t mean, std::uintptr_t rstd,
                   std::uintptr_t ln_w, std::uintptr_t dz, std::uintptr_t g_vs,
                   std::uintptr_t g_sv, std::uintptr_t dln_w_part, std::uintptr_t dln_b_part,
                   std::int64_t N, std::int64_t d, std::int64_t parts, int dtype,
                   std::uintptr_t stream) {
  check_dim(d);
  if (N == 0) return;
  if (parts < 1 || parts > 65535) {
    throw std::invalid_argument("gated_blend backward (cuda): parts must be in [1, 65535]");
  }
  auto s = reinterpret_cast<cudaStream_t>(stream);
  SIGNBENCH_GATE_DISPATCH(backward_typed, dy, o_vs, o_sv, alpha, mean, rstd, ln_w, dz, g_vs, g_sv,
                          dln_w_part, dln_b_part, N, static_cast<int>(d), parts, s);
}

}  // namespace signbench::gated_fusion
