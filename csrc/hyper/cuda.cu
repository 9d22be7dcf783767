// hyper_modulate on CUDA: out = act(gamma * LayerNorm(fv * fk) + beta), one block per row.
//
// Forward: each block owns a row (grid-strided over rows), loads fv and fk once with 16-byte
// vector loads (when d and the pointers allow), keeps x = fv*fk in shared memory (fp32), computes
// mean and then the centred variance from that copy (two block reductions, fp32), then streams
// gamma and beta in and out back: every input byte is read once. Saves mean, rstd (fp32) per row.
//
// Backward: a grid of `blocks` blocks, each walking rows blockIdx.x, +gridDim.x, ...; per row,
// pass 1 recomputes x_hat, the pre-activation and the activation grad, writes dgamma / dbeta and
// caches fv, fk and dx_hat in shared memory; two block sums give the LayerNorm terms; pass 2
// writes dfv / dfk from the cache. dln_w / dln_b partials live in shared memory (each thread owns
// the same columns on every row, so no atomics) and are written once per block to
// (blocks, d) fp32 workspaces that the caller sums. When the cache does not fit in shared memory
// (d > ~11K), pass 2 re-reads the row from global memory (L2) instead.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <string>

#include "cuda_common.cuh"
#include "hyper/hyper.h"

