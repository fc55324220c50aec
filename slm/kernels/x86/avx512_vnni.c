/*
 * avx512_vnni.c: the AVX512-VNNI level and the AVX512-BF16 level.
 *
 * VNNI: the tmpl256.h dots and tiles with vpdpbusd on ymm (AVX512-VL encoding, so all 32 vector
 * registers and bigger tiles): one instruction per 32 multiply-adds instead of maddubs + madd,
 * and Q8_0 without the sign trick (weights offset by 128, corrected in the accumulator).
 * BF16: vdpbf16ps for BF16 dots, in functions with a target attribute so nothing else in this
 * object uses BF16 instructions. Its products are exact (8-bit significands) and sums are fp32;
 * it treats subnormal inputs as zero, which the checkasm tolerance covers.
 */
#include <immintrin.h>

#include "slm/kernels/impl.h"

#define SFX _vnni
#define T_VNNI 1
#define T_NR 4
#define T_NC 4
#define T_NCK 2
#include "slm/kernels/x86/tmpl256.h"

/* ---------------------------------------------------------------- F16 / F32 in zmm */

/*
 * One 16-lane accumulator per pair, 16 columns per FMA (the row end through a masked load: zeros
 * add nothing), one reduction at the end. With a single accumulator chain, 16 columns per 4-cycle
 * FMA latency is what lets a lone F16 dot (decode) outrun DRAM; ymm lanes (tmpl256.h) could not.
 * The order per pair is the same in every tile shape.
 */
static inline __m512 ld16_f16(const char *p, int64_t left) {
  const __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}
static inline __m512 ld16_f32(const char *p, int64_t left) {
  const __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
  return _mm512_maskz_loadu_ps(m, p);
}

#define TILE512(t, ES)                                                                             \
  ALWAYS_INLINE void tile512_##t(const int NR, const int NC, int64_t n, float *y, int64_t ys,      \
                                 const char *w, size_t ws, const char *a, size_t as) {            \
    __m512 acc[4][4];                                                                              \
    UNROLL for (int i = 0; i < NR; i++)                                                            \
      UNROLL for (int j = 0; j < NC; j++) acc[i][j] = _mm512_setzero_ps();                         \
    for (int64_t k = 0; k < n; k += 16) {                                                          \
      __m512 wv[4];                                                                                \
      UNROLL for (int i = 0; i < NR; i++) wv[i] = ld16_##t(w + i * ws + k * ES, n - k);            \
      UNROLL for (int j = 0; j < NC; j++) {                                                        \
        const __m512 av = ld16_##t(a + j * as + k * ES, n - k);                                    \
        UNROLL for (int i = 0; i < NR; i++) acc[i][j] = _mm512_fmadd_ps(wv[i], av, acc[i][j]);     \
      }                                                                                            \
    }                                                                                              \
    UNROLL for (int j = 0; j < NC; j++)                                                            \
      UNROLL for (int i = 0; i < NR; i++) y[j * ys + i] = _mm512_reduce_add_ps(acc[i][j]);         \
  }                                                                                                \
  static void vec_dot512_##t(int64_t n, float *s, const void *w, const void *a) {                 \
    tile512_##t(1, 1, n, s, 0, w, 0, a, 0);                                                        \
  }                                                                                                \
  static void gemm512_##t(int64_t n, int nr, int nc, float *y, int64_t ys, const void *w,         \
                          size_t ws, const void *a, size_t as) {                                   \
    const char *W = w, *A = a;                                                                     \
    int j = 0;                                                                                     \
    for (; j + 4 <= nc; j += 4) {                                                                  \
      int i = 0;                                                                                   \
      for (; i + 4 <= nr; i += 4) tile512_##t(4, 4, n, y + j * ys + i, ys, W + i * ws, ws, A + j * as, as); \
      for (; i < nr; i++) tile512_##t(1, 4, n, y + j * ys + i, ys, W + i * ws, ws, A + j * as, as); \
    }                                                                                              \
    for (; j < nc; j++) {                                                                          \
      int i = 0;                                                                                   \
      for (; i + 4 <= nr; i += 4) tile512_##t(4, 1, n, y + j * ys + i, ys, W + i * ws, ws, A + j * as, as); \
      for (; i < nr; i++) tile512_##t(1, 1, n, y + j * ys + i, ys, W + i * ws, ws, A + j * as, as); \
    }                                                                                              \
  }

TILE512(f16, 2)
TILE512(f32, 4)

/* ---------------------------------------------------------------- x8 (repacked) kernels */

