// SST converter on CPU: one batch row per OpenMP iteration; the logits of a row are reduced on
// the fly (max: running max / first argmax per token), never stored. Sparsemax is the exact
// sort-based one shared with csrc/sparsemax.
//
// fp32 max pooling (the paper's setting, the hot path) is tiled: the valid frames of a row are
// gathered kFrameTile at a time into a small (tile x d) buffer, the tile's logits against ALL C
// tokens come from a register-blocked micro-GEMM (csrc/cpu_tile.h) into a (tile x C) per-thread
// buffer (L1/L2 resident; the (B, N, C) logits never exist), and a vectorised select loop folds
// the tile into the running max / first-argmax per token. The tokens are transposed once into a
// zero-padded (d, C) layout so the micro-kernel's inner loop runs over contiguous tokens. The
// function is compiled for AVX-512 / AVX2 / baseline x86-64 and picked at load time.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include "cpu_tile.h"
#include "sparsemax/sparsemax.h"
#include "sst/sst.h"

namespace signbench::sst {

namespace {

template <typename T>
T dot(const T* a, const T* b, std::int64_t n) {
  T s = 0;
  for (std::int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

inline bool is_valid(const std::uint8_t* mask, std::int64_t b, std::int64_t N, std::int64_t n) {
  return mask == nullptr || mask[b * N + n] != 0;
}

template <typename T>
void forward_impl(const T* feats, const T* tokens, const std::uint8_t* mask, T* weights, T* out,
                  T* raw, std::int32_t* argmax, T* fsum, std::int64_t B, std::int64_t N,
                  std::int64_t C, std::int64_t D, T scale, int pool, bool fast_max = false) {
#pragma omp parallel
  {
    std::vector<T> scratch, best, pooled;
#pragma omp for schedule(static)
    for (std::int64_t b = 0; b < B; ++b) {
      const T* fb = feats + b * N * D;
      T* rawb = raw + b * C;
      if (pool == kMax && fast_max) {
        // rawb / argmax already filled by max_pool_f32 (fp32 tiled path).
      } else if (pool == kMax) {
        std::int32_t* ib = argmax + b * C;
        best.assign(static_cast<std::size_t>(C), -std::numeric_limits<T>::infinity());
        for (std::int64_t c = 0; c < C; ++c) {
          ib[c] = -1;
          rawb[c] = std::numeric_limits<T>::quiet_NaN();
        }
        std::vector<char> nan_seen(static_cast<std::size_t>(C), 0);
        for (std::int64_t n = 0; n < N; ++n) {
          if (!is_valid(mask, b, N, n)) continue;
          for (std::int64_t c = 0; c < C; ++c) {
            const T d = dot(fb + n * D, tokens + c * D, D);
            const T logit = d * scale;
            if (std::isnan(logit)) nan_seen[c] = 1;
            if (logit > best[c]) {  // strict: ties keep the first frame
              best[c] = logit;
              ib[c] = static_cast<std::int32_t>(n);
              rawb[c] = d;
            }
          }
        }
        for (std::int64_t c = 0; c < C; ++c) {
          if (nan_seen[c]) rawb[c] = std::numeric_limits<T>::quiet_NaN();
        }
      } else {
        T* sb = fsum + b * D;
        for (std::int64_t k = 0; k < D; ++k) sb[k] = 0;
        std::int64_t count = 0;
        for (std::int64_t n = 0; n < N; ++n) {
          if (!is_valid(mask, b, N, n)) continue;
          ++count;
          for (std::int64_t k = 0; k < D; ++k) sb[k] += fb[n * D + k];
        }
        if (pool == kMean) {
          for (std::int64_t k = 0; k < D; ++k) sb[k] /= static_cast<T>(count);
        }
        for (std::int64_t c = 0; c < C; ++c) rawb[c] = dot(sb, tokens + c * D, D);
      }
      pooled.resize(static_cast<std::size_t>(C));
      for (std::int64_t c = 0; c < C; ++c) pooled[c] = rawb[c] * scale;
      T* wb = weights + b * C;
      sparsemax::sparsemax_row(pooled.data(), wb, C, scratch);
      T* ob = out + b * D;
      for (std::int64_t k = 0; k < D; ++k) ob[k] = 0;
      for (std::int64_t c = 0; c < C; ++c) {
        const T w = wb[c];
        if (w == T(0)) continue;  // sparse: skip tokens outside the support (NaN is kept)
        for (std::int64_t k = 0; k < D; ++k) ob[k] += w * tokens[c * D + k];
      }
    }
  }
}


// Max pooling of the scaled logits for fp32 (see the file comment): raw[b, c] = <feats[b, n*],
// tokens[c]> and argmax[b, c] = n*, the first valid frame with the largest scaled logit; NaN
// logits make raw NaN (as in the generic path).
constexpr std::int64_t kFrameTile = 32;

SIGNBENCH_CPU_CLONES
void max_pool_f32(const float* feats, const float* tokens, const std::uint8_t* mask, float* raw,
                  std::int32_t* argmax, std::int64_t B, std::int64_t N, std::int64_t C,
                  std::int64_t D, float scale) {
  const std::int64_t Cp = tile::round_up(C, tile::kNR);
  std::vector<float> tok_t(static_cast<std::size_t>(D * Cp), 0.0f);  // (D, Cp), zero padded
  for (std::int64_t c = 0; c < C; ++c) {
    for (std::int64_t k = 0; k < D; ++k) tok_t[k * Cp + c] = tokens[c * D + k];
  }
  const bool wide = tile::wide_registers();
#pragma omp parallel
  {
    std::vector<float> a(static_cast<std::size_t>(kFrameTile * D));
    std::vector<float> logits(static_cast<std::size_t>(kFrameTile * Cp));
    std::vector<float> best(static_cast<std::size_t>(Cp));
    std::vector<std::int32_t> frame(static_cast<std::size_t>(kFrameTile));
    std::vector<std::int32_t> nan_seen(static_cast<std::size_t>(Cp));
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t b = 0; b < B; ++b) {
      float* rawb = raw + b * C;
      std::int32_t* ib = argmax + b * C;
      float* __restrict__ bst = best.data();
      std::int32_t* __restrict__ nan = nan_seen.data();
      for (std::int64_t c = 0; c < C; ++c) {
        bst[c] = -std::numeric_limits<float>::infinity();
        ib[c] = -1;
        rawb[c] = std::numeric_limits<float>::quiet_NaN();
        nan[c] = 0;
      }
      std::int64_t n = 0;
      while (n < N) {
        std::int64_t rows = 0;  // gather up to kFrameTile valid frames, in order
        for (; n < N && rows < kFrameTile; ++n) {
          if (!is_valid(mask, b, N, n)) continue;
          std::copy(feats + (b * N + n) * D, feats + (b * N + n + 1) * D, a.data() + rows * D);
          frame[static_cast<std::size_t>(rows++)] = static_cast<std::int32_t>(n);
        }
        if (rows == 0) break;
        std::fill(logits.begin(), logits.begin() + rows * Cp, 0.0f);
        tile::gemm_acc(rows, Cp, D, a.data(), D, 1, tok_t.data(), Cp, logits.data(), Cp, wide);
        for (std::int64_t r = 0; r < rows; ++r) {  // frames in order: strict > keeps the first
          const float* __restrict__ lr = logits.data() + r * Cp;
          const std::int32_t fr = frame[static_cast<std::size_t>(r)];
#pragma omp simd
          for (std::int64_t c = 0; c < C; ++c) {
            const float d = lr[c];
            const float lg = d * scale;
            const bool gt = lg > bst[c];
            bst[c] = gt ? lg : bst[c];
            ib[c] = gt ? fr : ib[c];
            rawb[c] = gt ? d : rawb[c];
            nan[c] |= (lg != lg) ? 1 : 0;
          }
        }
      }
      for (std::int64_t c = 0; c < C; ++c) {
        if (nan[c]) rawb[c] = std::numeric_limits<float>::quiet_NaN();
      }
    }
  }
}

template <typename T>
void backward_impl(const T* feats, const T* tokens, const std::uint8_t* mask, const T* weights,
                   const std::int32_t* argmax, const T* fsum, const T* dweights, const T* dout,
                   T* dfeats, T* dtokens, T* dpooled, std::int64_t B, std::int64_t N,
                   std::int64_t C, std::int64_t D, T scale, int pool) {
  // Per batch row: d_pooled (sparsemax backward of dw + dout @ tokens^T), then d_feats.
#pragma omp parallel
  {
    std::vector<T> v;
#pragma omp for schedule(static)
    for (std::int64_t b = 0; b < B; ++b) {
      T* dp = dpooled + b * C;
      const T* db = dout + b * D;
      for (std::int64_t c = 0; c < C; ++c) dp[c] = dweights[b * C + c] + dot(db, tokens + c * D, D);
      sparsemax::sparsemax_backward_row(weights + b * C, dp, dp, C);
      T* dfb = dfeats + b * N * D;
      for (std::int64_t i = 0; i < N * D; ++i) dfb[i] = 0;
      if (pool == kMax) {
        const std::int32_t* ib = argmax + b * C;
        for (std::int64_t c = 0; c < C; ++c) {
          if (ib[c] < 0) continue;
          const T g = scale * dp[c];
          T* row = dfb + static_cast<std::int64_t>(ib[c]) * D;
          for (std::int64_t k = 0; k < D; ++k) row[k] += g * tokens[c * D + k];
        }
      } else {
        v.assign(static_cast<std::size_t>(D), T(0));
        std::int64_t count = 0;
        for (std::int64_t n = 0; n < N; ++n) count += is_valid(mask, b, N, n) ? 1 : 0;
        for (std::int64_t c = 0; c < C; ++c) {
          for (std::int64_t k = 0; k < D; ++k) v[k] += dp[c] * tokens[c * D + k];
        }
        const T factor = pool == kMean ? scale / static_cast<T>(count) : scale;
        for (std::int64_t n = 0; n < N; ++n) {
          if (!is_valid(mask, b, N, n)) continue;
          for (std::int64_t k = 0; k < D; ++k) dfb[n * D + k] = factor * v[k];
        }
      }
    }
  }
  // d_tokens[c] = sum_b w[b, c] dout[b] + scale * dp[b, c] * P[b, c]; one token per iteration.
#pragma omp parallel for schedule(static)
  for (std::int64_t c = 0; c < C; ++c) {
    T* dt = dtokens + c * D;
    for (std::int64_t k = 0; k < D; ++k) dt[k] = 0;
    for (std::int64_t b = 0; b < B; ++b) {
      const T w = weights[b * C + c];
      const T g = scale * dpooled[b * C + c];
      const T* db = dout + b * D;
      const T* p = nullptr;
      if (pool == kMax) {
        const std::int32_t n = argmax[b * C + c];
        p = feats + (b * N + (n < 0 ? 0 : n)) * D;
      } else {
        p = fsum + b * D;
      }
      for (std::int64_t k = 0; k < D; ++k) dt[k] += w * db[k] + g * p[k];
    }
  }
}

void check_args(std::int64_t B, std::int64_t N, std::int64_t C, std::int64_t D, int pool) {
  if (B <= 0 || N <= 0 || C <= 0 || D <= 0) {
    throw std::invalid_argument("sst (cpu): B, N, C and D must be positive");
  }
  if (pool < kMax || pool > kSum) throw std::invalid_argument("sst (cpu): unknown pool code");
  if (N > std::numeric_limits<std::int32_t>::max()) {
    throw std::invalid_argument("sst (cpu): N does not fit the int32 argmax");
  }
}

}  // namespace

void cpu_forward(std::uintptr_t feats, std::uintptr_t tokens, std::uintptr_t mask,
                 std::uintptr_t weights, std::uintptr_t out, std::uintptr_t raw,
                 std::uintptr_t argmax, std::uintptr_t fsum, std::int64_t B, std::int64_t N,
                 std::int64_t C, std::int64_t D, double scale, int pool, int dtype) {
  check_args(B, N, C, D, pool);
  const auto* m = as_ptr<const std::uint8_t>(mask);
  auto* ix = as_ptr<std::int32_t>(argmax);
  switch (to_dtype(dtype)) {
    case DType::Float32: {
      const bool fast = pool == kMax;
      if (fast) {
        max_pool_f32(as_ptr<const float>(feats), as_ptr<const float>(tokens), m,
                     as_ptr<float>(raw), ix, B, N, C, D, static_cast<float>(scale));
      }
      forward_impl(as_ptr<const float>(feats), as_ptr<const float>(tokens), m,
                   as_ptr<float>(weights), as_ptr<float>(out), as_ptr<float>(raw), ix,
                   as_ptr<float>(fsum), B, N, C, D, static_cast<float>(scale), pool, fast);
      break;
    }
    case DType::Float64:
      forward_impl(as_ptr<const double>(feats), as_ptr<const double>(tokens), m,
                   as_ptr<double>(weights), as_ptr<double>(out), as_ptr<double>(raw), ix,
                   as_ptr<double>(fsum), B, N, C, D, scale, pool);
      break;
    default:
      throw std::invalid_argument("sst (cpu): dtype must be float32 or float64");
  }
}

void cpu_backward(std::uintptr_t feats, std::uintptr_t tokens, std::uintptr_t mask,
                  std::uintptr_t weights, std::uintptr_t argmax, std::uintptr_t fsum,
                  std::uintptr_t dweights, std::uintptr_t dout, std::uintptr_t dfeats,
                  std::uintptr_t dtokens, std::uintptr_t dpooled, std::int64_t B, std::int64_t N,
                  std::int64_t C, std::int64_t D, double scale, int pool, int dtype) {
  check_args(B, N, C, D, pool);
  const auto* m = as_ptr<const std::uint8_t>(mask);
  const auto* ix = as_ptr<const std::int32_t>(argmax);
  switch (to_dtype(dtype)) {
    case DType::Float32:
      backward_impl(as_ptr<const float>(feats), as_ptr<const float>(tokens), m,
                    as_ptr<const float>(weights), ix, as_ptr<const float>(fsum),
                    as_ptr<const float>(dweights), as_ptr<const float>(dout),
                    as_ptr<float>(dfeats), as_ptr<float>(dtokens), as_ptr<float>(dpooled), B, N,
                    C, D, static_cast<float>(scale), pool);
      break;
    case DType::Float64:
      backward_impl(as_ptr<const double>(feats), as_ptr<const double>(tokens), m,
                    as_ptr<const double>(weights), ix, as_ptr<const double>(fsum),
                    as_ptr<const double>(dweights), as_ptr<const double>(dout),
                    as_ptr<double>(dfeats), as_ptr<double>(dtokens), as_ptr<double>(dpooled), B,
                    N, C, D, scale, pool);
      break;
    default:
      throw std::invalid_argument("sst (cpu): dtype must be float32 or float64");
  }
}

}  // namespace signbench::sst
