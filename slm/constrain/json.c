/*
 * json.c: the JSON reader of slm/constrain/ (schemas, enum values, the test suite's instances).
 *
 * RFC 8259 strictly: one value, whitespace around it, no trailing commas, no comments, strings
 * valid UTF-8 with their escapes decoded, numbers in JSON's syntax (kept as text so that 1.0 and
 * 1 stay distinguishable and big integers stay exact). Everything lives in the caller's arena.
 * Nesting is capped (max_depth) so a hostile schema cannot exhaust the stack.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slm/constrain/cn.h"

struct jp {
  struct cn_arena *a;
  const uint8_t *s;
  size_t n, i;
  int max_depth;
  char *err;
  size_t errlen;
  bool failed;
  /* scratch stacks for children being collected (copied into the arena when complete) */
  struct cj_val *vst;
  size_t vst_n, vst_cap;
  struct cj_member *mst;
  size_t mst_n, mst_cap;
  char *sbuf;              /* decoded string scratch */
  size_t sbuf_cap;
};

static void jfail(struct jp *p, const char *msg) {
  if (p->failed) return;
  p->failed = true;
  if (p->err && p->errlen) snprintf(p->err, p->errlen, "offset %zu: %s", p->i, msg);
}

static void skip_ws(struct jp *p) {
  while (p->i < p->n) {
    uint8_t c = p->s[p->i];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    p->i++;
  }
}

static int hexval(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int read_hex4(struct jp *p, uint32_t *out) {
  if (p->i + 4 > p->n) return -1;
  uint32_t v = 0;
  for (int k = 0; k < 4; k++) {
    int h = hexval(p->s[p->i + k]);
    if (h < 0) return -1;
    v = v * 16 + (uint32_t)h;
  }
  p->i += 4;
  *out = v;
  return 0;
}

/* Parses a string at p->i (the opening quote). Sets *OUT (arena copy), *LEN, *FLAGS. */
static int parse_string(struct jp *p, const char **out, uint32_t *len, uint8_t *flags) {
  p->i++;   /* opening quote */
  size_t o = 0;
  *flags = 0;
  for (;;) {
    if (p->i >= p->n) {
      jfail(p, "unterminated string");
      return -1;
    }
    if (cn_grow(&p->sbuf, &p->sbuf_cap, o + 8, 1)) {
      jfail(p, "out of memory");
      return -1;
    }
    uint8_t c = p->s[p->i];
    if (c == '"') {
      p->i++;
      break;
    }
    if (c < 0x20) {
      jfail(p, "control character in string");
      return -1;
    }
    if (c == '\\') {
      if (p->i + 1 >= p->n) {
        jfail(p, "unterminated escape");
        return -1;
      }
      uint8_t e = p->s[p->i + 1];
      p->i += 2;
      char d = 0;
      switch (e) {
        case '"': d = '"'; break;
        case '\\': d = '\\'; break;
        case '/': d = '/'; break;
        case 'b': d = '\b'; break;
        case 'f': d = '\f'; break;
        case 'n': d = '\n'; break;
        case 'r': d = '\r'; break;
        case 't': d = '\t'; break;
        case 'u': {
          uint32_t cp;
          if (read_hex4(p, &cp)) {
            jfail(p, "bad \\u escape");
            return -1;
          }
          if (cp >= 0xD800 && cp < 0xDC00) {
            uint32_t lo;
            size_t save = p->i;
            if (p->i + 2 <= p->n && p->s[p->i] == '\\' && p->s[p->i + 1] == 'u' &&
                (p->i += 2, read_hex4(p, &lo) == 0) && lo >= 0xDC00 && lo < 0xE000) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else {
              p->i = save;
              cp = 0xFFFD;
              *flags |= CJ_F_BADSTR;
            }
          } else if (cp >= 0xDC00 && cp < 0xE000) {
            cp = 0xFFFD;
            *flags |= CJ_F_BADSTR;
          }
          o += (size_t)cn_utf8_enc(cp, (uint8_t *)p->sbuf + o);
          continue;
        }
        default:
          jfail(p, "bad escape");
          return -1;
      }
      p->sbuf[o++] = d;
      continue;
    }
    if (c < 0x80) {
      p->sbuf[o++] = (char)c;
      p->i++;
      continue;
    }
    uint32_t cp;
    int k = cn_utf8_dec(p->s + p->i, p->n - p->i, &cp);
    if (!k) {
      jfail(p, "invalid UTF-8 in string");
      return -1;
    }
    memcpy(p->sbuf + o, p->s + p->i, (size_t)k);
    o += (size_t)k;
    p->i += (size_t)k;
  }
  if (o > UINT32_MAX) {
    jfail(p, "string too long");
    return -1;
  }
  *out = cn_memdup(p->a, p->sbuf, o);
  if (!*out) {
    jfail(p, "out of memory");
    return -1;
  }
  *len = (uint32_t)o;
  return 0;
}

static int parse_number(struct jp *p, struct cj_val *v) {
  size_t st = p->i;
  bool is_int = true;
  if (p->i < p->n && p->s[p->i] == '-') p->i++;
  if (p->i >= p->n) goto bad;
  if (p->s[p->i] == '0') {
    p->i++;
  } else if (p->s[p->i] >= '1' && p->s[p->i] <= '9') {
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
  } else {
    goto bad;
  }
  if (p->i < p->n && p->s[p->i] == '.') {
    is_int = false;
    p->i++;
    if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') goto bad;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
  }
  if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
    is_int = false;
    p->i++;
    if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
    if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') goto bad;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
  }
  v->type = CJ_NUMBER;
  v->flags = is_int ? CJ_F_INT : 0;
  v->len = (uint32_t)(p->i - st);
  char *t = cn_memdup(p->a, p->s + st, p->i - st);
  if (!t) {
    jfail(p, "out of memory");
    return -1;
  }
  v->u.s = t;
  v->num = strtod(t, NULL);
  return 0;
bad:
  jfail(p, "bad number");
  return -1;
}

