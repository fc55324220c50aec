/*
 * api.c: the public constrained-decoding functions of slm.h: vocabulary indexes, constraints
 * (compile, reference counting), matchers, the constraint cache.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slm/constrain/cn.h"
#include "slm/internal.h"
#include "slm/vocab.h"
#include "slm/vocab_priv.h"

#define INF32 (UINT32_MAX / 4)

struct slm_vocab_index {
  struct cn_toktrie tt;
};

struct slm_constraint {
  _Atomic int refs;
  const struct slm_vocab_index *vi;
  struct cn_grammar g;
  struct cn_mcache *cache;
  struct slm_constraint_params p;
  char *relaxed;
};

struct slm_matcher {
  struct slm_constraint *c;
  struct cn_match m;
  struct cn_walker w;
  bool walker_ok;
  int32_t budget;      /* -1: off */
  uint32_t *bits;      /* scratch mask (budget filtering) */
};

/* ---------------------------------------------------------------- vocab index */

struct slm_vocab_index *slm_vocab_index_new(const struct slm_model *m) {
  if (!m) return NULL;
  const struct slm_vocab *v = slm_model_vocab(m);
  int32_t nv = slm_n_vocab(m), nt = slm_vocab_n_tokens(v);
  struct slm_vocab_index *vi = calloc(1, sizeof *vi);
  const uint8_t **toks = calloc((size_t)nv, sizeof *toks);
  uint32_t *lens = calloc((size_t)nv, sizeof *lens);
  uint8_t *kind = malloc((size_t)nv);
  if (!vi || !toks || !lens || !kind) goto fail;
  for (int32_t t = 0; t < nv; t++) {
    kind[t] = TT_NEVER;
    if (t >= nt) continue;
    if (slm_vocab_is_eog(v, t)) {
      kind[t] = TT_EOG;
      continue;
    }
    uint16_t attr = v->strs[t].attr;
    if (attr & (VA_CONTROL | VA_UNKNOWN | VA_UNUSED)) continue;
    if (!(attr & (VA_NORMAL | VA_BYTE | VA_USER_DEFINED))) continue;
    uint32_t o = v->piece_off[t], e = v->piece_off[t + 1];
    if (e == o) continue;
    toks[t] = (const uint8_t *)v->pieces + o;
    lens[t] = e - o;
    kind[t] = TT_BYTES;
  }
  if (cn_toktrie_build(&vi->tt, nv, toks, lens, kind)) goto fail;
  free(toks);
  free(lens);
  free(kind);
  return vi;
fail:
  free(vi);
  free(toks);
  free(lens);
  free(kind);
  return NULL;
}

void slm_vocab_index_free(struct slm_vocab_index *vi) {
  if (!vi) return;
  cn_toktrie_free(&vi->tt);
  free(vi);
}

int32_t slm_vocab_index_n_vocab(const struct slm_vocab_index *vi) { return vi ? vi->tt.n_vocab : 0; }

/* ---------------------------------------------------------------- constraints */

struct slm_constraint_params slm_constraint_default_params(void) {
  return (struct slm_constraint_params){
      .whitespace = SLM_JSON_WS_FLEXIBLE,
      .all_escapes = true,
      .relaxed = false,
      .openapi_nullable = false,
      .max_depth = 32,
      .max_states = 500000,
      .mask_cache_bytes = 64u << 20,
  };
}

static void set_err(struct slm_constraint_error *err, int code, const char *kw, const char *ptr,
                    const char *msg) {
  if (!err) return;
  err->code = code;
  snprintf(err->keyword, sizeof err->keyword, "%s", kw ? kw : "");
  snprintf(err->pointer, sizeof err->pointer, "%s", ptr ? ptr : "");
  snprintf(err->message, sizeof err->message, "%s", msg ? msg : "");
}

static void gb_setup(struct gb *b, const struct slm_constraint_params *p) {
  gb_init(b);
  b->ws_flexible = p->whitespace == SLM_JSON_WS_FLEXIBLE;
  b->all_escapes = p->all_escapes;
  b->max_dfa_states = p->max_states ? p->max_states : 500000;
  b->max_nfa_states = b->max_dfa_states * 8;
}

