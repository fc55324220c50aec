/*
 * quant.c: reference conversions between floats and every supported tensor type: scalar
 * half/bfloat conversions, whole-row dequantize and quantize (the file quantizers that quantize
 * and mkmodel use), and the reference activation quantizers (q8_0, q8_1, q8_K).
 *
 * DESIGN. slm_quantize_row must write the same bytes as llama.cpp's quantize_row_*_ref, so that
 * files we make are the files llama.cpp would make from the same floats. That fixes not only the
 * algorithms (absmax scales for the legacy types, the weighted min/scale search of
 * make_qkx2_quants for Q4_K/Q5_K, the rmse search of make_qx_quants for Q6_K) but the float
 * arithmetic itself: every sum, product and division below is evaluated in the same order and
 * precision (single, no contraction: this file is built without -mfma and meson uses -std=c11,
 * which turns fp-contraction off in gcc). Do not "simplify" an expression here (hoisting a
 * reciprocal, reassociating a sum, using fmaf): one changed rounding flips a quant somewhere and
 * the files stop matching. tests/slm/test_quant.c compares against files llama.cpp wrote.
 *
 * Rounding helpers, which differ on purpose and follow the code being matched:
 *  - slm_nearest_int (impl.h): ties to even, the magic-number trick of the K quantizers;
 *  - roundf: ties away from zero, quantize_row_q8_0_ref;
 *  - (int)(v + 8.5f) style truncation, the legacy 4/5-bit quantizers.
 */
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "slm/kernels/impl.h"
#include "slm/kernels/kernels.h"

/* ---------------------------------------------------------------- half and bfloat */

float slm_f16_to_f32(slm_f16 h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e == 0x1f)   /* inf, or NaN made quiet (as vcvtph2ps does) */
    return slm_f32_from_bits(sign | 0x7f800000u | (m ? (m << 13) | 0x400000u : 0));
  if (e == 0) {    /* zero or subnormal: m * 2^-24, exact in single */
    float v = (float)m * 0x1p-24f;
    return sign ? -v : v;
  }
  return slm_f32_from_bits(sign | ((e + 112) << 23) | (m << 13));
}

slm_f16 slm_f32_to_f16(float f) {
  uint32_t x = slm_f32_bits(f);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
  uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u)   /* NaN: quiet, top payload bits kept (what vcvtps2ph does) */
    return (slm_f16)(sign | 0x7e00 | ((ax >> 13) & 0x3ff));
  if (ax >= 0x477ff000u)  /* >= 65520 rounds to infinity (65504 is odd, so the tie goes up) */
    return (slm_f16)(sign | 0x7c00);
  if (ax < 0x38800000u) { /* below 2^-14: a half subnormal, units of 2^-24 */
    if (ax <= 0x33000000u) return sign;   /* <= 2^-25 rounds to zero (the tie goes to even 0) */
    uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e;             /* 14..24 */
    uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1))) r++;
    return (slm_f16)(sign | r);           /* r may carry into the smallest normal: still right */
  }
  uint32_t base = (ax - 0x38000000u) >> 13, rem = ax & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (base & 1))) base++;
  return (slm_f16)(sign | base);
}

float slm_bf16_to_f32(slm_bf16 h) { return slm_f32_from_bits((uint32_t)h << 16); }

slm_bf16 slm_f32_to_bf16(float f) {
  uint32_t x = slm_f32_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (slm_bf16)((x >> 16) | 0x40);   /* quiet NaN */
  return (slm_bf16)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

/* ---------------------------------------------------------------- legacy 32-blocks */

static void quantize_q4_0(const float *x, block_q4_0 *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += QK4_0) {
    float amax = 0.0f, max = 0.0f;   /* the signed value of largest magnitude (first one wins) */
    for (int j = 0; j < QK4_0; j++) {
      if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
    }
    const float d = max / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = slm_f32_to_f16(d);
    for (int j = 0; j < QK4_0 / 2; j++) {
      int lo = (int)(x[j] * id + 8.5f), hi = (int)(x[j + QK4_0 / 2] * id + 8.5f);
      if (lo > 15) lo = 15;
      if (hi > 15) hi = 15;
      y[i].qs[j] = (uint8_t)(lo | (hi << 4));
    }
  }
}

