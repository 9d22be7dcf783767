// masked_attention on CPU: per (b, h, query row) online softmax (FlashAttention's recurrence one
// row at a time), so no Tq x Tk buffer exists; OpenMP over (b, h). fp32 math for fp32 inputs,
// fp64 for fp64. Backward recomputes p = exp(s - lse) per (row, key) and accumulates dk / dv of
// one (b, h) serially, so threads never share an accumulator.
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include "attention/attention.h"

namespace signbench::attention {

namespace {

struct Range {
  std::int64_t lo, hi;
};

inline Range key_range(std::int64_t i, std::int64_t Tk, std::int64_t half_window) {
  if (half_window < 0) return {0, Tk};
  const std::int64_t lo = i - half_window < 0 ? 0 : i - half_window;
  const std::int64_t hi = i + half_window + 1 > Tk ? Tk : i + half_window + 1;
  return {lo, hi};
}

template <typename T>
inline T dot(const T* a, const T* b, std::int64_t n) {
  T s = 0;
  for (std::int64_t d = 0; d < n; ++d) s += a[d] * b[d];
  return s;
}

template <typename T>
void forward_impl(const T* q, const T* k, const T* v, const std::uint8_t* mask, T* out, T* lse,
                  std::int64_t B, std::int64_t H, std::int64_t Tq, std::int64_t Tk,
                  std::int64_t dh, std::int64_t half_window, T scale) {
  const T neg_inf = -std::numeric_limits<T>::infinity();
#pragma omp parallel for schedule(static)
  for (std::int64_t bh = 0; bh < B * H; ++bh) {
    const std::int64_t b = bh / H;
    const T* qb = q + bh * Tq * dh;
    const T* kb = k + bh * Tk * dh;
    const T* vb = v + bh * Tk * dh;
    const std::uint8_t* mb = mask ? mask + b * Tk : nullptr;
    std::vector<T> acc(static_cast<std::size_t>(dh));
    for (std::int64_t i = 0; i < Tq; ++i) {
      const T* qi = qb + i * dh;
      T m = neg_inf, l = 0;
      for (auto& a : acc) a = 0;
      const Range r = key_range(i, Tk, half_window);
      for (std::int64_t j = r.lo; j < r.hi; ++j) {
        if (mb && !mb[j]) continue;
        const T s = dot(qi, kb + j * dh, dh) * scale;
        if (s > m) {  // new running max: rescale what was accumulated (exp(-inf) = 0 at start)
          const T corr = std::exp(m - s);
          l *= corr;
          for (auto& a : acc) a *= corr;
          m = s;
        }
        const T p = std::exp(s - m);  // NaN scores propagate through p, l and acc
        l += p;
        const T* vj = vb + j * dh;
        for (std::int64_t d = 0; d < dh; ++d) acc[d] += p * vj[d];
      }
      T* oi = out + (bh * Tq + i) * dh;
      if (l > 0 || std::isnan(l)) {
        for (std::int64_t d = 0; d < dh; ++d) oi[d] = acc[d] / l;
        lse[bh * Tq + i] = m + std::log(l);
      } else {
        for (std::int64_t d = 0; d < dh; ++d) oi[d] = 0;
        lse[bh * Tq + i] = std::numeric_limits<T>::infinity();
      }
    }
  }
}

template <typename T>
void backward_impl(const T* q, const T* k, const T* v, const std::uint8_t* mask, const T* out,
                   const T* dout, const T* lse, T* dq, T* dk, T* dv, std::int64_t B,
                   std::int64_t H, std::int64_t Tq, std::int64_t Tk, std::int64_t dh,
                   std::int64_t half_window, T scale) {
#pragma omp parallel for schedule(static)
  for (std::int64_t bh = 0; bh < B * H; ++bh) {
    const std::int64_t b = bh / H;
    const T* qb = q + bh * Tq * dh;
    const T* kb = k + bh * Tk * dh;
    const T* vb = v + bh * Tk * dh;
    T* dkb = dk + bh * Tk * dh;
    T* dvb = dv + bh * Tk * dh;
    const std::uint8_t* mb = mask ? mask + b * Tk : nullptr;
    for (std::int64_t x = 0; x < Tk * dh; ++x) dkb[x] = dvb[x] = 0;
    for (std::int64_t i = 0; i < Tq; ++i) {
      const std::int64_t row = bh * Tq + i;
      const T* qi = qb + i * dh;
      const T* doi = dout + row * dh;
      T* dqi = dq + row * dh;
      for (std::int64_t d = 0; d < dh; ++d) dqi[d] = 0;
      const T L = lse[row];
      if (std::isinf(L) && L > 0) continue;  // no valid key: p = 0 everywhere
      const T delta = dot(doi, out + row * dh, dh);  // D_i = rowsum(dO ⊙ O)
      const Range r = key_range(i, Tk, half_window);
      for (std::int64_t j = r.lo; j < r.hi; ++j) {
        if (mb && !mb[j]) continue;
        const T* kj = kb + j * dh;
        const T* vj = vb + j * dh;
        const T p = std::exp(dot(qi, kj, dh) * scale - L);
        const T ds = p * (dot(doi, vj, dh) - delta);
        T* dkj = dkb + j * dh;
        T* dvj = dvb + j * dh;
        for (std::int64_t d = 0; d < dh; ++d) {
          dvj[d] += p * doi[d];
          dkj[d] += ds * qi[d];
          dqi[d] += ds * kj[d];
        }
      }
      for (std::int64_t d = 0; d < dh; ++d) dqi[d] *= scale;
    }
    for (std::int64_t x = 0; x < Tk * dh; ++x) dkb[x] *= scale;
  }
}

}  // namespace

void forward_cpu(std::uintptr_t q, std::uintptr_t k, std::uintptr_t v, std::uintptr_t mask,
                 std::uintptr_t out, std::uintptr_t lse, std::int64_t B, std::int64_t H,
                 std::int64_t Tq, std::int64_t Tk, std::int64_t dh, std::int64_t half_window,
                 double scale, int dtype) {
  const auto* m = as_ptr<const std::uint8_t>(mask);
  switch (to_dtype(dtype)) {
    case DType::Float32:
      forward_impl(as_ptr<const float>(q), as_ptr<const float>(k), as_ptr<const float>(v), m,
                   as_ptr<float>(out), as_ptr<float>(lse), B, H, Tq, Tk, dh, half_window,
                   static_cast<float>(scale));
      break;
    case DType::Float64:
      forward_impl(as_ptr<const double>(q), as_ptr<const double>(k), as_ptr<const double>(v), m,
                   as_ptr<double>(out), as_ptr<double>(lse), B, H, Tq, Tk, dh, half_window,
                   scale);
      break;
    default:
      throw std::invalid_argument("attention_forward (cpu): dtype must be float32 or float64");
  }
}

void backward_cpu(std::uintptr_t q, std::uintptr_t k, std::uintptr_t v, std::uintptr_t mask,
                  std::uintptr_t out, std::uintptr_t dout, std::uintptr_t lse, std::uintptr_t dq,
                  std::uintptr_t dk, std::uintptr_t dv, std::int64_t B, std::int64_t H,
                  std::int64_t Tq, std::int64_t Tk, std::int64_t dh, std::int64_t half_window,
                  double scale, int dtype) {
  const auto* m = as_ptr<const std::uint8_t>(mask);
  switch (to_dtype(dtype)) {
    case DType::Float32:
      backward_impl(as_ptr<const float>(q), as_ptr<const float>(k), as_ptr<const float>(v), m,
                    as_ptr<const float>(out), as_ptr<const float>(dout), as_ptr<const float>(lse),
                    as_ptr<float>(dq), as_ptr<float>(dk), as_ptr<float>(dv), B, H, Tq, Tk, dh,
                    half_window, static_cast<float>(scale));
      break;
    case DType::Float64:
      backward_impl(as_ptr<const double>(q), as_ptr<const double>(k), as_ptr<const double>(v), m,
                    as_ptr<const double>(out), as_ptr<const double>(dout),
                    as_ptr<const double>(lse), as_ptr<double>(dq), as_ptr<double>(dk),
                    as_ptr<double>(dv), B, H, Tq, Tk, dh, half_window, scale);
      break;
    default:
      throw std::invalid_argument("attention_backward (cpu): dtype must be float32 or float64");
  }
}

}  // namespace signbench::attention
