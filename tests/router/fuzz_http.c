/*
 * fuzz_http.c: libFuzzer target for what the gateway parses from clients and upstreams before
 * any library sees it: the HTTP request head, chunked bodies (differential: the same bytes in one
 * piece and split must decode alike), the top-level JSON scanner and the byte-exact body rewrite
 * (on input jansson accepted, the rewrite must again be valid JSON with the new model).
 *
 * The first input byte picks the target. Built as a fuzzer only with -Dfuzz=true (CC=clang); the
 * corpus in corpus/http/ is replayed by every normal test run.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "router/internal.h"

struct acc {
  uint64_t h;
  size_t n;
};

static int sink(void *ud, const char *p, size_t n) {
  struct acc *a = ud;
  for (size_t i = 0; i < n; i++) a->h = (a->h ^ (unsigned char)p[i]) * 1099511628211ULL;
  a->n += n;
  return a->n > (1u << 20) ? -1 : 0;
}

static void head(const uint8_t *d, size_t n) {
  char *buf = malloc(n + 1);
  memcpy(buf, d, n);
  buf[n] = '\0';
  struct rt_http_head h;
  const char *why = NULL;
  if (rt_http_parse_head(buf, n, &h, &why) == 0) {
    /* every header points inside the buffer and is terminated */
    for (size_t i = 0; i < h.n_hdr; i++) {
      if (h.hdr[i].name < buf || h.hdr[i].name >= buf + n) abort();
      if (h.hdr[i].value < buf || h.hdr[i].value > buf + n) abort();
      (void)strlen(h.hdr[i].value);
    }
    if (h.path_len > strlen(h.target)) abort();
    (void)rt_http_header(&h, "content-length");
  } else if (!why) {
    abort();
  }
  free(buf);
}

static void chunked(const uint8_t *d, size_t n) {
  struct rt_chunked c1, c2;
  memset(&c1, 0, sizeof c1);
  memset(&c2, 0, sizeof c2);
  struct acc a1 = {1469598103934665603ULL, 0}, a2 = a1;
  size_t u1 = 0, u2a = 0, u2b = 0;
  int r1 = rt_chunked_feed(&c1, (const char *)d, n, &u1, sink, &a1);
  size_t cut = n ? (d[0] * 7u) % (n + 1) : 0;
  int r2 = rt_chunked_feed(&c2, (const char *)d, cut, &u2a, sink, &a2);
  if (r2 == 0 && u2a == cut) r2 = rt_chunked_feed(&c2, (const char *)d + cut, n - cut, &u2b, sink, &a2);
  if (u1 > n) abort();
  if (r1 == 1 && (r2 != 1 || a1.h != a2.h || a1.n != a2.n || u1 != u2a + u2b)) abort();
}

static void json(const uint8_t *d, size_t n) {
  struct rt_json_iter it;
  struct rt_json_span k, v;
  if (rt_json_iter_begin(&it, (const char *)d, n) == 0) {
    while (rt_json_iter_next(&it, &k, &v) == 1) {
      if (k.off + k.len > n || v.off + v.len > n) abort();
      (void)rt_json_key_is((const char *)d, k, "model");
    }
  }
  json_t *root = json_loadb((const char *)d, n, JSON_ALLOW_NUL, NULL);
  if (json_is_object(root)) {
    size_t ol;
    char *out = rt_openai_upstream_body((const char *)d, n, "up\"model", true, &ol);
    if (!out) abort();
    json_t *again = json_loadb(out, ol, JSON_ALLOW_NUL, NULL);
    if (!json_is_object(again)) abort();
    json_t *m = json_object_get(root, "model");
    if (json_is_string(m) && strcmp(json_string_value(json_object_get(again, "model")), "up\"model"))
      abort();
    if (!json_is_true(json_object_get(json_object_get(again, "stream_options"), "include_usage")))
      abort();
    json_decref(again);
    free(out);
  }
  json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  switch (data[0] % 3) {
  case 0: head(data + 1, size - 1); break;
  case 1: chunked(data + 1, size - 1); break;
  default: json(data + 1, size - 1); break;
  }
  return 0;
}
