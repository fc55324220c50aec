/*
 * numlang.c: JSON number texts with a property of their value (a bound, equality with enum
 * values, integrality, a multiple of k) as automata, built exactly: a text is in the language
 * iff its value has the property.
 *
 * Texts with an exponent are left out of every such language (their value is exact too, but the
 * automata would be much larger; "1e2" for "maximum: 500" is refused, not accepted wrongly). A
 * text with a fraction has at most 15 significant digits ("the 15-digit rule"): such decimals
 * are ordered the same as the doubles they parse to, so float-based validators agree.
 *
 * DESIGN
 * A comparison of an unsigned text u = I(.F)? with a bound B = BI.BF reads the integer digits
 * counting them (JSON has no leading zeros, so more digits than BI means larger) and tracking
 * the first difference with BI, then, only if the integer parts are equal, the fraction digits
 * against BF padded with zeros. Signs are assembled around two such magnitudes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slm/constrain/cn.h"

void cn_dec_from_text(const char *t, size_t n, struct cn_dec *d) {
  memset(d, 0, sizeof *d);
  size_t i = 0;
  if (i < n && t[i] == '-') d->neg = true, i++;
  char digits[200];
  int nd = 0, point = -1;
  long e = 0;
  for (; i < n; i++) {
    char c = t[i];
    if (c == '.') {
      point = nd;
      continue;
    }
    if (c == 'e' || c == 'E') break;
    if (c < '0' || c > '9') break;
    if (nd < (int)sizeof digits) digits[nd++] = c;
    else d->too_long = true;
  }
  if (point < 0) point = nd;
  if (i < n && (t[i] == 'e' || t[i] == 'E')) {
    i++;
    bool en = false;
    if (i < n && (t[i] == '+' || t[i] == '-')) en = t[i] == '-', i++;
    for (; i < n && t[i] >= '0' && t[i] <= '9'; i++)
      if (e < 10000) e = e * 10 + (t[i] - '0');
    if (en) e = -e;
  }
  long pt = point + e;   /* position of the decimal point in digits[] */
  /* integer part: digits[0 .. pt), fraction: digits[pt .. nd) with virtual zeros around */
  for (long k = 0; k < pt; k++) {
    char c = k < nd ? digits[k] : '0';
    if (d->nip == 0 && c == '0') continue;
    if (d->nip < (int)sizeof d->ip - 1) d->ip[d->nip++] = c;
    else d->too_long = true;
  }
  for (long k = pt < 0 ? pt : pt; k < nd; k++) {
    char c = k < 0 ? '0' : digits[k];
    if (d->nfp < (int)sizeof d->fp - 1) d->fp[d->nfp++] = c;
    else d->too_long = true;
  }
  while (d->nfp > 0 && d->fp[d->nfp - 1] == '0') d->nfp--;
  d->ip[d->nip] = 0;
  d->fp[d->nfp] = 0;
  if (cn_dec_is_zero(d)) d->neg = false;
}

bool cn_dec_is_zero(const struct cn_dec *d) { return d->nip == 0 && d->nfp == 0; }
bool cn_dec_is_int(const struct cn_dec *d) { return d->nfp == 0; }

void cn_dec_text(const struct cn_dec *d, char *buf) {
  snprintf(buf, 100, "%s%s%s%s", d->neg ? "-" : "", d->nip ? d->ip : "0", d->nfp ? "." : "", d->fp);
}

/* ---------------------------------------------------------------- NFA helpers */

#define NEW(v)                                      \
  do {                                              \
    if (((v) = cnfa_state(a)) == UINT32_MAX) return UINT32_MAX; \
  } while (0)

static int ch(struct cnfa *a, uint32_t f, uint32_t t, char lo, char hi) {
  return cnfa_range_edge(a, f, t, (uint8_t)lo, (uint8_t)hi);
}

