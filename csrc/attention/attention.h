// masked_attention: softmax(q k^T * scale, key mask, optional local window) v, flash style.
//
// Layout: q, out, dout, dq (B, H, Tq, dh); k, v, dk, dv (B, H, Tk, dh); all contiguous -- or, on
// CPU in fp32 with heads_interleaved, all (B, T, H, dh) contiguous (the same logical tensors). mask is a
// (B, Tk) uint8 buffer (nonzero = valid key) or 0 for "all valid". half_window < 0 means no
// window, else query i sees keys j with |i - j| <= half_window. lse (B, H, Tq) is fp32 (fp64 for
// fp64 inputs on CPU); rows without any valid key get out = 0 and lse = +inf.
#pragma once

#include <cstdint>

#include "common.h"

namespace signbench::attention {

void forward_cpu(std::uintptr_t q, std::uintptr_t k, std::uintptr_t v, std::uintptr_t mask,
                 std::uintptr_t out, std::uintptr_t lse, std::int64_t B, std::int64_t H,
                 std::int64_t Tq, std::int64_t Tk, std::int64_t dh, std::int64_t half_window,
                 double scale, int dtype, bool heads_interleaved);

void backward_cpu(std::uintptr_t q, std::uintptr_t k, std::uintptr_t v, std::uintptr_t mask,
                  std::uintptr_t out, std::uintptr_t dout, std::uintptr_t lse, std::uintptr_t dq,
                  std::uintptr_t dk, std::uintptr_t dv, std::int64_t B, std::int64_t H,
                  std::int64_t Tq, std::int64_t Tk, std::int64_t dh, std::int64_t half_window,
                  double scale, int dtype, bool heads_interleaved);

// CUDA: fp32 / fp16 / bf16; lse and delta (B, H, Tq) fp32; delta is a scratch buffer.
void forward_cuda(std::uintptr_t q, std::uintptr_t k, std::uintptr_t v, std::uintptr_t mask,
                  std::uintptr_t out, std::uintptr_t lse, std::int64_t B, std::int64_t H,
                  std::int64_t Tq, std::int64_t Tk, std::int64_t dh, std::int64_t half_window,
                  double scale, int dtype, std::uintptr_t stream);

void backward_cuda(std::uintptr_t q, std::uintptr_t k, std::uintptr_t v, std::uintptr_t mask,
                   std::uintptr_t out, std::uintptr_t dout, std::uintptr_t lse, std::uintptr_t dq,
                   std::uintptr_t dk, std::uintptr_t dv, std::int64_t B, std::int64_t H,
                   std::int64_t Tq, std::int64_t Tk, std::int64_t dh, std::int64_t half_window,
                   double scale, int dtype, std::uintptr_t delta, std::uintptr_t stream);

}  // namespace signbench::attention
