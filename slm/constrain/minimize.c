/*
 * minimize.c: DFA minimization in O(m log n) for partial automata given as transition lists
 * (tail, label, head), after A. Valmari, "Fast brief practical DFA minimization", Information
 * Processing Letters 112 (2012). Both kinds of automata use it: code point automata (labels are
 * the elementary intervals between all edge boundaries) and byte machines (byte intervals and
 * callees).
 *
 * DESIGN
 * Two refinable partitions: blocks of states and "cords" of transitions (initially: by label).
 * Splitting a cord splits the blocks of its tails; a new block splits the cords of the
 * transitions into it. Each element is moved O(log n) times. States that cannot be reached or
 * cannot reach acceptance are removed first, so the partial transition function needs no sink.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "slm/constrain/cn.h"

struct rpart {
  uint32_t z;          /* sets */
  uint32_t *E;         /* elements, grouped by set */
  uint32_t *L;         /* location of an element in E */
  uint32_t *S;         /* set of an element */
  uint32_t *F, *P;     /* set s is E[F[s] .. P[s]) */
};

struct rwork {
  uint32_t *M;         /* marked elements per set */
  uint32_t *W;         /* touched sets */
  uint32_t w;
};

static int rp_init(struct rpart *p, uint32_t n) {
  size_t k = n ? n : 1;
  p->E = malloc(k * sizeof *p->E);
  p->L = malloc(k * sizeof *p->L);
  p->S = calloc(k, sizeof *p->S);
  p->F = malloc(k * sizeof *p->F);
  p->P = malloc(k * sizeof *p->P);
  if (!p->E || !p->L || !p->S || !p->F || !p->P) return -ENOMEM;
  for (uint32_t i = 0; i < n; i++) p->E[i] = p->L[i] = i;
  p->z = n ? 1 : 0;
  p->F[0] = 0;
  p->P[0] = n;
  return 0;
}

static void rp_free(struct rpart *p) {
  free(p->E);
  free(p->L);
  free(p->S);
  free(p->F);
  free(p->P);
}

static void rp_mark(struct rpart *p, struct rwork *wk, uint32_t e) {
  uint32_t s = p->S[e], i = p->L[e], j = p->F[s] + wk->M[s];
  p->E[i] = p->E[j];
  p->L[p->E[i]] = i;
  p->E[j] = e;
  p->L[e] = j;
  if (!wk->M[s]++) wk->W[wk->w++] = s;
}

static void rp_split(struct rpart *p, struct rwork *wk) {
  while (wk->w) {
    uint32_t s = wk->W[--wk->w], j = p->F[s] + wk->M[s];
    if (j == p->P[s]) {
      wk->M[s] = 0;
      continue;
    }
    uint32_t z = p->z;
    if (wk->M[s] <= p->P[s] - j) {
      p->F[z] = p->F[s];
      p->P[z] = p->F[s] = j;
    } else {
      p->P[z] = p->P[s];
      p->F[z] = p->P[s] = j;
    }
    for (uint32_t i = p->F[z]; i < p->P[z]; i++) p->S[p->E[i]] = z;
    wk->M[s] = wk->M[z] = 0;
    p->z++;
  }
}

/* Adjacency: for each state q, transitions A[F[q] .. F[q+1]) with K[t] == q. */
static void adjacent(uint32_t n, uint32_t m, const uint32_t *K, uint32_t *A, uint32_t *Fo) {
  for (uint32_t q = 0; q <= n; q++) Fo[q] = 0;
  for (uint32_t t = 0; t < m; t++) Fo[K[t]]++;
  for (uint32_t q = 0; q < n; q++) Fo[q + 1] += Fo[q];
  for (uint32_t t = m; t-- > 0;) A[--Fo[K[t]]] = t;
}

