// out = alpha * x + y on contiguous GPU buffers (fp32, fp64, fp16, bf16; fp32 math for halves).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "cuda_common.cuh"
#include "axpy/axpy.h"

namespace signbench::axpy {

namespace {

template <typename T>
__global__ void axpy_kernel(const T* __restrict__ x, const T* __restrict__ y, T* __restrict__ out,
                            std::int64_t n, float alpha) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    out[i] = from_float<T>(alpha * to_float(x[i]) + to_float(y[i]));
  }
}

__global__ void axpy_kernel_f64(const double* __restrict__ x, const double* __restrict__ y,
                                double* __restrict__ out, std::int64_t n, double alpha) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    out[i] = alpha * x[i] + y[i];
  }
}

}  // namespace

void cuda(std::uintptr_t x, std::uintptr_t y, std::uintptr_t out, std::int64_t n, double alpha,
          int dtype, std::uintptr_t stream_handle) {
  if (n == 0) return;
  auto stream = reinterpret_cast<cudaStream_t>(stream_handle);
  constexpr int threads = 256;
  const std::int64_t wanted = (n + threads - 1) / threads;
  const int blocks = static_cast<int>(wanted < 65535 ? wanted : 65535);
  switch (to_dtype(dtype)) {
    case DType::Float32:
      axpy_kernel<<<blocks, threads, 0, stream>>>(as_ptr<const float>(x), as_ptr<const float>(y),
                                                  as_ptr<float>(out), n, static_cast<float>(alpha));
      break;
    case DType::Float64:
      axpy_kernel_f64<<<blocks, threads, 0, stream>>>(
          as_ptr<const double>(x), as_ptr<const double>(y), as_ptr<double>(out), n, alpha);
      break;
    case DType::Float16:
      axpy_kernel<<<blocks, threads, 0, stream>>>(as_ptr<const __half>(x), as_ptr<const __half>(y),
                                                  as_ptr<__half>(out), n, static_cast<float>(alpha));
      break;
    case DType::BFloat16:
      axpy_kernel<<<blocks, threads, 0, stream>>>(
          as_ptr<const __nv_bfloat16>(x), as_ptr<const __nv_bfloat16>(y),
          as_ptr<__nv_bfloat16>(out), n, static_cast<float>(alpha));
      break;
  }
  check_cuda(cudaGetLastError(), "axpy (cuda) launch");
}

}  // namespace signbench::axpy
