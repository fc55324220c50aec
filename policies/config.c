/*
 * config.c: the YAML configuration file -> struct pol_config, with file:line:col errors.
 *
 * DESIGN. libyaml's document API builds the node graph with a start mark on every node; the
 * loader then walks it schema-first: each section lists its known keys (anything else is an
 * error, with a "did you mean" hint), fetches each value by key, and types it. Scalars are typed
 * only when a key that uses them is read, so `${VAR}` expansion happens exactly once per used
 * value and before typing ("${PORT:-8080}" is an integer once expanded). Errors accumulate (up to
 * POL_MAX_ERRORS stored, all counted) so one run of `config check` shows them all.
 *
 * Positions: libyaml marks are 0-based lines and columns counted in characters; messages use
 * 1-based ones. A problem inside a scalar (a bad `${...}`) is reported at its own column when the
 * scalar is a one-line plain or quoted scalar whose source text equals its value (no escapes, no
 * folding); otherwise at the scalar's start.
 *
 * Memory: everything hangs off one arena freed by pol_config_free(). The loader's own scratch
 * (the YAML document, temporary strings) dies with the load.
 *
 * Limits: the file is at most 4 MiB; an expanded scalar at most 64 KiB; the walk visits at most
 * 1M nodes (aliases can make a small file describe a huge tree); a provider has at most 64
 * headers, a model 64 deployments and 64 fallbacks (their checks are quadratic).
 */
#include "policies/internal.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MAX_FILE_BYTES (4u << 20)
/* Deepest nesting of mappings and sequences accepted. A config needs about 6; libyaml's scanner
 * checks every open flow level on every token, so a file of 4 MB of "[[[[..." took minutes:
 * depth_check() stops at this depth before the document is loaded. */
#define MAX_DEPTH 64
#define MAX_SCALAR_BYTES (64u << 10)
#define MAX_VISITS 1000000
#define MAX_LIST 64              /* headers, deployments, fallbacks, failure classes per owner */

/* ================================================================ arena */

struct blk { struct blk *next; size_t used, cap; _Alignas(16) unsigned char data[]; };
struct arena { struct blk *head; };

static void *a_alloc(struct arena *a, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (!a->head || a->head->cap - a->head->used < n) {
    size_t cap = n > 16384 ? n : 16384;
    struct blk *b = malloc(sizeof *b + cap);
    if (!b) abort();   /* config loading is startup work: out of memory here is fatal */
    b->next = a->head;
    b->used = 0;
    b->cap = cap;
    a->head = b;
  }
  void *p = a->head->data + a->head->used;
  a->head->used += n;
  memset(p, 0, n);
  return p;
}

static char *a_strndup(struct arena *a, const char *s, size_t n) {
  char *p = a_alloc(a, n + 1);
  memcpy(p, s, n);
  p[n] = 0;
  return p;
}
static char *a_strdup(struct arena *a, const char *s) { return a_strndup(a, s, strlen(s)); }

static void a_free(struct arena *a) {
  for (struct blk *b = a->head, *n; b; b = n) {
    n = b->next;
    free(b);
  }
  a->head = NULL;
}

struct cfg_owner {
  struct pol_config pub;   /* first: pol_config_free() casts back */
  struct arena arena;
};

/* ================================================================ errors */

void pol_error_format(const struct pol_error *e, char *buf, size_t cap) {
  if (!buf || !cap) return;
  if (e->line > 0)
    snprintf(buf, cap, "%s:%d:%d: %s", e->file, e->line, e->col, e->msg);
  else
    snprintf(buf, cap, "%s: %s", e->file, e->msg);
}

/* ================================================================ loader state */

struct wlist { struct pol_error *v; size_t n, cap; };

struct ld {
  const char *name;
  const unsigned char *src;   /* the file, for column mapping */
  size_t len;
  size_t *line_off;           /* byte offset of each line's start */
  size_t n_lines;
  yaml_document_t doc;
  struct pol_errors *errs;
  struct wlist warns;
  struct arena *A;            /* the result's arena */
  struct arena tmp;           /* scratch freed after the load */
  long visits;
  bool providers_broken;      /* the providers section itself is unusable: references to
                               * providers are not reported again */
  struct pol_config *cfg;
};

static void vrecord(struct ld *ld, struct pol_error *e, int line, int col, const char *fmt,
                    va_list ap) {
  snprintf(e->file, sizeof e->file, "%s", ld->name);
  e->line = line;
  e->col = col;
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
}

__attribute__((format(printf, 4, 5)))
static void err_at(struct ld *ld, int line, int col, const char *fmt, ...) {
  int i = ld->errs->n++;
  if (i >= POL_MAX_ERRORS) return;
  va_list ap;
  va_start(ap, fmt);
  vrecord(ld, &ld->errs->e[i], line, col, fmt, ap);
  va_end(ap);
}

__attribute__((format(printf, 3, 4)))
static void err_node(struct ld *ld, const yaml_node_t *n, const char *fmt, ...) {
  int i = ld->errs->n++;
  if (i >= POL_MAX_ERRORS) return;
  va_list ap;
  va_start(ap, fmt);
  vrecord(ld, &ld->errs->e[i], (int)n->start_mark.line + 1, (int)n->start_mark.column + 1, fmt,
          ap);
  va_end(ap);
}

__attribute__((format(printf, 3, 4)))
static void warn_node(struct ld *ld, const yaml_node_t *n, const char *fmt, ...) {
  struct wlist *w = &ld->warns;
  if (w->n == w->cap) {
    size_t cap = w->cap ? w->cap * 2 : 8;
    struct pol_error *v = a_alloc(&ld->tmp, cap * sizeof *v);
    if (w->n) memcpy(v, w->v, w->n * sizeof *v);
    w->v = v;
    w->cap = cap;
  }
  va_list ap;
  va_start(ap, fmt);
  vrecord(ld, &w->v[w->n++], (int)n->start_mark.line + 1, (int)n->start_mark.column + 1, fmt, ap);
  va_end(ap);
}

/* ================================================================ node helpers */

static yaml_node_t *node(struct ld *ld, int id) { return yaml_document_get_node(&ld->doc, id); }

static bool is_null(const yaml_node_t *n) {
  if (!n) return true;
  if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
  const char *v = (const char *)n->data.scalar.value;
  return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL");
}

/* "a mapping", "a list", "null" or 'text' (shortened), for "expected X, got Y" messages. */
static const char *describe(struct ld *ld, const yaml_node_t *n) {
  if (is_null(n)) return "null";
  if (n->type == YAML_MAPPING_NODE) return "a mapping";
  if (n->type == YAML_SEQUENCE_NODE) return "a list";
  const char *v = (const char *)n->data.scalar.value;
  size_t len = n->data.scalar.length;
  char *out = a_alloc(&ld->tmp, 48);
  if (len > 40)
    snprintf(out, 48, "'%.37s...'", v);
  else
    snprintf(out, 48, "'%s'", v);
  for (char *p = out; *p; p++)
    if ((unsigned char)*p < 0x20) *p = '?';
  return out;
}

static const char *key_str(const yaml_node_t *k) {
  return k && k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "?";
}

static bool visit(struct ld *ld, const yaml_node_t *n) {
  if (++ld->visits == MAX_VISITS)
    err_node(ld, n, "configuration too large (more than %d nodes after aliases)", MAX_VISITS);
  return ld->visits < MAX_VISITS;
}

/* ---------------------------------------------------------------- column mapping */

static void build_lines(struct ld *ld) {
  size_t n = 1;
  for (size_t i = 0; i < ld->len; i++)
    if (ld->src[i] == '\n' || (ld->src[i] == '\r' && (i + 1 >= ld->len || ld->src[i + 1] != '\n')))
      n++;
  ld->line_off = a_alloc(&ld->tmp, n * sizeof *ld->line_off);
  size_t k = 0;
  size_t start = 0;
  /* libyaml skips a UTF-8 byte order mark without counting it as a column */
  if (ld->len >= 3 && !memcmp(ld->src, "\xEF\xBB\xBF", 3)) start = 3;
  ld->line_off[k++] = start;
  for (size_t i = 0; i < ld->len; i++)
    if (ld->src[i] == '\n' || (ld->src[i] == '\r' && (i + 1 >= ld->len || ld->src[i + 1] != '\n')))
      ld->line_off[k++] = i + 1;
  ld->n_lines = k;
}

/* Byte offset in the source of (0-based) line L, character column C; SIZE_MAX if out of range. */
static size_t src_offset(const struct ld *ld, size_t l, size_t c) {
  if (l >= ld->n_lines) return SIZE_MAX;
  size_t p = ld->line_off[l];
  while (c > 0 && p < ld->len) {
    p++;
    while (p < ld->len && (ld->src[p] & 0xC0) == 0x80) p++;   /* UTF-8 continuation bytes */
    c--;
  }
  return c ? SIZE_MAX : p;
}

static size_t utf8_chars(const char *s, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (((unsigned char)s[i] & 0xC0) != 0x80) k++;
  return k;
}

/* Error at byte OFF of scalar N's value: its own column when the source text is the value
 * verbatim on one line, else the scalar's start. */
