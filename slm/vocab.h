/*
 * vocab.h: private interface of the tokenizers (slm/vocab.c, slm/tokenizer.c) and chat templates
 * (slm/chat.c). The public slm_tokenize()/slm_detokenize()/slm_chat_apply() in model.c are thin
 * wrappers over these, so the tokenizer can be used and tested on a vocabulary-only GGUF file
 * without loading a model.
 *
 * A vocab is immutable after slm_vocab_load() (see internal.h) and safe to share across threads.
 */
#ifndef SLM_VOCAB_H
#define SLM_VOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "slm/slm.h"

struct slm_vocab;

enum slm_vocab_kind { SLM_VOCAB_SPM = 1, SLM_VOCAB_BPE = 2 };

enum slm_vocab_kind slm_vocab_kind(const struct slm_vocab *v);
int32_t slm_vocab_n_tokens(const struct slm_vocab *v);
slm_token slm_vocab_bos(const struct slm_vocab *v);   /* -1 if none */
slm_token slm_vocab_eos(const struct slm_vocab *v);   /* -1 if none */
bool slm_vocab_is_eog(const struct slm_vocab *v, slm_token t);
bool slm_vocab_add_bos(const struct slm_vocab *v);
bool slm_vocab_add_eos(const struct slm_vocab *v);
/* The pre-tokenizer name from tokenizer.ggml.pre ("default" if absent). */
const char *slm_vocab_pre(const struct slm_vocab *v);
/* tokenizer.chat_template, NUL-terminated, or NULL if the file has none. */
const char *slm_vocab_chat_template(const struct slm_vocab *v);

/* Same contracts as slm_tokenize / slm_token_to_piece / slm_detokenize in slm.h. */
int32_t slm_vocab_tokenize(const struct slm_vocab *v, const char *text, size_t len, slm_token *out,
                           int32_t cap, bool add_special, bool parse_special);
int32_t slm_vocab_token_to_piece(const struct slm_vocab *v, slm_token t, char *buf, int32_t cap,
                                 bool render_special);
int32_t slm_vocab_detokenize(const struct slm_vocab *v, const slm_token *toks, int32_t n, char *buf,
                             int32_t cap, bool remove_leading_space, bool render_special);

/* Chat templates (chat.c): recognise TEMPLATE (may be NULL) and render; same contract as
 * slm_chat_apply / slm_chat_template_name. */
int32_t slm_chat_render(const char *tmpl, const struct slm_chat_msg *msgs, size_t n,
                        bool add_assistant, char *buf, int32_t cap);
const char *slm_chat_family(const char *tmpl);

#endif