/*
 * Lanes are the 8 rows of a group. Per 4 columns: one 32-byte load of the 8 rows' quants (u8)
 * and one vpdpbusd per activation row against its 4 bytes broadcast from memory. Per block: the
 * zero point (-z * sum of the activation block, from a table made once per call), one cvt and
 * one FMA per activation row with the 8 row scales: the order slm_gemm_x8_ref states, exactly.
 * Up to X8_NC activation rows share each weight load.
 */
#define X8_NC 4
#define X8_MAXNB 2048   /* activation block sums on the stack: n <= 65536 (else the C reference) */

static inline __m256i bcast4(const int8_t *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

/* sum of the 32 int8 of a q8_0 block */
static inline int32_t q8_block_sum(const int8_t *q) {
  const __m256i x = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)q), _mm256_set1_epi8((char)0x80));
  const __m256i s = _mm256_sad_epu8(x, _mm256_setzero_si256());
  __m128i t = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  t = _mm_add_epi64(t, _mm_unpackhi_epi64(t, t));
  return (int32_t)_mm_cvtsi128_si32(t) - 32 * 128;
}

/* 8 chunk vectors (4 columns x 8 rows each) of a legacy block: Q8_0 stored, Q4_0/Q5_0 nibbles */
ALWAYS_INLINE void x8_legacy_chunks(enum slm_type t, const uint8_t *o, __m256i u[8]) {
  if (t == SLM_TYPE_Q8_0) {
    UNROLL for (int c = 0; c < 8; c++) u[c] = _mm256_loadu_si256((const __m256i *)(o + 16 + 32 * c));
    return;
  }
  const uint8_t *q = o + (t == SLM_TYPE_Q5_0 ? 48 : 16);
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  UNROLL for (int c = 0; c < 4; c++) {
    const __m256i x = _mm256_loadu_si256((const __m256i *)(q + 32 * c));
    u[c] = _mm256_and_si256(x, m4);
    u[c + 4] = _mm256_and_si256(_mm256_srli_epi16(x, 4), m4);
  }
  if (t == SLM_TYPE_Q5_0) {
    UNROLL for (int c = 0; c < 8; c++) {
      uint32_t h;
      memcpy(&h, o + 16 + 4 * c, 4);
      u[c] = _mm256_mask_add_epi8(u[c], _cvtu32_mask32(h), u[c], _mm256_set1_epi8(16));
    }
  }
}

ALWAYS_INLINE void x8_legacy(enum slm_type t, const int NC, int64_t nb, int ngroups, float *y, int64_t ys,
                             const uint8_t *w, size_t ws, const uint8_t *a, size_t as) {
  const int zshift = t == SLM_TYPE_Q8_0 ? 7 : t == SLM_TYPE_Q4_0 ? 3 : 4;
  const size_t bsz = t == SLM_TYPE_Q8_0 ? 272 : t == SLM_TYPE_Q4_0 ? 144 : 176;
  int32_t negz[X8_NC][X8_MAXNB];
  UNROLL for (int j = 0; j < NC; j++) {
    const block_q8_0 *ab = (const block_q8_0 *)(a + j * as);
    for (int64_t b = 0; b < nb; b++) negz[j][b] = -q8_block_sum(ab[b].qs) * (1 << zshift);
  }
  for (int g = 0; g < ngroups; g++) {
    const uint8_t *grp = w + (size_t)g * ws;
    __m256 facc[X8_NC];
    UNROLL for (int j = 0; j < NC; j++) facc[j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
      const uint8_t *o = grp + (size_t)b * bsz;
      __m256i u[8], iacc[X8_NC];
      x8_legacy_chunks(t, o, u);
      UNROLL for (int j = 0; j < NC; j++) iacc[j] = _mm256_set1_epi32(negz[j][b]);
      UNROLL for (int c = 0; c < 8; c++)
        UNROLL for (int j = 0; j < NC; j++)
          iacc[j] = _mm256_dpbusd_epi32(iacc[j], u[c], bcast4(((const block_q8_0 *)(a + j * as))[b].qs + 4 * c));
      const __m256 dv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)o));
      UNROLL for (int j = 0; j < NC; j++) {
        const __m256 s = _mm256_mul_ps(dv, _mm256_set1_ps(_cvtsh_ss(((const block_q8_0 *)(a + j * as))[b].d)));
        facc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(iacc[j]), s, facc[j]);
      }
    }
    UNROLL for (int j = 0; j < NC; j++) _mm256_storeu_ps(y + j * ys + 8 * g, facc[j]);
  }
}

