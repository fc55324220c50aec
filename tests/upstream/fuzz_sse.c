/*
 * fuzz_sse.c: libFuzzer target for the SSE parser. The oracle is differential: the same bytes fed
 * in one piece and split at a point derived from the input must produce the same events, and the
 * parser must never read or write out of bounds (ASan) whatever the cap.
 *
 * Built as a fuzzer only with -Dfuzz=true (CC=clang); the corpus in corpus/sse/ is replayed by the
 * normal test run through fuzz_replay.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/upstream.h"

struct acc {
  uint64_t h;
  size_t n;
};

static int hash_ev(void *ud, const struct up_sse_event *ev) {
  struct acc *a = ud;
  const unsigned char *parts[3] = {(const unsigned char *)ev->event, (const unsigned char *)ev->data,
                                   (const unsigned char *)ev->id};
  size_t lens[3] = {strlen(ev->event), ev->data_len, strlen(ev->id)};
  for (int k = 0; k < 3; k++) {
    for (size_t i = 0; i < lens[k]; i++) a->h = (a->h ^ parts[k][i]) * 1099511628211ULL;
    a->h = (a->h ^ 0xff) * 1099511628211ULL;
  }
  a->n++;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t cap = size ? 16 + data[0] * 8u : 64;
  struct acc whole = {1469598103934665603ULL, 0}, split = {1469598103934665603ULL, 0};
  struct up_sse p;
  up_sse_init(&p, cap);
  int r1 = up_sse_feed(&p, (const char *)data, size, hash_ev, &whole);
  bool t1 = up_sse_truncated(&p);
  up_sse_free(&p);

  size_t cut = size ? (data[size - 1] * 131u) % (size + 1) : 0;
  up_sse_init(&p, cap);
  int r2 = up_sse_feed(&p, (const char *)data, cut, hash_ev, &split);
  if (r2 == 0) r2 = up_sse_feed(&p, (const char *)data + cut, size - cut, hash_ev, &split);
  bool t2 = up_sse_truncated(&p);
  up_sse_free(&p);

  if (r1 == 0 && r2 == 0 && (whole.h != split.h || whole.n != split.n || t1 != t2)) abort();
  if ((r1 == 0) != (r2 == 0)) abort();
  return 0;
}
