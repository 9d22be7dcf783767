// Small portable building blocks for the fp32 CPU kernels (sst, attention, gated_fusion):
// a register-blocked GEMM micro-kernel and a vectorised exp, written with GCC/Clang vector
// extensions so the compiler maps them onto whatever SIMD the function is compiled for.
//
// ISA: the extension is built for plain x86-64 (no -march=native; it must load on any x86-64
// machine). Hot entry points are therefore compiled several times with SIGNBENCH_CPU_CLONES
// (function multiversioning: AVX-512, AVX2+FMA, baseline) and the loader picks the best clone
// for the running CPU (ifunc). Everything here is `always_inline`, so it is compiled into each
// clone with that clone's ISA. On other architectures / compilers the macro is empty and the same
// code compiles to the baseline SIMD (the vector types are then split by the compiler).
//
// Layout convention for gemm_acc: C (M x Np) += A (M x K) * B (K x Np), Np a multiple of kNR
// (callers pad B and C columns with zeros); A is addressed with a row stride and a column stride
// (so a transposed operand needs no copy); B and C are row-major with leading dimensions.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && defined(__linux__)
#define SIGNBENCH_CPU_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define SIGNBENCH_HAS_CLONES 1
#else
#define SIGNBENCH_CPU_CLONES
#define SIGNBENCH_HAS_CLONES 0
#endif

#define SIGNBENCH_INLINE inline __attribute__((always_inline))

namespace signbench::tile {

// fp32 vectors: v16 is one AVX-512 register, v8 one AVX2 register (two SSE registers). Each
// clone must use the type that fits its registers: a v16 in an AVX2 clone is lowered through the
// stack (every broadcast and FMA spilled), which made the AVX2 kernels 5-10x slower than the
// AVX-512 ones. The wide paths (`wide_registers()`) use v16, the others v8.
typedef float v16 __attribute__((vector_size(64), aligned(4)));
typedef std::int32_t vi16 __attribute__((vector_size(64), aligned(4)));
typedef float v8 __attribute__((vector_size(32), aligned(4)));
typedef std::int32_t vi8 __attribute__((vector_size(32), aligned(4)));

constexpr std::int64_t kNR = 32;  // micro-tile columns (2 x v16 or 4 x v8)

SIGNBENCH_INLINE std::int64_t round_up(std::int64_t x, std::int64_t m) {
  return (x + m - 1) / m * m;
}

// Vector values never cross a function boundary (no AVX-512 ABI concerns). Loads / stores go
// through memcpy (compiled to one unaligned move): a template argument drops the typedefs'
// aligned(4), so a dereference would assume natural alignment.
template <typename V>
SIGNBENCH_INLINE V vload(const float* p) {
  V x;
  std::memcpy(&x, p, sizeof(V));
  return x;
}
template <typename V>
SIGNBENCH_INLINE void vstore(float* p, V x) {
  std::memcpy(p, &x, sizeof(V));
}

// C[0:MR, 0:32] += sum_k A[i*ars + k*acs] * B[k*ldb + 0:32], with 32 / lanes(V) vectors per row.
template <int MR, typename V>
SIGNBENCH_INLINE void micro(std::int64_t K, const float* __restrict__ A, std::int64_t ars,
                            std::int64_t acs, const float* __restrict__ B, std::int64_t ldb,
                            float* __restrict__ C, std::int64_t ldc) {
  constexpr int L = sizeof(V) / sizeof(float);
  constexpr int NV = kNR / L;
  V acc[MR][NV];
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NV; ++j) acc[i][j] = vload<V>(C + i * ldc + j * L);
  }
  for (std::int64_t k = 0; k < K; ++k) {
    V b[NV];
    for (int j = 0; j < NV; ++j) b[j] = vload<V>(B + k * ldb + j * L);
    const float* a = A + k * acs;
    for (int i = 0; i < MR; ++i) {
      const V ai = V{} + a[i * ars];
      for (int j = 0; j < NV; ++j) acc[i][j] += ai * b[j];
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NV; ++j) vstore<V>(C + i * ldc + j * L, acc[i][j]);
  }
}

// Rows per micro-tile: 12 x 32 in v16 (24 accumulators) fits AVX-512's 32 registers; with 16
// registers (AVX2) 2 x 32 in v8 (8 accumulators) avoids spilling. Decided once per process.
inline bool wide_registers() {
#if SIGNBENCH_HAS_CLONES
  static const bool wide = __builtin_cpu_supports("avx512f");
  return wide;
#else
  return false;
#endif
}

