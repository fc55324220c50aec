/*
 * test_model.c: the model loader's refusals and the context API's contracts, on small GGUF files
 * written by the test (random F32 weights, the stories260K vocabulary copied over):
 *   - unsupported architecture / tensor type, missing tensor, wrong shape, bad hyper-parameters:
 *     refused with a message that names the culprit;
 *   - vocab_only loads; contexts cannot be made from them;
 *   - slm_decode's error codes, and that a refused batch leaves the caches untouched;
 *   - slm_kv_remove of a suffix, then decoding again, gives the same logits as the first time;
 *   - pooled embeddings: last-token pooling after the final norm reproduces the logits through the
 *     output matrix; mean pooling is the mean of the per-position states; an intermediate layer
 *     (which stops the forward pass early when no logits are wanted) agrees with a full pass.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "slm/gguf.h"
#include "slm/internal.h"
#include "slm/slm.h"
#include "tests/check.h"

#define E 64
#define NL 2
#define NH 4
#define NKV 2
#define HD (E / NH)
#define FF 128
#define NV 512

static struct slm_gguf_file *vocab_src;
static char tmpdir[256];

static uint64_t rng = 12345;
static float frand(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((rng >> 40) & 0xffffff) / (float)0x1000000 - 0.5f;
}

static float *rand_tensor(size_t n, float scale, float offset) {
  float *p = malloc(n * sizeof *p);
  for (size_t i = 0; i < n; i++) p[i] = offset + scale * frand();
  return p;
}

/* What to break in the file. */
struct variant {
  const char *arch;
  const char *skip_tensor;     /* leave this tensor out */
  const char *bad_shape;       /* write this tensor one row short */
  const char *q2k_tensor;      /* write this tensor as Q2_K (unsupported) */
  int head_count;              /* 0: NH */
  const char *rope_scaling;    /* rope.scaling.type value, or NULL */
};

