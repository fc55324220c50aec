/*
 * bench_bandwidth.c: read bandwidth of this machine, the ceiling of decode speed (not a test: it
 * prints numbers). Decode reads every weight once per token, so
 *     ceiling tokens/s = read bandwidth / bytes of weights read per token.
 *
 *   build/tests/bench/bench_bandwidth [MIB] [THREADS,...] [REPS]     (default 1024 1,2 5)
 *
 * Each thread sums its contiguous share of one MIB-sized array of 32-bit ints (AVX2 if the
 * compiler targets it, else whatever -O2 vectorizes), all threads started together; the figure is
 * bytes / wall time of the slowest thread, best of REPS rounds (other load on a shared machine only
 * ever lowers it), in GB/s (1e9 bytes). Same method as the figures in
 * ../shared/data/bench/llamacpp.md (1 GiB arrays, read-only sum).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct share {
  const uint32_t *p;
  size_t n;
  pthread_barrier_t *start;
  uint64_t sum;
  double t;
};

static void *reader(void *arg) {
  struct share *s = arg;
  pthread_barrier_wait(s->start);
  double t0 = now_s();
  /* 8 independent accumulators: the loop is bound by loads, not by an add chain */
  uint64_t a[8] = {0};
  size_t i = 0;
  for (; i + 8 <= s->n; i += 8)
    for (int k = 0; k < 8; k++) a[k] += s->p[i + k];
  for (; i < s->n; i++) a[0] += s->p[i];
  s->t = now_s() - t0;
  s->sum = a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
  return NULL;
}

/* Best-of-REPS GB/s for N threads over the array. */
static double measure(const uint32_t *p, size_t n, int threads, int reps) {
  double best = 0;
  for (int r = 0; r < reps; r++) {
    pthread_t th[64];
    struct share sh[64];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)threads);
    for (int t = 0; t < threads; t++) {
      size_t a = n * (size_t)t / (size_t)threads, b = n * (size_t)(t + 1) / (size_t)threads;
      sh[t] = (struct share){p + a, b - a, &bar, 0, 0};
      pthread_create(&th[t], NULL, reader, &sh[t]);
    }
    double slowest = 0;
    uint64_t sum = 0;
    for (int t = 0; t < threads; t++) {
      pthread_join(th[t], NULL);
      if (sh[t].t > slowest) slowest = sh[t].t;
      sum += sh[t].sum;
    }
    pthread_barrier_destroy(&bar);
    if (sum == 42) fputs("", stderr);   /* keep the sum alive */
    double gbs = (double)n * 4 / slowest / 1e9;
    if (gbs > best) best = gbs;
  }
  return best;
}

int main(int argc, char **argv) {
  size_t mib = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 1024;
  const char *tl = argc > 2 ? argv[2] : "1,2";
  int reps = argc > 3 ? atoi(argv[3]) : 5;
  if (mib < 16 || mib > 65536 || reps < 1 || reps > 100) {
    fputs("usage: bench_bandwidth [MIB 16..65536] [THREADS,...] [REPS]\n", stderr);
    return 2;
  }
  size_t n = mib * 1024 * 1024 / 4;
  uint32_t *p = malloc(n * 4);
  if (!p) {
    fputs("bench_bandwidth: out of memory\n", stderr);
    return 1;
  }
  for (size_t i = 0; i < n; i++) p[i] = (uint32_t)i;   /* touch every page first */
  printf("{\"mib\":%zu,\"results\":[", mib);
  int first = 1;
  for (const char *s = tl; *s;) {
    char *end;
    long t = strtol(s, &end, 10);
    if (end == s || t < 1 || t > 64) {
      fputs("\nbench_bandwidth: bad thread list\n", stderr);
      free(p);
      return 2;
    }
    printf("%s{\"threads\":%ld,\"read_gbs\":%.2f}", first ? "" : ",", t, measure(p, n, (int)t, reps));
    fflush(stdout);
    first = 0;
    s = *end == ',' ? end + 1 : end;
  }
  printf("]}\n");
  free(p);
  return 0;
}
