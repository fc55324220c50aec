/*
 * regex.c: regular expressions (the ECMA-262 subset JSON Schema's "pattern" uses, read so that
 * Python's re agrees) -> NFA over code points.
 *
 * Supported: literals, ".", classes [...] / [^...] with ranges and \d \w \s \D \W \S inside,
 * escapes \t \n \v \f \r \0 \xHH \uHHHH (surrogate pairs combined) \u{H...} \cX and escaped
 * punctuation, groups ( ) (?: ) (?<name> ) (?P<name> ), alternation, quantifiers * + ? {n}
 * {n,} {n,m} (lazy forms too: same language), anchors ^ $.
 * Refused with a message (they cannot be expressed as a finite automaton, or engines disagree on
 * them): backreferences, lookahead and lookbehind, \b \B word boundaries, \p{...} classes,
 * inline flags, escapes of letters with no common meaning, {,n}.
 *
 * DESIGN
 * The pattern is parsed into an AST first (so that {n,m} can instantiate its operand several
 * times), then built into a Thompson NFA. Where engines differ (see enum rx_mode in cn.h) the
 * STRICT reading takes what all of them match and the LOOSE reading what any of them does; a
 * negated class flips the reading of its contents, so [^\d] in STRICT mode excludes every
 * Unicode digit. $ in LOOSE mode also matches before a final newline (Python).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slm/constrain/cn.h"

enum { RN_SET, RN_CAT, RN_ALT, RN_REP, RN_BEGIN, RN_END, RN_EMPTY };

struct rnode {
  int kind;
  int32_t set;          /* RN_SET: index into sets */
  int32_t kid, nkid;    /* RN_CAT/RN_ALT: kids[kid .. kid + nkid); RN_REP: the operand in kid */
  int64_t min, max;     /* RN_REP; max < 0 = unbounded */
};

#define RX_MAX_REP 1000      /* largest {n,m} bound accepted */
#define RX_MAX_DEPTH 200

struct rx {
  const uint8_t *p;
  size_t n, i;
  enum rx_mode mode;
  struct rnode *nodes;
  size_t nn, cap_n;
  int32_t *kids;
  size_t nk, cap_k;
  struct cpset *sets;
  size_t ns, cap_s;
  char *msg;
  size_t msgcap;
  int rc;
  int depth;
};

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int rx_fail(struct rx *r, int rc, const char *fmt, ...) {
  if (!r->rc) {
    r->rc = rc;
    if (r->msg && r->msgcap) {
      char tmp[200];
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(tmp, sizeof tmp, fmt, ap);
      va_end(ap);
      snprintf(r->msg, r->msgcap, "%s (at offset %zu)", tmp, r->i);
    }
  }
  return -1;
}

static int32_t new_node(struct rx *r, int kind) {
  if (cn_grow(&r->nodes, &r->cap_n, r->nn + 1, sizeof *r->nodes))
    return rx_fail(r, -ENOMEM, "out of memory");
  struct rnode *nd = &r->nodes[r->nn];
  memset(nd, 0, sizeof *nd);
  nd->kind = kind;
  nd->set = -1;
  return (int32_t)r->nn++;
}

/* Takes ownership of *S (leaves it empty). */
static int32_t set_node(struct rx *r, struct cpset *s) {
  if (cn_grow(&r->sets, &r->cap_s, r->ns + 1, sizeof *r->sets)) {
    cpset_free(s);
    return rx_fail(r, -ENOMEM, "out of memory");
  }
  r->sets[r->ns] = *s;
  cpset_init(s);
  int32_t id = new_node(r, RN_SET);
  if (id < 0) return -1;
  r->nodes[id].set = (int32_t)r->ns++;
  return id;
}

/* ---------------------------------------------------------------- the classes */