static void quantize_q4_1(const float *x, block_q4_1 *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += QK4_1) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < QK4_1; j++) {
      if (x[j] < min) min = x[j];
      if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / 15;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = slm_f32_to_f16(d);
    y[i].m = slm_f32_to_f16(min);
    for (int j = 0; j < QK4_1 / 2; j++) {
      int lo = (int)((x[j] - min) * id + 0.5f), hi = (int)((x[j + QK4_1 / 2] - min) * id + 0.5f);
      if (lo > 15) lo = 15;
      if (hi > 15) hi = 15;
      y[i].qs[j] = (uint8_t)(lo | (hi << 4));
    }
  }
}

/* Packs 32 five-bit values: low nibbles as q4_0 does, fifth bits into the 32-bit qh word. */
static void pack_5bit(const int *q, uint8_t *qs, uint8_t qh[4]) {
  uint32_t h = 0;
  for (int j = 0; j < 16; j++) {
    qs[j] = (uint8_t)((q[j] & 0x0f) | ((q[j + 16] & 0x0f) << 4));
    h |= (uint32_t)((q[j] >> 4) & 1) << j;
    h |= (uint32_t)((q[j + 16] >> 4) & 1) << (j + 16);
  }
  memcpy(qh, &h, 4);
}

static void quantize_q5_0(const float *x, block_q5_0 *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += QK5_0) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK5_0; j++) {
      if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
    }
    const float d = max / -16;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = slm_f32_to_f16(d);
    int q[QK5_0];
    for (int j = 0; j < QK5_0; j++) {
      q[j] = (int)(x[j] * id + 16.5f);
      if (q[j] > 31) q[j] = 31;
    }
    pack_5bit(q, y[i].qs, y[i].qh);
  }
}

static void quantize_q5_1(const float *x, block_q5_1 *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += QK5_1) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < QK5_1; j++) {
      if (x[j] < min) min = x[j];
      if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / 31;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = slm_f32_to_f16(d);
    y[i].m = slm_f32_to_f16(min);
    int q[QK5_1];
    for (int j = 0; j < QK5_1; j++) q[j] = (int)((x[j] - min) * id + 0.5f) & 0xff;  /* uint8_t, no clamp */
    pack_5bit(q, y[i].qs, y[i].qh);
  }
}

/* File quantizer for Q8_0 (quantize_row_q8_0_ref: id = 1/d, roundf). */
static void quantize_q8_0_file(const float *x, block_q8_0 *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += QK8_0) {
    float amax = 0.0f;
    for (int j = 0; j < QK8_0; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = slm_f32_to_f16(d);
    for (int j = 0; j < QK8_0; j++) y[i].qs[j] = (int8_t)roundf(x[j] * id);
  }
}

/* ---------------------------------------------------------------- activation quantizers */

/* Both follow llama.cpp's x86 quantize_row_q8_0/q8_1: d = amax/127 stored as half, the floats
 * multiplied by 127/amax (not 1/d) and rounded half to even. nearbyintf rounds in the current
 * mode, which is nearest-even: nothing in this process changes it. One deviation: a block whose
 * amax is below 2^-120 (where 127/amax would overflow) quantizes to zeros instead of garbage. */
void slm_quantize_q8_0_ref(const float *x, void *vy, int64_t k) {
  block_q8_0 *y = vy;
  for (int64_t i = 0; i < k / QK8_0; i++, x += QK8_0) {
    float amax = 0.0f;
    for (int j = 0; j < QK8_0; j++) amax = fmaxf(amax, fabsf(x[j]));
    y[i].d = slm_f32_to_f16(amax / 127.f);
    const float id = amax > 0x1p-120f ? 127.f / amax : 0.0f;
    for (int j = 0; j < QK8_0; j++) y[i].qs[j] = (int8_t)nearbyintf(x[j] * id);
  }
}