static struct slm_constraint *finish(const struct slm_vocab_index *vi, struct gb *b,
                                     const struct slm_constraint_params *p, char *relaxed,
                                     struct slm_constraint_error *err) {
  struct slm_constraint *c = calloc(1, sizeof *c);
  if (!c) {
    set_err(err, -ENOMEM, "", "", "out of memory");
    free(relaxed);
    return NULL;
  }
  int rc = gb_finish(b, &c->g);
  if (rc) {
    set_err(err, rc, "", "",
            rc == -E2BIG   ? "the constraint needs more automaton states than max_states"
            : rc == -ELOOP ? "left-recursive or empty recursive reference"
                           : "out of memory");
    free(relaxed);
    free(c);
    return NULL;
  }
  atomic_init(&c->refs, 1);
  c->vi = vi;
  c->p = *p;
  c->relaxed = relaxed;
  if (vi && p->mask_cache_bytes) {
    c->cache = cn_mcache_new(c->g.ns, p->mask_cache_bytes);
    if (!c->cache) {
      set_err(err, -ENOMEM, "", "", "out of memory");
      slm_constraint_free(c);
      return NULL;
    }
  }
  return c;
}

struct slm_constraint *slm_constraint_new(const struct slm_vocab_index *vi,
                                          enum slm_constraint_kind kind, const char *text,
                                          size_t len, const struct slm_constraint_params *params,
                                          struct slm_constraint_error *err) {
  struct slm_constraint_params p = params ? *params : slm_constraint_default_params();
  if (p.max_depth <= 0) p.max_depth = 1;
  if (p.max_depth > 1000) p.max_depth = 1000;
  if (err) memset(err, 0, sizeof *err);
  if (!text && len) {
    set_err(err, -EINVAL, "", "", "no text");
    return NULL;
  }
  struct gb b;
  gb_setup(&b, &p);
  int root = gb_machine(&b);
  char *relaxed = NULL;
  int rc = 0;
  if (kind == SLM_CONSTRAINT_REGEX) {
    struct cdfa d;
    char msg[200];
    rc = rx_to_cdfa(text, len, RX_STRICT, false, p.max_states, &d, msg, sizeof msg);
    if (rc) {
      set_err(err, rc, "regex", "", msg);
      gb_free(&b);
      return NULL;
    }
    uint32_t e = gb_cdfa(&b, root, b.m[root].start, &d, true);
    gb_eps(&b, root, e, b.m[root].accept);
    cdfa_free(&d);
  } else if (kind == SLM_CONSTRAINT_CHOICE) {
    size_t i = 0, n = 0;
    while (i < len) {
      size_t j = i;
      while (j < len && text[j]) j++;
      gb_eps(&b, root, gb_lit(&b, root, b.m[root].start, text + i, j - i), b.m[root].accept);
      n++;
      i = j + 1;
    }
    if (n == 0) {
      set_err(err, -EINVAL, "choice", "", "no choices");
      gb_free(&b);
      return NULL;
    }
  } else if (kind == SLM_CONSTRAINT_JSON) {
    int any = gb_any_value(&b);
    uint32_t s = gb_ws(&b, root, b.m[root].start), t = gb_state(&b, root);
    gb_call(&b, root, s, t, any);
    gb_eps(&b, root, gb_ws(&b, root, t), b.m[root].accept);
  } else if (kind == SLM_CONSTRAINT_JSON_SCHEMA) {
    struct cn_schema_opts o = {p.relaxed, p.openapi_nullable, p.max_states};
    struct cn_err e;
    memset(&e, 0, sizeof e);
    rc = cn_schema_compile(&b, root, text, len, &o, &e, &relaxed);
    if (rc) {
      set_err(err, rc, e.keyword, e.pointer, e.msg);
      gb_free(&b);
      return NULL;
    }
  } else {
    set_err(err, -EINVAL, "", "", "unknown constraint kind");
    gb_free(&b);
    return NULL;
  }
  if (b.err) {
    set_err(err, b.err, "", "", b.err == -E2BIG ? "too many automaton states" : "out of memory");
    free(relaxed);
    gb_free(&b);
    return NULL;
  }
  struct slm_constraint *c = finish(vi, &b, &p, relaxed, err);
  gb_free(&b);
  return c;
}