static bool lit(struct jp *p, const char *w) {
  size_t k = strlen(w);
  if (p->n - p->i < k || memcmp(p->s + p->i, w, k)) return false;
  p->i += k;
  return true;
}

static int parse_value(struct jp *p, struct cj_val *v, int depth) {
  skip_ws(p);
  if (p->i >= p->n) {
    jfail(p, "unexpected end of text");
    return -1;
  }
  if (depth > p->max_depth) {
    jfail(p, "nesting too deep");
    return -1;
  }
  memset(v, 0, sizeof *v);
  v->src_off = (uint32_t)p->i;
  uint8_t c = p->s[p->i];
  int rc = 0;
  if (c == '{') {
    p->i++;
    size_t base = p->mst_n;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == '}') {
      p->i++;
    } else {
      for (;;) {
        skip_ws(p);
        if (p->i >= p->n || p->s[p->i] != '"') {
          jfail(p, "expected a member name");
          return -1;
        }
        struct cj_member m;
        memset(&m, 0, sizeof m);
        if (parse_string(p, &m.key, &m.klen, &m.kflags)) return -1;
        skip_ws(p);
        if (p->i >= p->n || p->s[p->i] != ':') {
          jfail(p, "expected ':'");
          return -1;
        }
        p->i++;
        if (parse_value(p, &m.val, depth + 1)) return -1;
        if (cn_grow(&p->mst, &p->mst_cap, p->mst_n + 1, sizeof *p->mst)) {
          jfail(p, "out of memory");
          return -1;
        }
        p->mst[p->mst_n++] = m;
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
          p->i++;
          continue;
        }
        if (p->i < p->n && p->s[p->i] == '}') {
          p->i++;
          break;
        }
        jfail(p, "expected ',' or '}'");
        return -1;
      }
    }
    size_t cnt = p->mst_n - base;
    v->type = CJ_OBJECT;
    v->len = (uint32_t)cnt;
    if (cnt) {
      v->u.members = cn_alloc(p->a, cnt * sizeof *v->u.members);
      if (!v->u.members) {
        jfail(p, "out of memory");
        return -1;
      }
      memcpy(v->u.members, p->mst + base, cnt * sizeof *v->u.members);
    }
    p->mst_n = base;
  } else if (c == '[') {
    p->i++;
    size_t base = p->vst_n;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == ']') {
      p->i++;
    } else {
      for (;;) {
        struct cj_val item;
        if (parse_value(p, &item, depth + 1)) return -1;
        if (cn_grow(&p->vst, &p->vst_cap, p->vst_n + 1, sizeof *p->vst)) {
          jfail(p, "out of memory");
          return -1;
        }
        p->vst[p->vst_n++] = item;
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
          p->i++;
          continue;
        }
        if (p->i < p->n && p->s[p->i] == ']') {
          p->i++;
          break;
        }
        jfail(p, "expected ',' or ']'");
        return -1;
      }
    }
    size_t cnt = p->vst_n - base;
    v->type = CJ_ARRAY;
    v->len = (uint32_t)cnt;
    if (cnt) {
      v->u.items = cn_alloc(p->a, cnt * sizeof *v->u.items);
      if (!v->u.items) {
        jfail(p, "out of memory");
        return -1;
      }
      memcpy(v->u.items, p->vst + base, cnt * sizeof *v->u.items);
    }
    p->vst_n = base;
  } else if (c == '"') {
    v->type = CJ_STRING;
    rc = parse_string(p, &v->u.s, &v->len, &v->flags);
  } else if (c == '-' || (c >= '0' && c <= '9')) {
    rc = parse_number(p, v);
  } else if (lit(p, "true")) {
    v->type = CJ_TRUE;
  } else if (lit(p, "false")) {
    v->type = CJ_FALSE;
  } else if (lit(p, "null")) {
    v->type = CJ_NULL;
  } else {
    jfail(p, "unexpected character");
    return -1;
  }
  v->src_len = (uint32_t)(p->i - v->src_off);
  return rc;
}

