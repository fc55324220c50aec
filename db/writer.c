/*
 * writer.c: the request log's writer thread and the bounded queue in front of it.
 *
 * DESIGN. db_log() runs on the event loop: it packs the row and its strings into one malloc'd
 * block (outside the lock), then takes the mutex only to push a pointer into a ring. The ring
 * holds queue_cap + overflow_cap pointers, allocated once at open. The writer thread takes up to
 * batch_max rows at a time and inserts them with one prepared statement in one transaction, so
 * the per-row cost is a bind/step and the per-commit cost (WAL append; no fsync with
 * synchronous=NORMAL) is shared by the batch.
 *
 * Batching without latency: when the writer wakes to fewer than batch_max rows it waits up to
 * flush_interval_ms for more, unless a db_sync() or db_close() is pending. Under load the queue
 * is never short of a batch and the writer never waits. db_log() signals the writer only on the
 * transitions it waits for (queue became non-empty, queue reached a batch), not per row.
 *
 * Back-pressure: beyond queue_cap a row still goes in (the overflow reserve) and db_log() returns
 * 1 so the caller can shed new work; at queue_cap + overflow_cap rows it is refused (-ENOSPC) and
 * counted as rejected. Nothing blocks on disk: the only wait in db_log() is the mutex, which the
 * writer holds for a handful of pointer moves.
 *
 * Write errors: a failed batch is rolled back and retried (3 tries, 50 ms apart: SQLITE_BUSY
 * from a long reader, a transient disk error); after that its rows are counted as failed, the
 * error kept in the stats, and the writer carries on, so a disk problem never wedges db_sync or
 * db_close.
 */
#include "db/db.h"
#include "db/internal.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* Caps on the strings copied from a row: bytes, truncated at a UTF-8 boundary. */
#define CAP_SHORT 1024          /* names, ids, classes */
#define CAP_MESSAGE 4096        /* error_message */
#define CAP_ATTEMPT_LOG 65536   /* attempt_log JSON */

struct qrow {
  struct db_row r;             /* its string pointers point into text[] */
  char text[];
};

struct db_writer {
  sqlite3 *db;
  sqlite3_stmt *ins;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t work;         /* writer waits: rows, sync or close */
  pthread_cond_t done;         /* db_sync waits: a batch committed */

  /* guarded by mu */
  struct qrow **ring;
  size_t ring_cap, head, count;
  struct qrow **batch;         /* the writer's own: batch_max rows taken out of the ring */
  size_t queue_cap;
  bool closing, writer_idle, writer_filling;
  uint64_t seq_accepted;       /* rows accepted so far (FIFO sequence numbers) */
  uint64_t seq_done;           /* rows the writer has finished with (written or failed) */
  uint64_t sync_target;        /* highest seq a db_sync() waits for */
  struct db_stats st;
  char last_error[256];

  int batch_max;
  int flush_ms;
};

struct db_options db_default_options(void) {
  return (struct db_options){
      .queue_cap = 65536, .overflow_cap = 65536, .batch_max = 512, .flush_interval_ms = 50};
}

/* --------------------------------------------------------------- row packing */

static size_t capped_len(const char *s, size_t cap) {
  if (!s) return 0;
  size_t n = strnlen(s, cap + 1);
  if (n <= cap) return n;
  n = cap;
  while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;   /* do not split a character */
  return n;
}

/* Copies S (at most CAP bytes) to *P and returns the copy, or NULL for NULL. */
static const char *put(char **p, const char *s, size_t cap) {
  if (!s) return NULL;
  size_t n = capped_len(s, cap);
  char *d = *p;
  memcpy(d, s, n);
  d[n] = 0;
  *p += n + 1;
  return d;
}

