/*
 * forward.c: contexts (KV cache, scratch, thread pool) and the transformer forward pass over a
 * batch of tokens from several sequences, for the llama / qwen2 / qwen3 architectures.
 *
 * DESIGN. slm_decode() validates the batch, then runs forward_thread() once on every thread of the
 * context's pool. The threads walk the whole network together and meet at a barrier between
 * phases; per layer:
 *
 *   P1  h = rmsnorm(x) and its quantized forms; Q/K/V handed out by head, so the thread that
 *       computes a head also adds its bias, applies the q/k norm and RoPE and writes K/V into
 *       the cache                                                               -- barrier
 *   P2  attention, one (token, head) pair at a time                             -- barrier
 *   P3  x += Wo * att       (chunks of output rows)                             -- barrier
 *   P4  h = rmsnorm(x); g = silu(Wg h) * (Wu h)  (chunks of rows of g)          -- barrier
 *   P5  x += Wd * g                                                             -- barrier
 *
 * Work inside a phase is handed out dynamically (an atomic counter per phase, see grab()), not
 * split in fixed shares: the barrier at the end waits for the slowest thread, and on a shared
 * machine some thread is always the slow one.
 *
 * Each matrix input is normalized and quantized once (into the activation type the weight's
 * kernel wants, see slm_vec_dot_type) and shared by every matrix that reads it. For small batches
 * (decode: <= REDUNDANT_MAX tokens) each thread normalizes and quantizes the input itself, into its
 * own buffer: a few hundred floats of redundant work are far cheaper than one more barrier. Larger
 * batches split the rows and add a barrier.
 *
 * Memory: everything (KV cache, activations for n_batch tokens, quantized copies, per-thread
 * buffers, logits) is allocated in slm_context_new; decode allocates nothing.
 *
 * KV cache layout: K [layer][seq][kv_head][position][head_dim], V transposed [layer][seq][kv_head]
 * [head_dim][position] (as llama.cpp's non-flash path). Attention for one token and one KV head
 * is then two matrix products over that head's cells: scores = K . q for all the query heads that
 * share the KV head (K is read once per group, not once per query head), and out = V^T . p.
 * Cell index == position: each sequence owns n_ctx cells.
 */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "slm/internal.h"

#define REDUNDANT_MAX 4   /* batches up to this size: every thread prepares the matrix inputs */
#define MM_ROWS 64        /* gemm tile: weight rows per call */
#define MM_COLS 64        /* gemm tile: activation rows per call */
#define ALIGN 64
#define CTR_PER_LAYER 5   /* work counters: qkv, attention, wo, gate/up, down */

/* A work counter of one phase, alone on its cache line. */
struct ctr {
  _Alignas(64) atomic_long v;
};

/* Per-thread buffers. */
struct tbuf {
  float *xn;                          /* REDUNDANT_MAX x max_in floats: private normalized input */
  void *qa[SLM_TYPE_COUNT];           /* REDUNDANT_MAX rows per activation type in use */
  float *scores;                      /* [gqa][n_ctx] attention scores */
  slm_f16 *q16;                       /* [gqa][head_dim] queries as F16 (F16 cache) */
  slm_f16 *p16;                       /* [gqa][n_ctx] probabilities as F16 (F16 cache) */
  void *row;                          /* one row of token_embd (lookups by pread) */
};

struct slm_context {
  const struct slm_model *m;
  const struct slm_kernels *k;
  struct slm_context_params p;
  struct slm_pool *pool;
  char err[256];

  /* KV cache */
  void *kcache, *vcache;
  size_t kv_elt;                      /* bytes per element: 4 (F32) or 2 (F16) */
  int32_t *kv_pos;                    /* per sequence: next position */

  /* activations, n_batch rows each */
  int64_t max_in;                     /* widest matrix input: max(n_embd, n_head*hd, n_ff) */
  float *x;                           /* residual stream [n_batch][n_embd] */
  float *xn;                          /* normalized input [n_batch][max_in] */
  float *q, *kb, *vb;                 /* [n_batch][n_head*hd], [n_batch][n_kv*hd] x2 */
  float *att;                         /* attention output [n_batch][n_head*hd] */
  float *tmp;                         /* matrix outputs before the residual add [n_batch][n_embd] */
  float *gate, *up;                   /* [n_batch][n_ff]; gate holds silu(gate)*up afterwards */
  void *qa[SLM_TYPE_COUNT];           /* quantized activations [n_batch][row of max_in] by type */
  size_t qa_row_max[SLM_TYPE_COUNT];  /* bytes of the widest row per type (0: type unused) */
  float *rope_cs;                     /* [n_batch][n_rot]: cos, sin per rotated pair */
  struct tbuf *tb;                    /* per thread */
  struct ctr *ctr;                    /* [n_layer * CTR_PER_LAYER + 1], zeroed by each decode */
  int n_ctr;

  /* outputs */
  int32_t n_out_max;
  float *logits;                      /* [n_out_max][n_vocab] */
  int32_t *out_row;                   /* [n_batch]: batch index -> logits row, -1 if none */
  int32_t *out_src;                   /* [n_out_max]: logits row -> batch index */
  float *embd;                        /* [n_seq][n_embd] pooled embeddings */
  bool *embd_ok;                      /* [n_seq] */