/* \s of ECMA-262 (WhiteSpace + LineTerminator) and of Python (str.isspace) */
static const uint32_t ws_common[][2] = {
    {0x09, 0x0D}, {0x20, 0x20}, {0xA0, 0xA0}, {0x1680, 0x1680}, {0x2000, 0x200A},
    {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000}};
static const uint32_t ws_either[][2] = {{0x1C, 0x1F}, {0x85, 0x85}, {0xFEFF, 0xFEFF}};

static int add_ws(struct cpset *s, bool loose) {
  for (size_t i = 0; i < sizeof ws_common / sizeof ws_common[0]; i++)
    if (cpset_add(s, ws_common[i][0], ws_common[i][1])) return -ENOMEM;
  if (loose)
    for (size_t i = 0; i < sizeof ws_either / sizeof ws_either[0]; i++)
      if (cpset_add(s, ws_either[i][0], ws_either[i][1])) return -ENOMEM;
  return 0;
}

/* Adds class escape C (d w s D W S) in reading LOOSE to S. Negated escapes are the complement of
 * the opposite reading; in the strict reading, they also stay in the BMP (outside the u flag an
 * astral character is two UTF-16 units, and "\D" would match only half of it). */
static int add_class_escape(struct cpset *s, char c, bool loose) {
  struct cpset t;
  cpset_init(&t);
  int rc = 0;
  bool neg = c == 'D' || c == 'W' || c == 'S';
  bool rd = neg ? !loose : loose;   /* reading of the positive class */
  switch (c) {
    case 'd': case 'D':
      rc = cpset_add(&t, '0', '9');
      if (!rc && rd) rc = cpset_add(&t, 0x80, CN_CP_MAX);
      break;
    case 'w': case 'W':
      rc = cpset_add(&t, '0', '9');
      if (!rc) rc = cpset_add(&t, 'A', 'Z');
      if (!rc) rc = cpset_add(&t, 'a', 'z');
      if (!rc) rc = cpset_add(&t, '_', '_');
      if (!rc && rd) rc = cpset_add(&t, 0x80, CN_CP_MAX);
      break;
    default:
      rc = add_ws(&t, rd);
  }
  if (!rc && neg) {
    rc = cpset_negate(&t);
    if (!rc && !loose) {
      struct cpset bmp;
      cpset_init(&bmp);
      rc = cpset_add(&bmp, 0, 0xFFFF);
      if (!rc) rc = cpset_intersect(&t, &bmp);
      cpset_free(&bmp);
    }
  }
  if (!rc) rc = cpset_add_set(s, &t);
  cpset_free(&t);
  return rc;
}

static int dot_set(struct cpset *s, bool loose) {
  if (cpset_add(s, 0, CN_CP_MAX)) return -ENOMEM;
  struct cpset x;
  cpset_init(&x);
  int rc = cpset_add(&x, '\n', '\n');
  if (!loose) {
    if (!rc) rc = cpset_add(&x, '\r', '\r');
    if (!rc) rc = cpset_add(&x, 0x2028, 0x2029);
    if (!rc) rc = cpset_add(&x, 0x10000, CN_CP_MAX);
  }
  if (!rc) rc = cpset_negate(&x);
  if (!rc) rc = cpset_intersect(s, &x);
  cpset_free(&x);
  return rc;
}

/* ---------------------------------------------------------------- lexing */

static bool at_end(struct rx *r) { return r->i >= r->n; }

/* The next code point of the pattern (UTF-8). */
static int next_cp(struct rx *r, uint32_t *cp) {
  int k = cn_utf8_dec(r->p + r->i, r->n - r->i, cp);
  if (!k) return rx_fail(r, -EINVAL, "pattern is not valid UTF-8");
  r->i += (size_t)k;
  return 0;
}

