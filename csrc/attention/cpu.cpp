// masked_attention on CPU, no Tq x Tk buffer ever exists.
//
// fp32 (the hot path) is FlashAttention-2 on tiles: a task owns (b, h, a block of kBM query
// rows); the valid keys it can see (key padding mask, window band) are gathered once into
// compact, zero-padded tiles -- K transposed into (d_h, kBN) panels so that S = Q Kᵀ is a
// register-blocked micro-GEMM whose inner loop runs over contiguous keys, V as (keys, d_h)
// rows for O += P V -- then key blocks of kBN stream through an online softmax (running max m,
// sum l, rescaled accumulator; vectorised exp). Masked keys are never touched, so a NaN in a
// masked key / value cannot reach any row. OpenMP over (b, h, query block). Backward: one task
// per (b, h) (it owns that head's dK / dV accumulators, so threads never share one); per query
// block and key block it recomputes P = exp(S - lse) and runs the five small GEMMs dV += Pᵀ dO,
// dP = dO Vᵀ, dS = P (dP - D), dK += dSᵀ Q, dQ += dS K. With a window only the key blocks that
// intersect the band are visited. The GEMMs come from csrc/cpu_tile.h, compiled for AVX-512 /
// AVX2 / baseline and picked at load time.
//
// The fp32 kernels also take the heads-interleaved layout (B, T, H, d_h) -- what splitting the
// heads of a (B, T, H * d_h) projection gives -- so the caller needs no transposing copies: a head's
// rows are then H * d_h apart instead of d_h (`Layout`).
//
// fp64 (tests, gradcheck) keeps the simple reference-like loop: one query row at a time with the
// same online softmax, OpenMP over (b, h).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "attention/attention.h"
#include "cpu_tile.h"

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


// ------------------------------------------------------------------------------- fp32 tiles

// Where head (b, h)'s rows lie: row t at base(bh) + t * row, the d_h elements of a row contiguous.
struct Layout {
  std::int64_t H, T, dh;
  bool interleaved;  // (B, T, H, d_h) memory, else (B, H, T, d_h)
  std::int64_t row() const { return interleaved ? H * dh : dh; }
  std::int64_t base(std::int64_t bh) const {
    const std::int64_t b = bh / H, h = bh % H;
    return interleaved ? b * T * H * dh + h * dh : bh * T * dh;
  }
};

constexpr std::int64_t kBM = 48;  // query rows per block (a multiple of the 12-row micro-tile)
constexpr std::int64_t kBN = 64;  // keys per block (multiple of tile::kNR)

// Indices (ascending) of the keys of batch row b that are valid and lie in [lo, hi).
inline void valid_keys(const std::uint8_t* mb, std::int64_t lo, std::int64_t hi,
                       std::vector<std::int32_t>& idx) {
  idx.clear();
  for (std::int64_t j = lo; j < hi; ++j) {
    if (!mb || mb[j]) idx.push_back(static_cast<std::int32_t>(j));
  }
}

// Gather the rows idx[0:nk) of a head (rows `rs` apart, dh wide), times `mul`, transposed into
// one (dh, kBN) panel per key block (zero padded).
SIGNBENCH_INLINE void pack_keys(const float* src, std::int64_t rs, const std::int32_t* idx,
                                std::int64_t nk, std::int64_t dh, float mul, float* panels) {
  const std::int64_t nkb = (nk + kBN - 1) / kBN;
  std::fill(panels, panels + nkb * dh * kBN, 0.0f);
  for (std::int64_t jj = 0; jj < nk; ++jj) {
    const float* row = src + static_cast<std::int64_t>(idx[jj]) * rs;
    float* p = panels + (jj / kBN) * dh * kBN + (jj % kBN);
    for (std::int64_t d = 0; d < dh; ++d) p[d * kBN] = row[d] * mul;
  }
}

// The same rows, row-major (nk, dhp) with zero padded columns.
SIGNBENCH_INLINE void pack_rows(const float* src, std::int64_t rs, const std::int32_t* idx,
                                std::int64_t nk, std::int64_t dh, std::int64_t dhp, float* rows) {
  for (std::int64_t jj = 0; jj < nk; ++jj) {
    const float* row = src + static_cast<std::int64_t>(idx[jj]) * rs;
    float* r = rows + jj * dhp;
    std::copy(row, row + dh, r);
    std::fill(r + dh, r + dhp, 0.0f);
  }
}