  /* the batch being decoded (valid during slm_decode) */
  int32_t n;
  int32_t n_out;
  int32_t *tok, *pos, *seq;           /* [n_batch] resolved copies */
  int32_t *seq_count, *seq_last;      /* [n_seq] tokens of each sequence in the batch, last index */
};

static void *xalloc(size_t bytes) {
  if (bytes == 0) bytes = ALIGN;
  bytes = (bytes + ALIGN - 1) / ALIGN * ALIGN;
  return aligned_alloc(ALIGN, bytes);
}

static void ctx_err(struct slm_context *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err, sizeof c->err, fmt, ap);
  va_end(ap);
}

struct slm_context_params slm_context_default_params(void) {
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  return (struct slm_context_params){
      .n_ctx = 2048,
      .n_seq = 1,
      .n_batch = 512,
      .n_threads = ncpu > 0 ? (int)ncpu : 1,
      .kv_type = SLM_KV_F16,
      .pooling = SLM_POOL_NONE,
      .embd_layer = -1,
      .logits_all = false,
      .n_outputs = 0,
  };
}

const char *slm_errmsg(const struct slm_context *c) { return c ? c->err : "no context"; }

/* ---------------------------------------------------------------- context */

static void note_act(struct slm_context *c, const struct slm_tensor *t) {
  enum slm_type vt = slm_vec_dot_type(t->type);
  if (vt == SLM_TYPE_F32) return;   /* float rows are used as they are */
  size_t rb = slm_row_size(vt, t->ne0);
  if (rb > c->qa_row_max[vt]) c->qa_row_max[vt] = rb;
}

struct slm_context *slm_context_new(const struct slm_model *m, const struct slm_context_params *pp) {
  if (!m || m->vocab_only) return NULL;
  struct slm_context_params p = pp ? *pp : slm_context_default_params();
  const struct slm_hparams *hp = &m->hp;
  if (p.n_ctx == 0) p.n_ctx = 2048;
  if (p.n_ctx > (uint32_t)hp->n_ctx_train) p.n_ctx = (uint32_t)hp->n_ctx_train;
  if (p.n_seq == 0) p.n_seq = 1;
  if (p.n_seq > 1024) return NULL;
  if (p.n_batch == 0) p.n_batch = 512;
  if (p.n_batch > 65536) p.n_batch = 65536;
  if (p.n_threads <= 0) p.n_threads = slm_context_default_params().n_threads;
  if (p.n_threads > SLM_MAX_THREADS) p.n_threads = SLM_MAX_THREADS;
  if (p.kv_type != SLM_KV_F32 && p.kv_type != SLM_KV_F16) return NULL;
  if (p.pooling < SLM_POOL_NONE || p.pooling > SLM_POOL_LAST) return NULL;
  if (p.embd_layer < -1 || p.embd_layer >= hp->n_layer) return NULL;
  if (p.logits_all) p.n_outputs = p.n_batch;
  if (p.n_outputs == 0) p.n_outputs = p.n_seq;
  if (p.n_outputs > p.n_batch) p.n_outputs = p.n_batch;

  struct slm_context *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->m = m;
  c->k = m->kern;
  c->p = p;

  const size_t nb = p.n_batch, E = (size_t)hp->n_embd, hd = (size_t)hp->head_dim;
  const size_t QD = (size_t)hp->n_head * hd, KD = (size_t)hp->n_head_kv * hd, FF = (size_t)hp->n_ff;
  c->max_in = (int64_t)(E > QD ? E : QD);
  if ((int64_t)FF > c->max_in) c->max_in = (int64_t)FF;

  c->kv_elt = p.kv_type == SLM_KV_F32 ? 4 : 2;
  size_t kv_bytes = (size_t)hp->n_layer * p.n_seq * p.n_ctx * KD * c->kv_elt;
  c->kcache = xalloc(kv_bytes);   /* pages are touched only as positions fill */
  c->vcache = xalloc(kv_bytes);
  c->kv_pos = calloc(p.n_seq, sizeof *c->kv_pos);

  c->x = xalloc(nb * E * 4);
  c->xn = xalloc(nb * (size_t)c->max_in * 4);
  c->q = xalloc(nb * QD * 4);
  c->kb = xalloc(nb * KD * 4);
  c->vb = xalloc(nb * KD * 4);
  c->att = xalloc(nb * QD * 4);
  c->tmp = xalloc(nb * E * 4);
  c->gate = xalloc(nb * FF * 4);
  c->up = xalloc(nb * FF * 4);
  c->rope_cs = xalloc(nb * (size_t)hp->n_rot * 4);

  for (int l = 0; l < hp->n_layer; l++) {
    const struct slm_layer *L = &m->layers[l];
    note_act(c, &L->wq); note_act(c, &L->wk); note_act(c, &L->wv); note_act(c, &L->wo);
    note_act(c, &L->w_gate); note_act(c, &L->w_up); note_act(c, &L->w_down);
  }
  note_act(c, &m->output);
  bool ok = c->kcache && c->vcache && c->kv_pos && c->x && c->xn && c->q && c->kb && c->vb &&
            c->att && c->tmp && c->gate && c->up && c->rope_cs;
  for (int t = 0; t < SLM_TYPE_COUNT && ok; t++)
    if (c->qa_row_max[t]) ok = (c->qa[t] = xalloc(nb * c->qa_row_max[t])) != NULL;

