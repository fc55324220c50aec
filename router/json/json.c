/*
 * json.c: byte-level JSON helpers for a proxy that must not reformat what it forwards.
 *
 * Why not jansson all the way: decoding and re-encoding changes bytes (key order aside, jansson
 * prints 0.7 as 0.69999999999999996 and re-escapes strings), and the gateway promises to forward
 * every field untouched and return upstream bodies unchanged apart from the model name. So the
 * router validates with jansson, then edits the original text: find a top-level member's value
 * span, splice a replacement in. The scanner never reads out of bounds whatever the input, but
 * only gives exact answers on valid JSON.
 */
#include <event2/buffer.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router/json/json.h"

static size_t skip_ws(const char *s, size_t n, size_t i) {
  while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
  return i;
}

/* S[i] is '"': returns the offset just past the closing quote, or (size_t)-1. */
static size_t skip_string(const char *s, size_t n, size_t i) {
  i++;
  while (i < n) {
    const char *q = memchr(s + i, '"', n - i);
    if (!q) return (size_t)-1;
    size_t k = (size_t)(q - s);
    /* count the backslashes right before the quote: odd means escaped */
    size_t b = 0;
    while (k > b && s[k - b - 1] == '\\') b++;
    if (b % 2 == 0) return k + 1;
    i = k + 1;
  }
  return (size_t)-1;
}

/* Skips one value starting at S[i] (no leading whitespace). Returns the offset past it. */
static size_t skip_value(const char *s, size_t n, size_t i) {
  if (i >= n) return (size_t)-1;
  char c = s[i];
  if (c == '"') return skip_string(s, n, i);
  if (c == '{' || c == '[') {
    size_t depth = 0;
    while (i < n) {
      c = s[i];
      if (c == '"') {
        i = skip_string(s, n, i);
        if (i == (size_t)-1) return i;
        continue;
      }
      if (c == '{' || c == '[') depth++;
      else if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
      i++;
    }
    return (size_t)-1;
  }
  size_t st = i;
  while (i < n && !strchr(",}] \t\r\n", s[i])) {
    if (s[i] == '{' || s[i] == '[' || s[i] == '"' || s[i] == ':') return (size_t)-1;
    i++;
  }
  return i > st ? i : (size_t)-1;
}

int rt_json_iter_begin(struct rt_json_iter *it, const char *s, size_t n) {
  it->s = s;
  it->n = n;
  it->count = 0;
  size_t i = skip_ws(s, n, 0);
  if (i >= n || s[i] != '{') {
    it->pos = n;
    return -1;
  }
  it->pos = i + 1;
  return 0;
}

int rt_json_iter_next(struct rt_json_iter *it, struct rt_json_span *key, struct rt_json_span *val) {
  const char *s = it->s;
  size_t n = it->n;
  size_t i = skip_ws(s, n, it->pos);
  if (i >= n) return -1;
  if (s[i] == '}') {
    it->pos = i;
    return 0;
  }
  if (it->count > 0) {
    if (s[i] != ',') return -1;
    i = skip_ws(s, n, i + 1);
  }
  if (i >= n || s[i] != '"') return -1;
  size_t ke = skip_string(s, n, i);
  if (ke == (size_t)-1) return -1;
  key->off = i;
  key->len = ke - i;
  i = skip_ws(s, n, ke);
  if (i >= n || s[i] != ':') return -1;
  i = skip_ws(s, n, i + 1);
  size_t ve = skip_value(s, n, i);
  if (ve == (size_t)-1) return -1;
  val->off = i;
  val->len = ve - i;
  it->pos = ve;
  it->count++;
  return 1;
}

