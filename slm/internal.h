/*
 * internal.h: declarations shared between the files of slm/ (never included outside slm/ and its
 * tests). Each concept keeps its own private header (gguf.h, vocab.h, kernels/kernels.h, ...);
 * this file ties them to the model object.
 */
#ifndef SLM_INTERNAL_H
#define SLM_INTERNAL_H

#include "slm/slm.h"
#include "slm/gguf.h"
#include "slm/kernels/kernels.h"

struct slm_vocab;   /* slm/vocab.h: tokens, scores, types, merges, specials, chat template */

/* vocab.c: reads tokenizer.ggml.* (and tokenizer.chat_template) from F. Strings may point into
 * F's mapping: F must outlive the vocab. Returns 0 or a negative errno with a message in err. */
int slm_vocab_load(const struct gguf_file *f, struct slm_vocab **out, char *err, size_t errlen);
void slm_vocab_free(struct slm_vocab *v);   /* accepts NULL */

/* model.c: the vocabulary of a loaded model (never NULL for a loaded model). */
const struct slm_vocab *slm_model_vocab(const struct slm_model *m);
/* model.c: the open GGUF file of a loaded model. */
const struct gguf_file *slm_model_gguf(const struct slm_model *m);

#endif