  c->n_ctr = hp->n_layer * CTR_PER_LAYER + 1;
  c->ctr = xalloc((size_t)c->n_ctr * sizeof *c->ctr);
  ok = ok && c->ctr;
  const size_t gqa = (size_t)(hp->n_head / hp->n_head_kv);
  c->tb = calloc((size_t)p.n_threads, sizeof *c->tb);
  ok = ok && c->tb;
  for (int i = 0; ok && i < p.n_threads; i++) {
    struct tbuf *tb = &c->tb[i];
    ok = (tb->xn = xalloc(REDUNDANT_MAX * (size_t)c->max_in * 4)) &&
         (tb->scores = xalloc((size_t)gqa * p.n_ctx * 4)) &&
         (tb->q16 = xalloc((size_t)gqa * hd * 2)) && (tb->p16 = xalloc((size_t)gqa * p.n_ctx * 2)) &&
         (tb->row = xalloc(m->tok_embd.row_bytes));
    for (int t = 0; t < SLM_TYPE_COUNT && ok; t++)
      if (c->qa_row_max[t]) ok = (tb->qa[t] = xalloc(REDUNDANT_MAX * c->qa_row_max[t])) != NULL;
  }

  c->n_out_max = (int32_t)p.n_outputs;
  c->logits = xalloc((size_t)c->n_out_max * (size_t)hp->n_vocab * 4);
  c->out_row = calloc(nb, sizeof *c->out_row);
  c->out_src = calloc((size_t)c->n_out_max, sizeof *c->out_src);
  c->embd = xalloc((size_t)p.n_seq * E * 4);
  c->embd_ok = calloc(p.n_seq, sizeof *c->embd_ok);
  c->tok = calloc(nb, sizeof *c->tok);
  c->pos = calloc(nb, sizeof *c->pos);
  c->seq = calloc(nb, sizeof *c->seq);
  c->seq_count = calloc(p.n_seq, sizeof *c->seq_count);
  c->seq_last = calloc(p.n_seq, sizeof *c->seq_last);
  ok = ok && c->logits && c->out_row && c->out_src && c->embd && c->embd_ok && c->tok && c->pos &&
       c->seq && c->seq_count && c->seq_last;
  if (ok) ok = (c->pool = slm_pool_new(p.n_threads)) != NULL;
  if (!ok) {
    slm_context_free(c);
    return NULL;
  }
  c->p.n_threads = slm_pool_size(c->pool);
  return c;
}

void slm_context_free(struct slm_context *c) {
  if (!c) return;
  slm_pool_free(c->pool);
  if (c->tb) {
    for (int i = 0; i < c->p.n_threads; i++) {
      free(c->tb[i].xn);
      free(c->tb[i].scores);
      free(c->tb[i].q16);
      free(c->tb[i].p16);
      free(c->tb[i].row);
      for (int t = 0; t < SLM_TYPE_COUNT; t++) free(c->tb[i].qa[t]);
    }
    free(c->tb);
  }
  for (int t = 0; t < SLM_TYPE_COUNT; t++) free(c->qa[t]);
  free(c->kcache); free(c->vcache); free(c->kv_pos);
  free(c->x); free(c->xn); free(c->q); free(c->kb); free(c->vb); free(c->att); free(c->tmp);
  free(c->gate); free(c->up); free(c->rope_cs); free(c->ctr);
  free(c->logits); free(c->out_row); free(c->out_src); free(c->embd); free(c->embd_ok);
  free(c->tok); free(c->pos); free(c->seq); free(c->seq_count); free(c->seq_last);
  free(c);
}

int slm_context_n_threads(const struct slm_context *c) { return c->p.n_threads; }
uint32_t slm_context_n_ctx(const struct slm_context *c) { return c->p.n_ctx; }

size_t slm_context_kv_bytes(const struct slm_context *c) {
  const struct slm_hparams *hp = &c->m->hp;
  return 2 * (size_t)hp->n_layer * c->p.n_seq * c->p.n_ctx * (size_t)hp->n_head_kv *
         (size_t)hp->head_dim * c->kv_elt;
}

/* ---------------------------------------------------------------- KV cache */

int slm_kv_remove(struct slm_context *c, int32_t seq, int32_t p0, int32_t p1) {
  if (seq < 0 || (uint32_t)seq >= c->p.n_seq || p0 < 0) {
    ctx_err(c, "kv_remove: bad sequence %d or position %d", seq, p0);
    return -EINVAL;
  }
  if (p0 >= c->kv_pos[seq]) return 0;   /* nothing there */
  if (p1 >= 0 && p1 < c->kv_pos[seq]) {
    ctx_err(c, "kv_remove: only a suffix can be removed (sequence %d holds %d positions)", seq,
            c->kv_pos[seq]);
    return -EINVAL;
  }
  c->kv_pos[seq] = p0;
  return 0;
}

void slm_kv_clear(struct slm_context *c) {
  memset(c->kv_pos, 0, c->p.n_seq * sizeof *c->kv_pos);
}

int32_t slm_kv_pos(const struct slm_context *c, int32_t seq) {
  if (seq < 0 || (uint32_t)seq >= c->p.n_seq) return -1;
  return c->kv_pos[seq];
}

