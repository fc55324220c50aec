/*
 * test_gguf.c: the GGUF reader and writer (slm/gguf.c, slm/gguf_write.c).
 *
 * 1. Every .gguf in ../shared/models and ../shared/vocab opens, and known facts about them hold
 *    (architecture, counts, a tensor's type and shape, a kv value, a string array element).
 * 2. Write-then-read round trips for every value type, in memory and through a file; copying a
 *    llama.cpp-written file kv by kv and tensor by tensor reproduces it byte for byte.
 * 3. Broken input: every truncation of a small valid file, and hand-built files with one defect
 *    each, return an error with a useful message (run under ASan: never an out-of-bounds read).
 *
 * `test_gguf --write-corpus DIR` writes the fuzz seeds (tests/slm/corpus/gguf/, named .bin because
 * the repository ignores *.gguf) instead.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "slm/gguf.h"

/* ---------------------------------------------------------------- helpers */

static bool str_is(struct slm_gguf_str s, const char *z) {
  return s.p && s.n == strlen(z) && memcmp(s.p, z, s.n) == 0;
}

/* Opens a private heap copy of exactly LEN bytes, so ASan sees any read past the end. */
static int open_copy(const void *p, size_t len, struct slm_gguf_file **f, char *err, size_t errlen,
                     void **keep) {
  void *c = malloc(len ? len : 1);
  if (len) memcpy(c, p, len);
  *keep = c;
  return slm_gguf_open_mem(c, len, f, err, errlen);
}

/* raw byte builder for hand-made (broken) files */
struct hb {
  uint8_t b[8192];
  size_t n;
};
static void hb_put(struct hb *h, const void *p, size_t n) {
  if (h->n + n > sizeof h->b) abort();
  memcpy(h->b + h->n, p, n);
  h->n += n;
}
static void hb_u32(struct hb *h, uint32_t v) { hb_put(h, &v, 4); }
static void hb_u64(struct hb *h, uint64_t v) { hb_put(h, &v, 8); }
static void hb_u8(struct hb *h, uint8_t v) { hb_put(h, &v, 1); }
static void hb_str(struct hb *h, const char *s) {
  hb_u64(h, strlen(s));
  hb_put(h, s, strlen(s));
}
static void hb_hdr(struct hb *h, uint32_t version, uint64_t n_t, uint64_t n_kv) {
  h->n = 0;
  hb_put(h, "GGUF", 4);
  hb_u32(h, version);
  hb_u64(h, n_t);
  hb_u64(h, n_kv);
}
static void hb_kv_u32(struct hb *h, const char *k, uint32_t v) {
  hb_str(h, k);
  hb_u32(h, GGUF_VT_UINT32);
  hb_u32(h, v);
}
/* a 2-D tensor info */
static void hb_tensor(struct hb *h, const char *name, uint32_t type, uint64_t ne0, uint64_t ne1,
                      uint64_t off) {
  hb_str(h, name);
  hb_u32(h, 2);
  hb_u64(h, ne0);
  hb_u64(h, ne1);
  hb_u32(h, type);
  hb_u64(h, off);
}
static void hb_pad(struct hb *h, size_t align) {
  while (h->n % align) hb_u8(h, 0);
}
static void hb_zeros(struct hb *h, size_t n) {
  while (n--) hb_u8(h, 0);
}

/* Expects opening H to fail with CODE and a message containing WANT. */
#define EXPECT_BAD(h, code, want)                                                          \
  do {                                                                                     \
    struct slm_gguf_file *f_ = NULL;                                                           \
    char err_[512] = "";                                                                   \
    void *k_;                                                                              \
    int rc_ = open_copy((h)->b, (h)->n, &f_, err_, sizeof err_, &k_);                      \
    CHECK_EQ_INT(rc_, code);                                                               \
    CHECK(f_ == NULL);                                                                     \
    CHECK_MSG(strstr(err_, want) != NULL, "message \"%s\" lacks \"%s\"", err_, want);      \
    slm_gguf_close(f_);                                                                        \
    free(k_);                                                                              \
  } while (0)

/* ---------------------------------------------------------------- 1. shared files */

struct known {
  const char *file;
  const char *arch;
  uint64_t n_tensors, n_kv;
  const char *tensor;
  enum slm_type type;
  int64_t ne0, ne1;
  const char *u32_key;
  uint32_t u32_val;
};

static const struct known knowns[] = {
  { "models/stories260K.gguf", "llama", 48, 19, "token_embd.weight", SLM_TYPE_F32, 64, 512,
    "llama.feed_forward_length", 172 },
  { "models/tiny-llama-F32.gguf", "llama", 21, 23, "blk.1.ffn_down.weight", SLM_TYPE_F32, 512, 256,
    "llama.attention.head_count_kv", 2 },
  { "models/tiny-llama-F16.gguf", "llama", 21, 24, "blk.0.attn_q.weight", SLM_TYPE_F16, 256, 256,
    "general.file_type", 1 },
  { "models/tiny-llama-BF16.gguf", "llama", 21, 24, "output.weight", SLM_TYPE_BF16, 256, 1024,
    "general.file_type", 32 },
  { "models/tiny-llama-Q8_0.gguf", "llama", 21, 24, "blk.0.attn_k.weight", SLM_TYPE_Q8_0, 256, 128,
    "general.file_type", 7 },
  { "models/tiny-llama-Q4_0.gguf", "llama", 21, 24, "token_embd.weight", SLM_TYPE_Q4_0, 256, 1024,
    "general.file_type", 2 },
  { "models/tiny-llama-Q4_1.gguf", "llama", 21, 24, "token_embd.weight", SLM_TYPE_Q4_1, 256, 1024,
    "general.file_type", 3 },
  { "models/tiny-llama-Q5_0.gguf", "llama", 21, 24, "token_embd.weight", SLM_TYPE_Q5_0, 256, 1024,
    "general.file_type", 8 },
  { "models/tiny-llama-Q5_1.gguf", "llama", 21, 24, "token_embd.weight", SLM_TYPE_Q5_1, 256, 1024,
    "general.file_type", 9 },
  { "models/tiny-llama-Q4_K_M.gguf", "llama", 21, 24, "output.weight", SLM_TYPE_Q6_K, 256, 1024,
    "general.file_type", 15 },
  { "models/tiny-llama-Q5_K_M.gguf", "llama", 21, 24, "token_embd.weight", SLM_TYPE_Q5_K, 256, 1024,
    "general.file_type", 17 },
  { "models/tiny-llama-Q6_K.gguf", "llama", 21, 24, "token_embd.weight", SLM_TYPE_Q6_K, 256, 1024,
    "general.file_type", 18 },
  { "models/tiny-qwen2-F32.gguf", "qwen2", 26, 23, "blk.0.attn_k.bias", SLM_TYPE_F32, 128, 1,
    "qwen2.block_count", 2 },
  { "models/tiny-qwen2-Q4_K_M.gguf", "qwen2", 26, 24, "blk.0.ffn_down.weight", SLM_TYPE_Q4_K, 512, 256,
    "qwen2.embedding_length", 256 },
  { "models/tiny-qwen3-F16.gguf", "qwen3", 24, 24, "blk.0.attn_q_norm.weight", SLM_TYPE_F32, 64, 1,
    "qwen3.attention.head_count", 4 },
  { "models/tiny-qwen3-Q8_0.gguf", "qwen3", 24, 24, "token_embd.weight", SLM_TYPE_Q8_0, 256, 1024,
    "qwen3.block_count", 2 },
  { "vocab/ggml-vocab-gpt-2.gguf", "gpt2", 0, 16, NULL, 0, 0, 0, "tokenizer.ggml.bos_token_id", 50256 },
  { "vocab/ggml-vocab-llama-spm.gguf", "llama", 0, 22, NULL, 0, 0, 0, "llama.vocab_size", 32000 },
  { "vocab/ggml-vocab-phi-3.gguf", "phi3", 0, 26, NULL, 0, 0, 0, "tokenizer.ggml.eos_token_id", 32000 },
  { "vocab/ggml-vocab-qwen2-from-qwen3-tokenizer.gguf", "qwen2", 0, 23, NULL, 0, 0, 0,
    "tokenizer.ggml.eot_token_id", 151645 },
  { "vocab/ggml-vocab-llama-bpe-from-llama3-tokenizer.gguf", "llama", 0, 22, NULL, 0, 0, 0,
    "tokenizer.ggml.bos_token_id", 128000 },
  { "vocab/vocab-smollm2-synthetic.gguf", "llama", 0, 23, NULL, 0, 0, 0, "llama.block_count", 30 },
};

