/* writer.c: writer thread (not written yet). */
