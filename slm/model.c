/*
 * model.c: loading a model from a GGUF file (hyper-parameters, weights, vocabulary), the public
 * tokenizer / chat-template wrappers over slm/vocab.h, and model introspection.
 *
 * Weights are never copied: every struct slm_tensor points into the read-only mapping of the
 * GGUF reader. Loading checks everything the forward pass will rely on: the architecture, every
 * hyper-parameter's range, and each tensor's presence, type and exact shape, so forward.c can index
 * without checks. Anything unsupported (architecture, tensor type, rope scaling kind) is refused
 * with a message naming it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "slm/internal.h"
#include "slm/vocab.h"

struct slm_model_params slm_model_default_params(void) {
  return (struct slm_model_params){
      .vocab_only = false,
      .use_mlock = false,
      .cpu_max_level = SLM_CPU_LEVEL_COUNT - 1,
  };
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* ---------------------------------------------------------------- hyper-parameters */

/* Reads `<arch>.<suffix>` as an unsigned integer. Returns 0, -ENOENT (absent) or -EINVAL. */
static int get_arch_u32(const struct slm_model *m, const char *suffix, uint32_t *out) {
  char key[128];
  snprintf(key, sizeof key, "%s.%s", m->arch_name, suffix);
  return slm_gguf_get_u32(m->gguf, key, out);
}

static int get_arch_f32(const struct slm_model *m, const char *suffix, float *out) {
  char key[128];
  snprintf(key, sizeof key, "%s.%s", m->arch_name, suffix);
  return slm_gguf_get_f32(m->gguf, key, out);
}

/* A required positive integer hyper-parameter no larger than MAX. */
static int req_u32(const struct slm_model *m, const char *suffix, uint32_t max, int32_t *out,
                   char *err, size_t errlen) {
  uint32_t v = 0;
  int rc = get_arch_u32(m, suffix, &v);
  if (rc == -ENOENT) {
    set_err(err, errlen, "missing metadata key %s.%s", m->arch_name, suffix);
    return -EINVAL;
  }
  if (rc < 0 || v == 0 || v > max) {
    set_err(err, errlen, "metadata key %s.%s: bad value (need an integer in 1..%" PRIu32 ")",
            m->arch_name, suffix, max);
    return -EINVAL;
  }
  *out = (int32_t)v;
  return 0;
}

/* An optional positive integer: DEF if absent. */
static int opt_u32(const struct slm_model *m, const char *suffix, uint32_t max, int32_t def,
                   int32_t *out, char *err, size_t errlen) {
  uint32_t v = 0;
  int rc = get_arch_u32(m, suffix, &v);
  if (rc == -ENOENT) {
    *out = def;
    return 0;
  }
  if (rc < 0 || v == 0 || v > max) {
    set_err(err, errlen, "metadata key %s.%s: bad value (need an integer in 1..%" PRIu32 ")",
            m->arch_name, suffix, max);
    return -EINVAL;
  }
  *out = (int32_t)v;
  return 0;
}

static int opt_f32(const struct slm_model *m, const char *suffix, float def, float *out,
                   char *err, size_t errlen) {
  float v = 0;
  int rc = get_arch_f32(m, suffix, &v);
  if (rc == -ENOENT) {
    *out = def;
    return 0;
  }
  if (rc < 0 || !(v == v)) {
    set_err(err, errlen, "metadata key %s.%s: not a number", m->arch_name, suffix);
    return -EINVAL;
  }
  *out = v;
  return 0;
}

