/*
 * test_checkasm.c: every kernel table entry at every level this CPU supports, against the plain C
 * reference (ref.c/quant.c), on random and edge-case inputs (dav1d's checkasm idea).
 *
 * What "equal" means, per kind of kernel:
 *  - activation quantizers, half/bfloat conversions, axpy/scale/add, max: bit-exact;
 *  - quantized dot products and gemm tiles: the integer part is exact by construction, only the
 *    float scaling is reordered (lanes, horizontal sums, a product per lane before the sum), so
 *    |got - ref| <= (2 * blocks + 8) * FLT_EPSILON * B, where B bounds every partial term: the
 *    sum over elements of |weight magnitude| * |activation|, with the zero-point / min / +32
 *    corrections counted separately (see weight_mag);
 *  - float dot products: (n / 8 + 8) * FLT_EPSILON * sum |w * a|; BF16, which accumulates in
 *    double, 2 * FLT_EPSILON * sum |w * a| + 1e-30 (vdpbf16ps flushes subnormals);
 *  - rmsnorm: 4 ulp of each output; swiglu and exp: 1e-6 relative (polynomial exp), plus 2^-126
 *    absolute where results go subnormal; the softmax sum 1e-6 relative.
 * Also: gemm tiles of odd shapes and strides must write exactly their NR x NC outputs, each
 * bit-identical to the same level's vec_dot of that pair (so batching never changes a logit).
 * Runs in well under a second (a few under ASan).
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "slm/kernels/impl.h"
#include "slm/kernels/kernels.h"

static uint64_t rng = 0x243f6a8885a308d3ull;
static uint32_t rnd_u32(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng >> 11);
}
static float rnd_f(void) { return (float)rnd_u32() / 2147483648.0f - 1.0f; }

static const enum slm_type wtypes[] = {
  SLM_TYPE_Q8_0, SLM_TYPE_Q4_0, SLM_TYPE_Q4_1, SLM_TYPE_Q5_0, SLM_TYPE_Q5_1,
  SLM_TYPE_Q4_K, SLM_TYPE_Q5_K, SLM_TYPE_Q6_K, SLM_TYPE_F32, SLM_TYPE_F16, SLM_TYPE_BF16,
};
#define N_WTYPES (int)(sizeof wtypes / sizeof wtypes[0])

static const char *lvl;   /* name of the level under test, for messages */

/* ---------------------------------------------------------------- input generators */

enum fill_kind { F_UNIFORM, F_LARGE, F_TINY, F_OFFSET, F_SPIKY, F_ZERO, F_CONST, F_DENORM, F_EXTREME, F_KINDS };

static void fill_floats(float *x, int64_t n, enum fill_kind kind) {
  for (int64_t i = 0; i < n; i++) {
    float v = rnd_f();
    switch (kind) {
    case F_UNIFORM: x[i] = v; break;
    case F_LARGE: x[i] = v * 3e4f; break;
    case F_TINY: x[i] = v * 1e-20f; break;
    case F_OFFSET: x[i] = 0.75f + 0.25f * v; break;
    case F_SPIKY: x[i] = (rnd_u32() % 17 == 0) ? v * 100 : v * 0.01f; break;
    case F_ZERO: x[i] = 0; break;
    case F_CONST: x[i] = -1.5f; break;
    case F_DENORM: x[i] = v * 1e-39f; break;
    case F_EXTREME: x[i] = (rnd_u32() & 1) ? (v < 0 ? -FLT_MAX : FLT_MAX) : v * 1e37f; break;
    default: x[i] = v; break;
    }
  }
}

/* A random finite half in +-[2^-14, 2^4] (quant scales; no inf/NaN). */
static slm_f16 rnd_scale(void) {
  uint16_t e = (uint16_t)(1 + rnd_u32() % 19), m = (uint16_t)(rnd_u32() & 0x3ff);
  return (slm_f16)(((rnd_u32() & 1) << 15) | (e << 10) | m);
}

/* Weight rows: either the file quantizer on floats (realistic), or random bits with sane half
 * scales (every bit pattern of the quants, incl. Q8_0 -128 and Q6_K scale -128), or extremes. */
