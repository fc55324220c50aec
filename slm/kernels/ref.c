/*
 * ref.c: the plain C reference of every kernel in the table: the dot product of each weight type
 * with its activation type, the gemm tile built on it, and the float helpers of the transformer.
 * Always built, used on CPUs without AVX2 and as the oracle of tests/slm/test_checkasm.c.
 *
 * DESIGN. Every quantized dot product is an exact integer sum per block followed by float
 * scaling, so a SIMD version that keeps the integer part exact can only differ in the order of
 * the float additions: the checkasm test holds them to a tight relative tolerance. The float
 * scaling per block is written out here as the contract the SIMD versions follow:
 *   Q8_0/Q4_0/Q5_0 (x q8_0):  sum_b (dw_b * da_b) * isum_b
 *   Q4_1/Q5_1      (x q8_1):  sum_b (dw_b * da_b) * isum_b + mw_b * sa_b
 *   Q4_K/Q5_K      (x q8_K):  sum_B (da_B * dw_B) * isum_B - (da_B * dminw_B) * imin_B
 *   Q6_K           (x q8_K):  sum_B (da_B * dw_B) * isum_B
 * where isum is the integer dot (with the 6-bit sub-block scales applied in integers for K types)
 * and imin = sum_j m_j * bsum_j. Float reductions (F32/F16/BF16 dots, rmsnorm, softmax sums)
 * accumulate in double here, so the reference is the accurate answer the fast versions approach.
 */
#include <math.h>
#include <string.h>

#include "slm/kernels/impl.h"
#include "slm/kernels/kernels.h"

enum slm_type slm_vec_dot_type(enum slm_type t) {
  switch (t) {
  case SLM_TYPE_Q4_0: case SLM_TYPE_Q5_0: case SLM_TYPE_Q8_0: return SLM_TYPE_Q8_0;
  case SLM_TYPE_Q4_1: case SLM_TYPE_Q5_1: return SLM_TYPE_Q8_1;
  case SLM_TYPE_Q4_K: case SLM_TYPE_Q5_K: case SLM_TYPE_Q6_K: return SLM_TYPE_Q8_K;
  case SLM_TYPE_F16: return SLM_TYPE_F16;
  case SLM_TYPE_BF16: return SLM_TYPE_BF16;
  default: return SLM_TYPE_F32;
  }
}

/* ---------------------------------------------------------------- quantized dots */

static void vec_dot_q4_0_ref(int64_t n, float *s, const void *vw, const void *va) {
  const block_q4_0 *w = vw;
  const block_q8_0 *a = va;
  float sum = 0;
  for (int64_t b = 0; b < n / QK8_0; b++) {
    int isum = 0;
    for (int j = 0; j < 16; j++) {
      isum += ((w[b].qs[j] & 0x0f) - 8) * a[b].qs[j];
      isum += ((w[b].qs[j] >> 4) - 8) * a[b].qs[j + 16];
    }
    sum += (slm_f16_to_f32(w[b].d) * slm_f16_to_f32(a[b].d)) * (float)isum;
  }
  *s = sum;
}

static void vec_dot_q4_1_ref(int64_t n, float *s, const void *vw, const void *va) {
  const block_q4_1 *w = vw;
  const block_q8_1 *a = va;
  float sum = 0;
  for (int64_t b = 0; b < n / QK8_1; b++) {
    int isum = 0;
    for (int j = 0; j < 16; j++) {
      isum += (w[b].qs[j] & 0x0f) * a[b].qs[j];
      isum += (w[b].qs[j] >> 4) * a[b].qs[j + 16];
    }
    sum += (slm_f16_to_f32(w[b].d) * slm_f16_to_f32(a[b].d)) * (float)isum +
           slm_f16_to_f32(w[b].m) * slm_f16_to_f32(a[b].s);
  }
  *s = sum;
}

