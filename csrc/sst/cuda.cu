// SST converter on GPU: one thread block per batch row. The (B, N, C) logits are never stored:
//  * max: 32-frame x 64-token logit tiles are computed from shared-memory tiles of feats and
//    tokens (32-wide slices of d), each thread holding a 2 x 4 register tile (SIMT FMA; a
//    tensor-core MMA version is future work); the tile is reduced over valid frames in
//    registers + shared memory into a running max / first argmax / raw dot per token.
//  * mean / sum: pooling is linear, so the block pools the valid frames into fsum (B, d) and
//    takes one mat-vec with the tokens.
// Then the block runs the sort-free sparsemax over the C pooled relevances (sparsemax_cuda.cuh)
// and writes weights (B, C) and out = weights @ tokens (B, d).
// Backward: kernel 1 (block per row) computes d_pooled = sparsemax backward of
// dweights + dout @ tokens^T and d_feats (thread per d column: no races, no atomics); kernel 2
// (block per token) computes d_tokens = sum_b w dout + scale * d_pooled * P (P = fsum row, or the
// argmax frame of feats).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <stdexcept>

#include "sparsemax/sparsemax_cuda.cuh"
#include "sst/sst.h"

namespace signbench::sst {

namespace {

namespace sc = signbench::sparsemax_cuda;

constexpr int kThreads = 256;  // forward / backward row kernels (16 x 16 thread grid for tiles)
constexpr int kTN = 32;        // frames per logit tile (2 per thread)
constexpr int kTC = 64;        // tokens per logit tile (4 per thread)
constexpr int kTD = 32;        // d-slice per shared-memory tile

__device__ __forceinline__ bool frame_valid(const std::uint8_t* mask, std::int64_t b,
                                            std::int64_t N, std::int64_t n) {
  return n < N && (mask == nullptr || mask[b * N + n] != 0);
}

// Better candidate for max pooling: larger logit, or equal logit at an earlier frame.
template <typename A>
__device__ __forceinline__ bool better(A v, int n, A best, int best_n) {
  return v > best || (v == best && n < best_n);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const T* __restrict__ feats, const T* __restrict__ tokens,
                   const std::uint8_t* __restrict__ mask, T* __restrict__ weights,
                   T* __restrict__ out, typename sc::Acc<T>::type* __restrict__ raw,
                   std::int32_t* __restrict__ argmax, typename sc::Acc<T>::type* __restrict__ fsum,
                   std::int64_t N, std::int64_t C, std::int64_t D,
                   typename sc::Acc<T>::type scale, int pool) {
  using A = typename sc::Acc<T>::type;
  __shared__ A scratch[32];
  const std::int64_t b = blockIdx.x;
  const int tid = static_cast<int>(threadIdx.x);
  A* rawb = raw + b * C;

  if (pool == kMax) {
    __shared__ A s_feats[kTN][kTD + 1];
    __shared__ A s_tokens[kTC][kTD + 1];
    __shared__ A s_best[16][kTC];
    __shared__ A s_raw[16][kTC];
    __shared__ int s_idx[16][kTC];
    __shared__ unsigned char s_nan[16][kTC];
    __shared__ unsigned char s_valid[kTN];
    const int ty = tid / 16;  // frames ty and ty + 16 of the tile
    const int tx = tid % 16;  // tokens tx + 16 * i, i < 4 (conflict-free shared reads)
    for (std::int64_t c0 = 0; c0 < C; c0 += kTC) {
      A run_best = sc::neg_inf<A>();
      A run_raw = sc::quiet_nan<A>();
      int run_idx = INT_MAX;
      bool run_nan = false;
      for (std::int64_t n0 = 0; n0 < N; n0 += kTN) {
        if (tid < kTN) s_valid[tid] = frame_valid(mask, b, N, n0 + tid) ? 1 : 0;
        __syncthreads();
        A acc[2][4] = {{0, 0, 0, 0}, {0, 0, 0, 0}};
        for (std::int64_t d0 = 0; d0 < D; d0 += kTD) {
          for (int e = tid; e < kTN * kTD; e += kThreads) {
            const int row = e / kTD, col = e % kTD;
            const std::int64_t d = d0 + col;
            s_feats[row][col] = (s_valid[row] && d < D)
                                    ? sc::to_acc<A>(feats[(b * N + n0 + row) * D + d])
                                    : A(0);
          }
          for (int e = tid; e < kTC * kTD; e += kThreads) {
            const int row = e / kTD, col = e % kTD;
            const std::int64_t c = c0 + row, d = d0 + col;
            s_tokens[row][col] = (c < C && d < D) ? sc::to_acc<A>(tokens[c * D + d]) : A(0);
          }
          __syncthreads();
#pragma unroll 8
          for (int kk = 0; kk < kTD; ++kk) {
            const A f0 = s_feats[ty][kk];
            const A f1 = s_feats[ty + 16][kk];
#pragma unroll
            for (int i = 0; i < 4; ++i) {
              const A t = s_tokens[tx + 16 * i][kk];
              acc[0][i] += f0 * t;
              acc[1][i] += f1 * t;
            }
          }
          __syncthreads();
        }
        // Reduce this thread's two frames, then the 16 threads sharing a token column.
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          A best = sc::neg_inf<A>();
          A best_raw = sc::quiet_nan<A>();
          int best_n = INT_MAX;
          bool seen_nan = false;
#pragma unroll
          for (int j = 0; j < 2; ++j) {
            const int nl = ty + 16 * j;
            if (!s_valid[nl]) continue;
            const A logit = acc[j][i] * scale;
            const int n = static_cast<int>(n0) + nl;
            if (isnan(logit)) seen_nan = true;
            if (better(logit, n, best, best_n)) {
              best = logit;
              best_n = n;
              best_raw = acc[j][i];
            }
          }
          s_best[ty][tx + 16 * i] = best;
          s_raw[ty][tx + 16 * i] = best_raw;
          s_idx[ty][tx + 16 * i] = best_n;
          s_nan[ty][tx + 16 * i] = seen_nan ? 1 : 0;
        }
        __syncthreads();
        if (tid < kTC) {
          for (int y = 0; y < 16; ++y) {
            run_nan = run_nan || s_nan[y][tid];
            if (s_idx[y][tid] != INT_MAX && better(s_best[y][tid], s_idx[y][tid], run_best, run_idx)) {
              run_best = s_best[y][tid];
              run_idx = s_idx[y][tid];
              run_raw = s_raw[y][tid];
            }
          }
        }
        __syncthreads();
      }
      if (tid < kTC && c0 + tid < C) {
        rawb[c0 + tid] = run_nan ? sc::quiet_nan<A>() : run_raw;
        argmax[b * C + c0 + tid] = run_idx == INT_MAX ? -1 : run_idx;
      }
    }
  } else {
    A count = 0;
    for (std::int64_t n = tid; n < N; n += blockDim.x) count += frame_valid(mask, b, N, n) ? 1 : 0;
    count = sc::block_reduce(count, sc::SumOp{}, scratch);
    const A denom = pool == kMean ? count : A(1);
    A* fsumb = fsum + b * D;
    for (std::int64_t k = tid; k < D; k += blockDim.x) {
      A s = 0;
      for (std::int64_t n = 0; n < N; ++n) {
        if (frame_valid(mask, b, N, n)) s += sc::to_acc<A>(feats[(b * N + n) * D + k]);
      }
      fsumb[k] = s / denom;
    }
    __syncthreads();
    const int lane = tid % 32, warp = tid / 32, warps = static_cast<int>(blockDim.x) / 32;
    for (std::int64_t c = warp; c < C; c += warps) {
      A s = 0;
      for (std::int64_t k = lane; k < D; k += 32) s += fsumb[k] * sc::to_acc<A>(tokens[c * D + k]);
      s = sc::warp_reduce(s, sc::SumOp{});
      if (lane == 0) rawb[c] = s;
    }
  }
  __syncthreads();  // raw row complete and visible to the block

