/* model.c: model loading (not written yet). */
