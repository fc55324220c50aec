/*
 * avx512.c: AVX-512 F/BW/VL/DQ kernels (no VNNI: that level has its own object, see meson.build).
 * Built with the matching -m flags; dispatch.c calls the fill only when the CPU and OS support the
 * level. Everything not here is inherited from the AVX2 level.
 */
#include <immintrin.h>

#include "slm/kernels/impl.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 16")

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

void slm_kernels_fill_avx512(struct slm_kernels *k) {
  k->vec_dot[SLM_TYPE_F16] = vec_dot512_f16;
  k->gemm[SLM_TYPE_F16] = gemm512_f16;
  k->vec_dot[SLM_TYPE_F32] = vec_dot512_f32;
  k->gemm[SLM_TYPE_F32] = gemm512_f32;
}