/* Copies D into A from state FROM; returns the (new) state all accepting states lead to. */
static uint32_t embed(struct cnfa *a, const struct cdfa *d, uint32_t from) {
  uint32_t base = a->n, end;
  for (uint32_t s = 0; s < d->n; s++)
    if (cnfa_state(a) == UINT32_MAX) return UINT32_MAX;
  NEW(end);
  if (cnfa_edge(a, from, base, CN_EPS)) return UINT32_MAX;
  for (uint32_t s = 0; s < d->n; s++) {
    if (d->acc[s] && cnfa_edge(a, base + s, end, CN_EPS)) return UINT32_MAX;
    for (uint32_t k = d->off[s]; k < d->off[s + 1]; k++)
      if (cnfa_range_edge(a, base + s, base + d->e[k].to, d->e[k].lo, d->e[k].hi)) return UINT32_MAX;
  }
  return end;
}

static int finish_nfa(struct cnfa *a, uint32_t start, uint32_t accept, struct cdfa *out) {
  a->start = start;
  a->accept = accept;
  int rc = cdfa_from_nfa(a, 0, out);
  cnfa_free(a);
  return rc;
}

/* relations */
enum { R_LT = 0, R_EQ = 1, R_GT = 2 };

/* Unsigned texts (0|[1-9]\d*)(\.\d+)? whose value compares to B (magnitude, sign ignored) by OP. */
static int mag_cmp(const struct cn_dec *b, enum cn_cmp op, struct cdfa *out) {
  struct cnfa na;
  struct cnfa *a = &na;
  cnfa_init(a, 0);
  int nb = b->nip;
  bool okrel[3];
  okrel[R_LT] = op == CMP_LE || op == CMP_LT;
  okrel[R_EQ] = op == CMP_LE || op == CMP_GE;
  okrel[R_GT] = op == CMP_GE || op == CMP_GT;
  uint32_t st = cnfa_state(a), acc = cnfa_state(a);
  uint32_t ir[3], fixd[3], fixd0[3];   /* int part ended with relation r; fixed-relation fraction */
  for (int r = 0; r < 3; r++) ir[r] = cnfa_state(a), fixd[r] = cnfa_state(a), fixd0[r] = cnfa_state(a);
  uint32_t L = cnfa_state(a), Z = cnfa_state(a);
  uint32_t *I = NULL;
  int rc = -ENOMEM;
  if (nb > 0) {
    I = malloc((size_t)nb * 3 * sizeof *I);
    if (!I) goto fail;
    for (int k = 0; k < nb * 3; k++) I[k] = cnfa_state(a);   /* I[(k-1)*3 + rel] */
  }
#define IS(k, r) I[((k) - 1) * 3 + (r)]
  if (a->n == UINT32_MAX) goto fail;
  /* integer part */
  if (ch(a, st, Z, '0', '0')) goto fail;
  if (nb == 0) {
    if (ch(a, st, L, '1', '9')) goto fail;
  } else {
    char c0 = b->ip[0];
    if (c0 > '1' && ch(a, st, IS(1, R_LT), '1', (char)(c0 - 1))) goto fail;
    if (ch(a, st, IS(1, R_EQ), c0, c0)) goto fail;
    if (c0 < '9' && ch(a, st, IS(1, R_GT), (char)(c0 + 1), '9')) goto fail;
    for (int k = 1; k < nb; k++) {
      char c = b->ip[k];
      if (ch(a, IS(k, R_LT), IS(k + 1, R_LT), '0', '9') || ch(a, IS(k, R_GT), IS(k + 1, R_GT), '0', '9'))
        goto fail;
      if (c > '0' && ch(a, IS(k, R_EQ), IS(k + 1, R_LT), '0', (char)(c - 1))) goto fail;
      if (ch(a, IS(k, R_EQ), IS(k + 1, R_EQ), c, c)) goto fail;
      if (c < '9' && ch(a, IS(k, R_EQ), IS(k + 1, R_GT), (char)(c + 1), '9')) goto fail;
    }
    for (int r = 0; r < 3; r++)
      if (ch(a, IS(nb, r), L, '0', '9')) goto fail;
    for (int k = 1; k < nb; k++)
      for (int r = 0; r < 3; r++)
        if (cnfa_edge(a, IS(k, r), ir[R_LT], CN_EPS)) goto fail;   /* shorter */
    for (int r = 0; r < 3; r++)
      if (cnfa_edge(a, IS(nb, r), ir[r], CN_EPS)) goto fail;
  }
  if (ch(a, L, L, '0', '9') || cnfa_edge(a, L, ir[R_GT], CN_EPS)) goto fail;
  if (cnfa_edge(a, Z, ir[nb == 0 ? R_EQ : R_LT], CN_EPS)) goto fail;
  /* end without a fraction */
  for (int r = 0; r < 3; r++) {
    int fin = r == R_EQ && b->nfp > 0 ? R_LT : r;
    if (okrel[fin] && cnfa_edge(a, ir[r], acc, CN_EPS)) goto fail;
  }
  /* fractions with a fixed relation */
  for (int r = 0; r < 3; r += 2) {
    if (ch(a, ir[r], fixd0[r], '.', '.') || ch(a, fixd0[r], fixd[r], '0', '9') ||
        ch(a, fixd[r], fixd[r], '0', '9'))
      goto fail;
    if (okrel[r] && cnfa_edge(a, fixd[r], acc, CN_EPS)) goto fail;
  }
  /* equal integer parts: compare the fraction with BF */
  {
    int nf = b->nfp;
    uint32_t e0 = cnfa_state(a);
    uint32_t *E = malloc(((size_t)nf + 1) * sizeof *E);
    if (!E) goto fail;
    E[0] = e0;
    for (int j = 1; j <= nf; j++) E[j] = cnfa_state(a);
    uint32_t ez = nf == 0 ? cnfa_state(a) : E[nf];   /* digits beyond BF, all zeros so far */
    int frc = 0;
    frc |= ch(a, ir[R_EQ], e0, '.', '.');
    for (int j = 0; j < nf && !frc; j++) {
      char c = b->fp[j];
      frc |= ch(a, E[j], E[j + 1], c, c);
      if (c > '0') frc |= ch(a, E[j], fixd[R_LT], '0', (char)(c - 1));
      if (c < '9') frc |= ch(a, E[j], fixd[R_GT], (char)(c + 1), '9');
      if (j >= 1 && okrel[R_LT]) frc |= cnfa_edge(a, E[j], acc, CN_EPS);   /* BF's rest > 0 */
    }
    if (nf == 0) {
      frc |= ch(a, e0, ez, '0', '0');
      frc |= ch(a, e0, fixd[R_GT], '1', '9');
    }
    frc |= ch(a, ez, ez, '0', '0');
    frc |= ch(a, ez, fixd[R_GT], '1', '9');
    if (okrel[R_EQ]) frc |= cnfa_edge(a, ez, acc, CN_EPS);
    free(E);
    if (frc) goto fail;
  }
#undef IS
  free(I);
  return finish_nfa(a, st, acc, out);
fail:
  free(I);
  cnfa_free(a);
  return rc;
}

