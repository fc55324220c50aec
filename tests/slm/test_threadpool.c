/*
 * test_threadpool.c: the engine's thread pool: every thread runs each job once, barriers order
 * the writes of one phase before the reads of the next (a missing or broken barrier shows up as a
 * wrong sum), repeated runs reuse the same threads, and sleeping workers wake up.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "slm/internal.h"
#include "tests/check.h"

#define PHASES 300
#define MAXT 8

struct job {
  struct slm_pool *pool;
  long slots[MAXT];         /* each thread writes its own slot in a phase... */
  long seen[MAXT];          /* ...and sums everyone's slots after the barrier */
  atomic_int bad;           /* phases where a thread saw a wrong sum */
  atomic_int calls;
};

static void job_fn(void *arg, int ith, int nth) {
  struct job *j = arg;
  atomic_fetch_add(&j->calls, 1);
  for (int ph = 1; ph <= PHASES; ph++) {
    j->slots[ith] = (long)ph * (ith + 1);
    slm_pool_barrier(j->pool);
    long sum = 0;
    for (int t = 0; t < nth; t++) sum += j->slots[t];
    long want = (long)ph * nth * (nth + 1) / 2;
    if (sum != want) atomic_fetch_add(&j->bad, 1);
    slm_pool_barrier(j->pool);   /* nobody overwrites slots before all have read them */
  }
  j->seen[ith] = 1;
}

static void run_with(int n) {
  struct job j;
  memset(&j, 0, sizeof j);
  j.pool = slm_pool_new(n);
  CHECK(j.pool != NULL);
  if (!j.pool) return;
  CHECK_EQ_INT(slm_pool_size(j.pool), n);
  for (int rep = 0; rep < 3; rep++) {
    memset(j.seen, 0, sizeof j.seen);
    slm_pool_run(j.pool, job_fn, &j);
    for (int t = 0; t < n; t++) CHECK_EQ_INT(j.seen[t], 1);
    if (rep == 1) {
      /* let the workers fall asleep on the futex, then wake them with the next run */
      struct timespec ts = {0, 20 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
  }
  CHECK_EQ_INT(atomic_load(&j.bad), 0);
  CHECK_EQ_INT(atomic_load(&j.calls), 3 * n);
  slm_pool_free(j.pool);
}

int main(void) {
  run_with(1);
  run_with(2);
  run_with(4);   /* more threads than cores: exercises the sleeping path of the barrier */
  slm_pool_free(NULL);
  return check_done();
}
