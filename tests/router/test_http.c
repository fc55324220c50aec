/*
 * test_http.c: router/http.c: the request head parser, the chunked body decoder, percent-decoding.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "router/internal.h"

static int parse(const char *s, struct rt_http_head *h, char **keep) {
  size_t n = strlen(s);
  char *buf = malloc(n + 1);
  memcpy(buf, s, n + 1);
  const char *why = NULL;
  int rc = rt_http_parse_head(buf, n, h, &why);
  if (rc) CHECK(why != NULL);
  *keep = buf;
  return rc;
}

struct sink {
  char buf[4096];
  size_t len;
  size_t limit;
};

static int sink_cb(void *ud, const char *p, size_t n) {
  struct sink *s = ud;
  if (s->limit && s->len + n > s->limit) return -EFBIG;
  memcpy(s->buf + s->len, p, n);
  s->len += n;
  return 0;
}

/* Feeds S to a fresh decoder in pieces of STEP bytes; returns the final rc, *used the total used. */
static int chunked(const char *s, size_t n, size_t step, struct sink *out, size_t *used_total) {
  struct rt_chunked c;
  memset(&c, 0, sizeof c);
  memset(out, 0, sizeof *out);
  size_t off = 0;
  int rc = 0;
  while (off < n) {
    size_t len = n - off < step ? n - off : step;
    size_t used = 0;
    rc = rt_chunked_feed(&c, s + off, len, &used, sink_cb, out);
    off += used;
    if (rc != 0) break;
    if (used < len) break;
  }
  *used_total = off;
  return rc;
}