namespace signbench::hyper {

namespace {

template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Pack {
  T v[VEC];
};

template <typename T, int VEC>
__device__ __forceinline__ void load_vec(const T* __restrict__ p, float (&out)[VEC]) {
  const Pack<T, VEC> pack = *reinterpret_cast<const Pack<T, VEC>*>(p);
#pragma unroll
  for (int e = 0; e < VEC; ++e) out[e] = to_float(pack.v[e]);
}

template <typename T, int VEC>
__device__ __forceinline__ void store_vec(T* __restrict__ p, const float (&in)[VEC]) {
  Pack<T, VEC> pack;
#pragma unroll
  for (int e = 0; e < VEC; ++e) pack.v[e] = from_float<T>(in[e]);
  *reinterpret_cast<Pack<T, VEC>*>(p) = pack;
}

__device__ __forceinline__ float act_forward(float z, int act) {
  switch (act) {
    case 1: return z < 0.0f ? 0.0f : z;  // NaN passes through
    case 2: return 0.5f * z * (1.0f + erff(z * 0.70710678118654752f));
    case 3: return 1.0f / (1.0f + expf(-z));
    case 4: return z / (1.0f + expf(-z));
    default: return z;
  }
}

__device__ __forceinline__ float act_grad(float z, int act) {
  switch (act) {
    case 1: return z > 0.0f ? 1.0f : 0.0f;
    case 2: {
      const float cdf = 0.5f * (1.0f + erff(z * 0.70710678118654752f));
      return cdf + z * 0.39894228040143268f * expf(-0.5f * z * z);
    }
    case 3: {
      const float s = 1.0f / (1.0f + expf(-z));
      return s * (1.0f - s);
    }
    case 4: {
      const float s = 1.0f / (1.0f + expf(-z));
      return s * (1.0f + z * (1.0f - s));
    }
    default: return 1.0f;
  }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum of a and b over the block, returned to every thread. red: 64 floats of shared memory.
__device__ __forceinline__ void block_sum2(float& a, float& b, float* red) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = (blockDim.x + 31) >> 5;
  a = warp_sum(a);
  b = warp_sum(b);
  if (lane == 0) {
    red[warp] = a;
    red[32 + warp] = b;
  }
  __syncthreads();
  float sa = 0.0f, sb = 0.0f;
  for (int i = 0; i < warps; ++i) {
    sa += red[i];
    sb += red[32 + i];
  }
  __syncthreads();  // red may be reused right away
  a = sa;
  b = sb;
}

// ------------------------------------------------------------------------------------ forward

template <typename T, int VEC, bool CACHE>
__global__ void forward_kernel(const T* __restrict__ fv, const T* __restrict__ fk,
                               const T* __restrict__ gamma, const T* __restrict__ beta,
                               const float* __restrict__ w, const float* __restrict__ b,
                               T* __restrict__ out, float* __restrict__ mean,
                               float* __restrict__ rstd, std::int64_t rows, int d, float eps,
                               int act) {
  extern __shared__ float s_x[];  // CACHE: x = fv*fk for the row (fp32)
  __shared__ float red[64];
  const int nvec = d / VEC;
  const float inv_d = 1.0f / static_cast<float>(d);
  for (std::int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const std::int64_t o = row * d;
    float sum = 0.0f, unused = 0.0f;
    for (int v = threadIdx.x; v < nvec; v += blockDim.x) {
      float a[VEC], c[VEC];
      load_vec<T, VEC>(fv + o + v * VEC, a);
      load_vec<T, VEC>(fk + o + v * VEC, c);
#pragma unroll
      for (int e = 0; e < VEC; ++e) {
        const float x = a[e] * c[e];
        sum += x;
        if (CACHE) s_x[v * VEC + e] = x;
      }
    }
    block_sum2(sum, unused, red);
    const float mu = sum * inv_d;
    float sq = 0.0f;
    for (int v = threadIdx.x; v < nvec; v += blockDim.x) {  // own entries only: no sync needed
      float x[VEC];
      if (CACHE) {
#pragma unroll
        for (int e = 0; e < VEC; ++e) x[e] = s_x[v * VEC + e];
      } else {
        float c[VEC];
        load_vec<T, VEC>(fv + o + v * VEC, x);
        load_vec<T, VEC>(fk + o + v * VEC, c);
#pragma unroll
        for (int e = 0; e < VEC; ++e) x[e] *= c[e];
      }
#pragma unroll
      for (int e = 0; e < VEC; ++e) sq += (x[e] - mu) * (x[e] - mu);
    }
    unused = 0.0f;
    block_sum2(sq, unused, red);
    const float rs = rsqrtf(sq * inv_d + eps);
    if (threadIdx.x == 0) {
      mean[row] = mu;
      rstd[row] = rs;
    }
    for (int v = threadIdx.x; v < nvec; v += blockDim.x) {
      float x[VEC], g[VEC], bt[VEC], y[VEC];
      if (CACHE) {
#pragma unroll
        for (int e = 0; e < VEC; ++e) x[e] = s_x[v * VEC + e];
      } else {
        float c[VEC];
        load_vec<T, VEC>(fv + o + v * VEC, x);
        load_vec<T, VEC>(fk + o + v * VEC, c);
#pragma unroll
        for (int e = 0; e < VEC; ++e) x[e] *= c[e];
      }
      load_vec<T, VEC>(gamma + o + v * VEC, g);
      load_vec<T, VEC>(beta + o + v * VEC, bt);
#pragma unroll
      for (int e = 0; e < VEC; ++e) {
        const int j = v * VEC + e;
        y[e] = act_forward(g[e] * ((x[e] - mu) * rs * w[j] + b[j]) + bt[e], act);
      }
      store_vec<T, VEC>(out + o + v * VEC, y);
    }
  }
}

// ----------------------------------------------------------------------------------- backward

template <typename T, int VEC, bool CACHE>
__global__ void backward_kernel(const T* __restrict__ dout, const T* __restrict__ fv,
                                const T* __restrict__ fk, const T* __restrict__ gamma,
                                const T* __restrict__ beta, const float* __restrict__ w,
                                const float* __restrict__ b, const float* __restrict__ mean,
                                const float* __restrict__ rstd, T* __restrict__ dfv,
                                T* __restrict__ dfk, T* __restrict__ dgamma,
                                T* __restrict__ dbeta, float* __restrict__ dw_part,
                                float* __restrict__ db_part, std::int64_t rows, int d, int act) {
  extern __shared__ float smem[];
  float* s_dw = smem;         // d: dln_w partial (columns owned by one thread each)
  float* s_db = smem + d;     // d: dln_b partial
  float* s_fv = smem + 2 * d;  // CACHE: fv, fk, dx_hat of the current row
  float* s_fk = smem + 3 * d;
  float* s_dxh = smem + 4 * d;
  __shared__ float red[64];
  const int nvec = d / VEC;
  const float inv_d = 1.0f / static_cast<float>(d);
  for (int v = threadIdx.x; v < nvec; v += blockDim.x) {
#pragma unroll
    for (int e = 0; e < VEC; ++e) {
      s_dw[v * VEC + e] = 0.0f;
      s_db[v * VEC + e] = 0.0f;
    }
  }
  for (std::int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const std::int64_t o = row * d;
    const float mu = mean[row], rs = rstd[row];
    float c1 = 0.0f, c2 = 0.0f;
    for (int v = threadIdx.x; v < nvec; v += blockDim.x) {
      float a[VEC], c[VEC], g[VEC], go[VEC], bt[VEC], dg[VEC];
      load_vec<T, VEC>(fv + o + v * VEC, a);
      load_vec<T, VEC>(fk + o + v * VEC, c);
      load_vec<T, VEC>(gamma + o + v * VEC, g);
      load_vec<T, VEC>(dout + o + v * VEC, go);
      if (act != 0) load_vec<T, VEC>(beta + o + v * VEC, bt);
#pragma unroll
      for (int e = 0; e < VEC; ++e) {
        const int j = v * VEC + e;
        const float xh = (a[e] * c[e] - mu) * rs;
        const float y = xh * w[j] + b[j];
        if (act != 0) go[e] *= act_grad(g[e] * y + bt[e], act);
        dg[e] = go[e] * y;
        const float dy = go[e] * g[e];
        s_dw[j] += dy * xh;
        s_db[j] += dy;
        const float dxh = dy * w[j];
        c1 += dxh * xh;
        c2 += dxh;
        if (CACHE) {
          s_fv[j] = a[e];
          s_fk[j] = c[e];
          s_dxh[j] = dxh;
        }
      }
      store_vec<T, VEC>(dgamma + o + v * VEC, dg);
      store_vec<T, VEC>(dbeta + o + v * VEC, go);
    }
    block_sum2(c1, c2, red);
    const float m1 = c1 * inv_d, m2 = c2 * inv_d;
    for (int v = threadIdx.x; v < nvec; v += blockDim.x) {
      float a[VEC], c[VEC], dxh[VEC], ov[VEC], ok[VEC];
      if (CACHE) {
#pragma unroll
        for (int e = 0; e < VEC; ++e) {
          a[e] = s_fv[v * VEC + e];
          c[e] = s_fk[v * VEC + e];
          dxh[e] = s_dxh[v * VEC + e];
        }
      } else {
        float g[VEC], go[VEC], bt[VEC];
        load_vec<T, VEC>(fv + o + v * VEC, a);
        load_vec<T, VEC>(fk + o + v * VEC, c);
        load_vec<T, VEC>(gamma + o + v * VEC, g);
        load_vec<T, VEC>(dout + o + v * VEC, go);
        if (act != 0) load_vec<T, VEC>(beta + o + v * VEC, bt);
#pragma unroll
        for (int e = 0; e < VEC; ++e) {
          const int j = v * VEC + e;
          const float xh = (a[e] * c[e] - mu) * rs;
          if (act != 0) go[e] *= act_grad(g[e] * (xh * w[j] + b[j]) + bt[e], act);
          dxh[e] = go[e] * g[e] * w[j];
        }
      }
#pragma unroll
      for (int e = 0; e < VEC; ++e) {
        const float xh = (a[e] * c[e] - mu) * rs;
        const float dx = (dxh[e] - xh * m1 - m2) * rs;
        ov[e] = dx * c[e];
        ok[e] = dx * a[e];
      }
      store_vec<T, VEC>(dfv + o + v * VEC, ov);
      store_vec<T, VEC>(dfk + o + v * VEC, ok);
    }
  }
  for (int v = threadIdx.x; v < nvec; v += blockDim.x) {
#pragma unroll
    for (int e = 0; e < VEC; ++e) {
      const int j = v * VEC + e;
      dw_part[static_cast<std::int64_t>(blockIdx.x) * d + j] = s_dw[j];
      db_part[static_cast<std::int64_t>(blockIdx.x) * d + j] = s_db[j];
    }
  }
}

// ---------------------------------------------------------------------------------- host side

std::size_t element_size(DType dt) {
  switch (dt) {
    case DType::Float32: return 4;
    case DType::Float16:
    case DType::BFloat16: return 2;
    default:
      throw std::invalid_argument(
          "hyper_modulate (cuda): dtype must be float32, float16 or bfloat16");
  }
}

int next_pow2(std::int64_t v) {
  int p = 1;
  while (p < v && p < 1024) p <<= 1;
  return p;
}

int clamp_threads(std::int64_t want) { return std::min(1024, std::max(64, next_pow2(want))); }

int max_smem_optin() {
  int device = 0, bytes = 0;
  check_cuda(cudaGetDevice(&device), "hyper_modulate (cuda) cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
        "hyper_modulate (cuda) shared memory query");
  return bytes;
}

int sm_count() {
  int device = 0, sms = 0;
  check_cuda(cudaGetDevice(&device), "hyper_modulate (cuda) cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device),
             "hyper_modulate (cuda) SM count query");
  return sms;
}

void check_sizes(std::int64_t d, int act) {
  if (act < 0 || act > 4) {
    throw std::invalid_argument("hyper_modulate (cuda): unknown activation code " +
                                std::to_string(act));
  }
  if (d <= 0 || d > (1 << 30)) {
    throw std::invalid_argument("hyper_modulate (cuda): d out of range: " + std::to_string(d));
  }
}

bool aligned16(std::initializer_list<std::uintptr_t> ptrs) {
  for (auto p : ptrs) {
    if (p % 16 != 0) return false;
  }
  return true;
}

// Launch configuration depends only on (d, dtype), so the caller can size the workspace first.
struct BwdConfig {
  int threads;
  bool cache;
  std::size_t smem;
};

BwdConfig backward_config(std::int64_t d, std::size_t elem) {
  const std::int64_t per_vec = 16 / static_cast<std::int64_t>(elem);
  const std::int64_t nvec = (d + per_vec - 1) / per_vec;
  BwdConfig cfg{clamp_threads((nvec + 1) / 2), true, 5 * static_cast<std::size_t>(d) * 4};
  const auto limit = static_cast<std::size_t>(max_smem_optin());
  if (cfg.smem > limit) {
    cfg.cache = false;
    cfg.smem = 2 * static_cast<std::size_t>(d) * 4;
  }
  if (cfg.smem > limit) {
    throw std::invalid_argument("hyper_modulate (cuda): d=" + std::to_string(d) +
                                " is too large for the backward kernel's shared memory; use "
                                "backend='triton' or 'torch'");
  }
  return cfg;
}

template <typename T, int VEC, bool CACHE>
void launch_forward(std::uintptr_t fv, std::uintptr_t fk, std::uintptr_t gamma,
                    std::uintptr_t beta, std::uintptr_t w, std::uintptr_t b, std::uintptr_t out,
                    std::uintptr_t mean, std::uintptr_t rstd, std::int64_t rows, int d, float eps,
                    int act, int threads, std::size_t smem, cudaStream_t stream) {
  auto kernel = forward_kernel<T, VEC, CACHE>;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(smem)),
        "hyper_modulate (cuda) forward shared memory attribute");
  const auto grid = static_cast<unsigned>(std::min<std::int64_t>(rows, 0x7fffffff));
  kernel<<<grid, threads, smem, stream>>>(as_ptr<const T>(fv), as_ptr<const T>(fk),
                                         as_ptr<const T>(gamma), as_ptr<const T>(beta),
                                         as_ptr<const float>(w), as_ptr<const float>(b),
                                         as_ptr<T>(out), as_ptr<float>(mean),
                                         as_ptr<float>(rstd), rows, d, eps, act);
  check_cuda(cudaGetLastError(), "hyper_modulate (cuda) forward launch");
}

