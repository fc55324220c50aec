/*
 * impl.h: declarations shared by the files of slm/kernels/ only (the engine uses kernels.h).
 *
 * Each ISA file exports one fill function that overwrites the table entries it implements;
 * dispatch.c calls them in ascending ISA order (ref, avx2, avx512, vnni, bf16), dav1d-style, so a
 * level inherits everything it does not override. The reference activation quantizers and the
 * scalar half conversions live here so the ISA files can use them for tails.
 */
#ifndef SLM_KERNELS_IMPL_H
#define SLM_KERNELS_IMPL_H

#include <stdint.h>
#include <string.h>

#include "slm/kernels/kernels.h"

void slm_kernels_fill_ref(struct slm_kernels *k);
void slm_kernels_fill_avx2(struct slm_kernels *k);
void slm_kernels_fill_avx512(struct slm_kernels *k);
void slm_kernels_fill_avx512_vnni(struct slm_kernels *k);
void slm_kernels_fill_avx512_bf16(struct slm_kernels *k);

/* Activation quantizers, reference versions (quant.c). They follow what llama.cpp's x86 CPU
 * backend does at run time (not its *_ref file quantizers): q8_0/q8_1 take d = amax/127 and
 * multiply by 127/amax, rounding half to even (what cvtps2dq does); q8_K is quantize_row_q8_K_ref
 * (iscale = -127/max, nearest_int), which llama.cpp also uses at run time on x86. */
void slm_quantize_q8_0_ref(const float *x, void *y, int64_t k);
void slm_quantize_q8_1_ref(const float *x, void *y, int64_t k);
void slm_quantize_q8_K_ref(const float *x, void *y, int64_t k);

/* Round to nearest, ties to even, for |v| < 2^22: the float add lands the integer in the low
 * mantissa bits (the trick llama.cpp calls nearest_int; its results depend on it). */
static inline int slm_nearest_int(float v) {
  float t = v + 12582912.f;   /* 1.5 * 2^23 */
  int32_t i;
  memcpy(&i, &t, sizeof i);
  return (i & 0x007fffff) - 0x00400000;
}

static inline float slm_f32_from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t slm_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* The 6-bit scale and min of sub-block J of a Q4_K/Q5_K super-block (12 packed bytes Q). */
static inline void slm_k4_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (uint8_t)((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
    *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

#endif