int main(void) {
  struct rt_http_head h;
  char *b;

  /* a typical SDK request */
  CHECK_EQ_INT(parse("POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: localhost\r\n"
                     "Content-Type: application/json\r\nContent-Length: 42\r\n"
                     "Authorization: Bearer sk-x  \r\nAccept: application/json\r\n\r\n", &h, &b), 0);
  CHECK_STR(h.method, "POST");
  CHECK_STR(h.target, "/v1/chat/completions?x=1");
  CHECK_EQ_INT(h.path_len, strlen("/v1/chat/completions"));
  CHECK_EQ_INT(h.minor, 1);
  CHECK_EQ_INT(h.content_length, 42);
  CHECK(!h.chunked);
  CHECK(h.keep_alive);
  CHECK_EQ_INT(h.n_hdr, 5);
  CHECK_STR(rt_http_header(&h, "authorization"), "Bearer sk-x");
  CHECK_STR(rt_http_header(&h, "HOST"), "localhost");
  CHECK(rt_http_header(&h, "x-missing") == NULL);
  free(b);

  /* keep-alive rules */
  CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", &h, &b), 0);
  CHECK(!h.keep_alive);
  free(b);
  CHECK_EQ_INT(parse("GET / HTTP/1.0\r\n\r\n", &h, &b), 0);
  CHECK(!h.keep_alive);
  CHECK_EQ_INT(h.minor, 0);
  CHECK_EQ_INT(h.content_length, -1);
  free(b);
  CHECK_EQ_INT(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &h, &b), 0);
  CHECK(h.keep_alive);
  free(b);
  CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nConnection: upgrade, close\r\n\r\n", &h, &b), 0);
  CHECK(!h.keep_alive);
  free(b);

  /* chunked and expect */
  CHECK_EQ_INT(parse("POST /x HTTP/1.1\r\nTransfer-Encoding: Chunked\r\nExpect: 100-continue\r\n\r\n", &h, &b), 0);
  CHECK(h.chunked);
  CHECK(h.expect_continue);
  free(b);

  /* malformed and refused heads */
  CHECK_EQ_INT(parse("GARBAGE\r\n\r\n", &h, &b), -EINVAL); free(b);
  CHECK_EQ_INT(parse("GET  / HTTP/1.1\r\n\r\n", &h, &b), -EINVAL); free(b);
  CHECK_EQ_INT(parse("GET http://x/ HTTP/1.1\r\n\r\n", &h, &b), -EINVAL); free(b);
  CHECK_EQ_INT(parse("GET / HTTP/2.0\r\n\r\n", &h, &b), -EPROTONOSUPPORT); free(b);
  CHECK_EQ_INT(parse("GET / HTTP/1.2\r\n\r\n", &h, &b), -EPROTONOSUPPORT); free(b);
  CHECK_EQ_INT(parse("GET / HTTX/1.1\r\n\r\n", &h, &b), -EINVAL); free(b);
  CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", &h, &b), -EINVAL); free(b);
  CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nName : x\r\n\r\n", &h, &b), -EINVAL); free(b);
  CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", &h, &b), -EINVAL); free(b);
  CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nA: b\nC: d\r\n\r\n", &h, &b), -EINVAL); free(b);
  CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nNoColon\r\n\r\n", &h, &b), -EINVAL); free(b);
  CHECK_EQ_INT(parse("POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", &h, &b), -EINVAL); free(b);
  CHECK_EQ_INT(parse("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", &h, &b), -EINVAL); free(b);
  CHECK_EQ_INT(parse("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", &h, &b), -EINVAL); free(b);
  CHECK_EQ_INT(parse("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", &h, &b), -EINVAL); free(b);
  CHECK_EQ_INT(parse("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", &h, &b), 0); free(b);
  CHECK_EQ_INT(parse("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", &h, &b), -EINVAL); free(b);
  CHECK_EQ_INT(parse("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", &h, &b), -ENOSYS); free(b);
  CHECK_EQ_INT(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", &h, &b), -ENOSYS); free(b);
  CHECK_EQ_INT(parse("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", &h, &b), -EINVAL); free(b);
  CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nA: x\x01y\r\n\r\n", &h, &b), -EINVAL); free(b);
  CHECK_EQ_INT(parse("GET / HTTP/1.1\r\n\r\nX", &h, &b), -EINVAL); free(b);
  CHECK_EQ_INT(parse("\r\n\r\n", &h, &b), -EINVAL); free(b);
  {
    /* 101 headers: 431 */
    char big[8192];
    size_t o = (size_t)snprintf(big, sizeof big, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 101; i++) o += (size_t)snprintf(big + o, sizeof big - o, "X-%d: v\r\n", i);
    snprintf(big + o, sizeof big - o, "\r\n");
    CHECK_EQ_INT(parse(big, &h, &b), -E2BIG);
    free(b);
  }

  /* chunked bodies: same result however the input is cut */
  static const char body[] = "5\r\nhello\r\n6;name=val\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
  size_t blen = strlen(body);
  for (size_t step = 1; step <= blen; step++) {
    struct sink s;
    size_t used;
    int rc = chunked(body, blen, step, &s, &used);
    CHECK_EQ_INT(rc, 1);
    CHECK_EQ_INT(s.len, 11);
    CHECK(memcmp(s.buf, "hello world", 11) == 0);
    CHECK_EQ_INT(used, blen - 4); /* "NEXT" belongs to the next request */
  }
  {
    struct sink s;
    size_t used;
    CHECK_EQ_INT(chunked("0\r\n\r\n", 5, 5, &s, &used), 1);
    CHECK_EQ_INT(s.len, 0);
    CHECK_EQ_INT(chunked("A\r\n0123456789\r\n0\r\n\r\n", 20, 3, &s, &used), 1);
    CHECK_EQ_INT(s.len, 10);
    CHECK_EQ_INT(chunked("5\r\nhello", 8, 8, &s, &used), 0);           /* needs more */
    CHECK_EQ_INT(chunked("x\r\n", 3, 3, &s, &used), -EINVAL);          /* not hex */
    CHECK_EQ_INT(chunked("\r\n", 2, 2, &s, &used), -EINVAL);           /* no digits */
    CHECK_EQ_INT(chunked("5\nhello\r\n", 9, 9, &s, &used), -EINVAL);   /* bare LF */
    CHECK_EQ_INT(chunked("5\r\nhelloX\r\n", 11, 11, &s, &used), -EINVAL); /* data longer than size */
    CHECK_EQ_INT(chunked("1000000000000000\r\n", 18, 18, &s, &used), -EINVAL); /* 16 hex digits */
    s.limit = 4;
    struct rt_chunked c;
    memset(&c, 0, sizeof c);
    memset(&s, 0, sizeof s);
    s.limit = 4;
    CHECK_EQ_INT(rt_chunked_feed(&c, "5\r\nhello\r\n0\r\n\r\n", 15, &used, sink_cb, &s), -EFBIG);
  }

  /* percent-decoding */
  char out[64];
  CHECK_EQ_INT(rt_url_decode("ft%3Agpt-4o%3aorg", 17, out, sizeof out), 13);
  CHECK_STR(out, "ft:gpt-4o:org");
  CHECK_EQ_INT(rt_url_decode("a%2", 3, out, sizeof out), -1);
  CHECK_EQ_INT(rt_url_decode("a%zz", 4, out, sizeof out), -1);
  CHECK_EQ_INT(rt_url_decode("a%00b", 5, out, sizeof out), -1);
  CHECK_EQ_INT(rt_url_decode("abcdef", 6, out, 4), -1);
  CHECK_EQ_INT(rt_url_decode("abc", 3, out, 4), 3);
  return check_done();
}
