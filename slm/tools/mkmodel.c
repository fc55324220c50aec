/*
 * mkmodel.c: `tiergate slm mkmodel --shape NAME --type TYPE -o FILE [--seed N]`: a GGUF with random
 * weights at the real shapes and metadata keys of SmolLM2-135M, Qwen2.5-0.5B, Qwen3-0.6B and
 * Llama-3.2-1B, and a synthetic byte-level BPE vocabulary of the real size, loadable by llama.cpp
 * and by this engine. Used for benchmarks (speed does not depend on weight values) and tests.
 *
 * DESIGN
 * - Weights: every tensor has its own generator seeded from (--seed, tensor name), so a tensor's
 *   values do not depend on which other tensors exist (--layers N gives a prefix of the same model).
 *   Values are approximately normal (Irwin-Hall sum of 4 uniforms: cheap, no extreme outliers),
 *   scaled so activations stay near unit size through all layers: input projections std
 *   1/sqrt(n_in), output projections (attn_output, ffn_down) another 1/sqrt(2 n_layer) smaller,
 *   embeddings std 3/sqrt(n_embd) (logits of the tied output then have std ~3), norm weights
 *   1 +- 0.1, qwen2 biases std 0.1. Llama 3.2's rope_freqs are computed from its rope scaling
 *   exactly as llama.cpp's converter does.
 * - Types: F32 values are generated row by row and converted/quantized with the reference
 *   quantizers, choosing each tensor's type with llama-quantize's rules (qmix.c). So
 *   `mkmodel --type f32` followed by `quantize ... q4_k_m` gives the same file as
 *   `mkmodel --type q4_k_m` (general.quantization_version and general.file_type come last, where
 *   llama-quantize puts them).
 * - Vocabulary: the 256 byte tokens of GPT-2's byte-to-unicode map, pseudo-random merged tokens
 *   (each with the merge that makes it, so merges are consistent: "A B" -> token "AB"), and the
 *   real special tokens at their real ids. The vocabulary uses a fixed seed: every file of a
 *   shape has the same one.
 * - Tensors are written in llama.cpp's loader order, one at a time (peak memory: one tensor).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slm/gguf.h"
#include "slm/kernels/kernels.h"
#include "slm/tools/tools.h"

static const char MKMODEL_USAGE[] =
  "usage: tiergate slm mkmodel --shape SHAPE --type TYPE -o FILE [--seed N] [--layers N]\n"
  "\n"
  "Writes a GGUF with random weights at a real model's shape and metadata, and a synthetic\n"
  "byte-level BPE vocabulary of the real size (for benchmarks and tests; loadable by llama.cpp).\n"
  "\n"
  "  --shape SHAPE   smollm2-135m | qwen2.5-0.5b | qwen3-0.6b | llama3.2-1b\n"
  "  --type TYPE     f16 | q8_0 | q4_0 | q4_k_m, or any type `slm quantize` takes (f32, bf16,\n"
  "                  q4_1, q5_0, q5_1, q4_k_s, q5_k_s, q5_k_m, q6_k); tensors get llama-quantize's\n"
  "                  per-tensor choices for that type\n"
  "  -o FILE         output file\n"
  "  --seed N        weight seed (default 1); the same seed gives the same file\n"
  "  --layers N      fewer layers than the real model (for small test files)\n"
  "  --vocab-only    write the metadata and vocabulary only (no tensors), like llama.cpp's\n"
  "                  vocab files\n"
  "  --dry-run       print each tensor's shape and type and the total size; write nothing\n"
  "  -q, --quiet     no summary line\n"
  "  -h, --help      this text\n";

/* ---------------------------------------------------------------- shapes */

enum arch { ARCH_LLAMA, ARCH_QWEN2, ARCH_QWEN3 };
enum vocab_layout { VOCAB_SMOLLM2, VOCAB_QWEN, VOCAB_LLAMA3 };