/* Writes a model per V into tmpdir/NAME.gguf and returns its path (static buffer). */
static const char *write_model(const char *name, const struct variant *v) {
  static char path[512];
  snprintf(path, sizeof path, "%s/%s.gguf", tmpdir, name);
  struct slm_gguf_writer *w = slm_gguf_writer_new();
  const char *arch = v->arch ? v->arch : "llama";
  char key[128];
  slm_gguf_w_str(w, "general.architecture", arch);
#define AK(suffix) (snprintf(key, sizeof key, "%s.%s", arch, suffix), key)
  slm_gguf_w_u32(w, AK("context_length"), 256);
  slm_gguf_w_u32(w, AK("embedding_length"), E);
  slm_gguf_w_u32(w, AK("block_count"), NL);
  slm_gguf_w_u32(w, AK("feed_forward_length"), FF);
  slm_gguf_w_u32(w, AK("attention.head_count"), (uint32_t)(v->head_count ? v->head_count : NH));
  slm_gguf_w_u32(w, AK("attention.head_count_kv"), NKV);
  slm_gguf_w_f32(w, AK("attention.layer_norm_rms_epsilon"), 1e-5f);
  if (v->rope_scaling) slm_gguf_w_str(w, AK("rope.scaling.type"), v->rope_scaling);
  for (uint64_t i = 0; i < slm_gguf_n_kv(vocab_src); i++) {
    const struct slm_gguf_kv *kv = slm_gguf_kv_at(vocab_src, i);
    if (kv->key.n > 10 && !memcmp(kv->key.p, "tokenizer.", 10)) slm_gguf_w_copy_kv(w, vocab_src, kv);
  }
  float *bufs[64];
  int nb = 0;
  struct { char name[64]; int64_t ne0, ne1; float scale, offset; } ts[64];
  int nt = 0;
#define T(nm, a, b, sc, off) (snprintf(ts[nt].name, 64, "%s", nm), ts[nt].ne0 = a, ts[nt].ne1 = b, ts[nt].scale = sc, ts[nt].offset = off, nt++)
  T("token_embd.weight", E, NV, 1.0f, 0.0f);
  T("output_norm.weight", E, 0, 0.2f, 1.0f);
  T("output.weight", E, NV, 0.5f, 0.0f);
  for (int l = 0; l < NL; l++) {
    char n[64];
#define L(suffix, a, b, sc, off) (snprintf(n, sizeof n, "blk.%d.%s", l, suffix), T(n, a, b, sc, off))
    L("attn_norm.weight", E, 0, 0.2f, 1.0f);
    L("attn_q.weight", E, E, 0.3f, 0.0f);
    L("attn_k.weight", E, NKV * HD, 0.3f, 0.0f);
    L("attn_v.weight", E, NKV * HD, 0.3f, 0.0f);
    L("attn_output.weight", E, E, 0.3f, 0.0f);
    L("ffn_norm.weight", E, 0, 0.2f, 1.0f);
    L("ffn_gate.weight", E, FF, 0.3f, 0.0f);
    L("ffn_up.weight", E, FF, 0.3f, 0.0f);
    L("ffn_down.weight", FF, E, 0.3f, 0.0f);
#undef L
  }
  static uint8_t q2k_big[E * NV];   /* zeroed Q2_K blocks (84 bytes per 256 values): plenty */
  for (int i = 0; i < nt; i++) {
    if (v->skip_tensor && !strcmp(ts[i].name, v->skip_tensor)) continue;
    int64_t ne[2] = {ts[i].ne0, ts[i].ne1 ? ts[i].ne1 : 1};
    if (v->bad_shape && !strcmp(ts[i].name, v->bad_shape)) ne[1] -= 1;
    uint32_t nd = ts[i].ne1 ? 2 : 1;
    if (v->q2k_tensor && !strcmp(ts[i].name, v->q2k_tensor)) {
      /* Q2_K needs rows of 256: write it as a [256, n] tensor; the loader must complain about
       * the type before anything else */
      int64_t qne[2] = {256, ne[0] * ne[1] / 256};
      slm_gguf_w_tensor(w, ts[i].name, SLM_TYPE_Q2_K, 2, qne, q2k_big);
      continue;
    }
    float *d = rand_tensor((size_t)(ne[0] * ne[1]), ts[i].scale, ts[i].offset);
    bufs[nb++] = d;
    slm_gguf_w_tensor(w, ts[i].name, SLM_TYPE_F32, nd, ne, d);
  }
  char err[256];
  int rc = slm_gguf_writer_write(w, path, err, sizeof err);
  CHECK_MSG(rc == 0, "write %s: %s", path, err);
  slm_gguf_writer_free(w);
  for (int i = 0; i < nb; i++) free(bufs[i]);
  return path;
#undef T
#undef AK
}

static void expect_refusal(const char *name, const struct variant *v, const char *needle) {
  const char *p = write_model(name, v);
  char err[512] = "";
  struct slm_model *m = slm_model_load(p, NULL, err, sizeof err);
  CHECK_MSG(m == NULL, "%s: loaded, expected a refusal", name);
  CHECK_MSG(strstr(err, needle) != NULL, "%s: message '%s' does not name '%s'", name, err, needle);
  slm_model_free(m);
}

static void test_refusals(void) {
  expect_refusal("arch", &(struct variant){.arch = "gpt2"}, "gpt2");
  expect_refusal("missing", &(struct variant){.skip_tensor = "blk.1.ffn_up.weight"}, "blk.1.ffn_up.weight");
  expect_refusal("shape", &(struct variant){.bad_shape = "blk.0.attn_k.weight"}, "blk.0.attn_k.weight");
  expect_refusal("type", &(struct variant){.q2k_tensor = "blk.0.ffn_gate.weight"}, "Q2_K");
  expect_refusal("heads", &(struct variant){.head_count = 3}, "head_count");
  expect_refusal("rope", &(struct variant){.rope_scaling = "yarn"}, "yarn");
  char err[256] = "";
  CHECK(slm_model_load("/nonexistent/x.gguf", NULL, err, sizeof err) == NULL);
  CHECK(err[0] != '\0');
}

