/*
 * threadpool.c: the engine's persistent thread pool and its barrier.
 *
 * DESIGN. A context owns one pool of N threads: the caller of slm_pool_run() is thread 0 and N-1
 * workers are created once, at context creation. slm_pool_run() hands every thread the same
 * function and waits until all have returned; inside it, the threads meet at slm_pool_barrier()
 * between the phases of a forward pass (a handful per layer).
 *
 * Both waits (a worker waiting for work, a thread waiting at a barrier) spin first on an atomic
 * word, then yield, then sleep on it with a futex. Decode of a small model does ~150 barriers per
 * token, a few microseconds apart, so the spin phase is what normally ends the wait: no syscall,
 * no context switch. The yield and futex phases exist because machines are shared: when a thread
 * has been descheduled, spinning siblings would only steal its core.
 * Wakers call FUTEX_WAKE only when someone announced it sleeps (the `sleepers` count), so the fast
 * path is a few atomic operations.
 *
 * Memory ordering: the last thread to arrive at a barrier publishes a new phase with a release
 * store after an acq_rel increment of the arrival count; waiters acquire the phase. Everything a
 * thread wrote before the barrier is therefore visible to every thread after it.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif
#include <sched.h>

#include "slm/internal.h"

/* A waiter spins SPIN iterations (one pause each, ~20-60 ns on current x86), then yields the core
 * YIELDS times, then sleeps on the futex. The yield phase matters on a loaded machine: when the
 * thread everyone waits for has been preempted, a spinning waiter would burn the very core it
 * needs, while sched_yield() hands it over at once. Measured on the 2-vCPU dev VM under load
 * (tests/slm/test_threadpool.c prints these): pure spinning (20000 pauses) cost ~2.5 ms per
 * barrier with 4 threads on 2 cores; 256 pauses + yields cost ~15-25 us, and the same ~0.4-0.8 us
 * as pure spinning when every thread has a core. */
#ifndef SPIN_ITERS
#define SPIN_ITERS 1024
#endif
#ifndef BARRIER_SPIN_ITERS
#define BARRIER_SPIN_ITERS 256
#endif
#ifndef YIELDS
#define YIELDS 256
#endif

/* Keeps hot atomics on separate cache lines so spinning threads do not fight over one line. */
struct padded_u32 {
  _Alignas(64) atomic_uint v;
};

struct slm_pool {
  int n_threads;
  pthread_t *threads;

  /* work publication: `gen` increments once per slm_pool_run(); workers wait for it to change */
  struct padded_u32 gen;
  struct padded_u32 gen_sleepers;
  void (*fn)(void *arg, int ith, int nth);
  void *arg;
  bool stop;

  /* completion of a run: workers decrement `pending`; thread 0 waits for 0 */
  struct padded_u32 pending;
  struct padded_u32 pending_sleepers;

  /* barrier */
  struct padded_u32 bar_count;
  struct padded_u32 bar_phase;
  struct padded_u32 bar_sleepers;
};

/* ---- futex (or a yield loop where there is none) */

static void wait_word(atomic_uint *w, unsigned old) {
#if defined(__linux__)
  syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_PRIVATE, old, NULL, NULL, 0);
#else
  (void)w; (void)old;
  sched_yield();
#endif
}

static void wake_word(atomic_uint *w) {
#if defined(__linux__)
  syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
  (void)w;
#endif
}

/* Waits until *W != OLD: spin, then sleep (announcing it in *SLEEPERS). Returns the new value. */
static unsigned await_change(atomic_uint *w, atomic_uint *sleepers, unsigned old, int spins) {
  unsigned v;
  for (int i = 0; i < spins; i++) {
    v = atomic_load_explicit(w, memory_order_acquire);
    if (v != old) return v;
    CPU_RELAX();
  }
  for (int i = 0; i < YIELDS; i++) {
    v = atomic_load_explicit(w, memory_order_acquire);
    if (v != old) return v;
    sched_yield();
  }
  for (;;) {
    atomic_fetch_add_explicit(sleepers, 1, memory_order_seq_cst);
    v = atomic_load_explicit(w, memory_order_seq_cst);
    if (v == old) wait_word(w, old);
    atomic_fetch_sub_explicit(sleepers, 1, memory_order_seq_cst);
    v = atomic_load_explicit(w, memory_order_acquire);
    if (v != old) return v;
  }
}