/* K (or V) cells of (layer, seq, kv head): n_ctx rows of head_dim elements. */
static inline uint8_t *kv_at(const struct slm_context *c, void *base, int l, int s, int h) {
  const struct slm_hparams *hp = &c->m->hp;
  size_t idx = (((size_t)l * c->p.n_seq + (size_t)s) * (size_t)hp->n_head_kv + (size_t)h) *
               c->p.n_ctx * (size_t)hp->head_dim;
  return (uint8_t *)base + idx * c->kv_elt;
}

/* ---------------------------------------------------------------- helpers of the forward pass */

/* Contiguous share [*a, *b) of N items for thread ITH of NTH, boundaries on multiples of ALIGNN. */
static inline void split(int64_t n, int ith, int nth, int64_t alignn, int64_t *a, int64_t *b) {
  int64_t blocks = (n + alignn - 1) / alignn;
  int64_t b0 = blocks * ith / nth, b1 = blocks * (ith + 1) / nth;
  *a = b0 * alignn < n ? b0 * alignn : n;
  *b = b1 * alignn < n ? b1 * alignn : n;
}

/* Dynamic scheduling: threads take chunks [*a, *b) of N items, CH at a time, from the phase's
 * counter until none is left. Static shares made every barrier wait for the slowest thread; on a
 * shared machine (or with two streams competing for DRAM) one thread is routinely slower, and the
 * counter lets the faster one take more. */
static inline bool grab(struct ctr *ct, int64_t n, int64_t ch, int64_t *a, int64_t *b) {
  int64_t i = atomic_fetch_add_explicit(&ct->v, 1, memory_order_relaxed);
  if (i * ch >= n) return false;
  *a = i * ch;
  *b = *a + ch < n ? *a + ch : n;
  return true;
}

/* Rows per chunk for a matrix of NROWS output rows and N input rows: small batches (memory
 * bound) want several chunks per thread; large ones want MM_ROWS, the gemm chunk that stays in
 * cache while all input rows pass over it. Multiples of 16 keep each chunk's output rows on
 * whole cache lines. */
static inline int64_t row_chunk(int64_t nrows, int n, int nth) {
  if (nth == 1) return nrows;
  if (n > REDUNDANT_MAX) return MM_ROWS;
  int64_t ch = (nrows / (nth * 4) + 15) / 16 * 16;
  return ch < 16 ? 16 : ch > 256 ? 256 : ch;
}

static void quantize_row(const struct slm_kernels *k, enum slm_type vt, const float *x, void *y,
                         int64_t n) {
  switch (vt) {
    case SLM_TYPE_Q8_0: k->quantize_q8_0(x, y, n); break;
    case SLM_TYPE_Q8_1: k->quantize_q8_1(x, y, n); break;
    case SLM_TYPE_Q8_K: k->quantize_q8_K(x, y, n); break;
    case SLM_TYPE_F16: k->f32_to_f16(x, y, n); break;
    case SLM_TYPE_BF16: k->f32_to_bf16(x, y, n); break;
    default: abort();   /* the loader only accepts types with one of these activation types */
  }
}

/* A prepared matrix input: N rows of D floats and their quantized copies by activation type. */
struct act {
  const float *f;                       /* row j at f + j * D */
  const uint8_t *qa[SLM_TYPE_COUNT];    /* row j at qa[t] + j * slm_row_size(t, D) */
  int64_t d;
};

/* Input of the thread's matrix products: the float rows of SRC (stride SRC_STRIDE floats) selected
 * by ROWS (NULL: rows 0..n-1), RMS-normalized with NORM_W if non-NULL, quantized for each weight in
 * W[0..NW). Small batches: this thread does it all in its private buffers (no barrier). Large
 * batches: rows are split over the threads into the shared buffers, then a barrier. */
static void prep_input(struct slm_context *c, int ith, int nth, int n, const int32_t *rows,
                       const float *src, int64_t src_stride, int64_t d, const float *norm_w,
                       const struct slm_tensor *const *w, int nw, struct act *a) {
  const struct slm_kernels *k = c->k;
  bool priv = n <= REDUNDANT_MAX;
  bool need[SLM_TYPE_COUNT] = {0};
  bool need_f = norm_w || rows;   /* float rows must be written somewhere */
  for (int i = 0; i < nw; i++) {
    enum slm_type vt = slm_vec_dot_type(w[i]->type);
    if (vt != SLM_TYPE_F32) need[vt] = true;
  }
  float *fdst = priv ? c->tb[ith].xn : c->xn;
  a->d = d;
  a->f = need_f ? fdst : src;
  int64_t r0 = 0, r1 = n;
  if (!priv) split(n, ith, nth, 1, &r0, &r1);
  for (int64_t j = r0; j < r1; j++) {
    const float *s = src + (size_t)(rows ? rows[j] : j) * (size_t)src_stride;
    float *f = need_f ? fdst + (size_t)j * (size_t)d : (float *)s;
    if (norm_w) k->rmsnorm_f32(d, f, s, norm_w, c->m->hp.norm_eps);
    else if (need_f) memcpy(f, s, (size_t)d * 4);
    for (int t = 0; t < SLM_TYPE_COUNT; t++)
      if (need[t]) {
        uint8_t *qd = priv ? c->tb[ith].qa[t] : c->qa[t];
        quantize_row(k, (enum slm_type)t, f, qd + (size_t)j * slm_row_size((enum slm_type)t, d), d);
      }
  }
  if (!need_f && src_stride != d) abort();   /* callers pass packed rows when not normalizing */
  for (int t = 0; t < SLM_TYPE_COUNT; t++)
    a->qa[t] = need[t] ? (priv ? c->tb[ith].qa[t] : c->qa[t]) : NULL;
  if (!priv) slm_pool_barrier(c->pool);
}