struct cj_val *cj_parse(struct cn_arena *a, const char *text, size_t len, int max_depth,
                        char *err, size_t errlen) {
  struct jp p;
  memset(&p, 0, sizeof p);
  p.a = a;
  p.s = (const uint8_t *)text;
  p.n = len;
  p.max_depth = max_depth;
  p.err = err;
  p.errlen = errlen;
  if (err && errlen) err[0] = 0;
  struct cj_val *root = NULL;
  if (len > UINT32_MAX) {
    jfail(&p, "text too long");
  } else if (!text && len) {
    jfail(&p, "no text");
  } else {
    root = cn_alloc(a, sizeof *root);
    if (!root) {
      jfail(&p, "out of memory");
    } else if (parse_value(&p, root, 0) == 0) {
      skip_ws(&p);
      if (p.i != p.n) jfail(&p, "text after the JSON value");
    }
  }
  free(p.vst);
  free(p.mst);
  free(p.sbuf);
  return p.failed ? NULL : root;
}

const struct cj_val *cj_get(const struct cj_val *o, const char *key) {
  if (!o || o->type != CJ_OBJECT) return NULL;
  size_t kl = strlen(key);
  for (uint32_t i = 0; i < o->len; i++)
    if (o->u.members[i].klen == kl && !memcmp(o->u.members[i].key, key, kl))
      return &o->u.members[i].val;
  return NULL;
}

/* ---------------------------------------------------------------- numbers by value */

/* A number text as sign, significant digits (no leading/trailing zeros) and the decimal exponent
 * of the first digit: value = 0.d1d2d3... x 10^exp10. Zero has ndig == 0. */
struct decnum {
  bool neg;
  const char *dig;   /* points into a small buffer */
  int ndig;
  long exp10;
};

