/*
 * slm.h: tiergate's in-process small-language-model engine. The only header a user of slm/ needs.
 *
 * Loads GGUF files (llama, qwen2, qwen3 architectures; F32/F16/BF16/Q8_0/Q4_0/Q4_1/Q5_0/Q5_1/
 * Q4_K/Q5_K/Q6_K tensors), tokenizes, decodes batches of tokens for several sequences, returns
 * logits or pooled embeddings, samples, and applies chat templates. CPU only.
 *
 * Objects, lifetimes and threads
 *   struct slm_model    weights (mmapped read-only, or repacked copies where the kernels have a
 *                       faster layout) + vocabulary + metadata. Immutable after slm_model_load():
 *                       every function taking a const model may be called from any number of
 *                       threads at once, and any number of contexts and samplers may use it.
 *                       Free it after everything made from it.
 *   struct slm_context  one KV cache for up to n_seq sequences, scratch buffers and its own
 *                       thread pool (n_threads - 1 workers; the calling thread is the first).
 *                       Not thread-safe: one thread at a time per context (different contexts
 *                       on different threads are fine). Must be freed before its model.
 *   struct slm_sampler  sampling state (RNG, penalty history). Not thread-safe; independent of
 *                       the model after creation.
 * Pointers returned into a context (logits, embeddings, error text) stay valid until the next
 * call on that context that says it changes them (decode, free).
 *
 * Errors: functions returning int give 0 on success or a negative errno-style code. Load-time
 * errors are written to the caller's err buffer (always NUL-terminated, truncated to errlen);
 * context errors are kept in slm_errmsg(ctx). No function aborts on bad input.
 *
 * Example
 *   struct slm_model_params mp = slm_model_default_params();
 *   char err[256];
 *   struct slm_model *m = slm_model_load("model.gguf", &mp, err, sizeof err);
 *   struct slm_context_params cp = slm_context_default_params();
 *   struct slm_context *c = slm_context_new(m, &cp);
 *   int32_t toks[512]; int n = slm_tokenize(m, "Hello", 5, toks, 512, true, false);
 *   struct slm_batch b = slm_batch_one(toks, n);          // sequence 0, continuing
 *   slm_decode(c, &b);                                    // logits of the last token
 *   const float *logits = slm_get_logits(c, n - 1);
 *   ...
 *   slm_context_free(c); slm_model_free(m);
 */
#ifndef SLM_SLM_H
#define SLM_SLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int32_t slm_token;

struct slm_model;
struct slm_context;
struct slm_sampler;

/* ---------------------------------------------------------------- model */

struct slm_model_params {
  bool vocab_only;       /* load metadata + tokenizer only (vocabulary GGUF files); default false */
  bool use_mlock;        /* mlock the weights decode reads (best effort: RLIMIT_MEMLOCK may refuse,
                            the model works the same); default false */
  int cpu_max_level;     /* cap the kernel ISA level (0 ref, 1 avx2, 2 avx512, 3 vnni, 4 bf16);
                            default: the best this CPU has (also capped by env SLM_CPU_MAX) */
};
struct slm_model_params slm_model_default_params(void);

/* Opens PATH (GGUF v2/v3) and checks everything decode relies on. Returns a model, or NULL with a
 * message in ERR naming the file and the problem (unsupported architecture, tensor type or rope
 * scaling; a missing or mis-shaped tensor; bad hyper-parameters; a corrupt file). PARAMS may be
 * NULL for the defaults. Takes ~0.1-1 s for 100-500 MiB models (repacking for the kernels). */
struct slm_model *slm_model_load(const char *path, const struct slm_model_params *params,
                                 char *err, size_t errlen);
void slm_model_free(struct slm_model *m);   /* accepts NULL */

/* ---------------------------------------------------------------- tokenizer */

/* The tokenizer works on vocab_only models too. */
int32_t slm_n_vocab(const struct slm_model *m);
slm_token slm_token_bos(const struct slm_model *m);   /* -1 if none */
slm_token slm_token_eos(const struct slm_model *m);   /* -1 if none */
bool slm_token_is_eog(const struct slm_model *m, slm_token t);   /* EOS, EOT, <|im_end|>, ... */
bool slm_add_bos(const struct slm_model *m);          /* from tokenizer.ggml.add_bos_token */