/* Publishes a change of *W (already stored) to sleepers, if any. The seq_cst pair (store of W by
 * the caller, load of SLEEPERS here vs. increment of SLEEPERS and load of W in await_change)
 * guarantees that either the waiter sees the new value or we see the waiter. */
static void publish(atomic_uint *w, atomic_uint *sleepers) {
  if (atomic_load_explicit(sleepers, memory_order_seq_cst) > 0) wake_word(w);
}

struct worker_arg {
  struct slm_pool *p;
  int ith;
};

static void *worker_main(void *arg) {
  struct worker_arg *a = arg;
  struct slm_pool *p = a->p;
  int ith = a->ith;
  free(a);
  unsigned seen = 0;
  for (;;) {
    seen = await_change(&p->gen.v, &p->gen_sleepers.v, seen, SPIN_ITERS);
    if (p->stop) break;
    p->fn(p->arg, ith, p->n_threads);
    if (atomic_fetch_sub_explicit(&p->pending.v, 1, memory_order_acq_rel) == 1)
      publish(&p->pending.v, &p->pending_sleepers.v);
  }
  return NULL;
}

struct slm_pool *slm_pool_new(int n_threads) {
  if (n_threads < 1) n_threads = 1;
  if (n_threads > SLM_MAX_THREADS) n_threads = SLM_MAX_THREADS;
  struct slm_pool *p = aligned_alloc(64, (sizeof *p + 63) / 64 * 64);
  if (!p) return NULL;
  memset(p, 0, sizeof *p);
  p->n_threads = n_threads;
  if (n_threads > 1) {
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->threads) {
      free(p);
      return NULL;
    }
  }
  for (int i = 1; i < n_threads; i++) {
    struct worker_arg *a = malloc(sizeof *a);
    if (a) *a = (struct worker_arg){p, i};
    if (!a || pthread_create(&p->threads[i], NULL, worker_main, a) != 0) {
      free(a);
      p->n_threads = i;   /* stop the workers already started */
      slm_pool_free(p);
      return NULL;
    }
  }
  return p;
}

void slm_pool_free(struct slm_pool *p) {
  if (!p) return;
  if (p->n_threads > 1) {
    p->stop = true;
    atomic_fetch_add_explicit(&p->gen.v, 1, memory_order_seq_cst);
    wake_word(&p->gen.v);
    for (int i = 1; i < p->n_threads; i++) pthread_join(p->threads[i], NULL);
  }
  free(p->threads);
  free(p);
}

int slm_pool_size(const struct slm_pool *p) { return p->n_threads; }

void slm_pool_run(struct slm_pool *p, void (*fn)(void *arg, int ith, int nth), void *arg) {
  if (p->n_threads == 1) {
    fn(arg, 0, 1);
    return;
  }
  p->fn = fn;
  p->arg = arg;
  atomic_store_explicit(&p->pending.v, (unsigned)(p->n_threads - 1), memory_order_relaxed);
  atomic_fetch_add_explicit(&p->gen.v, 1, memory_order_seq_cst);
  publish(&p->gen.v, &p->gen_sleepers.v);
  fn(arg, 0, p->n_threads);
  unsigned left = atomic_load_explicit(&p->pending.v, memory_order_acquire);
  while (left != 0) left = await_change(&p->pending.v, &p->pending_sleepers.v, left, SPIN_ITERS);
}

void slm_pool_barrier(struct slm_pool *p) {
  int n = p->n_threads;
  if (n == 1) return;
  unsigned phase = atomic_load_explicit(&p->bar_phase.v, memory_order_acquire);
  if (atomic_fetch_add_explicit(&p->bar_count.v, 1, memory_order_acq_rel) == (unsigned)(n - 1)) {
    atomic_store_explicit(&p->bar_count.v, 0, memory_order_relaxed);
    atomic_store_explicit(&p->bar_phase.v, phase + 1, memory_order_seq_cst);
    publish(&p->bar_phase.v, &p->bar_sleepers.v);
    return;
  }
  await_change(&p->bar_phase.v, &p->bar_sleepers.v, phase, BARRIER_SPIN_ITERS);
}