static void dec_parse(const char *t, size_t n, char *buf, size_t cap, struct decnum *d) {
  size_t i = 0;
  d->neg = false;
  if (i < n && t[i] == '-') d->neg = true, i++;
  int nb = 0;
  long point = 0;   /* digits before the decimal point (of the raw digit string) */
  bool seen_point = false;
  long lead_zeros = 0;
  bool any_nonzero = false;
  for (; i < n; i++) {
    char c = t[i];
    if (c == '.') {
      seen_point = true;
      continue;
    }
    if (c == 'e' || c == 'E') break;
    if (c < '0' || c > '9') break;
    if (!any_nonzero && c == '0') {
      if (seen_point) lead_zeros++;
      continue;
    }
    any_nonzero = true;
    if ((size_t)nb < cap) buf[nb++] = c;
    if (!seen_point) point++;
  }
  long e = 0;
  if (i < n && (t[i] == 'e' || t[i] == 'E')) {
    i++;
    bool en = false;
    if (i < n && (t[i] == '+' || t[i] == '-')) en = t[i] == '-', i++;
    for (; i < n && t[i] >= '0' && t[i] <= '9'; i++)
      if (e < 100000000) e = e * 10 + (t[i] - '0');
    if (en) e = -e;
  }
  while (nb > 0 && buf[nb - 1] == '0') nb--;
  d->dig = buf;
  d->ndig = nb;
  d->exp10 = nb ? (point > 0 ? point : -lead_zeros) + e : 0;
}

int cj_num_cmp_exact(const char *a, size_t alen, const char *b, size_t blen) {
  char ba[800], bb[800];
  struct decnum x, y;
  dec_parse(a, alen, ba, sizeof ba, &x);
  dec_parse(b, blen, bb, sizeof bb, &y);
  int sx = x.ndig ? (x.neg ? -1 : 1) : 0, sy = y.ndig ? (y.neg ? -1 : 1) : 0;
  if (sx != sy) return sx < sy ? -1 : 1;
  if (sx == 0) return 0;
  int mag;   /* compare magnitudes */
  if (x.exp10 != y.exp10) {
    mag = x.exp10 < y.exp10 ? -1 : 1;
  } else {
    mag = 0;
    int k = x.ndig > y.ndig ? x.ndig : y.ndig;
    for (int i = 0; i < k && !mag; i++) {
      char cx = i < x.ndig ? x.dig[i] : '0', cy = i < y.ndig ? y.dig[i] : '0';
      if (cx != cy) mag = cx < cy ? -1 : 1;
    }
  }
  return sx > 0 ? mag : -mag;
}

static bool has_dup_keys(const struct cj_val *o) {
  for (uint32_t i = 0; i < o->len; i++)
    for (uint32_t j = i + 1; j < o->len; j++)
      if (o->u.members[i].klen == o->u.members[j].klen &&
          !memcmp(o->u.members[i].key, o->u.members[j].key, o->u.members[i].klen))
        return true;
  return false;
}

static enum cn_tri tri_and(enum cn_tri a, enum cn_tri b) {
  if (a == CN_FALSE || b == CN_FALSE) return CN_FALSE;
  if (a == CN_UNKNOWN || b == CN_UNKNOWN) return CN_UNKNOWN;
  return CN_TRUE;
}

enum cn_tri cj_equal(const struct cj_val *a, const struct cj_val *b) {
  if (a->type != b->type) return CN_FALSE;
  switch (a->type) {
    case CJ_NULL: case CJ_TRUE: case CJ_FALSE: return CN_TRUE;
    case CJ_NUMBER: {
      bool ex = cj_num_cmp_exact(a->u.s, a->len, b->u.s, b->len) == 0;
      bool db = a->num == b->num;
      /* integers are exact in every validator worth the name */
      if ((a->flags & CJ_F_INT) && (b->flags & CJ_F_INT)) return ex ? CN_TRUE : CN_FALSE;
      if (ex == db) return ex ? CN_TRUE : CN_FALSE;
      return CN_UNKNOWN;
    }
    case CJ_STRING:
      if ((a->flags | b->flags) & CJ_F_BADSTR) return CN_UNKNOWN;
      return a->len == b->len && !memcmp(a->u.s, b->u.s, a->len) ? CN_TRUE : CN_FALSE;
    case CJ_ARRAY: {
      if (a->len != b->len) return CN_FALSE;
      enum cn_tri r = CN_TRUE;
      for (uint32_t i = 0; i < a->len && r != CN_FALSE; i++)
        r = tri_and(r, cj_equal(&a->u.items[i], &b->u.items[i]));
      return r;
    }
    case CJ_OBJECT: {
      if (has_dup_keys(a) || has_dup_keys(b)) return CN_UNKNOWN;
      if (a->len != b->len) return CN_FALSE;
      enum cn_tri r = CN_TRUE;
      for (uint32_t i = 0; i < a->len && r != CN_FALSE; i++) {
        const struct cj_member *m = &a->u.members[i];
        if (m->kflags & CJ_F_BADSTR) return CN_UNKNOWN;
        const struct cj_val *o = NULL;
        for (uint32_t j = 0; j < b->len; j++)
          if (b->u.members[j].klen == m->klen && !memcmp(b->u.members[j].key, m->key, m->klen)) {
            o = &b->u.members[j].val;
            break;
          }
        if (!o) return CN_FALSE;
        r = tri_and(r, cj_equal(&m->val, o));
      }
      return r;
    }
  }
  return CN_FALSE;
}

