/*
 * gram.c: byte-level grammars: machines (NFAs over bytes with call edges) built by the schema
 * and regex compilers, then determinized, trimmed and laid out for the matcher.
 *
 * DESIGN
 * Each machine is determinized on its own: the symbols are the 256 bytes plus one symbol per
 * callee, so a call is an edge like any other ("run the callee, then continue at the target").
 * Liveness is decided over the whole grammar: a machine is productive when its start reaches an
 * accepting state through bytes and calls of productive machines (least fixed point); states and
 * calls that cannot lead to acceptance are dropped before minimization, so the matcher never lets
 * a token into a dead end. The run-time layout is one table row per state over the machine's
 * byte classes (bytes no state tells apart share a class), holding global target ids.
 * dist[s] is the fewest bytes from s to an accepting state of its machine (calls cost their
 * callee's shortest string): the matcher sums it over a stack to know how far the end is.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "slm/constrain/cn.h"

/* ---------------------------------------------------------------- builder */

void gb_init(struct gb *b) {
  memset(b, 0, sizeof *b);
  b->max_nfa_states = 2000000;
  b->max_dfa_states = 1000000;
  b->ws_flexible = true;
  b->all_escapes = true;
  b->any = -1;
}

void gb_free(struct gb *b) {
  for (size_t i = 0; i < b->nm; i++) free(b->m[i].e);
  free(b->m);
  if (b->chm_init) cn_km_free(&b->chm);
  free(b->chm_id);
  free(b->mfrag);
  memset(b, 0, sizeof *b);
}

int gb_machine(struct gb *b) {
  if (b->err) return -1;
  if (cn_grow(&b->m, &b->cap_m, b->nm + 1, sizeof *b->m)) {
    b->err = -ENOMEM;
    return -1;
  }
  if (cn_grow(&b->mfrag, &b->cap_mfrag, b->nm + 1, sizeof *b->mfrag)) {
    b->err = -ENOMEM;
    return -1;
  }
  b->mfrag[b->nm] = NULL;
  struct gb_machine *m = &b->m[b->nm];
  memset(m, 0, sizeof *m);
  m->n = 2;
  m->start = 0;
  m->accept = 1;
  return (int)b->nm++;
}

uint32_t gb_state(struct gb *b, int mi) {
  if (b->err || mi < 0) return UINT32_MAX;
  struct gb_machine *m = &b->m[mi];
  if (m->n >= b->max_nfa_states) {
    b->err = -E2BIG;
    return UINT32_MAX;
  }
  return m->n++;
}

static void add_edge(struct gb *b, int mi, uint32_t from, uint32_t to, int32_t kind, uint8_t lo,
                     uint8_t hi) {
  if (b->err || mi < 0 || from == UINT32_MAX || to == UINT32_MAX) {
    if (!b->err) b->err = -EINVAL;
    return;
  }
  struct gb_machine *m = &b->m[mi];
  if (cn_grow(&m->e, &m->cap_e, m->ne + 1, sizeof *m->e)) {
    b->err = -ENOMEM;
    return;
  }
  m->e[m->ne++] = (struct gnfa_edge){from, to, kind, lo, hi};
}

void gb_eps(struct gb *b, int m, uint32_t from, uint32_t to) { add_edge(b, m, from, to, GB_EPS, 0, 0); }
void gb_bytes(struct gb *b, int m, uint32_t from, uint32_t to, uint8_t lo, uint8_t hi) {
  add_edge(b, m, from, to, GB_BYTES, lo, hi);
}
void gb_call(struct gb *b, int m, uint32_t from, uint32_t to, int callee) {
  if (callee < 0) {
    if (!b->err) b->err = -EINVAL;
    return;
  }
  add_edge(b, m, from, to, callee, 0, 0);
}

uint32_t gb_lit(struct gb *b, int m, uint32_t from, const char *s, size_t len) {
  uint32_t cur = from;
  for (size_t i = 0; i < len; i++) {
    uint32_t t = gb_state(b, m);
    gb_bytes(b, m, cur, t, (uint8_t)s[i], (uint8_t)s[i]);
    cur = t;
  }
  return cur;
}

uint32_t gb_ws(struct gb *b, int m, uint32_t from) {
  if (!b->ws_flexible) return from;
  uint32_t w = gb_state(b, m);
  gb_eps(b, m, from, w);
  gb_bytes(b, m, w, w, ' ', ' ');
  gb_bytes(b, m, w, w, '\t', '\n');
  gb_bytes(b, m, w, w, '\r', '\r');
  return w;
}

/* -?(0|[1-9][0-9]*), then (\.[0-9]+)?([eE][+-]?[0-9]+)? unless INT_ONLY */
uint32_t gb_number(struct gb *b, int m, uint32_t from, bool int_only) {
  uint32_t s1 = gb_state(b, m), ip = gb_state(b, m), end = gb_state(b, m);
  gb_eps(b, m, from, s1);
  gb_bytes(b, m, from, s1, '-', '-');
  gb_bytes(b, m, s1, end, '0', '0');
  gb_bytes(b, m, s1, ip, '1', '9');
  gb_bytes(b, m, ip, ip, '0', '9');
  gb_eps(b, m, ip, end);
  if (int_only) return end;
  uint32_t dot = gb_state(b, m), fr = gb_state(b, m), e1 = gb_state(b, m), e2 = gb_state(b, m),
           ed = gb_state(b, m), fin = gb_state(b, m);
  gb_bytes(b, m, end, dot, '.', '.');
  gb_bytes(b, m, dot, fr, '0', '9');
  gb_bytes(b, m, fr, fr, '0', '9');
  gb_eps(b, m, end, fin);
  gb_eps(b, m, fr, fin);
  gb_bytes(b, m, end, e1, 'e', 'e');
  gb_bytes(b, m, end, e1, 'E', 'E');
  gb_bytes(b, m, fr, e1, 'e', 'e');
  gb_bytes(b, m, fr, e1, 'E', 'E');
  gb_bytes(b, m, e1, e2, '+', '+');
  gb_bytes(b, m, e1, e2, '-', '-');
  gb_eps(b, m, e1, e2);
  gb_bytes(b, m, e2, ed, '0', '9');
  gb_bytes(b, m, ed, ed, '0', '9');
  gb_eps(b, m, ed, fin);
  return fin;
}