static int load_hparams(struct slm_model *m, char *err, size_t errlen) {
  struct slm_hparams *hp = &m->hp;
  /* generous upper bounds: they only keep products far from overflow */
  const uint32_t big = 1u << 20;
  int rc;
  if ((rc = req_u32(m, "embedding_length", big, &hp->n_embd, err, errlen)) ||
      (rc = req_u32(m, "block_count", 4096, &hp->n_layer, err, errlen)) ||
      (rc = req_u32(m, "feed_forward_length", big, &hp->n_ff, err, errlen)) ||
      (rc = req_u32(m, "attention.head_count", 4096, &hp->n_head, err, errlen)))
    return rc;
  if ((rc = opt_u32(m, "attention.head_count_kv", 4096, hp->n_head, &hp->n_head_kv, err, errlen)) ||
      (rc = opt_u32(m, "context_length", 1u << 24, 2048, &hp->n_ctx_train, err, errlen)))
    return rc;
  if (hp->n_head % hp->n_head_kv != 0) {
    set_err(err, errlen, "%s: head_count %d is not a multiple of head_count_kv %d", m->arch_name,
            hp->n_head, hp->n_head_kv);
    return -EINVAL;
  }
  int32_t def_hd = hp->n_embd % hp->n_head == 0 ? hp->n_embd / hp->n_head : 0;
  if ((rc = opt_u32(m, "attention.key_length", 4096, def_hd, &hp->head_dim, err, errlen)))
    return rc;
  if ((rc = opt_u32(m, "attention.value_length", 4096, hp->head_dim, &hp->head_dim_v, err, errlen)))
    return rc;
  if (hp->head_dim <= 0 || hp->head_dim % 2 != 0) {
    set_err(err, errlen, "%s: head dimension %d is not a positive even number (embedding_length %d, "
            "head_count %d)", m->arch_name, hp->head_dim, hp->n_embd, hp->n_head);
    return -EINVAL;
  }
  if (hp->head_dim_v != hp->head_dim) {
    set_err(err, errlen, "%s: attention.value_length %d != key_length %d is not supported",
            m->arch_name, hp->head_dim_v, hp->head_dim);
    return -ENOTSUP;
  }
  if ((rc = opt_u32(m, "rope.dimension_count", 4096, hp->head_dim, &hp->n_rot, err, errlen)))
    return rc;
  if (hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0) {
    set_err(err, errlen, "%s: rope.dimension_count %d must be even and <= the head dimension %d",
            m->arch_name, hp->n_rot, hp->head_dim);
    return -EINVAL;
  }
  if ((rc = opt_f32(m, "rope.freq_base", 10000.0f, &hp->rope_theta, err, errlen)) ||
      (rc = opt_f32(m, "attention.layer_norm_rms_epsilon", 1e-5f, &hp->norm_eps, err, errlen)))
    return rc;
  if (!(hp->rope_theta > 0) || !(hp->norm_eps >= 0) || hp->norm_eps > 1) {
    set_err(err, errlen, "%s: bad rope.freq_base or layer_norm_rms_epsilon", m->arch_name);
    return -EINVAL;
  }

  /* rope scaling: none, linear (positions divided by the factor) or llama3 (through the
   * rope_freqs tensor, read in load_tensors). Others (yarn, longrope) change the math: refuse. */
  hp->rope_freq_scale = 1.0f;
  char key[128];
  snprintf(key, sizeof key, "%s.rope.scaling.type", m->arch_name);
  struct slm_gguf_str st;
  if (slm_gguf_get_str(m->gguf, key, &st) == 0) {
    bool none = st.n == 4 && !memcmp(st.p, "none", 4);
    bool linear = st.n == 6 && !memcmp(st.p, "linear", 6);
    bool llama3 = st.n == 6 && !memcmp(st.p, "llama3", 6);
    if (!none && !linear && !llama3) {
      set_err(err, errlen, "%s: rope scaling type '%.*s' is not supported (none, linear, llama3)",
              m->arch_name, (int)(st.n > 32 ? 32 : st.n), st.p);
      return -ENOTSUP;
    }
    float factor = 1.0f;
    if (linear && opt_f32(m, "rope.scaling.factor", 1.0f, &factor, err, errlen) == 0) {
      if (!(factor >= 1.0f) || factor > 1e6f) {
        set_err(err, errlen, "%s: bad rope.scaling.factor", m->arch_name);
        return -EINVAL;
      }
      hp->rope_freq_scale = 1.0f / factor;
    }
  }
  hp->rope_mode = hp->arch == SLM_ARCH_LLAMA ? SLM_ROPE_NORM : SLM_ROPE_NEOX;
  return 0;
}

/* ---------------------------------------------------------------- tensors */

/* Looks up NAME (printf-style) and checks its type and shape. REQUIRED=false lets it be absent
 * (t->data stays NULL). FLOAT_ONLY requires F32 (norms, biases, rope_freqs). NE1 = 0 means a
 * vector of NE0. */
