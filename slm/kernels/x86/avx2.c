/*
 * avx2.c: AVX2 + FMA + F16C kernels (built with -mavx2 -mfma -mf16c; only called when dispatch.c
 * found the CPU and OS support them): the 256-bit quantized dots and tiles of tmpl256.h with
 * maddubs, the activation quantizers, the half/bfloat conversions and the float helpers. Higher
 * levels inherit the helpers and quantizers, which are bandwidth-bound at 256 bits already.
 *
 * Exactness contracts (test_checkasm.c): quantizers and conversions give the reference's bytes;
 * axpy/scale/add round like the reference (a product then a sum, no FMA); max is exact; dots,
 * rmsnorm, exp and silu are within stated tolerances (reordered sums, a polynomial exp).
 */
#include <immintrin.h>
#include <math.h>

#include "slm/kernels/impl.h"

#define SFX _avx2
#define T_VNNI 0
#define T_NR 4
#define T_NC 2
#define T_FLOAT 1
#define T_NCK 1
#include "slm/kernels/x86/tmpl256.h"

/* ---------------------------------------------------------------- activation quantizers */

static float hmax8(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

/* 32 floats times id, rounded to nearest even, saturated to int8, in order. Returns the four
 * int32 vectors' sum through *sum when asked. */
static __m256i q32(const float *x, __m256 id, __m256i *sum) {
  __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), id));
  __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), id));
  __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), id));
  __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), id));
  if (sum) *sum = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
  /* packs work per 128-bit lane: the dword permute puts the 4-byte groups back in order */
  __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
  return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static float amax32(const float *x) {
  const __m256 nz = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_andnot_ps(nz, _mm256_loadu_ps(x));
  m = _mm256_max_ps(m, _mm256_andnot_ps(nz, _mm256_loadu_ps(x + 8)));
  m = _mm256_max_ps(m, _mm256_andnot_ps(nz, _mm256_loadu_ps(x + 16)));
  m = _mm256_max_ps(m, _mm256_andnot_ps(nz, _mm256_loadu_ps(x + 24)));
  return hmax8(m);
}

static void quantize_q8_0_avx2(const float *x, void *vy, int64_t k) {
  block_q8_0 *y = vy;
  for (int64_t i = 0; i < k / QK8_0; i++, x += QK8_0) {
    const float amax = amax32(x);
    y[i].d = (slm_f16)_cvtss_sh(amax / 127.f, _MM_FROUND_TO_NEAREST_INT);
    const float id = amax > 0x1p-120f ? 127.f / amax : 0.0f;
    _mm256_storeu_si256((__m256i *)y[i].qs, q32(x, _mm256_set1_ps(id), NULL));
  }
}

static void quantize_q8_1_avx2(const float *x, void *vy, int64_t k) {
  block_q8_1 *y = vy;
  for (int64_t i = 0; i < k / QK8_1; i++, x += QK8_1) {
    const float amax = amax32(x);
    const float d = amax / 127.f;
    const float id = amax > 0x1p-120f ? 127.f / amax : 0.0f;
    __m256i s;
    _mm256_storeu_si256((__m256i *)y[i].qs, q32(x, _mm256_set1_ps(id), &s));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
    y[i].d = (slm_f16)_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    y[i].s = (slm_f16)_cvtss_sh(d * (float)_mm_cvtsi128_si32(s4), _MM_FROUND_TO_NEAREST_INT);
  }
}