/* Tokenizes LEN bytes of TEXT into OUT (capacity CAP). ADD_SPECIAL adds BOS/EOS as the vocabulary
 * asks; PARSE_SPECIAL lets text like "<|im_start|>" become its special token. Returns the number of
 * tokens, or -(needed) if CAP is too small (nothing useful in OUT then), or INT32_MIN on invalid
 * input. */
int32_t slm_tokenize(const struct slm_model *m, const char *text, size_t len, slm_token *out,
                     int32_t cap, bool add_special, bool parse_special);

/* Writes the bytes of one token into BUF (capacity CAP): returns the byte count, or -(needed) if too
 * small. A piece may be an incomplete UTF-8 sequence (byte tokens): use slm_detokenize for text. */
int32_t slm_token_to_piece(const struct slm_model *m, slm_token t, char *buf, int32_t cap,
                           bool render_special);
/* Detokenizes N tokens into BUF, reassembling UTF-8 across tokens; returns bytes written or
 * -(needed). REMOVE_LEADING_SPACE drops the SentencePiece leading space. */
int32_t slm_detokenize(const struct slm_model *m, const slm_token *toks, int32_t n, char *buf,
                       int32_t cap, bool remove_leading_space, bool render_special);

/* ---------------------------------------------------------------- context and decoding */

enum slm_pooling { SLM_POOL_NONE = 0, SLM_POOL_MEAN = 1, SLM_POOL_LAST = 2 };
enum slm_kv_type { SLM_KV_F32 = 0, SLM_KV_F16 = 1 };

struct slm_context_params {
  uint32_t n_ctx;        /* KV cells per sequence; default 2048 (capped at the model's context) */
  uint32_t n_seq;        /* sequences sharing this context; default 1 (at most 1024) */
  uint32_t n_batch;      /* max tokens per slm_decode call; default 512 */
  int n_threads;         /* default: number of online CPUs */
  enum slm_kv_type kv_type;   /* default SLM_KV_F16 */
  enum slm_pooling pooling;   /* embeddings: default SLM_POOL_NONE (no embeddings computed) */
  int embd_layer;        /* pooled embeddings from the output of this layer (0-based, the raw
                            residual stream); -1 (default) = after the final norm */
  bool logits_all;       /* logits for every token of a batch, not only the flagged ones */
  uint32_t n_outputs;    /* max rows of logits one decode may produce; 0 (default) = n_seq;
                            n_batch when logits_all. Sizes the logits buffer (n_outputs x n_vocab
                            floats). */
};
struct slm_context_params slm_context_default_params(void);

/* Allocates everything decode will need (KV cache, scratch, threads): nothing is allocated after.
 * Returns NULL if a parameter is out of range (kv_type, pooling, embd_layer, n_seq > 1024), the
 * model was loaded vocab_only, or memory or threads are short. The model must outlive the context.
 * KV cache memory is reserved for n_layer x n_seq x n_ctx cells but only touched as it fills. */
struct slm_context *slm_context_new(const struct slm_model *m, const struct slm_context_params *p);
void slm_context_free(struct slm_context *c);   /* accepts NULL; joins the threads */
/* The last error of a context call, as text ("" if none); valid until the next call. */
const char *slm_errmsg(const struct slm_context *c);
int slm_context_n_threads(const struct slm_context *c);   /* threads actually started */
uint32_t slm_context_n_ctx(const struct slm_context *c);   /* cells per sequence after capping */
size_t slm_context_kv_bytes(const struct slm_context *c);  /* K + V cache size when full */

/* A batch: token i goes to sequence seq[i] at position pos[i]; logits[i] asks for its logits. The
 * arrays belong to the caller and are read during slm_decode only.
 *   pos == NULL: every token continues its sequence (the usual case).
 *   pos given:   it must equal the position that continues the sequence's cache (a check).
 *   seq == NULL: every token belongs to sequence 0.
 *   logits == NULL: logits for the last token of each sequence in the batch.
 * Tokens of different sequences may be interleaved in any order. */