static int get_tensor(struct slm_model *m, struct slm_tensor *t, bool required, bool float_only,
                      int64_t ne0, int64_t ne1, char *err, size_t errlen, const char *fmt, ...) {
  char name[96];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  memset(t, 0, sizeof *t);
  const struct slm_gguf_tensor *g = slm_gguf_find_tensor(m->gguf, name);
  if (!g) {
    if (!required) return 0;
    set_err(err, errlen, "%s: missing tensor %s", m->arch_name, name);
    return -EINVAL;
  }
  bool vec = ne1 == 0;
  if (float_only && g->type != SLM_TYPE_F32) {
    set_err(err, errlen, "tensor %s has type %s; only F32 is supported for this tensor", name,
            slm_type_name(g->type));
    return -ENOTSUP;
  }
  if ((unsigned)g->type >= SLM_TYPE_COUNT || !slm_type_infos[g->type].supported ||
      (!vec && (!m->kern->vec_dot[g->type] || !m->kern->gemm[g->type]))) {
    set_err(err, errlen, "tensor %s has type %s, which is not supported", name,
            slm_type_name(g->type));
    return -ENOTSUP;
  }
  int64_t want1 = vec ? 1 : ne1;
  if (g->ne[0] != ne0 || g->ne[1] != want1 || g->ne[2] != 1 || g->ne[3] != 1 ||
      g->n_dims > (vec ? 1u : 2u)) {
    set_err(err, errlen,
            "tensor %s has shape [%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64
            "], expected [%" PRId64 ", %" PRId64 "]",
            name, g->ne[0], g->ne[1], g->ne[2], g->ne[3], ne0, want1);
    return -EINVAL;
  }
  size_t rb = slm_row_size(g->type, ne0);
  if (rb == 0 || (uint64_t)rb * (uint64_t)want1 != g->nbytes) {
    set_err(err, errlen, "tensor %s: size %" PRIu64 " does not match its type %s and shape",
            name, g->nbytes, slm_type_name(g->type));
    return -EINVAL;
  }
  t->data = g->data;
  t->type = g->type;
  t->ne0 = ne0;
  t->ne1 = want1;
  t->row_bytes = rb;
  m->tensor_bytes += g->nbytes;
  return 0;
}

static int load_tensors(struct slm_model *m, char *err, size_t errlen) {
  const struct slm_hparams *hp = &m->hp;
  int64_t e = hp->n_embd, q = (int64_t)hp->n_head * hp->head_dim;
  int64_t kv = (int64_t)hp->n_head_kv * hp->head_dim, ff = hp->n_ff, nv = hp->n_vocab;
  int rc;
  if ((rc = get_tensor(m, &m->tok_embd, true, false, e, nv, err, errlen, "token_embd.weight")) ||
      (rc = get_tensor(m, &m->output_norm, true, true, e, 0, err, errlen, "output_norm.weight")) ||
      (rc = get_tensor(m, &m->output, false, false, e, nv, err, errlen, "output.weight")))
    return rc;
  if (!m->output.data) m->output = m->tok_embd;   /* tied embeddings */

  struct slm_tensor rf;
  if ((rc = get_tensor(m, &rf, false, true, hp->n_rot / 2, 0, err, errlen, "rope_freqs.weight")))
    return rc;
  m->rope_freqs = rf.data;

  m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
  if (!m->layers) {
    set_err(err, errlen, "out of memory");
    return -ENOMEM;
  }
  bool qwen2 = hp->arch == SLM_ARCH_QWEN2, qwen3 = hp->arch == SLM_ARCH_QWEN3;
  for (int i = 0; i < hp->n_layer; i++) {
    struct slm_layer *L = &m->layers[i];
    if ((rc = get_tensor(m, &L->attn_norm, true, true, e, 0, err, errlen, "blk.%d.attn_norm.weight", i)) ||
        (rc = get_tensor(m, &L->wq, true, false, e, q, err, errlen, "blk.%d.attn_q.weight", i)) ||
        (rc = get_tensor(m, &L->wk, true, false, e, kv, err, errlen, "blk.%d.attn_k.weight", i)) ||
        (rc = get_tensor(m, &L->wv, true, false, e, kv, err, errlen, "blk.%d.attn_v.weight", i)) ||
        (rc = get_tensor(m, &L->wo, true, false, q, e, err, errlen, "blk.%d.attn_output.weight", i)) ||
        (rc = get_tensor(m, &L->bq, qwen2, true, q, 0, err, errlen, "blk.%d.attn_q.bias", i)) ||
        (rc = get_tensor(m, &L->bk, qwen2, true, kv, 0, err, errlen, "blk.%d.attn_k.bias", i)) ||
        (rc = get_tensor(m, &L->bv, qwen2, true, kv, 0, err, errlen, "blk.%d.attn_v.bias", i)) ||
        (rc = get_tensor(m, &L->q_norm, qwen3, true, hp->head_dim, 0, err, errlen, "blk.%d.attn_q_norm.weight", i)) ||
        (rc = get_tensor(m, &L->k_norm, qwen3, true, hp->head_dim, 0, err, errlen, "blk.%d.attn_k_norm.weight", i)) ||
        (rc = get_tensor(m, &L->ffn_norm, true, true, e, 0, err, errlen, "blk.%d.ffn_norm.weight", i)) ||
        (rc = get_tensor(m, &L->w_gate, true, false, e, ff, err, errlen, "blk.%d.ffn_gate.weight", i)) ||
        (rc = get_tensor(m, &L->w_up, true, false, e, ff, err, errlen, "blk.%d.ffn_up.weight", i)) ||
        (rc = get_tensor(m, &L->w_down, true, false, ff, e, err, errlen, "blk.%d.ffn_down.weight", i)))
      return rc;
  }
  return 0;
}

