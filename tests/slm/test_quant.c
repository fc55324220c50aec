/*
 * test_quant.c: the reference conversions of slm/kernels/quant.c and the reference dot products
 * of ref.c.
 *  - half: exhaustive over every pair of adjacent halves, the midpoint rounds to the even one and
 *    the floats next to it round to the nearer one; every half survives half -> float -> half;
 *  - bfloat: the same on a sweep of bit patterns;
 *  - every supported type: quantize -> dequantize error within the type's step, and the reference
 *    dot product equals the float dot of the dequantized rows (double) within a tight tolerance;
 *  - activation quantizers: values and the q8_1 sum / q8_K bsums invariants.
 * Byte equality with llama.cpp's own files is test_quant_files.c.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "slm/kernels/kernels.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd_u32(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng >> 11);
}
static float rnd_f(void) { return (float)rnd_u32() / 2147483648.0f - 1.0f; }   /* [-1, 1) */

static float bits_f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t f_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static void test_half(void) {
  int bad_rt = 0, bad_mid = 0;
  for (uint32_t h = 0; h < 0x10000; h++) {
    float f = slm_f16_to_f32((slm_f16)h);
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) {   /* NaN stays NaN, quiet */
      CHECK(isnan(f));
      CHECK((slm_f32_to_f16(f) & 0x7e00) == 0x7e00);
      continue;
    }
    if (slm_f32_to_f16(f) != h) bad_rt++;
    /* adjacent finite pair (h, h+1) of the same sign */
    if ((h & 0x7fff) >= 0x7bff) continue;
    float g = slm_f16_to_f32((slm_f16)(h + 1));
    float mid = (f + g) / 2;   /* exact: halves carry 11 significant bits */
    slm_f16 even = (h & 1) ? (slm_f16)(h + 1) : (slm_f16)h;
    if (slm_f32_to_f16(mid) != even) bad_mid++;
    if (slm_f32_to_f16(nextafterf(mid, f)) != h) bad_mid++;
    if (slm_f32_to_f16(nextafterf(mid, g)) != (slm_f16)(h + 1)) bad_mid++;
  }
  CHECK_EQ_INT(bad_rt, 0);
  CHECK_EQ_INT(bad_mid, 0);
  /* overflow: 65504 is the largest half; 65520 is the tie that goes to infinity */
  CHECK_EQ_INT(slm_f32_to_f16(65504.f), 0x7bff);
  CHECK_EQ_INT(slm_f32_to_f16(nextafterf(65520.f, 0)), 0x7bff);
  CHECK_EQ_INT(slm_f32_to_f16(65520.f), 0x7c00);
  CHECK_EQ_INT(slm_f32_to_f16(-1e30f), 0xfc00);
  CHECK_EQ_INT(slm_f32_to_f16(INFINITY), 0x7c00);
  CHECK_EQ_INT(slm_f32_to_f16(-0.0f), 0x8000);
  CHECK_EQ_INT(slm_f32_to_f16(0x1p-25f), 0);         /* tie between 0 and 2^-24: even 0 */
  CHECK_EQ_INT(slm_f32_to_f16(nextafterf(0x1p-25f, 1)), 1);
  CHECK_EQ_INT(slm_f32_to_f16(0x1p-30f), 0);
  CHECK_EQ_INT(slm_f32_to_f16(1e-45f), 0);           /* float subnormal */
  CHECK_EQ_INT(slm_f32_to_f16(0x1.ffcp-15f), 0x400); /* largest subnormal half + half a step up */
  CHECK_EQ_INT(slm_f32_to_f16(1.0f), 0x3c00);
  CHECK_EQ_INT(slm_f32_to_f16(-2.5f), 0xc100);
}

static void test_bfloat(void) {
  int bad = 0;
  for (uint32_t u = 0; u < 0xffff0000u; u += 0x10001u * 7 + 3) {
    float f = bits_f(u);
    if (isnan(f)) {
      CHECK(isnan(slm_bf16_to_f32(slm_f32_to_bf16(f))));
      continue;
    }
    /* the answer is one of the two truncations around f; pick by distance, ties to even */
    uint32_t lo = u & 0xffff0000u, hi = lo + 0x10000u;
    uint32_t rem = u & 0xffff;
    uint32_t want = rem < 0x8000 ? lo : rem > 0x8000 ? hi : ((lo >> 16) & 1) ? hi : lo;
    if (slm_f32_to_bf16(f) != (slm_bf16)(want >> 16)) bad++;
    if (f_bits(slm_bf16_to_f32((slm_bf16)(u >> 16))) != (u & 0xffff0000u)) bad++;
  }
  CHECK_EQ_INT(bad, 0);
  CHECK_EQ_INT(slm_f32_to_bf16(INFINITY), 0x7f80);
  CHECK_EQ_INT(slm_f32_to_bf16(3.4028235e38f), 0x7f80);   /* max float rounds up to inf */
  CHECK_EQ_INT(slm_f32_to_bf16(bits_f(0x7f800001u)) & 0x7fc0, 0x7fc0);   /* sNaN -> qNaN */
}