struct slm_constraint *slm_constraint_new_choice(const struct slm_vocab_index *vi,
                                                 const char *const *choices, size_t n,
                                                 const struct slm_constraint_params *params,
                                                 struct slm_constraint_error *err) {
  size_t total = 0;
  for (size_t i = 0; i < n; i++) total += strlen(choices[i]) + 1;
  if (n == 0) {
    set_err(err, -EINVAL, "choice", "", "no choices");
    return NULL;
  }
  char *buf = malloc(total);
  if (!buf) {
    set_err(err, -ENOMEM, "", "", "out of memory");
    return NULL;
  }
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    size_t k = strlen(choices[i]);
    memcpy(buf + o, choices[i], k + 1);
    o += k + 1;
  }
  struct slm_constraint *c = slm_constraint_new(vi, SLM_CONSTRAINT_CHOICE, buf, total, params, err);
  free(buf);
  return c;
}

struct slm_constraint *slm_constraint_ref(struct slm_constraint *c) {
  if (c) atomic_fetch_add(&c->refs, 1);
  return c;
}

void slm_constraint_free(struct slm_constraint *c) {
  if (!c || atomic_fetch_sub(&c->refs, 1) != 1) return;
  cn_grammar_free(&c->g);
  cn_mcache_free(c->cache);
  free(c->relaxed);
  free(c);
}

bool slm_constraint_is_empty(const struct slm_constraint *c) { return c->g.empty; }
const char *slm_constraint_relaxed_keywords(const struct slm_constraint *c) {
  return c->relaxed ? c->relaxed : "";
}
uint32_t slm_constraint_n_states(const struct slm_constraint *c) { return c->g.ns; }
size_t slm_constraint_cache_bytes(const struct slm_constraint *c) { return cn_mcache_bytes(c->cache); }

/* ---------------------------------------------------------------- matchers */

struct slm_matcher *slm_matcher_new(struct slm_constraint *c) {
  struct slm_matcher *mt = calloc(1, sizeof *mt);
  if (!mt) return NULL;
  mt->c = slm_constraint_ref(c);
  mt->budget = -1;
  if (cn_match_init(&mt->m, &c->g, c->p.max_depth, 64)) goto fail;
  if (c->vi) {
    if (cn_walker_init(&mt->w, &c->vi->tt, 64)) goto fail;
    mt->walker_ok = true;
  }
  return mt;
fail:
  slm_matcher_free(mt);
  return NULL;
}

void slm_matcher_free(struct slm_matcher *mt) {
  if (!mt) return;
  cn_match_free(&mt->m);
  if (mt->walker_ok) cn_walker_free(&mt->w);
  free(mt->bits);
  slm_constraint_free(mt->c);
  free(mt);
}

void slm_matcher_reset(struct slm_matcher *mt) {
  cn_match_reset(&mt->m);
  mt->budget = -1;
}

static void maybe_gc(struct slm_matcher *mt) {
  if (mt->m.nn > 65536) cn_match_gc(&mt->m);
}

/* Fewest bytes to the end after token T (INF32 if T is refused). */
static uint32_t dist_after(struct slm_matcher *mt, slm_token t) {
  const struct cn_toktrie *tt = &mt->c->vi->tt;
  if (tt->kind[t] == TT_EOG) return cn_match_can_end(&mt->m) ? 0 : INF32;
  if (tt->kind[t] != TT_BYTES) return INF32;
  /* step on a copy of the configuration */
  struct cn_match *m = &mt->m;
  uint32_t saved_n = m->ncfg;
  struct mpair saved[64];
  memcpy(saved, m->cfg, saved_n * sizeof *saved);
  uint32_t d = INF32;
  if (cn_match_bytes(m, tt->bytes + tt->tok_off[t], tt->tok_off[t + 1] - tt->tok_off[t]) == 0) {
    d = cn_match_dist(m);
    memcpy(m->cfg, saved, saved_n * sizeof *saved);
    m->ncfg = saved_n;
  }
  return d;
}