/* y[j * ys + r] = dot(W row r, input row j) for rows [r0, r1) and the N input rows.
 *
 * Weights of any real model come from DRAM at every use, so the order they are read in matters
 * as much as the arithmetic. gemm tiles walk several rows side by side (row 0 block b, row 1 block
 * b, ..., row 0 block b+1): inside a 4 KiB page that pattern has no constant stride, the hardware
 * prefetcher does not follow it, and a tile reading from DRAM runs 3-5x slower than vec_dot's
 * straight walk along one row (measured on Zen 4: 30 MB of Q8_0 rows, 2.8 ms by vec_dot, 9-14 ms
 * by gemm with nc = 1). So per chunk of MM_ROWS rows: input row 0 with vec_dot, row by row
 * (sequential reads bring the chunk into L1/L2), then the other input rows with gemm tiles on the
 * now cached chunk. Decode (N = 1) is just the first step. */
static void matmul(const struct slm_kernels *k, const struct slm_tensor *W, const struct act *a,
                   int n, int64_t r0, int64_t r1, float *y, int64_t ys) {
  if (r1 <= r0) return;
  enum slm_type vt = slm_vec_dot_type(W->type);
  const uint8_t *ap = vt == SLM_TYPE_F32 ? (const uint8_t *)a->f : a->qa[vt];
  size_t as = slm_row_size(vt, a->d);
  const uint8_t *w = (const uint8_t *)W->data;
  const size_t wb = W->row_bytes;
  slm_vec_dot_fn vd = k->vec_dot[W->type];
  slm_gemm_fn g = k->gemm[W->type];
  slm_gemm_fn gx = W->x8 ? k->gemm_x8[W->type] : NULL;
  for (int64_t rr = r0; rr < r1; rr += MM_ROWS) {
    int nr = (int)(r1 - rr < MM_ROWS ? r1 - rr : MM_ROWS);
    if (gx && rr % 8 == 0 && rr + nr <= W->x8_rows && nr % 8 == 0) {
      /* repacked rows: 8 rows are one sequential stream already, every tile size gives the
       * same bits */
      const uint8_t *xc = (const uint8_t *)W->x8 + (size_t)(rr / 8) * W->x8_gs;
      for (int j0 = 0; j0 < n; j0 += MM_COLS) {
        int nc = n - j0 < MM_COLS ? n - j0 : MM_COLS;
        gx(W->ne0, nr, nc, y + (size_t)j0 * (size_t)ys + rr, ys, xc, W->x8_gs,
           ap + (size_t)j0 * as, as);
      }
      continue;
    }
    const uint8_t *wc = w + (size_t)rr * wb;
    for (int i = 0; i < nr; i++) vd(W->ne0, y + rr + i, wc + (size_t)i * wb, ap);
    for (int j0 = 1; j0 < n; j0 += MM_COLS) {
      int nc = n - j0 < MM_COLS ? n - j0 : MM_COLS;
      g(W->ne0, nr, nc, y + (size_t)j0 * (size_t)ys + rr, ys, wc, wb, ap + (size_t)j0 * as, as);
    }
  }
}

/* Rotates the first n_rot dims of one head vector V by the angles of CS (cos, sin per pair). */
static void rope_apply(float *v, const float *cs, int n_rot, enum slm_rope_mode mode) {
  if (mode == SLM_ROPE_NORM) {
    for (int i = 0; i < n_rot; i += 2) {
      float c0 = cs[i], s0 = cs[i + 1], x0 = v[i], x1 = v[i + 1];
      v[i] = x0 * c0 - x1 * s0;
      v[i + 1] = x0 * s0 + x1 * c0;
    }
  } else {
    int half = n_rot / 2;
    for (int i = 0; i < half; i++) {
      float c0 = cs[2 * i], s0 = cs[2 * i + 1], x0 = v[i], x1 = v[i + half];
      v[i] = x0 * c0 - x1 * s0;
      v[i + half] = x0 * s0 + x1 * c0;
    }
  }
}

/* cos/sin of the rotation angles of position POS, computed as llama.cpp's rope cache does (the
 * same float recurrence, so angles at large positions agree to the last bits). */
static void rope_angles(const struct slm_model *m, int32_t pos, float *cs) {
  const struct slm_hparams *hp = &m->hp;
  float theta_scale = powf(hp->rope_theta, -2.0f / (float)hp->n_rot);
  float theta = (float)pos;
  for (int i = 0; i < hp->n_rot / 2; i++) {
    float ff = m->rope_freqs ? m->rope_freqs[i] : 1.0f;
    float t = hp->rope_freq_scale * (theta / ff);
    cs[2 * i] = cosf(t);
    cs[2 * i + 1] = sinf(t);
    theta *= theta_scale;
  }
}

/* Mean or last-token pooling of the rows SRC (stride E) of each sequence, for sequences
 * s = ith, ith + nth, ... */
