/* forward.c: transformer forward pass (not written yet). */
