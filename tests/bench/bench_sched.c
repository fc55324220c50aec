/*
 * bench_sched.c: throughput and latency of the local-execution scheduler (router/local/sched.c)
 * on one model (a benchmark, not a test: built, never run by meson test).
 *
 *   build-rel/tests/bench/bench_sched -m FILE [-t THREADS] [-n GEN] [-s N,N,...] [-p TTFT_PROMPT]
 *                                     [-b BACKGROUND] [-r REPS] [--prompt N] [--chunk N] [--sweep]
 *                                     [--no-ttft | --ttft-only]
 *
 * Decode: N jobs (-s, default 1,4,8,16) of a --prompt-token random prompt (default 8) submitted
 * at once, each generating GEN tokens (default 64, greedy). Reported: aggregate decode tokens/s =
 * tokens after each job's first / (last job's end - first job's first token), from the
 * scheduler's own per-job timings, and the mean step time and batch size. Median of REPS runs
 * (default 3). Every run uses fresh random prompts, so no prefix is reused.
 * TTFT: a TTFT_PROMPT-token prompt (default 64) submitted alone, then while BACKGROUND jobs
 * (default 7) are decoding: submit -> first token sampled (scheduler timing) and submit -> the
 * bench thread sees the finish (wall, through notify); median of REPS.
 * --sweep: no scheduler, the engine alone: the time of one slm_decode of N decode tokens (N
 * sequences, one token each, at position ~64, logits for every row) for N = 1..16, minimum over
 * REPS x 8 steps, to tell the engine's cost per batch size from the scheduler's.
 * Random-weight models at real shapes: `tiergate slm mkmodel --shape smollm2-135m --type q8_0 -o F`.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "router/local/sched.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static unsigned notified;

static void on_notify(void *ud) {
  (void)ud;
  pthread_mutex_lock(&mu);
  notified++;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void wait_notify(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_nsec += 50 * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&mu);
  unsigned seen = notified;
  while (notified == seen)
    if (pthread_cond_timedwait(&cv, &mu, &ts)) break;
  pthread_mutex_unlock(&mu);
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static slm_token rnd_tok(int32_t nv) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (slm_token)(100 + rng % (uint64_t)(nv - 200));   /* clear of specials at either end */
}

struct job {
  struct rt_job *j;
  double t_sub;                  /* bench clock at submit */
  double t_done;                 /* bench clock when the finish was taken */
  struct rt_job_delta last;      /* the latest delta (usage, timings, finish) */
  bool done;
};

static bool pump(struct job *b) {
  if (b->done) return true;
  struct rt_job_delta d;
  if (rt_job_take(b->j, &d) == 0 && d.finish == RT_FINISH_NONE) {
    b->last = d;
    return false;
  }
  b->last = d;
  if (d.finish != RT_FINISH_NONE) {
    b->done = true;
    b->t_done = now_s();
  }
  return b->done;
}

static int submit(struct rt_sched *s, struct job *b, int32_t n_prompt, int32_t max_tokens,
                  int32_t nv) {
  slm_token p[4096];
  for (int32_t i = 0; i < n_prompt; i++) p[i] = rnd_tok(nv);
  struct rt_job_params jp = {0};
  jp.prompt = p;
  jp.n_prompt = n_prompt;
  jp.max_tokens = max_tokens;
  jp.sampling = slm_sampler_default_params();
  jp.sampling.temperature = 0;
  memset(b, 0, sizeof *b);
  b->t_sub = now_s();
  int rc = rt_sched_submit(s, &jp, &b->j);
  if (rc) fprintf(stderr, "submit: %d\n", rc);
  return rc;
}

static void wait_all(struct job *b, int n) {
  for (;;) {
    bool all = true;
    for (int i = 0; i < n; i++) all &= pump(&b[i]);
    if (all) return;
    wait_notify();
  }
}