struct shape {
  const char *name, *hf_name;
  enum arch arch;
  const char *arch_name;
  int n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx;
  float rope_theta, rms_eps;
  bool write_head_dim;      /* attention.key_length/value_length (config has head_dim) */
  bool llama_keys;          /* vocab_size and rope.dimension_count (llama converter) */
  bool llama3_rope;         /* rope_freqs tensor: factor 32, low 1, high 4, original 8192 */
  enum vocab_layout vocab;
  const char *pre;
  int bos, eos, eot, unk, pad;   /* -1: not written */
  bool add_bos;
};

static const struct shape shapes[] = {
  { "smollm2-135m", "SmolLM2-135M", ARCH_LLAMA, "llama", 49152, 576, 30, 9, 3, 64, 1536, 8192,
    100000.0f, 1e-5f, false, true, false, VOCAB_SMOLLM2, "smollm", 1, 2, -1, 0, 2, false },
  { "qwen2.5-0.5b", "Qwen2.5-0.5B", ARCH_QWEN2, "qwen2", 151936, 896, 24, 14, 2, 64, 4864, 32768,
    1000000.0f, 1e-6f, false, false, false, VOCAB_QWEN, "qwen2", 151643, 151645, -1, -1, 151643, false },
  { "qwen3-0.6b", "Qwen3-0.6B", ARCH_QWEN3, "qwen3", 151936, 1024, 28, 16, 8, 128, 3072, 40960,
    1000000.0f, 1e-6f, true, false, false, VOCAB_QWEN, "qwen2", 151643, 151645, -1, -1, 151643, false },
  { "llama3.2-1b", "Llama-3.2-1B", ARCH_LLAMA, "llama", 128256, 2048, 16, 32, 8, 64, 8192, 131072,
    500000.0f, 1e-5f, true, true, true, VOCAB_LLAMA3, "llama-bpe", 128000, 128009, -1, -1, -1, true },
};

/* Short chat templates in the families' formats (recognised by llama.cpp and slm/chat.c). */
static const char CHATML_TEMPLATE[] =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
  "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
  "{% endif %}";
static const char LLAMA3_TEMPLATE[] =
  "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
  "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
  "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

/* ---------------------------------------------------------------- random numbers */

static uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

struct rng { uint64_t s[4]; };

