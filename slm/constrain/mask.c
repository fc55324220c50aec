/*
 * mask.c: the set of tokens a matcher configuration allows.
 *
 * DESIGN
 * A walk goes over the token trie in preorder with one configuration per depth: stepping a
 * node's byte from its parent's configuration; an empty result skips the whole subtree (no token
 * with that prefix can be allowed), a non-empty one allows the tokens ending there.
 * Cache: for a stack (g, p) the tokens accepted without returning below g's frame depend on g
 * alone. So the first walk from g is made with an unknown parent (CN_BASE): its allowed tokens
 * are kept per g, and so are the trie nodes where some path returned to the unknown parent
 * ("escapes"). A later mask for (g, p) takes the cached tokens and walks only the escaped
 * subtrees from p's frame. Root-machine states never escape, so most schemas' masks are one
 * cache lookup after their first use. A cached walk may have pushed up to maxrel frames; it is
 * used only where that stays under the depth limit.
 * Entries are immutable once published; the cache stops adding entries past its byte budget
 * (masks are then walked every time, the result is the same).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "slm/constrain/cn.h"

struct mentry {
  uint32_t ntok;       /* tokens in the list, or set bits when bitset */
  uint32_t nesc;
  uint32_t maxrel;
  uint8_t bitset;      /* data holds n_vocab bits instead of a token list */
  uint8_t resid;       /* the escapes are nodes of the residual trie (a content slice was used) */
  int32_t data[];      /* tokens (or bitset words), then escape node ids */
};

struct cn_mcache {
  uint32_t n;
  _Atomic(struct mentry *) *slot;
  _Atomic size_t bytes;
  size_t limit;
};

struct cn_mcache *cn_mcache_new(uint32_t n_states, size_t limit_bytes) {
  struct cn_mcache *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->n = n_states;
  c->slot = calloc(n_states ? n_states : 1, sizeof *c->slot);
  if (!c->slot) {
    free(c);
    return NULL;
  }
  for (uint32_t i = 0; i < n_states; i++) atomic_init(&c->slot[i], NULL);
  atomic_init(&c->bytes, 0);
  c->limit = limit_bytes;
  return c;
}

void cn_mcache_free(struct cn_mcache *c) {
  if (!c) return;
  for (uint32_t i = 0; i < c->n; i++) free(atomic_load(&c->slot[i]));
  free(c->slot);
  free(c);
}

size_t cn_mcache_bytes(const struct cn_mcache *c) {
  return c ? atomic_load(&((struct cn_mcache *)c)->bytes) : 0;
}

int cn_walker_init(struct cn_walker *w, const struct cn_toktrie *tt, uint32_t width) {
  memset(w, 0, sizeof *w);
  w->width = width ? width : 1;
  size_t depth = (size_t)tt->max_len + 2;
  w->cfg = malloc(depth * w->width * sizeof *w->cfg);
  w->ncfg = calloc(depth, sizeof *w->ncfg);
  w->tmpbits = calloc(((size_t)tt->n_vocab + 31) / 32, sizeof *w->tmpbits);
  if (!w->cfg || !w->ncfg || !w->tmpbits) {
    cn_walker_free(w);
    return -ENOMEM;
  }
  return 0;
}

void cn_walker_free(struct cn_walker *w) {
  free(w->cfg);
  free(w->ncfg);
  free(w->tmpbits);
  free(w->esc);
  memset(w, 0, sizeof *w);
}

static inline void setbit(uint32_t *bits, int32_t t) { bits[t >> 5] |= 1u << (t & 31); }

static void set_node_tokens(const struct cn_toktrie *tt, uint32_t *bits, int32_t t) {
  for (; t >= 0; t = tt->same_next[t]) setbit(bits, t);
}

/* The walk of a grammar without calls from the root machine's state G (no frame below it):
 * one state per depth, one table lookup per trie node. */