ALWAYS_INLINE void x8_q4_K(const int NC, int64_t nb, int ngroups, float *y, int64_t ys, const uint8_t *w,
                           size_t ws, const uint8_t *a, size_t as) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  for (int g = 0; g < ngroups; g++) {
    const uint8_t *grp = w + (size_t)g * ws;
    __m256 facc[X8_NC];
    UNROLL for (int j = 0; j < NC; j++) facc[j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
      const uint8_t *o = grp + (size_t)b * 1184;
      __m256i isum[X8_NC], imin[X8_NC];
      UNROLL for (int j = 0; j < NC; j++) isum[j] = imin[j] = _mm256_setzero_si256();
      UNROLL for (int sb = 0; sb < 8; sb++) {
        const __m256i scv = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(o + 32 + 8 * sb)));
        const __m256i mv = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(o + 96 + 8 * sb)));
        __m256i dot[X8_NC];
        UNROLL for (int j = 0; j < NC; j++) dot[j] = _mm256_setzero_si256();
        UNROLL for (int c = 0; c < 4; c++) {
          const __m256i x = _mm256_loadu_si256((const __m256i *)(o + 160 + 128 * sb + 32 * c));
          const __m256i lo = _mm256_and_si256(x, m4), hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), m4);
          UNROLL for (int j = 0; j < NC; j++) {
            const int8_t *aq = ((const block_q8_K *)(a + j * as))[b].qs + 32 * sb;
            dot[j] = _mm256_dpbusd_epi32(dot[j], lo, bcast4(aq + 4 * c));
            dot[j] = _mm256_dpbusd_epi32(dot[j], hi, bcast4(aq + 16 + 4 * c));
          }
        }
        UNROLL for (int j = 0; j < NC; j++) {
          const int16_t *bs = ((const block_q8_K *)(a + j * as))[b].bsums;
          isum[j] = _mm256_add_epi32(isum[j], _mm256_mullo_epi32(dot[j], scv));
          imin[j] = _mm256_add_epi32(imin[j], _mm256_mullo_epi32(mv, _mm256_set1_epi32(bs[2 * sb] + bs[2 * sb + 1])));
        }
      }
      const __m256 dv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)o));
      const __m256 dmv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(o + 16)));
      UNROLL for (int j = 0; j < NC; j++) {
        const __m256 da = _mm256_set1_ps(((const block_q8_K *)(a + j * as))[b].d);
        facc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[j]), _mm256_mul_ps(da, dv), facc[j]);
        facc[j] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(imin[j]), _mm256_mul_ps(da, dmv), facc[j]);
      }
    }
    UNROLL for (int j = 0; j < NC; j++) _mm256_storeu_ps(y + j * ys + 8 * g, facc[j]);
  }
}

/* bits 4..5 of the 6-bit values of chunk 4h+k, from the hi[h] vector: ((v >> 2k) & 3) << 4 */
ALWAYS_INLINE __m256i q6_hi(__m256i v, int k) {
  const __m256i m = _mm256_set1_epi8(0x30);
  switch (k) {
  case 0: return _mm256_and_si256(_mm256_slli_epi16(v, 4), m);
  case 1: return _mm256_and_si256(_mm256_slli_epi16(v, 2), m);
  case 2: return _mm256_and_si256(v, m);
  default: return _mm256_and_si256(_mm256_srli_epi16(v, 2), m);
  }
}

