/* info.c: slm info (not written yet). */