template <typename T>
void forward_typed(std::uintptr_t fv, std::uintptr_t fk, std::uintptr_t gamma,
                   std::uintptr_t beta, std::uintptr_t w, std::uintptr_t b, std::uintptr_t out,
                   std::uintptr_t mean, std::uintptr_t rstd, std::int64_t rows, int d, float eps,
                   int act, cudaStream_t stream) {
  constexpr int kVec = 16 / static_cast<int>(sizeof(T));
  const bool vec = d % kVec == 0 && aligned16({fv, fk, gamma, beta, out});
  const std::int64_t nvec = vec ? d / kVec : d;
  const int threads = clamp_threads((nvec + 3) / 4);
  const std::size_t cache_bytes = static_cast<std::size_t>(d) * 4;
  const bool cache = cache_bytes <= static_cast<std::size_t>(max_smem_optin());
  const std::size_t smem = cache ? cache_bytes : 0;
  if (vec && cache) {
    launch_forward<T, kVec, true>(fv, fk, gamma, beta, w, b, out, mean, rstd, rows, d, eps, act,
                                  threads, smem, stream);
  } else if (vec) {
    launch_forward<T, kVec, false>(fv, fk, gamma, beta, w, b, out, mean, rstd, rows, d, eps,
                                   act, threads, smem, stream);
  } else if (cache) {
    launch_forward<T, 1, true>(fv, fk, gamma, beta, w, b, out, mean, rstd, rows, d, eps, act,
                               threads, smem, stream);
  } else {
    launch_forward<T, 1, false>(fv, fk, gamma, beta, w, b, out, mean, rstd, rows, d, eps, act,
                                threads, smem, stream);
  }
}