/* ---------------------------------------------------------------- repacking */

/* Gives the file pages wholly inside [p, p + n) back (if anything mapped them). The mapping is
 * private and read-only: dropped pages read back the same bytes from the file if touched again. */
static void drop_pages(const void *p, size_t n) {
  long ps = sysconf(_SC_PAGESIZE);
  if (ps <= 0) return;
  uintptr_t a = ((uintptr_t)p + (uintptr_t)ps - 1) & ~(uintptr_t)(ps - 1);
  uintptr_t b = ((uintptr_t)p + n) & ~(uintptr_t)(ps - 1);
  if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

/* Reads the N bytes of tensor data that P points to in the mapping from the file itself into
 * BUF. False if it cannot (no descriptor, a short read): the caller then reads the mapping. */
static bool file_read(const struct slm_model *m, const void *p, void *buf, size_t n) {
  if (m->fd < 0) return false;
  off_t off = (off_t)((const uint8_t *)p - (const uint8_t *)slm_gguf_base(m->gguf));
  for (size_t done = 0; done < n;) {
    ssize_t k = pread(m->fd, (uint8_t *)buf + done, n - done, off + (off_t)done);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    done += (size_t)k;
  }
  return true;
}

static bool in_mapping(const struct slm_model *m, const void *p) {
  const uint8_t *base = slm_gguf_base(m->gguf);
  return p && (const uint8_t *)p >= base && (const uint8_t *)p < base + slm_gguf_file_size(m->gguf);
}

/* Repacks T into the x8 layout if this kernel level has an x8 gemm for its type, reading the
 * original rows from the file in slices through BUF (CAP bytes), so the mapping is not faulted
 * in: peak RSS is the copies plus one slice, not plus the file. Failing to allocate is not an
 * error: the original rows still work. */
static void repack(struct slm_model *m, struct slm_tensor *t, uint8_t *buf, size_t cap) {
  if (!t->data || t->x8 || !m->kern->gemm_x8[t->type]) return;
  size_t gs = slm_repack_x8_size(t->type, t->ne0);
  int64_t rows = t->ne1 / 8 * 8;
  if (gs == 0 || rows == 0) return;
  size_t bytes = (size_t)(rows / 8) * gs;
  void *x8 = aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!x8) return;
  int64_t slice = (int64_t)((cap ? cap : 4u << 20) / t->row_bytes) / 8 * 8;
  if (slice < 8) slice = 8;
  bool mapped = false;
  for (int64_t r = 0; r < rows; r += slice) {
    int64_t nr = rows - r < slice ? rows - r : slice;
    const uint8_t *src = (const uint8_t *)t->data + (size_t)r * t->row_bytes;
    size_t n = t->row_bytes * (size_t)nr;
    if (n <= cap && file_read(m, src, buf, n)) {
      src = buf;
    } else {
      mapped = true;
    }
    slm_repack_x8(t->type, t->ne0, nr, src, t->row_bytes, (uint8_t *)x8 + (size_t)(r / 8) * gs);
    if (mapped) drop_pages(t->data, t->row_bytes * (size_t)(r + nr));
  }
  t->x8 = x8;
  t->x8_gs = gs;
  t->x8_rows = rows;
  m->repacked_bytes += bytes;
}

