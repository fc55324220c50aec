/*
 * breaker.c: a circuit breaker for one upstream deployment (contract in upstream.h).
 *
 * DESIGN. Three states:
 *
 *   CLOSED ──N failures in a row, or error rate ≥ R% over the window with ≥ M outcomes──▶ OPEN
 *   OPEN ──cooldown elapsed, at the next acquire──▶ HALF_OPEN (that caller is the one probe)
 *   HALF_OPEN ──probe succeeds──▶ CLOSED      HALF_OPEN ──probe fails──▶ OPEN (cooldown again)
 *
 * There is no timer: an open breaker turns half-open lazily, when someone asks, so an idle
 * deployment costs nothing and nobody ever waits on a breaker (callers skip a deployment whose
 * breaker is not ready and try another, or fail fast). While the probe is out every other caller
 * is refused; a probe that ends without a verdict (the client went away) frees the slot.
 *
 * Outcomes of requests that were let through while CLOSED but finish after the breaker opened
 * are ignored: they describe the deployment before the decision, and only the probe may close it.
 *
 * The error-rate window slides in UP_BREAKER_BUCKETS buckets of window/BUCKETS ms each: a bucket
 * is recycled when its time comes round again, so old outcomes fall out without a sweep.
 * Pure (the clock is an argument), no allocation, not thread-safe (one loop owns it).
 */
#include <string.h>

#include "upstream/upstream.h"

static int64_t bucket_width(const struct up_breaker *b) {
  int64_t w = b->cfg.window_ms / UP_BREAKER_BUCKETS;
  return w > 0 ? w : 1;
}

static void window_clear(struct up_breaker *b) {
  memset(b->bucket_n, 0, sizeof b->bucket_n);
  memset(b->bucket_fail, 0, sizeof b->bucket_fail);
  for (int i = 0; i < UP_BREAKER_BUCKETS; i++) b->bucket_epoch[i] = -1;
}

static void enter(struct up_breaker *b, enum up_breaker_state s, int64_t now_ms) {
  b->state = s;
  b->transitions[s]++;
  b->probe_out = false;
  if (s == UP_BREAKER_OPEN) b->opened_ms = now_ms;
  if (s != UP_BREAKER_HALF_OPEN) {
    /* a fresh start either way: closing forgets the failures that opened it, opening starts the
     * next closed period with an empty window */
    b->consecutive = 0;
    window_clear(b);
  }
}

void up_breaker_init(struct up_breaker *b, const struct up_breaker_config *cfg) {
  memset(b, 0, sizeof *b);
  b->cfg = *cfg;
  if (b->cfg.min_requests < 1) b->cfg.min_requests = 1;
  b->state = UP_BREAKER_CLOSED;
  window_clear(b);
}

bool up_breaker_enabled(const struct up_breaker *b) {
  return b->cfg.failures > 0 || b->cfg.error_rate_pct > 0;
}

bool up_breaker_ready(const struct up_breaker *b, int64_t now_ms) {
  switch (b->state) {
  case UP_BREAKER_CLOSED: return true;
  case UP_BREAKER_OPEN: return now_ms - b->opened_ms >= b->cfg.cooldown_ms;
  case UP_BREAKER_HALF_OPEN: return !b->probe_out;
  }
  return false;
}

int up_breaker_acquire(struct up_breaker *b, int64_t now_ms) {
  if (!up_breaker_ready(b, now_ms)) return UP_BREAKER_DENY;
  if (b->state == UP_BREAKER_CLOSED) return UP_BREAKER_PASS;
  if (b->state == UP_BREAKER_OPEN) enter(b, UP_BREAKER_HALF_OPEN, now_ms);
  b->probe_out = true;
  return UP_BREAKER_PROBE;
}

void up_breaker_record(struct up_breaker *b, int64_t now_ms, int ticket, bool ok) {
  if (ticket == UP_BREAKER_PROBE) {
    if (b->state != UP_BREAKER_HALF_OPEN || !b->probe_out) return;
    enter(b, ok ? UP_BREAKER_CLOSED : UP_BREAKER_OPEN, now_ms);
    return;
  }
  if (ticket != UP_BREAKER_PASS || b->state != UP_BREAKER_CLOSED) return;
  int64_t w = bucket_width(b);
  int64_t epoch = now_ms / w;
  int slot = (int)(epoch % UP_BREAKER_BUCKETS);
  if (slot < 0) slot += UP_BREAKER_BUCKETS;
  if (b->bucket_epoch[slot] != epoch) {
    b->bucket_epoch[slot] = epoch;
    b->bucket_n[slot] = b->bucket_fail[slot] = 0;
  }
  b->bucket_n[slot]++;
  if (ok) {
    b->consecutive = 0;
    return;
  }
  b->bucket_fail[slot]++;
  b->consecutive++;
  if (b->cfg.failures > 0 && b->consecutive >= b->cfg.failures) {
    enter(b, UP_BREAKER_OPEN, now_ms);
    return;
  }
  if (b->cfg.error_rate_pct > 0) {
    uint64_t n = 0, f = 0;
    for (int i = 0; i < UP_BREAKER_BUCKETS; i++) {
      if (b->bucket_epoch[i] < 0 || b->bucket_epoch[i] <= epoch - UP_BREAKER_BUCKETS) continue;
      n += b->bucket_n[i];
      f += b->bucket_fail[i];
    }
    if (n >= (uint64_t)b->cfg.min_requests && f * 100 >= n * (uint64_t)b->cfg.error_rate_pct)
      enter(b, UP_BREAKER_OPEN, now_ms);
  }
}

void up_breaker_release(struct up_breaker *b, int ticket) {
  if (ticket == UP_BREAKER_PROBE && b->state == UP_BREAKER_HALF_OPEN) b->probe_out = false;
}

int64_t up_breaker_wait_ms(const struct up_breaker *b, int64_t now_ms) {
  if (b->state != UP_BREAKER_OPEN) return 0;
  int64_t left = b->opened_ms + b->cfg.cooldown_ms - now_ms;
  return left > 0 ? left : 0;
}

const char *up_breaker_state_name(enum up_breaker_state s) {
  switch (s) {
  case UP_BREAKER_CLOSED: return "closed";
  case UP_BREAKER_OPEN: return "open";
  case UP_BREAKER_HALF_OPEN: return "half_open";
  }
  return "?";
}
