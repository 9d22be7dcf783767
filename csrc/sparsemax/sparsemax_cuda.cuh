// Device helpers shared by the sparsemax and SST CUDA kernels: dtype conversion, deterministic
// block reductions, and the sort-free sparsemax threshold of one row held by one thread block.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "cuda_common.cuh"

#include <cstdint>
#include <stdexcept>
#include <string>

namespace signbench::sparsemax_cuda {

// Compute type: fp64 for fp64 storage, fp32 otherwise.
template <typename T>
struct Acc {
  using type = float;
};
template <>
struct Acc<double> {
  using type = double;
};

template <typename A, typename T>
__device__ __forceinline__ A to_acc(T v) { return static_cast<A>(v); }
template <>
__device__ __forceinline__ float to_acc<float, __half>(__half v) { return __half2float(v); }
template <>
__device__ __forceinline__ float to_acc<float, __nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <typename T, typename A>
__device__ __forceinline__ T from_acc(A v) { return static_cast<T>(v); }
template <>
__device__ __forceinline__ __half from_acc<__half, float>(float v) { return __float2half(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16, float>(float v) {
  return __float2bfloat16(v);
}

template <typename A>
__device__ __forceinline__ A quiet_nan();
template <>
__device__ __forceinline__ float quiet_nan<float>() { return __int_as_float(0x7fc00000); }
template <>
__device__ __forceinline__ double quiet_nan<double>() {
  return __longlong_as_double(0x7ff8000000000000LL);
}

template <typename A>
__device__ __forceinline__ A neg_inf();
template <>
__device__ __forceinline__ float neg_inf<float>() { return __int_as_float(0xff800000); }
template <>
__device__ __forceinline__ double neg_inf<double>() {
  return __longlong_as_double(static_cast<long long>(0xfff0000000000000ULL));
}

struct SumOp {
  template <typename V>
  __device__ __forceinline__ V operator()(V a, V b) const { return a + b; }
};
struct MaxOp {
  template <typename V>
  __device__ __forceinline__ V operator()(V a, V b) const { return a > b ? a : b; }
};

template <typename V, typename Op>
__device__ __forceinline__ V warp_reduce(V v, Op op) {
  for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Reduces v over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the
// same result, combined in the same order (deterministic). `scratch` holds 32 values.
template <typename V, typename Op>
__device__ __forceinline__ V block_reduce(V v, Op op, V* scratch) {
  v = warp_reduce(v, op);
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  __syncthreads();  // earlier readers of scratch are done
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int warps = static_cast<int>(blockDim.x) / 32;
  V r = scratch[0];
  for (int w = 1; w < warps; ++w) r = op(r, scratch[w]);
  return r;
}

constexpr int kBisectF32 = 26;
constexpr int kBisectF64 = 54;
constexpr int kRefine = 3;

// Sparsemax threshold of the row z(i), i in [0, k), held by the whole block. Sort-free: with
// the row shifted so that its max is 0, tau is in [-1, 0); bisection on sum(max(z - tau, 0)) = 1
// brackets it, then Michelot steps tau <- (sum_{z > tau} z - 1) / |{z > tau}| (started from the
// superset {z > lo}) make it exact. Output: p_i = max(z(i) - zmax - tau, 0); bad = the row holds
// a NaN or +/-Inf (the caller writes NaN). `scratch` holds 32 values of A.
template <typename A, typename Load>
__device__ void block_threshold(Load z, std::int64_t k, A* scratch, A& zmax, A& tau, bool& bad) {
  A m = neg_inf<A>();
  A nonfinite = 0;
  for (std::int64_t i = threadIdx.x; i < k; i += blockDim.x) {
    const A v = z(i);
    if (isfinite(v)) {
      m = v > m ? v : m;
    } else {
      nonfinite = 1;
    }
  }
  zmax = block_reduce(m, MaxOp{}, scratch);
  bad = block_reduce(nonfinite, MaxOp{}, scratch) > A(0);
  tau = A(0);
  if (bad) return;  // uniform across the block
  A lo = -1, hi = 0;
  const int bisect = sizeof(A) == 8 ? kBisectF64 : kBisectF32;
  for (int it = 0; it < bisect; ++it) {
    const A mid = (lo + hi) * A(0.5);
    A f = 0;
    for (std::int64_t i = threadIdx.x; i < k; i += blockDim.x) {
      const A v = z(i) - zmax - mid;
      f += v > A(0) ? v : A(0);
    }
    f = block_reduce(f, SumOp{}, scratch);
    if (f >= A(1)) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  tau = lo;
  for (int it = 0; it < kRefine; ++it) {
    A s = 0, cnt = 0;
    for (std::int64_t i = threadIdx.x; i < k; i += blockDim.x) {
      const A v = z(i) - zmax;
      if (v > tau) {
        s += v;
        cnt += A(1);
      }
    }
    s = block_reduce(s, SumOp{}, scratch);
    cnt = block_reduce(cnt, SumOp{}, scratch);
    tau = (s - A(1)) / (cnt > A(0) ? cnt : A(1));
  }
}

// Threads per block for a row of n elements: a multiple of 32 in [32, 256].
inline int threads_for(std::int64_t n) {
  int t = 32;
  while (t < 256 && t < n) t *= 2;
  return t;
}

}  // namespace signbench::sparsemax_cuda