/* Texts with the 15-digit rule, signed: -?(0|[1-9]\d*)(\.\d+)? where a fraction brings the
 * significant digits to at most 15. */
static int f15(struct cdfa *out) {
  struct cnfa na;
  struct cnfa *a = &na;
  cnfa_init(a, 0);
  uint32_t st = cnfa_state(a), s1 = cnfa_state(a), acc = cnfa_state(a), z = cnfa_state(a),
           big = cnfa_state(a), flead0 = cnfa_state(a), flead = cnfa_state(a);
  uint32_t in[16], fr[16];
  for (int c = 0; c < 16; c++) in[c] = cnfa_state(a), fr[c] = cnfa_state(a);
  if (a->n == UINT32_MAX) {
    cnfa_free(a);
    return -ENOMEM;
  }
  int e = 0;
  e |= cnfa_edge(a, st, s1, CN_EPS);
  e |= ch(a, st, s1, '-', '-');
  e |= ch(a, s1, z, '0', '0');
  e |= ch(a, s1, in[1], '1', '9');
  for (int c = 1; c < 15; c++) e |= ch(a, in[c], in[c + 1], '0', '9');
  e |= ch(a, in[15], big, '0', '9');
  e |= ch(a, big, big, '0', '9');
  e |= cnfa_edge(a, big, acc, CN_EPS);
  e |= cnfa_edge(a, z, acc, CN_EPS);
  for (int c = 1; c <= 15; c++) {
    e |= cnfa_edge(a, in[c], acc, CN_EPS);
    /* fraction after c significant integer digits */
    uint32_t dot = cnfa_state(a);
    e |= dot == UINT32_MAX;
    e |= ch(a, in[c], dot, '.', '.');
    if (c < 15) e |= ch(a, dot, fr[c + 1], '0', '9');
  }
  for (int c = 1; c < 15; c++) e |= ch(a, fr[c], fr[c + 1], '0', '9');
  for (int c = 1; c <= 15; c++) e |= cnfa_edge(a, fr[c], acc, CN_EPS);
  /* "0." then leading zeros are not significant */
  e |= ch(a, z, flead0, '.', '.');
  e |= ch(a, flead0, flead, '0', '0');
  e |= ch(a, flead, flead, '0', '0');
  e |= ch(a, flead0, fr[1], '1', '9');
  e |= ch(a, flead, fr[1], '1', '9');
  e |= cnfa_edge(a, flead, acc, CN_EPS);
  if (e) {
    cnfa_free(a);
    return -ENOMEM;
  }
  return finish_nfa(a, st, acc, out);
}

