/*
 * http.c: the HTTP/1.1 request parser (RFC 9112): request head, chunked request bodies, and
 * percent-decoding of path segments. Pure functions, no I/O: server.c feeds them, the unit tests
 * and the fuzz target drive them directly.
 *
 * Strictness is deliberate (request smuggling is a gateway's classic hole): CRLF line ends only,
 * no whitespace between a header name and its colon, no obsolete line folding, Content-Length
 * digits only and consistent when repeated, Content-Length together with Transfer-Encoding
 * refused, Transfer-Encoding other than a single "chunked" refused.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "router/http/http.h"

static bool is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Does the comma-separated header value V contain TOKEN (case-insensitive)? */
static bool has_token(const char *v, const char *token) {
  size_t tl = strlen(token);
  const char *p = v;
  while (*p) {
    while (*p == ' ' || *p == '\t' || *p == ',') p++;
    const char *s = p;
    while (*p && *p != ',') p++;
    const char *e = p;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
    if ((size_t)(e - s) == tl && !strncasecmp(s, token, tl)) return true;
  }
  return false;
}

/* Is T[0..n) an absolute-form target? Returns the length of its
 * "scheme://" prefix, or 0. */
static size_t absolute_prefix(const char *t, size_t n) {
  if (n >= 7 && !strncasecmp(t, "http://", 7)) return 7;
  if (n >= 8 && !strncasecmp(t, "https://", 8)) return 8;
  return 0;
}

/* uri-host [ ":" port ] (RFC 3986: reg-name or an IP literal in brackets), N bytes. */
static bool host_ok(const char *v, size_t n) {
  size_t i = 0;
  if (n && v[0] == '[') {
    for (i = 1; i < n && v[i] != ']'; i++)
      if (!strchr("0123456789abcdefABCDEF:.vV", v[i]) || !v[i]) return false;
    if (i >= n || i == 1) return false;
    i++;
  } else {
    for (; i < n && v[i] != ':'; i++) {
      unsigned char c = (unsigned char)v[i];
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            (c && strchr("-._~%!$&'()*+,;=", c))))
        return false;
    }
    if (i == 0 && n) return false; /* ":80" */
  }
  if (i == n) return true;
  if (v[i] != ':') return false;
  size_t digits = 0;
  for (i++; i < n; i++, digits++)
    if (v[i] < '0' || v[i] > '9' || digits >= 5) return false;
  return true;
}

static int parse_head(char *buf, size_t len, struct rt_http_head *h, const char **why,
                      bool absolute_ok);

int rt_http_parse_head(char *buf, size_t len, struct rt_http_head *h, const char **why) {
  return parse_head(buf, len, h, why, false);
}

int rt_http_parse_request(char *buf, size_t len, struct rt_http_head *h, const char **why) {
  static const char *dummy;
  if (!why) why = &dummy;
  int rc = parse_head(buf, len, h, why, true);
  if (rc) return rc;
  const char *host = NULL;
  int n_host = 0;
  for (size_t i = 0; i < h->n_hdr; i++)
    if (!strcasecmp(h->hdr[i].name, "host")) {
      host = h->hdr[i].value;
      n_host++;
    }
  if (n_host > 1) {
    *why = "more than one Host header";
    return -EINVAL;
  }
  if (!host && h->minor == 1) {
    *why = "missing Host header (required in HTTP/1.1)";
    return -EINVAL;
  }
  /* absolute-form: the target's authority is the host (and the Host header is ignored) */
  if (h->authority ? !host_ok(h->authority, h->authority_len) || h->authority_len == 0
                   : host && !host_ok(host, strlen(host))) {
    *why = h->authority ? "malformed host in the request target" : "malformed Host header";
    return -EINVAL;
  }
  return 0;
}

