/* vocab.c: vocabulary from GGUF (not written yet). */