static void pool_rows(struct slm_context *c, int ith, int nth, const float *src) {
  const int64_t E = c->m->hp.n_embd;
  for (uint32_t s = (uint32_t)ith; s < c->p.n_seq; s += (uint32_t)nth) {
    if (c->seq_count[s] == 0) continue;
    float *e = c->embd + (size_t)s * (size_t)E;
    if (c->p.pooling == SLM_POOL_LAST) {
      memcpy(e, src + (size_t)c->seq_last[s] * (size_t)E, (size_t)E * 4);
    } else {
      memset(e, 0, (size_t)E * 4);
      for (int j = 0; j < c->n; j++)
        if (c->seq[j] == (int32_t)s) c->k->add_f32(E, e, src + (size_t)j * (size_t)E);
      c->k->scale_f32(E, 1.0f / (float)c->seq_count[s], e);
    }
    c->embd_ok[s] = true;
  }
}

/* ---------------------------------------------------------------- the forward pass */

/* P2. Unit = (token j, KV head g): the gqa query heads of g are contiguous in q, so
 *   S[r][t] = K_t . q_r        one gemm: np cached keys x gqa queries (F16 cache)
 *   P[r] = softmax(S[r] * scale)
 *   out_r[d] = Vt_d . P[r]     one gemm: head_dim rows of V^T x gqa probability rows
 * With an F16 cache the queries and the probabilities go to F16 first (the F16 dot's activation
 * type), exactly what llama.cpp's non-flash attention does with its F16 cache. */
static void attention(struct slm_context *c, int l, int ith, struct ctr *ct) {
  const struct slm_hparams *hp = &c->m->hp;
  const struct slm_kernels *k = c->k;
  const int hd = hp->head_dim, nkv = hp->n_head_kv, gqa = hp->n_head / hp->n_head_kv;
  const int64_t QD = (int64_t)hp->n_head * hd;
  const float scale = 1.0f / sqrtf((float)hd);
  const bool f16 = c->kv_elt == 2;
  const slm_gemm_fn g = k->gemm[f16 ? SLM_TYPE_F16 : SLM_TYPE_F32];
  const size_t el = c->kv_elt, vrow = (size_t)c->p.n_ctx * el;
  struct tbuf *tb = &c->tb[ith];
  float *S = tb->scores;
  int64_t u, u1;
  while (grab(ct, (int64_t)c->n * nkv, 1, &u, &u1)) {
    const int j = (int)(u / nkv), kh = (int)(u % nkv);
    const int s = c->seq[j], np = c->pos[j] + 1;   /* causal: cells 0..pos of this sequence */
    const float *qv = c->q + j * QD + (int64_t)kh * gqa * hd;
    const void *qa = qv;
    size_t qs = (size_t)hd * 4;
    if (f16) {
      k->f32_to_f16(qv, tb->q16, (int64_t)gqa * hd);
      qa = tb->q16;
      qs = (size_t)hd * 2;
    }
    if (f16) {
      g(hd, np, gqa, S, np, kv_at(c, c->kcache, l, s, kh), (size_t)hd * el, qa, qs);
    } else {
      /* F32 cache, the accuracy setting: dot_f32's pairwise lanes rather than a gemm tile's
       * single running sum. BF16 models re-round every activation to 8 bits and so amplify a
       * 1e-7 change in these sums to ~0.006 in the logits (tiny-llama-BF16: 0.0047 from llama.cpp
       * this way, 0.011 with the tile; the tolerance is 0.01). */
      const float *Kf = (const float *)kv_at(c, c->kcache, l, s, kh);
      for (int r = 0; r < gqa; r++)
        for (int t = 0; t < np; t++)
          S[(size_t)r * np + t] = k->dot_f32(hd, qv + (size_t)r * hd, Kf + (size_t)t * hd);
    }
    for (int r = 0; r < gqa; r++) {
      float *row = S + (size_t)r * np;
      k->scale_f32(np, scale, row);
      float sum = k->exp_sum_f32(np, row, row, k->max_f32(np, row));
      k->scale_f32(np, 1.0f / sum, row);
      if (f16) k->f32_to_f16(row, tb->p16 + (size_t)r * np, np);
    }
    g(np, hd, gqa, c->att + j * QD + (int64_t)kh * gqa * hd, hd, kv_at(c, c->vcache, l, s, kh),
      vrow, f16 ? (const void *)tb->p16 : (const void *)S, (size_t)np * (f16 ? 2 : 4));
  }
}

