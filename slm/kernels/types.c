/* types.c: type table (not written yet). */