__attribute__((format(printf, 4, 5)))
static void err_in_scalar(struct ld *ld, const yaml_node_t *n, size_t off, const char *fmt, ...) {
  int line = (int)n->start_mark.line + 1, col = (int)n->start_mark.column + 1;
  const char *v = (const char *)n->data.scalar.value;
  size_t vlen = n->data.scalar.length;
  yaml_scalar_style_t st = n->data.scalar.style;
  int q = st == YAML_SINGLE_QUOTED_SCALAR_STYLE || st == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
  if ((st == YAML_PLAIN_SCALAR_STYLE || q) && n->start_mark.line == n->end_mark.line) {
    size_t p = src_offset(ld, n->start_mark.line, n->start_mark.column);
    if (p != SIZE_MAX && p + q + vlen <= ld->len && !memcmp(ld->src + p + q, v, vlen))
      col += q + (int)utf8_chars(v, off);
  }
  int i = ld->errs->n++;
  if (i >= POL_MAX_ERRORS) return;
  va_list ap;
  va_start(ap, fmt);
  vrecord(ld, &ld->errs->e[i], line, col, fmt, ap);
  va_end(ap);
}

/* ================================================================ ${VAR} expansion */

static bool env_name_ok(const char *s, size_t n) {
  if (n == 0 || n > 128 || !(isalpha((unsigned char)s[0]) || s[0] == '_')) return false;
  for (size_t i = 1; i < n; i++)
    if (!(isalnum((unsigned char)s[i]) || s[i] == '_')) return false;
  return true;
}

/* The value of scalar N with ${VAR}, ${VAR:-default} and $${ expanded, in the tmp arena; NULL
 * after reporting an error. */
static const char *expand(struct ld *ld, const yaml_node_t *n) {
  const char *v = (const char *)n->data.scalar.value;
  size_t len = n->data.scalar.length;
  if (!memchr(v, '$', len)) return v;
  size_t cap = MAX_SCALAR_BYTES, o = 0;
  char *out = a_alloc(&ld->tmp, cap + 1);
  bool ok = true;
  for (size_t i = 0; i < len;) {
    const char *piece = v + i;
    size_t plen = 1, adv = 1;
    if (v[i] == '$' && i + 2 < len && v[i + 1] == '$' && v[i + 2] == '{') {
      piece = "${";
      plen = 2;
      adv = 3;
    } else if (v[i] == '$' && i + 1 < len && v[i + 1] == '{') {
      const char *close = memchr(v + i + 2, '}', len - i - 2);
      if (!close) {
        err_in_scalar(ld, n, i, "unterminated '${' (missing '}'; write '$${' for a literal '${')");
        return NULL;
      }
      const char *in = v + i + 2;
      size_t inlen = (size_t)(close - in);
      const char *sep = NULL;
      for (size_t k = 0; k < inlen; k++)
        if (in[k] == ':') {
          sep = in + k;
          break;
        }
      size_t nlen = sep ? (size_t)(sep - in) : inlen;
      const char *def = NULL;
      size_t dlen = 0;
      if (sep) {
        if (sep + 1 >= close || sep[1] != '-') {
          err_in_scalar(ld, n, i, "bad '${%.*s}': expected ${VAR} or ${VAR:-default}", (int)inlen,
                        in);
          return NULL;
        }
        def = sep + 2;
        dlen = (size_t)(close - def);
        if (dlen >= 2 && memmem(def, dlen, "${", 2)) {
          err_in_scalar(ld, n, i, "nested '${' inside a default is not supported");
          return NULL;
        }
      }
      if (!env_name_ok(in, nlen)) {
        err_in_scalar(ld, n, i, "bad variable name '%.*s' in '${...}'", (int)(nlen > 64 ? 64 : nlen),
                      in);
        return NULL;
      }
      char name[129];
      memcpy(name, in, nlen);
      name[nlen] = 0;
      const char *val = getenv(name);
      if (def && (!val || !*val)) {
        piece = def;
        plen = dlen;
      } else if (!val) {
        err_in_scalar(ld, n, i,
                      "environment variable %s is not set (write ${%s:-default} to give a default)",
                      name, name);
        ok = false;
        piece = "";
        plen = 0;
      } else {
        piece = val;
        plen = strlen(val);
      }
      adv = (size_t)(close - (v + i)) + 1;
    }
    if (plen > cap - o) {
      err_in_scalar(ld, n, 0, "value longer than %u bytes after expansion", MAX_SCALAR_BYTES);
      return NULL;
    }
    memcpy(out + o, piece, plen);
    o += plen;
    i += adv;
  }
  out[o] = 0;
  if (memchr(out, 0, o)) ok = false;   /* cannot happen: getenv strings end at NUL */
  return ok ? out : NULL;
}

/* ================================================================ typed getters */

/* A scalar's expanded text, or NULL after an error ("expected WHAT, got a mapping"). */
static const char *scalar(struct ld *ld, const yaml_node_t *n, const char *what) {
  if (!visit(ld, n)) return NULL;
  if (n->type != YAML_SCALAR_NODE || is_null(n)) {
    err_node(ld, n, "expected %s, got %s", what, describe(ld, n));
    return NULL;
  }
  return expand(ld, n);
}

static bool get_str(struct ld *ld, const yaml_node_t *n, const char *what, char **out) {
  const char *s = scalar(ld, n, what);
  if (!s) return false;
  if (!*s) {
    err_node(ld, n, "expected %s, got an empty string", what);
    return false;
  }
  for (const char *p = s; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f) {
      err_node(ld, n, "%s must not contain control characters", what);
      return false;
    }
  *out = a_strdup(ld->A, s);
  return true;
}

/* Decimal integer with optional sign; false on anything else or overflow. */
static bool parse_i64(const char *s, int64_t *out) {
  const char *p = s;
  bool neg = false;
  if (*p == '+' || *p == '-') neg = *p++ == '-';
  if (!isdigit((unsigned char)*p)) return false;
  int64_t v = 0;
  for (; isdigit((unsigned char)*p); p++)
    if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *p - '0', &v)) return false;
  if (*p) return false;
  *out = neg ? -v : v;
  return true;
}

static bool get_int(struct ld *ld, const yaml_node_t *n, int64_t lo, int64_t hi, int64_t *out) {
  const char *s = scalar(ld, n, "integer");
  if (!s) return false;
  int64_t v;
  if (!parse_i64(s, &v)) {
    err_node(ld, n, "expected integer, got '%.60s'", s);
    return false;
  }
  if (v < lo || v > hi) {
    err_node(ld, n, "must be between %lld and %lld, got %lld", (long long)lo, (long long)hi,
             (long long)v);
    return false;
  }
  *out = v;
  return true;
}

static void parse_price_override(struct ld *ld, const yaml_node_t *n, struct pol_price *o);

static bool get_bool(struct ld *ld, const yaml_node_t *n, bool *out) {
  const char *s = scalar(ld, n, "true or false");
  if (!s) return false;
  if (!strcmp(s, "true")) *out = true;
  else if (!strcmp(s, "false")) *out = false;
  else {
    err_node(ld, n, "expected true or false, got '%.60s'", s);
    return false;
  }
  return true;
}

/* "12", "12.5": a non-negative decimal scaled by 10^SCALE, exactly; false if it has more
 * fractional digits than SCALE (those would be lost) or overflows. */
static bool parse_fixed(const char *s, int scale, int64_t *out) {
  const char *p = s;
  int64_t v = 0;
  int frac = -1;
  if (!isdigit((unsigned char)*p) && !(*p == '.' && isdigit((unsigned char)p[1]))) return false;
  for (; *p; p++) {
    if (*p == '.' && frac < 0) {
      frac = 0;
      continue;
    }
    if (!isdigit((unsigned char)*p)) return false;
    if (frac >= 0 && ++frac > scale) {
      if (*p != '0') return false;   /* trailing zeros beyond the scale are harmless */
      continue;
    }
    if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *p - '0', &v)) return false;
  }
  for (int k = frac < 0 ? 0 : (frac > scale ? scale : frac); k < scale; k++)
    if (__builtin_mul_overflow(v, 10, &v)) return false;
  *out = v;
  return true;
}

/* Durations: an integer or decimal with a unit: 250ms, 5s, 1.5s, 2m, 1h. Stored in ms. */
static bool get_duration(struct ld *ld, const yaml_node_t *n, int *out_ms) {
  const char *s = scalar(ld, n, "a duration like 5s or 250ms");
  if (!s) return false;
  size_t len = strlen(s), ulen = 0;
  while (ulen < len && isalpha((unsigned char)s[len - 1 - ulen])) ulen++;
  const char *unit = s + len - ulen;
  int64_t mult = 0;   /* ms per unit, scaled by 1000 so "0.5ms" is caught below */
  if (!strcmp(unit, "ms")) mult = 1;
  else if (!strcmp(unit, "s")) mult = 1000;
  else if (!strcmp(unit, "m") || !strcmp(unit, "min")) mult = 60000;
  else if (!strcmp(unit, "h")) mult = 3600000;
  char num[64];
  int64_t milli;   /* the number x 1000 */
  if (!mult || len - ulen == 0 || len - ulen >= sizeof num) goto bad;
  memcpy(num, s, len - ulen);
  num[len - ulen] = 0;
  if (!parse_fixed(num, 3, &milli)) goto bad;
  int64_t ms1000;
  if (__builtin_mul_overflow(milli, mult, &ms1000) || ms1000 % 1000) goto bad;
  int64_t ms = ms1000 / 1000;
  if (ms <= 0 || ms > 86400000) {
    err_node(ld, n, "duration must be between 1ms and 24h, got '%.60s'", s);
    return false;
  }
  *out_ms = (int)ms;
  return true;
bad:
  if (ulen == 0 && parse_fixed(s, 0, &milli))
    err_node(ld, n, "expected a duration with a unit (ms, s, m, h) like 5s or 250ms, got '%.60s'", s);
  else
    err_node(ld, n, "expected a duration like 5s or 250ms, got '%.60s'", s);
  return false;
}