static void quantize_q8_K_avx2(const float *x, void *vy, int64_t k) {
  block_q8_K *y = vy;
  for (int64_t i = 0; i < k / QK_K; i++, x += QK_K) {
    float amax = 0;
    for (int j = 0; j < QK_K; j += 32) amax = fmaxf(amax, amax32(x + j));
    if (!(amax > 0x1p-120f)) {   /* zero (or too small to invert): an all-zero block */
      memset(&y[i], 0, sizeof y[i]);
      continue;
    }
    /* the first element whose magnitude is amax sets the sign, as in the reference */
    float max = 0;
    const __m256 va = _mm256_set1_ps(amax), nz = _mm256_set1_ps(-0.0f);
    for (int j = 0; j < QK_K; j += 8) {
      const __m256 v = _mm256_loadu_ps(x + j);
      int m = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(nz, v), va, _CMP_EQ_OQ));
      if (m) {
        max = x[j + __builtin_ctz((unsigned)m)];
        break;
      }
    }
    const float iscale = -127.f / max;
    const __m256 vs = _mm256_set1_ps(iscale);
    /* nearest_int is round-half-even for these magnitudes, as cvtps2dq; min(127, v) is the
     * signed saturation of the packs (v >= -127 always holds) */
    for (int j = 0; j < QK_K; j += 32) _mm256_storeu_si256((__m256i *)(y[i].qs + j), q32(x + j, vs, NULL));
    for (int g = 0; g < QK_K / 16; g++) {
      const __m128i q = _mm_loadu_si128((const __m128i *)(y[i].qs + 16 * g));
      __m128i s = _mm_madd_epi16(_mm_maddubs_epi16(_mm_set1_epi8(1), q), _mm_set1_epi16(1));
      s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
      s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
      y[i].bsums[g] = (int16_t)_mm_cvtsi128_si32(s);
    }
    y[i].d = 1 / iscale;
  }
}

/* ---------------------------------------------------------------- conversions */

static void f32_to_f16_avx2(const float *x, slm_f16 *y, int64_t k) {
  int64_t i = 0;
  for (; i + 8 <= k; i += 8)
    _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < k; i++) y[i] = (slm_f16)_cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

static void f16_to_f32_avx2(const slm_f16 *x, float *y, int64_t k) {
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
  for (; i < k; i++) y[i] = _cvtsh_ss(x[i]);
}

/* Integer round-to-nearest-even on the bits (vcvtneps2bf16 would flush subnormals). */
static void f32_to_bf16_avx2(const float *x, slm_bf16 *y, int64_t k) {
  int64_t i = 0;
  const __m256i absm = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
  for (; i + 16 <= k; i += 16) {
    __m256i r[2];
    for (int h = 0; h < 2; h++) {
      const __m256i u = _mm256_loadu_si256((const __m256i *)(x + i + 8 * h));
      const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, absm), inf);
      const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
      const __m256i rne = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
      const __m256i qn = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
      r[h] = _mm256_blendv_epi8(rne, qn, nan);
    }
    const __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(r[0], r[1]), 0xd8);
    _mm256_storeu_si256((__m256i *)(y + i), p);
  }
  for (; i < k; i++) y[i] = slm_f32_to_bf16(x[i]);
}

/* ---------------------------------------------------------------- float helpers */

/* attention q.k: independent of the gemm tiles, so 4 accumulators for FMA latency */
static float dot_f32_avx2(int64_t n, const float *a, const float *b) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  float s = FN(hsum8)(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

static float dot_f32_f16_avx2(int64_t n, const float *a, const slm_f16 *b) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i))), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i + 8))), s1);
  }
  for (; i + 8 <= n; i += 8)
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i))), s0);
  float s = FN(hsum8)(_mm256_add_ps(s0, s1));
  for (; i < n; i++) s += a[i] * _cvtsh_ss(b[i]);
  return s;
}

/* no FMA on purpose: bit-identical to the reference's product-then-sum */
static void axpy_f32_avx2(int64_t n, float alpha, const float *x, float *y) {
  const __m256 va = _mm256_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_mul_ps(va, _mm256_loadu_ps(x + i))));
  for (; i < n; i++) y[i] += alpha * x[i];
}

static void axpy_f16_avx2(int64_t n, float alpha, const slm_f16 *x, float *y) {
  const __m256 va = _mm256_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 xv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i)));
    _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_mul_ps(va, xv)));
  }
  for (; i < n; i++) y[i] += alpha * _cvtsh_ss(x[i]);
}

static void scale_f32_avx2(int64_t n, float alpha, float *y) {
  const __m256 va = _mm256_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), va));
  for (; i < n; i++) y[i] *= alpha;
}

static void add_f32_avx2(int64_t n, float *y, const float *x) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
  for (; i < n; i++) y[i] += x[i];
}