static void vec_dot_q5_0_ref(int64_t n, float *s, const void *vw, const void *va) {
  const block_q5_0 *w = vw;
  const block_q8_0 *a = va;
  float sum = 0;
  for (int64_t b = 0; b < n / QK8_0; b++) {
    uint32_t qh;
    memcpy(&qh, w[b].qh, 4);
    int isum = 0;
    for (int j = 0; j < 16; j++) {
      int lo = ((w[b].qs[j] & 0x0f) | (int)(((qh >> j) & 1) << 4)) - 16;
      int hi = ((w[b].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4)) - 16;
      isum += lo * a[b].qs[j] + hi * a[b].qs[j + 16];
    }
    sum += (slm_f16_to_f32(w[b].d) * slm_f16_to_f32(a[b].d)) * (float)isum;
  }
  *s = sum;
}

static void vec_dot_q5_1_ref(int64_t n, float *s, const void *vw, const void *va) {
  const block_q5_1 *w = vw;
  const block_q8_1 *a = va;
  float sum = 0;
  for (int64_t b = 0; b < n / QK8_1; b++) {
    uint32_t qh;
    memcpy(&qh, w[b].qh, 4);
    int isum = 0;
    for (int j = 0; j < 16; j++) {
      int lo = (w[b].qs[j] & 0x0f) | (int)(((qh >> j) & 1) << 4);
      int hi = (w[b].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
      isum += lo * a[b].qs[j] + hi * a[b].qs[j + 16];
    }
    sum += (slm_f16_to_f32(w[b].d) * slm_f16_to_f32(a[b].d)) * (float)isum +
           slm_f16_to_f32(w[b].m) * slm_f16_to_f32(a[b].s);
  }
  *s = sum;
}

static void vec_dot_q8_0_ref(int64_t n, float *s, const void *vw, const void *va) {
  const block_q8_0 *w = vw;
  const block_q8_0 *a = va;
  float sum = 0;
  for (int64_t b = 0; b < n / QK8_0; b++) {
    int isum = 0;
    for (int j = 0; j < QK8_0; j++) isum += w[b].qs[j] * a[b].qs[j];
    sum += (slm_f16_to_f32(w[b].d) * slm_f16_to_f32(a[b].d)) * (float)isum;
  }
  *s = sum;
}

static void vec_dot_q4_K_ref(int64_t n, float *s, const void *vw, const void *va) {
  const block_q4_K *w = vw;
  const block_q8_K *a = va;
  float sum = 0;
  for (int64_t b = 0; b < n / QK_K; b++) {
    const uint8_t *q = w[b].qs;
    const int8_t *qa = a[b].qs;
    int isum = 0, imin = 0;
    for (int j = 0; j < QK_K / 64; j++, q += 32, qa += 64) {
      uint8_t s1, m1, s2, m2;
      slm_k4_scale_min(2 * j, w[b].scales, &s1, &m1);
      slm_k4_scale_min(2 * j + 1, w[b].scales, &s2, &m2);
      int d1 = 0, d2 = 0;
      for (int l = 0; l < 32; l++) {
        d1 += (q[l] & 0x0f) * qa[l];
        d2 += (q[l] >> 4) * qa[l + 32];
      }
      isum += s1 * d1 + s2 * d2;
      imin += m1 * (a[b].bsums[4 * j] + a[b].bsums[4 * j + 1]) +
              m2 * (a[b].bsums[4 * j + 2] + a[b].bsums[4 * j + 3]);
    }
    sum += (a[b].d * slm_f16_to_f32(w[b].d)) * (float)isum -
           (a[b].d * slm_f16_to_f32(w[b].dmin)) * (float)imin;
  }
  *s = sum;
}

static void vec_dot_q5_K_ref(int64_t n, float *s, const void *vw, const void *va) {
  const block_q5_K *w = vw;
  const block_q8_K *a = va;
  float sum = 0;
  for (int64_t b = 0; b < n / QK_K; b++) {
    const uint8_t *q = w[b].qs, *qh = w[b].qh;
    const int8_t *qa = a[b].qs;
    int isum = 0, imin = 0;
    for (int j = 0; j < QK_K / 64; j++, q += 32, qa += 64) {
      uint8_t s1, m1, s2, m2;
      slm_k4_scale_min(2 * j, w[b].scales, &s1, &m1);
      slm_k4_scale_min(2 * j + 1, w[b].scales, &s2, &m2);
      int d1 = 0, d2 = 0;
      for (int l = 0; l < 32; l++) {
        d1 += ((q[l] & 0x0f) | (((qh[l] >> (2 * j)) & 1) << 4)) * qa[l];
        d2 += ((q[l] >> 4) | (((qh[l] >> (2 * j + 1)) & 1) << 4)) * qa[l + 32];
      }
      isum += s1 * d1 + s2 * d2;
      imin += m1 * (a[b].bsums[4 * j] + a[b].bsums[4 * j + 1]) +
              m2 * (a[b].bsums[4 * j + 2] + a[b].bsums[4 * j + 3]);
    }
    sum += (a[b].d * slm_f16_to_f32(w[b].d)) * (float)isum -
           (a[b].d * slm_f16_to_f32(w[b].dmin)) * (float)imin;
  }
  *s = sum;
}

static void vec_dot_q6_K_ref(int64_t n, float *s, const void *vw, const void *va) {
  const block_q6_K *w = vw;
  const block_q8_K *a = va;
  float sum = 0;
  for (int64_t b = 0; b < n / QK_K; b++) {
    int isum = 0;
    for (int h = 0; h < 2; h++) {
      const uint8_t *ql = w[b].ql + 64 * h, *qh = w[b].qh + 32 * h;
      const int8_t *sc = w[b].scales + 8 * h, *qa = a[b].qs + 128 * h;
      int d[8] = {0};   /* sub-blocks of 16: l/16 + {0,2,4,6} */
      for (int l = 0; l < 32; l++) {
        int is = l / 16;
        d[is + 0] += (((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32) * qa[l];
        d[is + 2] += (((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32) * qa[l + 32];
        d[is + 4] += (((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32) * qa[l + 64];
        d[is + 6] += (((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32) * qa[l + 96];
      }
      for (int j = 0; j < 8; j++) isum += sc[j] * d[j];
    }
    sum += (a[b].d * slm_f16_to_f32(w[b].d)) * (float)isum;
  }
  *s = sum;
}

/* ---------------------------------------------------------------- float dots */

static void vec_dot_f32_ref(int64_t n, float *s, const void *vw, const void *va) {
  const float *w = vw, *a = va;
  double sum = 0;
  for (int64_t i = 0; i < n; i++) sum += (double)w[i] * a[i];
  *s = (float)sum;
}

static void vec_dot_f16_ref(int64_t n, float *s, const void *vw, const void *va) {
  const slm_f16 *w = vw, *a = va;
  double sum = 0;
  for (int64_t i = 0; i < n; i++) sum += (double)slm_f16_to_f32(w[i]) * slm_f16_to_f32(a[i]);
  *s = (float)sum;
}

static void vec_dot_bf16_ref(int64_t n, float *s, const void *vw, const void *va) {
  const slm_bf16 *w = vw, *a = va;
  double sum = 0;
  for (int64_t i = 0; i < n; i++) sum += (double)slm_bf16_to_f32(w[i]) * slm_bf16_to_f32(a[i]);
  *s = (float)sum;
}

/* ---------------------------------------------------------------- gemm tiles */

#define GEMM_REF(T)                                                                           \
  static void gemm_##T##_ref(int64_t n, int nr, int nc, float *y, int64_t ys, const void *w, \
                             size_t ws, const void *a, size_t as) {                          \
    for (int j = 0; j < nc; j++)                                                              \
      for (int i = 0; i < nr; i++)                                                            \
        vec_dot_##T##_ref(n, y + j * ys + i, (const char *)w + i * ws, (const char *)a + j * as); \
  }
GEMM_REF(q4_0)
GEMM_REF(q4_1)
GEMM_REF(q5_0)
GEMM_REF(q5_1)
GEMM_REF(q8_0)
GEMM_REF(q4_K)
GEMM_REF(q5_K)
GEMM_REF(q6_K)
GEMM_REF(f32)
GEMM_REF(f16)
GEMM_REF(bf16)

/* ---------------------------------------------------------------- conversions */

static void f32_to_f16_ref(const float *x, slm_f16 *y, int64_t k) {
  for (int64_t i = 0; i < k; i++) y[i] = slm_f32_to_f16(x[i]);
}
static void f16_to_f32_ref(const slm_f16 *x, float *y, int64_t k) {
  for (int64_t i = 0; i < k; i++) y[i] = slm_f16_to_f32(x[i]);
}
static void f32_to_bf16_ref(const float *x, slm_bf16 *y, int64_t k) {
  for (int64_t i = 0; i < k; i++) y[i] = slm_f32_to_bf16(x[i]);
}

/* ---------------------------------------------------------------- float helpers */

static float dot_f32_ref(int64_t n, const float *a, const float *b) {
  double sum = 0;
  for (int64_t i = 0; i < n; i++) sum += (double)a[i] * b[i];
  return (float)sum;
}

static float dot_f32_f16_ref(int64_t n, const float *a, const slm_f16 *b) {
  double sum = 0;
  for (int64_t i = 0; i < n; i++) sum += (double)a[i] * slm_f16_to_f32(b[i]);
  return (float)sum;
}

/* The element-wise helpers round the product and then the sum (no fused multiply-add), and the
 * SIMD versions do the same, so these are bit-exact across levels. */
static void axpy_f32_ref(int64_t n, float alpha, const float *x, float *y) {
  for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

static void axpy_f16_ref(int64_t n, float alpha, const slm_f16 *x, float *y) {
  for (int64_t i = 0; i < n; i++) y[i] += alpha * slm_f16_to_f32(x[i]);
}

static void scale_f32_ref(int64_t n, float alpha, float *y) {
  for (int64_t i = 0; i < n; i++) y[i] *= alpha;
}

static void add_f32_ref(int64_t n, float *y, const float *x) {
  for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

/* y = x * (1/sqrt(mean(x^2) + eps)) * w, as llama.cpp's rms_norm (sum in double) then mul. */
static void rmsnorm_f32_ref(int64_t n, float *y, const float *x, const float *w, float eps) {
  double sum = 0;
  for (int64_t i = 0; i < n; i++) sum += (double)x[i] * x[i];
  const float scale = 1.0f / sqrtf((float)(sum / (double)n) + eps);
  for (int64_t i = 0; i < n; i++) y[i] = (x[i] * scale) * w[i];
}

static void swiglu_f32_ref(int64_t n, float *y, const float *gate, const float *up) {
  for (int64_t i = 0; i < n; i++) y[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

static float max_f32_ref(int64_t n, const float *x) {
  float m = -INFINITY;
  for (int64_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
  return m;
}

static float exp_sum_f32_ref(int64_t n, float *y, const float *x, float max) {
  double sum = 0;
  for (int64_t i = 0; i < n; i++) {
    y[i] = expf(x[i] - max);
    sum += y[i];
  }
  return (float)sum;
}

void slm_kernels_fill_ref(struct slm_kernels *k) {
  memset(k, 0, sizeof *k);
  k->level = SLM_CPU_REF;
  k->quantize_q8_0 = slm_quantize_q8_0_ref;
  k->quantize_q8_1 = slm_quantize_q8_1_ref;
  k->quantize_q8_K = slm_quantize_q8_K_ref;
  k->f32_to_f16 = f32_to_f16_ref;
  k->f16_to_f32 = f16_to_f32_ref;
  k->f32_to_bf16 = f32_to_bf16_ref;
#define SET(T, t)                          \
  k->vec_dot[SLM_TYPE_##T] = vec_dot_##t##_ref; \
  k->gemm[SLM_TYPE_##T] = gemm_##t##_ref;
  SET(Q4_0, q4_0)
  SET(Q4_1, q4_1)
  SET(Q5_0, q5_0)
  SET(Q5_1, q5_1)
  SET(Q8_0, q8_0)
  SET(Q4_K, q4_K)
  SET(Q5_K, q5_K)
  SET(Q6_K, q6_K)
  SET(F32, f32)
  SET(F16, f16)
  SET(BF16, bf16)
#undef SET
  k->dot_f32 = dot_f32_ref;
  k->dot_f32_f16 = dot_f32_f16_ref;
  k->axpy_f32 = axpy_f32_ref;
  k->axpy_f16 = axpy_f16_ref;
  k->scale_f32 = scale_f32_ref;
  k->add_f32 = add_f32_ref;
  k->rmsnorm_f32 = rmsnorm_f32_ref;
  k->swiglu_f32 = swiglu_f32_ref;
  k->max_f32 = max_f32_ref;
  k->exp_sum_f32 = exp_sum_f32_ref;
}