void slm_quantize_q8_1_ref(const float *x, void *vy, int64_t k) {
  block_q8_1 *y = vy;
  for (int64_t i = 0; i < k / QK8_1; i++, x += QK8_1) {
    float amax = 0.0f;
    for (int j = 0; j < QK8_1; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127.f;
    const float id = amax > 0x1p-120f ? 127.f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < QK8_1; j++) {
      y[i].qs[j] = (int8_t)nearbyintf(x[j] * id);
      sum += y[i].qs[j];
    }
    y[i].d = slm_f32_to_f16(d);
    y[i].s = slm_f32_to_f16(d * (float)sum);   /* the unrounded d, as llama.cpp */
  }
}

/* quantize_row_q8_K_ref: scale from the signed extreme, so that value maps to -127 exactly.
 * As above, a block with amax below 2^-120 becomes zeros (llama.cpp: only exact zeros). */
void slm_quantize_q8_K_ref(const float *x, void *vy, int64_t k) {
  block_q8_K *y = vy;
  for (int64_t i = 0; i < k / QK_K; i++, x += QK_K) {
    float max = 0, amax = 0;
    for (int j = 0; j < QK_K; j++) {
      if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); max = x[j]; }
    }
    if (!(amax > 0x1p-120f)) {   /* llama.cpp leaves bsums stale here; zero them */
      memset(&y[i], 0, sizeof y[i]);
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < QK_K; j++) {
      int v = slm_nearest_int(iscale * x[j]);
      y[i].qs[j] = (int8_t)(v > 127 ? 127 : v);
    }
    for (int j = 0; j < QK_K / 16; j++) {
      int sum = 0;
      for (int l = 0; l < 16; l++) sum += y[i].qs[16 * j + l];
      y[i].bsums[j] = (int16_t)sum;
    }
    y[i].d = 1 / iscale;
  }
}

/* ---------------------------------------------------------------- K-quant scale searches */

/*
 * Asymmetric quantization of N values to 0..NMAX with a scale and a min <= 0, minimizing the
 * weighted squared error: start from (max - min) / nmax, then try NSTEP+1 alternative inverse
 * scales (rmin + rdelta*is + nmax) / (max - min), solving the weighted least squares for scale
 * and min for each candidate assignment, keeping the best. Returns the scale, *neg_min = -min.
 * (llama.cpp's make_qkx2_quants with use_mad false.)
 */
static float search_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L,
                              float *neg_min, uint8_t *Laux, float rmin, float rdelta, int nstep) {
  float min = x[0], max = x[0];
  float sum_w = w[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; i++) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    memset(L, 0, (size_t)n);
    *neg_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; i++) {
    int l = slm_nearest_int(iscale * (x[i] - min));
    L[i] = (uint8_t)(l < 0 ? 0 : l > nmax ? nmax : l);
    float diff = scale * L[i] + min - x[i];
    best_error += w[i] * (diff * diff);
  }
  for (int is = 0; is <= nstep; is++) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; i++) {
      int l = slm_nearest_int(iscale * (x[i] - min));
      l = l < 0 ? 0 : l > nmax ? nmax : l;
      Laux[i] = (uint8_t)l;
      sum_l += w[i] * l;
      sum_l2 += w[i] * l * l;
      sum_xl += w[i] * l * x[i];
    }
    float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float err = 0;
      for (int i = 0; i < n; i++) {
        float diff = this_scale * Laux[i] + this_min - x[i];
        err += w[i] * (diff * diff);
      }
      if (err < best_error) {
        memcpy(L, Laux, (size_t)n);
        best_error = err;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *neg_min = -min;
  return scale;
}

