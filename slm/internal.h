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
int slm_vocab_load(const struct slm_gguf_file *f, struct slm_vocab **out, char *err, size_t errlen);
void slm_vocab_free(struct slm_vocab *v);   /* accepts NULL */

/* model.c: the vocabulary of a loaded model (never NULL for a loaded model). */
const struct slm_vocab *slm_model_vocab(const struct slm_model *m);
/* model.c: token T's embedding (n_embd floats) into OUT; BUF is scratch of tok_embd.row_bytes. */
void slm_model_embed(const struct slm_model *m, slm_token t, float *out, void *buf);
/* model.c: the open GGUF file of a loaded model. */
const struct slm_gguf_file *slm_model_gguf(const struct slm_model *m);

/* ---------------------------------------------------------------- model (model.c) */

enum slm_arch { SLM_ARCH_LLAMA = 0, SLM_ARCH_QWEN2 = 1, SLM_ARCH_QWEN3 = 2 };

/* RoPE pairing: llama rotates adjacent pairs (x[2i], x[2i+1]); qwen2/qwen3 (GPT-NeoX style)
 * rotate halves (x[i], x[i + n_rot/2]). Same values as llama.cpp's rope modes. */
enum slm_rope_mode { SLM_ROPE_NORM = 0, SLM_ROPE_NEOX = 2 };

/* Hyper-parameters, from the `<arch>.*` keys. */
struct slm_hparams {
  enum slm_arch arch;
  int32_t n_vocab;       /* rows of token_embd (== vocabulary size) */
  int32_t n_ctx_train;
  int32_t n_embd;
  int32_t n_layer;
  int32_t n_head;
  int32_t n_head_kv;     /* GQA: n_head is a multiple of n_head_kv */
  int32_t head_dim;      /* attention.key_length, default n_embd / n_head */
  int32_t head_dim_v;    /* attention.value_length, default head_dim */
  int32_t n_ff;
  int32_t n_rot;         /* rope.dimension_count, default head_dim; dims >= n_rot are not rotated */
  float rope_theta;      /* rope.freq_base, default 10000 */
  float rope_freq_scale; /* 1 / rope.scaling.factor for linear scaling, else 1 */
  float norm_eps;        /* attention.layer_norm_rms_epsilon */
  enum slm_rope_mode rope_mode;
};

/* A weight tensor used in place from the mapping. Matrices are ne0 (input, row length) x ne1
 * (output rows); row r starts at data + r * row_bytes. */
struct slm_tensor {
  const void *data;      /* NULL if the (optional) tensor is absent */
  enum slm_type type;
  int64_t ne0, ne1;
  size_t row_bytes;
  /* Repacked copy (kernels.h, "x8") when the kernels have a faster layout for the type: rows
   * [0, x8_rows) in groups of 8, group g at x8 + g * x8_gs. NULL: only the original rows. */
  void *x8;
  size_t x8_gs;
  int64_t x8_rows;
  void *own;             /* heap copy that DATA points to (freed with the model), or NULL */
};

struct slm_layer {
  struct slm_tensor attn_norm;            /* F32 [n_embd] */
  struct slm_tensor wq, wk, wv, wo;       /* [n_embd -> n_head*hd], [n_embd -> n_kv*hd] x2, [n_head*hdv -> n_embd] */
  struct slm_tensor bq, bk, bv;           /* qwen2: F32 biases, else absent */
  struct slm_tensor q_norm, k_norm;       /* qwen3: F32 [head_dim], else absent */
  struct slm_tensor ffn_norm;             /* F32 [n_embd] */
  struct slm_tensor w_gate, w_up, w_down; /* [n_embd -> n_ff] x2, [n_ff -> n_embd] */
};

struct slm_model {
  struct slm_gguf_file *gguf;
  struct slm_vocab *vocab;
  bool vocab_only;
  char arch_name[32];
  struct slm_hparams hp;
  const struct slm_kernels *kern;

  struct slm_tensor tok_embd;      /* [n_embd] x n_vocab rows, any type (rows dequantized on lookup) */
  struct slm_tensor output_norm;   /* F32 [n_embd] */
  struct slm_tensor output;        /* [n_embd -> n_vocab]; == tok_embd when tied */
  const float *rope_freqs;         /* llama3 rope scaling: n_rot/2 divisors of the frequencies, or NULL */
  float *rope_freqs_own;           /* its heap copy, if it was moved off the mapping */
  struct slm_layer *layers;        /* n_layer */
  uint64_t tensor_bytes;
  uint64_t repacked_bytes;         /* heap copies in the x8 layout */
  uint64_t copied_bytes;           /* heap copies of the tensors used in their original layout */
  /* The model file, read with pread(): the repack reads its input this way, and so do token
   * lookups (slm_model_embed), so that once a model is repacked the forward pass never touches
   * the tensor data of the mapping. Faulting a mapped file page can map a whole large folio
   * (2 MiB on ext4 with large folios) and bring back pages a repack had dropped: RSS would then
   * depend on the page cache's state. -1 if the file could not be reopened (the mapping is used). */
  int fd;
};

/* ---------------------------------------------------------------- thread pool (threadpool.c) */

#define SLM_MAX_THREADS 256

/* A persistent pool: the caller of slm_pool_run is thread 0, N-1 workers wait for work. Not
 * reentrant; one slm_pool_run at a time (a context is used by one thread at a time). */
struct slm_pool;
struct slm_pool *slm_pool_new(int n_threads);   /* NULL on failure */
void slm_pool_free(struct slm_pool *p);         /* accepts NULL; joins the workers */
int slm_pool_size(const struct slm_pool *p);
/* Runs FN(ARG, ith, nth) on every thread (ith 0 on the caller) and returns when all are done. */
void slm_pool_run(struct slm_pool *p, void (*fn)(void *arg, int ith, int nth), void *arg);
/* Called by every thread of a run: returns when all threads have arrived. Writes made before the
 * barrier are visible to all threads after it. */
void slm_pool_barrier(struct slm_pool *p);

#endif
