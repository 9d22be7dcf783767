// masked_attention on CUDA, flash style: no Tq x Tk buffer, online softmax, fp32 statistics.
//
// Forward / dQ: a block owns kWarps query rows of one (b, h), one warp per row; K / V tiles of
// kTileN keys are staged in shared memory (fp32, K with a padded row stride so that lane j reading
// key j's row is bank-conflict free). Lane j computes the full score of key j of the tile; the
// tile's probabilities are then broadcast with __shfl_sync while each lane accumulates its
// d_h / 32 output dimensions. dK / dV: the transpose — a block owns kWarps key rows, one warp per
// key, streaming Q / dO tiles. The logsumexp of each query row is stored in fp32 (+inf for a row
// with no valid key, so p = exp(s - lse) = 0 in backward); D = rowsum(dO * O) is a separate
// warp-per-row kernel. Storage fp32 / fp16 / bf16, math fp32; d_h <= 256.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "cuda_common.cuh"
#include "attention/attention.h"

namespace signbench::attention {

namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kTileN = 32;
constexpr unsigned kFull = 0xffffffffu;

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFull, v, o));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}

__device__ __forceinline__ bool allowed(std::int64_t i, std::int64_t j, std::int64_t Tq,
                                        std::int64_t Tk, const std::uint8_t* mask_row,
                                        std::int64_t half_window) {
  if (i >= Tq || j >= Tk) return false;
  if (mask_row != nullptr && mask_row[j] == 0) return false;
  if (half_window >= 0) {
    const std::int64_t diff = i - j;
    if (diff > half_window || diff < -half_window) return false;
  }
  return true;
}

// Copies rows [row0, row0 + kTileN) of a (rows, dh) matrix into shared memory with row stride
// `stride` (zeros past `rows`).
template <typename T>
__device__ void load_tile(float* dst, const T* src, std::int64_t row0, std::int64_t rows, int dh,
                          int stride) {
  for (int x = threadIdx.x; x < kTileN * dh; x += blockDim.x) {
    const int r = x / dh, c = x % dh;
    const std::int64_t row = row0 + r;
    dst[r * stride + c] = row < rows ? to_float(src[row * dh + c]) : 0.f;
  }
}

template <typename T, int DPL>
__global__ void __launch_bounds__(kThreads)
    fwd_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
               const std::uint8_t* __restrict__ mask, T* __restrict__ out, float* __restrict__ lse,
               int H, std::int64_t Tq, std::int64_t Tk, int dh, std::int64_t half_window,
               float scale) {
  extern __shared__ float smem[];
  const int ks = dh + 1;
  float* k_s = smem;                    // kTileN x (dh + 1)
  float* v_s = k_s + kTileN * ks;       // kTileN x dh
  float* q_s = v_s + kTileN * dh;       // kWarps x dh
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const std::int64_t bh = blockIdx.y, b = bh / H;
  const std::int64_t m0 = static_cast<std::int64_t>(blockIdx.x) * kWarps;
  const std::int64_t i = m0 + warp;
  const T* qb = q + bh * Tq * dh;
  const T* kb = k + bh * Tk * dh;
  const T* vb = v + bh * Tk * dh;
  const std::uint8_t* mrow = mask ? mask + b * Tk : nullptr;
  for (int c = lane; c < dh; c += 32) q_s[warp * dh + c] = i < Tq ? to_float(qb[i * dh + c]) : 0.f;

  std::int64_t lo = 0, hi = Tk;
  if (half_window >= 0) {
    lo = m0 - half_window > 0 ? m0 - half_window : 0;
    hi = m0 + kWarps + half_window < Tk ? m0 + kWarps + half_window : Tk;
  }
  float m = -INFINITY, l = 0.f, acc[DPL];
#pragma unroll
  for (int t = 0; t < DPL; ++t) acc[t] = 0.f;
  for (std::int64_t n0 = lo; n0 < hi; n0 += kTileN) {
    __syncthreads();  // previous tile fully consumed (and q_s written on the first pass)
    load_tile(k_s, kb, n0, Tk, dh, ks);
    load_tile(v_s, vb, n0, Tk, dh, dh);
    __syncthreads();
    const std::int64_t j = n0 + lane;
    const bool ok = allowed(i, j, Tq, Tk, mrow, half_window);
    float s = 0.f;
    for (int c = 0; c < dh; ++c) s += q_s[warp * dh + c] * k_s[lane * ks + c];
    s = ok ? s * scale : -INFINITY;
    const float m_new = fmaxf(m, warp_max(s));
    const float m_safe = m_new == -INFINITY ? 0.f : m_new;
    const float p = ok ? expf(s - m_safe) : 0.f;
    const float corr = expf(m - m_safe);
    l = l * corr + warp_sum(p);
#pragma unroll
    for (int t = 0; t < DPL; ++t) acc[t] *= corr;
#pragma unroll 4  // partly: fully unrolled, the tile loops spill (nvcc --resource-usage)
    for (int jj = 0; jj < kTileN; ++jj) {
      const float pj = __shfl_sync(kFull, p, jj);
#pragma unroll
      for (int t = 0; t < DPL; ++t) {
        const int c = lane + 32 * t;
        if (c < dh) acc[t] += pj * v_s[jj * dh + c];
      }
    }
    m = m_new;
  }
  if (i >= Tq) return;
  const bool has = l > 0.f || isnan(l);
  const float inv = has ? 1.f / l : 0.f;
  T* orow = out + (bh * Tq + i) * dh;
#pragma unroll
  for (int t = 0; t < DPL; ++t) {
    const int c = lane + 32 * t;
    if (c < dh) orow[c] = from_float<T>(has ? acc[t] * inv : 0.f);
  }
  if (lane == 0) lse[bh * Tq + i] = has ? m + logf(l) : INFINITY;
}

