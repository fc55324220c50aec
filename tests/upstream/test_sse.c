/*
 * test_sse.c: the SSE parser (upstream/sse.c) on exact event sequences, at every chunk boundary.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "upstream/upstream.h"

/* Collected events, serialised as "event|data|id\n" so sequences compare as strings. */
struct col {
  char buf[65536];
  size_t len;
  int n;
  int stop_after;   /* return 7 after this many events (0: never) */
};

static int collect(void *ud, const struct up_sse_event *ev) {
  struct col *c = ud;
  c->n++;
  int w = snprintf(c->buf + c->len, sizeof c->buf - c->len, "%s|", ev->event);
  c->len += (size_t)w;
  memcpy(c->buf + c->len, ev->data, ev->data_len);
  c->len += ev->data_len;
  w = snprintf(c->buf + c->len, sizeof c->buf - c->len, "|%s\n", ev->id);
  c->len += (size_t)w;
  return c->stop_after && c->n >= c->stop_after ? 7 : 0;
}

/* Parses S in one go and returns the serialised events (static buffer). */
static const char *parse_whole(const char *s, size_t n, size_t cap, int *rc) {
  static struct col c;
  memset(&c, 0, sizeof c);
  struct up_sse p;
  up_sse_init(&p, cap);
  *rc = up_sse_feed(&p, s, n, collect, &c);
  up_sse_free(&p);
  c.buf[c.len] = '\0';
  return c.buf;
}

/* Same stream split at every pair of cut points must give the same events. */
static void check_all_splits(const char *s, const char *expect) {
  size_t n = strlen(s);
  int bad = 0;
  for (size_t a = 0; a <= n && !bad; a++) {
    for (size_t b = a; b <= n && !bad; b++) {
      struct col c;
      memset(&c, 0, sizeof c);
      struct up_sse p;
      up_sse_init(&p, 0);
      up_sse_feed(&p, s, a, collect, &c);
      up_sse_feed(&p, s + a, b - a, collect, &c);
      up_sse_feed(&p, s + b, n - b, collect, &c);
      up_sse_free(&p);
      c.buf[c.len] = '\0';
      if (strcmp(c.buf, expect) != 0) {
        bad = 1;
        CHECK_MSG(0, "split at %zu,%zu: got \"%s\" want \"%s\"", a, b, c.buf, expect);
      }
    }
  }
  CHECK(!bad);
  /* and byte by byte */
  struct col c;
  memset(&c, 0, sizeof c);
  struct up_sse p;
  up_sse_init(&p, 0);
  for (size_t i = 0; i < n; i++) up_sse_feed(&p, s + i, 1, collect, &c);
  up_sse_free(&p);
  c.buf[c.len] = '\0';
  CHECK_STR(c.buf, expect);
}