// Which of the keys idx[0:nk) can the query rows [i0, i1) see: [first, last) compact indices.
inline Range band(const std::vector<std::int32_t>& idx, std::int64_t i0, std::int64_t i1,
                  std::int64_t half_window) {
  if (half_window < 0) return {0, static_cast<std::int64_t>(idx.size())};
  const auto lo = std::lower_bound(idx.begin(), idx.end(), i0 - half_window);
  const auto hi = std::upper_bound(idx.begin(), idx.end(), i1 - 1 + half_window);
  return {lo - idx.begin(), hi - idx.begin()};
}

SIGNBENCH_CPU_CLONES
void forward_f32(const float* q, const float* k, const float* v, const std::uint8_t* mask,
                 float* out, float* lse, std::int64_t B, std::int64_t H, std::int64_t Tq,
                 std::int64_t Tk, std::int64_t dh, std::int64_t half_window, float scale,
                 bool interleaved) {
  const Layout lq{H, Tq, dh, interleaved}, lk{H, Tk, dh, interleaved};
  const std::int64_t qrs = lq.row(), krs = lk.row();
  const std::int64_t dhp = tile::round_up(dh, tile::kNR);
  const std::int64_t nqb = (Tq + kBM - 1) / kBM;
  // One task per (b, h) when there are enough heads to keep every thread busy (the keys are then
  // packed once per head), else one task per (b, h, query block).
  int threads = 1;
#ifdef _OPENMP
  threads = omp_get_max_threads();
#endif
  const std::int64_t per_task = B * H >= 4 * static_cast<std::int64_t>(threads) ? nqb : 1;
  const std::int64_t groups = (nqb + per_task - 1) / per_task;
  const bool wide = tile::wide_registers();
  const float neg_inf = -std::numeric_limits<float>::infinity();
#pragma omp parallel
  {
    std::vector<std::int32_t> idx;
    std::vector<float> kt, vc;
    std::vector<float> s(static_cast<std::size_t>(kBM * kBN));
    std::vector<float> acc(static_cast<std::size_t>(kBM * dhp));
    std::vector<float> m(kBM), l(kBM);
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t task = 0; task < B * H * groups; ++task) {
      const std::int64_t bh = task / groups;
      const std::int64_t qb0 = (task % groups) * per_task;
      const std::int64_t qb1 = std::min(nqb, qb0 + per_task);
      const std::int64_t b = bh / H;
      const std::uint8_t* mb = mask ? mask + b * Tk : nullptr;
      // Keys the task's query rows can see (the window band), valid under the mask; packed once.
      std::int64_t lo = 0, hi = Tk;
      if (half_window >= 0) {
        lo = std::max<std::int64_t>(0, qb0 * kBM - half_window);
        hi = std::min<std::int64_t>(Tk, std::min(Tq, qb1 * kBM) + half_window);
      }
      valid_keys(mb, lo, hi, idx);
      const std::int64_t nk = static_cast<std::int64_t>(idx.size());
      const std::int64_t nkb = (nk + kBN - 1) / kBN;
      kt.resize(static_cast<std::size_t>(std::max<std::int64_t>(1, nkb * dh * kBN)));
      vc.resize(static_cast<std::size_t>(std::max<std::int64_t>(1, nk * dhp)));
      pack_keys(k + lk.base(bh), krs, idx.data(), nk, dh, scale, kt.data());  // S comes scaled
      pack_rows(v + lk.base(bh), krs, idx.data(), nk, dh, dhp, vc.data());
      for (std::int64_t i0 = qb0 * kBM; i0 < std::min(Tq, qb1 * kBM); i0 += kBM) {
        const std::int64_t rows = std::min(kBM, Tq - i0);
        const float* qb = q + lq.base(bh) + i0 * qrs;
        std::fill(acc.begin(), acc.begin() + rows * dhp, 0.0f);
        std::fill(m.begin(), m.end(), neg_inf);
        std::fill(l.begin(), l.end(), 0.0f);
        const Range kr = band(idx, i0, i0 + rows, half_window);
        for (std::int64_t kb = kr.lo / kBN; kb * kBN < kr.hi; ++kb) {
          const std::int64_t kc = std::min(kBN, nk - kb * kBN);
          const std::int32_t* kidx = idx.data() + kb * kBN;
          std::fill(s.begin(), s.begin() + rows * kBN, 0.0f);
          tile::gemm_acc(rows, kBN, dh, qb, qrs, 1, kt.data() + kb * dh * kBN, kBN, s.data(), kBN,
                         wide);
          // Keys past the end of the list, or outside some row's window, get -inf.
          const bool partial = kc < kBN || half_window >= 0;
          for (std::int64_t r = 0; r < rows; ++r) {
            float* __restrict__ sr = s.data() + r * kBN;
            if (half_window >= 0) {
              const std::int64_t i = i0 + r;
              for (std::int64_t j = 0; j < kBN; ++j) {
                bool ok = j < kc;
                if (ok) {
                  const std::int64_t diff = i - kidx[j];
                  ok = diff <= half_window && diff >= -half_window;
                }
                if (!ok) sr[j] = neg_inf;
              }
            } else if (partial) {
              std::fill(sr + kc, sr + kBN, neg_inf);
            }
            float mx = neg_inf;
#pragma omp simd reduction(max : mx)
            for (std::int64_t j = 0; j < kBN; ++j) mx = sr[j] > mx ? sr[j] : mx;  // NaN: not max
            const float m_new = std::max(m[r], mx);
            // No visible key so far: shift by 0 (p = exp(-inf) = 0, NaN stays NaN).
            const float shift = m_new == neg_inf ? 0.0f : m_new;
#pragma omp simd
            for (std::int64_t j = 0; j < kBN; ++j) sr[j] -= shift;
            tile::exp_inplace(sr, kBN);
            float ps = 0.0f;
#pragma omp simd reduction(+ : ps)
            for (std::int64_t j = 0; j < kBN; ++j) ps += sr[j];
            const float corr = std::exp(m[r] - shift);  // 0 at the start (m = -inf)
            l[r] = l[r] * corr + ps;
            if (corr != 1.0f) {
              float* __restrict__ ar = acc.data() + r * dhp;
#pragma omp simd
              for (std::int64_t d = 0; d < dhp; ++d) ar[d] *= corr;
            }
            m[r] = m_new;
          }
          tile::gemm_acc(rows, dhp, kc, s.data(), kBN, 1, vc.data() + kb * kBN * dhp, dhp,
                         acc.data(), dhp, wide);
        }
        for (std::int64_t r = 0; r < rows; ++r) {
          const std::int64_t row = bh * Tq + i0 + r;
          float* oi = out + lq.base(bh) + (i0 + r) * qrs;
          const float* ar = acc.data() + r * dhp;
          if (l[r] > 0 || std::isnan(l[r])) {
            const float inv = 1.0f / l[r];
            for (std::int64_t d = 0; d < dh; ++d) oi[d] = ar[d] * inv;
            lse[row] = m[r] + std::log(l[r]);
          } else {
            for (std::int64_t d = 0; d < dh; ++d) oi[d] = 0;
            lse[row] = std::numeric_limits<float>::infinity();
          }
        }
      }  // query blocks of the task
    }
  }
}