struct slm_batch {
  int32_t n;
  const slm_token *token;
  const int32_t *pos;
  const int32_t *seq;
  const int8_t *logits;
};

/* N tokens continuing sequence 0; logits for the last one. */
static inline struct slm_batch slm_batch_one(const slm_token *tokens, int32_t n) {
  struct slm_batch b = {n, tokens, NULL, NULL, NULL};
  return b;
}

/* Runs the model over the batch and appends it to each sequence's KV cache. Returns 0; -EINVAL for
 * a bad batch (empty, larger than n_batch, seq or token out of range, a position that does not
 * continue its sequence, more logits rows than n_outputs); -ENOSPC if a sequence's cache is full.
 * On error nothing was computed and the caches are unchanged; slm_errmsg() says why. */
int slm_decode(struct slm_context *c, const struct slm_batch *b);

/* Logits (n_vocab floats) of batch index I from the last decode, or NULL if not requested. Valid
 * until the next decode or slm_context_free. */
const float *slm_get_logits(struct slm_context *c, int32_t i);
/* Pooled embedding (n_embd floats, not normalized) of sequence SEQ over its tokens in the last
 * decode (pooling must be on; decode a text in one batch to embed all of it); NULL if SEQ had no
 * tokens in it. Valid until the next decode. */
const float *slm_get_embeddings(struct slm_context *c, int32_t seq);
int32_t slm_n_embd(const struct slm_model *m);   /* 0 for vocab_only models */

/* Forgets positions [p0, p1) of sequence SEQ (p1 < 0 means to the end). Only a suffix can be
 * forgotten (RoPE'd keys cannot move): returns 0, or -EINVAL for a bad sequence or a range that
 * ends before the sequence does. */
int slm_kv_remove(struct slm_context *c, int32_t seq, int32_t p0, int32_t p1);
void slm_kv_clear(struct slm_context *c);                        /* every sequence back to empty */
int32_t slm_kv_pos(const struct slm_context *c, int32_t seq);   /* next position of SEQ, -1 if bad */

/* ---------------------------------------------------------------- sampling */

struct slm_sampler_params {
  float temperature;      /* <= 0: greedy (argmax, ties to the lowest id); default 0.8 */
  int32_t top_k;          /* <= 0: off; default 40 */
  float top_p;            /* >= 1: off; default 0.95 */
  float min_p;            /* <= 0: off; default 0.05 */
  float repeat_penalty;   /* 1: off; default 1.0 */
  float presence_penalty; /* 0: off */
  float frequency_penalty;/* 0: off */
  int32_t penalty_last_n; /* window of past tokens for penalties; default 64 */
  uint64_t seed;          /* default 0xC0FFEE; same seed + same logits = same tokens */
  int32_t n_probs;        /* > 0: report log-probabilities of the top-n tokens (capped at n_vocab-1) */
};
struct slm_sampler_params slm_sampler_default_params(void);

/* Chain order as llama.cpp: penalties, then greedy if temperature <= 0, else top-k, top-p, min-p
 * (these three on the probabilities before temperature), temperature, draw. Returns NULL if M is
 * NULL or memory is short. The sampler keeps no pointer to M after creation (only n_vocab). */
struct slm_sampler *slm_sampler_new(const struct slm_model *m, const struct slm_sampler_params *p);
void slm_sampler_free(struct slm_sampler *s);   /* accepts NULL */

struct slm_token_prob { slm_token token; float logprob; };
/* Picks a token from LOGITS (n_vocab floats; not modified) and returns it (always in range).
 * If TOP is non-NULL (capacity 1 + n_probs) it receives the chosen token's log-probability in
 * top[0] followed by the n_probs best tokens, best first (log-softmax over the whole vocabulary
 * after penalties and temperature, before truncation; greedy counts as temperature 1). Records the
 * token for penalties. Allocation-free. */
