/*
 * vocab.h: private interface of the tokenizers (slm/vocab.c, slm/tokenizer.c) and chat templates
 * (slm/chat.c). The public slm_tokenize()/slm_detokenize()/slm_chat_apply() in model.c are thin
 * wrappers over these, so the tokenizer can be used and tested on a vocabulary-only GGUF file
 * without loading a model.
 *
 * A vocab is immutable after slm_vocab_load() (see internal.h) and safe to share across threads:
 * every function here may be called concurrently on the same vocab.
 *
 * Tokenization matches llama.cpp (src/llama-vocab.cpp) token for token on the reference vectors in
 * ../shared/vocab. Invalid UTF-8 input never fails and never reads out of bounds: SentencePiece
 * vocabularies keep every byte (pieces that are not tokens fall back to <0xNN> byte tokens, so
 * detokenize returns the same bytes); byte-level BPE vocabularies read each byte that does not
 * start a valid UTF-8 sequence (strictly: no overlongs, surrogates or code points past U+10FFFF)
 * as U+FFFD, as llama.cpp does, so those bytes come back as "\xEF\xBF\xBD".
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
slm_token slm_vocab_eot(const struct slm_vocab *v);   /* <|im_end|>, <|eot_id|>, ...; -1 if none */
slm_token slm_vocab_unk(const struct slm_vocab *v);   /* -1 if none */
slm_token slm_vocab_pad(const struct slm_vocab *v);   /* -1 if none */
slm_token slm_vocab_nl(const struct slm_vocab *v);    /* the token of "\n", -1 if none */
/* The end-of-generation set (eos, eot, eom, <|im_end|>, <|eot_id|>, <|end|>, <end_of_turn>,
 * <|endoftext|>, ... as llama.cpp derives it): writes up to CAP ids, returns how many there are. */
int slm_vocab_eog_ids(const struct slm_vocab *v, slm_token *out, int cap);
bool slm_vocab_is_eog(const struct slm_vocab *v, slm_token t);
bool slm_vocab_add_bos(const struct slm_vocab *v);
bool slm_vocab_add_eos(const struct slm_vocab *v);
/* The pre-tokenizer name from tokenizer.ggml.pre ("default" if absent). */
const char *slm_vocab_pre(const struct slm_vocab *v);
/* tokenizer.ggml.model: "llama" or "gpt2". */
const char *slm_vocab_model(const struct slm_vocab *v);
/* Control tokens (<s>, <|im_start|>, ...) are only printed when render_special is set. */
bool slm_vocab_is_control(const struct slm_vocab *v, slm_token t);
/* The raw vocabulary text of T (as stored in the file: "▁" for SPM spaces, the GPT-2 byte
 * alphabet for BPE), not NUL-terminated: sets *TEXT and returns its length, -1 if T is out of
 * range. Valid while the vocab lives. */
int32_t slm_vocab_token_text(const struct slm_vocab *v, slm_token t, const char **text);
float slm_vocab_token_score(const struct slm_vocab *v, slm_token t);   /* 0 if out of range */
/* The token whose raw vocabulary text is exactly TEXT, or -1. */
slm_token slm_vocab_text_to_token(const struct slm_vocab *v, const char *text, size_t len);
/* tokenizer.chat_template, NUL-terminated, or NULL if the file has none. */
const char *slm_vocab_chat_template(const struct slm_vocab *v);

/* Same contracts as slm_tokenize / slm_token_to_piece / slm_detokenize in slm.h:
 *   tokenize returns the token count, -(needed) if CAP is too small, INT32_MIN for bad arguments
 *   (NULL vocab, NULL text with LEN > 0, LEN > INT32_MAX) or out of memory. ADD_SPECIAL adds BOS
 *   and/or EOS as the file asks (tokenizer.ggml.add_bos_token / add_eos_token, llama.cpp's
 *   defaults when absent). PARSE_SPECIAL lets control texts ("<|im_start|>") become their token;
 *   user-defined tokens ("<think>" in Qwen3) are always matched, as in llama.cpp.
 *   token_to_piece: bytes of T (never NUL-terminated), -(needed), or INT32_MIN if T is out of
 *   range. Control and unknown tokens give 0 bytes unless RENDER_SPECIAL.
 *   detokenize: concatenated pieces (never NUL-terminated), -(needed) or INT32_MIN for an
 *   out-of-range token. REMOVE_LEADING_SPACE drops the space SentencePiece put in front of the
 *   first word (only for vocabularies with add_space_prefix), so that
 *   detokenize(tokenize(s, add_special)) == s (for SentencePiece vocabularies that holds when s
 *   has no special-token text, after which SPM adds a space as llama.cpp does, and no literal
 *   "\u2581", which is SentencePiece's space marker and comes back as a space). BPE
 *   vocabularies other than qwen2/smollm apply llama.cpp's clean_up_tokenization_spaces
 *   (" ," -> ",", " 's" -> "'s", ...), as Hugging Face does for them. Bytes of a UTF-8
 *   character split over several byte tokens are simply concatenated; a sequence cut off at the
 *   end comes out as its raw bytes.
 *   Memory: a call allocates scratch proportional to its longest word (about 80 bytes per byte;
 *   the text itself is never copied whole except to replace invalid UTF-8); callers cap input. */