/* Sizes: bytes, or a number with B, KiB, MiB, GiB (powers of 1024) or KB, MB, GB (of 1000). */
static bool get_size(struct ld *ld, const yaml_node_t *n, int64_t lo, int64_t hi, int64_t *out) {
  const char *s = scalar(ld, n, "a size like 4MiB");
  if (!s) return false;
  size_t len = strlen(s), ulen = 0;
  while (ulen < len && isalpha((unsigned char)s[len - 1 - ulen])) ulen++;
  const char *unit = s + len - ulen;
  int64_t mult = 0;
  if (ulen == 0 || !strcmp(unit, "B")) mult = 1;
  else if (!strcmp(unit, "KiB")) mult = 1024;
  else if (!strcmp(unit, "MiB")) mult = 1024 * 1024;
  else if (!strcmp(unit, "GiB")) mult = 1024 * 1024 * 1024;
  else if (!strcmp(unit, "KB") || !strcmp(unit, "kB")) mult = 1000;
  else if (!strcmp(unit, "MB")) mult = 1000 * 1000;
  else if (!strcmp(unit, "GB")) mult = 1000 * 1000 * 1000;
  char num[64];
  int64_t v;
  if (!mult || len - ulen == 0 || len - ulen >= sizeof num) goto bad;
  memcpy(num, s, len - ulen);
  num[len - ulen] = 0;
  if (!parse_fixed(num, 0, &v) || __builtin_mul_overflow(v, mult, &v)) goto bad;
  if (v < lo || v > hi) {
    err_node(ld, n, "size must be between %lld and %lld bytes, got '%.60s'", (long long)lo,
             (long long)hi, s);
    return false;
  }
  *out = v;
  return true;
bad:
  err_node(ld, n, "expected a size like 4MiB, 512KiB or 1048576, got '%.60s'", s);
  return false;
}

/* Price in USD per 1M tokens ("0.15") -> micro-USD per 1M tokens (150000), exactly. */
static bool get_price(struct ld *ld, const yaml_node_t *n, int64_t *out) {
  const char *s = scalar(ld, n, "a price in USD per 1M tokens");
  if (!s) return false;
  int64_t v;
  if (!parse_fixed(s, 6, &v) || v > 1000000000000LL) {
    err_node(ld, n,
             "expected a price in USD per 1M tokens like 0.15 (at most 6 decimals), got '%.60s'",
             s);
    return false;
  }
  *out = v;
  return true;
}

/* ================================================================ mappings */

struct kv { const yaml_node_t *k, *v; };

static size_t levenshtein(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 40 || lb > 40) return 99;
  size_t row[41];
  for (size_t j = 0; j <= lb; j++) row[j] = j;
  for (size_t i = 1; i <= la; i++) {
    size_t prev = row[0];
    row[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t cur = row[j];
      size_t best = prev + (a[i - 1] != b[j - 1]);
      if (row[j] + 1 < best) best = row[j] + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      row[j] = best;
      prev = cur;
    }
  }
  return row[lb];
}

/* Sort order for duplicate detection: by key text, then by position in the file. */
struct skey { const yaml_node_t *k; size_t i; };
static int skey_cmp(const void *a, const void *b) {
  const struct skey *x = a, *y = b;
  int c = strcmp(key_str(x->k), key_str(y->k));
  if (c) return c;
  return x->k->start_mark.index < y->k->start_mark.index ? -1 : 1;
}

/* Pairs of mapping N, in file order, with keys checked: every key a plain scalar, no duplicates,
 * and (when KNOWN is non-NULL) every key one of KNOWN. Bad pairs are reported and left out.
 * Returns the count; *out is in the tmp arena. N must be a mapping. */
static size_t pairs(struct ld *ld, const yaml_node_t *n, const char *const *known,
                    const char *where, struct kv **out) {
  size_t cnt = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
  struct kv *v = a_alloc(&ld->tmp, (cnt ? cnt : 1) * sizeof *v);
  size_t k = 0;
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
    const yaml_node_t *key = node(ld, p->key), *val = node(ld, p->value);
    if (!visit(ld, key)) break;
    if (key->type != YAML_SCALAR_NODE || is_null(key)) {
      err_node(ld, key, "keys must be plain strings, got %s", describe(ld, key));
      continue;
    }
    if (known) {
      const char *ks = key_str(key), *best = NULL;
      size_t bestd = 99;
      bool found = false;
      for (const char *const *q = known; *q; q++) {
        if (!strcmp(*q, ks)) {
          found = true;
          break;
        }
        size_t d = levenshtein(*q, ks);
        if (d < bestd) {
          bestd = d;
          best = *q;
        }
      }
      if (!found) {
        if (!strcmp(ks, "api_key"))
          err_node(ld, key, "unknown key 'api_key' in %s (keys never go in the file: name the "
                            "variable that holds it with api_key_env)", where);
        else if (best && bestd <= 2 && bestd < strlen(ks))
          err_node(ld, key, "unknown key '%.60s' in %s (did you mean '%s'?)", ks, where, best);
        else
          err_node(ld, key, "unknown key '%.60s' in %s", ks, where);
        continue;
      }
    }
    v[k].k = key;
    v[k].v = val;
    k++;
  }
  /* duplicates: sort indexes by (text, position); every later occurrence is reported and
   * dropped, the first one is kept */
  if (k > 1) {
    struct skey *sk = a_alloc(&ld->tmp, k * sizeof *sk);
    bool *drop = a_alloc(&ld->tmp, k * sizeof *drop);
    for (size_t i = 0; i < k; i++) sk[i] = (struct skey){v[i].k, i};
    qsort(sk, k, sizeof *sk, skey_cmp);
    size_t first = 0;
    for (size_t i = 1; i < k; i++) {
      if (strcmp(key_str(sk[i].k), key_str(sk[first].k))) {
        first = i;
        continue;
      }
      err_node(ld, sk[i].k, "duplicate key '%.60s' in %s (first at line %d)", key_str(sk[i].k),
               where, (int)sk[first].k->start_mark.line + 1);
      drop[sk[i].i] = true;
    }
    size_t w = 0;
    for (size_t i = 0; i < k; i++)
      if (!drop[i]) v[w++] = v[i];
    k = w;
  }
  *out = v;
  return k;
}

static const yaml_node_t *get(const struct kv *kv, size_t n, const char *key) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(key_str(kv[i].k), key)) return kv[i].v;
  return NULL;
}
static const yaml_node_t *get_key(const struct kv *kv, size_t n, const char *key) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(key_str(kv[i].k), key)) return kv[i].k;
  return NULL;
}

static bool want_map(struct ld *ld, const yaml_node_t *n, const char *what) {
  if (n->type == YAML_MAPPING_NODE) return true;
  err_node(ld, n, "expected %s (a mapping), got %s", what, describe(ld, n));
  return false;
}

/* ================================================================ values with structure */

static bool valid_name(const char *s, bool strict) {
  size_t n = strlen(s);
  if (n == 0 || n > 128) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (strict ? !(isalnum(c) || c == '-' || c == '_' || c == '.') : (c <= 0x20 || c == 0x7f))
      return false;
  }
  return true;
}

/* "host:port", "[v6]:port" or ":port" (all interfaces). */
static bool get_listen(struct ld *ld, const yaml_node_t *n) {
  const char *s = scalar(ld, n, "host:port");
  if (!s) return false;
  const char *colon = strrchr(s, ':');
  char host[256];
  int64_t port;
  if (!colon || !parse_i64(colon + 1, &port) || colon[1] == '+' || colon[1] == '-') goto bad;
  size_t hl = (size_t)(colon - s);
  if (hl >= sizeof host) goto bad;
  memcpy(host, s, hl);
  host[hl] = 0;
  if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
    memmove(host, host + 1, hl - 2);
    host[hl - 2] = 0;
    if (!strchr(host, ':')) goto bad;
  } else if (strchr(host, ':') || strchr(host, '[') || strchr(host, ']')) {
    goto bad;   /* an IPv6 address needs brackets */
  }
  for (char *p = host; *p; p++)
    if ((unsigned char)*p <= 0x20) goto bad;
  if (port < 0 || port > 65535) {
    err_node(ld, n, "listen port must be between 0 and 65535, got %lld", (long long)port);
    return false;
  }
  ld->cfg->listen_host = a_strdup(ld->A, hl ? host : "0.0.0.0");
  ld->cfg->listen_port = (int)port;
  return true;
bad:
  err_node(ld, n, "expected host:port like 127.0.0.1:8080 or [::1]:8080, got '%.60s'", s);
  return false;
}