slm_token slm_sampler_sample(struct slm_sampler *s, const float *logits, struct slm_token_prob *top);
void slm_sampler_accept(struct slm_sampler *s, slm_token t);   /* add prompt tokens to penalty history */
void slm_sampler_reset(struct slm_sampler *s);   /* forget the history, restart the RNG at seed */

/* Stop strings. Scans TEXT (the LEN bytes generated so far) for each of the N_STOPS NUL-terminated
 * STOPS. Returns the byte offset of the earliest complete match, or -1 if none. If SAFE is not
 * NULL it receives how many leading bytes can be shown now: up to the match, or else all but the
 * longest tail that could still grow into a stop string. */
int64_t slm_stop_scan(const char *text, size_t len, const char *const *stops, size_t n_stops,
                      size_t *safe);

/* ---------------------------------------------------------------- chat templates */

struct slm_chat_msg { const char *role; const char *content; };

/* Renders MSGS with the model's chat template (recognized from tokenizer.chat_template: ChatML,
 * Llama 3, Llama 2, Phi-3, Gemma, Qwen3 thinking, ...; fallback ChatML when the file has no
 * template or an unknown one). ADD_ASSISTANT appends the assistant turn opener. Returns bytes
 * written (NUL-terminated) or -(needed incl. NUL). */
int32_t slm_chat_apply(const struct slm_model *m, const struct slm_chat_msg *msgs, size_t n,
                       bool add_assistant, char *buf, int32_t cap);
/* Name of the template family used ("chatml", "llama3", ...); a static string. */
const char *slm_chat_template_name(const struct slm_model *m);

/* ---------------------------------------------------------------- introspection */

/* general.architecture ("llama", "qwen2", "qwen3"; any name for vocab_only models). The string
 * lives as long as the model. */
const char *slm_model_arch(const struct slm_model *m);
int32_t slm_n_layer(const struct slm_model *m);       /* 0 for vocab_only models */
int32_t slm_n_ctx_train(const struct slm_model *m);   /* 0 for vocab_only models */
uint64_t slm_model_size_bytes(const struct slm_model *m);  /* bytes of the tensors decode uses */
/* Writes the value of metadata KEY as text into BUF (NUL-terminated, truncated to CAP; arrays as
 * "[array of N]"). Returns 0, or -ENOENT (BUF "") if the key is absent. */
int slm_model_meta(const struct slm_model *m, const char *key, char *buf, size_t cap);

/* ---------------------------------------------------------------- constrained decoding */