static void rng_seed(struct rng *r, uint64_t seed, const char *name) {
  uint64_t h = 1469598103934665603ull;
  for (const char *p = name; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
  uint64_t x = seed * 0x9e3779b97f4a7c15ull ^ h;
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(struct rng *r) {   /* xoshiro256** */
  uint64_t *s = r->s;
  uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return res;
}

/* Approximately N(0, 1): the sum of 4 uniforms in [-0.5, 0.5) has variance 1/3. */
static float rng_normal(struct rng *r) {
  uint64_t a = rng_next(r), b = rng_next(r);
  float s = (float)(uint32_t)a + (float)(uint32_t)(a >> 32) + (float)(uint32_t)b + (float)(uint32_t)(b >> 32);
  return (s * (1.0f / 4294967296.0f) - 2.0f) * 1.7320508f;
}

static float rng_uniform(struct rng *r) {   /* [0, 1) */
  return (float)(rng_next(r) >> 40) * (1.0f / 16777216.0f);
}

/* ---------------------------------------------------------------- vocabulary */

struct vocab {
  int n;
  char **tok;
  int32_t *type;    /* 1 normal, 3 control, 4 user-defined, 5 unused */
  char **merges;
  int n_merges;
  char *arena;
  size_t arena_n, arena_cap;
};

static char *arena_dup(struct vocab *v, const char *s, size_t n) {
  if (v->arena_n + n + 1 > v->arena_cap) return NULL;
  char *p = v->arena + v->arena_n;
  memcpy(p, s, n);
  p[n] = 0;
  v->arena_n += n + 1;
  return p;
}

/* GPT-2's byte-to-unicode map: printable bytes stand for themselves, the other 68 map to U+0100+. */
static void byte_char(int b, char out[3]) {
  static int map[256];
  static int done;
  if (!done) {
    int n = 0;
    for (int i = 0; i < 256; i++) {
      bool keep = (i >= 33 && i <= 126) || (i >= 161 && i <= 172) || (i >= 174 && i <= 255);
      map[i] = keep ? i : 256 + n++;
    }
    done = 1;
  }
  int cp = map[b];
  if (cp < 0x80) {
    out[0] = (char)cp;
    out[1] = 0;
  } else {
    out[0] = (char)(0xc0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3f));
    out[2] = 0;
  }
}

/* The order GPT-2 gives the byte tokens: printable ranges first, then the remapped bytes. */
static void byte_order(int order[256]) {
  int n = 0;
  for (int i = 33; i <= 126; i++) order[n++] = i;
  for (int i = 161; i <= 172; i++) order[n++] = i;
  for (int i = 174; i <= 255; i++) order[n++] = i;
  for (int i = 0; i < 256; i++)
    if (!((i >= 33 && i <= 126) || (i >= 161 && i <= 172) || (i >= 174 && i <= 255))) order[n++] = i;
}

/* string set for uniqueness */
struct sset {
  const char **slot;
  size_t mask;
};

static uint64_t shash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static bool sset_add(struct sset *st, const char *s) {   /* false if present */
  for (size_t i = shash(s) & st->mask;; i = (i + 1) & st->mask) {
    if (!st->slot[i]) {
      st->slot[i] = s;
      return true;
    }
    if (!strcmp(st->slot[i], s)) return false;
  }
}

static void vocab_free(struct vocab *v) {
  free(v->tok);
  free(v->type);
  free(v->merges);
  free(v->arena);
}

/* Special tokens of each layout: (id, text, type). */
static int set_specials(struct vocab *v, enum vocab_layout lay) {
  char buf[64];
#define SPECIAL(id, txt, ty)                                        \
  do {                                                              \
    v->tok[id] = arena_dup(v, txt, strlen(txt));                    \
    v->type[id] = ty;                                               \
  } while (0)
  if (lay == VOCAB_SMOLLM2) {
    static const char *const sm[] = { "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>",
      "<reponame>", "<file_sep>", "<filename>", "<gh_stars>", "<issue_start>", "<issue_comment>",
      "<issue_closed>", "<jupyter_start>", "<jupyter_text>", "<jupyter_code>", "<jupyter_output>",
      "<jupyter_script>", "<empty_output>" };
    for (int i = 0; i < 17; i++) SPECIAL(i, sm[i], 3);
    return 17;   /* byte tokens follow */
  }
  if (lay == VOCAB_QWEN) {
    static const char *const qc[] = { "<|endoftext|>", "<|im_start|>", "<|im_end|>",
      "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>",
      "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>",
      "<|video_pad|>" };
    static const char *const qu[] = { "<tool_call>", "</tool_call>", "<|fim_prefix|>",
      "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
      "<tool_response>", "</tool_response>", "<think>", "</think>" };
    for (int i = 0; i < 14; i++) SPECIAL(151643 + i, qc[i], 3);
    for (int i = 0; i < 12; i++) SPECIAL(151657 + i, qu[i], 4);
    for (int id = 151669; id < v->n; id++) {
      snprintf(buf, sizeof buf, "[PAD%d]", id);
      SPECIAL(id, buf, 5);
    }
    return 0;
  }
  /* Llama 3 */
  int reserved = 0;
  for (int id = 128000; id < v->n; id++) {
    const char *name = NULL;
    switch (id - 128000) {
      case 0: name = "<|begin_of_text|>"; break;
      case 1: name = "<|end_of_text|>"; break;
      case 6: name = "<|start_header_id|>"; break;
      case 7: name = "<|end_header_id|>"; break;
      case 9: name = "<|eot_id|>"; break;
      default: break;
    }
    if (!name) {
      snprintf(buf, sizeof buf, "<|reserved_special_token_%d|>", reserved++);
      name = buf;
    }
    SPECIAL(id, name, 3);
  }
  return 0;
#undef SPECIAL
}

static int vocab_build(struct vocab *v, const struct shape *sh, char *err, size_t errlen) {
  memset(v, 0, sizeof *v);
  v->n = sh->n_vocab;
  v->tok = calloc((size_t)v->n, sizeof *v->tok);
  v->type = calloc((size_t)v->n, sizeof *v->type);
  v->merges = calloc((size_t)v->n, sizeof *v->merges);
  v->arena_cap = (size_t)v->n * 64;   /* tokens <= 24 bytes, merges <= 25, specials short */
  v->arena = malloc(v->arena_cap);
  struct sset st = { 0 };
  size_t cap = 1;
  while (cap < (size_t)v->n * 2) cap <<= 1;
  st.slot = calloc(cap, sizeof *st.slot);
  st.mask = cap - 1;
  if (!v->tok || !v->type || !v->merges || !v->arena || !st.slot) {
    free(st.slot);
    vocab_free(v);
    snprintf(err, errlen, "out of memory building the vocabulary");
    return -ENOMEM;
  }
  int first = set_specials(v, sh->vocab);
  for (int i = 0; i < v->n; i++)
    if (v->tok[i]) sset_add(&st, v->tok[i]);

  /* the 256 byte tokens */
  int order[256];
  byte_order(order);
  int id = first;
  for (int i = 0; i < 256; i++, id++) {
    char c[3];
    byte_char(order[i], c);
    v->tok[id] = arena_dup(v, c, strlen(c));
    v->type[id] = 1;
    sset_add(&st, v->tok[id]);
  }
  int base_first = first;
  /* Weights for the right-hand pieces: lowercase letters and the space marker dominate, as in text. */
  static const char common[] = "etaoinshrdlucmfwypvbgkjqxz";
  struct rng r;
  rng_seed(&r, 0x5eed, "vocab");
  int merged_first = id;
  char buf[64];
  for (; id < v->n && !v->tok[id];) {
    const char *a, *b;
    int cur = id;
    /* left: any token made so far (bytes or merged) */
    uint64_t x = rng_next(&r);
    int li = base_first + (int)(x % (uint64_t)(cur - base_first));
    a = v->tok[li];
    /* right: usually one common character or the space marker, else an early merged token */
    float u = rng_uniform(&r);
    char one[4];
    if (u < 0.55f) {
      one[0] = common[(x >> 32) % 26];
      one[1] = 0;
      b = one;
    } else if (u < 0.7f) {
      b = "\xc4\xa0";   /* U+0120, the byte-level space */
    } else if (u < 0.8f || cur == merged_first) {
      b = v->tok[base_first + (int)((x >> 40) % 256)];
    } else {
      int span = cur - merged_first < 4096 ? cur - merged_first : 4096;
      b = v->tok[merged_first + (int)((x >> 20) % (uint64_t)span)];
    }
    size_t la = strlen(a), lb = strlen(b);
    if (la + lb > 24) continue;
    memcpy(buf, a, la);
    memcpy(buf + la, b, lb + 1);
    /* a token may not start with a right piece that is a lone continuation: both a and b are whole
     * byte-level characters, so buf is valid UTF-8 */
    char *t = arena_dup(v, buf, la + lb);
    if (!t) break;
    if (!sset_add(&st, t)) {
      v->arena_n -= la + lb + 1;   /* drop the duplicate */
      continue;
    }
    v->tok[id] = t;
    v->type[id] = 1;
    char mbuf[64];
    snprintf(mbuf, sizeof mbuf, "%s %s", a, b);
    v->merges[v->n_merges++] = arena_dup(v, mbuf, strlen(mbuf));
    id++;
  }
  free(st.slot);
  for (int i = 0; i < v->n; i++) {
    if (!v->tok[i] || (i >= merged_first && i < id && !v->merges[i - merged_first])) {
      vocab_free(v);
      snprintf(err, errlen, "internal: vocabulary slot %d unfilled", i);
      return -EINVAL;
    }
  }
  return 0;
}

/* ---------------------------------------------------------------- tensors */

enum init { INIT_NORMAL, INIT_NORM, INIT_BIAS, INIT_ROPE_FREQS };

struct mtensor {
  char name[64];
  uint32_t n_dims;
  int64_t ne[2];
  enum slm_type type;
  enum init init;
  float std;
  const struct shape *sh;
  uint64_t seed;
};

/* Llama 3's rope_freqs, as llama.cpp's converter computes them (conversion/llama.py). */
static void llama3_rope_factors(const struct shape *sh, float *out) {
  const double factor = 32.0, low_freq_factor = 1.0, high_freq_factor = 4.0, old_ctx = 8192.0;
  const double low_wavelen = old_ctx / low_freq_factor, high_wavelen = old_ctx / high_freq_factor;
  int dim = sh->head_dim;
  for (int i = 0; i < dim / 2; i++) {
    float freq = (float)(1.0 / pow((double)sh->rope_theta, (double)(float)(2 * i) / dim));
    double wavelen = 2 * M_PI / freq;
    double f;
    if (wavelen < high_wavelen) f = 1;
    else if (wavelen > low_wavelen) f = factor;
    else {
      double smooth = (old_ctx / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
      f = 1 / ((1 - smooth) / factor + smooth);
    }
    out[i] = (float)f;
  }
}

static int fill_tensor(void *ctx, void *dst, size_t nbytes, char *err, size_t errlen) {
  const struct mtensor *t = ctx;
  int64_t n = t->ne[0], rows = t->n_dims > 1 ? t->ne[1] : 1;
  size_t rs = slm_row_size(t->type, n);
  if (rs * (size_t)rows != nbytes) {
    snprintf(err, errlen, "internal size mismatch");
    return -EINVAL;
  }
  float *row = malloc((size_t)n * sizeof(float));
  if (!row) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  struct rng r;
  rng_seed(&r, t->seed, t->name);
  for (int64_t i = 0; i < rows; i++) {
    switch (t->init) {
      case INIT_NORMAL:
      case INIT_BIAS:
        for (int64_t j = 0; j < n; j++) row[j] = t->std * rng_normal(&r);
        break;
      case INIT_NORM:
        for (int64_t j = 0; j < n; j++) row[j] = 1.0f + 0.2f * (rng_uniform(&r) - 0.5f);
        break;
      case INIT_ROPE_FREQS:
        llama3_rope_factors(t->sh, row);
        break;
    }
    slm_quantize_row(t->type, row, (uint8_t *)dst + (size_t)i * rs, n);
  }
  free(row);
  return 0;
}

static int cmp_mtensor(const void *a, const void *b) {
  return slm_qmix_cmp_names(((const struct mtensor *)a)->name, ((const struct mtensor *)b)->name);
}

/* The tensor list of SH with N_LAYER layers, in llama.cpp's loader order. Returns the count. */
static int make_tensors(const struct shape *sh, int n_layer, struct mtensor *ts, uint64_t seed) {
  int n = 0;
  const int64_t e = sh->n_embd, q = (int64_t)sh->n_head * sh->head_dim,
                kv = (int64_t)sh->n_head_kv * sh->head_dim, ff = sh->n_ff;
  const float out_scale = 1.0f / sqrtf(2.0f * (float)sh->n_layer);
#define T2(nm, a, b, in, sd)                                                          \
  ts[n++] = (struct mtensor){ .n_dims = 2, .ne = { a, b }, .init = in, .std = sd };   \
  snprintf(ts[n - 1].name, sizeof ts[0].name, "%s", nm)
#define T1(nm, a, in, sd)                                                             \
  ts[n++] = (struct mtensor){ .n_dims = 1, .ne = { a, 1 }, .init = in, .std = sd };   \
  snprintf(ts[n - 1].name, sizeof ts[0].name, "%s", nm)
  T2("token_embd.weight", e, sh->n_vocab, INIT_NORMAL, 3.0f / sqrtf((float)e));
  T1("output_norm.weight", e, INIT_NORM, 0);
  if (sh->llama3_rope) {
    T1("rope_freqs.weight", sh->head_dim / 2, INIT_ROPE_FREQS, 0);
  }
  char nm[64];
  for (int l = 0; l < n_layer; l++) {
#define NM(s) (snprintf(nm, sizeof nm, "blk.%d.%s", l, s), nm)
    T1(NM("attn_norm.weight"), e, INIT_NORM, 0);
    T2(NM("attn_q.weight"), e, q, INIT_NORMAL, 1.0f / sqrtf((float)e));
    T2(NM("attn_k.weight"), e, kv, INIT_NORMAL, 1.0f / sqrtf((float)e));
    T2(NM("attn_v.weight"), e, kv, INIT_NORMAL, 1.0f / sqrtf((float)e));
    T2(NM("attn_output.weight"), q, e, INIT_NORMAL, out_scale / sqrtf((float)q));
    if (sh->arch == ARCH_QWEN2) {
      T1(NM("attn_q.bias"), q, INIT_BIAS, 0.1f);
      T1(NM("attn_k.bias"), kv, INIT_BIAS, 0.1f);
      T1(NM("attn_v.bias"), kv, INIT_BIAS, 0.1f);
    }
    if (sh->arch == ARCH_QWEN3) {
      T1(NM("attn_q_norm.weight"), sh->head_dim, INIT_NORM, 0);
      T1(NM("attn_k_norm.weight"), sh->head_dim, INIT_NORM, 0);
    }
    T1(NM("ffn_norm.weight"), e, INIT_NORM, 0);
    T2(NM("ffn_gate.weight"), e, ff, INIT_NORMAL, 1.0f / sqrtf((float)e));
    T2(NM("ffn_up.weight"), e, ff, INIT_NORMAL, 1.0f / sqrtf((float)e));
    T2(NM("ffn_down.weight"), ff, e, INIT_NORMAL, out_scale / sqrtf((float)ff));
#undef NM
  }
#undef T1
#undef T2
  for (int i = 0; i < n; i++) {
    ts[i].sh = sh;
    ts[i].seed = seed;
    ts[i].type = SLM_TYPE_F32;
  }
  qsort(ts, (size_t)n, sizeof *ts, cmp_mtensor);
  return n;
}

/* ---------------------------------------------------------------- the file */

enum mk_mode { MK_FULL, MK_VOCAB_ONLY, MK_DRY_RUN };

static int mkmodel(const struct shape *sh, const struct slm_ftype_info *ft, int n_layer,
                   uint64_t seed, const char *path, enum mk_mode mode, bool verbose, char *err,
                   size_t errlen) {
  struct vocab v;
  int rc = vocab_build(&v, sh, err, errlen);
  if (rc) return rc;
  int max_t = 3 + n_layer * 16;
  struct mtensor *ts = calloc((size_t)max_t, sizeof *ts);
  struct slm_gguf_writer *w = slm_gguf_writer_new();
  if (!ts || !w) {
    free(ts);
    slm_gguf_writer_free(w);
    vocab_free(&v);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  int nt = make_tensors(sh, n_layer, ts, seed);

  char key[128], name[160];
  const char *a = sh->arch_name;
#define K(s) (snprintf(key, sizeof key, "%s.%s", a, s), key)
  slm_gguf_w_str(w, "general.architecture", a);
  slm_gguf_w_str(w, "general.type", "model");
  snprintf(name, sizeof name, "%s (random weights, tiergate mkmodel, seed %" PRIu64 ")", sh->hf_name, seed);
  slm_gguf_w_str(w, "general.name", name);
  slm_gguf_w_u32(w, K("block_count"), (uint32_t)n_layer);
  slm_gguf_w_u32(w, K("context_length"), (uint32_t)sh->n_ctx);
  slm_gguf_w_u32(w, K("embedding_length"), (uint32_t)sh->n_embd);
  slm_gguf_w_u32(w, K("feed_forward_length"), (uint32_t)sh->n_ff);
  slm_gguf_w_u32(w, K("attention.head_count"), (uint32_t)sh->n_head);
  slm_gguf_w_u32(w, K("attention.head_count_kv"), (uint32_t)sh->n_head_kv);
  slm_gguf_w_f32(w, K("rope.freq_base"), sh->rope_theta);
  slm_gguf_w_f32(w, K("attention.layer_norm_rms_epsilon"), sh->rms_eps);
  if (sh->write_head_dim) {
    slm_gguf_w_u32(w, K("attention.key_length"), (uint32_t)sh->head_dim);
    slm_gguf_w_u32(w, K("attention.value_length"), (uint32_t)sh->head_dim);
  }
  if (sh->llama_keys) {
    slm_gguf_w_u32(w, K("vocab_size"), (uint32_t)sh->n_vocab);
    slm_gguf_w_u32(w, K("rope.dimension_count"), (uint32_t)sh->head_dim);
  }
#undef K
  slm_gguf_w_str(w, "tokenizer.ggml.model", "gpt2");
  slm_gguf_w_str(w, "tokenizer.ggml.pre", sh->pre);
  slm_gguf_w_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v.tok, (size_t)v.n);
  slm_gguf_w_arr_i32(w, "tokenizer.ggml.token_type", v.type, (size_t)v.n);
  slm_gguf_w_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v.merges, (size_t)v.n_merges);
  if (sh->bos >= 0) slm_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)sh->bos);
  if (sh->eos >= 0) slm_gguf_w_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)sh->eos);
  if (sh->eot >= 0) slm_gguf_w_u32(w, "tokenizer.ggml.eot_token_id", (uint32_t)sh->eot);
  if (sh->unk >= 0) slm_gguf_w_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)sh->unk);
  if (sh->pad >= 0) slm_gguf_w_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)sh->pad);
  slm_gguf_w_bool(w, "tokenizer.ggml.add_bos_token", sh->add_bos);
  slm_gguf_w_str(w, "tokenizer.chat_template", sh->vocab == VOCAB_LLAMA3 ? LLAMA3_TEMPLATE : CHATML_TEMPLATE);
  slm_gguf_w_u32(w, "general.quantization_version", 2);
  slm_gguf_w_u32(w, "general.file_type", ft->ftype);

  int n_attn_v = 0;
  for (int i = 0; i < nt; i++) n_attn_v += slm_qmix_counts_as_attn_v(ts[i].name);
  struct slm_qmix q;
  slm_qmix_init(&q, ft, false, n_layer, true, n_attn_v);
  uint64_t bytes = 0;
  for (int i = 0; i < nt && mode != MK_VOCAB_ONLY; i++) {
    ts[i].type = slm_qmix_choose(&q, ts[i].name, ts[i].n_dims, ts[i].ne[0], SLM_TYPE_F32);
    slm_gguf_w_tensor_fill(w, ts[i].name, ts[i].type, ts[i].n_dims, ts[i].ne, fill_tensor, &ts[i]);
    uint64_t tb = slm_row_size(ts[i].type, ts[i].ne[0]) * (uint64_t)ts[i].ne[1];
    bytes += tb;
    if (mode == MK_DRY_RUN) {
      char shape[48];
      if (ts[i].n_dims == 1) snprintf(shape, sizeof shape, "[%" PRId64 "]", ts[i].ne[0]);
      else snprintf(shape, sizeof shape, "[%" PRId64 ", %" PRId64 "]", ts[i].ne[0], ts[i].ne[1]);
      printf("  %-28s %-16s %-5s %10.2f KiB\n", ts[i].name, shape, slm_type_name(ts[i].type), tb / 1024.0);
    }
  }
  if (mode == MK_VOCAB_ONLY) nt = 0;
  rc = mode == MK_DRY_RUN ? 0 : slm_gguf_writer_write(w, path, err, errlen);
  if (rc == 0 && (verbose || mode == MK_DRY_RUN))
    printf("%s: %s %s, %d layers, %d tensors, %.1f MiB of weights, vocab %d (%d merges)%s\n", path,
           sh->name, ft->name, n_layer, nt, bytes / 1048576.0, v.n, v.n_merges,
           mode == MK_DRY_RUN ? " (dry run: not written)" : "");
  slm_gguf_writer_free(w);
  free(ts);
  vocab_free(&v);
  return rc;
}

