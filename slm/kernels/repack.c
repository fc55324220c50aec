/*
 * repack.c: the "x8" weight layout (8 rows interleaved, see kernels.h) and its C reference gemm.
 *
 * Repacking happens once at model load; the layout is defined by the accessors below, which the
 * reference gemm reads back, so a wrong repack or a wrong SIMD kernel both show up in
 * test_checkasm (bit-exact against slm_gemm_x8_ref) and test_quant (x8 reference against the
 * original-layout reference dot).
 */
#include <math.h>
#include <string.h>

#include "slm/kernels/impl.h"
#include "slm/kernels/kernels.h"

size_t slm_repack_x8_size(enum slm_type t, int64_t n) {
  switch (t) {
  case SLM_TYPE_Q8_0: return n % 32 ? 0 : (size_t)(n / 32) * 272;
  case SLM_TYPE_Q4_0: return n % 32 ? 0 : (size_t)(n / 32) * 144;
  case SLM_TYPE_Q5_0: return n % 32 ? 0 : (size_t)(n / 32) * 176;
  case SLM_TYPE_Q4_K: return n % QK_K ? 0 : (size_t)(n / QK_K) * 1184;
  case SLM_TYPE_Q5_K: return n % QK_K ? 0 : (size_t)(n / QK_K) * 1440;
  case SLM_TYPE_Q6_K: return n % QK_K ? 0 : (size_t)(n / QK_K) * 1680;
  default: return 0;
  }
}

/* ---------------------------------------------------------------- original rows, decoded */

/* Unsigned quant values of block B of an original row (32 or 256 of them, in element order) and
 * its scales. */
struct blk {
  uint8_t u[QK_K];
  slm_f16 d, dmin;
  uint8_t sc[16], m[8];   /* Q4_K: 8 scales, 8 mins; Q6_K: 16 signed scales (as bytes) */
};