static int hexv(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int read_hex(struct rx *r, int digits, uint32_t *out) {
  uint32_t v = 0;
  for (int k = 0; k < digits; k++) {
    if (at_end(r) || hexv(r->p[r->i]) < 0) return rx_fail(r, -EINVAL, "bad hex escape");
    v = v * 16 + (uint32_t)hexv(r->p[r->i++]);
  }
  *out = v;
  return 0;
}

/* After a backslash: either a class escape (sets *CLS to d/w/s/D/W/S) or one code point.
 * IN_CLASS: \b is backspace there. */
static int read_escape(struct rx *r, bool in_class, char *cls, uint32_t *cp) {
  *cls = 0;
  if (at_end(r)) return rx_fail(r, -EINVAL, "pattern ends with a backslash");
  uint8_t c = r->p[r->i++];
  switch (c) {
    case 'd': case 'D': case 'w': case 'W': case 's': case 'S': *cls = (char)c; return 0;
    case 't': *cp = '\t'; return 0;
    case 'n': *cp = '\n'; return 0;
    case 'v': *cp = '\v'; return 0;
    case 'f': *cp = '\f'; return 0;
    case 'r': *cp = '\r'; return 0;
    case '0':
      if (!at_end(r) && r->p[r->i] >= '0' && r->p[r->i] <= '9')
        return rx_fail(r, -EINVAL, "octal escapes are not supported");
      *cp = 0;
      return 0;
    case 'x': return read_hex(r, 2, cp);
    case 'u':
      if (!at_end(r) && r->p[r->i] == '{') {
        r->i++;
        uint32_t v = 0;
        int nd = 0;
        while (!at_end(r) && hexv(r->p[r->i]) >= 0 && nd < 8) v = v * 16 + (uint32_t)hexv(r->p[r->i++]), nd++;
        if (at_end(r) || r->p[r->i] != '}' || nd == 0 || v > CN_CP_MAX)
          return rx_fail(r, -EINVAL, "bad \\u{...} escape");
        r->i++;
        *cp = v;
      } else {
        if (read_hex(r, 4, cp)) return -1;
        if (*cp >= 0xD800 && *cp < 0xDC00 && r->i + 6 <= r->n && r->p[r->i] == '\\' &&
            r->p[r->i + 1] == 'u') {
          size_t save = r->i;
          r->i += 2;
          uint32_t lo = 0;
          if (read_hex(r, 4, &lo) == 0 && lo >= 0xDC00 && lo < 0xE000) {
            *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
            return 0;
          }
          r->rc = 0;
          r->i = save;
        }
      }
      if (*cp >= 0xD800 && *cp <= 0xDFFF)
        return rx_fail(r, -EINVAL, "a lone surrogate escape is not supported");
      return 0;
    case 'c':
      if (at_end(r) || !((r->p[r->i] | 0x20) >= 'a' && (r->p[r->i] | 0x20) <= 'z'))
        return rx_fail(r, -EINVAL, "bad \\c escape");
      *cp = (uint32_t)(r->p[r->i++] % 32);
      return 0;
    case 'b':
      if (in_class) {
        *cp = '\b';
        return 0;
      }
      return rx_fail(r, -EINVAL, "word boundary \\b is not supported");
    case 'B': return rx_fail(r, -EINVAL, "word boundary \\B is not supported");
    case 'p': case 'P':
      return rx_fail(r, -EINVAL, "Unicode property classes (\\p{...}) are not supported");
    case 'k': return rx_fail(r, -EINVAL, "backreference \\k<...> is not supported");
    default: break;
  }
  if (c >= '1' && c <= '9') {
    char b[4] = {'\\', (char)c, 0, 0};
    return rx_fail(r, -EINVAL, "backreference %s is not supported", b);
  }
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') {
    char b[4] = {'\\', (char)c, 0, 0};
    return rx_fail(r, -EINVAL, "escape %s is not supported (engines disagree on it)", b);
  }
  if (c >= 0x80) {   /* an escaped non-ASCII character is itself */
    r->i--;
    return next_cp(r, cp);
  }
  *cp = c;   /* escaped punctuation, space, ... */
  return 0;
}

