/* run.c: slm run (not written yet). */