/* Checks an http(s) base URL; returns NULL or a reason. *norm gets it without trailing '/'. */
static const char *check_url(struct ld *ld, const char *s, char **norm) {
  size_t sl;
  if (!strncasecmp(s, "https://", 8)) sl = 8;
  else if (!strncasecmp(s, "http://", 7)) sl = 7;
  else if (strstr(s, "://")) return "scheme must be http or https";
  else return "expected an absolute URL starting with http:// or https://";
  const char *a = s + sl, *e = a;
  while (*e && *e != '/' && *e != '?' && *e != '#') e++;
  for (const char *p = s; *p; p++)
    if ((unsigned char)*p <= 0x20 || *p == 0x7f) return "URL must not contain spaces or control characters";
  if (memchr(a, '@', (size_t)(e - a)))
    return "credentials in the URL are not allowed (the key comes from api_key_env)";
  if (strchr(e, '?') || strchr(e, '#')) return "URL must not have a query or fragment";
  const char *hend = e;
  if (*a == '[') {
    const char *rb = memchr(a, ']', (size_t)(e - a));
    if (!rb || rb == a + 1) return "bad IPv6 host";
    for (const char *p = a + 1; p < rb; p++)
      if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.') return "bad IPv6 host";
    hend = rb + 1;
    if (hend < e && *hend != ':') return "bad IPv6 host";
  } else {
    const char *c = memchr(a, ':', (size_t)(e - a));
    if (c) hend = c;
    if (hend == a) return "host is missing";
    for (const char *p = a; p < hend; p++)
      if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_')
        return "bad character in host";
  }
  if (hend < e) {   /* ":port" */
    int64_t port;
    char pb[16];
    size_t pl = (size_t)(e - hend - 1);
    if (pl == 0 || pl >= sizeof pb) return "bad port";
    memcpy(pb, hend + 1, pl);
    pb[pl] = 0;
    if (!isdigit((unsigned char)pb[0]) || !parse_i64(pb, &port) || port < 1 || port > 65535)
      return "bad port";
  }
  size_t n = strlen(s);
  while (n > (size_t)(e - s) && s[n - 1] == '/') n--;
  *norm = a_strndup(ld->A, s, n);
  /* lower-case the scheme so callers can compare it */
  for (size_t i = 0; i < sl - 3; i++) (*norm)[i] = (char)tolower((unsigned char)(*norm)[i]);
  return NULL;
}

static bool get_url(struct ld *ld, const yaml_node_t *n, const char *what, char **out) {
  const char *s = scalar(ld, n, "a URL");
  if (!s) return false;
  const char *why = check_url(ld, s, out);
  if (why) {
    err_node(ld, n, "bad %s '%.80s': %s", what, s, why);
    return false;
  }
  return true;
}

/* ================================================================ sections */

static const char *const top_keys[] = {"listen", "database", "providers", "models", "default_model",
                                       "baseline_model", "limits", "retry", "breaker", NULL};
static const char *const provider_keys[] = {"name", "kind", "base_url", "api_key_env",
                                            "anthropic_version", "headers", "model_path",
                                            "threads", "context", "slots", "queue", "kv_type",
                                            "chat_template", "embeddings", "price", NULL};
/* keys that only a remote provider (openai, anthropic) or only a local one takes */
static const char *const remote_only_keys[] = {"base_url", "api_key_env", "anthropic_version",
                                               "headers", NULL};
static const char *const local_only_keys[] = {"model_path", "threads", "context", "slots", "queue",
                                              "kv_type", "chat_template", "embeddings", "price",
                                              NULL};
static const char *const model_keys[] = {"provider", "model", "price", "deployments", "balance",
                                         "fallbacks", "fallback_on", "retry", "breaker",
                                         "timeouts", NULL};
static const char *const deployment_keys[] = {"provider", "model", "weight", "price", NULL};
static const char *const price_keys[] = {"input", "cached_input", "cache_write", "cache_write_1h",
                                         "output", NULL};
static const char *const limits_keys[] = {"max_body_bytes", "connect_timeout", "first_byte_timeout",
                                          "total_timeout", "client_timeout", "idle_timeout",
                                          "max_connections", NULL};
static const char *const retry_keys[] = {"max_attempts", "base_delay", "max_delay", "on",
                                         "jitter", "budget", NULL};
static const char *const breaker_keys[] = {"failures", "error_rate", "min_requests", "window",
                                           "cooldown", "on", NULL};
static const char *const timeouts_keys[] = {"connect", "first_byte", "idle", "total", NULL};

/* A list of strings (or one string) under N, in the tmp arena. */
static size_t get_str_list(struct ld *ld, const yaml_node_t *n, const char *what, size_t max,
                           const yaml_node_t ***nodes_out) {
  if (n->type == YAML_SCALAR_NODE && !is_null(n)) {
    const yaml_node_t **v = a_alloc(&ld->tmp, sizeof *v);
    v[0] = n;
    *nodes_out = v;
    return 1;
  }
  if (n->type != YAML_SEQUENCE_NODE) {
    err_node(ld, n, "expected a list of %s, got %s", what, describe(ld, n));
    return 0;
  }
  size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
  if (cnt > max) {
    err_node(ld, n, "too many %s (%zu, at most %zu)", what, cnt, max);
    return 0;
  }
  const yaml_node_t **v = a_alloc(&ld->tmp, (cnt ? cnt : 1) * sizeof *v);
  for (size_t i = 0; i < cnt; i++) v[i] = node(ld, n->data.sequence.items.start[i]);
  *nodes_out = v;
  return cnt;
}

static bool get_fail_mask(struct ld *ld, const yaml_node_t *n, unsigned *out) {
  const yaml_node_t **items;
  size_t cnt = get_str_list(ld, n, "failure classes", MAX_LIST, &items);
  if (cnt == 0 && (n->type != YAML_SEQUENCE_NODE || n->data.sequence.items.top !=
                                                       n->data.sequence.items.start))
    return false;   /* reported by get_str_list */
  unsigned m = 0;
  bool ok = true;
  for (size_t i = 0; i < cnt; i++) {
    const char *s = scalar(ld, items[i], "a failure class");
    if (!s) {
      ok = false;
      continue;
    }
    if (!strcmp(s, "connect")) m |= POL_FAIL_CONNECT;
    else if (!strcmp(s, "timeout")) m |= POL_FAIL_TIMEOUT;
    else if (!strcmp(s, "408")) m |= POL_FAIL_408;
    else if (!strcmp(s, "429")) m |= POL_FAIL_429;
    else if (!strcmp(s, "5xx")) m |= POL_FAIL_5XX;
    else if (!strcmp(s, "529")) m |= POL_FAIL_529;
    else if (!strcmp(s, "4xx") || !strcmp(s, "client_error")) m |= POL_FAIL_4XX;
    else if (!strcmp(s, "rate_limit")) m |= POL_FAIL_429;
    else if (!strcmp(s, "server_error")) m |= POL_FAIL_5XX;
    else if (!strcmp(s, "overloaded")) m |= POL_FAIL_529;
    else if (!strcmp(s, "context_length")) m |= POL_FAIL_CONTEXT;
    else {
      err_node(ld, items[i], "unknown failure class '%.40s' (expected connect, timeout, 408, 429, "
                             "4xx, 5xx, 529, context_length, rate_limit, server_error, "
                             "overloaded or client_error)", s);
      ok = false;
    }
  }
  if (ok) *out = m;
  return ok;
}

static void parse_retry(struct ld *ld, const yaml_node_t *n, struct pol_retry *r) {
  if (!want_map(ld, n, "retry settings")) return;
  struct kv *kv;
  size_t k = pairs(ld, n, retry_keys, "retry", &kv);
  const yaml_node_t *v;
  int64_t x;
  if ((v = get(kv, k, "max_attempts")) && get_int(ld, v, 1, 10, &x)) r->max_attempts = (int)x;
  if ((v = get(kv, k, "base_delay"))) get_duration(ld, v, &r->base_delay_ms);
  if ((v = get(kv, k, "max_delay"))) get_duration(ld, v, &r->max_delay_ms);
  if ((v = get(kv, k, "on"))) get_fail_mask(ld, v, &r->on);
  if ((v = get(kv, k, "jitter"))) {
    const char *s = scalar(ld, v, "a jitter kind");
    if (s && !strcmp(s, "full")) r->jitter = POL_JITTER_FULL;
    else if (s && !strcmp(s, "decorrelated")) r->jitter = POL_JITTER_DECORRELATED;
    else if (s && !strcmp(s, "none")) r->jitter = POL_JITTER_NONE;
    else if (s) err_node(ld, v, "unknown jitter '%.40s' (expected full, decorrelated or none)", s);
  }
  if ((v = get(kv, k, "budget"))) get_duration(ld, v, &r->budget_ms);
  if (r->base_delay_ms > r->max_delay_ms)
    err_node(ld, n, "retry base_delay (%dms) is longer than max_delay (%dms)", r->base_delay_ms,
             r->max_delay_ms);
}

