/* test_breaker.c: upstream/breaker.c, the circuit breaker state machine, on a simulated clock:
 * opening by consecutive failures and by error rate (with the minimum volume and the sliding
 * window), the cooldown, the single half-open probe, closing and re-opening, cancelled probes,
 * late outcomes, and a disabled breaker. */
#include "tests/check.h"
#include "upstream/upstream.h"

static struct up_breaker_config cfg(int failures, int rate, int min, int window, int cooldown) {
  return (struct up_breaker_config){failures, rate, min, window, cooldown};
}

/* one call at NOW with the given outcome; returns the ticket it got */
static int call(struct up_breaker *b, int64_t now, bool ok) {
  int t = up_breaker_acquire(b, now);
  if (t != UP_BREAKER_DENY) up_breaker_record(b, now, t, ok);
  return t;
}

static void test_consecutive(void) {
  struct up_breaker b;
  struct up_breaker_config c = cfg(3, 0, 1, 10000, 1000);
  up_breaker_init(&b, &c);
  CHECK(up_breaker_enabled(&b));
  CHECK_EQ_INT(b.state, UP_BREAKER_CLOSED);
  CHECK_EQ_INT(call(&b, 0, false), UP_BREAKER_PASS);
  CHECK_EQ_INT(call(&b, 1, false), UP_BREAKER_PASS);
  CHECK_EQ_INT(call(&b, 2, true), UP_BREAKER_PASS);   /* a success resets the run */
  CHECK_EQ_INT(call(&b, 3, false), UP_BREAKER_PASS);
  CHECK_EQ_INT(call(&b, 4, false), UP_BREAKER_PASS);
  CHECK_EQ_INT(b.state, UP_BREAKER_CLOSED);
  CHECK_EQ_INT(call(&b, 5, false), UP_BREAKER_PASS);
  CHECK_EQ_INT(b.state, UP_BREAKER_OPEN);
  CHECK_EQ_U64(b.transitions[UP_BREAKER_OPEN], 1);
  /* open: refused until the cooldown is over, without changing state */
  CHECK(!up_breaker_ready(&b, 6));
  CHECK_EQ_INT(up_breaker_acquire(&b, 6), UP_BREAKER_DENY);
  CHECK_EQ_INT(up_breaker_acquire(&b, 1004), UP_BREAKER_DENY);
  CHECK_EQ_INT(up_breaker_wait_ms(&b, 500), 505);
  CHECK_EQ_INT(up_breaker_wait_ms(&b, 1005), 0);
  CHECK(up_breaker_ready(&b, 1005));
  CHECK_EQ_INT(b.state, UP_BREAKER_OPEN);   /* ready() is a question, not a transition */
  /* the first caller after the cooldown is the probe; everyone else waits for its verdict */
  int probe = up_breaker_acquire(&b, 1005);
  CHECK_EQ_INT(probe, UP_BREAKER_PROBE);
  CHECK_EQ_INT(b.state, UP_BREAKER_HALF_OPEN);
  CHECK(!up_breaker_ready(&b, 1006));
  CHECK_EQ_INT(up_breaker_acquire(&b, 1006), UP_BREAKER_DENY);
  CHECK_EQ_INT(up_breaker_acquire(&b, 5000), UP_BREAKER_DENY);
  /* the probe fails: open again for a whole cooldown */
  up_breaker_record(&b, 1200, probe, false);
  CHECK_EQ_INT(b.state, UP_BREAKER_OPEN);
  CHECK_EQ_U64(b.transitions[UP_BREAKER_OPEN], 2);
  CHECK_EQ_INT(up_breaker_acquire(&b, 2100), UP_BREAKER_DENY);
  CHECK_EQ_INT(up_breaker_wait_ms(&b, 2100), 100);
  /* a cancelled probe frees the slot: the next caller probes */
  probe = up_breaker_acquire(&b, 2200);
  CHECK_EQ_INT(probe, UP_BREAKER_PROBE);
  up_breaker_release(&b, probe);
  CHECK_EQ_INT(b.state, UP_BREAKER_HALF_OPEN);
  CHECK(up_breaker_ready(&b, 2201));
  probe = up_breaker_acquire(&b, 2201);
  CHECK_EQ_INT(probe, UP_BREAKER_PROBE);
  /* a late result of a call let through before the breaker opened changes nothing */
  up_breaker_record(&b, 2202, UP_BREAKER_PASS, true);
  CHECK_EQ_INT(b.state, UP_BREAKER_HALF_OPEN);
  /* the probe succeeds: closed, with a clean slate */
  up_breaker_record(&b, 2300, probe, true);
  CHECK_EQ_INT(b.state, UP_BREAKER_CLOSED);
  CHECK_EQ_U64(b.transitions[UP_BREAKER_CLOSED], 1);
  CHECK_EQ_U64(b.transitions[UP_BREAKER_HALF_OPEN], 2);
  CHECK_EQ_INT(b.consecutive, 0);
  CHECK_EQ_INT(call(&b, 2301, false), UP_BREAKER_PASS);
  CHECK_EQ_INT(call(&b, 2302, false), UP_BREAKER_PASS);
  CHECK_EQ_INT(b.state, UP_BREAKER_CLOSED);
  CHECK_EQ_INT(call(&b, 2303, false), UP_BREAKER_PASS);
  CHECK_EQ_INT(b.state, UP_BREAKER_OPEN);
  /* a stale probe ticket recorded twice is ignored */
  up_breaker_record(&b, 2304, UP_BREAKER_PROBE, true);
  CHECK_EQ_INT(b.state, UP_BREAKER_OPEN);
  CHECK_STR(up_breaker_state_name(b.state), "open");
  CHECK_STR(up_breaker_state_name(UP_BREAKER_HALF_OPEN), "half_open");
}

