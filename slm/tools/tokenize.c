/* tokenize.c: slm tokenize (not written yet). */