// C (M x Np) += A (M x K) B (K x Np); Np % kNR == 0.
SIGNBENCH_INLINE void gemm_acc(std::int64_t M, std::int64_t Np, std::int64_t K,
                               const float* A, std::int64_t ars, std::int64_t acs,
                               const float* B, std::int64_t ldb, float* C, std::int64_t ldc,
                               bool wide) {
  for (std::int64_t j = 0; j < Np; j += kNR) {
    std::int64_t i = 0;
    if (wide) {
      for (; i + 12 <= M; i += 12) {
        micro<12, v16>(K, A + i * ars, ars, acs, B + j, ldb, C + i * ldc + j, ldc);
      }
      if (i + 8 <= M) {
        micro<8, v16>(K, A + i * ars, ars, acs, B + j, ldb, C + i * ldc + j, ldc);
        i += 8;
      }
      if (i + 4 <= M) {
        micro<4, v16>(K, A + i * ars, ars, acs, B + j, ldb, C + i * ldc + j, ldc);
        i += 4;
      }
    }
    if (wide) {
      for (; i + 2 <= M; i += 2) {
        micro<2, v16>(K, A + i * ars, ars, acs, B + j, ldb, C + i * ldc + j, ldc);
      }
      if (i < M) micro<1, v16>(K, A + i * ars, ars, acs, B + j, ldb, C + i * ldc + j, ldc);
    } else {
      for (; i + 2 <= M; i += 2) {
        micro<2, v8>(K, A + i * ars, ars, acs, B + j, ldb, C + i * ldc + j, ldc);
      }
      if (i < M) micro<1, v8>(K, A + i * ars, ars, acs, B + j, ldb, C + i * ldc + j, ldc);
    }
  }
}

// out[0:L] = exp(in[0:L]), L = lanes(V) (Cephes expf: range reduction by ln 2, degree-6
// polynomial, 2^n through the exponent bits); max relative error ~2 ulp. exp(-inf) and results
// below the fp32 normal range give 0, overflow gives +inf, NaN stays NaN. in may equal out.
template <typename V, typename VI>
SIGNBENCH_INLINE void vexp(const float* in, float* out) {
  const V x = vload<V>(in);
  const V zero = V{} + 0.0f, one = V{} + 1.0f;
  const V hi = V{} + 88.3762626647949f, lo = V{} + -87.3365447504f;
  const V inf = V{} + std::numeric_limits<float>::infinity();
  V xc = x > hi ? hi : x;  // NaN compares false: kept
  xc = xc < lo ? lo : xc;
  const V fx = xc * 1.44269504088896341f + 0.5f;
  const VI t = __builtin_convertvector(fx, VI);
  V tf = __builtin_convertvector(t, V);
  tf = tf > fx ? tf - one : tf;  // floor
  xc = xc - tf * 0.693359375f;
  xc = xc - tf * -2.12194440e-4f;
  V y = V{} + 1.9875691500e-4f;
  y = y * xc + 1.3981999507e-3f;
  y = y * xc + 8.3334519073e-3f;
  y = y * xc + 4.1665795894e-2f;
  y = y * xc + 1.6666665459e-1f;
  y = y * xc + 5.0000001201e-1f;
  y = y * (xc * xc) + xc + one;
  const VI n = __builtin_convertvector(tf, VI);
  const VI bits = (n + 127) << 23;
  V pow2n;
  std::memcpy(&pow2n, &bits, sizeof(pow2n));
  y = y * pow2n;
  y = x < lo ? zero : y;
  y = x > hi ? inf : y;
  vstore<V>(out, y);
}

template <typename V, typename VI>
SIGNBENCH_INLINE void exp_inplace_as(float* x, std::int64_t n) {
  constexpr std::int64_t L = sizeof(V) / sizeof(float);
  std::int64_t i = 0;
  for (; i + L <= n; i += L) vexp<V, VI>(x + i, x + i);
  if (i < n) {
    float buf[L] = {0};
    for (std::int64_t k = i; k < n; ++k) buf[k - i] = x[k];
    vexp<V, VI>(buf, buf);
    for (std::int64_t k = i; k < n; ++k) x[k] = buf[k - i];
  }
}

// x[i] = exp(x[i]) for i < n, in the vector width that fits the running clone's registers.
SIGNBENCH_INLINE void exp_inplace(float* x, std::int64_t n) {
  if (wide_registers()) {
    exp_inplace_as<v16, vi16>(x, n);
  } else {
    exp_inplace_as<v8, vi8>(x, n);
  }
}

}  // namespace signbench::tile