/* Largest |x - dequant(quant(x))| over a row, relative to the row's largest |x|. */
static double roundtrip_err(enum slm_type t, const float *x, int64_t n) {
  static uint8_t q[8192 * 4];
  static float y[8192];
  slm_quantize_row(t, x, q, n);
  slm_dequantize_row(t, q, y, n);
  double e = 0, m = 0;
  for (int64_t i = 0; i < n; i++) {
    e = fmax(e, fabs((double)x[i] - y[i]));
    m = fmax(m, fabs((double)x[i]));
  }
  return e / m;
}

static void test_roundtrip(void) {
  static const struct { enum slm_type t; double tol; } cases[] = {
    /* half a step of range/levels (a full step on the clamped side of the symmetric types),
     * relative to amax, plus room for the half-rounded scales; K types also quantize scales */
    {SLM_TYPE_F32, 0}, {SLM_TYPE_F16, 1e-3}, {SLM_TYPE_BF16, 8e-3},
    {SLM_TYPE_Q8_0, 1.05 / 127}, {SLM_TYPE_Q4_0, 1.05 / 8}, {SLM_TYPE_Q4_1, 1.05 / 15},
    {SLM_TYPE_Q5_0, 1.05 / 16}, {SLM_TYPE_Q5_1, 1.05 / 31}, {SLM_TYPE_Q4_K, 0.2},
    {SLM_TYPE_Q5_K, 0.1}, {SLM_TYPE_Q6_K, 0.05},
  };
  static float x[4096];
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    for (int trial = 0; trial < 4; trial++) {
      for (int i = 0; i < 4096; i++) x[i] = rnd_f() * (trial == 3 ? 0.05f : 1.0f) + (trial == 2 ? 0.5f : 0.0f);
      double e = roundtrip_err(cases[c].t, x, 4096);
      CHECK_MSG(e <= cases[c].tol, "%s trial %d: roundtrip error %g > %g",
                slm_type_name(cases[c].t), trial, e, cases[c].tol);
    }
    /* an all-zero row quantizes to zeros and back */
    memset(x, 0, sizeof x);
    static uint8_t q[4096 * 4];
    static float y[4096];
    slm_quantize_row(cases[c].t, x, q, 256);
    slm_dequantize_row(cases[c].t, q, y, 256);
    int nz = 0;
    for (int i = 0; i < 256; i++) nz += y[i] != 0;
    CHECK_MSG(nz == 0, "%s: zero row dequantizes to %d non-zeros", slm_type_name(cases[c].t), nz);
  }
  /* exact values: q8_0 of a block holding +-127 * 2^-7 is exact */
  for (int i = 0; i < 32; i++) x[i] = (float)((i * 37) % 255 - 127) / 128;
  static block_q8_0 b8[1];
  slm_quantize_row(SLM_TYPE_Q8_0, x, b8, 32);
  CHECK_EQ_INT(b8[0].d, slm_f32_to_f16(1.0f / 128));
  for (int i = 0; i < 32; i++) CHECK_EQ_INT(b8[0].qs[i], (i * 37) % 255 - 127);
}

static void test_activations(void) {
  const struct slm_kernels *k = slm_kernels_at(SLM_CPU_REF);
  CHECK(k != NULL);
  static float x[512];
  for (int i = 0; i < 512; i++) x[i] = rnd_f() * 3;
  x[7] = -4.0f;   /* the extreme of the first K block is negative: it maps to -127 */
  static block_q8_0 a0[16];
  static block_q8_1 a1[16];
  static block_q8_K aK[2];
  k->quantize_q8_0(x, a0, 512);
  k->quantize_q8_1(x, a1, 512);
  k->quantize_q8_K(x, aK, 512);
  int bad = 0;
  for (int b = 0; b < 16; b++) {
    float amax = 0;
    int sum = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[32 * b + j]));
    for (int j = 0; j < 32; j++) {
      float want = nearbyintf(x[32 * b + j] * (127.f / amax));
      bad += a0[b].qs[j] != (int8_t)want || a1[b].qs[j] != (int8_t)want;
      sum += a1[b].qs[j];
    }
    bad += a0[b].d != slm_f32_to_f16(amax / 127) || a1[b].d != a0[b].d;
    bad += a1[b].s != slm_f32_to_f16(amax / 127 * (float)sum);
  }
  CHECK_EQ_INT(bad, 0);
  CHECK_EQ_INT(aK[0].qs[7], -127);
  for (int b = 0; b < 2; b++) {
    for (int g = 0; g < 16; g++) {
      int s = 0;
      for (int j = 0; j < 16; j++) s += aK[b].qs[16 * g + j];
      if (s != aK[b].bsums[g]) bad++;
    }
    for (int j = 0; j < 256; j++) {
      double err = fabs((double)aK[b].d * aK[b].qs[j] - x[256 * b + j]);
      if (err > fabs(aK[b].d) * 0.5001) bad++;
    }
  }
  CHECK_EQ_INT(bad, 0);
}

