/* gguf.c: GGUF reader (not written yet). */
