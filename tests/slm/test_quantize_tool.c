/*
 * test_quantize_tool.c: `slm quantize` and `slm mkmodel` (slm/tools/quantize.c, qmix.c, mkmodel.c).
 *
 * 1. Quantizing ../shared/models/tiny-*-F32.gguf to every type gives byte for byte the file
 *    llama.cpp's llama-quantize made (same tensor choices, same quantizers, same layout).
 * 2. The per-tensor chooser at real widths (576, 896: K types fall back to Q5_0/Q8_0) and the
 *    total sizes llama.cpp reports for those models (../shared/data/bench/llamacpp.md).
 * 3. mkmodel: deterministic per seed, real metadata, a consistent synthetic vocabulary, and
 *    `mkmodel f32 | quantize q4_k_m` == `mkmodel q4_k_m`.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "slm/gguf.h"
#include "slm/kernels/kernels.h"
#include "slm/tools/tools.h"

static char tmpdir[256];

static const char *tmp(const char *name) {
  static char buf[4][512];
  static int k;
  char *b = buf[k++ & 3];
  snprintf(b, sizeof buf[0], "%s/%s", tmpdir, name);
  return b;
}

static bool same_file(const char *a, const char *b) {
  size_t la = 0, lb = 0;
  char *x = check_read_file(a, &la), *y = check_read_file(b, &lb);
  bool same = x && y && la == lb && !memcmp(x, y, la);
  free(x);
  free(y);
  return same;
}

static bool str_is(struct slm_gguf_str s, const char *z) {
  return s.p && s.n == strlen(z) && !memcmp(s.p, z, s.n);
}

/* ---------------------------------------------------------------- 1. llama.cpp's files */