static void parse_breaker(struct ld *ld, const yaml_node_t *n, struct pol_breaker *b) {
  if (!want_map(ld, n, "breaker settings")) return;
  struct kv *kv;
  size_t k = pairs(ld, n, breaker_keys, "breaker", &kv);
  const yaml_node_t *v;
  int64_t x;
  if ((v = get(kv, k, "failures")) && get_int(ld, v, 0, 100000, &x)) b->failures = (int)x;
  if ((v = get(kv, k, "min_requests")) && get_int(ld, v, 1, 1000000, &x)) b->min_requests = (int)x;
  if ((v = get(kv, k, "window"))) get_duration(ld, v, &b->window_ms);
  if ((v = get(kv, k, "cooldown"))) get_duration(ld, v, &b->cooldown_ms);
  if ((v = get(kv, k, "on"))) get_fail_mask(ld, v, &b->on);
  if ((v = get(kv, k, "error_rate"))) {
    /* "50%" or 50 */
    const char *s = scalar(ld, v, "a percentage like 50%");
    if (s) {
      char num[16];
      size_t l = strlen(s);
      if (l && s[l - 1] == '%') l--;
      if (l == 0 || l >= sizeof num) {
        err_node(ld, v, "expected a percentage like 50%%, got '%.40s'", s);
      } else {
        memcpy(num, s, l);
        num[l] = 0;
        if (!parse_i64(num, &x) || x < 0 || x > 100)
          err_node(ld, v, "expected a percentage between 0%% and 100%%, got '%.40s'", s);
        else
          b->error_rate_pct = (int)x;
      }
    }
  }
}

static void parse_limits(struct ld *ld, const yaml_node_t *n, struct pol_limits *l) {
  if (!want_map(ld, n, "limits")) return;
  struct kv *kv;
  size_t k = pairs(ld, n, limits_keys, "limits", &kv);
  const yaml_node_t *v;
  int64_t x;
  if ((v = get(kv, k, "max_body_bytes")) && get_size(ld, v, 1024, 1LL << 30, &x))
    l->max_body_bytes = (size_t)x;
  if ((v = get(kv, k, "connect_timeout"))) get_duration(ld, v, &l->connect_timeout_ms);
  if ((v = get(kv, k, "first_byte_timeout"))) get_duration(ld, v, &l->first_byte_timeout_ms);
  if ((v = get(kv, k, "total_timeout"))) get_duration(ld, v, &l->total_timeout_ms);
  if ((v = get(kv, k, "client_timeout"))) get_duration(ld, v, &l->client_timeout_ms);
  if ((v = get(kv, k, "idle_timeout"))) get_duration(ld, v, &l->idle_timeout_ms);
  if ((v = get(kv, k, "max_connections")) && get_int(ld, v, 1, 1000000, &x))
    l->max_connections = (int)x;
}

static void parse_header_map(struct ld *ld, const yaml_node_t *n, struct pol_provider *p) {
  if (is_null(n)) return;
  if (!want_map(ld, n, "headers")) return;
  struct kv *kv;
  size_t k = pairs(ld, n, NULL, "headers", &kv);
  if (k > MAX_LIST) {
    err_node(ld, n, "too many headers (%zu, at most %d)", k, MAX_LIST);
    return;
  }
  p->headers = a_alloc(ld->A, (k ? k : 1) * sizeof *p->headers);
  for (size_t i = 0; i < k; i++) {
    const char *name = key_str(kv[i].k);
    bool ok = *name && strlen(name) <= 128;
    for (const char *c = name; *c && ok; c++)
      ok = isalnum((unsigned char)*c) || strchr("!#$%&'*+-.^_`|~", *c);
    if (!ok) {
      err_node(ld, kv[i].k, "bad header name '%.60s'", name);
      continue;
    }
    static const char *const managed[] = {"host", "content-length", "transfer-encoding",
                                          "connection", NULL};
    bool bad = false;
    for (const char *const *m = managed; *m; m++)
      if (!strcasecmp(name, *m)) bad = true;
    if (bad) {
      err_node(ld, kv[i].k, "header '%s' is set by the gateway and cannot be configured", name);
      continue;
    }
    for (size_t j = 0; j < p->n_headers; j++)
      if (!strcasecmp(p->headers[j].name, name)) {
        err_node(ld, kv[i].k, "duplicate header '%s' (header names ignore case)", name);
        bad = true;
      }
    if (bad) continue;
    const char *val = scalar(ld, kv[i].v, "a header value");
    if (!val) continue;
    if (strlen(val) > 8192 || strpbrk(val, "\r\n")) {
      err_node(ld, kv[i].v, "header value for '%s' must be one line of at most 8192 bytes", name);
      continue;
    }
    p->headers[p->n_headers].name = a_strdup(ld->A, name);
    p->headers[p->n_headers].value = a_strdup(ld->A, val);
    p->n_headers++;
  }
}

/* The settings of a provider of kind local (the model file is checked when the gateway loads it:
 * `config check` and `serve` do, with this file's line and column). */
static void parse_local(struct ld *ld, const yaml_node_t *namen, struct kv *kv, size_t k,
                        struct pol_provider *p) {
  struct pol_local *l = &p->local;
  l->context = 4096;
  l->slots = 4;
  l->queue = 64;
  l->embeddings = true;
  l->price = (struct pol_price){0, -1, -1, 0, -1};
  const yaml_node_t *v;
  int64_t x;
  if (!(v = get(kv, k, "model_path"))) {
    err_node(ld, namen, "provider '%s': missing key 'model_path' (the GGUF file to serve)", p->name);
  } else {
    l->path_line = (int)v->start_mark.line + 1;
    l->path_col = (int)v->start_mark.column + 1;
    get_str(ld, v, "a file path", &l->model_path);
  }
  if ((v = get(kv, k, "threads")) && get_int(ld, v, 0, 1024, &x)) l->threads = (int)x;
  if ((v = get(kv, k, "context")) && get_int(ld, v, 16, 1 << 20, &x)) l->context = (int)x;
  if ((v = get(kv, k, "slots")) && get_int(ld, v, 1, 256, &x)) l->slots = (int)x;
  if ((v = get(kv, k, "queue")) && get_int(ld, v, 0, 65536, &x)) l->queue = (int)x;
  if ((v = get(kv, k, "kv_type"))) {
    const char *s = scalar(ld, v, "a KV cache type");
    if (s && !strcmp(s, "f16")) l->kv_type = POL_KV_F16;
    else if (s && !strcmp(s, "f32")) l->kv_type = POL_KV_F32;
    else if (s) err_node(ld, v, "unknown kv_type '%.40s' (expected f16 or f32)", s);
  }
  if ((v = get(kv, k, "chat_template"))) {
    const char *s = scalar(ld, v, "a chat template");
    if (s && *s) l->chat_template = a_strdup(ld->A, s);
    else if (s) err_node(ld, v, "chat_template is empty");
  }
  if ((v = get(kv, k, "embeddings"))) get_bool(ld, v, &l->embeddings);
  if ((v = get(kv, k, "price"))) {
    struct pol_price o;
    parse_price_override(ld, v, &o);
    pol_price_merge(&l->price, &o);
  }
}

/* One provider; NAMEN is the node giving its name (a map key or a `name:` value). Returns false
 * only when the name itself is bad: a provider with bad settings still counts as defined (errors
 * reported), so that models naming it do not get a second, misleading error. */
static bool parse_provider(struct ld *ld, const yaml_node_t *namen, const char *name,
                           const yaml_node_t *n, struct pol_provider *p) {
  char where[160];
  snprintf(where, sizeof where, "provider '%.60s'", name);
  if (!valid_name(name, true)) {
    err_node(ld, namen, "bad provider name '%.60s' (letters, digits, '.', '-', '_')", name);
    return false;
  }
  p->name = a_strdup(ld->A, name);
  p->line = (int)namen->start_mark.line + 1;
  if (!want_map(ld, n, where)) return true;
  struct kv *kv;
  size_t k = pairs(ld, n, provider_keys, where, &kv);
  const yaml_node_t *v;
  if (!(v = get(kv, k, "kind"))) {
    err_node(ld, namen, "%s: missing key 'kind' (openai, anthropic or local)", where);
    return true;
  }
  const char *kind = scalar(ld, v, "a provider kind");
  if (!kind) return true;
  if (!strcmp(kind, "openai")) p->kind = POL_PROVIDER_OPENAI;
  else if (!strcmp(kind, "anthropic")) p->kind = POL_PROVIDER_ANTHROPIC;
  else if (!strcmp(kind, "local")) p->kind = POL_PROVIDER_LOCAL;
  else {
    err_node(ld, v, "unknown provider kind '%.40s' (expected openai, anthropic or local)", kind);
    return true;
  }
  const char *const *wrong = p->kind == POL_PROVIDER_LOCAL ? remote_only_keys : local_only_keys;
  for (; *wrong; wrong++)
    if (get(kv, k, *wrong))
      err_node(ld, get_key(kv, k, *wrong), "%s: '%s' only applies to providers of kind %s", where,
               *wrong, p->kind == POL_PROVIDER_LOCAL ? "openai or anthropic" : "local");
  if (p->kind == POL_PROVIDER_LOCAL) {
    parse_local(ld, namen, kv, k, p);
    return true;
  }
  if ((v = get(kv, k, "base_url")))
    get_url(ld, v, "base_url", &p->base_url);
  else
    p->base_url = a_strdup(ld->A, p->kind == POL_PROVIDER_OPENAI ? "https://api.openai.com/v1"
                                                                 : "https://api.anthropic.com");
  if ((v = get(kv, k, "api_key_env"))) {
    char *env;
    if (get_str(ld, v, "an environment variable name", &env)) {
      if (!env_name_ok(env, strlen(env))) {
        err_node(ld, v, "bad environment variable name '%.60s'", env);
      } else {
        p->api_key_env = env;
        const char *key = getenv(env);
        if (key && *key)
          p->api_key = a_strdup(ld->A, key);
        else
          warn_node(ld, v, "provider '%s': environment variable %s is %s; requests routed to it "
                           "fail with an authentication error until it is set",
                    name, env, key ? "empty" : "not set");
      }
    }
  }
  if ((v = get(kv, k, "anthropic_version"))) {
    if (p->kind == POL_PROVIDER_OPENAI) {
      err_node(ld, get_key(kv, k, "anthropic_version"),
               "anthropic_version only applies to providers of kind anthropic");
    } else {
      const char *s = scalar(ld, v, "an API version like 2023-06-01");
      if (s && strlen(s) == 10 && isdigit((unsigned char)s[0]) && s[4] == '-' && s[7] == '-' &&
          strspn(s, "0123456789-") == 10)
        p->anthropic_version = a_strdup(ld->A, s);
      else if (s)
        err_node(ld, v, "expected an API version like 2023-06-01, got '%.40s'", s);
    }
  } else if (p->kind == POL_PROVIDER_ANTHROPIC) {
    p->anthropic_version = a_strdup(ld->A, "2023-06-01");
  }
  if ((v = get(kv, k, "headers"))) parse_header_map(ld, v, p);
  /* a configured auth header and api_key_env would both try to authenticate */
  for (size_t i = 0; i < p->n_headers && p->api_key_env; i++)
    if (!strcasecmp(p->headers[i].name, "authorization") ||
        (p->kind == POL_PROVIDER_ANTHROPIC && !strcasecmp(p->headers[i].name, "x-api-key")))
      err_node(ld, get_key(kv, k, "api_key_env"),
               "%s: api_key_env conflicts with the configured '%s' header (use one of them)",
               where, p->headers[i].name);
  return true;
}