/* P1: Q/K/V by head units; bias, q/k norm, RoPE; K and V into the cache. */
static void qkv(struct slm_context *c, int l, struct ctr *ct, const struct act *a) {
  const struct slm_model *m = c->m;
  const struct slm_hparams *hp = &m->hp;
  const struct slm_layer *L = &m->layers[l];
  const struct slm_kernels *k = c->k;
  const int n = c->n, hd = hp->head_dim, nh = hp->n_head, nkv = hp->n_head_kv;
  const int64_t QD = (int64_t)nh * hd, KD = (int64_t)nkv * hd;
  int64_t u, u1;
  while (grab(ct, nh + 2 * nkv, 1, &u, &u1)) {
    const struct slm_tensor *W, *B, *N;
    float *buf;
    int64_t dim;
    int h, kind;   /* 0 q, 1 k, 2 v */
    if (u < nh) {
      kind = 0, h = (int)u, W = &L->wq, B = &L->bq, N = &L->q_norm, buf = c->q, dim = QD;
    } else if (u < nh + nkv) {
      kind = 1, h = (int)(u - nh), W = &L->wk, B = &L->bk, N = &L->k_norm, buf = c->kb, dim = KD;
    } else {
      kind = 2, h = (int)(u - nh - nkv), W = &L->wv, B = &L->bv, N = NULL, buf = c->vb, dim = KD;
    }
    int64_t r0 = (int64_t)h * hd;
    matmul(k, W, a, n, r0, r0 + hd, buf, dim);
    for (int j = 0; j < n; j++) {
      float *v = buf + j * dim + r0;
      if (B->data) k->add_f32(hd, v, (const float *)B->data + r0);
      if (N && N->data) k->rmsnorm_f32(hd, v, v, (const float *)N->data, hp->norm_eps);
      if (kind < 2) rope_apply(v, c->rope_cs + (size_t)j * hp->n_rot, hp->n_rot, hp->rope_mode);
      if (kind == 0) continue;
      if (kind == 1) {   /* K: one row per position */
        uint8_t *dst = kv_at(c, c->kcache, l, c->seq[j], h) + (size_t)c->pos[j] * hd * c->kv_elt;
        if (c->kv_elt == 4) memcpy(dst, v, (size_t)hd * 4);
        else k->f32_to_f16(v, (slm_f16 *)dst, hd);
      } else {           /* V transposed: element d of position p at [d][p] */
        uint8_t *base = kv_at(c, c->vcache, l, c->seq[j], h);
        const size_t pos = (size_t)c->pos[j], nctx = c->p.n_ctx;
        if (c->kv_elt == 4)
          for (int d = 0; d < hd; d++) ((float *)base)[(size_t)d * nctx + pos] = v[d];
        else
          for (int d = 0; d < hd; d++) ((slm_f16 *)base)[(size_t)d * nctx + pos] = slm_f32_to_f16(v[d]);
      }
    }
  }
}

static void forward_thread(void *arg, int ith, int nth) {
  struct slm_context *c = arg;
  const struct slm_model *m = c->m;
  const struct slm_hparams *hp = &m->hp;
  const struct slm_kernels *k = c->k;
  const int n = c->n;
  const int64_t E = hp->n_embd, QD = (int64_t)hp->n_head * hp->head_dim, FF = hp->n_ff;
  struct act a;

  /* embeddings and rope angles, tokens split */
  {
    int64_t j0, j1;
    split(n, ith, nth, 1, &j0, &j1);
    for (int64_t j = j0; j < j1; j++) {
      slm_model_embed(m, c->tok[j], c->x + j * E, c->tb[ith].row);
      rope_angles(m, c->pos[j], c->rope_cs + (size_t)j * hp->n_rot);
    }
    slm_pool_barrier(c->pool);
  }

  int last_layer = hp->n_layer - 1;
  if (c->p.pooling != SLM_POOL_NONE && c->p.embd_layer >= 0 && c->n_out == 0)
    last_layer = c->p.embd_layer;   /* nothing needs the layers above */

  for (int l = 0; l <= last_layer; l++) {
    const struct slm_layer *L = &m->layers[l];
    struct ctr *ct = c->ctr + l * CTR_PER_LAYER;
    int64_t r0, r1, ch;

    /* P1 */
    const struct slm_tensor *wqkv[3] = {&L->wq, &L->wk, &L->wv};
    prep_input(c, ith, nth, n, NULL, c->x, E, E, L->attn_norm.data, wqkv, 3, &a);
    qkv(c, l, &ct[0], &a);
    slm_pool_barrier(c->pool);

    /* P2 */
    attention(c, l, ith, &ct[1]);
    slm_pool_barrier(c->pool);

    /* P3 */
    const struct slm_tensor *wo[1] = {&L->wo};
    prep_input(c, ith, nth, n, NULL, c->att, QD, QD, NULL, wo, 1, &a);
    ch = row_chunk(E, n, nth);
    while (grab(&ct[2], E, ch, &r0, &r1)) {
      matmul(k, &L->wo, &a, n, r0, r1, c->tmp, E);
      for (int j = 0; j < n; j++) k->add_f32(r1 - r0, c->x + j * E + r0, c->tmp + j * E + r0);
    }
    slm_pool_barrier(c->pool);

    /* P4 */
    const struct slm_tensor *wgu[2] = {&L->w_gate, &L->w_up};
    prep_input(c, ith, nth, n, NULL, c->x, E, E, L->ffn_norm.data, wgu, 2, &a);
    ch = row_chunk(FF, n, nth);
    while (grab(&ct[3], FF, ch, &r0, &r1)) {
      matmul(k, &L->w_gate, &a, n, r0, r1, c->gate, FF);
      matmul(k, &L->w_up, &a, n, r0, r1, c->up, FF);
      for (int j = 0; j < n; j++)
        k->swiglu_f32(r1 - r0, c->gate + j * FF + r0, c->gate + j * FF + r0, c->up + j * FF + r0);
    }
    slm_pool_barrier(c->pool);

    /* P5 */
    const struct slm_tensor *wd[1] = {&L->w_down};
    prep_input(c, ith, nth, n, NULL, c->gate, FF, FF, NULL, wd, 1, &a);
    ch = row_chunk(E, n, nth);
    while (grab(&ct[4], E, ch, &r0, &r1)) {
      matmul(k, &L->w_down, &a, n, r0, r1, c->tmp, E);
      for (int j = 0; j < n; j++) k->add_f32(r1 - r0, c->x + j * E + r0, c->tmp + j * E + r0);
    }
    slm_pool_barrier(c->pool);

    if (c->p.pooling != SLM_POOL_NONE && l == c->p.embd_layer) {
      pool_rows(c, ith, nth, c->x);
      slm_pool_barrier(c->pool);
    }
  }

  if (c->p.pooling != SLM_POOL_NONE && c->p.embd_layer < 0) {
    /* final norm of every row, then pooling; xn is free again after the barrier */
    int64_t j0, j1;
    split(n, ith, nth, 1, &j0, &j1);
    for (int64_t j = j0; j < j1; j++)
      k->rmsnorm_f32(E, c->xn + j * E, c->x + j * E, m->output_norm.data, hp->norm_eps);
    slm_pool_barrier(c->pool);
    pool_rows(c, ith, nth, c->xn);
    slm_pool_barrier(c->pool);
  }

  if (c->n_out > 0) {
    const struct slm_tensor *wout[1] = {&m->output};
    prep_input(c, ith, nth, c->n_out, c->out_src, c->x, E, E, m->output_norm.data, wout, 1, &a);
    int64_t r0, r1, ch = row_chunk(hp->n_vocab, c->n_out, nth);
    struct ctr *ct = c->ctr + hp->n_layer * CTR_PER_LAYER;
    while (grab(ct, hp->n_vocab, ch, &r0, &r1))
      matmul(k, &m->output, &a, c->n_out, r0, r1, c->logits, hp->n_vocab);
  }
}