static int hex4(const char *p) {
  int v = 0;
  for (int k = 0; k < 4; k++) {
    char c = p[k];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

bool rt_json_key_is(const char *s, struct rt_json_span key, const char *name) {
  if (key.len < 2) return false;
  const char *p = s + key.off + 1, *e = s + key.off + key.len - 1;
  const char *q = name;
  /* fast path: no escapes */
  if (!memchr(p, '\\', (size_t)(e - p))) {
    size_t l = strlen(name);
    return (size_t)(e - p) == l && !memcmp(p, name, l);
  }
  while (p < e) {
    char c = *p++;
    if (c == '\\') {
      if (p >= e) return false;
      char x = *p++;
      switch (x) {
      case '"': c = '"'; break;
      case '\\': c = '\\'; break;
      case '/': c = '/'; break;
      case 'b': c = '\b'; break;
      case 'f': c = '\f'; break;
      case 'n': c = '\n'; break;
      case 'r': c = '\r'; break;
      case 't': c = '\t'; break;
      case 'u': {
        if (e - p < 4) return false;
        int v = hex4(p);
        p += 4;
        if (v <= 0 || v > 0x7f) return false; /* the names we look for are ASCII */
        c = (char)v;
        break;
      }
      default: return false;
      }
    }
    if (*q == '\0' || *q != c) return false;
    q++;
  }
  return *q == '\0';
}

int rt_json_find(const char *s, size_t n, const char *name, struct rt_json_span *val) {
  struct rt_json_iter it;
  if (rt_json_iter_begin(&it, s, n) < 0) return -1;
  struct rt_json_span k, v;
  int rc;
  while ((rc = rt_json_iter_next(&it, &k, &v)) == 1) {
    if (rt_json_key_is(s, k, name)) {
      *val = v;
      return 1;
    }
  }
  return rc;
}

bool rt_json_is_null(const char *s, struct rt_json_span val) {
  return val.len == 4 && !memcmp(s + val.off, "null", 4);
}

bool rt_json_is_empty_array(const char *s, struct rt_json_span val) {
  if (val.len < 2 || s[val.off] != '[') return false;
  size_t i = skip_ws(s, val.off + val.len, val.off + 1);
  return i == val.off + val.len - 1 && s[i] == ']';
}

char *rt_json_splice(const char *s, size_t n, const struct rt_json_edit *e, size_t ne,
                     size_t *out_len) {
  size_t total = n;
  for (size_t i = 0; i < ne; i++) total = total - e[i].len + e[i].rep_len;
  char *out = malloc(total + 1);
  if (!out) return NULL;
  size_t o = 0, from = 0;
  for (size_t i = 0; i < ne; i++) {
    memcpy(out + o, s + from, e[i].off - from);
    o += e[i].off - from;
    memcpy(out + o, e[i].rep, e[i].rep_len);
    o += e[i].rep_len;
    from = e[i].off + e[i].len;
  }
  memcpy(out + o, s + from, n - from);
  o += n - from;
  out[o] = '\0';
  *out_len = o;
  return out;
}

/* Escapes into a caller buffer of at least 6*n+3 bytes; returns the length. */
static size_t quote_into(char *out, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t o = 0;
  out[o++] = '"';
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    switch (c) {
    case '"': out[o++] = '\\'; out[o++] = '"'; break;
    case '\\': out[o++] = '\\'; out[o++] = '\\'; break;
    case '\n': out[o++] = '\\'; out[o++] = 'n'; break;
    case '\r': out[o++] = '\\'; out[o++] = 'r'; break;
    case '\t': out[o++] = '\\'; out[o++] = 't'; break;
    default:
      if (c < 0x20 || c == 0x7f) {
        out[o++] = '\\'; out[o++] = 'u'; out[o++] = '0'; out[o++] = '0';
        out[o++] = hex[c >> 4]; out[o++] = hex[c & 15];
      } else {
        out[o++] = (char)c;
      }
    }
  }
  out[o++] = '"';
  return o;
}

char *rt_json_quote_str(const char *s, size_t n, size_t *out_len) {
  char *out = malloc(6 * n + 3);
  if (!out) return NULL;
  size_t l = quote_into(out, s, n);
  out[l] = '\0';
  if (out_len) *out_len = l;
  return out;
}

void rt_json_quote(struct evbuffer *out, const char *s, size_t n) {
  char small[512];
  if (6 * n + 3 <= sizeof small) {
    evbuffer_add(out, small, quote_into(small, s, n));
    return;
  }
  size_t l;
  char *q = rt_json_quote_str(s, n, &l);
  if (q) evbuffer_add(out, q, l);
  free(q);
}

/* ---------------------------------------------------------------- exact reals */

static int dump_exact(struct evbuffer *out, const json_t *v, int depth) {
  if (depth > 2048) return -1;
  switch (json_typeof(v)) {
  case JSON_OBJECT: {
    evbuffer_add(out, "{", 1);
    const char *k;
    json_t *x;
    bool first = true;
    json_object_foreach((json_t *)v, k, x) {
      if (!first) evbuffer_add(out, ",", 1);
      first = false;
      rt_json_quote(out, k, strlen(k));
      evbuffer_add(out, ":", 1);
      if (dump_exact(out, x, depth + 1)) return -1;
    }
    evbuffer_add(out, "}", 1);
    return 0;
  }
  case JSON_ARRAY: {
    evbuffer_add(out, "[", 1);
    for (size_t i = 0; i < json_array_size(v); i++) {
      if (i) evbuffer_add(out, ",", 1);
      if (dump_exact(out, json_array_get(v, i), depth + 1)) return -1;
    }
    evbuffer_add(out, "]", 1);
    return 0;
  }
  case JSON_STRING: rt_json_quote(out, json_string_value(v), json_string_length(v)); return 0;
  case JSON_INTEGER: evbuffer_add_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); return 0;
  case JSON_REAL: {
    double d = json_real_value(v);
    if (!isfinite(d)) return -1;
    char buf[40];
    for (int p = 1; p <= 17; p++) {
      snprintf(buf, sizeof buf, "%.*g", p, d);
      if (strtod(buf, NULL) == d) break;
    }
    /* a real stays a real to a reader that tells them apart: "1" would be an integer */
    if (!strpbrk(buf, ".eEn")) strcat(buf, ".0");
    evbuffer_add(out, buf, strlen(buf));
    return 0;
  }
  case JSON_TRUE: evbuffer_add(out, "true", 4); return 0;
  case JSON_FALSE: evbuffer_add(out, "false", 5); return 0;
  case JSON_NULL: evbuffer_add(out, "null", 4); return 0;
  }
  return -1;
}

char *rt_json_dumps_exact(const json_t *v) {
  struct evbuffer *out = evbuffer_new();
  if (!out) return NULL;
  char *s = NULL;
  if (!dump_exact(out, v, 0) && !evbuffer_add(out, "", 1)) {
    size_t n = evbuffer_get_length(out);
    s = malloc(n);
    if (s) evbuffer_remove(out, s, n);
  }
  evbuffer_free(out);
  return s;
}
