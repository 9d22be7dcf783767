// gated_blend: the fused epilogue of SignFuse's CMFA block (eqs. 10-11), over N rows of width d:
//   z = [o_vs; o_sv] W^T + b (W: (d, 2d) row-major), alpha = sigmoid(z),
//   y = LayerNorm(alpha * o_vs + (1 - alpha) * o_sv) * ln_w + ln_b + (fv + fs) / 2.
// Forward writes y, alpha (N x d) and the per-row mean / rstd (statistics: fp32, or fp64 for fp64
// inputs on CPU). Backward is the row part only: dz = dalpha * alpha (1 - alpha), g_vs = dh * alpha,
// g_sv = dh * (1 - alpha), and partial dln_w / dln_b sums (parts x d); the gate GEMMs run in torch.
#pragma once

#include <cstdint>

#include "common.h"

namespace signbench::gated_fusion {

void forward_cpu(std::uintptr_t o_vs, std::uintptr_t o_sv, std::uintptr_t fv, std::uintptr_t fs,
                 std::uintptr_t w, std::uintptr_t b, std::uintptr_t ln_w, std::uintptr_t ln_b,
                 std::uintptr_t y, std::uintptr_t alpha, std::uintptr_t mean, std::uintptr_t rstd,
                 std::int64_t N, std::int64_t d, double eps, int dtype);

// Partial sums: one row of dln_w / dln_b per chunk of rows_per_part rows.
void backward_cpu(std::uintptr_t dy, std::uintptr_t o_vs, std::uintptr_t o_sv,
                  std::uintptr_t alpha, std::uintptr_t mean, std::uintptr_t rstd,
                  std::uintptr_t ln_w, std::uintptr_t dz, std::uintptr_t g_vs, std::uintptr_t g_sv,
                  std::uintptr_t dln_w_part, std::uintptr_t dln_b_part, std::int64_t N,
                  std::int64_t d, std::int64_t rows_per_part, int dtype);

// CUDA: fp32 / fp16 / bf16 storage, fp32 alpha / mean / rstd / partials; d <= 1024.
void forward_cuda(std::uintptr_t o_vs, std::uintptr_t o_sv, std::uintptr_t fv, std::uintptr_t fs,
                  std::uintptr_t w, std::uintptr_t b, std::uintptr_t ln_w, std::uintptr_t ln_b,
                  std::uintptr_t y, std::uintptr_t alpha, std::uintptr_t mean, std::uintptr_t rstd,
                  std::int64_t N, std::int64_t d, double eps, int dtype, std::uintptr_t stream);

// Partial sums: one row of dln_w / dln_b per thread block; `parts` blocks stride over the rows.
void backward_cuda(std::uintptr_t dy, std::uintptr_t o_vs, std::uintptr_t o_sv,
                   std::uintptr_t alpha, std::uintptr_t mean, std::uintptr_t rstd,
                   std::uintptr_t ln_w, std::uintptr_t dz, std::uintptr_t g_vs,
                   std::uintptr_t g_sv, std::uintptr_t dln_w_part, std::uintptr_t dln_b_part,
                   std::int64_t N, std::int64_t d, std::int64_t parts, int dtype,
                   std::uintptr_t stream);

}  // namespace signbench::gated_fusion