static void test_known_files(void) {
  for (size_t i = 0; i < sizeof knowns / sizeof knowns[0]; i++) {
    const struct known *k = &knowns[i];
    struct slm_gguf_file *f = NULL;
    char err[512];
    int rc = slm_gguf_open(check_shared_path(k->file), &f, err, sizeof err);
    CHECK_MSG(rc == 0, "%s: %s", k->file, err);
    if (rc) continue;
    struct slm_gguf_str arch;
    CHECK_EQ_INT(slm_gguf_get_str(f, "general.architecture", &arch), 0);
    CHECK_MSG(str_is(arch, k->arch), "%s: arch", k->file);
    CHECK_EQ_INT(slm_gguf_version(f), 3);
    CHECK_EQ_INT(slm_gguf_alignment(f), 32);
    CHECK_EQ_U64(slm_gguf_n_tensors(f), k->n_tensors);
    CHECK_EQ_U64(slm_gguf_n_kv(f), k->n_kv);
    uint32_t v = 0;
    CHECK_EQ_INT(slm_gguf_get_u32(f, k->u32_key, &v), 0);
    CHECK_MSG(v == k->u32_val, "%s: %s = %u, want %u", k->file, k->u32_key, v, k->u32_val);
    if (k->tensor) {
      const struct slm_gguf_tensor *t = slm_gguf_find_tensor(f, k->tensor);
      CHECK_MSG(t != NULL, "%s: no tensor %s", k->file, k->tensor);
      if (t) {
        CHECK_MSG(t->type == k->type, "%s: %s type %s", k->file, k->tensor, slm_type_name(t->type));
        CHECK_EQ_INT(t->ne[0], k->ne0);
        CHECK_EQ_INT(t->ne[1], k->ne1);
        CHECK_EQ_U64(t->nbytes, slm_row_size(t->type, t->ne[0]) * (uint64_t)t->ne[1]);
        CHECK(((uintptr_t)t->data - (uintptr_t)slm_gguf_base(f)) % 32 == 0);
        CHECK(str_is(t->name, k->tensor));
      }
      CHECK(slm_gguf_find_tensor(f, "no.such.tensor") == NULL);
    }
    /* every tensor lies inside the data section */
    for (uint64_t j = 0; j < slm_gguf_n_tensors(f); j++) {
      const struct slm_gguf_tensor *t = slm_gguf_tensor_at(f, j);
      CHECK(slm_gguf_data_offset(f) + t->offset + t->nbytes <= slm_gguf_file_size(f));
      CHECK(slm_gguf_find_tensor(f, "") == NULL);
    }
    CHECK(slm_gguf_tensor_at(f, slm_gguf_n_tensors(f)) == NULL);
    CHECK(slm_gguf_kv_at(f, slm_gguf_n_kv(f)) == NULL);
    slm_gguf_close(f);
  }

  /* specific values: floats, strings, string arrays, bools, typed getter errors */
  struct slm_gguf_file *f = NULL;
  char err[512];
  CHECK_EQ_INT(slm_gguf_open(check_shared_path("vocab/ggml-vocab-qwen2-from-qwen3-tokenizer.gguf"), &f,
                         err, sizeof err), 0);
  if (f) {
    float eps = 0, theta = 0;
    CHECK_EQ_INT(slm_gguf_get_f32(f, "qwen2.attention.layer_norm_rms_epsilon", &eps), 0);
    CHECK_NEAR(eps, 1e-6, 1e-12);
    CHECK_EQ_INT(slm_gguf_get_f32(f, "qwen2.rope.freq_base", &theta), 0);
    CHECK_NEAR(theta, 1e6, 0);
    bool b = true;
    CHECK_EQ_INT(slm_gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &b), 0);
    CHECK(!b);
    struct slm_gguf_str s;
    CHECK_EQ_INT(slm_gguf_get_str(f, "tokenizer.ggml.pre", &s), 0);
    CHECK(str_is(s, "qwen2"));
    const struct slm_gguf_kv *tok = slm_gguf_find_kv(f, "tokenizer.ggml.tokens");
    CHECK(tok && tok->type == GGUF_VT_ARRAY && tok->arr_type == GGUF_VT_STRING);
    if (tok) {
      CHECK_EQ_U64(tok->arr_n, 151936);
      CHECK(str_is(slm_gguf_arr_str(f, tok, 151643), "<|endoftext|>"));
      CHECK(str_is(slm_gguf_arr_str(f, tok, 151935), "[PAD151935]"));
      CHECK(str_is(slm_gguf_arr_str(f, tok, 0), "!"));
      CHECK(slm_gguf_arr_str(f, tok, 151936).p == NULL);   /* out of range */
    }
    const struct slm_gguf_kv *tt = slm_gguf_find_kv(f, "tokenizer.ggml.token_type");
    CHECK(tt && tt->arr_type == GGUF_VT_INT32 && tt->arr_n == 151936);
    if (tt) {
      int32_t t0, tend;
      memcpy(&t0, tt->arr_data, 4);
      memcpy(&tend, tt->arr_data + 4 * 151643, 4);
      CHECK_EQ_INT(t0, 1);      /* normal */
      CHECK_EQ_INT(tend, 3);    /* control */
      CHECK(slm_gguf_arr_str(f, tt, 0).p == NULL);   /* not a string array */
    }
    /* getter type rules */
    uint32_t u;
    int64_t i64;
    CHECK_EQ_INT(slm_gguf_get_u32(f, "tokenizer.ggml.pre", &u), -EINVAL);
    CHECK_EQ_INT(slm_gguf_get_u32(f, "no.such.key", &u), -ENOENT);
    CHECK_EQ_INT(slm_gguf_get_i64(f, "qwen2.block_count", &i64), 0);
    CHECK_EQ_INT(i64, 24);
    CHECK_EQ_INT(slm_gguf_get_f32(f, "qwen2.block_count", &eps), -EINVAL);
    CHECK_EQ_INT(slm_gguf_get_bool(f, "qwen2.block_count", &b), -EINVAL);
    CHECK_EQ_INT(slm_gguf_get_str(f, "qwen2.block_count", &s), -EINVAL);
    slm_gguf_close(f);
  }
  f = NULL;
  CHECK_EQ_INT(slm_gguf_open(check_shared_path("models/stories260K.gguf"), &f, err, sizeof err), 0);
  if (f) {
    const struct slm_gguf_kv *sc = slm_gguf_find_kv(f, "tokenizer.ggml.scores");
    CHECK(sc && sc->arr_type == GGUF_VT_FLOAT32 && sc->arr_n == 512);
    uint32_t pad = 0;
    CHECK_EQ_INT(slm_gguf_get_u32(f, "tokenizer.ggml.padding_token_id", &pad), 0);
    CHECK_EQ_U64(pad, 4294967295u);
    int64_t p64 = 0;
    CHECK_EQ_INT(slm_gguf_get_i64(f, "tokenizer.ggml.padding_token_id", &p64), 0);
    CHECK_EQ_INT(p64, 4294967295ll);
    slm_gguf_close(f);
  }

  /* every file in both folders opens */
  const char *dirs[] = { "models", "vocab" };
  int n_opened = 0;
  for (int d = 0; d < 2; d++) {
    DIR *dp = opendir(check_shared_path(dirs[d]));
    CHECK_MSG(dp != NULL, "cannot list %s", dirs[d]);
    if (!dp) continue;
    struct dirent *de;
    while ((de = readdir(dp))) {
      size_t nl = strlen(de->d_name);
      if (nl < 5 || strcmp(de->d_name + nl - 5, ".gguf")) continue;
      char rel[512];
      snprintf(rel, sizeof rel, "%s/%s", dirs[d], de->d_name);
      struct slm_gguf_file *g = NULL;
      int rc = slm_gguf_open(check_shared_path(rel), &g, err, sizeof err);
      CHECK_MSG(rc == 0, "%s: %s", rel, err);
      n_opened += rc == 0;
      slm_gguf_close(g);
    }
    closedir(dp);
  }
  CHECK_MSG(n_opened >= 26, "only %d shared .gguf files opened", n_opened);

  /* errors from the file system */
  f = NULL;
  CHECK_EQ_INT(slm_gguf_open("/nonexistent/x.gguf", &f, err, sizeof err), -ENOENT);
  CHECK(strstr(err, "/nonexistent/x.gguf") != NULL);
  CHECK_EQ_INT(slm_gguf_open(check_shared_path("models"), &f, err, sizeof err), -EINVAL);
  CHECK_EQ_INT(slm_gguf_open(check_shared_path("models/README.md"), &f, err, sizeof err), -EINVAL);
  CHECK(strstr(err, "not a GGUF file") != NULL);
}