SIGNBENCH_CPU_CLONES
void backward_f32(const float* q, const float* k, const float* v, const std::uint8_t* mask,
                  const float* out, const float* dout, const float* lse, float* dq, float* dk,
                  float* dv, std::int64_t B, std::int64_t H, std::int64_t Tq, std::int64_t Tk,
                  std::int64_t dh, std::int64_t half_window, float scale, bool interleaved) {
  const Layout lq{H, Tq, dh, interleaved}, lk{H, Tk, dh, interleaved};
  const std::int64_t qrs = lq.row(), krs = lk.row();
  const std::int64_t dhp = tile::round_up(dh, tile::kNR);
  const bool wide = tile::wide_registers();
#pragma omp parallel
  {
    std::vector<std::int32_t> idx;
    std::vector<float> kt, vt, kc_rows, dkc, dvc;
    std::vector<float> qp(static_cast<std::size_t>(kBM * dhp));
    std::vector<float> dop(static_cast<std::size_t>(kBM * dhp));
    std::vector<float> dqa(static_cast<std::size_t>(kBM * dhp));
    std::vector<float> p(static_cast<std::size_t>(kBM * kBN));
    std::vector<float> ds(static_cast<std::size_t>(kBM * kBN));
    std::vector<float> delta(kBM), L(kBM);
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t bh = 0; bh < B * H; ++bh) {
      const std::int64_t b = bh / H;
      const std::uint8_t* mb = mask ? mask + b * Tk : nullptr;
      valid_keys(mb, 0, Tk, idx);
      const std::int64_t nk = static_cast<std::int64_t>(idx.size());
      const std::int64_t nkb = (nk + kBN - 1) / kBN;
      const auto panel_size = static_cast<std::size_t>(std::max<std::int64_t>(1, nkb * dh * kBN));
      const auto rows_size = static_cast<std::size_t>(std::max<std::int64_t>(1, nkb * kBN * dhp));
      kt.resize(panel_size);
      vt.resize(panel_size);
      kc_rows.resize(rows_size);
      dkc.assign(rows_size, 0.0f);
      dvc.assign(rows_size, 0.0f);
      const float* kb_src = k + lk.base(bh);
      const float* vb_src = v + lk.base(bh);
      pack_keys(kb_src, krs, idx.data(), nk, dh, scale, kt.data());  // S comes out scaled
      pack_keys(vb_src, krs, idx.data(), nk, dh, 1.0f, vt.data());
      pack_rows(kb_src, krs, idx.data(), nk, dh, dhp, kc_rows.data());
      for (std::int64_t i0 = 0; i0 < Tq; i0 += kBM) {
        const std::int64_t rows = std::min(kBM, Tq - i0);
        const std::int64_t row0 = bh * Tq + i0;  // lse rows
        const std::int64_t at0 = lq.base(bh) + i0 * qrs;  // q / out / dout / dq rows
        for (std::int64_t r = 0; r < rows; ++r) {
          const float* qi = q + at0 + r * qrs;
          const float* doi = dout + at0 + r * qrs;
          const float* oi = out + at0 + r * qrs;
          float* qr = qp.data() + r * dhp;
          float* dr = dop.data() + r * dhp;
          float dsum = 0.0f;
          for (std::int64_t d = 0; d < dh; ++d) {
            qr[d] = qi[d];
            dr[d] = doi[d];
            dsum += doi[d] * oi[d];
          }
          std::fill(qr + dh, qr + dhp, 0.0f);
          std::fill(dr + dh, dr + dhp, 0.0f);
          delta[r] = dsum;  // D_i = rowsum(dO ⊙ O)
          L[r] = lse[row0 + r];
        }
        std::fill(dqa.begin(), dqa.begin() + rows * dhp, 0.0f);
        const Range kr = band(idx, i0, i0 + rows, half_window);
        if (kr.hi <= kr.lo) {
          for (std::int64_t r = 0; r < rows; ++r) {
            std::fill(dq + at0 + r * qrs, dq + at0 + r * qrs + dh, 0.0f);
          }
          continue;
        }
        for (std::int64_t kb = kr.lo / kBN; kb * kBN < kr.hi; ++kb) {
          const std::int64_t kc = std::min(kBN, nk - kb * kBN);
          const std::int32_t* kidx = idx.data() + kb * kBN;
          std::fill(p.begin(), p.begin() + rows * kBN, 0.0f);
          std::fill(ds.begin(), ds.begin() + rows * kBN, 0.0f);
          tile::gemm_acc(rows, kBN, dh, qp.data(), dhp, 1, kt.data() + kb * dh * kBN, kBN,
                         p.data(), kBN, wide);
          tile::gemm_acc(rows, kBN, dh, dop.data(), dhp, 1, vt.data() + kb * dh * kBN, kBN,
                         ds.data(), kBN, wide);
          const bool partial = kc < kBN || half_window >= 0;
          for (std::int64_t r = 0; r < rows; ++r) {
            float* __restrict__ pr = p.data() + r * kBN;
            float* __restrict__ dsr = ds.data() + r * kBN;
            const float Lr = L[r];
            if (std::isinf(Lr) && Lr > 0) {  // no valid key: p = 0 everywhere
              std::fill(pr, pr + kBN, 0.0f);
              std::fill(dsr, dsr + kBN, 0.0f);
              continue;
            }
#pragma omp simd
            for (std::int64_t j = 0; j < kBN; ++j) pr[j] -= Lr;
            if (partial) {
              const std::int64_t i = i0 + r;
              for (std::int64_t j = 0; j < kBN; ++j) {
                bool ok = j < kc;
                if (ok && half_window >= 0) {
                  const std::int64_t diff = i - kidx[j];
                  ok = diff <= half_window && diff >= -half_window;
                }
                if (!ok) pr[j] = -std::numeric_limits<float>::infinity();
              }
            }
            tile::exp_inplace(pr, kBN);
            const float dr = delta[r];
#pragma omp simd
            for (std::int64_t j = 0; j < kBN; ++j) {
              dsr[j] = pr[j] == 0.0f ? 0.0f : pr[j] * (dsr[j] - dr);
            }
          }
          float* dv_blk = dvc.data() + kb * kBN * dhp;
          float* dk_blk = dkc.data() + kb * kBN * dhp;
          tile::gemm_acc(kc, dhp, rows, p.data(), 1, kBN, dop.data(), dhp, dv_blk, dhp, wide);
          tile::gemm_acc(kc, dhp, rows, ds.data(), 1, kBN, qp.data(), dhp, dk_blk, dhp, wide);
          tile::gemm_acc(rows, dhp, kc, ds.data(), kBN, 1, kc_rows.data() + kb * kBN * dhp, dhp,
                         dqa.data(), dhp, wide);
        }
        for (std::int64_t r = 0; r < rows; ++r) {
          float* dqi = dq + at0 + r * qrs;
          const float* ar = dqa.data() + r * dhp;
          for (std::int64_t d = 0; d < dh; ++d) dqi[d] = ar[d] * scale;
        }
      }
      float* dkb = dk + lk.base(bh);
      float* dvb = dv + lk.base(bh);
      for (std::int64_t j = 0; j < Tk; ++j) {  // masked keys get 0
        std::fill(dkb + j * krs, dkb + j * krs + dh, 0.0f);
        std::fill(dvb + j * krs, dvb + j * krs + dh, 0.0f);
      }
      for (std::int64_t jj = 0; jj < nk; ++jj) {
        const std::int64_t j = idx[static_cast<std::size_t>(jj)];
        const float* dks = dkc.data() + jj * dhp;
        const float* dvs = dvc.data() + jj * dhp;
        for (std::int64_t d = 0; d < dh; ++d) {
          dkb[j * krs + d] = dks[d] * scale;
          dvb[j * krs + d] = dvs[d];
        }
      }
    }
  }
}
}  // namespace

