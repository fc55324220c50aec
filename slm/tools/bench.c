/* bench.c: slm bench (not written yet). */
