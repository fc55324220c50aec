/* sampler.c: sampler (not written yet). */