/* ---------------------------------------------------------------- parsing */

static int32_t parse_alt(struct rx *r);

static int32_t parse_class(struct rx *r) {
  /* at the character after '[' */
  bool neg = false;
  if (!at_end(r) && r->p[r->i] == '^') neg = true, r->i++;
  bool loose = (r->mode == RX_LOOSE) != neg;   /* reading of the members */
  struct cpset s;
  cpset_init(&s);
  bool first = true;
  for (;;) {
    if (at_end(r)) {
      cpset_free(&s);
      return rx_fail(r, -EINVAL, "unterminated character class");
    }
    if (r->p[r->i] == ']' && !first) {
      r->i++;
      break;
    }
    if (r->p[r->i] == ']' && first) {
      /* "[]" matches nothing in ECMA, "[]]" is a class with ']' in Python: refuse the ambiguity */
      cpset_free(&s);
      return rx_fail(r, -EINVAL, "an empty class [] (or ']' first in a class) is not supported");
    }
    first = false;
    uint32_t lo;
    char cls = 0;
    if (r->p[r->i] == '\\') {
      r->i++;
      if (read_escape(r, true, &cls, &lo)) goto bad;
    } else if (r->p[r->i] == '[' && r->i + 1 < r->n && (r->p[r->i + 1] == ':' || r->p[r->i + 1] == '=' || r->p[r->i + 1] == '.')) {
      cpset_free(&s);
      return rx_fail(r, -EINVAL, "POSIX classes like [:alpha:] are not supported");
    } else {
      if (next_cp(r, &lo)) goto bad;
    }
    if (cls) {
      if (add_class_escape(&s, cls, loose)) goto oom;
      continue;
    }
    /* a range? */
    if (r->i + 1 < r->n && r->p[r->i] == '-' && r->p[r->i + 1] != ']') {
      r->i++;
      uint32_t hi;
      char cls2 = 0;
      if (r->p[r->i] == '\\') {
        r->i++;
        if (read_escape(r, true, &cls2, &hi)) goto bad;
        if (cls2) {
          cpset_free(&s);
          return rx_fail(r, -EINVAL, "a class escape cannot end a range");
        }
      } else if (next_cp(r, &hi)) {
        goto bad;
      }
      if (hi < lo) {
        cpset_free(&s);
        return rx_fail(r, -EINVAL, "range out of order in character class");
      }
      /* astral members: the strict reading drops them (outside the u flag they are two units) */
      if (!loose && hi >= 0x10000) hi = 0xFFFF;
      if (lo <= hi && cpset_add(&s, lo, hi)) goto oom;
    } else {
      if (!(!loose && lo >= 0x10000) && cpset_add(&s, lo, lo)) goto oom;
    }
  }
  if (neg) {
    if (cpset_negate(&s)) goto oom;
    if (r->mode == RX_STRICT) {
      struct cpset bmp;
      cpset_init(&bmp);
      int rc = cpset_add(&bmp, 0, 0xFFFF);
      if (!rc) rc = cpset_intersect(&s, &bmp);
      cpset_free(&bmp);
      if (rc) goto oom;
    }
  }
  return set_node(r, &s);
oom:
  cpset_free(&s);
  return rx_fail(r, -ENOMEM, "out of memory");
bad:
  cpset_free(&s);
  return -1;
}