/* The any-value machine's NFA, built into a new machine of B (its calls are to itself). */
static int any_value_nfa(struct gb *b) {
  int m = gb_machine(b);
  if (m < 0) return -1;
  struct gb_machine *mm = &b->m[m];
  uint32_t st = mm->start, acc = mm->accept;
  struct cdfa all;
  if (cdfa_all(&all)) {
    b->err = -ENOMEM;
    return -1;
  }
  /* string */
  gb_eps(b, m, gb_cdfa(b, m, st, &all, false), acc);
  /* number */
  gb_eps(b, m, gb_number(b, m, st, false), acc);
  gb_eps(b, m, gb_lit(b, m, st, "true", 4), acc);
  gb_eps(b, m, gb_lit(b, m, st, "false", 5), acc);
  gb_eps(b, m, gb_lit(b, m, st, "null", 4), acc);
  /* array */
  uint32_t a0 = gb_ws(b, m, gb_lit(b, m, st, "[", 1));
  gb_bytes(b, m, a0, acc, ']', ']');
  uint32_t av = gb_state(b, m);
  gb_call(b, m, a0, av, m);
  uint32_t aw = gb_ws(b, m, av);
  gb_bytes(b, m, aw, acc, ']', ']');
  uint32_t ac = gb_ws(b, m, gb_lit(b, m, aw, ",", 1));
  gb_call(b, m, ac, av, m);
  /* object */
  uint32_t o0 = gb_ws(b, m, gb_lit(b, m, st, "{", 1));
  gb_bytes(b, m, o0, acc, '}', '}');
  uint32_t ok = gb_ws(b, m, gb_cdfa(b, m, o0, &all, false));
  uint32_t oc = gb_ws(b, m, gb_lit(b, m, ok, ":", 1));
  uint32_t ov = gb_state(b, m);
  gb_call(b, m, oc, ov, m);
  uint32_t ow = gb_ws(b, m, ov);
  gb_bytes(b, m, ow, acc, '}', '}');
  uint32_t on = gb_ws(b, m, gb_lit(b, m, ow, ",", 1));
  uint32_t ok2 = gb_ws(b, m, gb_cdfa(b, m, on, &all, false));
  gb_eps(b, m, ok2, ok);
  cdfa_free(&all);
  return b->err ? -1 : m;
}

/* ---------------------------------------------------------------- determinization */

/* One machine after subset construction: per state, byte ranges and calls. */
struct dm_edge { uint16_t lo, hi; uint32_t to; };
struct dm_call { uint32_t callee, to; };
struct dmach {
  uint32_t n;
  uint8_t *acc;
  uint32_t *eoff;          /* n + 1 */
  struct dm_edge *e;
  uint32_t *coff;          /* n + 1 */
  struct dm_call *c;
  size_t ne, nc;
};