/*
 * Symmetric quantization of N values to -NMAX..NMAX-1 (stored + NMAX in L) with weights x^2:
 * the scale from the signed extreme, then 18 nearby inverse scales -(nmax + 0.1*is)/max, keeping
 * the one with the best weighted fit sumlx^2/suml2. (llama.cpp's make_qx_quants, rmse_type 1,
 * no importance weights: what quantize_row_q6_K_ref uses.)
 */
static float search_scale_sym(int n, int nmax, const float *x, int8_t *L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; i++) {
    if (fabsf(x[i]) > amax) { amax = fabsf(x[i]); max = x[i]; }
  }
  if (amax < 1e-15f) {
    memset(L, 0, (size_t)n);
    return 0.f;
  }
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; i++) {
    int l = slm_nearest_int(iscale * x[i]);
    l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
    L[i] = (int8_t)(l + nmax);
    float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; is++) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; i++) {
      int l = slm_nearest_int(iscale * x[i]);
      l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
      float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; i++) {
        int l = slm_nearest_int(iscale * x[i]);
        L[i] = (int8_t)(nmax + (l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

/* Q4_K and Q5_K share everything but the bit width and the search range. Fills the 6-bit
 * scales/mins, d and dmin, and L (0..nmax) for the 256 values. */
static void k_scales_mins(const float *x, int nmax, float rmin, float rdelta, int nstep,
                          slm_f16 *d_out, slm_f16 *dmin_out, uint8_t scales[K_SCALE_SIZE],
                          uint8_t L[QK_K]) {
  float mins[QK_K / 32], sc[QK_K / 32], w[32];
  uint8_t Laux[32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < QK_K / 32; j++) {
    const float *xs = x + 32 * j;
    float sum_x2 = 0;
    for (int l = 0; l < 32; l++) sum_x2 += xs[l] * xs[l];
    float av_x = sqrtf(sum_x2 / 32);
    for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(xs[l]);
    sc[j] = search_scale_min(32, nmax, xs, w, L + 32 * j, &mins[j], Laux, rmin, rdelta, nstep);
    if (sc[j] > max_scale) max_scale = sc[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  memset(scales, 0, K_SCALE_SIZE);
  for (int j = 0; j < QK_K / 32; j++) {
    uint8_t ls = (uint8_t)slm_nearest_int(inv_scale * sc[j]);
    uint8_t lm = (uint8_t)slm_nearest_int(inv_min * mins[j]);
    if (ls > 63) ls = 63;
    if (lm > 63) lm = 63;
    if (j < 4) {
      scales[j] = ls;
      scales[j + 4] = lm;
    } else {   /* low 4 bits in bytes 8..11, high 2 bits on top of bytes 0..7 */
      scales[j + 4] = (uint8_t)((ls & 0x0f) | ((lm & 0x0f) << 4));
      scales[j - 4] |= (uint8_t)((ls >> 4) << 6);
      scales[j] |= (uint8_t)((lm >> 4) << 6);
    }
  }
  *d_out = slm_f32_to_f16(max_scale / 63.f);
  *dmin_out = slm_f32_to_f16(max_min / 63.f);
  /* requantize against the rounded scales actually stored */
  const float d_all = slm_f16_to_f32(*d_out), m_all = slm_f16_to_f32(*dmin_out);
  for (int j = 0; j < QK_K / 32; j++) {
    uint8_t s, m;
    slm_k4_scale_min(j, scales, &s, &m);
    const float d = d_all * s;
    if (d == 0.0f) continue;   /* keep the search's L */
    const float dm = m_all * m;
    for (int l = 0; l < 32; l++) {
      int q = slm_nearest_int((x[32 * j + l] + dm) / d);
      L[32 * j + l] = (uint8_t)(q < 0 ? 0 : q > nmax ? nmax : q);
    }
  }
}

static void quantize_q4_K(const float *x, block_q4_K *y, int64_t nb) {
  uint8_t L[QK_K];
  for (int64_t i = 0; i < nb; i++, x += QK_K) {
    k_scales_mins(x, 15, -1.f, 0.1f, 20, &y[i].d, &y[i].dmin, y[i].scales, L);
    /* 64 values per 32 bytes: first 32 in the low nibbles, next 32 in the high */
    for (int j = 0; j < QK_K / 64; j++)
      for (int l = 0; l < 32; l++)
        y[i].qs[32 * j + l] = (uint8_t)(L[64 * j + l] | (L[64 * j + 32 + l] << 4));
  }
}

static void quantize_q5_K(const float *x, block_q5_K *y, int64_t nb) {
  uint8_t L[QK_K];
  for (int64_t i = 0; i < nb; i++, x += QK_K) {
    k_scales_mins(x, 31, -0.5f, 0.1f, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
    /* as Q4_K for the low nibbles; bit 4 of value 64*j+l goes to qh[l] bit 2j, of 64*j+32+l to bit 2j+1 */
    memset(y[i].qh, 0, sizeof y[i].qh);
    for (int j = 0; j < QK_K / 64; j++) {
      for (int l = 0; l < 32; l++) {
        int a = L[64 * j + l], b = L[64 * j + 32 + l];
        y[i].qs[32 * j + l] = (uint8_t)((a & 0x0f) | ((b & 0x0f) << 4));
        y[i].qh[l] |= (uint8_t)(((a >> 4) << (2 * j)) | ((b >> 4) << (2 * j + 1)));
      }
    }
  }
}

static void quantize_q6_K(const float *x, block_q6_K *y, int64_t nb) {
  int8_t L[QK_K];
  float sc[QK_K / 16];
  for (int64_t i = 0; i < nb; i++, x += QK_K) {
    float max_scale = 0, max_abs = 0;
    for (int j = 0; j < QK_K / 16; j++) {
      sc[j] = search_scale_sym(16, 32, x + 16 * j, L + 16 * j);
      if (fabsf(sc[j]) > max_abs) { max_abs = fabsf(sc[j]); max_scale = sc[j]; }
    }
    if (max_abs < 1e-15f) {
      memset(&y[i], 0, sizeof y[i]);
      continue;
    }
    float iscale = -128.f / max_scale;
    y[i].d = slm_f32_to_f16(1 / iscale);
    for (int j = 0; j < QK_K / 16; j++) {
      int s = slm_nearest_int(iscale * sc[j]);
      y[i].scales[j] = (int8_t)(s > 127 ? 127 : s);
    }
    const float d_all = slm_f16_to_f32(y[i].d);
    for (int j = 0; j < QK_K / 16; j++) {
      float d = d_all * y[i].scales[j];
      if (d == 0.0f) continue;
      for (int l = 0; l < 16; l++) {
        int q = slm_nearest_int(x[16 * j + l] / d);
        L[16 * j + l] = (int8_t)((q < -32 ? -32 : q > 31 ? 31 : q) + 32);
      }
    }
    /* per 128 values: ql[0..31] low nibbles of 0..31 | 64..95 <<4, ql[32..63] of 32..63 | 96..127,
     * qh[l] the top 2 bits of l, l+32, l+64, l+96 at bits 0, 2, 4, 6 */
    for (int h = 0; h < 2; h++) {
      const int8_t *Lh = L + 128 * h;
      uint8_t *ql = y[i].ql + 64 * h, *qh = y[i].qh + 32 * h;
      for (int l = 0; l < 32; l++) {
        ql[l] = (uint8_t)((Lh[l] & 0x0f) | ((Lh[l + 64] & 0x0f) << 4));
        ql[l + 32] = (uint8_t)((Lh[l + 32] & 0x0f) | ((Lh[l + 96] & 0x0f) << 4));
        qh[l] = (uint8_t)((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) |
                          ((Lh[l + 96] >> 4) << 6));
      }
    }
  }
}

/* ---------------------------------------------------------------- dequantize */

static void dequantize_q4_0(const block_q4_0 *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, y += QK4_0) {
    const float d = slm_f16_to_f32(x[i].d);
    for (int j = 0; j < 16; j++) {
      y[j] = ((x[i].qs[j] & 0x0f) - 8) * d;
      y[j + 16] = ((x[i].qs[j] >> 4) - 8) * d;
    }
  }
}

static void dequantize_q4_1(const block_q4_1 *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, y += QK4_1) {
    const float d = slm_f16_to_f32(x[i].d), m = slm_f16_to_f32(x[i].m);
    for (int j = 0; j < 16; j++) {
      y[j] = (x[i].qs[j] & 0x0f) * d + m;
      y[j + 16] = (x[i].qs[j] >> 4) * d + m;
    }
  }
}

static void dequantize_q5_0(const block_q5_0 *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, y += QK5_0) {
    const float d = slm_f16_to_f32(x[i].d);
    uint32_t qh;
    memcpy(&qh, x[i].qh, 4);
    for (int j = 0; j < 16; j++) {
      int lo = (x[i].qs[j] & 0x0f) | (int)(((qh >> j) & 1) << 4);
      int hi = (x[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
      y[j] = (lo - 16) * d;
      y[j + 16] = (hi - 16) * d;
    }
  }
}

static void dequantize_q5_1(const block_q5_1 *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, y += QK5_1) {
    const float d = slm_f16_to_f32(x[i].d), m = slm_f16_to_f32(x[i].m);
    uint32_t qh;
    memcpy(&qh, x[i].qh, 4);
    for (int j = 0; j < 16; j++) {
      int lo = (x[i].qs[j] & 0x0f) | (int)(((qh >> j) & 1) << 4);
      int hi = (x[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
      y[j] = lo * d + m;
      y[j + 16] = hi * d + m;
    }
  }
}

static void dequantize_q8_0(const block_q8_0 *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, y += QK8_0) {
    const float d = slm_f16_to_f32(x[i].d);
    for (int j = 0; j < QK8_0; j++) y[j] = x[i].qs[j] * d;
  }
}

static void dequantize_q8_1(const block_q8_1 *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, y += QK8_1) {
    const float d = slm_f16_to_f32(x[i].d);
    for (int j = 0; j < QK8_1; j++) y[j] = x[i].qs[j] * d;
  }
}

static void dequantize_q4_K(const block_q4_K *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++) {
    const float d = slm_f16_to_f32(x[i].d), dmin = slm_f16_to_f32(x[i].dmin);
    const uint8_t *q = x[i].qs;
    for (int j = 0; j < QK_K / 64; j++, q += 32) {
      uint8_t s, m;
      slm_k4_scale_min(2 * j, x[i].scales, &s, &m);
      const float d1 = d * s, m1 = dmin * m;
      slm_k4_scale_min(2 * j + 1, x[i].scales, &s, &m);
      const float d2 = d * s, m2 = dmin * m;
      for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] & 0x0f) - m1;
      for (int l = 0; l < 32; l++) *y++ = d2 * (q[l] >> 4) - m2;
    }
  }
}

static void dequantize_q5_K(const block_q5_K *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++) {
    const float d = slm_f16_to_f32(x[i].d), dmin = slm_f16_to_f32(x[i].dmin);
    const uint8_t *q = x[i].qs, *qh = x[i].qh;
    for (int j = 0; j < QK_K / 64; j++, q += 32) {
      uint8_t s, m;
      slm_k4_scale_min(2 * j, x[i].scales, &s, &m);
      const float d1 = d * s, m1 = dmin * m;
      slm_k4_scale_min(2 * j + 1, x[i].scales, &s, &m);
      const float d2 = d * s, m2 = dmin * m;
      for (int l = 0; l < 32; l++) *y++ = d1 * ((q[l] & 0x0f) + (((qh[l] >> (2 * j)) & 1) << 4)) - m1;
      for (int l = 0; l < 32; l++) *y++ = d2 * ((q[l] >> 4) + (((qh[l] >> (2 * j + 1)) & 1) << 4)) - m2;
    }
  }
}