static void make_weights(enum slm_type t, void *dst, int64_t n, int mode) {
  static float tmp[8192];
  const size_t rs = slm_row_size(t, n);
  uint8_t *p = dst;
  if (mode == 0 || t == SLM_TYPE_F32 || t == SLM_TYPE_F16 || t == SLM_TYPE_BF16) {
    fill_floats(tmp, n, mode == 2 ? F_LARGE : F_UNIFORM);
    slm_quantize_row(t, tmp, dst, n);
    return;
  }
  for (size_t i = 0; i < rs; i++) p[i] = mode == 1 ? (uint8_t)rnd_u32() : (mode == 2 ? 0xff : 0x00);
  const size_t bs = slm_type_infos[t].size;
  for (size_t off = 0; off < rs; off += bs) {
    slm_f16 *h = (slm_f16 *)(p + off);
    switch (t) {
    case SLM_TYPE_Q4_0: case SLM_TYPE_Q5_0: case SLM_TYPE_Q8_0: h[0] = rnd_scale(); break;
    case SLM_TYPE_Q4_1: case SLM_TYPE_Q5_1: case SLM_TYPE_Q4_K: case SLM_TYPE_Q5_K:
      h[0] = rnd_scale();
      h[1] = rnd_scale();
      break;
    case SLM_TYPE_Q6_K: {
      slm_f16 d = rnd_scale();
      memcpy(p + off + 208, &d, 2);
      break;
    }
    default: break;
    }
  }
}

static size_t act_size(enum slm_type at, int64_t n) {
  return slm_row_size(at == SLM_TYPE_Q8_1 ? SLM_TYPE_Q8_0 : at, n) + (at == SLM_TYPE_Q8_1 ? (size_t)n / 16 : 0);
}

/* Activations as the engine makes them: the reference quantizer/converter on floats. */
static void make_acts(const struct slm_kernels *r, enum slm_type at, void *dst, int64_t n, enum fill_kind kind) {
  static float tmp[8192];
  fill_floats(tmp, n, kind);
  switch (at) {
  case SLM_TYPE_Q8_0: r->quantize_q8_0(tmp, dst, n); break;
  case SLM_TYPE_Q8_1: r->quantize_q8_1(tmp, dst, n); break;
  case SLM_TYPE_Q8_K: r->quantize_q8_K(tmp, dst, n); break;
  case SLM_TYPE_F16: r->f32_to_f16(tmp, dst, n); break;
  case SLM_TYPE_BF16: r->f32_to_bf16(tmp, dst, n); break;
  default: memcpy(dst, tmp, (size_t)n * 4); break;
  }
}

/* |weight| bound per element, covering the separately rounded parts of each kernel's sum. */
static void weight_mag(enum slm_type t, const void *w, float *mag, int64_t n) {
  static uint8_t c[8192 * 4];
  const size_t rs = slm_row_size(t, n), bs = slm_type_infos[t].size;
  memcpy(c, w, rs);
  for (size_t off = 0; off < rs; off += bs) {
    slm_f16 *h = (slm_f16 *)(c + off);
    switch (t) {
    case SLM_TYPE_Q4_1: case SLM_TYPE_Q5_1:   /* |d| u + |m| */
      h[0] &= 0x7fff;
      h[1] &= 0x7fff;
      break;
    case SLM_TYPE_Q4_K: case SLM_TYPE_Q5_K:   /* |d| sc q + |dmin| m */
      h[0] &= 0x7fff;
      h[1] |= 0x8000;
      break;
    case SLM_TYPE_Q6_K: {                     /* |d sc| * 96 covers u*sc and the 32*sc correction */
      block_q6_K *b = (block_q6_K *)(c + off);
      memset(b->ql, 0, sizeof b->ql);
      memset(b->qh, 0, sizeof b->qh);
      break;
    }
    default: break;
    }
  }
  slm_dequantize_row(t, c, mag, n);
  for (int64_t i = 0; i < n; i++) mag[i] = fabsf(mag[i]) * (t == SLM_TYPE_Q6_K ? 3.0f : 1.0f);
  if (t == SLM_TYPE_Q4_0 || t == SLM_TYPE_Q5_0 || t == SLM_TYPE_Q8_0) {
    /* lanes hold u*a and -z*a separately: |q| + z <= 2 * max level, bound by |d| * 2z */
    const int z = t == SLM_TYPE_Q4_0 ? 8 : t == SLM_TYPE_Q5_0 ? 16 : 128;
    for (int64_t b = 0; b < n / 32; b++) {
      float d = fabsf(slm_f16_to_f32(*(const slm_f16 *)((const uint8_t *)w + b * bs)));
      for (int i = 0; i < 32; i++) mag[32 * b + i] = d * (float)(2 * z);
    }
  }
}