static int and_f15(struct cdfa *x, struct cdfa *out) {
  struct cdfa f;
  int rc = f15(&f);
  if (!rc) rc = cdfa_product(x, &f, CDFA_AND, 0, out);
  cdfa_free(&f);
  cdfa_free(x);
  return rc;
}

/* P (unsigned texts) or '-' N (unsigned texts); either may be NULL. */
static int signed_union(const struct cdfa *p, const struct cdfa *n, struct cdfa *out) {
  struct cnfa na;
  struct cnfa *a = &na;
  cnfa_init(a, 0);
  uint32_t st = cnfa_state(a), acc = cnfa_state(a);
  int e = st == UINT32_MAX;
  if (p) {
    uint32_t x = embed(a, p, st);
    e |= x == UINT32_MAX || cnfa_edge(a, x, acc, CN_EPS);
  }
  if (n) {
    uint32_t m = cnfa_state(a);
    e |= m == UINT32_MAX || ch(a, st, m, '-', '-');
    uint32_t x = e ? UINT32_MAX : embed(a, n, m);
    e |= x == UINT32_MAX || cnfa_edge(a, x, acc, CN_EPS);
  }
  if (e) {
    cnfa_free(a);
    return -ENOMEM;
  }
  return finish_nfa(a, st, acc, out);
}

int num_cmp(const struct cn_dec *b, enum cn_cmp op, struct cdfa *out) {
  if (b->too_long) return -EINVAL;
  struct cn_dec mag = *b;
  mag.neg = false;
  struct cdfa P, N;
  bool hp = false, hn = false;
  int rc = 0;
  bool zero = cn_dec_is_zero(b);
  if (!b->neg) {
    rc = mag_cmp(&mag, op, &P);
    hp = !rc;
    if (!rc && (op == CMP_GE && zero)) {
      struct cn_dec z;
      memset(&z, 0, sizeof z);
      rc = mag_cmp(&z, CMP_LE, &N);   /* "-0", "-0.0": zero */
      hn = !rc;
    } else if (!rc && (op == CMP_LE || op == CMP_LT)) {
      struct cn_dec z;
      memset(&z, 0, sizeof z);
      rc = mag_cmp(&z, (op == CMP_LT && zero) ? CMP_GT : CMP_GE, &N);
      hn = !rc;
    }
  } else {
    static const enum cn_cmp flip[4] = {CMP_LE, CMP_LT, CMP_GE, CMP_GT};
    rc = mag_cmp(&mag, flip[op], &N);
    hn = !rc;
    if (!rc && (op == CMP_GE || op == CMP_GT)) {
      struct cn_dec z;
      memset(&z, 0, sizeof z);
      rc = mag_cmp(&z, CMP_GE, &P);
      hp = !rc;
    }
  }
  struct cdfa u;
  if (!rc) rc = signed_union(hp ? &P : NULL, hn ? &N : NULL, &u);
  if (hp) cdfa_free(&P);
  if (hn) cdfa_free(&N);
  if (rc) return rc;
  return and_f15(&u, out);
}