/* ---------------------------------------------------------------- decode */

int slm_decode(struct slm_context *c, const struct slm_batch *b) {
  if (!c) return -EINVAL;
  const struct slm_hparams *hp = &c->m->hp;
  if (!b || b->n <= 0 || !b->token) {
    ctx_err(c, "decode: empty batch");
    return -EINVAL;
  }
  if ((uint32_t)b->n > c->p.n_batch) {
    ctx_err(c, "decode: batch of %d tokens exceeds n_batch %u", b->n, c->p.n_batch);
    return -EINVAL;
  }
  const int n = b->n;
  memset(c->seq_count, 0, c->p.n_seq * sizeof *c->seq_count);
  for (int j = 0; j < n; j++) {
    int32_t t = b->token[j], s = b->seq ? b->seq[j] : 0;
    if (t < 0 || t >= hp->n_vocab) {
      ctx_err(c, "decode: token %d at batch index %d is out of range (n_vocab %d)", t, j, hp->n_vocab);
      return -EINVAL;
    }
    if (s < 0 || (uint32_t)s >= c->p.n_seq) {
      ctx_err(c, "decode: sequence %d at batch index %d is out of range (n_seq %u)", s, j, c->p.n_seq);
      return -EINVAL;
    }
    int32_t want = c->kv_pos[s] + c->seq_count[s];
    if (b->pos && b->pos[j] != want) {
      ctx_err(c, "decode: position %d of sequence %d at batch index %d does not continue its "
              "cache (expected %d)", b->pos[j], s, j, want);
      return -EINVAL;
    }
    if ((uint32_t)want >= c->p.n_ctx) {
      ctx_err(c, "decode: sequence %d is full (n_ctx %u)", s, c->p.n_ctx);
      return -ENOSPC;
    }
    c->tok[j] = t;
    c->seq[j] = s;
    c->pos[j] = want;
    c->seq_count[s]++;
    c->seq_last[s] = j;
  }
  /* which rows get logits */
  int n_out = 0;
  for (int j = 0; j < n; j++) {
    bool want;
    if (c->p.logits_all) want = true;
    else if (b->logits) want = b->logits[j] != 0;
    else want = c->seq_last[c->seq[j]] == j;   /* default: the last token of each sequence */
    if (want && n_out >= c->n_out_max) {
      ctx_err(c, "decode: more than %d rows of logits requested (raise n_outputs)", c->n_out_max);
      return -EINVAL;
    }
    c->out_row[j] = want ? n_out : -1;
    if (want) c->out_src[n_out++] = j;
  }
  c->n = n;
  c->n_out = n_out;
  if (c->p.pooling != SLM_POOL_NONE) memset(c->embd_ok, 0, c->p.n_seq * sizeof *c->embd_ok);

  for (int i = 0; i < c->n_ctr; i++) atomic_store_explicit(&c->ctr[i].v, 0, memory_order_relaxed);
  slm_pool_run(c->pool, forward_thread, c);   /* its publication orders the stores above */

  for (uint32_t s = 0; s < c->p.n_seq; s++) c->kv_pos[s] += c->seq_count[s];
  return 0;
}

const float *slm_get_logits(struct slm_context *c, int32_t i) {
  if (!c || i < 0 || i >= c->n || c->out_row[i] < 0) return NULL;
  return c->logits + (size_t)c->out_row[i] * (size_t)c->m->hp.n_vocab;
}

const float *slm_get_embeddings(struct slm_context *c, int32_t seq) {
  if (!c || c->p.pooling == SLM_POOL_NONE || seq < 0 || (uint32_t)seq >= c->p.n_seq ||
      !c->embd_ok[seq])
    return NULL;
  return c->embd + (size_t)seq * (size_t)c->m->hp.n_embd;
}