struct BwdArgs {
  std::uintptr_t dout, fv, fk, gamma, beta, w, b, mean, rstd, dfv, dfk, dgamma, dbeta, dw, db;
  std::int64_t rows;
  int d;
  int act;
};

template <typename T, int VEC, bool CACHE>
void launch_backward(const BwdArgs& a, unsigned blocks, int threads, std::size_t smem,
                     cudaStream_t stream) {
  auto kernel = backward_kernel<T, VEC, CACHE>;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(smem)),
        "hyper_modulate (cuda) backward shared memory attribute");
  kernel<<<blocks, threads, smem, stream>>>(
      as_ptr<const T>(a.dout), as_ptr<const T>(a.fv), as_ptr<const T>(a.fk),
      as_ptr<const T>(a.gamma), as_ptr<const T>(a.beta), as_ptr<const float>(a.w),
      as_ptr<const float>(a.b), as_ptr<const float>(a.mean), as_ptr<const float>(a.rstd),
      as_ptr<T>(a.dfv), as_ptr<T>(a.dfk), as_ptr<T>(a.dgamma), as_ptr<T>(a.dbeta),
      as_ptr<float>(a.dw), as_ptr<float>(a.db), a.rows, a.d, a.act);
  check_cuda(cudaGetLastError(), "hyper_modulate (cuda) backward launch");
}