// D_i = rowsum(dO_i * O_i), one warp per row.
template <typename T>
__global__ void delta_kernel(const T* __restrict__ out, const T* __restrict__ dout,
                             float* __restrict__ delta, std::int64_t rows, int dh) {
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x % 32;
  float s = 0.f;
  for (int c = lane; c < dh; c += 32) s += to_float(out[row * dh + c]) * to_float(dout[row * dh + c]);
  s = warp_sum(s);
  if (lane == 0) delta[row] = s;
}

template <typename T, int DPL>
__global__ void __launch_bounds__(kThreads)
    dq_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
              const std::uint8_t* __restrict__ mask, const T* __restrict__ dout,
              const float* __restrict__ lse, const float* __restrict__ delta, T* __restrict__ dq,
              int H, std::int64_t Tq, std::int64_t Tk, int dh, std::int64_t half_window,
              float scale) {
  extern __shared__ float smem[];
  const int ks = dh + 1;
  float* k_s = smem;                  // kTileN x (dh + 1)
  float* v_s = k_s + kTileN * ks;     // kTileN x (dh + 1)
  float* q_s = v_s + kTileN * ks;     // kWarps x dh
  float* do_s = q_s + kWarps * dh;    // kWarps x dh
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const std::int64_t bh = blockIdx.y, b = bh / H;
  const std::int64_t m0 = static_cast<std::int64_t>(blockIdx.x) * kWarps;
  const std::int64_t i = m0 + warp;
  const std::int64_t row = bh * Tq + i;
  const T* kb = k + bh * Tk * dh;
  const T* vb = v + bh * Tk * dh;
  const std::uint8_t* mrow = mask ? mask + b * Tk : nullptr;
  for (int c = lane; c < dh; c += 32) {
    q_s[warp * dh + c] = i < Tq ? to_float(q[row * dh + c]) : 0.f;
    do_s[warp * dh + c] = i < Tq ? to_float(dout[row * dh + c]) : 0.f;
  }
  const float L = i < Tq ? lse[row] : INFINITY;
  const float D = i < Tq ? delta[row] : 0.f;
  std::int64_t lo = 0, hi = Tk;
  if (half_window >= 0) {
    lo = m0 - half_window > 0 ? m0 - half_window : 0;
    hi = m0 + kWarps + half_window < Tk ? m0 + kWarps + half_window : Tk;
  }
  float acc[DPL];
#pragma unroll
  for (int t = 0; t < DPL; ++t) acc[t] = 0.f;
  for (std::int64_t n0 = lo; n0 < hi; n0 += kTileN) {
    __syncthreads();
    load_tile(k_s, kb, n0, Tk, dh, ks);
    load_tile(v_s, vb, n0, Tk, dh, ks);
    __syncthreads();
    const bool ok = allowed(i, n0 + lane, Tq, Tk, mrow, half_window);
    float s = 0.f, dp = 0.f;
    for (int c = 0; c < dh; ++c) {
      s += q_s[warp * dh + c] * k_s[lane * ks + c];
      dp += do_s[warp * dh + c] * v_s[lane * ks + c];
    }
    const float p = ok ? expf(s * scale - L) : 0.f;
    const float ds = p * (dp - D);
#pragma unroll 2  // dq at unroll 4 spills on sm_80 (fp16 / bf16, DPL = 4)
    for (int jj = 0; jj < kTileN; ++jj) {
      const float dsj = __shfl_sync(kFull, ds, jj);
#pragma unroll
      for (int t = 0; t < DPL; ++t) {
        const int c = lane + 32 * t;
        if (c < dh) acc[t] += dsj * k_s[jj * ks + c];
      }
    }
  }
  if (i >= Tq) return;
#pragma unroll
  for (int t = 0; t < DPL; ++t) {
    const int c = lane + 32 * t;
    if (c < dh) dq[row * dh + c] = from_float<T>(acc[t] * scale);
  }
}