static int32_t parse_atom(struct rx *r) {
  uint8_t c = r->p[r->i];
  struct cpset s;
  cpset_init(&s);
  if (c == '(') {
    r->i++;
    if (r->i < r->n && r->p[r->i] == '?') {
      r->i++;
      if (r->i < r->n && r->p[r->i] == ':') {
        r->i++;
      } else if (r->i + 1 < r->n && r->p[r->i] == '<' && r->p[r->i + 1] != '=' && r->p[r->i + 1] != '!') {
        while (r->i < r->n && r->p[r->i] != '>') r->i++;
        if (at_end(r)) return rx_fail(r, -EINVAL, "unterminated group name");
        r->i++;
      } else if (r->i + 1 < r->n && r->p[r->i] == 'P' && r->p[r->i + 1] == '<') {
        while (r->i < r->n && r->p[r->i] != '>') r->i++;
        if (at_end(r)) return rx_fail(r, -EINVAL, "unterminated group name");
        r->i++;
      } else if (r->i < r->n && (r->p[r->i] == '=' || r->p[r->i] == '!')) {
        return rx_fail(r, -EINVAL, "lookahead (?%s...) is not supported", r->p[r->i] == '=' ? "=" : "!");
      } else if (r->i + 1 < r->n && r->p[r->i] == '<') {
        return rx_fail(r, -EINVAL, "lookbehind is not supported");
      } else {
        return rx_fail(r, -EINVAL, "inline flags and (?...) extensions are not supported");
      }
    }
    if (++r->depth > RX_MAX_DEPTH) return rx_fail(r, -EINVAL, "groups nested too deeply");
    int32_t inner = parse_alt(r);
    r->depth--;
    if (inner < 0) return -1;
    if (at_end(r) || r->p[r->i] != ')') return rx_fail(r, -EINVAL, "missing ')'");
    r->i++;
    return inner;
  }
  if (c == '[') {
    r->i++;
    return parse_class(r);
  }
  if (c == '.') {
    r->i++;
    if (dot_set(&s, r->mode == RX_LOOSE)) return rx_fail(r, -ENOMEM, "out of memory");
    return set_node(r, &s);
  }
  if (c == '^') {
    r->i++;
    return new_node(r, RN_BEGIN);
  }
  if (c == '$') {
    r->i++;
    return new_node(r, RN_END);
  }
  if (c == '*' || c == '+' || c == '?')
    return rx_fail(r, -EINVAL, "nothing to repeat");
  if (c == ')') return rx_fail(r, -EINVAL, "unmatched ')'");
  uint32_t cp;
  if (c == '\\') {
    r->i++;
    char cls;
    if (read_escape(r, false, &cls, &cp)) return -1;
    if (cls) {
      if (add_class_escape(&s, cls, r->mode == RX_LOOSE)) {
        cpset_free(&s);
        return rx_fail(r, -ENOMEM, "out of memory");
      }
      return set_node(r, &s);
    }
  } else {
    if (next_cp(r, &cp)) return -1;
    if (cp == '{' || cp == '}' || cp == ']') {
      /* a literal brace: fine in both engines unless it reads like a quantifier */
    }
  }
  if (cpset_add(&s, cp, cp)) return rx_fail(r, -ENOMEM, "out of memory");
  return set_node(r, &s);
}

/* Parses "{n}", "{n,}", "{n,m}" at r->i; returns 1 if it was one, 0 if '{' is a literal. */
static int parse_braces(struct rx *r, int64_t *mn, int64_t *mx) {
  size_t j = r->i + 1;
  int64_t a = 0, b = -1;
  int da = 0;
  while (j < r->n && r->p[j] >= '0' && r->p[j] <= '9') {
    if (a < 100000000) a = a * 10 + (r->p[j] - '0');
    j++, da++;
  }
  if (j < r->n && r->p[j] == ',' && da == 0) {
    /* "{,n}": Python reads a quantifier, ECMA a literal */
    size_t k = j + 1;
    while (k < r->n && r->p[k] >= '0' && r->p[k] <= '9') k++;
    if (k < r->n && r->p[k] == '}') return rx_fail(r, -EINVAL, "{,n} is not supported (engines disagree)");
    return 0;
  }
  if (da == 0) return 0;
  if (j < r->n && r->p[j] == '}') {
    b = a;
  } else if (j < r->n && r->p[j] == ',') {
    j++;
    int db = 0;
    int64_t v = 0;
    while (j < r->n && r->p[j] >= '0' && r->p[j] <= '9') {
      if (v < 100000000) v = v * 10 + (r->p[j] - '0');
      j++, db++;
    }
    if (j >= r->n || r->p[j] != '}') return 0;
    b = db ? v : -1;
  } else {
    return 0;
  }
  if (b >= 0 && b < a) return rx_fail(r, -EINVAL, "quantifier range out of order");
  if (a > RX_MAX_REP || b > RX_MAX_REP)
    return rx_fail(r, -E2BIG, "quantifier bound over 1000");
  r->i = j + 1;
  *mn = a;
  *mx = b;
  return 1;
}