/* The reference dot of each type equals the exact dot of the dequantized operands. */
static void test_ref_dots(void) {
  const struct slm_kernels *k = slm_kernels_at(SLM_CPU_REF);
  static const enum slm_type types[] = {
    SLM_TYPE_F32, SLM_TYPE_F16, SLM_TYPE_BF16, SLM_TYPE_Q8_0, SLM_TYPE_Q4_0, SLM_TYPE_Q4_1,
    SLM_TYPE_Q5_0, SLM_TYPE_Q5_1, SLM_TYPE_Q4_K, SLM_TYPE_Q5_K, SLM_TYPE_Q6_K,
  };
  enum { N = 1024 };
  static float w[N], a[N], wd[N], ad[N];
  static uint8_t qw[N * 4], qa[N * 4];
  for (size_t c = 0; c < sizeof types / sizeof types[0]; c++) {
    enum slm_type t = types[c], at = slm_vec_dot_type(t);
    for (int trial = 0; trial < 3; trial++) {
      for (int i = 0; i < N; i++) {
        w[i] = rnd_f() + (trial == 1 ? 0.3f : 0.0f);
        a[i] = rnd_f() * 2;
      }
      slm_quantize_row(t, w, qw, N);
      switch (at) {
      case SLM_TYPE_Q8_0: k->quantize_q8_0(a, qa, N); break;
      case SLM_TYPE_Q8_1: k->quantize_q8_1(a, qa, N); break;
      case SLM_TYPE_Q8_K: k->quantize_q8_K(a, qa, N); break;
      default: slm_quantize_row(at, a, qa, N); break;
      }
      slm_dequantize_row(t, qw, wd, N);
      slm_dequantize_row(at, qa, ad, N);
      double exact = 0, mag = 0;
      for (int i = 0; i < N; i++) {
        exact += (double)wd[i] * ad[i];
        mag += fabs((double)wd[i] * ad[i]);
      }
      float got = -1;
      k->vec_dot[t](N, &got, qw, qa);
      /* q4_1/q5_1 use the stored half s ~ d*sum(q) for the min term: allow its rounding,
       * 2^-11 of |m * s| per block */
      double tol = 1e-5 * mag;
      if (at == SLM_TYPE_Q8_1) {
        const block_q8_1 *b1 = (const block_q8_1 *)qa;
        for (int b = 0; b < N / 32; b++) {
          slm_f16 m = t == SLM_TYPE_Q4_1 ? ((const block_q4_1 *)qw)[b].m : ((const block_q5_1 *)qw)[b].m;
          tol += fabs((double)slm_f16_to_f32(m) * slm_f16_to_f32(b1[b].s)) * 0x1p-11;
        }
      }
      CHECK_MSG(fabs(got - exact) <= tol, "%s trial %d: dot %.7g vs %.7g (tol %g)",
                slm_type_name(t), trial, got, exact, tol);
      /* and the gemm tile agrees with vec_dot exactly (the reference gemm is vec_dot in a loop) */
      float y[2];
      k->gemm[t](N, 1, 2, y, 1, qw, 0, qa, 0);
      CHECK(y[0] == got && y[1] == got);
    }
  }
  CHECK_EQ_INT(slm_vec_dot_type(SLM_TYPE_Q5_0), SLM_TYPE_Q8_0);
  CHECK_EQ_INT(slm_vec_dot_type(SLM_TYPE_Q5_1), SLM_TYPE_Q8_1);
  CHECK_EQ_INT(slm_vec_dot_type(SLM_TYPE_Q6_K), SLM_TYPE_Q8_K);
  CHECK_EQ_INT(slm_vec_dot_type(SLM_TYPE_BF16), SLM_TYPE_BF16);
}

/* The x8 layout holds the same matrix: its reference gemm equals the original rows' reference
 * dot within float reordering, for every row of a group; types without x8 report size 0. */