static double dot_bound(enum slm_type t, enum slm_type at, const void *w, const void *a, int64_t n) {
  static float wm[8192], am[8192];
  weight_mag(t, w, wm, n);
  slm_dequantize_row(at, a, am, n);
  double B = 0;
  for (int64_t i = 0; i < n; i++) B += (double)wm[i] * fabs((double)am[i]);
  if (at == SLM_TYPE_Q8_1)   /* the m * s terms */
    for (int64_t b = 0; b < n / 32; b++) {
      const block_q8_1 *ab = (const block_q8_1 *)a + b;
      slm_f16 m = t == SLM_TYPE_Q4_1 ? ((const block_q4_1 *)w)[b].m : ((const block_q5_1 *)w)[b].m;
      B += fabs((double)slm_f16_to_f32(m) * slm_f16_to_f32(ab->s));
    }
  return B;
}

static double dot_tol(enum slm_type t, int64_t n, double B) {
  const int blck = slm_type_infos[t].blck;
  /* BF16 sums in double (exact products, or vdpbf16ps pairs rounded once), see tmpl256.h */
  if (t == SLM_TYPE_BF16) return 2 * FLT_EPSILON * B + 1e-30;
  if (blck == 1) return ((double)n / 8 + 8) * FLT_EPSILON * B;
  return (2.0 * (double)(n / blck) + 8) * FLT_EPSILON * B;
}

/* ---------------------------------------------------------------- checks */

static void check_quantizers(const struct slm_kernels *r, const struct slm_kernels *k) {
  static float x[4096];
  static uint8_t qa[8192], qb[8192];
  static const int64_t blocks32[] = {1, 2, 3, 5, 8, 9, 64};
  int bad = 0, runs = 0;
  for (int kind = 0; kind < F_KINDS; kind++) {
    for (size_t li = 0; li < sizeof blocks32 / sizeof blocks32[0]; li++) {
      const int64_t n = blocks32[li] * 32;
      fill_floats(x, n, (enum fill_kind)kind);
      memset(qa, 0xaa, sizeof qa);
      memset(qb, 0x55, sizeof qb);
      r->quantize_q8_0(x, qa, n);
      k->quantize_q8_0(x, qb, n);
      bad += memcmp(qa, qb, slm_row_size(SLM_TYPE_Q8_0, n)) != 0;
      r->quantize_q8_1(x, qa, n);
      k->quantize_q8_1(x, qb, n);
      bad += memcmp(qa, qb, (size_t)n / 32 * sizeof(block_q8_1)) != 0;
      runs += 2;
      if (n % 256 == 0 || n == 64 * 32) {
        r->quantize_q8_K(x, qa, n);
        k->quantize_q8_K(x, qb, n);
        bad += memcmp(qa, qb, (size_t)n / 256 * sizeof(block_q8_K)) != 0;
        runs++;
      }
    }
    /* a q8_K block whose extreme appears twice with both signs: the first one sets the sign */
    fill_floats(x, 256, F_UNIFORM);
    x[17] = -2.0f;
    x[200] = 2.0f;
    r->quantize_q8_K(x, qa, 256);
    k->quantize_q8_K(x, qb, 256);
    bad += memcmp(qa, qb, sizeof(block_q8_K)) != 0;
  }
  CHECK_MSG(bad == 0, "%s: %d of %d quantizer runs differ from the reference", lvl, bad, runs);
}

