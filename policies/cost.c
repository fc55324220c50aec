/* cost.c: cost rules (not written yet). */
