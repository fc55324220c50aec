/* quantize.c: slm quantize (not written yet). */