static void test_reproduces_llamacpp(void) {
  static const char *const cases[][2] = {
    { "llama", "F16" }, { "llama", "BF16" }, { "llama", "Q8_0" }, { "llama", "Q4_0" },
    { "llama", "Q4_1" }, { "llama", "Q5_0" }, { "llama", "Q5_1" }, { "llama", "Q4_K_M" },
    { "llama", "Q5_K_M" }, { "llama", "Q6_K" }, { "qwen2", "F16" }, { "qwen2", "Q8_0" },
    { "qwen2", "Q4_K_M" }, { "qwen3", "F16" }, { "qwen3", "Q8_0" }, { "qwen3", "Q4_K_M" },
  };
  int identical = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char in[128], ref[128], err[512];
    snprintf(in, sizeof in, "models/tiny-%s-F32.gguf", cases[i][0]);
    snprintf(ref, sizeof ref, "models/tiny-%s-%s.gguf", cases[i][0], cases[i][1]);
    const struct slm_ftype_info *ft = slm_ftype_find(cases[i][1]);
    CHECK(ft != NULL);
    if (!ft) continue;
    const char *out = tmp("q.gguf");
    int rc = slm_quantize_file(check_shared_path(in), out, ft, false, false, err, sizeof err);
    CHECK_MSG(rc == 0, "%s -> %s: %s", in, cases[i][1], err);
    if (rc) continue;
    /* tensor types first (a clearer failure than a byte difference) */
    struct slm_gguf_file *a = NULL, *b = NULL;
    CHECK_EQ_INT(slm_gguf_open(out, &a, err, sizeof err), 0);
    CHECK_EQ_INT(slm_gguf_open(check_shared_path(ref), &b, err, sizeof err), 0);
    if (a && b) {
      CHECK_EQ_U64(slm_gguf_n_tensors(a), slm_gguf_n_tensors(b));
      for (uint64_t j = 0; j < slm_gguf_n_tensors(a) && j < slm_gguf_n_tensors(b); j++) {
        const struct slm_gguf_tensor *ta = slm_gguf_tensor_at(a, j), *tb = slm_gguf_tensor_at(b, j);
        CHECK_MSG(ta->name.n == tb->name.n && !memcmp(ta->name.p, tb->name.p, ta->name.n),
                  "%s: tensor %llu name differs", ref, (unsigned long long)j);
        CHECK_MSG(ta->type == tb->type, "%s: tensor %.*s is %s, llama.cpp made %s", ref,
                  (int)ta->name.n, ta->name.p, slm_type_name(ta->type), slm_type_name(tb->type));
      }
    }
    slm_gguf_close(a);
    slm_gguf_close(b);
    bool same = same_file(out, check_shared_path(ref));
    CHECK_MSG(same, "%s: our quantization differs from llama.cpp's bytes", ref);
    identical += same;
  }
  printf("quantize: %d of %zu llama.cpp files reproduced byte for byte\n", identical,
         sizeof cases / sizeof cases[0]);

  /* refusals */
  char err[512];
  CHECK_EQ_INT(slm_quantize_file(check_shared_path("models/tiny-llama-Q8_0.gguf"), tmp("x.gguf"),
                                 slm_ftype_find("q4_0"), false, false, err, sizeof err), -ENOTSUP);
  CHECK(strstr(err, "quantize reads only F32, F16 and BF16 tensors") != NULL);
  CHECK_EQ_INT(slm_quantize_file(check_shared_path("vocab/ggml-vocab-gpt-2.gguf"), tmp("x.gguf"),
                                 slm_ftype_find("q4_0"), false, false, err, sizeof err), -EINVAL);
  CHECK(strstr(err, "no tensors") != NULL);
  CHECK_EQ_INT(slm_quantize_file(check_shared_path("models/nope.gguf"), tmp("x.gguf"),
                                 slm_ftype_find("q4_0"), false, false, err, sizeof err), -ENOENT);
  CHECK(access(tmp("x.gguf"), F_OK) != 0);

  /* --pure: every 2-D weight Q4_K (rows of 256), norms untouched */
  CHECK_EQ_INT(slm_quantize_file(check_shared_path("models/tiny-llama-F32.gguf"), tmp("p.gguf"),
                                 slm_ftype_find("q4_k_m"), true, false, err, sizeof err), 0);
  struct slm_gguf_file *f = NULL;
  CHECK_EQ_INT(slm_gguf_open(tmp("p.gguf"), &f, err, sizeof err), 0);
  if (f) {
    for (uint64_t j = 0; j < slm_gguf_n_tensors(f); j++) {
      const struct slm_gguf_tensor *t = slm_gguf_tensor_at(f, j);
      CHECK(t->type == (t->n_dims == 1 ? SLM_TYPE_F32 : SLM_TYPE_Q4_K));
    }
    uint32_t ftv = 0;
    CHECK_EQ_INT(slm_gguf_get_u32(f, "general.file_type", &ftv), 0);
    CHECK_EQ_INT(ftv, 15);
    slm_gguf_close(f);
  }
}

/* ---------------------------------------------------------------- 2. the chooser */

