/* mkmodel.c: slm mkmodel (not written yet). */