/* Moves T to the heap when the forward pass reads its original rows (not repacked, or rows past
 * the repacked ones): once a model is repacked, nothing reads the mapping's tensor data. */
static void detach(struct slm_model *m, struct slm_tensor *t) {
  if (!in_mapping(m, t->data) || (t->x8 && t->x8_rows == t->ne1)) return;
  size_t n = t->row_bytes * (size_t)t->ne1;
  void *c = aligned_alloc(64, (n + 63) / 64 * 64);
  if (!c) return;
  if (!file_read(m, t->data, c, n)) {
    free(c);
    return;
  }
  t->data = t->own = c;
  m->copied_bytes += n;
}

/* Every tensor the forward pass reads, token_embd last (when tied it is `output`). */
static size_t model_tensors(struct slm_model *m, struct slm_tensor **out, size_t cap) {
  size_t n = 0;
  for (int i = 0; m->layers && i < m->hp.n_layer; i++) {
    struct slm_layer *L = &m->layers[i];
    struct slm_tensor *ts[] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo, &L->bq, &L->bk,
                               &L->bv, &L->q_norm, &L->k_norm, &L->ffn_norm, &L->w_gate,
                               &L->w_up, &L->w_down};
    for (size_t j = 0; j < sizeof ts / sizeof ts[0] && n < cap; j++) out[n++] = ts[j];
  }
  if (n < cap) out[n++] = &m->output_norm;
  if (n < cap) out[n++] = &m->output;
  if (n < cap && m->tok_embd.data != m->output.data) out[n++] = &m->tok_embd;
  return n;
}

/* Repacks every matrix the forward pass multiplies with (not token_embd unless it is the tied
 * output: lookups read its original rows). Then, if anything was repacked, moves what is still
 * read in its original layout to the heap (norms, biases, types without an x8 kernel) and drops
 * the whole mapped tensor data: from then on RSS is the heap copies, whatever the page cache does.
 * A model with nothing to repack (F16, F32, the reference level) is used in place. */