/* ---------------------------------------------------------------- 2. round trips */

/* A small file holding every value type, arrays of each element type and tensors of several types
 * (the last tensor's size a multiple of 32 so the file ends exactly at its data). */
static struct slm_gguf_writer *build_all_types(uint8_t *tdata, size_t tcap) {
  struct slm_gguf_writer *w = slm_gguf_writer_new();
  slm_gguf_w_str(w, "general.architecture", "llama");
  slm_gguf_w_u8(w, "t.u8", 200);
  slm_gguf_w_i8(w, "t.i8", -100);
  slm_gguf_w_u16(w, "t.u16", 60000);
  slm_gguf_w_i16(w, "t.i16", -30000);
  slm_gguf_w_u32(w, "t.u32", 4000000000u);
  slm_gguf_w_i32(w, "t.i32", -2000000000);
  slm_gguf_w_f32(w, "t.f32", 0.15625f);
  slm_gguf_w_bool(w, "t.bool", true);
  slm_gguf_w_strn(w, "t.str_nul", "a\0b", 3);
  slm_gguf_w_u64(w, "t.u64", 18000000000000000000ull);
  slm_gguf_w_i64(w, "t.i64", -9000000000000000000ll);
  slm_gguf_w_f64(w, "t.f64", 3.141592653589793);
  const char *strs[] = { "", "hello", "\xc3\xa9t\xc3\xa9" };
  slm_gguf_w_arr_str(w, "t.arr_str", strs, 3);
  const float fl[] = { 1.5f, -2.25f };
  slm_gguf_w_arr_f32(w, "t.arr_f32", fl, 2);
  const int32_t i32[] = { -1, 7, 123456 };
  slm_gguf_w_arr_i32(w, "t.arr_i32", i32, 3);
  const uint8_t u8[] = { 1, 2, 255 };
  slm_gguf_w_arr(w, "t.arr_u8", GGUF_VT_UINT8, u8, 3);
  const uint8_t bo[] = { 1, 0 };
  slm_gguf_w_arr(w, "t.arr_bool", GGUF_VT_BOOL, bo, 2);
  const int16_t i16[] = { -5 };
  slm_gguf_w_arr(w, "t.arr_i16", GGUF_VT_INT16, i16, 1);
  const uint64_t u64[] = { 1ull << 40 };
  slm_gguf_w_arr(w, "t.arr_u64", GGUF_VT_UINT64, u64, 1);
  const double f64[] = { -0.5, 1e300 };
  slm_gguf_w_arr(w, "t.arr_f64", GGUF_VT_FLOAT64, f64, 2);
  slm_gguf_w_arr(w, "t.arr_empty", GGUF_VT_INT8, NULL, 0);
  slm_gguf_w_u32(w, "t.replaced", 1);
  slm_gguf_w_u32(w, "t.replaced", 2);   /* replaces in place */

  for (size_t i = 0; i < tcap; i++) tdata[i] = (uint8_t)(i * 31 + 7);
  int64_t ne1[] = { 5 };                 /* 20 bytes F32: padded to 32 */
  slm_gguf_w_tensor(w, "a.f32", SLM_TYPE_F32, 1, ne1, tdata);
  int64_t ne2[] = { 32, 3 };             /* 3 rows of one q8_0 block: 102 bytes */
  slm_gguf_w_tensor(w, "b.q8_0", SLM_TYPE_Q8_0, 2, ne2, tdata + 32);
  int64_t ne3[] = { 256, 1, 2 };         /* 2 x q4_K: 288 bytes */
  slm_gguf_w_tensor(w, "c.q4_k", SLM_TYPE_Q4_K, 3, ne3, tdata + 160);
  int64_t ne4[] = { 16, 1, 1, 2 };       /* 32 F16 = 64 bytes: ends the file */
  slm_gguf_w_tensor(w, "d.f16", SLM_TYPE_F16, 4, ne4, tdata + 500);
  return w;
}

