/*
 * vocab.c: the vocabulary of a GGUF file (tokenizer.ggml.*): loading and validation, the string
 * and merge tables the tokenizers look things up in, the end-of-generation set, token pieces and
 * detokenization. The tokenizers themselves are in tokenizer.c, tok_spm.c and tok_bpe.c; the
 * layout of struct slm_vocab is described in vocab_priv.h.
 *
 * What load follows from llama.cpp (src/llama-vocab.cpp, read for behaviour), so that the same
 * file gives the same ids and the same flags:
 *   - defaults by model: "llama" (SPM) bos 1, eos 2, unk 0, add_bos on, add_space_prefix on;
 *     "gpt2" (BPE) bos = eos = 11, no unk, add_bos off except for the llama3 pre-tokenizer family;
 *     then the file's keys override. A default id outside the vocabulary is dropped.
 *   - EOT/EOM found by text when the file does not name them ("<|eot_id|>", "<|im_end|>",
 *     "<|end|>", "<end_of_turn>", "<|endoftext|>", ...), and the EOG set built from the same list
 *     plus eos/eot/eom and the FIM pad/repo/sep tokens. Tokens that look like control tokens are
 *     made control tokens (so they are not printed unless asked).
 *   - the special tokens the partition step looks for: every control, user-defined and unknown
 *     token, longest text first.
 *   - Phi-3 files (general.name contains "phi-3"/"phi3") strip spaces to the right of their
 *     special tokens, as llama.cpp does.
 * Where llama.cpp only warns, load refuses when the file is plainly broken: a tokens array that
 * is not strings, scores/types arrays of another length, invalid UTF-8 or duplicate token texts,
 * a merge without a space, a bos/eos/eot/eom/unk id outside the vocabulary (the value 0xFFFFFFFF
 * or -1 means "unset" and keeps the default; pad/sep/mask ids outside the vocabulary are ignored,
 * as some real files carry them), add_bos_token/add_eos_token true without the id.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slm/internal.h"
#include "slm/vocab_priv.h"

#define VOCAB_MAX_TOKENS (1 << 24)          /* far above any real vocabulary (~256K) */
#define VOCAB_MAX_MERGES (1 << 24)
#define VOCAB_MAX_TOKEN_BYTES (1 << 16)
#define VOCAB_MAX_TEMPLATE_BYTES (1 << 20)

static int verr(char *err, size_t errlen, int code, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    int k = snprintf(err, errlen, "vocab: ");
    if (k < 0) k = 0;
    if ((size_t)k < errlen) vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
    va_end(ap);
  }
  return code;
}

/* ------------------------------------------------------------------ hashing */

uint32_t slm_vocab_hash(const void *p, size_t n) {
  /* A multiply-xorshift hash: token texts are short, so speed on 1..16 bytes is what counts. */
  const uint8_t *s = p;
  uint64_t h = 0x9E3779B97F4A7C15ull ^ ((uint64_t)n * 0xff51afd7ed558ccdull);
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, s, 8);
    h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
    s += 8;
    n -= 8;
  }
  uint64_t w = 0;
  for (size_t i = 0; i < n; i++) w |= (uint64_t)s[i] << (8 * i);
  h = (h ^ w) * 0x94d049bb133111ebull;
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 32;
  return (uint32_t)h;
}

int32_t slm_vocab_find_str(const struct slm_vocab *v, const char *p, size_t n) {
  uint32_t h = slm_vocab_hash(p, n);
  for (uint32_t i = h & v->hmask;; i = (i + 1) & v->hmask) {
    const struct vocab_hslot *s = &v->hslots[i];
    if (!s->id1) return -1;
    if (s->hash == h) {
      const struct vocab_tok *t = &v->strs[s->id1 - 1];
      if (t->len == n && memcmp(t->text, p, n) == 0) return (int32_t)(s->id1 - 1);
    }
  }
}

static uint64_t mix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ull;
  k ^= k >> 33;
  return k;
}

int32_t slm_vocab_merge(const struct slm_vocab *v, int32_t a, int32_t b, int32_t *result) {
  if (a < 0 || b < 0 || !v->mslots) return -1;
  uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
  for (uint64_t i = mix64(key) & v->mmask;; i = (i + 1) & v->mmask) {
    const struct vocab_mslot *s = &v->mslots[i];
    if (s->key == UINT64_MAX) return -1;
    if (s->key == key) {
      *result = s->result;
      return s->rank;
    }
  }
}

/* ------------------------------------------------------------------ building the string table */

struct vocab_chunk {
  struct vocab_chunk *next;
  size_t used, cap;
  char data[];
};

static char *chunk_copy(struct slm_vocab *v, const char *p, size_t n) {
  struct vocab_chunk *c = v->chunks;
  if (!c || c->cap - c->used < n) {
    size_t cap = n > 65536 ? n : 65536;
    c = malloc(sizeof *c + cap);
    if (!c) return NULL;
    c->next = v->chunks;
    c->used = 0;
    c->cap = cap;
    v->chunks = c;
  }
  char *d = c->data + c->used;
  if (n) memcpy(d, p, n);
  c->used += n;
  return d;
}

static int str_table_init(struct slm_vocab *v, uint32_t expect) {
  uint32_t cap = 1024;
  while (cap < 2u * expect) cap <<= 1;
  v->hslots = calloc(cap, sizeof *v->hslots);
  if (!v->hslots) return -ENOMEM;
  v->hmask = cap - 1;
  return 0;
}

static void str_table_put(struct slm_vocab *v, int32_t id) {
  const struct vocab_tok *t = &v->strs[id];
  uint32_t h = slm_vocab_hash(t->text, t->len);
  uint32_t i = h & v->hmask;
  while (v->hslots[i].id1) i = (i + 1) & v->hmask;
  v->hslots[i].id1 = (uint32_t)id + 1;
  v->hslots[i].hash = h;
}

/* Adds an extra (non-token) string; returns its id or -1 on out of memory. Grows the string
 * array and the hash table as needed (only during load). */
