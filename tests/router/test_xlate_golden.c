/*
 * test_xlate_golden.c: golden tests of the stream translators. Each case replays a recorded
 * upstream event stream (tests/router/golden/<dir>/<name>.sse, the bytes as the upstream sent
 * them) through the gateway's own pipeline, upstream/sse.c's parser then router/xlate_stream.c,
 * and compares the client's bytes with <name>.expected exactly.
 *
 * Chunk-boundary independence: the input is fed whole, one byte at a time, split in two at every
 * offset, and cut into 200 random partitions; every way must give the same bytes.
 *
 *   test_xlate_golden            check
 *   test_xlate_golden --update   rewrite the .expected files from the current translator (then
 *                                read the diff: it is the review)
 */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "router/internal.h"
#include "router/xlate/xlate.h"

struct gcase {
  enum rt_xs_dir dir;
  const char *name;
  bool include_usage;
};

static const struct gcase cases[] = {
    {RT_XS_A2O, "text", true},     {RT_XS_A2O, "tool_use", false},
    {RT_XS_A2O, "usage", true},    {RT_XS_A2O, "error", true},
    {RT_XS_O2A, "text", false},    {RT_XS_O2A, "tool_use", false},
    {RT_XS_O2A, "usage", false},   {RT_XS_O2A, "error", false},
};

struct run {
  struct rt_xstream *xs;
  struct evbuffer *out;
  int rc;
};

/* What the gateway does with each parsed event (router/xlate_call.c, router/anthropic.c). */
static int on_event(void *ud, const struct up_sse_event *ev) {
  struct run *r = ud;
  int rc = rt_xs_event(r->xs, ev->event, ev->data, ev->data_len, r->out);
  if (rc == RT_XS_BAD) {
    rt_xs_fail(r->xs, "api_error", "malformed upstream event", r->out);
    rc = RT_XS_FAILED;
  }
  r->rc = rc;
  return rc == RT_XS_MORE ? 0 : 1;
}

/* Runs IN split at the offsets CUTS[0..ncuts) (ascending); returns the output (malloc'd). */
static char *replay(const struct gcase *c, const char *in, size_t n, const size_t *cuts,
                    size_t ncuts, size_t *out_len) {
  struct rt_xs_opts o = {"public-model", 1741570283, c->include_usage, "msg_tiergate"};
  struct run r = {rt_xs_new(c->dir, &o), evbuffer_new(), RT_XS_MORE};
  struct up_sse p;
  up_sse_init(&p, 0);
  size_t from = 0;
  for (size_t k = 0; k <= ncuts; k++) {
    size_t to = k < ncuts ? cuts[k] : n;
    if (to > from && up_sse_feed(&p, in + from, to - from, on_event, &r) != 0) break;
    from = to;
  }
  if (r.rc == RT_XS_MORE) rt_xs_eof(r.xs, r.out);
  up_sse_free(&p);
  rt_xs_free(r.xs);
  *out_len = evbuffer_get_length(r.out);
  char *s = malloc(*out_len + 1);
  evbuffer_remove(r.out, s, *out_len);
  s[*out_len] = 0;
  evbuffer_free(r.out);
  return s;
}

/* First differing offset, for the failure message. */
static size_t first_diff(const char *a, size_t na, const char *b, size_t nb) {
  size_t i = 0;
  while (i < na && i < nb && a[i] == b[i]) i++;
  return i;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

int main(int argc, char **argv) {
  bool update = argc > 1 && !strcmp(argv[1], "--update");
  const char *src = getenv("TIERGATE_SOURCE_DIR");
  if (!src) src = ".";
  for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
    const struct gcase *c = &cases[ci];
    const char *dir = c->dir == RT_XS_A2O ? "a2o" : "o2a";
    char in_path[1024], exp_path[1024];
    snprintf(in_path, sizeof in_path, "%s/tests/router/golden/%s/%s.sse", src, dir, c->name);
    snprintf(exp_path, sizeof exp_path, "%s/tests/router/golden/%s/%s.expected", src, dir, c->name);
    size_t n, en = 0, on;
    char *in = check_read_file(in_path, &n);
    CHECK_MSG(in != NULL, "cannot read %s", in_path);
    if (!in) continue;
    char *whole = replay(c, in, n, NULL, 0, &on);
    if (update) {
      FILE *f = fopen(exp_path, "wb");
      CHECK_MSG(f != NULL, "cannot write %s", exp_path);
      if (f) {
        fwrite(whole, 1, on, f);
        fclose(f);
        printf("wrote %s (%zu bytes)\n", exp_path, on);
      }
      free(whole);
      free(in);
      continue;
    }
    char *exp = check_read_file(exp_path, &en);
    CHECK_MSG(exp != NULL, "cannot read %s", exp_path);
    if (!exp) {
      free(in);
      free(whole);
      continue;
    }
    size_t d = first_diff(whole, on, exp, en);
    CHECK_MSG(on == en && d == en, "%s/%s: output differs from %s at byte %zu:\n got: %.120s\nwant: %.120s",
              dir, c->name, exp_path, d, whole + (d < on ? d : on), exp + (d < en ? d : en));
    free(whole);

    /* every split in two, byte by byte, random partitions: always the same bytes */
    int bad_splits = 0;
    size_t first_bad = 0;
    for (size_t cut = 1; cut < n; cut++) {
      char *o = replay(c, in, n, &cut, 1, &on);
      if (on != en || memcmp(o, exp, en)) {
        if (!bad_splits++) first_bad = cut;
      }
      free(o);
    }
    CHECK_MSG(bad_splits == 0, "%s/%s: %d of %zu two-way splits differ (first at %zu)", dir, c->name,
              bad_splits, n - 1, first_bad);
    size_t *cuts = malloc(n * sizeof *cuts);
    for (size_t k = 0; k + 1 < n; k++) cuts[k] = k + 1;
    char *o = replay(c, in, n, cuts, n - 1, &on);
    CHECK_MSG(on == en && !memcmp(o, exp, en), "%s/%s: byte-by-byte feeding differs", dir, c->name);
    free(o);
    int bad_random = 0;
    for (int t = 0; t < 200; t++) {
      size_t nc = 0, at = 0;
      for (;;) {
        at += 1 + next_rand() % 64;
        if (at >= n) break;
        cuts[nc++] = at;
      }
      o = replay(c, in, n, cuts, nc, &on);
      if (on != en || memcmp(o, exp, en)) bad_random++;
      free(o);
    }
    CHECK_MSG(bad_random == 0, "%s/%s: %d of 200 random partitions differ", dir, c->name, bad_random);
    printf("%s/%s: %zu input bytes -> %zu output bytes, identical at %zu splits + byte by byte + 200 "
           "random partitions\n", dir, c->name, n, en, n - 1);
    free(cuts);
    free(exp);
    free(in);
  }
  return check_done();
}