static void check_all_types(const struct slm_gguf_file *f, const uint8_t *tdata) {
  const struct slm_gguf_kv *kv;
  CHECK_EQ_U64(slm_gguf_n_kv(f), 23);
  CHECK_EQ_INT(slm_gguf_version(f), 3);
  kv = slm_gguf_find_kv(f, "t.u8");
  CHECK(kv && kv->type == GGUF_VT_UINT8 && kv->v.u64 == 200);
  kv = slm_gguf_find_kv(f, "t.i8");
  CHECK(kv && kv->type == GGUF_VT_INT8 && kv->v.i64 == -100);
  kv = slm_gguf_find_kv(f, "t.u16");
  CHECK(kv && kv->type == GGUF_VT_UINT16 && kv->v.u64 == 60000);
  kv = slm_gguf_find_kv(f, "t.i16");
  CHECK(kv && kv->type == GGUF_VT_INT16 && kv->v.i64 == -30000);
  kv = slm_gguf_find_kv(f, "t.u32");
  CHECK(kv && kv->type == GGUF_VT_UINT32 && kv->v.u64 == 4000000000u);
  kv = slm_gguf_find_kv(f, "t.i32");
  CHECK(kv && kv->type == GGUF_VT_INT32 && kv->v.i64 == -2000000000);
  kv = slm_gguf_find_kv(f, "t.f32");
  CHECK(kv && kv->type == GGUF_VT_FLOAT32 && kv->v.f64 == 0.15625);
  kv = slm_gguf_find_kv(f, "t.bool");
  CHECK(kv && kv->type == GGUF_VT_BOOL && kv->v.b);
  kv = slm_gguf_find_kv(f, "t.str_nul");
  CHECK(kv && kv->type == GGUF_VT_STRING && kv->v.str.n == 3 && !memcmp(kv->v.str.p, "a\0b", 3));
  kv = slm_gguf_find_kv(f, "t.u64");
  CHECK(kv && kv->type == GGUF_VT_UINT64 && kv->v.u64 == 18000000000000000000ull);
  kv = slm_gguf_find_kv(f, "t.i64");
  CHECK(kv && kv->type == GGUF_VT_INT64 && kv->v.i64 == -9000000000000000000ll);
  kv = slm_gguf_find_kv(f, "t.f64");
  CHECK(kv && kv->type == GGUF_VT_FLOAT64 && kv->v.f64 == 3.141592653589793);
  kv = slm_gguf_find_kv(f, "t.arr_str");
  CHECK(kv && kv->type == GGUF_VT_ARRAY && kv->arr_type == GGUF_VT_STRING && kv->arr_n == 3);
  if (kv) {
    CHECK(slm_gguf_arr_str(f, kv, 0).n == 0 && slm_gguf_arr_str(f, kv, 0).p != NULL);
    CHECK(str_is(slm_gguf_arr_str(f, kv, 1), "hello"));
    CHECK(str_is(slm_gguf_arr_str(f, kv, 2), "\xc3\xa9t\xc3\xa9"));
  }
  kv = slm_gguf_find_kv(f, "t.arr_f32");
  CHECK(kv && kv->arr_type == GGUF_VT_FLOAT32 && kv->arr_n == 2);
  if (kv) {
    float x[2];
    memcpy(x, kv->arr_data, 8);
    CHECK(x[0] == 1.5f && x[1] == -2.25f);
  }
  kv = slm_gguf_find_kv(f, "t.arr_i32");
  CHECK(kv && kv->arr_type == GGUF_VT_INT32 && kv->arr_n == 3);
  if (kv) {
    int32_t x[3];
    memcpy(x, kv->arr_data, 12);
    CHECK(x[0] == -1 && x[1] == 7 && x[2] == 123456);
  }
  kv = slm_gguf_find_kv(f, "t.arr_u8");
  CHECK(kv && kv->arr_type == GGUF_VT_UINT8 && kv->arr_n == 3 && kv->arr_data[2] == 255);
  kv = slm_gguf_find_kv(f, "t.arr_bool");
  CHECK(kv && kv->arr_type == GGUF_VT_BOOL && kv->arr_n == 2 && kv->arr_data[0] == 1);
  kv = slm_gguf_find_kv(f, "t.arr_i16");
  CHECK(kv && kv->arr_type == GGUF_VT_INT16 && kv->arr_n == 1);
  kv = slm_gguf_find_kv(f, "t.arr_u64");
  if (kv) {
    uint64_t x;
    memcpy(&x, kv->arr_data, 8);
    CHECK(kv->arr_type == GGUF_VT_UINT64 && x == 1ull << 40);
  }
  kv = slm_gguf_find_kv(f, "t.arr_f64");
  if (kv) {
    double x[2];
    memcpy(x, kv->arr_data, 16);
    CHECK(kv->arr_type == GGUF_VT_FLOAT64 && x[0] == -0.5 && x[1] == 1e300);
  }
  kv = slm_gguf_find_kv(f, "t.arr_empty");
  CHECK(kv && kv->arr_type == GGUF_VT_INT8 && kv->arr_n == 0);
  uint32_t u = 0;
  CHECK_EQ_INT(slm_gguf_get_u32(f, "t.replaced", &u), 0);
  CHECK_EQ_INT(u, 2);
  /* insertion order: the replaced key keeps its first slot */
  CHECK(str_is(slm_gguf_kv_at(f, 0)->key, "general.architecture"));
  CHECK(str_is(slm_gguf_kv_at(f, 22)->key, "t.replaced"));
  CHECK(str_is(slm_gguf_kv_at(f, 13)->key, "t.arr_str"));

  /* typed getters across integer types */
  CHECK_EQ_INT(slm_gguf_get_u32(f, "t.u8", &u), 0);
  CHECK_EQ_INT(u, 200);
  CHECK_EQ_INT(slm_gguf_get_u32(f, "t.i8", &u), -EINVAL);    /* negative */
  CHECK_EQ_INT(slm_gguf_get_u32(f, "t.u64", &u), -EINVAL);   /* too big */
  int64_t i64 = 0;
  CHECK_EQ_INT(slm_gguf_get_i64(f, "t.i16", &i64), 0);
  CHECK_EQ_INT(i64, -30000);
  CHECK_EQ_INT(slm_gguf_get_i64(f, "t.u64", &i64), -EINVAL);  /* > INT64_MAX */
  float fv = 0;
  CHECK_EQ_INT(slm_gguf_get_f32(f, "t.f64", &fv), 0);
  CHECK_NEAR(fv, 3.14159265f, 1e-6);

  CHECK_EQ_U64(slm_gguf_n_tensors(f), 4);
  const char *names[] = { "a.f32", "b.q8_0", "c.q4_k", "d.f16" };
  const enum slm_type types[] = { SLM_TYPE_F32, SLM_TYPE_Q8_0, SLM_TYPE_Q4_K, SLM_TYPE_F16 };
  const uint64_t nbytes[] = { 20, 102, 288, 64 };
  const uint64_t offs[] = { 0, 32, 160, 448 };
  const size_t srcs[] = { 0, 32, 160, 500 };
  for (int i = 0; i < 4; i++) {
    const struct slm_gguf_tensor *t = slm_gguf_tensor_at(f, (uint64_t)i);
    CHECK(t && str_is(t->name, names[i]));
    if (!t) continue;
    CHECK(slm_gguf_find_tensor(f, names[i]) == t);
    CHECK_EQ_INT(t->type, types[i]);
    CHECK_EQ_INT(t->n_dims, (uint32_t)i + 1);
    CHECK_EQ_U64(t->nbytes, nbytes[i]);
    CHECK_EQ_U64(t->offset, offs[i]);
    CHECK(memcmp(t->data, tdata + srcs[i], (size_t)t->nbytes) == 0);
  }
  const struct slm_gguf_tensor *t = slm_gguf_find_tensor(f, "c.q4_k");
  CHECK(t && t->ne[0] == 256 && t->ne[1] == 1 && t->ne[2] == 2 && t->ne[3] == 1);
}

