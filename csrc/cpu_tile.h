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

// 16 fp32 lanes (one AVX-512 register, two AVX2 registers, four SSE registers); aligned(4) so
// loads and stores through it are unaligned-safe.
typedef float v16 __attribute__((vector_size(64), aligned(4)));
typedef std::int32_t vi16 __attribute__((vector_size(64), aligned(4)));

constexpr std::int64_t kNR = 32;  // micro-tile columns (2 x v16)

SIGNBENCH_INLINE std::int64_t round_up(std::int64_t x, std::int64_t m) {
  return (x + m - 1) / m * m;
}

// Vector values never cross a function boundary (no AVX-512 ABI concerns): loads / stores are
// plain dereferences through the unaligned vector type.
#define SIGNBENCH_LOAD16(p) (*reinterpret_cast<const ::signbench::tile::v16*>(p))
#define SIGNBENCH_STORE16(p) (*reinterpret_cast<::signbench::tile::v16*>(p))

// C[0:MR, 0:32] += sum_k A[i*ars + k*acs] * B[k*ldb + 0:32].
template <int MR>
SIGNBENCH_INLINE void micro(std::int64_t K, const float* __restrict__ A, std::int64_t ars,
                            std::int64_t acs, const float* __restrict__ B, std::int64_t ldb,
                            float* __restrict__ C, std::int64_t ldc) {
  v16 acc0[MR], acc1[MR];
  for (int i = 0; i < MR; ++i) {
    acc0[i] = SIGNBENCH_LOAD16(C + i * ldc);
    acc1[i] = SIGNBENCH_LOAD16(C + i * ldc + 16);
  }
  for (std::int64_t k = 0; k < K; ++k) {
    const v16 b0 = SIGNBENCH_LOAD16(B + k * ldb);
    const v16 b1 = SIGNBENCH_LOAD16(B + k * ldb + 16);
    const float* a = A + k * acs;
    for (int i = 0; i < MR; ++i) {
      const float ai = a[i * ars];
      acc0[i] += ai * b0;
      acc1[i] += ai * b1;
    }
  }
  for (int i = 0; i < MR; ++i) {
    SIGNBENCH_STORE16(C + i * ldc) = acc0[i];
    SIGNBENCH_STORE16(C + i * ldc + 16) = acc1[i];
  }
}

// Rows per micro-tile: 12 x 32 (24 accumulators) fits AVX-512's 32 registers; with 16 registers
// (AVX2 / SSE) 2 x 32 avoids spilling. Decided once per process.
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
        micro<12>(K, A + i * ars, ars, acs, B + j, ldb, C + i * ldc + j, ldc);
      }
      if (i + 8 <= M) {
        micro<8>(K, A + i * ars, ars, acs, B + j, ldb, C + i * ldc + j, ldc);
        i += 8;
      }
      if (i + 4 <= M) {
        micro<4>(K, A + i * ars, ars, acs, B + j, ldb, C + i * ldc + j, ldc);
        i += 4;
      }
    }
    for (; i + 2 <= M; i += 2) {
      micro<2>(K, A + i * ars, ars, acs, B + j, ldb, C + i * ldc + j, ldc);
    }
    if (i < M) micro<1>(K, A + i * ars, ars, acs, B + j, ldb, C + i * ldc + j, ldc);
  }
}

// out[0:16] = exp(in[0:16]) (Cephes expf: range reduction by ln 2, degree-6 polynomial, 2^n
// through the exponent bits); max relative error ~2 ulp. exp(-inf) and results below the fp32
// normal range give 0, overflow gives +inf, NaN stays NaN. in may equal out.
SIGNBENCH_INLINE void vexp16(const float* in, float* out) {
  const v16 x = SIGNBENCH_LOAD16(in);
  const v16 zero = v16{} + 0.0f, one = v16{} + 1.0f;
  const v16 hi = v16{} + 88.3762626647949f, lo = v16{} + -87.3365447504f;
  const v16 inf = v16{} + std::numeric_limits<float>::infinity();
  v16 xc = x > hi ? hi : x;  // NaN compares false: kept
  xc = xc < lo ? lo : xc;
  const v16 fx = xc * 1.44269504088896341f + 0.5f;
  const vi16 t = __builtin_convertvector(fx, vi16);
  v16 tf = __builtin_convertvector(t, v16);
  tf = tf > fx ? tf - one : tf;  // floor
  xc = xc - tf * 0.693359375f;
  xc = xc - tf * -2.12194440e-4f;
  v16 y = v16{} + 1.9875691500e-4f;
  y = y * xc + 1.3981999507e-3f;
  y = y * xc + 8.3334519073e-3f;
  y = y * xc + 4.1665795894e-2f;
  y = y * xc + 1.6666665459e-1f;
  y = y * xc + 5.0000001201e-1f;
  y = y * (xc * xc) + xc + one;
  const vi16 n = __builtin_convertvector(tf, vi16);
  const vi16 bits = (n + 127) << 23;
  v16 pow2n;
  std::memcpy(&pow2n, &bits, sizeof(pow2n));
  y = y * pow2n;
  y = x < lo ? zero : y;
  y = x > hi ? inf : y;
  SIGNBENCH_STORE16(out) = y;
}

// x[i] = exp(x[i]) for i < n.
SIGNBENCH_INLINE void exp_inplace(float* x, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) vexp16(x + i, x + i);
  if (i < n) {
    float buf[16] = {0};
    for (std::int64_t k = i; k < n; ++k) buf[k - i] = x[k];
    vexp16(buf, buf);
    for (std::int64_t k = i; k < n; ++k) x[k] = buf[k - i];
  }
}

}  // namespace signbench::tile
