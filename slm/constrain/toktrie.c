/*
 * toktrie.c: the per-vocabulary tables of constrained decoding: every token's bytes and a trie
 * over them in preorder (built once per model; read-only afterwards, shared by every constraint
 * and thread).
 *
 * Preorder with a "skip" index makes a mask walk one linear pass: at node i either descend
 * (i + 1) or skip the subtree (nodes[i].skip), with the state of each depth kept in an array.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "slm/constrain/cn.h"

struct sort_ent { uint64_t key; const uint8_t *p; uint32_t n; int32_t tok; };

/* Byte order: the first 8 bytes as a big-endian number decide most comparisons. */
static int cmp_ent(const void *a, const void *b) {
  const struct sort_ent *x = a, *y = b;
  if (x->key != y->key) return x->key < y->key ? -1 : 1;
  uint32_t k = x->n < y->n ? x->n : y->n;
  int c = k ? memcmp(x->p, y->p, k) : 0;
  if (c) return c;
  if (x->n != y->n) return x->n < y->n ? -1 : 1;
  return x->tok < y->tok ? -1 : x->tok > y->tok;
}

/* Builds the preorder trie of the sorted entries ENTS[0..NE) (TOTAL bytes) into *NODES. Tokens
 * with the same bytes are chained through t->same_next (filled the first time). */
static int build_trie(struct cn_toktrie *t, const struct sort_ent *ents, size_t ne, size_t total,
                      struct tt_node **nodes_out, uint32_t *nn_out) {
  size_t cap = total + 1;
  struct tt_node *nodes = malloc(cap * sizeof *nodes);
  uint32_t *path = malloc(((size_t)t->max_len + 1) * sizeof *path);
  if (!nodes || !path) {
    free(nodes);
    free(path);
    return -ENOMEM;
  }
  nodes[0] = (struct tt_node){0, -1, 0, 0};
  size_t nn = 1, depth = 0;
  path[0] = 0;
  const uint8_t *prev = NULL;
  uint32_t prev_n = 0;
  for (size_t k = 0; k < ne; k++) {
    const struct sort_ent *e = &ents[k];
    uint32_t lcp = 0;
    while (prev && lcp < prev_n && lcp < e->n && prev[lcp] == e->p[lcp]) lcp++;
    if (prev && lcp == e->n && lcp == prev_n) {   /* same bytes as the previous token */
      int32_t first = nodes[path[depth]].tok, last = first;
      while (t->same_next[last] >= 0 && t->same_next[last] != e->tok) last = t->same_next[last];
      if (t->same_next[last] != e->tok) t->same_next[last] = e->tok;
      continue;
    }
    while (depth > lcp) {   /* close finished subtrees */
      nodes[path[depth]].skip = (uint32_t)nn;
      depth--;
    }
    for (uint32_t d = lcp; d < e->n; d++) {
      nodes[nn] = (struct tt_node){0, -1, (uint16_t)(d + 1), e->p[d]};
      path[++depth] = (uint32_t)nn++;
    }
    nodes[path[depth]].tok = e->tok;
    prev = e->p;
    prev_n = e->n;
  }
  while (depth > 0) {
    nodes[path[depth]].skip = (uint32_t)nn;
    depth--;
  }
  nodes[0].skip = (uint32_t)nn;
  free(path);
  *nodes_out = nodes;
  *nn_out = (uint32_t)nn;
  return 0;
}

void cn_toktrie_free(struct cn_toktrie *t) {
  free(t->nodes);
  free(t->rnodes);
  free(t->content);
  free(t->same_next);
  free(t->tok_off);
  free(t->bytes);
  free(t->kind);
  free(t->eog);
  memset(t, 0, sizeof *t);
}

int cn_toktrie_build(struct cn_toktrie *t, int32_t n_vocab, const uint8_t *const *toks,
                     const uint32_t *lens, const uint8_t *kind) {
  memset(t, 0, sizeof *t);
  if (n_vocab <= 0) return -EINVAL;
  t->n_vocab = n_vocab;
  size_t nv = (size_t)n_vocab;
  t->same_next = malloc(nv * sizeof *t->same_next);
  t->tok_off = malloc((nv + 1) * sizeof *t->tok_off);
  t->kind = malloc(nv);
  t->eog = malloc(nv * sizeof *t->eog);
  struct sort_ent *ents = malloc(nv * sizeof *ents);
  size_t total = 0;
  for (size_t i = 0; i < nv; i++)
    if (kind[i] == TT_BYTES) total += lens[i];
  t->bytes = malloc(total ? total : 1);
  if (!t->same_next || !t->tok_off || !t->kind || !t->eog || !ents || !t->bytes) goto oom;
  size_t ne = 0, o = 0;
  for (size_t i = 0; i < nv; i++) {
    t->same_next[i] = -1;
    t->tok_off[i] = (uint32_t)o;
    uint8_t k = kind[i];
    if (k == TT_BYTES && (lens[i] == 0 || lens[i] > 65535)) k = TT_NEVER;
    t->kind[i] = k;
    if (k == TT_EOG) t->eog[t->n_eog++] = (int32_t)i;
    if (k != TT_BYTES) continue;
    memcpy(t->bytes + o, toks[i], lens[i]);
    uint64_t key = 0;
    for (uint32_t j = 0; j < 8; j++) key = key << 8 | (j < lens[i] ? toks[i][j] : 0);
    ents[ne++] = (struct sort_ent){key, t->bytes + o, lens[i], (int32_t)i};
    o += lens[i];
    if (lens[i] > t->max_len) t->max_len = (uint16_t)lens[i];
  }
  t->tok_off[nv] = (uint32_t)o;
  qsort(ents, ne, sizeof *ents, cmp_ent);
  if (build_trie(t, ents, ne, total, &t->nodes, &t->nn)) goto oom;
  /* the slice of JSON string content: tokens that are whole characters other than '"', '\\'
   * and the control characters; and the trie of all the others */
  size_t words = (nv + 31) / 32, nr = 0, rtotal = 0;
  t->content = calloc(words, sizeof *t->content);
  if (!t->content) goto oom;
  for (size_t k = 0; k < ne; k++) {
    const struct sort_ent *e = &ents[k];
    bool ok = true;
    for (uint32_t j = 0; j < e->n && ok;) {
      uint32_t cp;
      int q = cn_utf8_dec(e->p + j, e->n - j, &cp);
      if (!q || cp < 0x20 || cp == '"' || cp == '\\') ok = false;
      else j += (uint32_t)q;
    }
    if (ok) {
      for (int32_t x = e->tok; x >= 0; x = t->same_next[x]) t->content[x >> 5] |= 1u << (x & 31);
      t->ncontent++;
    } else {
      ents[nr++] = *e;
      rtotal += e->n;
    }
  }
  if (build_trie(t, ents, nr, rtotal, &t->rnodes, &t->rnn)) goto oom;
  free(ents);
  return 0;

oom:
  free(ents);
  cn_toktrie_free(t);
  return -ENOMEM;
}
