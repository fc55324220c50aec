/*
 * tokenizer.c: slm_vocab_tokenize, the entry point of both tokenizers. It splits the text around
 * special tokens (llama.cpp's tokenizer_st_partition), adds BOS/EOS as the vocabulary asks, and
 * hands each piece of plain text to tok_spm.c or tok_bpe.c.
 *
 * The partition is llama.cpp's, step for step: for each special token, longest text first, every
 * occurrence in every remaining text fragment becomes that token (left to right), with Phi-3's
 * right-strip of spaces. Its cost is (number of specials) x (text length), which for Llama 3's 256
 * reserved tokens would dominate a short call; so a byte trie first finds which specials occur in
 * the text at all, and only those run the (otherwise unchanged) partition. A special that does not
 * occur anywhere in the text cannot occur in any fragment of it, so the result is the same.
 *
 * Invalid UTF-8 (documented in vocab.h): SentencePiece vocabularies keep every byte (unknown
 * pieces fall back to <0xNN> byte tokens, so detokenize gives the bytes back); byte-level BPE
 * vocabularies see each byte that does not start a valid UTF-8 sequence as U+FFFD, as llama.cpp
 * does (pcre2 needs valid UTF-8). Nothing reads outside [text, text + len).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "slm/vocab_priv.h"

void *tok_scratch_get(struct tok_scratch *s, int slot, size_t n) {
  if (s->cap[slot] >= n) return s->buf[slot];
  size_t cap = s->cap[slot] ? s->cap[slot] : 256;
  while (cap < n) {
    if (cap > SIZE_MAX / 2) return NULL;
    cap *= 2;
  }
  void *p = realloc(s->buf[slot], cap);   /* keeps the contents: callers rely on it */
  if (!p) return NULL;
  s->buf[slot] = p;
  s->cap[slot] = cap;
  return p;
}

void tok_scratch_free(struct tok_scratch *s) {
  for (size_t i = 0; i < sizeof s->buf / sizeof s->buf[0]; i++) free(s->buf[i]);
  if (s->md) pcre2_match_data_free(s->md);
}

/* A fragment of the input: a special token (tok >= 0) or raw text [off, off + len). */
struct frag {
  int32_t tok;
  uint32_t off, len;
};

static bool c_isspace(unsigned char c) {
  return c == ' ' || (c >= '\t' && c <= '\r');
}

struct frags {
  struct frag *a;
  size_t n, cap;
  int slot;
};

static int frags_push(struct frags *f, struct tok_scratch *s, struct frag x) {
  if (f->n == f->cap) {
    size_t cap = f->cap ? f->cap * 2 : 16;
    f->a = tok_scratch_get(s, f->slot, cap * sizeof *f->a);
    if (!f->a) return -ENOMEM;
    f->cap = cap;
  }
  f->a[f->n++] = x;
  return 0;
}

/* Splits FRAGS around every occurrence of special token ID (llama.cpp's loop for one token). */
static int partition_one(const struct slm_vocab *v, const char *text, int32_t id,
                         struct frags *in, struct frags *outf, struct tok_scratch *s) {
  const struct vocab_tok *t = &v->strs[id];
  outf->n = 0;
  for (size_t i = 0; i < in->n; i++) {
    struct frag fr = in->a[i];
    if (fr.tok >= 0) {
      if (frags_push(outf, s, fr)) return -ENOMEM;
      continue;
    }
    uint32_t off = fr.off, len = fr.len;
    for (;;) {
      const char *m = memmem(text + off, len, t->text, t->len);
      if (!m) {
        if (len && frags_push(outf, s, (struct frag){-1, off, len})) return -ENOMEM;
        break;
      }
      uint32_t mo = (uint32_t)(m - text);
      if (mo > off) {
        uint32_t ll = mo - off;
        if (t->attr & VA_LSTRIP)
          while (ll && c_isspace((unsigned char)text[off + ll - 1])) ll--;
        if (ll && frags_push(outf, s, (struct frag){-1, off, ll})) return -ENOMEM;
      }
      if (frags_push(outf, s, (struct frag){id, 0, 0})) return -ENOMEM;
      uint32_t ro = mo + t->len, rl = off + len - ro;
      if (t->attr & VA_RSTRIP)
        while (rl && c_isspace((unsigned char)text[ro])) {
          ro++;
          rl--;
        }
      if (!rl) break;
      off = ro;
      len = rl;
    }
  }
  return 0;
}