static int parse_head(char *buf, size_t len, struct rt_http_head *h, const char **why,
                      bool absolute_ok) {
  static const char *dummy;
  if (!why) why = &dummy;
  memset(h, 0, sizeof *h);
  h->content_length = -1;
  if (len < 4 || memcmp(buf + len - 4, "\r\n\r\n", 4) != 0) {
    *why = "request head must end with an empty line";
    return -EINVAL;
  }
  char *end = buf + len - 2; /* the final CRLF: the last header line ends just before it */
  char *p = buf;

  /* request line: method SP target SP HTTP/1.x CRLF */
  char *le = memchr(p, '\r', (size_t)(end - p));
  if (!le || le[1] != '\n') {
    *why = "malformed request line";
    return -EINVAL;
  }
  size_t mlen = 0;
  while (p + mlen < le && is_tchar((unsigned char)p[mlen])) mlen++;
  if (mlen == 0 || mlen >= sizeof h->method || p[mlen] != ' ') {
    *why = "malformed request method";
    return -EINVAL;
  }
  memcpy(h->method, p, mlen);
  h->method[mlen] = '\0';
  char *t = p + mlen + 1;
  char *te = t;
  while (te < le && (unsigned char)*te > 0x20 && (unsigned char)*te < 0x7f) te++;
  size_t abs = absolute_ok && te < le && *te == ' ' ? absolute_prefix(t, (size_t)(te - t)) : 0;
  if (abs) {
    /* absolute-form (RFC 9112 3.2.2): "http://authority/path?query" */
    char *a = t + abs, *ae = a;
    while (ae < te && *ae != '/' && *ae != '?') ae++;
    if (ae >= te || *ae != '/') {
      *why = "malformed request target (an absolute URL needs a path)";
      return -EINVAL;
    }
    h->authority = a;
    h->authority_len = (size_t)(ae - a);
    t = ae;
  }
  if (te == t || te >= le || *te != ' ' || *t != '/') {
    *why = "malformed request target (expected an absolute path)";
    return -EINVAL;
  }
  *te = '\0';
  h->target = t;
  char *q = memchr(t, '?', (size_t)(te - t));
  h->path_len = q ? (size_t)(q - t) : (size_t)(te - t);
  char *v = te + 1;
  if (le - v != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
      v[7] < '0' || v[7] > '9') {
    *why = "malformed HTTP version";
    return -EINVAL;
  }
  if (v[5] != '1' || (v[7] != '0' && v[7] != '1')) {
    *why = "only HTTP/1.0 and HTTP/1.1 are supported";
    return -EPROTONOSUPPORT;
  }
  h->minor = v[7] - '0';
  p = le + 2;

  /* header fields */
  bool conn_close = false, conn_keep = false, te_seen = false;
  while (p < end) {
    le = memchr(p, '\r', (size_t)(end - p + 1));
    if (!le || le >= end + 1 || le[1] != '\n') {
      *why = "malformed header line";
      return -EINVAL;
    }
    if (*p == ' ' || *p == '\t') {
      *why = "obsolete header line folding is not accepted";
      return -EINVAL;
    }
    char *c = p;
    while (c < le && is_tchar((unsigned char)*c)) c++;
    if (c == p || c >= le || *c != ':') {
      *why = "malformed header name";
      return -EINVAL;
    }
    if (h->n_hdr >= RT_MAX_HEADERS) {
      *why = "too many header fields";
      return -E2BIG;
    }
    *c = '\0';
    char *val = c + 1;
    char *ve = le;
    while (val < ve && (*val == ' ' || *val == '\t')) val++;
    while (ve > val && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
    for (char *x = val; x < ve; x++) {
      unsigned char ch = (unsigned char)*x;
      if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
        *why = "control character in a header value";
        return -EINVAL;
      }
    }
    *ve = '\0';
    h->hdr[h->n_hdr].name = p;
    h->hdr[h->n_hdr].value = val;
    h->n_hdr++;

    if (!strcasecmp(p, "content-length")) {
      if (*val == '\0') {
        *why = "empty Content-Length";
        return -EINVAL;
      }
      int64_t n = 0;
      for (char *x = val; *x; x++) {
        if (*x < '0' || *x > '9' || n > (INT64_MAX - 9) / 10) {
          *why = "malformed Content-Length";
          return -EINVAL;
        }
        n = n * 10 + (*x - '0');
      }
      if (h->content_length >= 0 && h->content_length != n) {
        *why = "conflicting Content-Length headers";
        return -EINVAL;
      }
      h->content_length = n;
    } else if (!strcasecmp(p, "transfer-encoding")) {
      if (te_seen || strcasecmp(val, "chunked") != 0) {
        *why = "unsupported Transfer-Encoding (only a single \"chunked\" is accepted)";
        return -ENOSYS;
      }
      te_seen = true;
      h->chunked = true;
    } else if (!strcasecmp(p, "connection")) {
      if (has_token(val, "close")) conn_close = true;
      if (has_token(val, "keep-alive")) conn_keep = true;
    } else if (!strcasecmp(p, "expect")) {
      if (!strcasecmp(val, "100-continue")) h->expect_continue = true;
    }
    p = le + 2;
  }
  if (h->chunked && h->content_length >= 0) {
    *why = "both Content-Length and Transfer-Encoding";
    return -EINVAL;
  }
  if (h->chunked && h->minor == 0) {
    *why = "chunked transfer coding in an HTTP/1.0 request";
    return -EINVAL;
  }
  h->keep_alive = h->minor == 1 ? !conn_close : (conn_keep && !conn_close);
  return 0;
}

bool rt_http_field_ok(const char *name, const char *value) {
  if (!name || !value || !*name) return false;
  for (const unsigned char *p = (const unsigned char *)name; *p; p++)
    if (!is_tchar(*p)) return false;
  for (const unsigned char *p = (const unsigned char *)value; *p; p++)
    if ((*p < 0x20 && *p != '\t') || *p == 0x7f) return false;
  return true;
}