/* sum of squares in double, like the reference, so the scale matches it to the last bits */
static void rmsnorm_f32_avx2(int64_t n, float *y, const float *x, const float *w, float eps) {
  __m256d s0 = _mm256_setzero_pd(), s1 = s0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256d lo = _mm256_cvtps_pd(_mm_loadu_ps(x + i)), hi = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
    s0 = _mm256_fmadd_pd(lo, lo, s0);
    s1 = _mm256_fmadd_pd(hi, hi, s1);
  }
  s0 = _mm256_add_pd(s0, s1);
  __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s0), _mm256_extractf128_pd(s0, 1));
  double sum = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
  for (; i < n; i++) sum += (double)x[i] * x[i];
  const float scale = 1.0f / sqrtf((float)(sum / (double)n) + eps);
  const __m256 vs = _mm256_set1_ps(scale);
  for (i = 0; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs), _mm256_loadu_ps(w + i)));
  for (; i < n; i++) y[i] = (x[i] * scale) * w[i];
}

/*
 * exp(x) for 8 floats: x = n*ln2 + r with |r| <= ln2/2 (ln2 split in two for an exact product),
 * a degree-6 polynomial for e^r, then 2^n through the exponent bits. About 1 ulp on the normal
 * range; above 88.72 gives inf, below -87.33 gives 0 (the reference's subnormal results there
 * are < 2^-126, within the stated absolute tolerance).
 */
static inline __m256 exp8(__m256 x) {
  const __m256 hi = _mm256_set1_ps(88.7228f), lo = _mm256_set1_ps(-87.3365f);
  const __m256 big = _mm256_cmp_ps(x, hi, _CMP_GT_OQ), small = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  /* n is in [-126, 128]: scale in two halves so 2^128 (x near 88.72) does not overflow early */
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, _mm256_set1_epi32(127)), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, _mm256_set1_epi32(127)), 23));
  p = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
  p = _mm256_blendv_ps(p, _mm256_set1_ps(INFINITY), big);
  return _mm256_andnot_ps(small, p);
}

static void swiglu_f32_avx2(int64_t n, float *y, const float *gate, const float *up) {
  int64_t i = 0;
  const __m256 one = _mm256_set1_ps(1.0f), nz = _mm256_set1_ps(-0.0f);
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = exp8(_mm256_xor_ps(g, nz));
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
  }
  for (; i < n; i++) y[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

static float max_f32_avx2(int64_t n, const float *x) {
  __m256 m = _mm256_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
  float r = hmax8(m);
  for (; i < n; i++) r = x[i] > r ? x[i] : r;
  return r;
}

static float exp_sum_f32_avx2(int64_t n, float *y, const float *x, float max) {
  const __m256 vm = _mm256_set1_ps(max);
  __m256 s = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
    _mm256_storeu_ps(y + i, e);
    s = _mm256_add_ps(s, e);
  }
  float r = FN(hsum8)(s);
  for (; i < n; i++) {
    y[i] = expf(x[i] - max);
    r += y[i];
  }
  return r;
}

void slm_kernels_fill_avx2(struct slm_kernels *k) {
  FN(fill_quant_dots)(k);
  FN(fill_float_dots)(k);
  FN(fill_x8)(k);
  k->quantize_q8_0 = quantize_q8_0_avx2;
  k->quantize_q8_1 = quantize_q8_1_avx2;
  k->quantize_q8_K = quantize_q8_K_avx2;
  k->f32_to_f16 = f32_to_f16_avx2;
  k->f16_to_f32 = f16_to_f32_avx2;
  k->f32_to_bf16 = f32_to_bf16_avx2;
  k->dot_f32 = dot_f32_avx2;
  k->dot_f32_f16 = dot_f32_f16_avx2;
  k->axpy_f32 = axpy_f32_avx2;
  k->axpy_f16 = axpy_f16_avx2;
  k->scale_f32 = scale_f32_avx2;
  k->add_f32 = add_f32_avx2;
  k->rmsnorm_f32 = rmsnorm_f32_avx2;
  k->swiglu_f32 = swiglu_f32_avx2;
  k->max_f32 = max_f32_avx2;
  k->exp_sum_f32 = exp_sum_f32_avx2;
}
