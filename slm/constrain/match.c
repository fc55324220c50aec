/*
 * match.c: the run-time matcher: the set of call stacks a text can be in after the bytes seen so
 * far (usually one; several when alternatives of a schema overlap in their first bytes).
 *
 * A byte from a stack (top state g, parent p) can: follow g's byte edge; enter a callee of g
 * whose first bytes include it (push (return state, p), continue at the callee's start); or, if
 * g accepts, return (pop to the parent frame and try again there). All three are explored, so
 * the matcher accepts exactly the grammar's language (up to the depth and width caps, which only
 * ever drop stacks: a text is never accepted that the grammar rejects).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "slm/constrain/cn.h"

#define INF32 (UINT32_MAX / 4)

static uint32_t hnode(uint32_t gs, uint32_t parent) {
  uint64_t h = ((uint64_t)gs << 32 | parent) * 0x9E3779B97F4A7C15ull;
  return (uint32_t)(h >> 32);
}

static int rehash(struct cn_match *m, size_t nmask) {
  uint32_t *ns = calloc(nmask + 1, sizeof *ns);
  if (!ns) return -ENOMEM;
  for (size_t i = 1; i < m->nn; i++) {
    size_t j = hnode(m->nodes[i].gs, m->nodes[i].parent) & nmask;
    while (ns[j]) j = (j + 1) & nmask;
    ns[j] = (uint32_t)i + 1;
  }
  free(m->hslot);
  m->hslot = ns;
  m->hmask = nmask;
  return 0;
}

int cn_match_init(struct cn_match *m, const struct cn_grammar *gr, int max_depth, uint32_t max_cfg) {
  memset(m, 0, sizeof *m);
  m->gr = gr;
  m->max_depth = max_depth > 0 ? max_depth : 1;
  m->max_cfg = max_cfg ? max_cfg : 1;
  m->cfg = malloc(m->max_cfg * sizeof *m->cfg);
  m->scratch = malloc(m->max_cfg * sizeof *m->scratch);
  if (!m->cfg || !m->scratch || cn_grow(&m->nodes, &m->cap_nodes, 64, sizeof *m->nodes) ||
      rehash(m, 127)) {
    cn_match_free(m);
    return -ENOMEM;
  }
  cn_match_reset(m);
  return 0;
}

void cn_match_free(struct cn_match *m) {
  free(m->nodes);
  free(m->hslot);
  free(m->cfg);
  free(m->scratch);
  memset(m, 0, sizeof *m);
}

void cn_match_reset(struct cn_match *m) {
  m->nn = 1;   /* node 0: the bottom */
  memset(&m->nodes[0], 0, sizeof m->nodes[0]);
  m->nodes[0].all_acc = 1;
  memset(m->hslot, 0, (m->hmask + 1) * sizeof *m->hslot);
  m->err = 0;
  m->ncfg = 0;
  if (!m->gr->empty) {
    m->cfg[0].g = m->gr->m[0].base;
    m->cfg[0].p = 0;
    m->ncfg = 1;
  }
}

uint32_t cn_match_node(struct cn_match *m, uint32_t gs, uint32_t parent) {
  size_t j = hnode(gs, parent) & m->hmask;
  while (m->hslot[j]) {
    const struct mnode *x = &m->nodes[m->hslot[j] - 1];
    if (x->gs == gs && x->parent == parent) return m->hslot[j] - 1;
    j = (j + 1) & m->hmask;
  }
  if (m->nn >= UINT32_MAX / 4 || cn_grow(&m->nodes, &m->cap_nodes, m->nn + 1, sizeof *m->nodes)) {
    m->err = -ENOMEM;
    return UINT32_MAX;
  }
  struct mnode *x = &m->nodes[m->nn];
  const struct cn_grammar *g = m->gr;
  x->gs = gs;
  x->parent = parent;
  if (parent == CN_BASE) {
    x->depth = 1;
    x->all_acc = 0;
    x->dist_sum = g->dist[gs];
  } else {
    const struct mnode *pp = &m->nodes[parent];
    x->depth = (uint16_t)(pp->depth + 1);
    x->all_acc = (uint8_t)(g->acc[gs] && pp->all_acc);
    uint64_t d = (uint64_t)g->dist[gs] + pp->dist_sum;
    x->dist_sum = d > INF32 ? INF32 : (uint32_t)d;
  }
  m->hslot[j] = (uint32_t)m->nn + 1;
  uint32_t id = (uint32_t)m->nn++;
  if (m->nn * 2 > m->hmask && rehash(m, m->hmask * 2 + 1)) {
    m->err = -ENOMEM;
    return UINT32_MAX;
  }
  return id;
}

static void emit(struct mpair *out, uint32_t *n, uint32_t cap, uint32_t g, uint32_t p) {
  for (uint32_t i = 0; i < *n; i++)
    if (out[i].g == g && out[i].p == p) return;
  if (*n < cap) out[(*n)++] = (struct mpair){g, p};
}

