/*
 * bench_kernels.c: throughput of the matrix kernels per type and ISA level (a benchmark, not a
 * test: built, never run by meson test).
 *
 *   build/tests/bench/bench_kernels [-t THREADS] [-l LEVEL] [-T TYPE] [-r REPS] [--cold|--hot]
 *                                   [--gemm-only|--gemv-only] [--cpu] [--tiles]
 *
 * matvec (decode): vec_dot row after row, as the engine decodes (--tiles: gemm tiles with nc=1),
 * one activation row times a 0.5B-model FFN matrix, 4864 rows of 896 (for the
 * K types, whose rows must be multiples of 256: 896 rows of 4864, ffn_down). Reported as GB/s of
 * weight bytes read. "hot": the same matrix again and again (it sits in L2/L3, as llama.cpp's
 * small layers do); "cold" (--cold or default both): cycles through enough copies to exceed the
 * L3, so the weights come from DRAM as in real decode; compare with the machine's read bandwidth.
 * gemm (prefill): 128 activation rows times the same matrix, in GOP/s (2 ops per multiply-add;
 * int8 for the quantized types).
 * Threads split the weight rows like the engine does; they spin on a shared counter between
 * repetitions (no thread creation inside the timing). Each figure is the median of REPS runs.
 * --cpu times with the thread's CPU clock instead of the wall clock (forces 1 thread): on a
 * shared, oversubscribed machine it removes time-slicing from compute-bound figures (not the
 * memory contention from the neighbours, so cold figures stay wall-clock-like).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "slm/kernels/kernels.h"

static int use_cpu_clock;   /* --cpu: count only this thread's CPU time (1 thread, busy machines) */