static void check_conversions(const struct slm_kernels *r, const struct slm_kernels *k) {
  static float x[1100], ya[1100], yb[1100];
  static uint16_t ha[1100], hb[1100];
  int bad = 0;
  for (int trial = 0; trial < 6; trial++) {
    const int64_t n = trial < 5 ? 1 + (int64_t)(rnd_u32() % 70) : 1027;
    for (int64_t i = 0; i < n; i++) {
      uint32_t u = rnd_u32() ^ (rnd_u32() << 1);
      switch (trial % 3) {
      case 0: memcpy(&x[i], &u, 4); if (isnan(x[i])) x[i] = 1.0f; break;   /* any finite/inf bits */
      case 1: x[i] = rnd_f() * 70000.f; break;
      default: x[i] = rnd_f() * 1e-5f; break;                               /* half subnormals */
      }
    }
    x[0] = INFINITY;
    if (n > 3) { x[1] = -0.0f; x[2] = 65520.f; x[3] = 0x1p-25f; }
    r->f32_to_f16(x, ha, n);
    k->f32_to_f16(x, hb, n);
    bad += memcmp(ha, hb, (size_t)n * 2) != 0;
    r->f32_to_bf16(x, ha, n);
    k->f32_to_bf16(x, hb, n);
    bad += memcmp(ha, hb, (size_t)n * 2) != 0;
    for (int64_t i = 0; i < n; i++) ha[i] = (uint16_t)rnd_u32();   /* every half, NaNs included */
    r->f16_to_f32(ha, ya, n);
    k->f16_to_f32(ha, yb, n);
    bad += memcmp(ya, yb, (size_t)n * 4) != 0;
  }
  /* NaN inputs to the float -> half/bfloat conversions: quiet, payload kept */
  const uint32_t nans[] = {0x7fc00000u, 0xffc00001u, 0x7f800001u, 0x7fbfffffu, 0xff812345u};
  for (int i = 0; i < 5; i++) memcpy(&x[i], &nans[i], 4);
  r->f32_to_f16(x, ha, 5);
  k->f32_to_f16(x, hb, 5);
  bad += memcmp(ha, hb, 10) != 0;
  r->f32_to_bf16(x, ha, 5);
  k->f32_to_bf16(x, hb, 5);
  bad += memcmp(ha, hb, 10) != 0;
  CHECK_MSG(bad == 0, "%s: %d conversion runs differ from the reference", lvl, bad);
}

static void check_dots(const struct slm_kernels *r, const struct slm_kernels *k) {
  static uint8_t w[8192 * 4], a[8192 * 5];
  for (int ti = 0; ti < N_WTYPES; ti++) {
    const enum slm_type t = wtypes[ti], at = slm_vec_dot_type(t);
    if (k->vec_dot[t] == r->vec_dot[t]) continue;
    const int blck = slm_type_infos[t].blck;
    const int64_t lens[] = {blck, 2 * blck, 3 * blck, 7 * blck, blck == 1 ? 1 : 4864, blck == 1 ? 67 : 896,
                            blck == 1 ? 33 : 256 * 3};
    int bad = 0, runs = 0;
    double worst = 0;
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
      const int64_t n = lens[li];
      if (n % blck) continue;
      for (int mode = 0; mode < 4; mode++) {
        for (int ak = 0; ak < 3; ak++) {
          make_weights(t, w, n, mode);
          make_acts(r, at, a, n, ak == 0 ? F_UNIFORM : ak == 1 ? F_CONST : F_SPIKY);
          float sr = 0, sk = 0;
          r->vec_dot[t](n, &sr, w, a);
          k->vec_dot[t](n, &sk, w, a);
          const double B = dot_bound(t, at, w, a, n), tol = dot_tol(t, n, B);
          const double err = fabs((double)sr - sk);
          runs++;
          if (!(err <= tol)) {
            if (bad++ < 3)
              fprintf(stderr, "%s %s n=%lld mode %d act %d: %.9g vs ref %.9g (tol %.3g)\n", lvl,
                      slm_type_name(t), (long long)n, mode, ak, sk, sr, tol);
          }
          if (B > 0 && err / B > worst) worst = err / B;
        }
      }
    }
    CHECK_MSG(bad == 0, "%s vec_dot %s: %d of %d runs out of tolerance", lvl, slm_type_name(t), bad, runs);
    (void)worst;
  }
}