static void test_chooser(void) {
  /* SmolLM2-135M, Q4_K_M: widths 576 are not multiples of 256 */
  struct slm_qmix q;
  slm_qmix_init(&q, slm_ftype_find("Q4_K_M"), false, 30, true, 30);
  CHECK_EQ_INT(slm_qmix_choose(&q, "output_norm.weight", 1, 576, SLM_TYPE_F32), SLM_TYPE_F32);
  CHECK_EQ_INT(slm_qmix_choose(&q, "token_embd.weight", 2, 576, SLM_TYPE_F32), SLM_TYPE_Q8_0);
  CHECK_EQ_INT(slm_qmix_choose(&q, "blk.0.attn_k.weight", 2, 576, SLM_TYPE_F32), SLM_TYPE_Q5_0);
  CHECK_EQ_INT(slm_qmix_choose(&q, "blk.0.attn_norm.weight", 1, 576, SLM_TYPE_F32), SLM_TYPE_F32);
  CHECK_EQ_INT(slm_qmix_choose(&q, "blk.0.attn_v.weight", 2, 576, SLM_TYPE_F32), SLM_TYPE_Q8_0);
  CHECK_EQ_INT(slm_qmix_choose(&q, "blk.0.ffn_down.weight", 2, 1536, SLM_TYPE_F32), SLM_TYPE_Q6_K);
  CHECK_EQ_INT(slm_qmix_choose(&q, "blk.0.ffn_up.weight", 2, 576, SLM_TYPE_F32), SLM_TYPE_Q5_0);
  /* layers 1..4: not "more bits" for 30 layers except 5 (=(5-3)%3==2) */
  for (int l = 1; l < 30; l++) {
    char n[64];
    snprintf(n, sizeof n, "blk.%d.attn_v.weight", l);
    enum slm_type v = slm_qmix_choose(&q, n, 2, 576, SLM_TYPE_F32);
    snprintf(n, sizeof n, "blk.%d.ffn_down.weight", l);
    enum slm_type d = slm_qmix_choose(&q, n, 2, 1536, SLM_TYPE_F32);
    bool more = l < 3 || l >= 26 || (l - 3) % 3 == 2;
    CHECK_MSG(v == (more ? SLM_TYPE_Q8_0 : SLM_TYPE_Q5_0), "layer %d attn_v %s", l, slm_type_name(v));
    CHECK_MSG(d == (more ? SLM_TYPE_Q6_K : SLM_TYPE_Q4_K), "layer %d ffn_down %s", l, slm_type_name(d));
  }
  CHECK(q.n_fallback > 0);
  /* separate output: output Q6_K, token_embd keeps the default (Q4_K) */
  slm_qmix_init(&q, slm_ftype_find("q4_k_m"), false, 2, false, 2);
  CHECK_EQ_INT(slm_qmix_choose(&q, "output.weight", 2, 256, SLM_TYPE_F32), SLM_TYPE_Q6_K);
  CHECK_EQ_INT(slm_qmix_choose(&q, "token_embd.weight", 2, 256, SLM_TYPE_F32), SLM_TYPE_Q4_K);
  /* Q8_0: output stays Q8_0; F16: 2-D F16, 1-D keeps its type, biases never quantized */
  slm_qmix_init(&q, slm_ftype_find("Q8_0"), false, 2, true, 2);
  CHECK_EQ_INT(slm_qmix_choose(&q, "token_embd.weight", 2, 896, SLM_TYPE_F32), SLM_TYPE_Q8_0);
  CHECK_EQ_INT(slm_qmix_choose(&q, "blk.0.attn_q.bias", 1, 896, SLM_TYPE_F32), SLM_TYPE_F32);
  slm_qmix_init(&q, slm_ftype_find("f16"), false, 2, true, 2);
  CHECK_EQ_INT(slm_qmix_choose(&q, "blk.0.attn_q.weight", 2, 896, SLM_TYPE_F32), SLM_TYPE_F16);
  CHECK_EQ_INT(slm_qmix_choose(&q, "blk.0.attn_norm.weight", 1, 896, SLM_TYPE_BF16), SLM_TYPE_BF16);
  /* Q4_K_S: first 4 attn_v Q5_K, first eighth of ffn_down Q5_K */
  slm_qmix_init(&q, slm_ftype_find("Q4_K_S"), false, 16, true, 16);
  CHECK_EQ_INT(slm_qmix_choose(&q, "blk.0.attn_v.weight", 2, 2048, SLM_TYPE_F32), SLM_TYPE_Q5_K);
  CHECK_EQ_INT(slm_qmix_choose(&q, "blk.0.ffn_down.weight", 2, 8192, SLM_TYPE_F32), SLM_TYPE_Q5_K);
  CHECK_EQ_INT(slm_qmix_choose(&q, "blk.1.ffn_down.weight", 2, 8192, SLM_TYPE_F32), SLM_TYPE_Q5_K);
  CHECK_EQ_INT(slm_qmix_choose(&q, "blk.2.ffn_down.weight", 2, 8192, SLM_TYPE_F32), SLM_TYPE_Q4_K);
  /* a row that not even 32 divides: F16 */
  slm_qmix_init(&q, slm_ftype_find("Q4_0"), false, 2, true, 2);
  CHECK_EQ_INT(slm_qmix_choose(&q, "blk.0.attn_q.weight", 2, 100, SLM_TYPE_F32), SLM_TYPE_F16);
  /* names and order */
  CHECK(slm_ftype_find("Q4_K") && slm_ftype_find("Q4_K")->ftype == 15);
  CHECK(slm_ftype_find("q5_k") && slm_ftype_find("q5_k")->ftype == 17);
  CHECK(slm_ftype_find("q3_k_m") == NULL);
  CHECK(slm_qmix_cmp_names("output.weight", "blk.0.attn_k.weight") < 0);
  CHECK(slm_qmix_cmp_names("blk.2.ffn_up.weight", "blk.10.attn_k.weight") < 0);
  CHECK(slm_qmix_cmp_names("blk.0.attn_k.weight", "blk.0.attn_k_norm.weight") < 0);
}