int num_values(const struct cn_dec *vals, size_t n, bool neg, struct cdfa *out) {
  struct cnfa na;
  struct cnfa *a = &na;
  cnfa_init(a, 0);
  uint32_t st = cnfa_state(a), acc = cnfa_state(a);
  int e = st == UINT32_MAX;
  for (size_t i = 0; i < n && !e; i++) {
    const struct cn_dec *d = &vals[i];
    if (d->too_long) continue;   /* cannot be matched exactly: left out */
    uint32_t cur = cnfa_state(a);
    e |= cur == UINT32_MAX || cnfa_edge(a, st, cur, CN_EPS);
    if (d->neg || cn_dec_is_zero(d)) {
      uint32_t m = cnfa_state(a);
      e |= m == UINT32_MAX || ch(a, cur, m, '-', '-');
      if (!d->neg) e |= cnfa_edge(a, cur, m, CN_EPS);   /* zero: with or without '-' */
      cur = m;
    }
    const char *ip = d->nip ? d->ip : "0";
    for (const char *p = ip; *p && !e; p++) {
      uint32_t t = cnfa_state(a);
      e |= t == UINT32_MAX || ch(a, cur, t, *p, *p);
      cur = t;
    }
    if (e) break;
    if (d->nfp == 0) {
      /* optional ".0+" */
      uint32_t dot = cnfa_state(a), zz = cnfa_state(a);
      e |= zz == UINT32_MAX || ch(a, cur, dot, '.', '.') || ch(a, dot, zz, '0', '0') ||
           ch(a, zz, zz, '0', '0') || cnfa_edge(a, zz, acc, CN_EPS);
      e |= cnfa_edge(a, cur, acc, CN_EPS);
    } else {
      uint32_t t = cnfa_state(a);
      e |= t == UINT32_MAX || ch(a, cur, t, '.', '.');
      cur = t;
      for (int k = 0; k < d->nfp && !e; k++) {
        uint32_t t2 = cnfa_state(a);
        e |= t2 == UINT32_MAX || ch(a, cur, t2, d->fp[k], d->fp[k]);
        cur = t2;
      }
      e |= ch(a, cur, cur, '0', '0') || cnfa_edge(a, cur, acc, CN_EPS);
    }
  }
  if (e) {
    cnfa_free(a);
    return -ENOMEM;
  }
  struct cdfa u;
  int rc = finish_nfa(a, st, acc, &u);
  if (rc) return rc;
  if (!neg) return and_f15(&u, out);
  struct cdfa all;
  rc = num_plain(&all);
  if (!rc) rc = cdfa_product(&all, &u, CDFA_DIFF, 0, out);
  cdfa_free(&all);
  cdfa_free(&u);
  return rc;
}

int num_plain(struct cdfa *out) { return f15(out); }

int num_int(struct cdfa *out) {
  struct cnfa na;
  struct cnfa *a = &na;
  cnfa_init(a, 0);
  uint32_t st = cnfa_state(a), s1 = cnfa_state(a), acc = cnfa_state(a), ip = cnfa_state(a);
  int e = ip == UINT32_MAX;
  e |= cnfa_edge(a, st, s1, CN_EPS) || ch(a, st, s1, '-', '-') || ch(a, s1, acc, '0', '0') ||
       ch(a, s1, ip, '1', '9') || ch(a, ip, ip, '0', '9') || cnfa_edge(a, ip, acc, CN_EPS);
  if (e) {
    cnfa_free(a);
    return -ENOMEM;
  }
  return finish_nfa(a, st, acc, out);
}