static void check_gemm(const struct slm_kernels *r, const struct slm_kernels *k) {
  enum { MAXR = 9, MAXC = 9, PAD = 24 };
  static uint8_t w[MAXR * (4864 * 4 + PAD)], a[MAXC * (4864 * 5 + PAD)];
  static float y[MAXC * (MAXR + 3)];
  static const int shapes[][2] = {{1, 1}, {4, 1}, {5, 1}, {1, 4}, {4, 4}, {3, 2}, {8, 8}, {9, 5}, {2, 9}, {7, 3}};
  for (int ti = 0; ti < N_WTYPES; ti++) {
    const enum slm_type t = wtypes[ti], at = slm_vec_dot_type(t);
    if (k->gemm[t] == r->gemm[t]) continue;
    const int blck = slm_type_infos[t].blck;
    int bad = 0, runs = 0;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
      const int nr = shapes[si][0], nc = shapes[si][1];
      const int64_t n = blck == 1 ? 17 + 8 * (int64_t)si : blck * (1 + (int64_t)si % 3) * (blck == 32 ? 3 : 1);
      /* strides not a multiple of any vector size; rows stay aligned to their element as in GGUF
       * files (2 bytes for the quant blocks' halves, 4 for F32) */
      const size_t ws = slm_row_size(t, n) + (size_t)(si % 3) * 4 + 4 - (t == SLM_TYPE_F32 ? 0 : 2);
      const size_t as = act_size(at, n) + (size_t)(si % 2) * 4 + 4;
      const int64_t ys = nr + 3;
      for (int i = 0; i < nr; i++) make_weights(t, w + i * ws, n, (int)(si + i) % 4);
      for (int j = 0; j < nc; j++) make_acts(r, at, a + j * as, n, (j % 3 == 2) ? F_SPIKY : F_UNIFORM);
      for (size_t e = 0; e < sizeof y / sizeof y[0]; e++) y[e] = 12345.0f;
      k->gemm[t](n, nr, nc, y, ys, w, ws, a, as);
      for (int j = 0; j < nc; j++) {
        for (int64_t e = 0; e < ys; e++) {
          const float got = y[j * ys + e];
          if (e >= nr) {   /* padding between rows of y must be untouched */
            if (got != 12345.0f) bad++;
            continue;
          }
          float want, lone;
          r->vec_dot[t](n, &want, w + e * ws, a + j * as);
          /* batching must not change results: the tile equals this level's lone dot exactly */
          k->vec_dot[t](n, &lone, w + e * ws, a + j * as);
          if (memcmp(&lone, &got, 4) != 0 && bad++ < 3)
            fprintf(stderr, "%s gemm %s %dx%d y[%d][%d] = %.9g, its vec_dot %.9g\n", lvl, slm_type_name(t), nr,
                    nc, j, (int)e, got, lone);
          const double tol = dot_tol(t, n, dot_bound(t, at, w + e * ws, a + j * as, n));
          runs++;
          if (!(fabs((double)got - want) <= tol) && bad++ < 3)
            fprintf(stderr, "%s gemm %s %dx%d n=%lld y[%d][%d] = %.9g vs %.9g (tol %.3g)\n", lvl,
                    slm_type_name(t), nr, nc, (long long)n, j, (int)e, got, want, tol);
        }
      }
      if (y[nc * ys] != 12345.0f) bad++;   /* nothing written past the last row */
    }
    CHECK_MSG(bad == 0, "%s gemm %s: %d of %d outputs wrong", lvl, slm_type_name(t), bad, runs);
  }
}