static double now(void) {
  struct timespec ts;
  clock_gettime(use_cpu_clock ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 88172645463325252ull;
static float rnd_f(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (float)(rng >> 40) / 8388608.0f - 1.0f;
}

/* ---------------------------------------------------------------- a tiny spinning pool */

struct job {
  const struct slm_kernels *k;
  enum slm_type t;
  int64_t n, rows;
  int nc;
  const uint8_t *w;   /* current matrix */
  size_t ws;
  const void *a;
  size_t as;
  float *y;
  int x8;             /* w is repacked: gemm_x8, ws = bytes per group of 8 rows */
};

static struct job job;
static int n_threads = 1;
static atomic_int go_gen, done_count;
static atomic_bool quit;

static int use_vec_dot = 1;   /* matvec as the engine decodes: vec_dot row after row (--tiles: gemm nc=1) */

static void run_share(int tid) {
  const int64_t per = (job.rows / n_threads + 7) / 8 * 8;   /* tiles and x8 groups stay whole */
  int64_t r0 = per * tid, r1 = r0 + per;
  if (r1 > job.rows) r1 = job.rows;
  if (r0 >= r1) return;
  if (job.x8) {
    job.k->gemm_x8[job.t](job.n, (int)(r1 - r0), job.nc, job.y + r0, job.rows, job.w + r0 / 8 * job.ws, job.ws,
                          job.a, job.as);
    return;
  }
  if (job.nc == 1 && use_vec_dot) {
    const slm_vec_dot_fn vd = job.k->vec_dot[job.t];
    for (int64_t r = r0; r < r1; r++) vd(job.n, job.y + r, job.w + r * job.ws, job.a);
    return;
  }
  job.k->gemm[job.t](job.n, (int)(r1 - r0), job.nc, job.y + r0, job.rows, job.w + r0 * job.ws, job.ws, job.a, job.as);
}

static void *worker(void *arg) {
  const int tid = (int)(intptr_t)arg;
  int seen = 0;
  for (;;) {
    int g;
    while ((g = atomic_load_explicit(&go_gen, memory_order_acquire)) == seen) {
      if (atomic_load_explicit(&quit, memory_order_relaxed)) return NULL;
      __builtin_ia32_pause();
    }
    seen = g;
    run_share(tid);
    atomic_fetch_add_explicit(&done_count, 1, memory_order_acq_rel);
  }
}

static void run_all(void) {
  atomic_store_explicit(&done_count, 0, memory_order_relaxed);
  atomic_fetch_add_explicit(&go_gen, 1, memory_order_acq_rel);
  run_share(0);
  while (atomic_load_explicit(&done_count, memory_order_acquire) < n_threads - 1) __builtin_ia32_pause();
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* ---------------------------------------------------------------- one measurement */

static double median_time(int reps, int copies, uint8_t *mats, size_t mat_bytes) {
  double t[64];
  if (reps > 64) reps = 64;
  int c = 0;
  for (int r = 0; r < reps; r++) {
    /* one timed run covers every copy once (cold) or the same matrix `copies` times (hot) */
    double t0 = now();
    for (int i = 0; i < copies; i++) {
      job.w = mats + (size_t)c * mat_bytes;
      if (++c == copies) c = 0;
      run_all();
    }
    t[r] = (now() - t0) / copies;
  }
  qsort(t, (size_t)reps, sizeof t[0], cmp_d);
  return t[reps / 2];
}

static void quantize_acts(const struct slm_kernels *k, enum slm_type at, const float *x, void *dst, int64_t n, int rows) {
  const size_t rs = slm_row_size(at, n);
  for (int j = 0; j < rows; j++) {
    const float *xr = x + (size_t)j * n;
    char *d = (char *)dst + (size_t)j * rs;
    switch (at) {
    case SLM_TYPE_Q8_0: k->quantize_q8_0(xr, d, n); break;
    case SLM_TYPE_Q8_1: k->quantize_q8_1(xr, d, n); break;
    case SLM_TYPE_Q8_K: k->quantize_q8_K(xr, d, n); break;
    case SLM_TYPE_F16: k->f32_to_f16(xr, (slm_f16 *)d, n); break;
    case SLM_TYPE_BF16: k->f32_to_bf16(xr, (slm_bf16 *)d, n); break;
    default: memcpy(d, xr, (size_t)n * 4); break;
    }
  }
}

int main(int argc, char **argv) {
  int reps = 15, only_level = -1, do_gemm = 1, do_gemv = 1, cold_only = 0, hot_only = 0;
  const char *only_type = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-t") && i + 1 < argc) n_threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-r") && i + 1 < argc) reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-l") && i + 1 < argc) only_level = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-T") && i + 1 < argc) only_type = argv[++i];
    else if (!strcmp(argv[i], "--gemm-only")) do_gemv = 0;
    else if (!strcmp(argv[i], "--gemv-only")) do_gemm = 0;
    else if (!strcmp(argv[i], "--cold")) cold_only = 1;
    else if (!strcmp(argv[i], "--hot")) hot_only = 1;
    else if (!strcmp(argv[i], "--cpu")) use_cpu_clock = 1;
    else if (!strcmp(argv[i], "--tiles")) use_vec_dot = 0;
    else {
      fprintf(stderr, "usage: %s [-t THREADS] [-l LEVEL] [-T TYPE] [-r REPS] [--cold|--hot] [--gemm-only|--gemv-only]\n", argv[0]);
      return 2;
    }
  }
  if (n_threads < 1 || n_threads > 64 || use_cpu_clock) n_threads = 1;
  const enum slm_cpu_level top = slm_cpu_detect();
  pthread_t th[64];
  for (int i = 1; i < n_threads; i++) pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i);

  static const enum slm_type types[] = {
    SLM_TYPE_Q8_0, SLM_TYPE_Q4_0, SLM_TYPE_Q4_1, SLM_TYPE_Q5_0, SLM_TYPE_Q5_1, SLM_TYPE_Q4_K,
    SLM_TYPE_Q5_K, SLM_TYPE_Q6_K, SLM_TYPE_F16, SLM_TYPE_BF16, SLM_TYPE_F32,
  };
  enum { NC_GEMM = 128 };
  printf("threads %d, detected level %s, median of %d, %s clock\n", n_threads, slm_cpu_level_name(top), reps,
         use_cpu_clock ? "thread CPU" : "wall");
  printf("%-5s %-7s %-10s %9s %9s %9s\n", "type", "level", "shape", "hot GB/s", "cold GB/s", "gemm GOP/s");
  printf("(x8: the same on weights repacked by slm_repack_x8, through gemm_x8)\n");
  for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
    const enum slm_type t = types[ti], at = slm_vec_dot_type(t);
    if (only_type && strcmp(only_type, slm_type_name(t)) != 0) continue;
    const int kq = slm_type_infos[t].blck == 256;
    const int64_t n = kq ? 4864 : 896, rows = kq ? 896 : 4864;
    const size_t ws = slm_row_size(t, n), mat = ws * (size_t)rows;
    /* cold: enough copies for 96 MiB, well past the 32 MiB L3 */
    const int copies = (int)((96u << 20) / mat + 1);
    uint8_t *mats = aligned_alloc(64, (mat * (size_t)copies + 63) / 64 * 64);
    float *x = malloc(sizeof(float) * (size_t)n * NC_GEMM);
    for (int64_t i = 0; i < n * NC_GEMM; i++) x[i] = rnd_f();
    float *row = malloc(sizeof(float) * (size_t)n);
    for (int64_t r = 0; r < rows; r++) {
      for (int64_t i = 0; i < n; i++) row[i] = rnd_f();
      slm_quantize_row(t, row, mats + (size_t)r * ws, n);
    }
    for (int c = 1; c < copies; c++) memcpy(mats + (size_t)c * mat, mats, mat);
    const size_t as = slm_row_size(at == SLM_TYPE_Q8_1 ? SLM_TYPE_Q8_0 : at, n) + (at == SLM_TYPE_Q8_1 ? (size_t)n / 16 : 0);
    void *acts = aligned_alloc(64, (as * NC_GEMM + 63) / 64 * 64);
    float *y = aligned_alloc(64, sizeof(float) * (size_t)rows * NC_GEMM);
    for (int l = SLM_CPU_REF; l <= (int)top; l++) {
      if (only_level >= 0 && l != only_level) continue;
      const struct slm_kernels *k = slm_kernels_at((enum slm_cpu_level)l);
      if (l > 0 && k->gemm[t] == slm_kernels_at((enum slm_cpu_level)(l - 1))->gemm[t]) continue;
      quantize_acts(k, at, x, acts, n, NC_GEMM);
      job = (struct job){k, t, n, rows, 1, mats, ws, acts, as, y, 0};
      double hot = 0, cold = 0, gops = 0;
      const int slow = l == SLM_CPU_REF;
      if (do_gemv) {
        if (!cold_only) hot = (double)mat / median_time(slow ? 3 : reps, 1, mats, mat) / 1e9;
        if (!hot_only) cold = (double)mat / median_time(slow ? 1 : (reps + 2) / 3, copies, mats, mat) / 1e9;
      }
      if (do_gemm) {
        job.nc = NC_GEMM;
        job.w = mats;
        const double tg = median_time(slow ? 1 : (reps + 4) / 5, 1, mats, mat);
        gops = 2.0 * (double)n * (double)rows * NC_GEMM / tg / 1e9;
      }
      char shape[32];
      snprintf(shape, sizeof shape, "%lldx%lld", (long long)rows, (long long)n);
      printf("%-5s %-7s %-10s %9.1f %9.1f %9.1f\n", slm_type_name(t), slm_cpu_level_name((enum slm_cpu_level)l),
             shape, hot, cold, gops);
      fflush(stdout);
      if (k->gemm_x8[t] && (l == 0 || k->gemm_x8[t] != slm_kernels_at((enum slm_cpu_level)(l - 1))->gemm_x8[t])) {
        /* repack every copy in place of a scratch copy: x8 groups are the same size per 8 rows
         * except Q4_K (+2.8%), so use a separate buffer */
        const size_t gs = slm_repack_x8_size(t, n), xmat = gs * (size_t)(rows / 8);
        const int xcopies = (int)((96u << 20) / xmat + 1);
        uint8_t *xm = aligned_alloc(64, (xmat * (size_t)xcopies + 63) / 64 * 64);
        slm_repack_x8(t, n, rows, mats, ws, xm);
        for (int c = 1; c < xcopies; c++) memcpy(xm + (size_t)c * xmat, xm, xmat);
        job = (struct job){k, t, n, rows, 1, xm, gs, acts, as, y, 1};
        double xhot = 0, xcold = 0, xg = 0;
        if (do_gemv) {
          if (!cold_only) xhot = (double)xmat / median_time(reps, 1, xm, xmat) / 1e9;
          if (!hot_only) xcold = (double)xmat / median_time((reps + 2) / 3, xcopies, xm, xmat) / 1e9;
        }
        if (do_gemm) {
          job.nc = NC_GEMM;
          job.w = xm;
          xg = 2.0 * (double)n * (double)rows * NC_GEMM / median_time((reps + 4) / 5, 1, xm, xmat) / 1e9;
        }
        printf("%-5s %-7s %-10s %9.1f %9.1f %9.1f\n", slm_type_name(t), "x8", shape, xhot, xcold, xg);
        fflush(stdout);
        free(xm);
      }
    }
    free(mats);
    free(x);
    free(row);
    free(acts);
    free(y);
  }
  atomic_store(&quit, 1);
  for (int i = 1; i < n_threads; i++) pthread_join(th[i], NULL);
  return 0;
}
