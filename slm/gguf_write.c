/* gguf_write.c: GGUF writer (not written yet). */