static int32_t parse_cat(struct rx *r) {
  int32_t items[64];
  int32_t *list = items;
  size_t n = 0, cap = 64;
  int32_t res = -1;
  while (!at_end(r) && r->p[r->i] != '|' && r->p[r->i] != ')') {
    int32_t a;
    if (r->p[r->i] == '{') {
      int64_t mn, mx;
      int q = parse_braces(r, &mn, &mx);
      if (q < 0) goto out;
      if (q > 0) {
        rx_fail(r, -EINVAL, "nothing to repeat");
        goto out;
      }
      struct cpset s;
      cpset_init(&s);
      r->i++;
      if (cpset_add(&s, '{', '{')) {
        rx_fail(r, -ENOMEM, "out of memory");
        goto out;
      }
      a = set_node(r, &s);
    } else {
      a = parse_atom(r);
    }
    if (a < 0) goto out;
    /* quantifiers */
    for (;;) {
      if (at_end(r)) break;
      uint8_t c = r->p[r->i];
      int64_t mn, mx;
      if (c == '*') mn = 0, mx = -1, r->i++;
      else if (c == '+') mn = 1, mx = -1, r->i++;
      else if (c == '?') mn = 0, mx = 1, r->i++;
      else if (c == '{') {
        int q = parse_braces(r, &mn, &mx);
        if (q < 0) goto out;
        if (q == 0) break;
      } else {
        break;
      }
      int k = r->nodes[a].kind;
      if (k == RN_BEGIN || k == RN_END) {
        rx_fail(r, -EINVAL, "an anchor cannot be repeated");
        goto out;
      }
      if (!at_end(r) && r->p[r->i] == '?') r->i++;   /* lazy: same language */
      else if (!at_end(r) && r->p[r->i] == '+') {
        rx_fail(r, -EINVAL, "possessive quantifiers are not supported");
        goto out;
      }
      int32_t rep = new_node(r, RN_REP);
      if (rep < 0) goto out;
      r->nodes[rep].kid = a;
      r->nodes[rep].min = mn;
      r->nodes[rep].max = mx;
      a = rep;
      if (!at_end(r) && (r->p[r->i] == '*' || r->p[r->i] == '+' || r->p[r->i] == '?' || r->p[r->i] == '{')) {
        /* "a**" is an error in both engines; "a{2}{3}" too in ECMA */
        if (r->p[r->i] != '{') {
          rx_fail(r, -EINVAL, "multiple repeat");
          goto out;
        }
      }
    }
    if (n == cap) {
      size_t nc = cap * 2;
      int32_t *nl = malloc(nc * sizeof *nl);
      if (!nl) {
        rx_fail(r, -ENOMEM, "out of memory");
        goto out;
      }
      memcpy(nl, list, n * sizeof *nl);
      if (list != items) free(list);
      list = nl;
      cap = nc;
    }
    list[n++] = a;
  }
  if (n == 0) {
    res = new_node(r, RN_EMPTY);
  } else if (n == 1) {
    res = list[0];
  } else {
    res = new_node(r, RN_CAT);
    if (res < 0) goto out;
    if (cn_grow(&r->kids, &r->cap_k, r->nk + n, sizeof *r->kids)) {
      rx_fail(r, -ENOMEM, "out of memory");
      res = -1;
      goto out;
    }
    r->nodes[res].kid = (int32_t)r->nk;
    r->nodes[res].nkid = (int32_t)n;
    memcpy(r->kids + r->nk, list, n * sizeof *list);
    r->nk += n;
  }
out:
  if (list != items) free(list);
  return res;
}