  auto z = [rawb, scale](std::int64_t i) { return rawb[i] * scale; };
  A zmax, tau;
  bool bad;
  sc::block_threshold<A>(z, C, scratch, zmax, tau, bad);
  auto weight = [&](std::int64_t c) {
    const A v = z(c) - zmax - tau;
    return bad ? sc::quiet_nan<A>() : (v > A(0) ? v : A(0));
  };
  for (std::int64_t c = tid; c < C; c += blockDim.x) weights[b * C + c] = sc::from_acc<T>(weight(c));
  for (std::int64_t k = tid; k < D; k += blockDim.x) {
    A s = 0;
    for (std::int64_t c = 0; c < C; ++c) {
      const A w = weight(c);
      if (w != A(0)) s += w * sc::to_acc<A>(tokens[c * D + k]);  // sparse; NaN kept
    }
    out[b * D + k] = sc::from_acc<T>(s);
  }
}

template <typename T>  // min 1 block/SM: with the default, ptxas caps fp64 at 32 registers and spills
__global__ void __launch_bounds__(kThreads, 1)
    backward_row_kernel(const T* __restrict__ tokens, const std::uint8_t* __restrict__ mask,
                        const T* __restrict__ weights, const std::int32_t* __restrict__ argmax,
                        const T* __restrict__ dweights, const T* __restrict__ dout,
                        typename sc::Acc<T>::type* __restrict__ dfeats,
                        typename sc::Acc<T>::type* __restrict__ dpooled, std::int64_t N,
                        std::int64_t C, std::int64_t D, typename sc::Acc<T>::type scale,
                        int pool) {
  using A = typename sc::Acc<T>::type;
  __shared__ A scratch[32];
  const std::int64_t b = blockIdx.x;
  const int tid = static_cast<int>(threadIdx.x);
  const int lane = tid % 32, warp = tid / 32, warps = static_cast<int>(blockDim.x) / 32;
  A* dp = dpooled + b * C;
  // g = dweights + dout @ tokens^T (warp per token).
  for (std::int64_t c = warp; c < C; c += warps) {
    A s = 0;
    for (std::int64_t k = lane; k < D; k += 32) {
      s += sc::to_acc<A>(dout[b * D + k]) * sc::to_acc<A>(tokens[c * D + k]);
    }
    s = sc::warp_reduce(s, sc::SumOp{});
    if (lane == 0) dp[c] = s + sc::to_acc<A>(dweights[b * C + c]);
  }
  __syncthreads();
  // Sparsemax backward: d_pooled = g - mean_support(g) on the support, 0 * w elsewhere.
  A s = 0, cnt = 0;
  for (std::int64_t c = tid; c < C; c += blockDim.x) {
    if (sc::to_acc<A>(weights[b * C + c]) > A(0)) {
      s += dp[c];
      cnt += A(1);
    }
  }
  s = sc::block_reduce(s, sc::SumOp{}, scratch);
  cnt = sc::block_reduce(cnt, sc::SumOp{}, scratch);
  const A mean = s / (cnt > A(0) ? cnt : A(1));
  for (std::int64_t c = tid; c < C; c += blockDim.x) {
    const A w = sc::to_acc<A>(weights[b * C + c]);
    dp[c] = w > A(0) ? dp[c] - mean : A(0) * w;
  }
  __syncthreads();
  // d_feats: each thread owns d-columns k, so the scatter to argmax frames has no races.
  A* dfb = dfeats + b * N * D;
  if (pool == kMax) {
    for (std::int64_t k = tid; k < D; k += blockDim.x) {
      for (std::int64_t n = 0; n < N; ++n) dfb[n * D + k] = A(0);
      for (std::int64_t c = 0; c < C; ++c) {
        const std::int32_t n = argmax[b * C + c];
        if (n >= 0) dfb[static_cast<std::int64_t>(n) * D + k] += scale * dp[c] * sc::to_acc<A>(tokens[c * D + k]);
      }
    }
  } else {
    A count = 0;
    for (std::int64_t n = tid; n < N; n += blockDim.x) count += frame_valid(mask, b, N, n) ? 1 : 0;
    count = sc::block_reduce(count, sc::SumOp{}, scratch);
    const A factor = pool == kMean ? scale / count : scale;
    for (std::int64_t k = tid; k < D; k += blockDim.x) {
      A v = 0;
      for (std::int64_t c = 0; c < C; ++c) v += dp[c] * sc::to_acc<A>(tokens[c * D + k]);
      v *= factor;
      for (std::int64_t n = 0; n < N; ++n) dfb[n * D + k] = frame_valid(mask, b, N, n) ? v : A(0);
    }
  }
}

template <typename T>
__global__ void backward_tokens_kernel(const T* __restrict__ feats, const T* __restrict__ weights,
                                       const std::int32_t* __restrict__ argmax,
                                       const typename sc::Acc<T>::type* __restrict__ fsum,
                                       const T* __restrict__ dout,
                                       const typename sc::Acc<T>::type* __restrict__ dpooled,
                                       T* __restrict__ dtokens, std::int64_t B, std::int64_t N,
                                       std::int64_t C, std::int64_t D,
                                       typename sc::Acc<T>::type scale, int pool) {
  using A = typename sc::Acc<T>::type;
  const std::int64_t c = blockIdx.x;
  for (std::int64_t k = threadIdx.x; k < D; k += blockDim.x) {
    A acc = 0;
    for (std::int64_t b = 0; b < B; ++b) {
      const A w = sc::to_acc<A>(weights[b * C + c]);
      const A g = scale * dpooled[b * C + c];
      A p;
      if (pool == kMax) {
        const std::int32_t n = argmax[b * C + c];
        p = sc::to_acc<A>(feats[(b * N + (n < 0 ? 0 : n)) * D + k]);
      } else {
        p = fsum[b * D + k];
      }
      acc += w * sc::to_acc<A>(dout[b * D + k]) + g * p;
    }
    dtokens[c * D + k] = sc::from_acc<T>(acc);
  }
}

void check_args(std::int64_t B, std::int64_t N, std::int64_t C, std::int64_t D, int pool) {
  if (B <= 0 || N <= 0 || C <= 0 || D <= 0) {
    throw std::invalid_argument("sst (cuda): B, N, C and D must be positive");
  }
  if (pool < kMax || pool > kSum) throw std::invalid_argument("sst (cuda): unknown pool code");
  if (B > INT_MAX || C > INT_MAX || N >= INT_MAX) {
    throw std::invalid_argument("sst (cuda): B, N or C too large for the launch grid / int32");
  }
}

template <typename T>
void launch_forward(std::uintptr_t feats, std::uintptr_t tokens, std::uintptr_t mask,
                    std::uintptr_t weights, std::uintptr_t out, std::uintptr_t raw,
                    std::uintptr_t argmax, std::uintptr_t fsum, std::int64_t B, std::int64_t N,
                    std::int64_t C, std::int64_t D, double scale, int pool, cudaStream_t stream) {
  using A = typename sc::Acc<T>::type;
  forward_kernel<T><<<static_cast<unsigned>(B), kThreads, 0, stream>>>(
      as_ptr<const T>(feats), as_ptr<const T>(tokens), as_ptr<const std::uint8_t>(mask),
      as_ptr<T>(weights), as_ptr<T>(out), as_ptr<A>(raw), as_ptr<std::int32_t>(argmax),
      as_ptr<A>(fsum), N, C, D, static_cast<A>(scale), pool);
}

template <typename T>
void launch_backward(std::uintptr_t feats, std::uintptr_t tokens, std::uintptr_t mask,
                     std::uintptr_t weights, std::uintptr_t argmax, std::uintptr_t fsum,
                     std::uintptr_t dweights, std::uintptr_t dout, std::uintptr_t dfeats,
                     std::uintptr_t dtokens, std::uintptr_t dpooled, std::int64_t B,
                     std::int64_t N, std::int64_t C, std::int64_t D, double scale, int pool,
                     cudaStream_t stream) {
  using A = typename sc::Acc<T>::type;
  backward_row_kernel<T><<<static_cast<unsigned>(B), kThreads, 0, stream>>>(
      as_ptr<const T>(tokens), as_ptr<const std::uint8_t>(mask), as_ptr<const T>(weights),
      as_ptr<const std::int32_t>(argmax), as_ptr<const T>(dweights), as_ptr<const T>(dout),
      as_ptr<A>(dfeats), as_ptr<A>(dpooled), N, C, D, static_cast<A>(scale), pool);
  check_cuda(cudaGetLastError(), "sst backward rows (cuda) launch");
  backward_tokens_kernel<T><<<static_cast<unsigned>(C), sc::threads_for(D), 0, stream>>>(
      as_ptr<const T>(feats), as_ptr<const T>(weights), as_ptr<const std::int32_t>(argmax),
      as_ptr<const A>(fsum), as_ptr<const T>(dout), as_ptr<const A>(dpooled), as_ptr<T>(dtokens),
      B, N, C, D, static_cast<A>(scale), pool);
}

}  // namespace