static bool budget_tight(struct slm_matcher *mt) {
  if (mt->budget < 0) return false;
  uint64_t reach = (uint64_t)cn_match_dist(&mt->m) +
                   (uint64_t)mt->c->vi->tt.max_len * mt->c->g.dgrow;
  return (uint64_t)mt->budget < reach + 1;
}

bool slm_matcher_token_allowed(struct slm_matcher *mt, slm_token t) {
  if (!mt->c->vi || t < 0 || t >= mt->c->vi->tt.n_vocab) return false;
  maybe_gc(mt);
  if (!cn_token_ok(&mt->m, &mt->c->vi->tt, t)) return false;
  if (budget_tight(mt)) {
    uint32_t d = dist_after(mt, t);
    if ((int64_t)d > (int64_t)mt->budget - 1) return false;
  }
  return true;
}

int32_t slm_matcher_fill_mask(struct slm_matcher *mt, uint32_t *bits) {
  if (!mt->c->vi) return -EINVAL;
  maybe_gc(mt);
  const struct cn_toktrie *tt = &mt->c->vi->tt;
  int64_t n = cn_mask(&mt->m, tt, mt->c->cache, &mt->w, bits);
  if (n < 0) return (int32_t)n;
  if (n > 0 && budget_tight(mt)) {
    size_t words = ((size_t)tt->n_vocab + 31) / 32;
    n = 0;
    for (size_t k = 0; k < words; k++)
      for (uint32_t v = bits[k]; v; v &= v - 1) {
        int32_t t = (int32_t)(k * 32 + (uint32_t)__builtin_ctz(v));
        if ((int64_t)dist_after(mt, t) > (int64_t)mt->budget - 1) bits[k] &= ~(1u << (t & 31));
        else n++;
      }
  }
  return (int32_t)n;
}

int slm_matcher_accept_token(struct slm_matcher *mt, slm_token t) {
  if (!mt->c->vi || t < 0 || t >= mt->c->vi->tt.n_vocab) return -EINVAL;
  const struct cn_toktrie *tt = &mt->c->vi->tt;
  maybe_gc(mt);
  if (tt->kind[t] == TT_EOG) return cn_match_can_end(&mt->m) ? 0 : -EINVAL;
  if (tt->kind[t] != TT_BYTES) return -EINVAL;
  int rc = cn_match_bytes(&mt->m, tt->bytes + tt->tok_off[t], tt->tok_off[t + 1] - tt->tok_off[t]);
  if (mt->m.err) return -ENOMEM;
  if (rc) return -EINVAL;
  if (mt->budget > 0) mt->budget--;
  return 0;
}

int slm_matcher_accept_bytes(struct slm_matcher *mt, const char *bytes, size_t len) {
  maybe_gc(mt);
  int rc = cn_match_bytes(&mt->m, (const uint8_t *)bytes, len);
  if (mt->m.err) return -ENOMEM;
  return rc ? -EINVAL : 0;
}

bool slm_matcher_can_end(const struct slm_matcher *mt) { return cn_match_can_end(&mt->m); }

bool slm_matcher_is_done(const struct slm_matcher *mt) {
  if (!cn_match_can_end(&mt->m)) return false;
  struct cn_match *m = (struct cn_match *)&mt->m;
  struct mpair out[64];
  for (uint32_t k = 0; k < m->ncfg; k++)
    for (int b = 0; b < 256; b++) {
      uint32_t n = 0;
      cn_match_step(m, m->cfg[k].g, m->cfg[k].p, (uint8_t)b, out, &n, 64, NULL);
      if (n) return false;
    }
  return true;
}

uint32_t slm_matcher_bytes_to_end(const struct slm_matcher *mt) { return cn_match_dist(&mt->m); }

int32_t slm_matcher_n_vocab(const struct slm_matcher *mt) { return mt->c->vi ? mt->c->vi->tt.n_vocab : 0; }