static void walk_flat(const struct cn_grammar *gr, const struct cn_toktrie *tt,
                      const struct tt_node *nd, struct cn_walker *w, uint32_t g, uint32_t *bits) {
  const uint8_t *cls = gr->m[0].cls;
  const int32_t *next = gr->next;
  const uint32_t *row = gr->row;
  int32_t *st = (int32_t *)w->ncfg;   /* one int per depth: the state */
  st[0] = (int32_t)g;
  uint32_t end = nd[0].skip;
  for (uint32_t i = 1; i < end;) {
    const struct tt_node *x = &nd[i];
    int32_t t = next[row[st[x->depth - 1]] + cls[x->byte]];
    if (t < 0) {
      i = x->skip;
      continue;
    }
    st[x->depth] = t;
    if (x->tok >= 0) set_node_tokens(tt, bits, x->tok);
    i++;
  }
}

/* Walks the subtree of trie node R (R's byte not consumed yet) from configuration C0 (N0 stacks),
 * setting allowed tokens in BITS. With RECORD, pops of CN_BASE are recorded as escapes. */
static void walk(struct cn_match *m, const struct cn_toktrie *tt, const struct tt_node *nd,
                 struct cn_walker *w, uint32_t r, const struct mpair *c0, uint32_t n0, uint32_t *bits,
                 bool record) {
  const struct cn_grammar *gr = m->gr;
  uint32_t W = w->width;
  uint32_t d0 = r == 0 ? 0 : nd[r].depth - 1u;
  memcpy(w->cfg + (size_t)d0 * W, c0, n0 * sizeof *c0);
  w->ncfg[d0] = n0;
  uint32_t end = nd[r].skip, i = r == 0 ? 1 : r;
  while (i < end) {
    uint32_t d = nd[i].depth;
    const struct mpair *prev = w->cfg + (size_t)(d - 1) * W;
    uint32_t np = w->ncfg[d - 1];
    struct mpair *out = w->cfg + (size_t)d * W;
    uint32_t n = 0;
    bool esc = false;
    uint8_t byte = nd[i].byte;
    if (np == 1 && (gr->simple[prev[0].g] || prev[0].p == 0) &&
        (gr->call_off[prev[0].g] == gr->call_off[prev[0].g + 1] ||
         (gr->cfi[prev[0].g] && !(gr->cfset[gr->cfi[prev[0].g]][byte >> 3] & (1u << (byte & 7)))))) {
      /* the common case: one stack, a plain byte edge (no call to enter, no return possible) */
      int32_t t = gr_next(gr, prev[0].g, byte);
      if (t < 0) {
        i = nd[i].skip;
        continue;
      }
      out[0].g = (uint32_t)t;
      out[0].p = prev[0].p;
      w->ncfg[d] = 1;
      if (nd[i].tok >= 0) set_node_tokens(tt, bits, nd[i].tok);
      i++;
      continue;
    }
    for (uint32_t k = 0; k < np; k++)
      cn_match_step(m, prev[k].g, prev[k].p, byte, out, &n, W, record ? &esc : NULL);
    if (esc) {
      if (cn_grow(&w->esc, &w->cap_esc, w->nesc + 1, sizeof *w->esc) == 0) {
        w->esc[w->nesc++] = (int32_t)i;
      } else {
        m->err = -ENOMEM;
      }
    }
    if (n == 0) {
      i = nd[i].skip;
      continue;
    }
    if (record)
      for (uint32_t k = 0; k < n; k++)
        if (out[k].p != CN_BASE && out[k].p != 0 && m->nodes[out[k].p].depth > w->maxrel)
          w->maxrel = m->nodes[out[k].p].depth;
    w->ncfg[d] = n;
    if (nd[i].tok >= 0) set_node_tokens(tt, bits, nd[i].tok);
    i++;
  }
}

/* Does every JSON string content character (whole UTF-8 sequences, no '"', '\\', controls) lead
 * from G back to G through byte edges? Then all the tokens of the content slice are allowed
 * there and only the others need a walk. */
static bool returns_after(const struct cn_grammar *gr, int32_t s, uint32_t g, int k) {
  if (s < 0) return false;
  if (k == 0) return (uint32_t)s == g;
  /* [80-BF]: the bytes of one class behave the same: check each byte (64) */
  for (unsigned c = 0x80; c <= 0xBF; c++)
    if (!returns_after(gr, gr_next(gr, (uint32_t)s, (uint8_t)c), g, k - 1)) return false;
  return true;
}