static struct slm_context *ctx(const struct slm_model *m, uint32_t n_ctx, uint32_t n_seq,
                               enum slm_pooling pool, int layer) {
  struct slm_context_params cp = slm_context_default_params();
  cp.n_ctx = n_ctx;
  cp.n_seq = n_seq;
  cp.n_batch = 32;
  cp.n_threads = 2;
  cp.kv_type = SLM_KV_F32;
  cp.pooling = pool;
  cp.embd_layer = layer;
  struct slm_context *c = slm_context_new(m, &cp);
  CHECK(c != NULL);
  return c;
}

static void test_decode_contract(struct slm_model *m) {
  struct slm_context *c = ctx(m, 16, 2, SLM_POOL_NONE, -1);
  if (!c) return;
  slm_token t[40];
  for (int i = 0; i < 40; i++) t[i] = (slm_token)(i * 7 % NV);
  struct slm_batch b = slm_batch_one(t, 4);
  CHECK_EQ_INT(slm_decode(c, &b), 0);
  CHECK_EQ_INT(slm_kv_pos(c, 0), 4);
  float ref[NV];
  memcpy(ref, slm_get_logits(c, 3), sizeof ref);
  CHECK(slm_get_logits(c, 2) == NULL);   /* only the last is computed by default */
  CHECK(slm_get_logits(c, 4) == NULL);
  CHECK(slm_get_logits(c, -1) == NULL);

  /* refused batches change nothing */
  struct slm_batch empty = {0, t, NULL, NULL, NULL};
  CHECK_EQ_INT(slm_decode(c, &empty), -EINVAL);
  slm_token badtok = NV;
  struct slm_batch bt = slm_batch_one(&badtok, 1);
  CHECK_EQ_INT(slm_decode(c, &bt), -EINVAL);
  CHECK(strstr(slm_errmsg(c), "out of range") != NULL);
  int32_t seq5 = 5;
  struct slm_batch bs = {1, t, NULL, &seq5, NULL};
  CHECK_EQ_INT(slm_decode(c, &bs), -EINVAL);
  int32_t gap = 6;
  struct slm_batch bp = {1, t, &gap, NULL, NULL};
  CHECK_EQ_INT(slm_decode(c, &bp), -EINVAL);
  CHECK(strstr(slm_errmsg(c), "position") != NULL);
  struct slm_batch big = slm_batch_one(t, 33);   /* n_batch is 32 */
  CHECK_EQ_INT(slm_decode(c, &big), -EINVAL);
  int8_t all[8] = {1, 1, 1, 0, 0, 0, 0, 0};   /* 3 rows of logits > n_outputs (n_seq = 2) */
  struct slm_batch bl = {3, t, NULL, NULL, all};
  CHECK_EQ_INT(slm_decode(c, &bl), -EINVAL);
  struct slm_batch full = slm_batch_one(t + 4, 13);   /* 4 + 13 > 16 cells */
  CHECK_EQ_INT(slm_decode(c, &full), -ENOSPC);
  CHECK_EQ_INT(slm_kv_pos(c, 0), 4);

  /* after the refusals, continuing gives what a fresh context gives */
  struct slm_batch b2 = slm_batch_one(t + 4, 2);
  CHECK_EQ_INT(slm_decode(c, &b2), 0);
  float cont[NV];
  memcpy(cont, slm_get_logits(c, 1), sizeof cont);
  struct slm_context *c2 = ctx(m, 16, 1, SLM_POOL_NONE, -1);
  struct slm_batch b6 = slm_batch_one(t, 6);
  CHECK_EQ_INT(slm_decode(c2, &b6), 0);
  float d = 0;
  for (int i = 0; i < NV; i++) d = fmaxf(d, fabsf(cont[i] - slm_get_logits(c2, 5)[i]));
  CHECK_MSG(d < 1e-4f, "continuation after refused batches differs by %g", d);
  slm_context_free(c2);

  /* forget the last 2 positions, decode them again: same logits as the first time */
  CHECK_EQ_INT(slm_kv_remove(c, 0, 4, -1), 0);
  CHECK_EQ_INT(slm_kv_pos(c, 0), 4);
  CHECK_EQ_INT(slm_kv_remove(c, 0, 1, 2), -EINVAL);   /* not a suffix */
  CHECK_EQ_INT(slm_kv_remove(c, 9, 0, -1), -EINVAL);
  CHECK_EQ_INT(slm_decode(c, &b2), 0);
  d = 0;
  for (int i = 0; i < NV; i++) d = fmaxf(d, fabsf(cont[i] - slm_get_logits(c, 1)[i]));
  CHECK_MSG(d == 0.0f, "re-decoding after kv_remove differs by %g", d);
  /* the whole cache: back to the first logits */
  slm_kv_clear(c);
  CHECK_EQ_INT(slm_kv_pos(c, 0), 0);
  CHECK_EQ_INT(slm_decode(c, &b), 0);
  d = 0;
  for (int i = 0; i < NV; i++) d = fmaxf(d, fabsf(ref[i] - slm_get_logits(c, 3)[i]));
  CHECK_MSG(d == 0.0f, "decode after kv_clear differs by %g", d);
  slm_context_free(c);
}