ALWAYS_INLINE void x8_q6_K(const int NC, int64_t nb, int ngroups, float *y, int64_t ys, const uint8_t *w,
                           size_t ws, const uint8_t *a, size_t as) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  for (int g = 0; g < ngroups; g++) {
    const uint8_t *grp = w + (size_t)g * ws;
    __m256 facc[X8_NC];
    UNROLL for (int j = 0; j < NC; j++) facc[j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
      const uint8_t *o = grp + (size_t)b * 1680;
      __m256i isum[X8_NC];
      UNROLL for (int j = 0; j < NC; j++) isum[j] = _mm256_setzero_si256();
      UNROLL for (int gi = 0; gi < 8; gi++) {
        const uint8_t *lo = o + 144 + 192 * gi;
        const __m256i h0 = _mm256_loadu_si256((const __m256i *)(lo + 128));
        const __m256i h1 = _mm256_loadu_si256((const __m256i *)(lo + 160));
        __m256i d0[X8_NC], d1[X8_NC];
        UNROLL for (int j = 0; j < NC; j++) d0[j] = d1[j] = _mm256_setzero_si256();
        UNROLL for (int c = 0; c < 4; c++) {
          const __m256i x = _mm256_loadu_si256((const __m256i *)(lo + 32 * c));
          const __m256i u0 = _mm256_or_si256(_mm256_and_si256(x, m4), q6_hi(h0, c));
          const __m256i u1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(x, 4), m4), q6_hi(h1, c));
          UNROLL for (int j = 0; j < NC; j++) {
            const int8_t *aq = ((const block_q8_K *)(a + j * as))[b].qs + 32 * gi;
            d0[j] = _mm256_dpbusd_epi32(d0[j], u0, bcast4(aq + 4 * c));
            d1[j] = _mm256_dpbusd_epi32(d1[j], u1, bcast4(aq + 16 + 4 * c));
          }
        }
        const __m256i sc0 = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(o + 16 + 16 * gi)));
        const __m256i sc1 = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(o + 24 + 16 * gi)));
        UNROLL for (int j = 0; j < NC; j++) {
          const int16_t *bs = ((const block_q8_K *)(a + j * as))[b].bsums;
          const __m256i t0 = _mm256_sub_epi32(d0[j], _mm256_set1_epi32(32 * bs[2 * gi]));
          const __m256i t1 = _mm256_sub_epi32(d1[j], _mm256_set1_epi32(32 * bs[2 * gi + 1]));
          isum[j] = _mm256_add_epi32(isum[j], _mm256_add_epi32(_mm256_mullo_epi32(t0, sc0), _mm256_mullo_epi32(t1, sc1)));
        }
      }
      const __m256 dv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)o));
      UNROLL for (int j = 0; j < NC; j++) {
        const __m256 da = _mm256_set1_ps(((const block_q8_K *)(a + j * as))[b].d);
        facc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[j]), _mm256_mul_ps(da, dv), facc[j]);
      }
    }
    UNROLL for (int j = 0; j < NC; j++) _mm256_storeu_ps(y + j * ys + 8 * g, facc[j]);
  }
}

/* Entry points: activation rows in fours, then one at a time; rows nr / 8 groups. */
#define X8_ENTRY(name, CALL, BLK, SMALLN)                                                          \
  static void name(int64_t n, int nr, int nc, float *y, int64_t ys, const void *w, size_t ws,     \
                   const void *a, size_t as) {                                                     \
    const int64_t nb = n / BLK;                                                                    \
    if (!(SMALLN)) {                                                                               \
      slm_gemm_x8_ref(T_TYPE, n, nr, nc, y, ys, w, ws, a, as);                                     \
      return;                                                                                      \
    }                                                                                              \
    const uint8_t *W = w, *A = a;                                                                  \
    int j = 0;                                                                                     \
    for (; j + X8_NC <= nc; j += X8_NC) CALL(X8_NC, nb, nr / 8, y + j * ys, ys, W, ws, A + j * as, as); \
    for (; j < nc; j++) CALL(1, nb, nr / 8, y + j * ys, ys, W, ws, A + j * as, as);               \
  }

#define T_TYPE SLM_TYPE_Q8_0
#define CALL_Q8_0(NC, ...) x8_legacy(SLM_TYPE_Q8_0, NC, __VA_ARGS__)
X8_ENTRY(gemm_x8_q8_0_vnni, CALL_Q8_0, 32, nb <= X8_MAXNB)
#undef T_TYPE
#define T_TYPE SLM_TYPE_Q4_0
#define CALL_Q4_0(NC, ...) x8_legacy(SLM_TYPE_Q4_0, NC, __VA_ARGS__)
X8_ENTRY(gemm_x8_q4_0_vnni, CALL_Q4_0, 32, nb <= X8_MAXNB)
#undef T_TYPE
#define T_TYPE SLM_TYPE_Q5_0
#define CALL_Q5_0(NC, ...) x8_legacy(SLM_TYPE_Q5_0, NC, __VA_ARGS__)
X8_ENTRY(gemm_x8_q5_0_vnni, CALL_Q5_0, 32, nb <= X8_MAXNB)
#undef T_TYPE
#define T_TYPE SLM_TYPE_Q4_K
X8_ENTRY(gemm_x8_q4_K_vnni, x8_q4_K, 256, 1)
#undef T_TYPE
#define T_TYPE SLM_TYPE_Q6_K
X8_ENTRY(gemm_x8_q6_K_vnni, x8_q6_K, 256, 1)
#undef T_TYPE

void slm_kernels_fill_avx512_vnni(struct slm_kernels *k) {
  FN(fill_quant_dots)(k);
  FN(fill_float_dots)(k);
  k->vec_dot[SLM_TYPE_F16] = vec_dot512_f16;
  k->gemm[SLM_TYPE_F16] = gemm512_f16;
  k->vec_dot[SLM_TYPE_F32] = vec_dot512_f32;
  k->gemm[SLM_TYPE_F32] = gemm512_f32;
  k->gemm_x8[SLM_TYPE_Q8_0] = gemm_x8_q8_0_vnni;
  k->gemm_x8[SLM_TYPE_Q4_0] = gemm_x8_q4_0_vnni;
  k->gemm_x8[SLM_TYPE_Q5_0] = gemm_x8_q5_0_vnni;
  k->gemm_x8[SLM_TYPE_Q4_K] = gemm_x8_q4_K_vnni;
  k->gemm_x8[SLM_TYPE_Q6_K] = gemm_x8_q6_K_vnni;
}