template <typename T, int DPL>
__global__ void __launch_bounds__(kThreads)
    dkdv_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                const std::uint8_t* __restrict__ mask, const T* __restrict__ dout,
                const float* __restrict__ lse, const float* __restrict__ delta,
                T* __restrict__ dk, T* __restrict__ dv, int H, std::int64_t Tq, std::int64_t Tk,
                int dh, std::int64_t half_window, float scale) {
  extern __shared__ float smem[];
  const int ks = dh + 1;
  float* q_s = smem;                   // kTileN x (dh + 1)
  float* do_s = q_s + kTileN * ks;     // kTileN x (dh + 1)
  float* k_s = do_s + kTileN * ks;     // kWarps x dh
  float* v_s = k_s + kWarps * dh;      // kWarps x dh
  float* l_s = v_s + kWarps * dh;      // kTileN lse
  float* d_s = l_s + kTileN;           // kTileN delta
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const std::int64_t bh = blockIdx.y, b = bh / H;
  const std::int64_t n0 = static_cast<std::int64_t>(blockIdx.x) * kWarps;
  const std::int64_t j = n0 + warp;
  const std::int64_t krow = bh * Tk + j;
  const T* qb = q + bh * Tq * dh;
  const T* dob = dout + bh * Tq * dh;
  const std::uint8_t* mrow = mask ? mask + b * Tk : nullptr;
  for (int c = lane; c < dh; c += 32) {
    k_s[warp * dh + c] = j < Tk ? to_float(k[krow * dh + c]) : 0.f;
    v_s[warp * dh + c] = j < Tk ? to_float(v[krow * dh + c]) : 0.f;
  }
  std::int64_t lo = 0, hi = Tq;
  if (half_window >= 0) {
    lo = n0 - half_window > 0 ? n0 - half_window : 0;
    hi = n0 + kWarps + half_window < Tq ? n0 + kWarps + half_window : Tq;
  }
  float dk_acc[DPL], dv_acc[DPL];
#pragma unroll
  for (int t = 0; t < DPL; ++t) dk_acc[t] = dv_acc[t] = 0.f;
  for (std::int64_t m0 = lo; m0 < hi; m0 += kTileN) {
    __syncthreads();
    load_tile(q_s, qb, m0, Tq, dh, ks);
    load_tile(do_s, dob, m0, Tq, dh, ks);
    for (int x = threadIdx.x; x < kTileN; x += blockDim.x) {
      const std::int64_t i = m0 + x;
      l_s[x] = i < Tq ? lse[bh * Tq + i] : INFINITY;
      d_s[x] = i < Tq ? delta[bh * Tq + i] : 0.f;
    }
    __syncthreads();
    const bool ok = allowed(m0 + lane, j, Tq, Tk, mrow, half_window);
    float s = 0.f, dp = 0.f;
    for (int c = 0; c < dh; ++c) {
      s += k_s[warp * dh + c] * q_s[lane * ks + c];
      dp += v_s[warp * dh + c] * do_s[lane * ks + c];
    }
    const float p = ok ? expf(s * scale - l_s[lane]) : 0.f;
    const float ds = p * (dp - d_s[lane]);
#pragma unroll 4  // fully unrolled, dK / dV spill on sm_90 at DPL = 8
    for (int ii = 0; ii < kTileN; ++ii) {
      const float pi = __shfl_sync(kFull, p, ii);
      const float dsi = __shfl_sync(kFull, ds, ii);
#pragma unroll
      for (int t = 0; t < DPL; ++t) {
        const int c = lane + 32 * t;
        if (c < dh) {
          dv_acc[t] += pi * do_s[ii * ks + c];
          dk_acc[t] += dsi * q_s[ii * ks + c];
        }
      }
    }
  }
  if (j >= Tk) return;
#pragma unroll
  for (int t = 0; t < DPL; ++t) {
    const int c = lane + 32 * t;
    if (c < dh) {
      dk[krow * dh + c] = from_float<T>(dk_acc[t] * scale);
      dv[krow * dh + c] = from_float<T>(dv_acc[t]);
    }
  }
}