/* --sweep: the engine's step time per number of decode tokens. */
static int sweep(const struct slm_model *m, int threads, int reps) {
  struct slm_context_params cp = slm_context_default_params();
  cp.n_ctx = 512;
  cp.n_seq = 16;
  cp.n_outputs = 16;
  cp.n_threads = threads;
  struct slm_context *c = slm_context_new(m, &cp);
  if (!c) return 1;
  const int32_t nv = slm_n_vocab(m);
  slm_token tok[64];
  int32_t seq[64];
  int8_t lg[64];
  for (int i = 0; i < 64; i++) tok[i] = rnd_tok(nv);
  for (int sq = 0; sq < 16; sq++) {   /* 64 positions of context in every sequence */
    for (int i = 0; i < 64; i++) seq[i] = sq, lg[i] = 0;
    struct slm_batch b = {64, tok, NULL, seq, lg};
    if (slm_decode(c, &b)) return 1;
  }
  printf("\n| decode tokens per step | step ms (min) | tokens/s | vs 1 token |\n|---|---|---|---|\n");
  double t1 = 0;
  for (int n = 1; n <= 16; n++) {
    double best = 1e30;
    for (int r = 0; r < reps * 8; r++) {
      for (int i = 0; i < n; i++) {
        seq[i] = i;
        lg[i] = 1;
        slm_kv_remove(c, i, 64, -1);
      }
      struct slm_batch b = {n, tok, NULL, seq, lg};
      double t0 = now_s();
      if (slm_decode(c, &b)) return 1;
      double dt = now_s() - t0;
      if (dt < best) best = dt;
    }
    if (n == 1) t1 = best;
    printf("| %d | %.2f | %.0f | %.2fx |\n", n, best * 1e3, n / best, n / best * t1);
    fflush(stdout);
  }
  slm_context_free(c);
  return 0;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv) {
  const char *path = NULL;
  int threads = 2, gen = 64, reps = 3, ttft_prompt = 64, bg = 7, prompt = 8, chunk = 0;
  int streams[16] = {1, 4, 8, 16}, n_streams = 4;
  bool do_sweep = false, do_decode = true, do_ttft = true;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-m") && v) path = argv[++i];
    else if (!strcmp(a, "-t") && v) threads = atoi(argv[++i]);
    else if (!strcmp(a, "-n") && v) gen = atoi(argv[++i]);
    else if (!strcmp(a, "-r") && v) reps = atoi(argv[++i]);
    else if (!strcmp(a, "-p") && v) ttft_prompt = atoi(argv[++i]);
    else if (!strcmp(a, "-b") && v) bg = atoi(argv[++i]);
    else if (!strcmp(a, "--prompt") && v) prompt = atoi(argv[++i]);
    else if (!strcmp(a, "--chunk") && v) chunk = atoi(argv[++i]);
    else if (!strcmp(a, "--sweep")) do_sweep = true;
    else if (!strcmp(a, "--no-ttft")) do_ttft = false;
    else if (!strcmp(a, "--ttft-only")) do_decode = false;
    else if (!strcmp(a, "-s") && v) {
      n_streams = 0;
      for (char *p = argv[++i]; *p && n_streams < 16;) {
        streams[n_streams++] = (int)strtol(p, &p, 10);
        if (*p == ',') p++;
      }
    } else {
      fprintf(stderr, "usage: bench_sched -m FILE [-t N] [-n GEN] [-s N,...] [-p N] [-b N] [-r N] "
                      "[--prompt N] [--chunk N] [--sweep] [--no-ttft|--ttft-only]\n");
      return 2;
    }
  }
  if (!path || reps < 1 || gen < 2 || ttft_prompt < 1 || ttft_prompt > 4000 || bg < 0) {
    fprintf(stderr, "bench_sched: -m FILE is required (and sane numbers)\n");
    return 2;
  }
  char err[256];
  struct slm_model *m = slm_model_load(path, NULL, err, sizeof err);
  if (!m) {
    fprintf(stderr, "bench_sched: %s\n", err);
    return 1;
  }
  if (do_sweep) {
    printf("model %s, %d threads: engine step time (no scheduler)\n", path, threads);
    int rc = sweep(m, threads, reps);
    slm_model_free(m);
    return rc;
  }
  const int32_t nv = slm_n_vocab(m);
  uint32_t slots = (uint32_t)bg + 1;
  for (int i = 0; i < n_streams; i++)
    if ((uint32_t)streams[i] > slots) slots = (uint32_t)streams[i];
  struct rt_sched_params sp = rt_sched_default_params();
  sp.model = m;
  sp.n_threads = threads;
  sp.n_slots = slots;
  sp.n_queue = 0;
  sp.n_ctx = 2048;
  sp.prefill_chunk = (uint32_t)chunk;
  sp.embeddings = false;
  sp.notify = on_notify;
  struct rt_sched *s = rt_sched_new(&sp, err, sizeof err);
  if (!s) {
    fprintf(stderr, "bench_sched: %s\n", err);
    return 1;
  }
  printf("model %s, %d threads, %u slots, gen %d, prompt %d, reps %d\n", path, threads, slots, gen,
         prompt, reps);
  struct job *jobs = calloc(slots + 1, sizeof *jobs);
  /* warm-up: page in the weights, start the threads */
  submit(s, &jobs[0], 16, 16, nv);
  wait_all(jobs, 1);
  rt_job_release(jobs[0].j);

  if (!do_decode) n_streams = 0;
  else printf("\n| streams | aggregate decode tok/s | per stream tok/s | step ms | tokens/step | "
         "end-to-end tok/s |\n|---|---|---|---|---|---|\n");
  double agg1 = 0, agg8 = 0;
  for (int si = 0; si < n_streams; si++) {
    int n = streams[si];
    double agg[64], e2e[64], step_ms[64], tps[64];
    for (int r = 0; r < reps && r < 64; r++) {
      struct rt_sched_stats st0, st1;
      rt_sched_stats(s, &st0);
      for (int i = 0; i < n; i++) submit(s, &jobs[i], prompt, gen, nv);
      wait_all(jobs, n);
      rt_sched_stats(s, &st1);
      double first_min = 1e30, end_max = 0, t0 = jobs[0].t_sub;
      long toks = 0, all = 0;
      for (int i = 0; i < n; i++) {
        struct rt_job_delta *d = &jobs[i].last;
        double tf = jobs[i].t_sub + (double)(d->queued_us + d->prefill_us) * 1e-6;
        double te = tf + (double)d->decode_us * 1e-6;
        if (tf < first_min) first_min = tf;
        if (te > end_max) end_max = te;
        toks += d->n_generated - 1;
        all += d->n_generated;
        rt_job_release(jobs[i].j);
      }
      agg[r] = (double)toks / (end_max - first_min);
      e2e[r] = (double)all / (end_max - t0);
      uint64_t steps = st1.steps - st0.steps;
      step_ms[r] = (double)(st1.decode_us - st0.decode_us) / 1e3 / (double)steps;
      tps[r] = (double)(st1.batch_tokens - st0.batch_tokens) / (double)steps;
    }
    int nr = reps < 64 ? reps : 64;
    double a = median(agg, nr);
    printf("| %d | %.1f | %.1f | %.2f | %.1f | %.1f |\n", n, a, a / n, median(step_ms, nr),
           median(tps, nr), median(e2e, nr));
    fflush(stdout);
    if (n == 1) agg1 = a;
    if (n == 8) agg8 = a;
  }
  if (agg1 > 0 && agg8 > 0) printf("\naggregate at 8 streams / 1 stream: %.2fx\n", agg8 / agg1);

  if (!do_ttft) goto out;
  /* TTFT alone, then among BG decoding streams */
  double alone[64], alone_w[64], busy[64], busy_w[64];
  int nr = reps < 64 ? reps : 64;
  for (int r = 0; r < nr; r++) {
    struct job *b = &jobs[0];
    submit(s, b, ttft_prompt, 1, nv);
    wait_all(b, 1);
    alone[r] = (double)(b->last.queued_us + b->last.prefill_us) / 1e3;
    alone_w[r] = (b->t_done - b->t_sub) * 1e3;
    rt_job_release(b->j);
  }
  struct job *bgj = jobs + 1;
  for (int i = 0; i < bg; i++) submit(s, &bgj[i], prompt, 2048 - prompt - 1, nv);
  for (;;) {   /* all decoding */
    bool ok = true;
    for (int i = 0; i < bg; i++) {
      pump(&bgj[i]);
      ok &= bgj[i].last.n_generated >= 2 || bgj[i].done;
    }
    if (ok) break;
    wait_notify();
  }
  int bg_done = 0;
  for (int r = 0; r < nr; r++) {
    struct job *b = &jobs[0];
    submit(s, b, ttft_prompt, 1, nv);
    while (!pump(b)) {
      for (int i = 0; i < bg; i++) pump(&bgj[i]);
      wait_notify();
    }
    busy[r] = (double)(b->last.queued_us + b->last.prefill_us) / 1e3;
    busy_w[r] = (b->t_done - b->t_sub) * 1e3;
    rt_job_release(b->j);
    /* a random phase against the decode steps before the next probe */
    struct timespec ts = {0, (long)(rng % 40) * 1000000L};
    nanosleep(&ts, NULL);
  }
  for (int i = 0; i < bg; i++) {
    pump(&bgj[i]);
    bg_done += bgj[i].done;
    rt_job_release(bgj[i].j);
  }
  double ma = median(alone, nr), mb = median(busy, nr);
  printf("\nTTFT of a %d-token prompt (median of %d; scheduler: submit -> first token sampled; "
         "wall: submit -> finish taken)\n| | scheduler ms | wall ms |\n|---|---|---|\n"
         "| alone | %.1f | %.1f |\n| among %d decoding streams | %.1f | %.1f |\n"
         "ratio: %.2fx%s\n",
         ttft_prompt, nr, ma, median(alone_w, nr), bg, mb, median(busy_w, nr), mb / ma,
         bg_done ? " (some background streams ended early: rerun with fewer reps)" : "");
out:
  rt_sched_free(s);
  free(jobs);
  slm_model_free(m);
  return 0;
}
