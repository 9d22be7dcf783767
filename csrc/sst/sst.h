// SST converter (HyperSign Sec. 2.3.2, Algorithm 1), fused: per batch row b,
//   r[c] = pool_{valid n} scale * <feats[b, n], tokens[c]>   (max | mean | sum)
//   w = sparsemax(r),  out = w @ tokens.
// The (B, N, C) logits are never stored. Saved for backward: raw (B, C) = unscaled pooled values,
// argmax (B, C) int32 (max pooling, first maximal valid frame), fsum (B, d) = pooled feature
// (mean / sum: sum or mean of the valid frames). See harness/ops/sst.py.
#pragma once

#include <cstdint>

#include "common.h"

namespace signbench::sst {

enum Pool : int { kMax = 0, kMean = 1, kSum = 2 };

// feats (B, N, D), tokens (C, D), mask (B, N) bool bytes or 0 (all valid); weights (B, C) and
// out (B, D) in the input dtype; raw (B, C) and fsum (B, D) in the compute dtype (fp64 for fp64
// inputs, else fp32); argmax (B, C) int32 (max only). Every batch row needs a valid frame (the
// Python wrapper checks). CPU: fp32 / fp64.
void cpu_forward(std::uintptr_t feats, std::uintptr_t tokens, std::uintptr_t mask,
                 std::uintptr_t weights, std::uintptr_t out, std::uintptr_t raw,
                 std::uintptr_t argmax, std::uintptr_t fsum, std::int64_t B, std::int64_t N,
                 std::int64_t C, std::int64_t D, double scale, int pool, int dtype);

// Gradients given dweights (B, C) and dout (B, D) in the input dtype: dtokens (C, D) in the
// input dtype; dfeats (B, N, D) and dpooled (B, C) in the compute dtype (the gradient of the
// scaled pooled relevances; the Python wrapper turns it into d_scale = sum dpooled * raw).
void cpu_backward(std::uintptr_t feats, std::uintptr_t tokens, std::uintptr_t mask,
                  std::uintptr_t weights, std::uintptr_t argmax, std::uintptr_t fsum,
                  std::uintptr_t dweights, std::uintptr_t dout, std::uintptr_t dfeats,
                  std::uintptr_t dtokens, std::uintptr_t dpooled, std::int64_t B, std::int64_t N,
                  std::int64_t C, std::int64_t D, double scale, int pool, int dtype);

// CUDA: fp32 / fp64 / fp16 / bf16 (fp32 math for halves), on the stream given as an integer.
void cuda_forward(std::uintptr_t feats, std::uintptr_t tokens, std::uintptr_t mask,
                  std::uintptr_t weights, std::uintptr_t out, std::uintptr_t raw,
                  std::uintptr_t argmax, std::uintptr_t fsum, std::int64_t B, std::int64_t N,
                  std::int64_t C, std::int64_t D, double scale, int pool, int dtype,
                  std::uintptr_t stream);
void cuda_backward(std::uintptr_t feats, std::uintptr_t tokens, std::uintptr_t mask,
                   std::uintptr_t weights, std::uintptr_t argmax, std::uintptr_t fsum,
                   std::uintptr_t dweights, std::uintptr_t dout, std::uintptr_t dfeats,
                   std::uintptr_t dtokens, std::uintptr_t dpooled, std::int64_t B, std::int64_t N,
                   std::int64_t C, std::int64_t D, double scale, int pool, int dtype,
                   std::uintptr_t stream);

}  // namespace signbench::sst