static void test_error_rate(void) {
  struct up_breaker b;
  /* 50% over 1 s, at least 10 outcomes; count-based opening off */
  struct up_breaker_config c = cfg(0, 50, 10, 1000, 500);
  up_breaker_init(&b, &c);
  /* alternate fail/ok: 5 failures of 9 is over the rate but below the volume: stays closed */
  for (int i = 0; i < 9; i++) call(&b, i * 10, i % 2 == 1);
  CHECK_EQ_INT(b.state, UP_BREAKER_CLOSED);
  /* the 10th outcome: 6 of 10 -> open */
  call(&b, 95, false);
  CHECK_EQ_INT(b.state, UP_BREAKER_OPEN);

  /* below the rate: 3 failures in 10 stays closed however long it runs */
  up_breaker_init(&b, &c);
  for (int i = 0; i < 100; i++) call(&b, i * 10, i % 10 >= 3);
  CHECK_EQ_INT(b.state, UP_BREAKER_CLOSED);

  /* the window slides: 6 failures long ago, then only successes, then 4 failures -> the old
   * failures have left the window, 4 of 14 < 50% */
  up_breaker_init(&b, &c);
  for (int i = 0; i < 6; i++) call(&b, i, false);
  for (int i = 0; i < 10; i++) call(&b, 2000 + i, true);
  for (int i = 0; i < 4; i++) call(&b, 2100 + i, false);
  CHECK_EQ_INT(b.state, UP_BREAKER_CLOSED);
  /* within one window: 6 failures and 4 successes -> open at the 10th outcome */
  up_breaker_init(&b, &c);
  for (int i = 0; i < 4; i++) call(&b, 5000 + i, true);
  for (int i = 0; i < 5; i++) call(&b, 5100 + i, false);
  CHECK_EQ_INT(b.state, UP_BREAKER_CLOSED);
  call(&b, 5900, false);
  CHECK_EQ_INT(b.state, UP_BREAKER_OPEN);
}

static void test_disabled(void) {
  struct up_breaker b;
  struct up_breaker_config c = cfg(0, 0, 1, 1000, 1000);
  up_breaker_init(&b, &c);
  CHECK(!up_breaker_enabled(&b));
  for (int i = 0; i < 1000; i++) CHECK_EQ_INT(call(&b, i, false), UP_BREAKER_PASS);
  CHECK_EQ_INT(b.state, UP_BREAKER_CLOSED);
  /* a tiny window (below the bucket count) still works */
  c = cfg(0, 100, 2, 3, 10);
  up_breaker_init(&b, &c);
  call(&b, 0, false);
  call(&b, 1, false);
  CHECK_EQ_INT(b.state, UP_BREAKER_OPEN);
}

int main(void) {
  test_consecutive();
  test_error_rate();
  test_disabled();
  return check_done();
}