static void repack_all(struct slm_model *m) {
  size_t cap = 4u << 20;
  uint8_t *buf = m->fd >= 0 ? malloc(cap) : NULL;
  if (!buf) cap = 0;
  for (int i = 0; i < m->hp.n_layer; i++) {
    struct slm_layer *L = &m->layers[i];
    struct slm_tensor *ts[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    for (size_t j = 0; j < sizeof ts / sizeof ts[0]; j++) repack(m, ts[j], buf, cap);
  }
  repack(m, &m->output, buf, cap);
  free(buf);
  if (!m->repacked_bytes || m->fd < 0) return;
  size_t cap_t = (size_t)m->hp.n_layer * 14 + 3;
  struct slm_tensor **ts = malloc(cap_t * sizeof *ts);
  if (!ts) return;
  size_t n = model_tensors(m, ts, cap_t);
  for (size_t i = 0; i < n; i++) {
    struct slm_tensor *t = ts[i];
    if (t == &m->tok_embd) continue;   /* an untied embedding: looked up with pread */
    bool tied = t == &m->output && m->tok_embd.data == m->output.data;
    detach(m, t);
    if (tied && t->own) m->tok_embd.data = t->data;   /* lookups read the copy */
  }
  free(ts);
  if (m->rope_freqs && in_mapping(m, m->rope_freqs)) {
    size_t nb = sizeof(float) * (size_t)(m->hp.n_rot / 2);
    float *c = malloc(nb);
    if (c && file_read(m, m->rope_freqs, c, nb)) m->rope_freqs = m->rope_freqs_own = c;
    else free(c);
  }
  /* the tensor data region: from the first tensor to the end of the file */
  const uint8_t *base = slm_gguf_base(m->gguf), *lo = base + slm_gguf_file_size(m->gguf);
  for (uint64_t i = 0; i < slm_gguf_n_tensors(m->gguf); i++) {
    const uint8_t *d = slm_gguf_tensor_at(m->gguf, i)->data;
    if (d && d < lo) lo = d;
  }
  drop_pages(lo, (size_t)(base + slm_gguf_file_size(m->gguf) - lo));
}

static void unrepack(struct slm_tensor *t) {
  free(t->x8);
  t->x8 = NULL;
  free(t->own);
  t->own = NULL;
}

/* use_mlock: pins what decode reads (repacked copies, and the tensors used in place) so it is
 * never paged out. Best effort: RLIMIT_MEMLOCK often refuses, and the model works the same. */
static void lock_range(const void *p, size_t n) {
  if (p && n) (void)mlock(p, n);
}

static void lock_tensor(const struct slm_tensor *t) {
  if (!t->data) return;
  if (t->x8) lock_range(t->x8, (size_t)(t->x8_rows / 8) * t->x8_gs);
  else lock_range(t->data, t->row_bytes * (size_t)t->ne1);
}

static void lock_weights(struct slm_model *m) {
  for (int i = 0; i < m->hp.n_layer; i++) {
    const struct slm_layer *L = &m->layers[i];
    const struct slm_tensor *ts[] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo, &L->bq, &L->bk,
                                     &L->bv, &L->q_norm, &L->k_norm, &L->ffn_norm, &L->w_gate,
                                     &L->w_up, &L->w_down};
    for (size_t j = 0; j < sizeof ts / sizeof ts[0]; j++) lock_tensor(ts[j]);
  }
  lock_tensor(&m->output_norm);
  lock_tensor(&m->output);
  if (m->output.data != m->tok_embd.data) lock_tensor(&m->tok_embd);
}

void slm_model_embed(const struct slm_model *m, slm_token t, float *out, void *buf) {
  const struct slm_tensor *e = &m->tok_embd;
  const uint8_t *row = (const uint8_t *)e->data + (size_t)t * e->row_bytes;
  /* a row still in the mapping is read from the file (see struct slm_model's fd); a failed read
   * (cannot happen on a validated, open file) falls back to the mapping */
  if (in_mapping(m, row) && file_read(m, row, buf, e->row_bytes)) row = buf;
  slm_dequantize_row(e->type, row, out, e->ne0);
}

/* ---------------------------------------------------------------- load / free */

static int parse_arch(struct slm_model *m, char *err, size_t errlen) {
  struct slm_gguf_str a;
  if (slm_gguf_get_str(m->gguf, "general.architecture", &a) != 0) {
    set_err(err, errlen, "missing general.architecture");
    return -EINVAL;
  }
  int n = (int)(a.n < sizeof m->arch_name ? a.n : sizeof m->arch_name - 1);
  memcpy(m->arch_name, a.p, (size_t)n);
  m->arch_name[n] = '\0';
  for (int i = 0; i < n; i++)   /* keys are built from it: keep it printable */
    if (m->arch_name[i] < 0x20 || m->arch_name[i] > 0x7e) m->arch_name[i] = '?';
  if (a.n == 5 && !memcmp(a.p, "llama", 5)) m->hp.arch = SLM_ARCH_LLAMA;
  else if (a.n == 5 && !memcmp(a.p, "qwen2", 5)) m->hp.arch = SLM_ARCH_QWEN2;
  else if (a.n == 5 && !memcmp(a.p, "qwen3", 5)) m->hp.arch = SLM_ARCH_QWEN3;
  else {
    set_err(err, errlen, "architecture '%s' is not supported (supported: llama, qwen2, qwen3)",
            m->arch_name);
    return -ENOTSUP;
  }
  return 0;
}

