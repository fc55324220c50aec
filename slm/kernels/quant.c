/* quant.c: reference quantizers (not written yet). */