static void test_repack_x8(void) {
  const struct slm_kernels *k = slm_kernels_at(SLM_CPU_REF);
  static const enum slm_type types[] = {SLM_TYPE_Q8_0, SLM_TYPE_Q4_0, SLM_TYPE_Q5_0, SLM_TYPE_Q4_K, SLM_TYPE_Q5_K, SLM_TYPE_Q6_K};
  enum { N = 512, R = 16 };
  static float w[N], a[N], wd[N], ad[N];
  static uint8_t q[R * N * 2], x8[R * N * 2], qa[N * 2];
  for (size_t c = 0; c < sizeof types / sizeof types[0]; c++) {
    const enum slm_type t = types[c], at = slm_vec_dot_type(t);
    const size_t rs = slm_row_size(t, N), gs = slm_repack_x8_size(t, N);
    CHECK(gs >= 8 * rs && gs <= 8 * rs + 8 * rs / 30);   /* same size, Q4_K +2.8%, Q5_K +2.3% */
    for (int r = 0; r < R; r++) {
      for (int i = 0; i < N; i++) w[i] = rnd_f() + (r % 3 == 1 ? 0.4f : 0.0f);
      slm_quantize_row(t, w, q + r * rs, N);
    }
    for (int i = 0; i < N; i++) a[i] = rnd_f() * 2;
    if (at == SLM_TYPE_Q8_0) k->quantize_q8_0(a, qa, N);
    else k->quantize_q8_K(a, qa, N);
    slm_repack_x8(t, N, R, q, rs, x8);
    float y[R];
    slm_gemm_x8_ref(t, N, R, 1, y, R, x8, gs, qa, 0);
    int bad = 0;
    for (int r = 0; r < R; r++) {
      float want;
      k->vec_dot[t](N, &want, q + r * rs, qa);
      slm_dequantize_row(t, q + r * rs, wd, N);
      slm_dequantize_row(at, qa, ad, N);
      double mag = 0;
      for (int i = 0; i < N; i++) mag += fabs((double)wd[i] * ad[i]);
      if (!(fabs((double)y[r] - want) <= 1e-5 * mag + 1e-30)) {
        if (bad++ < 2) fprintf(stderr, "%s row %d: x8 %.9g vs %.9g\n", slm_type_name(t), r, y[r], want);
      }
    }
    CHECK_MSG(bad == 0, "%s: %d x8 rows differ from the original layout", slm_type_name(t), bad);
  }
  CHECK_EQ_INT(slm_repack_x8_size(SLM_TYPE_Q4_1, 512), 0);
  CHECK_EQ_INT(slm_repack_x8_size(SLM_TYPE_F16, 512), 0);
  CHECK_EQ_INT(slm_repack_x8_size(SLM_TYPE_Q4_K, 500), 0);
}

static void test_dispatch(void) {
  enum slm_cpu_level l = slm_cpu_detect();
  printf("cpu level: %s\n", slm_cpu_level_name(l));
  CHECK(slm_kernels_at(l) != NULL);
  CHECK_EQ_INT(slm_kernels_at(l)->level, l);
  if (l + 1 < SLM_CPU_LEVEL_COUNT) CHECK(slm_kernels_at(l + 1) == NULL);
  CHECK_EQ_INT(slm_kernels_init(SLM_CPU_REF)->level, SLM_CPU_REF);
  setenv("SLM_CPU_MAX", "ref", 1);
  CHECK_EQ_INT(slm_kernels_init(SLM_CPU_LEVEL_COUNT)->level, SLM_CPU_REF);
  unsetenv("SLM_CPU_MAX");
  CHECK_EQ_INT(slm_kernels_init(SLM_CPU_LEVEL_COUNT)->level, l);
  for (int i = 0; i <= (int)l; i++) {
    const struct slm_kernels *k = slm_kernels_at((enum slm_cpu_level)i);
    int missing = 0;
    static const enum slm_type types[] = {
      SLM_TYPE_F32, SLM_TYPE_F16, SLM_TYPE_BF16, SLM_TYPE_Q8_0, SLM_TYPE_Q4_0, SLM_TYPE_Q4_1,
      SLM_TYPE_Q5_0, SLM_TYPE_Q5_1, SLM_TYPE_Q4_K, SLM_TYPE_Q5_K, SLM_TYPE_Q6_K,
    };
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
      missing += !k->vec_dot[types[t]] + !k->gemm[types[t]];
    missing += !k->dot_f32 + !k->exp_sum_f32 + !k->quantize_q8_K + !k->f32_to_bf16;
    CHECK_EQ_INT(missing, 0);
  }
  CHECK_STR(slm_cpu_level_name(SLM_CPU_AVX512_VNNI), "vnni");
}

int main(void) {
  test_half();
  test_bfloat();
  test_roundtrip();
  test_activations();
  test_ref_dots();
  test_repack_x8();
  test_dispatch();
  return check_done();
}