static void dequantize_q6_K(const block_q6_K *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++) {
    const float d = slm_f16_to_f32(x[i].d);
    for (int h = 0; h < 2; h++, y += 128) {
      const uint8_t *ql = x[i].ql + 64 * h, *qh = x[i].qh + 32 * h;
      const int8_t *sc = x[i].scales + 8 * h;
      for (int l = 0; l < 32; l++) {
        int is = l / 16;
        int q1 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
        int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
        int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * sc[is] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
    }
  }
}

static void dequantize_q8_K(const block_q8_K *x, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, y += QK_K)
    for (int j = 0; j < QK_K; j++) y[j] = x[i].d * x[i].qs[j];
}

/* ---------------------------------------------------------------- rows */

void slm_dequantize_row(enum slm_type t, const void *src, float *dst, int64_t n) {
  const int64_t nb32 = n / 32, nb256 = n / QK_K;
  switch (t) {
  case SLM_TYPE_F32: memcpy(dst, src, (size_t)n * sizeof(float)); break;
  case SLM_TYPE_F16: {
    const slm_f16 *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = slm_f16_to_f32(s[i]);
    break;
  }
  case SLM_TYPE_BF16: {
    const slm_bf16 *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = slm_bf16_to_f32(s[i]);
    break;
  }
  case SLM_TYPE_Q4_0: dequantize_q4_0(src, dst, nb32); break;
  case SLM_TYPE_Q4_1: dequantize_q4_1(src, dst, nb32); break;
  case SLM_TYPE_Q5_0: dequantize_q5_0(src, dst, nb32); break;
  case SLM_TYPE_Q5_1: dequantize_q5_1(src, dst, nb32); break;
  case SLM_TYPE_Q8_0: dequantize_q8_0(src, dst, nb32); break;
  case SLM_TYPE_Q8_1: dequantize_q8_1(src, dst, nb32); break;
  case SLM_TYPE_Q4_K: dequantize_q4_K(src, dst, nb256); break;
  case SLM_TYPE_Q5_K: dequantize_q5_K(src, dst, nb256); break;
  case SLM_TYPE_Q6_K: dequantize_q6_K(src, dst, nb256); break;
  case SLM_TYPE_Q8_K: dequantize_q8_K(src, dst, nb256); break;
  default: memset(dst, 0, (size_t)n * sizeof(float)); break;   /* callers check the type first */
  }
}