void forward_cpu(std::uintptr_t q, std::uintptr_t k, std::uintptr_t v, std::uintptr_t mask,
                 std::uintptr_t out, std::uintptr_t lse, std::int64_t B, std::int64_t H,
                 std::int64_t Tq, std::int64_t Tk, std::int64_t dh, std::int64_t half_window,
                 double scale, int dtype, bool heads_interleaved) {
  const auto* m = as_ptr<const std::uint8_t>(mask);
  if (heads_interleaved && to_dtype(dtype) != DType::Float32) {
    throw std::invalid_argument("attention_forward (cpu): the heads-interleaved layout is fp32 only");
  }
  switch (to_dtype(dtype)) {
    case DType::Float32:
      forward_f32(as_ptr<const float>(q), as_ptr<const float>(k), as_ptr<const float>(v), m,
                  as_ptr<float>(out), as_ptr<float>(lse), B, H, Tq, Tk, dh, half_window,
                  static_cast<float>(scale), heads_interleaved);
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
                  double scale, int dtype, bool heads_interleaved) {
  const auto* m = as_ptr<const std::uint8_t>(mask);
  if (heads_interleaved && to_dtype(dtype) != DType::Float32) {
    throw std::invalid_argument(
        "attention_backward (cpu): the heads-interleaved layout is fp32 only");
  }
  switch (to_dtype(dtype)) {
    case DType::Float32:
      backward_f32(as_ptr<const float>(q), as_ptr<const float>(k), as_ptr<const float>(v), m,
                    as_ptr<const float>(out), as_ptr<const float>(dout), as_ptr<const float>(lse),
                    as_ptr<float>(dq), as_ptr<float>(dk), as_ptr<float>(dv), B, H, Tq, Tk, dh,
                    half_window, static_cast<float>(scale), heads_interleaved);
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