int num_nonint(struct cdfa *out) {
  struct cnfa na;
  struct cnfa *a = &na;
  cnfa_init(a, 0);
  uint32_t st = cnfa_state(a), s1 = cnfa_state(a), acc = cnfa_state(a), ip = cnfa_state(a),
           iend = cnfa_state(a), dot = cnfa_state(a), nz = cnfa_state(a);
  int e = nz == UINT32_MAX;
  e |= cnfa_edge(a, st, s1, CN_EPS) || ch(a, st, s1, '-', '-') || ch(a, s1, iend, '0', '0') ||
       ch(a, s1, ip, '1', '9') || ch(a, ip, ip, '0', '9') || cnfa_edge(a, ip, iend, CN_EPS) ||
       ch(a, iend, dot, '.', '.') || ch(a, dot, dot, '0', '0') || ch(a, dot, nz, '1', '9') ||
       ch(a, nz, nz, '0', '9') || cnfa_edge(a, nz, acc, CN_EPS);
  if (e) {
    cnfa_free(a);
    return -ENOMEM;
  }
  struct cdfa u;
  int rc = finish_nfa(a, st, acc, &u);
  if (rc) return rc;
  return and_f15(&u, out);
}

int num_multiple(uint64_t k, bool neg, struct cdfa *out) {
  if (k == 0) return -EINVAL;
  if (k > 100000) return -E2BIG;
  struct cnfa na;
  struct cnfa *a = &na;
  cnfa_init(a, 0);
  uint32_t st = cnfa_state(a), s1 = cnfa_state(a), acc = cnfa_state(a), zero = cnfa_state(a);
  uint32_t base = a->n;
  for (uint64_t r = 0; r < k; r++) cnfa_state(a);
  uint32_t good = cnfa_state(a), bad = cnfa_state(a);   /* integer part done: multiple or not */
  int e = bad == UINT32_MAX;
  e |= cnfa_edge(a, st, s1, CN_EPS) || ch(a, st, s1, '-', '-') || ch(a, s1, zero, '0', '0') ||
       cnfa_edge(a, zero, good, CN_EPS);
  for (int d = 1; d <= 9 && !e; d++) e |= ch(a, s1, base + (uint32_t)(d % k), (char)('0' + d), (char)('0' + d));
  for (uint64_t r = 0; r < k && !e; r++) {
    for (int d = 0; d <= 9 && !e; d++) {
      uint32_t t = base + (uint32_t)((r * 10 + (uint64_t)d) % k);
      e |= ch(a, base + (uint32_t)r, t, (char)('0' + d), (char)('0' + d));
    }
    e |= cnfa_edge(a, base + (uint32_t)r, r == 0 ? good : bad, CN_EPS);
  }
  /* fraction: all zeros keeps the verdict; a nonzero digit makes a non-integer (a non-multiple) */
  uint32_t gdot = cnfa_state(a), gz = cnfa_state(a), bdot = cnfa_state(a), bz = cnfa_state(a),
           nzf = cnfa_state(a);
  e |= nzf == UINT32_MAX;
  e |= ch(a, good, gdot, '.', '.') || ch(a, gdot, gz, '0', '0') || ch(a, gz, gz, '0', '0');
  e |= ch(a, bad, bdot, '.', '.') || ch(a, bdot, bz, '0', '0') || ch(a, bz, bz, '0', '0');
  if (!neg) {
    e |= cnfa_edge(a, good, acc, CN_EPS) || cnfa_edge(a, gz, acc, CN_EPS);
  } else {
    e |= cnfa_edge(a, bad, acc, CN_EPS) || cnfa_edge(a, bz, acc, CN_EPS);
    e |= ch(a, gdot, nzf, '1', '9') || ch(a, gz, nzf, '1', '9') || ch(a, bdot, nzf, '1', '9') ||
         ch(a, bz, nzf, '1', '9') || ch(a, nzf, nzf, '0', '9') || cnfa_edge(a, nzf, acc, CN_EPS);
  }
  if (e) {
    cnfa_free(a);
    return -ENOMEM;
  }
  struct cdfa u;
  int rc = finish_nfa(a, st, acc, &u);
  if (rc) return rc;
  return and_f15(&u, out);
}