void slm_quantize_row(enum slm_type t, const float *src, void *dst, int64_t n) {
  const int64_t nb32 = n / 32, nb256 = n / QK_K;
  switch (t) {
  case SLM_TYPE_F32: memcpy(dst, src, (size_t)n * sizeof(float)); break;
  case SLM_TYPE_F16: {
    slm_f16 *d = dst;
    for (int64_t i = 0; i < n; i++) d[i] = slm_f32_to_f16(src[i]);
    break;
  }
  case SLM_TYPE_BF16: {
    slm_bf16 *d = dst;
    for (int64_t i = 0; i < n; i++) d[i] = slm_f32_to_bf16(src[i]);
    break;
  }
  case SLM_TYPE_Q4_0: quantize_q4_0(src, dst, nb32); break;
  case SLM_TYPE_Q4_1: quantize_q4_1(src, dst, nb32); break;
  case SLM_TYPE_Q5_0: quantize_q5_0(src, dst, nb32); break;
  case SLM_TYPE_Q5_1: quantize_q5_1(src, dst, nb32); break;
  case SLM_TYPE_Q8_0: quantize_q8_0_file(src, dst, nb32); break;
  case SLM_TYPE_Q8_1: slm_quantize_q8_1_ref(src, dst, n); break;
  case SLM_TYPE_Q4_K: quantize_q4_K(src, dst, nb256); break;
  case SLM_TYPE_Q5_K: quantize_q5_K(src, dst, nb256); break;
  case SLM_TYPE_Q6_K: quantize_q6_K(src, dst, nb256); break;
  case SLM_TYPE_Q8_K: slm_quantize_q8_K_ref(src, dst, n); break;
  default: break;   /* callers check the type first */
  }
}
