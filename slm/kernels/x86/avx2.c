/* avx2.c: AVX2 kernels (not written yet). */