struct slm_model *slm_model_load(const char *path, const struct slm_model_params *params,
                                 char *err, size_t errlen) {
  struct slm_model_params dp = slm_model_default_params();
  if (!params) params = &dp;
  if (err && errlen) err[0] = '\0';
  if (!path) {
    set_err(err, errlen, "no model path");
    return NULL;
  }
  struct slm_model *m = calloc(1, sizeof *m);
  if (!m) {
    set_err(err, errlen, "out of memory");
    return NULL;
  }
  m->fd = -1;
  char sub[256];
  int rc = slm_gguf_open(path, &m->gguf, sub, sizeof sub);
  if (rc < 0) {
    /* the reader's messages usually name the file already */
    if (!strncmp(sub, path, strlen(path))) set_err(err, errlen, "%s", sub);
    else set_err(err, errlen, "%s: %s", path, sub);
    goto fail;
  }
  rc = slm_vocab_load(m->gguf, &m->vocab, sub, sizeof sub);
  if (rc < 0) {
    set_err(err, errlen, "%s: vocabulary: %s", path, sub);
    goto fail;
  }
  int lvl = params->cpu_max_level;
  if (lvl < SLM_CPU_REF) lvl = SLM_CPU_REF;
  if (lvl >= SLM_CPU_LEVEL_COUNT) lvl = SLM_CPU_LEVEL_COUNT - 1;
  m->kern = slm_kernels_init((enum slm_cpu_level)lvl);
  if (params->vocab_only) {
    m->vocab_only = true;
    struct slm_gguf_str a;
    if (slm_gguf_get_str(m->gguf, "general.architecture", &a) == 0) {
      int n = (int)(a.n < sizeof m->arch_name ? a.n : sizeof m->arch_name - 1);
      memcpy(m->arch_name, a.p, (size_t)n);
      m->arch_name[n] = '\0';
    }
    return m;
  }
  char msg[256];
  if (parse_arch(m, msg, sizeof msg) < 0 || load_hparams(m, msg, sizeof msg) < 0) {
    set_err(err, errlen, "%s: %s", path, msg);
    goto fail;
  }
  const struct slm_gguf_tensor *te = slm_gguf_find_tensor(m->gguf, "token_embd.weight");
  if (!te) {
    set_err(err, errlen, "%s: missing tensor token_embd.weight", path);
    goto fail;
  }
  if (te->ne[1] < 1 || te->ne[1] > (1 << 24)) {
    set_err(err, errlen, "%s: token_embd.weight has %" PRId64 " rows", path, te->ne[1]);
    goto fail;
  }
  m->hp.n_vocab = (int32_t)te->ne[1];
  if (slm_vocab_n_tokens(m->vocab) != m->hp.n_vocab) {
    set_err(err, errlen, "%s: vocabulary has %d tokens but token_embd.weight has %d rows", path,
            slm_vocab_n_tokens(m->vocab), m->hp.n_vocab);
    goto fail;
  }
  if (load_tensors(m, msg, sizeof msg) < 0) {
    set_err(err, errlen, "%s: %s", path, msg);
    goto fail;
  }
  m->fd = open(path, O_RDONLY | O_CLOEXEC);   /* -1: everything is read through the mapping */
  repack_all(m);
  if (params->use_mlock) lock_weights(m);
  return m;
fail:
  slm_model_free(m);
  return NULL;
}

void slm_model_free(struct slm_model *m) {
  if (!m) return;
  if (m->layers) {
    for (int i = 0; i < m->hp.n_layer; i++) {
      struct slm_layer *L = &m->layers[i];
      struct slm_tensor *ts[] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo, &L->bq, &L->bk,
                                 &L->bv, &L->q_norm, &L->k_norm, &L->ffn_norm, &L->w_gate,
                                 &L->w_up, &L->w_down};
      for (size_t j = 0; j < sizeof ts / sizeof ts[0]; j++) unrepack(ts[j]);
    }
  }
  unrepack(&m->output);
  unrepack(&m->output_norm);
  unrepack(&m->tok_embd);
  free(m->rope_freqs_own);
  if (m->fd >= 0) close(m->fd);
  free(m->layers);
  slm_vocab_free(m->vocab);
  slm_gguf_close(m->gguf);
  free(m);
}

const struct slm_vocab *slm_model_vocab(const struct slm_model *m) { return m->vocab; }
const struct slm_gguf_file *slm_model_gguf(const struct slm_model *m) { return m->gguf; }

