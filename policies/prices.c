/* prices.c: price table (not written yet). */
