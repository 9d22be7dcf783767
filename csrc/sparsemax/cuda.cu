// Sparsemax on GPU rows: one thread block per row, sort-free threshold (bisection + exact
// Michelot refinement, see sparsemax_cuda.cuh), fp32 math for fp16 / bf16 (fp64 for fp64).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>

#include "sparsemax/sparsemax.h"
#include "sparsemax/sparsemax_cuda.cuh"

namespace signbench::sparsemax {

namespace {

namespace sc = signbench::sparsemax_cuda;

template <typename T>
__global__ void forward_kernel(const T* __restrict__ x, T* __restrict__ out, std::int64_t k) {
  using A = typename sc::Acc<T>::type;
  __shared__ A scratch[32];
  const T* row = x + static_cast<std::int64_t>(blockIdx.x) * k;
  T* orow = out + static_cast<std::int64_t>(blockIdx.x) * k;
  auto z = [row](std::int64_t i) { return sc::to_acc<A>(row[i]); };
  A zmax, tau;
  bool bad;
  sc::block_threshold<A>(z, k, scratch, zmax, tau, bad);
  for (std::int64_t i = threadIdx.x; i < k; i += blockDim.x) {
    const A v = z(i) - zmax - tau;
    orow[i] = sc::from_acc<T>(bad ? sc::quiet_nan<A>() : (v > A(0) ? v : A(0)));
  }
}

template <typename T>
__global__ void backward_kernel(const T* __restrict__ p, const T* __restrict__ g,
                                T* __restrict__ gin, std::int64_t k) {
  using A = typename sc::Acc<T>::type;
  __shared__ A scratch[32];
  const std::int64_t base = static_cast<std::int64_t>(blockIdx.x) * k;
  A s = 0, cnt = 0;
  for (std::int64_t i = threadIdx.x; i < k; i += blockDim.x) {
    if (sc::to_acc<A>(p[base + i]) > A(0)) {
      s += sc::to_acc<A>(g[base + i]);
      cnt += A(1);
    }
  }
  s = sc::block_reduce(s, sc::SumOp{}, scratch);
  cnt = sc::block_reduce(cnt, sc::SumOp{}, scratch);
  const A mean = s / (cnt > A(0) ? cnt : A(1));
  for (std::int64_t i = threadIdx.x; i < k; i += blockDim.x) {
    const A pv = sc::to_acc<A>(p[base + i]);
    const A gv = sc::to_acc<A>(g[base + i]);
    gin[base + i] = sc::from_acc<T>(pv > A(0) ? gv - mean : A(0) * pv);
  }
}

void check_sizes(std::int64_t rows, std::int64_t k) {
  if (rows < 0 || k < 0) throw std::invalid_argument("sparsemax (cuda): negative size");
  if (rows > 2147483647LL) throw std::invalid_argument("sparsemax (cuda): too many rows");
}

}  // namespace

void cuda_forward(std::uintptr_t x, std::uintptr_t out, std::int64_t rows, std::int64_t k,
                  int dtype, std::uintptr_t stream_handle) {
  check_sizes(rows, k);
  if (rows == 0 || k == 0) return;
  auto stream = reinterpret_cast<cudaStream_t>(stream_handle);
  const dim3 grid(static_cast<unsigned>(rows));
  const int threads = sc::threads_for(k);
  switch (to_dtype(dtype)) {
    case DType::Float32:
      forward_kernel<<<grid, threads, 0, stream>>>(as_ptr<const float>(x), as_ptr<float>(out), k);
      break;
    case DType::Float64:
      forward_kernel<<<grid, threads, 0, stream>>>(as_ptr<const double>(x), as_ptr<double>(out),
                                                   k);
      break;
    case DType::Float16:
      forward_kernel<<<grid, threads, 0, stream>>>(as_ptr<const __half>(x), as_ptr<__half>(out),
                                                   k);
      break;
    case DType::BFloat16:
      forward_kernel<<<grid, threads, 0, stream>>>(as_ptr<const __nv_bfloat16>(x),
                                                   as_ptr<__nv_bfloat16>(out), k);
      break;
  }
  check_cuda(cudaGetLastError(), "sparsemax forward (cuda) launch");
}

void cuda_backward(std::uintptr_t p, std::uintptr_t g, std::uintptr_t gin, std::int64_t rows,
                   std::int64_t k, int dtype, std::uintptr_t stream_handle) {
  check_sizes(rows, k);
  if (rows == 0 || k == 0) return;
  auto stream = reinterpret_cast<cudaStream_t>(stream_handle);
  const dim3 grid(static_cast<unsigned>(rows));
  const int threads = sc::threads_for(k);
  switch (to_dtype(dtype)) {
    case DType::Float32:
      backward_kernel<<<grid, threads, 0, stream>>>(as_ptr<const float>(p), as_ptr<const float>(g),
                                                    as_ptr<float>(gin), k);
      break;
    case DType::Float64:
      backward_kernel<<<grid, threads, 0, stream>>>(
          as_ptr<const double>(p), as_ptr<const double>(g), as_ptr<double>(gin), k);
      break;
    case DType::Float16:
      backward_kernel<<<grid, threads, 0, stream>>>(
          as_ptr<const __half>(p), as_ptr<const __half>(g), as_ptr<__half>(gin), k);
      break;
    case DType::BFloat16:
      backward_kernel<<<grid, threads, 0, stream>>>(as_ptr<const __nv_bfloat16>(p),
                                                    as_ptr<const __nv_bfloat16>(g),
                                                    as_ptr<__nv_bfloat16>(gin), k);
      break;
  }
  check_cuda(cudaGetLastError(), "sparsemax backward (cuda) launch");
}

}  // namespace signbench::sparsemax