static void test_round_trip(void) {
  static uint8_t tdata[1024];
  struct slm_gguf_writer *w = build_all_types(tdata, sizeof tdata);
  void *buf = NULL;
  size_t len = 0;
  char err[512];
  CHECK_EQ_INT(slm_gguf_writer_write_mem(w, &buf, &len, err, sizeof err), 0);
  struct slm_gguf_file *f = NULL;
  CHECK_EQ_INT(slm_gguf_open_mem(buf, len, &f, err, sizeof err), 0);
  if (f) {
    CHECK_EQ_U64(slm_gguf_file_size(f), len);
    CHECK_EQ_U64(slm_gguf_data_offset(f) + 448 + 64, len);   /* no trailing padding */
    check_all_types(f, tdata);
    slm_gguf_close(f);
  }

  /* through a file, and the file equals the memory image */
  char path[256];
  snprintf(path, sizeof path, "/tmp/test_gguf_%d.gguf", (int)getpid());
  CHECK_EQ_INT(slm_gguf_writer_write(w, path, err, sizeof err), 0);
  f = NULL;
  CHECK_EQ_INT(slm_gguf_open(path, &f, err, sizeof err), 0);
  if (f) {
    check_all_types(f, tdata);
    slm_gguf_close(f);
  }
  size_t flen = 0;
  char *fb = check_read_file(path, &flen);
  CHECK(fb && flen == len && memcmp(fb, buf, len) == 0);
  free(fb);
  unlink(path);
  slm_gguf_writer_free(w);

  /* general.alignment from the kvs */
  w = slm_gguf_writer_new();
  slm_gguf_w_u32(w, "general.alignment", 64);
  int64_t ne[] = { 3 };
  float x[3] = { 1, 2, 3 };
  slm_gguf_w_tensor(w, "x", SLM_TYPE_F32, 1, ne, x);
  slm_gguf_w_tensor(w, "y", SLM_TYPE_F32, 1, ne, x);
  void *b2 = NULL;
  size_t l2 = 0;
  CHECK_EQ_INT(slm_gguf_writer_write_mem(w, &b2, &l2, err, sizeof err), 0);
  f = NULL;
  CHECK_EQ_INT(slm_gguf_open_mem(b2, l2, &f, err, sizeof err), 0);
  if (f) {
    CHECK_EQ_INT(slm_gguf_alignment(f), 64);
    CHECK_EQ_U64(slm_gguf_data_offset(f) % 64, 0);
    CHECK_EQ_U64(slm_gguf_find_tensor(f, "y")->offset, 64);
    slm_gguf_close(f);
  }
  free(b2);
  slm_gguf_writer_free(w);

  /* writer errors surface at write time */
  w = slm_gguf_writer_new();
  slm_gguf_w_u32(w, "general.alignment", 48);
  CHECK_EQ_INT(slm_gguf_writer_write_mem(w, &b2, &l2, err, sizeof err), -EINVAL);
  CHECK(strstr(err, "alignment") != NULL);
  slm_gguf_writer_free(w);
  w = slm_gguf_writer_new();
  int64_t bad[] = { 33 };
  slm_gguf_w_tensor(w, "q", SLM_TYPE_Q8_0, 1, bad, x);
  CHECK_EQ_INT(slm_gguf_writer_write_mem(w, &b2, &l2, err, sizeof err), -EINVAL);
  CHECK(strstr(err, "multiple") != NULL);
  slm_gguf_writer_free(w);
  w = slm_gguf_writer_new();
  slm_gguf_w_tensor(w, "x", SLM_TYPE_F32, 1, ne, x);
  slm_gguf_w_tensor(w, "x", SLM_TYPE_F32, 1, ne, x);
  CHECK_EQ_INT(slm_gguf_writer_write(w, "/tmp/never-written.gguf", err, sizeof err), -EINVAL);
  CHECK(strstr(err, "duplicate") != NULL);
  CHECK(access("/tmp/never-written.gguf", F_OK) != 0);
  slm_gguf_writer_free(w);
  w = slm_gguf_writer_new();
  CHECK_EQ_INT(slm_gguf_writer_write(w, "/nonexistent-dir/x.gguf", err, sizeof err), -ENOENT);
  slm_gguf_writer_free(w);
  free(buf);
}

/* Copy a llama.cpp-written file kv by kv and tensor by tensor: the bytes must be identical, which
 * pins our writer's layout to llama.cpp's. */
static void test_copy_identical(const char *rel) {
  struct slm_gguf_file *f = NULL;
  char err[512];
  CHECK_EQ_INT(slm_gguf_open(check_shared_path(rel), &f, err, sizeof err), 0);
  if (!f) return;
  struct slm_gguf_writer *w = slm_gguf_writer_new();
  for (uint64_t i = 0; i < slm_gguf_n_kv(f); i++) slm_gguf_w_copy_kv(w, f, slm_gguf_kv_at(f, i));
  for (uint64_t i = 0; i < slm_gguf_n_tensors(f); i++) {
    const struct slm_gguf_tensor *t = slm_gguf_tensor_at(f, i);
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)t->name.n, t->name.p);
    slm_gguf_w_tensor(w, name, t->type, t->n_dims, t->ne, t->data);
  }
  void *buf = NULL;
  size_t len = 0;
  CHECK_EQ_INT(slm_gguf_writer_write_mem(w, &buf, &len, err, sizeof err), 0);
  CHECK_EQ_U64(len, slm_gguf_file_size(f));
  CHECK_MSG(buf && len == slm_gguf_file_size(f) && memcmp(buf, slm_gguf_base(f), len) == 0,
            "%s: rewritten copy differs", rel);
  free(buf);
  slm_gguf_writer_free(w);
  slm_gguf_close(f);
}

/* Many keys and tensors: every one found by name, absent names not found. */
static void test_many_names(void) {
  enum { N = 3000 };
  static float one[8];
  struct slm_gguf_writer *w = slm_gguf_writer_new();
  char name[32];
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof name, "k.%d", (i * 7919) % N);   /* not in sorted order */
    slm_gguf_w_u32(w, name, (uint32_t)((i * 7919) % N));
    snprintf(name, sizeof name, "t.%d", (i * 104729) % N);
    int64_t ne[] = { 8 };
    slm_gguf_w_tensor(w, name, SLM_TYPE_F32, 1, ne, one);
  }
  void *buf = NULL;
  size_t len = 0;
  char err[256];
  CHECK_EQ_INT(slm_gguf_writer_write_mem(w, &buf, &len, err, sizeof err), 0);
  slm_gguf_writer_free(w);
  struct slm_gguf_file *f = NULL;
  CHECK_EQ_INT(slm_gguf_open_mem(buf, len, &f, err, sizeof err), 0);
  if (f) {
    int bad = 0;
    for (int i = 0; i < N; i++) {
      uint32_t v = 0;
      snprintf(name, sizeof name, "k.%d", i);
      bad += slm_gguf_get_u32(f, name, &v) != 0 || v != (uint32_t)i;
      snprintf(name, sizeof name, "t.%d", i);
      const struct slm_gguf_tensor *t = slm_gguf_find_tensor(f, name);
      bad += !t || !str_is(t->name, name);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(slm_gguf_find_kv(f, "k.3000") == NULL && slm_gguf_find_kv(f, "k.") == NULL && slm_gguf_find_kv(f, "") == NULL);
    CHECK(slm_gguf_find_tensor(f, "t.-1") == NULL && slm_gguf_find_tensor(f, "t.29999") == NULL);
    slm_gguf_close(f);
  }
  free(buf);
}