static void parse_providers(struct ld *ld, const yaml_node_t *n) {
  struct pol_config *c = ld->cfg;
  if (is_null(n)) return;
  if (n->type == YAML_MAPPING_NODE) {   /* providers: {name: {...}} */
    struct kv *kv;
    size_t k = pairs(ld, n, NULL, "providers", &kv);
    c->providers = a_alloc(ld->A, (k ? k : 1) * sizeof *c->providers);
    for (size_t i = 0; i < k; i++)
      if (parse_provider(ld, kv[i].k, key_str(kv[i].k), kv[i].v, &c->providers[c->n_providers]))
        c->n_providers++;
    return;
  }
  if (n->type == YAML_SEQUENCE_NODE) {   /* providers: [{name: x, ...}] */
    size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    c->providers = a_alloc(ld->A, (cnt ? cnt : 1) * sizeof *c->providers);
    for (size_t i = 0; i < cnt; i++) {
      const yaml_node_t *it = node(ld, n->data.sequence.items.start[i]);
      if (!want_map(ld, it, "a provider")) continue;
      struct kv *kv;
      size_t k = pairs(ld, it, provider_keys, "provider", &kv);
      const yaml_node_t *nn = get(kv, k, "name");
      char *name;
      if (!nn) {
        err_node(ld, it, "provider: missing key 'name'");
        continue;
      }
      if (!get_str(ld, nn, "a provider name", &name)) continue;
      bool dup = false;
      for (size_t j = 0; j < c->n_providers; j++)
        if (!strcmp(c->providers[j].name, name)) {
          err_node(ld, nn, "duplicate provider name '%.60s' (first at line %d)", name,
                   c->providers[j].line);
          dup = true;
        }
      if (!dup && parse_provider(ld, nn, name, it, &c->providers[c->n_providers]))
        c->n_providers++;
    }
    return;
  }
  err_node(ld, n, "expected providers (a mapping of name to settings), got %s", describe(ld, n));
  ld->providers_broken = true;
}

static struct pol_provider *find_provider(struct ld *ld, const yaml_node_t *n) {
  const char *s = scalar(ld, n, "a provider name");
  if (!s) return NULL;
  for (size_t i = 0; i < ld->cfg->n_providers; i++)
    if (!strcmp(ld->cfg->providers[i].name, s)) return &ld->cfg->providers[i];
  if (!ld->providers_broken)
    err_node(ld, n, "unknown provider '%.60s' (not defined under providers)", s);
  return NULL;
}

static void parse_price_override(struct ld *ld, const yaml_node_t *n, struct pol_price *o) {
  *o = (struct pol_price){-1, -1, -1, -1, -1};
  if (!want_map(ld, n, "a price (USD per 1M tokens)")) return;
  struct kv *kv;
  size_t k = pairs(ld, n, price_keys, "price", &kv);
  const yaml_node_t *v;
  if ((v = get(kv, k, "input"))) get_price(ld, v, &o->input_uusd);
  if ((v = get(kv, k, "cached_input"))) get_price(ld, v, &o->cached_input_uusd);
  if ((v = get(kv, k, "cache_write"))) get_price(ld, v, &o->cache_write_uusd);
  if ((v = get(kv, k, "cache_write_1h"))) get_price(ld, v, &o->cache_write_1h_uusd);
  if ((v = get(kv, k, "output"))) get_price(ld, v, &o->output_uusd);
}

/* Fills D's price: built-in row of its upstream model (a local provider's own price), then the
 * overrides in order. */
static void resolve_price(struct pol_deployment *d, const struct pol_price *o1,
                          const struct pol_price *o2) {
  const struct pol_price *b = d->provider->kind == POL_PROVIDER_LOCAL
                                   ? &d->provider->local.price
                                   : pol_price_builtin(d->upstream_model);
  d->price = b ? *b : (struct pol_price){-1, -1, -1, -1, -1};
  if (o1) pol_price_merge(&d->price, o1);
  if (o2) pol_price_merge(&d->price, o2);
  d->has_price = d->price.input_uusd >= 0 && d->price.output_uusd >= 0;
}

static void parse_timeouts(struct ld *ld, const yaml_node_t *n, struct pol_timeouts *t) {
  if (!want_map(ld, n, "timeouts")) return;
  struct kv *kv;
  size_t k = pairs(ld, n, timeouts_keys, "timeouts", &kv);
  const yaml_node_t *v;
  if ((v = get(kv, k, "connect"))) get_duration(ld, v, &t->connect_ms);
  if ((v = get(kv, k, "first_byte"))) get_duration(ld, v, &t->first_byte_ms);
  if ((v = get(kv, k, "idle"))) get_duration(ld, v, &t->idle_ms);
  if ((v = get(kv, k, "total"))) get_duration(ld, v, &t->total_ms);
}

struct model_src {          /* what the second pass (fallbacks) needs */
  const yaml_node_t *name, *fallbacks;
  bool ok;                  /* parsed without errors */
};

static void warn_no_price(struct ld *ld, const yaml_node_t *at, const char *model,
                          const struct pol_deployment *d) {
  warn_node(ld, at, "model '%s': no known price for upstream model '%s'%s; its cost is logged as "
                    "unknown (add price: {input: ..., output: ...} in USD per 1M tokens)",
            model, d->upstream_model,
            d->price.input_uusd >= 0 ? " (output price missing)"
            : d->price.output_uusd >= 0 ? " (input price missing)" : "");
}

/* Model M (named by NAMEN, its name already checked and set) from mapping N. Returns false if
 * something was wrong with it (reported); the model stays defined either way, so that references
 * to it do not add misleading "not a configured model" errors. */