void cuda_forward(std::uintptr_t feats, std::uintptr_t tokens, std::uintptr_t mask,
                  std::uintptr_t weights, std::uintptr_t out, std::uintptr_t raw,
                  std::uintptr_t argmax, std::uintptr_t fsum, std::int64_t B, std::int64_t N,
                  std::int64_t C, std::int64_t D, double scale, int pool, int dtype,
                  std::uintptr_t stream_handle) {
  check_args(B, N, C, D, pool);
  auto stream = reinterpret_cast<cudaStream_t>(stream_handle);
  switch (to_dtype(dtype)) {
    case DType::Float32:
      launch_forward<float>(feats, tokens, mask, weights, out, raw, argmax, fsum, B, N, C, D,
                            scale, pool, stream);
      break;
    case DType::Float64:
      launch_forward<double>(feats, tokens, mask, weights, out, raw, argmax, fsum, B, N, C, D,
                             scale, pool, stream);
      break;
    case DType::Float16:
      launch_forward<__half>(feats, tokens, mask, weights, out, raw, argmax, fsum, B, N, C, D,
                             scale, pool, stream);
      break;
    case DType::BFloat16:
      launch_forward<__nv_bfloat16>(feats, tokens, mask, weights, out, raw, argmax, fsum, B, N, C,
                                    D, scale, pool, stream);
      break;
  }
  check_cuda(cudaGetLastError(), "sst forward (cuda) launch");
}