/* ---------------------------------------------------------------- 3. broken files */

static void test_truncations(void) {
  static uint8_t tdata[1024];
  struct slm_gguf_writer *w = build_all_types(tdata, sizeof tdata);
  void *buf = NULL;
  size_t len = 0;
  char err[512];
  CHECK_EQ_INT(slm_gguf_writer_write_mem(w, &buf, &len, err, sizeof err), 0);
  slm_gguf_writer_free(w);
  int failures = 0;
  for (size_t n = 0; n < len; n++) {
    struct slm_gguf_file *f = NULL;
    void *k;
    err[0] = 0;
    int rc = open_copy(buf, n, &f, err, sizeof err, &k);
    if (rc != -EINVAL || f != NULL || err[0] == 0) {
      if (failures++ < 5) CHECK_FAIL_("prefix of %zu bytes: rc %d, err \"%s\"", n, rc, err);
    }
    slm_gguf_close(f);
    free(k);
  }
  check_count_++;
  CHECK_EQ_INT(failures, 0);
  /* and the whole file opens */
  struct slm_gguf_file *f = NULL;
  void *k;
  CHECK_EQ_INT(open_copy(buf, len, &f, err, sizeof err, &k), 0);
  slm_gguf_close(f);
  free(k);
  /* flipping each header byte never crashes (result may be ok or an error) */
  uint8_t *m = malloc(len);
  for (size_t i = 0; i < len && i < 2048; i++) {
    memcpy(m, buf, len);
    m[i] ^= 0xff;
    f = NULL;
    int rc = slm_gguf_open_mem(m, len, &f, err, sizeof err);
    CHECK(rc == 0 ? f != NULL : (f == NULL && err[0] != 0));
    slm_gguf_close(f);
  }
  free(m);
  free(buf);
}