static bool parse_model(struct ld *ld, const yaml_node_t *namen, const yaml_node_t *n,
                        struct pol_model *m, struct model_src *src) {
  const char *name = m->name;
  char where[160];
  snprintf(where, sizeof where, "model '%.60s'", name);
  if (!want_map(ld, n, where)) return false;
  struct kv *kv;
  size_t k = pairs(ld, n, model_keys, where, &kv);
  const yaml_node_t *v, *pv = get(kv, k, "provider"), *dv = get(kv, k, "deployments");
  bool ok = true;

  struct pol_price over = {-1, -1, -1, -1, -1};
  bool has_over = false;
  if ((v = get(kv, k, "price"))) {
    parse_price_override(ld, v, &over);
    has_over = true;
  }

  if (pv && dv) {
    err_node(ld, get_key(kv, k, "deployments"),
             "%s: give either provider/model or deployments, not both", where);
    return false;
  }
  if (dv) {
    if (get(kv, k, "model")) {
      err_node(ld, get_key(kv, k, "model"),
               "%s: with deployments, each deployment names its own model", where);
      ok = false;
    }
    if (dv->type != YAML_SEQUENCE_NODE || dv->data.sequence.items.top == dv->data.sequence.items.start) {
      err_node(ld, dv, "expected deployments (a non-empty list), got %s",
               dv->type == YAML_SEQUENCE_NODE ? "an empty list" : describe(ld, dv));
      return false;
    }
    size_t cnt = (size_t)(dv->data.sequence.items.top - dv->data.sequence.items.start);
    if (cnt > MAX_LIST) {
      err_node(ld, dv, "too many deployments (%zu, at most %d)", cnt, MAX_LIST);
      return false;
    }
    m->deployments = a_alloc(ld->A, cnt * sizeof *m->deployments);
    for (size_t i = 0; i < cnt; i++) {
      const yaml_node_t *it = node(ld, dv->data.sequence.items.start[i]);
      if (!visit(ld, it) || !want_map(ld, it, "a deployment")) {
        ok = false;
        continue;
      }
      struct kv *dk;
      size_t dn = pairs(ld, it, deployment_keys, "deployment", &dk);
      struct pol_deployment *d = &m->deployments[m->n_deployments];
      d->line = (int)it->start_mark.line + 1;
      d->weight = 1;
      const yaml_node_t *x;
      int64_t w;
      if (!(x = get(dk, dn, "provider"))) {
        err_node(ld, it, "deployment: missing key 'provider'");
        ok = false;
        continue;
      }
      if (!(d->provider = find_provider(ld, x))) {
        ok = false;
        continue;
      }
      if ((x = get(dk, dn, "model"))) {
        if (!get_str(ld, x, "an upstream model name", &d->upstream_model)) {
          ok = false;
          continue;
        }
      } else {
        d->upstream_model = m->name;
      }
      if ((x = get(dk, dn, "weight"))) {
        if (get_int(ld, x, 0, 1000000, &w)) d->weight = (int)w;
        else ok = false;
      }
      struct pol_price dover;
      bool has_dover = false;
      if ((x = get(dk, dn, "price"))) {
        parse_price_override(ld, x, &dover);
        has_dover = true;
      }
      resolve_price(d, has_over ? &over : NULL, has_dover ? &dover : NULL);
      if (!d->has_price) warn_no_price(ld, it, name, d);
      m->n_deployments++;
    }
    if (ok && m->n_deployments) {
      bool any = false;
      for (size_t i = 0; i < m->n_deployments; i++) any |= m->deployments[i].weight > 0;
      if (!any) {
        err_node(ld, dv, "%s: every deployment has weight 0", where);
        ok = false;
      }
    }
  } else {
    if (!pv) {
      err_node(ld, namen, "%s: missing key 'provider'", where);
      return false;
    }
    m->deployments = a_alloc(ld->A, sizeof *m->deployments);
    struct pol_deployment *d = &m->deployments[0];
    d->line = m->line;
    d->weight = 1;
    if (!(d->provider = find_provider(ld, pv))) return false;
    if ((v = get(kv, k, "model"))) {
      if (!get_str(ld, v, "an upstream model name", &d->upstream_model)) return false;
    } else {
      d->upstream_model = m->name;
    }
    resolve_price(d, has_over ? &over : NULL, NULL);
    if (!d->has_price) warn_no_price(ld, namen, name, d);
    m->n_deployments = 1;
  }
  if (!ok || m->n_deployments == 0) return false;
  m->provider = m->deployments[0].provider;
  m->upstream_model = m->deployments[0].upstream_model;
  m->price = m->deployments[0].price;
  m->has_price = m->deployments[0].has_price;

  if ((v = get(kv, k, "balance"))) {
    const char *s = scalar(ld, v, "a balancing strategy");
    if (s && !strcmp(s, "weighted")) m->balance = POL_BALANCE_WEIGHTED;
    else if (s && !strcmp(s, "least_in_flight")) m->balance = POL_BALANCE_LEAST_IN_FLIGHT;
    else if (s) err_node(ld, v, "unknown balance '%.40s' (expected weighted or least_in_flight)", s);
  }
  if ((v = get(kv, k, "fallback_on"))) get_fail_mask(ld, v, &m->fallback_on);
  if ((v = get(kv, k, "retry"))) parse_retry(ld, v, &m->retry);
  if ((v = get(kv, k, "breaker"))) parse_breaker(ld, v, &m->breaker);
  if ((v = get(kv, k, "timeouts"))) parse_timeouts(ld, v, &m->timeouts);
  src->fallbacks = get(kv, k, "fallbacks");
  return true;
}

static struct pol_model *find_model(struct ld *ld, const yaml_node_t *n, const char *what) {
  const char *s = scalar(ld, n, "a model name");
  if (!s) return NULL;
  for (size_t i = 0; i < ld->cfg->n_models; i++)
    if (!strcmp(ld->cfg->models[i].name, s)) return &ld->cfg->models[i];
  err_node(ld, n, "%s '%.60s' is not a configured model", what, s);
  return NULL;
}

/* Depth-first search over fallback edges; 0 unvisited, 1 on the stack, 2 done. Reports the
 * edge that closes a cycle, at the fallbacks list of the model it starts from. */
static bool fallback_dfs(struct ld *ld, size_t i, unsigned char *state,
                         const struct model_src *src) {
  struct pol_config *c = ld->cfg;
  struct pol_model *m = &c->models[i];
  state[i] = 1;
  for (size_t j = 0; j < m->n_fallbacks; j++) {
    size_t f = (size_t)(m->fallbacks[j] - c->models);
    if (state[f] == 1) {
      err_node(ld, src[i].fallbacks, "fallback cycle: model '%s' falls back to '%s', which leads "
                                     "back to it", m->name, c->models[f].name);
      return true;
    }
    if (state[f] == 0 && fallback_dfs(ld, f, state, src)) return true;
  }
  state[i] = 2;
  return false;
}

static void parse_models(struct ld *ld, const yaml_node_t *n, const struct pol_retry *dr,
                         const struct pol_breaker *db) {
  struct pol_config *c = ld->cfg;
  if (!want_map(ld, n, "models")) return;
  struct kv *kv;
  size_t k = pairs(ld, n, NULL, "models", &kv);
  c->models = a_alloc(ld->A, (k ? k : 1) * sizeof *c->models);
  struct model_src *src = a_alloc(&ld->tmp, (k ? k : 1) * sizeof *src);
  for (size_t i = 0; i < k; i++) {
    struct pol_model *m = &c->models[c->n_models];
    m->retry = *dr;
    m->breaker = *db;
    m->fallback_on = POL_FAIL_CONNECT | POL_FAIL_TIMEOUT | POL_FAIL_429 | POL_FAIL_5XX | POL_FAIL_529;
    const char *name = key_str(kv[i].k);
    if (!valid_name(name, false)) {
      err_node(ld, kv[i].k, "bad model name '%.60s' (no spaces or control characters, at most "
                            "128 bytes)", name);
      continue;
    }
    m->name = a_strdup(ld->A, name);
    m->line = (int)kv[i].k->start_mark.line + 1;
    src[c->n_models].name = kv[i].k;
    src[c->n_models].ok = parse_model(ld, kv[i].k, kv[i].v, m, &src[c->n_models]);
    c->n_models++;
  }
  /* second pass: fallbacks name other models, defined anywhere in the map */
  for (size_t i = 0; i < c->n_models; i++) {
    const yaml_node_t *fv = src[i].fallbacks;
    if (!fv || is_null(fv)) continue;
    const yaml_node_t **items;
    size_t cnt = get_str_list(ld, fv, "fallbacks", MAX_LIST, &items);
    struct pol_model *m = &c->models[i];
    m->fallbacks = a_alloc(ld->A, (cnt ? cnt : 1) * sizeof *m->fallbacks);
    for (size_t j = 0; j < cnt; j++) {
      struct pol_model *f = find_model(ld, items[j], "fallback");
      if (!f) continue;
      if (f == m) {
        err_node(ld, items[j], "model '%s' lists itself as a fallback", m->name);
        continue;
      }
      bool dup = false;
      for (size_t q = 0; q < m->n_fallbacks; q++) dup |= m->fallbacks[q] == f;
      if (dup) {
        err_node(ld, items[j], "fallback '%s' listed twice", f->name);
        continue;
      }
      m->fallbacks[m->n_fallbacks++] = f;
    }
  }
  unsigned char *state = a_alloc(&ld->tmp, c->n_models ? c->n_models : 1);
  for (size_t i = 0; i < c->n_models; i++)
    if (state[i] == 0 && fallback_dfs(ld, i, state, src)) break;
  if (c->n_models == 0 && k == 0) err_node(ld, n, "no models defined (the models mapping is empty)");
}

/* ================================================================ the document */

