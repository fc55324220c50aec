/* tokenizer.c: tokenizers (not written yet). */
