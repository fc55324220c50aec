/*
 * tok_spm.c: SentencePiece-style (BPE by score) tokenization of one text fragment, as llama.cpp's
 * llm_tokenizer_spm: the text (spaces already written as "▁") starts as one symbol per UTF-8
 * character; the adjacent pair whose concatenation is the vocabulary token with the highest score
 * is merged first (ties: leftmost), until no pair forms a token. Symbols that are not tokens fall
 * back to their bytes (<0xNN> tokens).
 *
 * llama.cpp also keeps a map from merged texts back to their halves ("resegment"), but a merged
 * symbol is a token by construction and a single character can never equal the concatenation of
 * two whole characters, so that path never produces output; it is left out.
 *
 * Speed: a chunk that is itself a token which the merge loop is known to rebuild (v->whole,
 * learnt the first time) is emitted directly. The merge loop is O(n log n) in the fragment
 * length with a heap that fills with stale pairs, so a long fragment is cut into words first when that cannot change the result: if no
 * token has a "▁" after a character that is not "▁" (load checks this: v->spm_words), no merge
 * can ever join the text before a "▁" to the "▁" itself, so merges on either side of such a
 * point never interact and each word can be merged on its own, in the same order.
 *
 * Memory: one symbol per input byte and at most 3 bigrams per symbol (n - 1 at the start, two
 * more per merge), in the caller's scratch buffers; nothing is allocated per token.
 */
#include <errno.h>
#include <string.h>

#include "slm/vocab_priv.h"

struct sym {
  int32_t prev, next;
  uint32_t start, n;   /* bytes [start, start + n) of the fragment; n = 0 once merged away */
};

struct bigram {
  int32_t left, right;
  float score;
  uint32_t size;       /* bytes of left + right when the pair was queued */
};

/* Heap order: higher score first, then the leftmost pair. */
static inline bool before(const struct bigram *a, const struct bigram *b) {
  return a->score > b->score || (a->score == b->score && a->left < b->left);
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

static void try_add(const struct slm_vocab *v, const char *text, const struct sym *sy, int32_t l,
                    int32_t r, struct bigram *h, size_t *nh) {
  if (l < 0 || r < 0) return;
  uint32_t size = sy[l].n + sy[r].n;   /* symbols are adjacent: the pair is contiguous text */
  int32_t id = slm_vocab_find_tok(v, text + sy[l].start, size);
  if (id < 0) return;
  heap_push(h, nh, (struct bigram){.left = l, .right = r, .score = v->strs[id].score,
                                   .size = size});
}

static int spm_run(const struct slm_vocab *v, const char *text, size_t len, struct tok_out *o,
                   struct tok_scratch *s) {
  if (!len) return 0;
  /* a chunk that is a token the merges are known to rebuild (see v->whole) */
  int32_t whole_id = slm_vocab_find_tok(v, text, len);
  if (whole_id >= 0 && vocab_whole_get(v, whole_id) == WHOLE_YES) {
    tok_emit(o, whole_id);
    return 0;
  }
  struct sym *sy = tok_scratch_get(s, SCR_SYMS, len * sizeof *sy);
  struct bigram *h = tok_scratch_get(s, SCR_HEAP, 3 * len * sizeof *h);
  if (!sy || !h) return -ENOMEM;
  int32_t n = 0;
  for (size_t off = 0; off < len;) {
    size_t k = slm_utf8_lead_len((uint8_t)text[off]);
    if (k > len - off) k = len - off;
    sy[n] = (struct sym){.prev = n - 1, .next = n + 1, .start = (uint32_t)off, .n = (uint32_t)k};
    off += k;
    n++;
  }
  sy[n - 1].next = -1;

  size_t nh = 0;
  for (int32_t i = 1; i < n; i++) try_add(v, text, sy, i - 1, i, h, &nh);
  while (nh) {
    struct bigram b = heap_pop(h, &nh);
    struct sym *l = &sy[b.left], *r = &sy[b.right];
    if (!l->n || !r->n || l->n + r->n != b.size) continue;   /* stale pair */
    l->n += r->n;
    r->n = 0;
    l->next = r->next;
    if (r->next >= 0) sy[r->next].prev = b.left;
    try_add(v, text, sy, l->prev, b.left, h, &nh);
    try_add(v, text, sy, b.left, l->next, h, &nh);
  }

  if (whole_id >= 0)   /* symbol 0 is the head; a lone symbol covers the whole chunk */
    vocab_whole_set(v, whole_id, sy[0].next == -1);
  for (int32_t i = 0; i != -1; i = sy[i].next) {
    int32_t id = slm_vocab_find_tok(v, text + sy[i].start, sy[i].n);
    if (id >= 0) {
      tok_emit(o, id);
      continue;
    }
    for (uint32_t j = 0; j < sy[i].n; j++) {
      int32_t bt = v->byte_tok[(uint8_t)text[sy[i].start + j]];
      /* a vocabulary without byte tokens: llama.cpp throws here; we emit <unk> (or nothing) */
      if (bt < 0) bt = v->unk;
      if (bt >= 0) tok_emit(o, bt);
    }
  }
  return 0;
}

static bool is_marker(const char *p, size_t left) {
  return left >= 3 && (uint8_t)p[0] == 0xE2 && (uint8_t)p[1] == 0x96 && (uint8_t)p[2] == 0x81;
}

int slm_tok_spm(const struct slm_vocab *v, const char *text, size_t len, struct tok_out *o,
                struct tok_scratch *s) {
  if (!v->spm_words) return spm_run(v, text, len, o, s);
  /* cut before every "▁" that follows something else */
  size_t start = 0;
  bool prev_marker = true;
  for (size_t i = 0; i < len;) {
    bool m = is_marker(text + i, len - i);
    if (m && !prev_marker && i > start) {
      int rc = spm_run(v, text + start, i - start, o, s);
      if (rc) return rc;
      start = i;
    }
    prev_marker = m;
    i += m ? 3 : 1;
  }
  return spm_run(v, text + start, len - start, o, s);
}
