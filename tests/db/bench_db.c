/* bench_db.c: request-log throughput. Logs ROWS rows (default 200000) from THREADS threads
 * (default 1, like the event loop) into a fresh file and reports rows/s until they are on disk.
 *   build/tests/db/bench_db [rows] [threads] [path] */
#include "db/db.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct arg { struct db_writer *w; int id, n, shed, refused; };

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *run(void *p) {
  struct arg *a = p;
  /* a typical successful row: all names, tokens, costs and timings set */
  struct db_row r = {.client_api = "openai", .route = "openai/gpt-4o-mini", .provider = "openai",
                     .model = "gpt-4o-mini", .upstream_model = "gpt-4o-mini-2024-07-18",
                     .input_tokens = 1000, .cached_tokens = 400, .output_tokens = 200,
                     .cost_pusd = 240000000, .baseline_cost_pusd = 4000000000LL,
                     .total_ms = 812.5, .upstream_ms = 800.25, .ttft_ms = 120, .overhead_ms = 0.3,
                     .http_status = 200, .attempts = 1};
  for (int i = 0; i < a->n; i++) {
    snprintf(r.request_id, sizeof r.request_id, "%08x-%08x", a->id, i);
    r.started_us = 1732000000000000LL + i;
    r.finished_us = r.started_us + 812500;
    int rc;
    /* a producer faster than the disk: on the hard cap, back off like a gateway shedding load,
     * so what is measured is the writer's sustained rate */
    while ((rc = db_log(a->w, &r)) < 0) {
      a->refused++;
      nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    if (rc == 1) a->shed++;
  }
  return NULL;
}

int main(int argc, char **argv) {
  int rows = argc > 1 ? atoi(argv[1]) : 200000;
  int threads = argc > 2 ? atoi(argv[2]) : 1;
  char path[256];
  snprintf(path, sizeof path, "%s", argc > 3 ? argv[3] : "/tmp/tiergate-bench.db");
  unlink(path);
  char err[256];
  struct db_writer *w = db_open(path, NULL, err, sizeof err);
  if (!w) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  pthread_t th[64];
  struct arg a[64];
  if (threads < 1 || threads > 64) threads = 1;
  double t0 = now_s();
  for (int i = 0; i < threads; i++) {
    a[i] = (struct arg){w, i, rows / threads, 0, 0};
    pthread_create(&th[i], NULL, run, &a[i]);
  }
  for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
  double t1 = now_s();
  db_sync(w);
  double t2 = now_s();
  struct db_stats st;
  db_stats(w, &st);
  db_close(w);
  int shed = 0, refused = 0;
  for (int i = 0; i < threads; i++) {
    shed += a[i].shed;
    refused += a[i].refused;
  }
  printf("%llu rows, %d thread(s): db_log %.0f ns/row; on disk in %.3f s = %.0f rows/s "
         "(%llu batches, %d accepted over the queue cap, %d refused at the hard cap and retried, "
         "%llu failed)\n",
         (unsigned long long)st.written, threads, (t1 - t0) * 1e9 / rows, t2 - t0,
         st.written / (t2 - t0), (unsigned long long)st.batches, shed, refused,
         (unsigned long long)st.failed);
  char p2[300];
  unlink(path);
  snprintf(p2, sizeof p2, "%s-wal", path);
  unlink(p2);
  snprintf(p2, sizeof p2, "%s-shm", path);
  unlink(p2);
  return 0;
}