int slm_tool_mkmodel(int argc, char **argv) {
  struct slm_args a = slm_args_init("mkmodel", argc, argv);
  const char *shape = NULL, *type = NULL, *out = NULL, *arg;
  int64_t seed = 1, layers = 0;
  bool quiet = false;
  enum mk_mode mode = MK_FULL;
  while ((arg = slm_args_next(&a))) {
    if (slm_args_help(arg)) {
      fputs(MKMODEL_USAGE, stdout);
      return 0;
    } else if (slm_args_is(arg, NULL, "--shape")) {
      if (!(shape = slm_args_value(&a))) return 2;
    } else if (slm_args_is(arg, "-t", "--type")) {
      if (!(type = slm_args_value(&a))) return 2;
    } else if (slm_args_is(arg, "-o", "--output")) {
      if (!(out = slm_args_value(&a))) return 2;
    } else if (slm_args_is(arg, "-s", "--seed")) {
      if (slm_args_int(&a, 0, INT64_MAX, &seed)) return 2;
    } else if (slm_args_is(arg, NULL, "--layers")) {
      if (slm_args_int(&a, 1, 1000, &layers)) return 2;
    } else if (slm_args_is(arg, "-q", "--quiet")) {
      quiet = true;
    } else if (slm_args_is(arg, NULL, "--vocab-only")) {
      mode = MK_VOCAB_ONLY;
    } else if (slm_args_is(arg, NULL, "--dry-run")) {
      mode = MK_DRY_RUN;
    } else {
      return slm_args_unknown(&a, MKMODEL_USAGE);
    }
  }
  if (mode == MK_DRY_RUN && !out) out = "(dry run)";
  if (mode == MK_VOCAB_ONLY && !type) type = "f32";
  if (!shape || !type || !out)
    return slm_tool_usage_error("mkmodel", MKMODEL_USAGE, "--shape, --type and -o are required");
  const struct shape *sh = NULL;
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
    if (!strcmp(shape, shapes[i].name)) sh = &shapes[i];
  if (!sh) return slm_tool_usage_error("mkmodel", MKMODEL_USAGE, "unknown shape '%s'", shape);
  const struct slm_ftype_info *ft = slm_ftype_find(type);
  if (!ft) return slm_tool_usage_error("mkmodel", MKMODEL_USAGE, "unknown type '%s'", type);
  if (layers > sh->n_layer)
    return slm_tool_usage_error("mkmodel", MKMODEL_USAGE, "--layers %" PRId64 ": %s has %d", layers,
                                sh->name, sh->n_layer);
  char err[512];
  int rc = mkmodel(sh, ft, layers ? (int)layers : sh->n_layer, (uint64_t)seed, out, mode, !quiet,
                   err, sizeof err);
  if (rc) {
    slm_tool_errorf("mkmodel", "%s", err);
    return 1;
  }
  return 0;
}