int32_t slm_vocab_tokenize(const struct slm_vocab *v, const char *text, size_t len, slm_token *out,
                           int32_t cap, bool add_special, bool parse_special);
int32_t slm_vocab_token_to_piece(const struct slm_vocab *v, slm_token t, char *buf, int32_t cap,
                                 bool render_special);
int32_t slm_vocab_detokenize(const struct slm_vocab *v, const slm_token *toks, int32_t n, char *buf,
                             int32_t cap, bool remove_leading_space, bool render_special);

/* Chat templates (chat.c): recognise TEMPLATE (may be NULL) and render; same contract as
 * slm_chat_apply / slm_chat_template_name: returns bytes written (NUL-terminated, the NUL not
 * counted) or -(needed including the NUL); INT32_MIN for bad arguments (a NULL message, role or
 * content, CAP < 0).
 *
 * The family is recognised from marker strings in the Jinja text (as llama.cpp's
 * llm_chat_detect_template does) and rendered as that Jinja template renders plain
 * system/user/assistant turns (add_generation_prompt = ADD_ASSISTANT):
 *   "chatml"   <|im_start|>role\n...<|im_end|>\n (Qwen2.5, SmolLM2; a default system prompt
 *              written in the template, such as Qwen2.5's "You are Qwen, ...", is used when the
 *              first message is not a system message; role "tool" follows Qwen's
 *              <tool_response> wrapping when the template has it)
 *   "qwen3"    ChatML with <think> blocks: reasoning of earlier assistant turns is dropped, the
 *              last one keeps "<think>\n...\n</think>\n\n"
 *   "smollm3"  ChatML with the "## Metadata" system header and /think, /no_think
 *   "llama3"   <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>; Llama 3.1/3.2 templates
 *              add the "Cutting Knowledge Date" system header (Today Date: the date in the
 *              options, else today's local date where the template calls strftime_now, else
 *              the template's "26 Jul 2024")
 *   "llama2"   <s>[INST] <<SYS>>\n...\n<</SYS>>\n\nuser [/INST] assistant </s> (Llama-2-chat)
 *   "mistral"  [INST] user [/INST]assistant</s> (other [INST] templates: Mistral v0.1/v0.2; a
 *              system message goes in front of the first user message)
 *   "phi3"     <|role|>\n...<|end|>\n (Phi-3.5); "phi3-legacy": Phi-3's user-only form
 *   "phi4"     <|im_start|>role<|im_sep|>...<|im_end|>
 *   "gemma"    <start_of_turn>user|model\n...<end_of_turn>\n (a system message is put in front of
 *              the first user turn, as Gemma 3's template and llama.cpp do; Gemma 2's template
 *              would raise an error)
 *   "zephyr"   <|role|>\n...EOS\n (TinyLlama chat)
 * The BOS text a template prints at its very start ({{ bos_token }}) is left out: tokenize the
 * result with add_special so the vocabulary adds BOS once (what llama.cpp does). When TEMPLATE
 * is NULL, empty or not recognised, the result is ChatML (family "chatml"). */
int32_t slm_chat_render(const char *tmpl, const struct slm_chat_msg *msgs, size_t n,
                        bool add_assistant, char *buf, int32_t cap);
const char *slm_chat_family(const char *tmpl);

/* Options for slm_chat_render_opts (zero-initialise, then set what you need). */
struct slm_chat_opts {
  const char *bos_text;      /* printed where the template prints bos_token after its start
                              * (Llama 2 turns); NULL: the family's usual text ("<s>") */
  const char *eos_text;      /* printed where the template prints eos_token; NULL: the family's
                              * usual text ("</s>", "<|endoftext|>") */
  int enable_thinking;       /* Qwen3/SmolLM3: 0 = template default, 1 = on, -1 = off */
  const char *date_string;   /* Llama 3.x "Today Date"; NULL: today, local time, "%d %b %Y" */
};
int32_t slm_chat_render_opts(const char *tmpl, const struct slm_chat_opts *opts,
                             const struct slm_chat_msg *msgs, size_t n, bool add_assistant,
                             char *buf, int32_t cap);
/* Renders with the vocabulary's own template and its BOS/EOS texts. */
int32_t slm_vocab_chat_render(const struct slm_vocab *v, const struct slm_chat_msg *msgs, size_t n,
                              bool add_assistant, char *buf, int32_t cap);

#endif