static void decode_block(enum slm_type t, const uint8_t *row, int64_t b, struct blk *o) {
  switch (t) {
  case SLM_TYPE_Q8_0: {
    const block_q8_0 *x = (const block_q8_0 *)row + b;
    o->d = x->d;
    for (int j = 0; j < 32; j++) o->u[j] = (uint8_t)(x->qs[j] + 128);
    break;
  }
  case SLM_TYPE_Q4_0: {
    const block_q4_0 *x = (const block_q4_0 *)row + b;
    o->d = x->d;
    for (int j = 0; j < 16; j++) {
      o->u[j] = x->qs[j] & 0x0f;
      o->u[j + 16] = x->qs[j] >> 4;
    }
    break;
  }
  case SLM_TYPE_Q5_0: {
    const block_q5_0 *x = (const block_q5_0 *)row + b;
    uint32_t qh;
    memcpy(&qh, x->qh, 4);
    o->d = x->d;
    for (int j = 0; j < 16; j++) {
      o->u[j] = (uint8_t)((x->qs[j] & 0x0f) | (((qh >> j) & 1) << 4));
      o->u[j + 16] = (uint8_t)((x->qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
    }
    break;
  }
  case SLM_TYPE_Q4_K: {
    const block_q4_K *x = (const block_q4_K *)row + b;
    o->d = x->d;
    o->dmin = x->dmin;
    for (int j = 0; j < 8; j++) slm_k4_scale_min(j, x->scales, &o->sc[j], &o->m[j]);
    for (int k = 0; k < 4; k++)
      for (int l = 0; l < 32; l++) {
        o->u[64 * k + l] = x->qs[32 * k + l] & 0x0f;
        o->u[64 * k + 32 + l] = x->qs[32 * k + l] >> 4;
      }
    break;
  }
  case SLM_TYPE_Q5_K: {
    const block_q5_K *x = (const block_q5_K *)row + b;
    o->d = x->d;
    o->dmin = x->dmin;
    for (int j = 0; j < 8; j++) slm_k4_scale_min(j, x->scales, &o->sc[j], &o->m[j]);
    for (int k = 0; k < 4; k++)
      for (int l = 0; l < 32; l++) {
        o->u[64 * k + l] = (uint8_t)((x->qs[32 * k + l] & 0x0f) | (((x->qh[l] >> (2 * k)) & 1) << 4));
        o->u[64 * k + 32 + l] = (uint8_t)((x->qs[32 * k + l] >> 4) | (((x->qh[l] >> (2 * k + 1)) & 1) << 4));
      }
    break;
  }
  case SLM_TYPE_Q6_K: {
    const block_q6_K *x = (const block_q6_K *)row + b;
    o->d = x->d;
    memcpy(o->sc, x->scales, 16);
    for (int h = 0; h < 2; h++) {
      const uint8_t *ql = x->ql + 64 * h, *qh = x->qh + 32 * h;
      uint8_t *u = o->u + 128 * h;
      for (int l = 0; l < 32; l++) {
        u[l] = (uint8_t)((ql[l] & 0x0f) | ((qh[l] & 3) << 4));
        u[l + 32] = (uint8_t)((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4));
        u[l + 64] = (uint8_t)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
        u[l + 96] = (uint8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
      }
    }
    break;
  }
  default: break;
  }
}

/* Low-nibble / high-nibble packing of 32 values of 8 rows (Q4_0 style): q[c][r][e] holds value
 * 4c+e in the low nibble and 16+4c+e in the high one. u[r] points at row r's 32 values. */
static void pack_nibbles(uint8_t *q, const uint8_t *const u[8]) {
  for (int c = 0; c < 4; c++)
    for (int r = 0; r < 8; r++)
      for (int e = 0; e < 4; e++)
        q[32 * c + 4 * r + e] = (uint8_t)((u[r][4 * c + e] & 0x0f) | ((u[r][16 + 4 * c + e] & 0x0f) << 4));
}

/* The legacy types need no decoding: their x8 quant bytes are the original bytes, moved in groups
 * of 4 (Q4_0/Q5_0 nibble pairs j, j+16 are already paired as x8 wants them; Q8_0 adds 128). */
static void repack_legacy(enum slm_type t, int64_t nb, int64_t nrows, const uint8_t *src, size_t stride, uint8_t *dst) {
  const size_t bs = slm_type_infos[t].size, xs = t == SLM_TYPE_Q8_0 ? 272 : t == SLM_TYPE_Q4_0 ? 144 : 176;
  for (int64_t g = 0; g < nrows / 8; g++)
    for (int64_t b = 0; b < nb; b++) {
      uint8_t *o = dst + ((size_t)g * (size_t)nb + (size_t)b) * xs;
      uint32_t h[8] = {0};
      for (int r = 0; r < 8; r++) {
        const uint8_t *blk = src + (size_t)(8 * g + r) * stride + (size_t)b * bs;
        memcpy(o + 2 * r, blk, 2);   /* d */
        if (t == SLM_TYPE_Q8_0) {
          for (int c = 0; c < 8; c++) {
            uint32_t v;
            memcpy(&v, blk + 2 + 4 * c, 4);
            v ^= 0x80808080u;
            memcpy(o + 16 + 32 * c + 4 * r, &v, 4);
          }
        } else if (t == SLM_TYPE_Q4_0) {
          for (int c = 0; c < 4; c++) memcpy(o + 16 + 32 * c + 4 * r, blk + 2 + 4 * c, 4);
        } else {
          uint32_t qh;
          memcpy(&qh, blk + 2, 4);
          for (int c = 0; c < 8; c++) h[c] |= ((qh >> (4 * (c % 4) + 16 * (c / 4))) & 0x0f) << (4 * r);
          for (int c = 0; c < 4; c++) memcpy(o + 48 + 32 * c + 4 * r, blk + 6 + 4 * c, 4);
        }
      }
      if (t == SLM_TYPE_Q5_0) memcpy(o + 16, h, sizeof h);
    }
}

void slm_repack_x8(enum slm_type t, int64_t n, int64_t nrows, const void *src, size_t src_stride, void *dst) {
  const size_t gsz = slm_repack_x8_size(t, n);
  if (!gsz || nrows % 8) return;
  if (t == SLM_TYPE_Q8_0 || t == SLM_TYPE_Q4_0 || t == SLM_TYPE_Q5_0) {
    repack_legacy(t, n / 32, nrows, src, src_stride, dst);
    return;
  }
  const int blck = slm_type_infos[t].blck;
  const int64_t nb = n / blck;
  const size_t bsz = gsz / (size_t)nb;
  static _Thread_local struct blk bk[8];
  for (int64_t g = 0; g < nrows / 8; g++) {
    for (int64_t b = 0; b < nb; b++) {
      uint8_t *o = (uint8_t *)dst + (size_t)g * gsz + (size_t)b * bsz;
      for (int r = 0; r < 8; r++)
        decode_block(t, (const uint8_t *)src + (size_t)(8 * g + r) * src_stride, b, &bk[r]);
      slm_f16 *d = (slm_f16 *)o;
      for (int r = 0; r < 8; r++) d[r] = bk[r].d;
      switch (t) {
      case SLM_TYPE_Q8_0:
        for (int c = 0; c < 8; c++)
          for (int r = 0; r < 8; r++)
            for (int e = 0; e < 4; e++) o[16 + 32 * c + 4 * r + e] = bk[r].u[4 * c + e];
        break;
      case SLM_TYPE_Q4_0: case SLM_TYPE_Q5_0: {
        const uint8_t *u[8];
        for (int r = 0; r < 8; r++) u[r] = bk[r].u;
        uint8_t *q = o + 16;
        if (t == SLM_TYPE_Q5_0) {
          for (int c = 0; c < 8; c++) {
            uint32_t h = 0;
            for (int r = 0; r < 8; r++)
              for (int e = 0; e < 4; e++) h |= (uint32_t)((bk[r].u[4 * c + e] >> 4) & 1) << (4 * r + e);
            memcpy(o + 16 + 4 * c, &h, 4);
          }
          q += 32;
        }
        pack_nibbles(q, u);
        break;
      }
      case SLM_TYPE_Q4_K: case SLM_TYPE_Q5_K: {
        for (int r = 0; r < 8; r++) d[8 + r] = bk[r].dmin;
        for (int j = 0; j < 8; j++)
          for (int r = 0; r < 8; r++) {
            o[32 + 8 * j + r] = bk[r].sc[j];
            o[96 + 8 * j + r] = bk[r].m[j];
          }
        for (int j = 0; j < 8; j++) {
          const uint8_t *u[8];
          for (int r = 0; r < 8; r++) u[r] = bk[r].u + 32 * j;
          pack_nibbles(o + 160 + 128 * j, u);
          if (t == SLM_TYPE_Q5_K)
            for (int c = 0; c < 8; c++) {
              uint32_t h = 0;
              for (int r = 0; r < 8; r++)
                for (int e = 0; e < 4; e++) h |= (uint32_t)((u[r][4 * c + e] >> 4) & 1) << (4 * r + e);
              memcpy(o + 1184 + 32 * j + 4 * c, &h, 4);
            }
        }
        break;
      }
      case SLM_TYPE_Q6_K: {
        for (int j = 0; j < 16; j++)
          for (int r = 0; r < 8; r++) o[16 + 8 * j + r] = bk[r].sc[j];
        for (int gi = 0; gi < 8; gi++) {
          uint8_t *lo = o + 144 + 192 * gi, *hi = lo + 128;
          const uint8_t *u[8];
          for (int r = 0; r < 8; r++) u[r] = bk[r].u + 32 * gi;
          pack_nibbles(lo, u);
          for (int h = 0; h < 2; h++)
            for (int r = 0; r < 8; r++)
              for (int e = 0; e < 4; e++) {
                uint8_t v = 0;
                for (int k = 0; k < 4; k++) v |= (uint8_t)(((u[r][4 * (4 * h + k) + e] >> 4) & 3) << (2 * k));
                hi[32 * h + 4 * r + e] = v;
              }
        }
        break;
      }
      default: break;
      }
    }
  }
}

/* ---------------------------------------------------------------- reading x8 back */

/* Value 4c+e (c < 8) of row r from a Q4_0-style nibble area of 32 values. */
static int nib(const uint8_t *q, int r, int v) {
  const int c = (v % 16) / 4, e = v % 4;
  const uint8_t byte = q[32 * c + 4 * r + e];
  return v < 16 ? byte & 0x0f : byte >> 4;
}

/* Unsigned value V (0..31 or 0..255) of row R in block/super-block area O of type T. */
static int x8_value(enum slm_type t, const uint8_t *o, int r, int v) {
  switch (t) {
  case SLM_TYPE_Q8_0: return o[16 + 32 * (v / 4) + 4 * r + v % 4];
  case SLM_TYPE_Q4_0: return nib(o + 16, r, v);
  case SLM_TYPE_Q5_0: {
    uint32_t h;
    memcpy(&h, o + 16 + 4 * (v / 4), 4);
    return nib(o + 48, r, v) | (int)(((h >> (4 * r + v % 4)) & 1) << 4);
  }
  case SLM_TYPE_Q4_K: return nib(o + 160 + 128 * (v / 32), r, v % 32);
  case SLM_TYPE_Q5_K: {
    uint32_t h;
    memcpy(&h, o + 1184 + 32 * (v / 32) + 4 * ((v % 32) / 4), 4);
    return nib(o + 160 + 128 * (v / 32), r, v % 32) | (int)(((h >> (4 * r + v % 4)) & 1) << 4);
  }
  case SLM_TYPE_Q6_K: {
    const uint8_t *lo = o + 144 + 192 * (v / 32), *hi = lo + 128;
    const int w = v % 32, c = w / 4, e = w % 4;
    return nib(lo, r, w) | (((hi[32 * (c / 4) + 4 * r + e] >> (2 * (c % 4))) & 3) << 4);
  }
  default: return 0;
  }
}

static float f16v(const uint8_t *p, int i) {
  slm_f16 h;
  memcpy(&h, p + 2 * i, 2);
  return slm_f16_to_f32(h);
}

void slm_gemm_x8_ref(enum slm_type t, int64_t n, int nr, int nc, float *y, int64_t ys, const void *w,
                     size_t ws, const void *a, size_t as) {
  const size_t gsz = slm_repack_x8_size(t, n);
  if (!gsz) return;
  const int kq = slm_type_infos[t].blck == QK_K;
  const int64_t nb = n / (kq ? QK_K : 32);
  const size_t bsz = gsz / (size_t)nb;
  const int z = t == SLM_TYPE_Q8_0 ? 128 : t == SLM_TYPE_Q4_0 ? 8 : t == SLM_TYPE_Q5_0 ? 16 : 0;
  for (int j = 0; j < nc; j++) {
    const uint8_t *arow = (const uint8_t *)a + (size_t)j * as;
    for (int i = 0; i < nr; i++) {
      const uint8_t *grp = (const uint8_t *)w + (size_t)(i / 8) * ws;
      const int r = i % 8;
      float acc = 0;
      for (int64_t b = 0; b < nb; b++) {
        const uint8_t *o = grp + (size_t)b * bsz;
        if (!kq) {
          const block_q8_0 *ab = (const block_q8_0 *)arow + b;
          int isum = 0;
          for (int v = 0; v < 32; v++) isum += (x8_value(t, o, r, v) - z) * ab->qs[v];
          acc = fmaf((float)isum, f16v(o, r) * slm_f16_to_f32(ab->d), acc);
        } else if (t == SLM_TYPE_Q4_K || t == SLM_TYPE_Q5_K) {
          const block_q8_K *ab = (const block_q8_K *)arow + b;
          int isum = 0, imin = 0;
          for (int sb = 0; sb < 8; sb++) {
            int dot = 0;
            for (int v = 0; v < 32; v++) dot += x8_value(t, o, r, 32 * sb + v) * ab->qs[32 * sb + v];
            isum += o[32 + 8 * sb + r] * dot;
            imin += o[96 + 8 * sb + r] * (ab->bsums[2 * sb] + ab->bsums[2 * sb + 1]);
          }
          acc = fmaf((float)isum, ab->d * f16v(o, r), acc);
          acc = fmaf(-(float)imin, ab->d * f16v(o, 8 + r), acc);
        } else {   /* Q6_K */
          const block_q8_K *ab = (const block_q8_K *)arow + b;
          int isum = 0;
          for (int sb = 0; sb < 16; sb++) {
            int dot = 0;
            for (int v = 0; v < 16; v++) dot += x8_value(t, o, r, 16 * sb + v) * ab->qs[16 * sb + v];
            isum += (int8_t)o[16 + 8 * sb + r] * (dot - 32 * ab->bsums[sb]);
          }
          acc = fmaf((float)isum, ab->d * f16v(o, r), acc);
        }
      }
      y[(int64_t)j * ys + i] = acc;
    }
  }
}