void slm_matcher_set_budget(struct slm_matcher *mt, int32_t tokens_left) {
  mt->budget = tokens_left < 0 ? -1 : tokens_left;
}

/* ---------------------------------------------------------------- cache */

struct cc_entry {
  uint64_t hash;
  enum slm_constraint_kind kind;
  struct slm_constraint_params p;
  char *text;
  size_t len;
  struct slm_constraint *c;
  uint64_t used;
};

struct slm_constraint_cache {
  const struct slm_vocab_index *vi;
  pthread_mutex_t mu;
  struct cc_entry *e;
  size_t n, max;
  uint64_t clock;
};

struct slm_constraint_cache *slm_constraint_cache_new(const struct slm_vocab_index *vi,
                                                      size_t max_entries) {
  struct slm_constraint_cache *cc = calloc(1, sizeof *cc);
  if (!cc) return NULL;
  cc->vi = vi;
  cc->max = max_entries ? max_entries : 1;
  cc->e = calloc(cc->max, sizeof *cc->e);
  if (!cc->e || pthread_mutex_init(&cc->mu, NULL)) {
    free(cc->e);
    free(cc);
    return NULL;
  }
  return cc;
}

void slm_constraint_cache_free(struct slm_constraint_cache *cc) {
  if (!cc) return;
  for (size_t i = 0; i < cc->n; i++) {
    slm_constraint_free(cc->e[i].c);
    free(cc->e[i].text);
  }
  free(cc->e);
  pthread_mutex_destroy(&cc->mu);
  free(cc);
}

static uint64_t fnv(const void *p, size_t n, uint64_t h) {
  const unsigned char *s = p;
  for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ull;
  return h;
}

static bool same_params(const struct slm_constraint_params *a, const struct slm_constraint_params *b) {
  return a->whitespace == b->whitespace && a->all_escapes == b->all_escapes &&
         a->relaxed == b->relaxed && a->openapi_nullable == b->openapi_nullable &&
         a->max_depth == b->max_depth && a->max_states == b->max_states &&
         a->mask_cache_bytes == b->mask_cache_bytes;
}

struct slm_constraint *slm_constraint_cache_get(struct slm_constraint_cache *cc,
                                                enum slm_constraint_kind kind, const char *text,
                                                size_t len, const struct slm_constraint_params *params,
                                                struct slm_constraint_error *err) {
  struct slm_constraint_params p = params ? *params : slm_constraint_default_params();
  uint64_t h = fnv(text, len, 0xcbf29ce484222325ull ^ (uint64_t)kind);
  pthread_mutex_lock(&cc->mu);
  for (size_t i = 0; i < cc->n; i++) {
    struct cc_entry *e = &cc->e[i];
    if (e->hash == h && e->kind == kind && e->len == len && same_params(&e->p, &p) &&
        !memcmp(e->text, text, len)) {
      e->used = ++cc->clock;
      struct slm_constraint *c = slm_constraint_ref(e->c);
      pthread_mutex_unlock(&cc->mu);
      return c;
    }
  }
  pthread_mutex_unlock(&cc->mu);
  /* compile outside the lock (two threads may compile the same text; one result is kept) */
  struct slm_constraint *c = slm_constraint_new(cc->vi, kind, text, len, &p, err);
  if (!c) return NULL;
  char *copy = malloc(len ? len : 1);
  if (!copy) return c;   /* works, just not cached */
  memcpy(copy, text, len);
  pthread_mutex_lock(&cc->mu);
  size_t slot = cc->n;
  if (cc->n == cc->max) {
    slot = 0;
    for (size_t i = 1; i < cc->n; i++)
      if (cc->e[i].used < cc->e[slot].used) slot = i;
    slm_constraint_free(cc->e[slot].c);
    free(cc->e[slot].text);
  } else {
    cc->n++;
  }
  cc->e[slot] = (struct cc_entry){h, kind, p, copy, len, slm_constraint_ref(c), ++cc->clock};
  pthread_mutex_unlock(&cc->mu);
  return c;
}
