/* config.c: config loader (not written yet). */
