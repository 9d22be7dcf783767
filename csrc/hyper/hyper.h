// hyper_modulate: HyperSign's dynamic MLP (eq. 3), out = act(gamma * LayerNorm(fv * fk) + beta).
//
// Row-major (rows, d) contiguous buffers. Forward saves mean and rstd per row (fp32; fp64 for
// fp64 inputs on CPU). Backward recomputes x = fv*fk, x_hat and the pre-activation from them.
// ln_w / ln_b (and dln_w / dln_b) are fp32 (fp64 for fp64 inputs on CPU) whatever the input dtype.
// act: 0 none, 1 relu, 2 gelu (exact erf), 3 sigmoid, 4 silu.
#pragma once

#include <cstdint>

#include "common.h"

namespace signbench::hyper {

// CPU: dtype float32 or float64 (the Python wrapper upcasts halves).
void cpu_forward(std::uintptr_t fv, std::uintptr_t fk, std::uintptr_t gamma, std::uintptr_t beta,
                 std::uintptr_t ln_w, std::uintptr_t ln_b, std::uintptr_t out,
                 std::uintptr_t mean, std::uintptr_t rstd, std::int64_t rows, std::int64_t d,
                 double eps, int act, int dtype);

// dln_w / dln_b: (d,) outputs, reduced over rows with per-thread partial sums.
void cpu_backward(std::uintptr_t dout, std::uintptr_t fv, std::uintptr_t fk,
                  std::uintptr_t gamma, std::uintptr_t beta, std::uintptr_t ln_w,
                  std::uintptr_t ln_b, std::uintptr_t mean, std::uintptr_t rstd,
                  std::uintptr_t dfv, std::uintptr_t dfk, std::uintptr_t dgamma,
                  std::uintptr_t dbeta, std::uintptr_t dln_w, std::uintptr_t dln_b,
                  std::int64_t rows, std::int64_t d, int act, int dtype);

// CUDA: dtype float32, float16 or bfloat16; statistics fp32.
void cuda_forward(std::uintptr_t fv, std::uintptr_t fk, std::uintptr_t gamma,
                  std::uintptr_t beta, std::uintptr_t ln_w, std::uintptr_t ln_b,
                  std::uintptr_t out, std::uintptr_t mean, std::uintptr_t rstd, std::int64_t rows,
                  std::int64_t d, double eps, int act, int dtype, std::uintptr_t stream);

// The grid size cuda_backward should be called with (enough blocks to fill the device at the
// kernel's occupancy, at most rows); the caller allocates (blocks, d) workspaces from it.
std::int64_t cuda_backward_blocks(std::int64_t rows, std::int64_t d, int dtype);

// dln_w_part / dln_b_part: (blocks, d) fp32 partial sums, one row per CUDA block; the caller
// sums them over blocks. Each block walks rows blockIdx.x, blockIdx.x + blocks, ...
void cuda_backward(std::uintptr_t dout, std::uintptr_t fv, std::uintptr_t fk,
                   std::uintptr_t gamma, std::uintptr_t beta, std::uintptr_t ln_w,
                   std::uintptr_t ln_b, std::uintptr_t mean, std::uintptr_t rstd,
                   std::uintptr_t dfv, std::uintptr_t dfk, std::uintptr_t dgamma,
                   std::uintptr_t dbeta, std::uintptr_t dln_w_part, std::uintptr_t dln_b_part,
                   std::int64_t rows, std::int64_t d, std::int64_t blocks, int act, int dtype,
                   std::uintptr_t stream);

}  // namespace signbench::hyper