/* x8 (repacked) gemm: bit-exact against slm_gemm_x8_ref, which fixes the float order. */
static void check_gemm_x8(const struct slm_kernels *r, const struct slm_kernels *k) {
  enum { MAXG = 3, MAXC = 9 };
  static uint8_t w[MAXG * 8 * 210 * 3], wx[MAXG * (1680 * 3 + 64)], a[MAXC * (292 * 3 + 8)];
  static float ya[MAXC * (8 * MAXG + 5)], yb[MAXC * (8 * MAXG + 5)];
  static const int shapes[][2] = {{8, 1}, {16, 1}, {8, 4}, {24, 5}, {16, 9}, {8, 3}};
  for (int ti = 0; ti < N_WTYPES; ti++) {
    const enum slm_type t = wtypes[ti], at = slm_vec_dot_type(t);
    if (!k->gemm_x8[t]) continue;
    const int blck = slm_type_infos[t].blck;
    int bad = 0, runs = 0;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
      const int nr = shapes[si][0], nc = shapes[si][1];
      const int64_t n = blck * (blck == 32 ? 1 + 4 * (int64_t)(si % 3) : 1 + (int64_t)(si % 3));
      const size_t rs = slm_row_size(t, n), gs = slm_repack_x8_size(t, n) + (si % 2) * 64;
      const size_t as = act_size(at, n) + (si % 2) * 8;
      const int64_t ys = nr + 5;
      for (int i = 0; i < nr; i++) make_weights(t, w + i * rs, n, (int)(si + i) % 4);
      for (int g = 0; g < nr / 8; g++) slm_repack_x8(t, n, 8, w + (size_t)g * 8 * rs, rs, wx + g * gs);
      for (int j = 0; j < nc; j++) make_acts(r, at, a + j * as, n, j % 3 == 2 ? F_SPIKY : j % 3 ? F_CONST : F_UNIFORM);
      for (size_t e = 0; e < sizeof ya / sizeof ya[0]; e++) ya[e] = yb[e] = 777.0f;
      slm_gemm_x8_ref(t, n, nr, nc, ya, ys, wx, gs, a, as);
      k->gemm_x8[t](n, nr, nc, yb, ys, wx, gs, a, as);
      runs++;
      if (memcmp(ya, yb, sizeof ya) != 0 && bad++ < 3) {
        for (size_t e = 0; e < sizeof ya / sizeof ya[0]; e++)
          if (memcmp(&ya[e], &yb[e], 4)) {
            fprintf(stderr, "%s gemm_x8 %s %dx%d n=%lld y[%zu] = %.9g vs ref %.9g\n", lvl, slm_type_name(t), nr, nc,
                    (long long)n, e, yb[e], ya[e]);
            break;
          }
      }
    }
    CHECK_MSG(bad == 0, "%s gemm_x8 %s: %d of %d runs not bit-exact", lvl, slm_type_name(t), bad, runs);
  }
}

static int64_t helper_len(int i) { return i < 40 ? i : i == 40 ? 63 : i == 41 ? 64 : i == 42 ? 65 : 1000; }
#define N_HELPER_LENS 44

static void check_float_helpers(const struct slm_kernels *r, const struct slm_kernels *k) {
  static float x[1024], x2[1024], w[1024], ya[1024], yb[1024];
  static slm_f16 h[1024];
  int bad_dot = 0, bad_ew = 0, bad_norm = 0, bad_silu = 0, bad_max = 0, bad_exp = 0;
  for (int li = 0; li < N_HELPER_LENS; li++) {
    const int64_t n = helper_len(li);
    fill_floats(x, n, li % 3 == 0 ? F_SPIKY : F_UNIFORM);
    fill_floats(x2, n, F_UNIFORM);
    fill_floats(w, n, F_OFFSET);
    r->f32_to_f16(x2, h, n);
    /* dots */
    double mag = 0, magh = 0;
    for (int64_t i = 0; i < n; i++) {
      mag += fabs((double)x[i] * x2[i]);
      magh += fabs((double)x[i] * slm_f16_to_f32(h[i]));
    }
    if (k->dot_f32 != r->dot_f32) {
      const float a = r->dot_f32(n, x, x2), b = k->dot_f32(n, x, x2);
      bad_dot += !(fabs((double)a - b) <= ((double)n / 8 + 8) * FLT_EPSILON * mag);
    }
    if (k->dot_f32_f16 != r->dot_f32_f16) {
      const float a = r->dot_f32_f16(n, x, h), b = k->dot_f32_f16(n, x, h);
      bad_dot += !(fabs((double)a - b) <= ((double)n / 8 + 8) * FLT_EPSILON * magh);
    }
    /* element-wise: bit-exact */
    const float alpha = rnd_f() * 3;
    memcpy(ya, x2, (size_t)n * 4);
    memcpy(yb, x2, (size_t)n * 4);
    r->axpy_f32(n, alpha, x, ya);
    k->axpy_f32(n, alpha, x, yb);
    bad_ew += memcmp(ya, yb, (size_t)n * 4) != 0;
    r->axpy_f16(n, alpha, h, ya);
    k->axpy_f16(n, alpha, h, yb);
    bad_ew += memcmp(ya, yb, (size_t)n * 4) != 0;
    r->scale_f32(n, alpha, ya);
    k->scale_f32(n, alpha, yb);
    bad_ew += memcmp(ya, yb, (size_t)n * 4) != 0;
    r->add_f32(n, ya, x);
    k->add_f32(n, yb, x);
    bad_ew += memcmp(ya, yb, (size_t)n * 4) != 0;
    if (n == 0) continue;
    /* rmsnorm */
    r->rmsnorm_f32(n, ya, x, w, 1e-6f);
    k->rmsnorm_f32(n, yb, x, w, 1e-6f);
    for (int64_t i = 0; i < n; i++) bad_norm += !(fabsf(ya[i] - yb[i]) <= 4 * FLT_EPSILON * fabsf(ya[i]));
    /* swiglu over a wide gate range, with the overflow/underflow ends of exp */
    for (int64_t i = 0; i < n; i++) x2[i] = rnd_f() * (i % 7 == 0 ? 120.f : 12.f);
    if (n > 2) { x2[0] = -1000.f; x2[1] = 1000.f; x2[2] = -88.5f; }
    r->swiglu_f32(n, ya, x2, x);
    k->swiglu_f32(n, yb, x2, x);
    for (int64_t i = 0; i < n; i++) bad_silu += !(fabsf(ya[i] - yb[i]) <= 1e-6f * fabsf(ya[i]) + 0x1p-126f);
    /* max: exact */
    bad_max += r->max_f32(n, x2) != k->max_f32(n, x2);
    /* softmax pieces: scores with -inf (masked) and a far tail */
    for (int64_t i = 0; i < n; i++) x2[i] = rnd_f() * 20.f - (i % 5 == 0 ? 90.f : 0.f);
    if (n > 1) x2[n - 1] = -INFINITY;
    const float mx = r->max_f32(n, x2);
    const float sa = r->exp_sum_f32(n, ya, x2, mx), sb = k->exp_sum_f32(n, yb, x2, mx);
    for (int64_t i = 0; i < n; i++) bad_exp += !(fabsf(ya[i] - yb[i]) <= 1e-6f * ya[i] + 0x1p-126f);
    bad_exp += !(fabsf(sa - sb) <= 1e-6f * sa);
  }
  CHECK_MSG(bad_dot == 0, "%s: %d float dot helper results out of tolerance", lvl, bad_dot);
  CHECK_MSG(bad_ew == 0, "%s: %d element-wise helper runs not bit-exact", lvl, bad_ew);
  CHECK_MSG(bad_norm == 0, "%s: %d rmsnorm outputs out of tolerance", lvl, bad_norm);
  CHECK_MSG(bad_silu == 0, "%s: %d swiglu outputs out of tolerance", lvl, bad_silu);
  CHECK_MSG(bad_max == 0, "%s: %d max results differ", lvl, bad_max);
  CHECK_MSG(bad_exp == 0, "%s: %d exp/sum results out of tolerance", lvl, bad_exp);
}