static void test_hand_built(void) {
  struct hb h;

  /* magic, version */
  hb_hdr(&h, 3, 0, 0);
  h.b[0] = 'X';
  EXPECT_BAD(&h, -EINVAL, "not a GGUF file: magic is XGUF");
  hb_hdr(&h, 1, 0, 0);
  EXPECT_BAD(&h, -ENOTSUP, "GGUF v1 is not supported");
  hb_hdr(&h, 4, 0, 0);
  EXPECT_BAD(&h, -ENOTSUP, "GGUF version 4 is not supported");
  hb_hdr(&h, 0x03000000u, 0, 0);
  EXPECT_BAD(&h, -ENOTSUP, "big-endian");
  h.n = 0;
  EXPECT_BAD(&h, -EINVAL, "not a GGUF file: only 0 bytes");
  hb_hdr(&h, 3, 0, 0);
  h.n = 20;
  EXPECT_BAD(&h, -EINVAL, "truncated GGUF header");

  /* an empty but valid file: v2 and v3 */
  hb_hdr(&h, 2, 0, 0);
  {
    struct slm_gguf_file *f = NULL;
    char err[256];
    void *k;
    CHECK_EQ_INT(open_copy(h.b, h.n, &f, err, sizeof err, &k), 0);
    if (f) CHECK_EQ_INT(slm_gguf_version(f), 2);
    slm_gguf_close(f);
    free(k);
  }

  /* huge counts */
  hb_hdr(&h, 3, 0, UINT64_MAX);
  EXPECT_BAD(&h, -EINVAL, "n_kv 18446744073709551615 is impossible");
  hb_hdr(&h, 3, 1ull << 40, 0);
  EXPECT_BAD(&h, -EINVAL, "n_tensors 1099511627776 is impossible");
  hb_hdr(&h, 3, 0, 1);
  hb_u64(&h, UINT64_MAX);   /* key length */
  hb_zeros(&h, 16);
  EXPECT_BAD(&h, -EINVAL, "exceeds the limit");
  hb_hdr(&h, 3, 0, 1);
  hb_u64(&h, 1000);
  hb_zeros(&h, 16);
  EXPECT_BAD(&h, -EINVAL, "runs past the end of the file");
  hb_hdr(&h, 3, 0, 1);
  hb_str(&h, "s");
  hb_u32(&h, GGUF_VT_STRING);
  hb_u64(&h, UINT64_MAX - 3);
  EXPECT_BAD(&h, -EINVAL, "runs past the end");
  hb_hdr(&h, 3, 0, 1);
  hb_str(&h, "arr");
  hb_u32(&h, GGUF_VT_ARRAY);
  hb_u32(&h, GGUF_VT_UINT64);
  hb_u64(&h, (UINT64_MAX / 8) + 2);   /* n * 8 would wrap */
  hb_zeros(&h, 64);
  EXPECT_BAD(&h, -EINVAL, "kv 'arr': array of 2305843009213693953 uint64 runs past");
  hb_hdr(&h, 3, 0, 1);
  hb_str(&h, "arr");
  hb_u32(&h, GGUF_VT_ARRAY);
  hb_u32(&h, GGUF_VT_STRING);
  hb_u64(&h, 1ull << 62);
  hb_zeros(&h, 64);
  EXPECT_BAD(&h, -EINVAL, "strings runs past");
  hb_hdr(&h, 3, 0, 1);
  hb_str(&h, "arr");
  hb_u32(&h, GGUF_VT_ARRAY);
  hb_u32(&h, GGUF_VT_STRING);
  hb_u64(&h, 2);
  hb_str(&h, "ok");
  hb_u64(&h, 100);   /* second element too long */
  hb_zeros(&h, 10);
  EXPECT_BAD(&h, -EINVAL, "kv 'arr': element 1 of string array");

  /* value types */
  hb_hdr(&h, 3, 0, 1);
  hb_str(&h, "k");
  hb_u32(&h, 13);
  hb_u64(&h, 0);
  EXPECT_BAD(&h, -EINVAL, "kv 'k': unknown value type 13");
  hb_hdr(&h, 3, 0, 1);
  hb_str(&h, "k");
  hb_u32(&h, GGUF_VT_ARRAY);
  hb_u32(&h, GGUF_VT_ARRAY);
  hb_u64(&h, 0);
  EXPECT_BAD(&h, -EINVAL, "nested arrays");
  hb_hdr(&h, 3, 0, 1);
  hb_str(&h, "k");
  hb_u32(&h, GGUF_VT_ARRAY);
  hb_u32(&h, 99);
  hb_u64(&h, 0);
  EXPECT_BAD(&h, -EINVAL, "unknown array element type 99");
  hb_hdr(&h, 3, 0, 1);
  hb_str(&h, "k");
  hb_u32(&h, GGUF_VT_BOOL);
  hb_u8(&h, 2);
  hb_zeros(&h, 12);
  EXPECT_BAD(&h, -EINVAL, "bool value 2");
  hb_hdr(&h, 3, 0, 1);
  hb_str(&h, "k");
  hb_u32(&h, GGUF_VT_ARRAY);
  hb_u32(&h, GGUF_VT_BOOL);
  hb_u64(&h, 2);
  hb_u8(&h, 1);
  hb_u8(&h, 7);
  EXPECT_BAD(&h, -EINVAL, "bool element 1 is 7");
  hb_hdr(&h, 3, 0, 1);
  hb_str(&h, "k");
  hb_u32(&h, GGUF_VT_UINT64);
  hb_u32(&h, 0);   /* only 4 of 8 bytes */
  hb_zeros(&h, 1);
  EXPECT_BAD(&h, -EINVAL, "truncated uint64 value");
  hb_hdr(&h, 3, 0, 1);
  hb_u64(&h, 0);
  hb_u32(&h, GGUF_VT_UINT8);
  hb_u8(&h, 0);
  EXPECT_BAD(&h, -EINVAL, "empty key");
  hb_hdr(&h, 3, 0, 2);
  hb_kv_u32(&h, "dup", 1);
  hb_kv_u32(&h, "dup", 2);
  EXPECT_BAD(&h, -EINVAL, "duplicate key 'dup'");
  hb_hdr(&h, 3, 0, 1);
  hb_str(&h, "bad\x01name");
  hb_u32(&h, 99);
  EXPECT_BAD(&h, -EINVAL, "kv 'bad\\x01name': unknown value type 99");

  /* alignment */
  hb_hdr(&h, 3, 0, 1);
  hb_kv_u32(&h, "general.alignment", 48);
  EXPECT_BAD(&h, -EINVAL, "general.alignment 48 is not a power of two");
  hb_hdr(&h, 3, 0, 1);
  hb_kv_u32(&h, "general.alignment", 0);
  EXPECT_BAD(&h, -EINVAL, "general.alignment 0");
  hb_hdr(&h, 3, 0, 1);
  hb_str(&h, "general.alignment");
  hb_u32(&h, GGUF_VT_UINT64);
  hb_u64(&h, 32);
  EXPECT_BAD(&h, -EINVAL, "general.alignment has type uint64, expected uint32");

  /* tensors: a valid base first */
  hb_hdr(&h, 3, 2, 0);
  hb_tensor(&h, "a", SLM_TYPE_F32, 8, 1, 0);
  hb_tensor(&h, "b", SLM_TYPE_F32, 8, 1, 32);
  hb_pad(&h, 32);
  hb_zeros(&h, 64);
  {
    struct slm_gguf_file *f = NULL;
    char err[256];
    void *k;
    CHECK_EQ_INT(open_copy(h.b, h.n, &f, err, sizeof err, &k), 0);
    slm_gguf_close(f);
    free(k);
  }
  /* overlapping tensors */
  hb_hdr(&h, 3, 2, 0);
  hb_tensor(&h, "a", SLM_TYPE_F32, 16, 1, 0);
  hb_tensor(&h, "b", SLM_TYPE_F32, 8, 1, 32);
  hb_pad(&h, 32);
  hb_zeros(&h, 96);
  EXPECT_BAD(&h, -EINVAL, "tensor 'b' (bytes 32..64) overlaps tensor 'a'");
  /* same offset */
  hb_hdr(&h, 3, 2, 0);
  hb_tensor(&h, "a", SLM_TYPE_F32, 8, 1, 0);
  hb_tensor(&h, "b", SLM_TYPE_F32, 8, 1, 0);
  hb_pad(&h, 32);
  hb_zeros(&h, 64);
  EXPECT_BAD(&h, -EINVAL, "overlaps");
  /* misaligned offset */
  hb_hdr(&h, 3, 1, 0);
  hb_tensor(&h, "a", SLM_TYPE_F32, 8, 1, 4);
  hb_pad(&h, 32);
  hb_zeros(&h, 64);
  EXPECT_BAD(&h, -EINVAL, "tensor 'a': offset 4 is not a multiple of the alignment 32");
  /* data beyond the end: exact message */
  hb_hdr(&h, 3, 1, 0);
  hb_tensor(&h, "blk.3.attn_q.weight", SLM_TYPE_F32, 8, 2, 0);
  hb_pad(&h, 32);
  size_t ds = h.n;
  hb_zeros(&h, 60);
  {
    char want[160];
    snprintf(want, sizeof want, "tensor 'blk.3.attn_q.weight': data ends at byte %zu beyond file size %zu",
             ds + 64, ds + 60);
    EXPECT_BAD(&h, -EINVAL, want);
  }
  /* huge offset */
  hb_hdr(&h, 3, 1, 0);
  hb_tensor(&h, "a", SLM_TYPE_F32, 8, 1, UINT64_MAX - 31);
  hb_pad(&h, 32);
  hb_zeros(&h, 64);
  EXPECT_BAD(&h, -EINVAL, "beyond file size");
  /* unknown type ids: -ENOTSUP naming the id */
  hb_hdr(&h, 3, 1, 0);
  hb_tensor(&h, "a", 4, 32, 1, 0);   /* removed Q4_2 */
  hb_pad(&h, 32);
  hb_zeros(&h, 64);
  EXPECT_BAD(&h, -ENOTSUP, "tensor 'a': unknown tensor type id 4");
  hb_hdr(&h, 3, 1, 0);
  hb_tensor(&h, "a", 0xffffffffu, 32, 1, 0);
  hb_pad(&h, 32);
  hb_zeros(&h, 64);
  EXPECT_BAD(&h, -ENOTSUP, "unknown tensor type id 4294967295");
  /* a known type the engine cannot compute with is accepted by the reader */
  hb_hdr(&h, 3, 1, 0);
  hb_tensor(&h, "a", SLM_TYPE_IQ4_NL, 32, 1, 0);
  hb_pad(&h, 32);
  hb_zeros(&h, 32);
  {
    struct slm_gguf_file *f = NULL;
    char err[256];
    void *k;
    CHECK_EQ_INT(open_copy(h.b, h.n, &f, err, sizeof err, &k), 0);
    if (f) CHECK_EQ_U64(slm_gguf_tensor_at(f, 0)->nbytes, 18);
    slm_gguf_close(f);
    free(k);
  }
  /* row length not a multiple of the block */
  hb_hdr(&h, 3, 1, 0);
  hb_tensor(&h, "a", SLM_TYPE_Q4_K, 128, 1, 0);
  hb_pad(&h, 32);
  hb_zeros(&h, 160);
  EXPECT_BAD(&h, -EINVAL, "row length 128 is not a multiple of Q4_K's block of 256");
  /* dims */
  hb_hdr(&h, 3, 1, 0);
  hb_str(&h, "a");
  hb_u32(&h, 0);
  hb_u32(&h, 0);
  hb_u64(&h, 0);
  hb_zeros(&h, 64);
  EXPECT_BAD(&h, -EINVAL, "n_dims 0 not in 1..4");
  hb_hdr(&h, 3, 1, 0);
  hb_str(&h, "a");
  hb_u32(&h, 5);
  hb_zeros(&h, 64);
  EXPECT_BAD(&h, -EINVAL, "n_dims 5 not in 1..4");
  hb_hdr(&h, 3, 1, 0);
  hb_tensor(&h, "a", SLM_TYPE_F32, 8, 0, 0);
  hb_pad(&h, 32);
  hb_zeros(&h, 64);
  EXPECT_BAD(&h, -EINVAL, "ne[1] = 0");
  hb_hdr(&h, 3, 1, 0);
  hb_tensor(&h, "a", SLM_TYPE_F32, 8, 1ull << 63, 0);
  hb_pad(&h, 32);
  hb_zeros(&h, 64);
  EXPECT_BAD(&h, -EINVAL, "ne[1] = 9223372036854775808");
  hb_hdr(&h, 3, 1, 0);   /* element count overflows */
  hb_str(&h, "a");
  hb_u32(&h, 3);
  hb_u64(&h, 1ull << 31);
  hb_u64(&h, 1ull << 31);
  hb_u64(&h, 1ull << 31);
  hb_u32(&h, SLM_TYPE_F32);
  hb_u64(&h, 0);
  hb_pad(&h, 32);
  hb_zeros(&h, 64);
  EXPECT_BAD(&h, -EINVAL, "more than INT64_MAX elements");
  hb_hdr(&h, 3, 1, 0);   /* elements fit, bytes do not */
  hb_tensor(&h, "a", SLM_TYPE_F32, 1ull << 31, 1ull << 31, 0);
  hb_pad(&h, 32);
  hb_zeros(&h, 64);
  EXPECT_BAD(&h, -EINVAL, "byte size overflows");
  hb_hdr(&h, 3, 1, 0);
  hb_tensor(&h, "a", SLM_TYPE_F32, 1ull << 31, 1ull << 20, 0);
  hb_pad(&h, 32);
  hb_zeros(&h, 64);
  EXPECT_BAD(&h, -EINVAL, "data ends at byte 9007199254741");
  hb_hdr(&h, 3, 1, 0);
  hb_tensor(&h, "a", SLM_TYPE_F64, 1ull << 61, 2, 0);
  hb_pad(&h, 32);
  hb_zeros(&h, 64);
  EXPECT_BAD(&h, -EINVAL, "byte size overflows");
  /* names */
  hb_hdr(&h, 3, 2, 0);
  hb_tensor(&h, "a", SLM_TYPE_F32, 8, 1, 0);
  hb_tensor(&h, "a", SLM_TYPE_F32, 8, 1, 32);
  hb_pad(&h, 32);
  hb_zeros(&h, 64);
  EXPECT_BAD(&h, -EINVAL, "duplicate tensor name 'a'");
  hb_hdr(&h, 3, 1, 0);
  hb_tensor(&h, "", SLM_TYPE_F32, 8, 1, 0);
  hb_pad(&h, 32);
  hb_zeros(&h, 64);
  EXPECT_BAD(&h, -EINVAL, "empty name");
  hb_hdr(&h, 3, 1, 0);
  hb_u64(&h, 5000);
  hb_zeros(&h, 5100);
  EXPECT_BAD(&h, -EINVAL, "length 5000 exceeds the limit 1024");
  /* header ends, no room for the data section */
  hb_hdr(&h, 3, 1, 0);
  hb_tensor(&h, "a", SLM_TYPE_F32, 8, 1, 0);
  EXPECT_BAD(&h, -EINVAL, "data section would start at byte");
  /* alignment honoured for tensors */
  hb_hdr(&h, 3, 1, 1);
  hb_kv_u32(&h, "general.alignment", 64);
  hb_tensor(&h, "a", SLM_TYPE_F32, 8, 1, 32);
  hb_pad(&h, 64);
  hb_zeros(&h, 128);
  EXPECT_BAD(&h, -EINVAL, "offset 32 is not a multiple of the alignment 64");
}