static bool content_loop(const struct cn_grammar *gr, uint32_t g) {
  for (unsigned b = 0x20; b < 0x80; b++) {
    if (b == '"' || b == '\\') continue;
    if (gr_next(gr, g, (uint8_t)b) != (int32_t)g) return false;
  }
  /* lead bytes with their first continuation ranges */
  static const struct { uint8_t lo, hi, c1lo, c1hi, rest; } lead[] = {
      {0xC2, 0xDF, 0x80, 0xBF, 0}, {0xE0, 0xE0, 0xA0, 0xBF, 1}, {0xE1, 0xEC, 0x80, 0xBF, 1},
      {0xED, 0xED, 0x80, 0x9F, 1}, {0xEE, 0xEF, 0x80, 0xBF, 1}, {0xF0, 0xF0, 0x90, 0xBF, 2},
      {0xF1, 0xF3, 0x80, 0xBF, 2}, {0xF4, 0xF4, 0x80, 0x8F, 2}};
  int32_t seen[16];
  int nseen = 0;
  for (size_t i = 0; i < sizeof lead / sizeof lead[0]; i++)
    for (unsigned L = lead[i].lo; L <= lead[i].hi; L++) {
      int32_t s1 = gr_next(gr, g, (uint8_t)L);
      if (s1 < 0) return false;
      for (unsigned c = lead[i].c1lo; c <= lead[i].c1hi; c++) {
        int32_t s2 = gr_next(gr, (uint32_t)s1, (uint8_t)c);
        bool known = false;
        for (int q = 0; q < nseen && !known; q++) known = seen[q] == s2 * 4 + lead[i].rest;
        if (known) continue;
        if (!returns_after(gr, s2, g, lead[i].rest)) return false;
        if (nseen < 16) seen[nseen++] = s2 * 4 + lead[i].rest;
      }
    }
  return true;
}

/* The cache entry of state G, building (and publishing) it if needed. NULL when out of memory or
 * over budget: *TMP_OK then says whether w->tmpbits / w->esc hold a fresh walk to use once. */
static const struct mentry *entry_for(struct cn_match *m, const struct cn_toktrie *tt,
                                      struct cn_mcache *cache, struct cn_walker *w, uint32_t g,
                                      bool *tmp_ok) {
  *tmp_ok = false;
  if (cache) {
    struct mentry *e = atomic_load_explicit(&cache->slot[g], memory_order_acquire);
    if (e) return e;
  }
  size_t words = ((size_t)tt->n_vocab + 31) / 32;
  w->nesc = 0;
  w->maxrel = 0;
  /* a frame of the root machine has nothing below it: walk it as it is (no escapes) */
  struct mpair c0 = {g, m->gr->mach[g] == 0 ? 0 : CN_BASE};
  bool slice = tt->content && content_loop(m->gr, g);
  const struct tt_node *nodes = slice ? tt->rnodes : tt->nodes;
  if (slice) memcpy(w->tmpbits, tt->content, words * sizeof *w->tmpbits);
  else memset(w->tmpbits, 0, words * sizeof *w->tmpbits);
  if (m->gr->call_off[m->gr->ns] == 0) walk_flat(m->gr, tt, nodes, w, g, w->tmpbits);
  else walk(m, tt, nodes, w, 0, &c0, 1, w->tmpbits, true);
  if (m->err) return NULL;
  *tmp_ok = true;
  w->resid = slice;
  if (!cache) return NULL;
  uint32_t cnt = 0;
  for (size_t k = 0; k < words; k++) cnt += (uint32_t)__builtin_popcount(w->tmpbits[k]);
  bool bs = (size_t)cnt > words;
  size_t nd = (bs ? words : cnt) + w->nesc;
  size_t sz = sizeof(struct mentry) + nd * sizeof(int32_t);
  if (atomic_load(&cache->bytes) + sz > cache->limit) return NULL;
  struct mentry *e = malloc(sz);
  if (!e) return NULL;
  e->ntok = cnt;
  e->nesc = (uint32_t)w->nesc;
  e->maxrel = w->maxrel;
  e->bitset = bs;
  e->resid = slice;
  if (bs) {
    memcpy(e->data, w->tmpbits, words * sizeof *w->tmpbits);
  } else {
    uint32_t o = 0;
    for (size_t k = 0; k < words; k++)
      for (uint32_t v = w->tmpbits[k]; v; v &= v - 1) e->data[o++] = (int32_t)(k * 32 + (uint32_t)__builtin_ctz(v));
  }
  if (w->nesc) memcpy(e->data + (bs ? words : cnt), w->esc, w->nesc * sizeof *w->esc);
  struct mentry *expect = NULL;
  if (atomic_compare_exchange_strong_explicit(&cache->slot[g], &expect, e, memory_order_acq_rel,
                                              memory_order_acquire)) {
    atomic_fetch_add(&cache->bytes, sz);
    return e;
  }
  free(e);
  return expect;
}