int main(void) {
  int rc;
  /* the basics: one event, LF line ends */
  CHECK_STR(parse_whole("data: {\"a\":1}\n\n", 15, 0, &rc), "|{\"a\":1}|\n");
  CHECK_EQ_INT(rc, 0);

  /* OpenAI-style stream with [DONE] */
  const char *openai = "data: {\"x\":1}\n\ndata: {\"x\":2}\n\ndata: [DONE]\n\n";
  CHECK_STR(parse_whole(openai, strlen(openai), 0, &rc), "|{\"x\":1}|\n|{\"x\":2}|\n|[DONE]|\n");

  /* Anthropic-style: event lines */
  const char *anth = "event: message_start\ndata: {\"type\":\"message_start\"}\n\n"
                     "event: ping\ndata: {}\n\n";
  CHECK_STR(parse_whole(anth, strlen(anth), 0, &rc),
            "message_start|{\"type\":\"message_start\"}|\nping|{}|\n");

  /* CRLF, CR only, and mixed; comments; multi-line data; no space after colon; two spaces keep one */
  const char *mixed = ": comment\r\n"
                      "data:first\r\n"
                      "data:  second\r"
                      "data\n"
                      "\r\n"
                      "id: 42\n"
                      "event: e2\n"
                      "retry: 100\n"
                      "unknown: field\n"
                      "data: x\n"
                      "\r";
  CHECK_STR(parse_whole(mixed, strlen(mixed), 0, &rc), "|first\n second\n|\ne2|x|42\n");
  check_all_splits(mixed, "|first\n second\n|\ne2|x|42\n");
  check_all_splits(anth, "message_start|{\"type\":\"message_start\"}|\nping|{}|\n");

  /* an event without data is not dispatched; its event type does not leak into the next */
  const char *nodata = "event: a\n\ndata: y\n\n";
  CHECK_STR(parse_whole(nodata, strlen(nodata), 0, &rc), "|y|\n");

  /* a leading BOM is dropped, only at the very start */
  const char *bom = "\xEF\xBB\xBF" "data: b\n\n";
  CHECK_STR(parse_whole(bom, strlen(bom), 0, &rc), "|b|\n");
  check_all_splits(bom, "|b|\n");

  /* CR at the end of a chunk, LF at the start of the next: one line end, not two */
  {
    struct col c;
    memset(&c, 0, sizeof c);
    struct up_sse p;
    up_sse_init(&p, 0);
    up_sse_feed(&p, "data: a\r", 8, collect, &c);
    up_sse_feed(&p, "\ndata: b\r\n\r\n", 12, collect, &c);
    c.buf[c.len] = '\0';
    CHECK_STR(c.buf, "|a\nb|\n");
    CHECK(!up_sse_truncated(&p));
    up_sse_free(&p);
  }

  /* truncation: a half event at the end of the stream */
  {
    struct up_sse p;
    up_sse_init(&p, 0);
    up_sse_feed(&p, "data: a\n", 8, NULL, NULL);
    CHECK(up_sse_truncated(&p));
    up_sse_free(&p);
    up_sse_init(&p, 0);
    up_sse_feed(&p, "data: a\n\nda", 11, NULL, NULL);
    CHECK(up_sse_truncated(&p));
    up_sse_free(&p);
  }

  /* the cap: an event over max_event stops the parser with -E2BIG, stickily */
  {
    char big[600];
    memset(big, 'x', sizeof big);
    memcpy(big, "data: ", 6);
    big[598] = '\n';
    big[599] = '\n';
    CHECK_STR(parse_whole(big, sizeof big, 256, &rc), "");
    CHECK_EQ_INT(rc, -E2BIG);
    /* many data lines each under the cap but together over it */
    struct up_sse p;
    up_sse_init(&p, 64);
    int r1 = 0;
    for (int i = 0; i < 10 && r1 == 0; i++) r1 = up_sse_feed(&p, "data: 0123456789\n", 17, NULL, NULL);
    CHECK_EQ_INT(r1, -E2BIG);
    CHECK_EQ_INT(up_sse_feed(&p, "\n", 1, NULL, NULL), -E2BIG);
    up_sse_free(&p);
    /* partial line growing over the cap across chunks */
    up_sse_init(&p, 64);
    r1 = 0;
    for (int i = 0; i < 10 && r1 == 0; i++) r1 = up_sse_feed(&p, "0123456789", 10, NULL, NULL);
    CHECK_EQ_INT(r1, -E2BIG);
    up_sse_free(&p);
    /* exactly at the cap is fine: "data: " + 50 bytes + LF = 57 <= 64 */
    char ok[59];
    memcpy(ok, "data: ", 6);
    memset(ok + 6, 'y', 50);
    ok[56] = '\n';
    ok[57] = '\n';
    up_sse_init(&p, 64);
    struct col c;
    memset(&c, 0, sizeof c);
    CHECK_EQ_INT(up_sse_feed(&p, ok, 58, collect, &c), 0);
    CHECK_EQ_INT(c.n, 1);
    up_sse_free(&p);
  }

  /* the callback's non-zero return stops the feed and is returned */
  {
    struct col c;
    memset(&c, 0, sizeof c);
    c.stop_after = 1;
    struct up_sse p;
    up_sse_init(&p, 0);
    CHECK_EQ_INT(up_sse_feed(&p, openai, strlen(openai), collect, &c), 7);
    CHECK_EQ_INT(c.n, 1);
    up_sse_free(&p);
  }

  /* NUL bytes inside data are kept (data_len), ids with NUL are ignored */
  {
    static const char s[] = "id: a\0b\ndata: x\0y\n\n";
    struct col c;
    memset(&c, 0, sizeof c);
    struct up_sse p;
    up_sse_init(&p, 0);
    up_sse_feed(&p, s, sizeof s - 1, collect, &c);
    CHECK_EQ_INT(c.n, 1);
    CHECK_EQ_INT(c.len, 6); /* "|x\0y|\n" with an empty id */
    CHECK(memcmp(c.buf, "|x\0y||\n", 6) == 0 || memcmp(c.buf, "|x\0y|\n", 6) == 0);
    up_sse_free(&p);
  }
  return check_done();
}