static struct qrow *pack(const struct db_row *r) {
  size_t need = 0;
  const char *strs[] = {r->client_api, r->tenant,   r->task,           r->route,
                        r->provider,   r->model,    r->upstream_model, r->error_class, r->endpoint};
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
    if (strs[i]) need += capped_len(strs[i], CAP_SHORT) + 1;
  if (r->error_message) need += capped_len(r->error_message, CAP_MESSAGE) + 1;
  if (r->attempt_log) need += capped_len(r->attempt_log, CAP_ATTEMPT_LOG) + 1;
  struct qrow *q = malloc(sizeof *q + need);
  if (!q) return NULL;
  q->r = *r;
  q->r.request_id[sizeof q->r.request_id - 1] = 0;
  char *p = q->text;
  q->r.client_api = put(&p, r->client_api, CAP_SHORT);
  q->r.tenant = put(&p, r->tenant, CAP_SHORT);
  q->r.task = put(&p, r->task, CAP_SHORT);
  q->r.route = put(&p, r->route, CAP_SHORT);
  q->r.provider = put(&p, r->provider, CAP_SHORT);
  q->r.model = put(&p, r->model, CAP_SHORT);
  q->r.upstream_model = put(&p, r->upstream_model, CAP_SHORT);
  q->r.error_class = put(&p, r->error_class, CAP_SHORT);
  q->r.endpoint = put(&p, r->endpoint, CAP_SHORT);
  q->r.error_message = put(&p, r->error_message, CAP_MESSAGE);
  q->r.attempt_log = put(&p, r->attempt_log, CAP_ATTEMPT_LOG);
  return q;
}

/* --------------------------------------------------------------- binding */

static void bind_text(sqlite3_stmt *st, int i, const char *s) {
  if (s) sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
  else sqlite3_bind_null(st, i);
}
/* Counts and money: negative means unknown. */
static void bind_count(sqlite3_stmt *st, int i, int64_t v) {
  if (v >= 0) sqlite3_bind_int64(st, i, v);
  else sqlite3_bind_null(st, i);
}
/* Durations: negative or NaN means not measured. */
static void bind_ms(sqlite3_stmt *st, int i, double v) {
  if (v >= 0 && isfinite(v)) sqlite3_bind_double(st, i, v);
  else sqlite3_bind_null(st, i);
}

static int insert_row(sqlite3_stmt *st, const struct db_row *r) {
  int k = 1;
  sqlite3_bind_text(st, k++, r->request_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, k++, r->started_us);
  sqlite3_bind_int64(st, k++, r->finished_us);
  bind_text(st, k++, r->client_api);
  bind_text(st, k++, r->tenant);
  bind_text(st, k++, r->task);
  bind_text(st, k++, r->route);
  bind_text(st, k++, r->provider);
  bind_text(st, k++, r->model);
  bind_text(st, k++, r->upstream_model);
  sqlite3_bind_int(st, k++, r->streamed ? 1 : 0);
  bind_count(st, k++, r->input_tokens);
  bind_count(st, k++, r->cached_tokens);
  bind_count(st, k++, r->cache_write_tokens);
  bind_count(st, k++, r->output_tokens);
  bind_count(st, k++, r->reasoning_tokens);
  bind_count(st, k++, r->cost_pusd);
  bind_count(st, k++, r->baseline_cost_pusd);
  bind_ms(st, k++, r->total_ms);
  bind_ms(st, k++, r->upstream_ms);
  bind_ms(st, k++, r->ttft_ms);
  bind_ms(st, k++, r->overhead_ms);
  if (r->http_status > 0) sqlite3_bind_int(st, k++, r->http_status);
  else sqlite3_bind_null(st, k++);
  bind_text(st, k++, r->error_class);
  bind_text(st, k++, r->error_message);
  sqlite3_bind_int(st, k++, r->attempts > 0 ? r->attempts : 0);
  bind_text(st, k++, r->attempt_log);
  bind_text(st, k++, r->endpoint);
  bind_ms(st, k++, r->local ? r->queue_ms : -1);
  bind_ms(st, k++, r->local ? r->prefill_ms : -1);
  bind_ms(st, k++, r->local && r->decode_tps >= 0 ? r->decode_tps : -1);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc == SQLITE_DONE ? 0 : rc;
}

/* One transaction for the batch. Returns 0, or an SQLite code with its message in EMSG (taken
 * before the rollback, which would clear it); the transaction is rolled back. */
