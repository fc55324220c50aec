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
#define T_FLOAT 0
#define T_NCK 2
#include "slm/kernels/x86/tmpl256.h"

/* Float dots are not taken from this object: the AVX-512 level's zmm versions stay (F16/F32),
 * and BF16 keeps the AVX2 version until the BF16 level. */
void slm_kernels_fill_avx512_vnni(struct slm_kernels *k) {
  FN(fill_quant_dots)(k);
  FN(fill_x8)(k);
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