template <typename Kernel>
void allow_smem(Kernel kernel, std::size_t bytes) {
  if (bytes > 48 * 1024) {
    check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(bytes)),
          "masked_attention (cuda): shared memory attribute");
  }
}

template <typename T, int DPL>
void forward_typed(std::uintptr_t q, std::uintptr_t k, std::uintptr_t v, std::uintptr_t mask,
                   std::uintptr_t out, std::uintptr_t lse, std::int64_t B, std::int64_t H,
                   std::int64_t Tq, std::int64_t Tk, int dh, std::int64_t half_window, float scale,
                   cudaStream_t stream) {
  const std::size_t smem = sizeof(float) * (kTileN * (dh + 1) + kTileN * dh + kWarps * dh);
  auto kernel = fwd_kernel<T, DPL>;
  allow_smem(kernel, smem);
  const dim3 grid(static_cast<unsigned>((Tq + kWarps - 1) / kWarps), static_cast<unsigned>(B * H));
  kernel<<<grid, kThreads, smem, stream>>>(as_ptr<const T>(q), as_ptr<const T>(k),
                                           as_ptr<const T>(v), as_ptr<const std::uint8_t>(mask),
                                           as_ptr<T>(out), as_ptr<float>(lse), static_cast<int>(H),
                                           Tq, Tk, dh, half_window, scale);
  check_cuda(cudaGetLastError(), "masked_attention forward (cuda) launch");
}

template <typename T, int DPL>
void backward_typed(std::uintptr_t q, std::uintptr_t k, std::uintptr_t v, std::uintptr_t mask,
                    std::uintptr_t out, std::uintptr_t dout, std::uintptr_t lse, std::uintptr_t dq,
                    std::uintptr_t dk, std::uintptr_t dv, std::int64_t B, std::int64_t H,
                    std::int64_t Tq, std::int64_t Tk, int dh, std::int64_t half_window,
                    float scale, std::uintptr_t delta, cudaStream_t stream) {
  const std::int64_t rows = B * H * Tq;
  delta_kernel<T><<<static_cast<unsigned>((rows + kWarps - 1) / kWarps), kThreads, 0, stream>>>(
      as_ptr<const T>(out), as_ptr<const T>(dout), as_ptr<float>(delta), rows, dh);
  check_cuda(cudaGetLastError(), "masked_attention delta (cuda) launch");

  const std::size_t smem_q = sizeof(float) * (2 * kTileN * (dh + 1) + 2 * kWarps * dh);
  auto dq_k = dq_kernel<T, DPL>;
  allow_smem(dq_k, smem_q);
  const dim3 grid_q(static_cast<unsigned>((Tq + kWarps - 1) / kWarps), static_cast<unsigned>(B * H));
  dq_k<<<grid_q, kThreads, smem_q, stream>>>(
      as_ptr<const T>(q), as_ptr<const T>(k), as_ptr<const T>(v), as_ptr<const std::uint8_t>(mask),
      as_ptr<const T>(dout), as_ptr<const float>(lse), as_ptr<const float>(delta), as_ptr<T>(dq),
      static_cast<int>(H), Tq, Tk, dh, half_window, scale);
  check_cuda(cudaGetLastError(), "masked_attention dq (cuda) launch");

  const std::size_t smem_k =
      sizeof(float) * (2 * kTileN * (dh + 1) + 2 * kWarps * dh + 2 * kTileN);
  auto dkdv_k = dkdv_kernel<T, DPL>;
  allow_smem(dkdv_k, smem_k);
  const dim3 grid_k(static_cast<unsigned>((Tk + kWarps - 1) / kWarps), static_cast<unsigned>(B * H));
  dkdv_k<<<grid_k, kThreads, smem_k, stream>>>(
      as_ptr<const T>(q), as_ptr<const T>(k), as_ptr<const T>(v), as_ptr<const std::uint8_t>(mask),
      as_ptr<const T>(dout), as_ptr<const float>(lse), as_ptr<const float>(delta), as_ptr<T>(dk),
      as_ptr<T>(dv), static_cast<int>(H), Tq, Tk, dh, half_window, scale);
  check_cuda(cudaGetLastError(), "masked_attention dk/dv (cuda) launch");
}

