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

/* ---------------------------------------------------------------- command line */

/* `tiergate slm <tool> ...`: info, tokenize, run, bench, mkmodel, quantize. ARGV[0] is the tool
 * name. Returns the process exit code. */
int slm_tool_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