/* Entries of K that differ from BASE (as pointers): how much of the table a level implements. */
static int count_own(const struct slm_kernels *k, const struct slm_kernels *base, int *total) {
  const void *const *pk = (const void *const *)(const void *)k;
  const void *const *pb = (const void *const *)(const void *)base;
  /* the table after `level` is function pointers only */
  const size_t off = offsetof(struct slm_kernels, quantize_q8_0) / sizeof(void *);
  const size_t n = sizeof *k / sizeof(void *);
  int own = 0;
  *total = 0;
  for (size_t i = off; i < n; i++) {
    if (!pk[i]) continue;
    (*total)++;
    own += pk[i] != pb[i];
  }
  return own;
}

int main(void) {
  const enum slm_cpu_level top = slm_cpu_detect();
  const struct slm_kernels *r = slm_kernels_at(SLM_CPU_REF);
  CHECK(r != NULL);
  printf("detected level: %s\n", slm_cpu_level_name(top));
  for (int l = SLM_CPU_AVX2; l <= (int)top; l++) {
    const struct slm_kernels *k = slm_kernels_at((enum slm_cpu_level)l);
    lvl = slm_cpu_level_name((enum slm_cpu_level)l);
    int total = 0;
    const int vs_ref = count_own(k, r, &total);
    int dummy;
    const int vs_below = count_own(k, slm_kernels_at((enum slm_cpu_level)(l - 1)), &dummy);
    printf("%-7s %2d of %d entries are SIMD, %2d new at this level\n", lvl, vs_ref, total, vs_below);
    check_quantizers(r, k);
    check_conversions(r, k);
    check_dots(r, k);
    check_gemm(r, k);
    check_gemm_x8(r, k);
    check_float_helpers(r, k);
  }
  return check_done();
}