/*
 * Structured output: a constraint compiled once from a JSON Schema, a regular expression or a
 * list of literal choices; per sequence a small matcher that says which tokens may come next and
 * advances on the chosen one. The generated text (the concatenation of the tokens' pieces, see
 * slm_token_to_piece with render_special false) is always in the constraint's language.
 *
 * Objects, lifetimes and threads
 *   struct slm_vocab_index   a model's token tables (a byte trie of every token), built once per
 *                            model (~0.1 s for a 150k vocabulary) and immutable: share it.
 *                            Needs the model only while it is built.
 *   struct slm_constraint    the compiled constraint, bound to one vocab index (which must
 *                            outlive it). Immutable apart from an internal mask cache filled
 *                            with atomic operations: any number of matchers on any threads may
 *                            use one constraint at once. Reference counted
 *                            (slm_constraint_ref / slm_constraint_free).
 *   struct slm_matcher       one sequence's position in the constraint (a few KiB); one thread
 *                            at a time. Holds a reference to its constraint.
 *   struct slm_constraint_cache   thread-safe map from (kind, text, params) to compiled
 *                            constraints, for servers that see the same schema many times.
 * The mask is n_vocab bits: bit t is word t / 32, bit t % 32. End-of-generation tokens are
 * allowed exactly when the text may end; control tokens never are.
 *
 * JSON Schema support (drafts 4, 6, 7, 2019-09, 2020-12 as found in the wild): type (and
 * lists), enum, const, properties, required, additionalProperties, patternProperties,
 * propertyNames, min/maxProperties, dependentRequired, dependentSchemas, dependencies, items
 * (schema or tuple), prefixItems, additionalItems, min/maxItems, contains, minContains,
 * min/maxLength, pattern (ECMA-262 subset: no backreferences or lookaround), format
 * (date-time, date, time per RFC 3339 with real month lengths; uuid, email, hostname, uri,
 * ipv4, ipv6, json-pointer; non-standard names are ignored as validators do), minimum,
 * maximum, exclusiveMinimum/Maximum (draft 4 booleans too), multipleOf
 * (integers), allOf, anyOf, oneOf, not, if/then/else, $ref / $defs / definitions (JSON
 * pointers, $id and $anchor in the document, recursion up to max_depth), boolean schemas.
 * Annotations (title, description, default, examples, $comment, ...) are ignored.
 * Meaning: properties are expected in the order the schema lists them (required ones
 * included; optional ones may be left out), then any other allowed properties. Validators read
 * a repeated member name as one member (the last), so other properties (whose names may repeat)
 * count as at most one towards minProperties, and a member that a negated schema needs to exist
 * comes last. A schema is
 * either compiled with its full meaning or refused: an instance the schema rejects is never
 * accepted. Where validators disagree (format as annotation or assertion, draft 4 integers,
 * regex dialects, float rounding) only what all of them accept is accepted. Numbers under a
 * bound or multipleOf are written without an exponent (and a fraction of at most 15
 * significant digits); unconstrained numbers take any JSON form. Refused (strict mode):
 * uniqueItems (unless maxItems <= 1), unevaluated*, $dynamicRef, non-integer multipleOf,
 * external $refs, regex constructs above, the formats duration, iri, uri-reference,
 * uri-template, regex, idn-*; schemas whose automata would exceed params.max_states. A
 * maxLength above 1000 (or one that would multiply a pattern's automaton past ~10k states) is
 * lowered: longer strings are refused, never wrongly accepted. params.relaxed instead ignores
 * such keywords
 * (listed by slm_constraint_relaxed_keywords) and then may accept what they would reject.
 * "nullable": true (OpenAPI) adds null only with params.openapi_nullable.
 *
 * Regular expressions match the whole text (Python's re.fullmatch); choices are literal texts.
 *
 * Example
 *   struct slm_vocab_index *vi = slm_vocab_index_new(model);          // once per model
 *   struct slm_constraint_params cp = slm_constraint_default_params();
 *   cp.whitespace = SLM_JSON_WS_COMPACT;                               // for generation
 *   struct slm_constraint_error ce;
 *   struct slm_constraint *c = slm_constraint_new(vi, SLM_CONSTRAINT_JSON_SCHEMA, schema,
 *                                                 strlen(schema), &cp, &ce);
 *   if (!c) { printf("unsupported: %s at %s (%s)\n", ce.keyword, ce.pointer, ce.message); ... }
 *   struct slm_matcher *mt = slm_matcher_new(c);                      // per request
 *   slm_matcher_set_budget(mt, max_tokens);                          // finish in time
 *   for (int i = 0; i < max_tokens; i++) {
 *     slm_token t = slm_sampler_sample_constrained(smp, logits, mt, NULL);
 *     if (t < 0 || slm_token_is_eog(model, t)) break;
 *     slm_matcher_accept_token(mt, t);                                // then decode t ...
 *     if (slm_matcher_is_done(mt)) break;
 *   }
 *   slm_matcher_free(mt); slm_constraint_free(c); ... slm_vocab_index_free(vi);
 */
struct slm_vocab_index;
struct slm_constraint;
struct slm_matcher;
struct slm_constraint_cache;

/* Builds M's token tables. Returns NULL when memory is short. */
struct slm_vocab_index *slm_vocab_index_new(const struct slm_model *m);
void slm_vocab_index_free(struct slm_vocab_index *vi);   /* accepts NULL */
int32_t slm_vocab_index_n_vocab(const struct slm_vocab_index *vi);