/* ---------------------------------------------------------------- BF16 level */

#define BF16_FN static inline __attribute__((always_inline, target("avx512bf16")))

/* 32 bf16 at p (fewer at the row's end: the rest read as zeros, which add nothing) */
BF16_FN __m512bh bf16_ld(const char *p, int64_t left) {
  const __mmask32 m = left >= 32 ? (__mmask32)~0u : (__mmask32)((1u << left) - 1);
  return (__m512bh)_mm512_maskz_loadu_epi16(m, p);
}

/*
 * NR x NC tile. vdpbf16ps on a zero accumulator gives, per lane, w0*a0 + w1*a1 rounded once
 * (the products are exact); those pair sums are accumulated in double (two 8-lane halves per
 * pair), so each dot is within ~n/2 roundings of 2^-24 of each *pair* of the exact sum, not of the
 * running total: as accurate as the double reference for what matters (see tmpl256.h on why BF16
 * needs it). Subnormal bfloats read as zero (vdpbf16ps), covered by the checkasm tolerance.
 */
BF16_FN void tile_bf16_bf16(const int NR, const int NC, int64_t n, float *y, int64_t ys,
                            const char *w, size_t ws, const char *a, size_t as) {
  __m512d lo[4][2], hi[4][2];
  UNROLL for (int i = 0; i < NR; i++)
    UNROLL for (int j = 0; j < NC; j++) lo[i][j] = hi[i][j] = _mm512_setzero_pd();
  for (int64_t k = 0; k < n; k += 32) {
    __m512bh wv[4];
    UNROLL for (int i = 0; i < NR; i++) wv[i] = bf16_ld(w + i * ws + 2 * k, n - k);
    UNROLL for (int j = 0; j < NC; j++) {
      const __m512bh av = bf16_ld(a + j * as + 2 * k, n - k);
      UNROLL for (int i = 0; i < NR; i++) {
        const __m512 p = _mm512_dpbf16_ps(_mm512_setzero_ps(), wv[i], av);
        lo[i][j] = _mm512_add_pd(lo[i][j], _mm512_cvtps_pd(_mm512_castps512_ps256(p)));
        hi[i][j] = _mm512_add_pd(hi[i][j], _mm512_cvtps_pd(_mm512_extractf32x8_ps(p, 1)));
      }
    }
  }
  UNROLL for (int j = 0; j < NC; j++)
    UNROLL for (int i = 0; i < NR; i++) y[j * ys + i] = (float)_mm512_reduce_add_pd(_mm512_add_pd(lo[i][j], hi[i][j]));
}

__attribute__((target("avx512bf16")))
static void vec_dot_bf16_bf16(int64_t n, float *s, const void *w, const void *a) {
  tile_bf16_bf16(1, 1, n, s, 0, w, 0, a, 0);
}

__attribute__((target("avx512bf16")))
static void gemm_bf16_bf16(int64_t n, int nr, int nc, float *y, int64_t ys, const void *w, size_t ws,
                           const void *a, size_t as) {
  const char *W = w, *A = a;
  int j = 0;
  for (; j + 2 <= nc; j += 2) {
    int i = 0;
    for (; i + 4 <= nr; i += 4) tile_bf16_bf16(4, 2, n, y + j * ys + i, ys, W + i * ws, ws, A + j * as, as);
    for (; i < nr; i++) tile_bf16_bf16(1, 2, n, y + j * ys + i, ys, W + i * ws, ws, A + j * as, as);
  }
  for (; j < nc; j++) {
    int i = 0;
    for (; i + 4 <= nr; i += 4) tile_bf16_bf16(4, 1, n, y + j * ys + i, ys, W + i * ws, ws, A + j * as, as);
    for (; i < nr; i++) tile_bf16_bf16(1, 1, n, y + j * ys + i, ys, W + i * ws, ws, A + j * as, as);
  }
}

void slm_kernels_fill_avx512_bf16(struct slm_kernels *k) {
  k->vec_dot[SLM_TYPE_BF16] = vec_dot_bf16_bf16;
  k->gemm[SLM_TYPE_BF16] = gemm_bf16_bf16;
}