static void test_embeddings(struct slm_model *m) {
  slm_token t[6] = {1, 40, 80, 120, 160, 200};
  /* last-token pooling after the final norm: output matrix x embedding = logits */
  struct slm_context *c = ctx(m, 32, 1, SLM_POOL_LAST, -1);
  struct slm_batch b = slm_batch_one(t, 6);
  CHECK_EQ_INT(slm_decode(c, &b), 0);
  const float *e = slm_get_embeddings(c, 0), *lg = slm_get_logits(c, 5);
  CHECK(e != NULL && lg != NULL);
  CHECK(slm_get_embeddings(c, 1) == NULL);
  if (e && lg) {
    const float *w = m->output.data;
    float d = 0;
    for (int v = 0; v < NV; v++) {
      float s = 0;
      for (int i = 0; i < E; i++) s += w[(size_t)v * E + i] * e[i];
      d = fmaxf(d, fabsf(s - lg[v]));
    }
    CHECK_MSG(d < 1e-3f, "logits vs output * last-token embedding: %g", d);
  }
  /* mean pooling = mean of the last-token embeddings of every prefix */
  float lasts[6][E];
  for (int j = 0; j < 6; j++) {
    slm_kv_clear(c);
    struct slm_batch bj = slm_batch_one(t, j + 1);
    CHECK_EQ_INT(slm_decode(c, &bj), 0);
    memcpy(lasts[j], slm_get_embeddings(c, 0), sizeof lasts[j]);
  }
  slm_context_free(c);
  c = ctx(m, 32, 1, SLM_POOL_MEAN, -1);
  CHECK_EQ_INT(slm_decode(c, &b), 0);
  e = slm_get_embeddings(c, 0);
  float d = 0;
  for (int i = 0; e && i < E; i++) {
    float mean = 0;
    for (int j = 0; j < 6; j++) mean += lasts[j][i];
    d = fmaxf(d, fabsf(mean / 6 - e[i]));
  }
  CHECK_MSG(e && d < 1e-4f, "mean pooling vs mean of prefixes: %g", d);
  slm_context_free(c);

  /* intermediate layer: the early-exit pass (no logits) equals the full pass (with logits) */
  c = ctx(m, 32, 1, SLM_POOL_MEAN, 0);
  int8_t none[6] = {0};
  struct slm_batch bn = {6, t, NULL, NULL, none};
  CHECK_EQ_INT(slm_decode(c, &bn), 0);
  float early[E];
  memcpy(early, slm_get_embeddings(c, 0), sizeof early);
  CHECK(slm_get_logits(c, 5) == NULL);
  slm_kv_clear(c);
  CHECK_EQ_INT(slm_decode(c, &b), 0);
  CHECK(slm_get_logits(c, 5) != NULL);
  d = 0;
  float diff_final = 0;
  for (int i = 0; i < E; i++) {
    d = fmaxf(d, fabsf(early[i] - slm_get_embeddings(c, 0)[i]));
    diff_final = fmaxf(diff_final, fabsf(early[i] - lasts[5][i]));
  }
  CHECK_MSG(d == 0.0f, "layer-0 embedding differs between early exit and full pass: %g", d);
  CHECK(diff_final > 1e-3f);   /* and it is not the final-norm embedding */
  slm_context_free(c);

  /* two sequences pooled separately in one batch */
  c = ctx(m, 32, 2, SLM_POOL_LAST, -1);
  int32_t seq[4] = {0, 1, 0, 1};
  slm_token t4[4] = {t[0], t[0], t[1], t[2]};
  struct slm_batch b4 = {4, t4, NULL, seq, NULL};
  CHECK_EQ_INT(slm_decode(c, &b4), 0);
  const float *e0 = slm_get_embeddings(c, 0), *e1 = slm_get_embeddings(c, 1);
  d = 0;
  for (int i = 0; e0 && i < E; i++) d = fmaxf(d, fabsf(e0[i] - lasts[1][i]));
  CHECK_MSG(e0 && e1 && d < 1e-4f, "sequence 0 of a two-sequence batch: %g", d);
  slm_context_free(c);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/slm_test_model_%d", (int)getpid());
  char cmd[300];
  snprintf(cmd, sizeof cmd, "mkdir -p %s", tmpdir);
  if (system(cmd) != 0) return 1;
  char err[256];
  CHECK(slm_gguf_open(check_shared_path("models/stories260K.gguf"), &vocab_src, err, sizeof err) == 0);
  if (!vocab_src) return check_done();

  test_refusals();

  const char *p = write_model("good", &(struct variant){0});
  struct slm_model_params mp = slm_model_default_params();
  mp.vocab_only = true;
  struct slm_model *vm = slm_model_load(p, &mp, err, sizeof err);
  CHECK_MSG(vm != NULL, "vocab_only: %s", err);
  if (vm) {
    CHECK_EQ_INT(slm_n_vocab(vm), NV);
    CHECK(slm_context_new(vm, NULL) == NULL);
    slm_model_free(vm);
  }
  struct slm_model *m = slm_model_load(p, NULL, err, sizeof err);
  CHECK_MSG(m != NULL, "load: %s", err);
  if (m) {
    CHECK_STR(slm_model_arch(m), "llama");
    CHECK_EQ_INT(slm_n_layer(m), NL);
    CHECK_EQ_INT(slm_n_embd(m), E);
    char buf[64];
    CHECK_EQ_INT(slm_model_meta(m, "llama.block_count", buf, sizeof buf), 0);
    CHECK_STR(buf, "2");
    CHECK_EQ_INT(slm_model_meta(m, "no.such.key", buf, sizeof buf), -ENOENT);
    /* the chat wrappers reach the template code (no template in this file: the documented
     * fallback) */
    struct slm_chat_msg msgs[1] = {{"user", "hi"}};
    char chat[512];
    int32_t cn = slm_chat_apply(m, msgs, 1, true, chat, sizeof chat);
    CHECK(cn > 0 && strstr(chat, "hi") != NULL);
    CHECK(slm_chat_template_name(m) != NULL);
    /* use_mlock: same model, same logits (locking is best effort) */
    struct slm_model_params lp = slm_model_default_params();
    lp.use_mlock = true;
    struct slm_model *ml = slm_model_load(p, &lp, err, sizeof err);
    CHECK_MSG(ml != NULL, "use_mlock load: %s", err);
    if (ml) {
      struct slm_context *c1 = ctx(m, 16, 1, SLM_POOL_NONE, -1), *c2 = ctx(ml, 16, 1, SLM_POOL_NONE, -1);
      slm_token tk[3] = {5, 6, 7};
      struct slm_batch b = slm_batch_one(tk, 3);
      CHECK_EQ_INT(slm_decode(c1, &b), 0);
      CHECK_EQ_INT(slm_decode(c2, &b), 0);
      CHECK(memcmp(slm_get_logits(c1, 2), slm_get_logits(c2, 2), NV * sizeof(float)) == 0);
      slm_context_free(c1);
      slm_context_free(c2);
      slm_model_free(ml);
    }
    test_decode_contract(m);
    test_embeddings(m);
    slm_model_free(m);
  }
  slm_gguf_close(vocab_src);
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  if (system(cmd) != 0) CHECK(0);
  return check_done();
}