enum slm_constraint_kind {
  SLM_CONSTRAINT_JSON_SCHEMA = 0,   /* TEXT: a JSON Schema document */
  SLM_CONSTRAINT_JSON = 1,          /* any JSON value (TEXT ignored); {"type":"object"} for
                                       OpenAI's json_object mode is a JSON_SCHEMA */
  SLM_CONSTRAINT_REGEX = 2,         /* TEXT: a regular expression, matched whole */
  SLM_CONSTRAINT_CHOICE = 3,        /* TEXT: the choices, each followed by a NUL byte
                                       ("yes\0no\0"); see slm_constraint_new_choice */
};
enum slm_json_ws {
  SLM_JSON_WS_FLEXIBLE = 0,   /* any JSON whitespace between tokens (checking) */
  SLM_JSON_WS_COMPACT = 1,    /* none (generation: no runs of spaces from a weak model) */
};

struct slm_constraint_params {
  enum slm_json_ws whitespace;   /* default SLM_JSON_WS_FLEXIBLE */
  bool all_escapes;              /* strings also in the escaped forms serializers write: \uXXXX
                                    for non-ASCII (surrogate pairs too) and for controls, " & ' / <
                                    > \ DEL, and \/; never for letters or digits. false: raw UTF-8
                                    plus the escapes JSON requires (\" \\ controls). default true */
  bool relaxed;                  /* ignore keywords that cannot be expressed instead of refusing
                                    the schema (unsound for them). default false */
  bool openapi_nullable;         /* "nullable": true allows null. default false */
  int max_depth;                 /* most nested recursive values ($ref cycles, free-form JSON);
                                    default 32 */
  uint32_t max_states;           /* compile budget in automaton states; default 500000 */
  size_t mask_cache_bytes;       /* per constraint; default 64 MiB (0: no cache) */
};
struct slm_constraint_params slm_constraint_default_params(void);

/* Why a constraint was not compiled. CODE: -EINVAL (bad or unsupported input), -E2BIG (over
 * max_states), -ENOMEM. KEYWORD is the schema keyword (or "pattern", "regex", "json" for a
 * text that is not JSON), POINTER its JSON pointer in the schema ("" = the root). */
struct slm_constraint_error {
  int code;
  char keyword[64];
  char pointer[256];
  char message[256];
};

/* Compiles TEXT (LEN bytes) as KIND. VI may be NULL: the constraint then only judges bytes
 * (slm_matcher_accept_bytes; token functions return errors). PARAMS NULL: the defaults. Returns
 * the constraint (one reference) or NULL with ERR filled (ERR may be NULL). Typical time: well
 * under 5 ms for function-calling schemas; larger for big enums or long bounded strings. */
struct slm_constraint *slm_constraint_new(const struct slm_vocab_index *vi,
                                          enum slm_constraint_kind kind, const char *text,
                                          size_t len, const struct slm_constraint_params *params,
                                          struct slm_constraint_error *err);
/* CHOICES[0..N) as literal alternatives (NUL-terminated strings; at least one). */
struct slm_constraint *slm_constraint_new_choice(const struct slm_vocab_index *vi,
                                                 const char *const *choices, size_t n,
                                                 const struct slm_constraint_params *params,
                                                 struct slm_constraint_error *err);
struct slm_constraint *slm_constraint_ref(struct slm_constraint *c);   /* returns C */
void slm_constraint_free(struct slm_constraint *c);   /* drops one reference; accepts NULL */
/* Accepts no text at all (an unsatisfiable schema)? */
bool slm_constraint_is_empty(const struct slm_constraint *c);
/* Keywords ignored under params.relaxed, comma-separated ("" if none); lives with C. */
const char *slm_constraint_relaxed_keywords(const struct slm_constraint *c);
/* Grammar states, and bytes held by the mask cache (for metrics). */
uint32_t slm_constraint_n_states(const struct slm_constraint *c);
size_t slm_constraint_cache_bytes(const struct slm_constraint *c);