/* ---------------------------------------------------------------- corpus writer */

static int write_file(const char *dir, const char *name, const void *p, size_t n) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *fp = fopen(path, "wb");
  if (!fp) return -1;
  fwrite(p, 1, n, fp);
  fclose(fp);
  return 0;
}

/* Seeds for the fuzzer: small valid files covering every value type and several tensor types,
 * plus a few near-misses. */
static int write_corpus(const char *dir) {
  static uint8_t tdata[1024];
  char err[256];
  void *buf;
  size_t len;
  struct slm_gguf_writer *w = build_all_types(tdata, sizeof tdata);
  if (slm_gguf_writer_write_mem(w, &buf, &len, err, sizeof err)) return 1;
  write_file(dir, "all-types.bin", buf, len);
  write_file(dir, "all-types-truncated.bin", buf, len - 7);
  free(buf);
  slm_gguf_writer_free(w);

  /* every tensor type at its smallest row */
  w = slm_gguf_writer_new();
  slm_gguf_w_str(w, "general.architecture", "llama");
  for (int t = 0; t < SLM_TYPE_COUNT; t++) {
    if (!slm_type_infos[t].name) continue;
    char name[32];
    snprintf(name, sizeof name, "t%d.%s", t, slm_type_infos[t].name);
    int64_t ne[] = { slm_type_infos[t].blck, 1 };
    slm_gguf_w_tensor(w, name, (enum slm_type)t, 2, ne, tdata);
  }
  if (slm_gguf_writer_write_mem(w, &buf, &len, err, sizeof err)) return 1;
  write_file(dir, "every-tensor-type.bin", buf, len);
  free(buf);
  slm_gguf_writer_free(w);

  /* a model-like header: the kvs of stories260K (vocab of 512) and its first tensors */
  struct slm_gguf_file *f = NULL;
  if (slm_gguf_open(check_shared_path("models/stories260K.gguf"), &f, err, sizeof err)) return 1;
  w = slm_gguf_writer_new();
  slm_gguf_w_u32(w, "general.alignment", 64);
  for (uint64_t i = 0; i < slm_gguf_n_kv(f); i++) slm_gguf_w_copy_kv(w, f, slm_gguf_kv_at(f, i));
  int64_t ne[] = { 8, 2 };
  slm_gguf_w_tensor(w, "output_norm.weight", SLM_TYPE_F32, 1, ne, tdata);
  slm_gguf_w_tensor(w, "blk.0.attn_q.weight", SLM_TYPE_F16, 2, ne, tdata);
  if (slm_gguf_writer_write_mem(w, &buf, &len, err, sizeof err)) return 1;
  write_file(dir, "stories-header.bin", buf, len);
  free(buf);
  slm_gguf_writer_free(w);
  slm_gguf_close(f);

  struct hb h;
  hb_hdr(&h, 2, 0, 0);
  write_file(dir, "empty-v2.bin", h.b, h.n);
  hb_hdr(&h, 3, 2, 1);
  hb_kv_u32(&h, "general.alignment", 32);
  hb_tensor(&h, "a", SLM_TYPE_Q8_0, 32, 1, 0);
  hb_tensor(&h, "b", SLM_TYPE_Q4_0, 32, 2, 64);
  hb_pad(&h, 32);
  hb_zeros(&h, 100);
  write_file(dir, "two-tensors.bin", h.b, h.n);
  hb_hdr(&h, 3, 0, 1);
  hb_str(&h, "k");
  hb_u32(&h, GGUF_VT_ARRAY);
  hb_u32(&h, GGUF_VT_ARRAY);
  hb_u64(&h, 0);
  write_file(dir, "nested-array.bin", h.b, h.n);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "--write-corpus")) return write_corpus(argv[2]);
  test_known_files();
  test_round_trip();
  test_many_names();
  test_copy_identical("models/tiny-llama-F32.gguf");
  test_copy_identical("models/tiny-qwen3-Q4_K_M.gguf");
  test_copy_identical("models/tiny-qwen2-Q8_0.gguf");
  test_truncations();
  test_hand_built();
  return check_done();
}
