/* ref.c: reference kernels (not written yet). */