static int32_t add_extra_str(struct slm_vocab *v, const char *p, size_t n, int32_t *strs_cap) {
  if (v->n_str == *strs_cap) {
    int32_t cap = *strs_cap * 2;
    struct vocab_tok *s = realloc(v->strs, (size_t)cap * sizeof *s);
    if (!s) return -1;
    v->strs = s;
    *strs_cap = cap;
  }
  if ((uint32_t)(v->n_str + 1) * 2 > v->hmask + 1) {   /* keep the load factor under 1/2 */
    uint32_t cap = (v->hmask + 1) * 2;
    struct vocab_hslot *old = v->hslots;
    uint32_t old_cap = v->hmask + 1;
    v->hslots = calloc(cap, sizeof *v->hslots);
    if (!v->hslots) {
      v->hslots = old;
      return -1;
    }
    v->hmask = cap - 1;
    for (uint32_t i = 0; i < old_cap; i++) {
      if (!old[i].id1) continue;
      uint32_t j = old[i].hash & v->hmask;
      while (v->hslots[j].id1) j = (j + 1) & v->hmask;
      v->hslots[j] = old[i];
    }
    free(old);
  }
  const char *d = chunk_copy(v, p, n);
  if (!d) return -1;
  int32_t id = v->n_str++;
  v->strs[id] = (struct vocab_tok){.text = d, .len = (uint32_t)n, .score = 0, .attr = 0};
  str_table_put(v, id);
  return id;
}

/* ------------------------------------------------------------------ UTF-8 */

size_t slm_utf8_valid_len(const uint8_t *p, size_t n) {
  if (!n) return 0;
  uint8_t c = p[0];
  if (c < 0x80) return 1;
  if (c < 0xC2) return 0;                 /* continuation byte or overlong 2-byte lead */
  if (c < 0xE0) return (n >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
  if (c < 0xF0) {
    if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && p[1] < 0xA0) return 0;   /* overlong */
    if (c == 0xED && p[1] >= 0xA0) return 0;  /* UTF-16 surrogates */
    return 3;
  }
  if (c < 0xF5) {
    if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
      return 0;
    if (c == 0xF0 && p[1] < 0x90) return 0;   /* overlong */
    if (c == 0xF4 && p[1] >= 0x90) return 0;  /* above U+10FFFF */
    return 4;
  }
  return 0;
}

static bool utf8_valid(const char *s, size_t n) {
  const uint8_t *p = (const uint8_t *)s;
  while (n) {
    size_t k = slm_utf8_valid_len(p, n);
    if (!k) return false;
    p += k;
    n -= k;
  }
  return true;
}

