/*
 * tok_bpe.c: byte-level BPE (GPT-2 style) tokenization of one text fragment, as llama.cpp's
 * llm_tokenizer_bpe, with the pre-tokenizer patterns run by pcre2.
 *
 *  1. Pre-tokenize: the fragment is split into words by the vocabulary's list of patterns; each
 *     pattern splits every piece the previous one produced, and text between matches is a piece
 *     of its own (so nothing is dropped). Patterns are compiled once per vocabulary (UTF + UCP,
 *     JIT when available); match data is per call, so one vocabulary serves many threads.
 *  2. Each word is written in the GPT-2 byte alphabet (one stand-in character per byte), one
 *     symbol per byte. With ignore_merges (llama3) a word that is a token is emitted whole; so is
 *     a word that is a token the merges are known to rebuild (v->whole, learnt the first time the
 *     word is merged), which skips the merge loop for most words without changing any result.
 *  3. The adjacent pair with the lowest merge rank (ties: leftmost) is merged until no pair is a
 *     merge. Symbols carry string ids and merges are looked up as integer pairs.
 *  4. Each final symbol is emitted as its token; one that is not a token (possible only with
 *     merges whose result is not in the vocabulary) falls back to its single-byte strings, as
 *     llama.cpp does.
 *
 * The patterns are llama.cpp's (which follow each model's tokenizer.json), with one adjustment:
 * pcre2's \s (with UCP) leaves out U+0085 (NEXT LINE), which llama.cpp's and Hugging Face's \s
 * include, so \s is spelled [\s\x{85}]. llama.cpp runs the gpt2 and llama3 patterns through
 * hand-written matchers and the others through std::regex on a category-collapsed copy of the
 * text; pcre2 gives the same splits except for code points llama.cpp's tables leave unassigned
 * (it makes each of those a word of its own) and Unicode-version differences in categories.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "slm/vocab_priv.h"

#define WS "\\s\\x{85}"
#define CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"

/* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static const char PAT_GPT2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS
    "])|[" WS "]+";
/* Llama 3: digits in groups of up to three; qwen2 the same with single digits. */
static const char PAT_LLAMA3[] =
    CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*|["
    WS "]*[\\r\\n]+|[" WS "]+(?![^" WS "])|[" WS "]+";
static const char PAT_QWEN2[] =
    CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*|[" WS
    "]*[\\r\\n]+|[" WS "]+(?![^" WS "])|[" WS "]+";
static const char PAT_DIGIT[] = "\\p{N}";
static const char PAT_DEF_PUNCT[] = "[\\p{P}\\$\\+<=>\\^~\\|]+";
static const char PAT_DIGITS[] = "\\p{N}+";
static const char PAT_DIGIT3[] = "[0-9][0-9][0-9]";

int slm_tok_bpe_init(struct slm_vocab *v, char *err, size_t errlen) {
  const char *pats[VOCAB_MAX_REGEX] = {0};
  int n = 0;
  switch (v->pre) {
    case PRE_LLAMA3: pats[n++] = PAT_LLAMA3; break;
    case PRE_QWEN2: pats[n++] = PAT_QWEN2; break;
    case PRE_GPT2: pats[n++] = PAT_GPT2; break;
    case PRE_SMOLLM:
      pats[n++] = PAT_DIGIT;
      pats[n++] = PAT_GPT2;
      break;
    case PRE_DEFAULT:
    default:
      pats[n++] = PAT_DEF_PUNCT;
      pats[n++] = PAT_GPT2;
      pats[n++] = PAT_DIGITS;
      pats[n++] = PAT_DIGIT3;
      break;
  }
  for (int i = 0; i < n; i++) {
    int ec;
    PCRE2_SIZE eo;
    v->re[i] = pcre2_compile((PCRE2_SPTR)pats[i], PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                             &ec, &eo, NULL);
    if (!v->re[i]) {
      char msg[160];
      pcre2_get_error_message(ec, (PCRE2_UCHAR *)msg, sizeof msg);
      snprintf(err, errlen, "vocab: pre-tokenizer pattern %d does not compile at %zu: %s", i,
               (size_t)eo, msg);
      return -EINVAL;
    }
    v->re_jit[i] = pcre2_jit_compile(v->re[i], PCRE2_JIT_COMPLETE) == 0;
    v->n_re = i + 1;
  }
  return 0;
}

void slm_tok_bpe_free(struct slm_vocab *v) {
  for (int i = 0; i < v->n_re; i++) pcre2_code_free(v->re[i]);
  v->n_re = 0;
}

struct sym {
  int32_t prev, next;
  uint32_t start, n;   /* bytes of the encoded word; n = 0 once merged away */
  int32_t sid;         /* string id of those bytes, or -1 if not in the string table */
};

struct bigram {
  int32_t left, right;
  int32_t rank, result;
  uint32_t size;
};

/* Heap order: lower rank first, then the leftmost pair. */
static inline bool before(const struct bigram *a, const struct bigram *b) {
  return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void heap_push(struct bigram *h, size_t *n, struct bigram x) {
  size_t i = (*n)++;
  while (i) {
    size_t p = (i - 1) / 2;
    if (!before(&x, &h[p])) break;
    h[i] = h[p];
    i = p;
  }
  h[i] = x;
}

static struct bigram heap_pop(struct bigram *h, size_t *n) {
  struct bigram top = h[0], x = h[--*n];
  size_t i = 0, m = *n;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= m) break;
    if (c + 1 < m && before(&h[c + 1], &h[c])) c++;
    if (!before(&h[c], &x)) break;
    h[i] = h[c];
    i = c;
  }
  if (m) h[i] = x;
  return top;
}

static void try_add(const struct slm_vocab *v, const struct sym *sy, int32_t l, int32_t r,
                    struct bigram *h, size_t *nh) {
  if (l < 0 || r < 0) return;
  int32_t res;
  int32_t rank = slm_vocab_merge(v, sy[l].sid, sy[r].sid, &res);
  if (rank < 0) return;
  heap_push(h, nh, (struct bigram){.left = l, .right = r, .rank = rank, .result = res,
                                   .size = sy[l].n + sy[r].n});
}

/* BPE of one pre-tokenized word W (raw bytes; the merge loop itself does not care whether they
 * are valid UTF-8). */
int slm_tok_bpe_word(const struct slm_vocab *v, const uint8_t *w, size_t m, struct tok_out *o,
                    struct tok_scratch *s) {
  if (!m) return 0;
  char *e = tok_scratch_get(s, SCR_WORD, 2 * m);
  struct sym *sy = tok_scratch_get(s, SCR_SYMS, m * sizeof *sy);
  struct bigram *h = tok_scratch_get(s, SCR_HEAP, 3 * m * sizeof *h);
  if (!e || !sy || !h) return -ENOMEM;
  uint32_t k = 0;
  for (size_t i = 0; i < m; i++) {
    uint8_t b = w[i];
    sy[i] = (struct sym){.prev = (int32_t)i - 1, .next = (int32_t)i + 1, .start = k,
                         .n = v->byte_enc_len[b], .sid = v->byte_sid[b]};
    memcpy(e + k, v->byte_enc[b], v->byte_enc_len[b]);
    k += v->byte_enc_len[b];
  }
  sy[m - 1].next = -1;
  int32_t whole_id = slm_vocab_find_tok(v, e, k);
  if (whole_id >= 0 && (v->ignore_merges || vocab_whole_get(v, whole_id) == WHOLE_YES)) {
    tok_emit(o, whole_id);
    return 0;
  }
  size_t nh = 0;
  for (size_t i = 1; i < m; i++) try_add(v, sy, (int32_t)i - 1, (int32_t)i, h, &nh);
  while (nh) {
    struct bigram b = heap_pop(h, &nh);
    struct sym *l = &sy[b.left], *r = &sy[b.right];
    if (!l->n || !r->n || l->n + r->n != b.size) continue;   /* stale pair */
    l->n += r->n;
    l->sid = b.result;
    r->n = 0;
    l->next = r->next;
    if (r->next >= 0) sy[r->next].prev = b.left;
    try_add(v, sy, l->prev, b.left, h, &nh);
    try_add(v, sy, b.left, l->next, h, &nh);
  }
  /* symbol 0 is always the head (merges keep the left symbol) */
  if (whole_id >= 0) vocab_whole_set(v, whole_id, sy[0].next == -1 && sy[0].sid == whole_id);
  for (int32_t i = 0; i != -1; i = sy[i].next) {
    if (sy[i].sid >= 0 && sy[i].sid < v->n_tokens) {
      tok_emit(o, sy[i].sid);
      continue;
    }
    for (uint32_t j = 0; j < sy[i].n; j++) {   /* not a token: its single bytes, if tokens */
      int32_t id = slm_vocab_find_tok(v, e + sy[i].start + j, 1);
      if (id >= 0) tok_emit(o, id);
    }
  }
  return 0;
}

struct seg {
  uint32_t off, len;
};

struct segs {
  struct seg *a;
  size_t n, cap;
  int slot;
};

static int segs_push(struct segs *g, struct tok_scratch *s, uint32_t off, uint32_t len) {
  if (!len) return 0;
  if (g->n == g->cap) {
    size_t cap = g->cap ? g->cap * 2 : 64;
    g->a = tok_scratch_get(s, g->slot, cap * sizeof *g->a);
    if (!g->a) return -ENOMEM;
    g->cap = cap;
  }
  g->a[g->n++] = (struct seg){off, len};
  return 0;
}

/* Splits [off, off + len) of TEXT with pattern RI; each piece (match or gap) goes to OUT, or to
 * slm_tok_bpe_word when OUT is NULL (the last pattern). */
static int split(const struct slm_vocab *v, int ri, const uint8_t *text, uint32_t off,
                 uint32_t len, struct segs *out, struct tok_out *o, struct tok_scratch *s) {
  PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
  const uint8_t *subj = text + off;
  uint32_t pos = 0, prev = 0;
  int rc = 0;
  while (pos < len) {
    int m = v->re_jit[ri]
                ? pcre2_jit_match(v->re[ri], subj, len, pos, 0, s->md, NULL)
                : pcre2_match(v->re[ri], subj, len, pos, PCRE2_NO_UTF_CHECK, s->md, NULL);
    if (m == PCRE2_ERROR_NOMATCH) break;
    if (m < 0) {
      /* JIT stack exhausted or similar: retry this one match with the interpreter */
      m = pcre2_match(v->re[ri], subj, len, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, s->md, NULL);
      if (m == PCRE2_ERROR_NOMATCH) break;
      if (m < 0) return -EINVAL;
    }
    uint32_t ms = (uint32_t)ov[0], me = (uint32_t)ov[1];
    if (me <= ms) {   /* empty match (none of our patterns can, but never loop) */
      pos = ms + 1;
      while (pos < len && (subj[pos] & 0xC0) == 0x80) pos++;
      continue;
    }
    if (ms > prev) {
      rc = out ? segs_push(out, s, off + prev, ms - prev)
               : slm_tok_bpe_word(v, subj + prev, ms - prev, o, s);
      if (rc) return rc;
    }
    rc = out ? segs_push(out, s, off + ms, me - ms) : slm_tok_bpe_word(v, subj + ms, me - ms, o, s);
    if (rc) return rc;
    prev = pos = me;
  }
  if (prev < len)
    rc = out ? segs_push(out, s, off + prev, len - prev)
             : slm_tok_bpe_word(v, subj + prev, len - prev, o, s);
  return rc;
}

int slm_tok_bpe(const struct slm_vocab *v, const char *text, size_t len, struct tok_out *o,
                struct tok_scratch *s) {
  if (!len) return 0;
  /* pcre2 wants valid UTF-8: each byte that does not start a valid sequence becomes U+FFFD */
  const uint8_t *t = (const uint8_t *)text;
  size_t bad = 0;
  for (size_t i = 0; i < len;) {
    size_t k = slm_utf8_valid_len(t + i, len - i);
    if (!k) {
      bad++;
      k = 1;
    }
    i += k;
  }
  if (bad) {
    if (len + 2 * bad > UINT32_MAX) return -EINVAL;
    uint8_t *c = tok_scratch_get(s, SCR_TEXT, len + 2 * bad);
    if (!c) return -ENOMEM;
    size_t j = 0;
    for (size_t i = 0; i < len;) {
      size_t k = slm_utf8_valid_len(t + i, len - i);
      if (!k) {
        memcpy(c + j, "\xEF\xBF\xBD", 3);
        j += 3;
        i++;
      } else {
        memcpy(c + j, t + i, k);
        j += k;
        i += k;
      }
    }
    t = c;
    len = j;
  }
  if (!s->md) {
    s->md = pcre2_match_data_create(1, NULL);
    if (!s->md) return -ENOMEM;
  }
  if (v->n_re == 1) return split(v, 0, t, 0, (uint32_t)len, NULL, o, s);

  struct segs a = {.slot = SCR_SEGS}, b = {.slot = SCR_SEGS2};
  int rc = segs_push(&a, s, 0, (uint32_t)len);
  for (int ri = 0; ri < v->n_re - 1 && !rc; ri++) {
    b.n = 0;
    for (size_t i = 0; i < a.n && !rc; i++) rc = split(v, ri, t, a.a[i].off, a.a[i].len, &b, o, s);
    struct segs tmp = a;
    a = b;
    b = tmp;
  }
  for (size_t i = 0; i < a.n && !rc; i++)
    rc = split(v, v->n_re - 1, t, a.a[i].off, a.a[i].len, NULL, o, s);
  return rc;
}