void check_dims(std::int64_t dh) {
  if (dh < 1 || dh > 256) {
    throw std::invalid_argument("masked_attention (cuda): head dim must be in [1, 256], got " +
                                std::to_string(dh));
  }
}

// DPL = head dims per lane (d_h / 32 rounded up to a power of two).
#define SIGNBENCH_ATTN_BY_DIM(FN, T, ...) \
  do {                                     \
    if (dh <= 32) {                        \
      FN<T, 1>(__VA_ARGS__);               \
    } else if (dh <= 64) {                 \
      FN<T, 2>(__VA_ARGS__);               \
    } else if (dh <= 128) {                \
      FN<T, 4>(__VA_ARGS__);               \
    } else {                               \
      FN<T, 8>(__VA_ARGS__);               \
    }                                      \
  } while (0)

#define SIGNBENCH_ATTN_DISPATCH(FN, ...)                                                   \
  do {                                                                                     \
    switch (to_dtype(dtype)) {                                                             \
      case DType::Float32:                                                                 \
        SIGNBENCH_ATTN_BY_DIM(FN, float, __VA_ARGS__);                                     \
        break;                                                                             \
      case DType::Float16:                                                                 \
        SIGNBENCH_ATTN_BY_DIM(FN, __half, __VA_ARGS__);                                    \
        break;                                                                             \
      case DType::BFloat16:                                                                \
        SIGNBENCH_ATTN_BY_DIM(FN, __nv_bfloat16, __VA_ARGS__);                             \
        break;                                                                             \
      default:                                                                             \
        throw std::invalid_argument(                                                       \
            "masked_attention (cuda): dtype must be float32, float16 or bfloat16");        \
    }                                                                                      \
  } while (0)

}  // namespace

void forward_cuda(std::uintptr_t q, std::uintptr_t k, std::uintptr_t v, std::uintptr_t mask,
                  std::uintptr_t out, std::uintptr_t lse, std::int64_t B, std::int64_t H,
                  std::int64_t Tq, std::int64_t Tk, std::int64_t dh, std::int64_t half_window,
                  double scale, int dtype, std::uintptr_t stream) {
  if (B * H * Tq == 0) return;
  auto s = reinterpret_cast<cudaStream_t>(stream);
  check_dims(dh);
  SIGNBENCH_ATTN_DISPATCH(forward_typed, q, k, v, mask, out, lse, B, H, Tq, Tk,
                          static_cast<int>(dh), half_window, static_cast<float>(scale), s);
}

void backward_cuda(std::uintptr_t q, std::uintptr_t k, std::uintptr_t v, std::uintptr_t mask,
                   std::uintptr_t out, std::uintptr_t dout, std::uintptr_t lse, std::uintptr_t dq,
                   std::uintptr_t dk, std::uintptr_t dv, std::int64_t B, std::int64_t H,
                   std::int64_t Tq, std::int64_t Tk, std::int64_t dh, std::int64_t half_window,
                   double scale, int dtype, std::uintptr_t delta, std::uintptr_t stream) {
  if (B * H * (Tq + Tk) == 0) return;
  auto s = reinterpret_cast<cudaStream_t>(stream);
  check_dims(dh);
  SIGNBENCH_ATTN_DISPATCH(backward_typed, q, k, v, mask, out, dout, lse, dq, dk, dv, B, H, Tq, Tk,
                          static_cast<int>(dh), half_window, static_cast<float>(scale), delta, s);
}

}  // namespace signbench::attention