static size_t utf8_put(char *d, uint32_t cp) {
  if (cp < 0x80) { d[0] = (char)cp; return 1; }
  if (cp < 0x800) {
    d[0] = (char)(0xC0 | (cp >> 6));
    d[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    d[0] = (char)(0xE0 | (cp >> 12));
    d[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    d[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  d[0] = (char)(0xF0 | (cp >> 18));
  d[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  d[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  d[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Decodes one valid UTF-8 sequence of length K at P. */
static uint32_t utf8_cp(const uint8_t *p, size_t k) {
  switch (k) {
    case 1: return p[0];
    case 2: return ((uint32_t)(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
    case 3: return ((uint32_t)(p[0] & 0x0F) << 12) | ((uint32_t)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
    default:
      return ((uint32_t)(p[0] & 0x07) << 18) | ((uint32_t)(p[1] & 0x3F) << 12) |
             ((uint32_t)(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
  }
}

/* GPT-2's bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the other 68 bytes
 * (controls, space, DEL, NBSP, soft hyphen, ...) map to U+0100.. in byte order. */
uint32_t slm_bpe_byte_cp(uint8_t b) {
  if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE)) return b;
  uint32_t n = 0;
  for (uint32_t c = 0; c < b; c++)
    if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE))) n++;
  return 256 + n;
}

/* ------------------------------------------------------------------ GGUF helpers */

static bool str_eq(struct slm_gguf_str s, const char *lit) {
  size_t n = strlen(lit);
  return s.n == n && memcmp(s.p, lit, n) == 0;
}

static void str_copy(char *dst, size_t cap, struct slm_gguf_str s) {
  size_t n = s.n < cap - 1 ? (size_t)s.n : cap - 1;
  memcpy(dst, s.p, n);
  dst[n] = 0;
}

/* Reads an optional bool key; a key of another type is an error. */
static int get_bool_opt(const struct slm_gguf_file *f, const char *key, bool *out, char *err,
                        size_t errlen) {
  int rc = slm_gguf_get_bool(f, key, out);
  if (rc == -ENOENT) return 0;
  if (rc) return verr(err, errlen, -EINVAL, "%s is not a bool", key);
  return 0;
}

/* Reads an optional token id key into *id. RANGE_STRICT: an id outside [0, n) is an error;
 * otherwise it is ignored. -1 / 0xFFFFFFFF mean "unset" and keep the default. */
static int get_id_opt(const struct slm_gguf_file *f, const char *key, int32_t n, bool strict,
                      int32_t *id, char *err, size_t errlen) {
  int64_t x;
  int rc = slm_gguf_get_i64(f, key, &x);
  if (rc == -ENOENT) return 0;
  if (rc) return verr(err, errlen, -EINVAL, "%s is not an integer", key);
  if (x == -1 || x == 0xFFFFFFFFll) return 0;
  if (x < 0 || x >= n) {
    if (strict)
      return verr(err, errlen, -EINVAL, "%s = %lld is outside the vocabulary (%d tokens)", key,
                  (long long)x, n);
    return 0;
  }
  *id = (int32_t)x;
  return 0;
}

/* A numeric array element as float (scores) or int32 (types): the data may be unaligned. */
static float arr_f32(const struct slm_gguf_kv *kv, uint64_t i) {
  if (kv->arr_type == GGUF_VT_FLOAT32) {
    float x;
    memcpy(&x, kv->arr_data + 4 * i, 4);
    return x;
  }
  int32_t x;
  memcpy(&x, kv->arr_data + 4 * i, 4);
  return (float)x;
}

static int32_t arr_i32(const struct slm_gguf_kv *kv, uint64_t i) {
  int32_t x;
  memcpy(&x, kv->arr_data + 4 * i, 4);
  return x;
}

/* ------------------------------------------------------------------ load */


static int32_t find_lit(const struct slm_vocab *v, const char *lit) {
  return slm_vocab_find_tok(v, lit, strlen(lit));
}

static void add_eog(struct slm_vocab *v, int32_t id) {
  if (id < 0) return;
  for (int i = 0; i < v->n_eog; i++)
    if (v->eog[i] == id) return;
  if (v->n_eog < VOCAB_MAX_EOG) v->eog[v->n_eog++] = id;
}

static void del_eog(struct slm_vocab *v, int32_t id) {
  for (int i = 0; i < v->n_eog; i++)
    if (v->eog[i] == id) {
      v->eog[i] = v->eog[--v->n_eog];
      return;
    }
}

/* The token of the first text in LITS that the vocabulary has, or -1. (llama.cpp takes whichever
 * its hash map yields first; list order gives the conventional answer: <|eot_id|> rather than
 * <|end_of_text|> for Llama 3, <|im_end|> for Qwen, <|end|> for Phi-3.) */
static int32_t first_of(const struct slm_vocab *v, const char *const *lits) {
  for (size_t i = 0; lits[i]; i++) {
    int32_t id = find_lit(v, lits[i]);
    if (id >= 0) return id;
  }
  return -1;
}

static void make_control(struct slm_vocab *v, int32_t id) {
  if (id >= 0) v->strs[id].attr |= VA_CONTROL;
}

/* Maps tokenizer.ggml.pre to a family; false if unknown. Mirrors llama.cpp's table for the
 * families whose patterns tok_bpe.c has. */
static bool pre_from_name(const char *name, enum vocab_pre *pre, bool *ignore_merges,
                          bool *add_bos, bool *clean_spaces) {
  static const char *const llama3[] = {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1",
                                       "pixtral", "midm-2.0", "lfm2", NULL};
  static const char *const qwen2[] = {"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez", NULL};
  static const char *const gpt2[] = {"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat",
                                     "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum", "mpt",
                                     "olmo", "jais", "trillion", "exaone4", NULL};
  static const char *const smollm[] = {"smollm", "starcoder", "refact", "command-r", "codeshell",
                                       "exaone", "minerva-7b", NULL};
  const char *const *lists[] = {llama3, qwen2, gpt2, smollm};
  const enum vocab_pre kinds[] = {PRE_LLAMA3, PRE_QWEN2, PRE_GPT2, PRE_SMOLLM};
  if (!strcmp(name, "default")) {
    *pre = PRE_DEFAULT;
    return true;
  }
  for (int k = 0; k < 4; k++)
    for (int i = 0; lists[k][i]; i++)
      if (!strcmp(name, lists[k][i])) {
        *pre = kinds[k];
        if (kinds[k] == PRE_LLAMA3) {
          *ignore_merges = true;
          *add_bos = true;
        }
        /* llama.cpp keeps clean_up_tokenization_spaces off for these */
        if ((kinds[k] == PRE_QWEN2 && strcmp(name, "megrez") && strcmp(name, "stablelm2")) ||
            !strcmp(name, "smollm") || !strcmp(name, "command-r") || !strcmp(name, "trillion"))
          *clean_spaces = false;
        return true;
      }
  return false;
}

static int build_pieces(struct slm_vocab *v, char *err, size_t errlen) {
  /* First pass: sizes; second pass: bytes. Decoded BPE text is never longer than the token text
   * (each stand-in code point is 1-2 bytes and decodes to 1 byte). */
  uint64_t total = 0;
  for (int32_t i = 0; i < v->n_tokens; i++) total += v->strs[i].len;
  if (total >= UINT32_MAX) return verr(err, errlen, -EINVAL, "token texts too large");
  v->pieces = malloc(total ? total : 1);
  v->piece_off = malloc(((size_t)v->n_tokens + 1) * sizeof *v->piece_off);
  if (!v->pieces || !v->piece_off) return verr(err, errlen, -ENOMEM, "out of memory");
  char *w = v->pieces;
  for (int32_t i = 0; i < v->n_tokens; i++) {
    const struct vocab_tok *t = &v->strs[i];
    v->piece_off[i] = (uint32_t)(w - v->pieces);
    const uint8_t *p = (const uint8_t *)t->text;
    size_t n = t->len;
    if (t->attr & (VA_UNKNOWN | VA_CONTROL | VA_USER_DEFINED)) {
      memcpy(w, p, n);
      w += n;
    } else if ((t->attr & VA_NORMAL) && v->kind == SLM_VOCAB_SPM) {
      for (size_t j = 0; j < n;) {   /* "\u2581" (E2 96 81) back to ' ' */
        if (j + 3 <= n && p[j] == 0xE2 && p[j + 1] == 0x96 && p[j + 2] == 0x81) {
          *w++ = ' ';
          j += 3;
        } else {
          *w++ = (char)p[j++];
        }
      }
    } else if (t->attr & VA_NORMAL) {
      /* GPT-2 alphabet back to bytes; a code point outside the alphabet is kept as its UTF-8
       * (llama.cpp prints an [UNK_BYTE_..] marker there; the HF decoder keeps the char). */
      for (size_t j = 0; j < n;) {
        size_t k = slm_utf8_valid_len(p + j, n - j);   /* texts were validated at load */
        uint32_t cp = utf8_cp(p + j, k);
        if (cp < 324 && v->byte_dec[cp] >= 0) {
          *w++ = (char)v->byte_dec[cp];
        } else {
          memcpy(w, p + j, k);
          w += k;
        }
        j += k;
      }
    } else if (t->attr & VA_BYTE) {
      unsigned b;
      char tmp[8] = {0};
      memcpy(tmp, p, n < 7 ? n : 7);
      if (n == 6 && sscanf(tmp, "<0x%2x>", &b) == 1) {
        *w++ = (char)b;
      } else {   /* a byte-typed token that is not <0xNN>: print its text */
        memcpy(w, p, n);
        w += n;
      }
    }
  }
  uint32_t at = (uint32_t)(w - v->pieces);
  v->piece_off[v->n_tokens] = at;
  return 0;
}

static int cmp_special(const void *a, const void *b, void *ctx) {
  const struct slm_vocab *v = ctx;
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  if (v->strs[x].len != v->strs[y].len) return v->strs[x].len > v->strs[y].len ? -1 : 1;
  return x < y ? -1 : x > y;
}

/* glibc qsort_r is not in C11; a small merge sort keeps the order stable and portable. */
static void sort_specials(struct slm_vocab *v, int32_t *a, int32_t *tmp, int32_t n) {
  if (n < 2) return;
  int32_t h = n / 2;
  sort_specials(v, a, tmp, h);
  sort_specials(v, a + h, tmp, n - h);
  int32_t i = 0, j = h, k = 0;
  while (i < h && j < n) tmp[k++] = cmp_special(&a[j], &a[i], v) < 0 ? a[j++] : a[i++];
  while (i < h) tmp[k++] = a[i++];
  while (j < n) tmp[k++] = a[j++];
  memcpy(a, tmp, (size_t)n * sizeof *a);
}

static int build_specials(struct slm_vocab *v, char *err, size_t errlen) {
  int32_t n = 0;
  for (int32_t i = 0; i < v->n_tokens; i++)
    if (v->strs[i].attr & (VA_CONTROL | VA_USER_DEFINED | VA_UNKNOWN)) n++;
  v->specials = malloc((size_t)(n ? n : 1) * sizeof *v->specials);
  int32_t *tmp = malloc((size_t)(n ? n : 1) * sizeof *tmp);
  if (!v->specials || !tmp) {
    free(tmp);
    return verr(err, errlen, -ENOMEM, "out of memory");
  }
  n = 0;
  for (int32_t i = 0; i < v->n_tokens; i++)
    if (v->strs[i].attr & (VA_CONTROL | VA_USER_DEFINED | VA_UNKNOWN)) v->specials[n++] = i;
  sort_specials(v, v->specials, tmp, n);
  free(tmp);
  v->n_specials = n;

  /* byte trie over the special texts */
  uint64_t nodes = 0;
  for (int32_t i = 0; i < n; i++) nodes += v->strs[v->specials[i]].len;
  if (nodes >= INT32_MAX) return verr(err, errlen, -EINVAL, "special tokens too large");
  v->trie = malloc((size_t)(nodes ? nodes : 1) * sizeof *v->trie);
  if (!v->trie) return verr(err, errlen, -ENOMEM, "out of memory");
  for (int i = 0; i < 256; i++) v->root_child[i] = -1;
  v->n_trie = 0;
  for (int32_t s = 0; s < n; s++) {
    const struct vocab_tok *t = &v->strs[v->specials[s]];
    const uint8_t *p = (const uint8_t *)t->text;
    if (!t->len) continue;
    int32_t *link = &v->root_child[p[0]];
    int32_t node = -1;
    for (uint32_t j = 0; j < t->len; j++) {
      int32_t c = *link;
      while (c >= 0 && v->trie[c].byte != p[j]) c = v->trie[c].sibling;
      if (c < 0) {
        c = v->n_trie++;
        v->trie[c] = (struct vocab_trie){.child = -1, .sibling = *link, .special = -1,
                                         .byte = p[j]};
        *link = c;
      }
      node = c;
      link = &v->trie[c].child;
    }
    if (v->trie[node].special < 0) v->trie[node].special = s;
  }
  return 0;
}

int slm_vocab_load(const struct slm_gguf_file *f, struct slm_vocab **out, char *err, size_t errlen) {
  if (!out) return verr(err, errlen, -EINVAL, "no output pointer");
  *out = NULL;
  if (!f) return verr(err, errlen, -EINVAL, "no file");
  struct slm_vocab *v = calloc(1, sizeof *v);
  if (!v) return verr(err, errlen, -ENOMEM, "out of memory");
  int rc = 0;
#define FAIL(...)                                \
  do {                                           \
    rc = verr(err, errlen, __VA_ARGS__);         \
    goto fail;                                   \
  } while (0)

  /* model and pre-tokenizer */
  struct slm_gguf_str model;
  if (slm_gguf_get_str(f, "tokenizer.ggml.model", &model))
    FAIL(-EINVAL, "tokenizer.ggml.model is missing (not a file with a vocabulary?)");
  str_copy(v->model_name, sizeof v->model_name, model);
  struct slm_gguf_str pre = {"default", 7};
  bool has_pre = slm_gguf_get_str(f, "tokenizer.ggml.pre", &pre) == 0;
  str_copy(v->pre_name, sizeof v->pre_name, pre);
  if (str_eq(model, "llama")) {
    v->kind = SLM_VOCAB_SPM;
    v->pre = PRE_NONE;
    v->bos = 1; v->eos = 2; v->unk = 0;
    v->add_bos = true; v->add_eos = false;
    v->add_space_prefix = true;
    v->clean_spaces = false;
  } else if (str_eq(model, "gpt2")) {
    v->kind = SLM_VOCAB_BPE;
    v->bos = 11; v->eos = 11; v->unk = -1;
    v->add_bos = false; v->add_eos = false;
    v->add_space_prefix = false;
    v->clean_spaces = true;
    v->pre = PRE_DEFAULT;
    if (has_pre && !pre_from_name(v->pre_name, &v->pre, &v->ignore_merges, &v->add_bos,
                                  &v->clean_spaces))
      FAIL(-ENOTSUP, "pre-tokenizer '%s' is not supported (llama3, qwen2, gpt-2, smollm and "
                     "their aliases are)", v->pre_name);
  } else {
    char name[64];
    str_copy(name, sizeof name, model);
    FAIL(-ENOTSUP, "tokenizer model '%s' is not supported (only 'llama' = SentencePiece and "
                   "'gpt2' = byte-level BPE)", name);
  }
  v->eot = v->eom = v->pad = v->sep = v->mask = v->nl = -1;
  if (get_bool_opt(f, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix, err, errlen) ||
      get_bool_opt(f, "tokenizer.ggml.remove_extra_whitespaces", &v->remove_extra_ws, err,
                   errlen)) {
    rc = -EINVAL;
    goto fail;
  }

  /* tokens, scores, types */
  const struct slm_gguf_kv *ktok = slm_gguf_find_kv(f, "tokenizer.ggml.tokens");
  if (!ktok) FAIL(-EINVAL, "tokenizer.ggml.tokens is missing");
  if (ktok->type != GGUF_VT_ARRAY || ktok->arr_type != GGUF_VT_STRING)
    FAIL(-EINVAL, "tokenizer.ggml.tokens is not an array of strings");
  if (ktok->arr_n == 0 || ktok->arr_n > VOCAB_MAX_TOKENS)
    FAIL(-EINVAL, "tokenizer.ggml.tokens has %llu entries (1..%d allowed)",
         (unsigned long long)ktok->arr_n, VOCAB_MAX_TOKENS);
  int32_t n = (int32_t)ktok->arr_n;
  const struct slm_gguf_kv *kscore = slm_gguf_find_kv(f, "tokenizer.ggml.scores");
  if (kscore && (kscore->type != GGUF_VT_ARRAY ||
                 (kscore->arr_type != GGUF_VT_FLOAT32 && kscore->arr_type != GGUF_VT_INT32)))
    FAIL(-EINVAL, "tokenizer.ggml.scores is not an array of float32");
  if (kscore && kscore->arr_n != (uint64_t)n)
    FAIL(-EINVAL, "tokenizer.ggml.scores has %llu entries, tokens has %d",
         (unsigned long long)kscore->arr_n, n);
  const struct slm_gguf_kv *ktype = slm_gguf_find_kv(f, "tokenizer.ggml.token_type");
  if (ktype && (ktype->type != GGUF_VT_ARRAY || ktype->arr_type != GGUF_VT_INT32))
    FAIL(-EINVAL, "tokenizer.ggml.token_type is not an array of int32");
  if (ktype && ktype->arr_n != (uint64_t)n)
    FAIL(-EINVAL, "tokenizer.ggml.token_type has %llu entries, tokens has %d",
         (unsigned long long)ktype->arr_n, n);

  int32_t strs_cap = n + 64;
  v->strs = malloc((size_t)strs_cap * sizeof *v->strs);
  if (!v->strs) FAIL(-ENOMEM, "out of memory");
  v->n_tokens = n;
  v->n_str = n;
  if (str_table_init(v, (uint32_t)n + 64)) FAIL(-ENOMEM, "out of memory");
  for (int32_t i = 0; i < n; i++) {
    struct slm_gguf_str s = slm_gguf_arr_str(f, ktok, (uint64_t)i);
    struct vocab_tok *t = &v->strs[i];
    if (s.n > VOCAB_MAX_TOKEN_BYTES) FAIL(-EINVAL, "token %d is %llu bytes long", i,
                                          (unsigned long long)s.n);
    if (!utf8_valid(s.p, s.n)) FAIL(-EINVAL, "token %d is not valid UTF-8", i);
    t->text = s.p;
    t->len = (uint32_t)s.n;
    if (s.n == 0) {   /* as llama.cpp: an empty token gets a placeholder text */
      char tmp[32];
      int k = snprintf(tmp, sizeof tmp, "[EMPTY_%d]", i);
      t->text = chunk_copy(v, tmp, (size_t)k);
      if (!t->text) FAIL(-ENOMEM, "out of memory");
      t->len = (uint32_t)k;
    }
    t->score = kscore ? arr_f32(kscore, (uint64_t)i) : 0.0f;
    t->attr = VA_NORMAL;
    if (ktype) {
      switch (arr_i32(ktype, (uint64_t)i)) {
        case VT_NORMAL: t->attr = VA_NORMAL; break;
        case VT_UNKNOWN: t->attr = VA_UNKNOWN; break;
        case VT_CONTROL: t->attr = VA_CONTROL; break;
        case VT_USER_DEFINED: t->attr = VA_USER_DEFINED; break;
        case VT_UNUSED: t->attr = VA_UNUSED; break;
        case VT_BYTE: t->attr = VA_BYTE; break;
        default: t->attr = VA_UNDEFINED; break;
      }
    }
    if (slm_vocab_find_str(v, t->text, t->len) >= 0) {
      char shown[48];
      size_t k = t->len < sizeof shown - 1 ? t->len : sizeof shown - 1;
      memcpy(shown, t->text, k);
      shown[k] = 0;
      FAIL(-EINVAL, "duplicate token '%s' (id %d and %d)", shown,
           slm_vocab_find_str(v, t->text, t->len), i);
    }
    str_table_put(v, i);
    if ((int32_t)t->len > v->max_token_len) v->max_token_len = (int32_t)t->len;
  }

  /* byte tables */
  for (int b = 0; b < 256; b++) {
    uint32_t cp = slm_bpe_byte_cp((uint8_t)b);
    v->byte_enc_len[b] = (uint8_t)utf8_put(v->byte_enc[b], cp);
  }
  for (int i = 0; i < 324; i++) v->byte_dec[i] = -1;
  for (int b = 0; b < 256; b++) v->byte_dec[slm_bpe_byte_cp((uint8_t)b)] = (int16_t)b;
  for (int b = 0; b < 256; b++) {
    char hex[8];
    snprintf(hex, sizeof hex, "<0x%02X>", b);
    v->byte_tok[b] = find_lit(v, hex);
    if (v->byte_tok[b] < 0) {
      char c = (char)b;
      v->byte_tok[b] = slm_vocab_find_tok(v, &c, 1);
    }
  }

  /* merges */
  if (v->kind == SLM_VOCAB_BPE) {
    const struct slm_gguf_kv *km = slm_gguf_find_kv(f, "tokenizer.ggml.merges");
    if (!km) FAIL(-EINVAL, "tokenizer.ggml.merges is missing (needed by a gpt2 tokenizer)");
    if (km->type != GGUF_VT_ARRAY || km->arr_type != GGUF_VT_STRING)
      FAIL(-EINVAL, "tokenizer.ggml.merges is not an array of strings");
    if (km->arr_n > VOCAB_MAX_MERGES)
      FAIL(-EINVAL, "tokenizer.ggml.merges has %llu entries", (unsigned long long)km->arr_n);
    uint64_t cap = 1024;
    while (cap < 2 * km->arr_n) cap <<= 1;
    v->mslots = malloc(cap * sizeof *v->mslots);
    if (!v->mslots) FAIL(-ENOMEM, "out of memory");
    for (uint64_t i = 0; i < cap; i++) v->mslots[i].key = UINT64_MAX;
    v->mmask = cap - 1;
    v->n_merges = (int32_t)km->arr_n;
    char *cat = NULL;
    size_t cat_cap = 0;
    for (int32_t i = 0; i < v->n_merges; i++) {
      struct slm_gguf_str s = slm_gguf_arr_str(f, km, (uint64_t)i);
      if (!utf8_valid(s.p, s.n)) {
        free(cat);
        FAIL(-EINVAL, "merge %d is not valid UTF-8", i);
      }
      const char *sp = s.n > 1 ? memchr(s.p + 1, ' ', s.n - 1) : NULL;   /* as find(' ', 1) */
      if (!sp) {
        free(cat);
        FAIL(-EINVAL, "merge %d has no space between its two parts", i);
      }
      size_t na = (size_t)(sp - s.p), nb = s.n - na - 1;
      if (na + nb > cat_cap) {
        cat_cap = (na + nb) * 2 + 64;
        char *c2 = realloc(cat, cat_cap);
        if (!c2) {
          free(cat);
          FAIL(-ENOMEM, "out of memory");
        }
        cat = c2;
      }
      memcpy(cat, s.p, na);
      memcpy(cat + na, sp + 1, nb);
      int32_t a = slm_vocab_find_str(v, s.p, na);
      if (a < 0) a = add_extra_str(v, s.p, na, &strs_cap);
      int32_t b = slm_vocab_find_str(v, sp + 1, nb);
      if (b < 0) b = add_extra_str(v, sp + 1, nb, &strs_cap);
      int32_t r = slm_vocab_find_str(v, cat, na + nb);
      if (r < 0) r = add_extra_str(v, cat, na + nb, &strs_cap);
      if (a < 0 || b < 0 || r < 0) {
        free(cat);
        FAIL(-ENOMEM, "out of memory");
      }
      uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
      uint64_t j = mix64(key) & v->mmask;
      while (v->mslots[j].key != UINT64_MAX && v->mslots[j].key != key) j = (j + 1) & v->mmask;
      if (v->mslots[j].key == UINT64_MAX)   /* the first rank of a repeated pair wins */
        v->mslots[j] = (struct vocab_mslot){.key = key, .rank = i, .result = r};
    }
    free(cat);
    for (int b = 0; b < 256; b++)
      v->byte_sid[b] = slm_vocab_find_str(v, v->byte_enc[b], v->byte_enc_len[b]);
  }

  /* special ids: defaults outside the vocabulary are dropped, then the file's keys */
  int32_t *ids[] = {&v->bos, &v->eos, &v->unk};
  for (size_t i = 0; i < 3; i++)
    if (*ids[i] >= n) *ids[i] = -1;
  if (get_id_opt(f, "tokenizer.ggml.bos_token_id", n, true, &v->bos, err, errlen) ||
      get_id_opt(f, "tokenizer.ggml.eos_token_id", n, true, &v->eos, err, errlen) ||
      get_id_opt(f, "tokenizer.ggml.eot_token_id", n, true, &v->eot, err, errlen) ||
      get_id_opt(f, "tokenizer.ggml.eom_token_id", n, true, &v->eom, err, errlen) ||
      get_id_opt(f, "tokenizer.ggml.unknown_token_id", n, true, &v->unk, err, errlen) ||
      get_id_opt(f, "tokenizer.ggml.seperator_token_id", n, false, &v->sep, err, errlen) ||
      get_id_opt(f, "tokenizer.ggml.padding_token_id", n, false, &v->pad, err, errlen) ||
      get_id_opt(f, "tokenizer.ggml.mask_token_id", n, false, &v->mask, err, errlen)) {
    rc = -EINVAL;
    goto fail;
  }
  int32_t fim_pad = -1, fim_rep = -1, fim_sep = -1;
  if (get_id_opt(f, "tokenizer.ggml.fim_pad_token_id", n, false, &fim_pad, err, errlen) ||
      get_id_opt(f, "tokenizer.ggml.fim_rep_token_id", n, false, &fim_rep, err, errlen) ||
      get_id_opt(f, "tokenizer.ggml.fim_sep_token_id", n, false, &fim_sep, err, errlen)) {
    rc = -EINVAL;
    goto fail;
  }
  if (get_bool_opt(f, "tokenizer.ggml.add_bos_token", &v->add_bos, err, errlen) ||
      get_bool_opt(f, "tokenizer.ggml.add_eos_token", &v->add_eos, err, errlen)) {
    rc = -EINVAL;
    goto fail;
  }
  if (v->add_bos && v->bos < 0)
    FAIL(-EINVAL, "tokenizer.ggml.add_bos_token is true, but there is no bos_token_id");
  if (v->add_eos && v->eos < 0)
    FAIL(-EINVAL, "tokenizer.ggml.add_eos_token is true, but there is no eos_token_id");

  /* tokens recognised by their text (llama.cpp's workaround for files that do not say) */
  {
    static const char *const eot_lits[] = {"<|eot_id|>", "<|im_end|>", "<|end|>",
                                           "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
                                           "<EOT>", "_<EOT>", "[EOT]", "<end_of_utterance>",
                                           "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81"
                                           "sentence\xef\xbd\x9c>", NULL};
    static const char *const eom_lits[] = {"<|eom_id|>", NULL};
    static const char *const pad_lits[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>",
                                           "[PAD]", NULL};
    static const char *const rep_lits[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>",
                                           "<REPO>", "<reponame>", NULL};
    static const char *const sep_lits[] = {"<|file_sep|>", NULL};
    static const char *const eog_lits[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>",
                                           "<|call|>", "<|flush|>", "<|calls|>",
                                           "<end_of_turn>", "<|endoftext|>", "</s>",
                                           "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
                                           "<|end_of_text|>", "<end_of_utterance>", "<eos>",
                                           "<turn|>", "<|tool_response>",
                                           "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81"
                                           "sentence\xef\xbd\x9c>", "[e~[", NULL};
    if (v->eot < 0) make_control(v, v->eot = first_of(v, eot_lits));
    if (v->eom < 0) make_control(v, v->eom = first_of(v, eom_lits));
    if (fim_pad < 0) make_control(v, fim_pad = first_of(v, pad_lits));
    if (fim_rep < 0) make_control(v, fim_rep = first_of(v, rep_lits));
    if (fim_sep < 0) make_control(v, fim_sep = first_of(v, sep_lits));
    /* control tokens named "unused" are unused */
    for (int32_t i = 0; i < n; i++) {
      struct vocab_tok *t = &v->strs[i];
      if ((t->attr & VA_CONTROL) && !(t->attr & VA_UNUSED) &&
          memmem(t->text, t->len, "unused", 6))
        t->attr |= VA_UNUSED;
    }
    add_eog(v, fim_pad);
    add_eog(v, fim_rep);
    add_eog(v, fim_sep);
    for (size_t i = 0; eog_lits[i]; i++) {
      int32_t id = find_lit(v, eog_lits[i]);
      if (id >= 0) {
        add_eog(v, id);
        make_control(v, id);
      }
    }
    /* gpt-oss: these structure tokens are always printed */
    static const char *const shown[] = {"<|channel|>", "<|message|>", "<|start|>",
                                        "<|constrain|>", NULL};
    for (size_t i = 0; shown[i]; i++) {
      int32_t id = find_lit(v, shown[i]);
      if (id >= 0) v->strs[id].attr = VA_USER_DEFINED;
    }
    add_eog(v, v->eos);
    add_eog(v, v->eot);
    add_eog(v, v->eom);
    /* o200k_harmony / solar-open: with <|return|>+<|call|> (or <|calls|>+<|flush|>), <|end|> is
     * not the end of generation */
    int32_t end = find_lit(v, "<|end|>");
    bool has_ret = find_lit(v, "<|return|>") >= 0, has_call = find_lit(v, "<|call|>") >= 0 ||
                                                             find_lit(v, "<|calls|>") >= 0;
    bool has_flush = find_lit(v, "<|flush|>") >= 0;
    if (end >= 0 && has_call && (has_ret || has_flush)) {
      del_eog(v, end);
      v->strs[end].attr = VA_USER_DEFINED;
    }
    /* Gemma 4 / PLaMo: "</s>" is ordinary text there, not the end of generation */
    int32_t es = find_lit(v, "</s>");
    if (es >= 0 && (find_lit(v, "<|tool_response>") >= 0 || find_lit(v, "<|plamo:eos|>") >= 0)) {
      del_eog(v, es);
      v->strs[es].attr = VA_NORMAL;
    }
  }

  /* newline token; may SPM cut its input into words (tok_spm.c) */
  if (v->kind == SLM_VOCAB_SPM) {
    v->nl = v->byte_tok['\n'];
    v->spm_words = true;
    for (int32_t i = 0; i < n && v->spm_words; i++) {
      const char *p = v->strs[i].text;
      uint32_t k = v->strs[i].len, j = 0;
      while (j + 3 <= k && !memcmp(p + j, "\xE2\x96\x81", 3)) j += 3;   /* leading run */
      if (j < k && memmem(p + j, k - j, "\xE2\x96\x81", 3)) v->spm_words = false;
    }
  }

  rc = build_pieces(v, err, errlen);
  if (!rc) rc = build_specials(v, err, errlen);
  if (rc) goto fail;

  /* Phi-3: spaces right of a special token are dropped (after the special cache, as llama.cpp) */
  {
    struct slm_gguf_str gname;
    if (slm_gguf_get_str(f, "general.name", &gname) == 0) {
      char lower[256];
      str_copy(lower, sizeof lower, gname);
      for (char *p = lower; *p; p++) *p = (char)tolower((unsigned char)*p);
      if (strstr(lower, "phi-3") || strstr(lower, "phi3")) {
        for (int32_t s = 0; s < v->n_specials; s++) v->strs[v->specials[s]].attr |= VA_RSTRIP;
        int32_t id = find_lit(v, "</s>");
        if (id >= 0) v->strs[id].attr |= VA_RSTRIP;
        static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>", NULL};
        for (size_t i = 0; keep[i]; i++) {
          id = find_lit(v, keep[i]);
          if (id >= 0) v->strs[id].attr &= (uint16_t)~VA_RSTRIP;
        }
      }
    }
  }

  /* chat template */
  {
    struct slm_gguf_str t;
    int trc = slm_gguf_get_str(f, "tokenizer.chat_template", &t);
    if (trc == 0) {
      if (t.n > VOCAB_MAX_TEMPLATE_BYTES)
        FAIL(-EINVAL, "tokenizer.chat_template is %llu bytes", (unsigned long long)t.n);
      v->chat_template = malloc(t.n + 1);
      if (!v->chat_template) FAIL(-ENOMEM, "out of memory");
      memcpy(v->chat_template, t.p, t.n);
      v->chat_template[t.n] = 0;
    } else if (trc != -ENOENT) {
      FAIL(-EINVAL, "tokenizer.chat_template is not a string");
    }
  }

  v->whole = calloc((size_t)n, sizeof *v->whole);   /* all WHOLE_UNKNOWN */
  if (!v->whole) FAIL(-ENOMEM, "out of memory");
  if (v->kind == SLM_VOCAB_BPE) {
    rc = slm_tok_bpe_init(v, err, errlen);
    if (rc) goto fail;
    slm_token nl[4];
    if (slm_vocab_tokenize(v, "\n", 1, nl, 4, false, false) >= 1) v->nl = nl[0];
  }
  *out = v;
  return 0;
#undef FAIL
fail:
  slm_vocab_free(v);
  return rc ? rc : -EINVAL;
}

void slm_vocab_free(struct slm_vocab *v) {
  if (!v) return;
  slm_tok_bpe_free(v);
  free(v->strs);
  free(v->hslots);
  free(v->mslots);
  while (v->chunks) {
    struct vocab_chunk *c = v->chunks;
    v->chunks = c->next;
    free(c);
  }
  free(v->pieces);
  free(v->piece_off);
  free(v->specials);
  free(v->trie);
  free((void *)v->whole);
  free(v->chat_template);
  free(v);
}

/* ------------------------------------------------------------------ accessors */

enum slm_vocab_kind slm_vocab_kind(const struct slm_vocab *v) { return v->kind; }
int32_t slm_vocab_n_tokens(const struct slm_vocab *v) { return v->n_tokens; }
slm_token slm_vocab_bos(const struct slm_vocab *v) { return v->bos; }
slm_token slm_vocab_eos(const struct slm_vocab *v) { return v->eos; }
slm_token slm_vocab_eot(const struct slm_vocab *v) { return v->eot; }
slm_token slm_vocab_unk(const struct slm_vocab *v) { return v->unk; }
slm_token slm_vocab_pad(const struct slm_vocab *v) { return v->pad; }
slm_token slm_vocab_nl(const struct slm_vocab *v) { return v->nl; }
bool slm_vocab_add_bos(const struct slm_vocab *v) { return v->add_bos; }
bool slm_vocab_add_eos(const struct slm_vocab *v) { return v->add_eos; }
const char *slm_vocab_pre(const struct slm_vocab *v) { return v->pre_name; }
const char *slm_vocab_model(const struct slm_vocab *v) { return v->model_name; }
const char *slm_vocab_chat_template(const struct slm_vocab *v) { return v->chat_template; }

bool slm_vocab_is_eog(const struct slm_vocab *v, slm_token t) {
  if (t < 0) return false;
  for (int i = 0; i < v->n_eog; i++)
    if (v->eog[i] == t) return true;
  return false;
}

int slm_vocab_eog_ids(const struct slm_vocab *v, slm_token *out, int cap) {
  for (int i = 0; i < v->n_eog && i < cap; i++) out[i] = v->eog[i];
  return v->n_eog;
}

bool slm_vocab_is_control(const struct slm_vocab *v, slm_token t) {
  return t >= 0 && t < v->n_tokens && (v->strs[t].attr & VA_CONTROL);
}

int32_t slm_vocab_token_text(const struct slm_vocab *v, slm_token t, const char **text) {
  if (t < 0 || t >= v->n_tokens) return -1;
  *text = v->strs[t].text;
  return (int32_t)v->strs[t].len;
}

float slm_vocab_token_score(const struct slm_vocab *v, slm_token t) {
  return (t >= 0 && t < v->n_tokens) ? v->strs[t].score : 0.0f;
}

slm_token slm_vocab_text_to_token(const struct slm_vocab *v, const char *text, size_t len) {
  return slm_vocab_find_tok(v, text, len);
}

/* ------------------------------------------------------------------ pieces and detokenization */

int32_t slm_vocab_token_to_piece(const struct slm_vocab *v, slm_token t, char *buf, int32_t cap,
                                 bool render_special) {
  if (!v || t < 0 || t >= v->n_tokens || cap < 0 || (!buf && cap > 0)) return INT32_MIN;
  if (!render_special && (v->strs[t].attr & (VA_UNKNOWN | VA_CONTROL))) return 0;
  uint32_t n = v->piece_off[t + 1] - v->piece_off[t];
  if ((int64_t)n > cap) return -(int32_t)n;
  if (n) memcpy(buf, v->pieces + v->piece_off[t], n);
  return (int32_t)n;
}

/* llama.cpp's clean_up_tokenization_spaces passes (BPE vocabularies except qwen2/smollm): drop
 * the space before ?!., and before 's 'm 're 've, and around a lone apostrophe. */
static int32_t clean_spaces(char *text, int32_t total) {
  int32_t t1 = total;
  total = total ? 1 : 0;
  for (int32_t i = 1; i < t1; i++) {
    char x = text[i];
    if (text[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) total--;
    text[total++] = x;
  }
  int32_t t2 = total;
  total = total ? 1 : 0;
  for (int32_t i = 1; i < t2; i++) {
    char x = text[i];
    if (x == '\'' && i + 1 < t2 && text[i - 1] == ' ' && text[i + 1] == ' ') {
      total--;
      text[++i] = '\0';
    }
    text[total++] = x;
  }
  int32_t t3 = total;
  total = total ? 1 : 0;
  for (int32_t i = 1; i < t3; i++) {
    char x = text[i];
    if (text[i - 1] == ' ' && x == '\'' && i + 1 < t3) {
      char x1 = text[i + 1];
      if (x1 == 's' || x1 == 'm') {
        total--;
      } else if (x1 != 't' && x1 != 'd' && i + 2 < t3) {
        char x2 = text[i + 2];
        if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) total--;
      }
    }
    text[total++] = x;
  }
  return total;
}

int32_t slm_vocab_detokenize(const struct slm_vocab *v, const slm_token *toks, int32_t n, char *buf,
                             int32_t cap, bool remove_leading_space, bool render_special) {
  if (!v || n < 0 || (!toks && n > 0) || cap < 0 || (!buf && cap > 0)) return INT32_MIN;
  int64_t total = 0;
  /* The SentencePiece prefix space: dropped from the first piece that prints anything (llama.cpp
   * strips it from the first token only, so a leading BOS keeps it; we strip it either way so
   * that detokenize(tokenize(s, add_special)) gives s back). */
  bool strip = remove_leading_space && v->add_space_prefix;
  for (int32_t i = 0; i < n; i++) {
    slm_token t = toks[i];
    if (t < 0 || t >= v->n_tokens) return INT32_MIN;
    if (!render_special && (v->strs[t].attr & (VA_UNKNOWN | VA_CONTROL))) continue;
    const char *p = v->pieces + v->piece_off[t];
    uint32_t k = v->piece_off[t + 1] - v->piece_off[t];
    if (!k) continue;
    if (strip && *p == ' ') {
      p++;
      k--;
    }
    strip = false;
    if (k && total + k <= cap) memcpy(buf + total, p, k);
    total += k;
    if (total > INT32_MAX) return INT32_MIN;
  }
  if (total > cap) return -(int32_t)total;
  if (v->clean_spaces) total = clean_spaces(buf, (int32_t)total);
  return (int32_t)total;
}
