/*
 * gstr.c: a language over code points (struct cdfa) embedded into a byte-level machine, either as
 * raw UTF-8 (regular-expression constraints, number texts) or as the set of JSON string literals
 * whose decoded value is in the language.
 *
 * A code point reaches the same target whichever way it is written: its UTF-8 bytes (except for
 * '"', '\\' and the control characters, which JSON forbids raw), a short escape (\" \\ \/ \b \f
 * \n \r \t), \uXXXX in either hex case, or a surrogate pair \uD83D\uDE00 for astral characters;
 * \uXXXX only for what serializers escape (controls, " & ' / < > \\ DEL and everything
 * non-ASCII), never for letters, digits and other ASCII punctuation.
 * With all_escapes off only the escapes JSON requires are accepted (\" \\ and the control
 * characters as \n, \t, ... or \u00XX), which keeps generated text plain and machines small.
 * Lone surrogate escapes are never accepted (validators disagree on them).
 *
 * Code point intervals become byte-range sequences with the usual UTF-8 splitting (each
 * sequence a run of contiguous ranges per byte position); hex digits likewise with base-16
 * splitting over four digits.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "slm/constrain/cn.h"

/* Shared suffixes: "K more bytes of [80-BF] (or K more hex digits) and then Z" is one state per
 * (Z, K) within one embedding, not one per path: the NFA stays close to the minimal automaton
 * and determinizing it costs much less. */
struct sfx_ent { uint32_t z, key, state; };
struct sfx_map {
  struct sfx_ent *e;
  size_t mask, n;
};
static _Thread_local struct sfx_map *g_sfx;   /* set by gb_cdfa for the embedding in progress */

static uint32_t sfx_get(struct gb *b, int m, uint32_t z, uint32_t key, bool *fresh) {
  struct sfx_map *mp = g_sfx;
  *fresh = false;
  if (!mp) return UINT32_MAX;
  size_t j = ((uint64_t)z * 0x9E3779B97F4A7C15ull ^ key) & mp->mask;
  while (mp->e[j].state != UINT32_MAX) {
    if (mp->e[j].z == z && mp->e[j].key == key) return mp->e[j].state;
    j = (j + 1) & mp->mask;
  }
  if (mp->n * 2 >= mp->mask) return UINT32_MAX;   /* full: no sharing */
  uint32_t st = gb_state(b, m);
  mp->e[j] = (struct sfx_ent){z, key, st};
  mp->n++;
  *fresh = true;
  return st;
}

/* The state "K more bytes in [80-BF], then Z". */
static uint32_t cont_state(struct gb *b, int m, uint32_t z, int k) {
  if (k == 0) return z;
  bool fresh;
  uint32_t st = sfx_get(b, m, z, (uint32_t)k, &fresh);
  if (st == UINT32_MAX) return UINT32_MAX;
  if (fresh) {   /* new: connect it */
    uint32_t nx = cont_state(b, m, z, k - 1);
    if (nx == UINT32_MAX) return UINT32_MAX;
    gb_bytes(b, m, st, nx, 0x80, 0xBF);
  }
  return st;
}

/* Emits byte-range sequence (lo[i], hi[i]) for i < n from A to Z. */
static void emit_seq(struct gb *b, int m, uint32_t a, uint32_t z, const uint8_t *lo,
                     const uint8_t *hi, int n) {
  int free_tail = 0;   /* trailing [80-BF] positions */
  while (free_tail < n - 1 && lo[n - 1 - free_tail] == 0x80 && hi[n - 1 - free_tail] == 0xBF) free_tail++;
  uint32_t zz = z;
  if (free_tail) {
    zz = cont_state(b, m, z, free_tail);
    if (zz == UINT32_MAX) zz = z, free_tail = 0;
  }
  uint32_t cur = a;
  for (int i = 0; i < n - free_tail; i++) {
    uint32_t t = i == n - free_tail - 1 ? zz : gb_state(b, m);
    gb_bytes(b, m, cur, t, lo[i], hi[i]);
    cur = t;
  }
}