/* ---------------------------------------------------------------- 3. mkmodel */

static int run_tool(int (*fn)(int, char **), const char *const *args, int n) {
  char *argv[32];
  for (int i = 0; i < n; i++) argv[i] = (char *)args[i];
  argv[n] = NULL;
  return fn(n, argv);
}

static uint64_t hash_str(struct slm_gguf_str s) {
  uint64_t h = 1469598103934665603ull;
  for (uint64_t k = 0; k < s.n; k++) h = (h ^ (unsigned char)s.p[k]) * 1099511628211ull;
  return h;
}

static void check_vocab(const struct slm_gguf_file *f, uint64_t n_vocab) {
  const struct slm_gguf_kv *tok = slm_gguf_find_kv(f, "tokenizer.ggml.tokens");
  const struct slm_gguf_kv *mer = slm_gguf_find_kv(f, "tokenizer.ggml.merges");
  const struct slm_gguf_kv *ty = slm_gguf_find_kv(f, "tokenizer.ggml.token_type");
  CHECK(tok && mer && ty);
  if (!tok || !mer || !ty) return;
  CHECK_EQ_U64(tok->arr_n, n_vocab);
  CHECK_EQ_U64(ty->arr_n, n_vocab);
  /* every token unique: sort copies of (ptr,len) */
  struct slm_gguf_str *all = malloc((size_t)n_vocab * sizeof *all);
  for (uint64_t i = 0; i < n_vocab; i++) all[i] = slm_gguf_arr_str(f, tok, i);
  /* a cheap hash set */
  size_t cap = 1;
  while (cap < n_vocab * 2) cap <<= 1;
  int64_t *slot = malloc(cap * sizeof *slot);
  for (size_t i = 0; i < cap; i++) slot[i] = -1;
  int dups = 0;
  for (uint64_t i = 0; i < n_vocab; i++) {
    for (size_t h = hash_str(all[i]) & (cap - 1);; h = (h + 1) & (cap - 1)) {
      if (slot[h] < 0) {
        slot[h] = (int64_t)i;
        break;
      }
      struct slm_gguf_str o = all[slot[h]];
      if (o.n == all[i].n && !memcmp(o.p, all[i].p, o.n)) {
        dups++;
        break;
      }
    }
  }
  CHECK_EQ_INT(dups, 0);
  /* every merge "A B": A, B and AB are tokens */
  int bad = 0;
  for (uint64_t i = 0; i < mer->arr_n; i++) {
    struct slm_gguf_str m = slm_gguf_arr_str(f, mer, i);
    const char *sp = memchr(m.p, ' ', m.n);
    if (!sp || sp == m.p) {
      bad++;
      continue;
    }
    char ab[64];
    struct slm_gguf_str parts[3] = { { m.p, (uint64_t)(sp - m.p) }, { sp + 1, m.n - (uint64_t)(sp - m.p) - 1 }, { ab, 0 } };
    if (parts[0].n + parts[1].n >= sizeof ab) {
      bad++;
      continue;
    }
    memcpy(ab, parts[0].p, parts[0].n);
    memcpy(ab + parts[0].n, parts[1].p, parts[1].n);
    parts[2].n = parts[0].n + parts[1].n;
    for (int k = 0; k < 3; k++) {
      bool found = false;
      for (size_t h = hash_str(parts[k]) & (cap - 1); slot[h] >= 0; h = (h + 1) & (cap - 1)) {
        struct slm_gguf_str o = all[slot[h]];
        if (o.n == parts[k].n && !memcmp(o.p, parts[k].p, o.n)) {
          found = true;
          break;
        }
      }
      if (!found) bad++;
    }
  }
  CHECK_EQ_INT(bad, 0);
  free(slot);
  free(all);
}