void cuda_backward(std::uintptr_t feats, std::uintptr_t tokens, std::uintptr_t mask,
                   std::uintptr_t weights, std::uintptr_t argmax, std::uintptr_t fsum,
                   std::uintptr_t dweights, std::uintptr_t dout, std::uintptr_t dfeats,
                   std::uintptr_t dtokens, std::uintptr_t dpooled, std::int64_t B, std::int64_t N,
                   std::int64_t C, std::int64_t D, double scale, int pool, int dtype,
                   std::uintptr_t stream_handle) {
  check_args(B, N, C, D, pool);
  auto stream = reinterpret_cast<cudaStream_t>(stream_handle);
  switch (to_dtype(dtype)) {
    case DType::Float32:
      launch_backward<float>(feats, tokens, mask, weights, argmax, fsum, dweights, dout, dfeats,
                             dtokens, dpooled, B, N, C, D, scale, pool, stream);
      break;
    case DType::Float64:
      launch_backward<double>(feats, tokens, mask, weights, argmax, fsum, dweights, dout, dfeats,
                              dtokens, dpooled, B, N, C, D, scale, pool, stream);
      break;
    case DType::Float16:
      launch_backward<__half>(feats, tokens, mask, weights, argmax, fsum, dweights, dout, dfeats,
                              dtokens, dpooled, B, N, C, D, scale, pool, stream);
      break;
    case DType::BFloat16:
      launch_backward<__nv_bfloat16>(feats, tokens, mask, weights, argmax, fsum, dweights, dout,
                                     dfeats, dtokens, dpooled, B, N, C, D, scale, pool, stream);
      break;
  }
  check_cuda(cudaGetLastError(), "sst backward tokens (cuda) launch");
}

}  // namespace signbench::sst
