/* dispatch.c: CPU detection and kernel table (not written yet). */