int64_t cn_mask(struct cn_match *m, const struct cn_toktrie *tt, struct cn_mcache *cache,
                struct cn_walker *w, uint32_t *bits) {
  size_t words = ((size_t)tt->n_vocab + 31) / 32;
  memset(bits, 0, words * sizeof *bits);
  for (uint32_t k = 0; k < m->ncfg; k++) {
    uint32_t g = m->cfg[k].g, p = m->cfg[k].p;
    bool tmp_ok;
    const struct mentry *e = entry_for(m, tt, cache, w, g, &tmp_ok);
    uint32_t pdepth = p ? m->nodes[p].depth : 0;
    if (e && pdepth + e->maxrel <= (uint32_t)m->max_depth) {
      size_t ntd = e->bitset ? words : e->ntok;
      if (e->bitset) {
        for (size_t j = 0; j < words; j++) bits[j] |= (uint32_t)e->data[j];
      } else {
        for (size_t j = 0; j < ntd; j++) setbit(bits, e->data[j]);
      }
      if (p != 0)
        for (uint32_t j = 0; j < e->nesc; j++) {
          struct mpair c = {m->nodes[p].gs, m->nodes[p].parent};
          walk(m, tt, e->resid ? tt->rnodes : tt->nodes, w, (uint32_t)e->data[ntd + j], &c, 1, bits, false);
        }
    } else if (tmp_ok && w->maxrel + pdepth <= (uint32_t)m->max_depth) {
      for (size_t j = 0; j < words; j++) bits[j] |= w->tmpbits[j];
      if (p != 0) {
        /* the escapes move when walking again: copy them out first */
        size_t ne = w->nesc;
        int32_t *esc = ne ? malloc(ne * sizeof *esc) : NULL;
        if (ne && !esc) return -ENOMEM;
        if (ne) memcpy(esc, w->esc, ne * sizeof *esc);
        const struct tt_node *en = w->resid ? tt->rnodes : tt->nodes;
        for (size_t j = 0; j < ne; j++) {
          struct mpair c = {m->nodes[p].gs, m->nodes[p].parent};
          walk(m, tt, en, w, (uint32_t)esc[j], &c, 1, bits, false);
        }
        free(esc);
      }
    } else {
      struct mpair c = {g, p};
      walk(m, tt, tt->nodes, w, 0, &c, 1, bits, false);
    }
    if (m->err) return m->err;
  }
  if (cn_match_can_end(m))
    for (int j = 0; j < tt->n_eog; j++) setbit(bits, tt->eog[j]);
  int64_t cnt = 0;
  for (size_t j = 0; j < words; j++) cnt += __builtin_popcount(bits[j]);
  return cnt;
}

bool cn_token_ok(struct cn_match *m, const struct cn_toktrie *tt, int32_t t) {
  if (t < 0 || t >= tt->n_vocab) return false;
  if (tt->kind[t] == TT_EOG) return cn_match_can_end(m);
  if (tt->kind[t] != TT_BYTES) return false;
  const uint8_t *b = tt->bytes + tt->tok_off[t];
  uint32_t len = tt->tok_off[t + 1] - tt->tok_off[t];
  struct mpair bufa[32], bufb[32];
  struct mpair *cur = bufa, *nxt = bufb;
  uint32_t cap = m->max_cfg < 32 ? m->max_cfg : 32;
  uint32_t nc = m->ncfg < cap ? m->ncfg : cap;
  memcpy(cur, m->cfg, nc * sizeof *cur);
  for (uint32_t i = 0; i < len && nc; i++) {
    uint32_t n = 0;
    for (uint32_t k = 0; k < nc; k++) cn_match_step(m, cur[k].g, cur[k].p, b[i], nxt, &n, cap, NULL);
    struct mpair *x = cur;
    cur = nxt;
    nxt = x;
    nc = n;
  }
  return nc > 0;
}