/* A matcher at the start of C's language. NULL when memory is short. */
struct slm_matcher *slm_matcher_new(struct slm_constraint *c);
void slm_matcher_free(struct slm_matcher *mt);   /* accepts NULL */
void slm_matcher_reset(struct slm_matcher *mt);   /* back to the start; budget off */
/* Advances over token T: 0, or -EINVAL if T is not allowed (nothing changes), -ENOMEM. An
 * end-of-generation token is allowed when the text can end, and changes nothing. */
int slm_matcher_accept_token(struct slm_matcher *mt, slm_token t);
/* Advances over LEN raw bytes (all or nothing): 0 or -EINVAL. */
int slm_matcher_accept_bytes(struct slm_matcher *mt, const char *bytes, size_t len);
/* Is T allowed now (including the budget, if one is set)? */
bool slm_matcher_token_allowed(struct slm_matcher *mt, slm_token t);
/* The allowed tokens as a bit mask (n_vocab bits in BITS, (n_vocab + 31) / 32 words). Returns
 * how many are allowed (0: none, the constraint cannot continue), or a negative errno. */
int32_t slm_matcher_fill_mask(struct slm_matcher *mt, uint32_t *bits);
/* Can the text end here (the constraint satisfied)? Is it complete with nothing able to follow
 * (then only end-of-generation tokens are allowed)? */
bool slm_matcher_can_end(const struct slm_matcher *mt);
bool slm_matcher_is_done(const struct slm_matcher *mt);
/* Fewest bytes that still have to come before the text can end (0 if it can end now). */
uint32_t slm_matcher_bytes_to_end(const struct slm_matcher *mt);
/* The mask width: the n_vocab of the vocab index (of the model it was built from). */
int32_t slm_matcher_n_vocab(const struct slm_matcher *mt);
/* Finish within TOKENS_LEFT more tokens: from now on a token is allowed only if the text can
 * still end in the tokens left after it (counting one token per byte, which every byte-level
 * vocabulary allows). Call before each step with the budget left; -1 turns it off. */
void slm_matcher_set_budget(struct slm_matcher *mt, int32_t tokens_left);

/* A cache of compiled constraints for vocab index VI, at most MAX_ENTRIES (least recently used
 * go first). Thread-safe. */
struct slm_constraint_cache *slm_constraint_cache_new(const struct slm_vocab_index *vi,
                                                      size_t max_entries);
void slm_constraint_cache_free(struct slm_constraint_cache *cc);   /* accepts NULL */
/* The constraint for (KIND, TEXT, PARAMS), compiled on first use. Returns a new reference (free
 * it with slm_constraint_free) or NULL with ERR filled; failures are not cached. */
struct slm_constraint *slm_constraint_cache_get(struct slm_constraint_cache *cc,
                                                enum slm_constraint_kind kind, const char *text,
                                                size_t len, const struct slm_constraint_params *params,
                                                struct slm_constraint_error *err);

/* Samples as slm_sampler_sample does, but only among the tokens MT allows: penalties, then the
 * mask, then top-k/top-p/min-p/temperature over the allowed tokens (top-k takes the k best
 * allowed ones; top-p and min-p work on their probabilities), so greedy decoding takes the best
 * allowed token (reproducible: ties to the lowest id) and sampling draws from the allowed
 * tokens' distribution. Checks the best candidates one by one first and computes the full mask
 * only when that is not enough (top_k <= 0, most candidates refused, or TOP requested; TOP's
 * log-probabilities are then over the allowed tokens, and entries past their number get token
 * -1). The budget set on MT applies. Does not advance MT (call slm_matcher_accept_token).
 * Returns the token, or -1 if no token is allowed (or memory is short). Allocation-free after
 * the first call that needs the mask. */
slm_token slm_sampler_sample_constrained(struct slm_sampler *s, const float *logits,
                                         struct slm_matcher *mt, struct slm_token_prob *top);

/* ---------------------------------------------------------------- command line */

/* `tiergate slm <tool> ...`: info, tokenize, run, bench, mkmodel, quantize, schema. ARGV[0] is the
 * tool name. Returns the process exit code. */
int slm_tool_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