static int utf8_len(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

/* All UTF-8 encodings of [lo, hi] (no surrogates inside) from A to Z. */
static void utf8_range(struct gb *b, int m, uint32_t a, uint32_t z, uint32_t lo, uint32_t hi) {
  uint32_t stk[64][2];
  int sp = 0;
  stk[sp][0] = lo, stk[sp][1] = hi, sp++;
  while (sp > 0 && !b->err) {
    sp--;
    uint32_t x = stk[sp][0], y = stk[sp][1];
    if (x > y) continue;
    if (sp > 60) {
      b->err = -E2BIG;
      return;
    }
    /* surrogates never appear */
    if (x <= 0xDFFF && y >= 0xD800) {
      if (x < 0xD800) stk[sp][0] = x, stk[sp][1] = 0xD7FF, sp++;
      if (y > 0xDFFF) stk[sp][0] = 0xE000, stk[sp][1] = y, sp++;
      continue;
    }
    /* same encoded length */
    static const uint32_t bounds[3] = {0x7F, 0x7FF, 0xFFFF};
    bool split = false;
    for (int k = 0; k < 3 && !split; k++)
      if (x <= bounds[k] && y > bounds[k]) {
        stk[sp][0] = x, stk[sp][1] = bounds[k], sp++;
        stk[sp][0] = bounds[k] + 1, stk[sp][1] = y, sp++;
        split = true;
      }
    if (split) continue;
    int len = utf8_len(x);
    if (len == 1) {
      uint8_t l = (uint8_t)x, h = (uint8_t)y;
      emit_seq(b, m, a, z, &l, &h, 1);
      continue;
    }
    /* make every trailing 6-bit group either free or fixed */
    for (int i = 1; i < len && !split; i++) {
      uint32_t mask = (1u << (6 * i)) - 1;
      if ((x & ~mask) != (y & ~mask)) {
        if ((x & mask) != 0) {
          stk[sp][0] = (x | mask) + 1, stk[sp][1] = y, sp++;
          stk[sp][0] = x, stk[sp][1] = x | mask, sp++;
          split = true;
        } else if ((y & mask) != mask) {
          stk[sp][0] = y & ~mask, stk[sp][1] = y, sp++;
          stk[sp][0] = x, stk[sp][1] = (y & ~mask) - 1, sp++;
          split = true;
        }
      }
    }
    if (split) continue;
    uint8_t el[4], eh[4];
    cn_utf8_enc(x, el);
    cn_utf8_enc(y, eh);
    emit_seq(b, m, a, z, el, eh, len);
  }
}

/* Hex digit range [x, y] (0..15) as bytes: '0'-'9', 'a'-'f', 'A'-'F'. */
static void hex_digit(struct gb *b, int m, uint32_t from, uint32_t to, unsigned x, unsigned y) {
  if (x <= 9) gb_bytes(b, m, from, to, (uint8_t)('0' + x), (uint8_t)('0' + (y < 9 ? y : 9)));
  if (y >= 10) {
    unsigned l = x > 10 ? x : 10;
    gb_bytes(b, m, from, to, (uint8_t)('a' + l - 10), (uint8_t)('a' + y - 10));
    gb_bytes(b, m, from, to, (uint8_t)('A' + l - 10), (uint8_t)('A' + y - 10));
  }
}

/* The state "K more hex digits (any), then Z". */
static uint32_t hexany_state(struct gb *b, int m, uint32_t z, int k) {
  if (k == 0) return z;
  bool fresh;
  uint32_t st = sfx_get(b, m, z, 16u + (uint32_t)k, &fresh);
  if (st == UINT32_MAX) return UINT32_MAX;
  if (fresh) {
    uint32_t nx = hexany_state(b, m, z, k - 1);
    if (nx == UINT32_MAX) return UINT32_MAX;
    hex_digit(b, m, st, nx, 0, 15);
  }
  return st;
}

/* Four-digit hex numbers in [x, y] from A to Z. */
static void hex4(struct gb *b, int m, uint32_t a, uint32_t z, uint32_t x, uint32_t y, int w) {
  if (b->err) return;
  if (w == 1) {
    hex_digit(b, m, a, z, x, y);
    return;
  }
  uint32_t p = 1u << (4 * (w - 1)), full = p - 1;
  if (x % p == 0 && y % p == full) {   /* leading digit range, then any digits */
    uint32_t t = hexany_state(b, m, z, w - 1);
    if (t != UINT32_MAX) {
      hex_digit(b, m, a, t, x / p, y / p);
      return;
    }
  }
  uint32_t ta = x / p, tb = y / p, ra = x % p, rb = y % p;
  if (ta == tb) {
    uint32_t s = gb_state(b, m);
    hex_digit(b, m, a, s, ta, ta);
    hex4(b, m, s, z, ra, rb, w - 1);
    return;
  }
  if (ra != 0) {
    uint32_t s = gb_state(b, m);
    hex_digit(b, m, a, s, ta, ta);
    hex4(b, m, s, z, ra, full, w - 1);
    ta++;
  }
  if (rb != full) {
    uint32_t s = gb_state(b, m);
    hex_digit(b, m, a, s, tb, tb);
    hex4(b, m, s, z, 0, rb, w - 1);
    if (tb == 0) return;
    tb--;
  }
  if (ta <= tb) {
    uint32_t s = gb_state(b, m);
    hex_digit(b, m, a, s, ta, tb);
    hex4(b, m, s, z, 0, full, w - 1);
  }
}

struct esc_states { uint32_t bs, u; };   /* after '\' and after "\u" (lazily made) */

static uint32_t after_bs(struct gb *b, int m, uint32_t from, struct esc_states *e) {
  if (e->bs == UINT32_MAX) {
    e->bs = gb_state(b, m);
    gb_bytes(b, m, from, e->bs, '\\', '\\');
  }
  return e->bs;
}

static uint32_t after_u(struct gb *b, int m, uint32_t from, struct esc_states *e) {
  if (e->u == UINT32_MAX) {
    uint32_t bs = after_bs(b, m, from, e);
    e->u = gb_state(b, m);
    gb_bytes(b, m, bs, e->u, 'u', 'u');
  }
  return e->u;
}

/* The raw UTF-8 encodings of the code points [lo, hi] JSON allows unescaped, those below
 * CAP only, from A to Z. */
static void json_raw(struct gb *b, int m, uint32_t a, uint32_t z, uint32_t lo, uint32_t hi) {
  /* raw: everything but the control characters, '"' and '\' */
  static const uint32_t holes[][2] = {{0x00, 0x1F}, {0x22, 0x22}, {0x5C, 0x5C}};
  uint32_t x = lo;
  for (size_t k = 0; k < 3 && x <= hi; k++) {
    if (holes[k][1] < x) continue;
    if (holes[k][0] > x) utf8_range(b, m, a, z, x, hi < holes[k][0] - 1 ? hi : holes[k][0] - 1);
    x = holes[k][1] + 1;
  }
  if (x <= hi) utf8_range(b, m, a, z, x, hi);
}

static void json_range_esc(struct gb *b, int m, uint32_t a, uint32_t z, uint32_t lo, uint32_t hi,
                           struct esc_states *e);

/* Every JSON encoding of the code points [lo, hi] from A to Z. */
static void json_range(struct gb *b, int m, uint32_t a, uint32_t z, uint32_t lo, uint32_t hi,
                       struct esc_states *e) {
  json_raw(b, m, a, z, lo, hi);
  json_range_esc(b, m, a, z, lo, hi, e);
}

/* The escaped encodings of [lo, hi] from A to Z. */
static void json_range_esc(struct gb *b, int m, uint32_t a, uint32_t z, uint32_t lo, uint32_t hi,
                           struct esc_states *e) {
  /* short escapes */
  static const struct { uint32_t cp; char c; bool required; } sh[] = {
      {'"', '"', true}, {'\\', '\\', true}, {'/', '/', false}, {0x08, 'b', true},
      {0x0C, 'f', true}, {0x0A, 'n', true}, {0x0D, 'r', true}, {0x09, 't', true}};
  for (size_t k = 0; k < sizeof sh / sizeof sh[0]; k++)
    if (sh[k].cp >= lo && sh[k].cp <= hi && (b->all_escapes || sh[k].required))
      gb_bytes(b, m, after_bs(b, m, a, e), z, (uint8_t)sh[k].c, (uint8_t)sh[k].c);
  /* \uXXXX: for what serializers escape (controls, the HTML-sensitive and quoting characters,
   * DEL, everything non-ASCII); never for letters, digits and other ASCII punctuation, which no
   * serializer escapes (and which would multiply the automata of every key and enum) */
  static const uint32_t esc_all[][2] = {{0x00, 0x1F}, {0x22, 0x22}, {0x26, 0x27}, {0x2F, 0x2F},
                                        {0x3C, 0x3C}, {0x3E, 0x3E}, {0x5C, 0x5C}, {0x7F, 0xFFFF}};
  size_t nesc = b->all_escapes ? sizeof esc_all / sizeof esc_all[0] : 1;
  for (size_t k = 0; k < nesc; k++) {
    uint32_t blo = lo > esc_all[k][0] ? lo : esc_all[k][0];
    uint32_t bhi = hi < esc_all[k][1] ? hi : esc_all[k][1];
    if (blo > bhi) continue;
    /* skip the surrogates */
    if (blo < 0xD800) hex4(b, m, after_u(b, m, a, e), z, blo, bhi < 0xD7FF ? bhi : 0xD7FF, 4);
    if (bhi > 0xDFFF) hex4(b, m, after_u(b, m, a, e), z, blo > 0xE000 ? blo : 0xE000, bhi, 4);
  }
  /* surrogate pairs for astral characters */
  if (b->all_escapes && hi >= 0x10000) {
    uint32_t alo = lo > 0x10000 ? lo : 0x10000;
    uint32_t h0 = 0xD800 + ((alo - 0x10000) >> 10), h1 = 0xD800 + ((hi - 0x10000) >> 10);
    uint32_t l0 = 0xDC00 + ((alo - 0x10000) & 0x3FF), l1 = 0xDC00 + ((hi - 0x10000) & 0x3FF);
    struct spair { uint32_t hlo, hhi, llo, lhi; } parts[3];
    int np = 0;
    if (h0 == h1) {
      parts[np++] = (struct spair){h0, h0, l0, l1};
    } else {
      parts[np++] = (struct spair){h0, h0, l0, 0xDFFF};
      if (h0 + 1 <= h1 - 1) parts[np++] = (struct spair){h0 + 1, h1 - 1, 0xDC00, 0xDFFF};
      parts[np++] = (struct spair){h1, h1, 0xDC00, l1};
    }
    for (int k = 0; k < np; k++) {
      uint32_t mid = gb_state(b, m);
      hex4(b, m, after_u(b, m, a, e), mid, parts[k].hlo, parts[k].hhi, 4);
      uint32_t m2 = gb_lit(b, m, mid, "\\u", 2);
      hex4(b, m, m2, z, parts[k].llo, parts[k].lhi, 4);
    }
  }
}

/* A machine that reads one code point of the set SET (pairs lo, hi; N intervals) written in any
 * way but as a raw ASCII byte: raw UTF-8 of the non-ASCII ones, or an escape. Large automata
 * (long strings, big enums) call it instead of repeating those paths at every state. Made once
 * per set; -1 when the set needs nothing of it, -2 on error. */
#define MAX_CHAR_MACHINES 256
static int char_machine(struct gb *b, const uint32_t *set, size_t n) {
  bool need = false;
  static const uint32_t special[][2] = {{0x00, 0x1F}, {0x22, 0x22}, {0x26, 0x27}, {0x2F, 0x2F},
                                        {0x3C, 0x3C}, {0x3E, 0x3E}, {0x5C, 0x5C}, {0x7F, 0x7F}};
  for (size_t i = 0; i < n && !need; i++) {
    uint32_t lo = set[2 * i], hi = set[2 * i + 1];
    need = hi >= 0x80;
    for (size_t k = 0; k < 8 && !need; k++)
      need = lo <= special[k][1] && hi >= special[k][0] && (b->all_escapes || k == 0 || k == 1 || k == 6);
  }
  if (!need) return -1;
  if (!b->chm_init) {
    if (cn_km_init(&b->chm)) return -2;
    b->chm_init = true;
  }
  bool added;
  uint32_t id = cn_km_get(&b->chm, set, 2 * n, &added);
  if (id == UINT32_MAX) return -2;
  if (!added) return b->chm_id[id];
  if (id >= MAX_CHAR_MACHINES || cn_grow(&b->chm_id, &b->chm_cap, id + 1, sizeof *b->chm_id)) return -2;
  int mm = gb_machine(b);
  if (mm < 0) return -2;
  b->chm_id[id] = mm;
  struct sfx_map *saved = g_sfx;   /* its states are another machine's: no sharing with the caller's */
  g_sfx = NULL;
  uint32_t st = b->m[mm].start, acc = b->m[mm].accept;
  for (size_t i = 0; i < n; i++) {
    uint32_t lo = set[2 * i], hi = set[2 * i + 1];
    struct esc_states es = {UINT32_MAX, UINT32_MAX};
    if (hi >= 0x80) utf8_range(b, mm, st, acc, lo > 0x80 ? lo : 0x80, hi);
    json_range_esc(b, mm, st, acc, lo, hi, &es);
    (void)es;
  }
  g_sfx = saved;
  return mm;
}

uint32_t gb_cdfa_direct(struct gb *b, int m, uint32_t from, const struct cdfa *d, bool raw) {
  if (b->err) return UINT32_MAX;
  uint32_t *ns = malloc((d->n ? d->n : 1) * sizeof *ns);
  struct esc_states *es = malloc((d->n ? d->n : 1) * sizeof *es);
  if (!ns || !es) {
    free(ns);
    free(es);
    b->err = -ENOMEM;
    return UINT32_MAX;
  }
  for (uint32_t s = 0; s < d->n; s++) {
    ns[s] = gb_state(b, m);
    es[s].bs = es[s].u = UINT32_MAX;
  }
  uint32_t end = gb_state(b, m);
  struct sfx_map map;
  map.mask = 1023;
  while (map.mask < (size_t)d->n * 8) map.mask = map.mask * 2 + 1;
  map.n = 0;
  map.e = malloc((map.mask + 1) * sizeof *map.e);
  if (map.e)
    for (size_t i = 0; i <= map.mask; i++) map.e[i].state = UINT32_MAX;
  struct sfx_map *saved = g_sfx;
  g_sfx = map.e ? &map : NULL;
  if (raw) {
    gb_eps(b, m, from, ns[0]);
  } else {
    gb_bytes(b, m, from, ns[0], '"', '"');
  }
  for (uint32_t s = 0; s < d->n && !b->err; s++) {
    if (d->acc[s]) {
      if (raw) gb_eps(b, m, ns[s], end);
      else gb_bytes(b, m, ns[s], end, '"', '"');
    }
    if (raw || d->n < 32) {
      for (uint32_t k = d->off[s]; k < d->off[s + 1]; k++) {
        const struct cdfa_edge *e = &d->e[k];
        if (raw) utf8_range(b, m, ns[s], ns[e->to], e->lo, e->hi);
        else json_range(b, m, ns[s], ns[e->to], e->lo, e->hi, &es[s]);
      }
      continue;
    }
    /* a large automaton: per target, raw ASCII inline and the rest (raw non-ASCII, escapes)
     * through a shared one-character machine of the target's code points */
    for (uint32_t k = d->off[s]; k < d->off[s + 1]; k++) {
      uint32_t t = d->e[k].to;
      bool first = true;
      for (uint32_t j = d->off[s]; j < k && first; j++) first = d->e[j].to != t;
      if (!first) continue;
      uint32_t set[128];
      size_t n = 0;
      bool fit = true;
      for (uint32_t j = k; j < d->off[s + 1]; j++) {
        if (d->e[j].to != t) continue;
        if (n == 64) {
          fit = false;
          break;
        }
        set[2 * n] = d->e[j].lo;
        set[2 * n + 1] = d->e[j].hi;
        n++;
      }
      int cm = fit ? char_machine(b, set, n) : -2;
      for (uint32_t j = k; j < d->off[s + 1]; j++) {
        const struct cdfa_edge *e = &d->e[j];
        if (e->to != t) continue;
        if (cm == -2) json_range(b, m, ns[s], ns[t], e->lo, e->hi, &es[s]);
        else if (e->lo < 0x80) json_raw(b, m, ns[s], ns[t], e->lo, e->hi < 0x7F ? e->hi : 0x7F);
      }
      if (cm >= 0) gb_call(b, m, ns[s], ns[t], cm);
    }
  }
  g_sfx = saved;
  free(map.e);
  free(ns);
  free(es);
  return b->err ? UINT32_MAX : end;
}
