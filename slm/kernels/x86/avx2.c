/*
 * avx2.c: AVX2 + FMA + F16C kernels (built with -mavx2 -mfma -mf16c; only called when
 * dispatch.c found the CPU and OS support them).
 */
#include <immintrin.h>

#include "slm/kernels/impl.h"

void slm_kernels_fill_avx2(struct slm_kernels *k) { (void)k; }
