/*
 * avx512.c: AVX-512 F/BW/VL/DQ kernels. Built with the matching -m flags; dispatch.c calls the
 * fill only when the CPU and OS support the level.
 */
#include <immintrin.h>

#include "slm/kernels/impl.h"

void slm_kernels_fill_avx512(struct slm_kernels *k) { (void)k; }