static int32_t parse_alt(struct rx *r) {
  int32_t first = parse_cat(r);
  if (first < 0) return -1;
  if (at_end(r) || r->p[r->i] != '|') return first;
  int32_t alts[256];
  size_t n = 0;
  alts[n++] = first;
  while (!at_end(r) && r->p[r->i] == '|') {
    r->i++;
    int32_t a = parse_cat(r);
    if (a < 0) return -1;
    if (n == 256) return rx_fail(r, -E2BIG, "more than 256 alternatives in one group");
    alts[n++] = a;
  }
  int32_t res = new_node(r, RN_ALT);
  if (res < 0) return -1;
  if (cn_grow(&r->kids, &r->cap_k, r->nk + n, sizeof *r->kids))
    return rx_fail(r, -ENOMEM, "out of memory");
  r->nodes[res].kid = (int32_t)r->nk;
  r->nodes[res].nkid = (int32_t)n;
  memcpy(r->kids + r->nk, alts, n * sizeof *alts);
  r->nk += n;
  return res;
}

/* ---------------------------------------------------------------- NFA */

/* Builds node ND from state FROM; returns the end state or UINT32_MAX. */
static uint32_t build(struct rx *r, struct cnfa *a, int32_t nd, uint32_t from, int depth) {
  const struct rnode *x = &r->nodes[nd];
  if (depth > 4 * RX_MAX_DEPTH) {
    rx_fail(r, -EINVAL, "pattern nested too deeply");
    return UINT32_MAX;
  }
  uint32_t t;
#define NEWST(v)                                                          \
  do {                                                                    \
    if (((v) = cnfa_state(a)) == UINT32_MAX) {                            \
      rx_fail(r, -E2BIG, "pattern too large");                      \
      return UINT32_MAX;                                                  \
    }                                                                     \
  } while (0)
#define EDGE(call)                                                        \
  do {                                                                    \
    if (call) {                                                           \
      rx_fail(r, -ENOMEM, "out of memory");                         \
      return UINT32_MAX;                                                  \
    }                                                                     \
  } while (0)
  switch (x->kind) {
    case RN_EMPTY: return from;
    case RN_SET:
      NEWST(t);
      EDGE(cnfa_set_edge(a, from, t, &r->sets[x->set]));
      return t;
    case RN_BEGIN:
      NEWST(t);
      EDGE(cnfa_edge(a, from, t, CN_BEGIN));
      return t;
    case RN_END:
      NEWST(t);
      EDGE(cnfa_edge(a, from, t, CN_END));
      if (r->mode == RX_LOOSE) {   /* Python: also before a final newline */
        uint32_t m;
        NEWST(m);
        EDGE(cnfa_range_edge(a, from, m, '\n', '\n'));
        EDGE(cnfa_edge(a, m, t, CN_END));
      }
      return t;
    case RN_CAT: {
      uint32_t cur = from;
      for (int32_t k = 0; k < x->nkid; k++) {
        cur = build(r, a, r->kids[x->kid + k], cur, depth + 1);
        if (cur == UINT32_MAX) return UINT32_MAX;
      }
      return cur;
    }
    case RN_ALT: {
      NEWST(t);
      for (int32_t k = 0; k < x->nkid; k++) {
        uint32_t s;
        NEWST(s);
        EDGE(cnfa_edge(a, from, s, CN_EPS));
        uint32_t e = build(r, a, r->kids[x->kid + k], s, depth + 1);
        if (e == UINT32_MAX) return UINT32_MAX;
        EDGE(cnfa_edge(a, e, t, CN_EPS));
      }
      return t;
    }
    case RN_REP: {
      uint32_t cur = from;
      for (int64_t k = 0; k < x->min; k++) {
        cur = build(r, a, x->kid, cur, depth + 1);
        if (cur == UINT32_MAX) return UINT32_MAX;
      }
      if (x->max < 0) {
        uint32_t loop;
        NEWST(loop);
        EDGE(cnfa_edge(a, cur, loop, CN_EPS));
        uint32_t e = build(r, a, x->kid, loop, depth + 1);
        if (e == UINT32_MAX) return UINT32_MAX;
        EDGE(cnfa_edge(a, e, loop, CN_EPS));
        return loop;
      }
      NEWST(t);
      EDGE(cnfa_edge(a, cur, t, CN_EPS));
      for (int64_t k = x->min; k < x->max; k++) {
        cur = build(r, a, x->kid, cur, depth + 1);
        if (cur == UINT32_MAX) return UINT32_MAX;
        EDGE(cnfa_edge(a, cur, t, CN_EPS));
      }
      return t;
    }
  }
#undef NEWST
#undef EDGE
  return UINT32_MAX;
}