static int write_batch(struct db_writer *w, struct qrow **b, size_t n, char *emsg, size_t elen) {
  int rc = sqlite3_exec(w->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  if (rc == SQLITE_OK) {
    for (size_t i = 0; i < n && rc == SQLITE_OK; i++) rc = insert_row(w->ins, &b[i]->r);
    if (rc == SQLITE_OK) rc = sqlite3_exec(w->db, "COMMIT", NULL, NULL, NULL);
  }
  if (rc != SQLITE_OK) {
    snprintf(emsg, elen, "%s", sqlite3_errmsg(w->db));
    if (!sqlite3_get_autocommit(w->db)) sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
  }
  return rc;
}

/* --------------------------------------------------------------- the thread */

static void deadline_in(struct timespec *ts, int ms) {
  clock_gettime(CLOCK_REALTIME, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

static void *writer_main(void *arg) {
  struct db_writer *w = arg;
  struct qrow **batch = w->batch;
  /* Below the event loop: on a busy machine a batch insert or a WAL checkpoint must not take a
   * CPU from the thread that serves requests. The queue absorbs the delay (rows are only late);
   * on Linux this setpriority() applies to the calling thread only. */
  errno = 0;
  int prio = getpriority(PRIO_PROCESS, 0);
  if (errno == 0) (void)setpriority(PRIO_PROCESS, 0, prio + 10 > 19 ? 19 : prio + 10);
  pthread_mutex_lock(&w->mu);
  for (;;) {
    while (w->count == 0 && !w->closing) {
      w->writer_idle = true;
      pthread_cond_wait(&w->work, &w->mu);
      w->writer_idle = false;
    }
    if (w->count == 0) break;   /* closing and drained */
    /* a short batch: give it flush_interval to fill, unless someone waits for it */
    if (w->count < (size_t)w->batch_max && !w->closing && w->sync_target <= w->seq_done) {
      struct timespec until;
      deadline_in(&until, w->flush_ms);
      w->writer_filling = true;
      while (w->count < (size_t)w->batch_max && !w->closing && w->sync_target <= w->seq_done)
        if (pthread_cond_timedwait(&w->work, &w->mu, &until) == ETIMEDOUT) break;
      w->writer_filling = false;
    }
    size_t n = w->count < (size_t)w->batch_max ? w->count : (size_t)w->batch_max;
    for (size_t i = 0; i < n; i++) {
      batch[i] = w->ring[w->head];
      w->head = (w->head + 1) % w->ring_cap;
    }
    w->count -= n;
    pthread_mutex_unlock(&w->mu);

    int rc = SQLITE_OK;
    char emsg[256] = "";
    for (int attempt = 0; attempt < 3; attempt++) {
      if ((rc = write_batch(w, batch, n, emsg, sizeof emsg)) == SQLITE_OK) break;
      nanosleep(&(struct timespec){0, 50 * 1000000L}, NULL);
    }
    if (rc) fprintf(stderr, "tiergate: request log: %zu rows lost: %s\n", n, emsg);
    for (size_t i = 0; i < n; i++) free(batch[i]);

    pthread_mutex_lock(&w->mu);
    w->seq_done += n;
    w->st.batches++;
    if (rc) {
      w->st.failed += n;
      snprintf(w->last_error, sizeof w->last_error, "%s", emsg);
    } else {
      w->st.written += n;
    }
    pthread_cond_broadcast(&w->done);
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

/* --------------------------------------------------------------- API */

struct db_writer *db_open(const char *path, const struct db_options *opt, char *err,
                          size_t errlen) {
  struct db_options o = opt ? *opt : db_default_options();
  struct db_options d = db_default_options();
  if (!o.queue_cap) o.queue_cap = d.queue_cap;
  if (o.batch_max <= 0) o.batch_max = d.batch_max;
  if (o.flush_interval_ms <= 0) o.flush_interval_ms = d.flush_interval_ms;
  char scratch[16];
  if (!err || !errlen) {
    err = scratch;
    errlen = sizeof scratch;
  }
  if (!path || !*path) {
    snprintf(err, errlen, "no database path");
    return NULL;
  }

  struct db_writer *w = calloc(1, sizeof *w);
  if (!w) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  w->queue_cap = o.queue_cap;
  w->ring_cap = o.queue_cap + o.overflow_cap;
  w->batch_max = o.batch_max;
  w->flush_ms = o.flush_interval_ms;
  w->ring = calloc(w->ring_cap, sizeof *w->ring);
  w->batch = calloc((size_t)w->batch_max, sizeof *w->batch);
  if (!w->ring || !w->batch) {
    snprintf(err, errlen, "out of memory (queue of %zu rows)", w->ring_cap);
    free(w->ring);
    free(w->batch);
    free(w);
    return NULL;
  }
  if (db_schema_open(path, &w->db, err, errlen) < 0) {
    free(w->ring);
    free(w->batch);
    free(w);
    return NULL;
  }
  if (sqlite3_prepare_v3(w->db, db_insert_sql, -1, SQLITE_PREPARE_PERSISTENT, &w->ins, NULL) !=
      SQLITE_OK) {
    snprintf(err, errlen, "%s: cannot prepare the insert: %s", path, sqlite3_errmsg(w->db));
    sqlite3_close(w->db);
    free(w->ring);
    free(w->batch);
    free(w);
    return NULL;
  }
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->work, NULL);
  pthread_cond_init(&w->done, NULL);

  /* the writer takes no signals: SIGINT/SIGTERM belong to the event loop's thread */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  int prc = pthread_create(&w->thread, NULL, writer_main, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (prc != 0) {
    snprintf(err, errlen, "cannot start the writer thread: %s", strerror(prc));
    sqlite3_finalize(w->ins);
    sqlite3_close(w->db);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->work);
    pthread_cond_destroy(&w->done);
    free(w->ring);
    free(w->batch);
    free(w);
    return NULL;
  }
  return w;
}

int db_log(struct db_writer *w, const struct db_row *row) {
  if (!w || !row) return -EINVAL;
  struct qrow *q = pack(row);   /* the allocation and copies happen outside the lock */
  pthread_mutex_lock(&w->mu);
  if (w->closing) {
    pthread_mutex_unlock(&w->mu);
    free(q);
    return -EPIPE;
  }
  if (!q || w->count >= w->ring_cap) {
    w->st.rejected++;
    pthread_mutex_unlock(&w->mu);
    free(q);
    return -ENOSPC;
  }
  w->ring[(w->head + w->count) % w->ring_cap] = q;
  w->count++;
  w->seq_accepted++;
  w->st.queued++;
  int rc = 0;
  if (w->count > w->queue_cap) {
    w->st.overflowed++;
    rc = 1;
  }
  if ((w->writer_idle && w->count == 1) ||
      (w->writer_filling && w->count == (size_t)w->batch_max))
    pthread_cond_signal(&w->work);
  pthread_mutex_unlock(&w->mu);
  return rc;
}

void db_sync(struct db_writer *w) {
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  uint64_t target = w->seq_accepted;
  if (w->seq_done < target) {
    if (target > w->sync_target) w->sync_target = target;
    pthread_cond_signal(&w->work);
    while (w->seq_done < target) pthread_cond_wait(&w->done, &w->mu);
  }
  pthread_mutex_unlock(&w->mu);
}

void db_stats(struct db_writer *w, struct db_stats *out) {
  if (!w || !out) return;
  pthread_mutex_lock(&w->mu);
  *out = w->st;
  out->depth = w->count;
  snprintf(out->last_error, sizeof out->last_error, "%s", w->last_error);
  pthread_mutex_unlock(&w->mu);
}

void db_close(struct db_writer *w) {
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  w->closing = true;
  pthread_cond_signal(&w->work);
  pthread_mutex_unlock(&w->mu);
  pthread_join(w->thread, NULL);   /* the writer drains the queue before it exits */
  sqlite3_finalize(w->ins);
  /* the last connection's close checkpoints the WAL into the main file and removes it */
  sqlite3_close(w->db);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->work);
  pthread_cond_destroy(&w->done);
  free(w->ring);
  free(w->batch);
  free(w);
}