/* Fills FR with the fragments of TEXT; returns the count or -ENOMEM. */
static int partition(const struct slm_vocab *v, const char *text, size_t len, bool parse_special,
                     struct frags *res, struct tok_scratch *s) {
  struct frags a = {.slot = SCR_FRAG}, b = {.slot = SCR_FRAG2};
  if (frags_push(&a, s, (struct frag){-1, 0, (uint32_t)len})) return -ENOMEM;
  if (v->n_specials == 0 || len == 0) {
    *res = a;
    return 0;
  }
  /* which specials occur in the text at all (marks by index into v->specials) */
  uint8_t *seen = tok_scratch_get(s, SCR_WORD, (size_t)v->n_specials);
  if (!seen) return -ENOMEM;
  memset(seen, 0, (size_t)v->n_specials);
  size_t n_seen = 0;
  const uint8_t *p = (const uint8_t *)text;
  for (size_t i = 0; i < len; i++) {
    int32_t node = v->root_child[p[i]];
    size_t j = i;
    while (node >= 0) {
      const struct vocab_trie *nd = &v->trie[node];
      if (nd->special >= 0 && !seen[nd->special]) {
        int32_t id = v->specials[nd->special];
        if (parse_special || !(v->strs[id].attr & (VA_CONTROL | VA_UNKNOWN))) {
          seen[nd->special] = 1;
          n_seen++;
        }
      }
      if (++j >= len) break;
      int32_t c = nd->child;
      while (c >= 0 && v->trie[c].byte != p[j]) c = v->trie[c].sibling;
      node = c;
    }
  }
  /* Two different specials can end at the same trie node only if their texts are equal, which
   * load rules out (duplicate tokens are refused). */
  for (int32_t k = 0; k < v->n_specials && n_seen; k++) {
    if (!seen[k]) continue;
    n_seen--;
    if (partition_one(v, text, v->specials[k], &a, &b, s)) return -ENOMEM;
    struct frags tmp = a;
    a = b;
    b = tmp;
  }
  *res = a;
  return 0;
}

int32_t slm_vocab_tokenize(const struct slm_vocab *v, const char *text, size_t len, slm_token *out,
                           int32_t cap, bool add_special, bool parse_special) {
  if (!v || (!text && len) || cap < 0 || (!out && cap > 0) || len > (size_t)INT32_MAX)
    return INT32_MIN;
  struct tok_out o = {.out = out, .cap = cap, .n = 0};
  struct tok_scratch s;
  memset(&s, 0, sizeof s);
  struct frags fr;
  int rc = 0;
  if (len) {
    rc = partition(v, text, len, parse_special, &fr, &s);
  } else {
    fr.n = 0;
    fr.a = NULL;
  }
  if (!rc && add_special && v->add_bos) tok_emit(&o, v->bos);
  if (!rc && v->kind == SLM_VOCAB_SPM) {
    bool prev_special = true;   /* the first text gets the prefix space, as after a special */
    for (size_t i = 0; i < fr.n && !rc; i++) {
      struct frag f = fr.a[i];
      if (f.tok >= 0) {
        tok_emit(&o, f.tok);
        prev_special = true;
        continue;
      }
      /* escape: optional prefix space, then ' ' -> "\u2581" (3 bytes) */
      bool prefix = v->add_space_prefix && prev_special;
      size_t need = (f.len + (prefix ? 1 : 0)) * 3;
      char *e = tok_scratch_get(&s, SCR_TEXT, need ? need : 1);
      if (!e) {
        rc = -ENOMEM;
        break;
      }
      size_t k = 0;
      if (prefix) {
        memcpy(e, "\xE2\x96\x81", 3);
        k = 3;
      }
      const char *src = text + f.off;
      for (uint32_t j = 0; j < f.len; j++) {
        if (src[j] == ' ') {
          memcpy(e + k, "\xE2\x96\x81", 3);
          k += 3;
        } else {
          e[k++] = src[j];
        }
      }
      rc = slm_tok_spm(v, e, k, &o, &s);
      prev_special = false;
    }
  } else if (!rc) {
    for (size_t i = 0; i < fr.n && !rc; i++) {
      struct frag f = fr.a[i];
      if (f.tok >= 0)
        tok_emit(&o, f.tok);
      else
        rc = slm_tok_bpe(v, text + f.off, f.len, &o, &s);
    }
  }
  if (!rc && add_special && v->add_eos) tok_emit(&o, v->eos);
  tok_scratch_free(&s);
  if (rc || o.n > INT32_MAX) return INT32_MIN;
  if (o.n > cap) return -(int32_t)o.n;
  return (int32_t)o.n;
}

