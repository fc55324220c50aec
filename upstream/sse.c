/* sse.c: SSE parser (not written yet). */
