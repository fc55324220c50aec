/*
 * util.c: the small shared helpers of slm/constrain/: the arena, growable arrays, compile errors
 * and strict UTF-8 coding.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slm/constrain/cn.h"

struct cn_chunk {
  struct cn_chunk *next;
  size_t cap, used;
  _Alignas(16) unsigned char data[];
};

void cn_arena_init(struct cn_arena *a, size_t limit_bytes) {
  a->head = NULL;
  a->used_bytes = 0;
  a->limit_bytes = limit_bytes;
}

void cn_arena_free(struct cn_arena *a) {
  struct cn_chunk *c = a->head;
  while (c) {
    struct cn_chunk *n = c->next;
    free(c);
    c = n;
  }
  a->head = NULL;
  a->used_bytes = 0;
}

void *cn_alloc(struct cn_arena *a, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (n == 0) n = 16;
  if (a->limit_bytes && a->used_bytes + n > a->limit_bytes) return NULL;
  struct cn_chunk *c = a->head;
  if (!c || c->cap - c->used < n) {
    size_t cap = n > 65536 - sizeof *c ? n : 65536 - sizeof *c;
    c = malloc(sizeof *c + cap);
    if (!c) return NULL;
    c->cap = cap;
    c->used = 0;
    c->next = a->head;
    a->head = c;
  }
  void *p = c->data + c->used;
  c->used += n;
  a->used_bytes += n;
  memset(p, 0, n);
  return p;
}

void *cn_memdup(struct cn_arena *a, const void *p, size_t n) {
  char *d = cn_alloc(a, n + 1);
  if (!d) return NULL;
  if (n) memcpy(d, p, n);
  d[n] = 0;
  return d;
}

int cn_grow(void *pp, size_t *cap, size_t need, size_t elem) {
  void **p = pp;
  if (need <= *cap) return 0;
  if (need > ((size_t)1 << 31)) return -ENOMEM;
  size_t nc = *cap ? *cap : 8;
  while (nc < need) nc *= 2;
  void *q = realloc(*p, nc * elem);
  if (!q) return -ENOMEM;
  *p = q;
  *cap = nc;
  return 0;
}

int cn_errf(struct cn_err *e, const char *keyword, const char *pointer, const char *fmt, ...) {
  if (!e) return -EINVAL;
  snprintf(e->keyword, sizeof e->keyword, "%s", keyword ? keyword : "");
  snprintf(e->pointer, sizeof e->pointer, "%s", pointer ? pointer : "");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
  return -EINVAL;
}

int cn_utf8_dec(const uint8_t *p, size_t n, uint32_t *cp) {
  if (n == 0) return 0;
  uint8_t c = p[0];
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  if (c < 0xC2) return 0;
  if (c < 0xE0) {
    if (n < 2 || (p[1] & 0xC0) != 0x80) return 0;
    *cp = ((uint32_t)(c & 0x1F) << 6) | (p[1] & 0x3F);
    return 2;
  }
  if (c < 0xF0) {
    if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && p[1] < 0xA0) return 0;   /* overlong */
    if (c == 0xED && p[1] >= 0xA0) return 0;  /* surrogate */
    *cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
    return 3;
  }
  if (c < 0xF5) {
    if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
      return 0;
    if (c == 0xF0 && p[1] < 0x90) return 0;   /* overlong */
    if (c == 0xF4 && p[1] >= 0x90) return 0;  /* past U+10FFFF */
    *cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(p[1] & 0x3F) << 12) |
          ((uint32_t)(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
    return 4;
  }
  return 0;
}

int cn_utf8_enc(uint32_t cp, uint8_t *o) {
  if (cp < 0x80) {
    o[0] = (uint8_t)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (uint8_t)(0xC0 | (cp >> 6));
    o[1] = (uint8_t)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (uint8_t)(0xE0 | (cp >> 12));
    o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (uint8_t)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (uint8_t)(0xF0 | (cp >> 18));
  o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (uint8_t)(0x80 | (cp & 0x3F));
  return 4;
}

/* ---------------------------------------------------------------- key map */



uint32_t cn_hash_u32s(const uint32_t *k, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
  for (size_t i = 0; i < n; i++) {
    h ^= k[i];
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 32;
  }
  return (uint32_t)h;
}

int cn_km_init(struct cn_keymap *m) {
  memset(m, 0, sizeof *m);
  m->mask = 1023;
  m->slot_id = calloc(m->mask + 1, sizeof *m->slot_id);
  m->slot_hash = calloc(m->mask + 1, sizeof *m->slot_hash);
  if (cn_grow(&m->key_off, &m->cap_keys, 1, sizeof *m->key_off)) return -ENOMEM;
  m->key_off[0] = 0;
  return m->slot_id && m->slot_hash ? 0 : -ENOMEM;
}

void cn_km_free(struct cn_keymap *m) {
  free(m->slot_id);
  free(m->slot_hash);
  free(m->pool);
  free(m->key_off);
  memset(m, 0, sizeof *m);
}

static int km_rehash(struct cn_keymap *m) {
  size_t nmask = m->mask * 2 + 1;
  uint32_t *ni = calloc(nmask + 1, sizeof *ni), *nh = calloc(nmask + 1, sizeof *nh);
  if (!ni || !nh) {
    free(ni);
    free(nh);
    return -ENOMEM;
  }
  for (size_t i = 0; i <= m->mask; i++) {
    if (!m->slot_id[i]) continue;
    size_t j = m->slot_hash[i] & nmask;
    while (ni[j]) j = (j + 1) & nmask;
    ni[j] = m->slot_id[i];
    nh[j] = m->slot_hash[i];
  }
  free(m->slot_id);
  free(m->slot_hash);
  m->slot_id = ni;
  m->slot_hash = nh;
  m->mask = nmask;
  return 0;
}

/* Finds KEY or inserts it: returns its id, sets *ADDED; UINT32_MAX on out of memory. */
uint32_t cn_km_get(struct cn_keymap *m, const uint32_t *key, size_t n, bool *added) {
  uint32_t h = cn_hash_u32s(key, n);
  size_t j = h & m->mask;
  while (m->slot_id[j]) {
    if (m->slot_hash[j] == h) {
      uint32_t id = m->slot_id[j] - 1;
      size_t o = m->key_off[id], l = m->key_off[id + 1] - o;
      if (l == n && !memcmp(m->pool + o, key, n * sizeof *key)) {
        *added = false;
        return id;
      }
    }
    j = (j + 1) & m->mask;
  }
  if (cn_grow(&m->pool, &m->pool_cap, m->pool_n + n + 1, sizeof *m->pool) ||
      cn_grow(&m->key_off, &m->cap_keys, m->nkeys + 2, sizeof *m->key_off))
    return UINT32_MAX;
  if (n) memcpy(m->pool + m->pool_n, key, n * sizeof *key);
  m->pool_n += n;
  uint32_t id = (uint32_t)m->nkeys++;
  m->key_off[m->nkeys] = m->pool_n;
  m->slot_id[j] = id + 1;
  m->slot_hash[j] = h;
  *added = true;
  if (m->nkeys * 2 > m->mask && km_rehash(m)) return UINT32_MAX;
  return id;
}

