/* schema.c: schema and migrations (not written yet). */