/* ---------------------------------------------------------------- tokenizer wrappers */

int32_t slm_n_vocab(const struct slm_model *m) {
  return m->vocab_only ? slm_vocab_n_tokens(m->vocab) : m->hp.n_vocab;
}
slm_token slm_token_bos(const struct slm_model *m) { return slm_vocab_bos(m->vocab); }
slm_token slm_token_eos(const struct slm_model *m) { return slm_vocab_eos(m->vocab); }
bool slm_token_is_eog(const struct slm_model *m, slm_token t) { return slm_vocab_is_eog(m->vocab, t); }
bool slm_add_bos(const struct slm_model *m) { return slm_vocab_add_bos(m->vocab); }

int32_t slm_tokenize(const struct slm_model *m, const char *text, size_t len, slm_token *out,
                     int32_t cap, bool add_special, bool parse_special) {
  return slm_vocab_tokenize(m->vocab, text, len, out, cap, add_special, parse_special);
}

int32_t slm_token_to_piece(const struct slm_model *m, slm_token t, char *buf, int32_t cap,
                           bool render_special) {
  return slm_vocab_token_to_piece(m->vocab, t, buf, cap, render_special);
}

int32_t slm_detokenize(const struct slm_model *m, const slm_token *toks, int32_t n, char *buf,
                       int32_t cap, bool remove_leading_space, bool render_special) {
  return slm_vocab_detokenize(m->vocab, toks, n, buf, cap, remove_leading_space, render_special);
}

int32_t slm_chat_apply(const struct slm_model *m, const struct slm_chat_msg *msgs, size_t n,
                       bool add_assistant, char *buf, int32_t cap) {
  return slm_chat_render(slm_vocab_chat_template(m->vocab), msgs, n, add_assistant, buf, cap);
}

const char *slm_chat_template_name(const struct slm_model *m) {
  return slm_chat_family(slm_vocab_chat_template(m->vocab));
}

/* ---------------------------------------------------------------- introspection */

const char *slm_model_arch(const struct slm_model *m) { return m->arch_name; }
int32_t slm_n_layer(const struct slm_model *m) { return m->vocab_only ? 0 : m->hp.n_layer; }
int32_t slm_n_ctx_train(const struct slm_model *m) { return m->vocab_only ? 0 : m->hp.n_ctx_train; }
int32_t slm_n_embd(const struct slm_model *m) { return m->vocab_only ? 0 : m->hp.n_embd; }
uint64_t slm_model_size_bytes(const struct slm_model *m) { return m->tensor_bytes; }

int slm_model_meta(const struct slm_model *m, const char *key, char *buf, size_t cap) {
  if (buf && cap) buf[0] = '\0';
  const struct slm_gguf_kv *kv = key ? slm_gguf_find_kv(m->gguf, key) : NULL;
  if (!kv) return -ENOENT;
  if (!buf || cap == 0) return 0;
  switch (kv->type) {
    case GGUF_VT_STRING: {
      size_t n = kv->v.str.n < cap - 1 ? (size_t)kv->v.str.n : cap - 1;
      memcpy(buf, kv->v.str.p, n);
      buf[n] = '\0';
      break;
    }
    case GGUF_VT_UINT8: case GGUF_VT_UINT16: case GGUF_VT_UINT32: case GGUF_VT_UINT64:
      snprintf(buf, cap, "%" PRIu64, kv->v.u64);
      break;
    case GGUF_VT_INT8: case GGUF_VT_INT16: case GGUF_VT_INT32: case GGUF_VT_INT64:
      snprintf(buf, cap, "%" PRId64, kv->v.i64);
      break;
    case GGUF_VT_FLOAT32: case GGUF_VT_FLOAT64:
      snprintf(buf, cap, "%.9g", kv->v.f64);
      break;
    case GGUF_VT_BOOL:
      snprintf(buf, cap, "%s", kv->v.b ? "true" : "false");
      break;
    case GGUF_VT_ARRAY:
      snprintf(buf, cap, "[array of %" PRIu64 "]", kv->arr_n);
      break;
    default:
      break;
  }
  return 0;
}