const char *rt_http_header(const struct rt_http_head *h, const char *name) {
  for (size_t i = 0; i < h->n_hdr; i++)
    if (!strcasecmp(h->hdr[i].name, name)) return h->hdr[i].value;
  return NULL;
}

/* ------------------------------------------------------------------ chunked bodies */

enum {
  CH_SIZE = 0,   /* hex digits of a chunk size */
  CH_EXT,        /* ";ext" after the size, up to CR */
  CH_SIZE_LF,    /* LF after the size line's CR */
  CH_DATA,
  CH_DATA_CR,    /* CR after chunk data */
  CH_DATA_LF,
  CH_TRAILER,    /* start of a trailer line (CR here = end of body) */
  CH_TRAILER_LINE,
  CH_TRAILER_LF, /* LF of a trailer line */
  CH_END_LF,     /* LF of the final empty line */
  CH_DONE,
};

#define CH_MAX_LINE 4096    /* a chunk-size line or a trailer line */
#define CH_MAX_TRAILER 16384

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int rt_chunked_feed(struct rt_chunked *c, const char *in, size_t n, size_t *used,
                    rt_chunked_sink sink, void *ud) {
  size_t i = 0;
  int rc = 0;
  while (i < n && c->state != CH_DONE) {
    char ch = in[i];
    switch (c->state) {
    case CH_SIZE: {
      int d = hexval(ch);
      if (d >= 0) {
        if (c->digits >= 15) { rc = -EINVAL; goto out; } /* < 2^60: no overflow */
        c->remaining = c->remaining * 16 + (uint64_t)d;
        c->digits++;
        i++;
      } else if (c->digits && ch == ';') {
        c->state = CH_EXT;
        c->line = 0;
        i++;
      } else if (c->digits && ch == '\r') {
        c->state = CH_SIZE_LF;
        i++;
      } else {
        rc = -EINVAL;
        goto out;
      }
      break;
    }
    case CH_EXT:
      if (ch == '\r') c->state = CH_SIZE_LF;
      else if (ch == '\n' || ++c->line > CH_MAX_LINE) { rc = -EINVAL; goto out; }
      i++;
      break;
    case CH_SIZE_LF:
      if (ch != '\n') { rc = -EINVAL; goto out; }
      i++;
      c->digits = 0;
      if (c->remaining == 0) {
        c->state = CH_TRAILER;
        c->line = 0;
      } else {
        c->state = CH_DATA;
      }
      break;
    case CH_DATA: {
      size_t take = n - i;
      if ((uint64_t)take > c->remaining) take = (size_t)c->remaining;
      if (sink) {
        int s = sink(ud, in + i, take);
        if (s) { rc = s; i += take; c->remaining -= take; goto out; }
      }
      i += take;
      c->remaining -= take;
      if (c->remaining == 0) c->state = CH_DATA_CR;
      break;
    }
    case CH_DATA_CR:
      if (ch != '\r') { rc = -EINVAL; goto out; }
      c->state = CH_DATA_LF;
      i++;
      break;
    case CH_DATA_LF:
      if (ch != '\n') { rc = -EINVAL; goto out; }
      c->state = CH_SIZE;
      i++;
      break;
    case CH_TRAILER:
      if (ch == '\r') {
        c->state = CH_END_LF;
      } else {
        c->state = CH_TRAILER_LINE;
      }
      i++;
      if (++c->line > CH_MAX_TRAILER) { rc = -EINVAL; goto out; }
      break;
    case CH_TRAILER_LINE:
      if (ch == '\r') c->state = CH_TRAILER_LF;
      else if (ch == '\n') { rc = -EINVAL; goto out; }
      i++;
      if (++c->line > CH_MAX_TRAILER) { rc = -EINVAL; goto out; }
      break;
    case CH_TRAILER_LF:
      if (ch != '\n') { rc = -EINVAL; goto out; }
      c->state = CH_TRAILER;
      i++;
      break;
    case CH_END_LF:
      if (ch != '\n') { rc = -EINVAL; goto out; }
      c->state = CH_DONE;
      i++;
      break;
    default:
      rc = -EINVAL;
      goto out;
    }
  }
out:
  *used = i;
  if (rc) return rc;
  return c->state == CH_DONE ? 1 : 0;
}

/* ------------------------------------------------------------------ percent-decoding */

int rt_url_decode(const char *src, size_t n, char *dst, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    char ch = src[i];
    if (ch == '%') {
      if (i + 2 >= n) return -1;
      int a = hexval(src[i + 1]), b = hexval(src[i + 2]);
      if (a < 0 || b < 0) return -1;
      ch = (char)(a * 16 + b);
      if (ch == '\0') return -1;
      i += 2;
    }
    if (o + 1 >= cap) return -1;
    dst[o++] = ch;
  }
  if (cap == 0) return -1;
  dst[o] = '\0';
  return (int)o;
}