int rx_compile(const char *pattern, size_t len, enum rx_mode mode, bool search, struct cnfa *a,
               char *msg, size_t cap) {
  struct rx r;
  memset(&r, 0, sizeof r);
  r.p = (const uint8_t *)pattern;
  r.n = len;
  r.mode = mode;
  r.msg = msg;
  r.msgcap = cap;
  if (msg && cap) msg[0] = 0;
  int32_t root = parse_alt(&r);
  if (root >= 0 && !at_end(&r)) {
    rx_fail(&r, -EINVAL, "unmatched ')'");
    root = -1;
  }
  if (root >= 0) {
    uint32_t s0 = cnfa_state(a), body = s0;
    if (s0 == UINT32_MAX) {
      rx_fail(&r, -E2BIG, "pattern too large");
    } else {
      a->start = s0;
      struct cpset all;
      cpset_init(&all);
      int rc = cpset_add(&all, 0, CN_CP_MAX);
      if (search && !rc) {   /* .* in front: any prefix (then ^ can no longer match) */
        body = cnfa_state(a);
        if (body == UINT32_MAX) rc = -E2BIG;
        if (!rc) rc = cnfa_set_edge(a, s0, s0, &all);
        if (!rc) rc = cnfa_edge(a, s0, body, CN_EPS);
      }
      uint32_t e = rc ? UINT32_MAX : build(&r, a, root, body, 0);
      if (e != UINT32_MAX) {
        if (search) {
          uint32_t tail = cnfa_state(a);
          if (tail == UINT32_MAX) rc = -E2BIG;
          if (!rc) rc = cnfa_edge(a, e, tail, CN_EPS);
          if (!rc) rc = cnfa_set_edge(a, tail, tail, &all);
          e = tail;
        }
        a->accept = e;
      }
      if (rc && !r.rc) rx_fail(&r, rc, rc == -E2BIG ? "pattern too large" : "out of memory");
      cpset_free(&all);
    }
  }
  for (size_t i = 0; i < r.ns; i++) cpset_free(&r.sets[i]);
  free(r.sets);
  free(r.nodes);
  free(r.kids);
  return r.rc;
}

int rx_to_cdfa(const char *pattern, size_t len, enum rx_mode mode, bool search, size_t max_states,
               struct cdfa *out, char *msg, size_t cap) {
  struct cnfa a;
  cnfa_init(&a, max_states ? max_states * 4 : 0);
  int rc = rx_compile(pattern, len, mode, search, &a, msg, cap);
  if (!rc) {
    rc = cdfa_from_nfa(&a, max_states, out);
    if (rc == -E2BIG && msg && cap) snprintf(msg, cap, "pattern too large for an automaton");
    else if (rc && msg && cap) snprintf(msg, cap, "out of memory");
  }
  cnfa_free(&a);
  return rc;
}