template <typename T>
void backward_typed(const BwdArgs& a, unsigned blocks, cudaStream_t stream) {
  constexpr int kVec = 16 / static_cast<int>(sizeof(T));
  const BwdConfig cfg = backward_config(a.d, sizeof(T));
  const bool vec = a.d % kVec == 0 && aligned16({a.dout, a.fv, a.fk, a.gamma, a.beta, a.dfv,
                                                 a.dfk, a.dgamma, a.dbeta});
  if (vec && cfg.cache) {
    launch_backward<T, kVec, true>(a, blocks, cfg.threads, cfg.smem, stream);
  } else if (vec) {
    launch_backward<T, kVec, false>(a, blocks, cfg.threads, cfg.smem, stream);
  } else if (cfg.cache) {
    launch_backward<T, 1, true>(a, blocks, cfg.threads, cfg.smem, stream);
  } else {
    launch_backward<T, 1, false>(a, blocks, cfg.threads, cfg.smem, stream);
  }
}

template <typename T>
std::int64_t backward_blocks_typed(std::int64_t rows, std::int64_t d) {
  constexpr int kVec = 16 / static_cast<int>(sizeof(T));
  const BwdConfig cfg = backward_config(d, sizeof(T));
  // Occupancy of the variant that will most likely run (vectorised); the scalar one uses the
  // same threads and shared memory, so it has the same occupancy.
  auto kernel = cfg.cache ? backward_kernel<T, kVec, true> : backward_kernel<T, kVec, false>;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(cfg.smem)),
        "hyper_modulate (cuda) backward shared memory attribute");
  int per_sm = 0;
  check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, cfg.threads, cfg.smem),
        "hyper_modulate (cuda) occupancy query");
  const std::int64_t full = static_cast<std::int64_t>(std::max(per_sm, 1)) * sm_count();
  return std::max<std::int64_t>(1, std::min(rows, full));
}

}  // namespace