static void load_root(struct ld *ld, const yaml_node_t *root) {
  struct pol_config *c = ld->cfg;
  c->listen_host = a_strdup(ld->A, "127.0.0.1");
  c->listen_port = 8080;
  c->db_path = a_strdup(ld->A, "tiergate.db");
  c->limits = (struct pol_limits){
      .max_body_bytes = 4u << 20,
      .connect_timeout_ms = 5000,
      .first_byte_timeout_ms = 60000,
      .total_timeout_ms = 600000,
      .client_timeout_ms = 30000,
      .max_connections = 4096,
      .idle_timeout_ms = 60000,
  };
  struct pol_retry dr = {.max_attempts = 3, .base_delay_ms = 250, .max_delay_ms = 8000,
                         .on = POL_FAIL_CONNECT | POL_FAIL_TIMEOUT | POL_FAIL_408 | POL_FAIL_429 |
                               POL_FAIL_5XX | POL_FAIL_529};
  struct pol_breaker db = {.failures = 5, .error_rate_pct = 50, .min_requests = 20,
                           .window_ms = 30000, .cooldown_ms = 30000,
                           .on = POL_FAIL_CONNECT | POL_FAIL_TIMEOUT | POL_FAIL_5XX | POL_FAIL_529};

  if (!root || is_null(root)) {
    err_at(ld, 1, 1, "empty configuration (expected a mapping with providers and models)");
    return;
  }
  if (!want_map(ld, root, "the configuration")) return;
  struct kv *kv;
  size_t k = pairs(ld, root, top_keys, "the configuration", &kv);
  const yaml_node_t *v;
  if ((v = get(kv, k, "listen"))) get_listen(ld, v);
  if ((v = get(kv, k, "database"))) get_str(ld, v, "a database path", &c->db_path);
  if ((v = get(kv, k, "limits"))) parse_limits(ld, v, &c->limits);
  if ((v = get(kv, k, "retry"))) parse_retry(ld, v, &dr);
  if ((v = get(kv, k, "breaker"))) parse_breaker(ld, v, &db);
  if ((v = get(kv, k, "providers"))) parse_providers(ld, v);
  if ((v = get(kv, k, "models"))) parse_models(ld, v, &dr, &db);
  else err_at(ld, (int)root->start_mark.line + 1, (int)root->start_mark.column + 1,
              "no models defined (add a 'models' mapping)");
  if ((v = get(kv, k, "default_model"))) c->default_model = find_model(ld, v, "default_model");
  if ((v = get(kv, k, "baseline_model"))) {
    c->baseline_model = find_model(ld, v, "baseline_model");
    if (c->baseline_model && !c->baseline_model->has_price)
      err_node(ld, v, "baseline_model '%s' has no known price (give it a price override)",
               c->baseline_model->name);
  }
  /* resolve per-model timeouts over the global limits */
  for (size_t i = 0; i < c->n_models; i++) {
    struct pol_timeouts *t = &c->models[i].timeouts;
    if (!t->connect_ms) t->connect_ms = c->limits.connect_timeout_ms;
    if (!t->first_byte_ms) t->first_byte_ms = c->limits.first_byte_timeout_ms;
    if (!t->idle_ms) t->idle_ms = c->limits.idle_timeout_ms;
    if (!t->total_ms) t->total_ms = c->limits.total_timeout_ms;
  }
}

static int err_cmp(const void *a, const void *b) {
  const struct pol_error *x = a, *y = b;
  if (x->line != y->line) return x->line < y->line ? -1 : 1;
  if (x->col != y->col) return x->col < y->col ? -1 : 1;
  return strcmp(x->msg, y->msg);
}

static void yaml_error(struct ld *ld, yaml_parser_t *p) {
  const char *what = p->error == YAML_MEMORY_ERROR ? "out of memory" : "YAML syntax error";
  if (p->error == YAML_READER_ERROR && p->problem) {
    /* the reader reports a byte offset, not a mark: map it to line and column ourselves */
    size_t off = p->problem_offset, l = 0;
    while (l + 1 < ld->n_lines && ld->line_off[l + 1] <= off) l++;
    size_t from = ld->line_off[l] < off ? ld->line_off[l] : off;
    int col = 1 + (int)utf8_chars((const char *)ld->src + from, off - from);
    if (p->problem_value >= 0)
      err_at(ld, (int)l + 1, col, "%s: %s (character 0x%02X)", what, p->problem, p->problem_value);
    else
      err_at(ld, (int)l + 1, col, "%s: %s", what, p->problem);
  } else if (p->problem && p->context) {
    err_at(ld, (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1, "%s: %s %s", what,
           p->problem, p->context);
  } else if (p->problem) {
    err_at(ld, (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1, "%s: %s", what,
           p->problem);
  } else {
    err_at(ld, 0, 0, "%s", what);
  }
}

/* Walks the event stream once and stops at the first mapping or sequence nested deeper than
 * MAX_DEPTH (an error at its file:line:col). Each event costs at most MAX_DEPTH scanner work, so
 * this is linear in the file whatever it holds. Returns false when the file is too deep; a
 * syntax error is left for the real load to report. */
static bool depth_check(struct ld *ld, const char *yaml, size_t len) {
  yaml_parser_t parser;
  yaml_parser_initialize(&parser);
  yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
  int depth = 0;
  bool ok = true, more = true;
  while (more) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&parser, &ev)) break;
    switch (ev.type) {
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
      if (++depth > MAX_DEPTH) {
        err_at(ld, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
               "nesting deeper than %d levels of mappings and sequences", MAX_DEPTH);
        ok = more = false;
      }
      break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
      depth--;
      break;
    case YAML_STREAM_END_EVENT:
      more = false;
      break;
    default:
      break;
    }
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&parser);
  return ok;
}

int pol_config_load_str(const char *name, const char *yaml, size_t len, struct pol_config **out,
                        struct pol_errors *errs) {
  struct pol_errors scratch;
  if (!errs) errs = &scratch;
  memset(errs, 0, sizeof *errs);
  *out = NULL;
  struct ld ld = {.name = name ? name : "<config>", .src = (const unsigned char *)yaml,
                  .len = len, .errs = errs};
  if (len > MAX_FILE_BYTES) {
    err_at(&ld, 0, 0, "file is larger than %u bytes", MAX_FILE_BYTES);
    return -EFBIG;
  }
  struct cfg_owner *own = calloc(1, sizeof *own);
  if (!own) return -ENOMEM;
  ld.A = &own->arena;
  ld.cfg = &own->pub;
  own->pub.path = a_strdup(ld.A, ld.name);
  build_lines(&ld);

  yaml_parser_t parser;
  yaml_parser_initialize(&parser);
  yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
  if (!depth_check(&ld, yaml, len)) {
    /* reported */
  } else if (!yaml_parser_load(&parser, &ld.doc)) {
    yaml_error(&ld, &parser);
  } else {
    load_root(&ld, yaml_document_get_root_node(&ld.doc));
    yaml_document_t next;
    if (!yaml_parser_load(&parser, &next)) {
      yaml_error(&ld, &parser);
    } else {
      yaml_node_t *r2 = yaml_document_get_root_node(&next);
      if (r2)
        err_at(&ld, (int)r2->start_mark.line + 1, (int)r2->start_mark.column + 1,
               "only one YAML document is allowed (found a second one)");
      yaml_document_delete(&next);
    }
    yaml_document_delete(&ld.doc);
  }
  yaml_parser_delete(&parser);

  /* report in file order, whatever order the sections were checked in */
  int stored = errs->n < POL_MAX_ERRORS ? errs->n : POL_MAX_ERRORS;
  qsort(errs->e, (size_t)stored, sizeof errs->e[0], err_cmp);
  int rc = 0;
  if (errs->n) {
    a_free(&own->arena);
    free(own);
    rc = -EINVAL;
  } else {
    own->pub.n_warnings = ld.warns.n;
    if (ld.warns.n) {
      own->pub.warnings = a_alloc(ld.A, ld.warns.n * sizeof *own->pub.warnings);
      memcpy(own->pub.warnings, ld.warns.v, ld.warns.n * sizeof *own->pub.warnings);
    }
    *out = &own->pub;
  }
  a_free(&ld.tmp);
  return rc;
}

int pol_config_load(const char *path, struct pol_config **out, struct pol_errors *errs) {
  struct pol_errors scratch;
  if (!errs) errs = &scratch;
  memset(errs, 0, sizeof *errs);
  *out = NULL;
  struct pol_error *e = &errs->e[0];
  snprintf(e->file, sizeof e->file, "%s", path);
  FILE *f = fopen(path, "rb");
  if (!f) {
    int err = errno;
    snprintf(e->msg, sizeof e->msg, "cannot open: %s", strerror(err));
    errs->n = 1;
    return -err;
  }
  size_t cap = MAX_FILE_BYTES + 1, n = 0;
  char *buf = malloc(cap);
  if (!buf) {
    fclose(f);
    snprintf(e->msg, sizeof e->msg, "out of memory");
    errs->n = 1;
    return -ENOMEM;
  }
  size_t got;
  while (n < cap && (got = fread(buf + n, 1, cap - n, f)) > 0) n += got;
  int rerr = ferror(f) ? errno : 0;
  fclose(f);
  if (rerr) {
    free(buf);
    snprintf(e->msg, sizeof e->msg, "read error: %s", strerror(rerr ? rerr : EIO));
    errs->n = 1;
    return -(rerr ? rerr : EIO);
  }
  if (n > MAX_FILE_BYTES) {
    free(buf);
    snprintf(e->msg, sizeof e->msg, "file is larger than %u bytes", MAX_FILE_BYTES);
    errs->n = 1;
    return -EFBIG;
  }
  int rc = pol_config_load_str(path, buf, n, out, errs);
  free(buf);
  return rc;
}

void pol_config_free(struct pol_config *c) {
  if (!c) return;
  struct cfg_owner *own = (struct cfg_owner *)c;
  a_free(&own->arena);
  free(own);
}

const struct pol_model *pol_model_find(const struct pol_config *c, const char *name) {
  if (!c || !name) return NULL;
  for (size_t i = 0; i < c->n_models; i++)
    if (!strcmp(c->models[i].name, name)) return &c->models[i];
  return NULL;
}

const struct pol_provider *pol_provider_find(const struct pol_config *c, const char *name) {
  if (!c || !name) return NULL;
  for (size_t i = 0; i < c->n_providers; i++)
    if (!strcmp(c->providers[i].name, name)) return &c->providers[i];
  return NULL;
}