void cn_match_step(struct cn_match *m, uint32_t g, uint32_t p, uint8_t byte, struct mpair *out,
                   uint32_t *n, uint32_t cap, bool *esc) {
  const struct cn_grammar *gr = m->gr;
  for (;;) {
    int32_t t = gr_next(gr, g, byte);
    if (t >= 0) emit(out, n, cap, (uint32_t)t, p);
    for (uint32_t j = gr->call_off[g]; j < gr->call_off[g + 1]; j++) {
      const struct gcall *c = &gr->calls[j];
      const struct gm *cm = &gr->m[c->machine];
      if (!(cm->first[byte >> 3] & (1u << (byte & 7)))) continue;
      uint32_t depth = (p == CN_BASE || p == 0) ? 0 : m->nodes[p].depth;
      if ((int)depth + 1 > m->max_depth) continue;
      uint32_t q = cn_match_node(m, c->ret, p);
      if (q == UINT32_MAX) return;
      cn_match_step(m, cm->base, q, byte, out, n, cap, esc);
    }
    /* return to the parent frame */
    if (!gr->acc[g] || p == 0) return;
    if (p == CN_BASE) {
      if (esc) *esc = true;
      return;
    }
    const struct mnode *x = &m->nodes[p];
    g = x->gs;
    p = x->parent;
  }
}

static int cmp_pair(const void *a, const void *b) {
  const struct mpair *x = a, *y = b;
  if (x->g != y->g) return x->g < y->g ? -1 : 1;
  return x->p < y->p ? -1 : x->p > y->p;
}

int cn_match_bytes(struct cn_match *m, const uint8_t *s, size_t len) {
  if (m->ncfg == 0) return -1;
  /* work on a copy so that a rejected text leaves the configuration as it was */
  struct mpair *cur = m->scratch;
  uint32_t nc = m->ncfg;
  memcpy(cur, m->cfg, nc * sizeof *cur);
  struct mpair buf[64];
  struct mpair *nxt = m->max_cfg <= 64 ? buf : malloc(m->max_cfg * sizeof *nxt);
  if (!nxt) return -1;
  int rc = 0;
  for (size_t i = 0; i < len; i++) {
    uint32_t nn = 0;
    for (uint32_t k = 0; k < nc; k++) cn_match_step(m, cur[k].g, cur[k].p, s[i], nxt, &nn, m->max_cfg, NULL);
    if (nn == 0 || m->err) {
      rc = -1;
      break;
    }
    memcpy(cur, nxt, nn * sizeof *cur);
    nc = nn;
  }
  if (nxt != buf) free(nxt);
  if (rc) return rc;
  qsort(cur, nc, sizeof *cur, cmp_pair);
  memcpy(m->cfg, cur, nc * sizeof *cur);
  m->ncfg = nc;
  return 0;
}

bool cn_match_can_end(const struct cn_match *m) {
  for (uint32_t k = 0; k < m->ncfg; k++) {
    const struct mpair *c = &m->cfg[k];
    if (m->gr->acc[c->g] && (c->p == 0 || m->nodes[c->p].all_acc)) return true;
  }
  return false;
}

uint32_t cn_match_dist(const struct cn_match *m) {
  uint32_t best = INF32;
  for (uint32_t k = 0; k < m->ncfg; k++) {
    const struct mpair *c = &m->cfg[k];
    uint64_t d = (uint64_t)m->gr->dist[c->g] + (c->p ? m->nodes[c->p].dist_sum : 0);
    if (d < best) best = (uint32_t)d;
  }
  return best;
}

int cn_match_gc(struct cn_match *m) {
  /* keep the nodes reachable from the configuration, in an order where parents come first */
  size_t old_n = m->nn;
  uint32_t *map = malloc(old_n * sizeof *map);
  if (!map) return -ENOMEM;
  for (size_t i = 0; i < old_n; i++) map[i] = UINT32_MAX;
  map[0] = 0;
  struct mnode *keep = malloc(old_n * sizeof *keep);
  uint32_t *chain = malloc((size_t)(m->max_depth + 2) * sizeof *chain);
  if (!keep || !chain) {
    free(map);
    free(keep);
    free(chain);
    return -ENOMEM;
  }
  size_t nk = 1;
  keep[0] = m->nodes[0];
  for (uint32_t k = 0; k < m->ncfg; k++) {
    /* collect the chain bottom-up, then renumber top-down */
    size_t len = 0;
    for (uint32_t p = m->cfg[k].p; p != 0 && p != CN_BASE && map[p] == UINT32_MAX && len < (size_t)m->max_depth + 2;
         p = m->nodes[p].parent)
      chain[len++] = p;
    for (size_t i = len; i-- > 0;) {
      uint32_t p = chain[i];
      keep[nk] = m->nodes[p];
      uint32_t par = keep[nk].parent;
      keep[nk].parent = par == CN_BASE ? CN_BASE : map[par];
      map[p] = (uint32_t)nk++;
    }
    if (m->cfg[k].p != CN_BASE) m->cfg[k].p = map[m->cfg[k].p];
  }
  memcpy(m->nodes, keep, nk * sizeof *keep);
  m->nn = nk;
  free(map);
  free(keep);
  free(chain);
  qsort(m->cfg, m->ncfg, sizeof *m->cfg, cmp_pair);
  return rehash(m, m->hmask);
}