static void test_mkmodel(void) {
  const char *a1[] = { "mkmodel", "--shape", "smollm2-135m", "--type", "q4_k_m", "--layers", "2",
                       "-o", tmp("m1.gguf"), "-q" };
  CHECK_EQ_INT(run_tool(slm_tool_mkmodel, a1, 10), 0);
  const char *a2[] = { "mkmodel", "--shape", "smollm2-135m", "--type", "q4_k_m", "--layers", "2",
                       "-o", tmp("m2.gguf"), "-q", "--seed", "1" };
  CHECK_EQ_INT(run_tool(slm_tool_mkmodel, a2, 12), 0);
  CHECK_MSG(same_file(tmp("m1.gguf"), tmp("m2.gguf")), "mkmodel is not deterministic");
  const char *a3[] = { "mkmodel", "--shape", "smollm2-135m", "--type", "f32", "--layers", "2",
                       "-o", tmp("m3.gguf"), "-q", "--seed", "1" };
  CHECK_EQ_INT(run_tool(slm_tool_mkmodel, a3, 12), 0);
  char err[512];
  CHECK_EQ_INT(slm_quantize_file(tmp("m3.gguf"), tmp("m3q.gguf"), slm_ftype_find("Q4_K_M"), false,
                                 false, err, sizeof err), 0);
  CHECK_MSG(same_file(tmp("m1.gguf"), tmp("m3q.gguf")), "mkmodel f32 + quantize != mkmodel q4_k_m");
  const char *a4[] = { "mkmodel", "--shape", "smollm2-135m", "--type", "q4_k_m", "--layers", "2",
                       "-o", tmp("m4.gguf"), "-q", "--seed", "2" };
  CHECK_EQ_INT(run_tool(slm_tool_mkmodel, a4, 12), 0);

  struct slm_gguf_file *f = NULL, *g = NULL, *h = NULL;
  CHECK_EQ_INT(slm_gguf_open(tmp("m1.gguf"), &f, err, sizeof err), 0);
  CHECK_EQ_INT(slm_gguf_open(tmp("m4.gguf"), &g, err, sizeof err), 0);
  CHECK_EQ_INT(slm_gguf_open(tmp("m3.gguf"), &h, err, sizeof err), 0);
  if (f && g && h) {
    struct slm_gguf_str s;
    uint32_t u = 0;
    float x = 0;
    CHECK(slm_gguf_get_str(f, "general.architecture", &s) == 0 && str_is(s, "llama"));
    CHECK(slm_gguf_get_str(f, "tokenizer.ggml.pre", &s) == 0 && str_is(s, "smollm"));
    CHECK(slm_gguf_get_str(f, "tokenizer.ggml.model", &s) == 0 && str_is(s, "gpt2"));
    CHECK(slm_gguf_get_u32(f, "llama.embedding_length", &u) == 0 && u == 576);
    CHECK(slm_gguf_get_u32(f, "llama.block_count", &u) == 0 && u == 2);
    CHECK(slm_gguf_get_u32(f, "llama.attention.head_count_kv", &u) == 0 && u == 3);
    CHECK(slm_gguf_get_u32(f, "llama.vocab_size", &u) == 0 && u == 49152);
    CHECK(slm_gguf_get_u32(f, "general.file_type", &u) == 0 && u == 15);
    CHECK(slm_gguf_get_f32(f, "llama.rope.freq_base", &x) == 0 && x == 100000.0f);
    CHECK(str_is(slm_gguf_kv_at(f, slm_gguf_n_kv(f) - 1)->key, "general.file_type"));
    CHECK(slm_gguf_find_tensor(f, "output.weight") == NULL);   /* tied */
    const struct slm_gguf_tensor *te = slm_gguf_find_tensor(f, "token_embd.weight");
    CHECK(te && te->type == SLM_TYPE_Q8_0 && te->ne[0] == 576 && te->ne[1] == 49152);
    const struct slm_gguf_tensor *fd = slm_gguf_find_tensor(f, "blk.1.ffn_down.weight");
    CHECK(fd && fd->type == SLM_TYPE_Q6_K && fd->ne[0] == 1536 && fd->ne[1] == 576);
    CHECK_EQ_U64(slm_gguf_n_tensors(f), 2 + 2 * 9);
    /* another seed: other weights, same vocabulary */
    const struct slm_gguf_tensor *te2 = slm_gguf_find_tensor(g, "token_embd.weight");
    CHECK(te2 && te2->nbytes == te->nbytes && memcmp(te->data, te2->data, (size_t)te->nbytes) != 0);
    const struct slm_gguf_kv *t1 = slm_gguf_find_kv(f, "tokenizer.ggml.merges"), *t2 = slm_gguf_find_kv(g, "tokenizer.ggml.merges");
    CHECK(t1 && t2 && t1->arr_n == t2->arr_n);
    if (t1 && t2) {
      struct slm_gguf_str m1 = slm_gguf_arr_str(f, t1, 12345), m2 = slm_gguf_arr_str(g, t2, 12345);
      CHECK(m1.n == m2.n && !memcmp(m1.p, m2.p, m1.n));
    }
    check_vocab(f, 49152);
    const struct slm_gguf_kv *tk = slm_gguf_find_kv(f, "tokenizer.ggml.tokens");
    CHECK(str_is(slm_gguf_arr_str(f, tk, 1), "<|im_start|>"));
    CHECK(str_is(slm_gguf_arr_str(f, tk, 17), "!"));
    CHECK(str_is(slm_gguf_arr_str(f, tk, 17 + 255), "\xc5\x83"));   /* byte 0xad -> U+0143 */
    /* sane weights: the F32 file's values have the intended spread */
    const struct slm_gguf_tensor *q = slm_gguf_find_tensor(h, "blk.0.attn_q.weight");
    const struct slm_gguf_tensor *nw = slm_gguf_find_tensor(h, "blk.0.attn_norm.weight");
    if (q && nw) {
      const float *w = q->data;
      double s2 = 0;
      for (int i = 0; i < 576 * 576; i++) s2 += (double)w[i] * w[i];
      CHECK_NEAR(sqrt(s2 / (576.0 * 576)), 1 / sqrt(576.0), 0.002);
      const float *n = nw->data;
      for (int i = 0; i < 576; i++) CHECK(n[i] >= 0.9f && n[i] <= 1.1f);
    }
  }
  slm_gguf_close(f);
  slm_gguf_close(g);
  slm_gguf_close(h);

  /* the other shapes: vocabularies and the tensor plan (no weights: they are large) */
  const char *v1[] = { "mkmodel", "--shape", "qwen3-0.6b", "--vocab-only", "-o", tmp("v1.gguf"), "-q" };
  CHECK_EQ_INT(run_tool(slm_tool_mkmodel, v1, 7), 0);
  f = NULL;
  CHECK_EQ_INT(slm_gguf_open(tmp("v1.gguf"), &f, err, sizeof err), 0);
  if (f) {
    uint32_t u = 0;
    CHECK(slm_gguf_get_u32(f, "qwen3.attention.key_length", &u) == 0 && u == 128);
    CHECK(slm_gguf_get_u32(f, "qwen3.block_count", &u) == 0 && u == 28);
    CHECK(slm_gguf_get_u32(f, "tokenizer.ggml.eos_token_id", &u) == 0 && u == 151645);
    const struct slm_gguf_kv *tk = slm_gguf_find_kv(f, "tokenizer.ggml.tokens");
    CHECK(str_is(slm_gguf_arr_str(f, tk, 151645), "<|im_end|>"));
    CHECK(str_is(slm_gguf_arr_str(f, tk, 151667), "<think>"));
    CHECK(str_is(slm_gguf_arr_str(f, tk, 0), "!"));
    CHECK_EQ_U64(slm_gguf_n_tensors(f), 0);
    check_vocab(f, 151936);
    slm_gguf_close(f);
  }
  const char *v2[] = { "mkmodel", "--shape", "llama3.2-1b", "--vocab-only", "-o", tmp("v2.gguf"), "-q" };
  CHECK_EQ_INT(run_tool(slm_tool_mkmodel, v2, 7), 0);
  f = NULL;
  CHECK_EQ_INT(slm_gguf_open(tmp("v2.gguf"), &f, err, sizeof err), 0);
  if (f) {
    const struct slm_gguf_kv *tk = slm_gguf_find_kv(f, "tokenizer.ggml.tokens");
    CHECK(str_is(slm_gguf_arr_str(f, tk, 128000), "<|begin_of_text|>"));
    CHECK(str_is(slm_gguf_arr_str(f, tk, 128009), "<|eot_id|>"));
    CHECK(str_is(slm_gguf_arr_str(f, tk, 128255), "<|reserved_special_token_250|>"));
    bool b = false;
    CHECK(slm_gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &b) == 0 && b);
    struct slm_gguf_str s;
    CHECK(slm_gguf_get_str(f, "tokenizer.chat_template", &s) == 0 && s.n > 20 &&
          memmem(s.p, s.n, "<|start_header_id|>", 19) != NULL);
    check_vocab(f, 128256);
    slm_gguf_close(f);
  }
  /* llama3.2-1b with one layer at F16: rope_freqs from the llama3 scaling */
  const char *l1[] = { "mkmodel", "--shape", "llama3.2-1b", "--type", "f16", "--layers", "1",
                       "-o", tmp("l1.gguf"), "-q" };
  CHECK_EQ_INT(run_tool(slm_tool_mkmodel, l1, 10), 0);
  f = NULL;
  CHECK_EQ_INT(slm_gguf_open(tmp("l1.gguf"), &f, err, sizeof err), 0);
  if (f) {
    const struct slm_gguf_tensor *rf = slm_gguf_find_tensor(f, "rope_freqs.weight");
    CHECK(rf && rf->type == SLM_TYPE_F32 && rf->ne[0] == 32);
    if (rf) {
      const float *r = rf->data;
      CHECK(r[0] == 1.0f);     /* high frequencies untouched */
      CHECK(r[31] == 32.0f);   /* low frequencies scaled by the factor */
      for (int i = 1; i < 32; i++) CHECK(r[i] >= r[i - 1]);
    }
    const struct slm_gguf_tensor *tq = slm_gguf_find_tensor(f, "blk.0.attn_q.weight");
    CHECK(tq && tq->type == SLM_TYPE_F16 && tq->ne[0] == 2048 && tq->ne[1] == 2048);
    const struct slm_gguf_tensor *tkk = slm_gguf_find_tensor(f, "blk.0.attn_k.weight");
    CHECK(tkk && tkk->ne[1] == 512);
    slm_gguf_close(f);
  }

  /* usage errors */
  const char *e1[] = { "mkmodel", "--shape", "gpt-5", "--type", "f16", "-o", tmp("e.gguf") };
  CHECK_EQ_INT(run_tool(slm_tool_mkmodel, e1, 7), 2);
  const char *e2[] = { "mkmodel", "--shape", "qwen3-0.6b", "--type", "q3_k", "-o", tmp("e.gguf") };
  CHECK_EQ_INT(run_tool(slm_tool_mkmodel, e2, 7), 2);
  const char *e3[] = { "mkmodel", "--shape", "qwen3-0.6b", "--type", "f16" };
  CHECK_EQ_INT(run_tool(slm_tool_mkmodel, e3, 5), 2);
  const char *e4[] = { "mkmodel", "--shape", "qwen3-0.6b", "--type", "f16", "--layers", "29", "-o", tmp("e.gguf") };
  CHECK_EQ_INT(run_tool(slm_tool_mkmodel, e4, 9), 2);
  CHECK(access(tmp("e.gguf"), F_OK) != 0);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/test_quantize_tool_%d", (int)getpid());
  char cmd[600];
  snprintf(cmd, sizeof cmd, "mkdir -p %s", tmpdir);
  if (system(cmd) != 0) return 1;
  test_chooser();
  test_reproduces_llamacpp();
  test_mkmodel();
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  if (system(cmd) != 0) return 1;
  return check_done();
}