void cuda_forward(std::uintptr_t fv, std::uintptr_t fk, std::uintptr_t gamma,
                  std::uintptr_t beta, std::uintptr_t ln_w, std::uintptr_t ln_b,
                  std::uintptr_t out, std::uintptr_t mean, std::uintptr_t rstd, std::int64_t rows,
                  std::int64_t d, double eps, int act, int dtype, std::uintptr_t stream_handle) {
  check_sizes(d, act);
  const DType dt = to_dtype(dtype);
  element_size(dt);  // rejects float64
  if (rows <= 0) return;
  auto stream = reinterpret_cast<cudaStream_t>(stream_handle);
  const int di = static_cast<int>(d);
  const auto e = static_cast<float>(eps);
  switch (dt) {
    case DType::Float32:
      forward_typed<float>(fv, fk, gamma, beta, ln_w, ln_b, out, mean, rstd, rows, di, e, act,
                           stream);
      break;
    case DType::Float16:
      forward_typed<__half>(fv, fk, gamma, beta, ln_w, ln_b, out, mean, rstd, rows, di, e, act,
                            stream);
      break;
    default:
      forward_typed<__nv_bfloat16>(fv, fk, gamma, beta, ln_w, ln_b, out, mean, rstd, rows, di, e,
                                   act, stream);
      break;
  }
}

std::int64_t cuda_backward_blocks(std::int64_t rows, std::int64_t d, int dtype) {
  check_sizes(d, 0);
  switch (to_dtype(dtype)) {
    case DType::Float32: return backward_blocks_typed<float>(rows, d);
    case DType::Float16: return backward_blocks_typed<__half>(rows, d);
    case DType::BFloat16: return backward_blocks_typed<__nv_bfloat16>(rows, d);
    default:
      throw std::invalid_argument(
          "hyper_modulate (cuda): dtype must be float32, float16 or bfloat16");
  }
}

void cuda_backward(std::uintptr_t dout, std::uintptr_t fv, std::uintptr_t fk,
                   std::uintptr_t gamma, std::uintptr_t beta, std::uintptr_t ln_w,
                   std::uintptr_t ln_b, std::uintptr_t mean, std::uintptr_t rstd,
                   std::uintptr_t dfv, std::uintptr_t dfk, std::uintptr_t dgamma,
                   std::uintptr_t dbeta, std::uintptr_t dln_w_part, std::uintptr_t dln_b_part,
                   std::int64_t rows, std::int64_t d, std::int64_t blocks, int act, int dtype,
                   std::uintptr_t stream_handle) {
  check_sizes(d, act);
  const DType dt = to_dtype(dtype);
  element_size(dt);
  if (blocks <= 0 || blocks > 0x7fffffff) {
    throw std::invalid_argument("hyper_modulate (cuda): blocks out of range: " +
                                std::to_string(blocks));
  }
  auto stream = reinterpret_cast<cudaStream_t>(stream_handle);
  const BwdArgs a{dout, fv, fk, gamma, beta, ln_w, ln_b, mean, rstd, dfv, dfk, dgamma, dbeta,
                  dln_w_part, dln_b_part, rows < 0 ? 0 : rows, static_cast<int>(d), act};
  const auto grid = static_cast<unsigned>(blocks);
  switch (dt) {
    case DType::Float32: backward_typed<float>(a, grid, stream); break;
    case DType::Float16: backward_typed<__half>(a, grid, stream); break;
    default: backward_typed<__nv_bfloat16>(a, grid, stream); break;
  }
}

}  // namespace signbench::hyper