/* ---------------------------------------------------------------- writing */

static int put(char **buf, size_t *len, size_t *cap, const void *p, size_t n) {
  if (cn_grow(buf, cap, *len + n + 1, 1)) return -ENOMEM;
  memcpy(*buf + *len, p, n);
  *len += n;
  (*buf)[*len] = 0;
  return 0;
}

static int put_str(const char *s, size_t n, char **buf, size_t *len, size_t *cap) {
  if (put(buf, len, cap, "\"", 1)) return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[8];
    const char *e = NULL;
    size_t el = 2;
    switch (c) {
      case '"': e = "\\\""; break;
      case '\\': e = "\\\\"; break;
      case '\n': e = "\\n"; break;
      case '\r': e = "\\r"; break;
      case '\t': e = "\\t"; break;
      case '\b': e = "\\b"; break;
      case '\f': e = "\\f"; break;
      default:
        if (c < 0x20) {
          snprintf(esc, sizeof esc, "\\u%04x", c);
          e = esc;
          el = 6;
        }
    }
    if (e ? put(buf, len, cap, e, el) : put(buf, len, cap, &s[i], 1)) return -ENOMEM;
  }
  return put(buf, len, cap, "\"", 1);
}

int cj_write(const struct cj_val *v, char **buf, size_t *len, size_t *cap) {
  switch (v->type) {
    case CJ_NULL: return put(buf, len, cap, "null", 4);
    case CJ_TRUE: return put(buf, len, cap, "true", 4);
    case CJ_FALSE: return put(buf, len, cap, "false", 5);
    case CJ_NUMBER: return put(buf, len, cap, v->u.s, v->len);
    case CJ_STRING: return put_str(v->u.s, v->len, buf, len, cap);
    case CJ_ARRAY:
      if (put(buf, len, cap, "[", 1)) return -ENOMEM;
      for (uint32_t i = 0; i < v->len; i++) {
        if (i && put(buf, len, cap, ",", 1)) return -ENOMEM;
        if (cj_write(&v->u.items[i], buf, len, cap)) return -ENOMEM;
      }
      return put(buf, len, cap, "]", 1);
    case CJ_OBJECT:
      if (put(buf, len, cap, "{", 1)) return -ENOMEM;
      for (uint32_t i = 0; i < v->len; i++) {
        if (i && put(buf, len, cap, ",", 1)) return -ENOMEM;
        if (put_str(v->u.members[i].key, v->u.members[i].klen, buf, len, cap)) return -ENOMEM;
        if (put(buf, len, cap, ":", 1)) return -ENOMEM;
        if (cj_write(&v->u.members[i].val, buf, len, cap)) return -ENOMEM;
      }
      return put(buf, len, cap, "}", 1);
  }
  return -EINVAL;
}

size_t cj_compact(const char *t, size_t n, char *out) {
  size_t o = 0;
  bool in_str = false;
  for (size_t i = 0; i < n; i++) {
    char c = t[i];
    if (in_str) {
      out[o++] = c;
      if (c == '\\' && i + 1 < n) out[o++] = t[++i];
      else if (c == '"') in_str = false;
    } else if (c == '"') {
      in_str = true;
      out[o++] = c;
    } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
      out[o++] = c;
    }
  }
  return o;
}