int cn_minimize(uint32_t n, uint32_t m, const uint32_t *tail, const uint32_t *label,
                const uint32_t *head, const uint8_t *acc, uint32_t start, uint32_t *block_of,
                uint32_t *nblocks) {
  int rc = -ENOMEM;
  uint32_t *A = malloc((m ? m : 1) * sizeof *A), *Fa = malloc(((size_t)n + 1) * sizeof *Fa);
  uint8_t *fw = calloc(n ? n : 1, 1), *bw = calloc(n ? n : 1, 1);
  uint32_t *stack = malloc((n ? n : 1) * sizeof *stack), *newid = malloc((n ? n : 1) * sizeof *newid);
  uint32_t *T = NULL, *H = NULL, *Lb = NULL;
  struct rpart B, C;
  memset(&B, 0, sizeof B);
  memset(&C, 0, sizeof C);
  struct rwork wk = {NULL, NULL, 0};
  if (!A || !Fa || !fw || !bw || !stack || !newid) goto done;
  for (uint32_t q = 0; q < n; q++) block_of[q] = UINT32_MAX;
  *nblocks = 0;
  if (n == 0 || start >= n) {
    rc = 0;
    goto done;
  }
  /* forward reachability from the start */
  adjacent(n, m, tail, A, Fa);
  size_t sp = 0;
  fw[start] = 1;
  stack[sp++] = start;
  while (sp) {
    uint32_t q = stack[--sp];
    for (uint32_t j = Fa[q]; j < Fa[q + 1]; j++) {
      uint32_t h = head[A[j]];
      if (!fw[h]) fw[h] = 1, stack[sp++] = h;
    }
  }
  /* backward from accepting states */
  adjacent(n, m, head, A, Fa);
  for (uint32_t q = 0; q < n; q++)
    if (acc[q] && fw[q]) bw[q] = 1, stack[sp++] = q;
  while (sp) {
    uint32_t q = stack[--sp];
    for (uint32_t j = Fa[q]; j < Fa[q + 1]; j++) {
      uint32_t t = tail[A[j]];
      if (fw[t] && !bw[t]) bw[t] = 1, stack[sp++] = t;
    }
  }
  if (!bw[start]) {
    rc = 0;   /* empty language */
    goto done;
  }
  /* keep states in both, renumbered */
  uint32_t nn = 0;
  for (uint32_t q = 0; q < n; q++) newid[q] = bw[q] ? nn++ : UINT32_MAX;
  uint32_t mm = 0;
  for (uint32_t t = 0; t < m; t++)
    if (newid[tail[t]] != UINT32_MAX && newid[head[t]] != UINT32_MAX) mm++;
  T = malloc((mm ? mm : 1) * sizeof *T);
  H = malloc((mm ? mm : 1) * sizeof *H);
  Lb = malloc((mm ? mm : 1) * sizeof *Lb);
  if (!T || !H || !Lb) goto done;
  uint32_t maxlab = 0;
  mm = 0;
  for (uint32_t t = 0; t < m; t++) {
    uint32_t a = newid[tail[t]], b = newid[head[t]];
    if (a == UINT32_MAX || b == UINT32_MAX) continue;
    T[mm] = a;
    H[mm] = b;
    Lb[mm] = label[t];
    if (label[t] > maxlab) maxlab = label[t];
    mm++;
  }
  size_t wsz = (size_t)(mm > nn ? mm : nn) + 1;
  wk.M = calloc(wsz, sizeof *wk.M);
  wk.W = malloc(wsz * sizeof *wk.W);
  if (!wk.M || !wk.W || rp_init(&B, nn)) goto done;
  /* initial partition: accepting / not */
  for (uint32_t q = 0; q < n; q++)
    if (newid[q] != UINT32_MAX && acc[q]) rp_mark(&B, &wk, newid[q]);
  rp_split(&B, &wk);
  /* cords: transitions by label (counting sort) */
  if (rp_init(&C, mm)) goto done;
  if (mm) {
    uint32_t *cnt = calloc((size_t)maxlab + 2, sizeof *cnt);
    if (!cnt) goto done;
    for (uint32_t t = 0; t < mm; t++) cnt[Lb[t] + 1]++;
    for (uint32_t a = 0; a <= maxlab; a++) cnt[a + 1] += cnt[a];
    uint32_t *pos = malloc(((size_t)maxlab + 1) * sizeof *pos);
    if (!pos) {
      free(cnt);
      goto done;
    }
    memcpy(pos, cnt, ((size_t)maxlab + 1) * sizeof *pos);
    for (uint32_t t = 0; t < mm; t++) C.E[pos[Lb[t]]++] = t;
    free(pos);
    C.z = 0;
    for (uint32_t a = 0; a <= maxlab; a++) {
      if (cnt[a] == cnt[a + 1]) continue;
      C.F[C.z] = cnt[a];
      C.P[C.z] = cnt[a + 1];
      for (uint32_t i = cnt[a]; i < cnt[a + 1]; i++) C.S[C.E[i]] = C.z, C.L[C.E[i]] = i;
      C.z++;
    }
    free(cnt);
    memset(wk.M, 0, wsz * sizeof *wk.M);
  }
  /* refine */
  free(A);
  A = malloc((mm ? mm : 1) * sizeof *A);
  free(Fa);
  Fa = malloc(((size_t)nn + 1) * sizeof *Fa);
  if (!A || !Fa) goto done;
  adjacent(nn, mm, H, A, Fa);
  uint32_t b = 1, c = 0;
  while (c < C.z) {
    for (uint32_t i = C.F[c]; i < C.P[c]; i++) rp_mark(&B, &wk, T[C.E[i]]);
    rp_split(&B, &wk);
    c++;
    while (b < B.z) {
      for (uint32_t i = B.F[b]; i < B.P[b]; i++)
        for (uint32_t j = Fa[B.E[i]]; j < Fa[B.E[i] + 1]; j++) rp_mark(&C, &wk, A[j]);
      rp_split(&C, &wk);
      b++;
    }
  }
  /* number blocks with the start's first, then in order of first appearance */
  uint32_t *remap = malloc(((size_t)B.z ? B.z : 1) * sizeof *remap);
  if (!remap) goto done;
  for (uint32_t i = 0; i < B.z; i++) remap[i] = UINT32_MAX;
  uint32_t nb = 0;
  remap[B.S[newid[start]]] = nb++;
  for (uint32_t q = 0; q < n; q++) {
    if (newid[q] == UINT32_MAX) continue;
    uint32_t s = B.S[newid[q]];
    if (remap[s] == UINT32_MAX) remap[s] = nb++;
    block_of[q] = remap[s];
  }
  free(remap);
  *nblocks = nb;
  rc = 0;
done:
  free(A);
  free(Fa);
  free(fw);
  free(bw);
  free(stack);
  free(newid);
  free(T);
  free(H);
  free(Lb);
  free(wk.M);
  free(wk.W);
  rp_free(&B);
  rp_free(&C);
  return rc;
}
