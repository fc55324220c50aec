/* metrics.c: Prometheus metrics (not written yet). */