static void dmach_free(struct dmach *d) {
  free(d->acc);
  free(d->eoff);
  free(d->e);
  free(d->coff);
  free(d->c);
  memset(d, 0, sizeof *d);
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

struct cl_ctx {
  const struct gb_machine *m;
  uint32_t *off;               /* csr */
  struct gnfa_edge *e;
  uint32_t *mark, gen;
  uint32_t *stack, *set;
  size_t nset;
};

static void cl_closure(struct cl_ctx *c, const uint32_t *seeds, size_t n) {
  c->gen++;
  size_t sp = 0;
  c->nset = 0;
  for (size_t i = 0; i < n; i++)
    if (c->mark[seeds[i]] != c->gen) c->mark[seeds[i]] = c->gen, c->stack[sp++] = seeds[i];
  while (sp) {
    uint32_t q = c->stack[--sp];
    c->set[c->nset++] = q;
    for (uint32_t k = c->off[q]; k < c->off[q + 1]; k++)
      if (c->e[k].kind == GB_EPS && c->mark[c->e[k].to] != c->gen)
        c->mark[c->e[k].to] = c->gen, c->stack[sp++] = c->e[k].to;
  }
  qsort(c->set, c->nset, sizeof *c->set, cmp_u32);
}

static int determinize(const struct gb_machine *m, size_t max_states, size_t *budget,
                       struct dmach *out) {
  memset(out, 0, sizeof *out);
  int rc = -ENOMEM;
  struct cl_ctx c;
  memset(&c, 0, sizeof c);
  c.m = m;
  struct cn_keymap km;
  memset(&km, 0, sizeof km);
  size_t cap_acc = 0, cap_eoff = 0, cap_e = 0, cap_coff = 0, cap_c = 0;
  uint32_t *bucket = NULL, *bn = NULL, *tmp = NULL, *byte_to = NULL;
  size_t cap_bucket = 0;
  struct { uint32_t callee, to; } *calls = NULL;
  size_t cap_calls = 0;
  size_t nn = m->n ? m->n : 1;
  c.off = calloc(nn + 1, sizeof *c.off);
  c.e = malloc((m->ne ? m->ne : 1) * sizeof *c.e);
  c.mark = calloc(nn, sizeof *c.mark);
  c.stack = malloc(nn * sizeof *c.stack);
  c.set = malloc(nn * sizeof *c.set);
  tmp = malloc((nn + 1) * sizeof *tmp);
  size_t cap_bn = 0, cap_bt = 0;
  if (!c.off || !c.e || !c.mark || !c.stack || !c.set || !tmp) goto done;
  if (cn_km_init(&km)) goto done;
  for (size_t i = 0; i < m->ne; i++) c.off[m->e[i].from + 1]++;
  for (uint32_t s = 0; s < m->n; s++) c.off[s + 1] += c.off[s];
  {
    uint32_t *fill = malloc((nn + 1) * sizeof *fill);
    if (!fill) goto done;
    memcpy(fill, c.off, (nn + 1) * sizeof *fill);
    for (size_t i = 0; i < m->ne; i++) c.e[fill[m->e[i].from]++] = m->e[i];
    free(fill);
  }
  bool added;
  cl_closure(&c, &m->start, 1);
  if (cn_km_get(&km, c.set, c.nset, &added) == UINT32_MAX) goto done;
  for (uint32_t cur = 0; cur < km.nkeys; cur++) {
    if (cur >= max_states || *budget == 0) {
      rc = -E2BIG;
      goto done;
    }
    (*budget)--;
    size_t ko = km.key_off[cur], n = km.key_off[cur + 1] - ko;
    memcpy(tmp, km.pool + ko, n * sizeof *tmp);
    if (cn_grow(&out->acc, &cap_acc, cur + 1, 1) ||
        cn_grow(&out->eoff, &cap_eoff, cur + 2, sizeof *out->eoff) ||
        cn_grow(&out->coff, &cap_coff, cur + 2, sizeof *out->coff))
      goto done;
    out->n = cur + 1;
    out->eoff[cur] = (uint32_t)out->ne;
    out->coff[cur] = (uint32_t)out->nc;
    bool acc = false;
    for (size_t i = 0; i < n; i++)
      if (tmp[i] == m->accept) acc = true;
    out->acc[cur] = acc;
    /* byte edges of the members, swept over their boundaries: each elementary byte interval
     * gets the closure of the targets covering it */
    size_t nbe = 0, ncalls = 0;
    for (size_t i = 0; i < n; i++)
      for (uint32_t k = c.off[tmp[i]]; k < c.off[tmp[i] + 1]; k++) {
        const struct gnfa_edge *e = &c.e[k];
        if (e->kind == GB_BYTES) nbe++;
        else if (e->kind >= 0) ncalls++;
      }
    if (nbe) {
      if (cn_grow(&bucket, &cap_bucket, 3 * nbe + 1, sizeof *bucket) ||
          cn_grow(&bn, &cap_bn, nbe + 1, sizeof *bn) || cn_grow(&byte_to, &cap_bt, nbe + 1, sizeof *byte_to))
        goto done;
      uint32_t *blo = bucket, *bhi = bucket + nbe, *bto = bucket + 2 * nbe;
      uint8_t bnd[257];
      memset(bnd, 0, sizeof bnd);
      size_t q = 0;
      for (size_t i = 0; i < n; i++)
        for (uint32_t k = c.off[tmp[i]]; k < c.off[tmp[i] + 1]; k++) {
          const struct gnfa_edge *e = &c.e[k];
          if (e->kind != GB_BYTES) continue;
          blo[q] = e->lo, bhi[q] = e->hi, bto[q] = e->to, q++;
          bnd[e->lo] = 1;
          bnd[e->hi + 1] = 1;
        }
      uint32_t prev_to = UINT32_MAX;
      size_t prev_n = 0;
      for (unsigned v = 0; v < 256;) {
        unsigned w = v + 1;
        while (w < 256 && !bnd[w]) w++;
        /* interval [v, w - 1] */
        size_t u = 0;
        for (size_t k = 0; k < nbe; k++)
          if (blo[k] <= v && v <= bhi[k]) bn[u++] = bto[k];
        uint32_t to = UINT32_MAX;
        if (u) {
          qsort(bn, u, sizeof *bn, cmp_u32);
          size_t uu = 0;
          for (size_t k = 0; k < u; k++)
            if (k == 0 || bn[k] != bn[k - 1]) bn[uu++] = bn[k];
          if (prev_to != UINT32_MAX && uu == prev_n && !memcmp(byte_to, bn, uu * sizeof *bn)) {
            to = prev_to;
          } else {
            cl_closure(&c, bn, uu);
            to = cn_km_get(&km, c.set, c.nset, &added);
            if (to == UINT32_MAX) goto done;
            memcpy(byte_to, bn, uu * sizeof *bn);
            prev_n = uu;
            prev_to = to;
          }
        }
        if (to != UINT32_MAX) {
          if (out->ne > out->eoff[cur] && out->e[out->ne - 1].to == to && out->e[out->ne - 1].hi + 1u == v) {
            out->e[out->ne - 1].hi = (uint16_t)(w - 1);
          } else {
            if (cn_grow(&out->e, &cap_e, out->ne + 1, sizeof *out->e)) goto done;
            out->e[out->ne++] = (struct dm_edge){(uint16_t)v, (uint16_t)(w - 1), to};
          }
        }
        v = w;
      }
    }
    if (ncalls) {
      if (cn_grow(&calls, &cap_calls, ncalls, sizeof *calls)) goto done;
      size_t k2 = 0;
      for (size_t i = 0; i < n; i++)
        for (uint32_t k = c.off[tmp[i]]; k < c.off[tmp[i] + 1]; k++)
          if (c.e[k].kind >= 0) calls[k2].callee = (uint32_t)c.e[k].kind, calls[k2].to = c.e[k].to, k2++;
      /* group by callee (small counts: quadratic is fine) */
      for (size_t i = 0; i < k2; i++) {
        if (calls[i].callee == UINT32_MAX) continue;
        uint32_t callee = calls[i].callee;
        size_t nt = 0;
        for (size_t j = i; j < k2; j++)
          if (calls[j].callee == callee) {
            if (cn_grow(&bucket, &cap_bucket, nt + 1, sizeof *bucket)) goto done;
            bucket[nt++] = calls[j].to;
            if (j != i) calls[j].callee = UINT32_MAX;
          }
        qsort(bucket, nt, sizeof *bucket, cmp_u32);
        size_t u = 0;
        for (size_t j = 0; j < nt; j++)
          if (j == 0 || bucket[j] != bucket[j - 1]) bucket[u++] = bucket[j];
        cl_closure(&c, bucket, u);
        uint32_t to = cn_km_get(&km, c.set, c.nset, &added);
        if (to == UINT32_MAX) goto done;
        if (cn_grow(&out->c, &cap_c, out->nc + 1, sizeof *out->c)) goto done;
        out->c[out->nc++] = (struct dm_call){callee, to};
      }
    }
  }
  out->eoff[out->n] = (uint32_t)out->ne;
  out->coff[out->n] = (uint32_t)out->nc;
  rc = 0;
done:
  free(c.off);
  free(c.e);
  free(c.mark);
  free(c.stack);
  free(c.set);
  free(tmp);
  free(bn);
  free(byte_to);
  free(bucket);
  free(calls);
  cn_km_free(&km);
  if (rc) dmach_free(out);
  return rc;
}

/* ---------------------------------------------------------------- the any-value machine */

/* The same for every schema that leaves a value free (additionalProperties, {}, ...): determinized
 * once per process and (whitespace, escapes) flavour, then copied into each grammar that needs it,
 * its calls to itself renamed. */
static pthread_mutex_t any_mu = PTHREAD_MUTEX_INITIALIZER;
static struct dmach any_cache[2][2];
static bool any_ready[2][2];

static int dmach_copy(const struct dmach *a, uint32_t self, struct dmach *o) {
  memset(o, 0, sizeof *o);
  o->n = a->n;
  o->ne = a->ne;
  o->nc = a->nc;
  o->acc = malloc(a->n ? a->n : 1);
  o->eoff = malloc(((size_t)a->n + 1) * sizeof *o->eoff);
  o->coff = malloc(((size_t)a->n + 1) * sizeof *o->coff);
  o->e = malloc((a->ne ? a->ne : 1) * sizeof *o->e);
  o->c = malloc((a->nc ? a->nc : 1) * sizeof *o->c);
  if (!o->acc || !o->eoff || !o->coff || !o->e || !o->c) {
    dmach_free(o);
    return -ENOMEM;
  }
  memcpy(o->acc, a->acc, a->n);
  memcpy(o->eoff, a->eoff, ((size_t)a->n + 1) * sizeof *o->eoff);
  memcpy(o->coff, a->coff, ((size_t)a->n + 1) * sizeof *o->coff);
  if (a->ne) memcpy(o->e, a->e, a->ne * sizeof *o->e);
  for (size_t i = 0; i < a->nc; i++) o->c[i] = (struct dm_call){self, a->c[i].to};
  return 0;
}

static int64_t minimize(const struct dmach *d, const uint8_t *live, const uint8_t *prod,
                        uint32_t *cls);

/* D merged by the classes CLS (NCL of them; dead states UINT32_MAX). */
static int dmach_quotient(const struct dmach *d, const uint32_t *cls, uint32_t ncl, struct dmach *o) {
  memset(o, 0, sizeof *o);
  uint32_t *rep = malloc((ncl ? ncl : 1) * sizeof *rep);
  o->acc = calloc(ncl ? ncl : 1, 1);
  o->eoff = calloc((size_t)ncl + 1, sizeof *o->eoff);
  o->coff = calloc((size_t)ncl + 1, sizeof *o->coff);
  o->e = malloc((d->ne ? d->ne : 1) * sizeof *o->e);
  o->c = malloc((d->nc ? d->nc : 1) * sizeof *o->c);
  if (!rep || !o->acc || !o->eoff || !o->coff || !o->e || !o->c) {
    free(rep);
    dmach_free(o);
    return -ENOMEM;
  }
  for (uint32_t c = 0; c < ncl; c++) rep[c] = UINT32_MAX;
  for (uint32_t st = 0; st < d->n; st++)
    if (cls[st] != UINT32_MAX && rep[cls[st]] == UINT32_MAX) rep[cls[st]] = st;
  o->n = ncl;
  for (uint32_t c = 0; c < ncl; c++) {
    uint32_t st = rep[c];
    o->acc[c] = d->acc[st];
    o->eoff[c] = (uint32_t)o->ne;
    o->coff[c] = (uint32_t)o->nc;
    for (uint32_t j = d->eoff[st]; j < d->eoff[st + 1]; j++)
      if (cls[d->e[j].to] != UINT32_MAX) o->e[o->ne++] = (struct dm_edge){d->e[j].lo, d->e[j].hi, cls[d->e[j].to]};
    for (uint32_t j = d->coff[st]; j < d->coff[st + 1]; j++)
      if (cls[d->c[j].to] != UINT32_MAX) o->c[o->nc++] = (struct dm_call){d->c[j].callee, cls[d->c[j].to]};
  }
  o->eoff[ncl] = (uint32_t)o->ne;
  o->coff[ncl] = (uint32_t)o->nc;
  free(rep);
  return 0;
}

/* The cached determinized any-value machine as machine SELF of B. */
static int any_dmach(const struct gb *b, uint32_t self, struct dmach *out) {
  int wi = b->ws_flexible, ei = b->all_escapes;
  pthread_mutex_lock(&any_mu);
  int rc = 0;
  if (!any_ready[wi][ei]) {
    struct gb t;
    gb_init(&t);
    t.ws_flexible = b->ws_flexible;
    t.all_escapes = b->all_escapes;
    int m = any_value_nfa(&t);
    size_t budget = SIZE_MAX;
    struct dmach raw;
    rc = m == 0 && !t.err ? determinize(&t.m[0], SIZE_MAX, &budget, &raw) : -ENOMEM;
    gb_free(&t);
    if (!rc) {
      uint8_t *live = malloc(raw.n ? raw.n : 1), prod = 1;
      uint32_t *cls = malloc((raw.n ? raw.n : 1) * sizeof *cls);
      int64_t k = -ENOMEM;
      if (live && cls) {
        memset(live, 1, raw.n);   /* every state of it can finish a value */
        k = minimize(&raw, live, &prod, cls);
      }
      rc = k < 0 ? -ENOMEM : dmach_quotient(&raw, cls, (uint32_t)k, &any_cache[wi][ei]);
      free(live);
      free(cls);
      dmach_free(&raw);
    }
    if (!rc) any_ready[wi][ei] = true;
  }
  if (!rc) rc = dmach_copy(&any_cache[wi][ei], self, out);
  pthread_mutex_unlock(&any_mu);
  return rc;
}

/* ---------------------------------------------------------------- embedded string automata */

/* The byte automaton of a small code point language (a string value, a key, a number text) is
 * built once per process and flavour: determinized and minimized alone, then copied into every
 * machine that needs it. The same few languages ("any string", common formats, small enums)
 * recur in most schemas, and an embedded minimal automaton keeps the enclosing determinization
 * near linear. Entries are immutable; the map is guarded by a mutex and capped. */
#define FRAG_MAX_ENTRIES 8192
#define FRAG_MAX_CDFA 31   /* larger ones use one-character machines (calls): built directly */
static pthread_mutex_t frag_mu = PTHREAD_MUTEX_INITIALIZER;
static struct cn_keymap frag_km;
static bool frag_km_ok;
static struct dmach **frag_val;
static size_t frag_cap;

static const struct dmach *frag_get(const struct gb *b, const struct cdfa *d, bool raw) {
  uint32_t key[1 + 3 + 1024];
  size_t n = 0;
  size_t ne = d->off[d->n];
  if (4 + d->n * 2 + ne * 3 > sizeof key / sizeof key[0]) return NULL;
  key[n++] = (uint32_t)raw | (uint32_t)b->ws_flexible << 1 | (uint32_t)b->all_escapes << 2;
  key[n++] = d->n;
  for (uint32_t st = 0; st < d->n; st++) key[n++] = d->acc[st] | (d->off[st + 1] - d->off[st]) << 1;
  for (size_t k = 0; k < ne; k++) key[n++] = d->e[k].lo, key[n++] = d->e[k].hi, key[n++] = d->e[k].to;
  const struct dmach *res = NULL;
  pthread_mutex_lock(&frag_mu);
  if (!frag_km_ok && cn_km_init(&frag_km) == 0) frag_km_ok = true;
  if (frag_km_ok && frag_km.nkeys < FRAG_MAX_ENTRIES) {
    bool added;
    uint32_t id = cn_km_get(&frag_km, key, n, &added);
    if (id != UINT32_MAX && !added) {
      res = frag_val[id];
    } else if (id != UINT32_MAX && cn_grow(&frag_val, &frag_cap, id + 1, sizeof *frag_val) == 0) {
      frag_val[id] = NULL;
      struct gb t;
      gb_init(&t);
      t.ws_flexible = b->ws_flexible;
      t.all_escapes = b->all_escapes;
      int m = gb_machine(&t);
      uint32_t e = m == 0 ? gb_cdfa_direct(&t, 0, t.m[0].start, d, raw) : UINT32_MAX;
      gb_eps(&t, 0, e, t.m[0].accept);
      struct dmach raw_d;
      size_t budget = SIZE_MAX;
      if (!t.err && t.nm == 1 && determinize(&t.m[0], SIZE_MAX, &budget, &raw_d) == 0) {
        uint8_t *live = malloc(raw_d.n ? raw_d.n : 1), prod = 1;
        uint32_t *cls = malloc((raw_d.n ? raw_d.n : 1) * sizeof *cls);
        struct dmach *q = calloc(1, sizeof *q);
        if (live && cls && q) {
          memset(live, 1, raw_d.n);
          int64_t k = minimize(&raw_d, live, &prod, cls);
          if (k > 0 && dmach_quotient(&raw_d, cls, (uint32_t)k, q) == 0) frag_val[id] = q, q = NULL;
        }
        free(live);
        free(cls);
        free(q);
        dmach_free(&raw_d);
      }
      gb_free(&t);
      res = frag_val[id];
    }
  }
  pthread_mutex_unlock(&frag_mu);
  return res;
}

uint32_t gb_cdfa(struct gb *b, int m, uint32_t from, const struct cdfa *d, bool raw) {
  if (b->err) return UINT32_MAX;
  const struct dmach *f = d->n <= FRAG_MAX_CDFA ? frag_get(b, d, raw) : NULL;
  if (!f) return gb_cdfa_direct(b, m, from, d, raw);
  uint32_t base = b->m[m].n;
  for (uint32_t st = 0; st < f->n; st++)
    if (gb_state(b, m) == UINT32_MAX) return UINT32_MAX;
  uint32_t end = gb_state(b, m);
  gb_eps(b, m, from, base);
  for (uint32_t st = 0; st < f->n; st++) {
    if (f->acc[st]) gb_eps(b, m, base + st, end);
    for (uint32_t j = f->eoff[st]; j < f->eoff[st + 1]; j++)
      gb_bytes(b, m, base + st, base + f->e[j].to, (uint8_t)f->e[j].lo, (uint8_t)f->e[j].hi);
  }
  return b->err ? UINT32_MAX : end;
}

int gb_str_machine(struct gb *b, const struct cdfa *d) {
  if (b->err) return -1;
  for (int i = 0; i < b->nstrm; i++)
    if (b->strm[i].d == d) return b->strm[i].m;
  const struct dmach *f = d->n <= FRAG_MAX_CDFA ? frag_get(b, d, false) : NULL;
  int m = gb_machine(b);
  if (m < 0) return -1;
  if (f) {
    if (cn_grow(&b->mfrag, &b->cap_mfrag, (size_t)m + 1, sizeof *b->mfrag)) {
      b->err = -ENOMEM;
      return -1;
    }
    b->mfrag[m] = f;   /* the body: the cached automaton */
  } else {
    uint32_t e = gb_cdfa_direct(b, m, b->m[m].start, d, false);
    gb_eps(b, m, e, b->m[m].accept);
  }
  if (b->nstrm < (int)(sizeof b->strm / sizeof b->strm[0])) {
    b->strm[b->nstrm].d = d;
    b->strm[b->nstrm].m = m;
    b->nstrm++;
  }
  return m;
}

int gb_any_value(struct gb *b) {
  if (b->any >= 0) return b->any;
  int m = gb_machine(b);
  if (m < 0) return -1;
  b->any = m;   /* its body comes from the cache in gb_finish */
  return m;
}

/* Minimizes D restricted to LIVE states (transitions into dead states and calls into
 * unproductive machines dropped): the class of each state into CLS (UINT32_MAX for dead ones;
 * the start's class is 0); returns the number of classes, or -ENOMEM. Labels: bytes are split
 * at every edge boundary into intervals; a call is label 256 + callee. */
static int64_t minimize(const struct dmach *d, const uint8_t *live, const uint8_t *prod,
                        uint32_t *cls) {
  uint32_t n = d->n;
  int64_t res = -ENOMEM;
  uint8_t bound[257];
  memset(bound, 0, sizeof bound);
  bound[0] = 1;
  size_t m = 0;
  for (uint32_t s = 0; s < n; s++) {
    if (!live[s]) continue;
    for (uint32_t j = d->eoff[s]; j < d->eoff[s + 1]; j++)
      if (live[d->e[j].to]) bound[d->e[j].lo] = 1, bound[d->e[j].hi + 1] = 1;
  }
  uint32_t iv[257];   /* byte -> interval */
  uint32_t ni = 0;
  for (int v = 0; v < 256; v++) {
    if (bound[v] && v) ni++;
    iv[v] = ni;
  }
  ni++;
  for (uint32_t s = 0; s < n; s++) {
    if (!live[s]) continue;
    for (uint32_t j = d->eoff[s]; j < d->eoff[s + 1]; j++)
      if (live[d->e[j].to]) m += iv[d->e[j].hi] - iv[d->e[j].lo] + 1;
    m += d->coff[s + 1] - d->coff[s];
  }
  uint32_t *T = malloc((m ? m : 1) * sizeof *T), *L = malloc((m ? m : 1) * sizeof *L),
           *H = malloc((m ? m : 1) * sizeof *H);
  uint8_t *acc = malloc(n ? n : 1);
  if (!T || !L || !H || !acc) goto done;
  m = 0;
  for (uint32_t s = 0; s < n; s++) {
    acc[s] = live[s] && d->acc[s];
    if (!live[s]) continue;
    for (uint32_t j = d->eoff[s]; j < d->eoff[s + 1]; j++) {
      if (!live[d->e[j].to]) continue;
      for (uint32_t k = iv[d->e[j].lo]; k <= iv[d->e[j].hi]; k++)
        T[m] = s, L[m] = k, H[m] = d->e[j].to, m++;
    }
    for (uint32_t j = d->coff[s]; j < d->coff[s + 1]; j++) {
      if (!live[d->c[j].to] || !prod[d->c[j].callee]) continue;
      T[m] = s, L[m] = 256 + d->c[j].callee, H[m] = d->c[j].to, m++;
    }
  }
  uint32_t nb;
  if (cn_minimize(n, (uint32_t)m, T, L, H, acc, 0, cls, &nb)) goto done;
  res = nb;
done:
  free(T);
  free(L);
  free(H);
  free(acc);
  return res;
}

void cn_grammar_free(struct cn_grammar *g) {
  free(g->m);
  free(g->mach);
  free(g->next);
  free(g->row);
  free(g->acc);
  free(g->simple);
  free(g->call_off);
  free(g->calls);
  free(g->dist);
  free(g->cfi);
  free(g->cfset);
  memset(g, 0, sizeof *g);
}

#define INF32 (UINT32_MAX / 4)

int gb_finish(struct gb *b, struct cn_grammar *g) {
  memset(g, 0, sizeof *g);
  if (b->err) return b->err;
  size_t nm = b->nm;
  if (nm == 0) return -EINVAL;
  int rc = -ENOMEM;
  struct dmach *dm = calloc(nm, sizeof *dm);
  uint8_t **live = calloc(nm, sizeof *live);
  uint32_t **cls = calloc(nm, sizeof *cls);
  uint32_t *ncl = calloc(nm, sizeof *ncl);
  uint8_t *prod = calloc(nm, 1);
  if (!dm || !live || !cls || !ncl || !prod) goto done;
  size_t budget = b->max_dfa_states;
  for (size_t i = 0; i < nm; i++) {
    if ((int)i == b->any) rc = any_dmach(b, (uint32_t)i, &dm[i]);
    else if (b->mfrag && b->mfrag[i]) rc = dmach_copy((const struct dmach *)b->mfrag[i], 0, &dm[i]);
    else rc = determinize(&b->m[i], b->max_dfa_states, &budget, &dm[i]);
    if (rc) goto done;
    rc = -ENOMEM;
    live[i] = calloc(dm[i].n ? dm[i].n : 1, 1);
    cls[i] = malloc((dm[i].n ? dm[i].n : 1) * sizeof *cls[i]);
    if (!live[i] || !cls[i]) goto done;
  }
  /* liveness: states that reach acceptance through bytes and calls of productive machines (a
   * machine is productive when its start is live); repeated until no machine changes, each round
   * one backward search per machine */
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t i = 0; i < nm; i++) {
      struct dmach *d = &dm[i];
      uint32_t n = d->n;
      if (n == 0) continue;
      /* predecessors (byte edges and productive calls) */
      uint32_t *poff = calloc((size_t)n + 1, sizeof *poff);
      size_t ne = d->eoff[n] + d->coff[n];
      uint32_t *pred = malloc((ne ? ne : 1) * sizeof *pred), *stk = malloc(n * sizeof *stk);
      if (!poff || !pred || !stk) {
        free(poff);
        free(pred);
        free(stk);
        rc = -ENOMEM;
        goto done;
      }
      for (uint32_t st = 0; st < n; st++) {
        for (uint32_t j = d->eoff[st]; j < d->eoff[st + 1]; j++) poff[d->e[j].to + 1]++;
        for (uint32_t j = d->coff[st]; j < d->coff[st + 1]; j++)
          if (prod[d->c[j].callee]) poff[d->c[j].to + 1]++;
      }
      for (uint32_t st = 0; st < n; st++) poff[st + 1] += poff[st];
      for (uint32_t st = 0; st < n; st++) {
        for (uint32_t j = d->eoff[st]; j < d->eoff[st + 1]; j++) pred[poff[d->e[j].to]++] = st;
        for (uint32_t j = d->coff[st]; j < d->coff[st + 1]; j++)
          if (prod[d->c[j].callee]) pred[poff[d->c[j].to]++] = st;
      }
      for (uint32_t st = n; st > 0; st--) poff[st] = poff[st - 1];
      poff[0] = 0;
      size_t sp = 0;
      memset(live[i], 0, n);
      for (uint32_t st = 0; st < n; st++)
        if (d->acc[st]) live[i][st] = 1, stk[sp++] = st;
      while (sp) {
        uint32_t st = stk[--sp];
        for (uint32_t j = poff[st]; j < poff[st + 1]; j++)
          if (!live[i][pred[j]]) live[i][pred[j]] = 1, stk[sp++] = pred[j];
      }
      free(poff);
      free(pred);
      free(stk);
      if (!prod[i] && live[i][0]) prod[i] = 1, changed = true;
    }
  }
  /* minimize each machine */
  size_t total = 0;
  for (size_t i = 0; i < nm; i++) {
    if (!prod[i]) {
      ncl[i] = 0;
      continue;
    }
    int64_t k;
    if ((int)i == b->any || (b->mfrag && b->mfrag[i])) {   /* minimal already (cached), all live */
      for (uint32_t st = 0; st < dm[i].n; st++) cls[i][st] = st;
      k = dm[i].n;
    } else {
      k = minimize(&dm[i], live[i], prod, cls[i]);
    }
    if (k < 0) goto done;
    ncl[i] = (uint32_t)k;
    total += (size_t)k;
  }
  if (!prod[0]) {
    /* the root accepts nothing: one machine, one dead state */
    g->empty = true;
    g->nm = 1;
    g->ns = 1;
    g->m = calloc(1, sizeof *g->m);
    g->mach = calloc(1, sizeof *g->mach);
    g->row = calloc(1, sizeof *g->row);
    g->acc = calloc(1, 1);
    g->simple = calloc(1, 1);
    g->call_off = calloc(2, sizeof *g->call_off);
    g->dist = malloc(sizeof *g->dist);
    g->next = malloc(sizeof *g->next);
    g->calls = malloc(sizeof *g->calls);
    if (!g->m || !g->mach || !g->row || !g->acc || !g->simple || !g->call_off || !g->dist ||
        !g->next || !g->calls)
      goto done;
    g->simple[0] = 1;
    g->cfi = calloc(1, sizeof *g->cfi);
    g->cfset = calloc(1, sizeof *g->cfset);
    g->ncfset = 1;
    if (!g->cfi || !g->cfset) goto done;
    g->m[0].n = 1;
    g->m[0].ncls = 1;
    g->next[0] = -1;
    g->dist[0] = INF32;
    rc = 0;
    goto done;
  }
  g->nm = (uint32_t)nm;
  g->ns = (uint32_t)total;
  g->m = calloc(nm, sizeof *g->m);
  g->mach = calloc(total, sizeof *g->mach);
  g->row = calloc(total, sizeof *g->row);
  g->acc = calloc(total, 1);
  g->simple = calloc(total, 1);
  g->call_off = calloc(total + 1, sizeof *g->call_off);
  g->dist = calloc(total, sizeof *g->dist);
  if (!g->m || !g->mach || !g->row || !g->acc || !g->simple || !g->call_off || !g->dist) goto done;
  /* bases */
  uint32_t base = 0;
  for (size_t i = 0; i < nm; i++) {
    g->m[i].base = base;
    g->m[i].n = ncl[i];
    base += ncl[i];
  }
  /* byte classes per machine: bytes that every live state maps to the same class of target */
  size_t next_total = 0, calls_total = 0;
  for (size_t i = 0; i < nm; i++) {
    struct gm *gm = &g->m[i];
    if (!ncl[i]) {
      gm->ncls = 1;
      continue;
    }
    const struct dmach *d = &dm[i];
    /* classes: byte intervals (split at every live edge boundary) with equal columns */
    uint32_t *rep = malloc((size_t)ncl[i] * sizeof *rep);
    uint8_t bound[257];
    memset(bound, 0, sizeof bound);
    if (!rep) goto done;
    for (uint32_t c = 0; c < ncl[i]; c++) rep[c] = UINT32_MAX;
    for (uint32_t s = 0; s < d->n; s++)
      if (cls[i][s] != UINT32_MAX && rep[cls[i][s]] == UINT32_MAX) rep[cls[i][s]] = s;
    for (uint32_t c = 0; c < ncl[i]; c++) {
      uint32_t s = rep[c];
      for (uint32_t j = d->eoff[s]; j < d->eoff[s + 1]; j++)
        if (cls[i][d->e[j].to] != UINT32_MAX) bound[d->e[j].lo] = 1, bound[d->e[j].hi + 1] = 1;
      for (uint32_t j = d->coff[s]; j < d->coff[s + 1]; j++)
        if (cls[i][d->c[j].to] != UINT32_MAX && prod[d->c[j].callee]) calls_total++;
    }
    uint32_t nint = 0, ivstart[257];
    for (int v = 0; v < 256; v++)
      if (v == 0 || bound[v]) ivstart[nint++] = (uint32_t)v;
    uint32_t *col = malloc((size_t)nint * ncl[i] * sizeof *col);
    if (!col) {
      free(rep);
      goto done;
    }
    for (uint32_t c = 0; c < ncl[i]; c++) {
      uint32_t s = rep[c], row[256];
      for (int v = 0; v < 256; v++) row[v] = UINT32_MAX;
      for (uint32_t j = d->eoff[s]; j < d->eoff[s + 1]; j++) {
        uint32_t t = cls[i][d->e[j].to];
        for (unsigned v = d->e[j].lo; v <= d->e[j].hi; v++) row[v] = t;
      }
      for (uint32_t k = 0; k < nint; k++) col[(size_t)k * ncl[i] + c] = row[ivstart[k]];
    }
    struct cn_keymap ckm;
    if (cn_km_init(&ckm)) {
      free(col);
      free(rep);
      goto done;
    }
    uint32_t ivcls[257];
    for (uint32_t k = 0; k < nint; k++) {
      bool added;
      uint32_t id = cn_km_get(&ckm, col + (size_t)k * ncl[i], ncl[i], &added);
      if (id == UINT32_MAX) {
        cn_km_free(&ckm);
        free(col);
        free(rep);
        goto done;
      }
      ivcls[k] = id;
    }
    for (uint32_t k = 0, v = 0; v < 256; v++) {
      if (k + 1 < nint && ivstart[k + 1] == v) k++;
      gm->cls[v] = (uint8_t)ivcls[k];
    }
    uint32_t nclass = (uint32_t)ckm.nkeys;
    cn_km_free(&ckm);
    free(col);
    free(rep);
    gm->ncls = nclass;
    next_total += (size_t)nclass * ncl[i];
  }
  g->next = malloc((next_total ? next_total : 1) * sizeof *g->next);
  g->calls = malloc((calls_total ? calls_total : 1) * sizeof *g->calls);
  if (!g->next || !g->calls) goto done;
  size_t nx = 0, cx = 0;
  for (size_t i = 0; i < nm; i++) {
    if (!ncl[i]) continue;
    const struct dmach *d = &dm[i];
    struct gm *gm = &g->m[i];
    uint8_t *done_c = calloc(ncl[i], 1);
    if (!done_c) goto done;
    /* states in class order: find a representative per class */
    uint32_t *rep = malloc((size_t)ncl[i] * sizeof *rep);
    if (!rep) {
      free(done_c);
      goto done;
    }
    for (uint32_t s = 0; s < d->n; s++)
      if (cls[i][s] != UINT32_MAX && !done_c[cls[i][s]]) done_c[cls[i][s]] = 1, rep[cls[i][s]] = s;
    for (uint32_t c = 0; c < ncl[i]; c++) {
      uint32_t gs = gm->base + c, s = rep[c];
      g->mach[gs] = (uint32_t)i;
      g->row[gs] = (uint32_t)nx;
      g->acc[gs] = d->acc[s];
      g->simple[gs] = !d->acc[s];
      for (uint32_t k = 0; k < gm->ncls; k++) g->next[nx + k] = -1;
      for (uint32_t j = d->eoff[s]; j < d->eoff[s + 1]; j++) {
        if (cls[i][d->e[j].to] == UINT32_MAX) continue;
        int32_t t = (int32_t)(gm->base + cls[i][d->e[j].to]);
        for (unsigned v = d->e[j].lo; v <= d->e[j].hi; v++) g->next[nx + gm->cls[v]] = t;
      }
      nx += gm->ncls;
      g->call_off[gs] = (uint32_t)cx;
      for (uint32_t j = d->coff[s]; j < d->coff[s + 1]; j++) {
        if (cls[i][d->c[j].to] == UINT32_MAX || !prod[d->c[j].callee]) continue;
        g->calls[cx].machine = d->c[j].callee;
        g->calls[cx].ret = gm->base + cls[i][d->c[j].to];
        cx++;
      }
    }
    free(done_c);
    free(rep);
  }
  g->call_off[g->ns] = (uint32_t)cx;
  /* checks: callees are not nullable, no left recursion (calls at a start state, in a cycle) */
  for (uint32_t s = 0; s < cx; s++) {
    uint32_t callee = g->calls[s].machine;
    if (g->m[callee].n && g->acc[g->m[callee].base]) {
      rc = -ELOOP;
      goto done;
    }
  }
  {
    /* colours over machines following start-state calls */
    uint8_t *col = calloc(nm, 1);
    uint32_t *stk = malloc(nm * 2 * sizeof *stk);
    if (!col || !stk) {
      free(col);
      free(stk);
      goto done;
    }
    bool loop = false;
    for (size_t r = 0; r < nm && !loop; r++) {
      if (col[r] || !g->m[r].n) continue;
      size_t sp = 0;
      stk[sp++] = (uint32_t)r;
      stk[sp++] = 0;
      col[r] = 1;
      while (sp && !loop) {
        uint32_t mm = stk[sp - 2], k = stk[sp - 1];
        uint32_t st = g->m[mm].base;
        uint32_t cnt = g->call_off[st + 1] - g->call_off[st];
        if (k < cnt) {
          stk[sp - 1]++;
          uint32_t callee = g->calls[g->call_off[st] + k].machine;
          if (col[callee] == 1) loop = true;
          else if (!col[callee]) {
            col[callee] = 1;
            stk[sp++] = callee;
            stk[sp++] = 0;
          }
        } else {
          /* FIRST set: bytes from the start, then the callees' (all finished by now) */
          struct gm *gm = &g->m[mm];
          memset(gm->first, 0, sizeof gm->first);
          for (int v = 0; v < 256; v++)
            if (gr_next(g, st, (uint8_t)v) >= 0) gm->first[v >> 3] |= (uint8_t)(1u << (v & 7));
          for (uint32_t j = g->call_off[st]; j < g->call_off[st + 1]; j++)
            for (int w = 0; w < 32; w++) gm->first[w] |= g->m[g->calls[j].machine].first[w];
          col[mm] = 2;
          sp -= 2;
        }
      }
    }
    free(col);
    free(stk);
    if (loop) {
      rc = -ELOOP;
      goto done;
    }
  }
  /* per state: the bytes that may enter one of its calls (distinct sets shared) */
  g->cfi = calloc(g->ns, sizeof *g->cfi);
  g->cfset = calloc(1, sizeof *g->cfset);
  g->ncfset = 1;
  if (!g->cfi || !g->cfset) goto done;
  for (uint32_t s = 0; s < g->ns; s++) {
    if (g->call_off[s] == g->call_off[s + 1]) continue;
    uint8_t set[32];
    memset(set, 0, sizeof set);
    for (uint32_t j = g->call_off[s]; j < g->call_off[s + 1]; j++)
      for (int w = 0; w < 32; w++) set[w] |= g->m[g->calls[j].machine].first[w];
    uint32_t k;
    for (k = 1; k < g->ncfset && memcmp(g->cfset[k], set, 32); k++) {}
    if (k == g->ncfset) {
      if (k == 65535) {
        k = 0;   /* (never in practice) fall back to "may call": see cfirst users */
      } else {
        uint8_t(*ns)[32] = realloc(g->cfset, ((size_t)g->ncfset + 1) * sizeof *g->cfset);
        if (!ns) goto done;
        g->cfset = ns;
        memcpy(g->cfset[k], set, 32);
        g->ncfset++;
      }
    }
    g->cfi[s] = (uint16_t)k;
  }
  /* dist: fewest bytes to acceptance (a call costs its callee's shortest string). Dijkstra per
   * machine on the reversed transitions, from the accepting states; repeated while some
   * machine's shortest string (what its callers pay) changes. */
  {
    uint32_t *poff = calloc((size_t)g->ns + 1, sizeof *poff);
    size_t npred = 0;
    for (uint32_t st = 0; st < g->ns; st++) {
      const struct gm *gm = &g->m[g->mach[st]];
      for (uint32_t k = 0; k < gm->ncls; k++)
        if (g->next[g->row[st] + k] >= 0) npred++;
      npred += g->call_off[st + 1] - g->call_off[st];
    }
    struct pedge { uint32_t from, via; } *pred = malloc((npred ? npred : 1) * sizeof *pred);
    uint32_t *heap = malloc(((size_t)g->ns + npred + 1) * sizeof *heap);
    uint64_t *hk = malloc(((size_t)g->ns + npred + 1) * sizeof *hk);
    if (!poff || !pred || !heap || !hk) {
      free(poff);
      free(pred);
      free(heap);
      free(hk);
      goto done;
    }
    /* reversed edges: via = UINT32_MAX for a byte edge, else the callee */
    for (uint32_t st = 0; st < g->ns; st++) {
      const struct gm *gm = &g->m[g->mach[st]];
      for (uint32_t k = 0; k < gm->ncls; k++) {
        int32_t t = g->next[g->row[st] + k];
        if (t >= 0) poff[t + 1]++;
      }
      for (uint32_t j = g->call_off[st]; j < g->call_off[st + 1]; j++) poff[g->calls[j].ret + 1]++;
    }
    for (uint32_t st = 0; st < g->ns; st++) poff[st + 1] += poff[st];
    for (uint32_t st = 0; st < g->ns; st++) {
      const struct gm *gm = &g->m[g->mach[st]];
      for (uint32_t k = 0; k < gm->ncls; k++) {
        int32_t t = g->next[g->row[st] + k];
        if (t >= 0) pred[poff[t]++] = (struct pedge){st, UINT32_MAX};
      }
      for (uint32_t j = g->call_off[st]; j < g->call_off[st + 1]; j++)
        pred[poff[g->calls[j].ret]++] = (struct pedge){st, g->calls[j].machine};
    }
    for (uint32_t st = g->ns; st > 0; st--) poff[st] = poff[st - 1];
    poff[0] = 0;
    uint32_t *mlen = malloc(nm * sizeof *mlen);   /* the machines' shortest strings, last round */
    if (!mlen) {
      free(poff);
      free(pred);
      free(heap);
      free(hk);
      goto done;
    }
    for (size_t i = 0; i < nm; i++) mlen[i] = INF32;
    for (size_t round = 0; round <= nm + 1; round++) {
      for (uint32_t st = 0; st < g->ns; st++) g->dist[st] = g->acc[st] ? 0 : INF32;
      size_t hn = 0;
      for (uint32_t st = 0; st < g->ns; st++)
        if (g->acc[st]) heap[hn] = st, hk[hn] = 0, hn++;
      while (hn) {
        uint32_t st = heap[0];
        uint64_t key = hk[0];
        hn--;
        if (hn) {   /* sift the last entry down from the root */
          uint32_t ls = heap[hn];
          uint64_t lk = hk[hn];
          size_t i2 = 0;
          for (;;) {
            size_t c1 = 2 * i2 + 1, c2 = c1 + 1, mi = i2;
            uint64_t mk = lk;
            if (c1 < hn && hk[c1] < mk) mi = c1, mk = hk[c1];
            if (c2 < hn && hk[c2] < mk) mi = c2, mk = hk[c2];
            if (mi == i2) break;
            heap[i2] = heap[mi];
            hk[i2] = hk[mi];
            i2 = mi;
          }
          heap[i2] = ls;
          hk[i2] = lk;
        }
        if (key > g->dist[st]) continue;   /* stale */
        for (uint32_t j = poff[st]; j < poff[st + 1]; j++) {
          uint32_t w = pred[j].via == UINT32_MAX ? 1 : mlen[pred[j].via];
          if (w >= INF32) continue;
          uint64_t nd = key + w;
          uint32_t f = pred[j].from;
          if (nd >= g->dist[f]) continue;
          g->dist[f] = (uint32_t)nd;
          size_t i2 = hn++;
          while (i2 > 0 && hk[(i2 - 1) / 2] > nd) {
            heap[i2] = heap[(i2 - 1) / 2];
            hk[i2] = hk[(i2 - 1) / 2];
            i2 = (i2 - 1) / 2;
          }
          heap[i2] = f;
          hk[i2] = nd;
        }
      }
      bool changed = false;
      for (size_t i = 0; i < nm; i++) {
        uint32_t v = g->m[i].n ? g->dist[g->m[i].base] : INF32;
        if (v != mlen[i]) mlen[i] = v, changed = true;
      }
      if (!changed) break;
    }
    free(mlen);
    free(poff);
    free(pred);
    free(heap);
    free(hk);
  }
  /* dgrow: an upper bound of how much one byte can raise the bytes still needed. A byte either
   * moves within a machine, or enters callees (F below: the callee's state after the byte plus
   * the return states pushed), after returns from accepting frames (which add nothing). */
  {
    uint32_t *F = calloc(nm, sizeof *F);
    if (!F) goto done;
    /* machines in an order where start-callees come first: iterate to a fixed point (acyclic) */
    for (size_t it = 0; it <= nm; it++) {
      bool ch = false;
      for (size_t i = 0; i < nm; i++) {
        if (!g->m[i].n) continue;
        uint32_t st = g->m[i].base, best = 0;
        const struct gm *gm = &g->m[i];
        for (uint32_t k = 0; k < gm->ncls; k++) {
          int32_t t = g->next[g->row[st] + k];
          if (t >= 0 && g->dist[t] > best) best = g->dist[t];
        }
        for (uint32_t j = g->call_off[st]; j < g->call_off[st + 1]; j++) {
          uint64_t v = (uint64_t)F[g->calls[j].machine] + g->dist[g->calls[j].ret];
          if (v > best) best = v > INF32 ? INF32 : (uint32_t)v;
        }
        if (best != F[i]) F[i] = best, ch = true;
      }
      if (!ch) break;
    }
    uint32_t grow = 0;
    for (uint32_t s = 0; s < g->ns; s++) {
      const struct gm *gm = &g->m[g->mach[s]];
      for (uint32_t k = 0; k < gm->ncls; k++) {
        int32_t t = g->next[g->row[s] + k];
        if (t >= 0 && g->dist[t] > g->dist[s] && g->dist[t] - g->dist[s] > grow) grow = g->dist[t] - g->dist[s];
      }
      for (uint32_t j = g->call_off[s]; j < g->call_off[s + 1]; j++) {
        uint64_t v = (uint64_t)F[g->calls[j].machine] + g->dist[g->calls[j].ret];
        if (v > g->dist[s] && v - g->dist[s] > grow) grow = (uint32_t)(v - g->dist[s] > INF32 ? INF32 : v - g->dist[s]);
      }
    }
    g->dgrow = grow;
    free(F);
  }
  rc = 0;
done:
  for (size_t i = 0; dm && i < nm; i++) dmach_free(&dm[i]);
  for (size_t i = 0; live && i < nm; i++) free(live[i]);
  for (size_t i = 0; cls && i < nm; i++) free(cls[i]);
  free(dm);
  free(live);
  free(cls);
  free(ncl);
  free(prod);
  if (rc) cn_grammar_free(g);
  return rc;
}
