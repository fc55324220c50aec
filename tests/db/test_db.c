/* test_db.c: the request log (db/) on real SQLite files in a temporary directory: every column
 * round-trips, many threads lose no row, close flushes, migrations (fresh, idempotent, from an
 * old version, refusing a newer one), the full-queue contract, and write errors. */
#include "db/db.h"
#include "db/internal.h"
#include "tests/check.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <time.h>
#include <unistd.h>

static char dir[64];

static const char *tmp_path(const char *name) {
  static char buf[4][256];
  static int k;
  char *p = buf[k++ & 3];
  snprintf(p, sizeof buf[0], "%s/%s", dir, name);
  return p;
}

static void rm_db(const char *path) {
  char p[300];
  unlink(path);
  snprintf(p, sizeof p, "%s-wal", path);
  unlink(p);
  snprintf(p, sizeof p, "%s-shm", path);
  unlink(p);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static sqlite3 *open_ro(const char *path) {
  sqlite3 *db = NULL;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
    fprintf(stderr, "cannot open %s\n", path);
    sqlite3_close(db);
    return NULL;
  }
  return db;
}

static int64_t query_int(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st;
  int64_t v = -999;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
    fprintf(stderr, "bad query %s: %s\n", sql, sqlite3_errmsg(db));
    return v;
  }
  if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

static int64_t count_rows(const char *path) {
  sqlite3 *db = open_ro(path);
  int64_t n = db ? query_int(db, "SELECT count(*) FROM requests") : -1;
  sqlite3_close(db);
  return n;
}

/* ------------------------------------------------------------------ round trip */

static const char *const all_columns[] = {
    "id", "request_id", "started_us", "finished_us", "client_api", "tenant", "task", "route",
    "provider", "model", "upstream_model", "streamed", "input_tokens", "cached_tokens",
    "cache_write_tokens", "output_tokens", "reasoning_tokens", "cost_pusd", "baseline_cost_pusd",
    "total_ms", "upstream_ms", "ttft_ms", "overhead_ms", "http_status", "error_class",
    "error_message", "cost_usd", "baseline_cost_usd", "attempts", "attempt_log", "endpoint",
    "queue_ms", "prefill_ms", "decode_tps", NULL};

static void test_round_trip(void) {
  const char *path = tmp_path("rt.db");
  char err[512] = "";
  struct db_writer *w = db_open(path, NULL, err, sizeof err);
  CHECK_MSG(w != NULL, "db_open: %s", err);
  if (!w) return;

  struct db_row full = {
      .started_us = 1732000000123456LL,
      .finished_us = 1732000000987654LL,
      .client_api = "openai",
      .tenant = "team-a",
      .task = "summarize",
      .route = "openai/gpt-4o-mini-2024-07-18",
      .provider = "openai",
      .model = "gpt-4o-mini",
      .upstream_model = "gpt-4o-mini-2024-07-18",
      .streamed = true,
      .input_tokens = 1000,
      .cached_tokens = 400,
      .cache_write_tokens = 7,
      .output_tokens = 200,
      .reasoning_tokens = 50,
      .cost_pusd = 240000000,
      .baseline_cost_pusd = 4000000000LL,
      .total_ms = 812.625,
      .upstream_ms = 800.5,
      .ttft_ms = 123.25,
      .overhead_ms = 12.125,
      .http_status = 200,
      .error_class = "upstream_retried",
      .error_message = "first attempt: 503 «overloaded»",
      .attempts = 2,
      .attempt_log = "[{\"status\":503,\"ms\":20}]",
      .endpoint = "POST /v1/chat/completions",
      .local = true,
      .queue_ms = 1.5,
      .prefill_ms = 20.25,
      .decode_tps = 187.5,
  };
  snprintf(full.request_id, sizeof full.request_id, "req-0123456789abcdef");
  struct db_row empty = {.started_us = 5, .finished_us = 6, .total_ms = 0.5, .upstream_ms = -1,
                         .ttft_ms = -1, .overhead_ms = 0.5, .http_status = 400,
                         .input_tokens = -1, .cached_tokens = -1, .cache_write_tokens = -1,
                         .output_tokens = -1, .reasoning_tokens = -1, .cost_pusd = -1,
                         .baseline_cost_pusd = -1, .error_class = "bad_request"};
  snprintf(empty.request_id, sizeof empty.request_id, "req-2");
  /* the caller's strings are copied: scribbling on them after db_log changes nothing */
  char tenant[16] = "team-b";
  struct db_row third = empty;
  snprintf(third.request_id, sizeof third.request_id, "req-3");
  third.tenant = tenant;
  CHECK_EQ_INT(db_log(w, &full), 0);
  CHECK_EQ_INT(db_log(w, &empty), 0);
  CHECK_EQ_INT(db_log(w, &third), 0);
  strcpy(tenant, "XXXXXX");
  db_sync(w);
  struct db_stats st;
  db_stats(w, &st);
  CHECK_EQ_U64(st.queued, 3);
  CHECK_EQ_U64(st.written, 3);
  CHECK_EQ_U64(st.depth, 0);
  CHECK_STR(st.last_error, "");

  /* read back while the writer is still open (WAL: readers do not block it) */
  sqlite3 *db = open_ro(path);
  CHECK(db != NULL);
  if (!db) return;
  /* the test must know every column: a new column without a round-trip check fails here */
  sqlite3_stmt *st2;
  CHECK(sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_xinfo('requests') ORDER BY cid", -1,
                           &st2, NULL) == SQLITE_OK);
  int ncol = 0;
  while (sqlite3_step(st2) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st2, 0);
    CHECK_MSG(all_columns[ncol] && !strcmp(name, all_columns[ncol]), "column %d is %s, want %s",
              ncol, name, all_columns[ncol] ? all_columns[ncol] : "(end)");
    if (all_columns[ncol]) ncol++;
  }
  sqlite3_finalize(st2);
  CHECK_EQ_INT(ncol, 34);

  CHECK(sqlite3_prepare_v2(db,
                           "SELECT id, request_id, started_us, finished_us, client_api, tenant, "
                           "task, route, provider, model, upstream_model, streamed, input_tokens, "
                           "cached_tokens, cache_write_tokens, output_tokens, reasoning_tokens, "
                           "cost_pusd, baseline_cost_pusd, total_ms, upstream_ms, ttft_ms, "
                           "overhead_ms, http_status, error_class, error_message, cost_usd, "
                           "baseline_cost_usd, attempts, attempt_log, endpoint, queue_ms, prefill_ms, "
                           "decode_tps FROM requests ORDER BY id",
                           -1, &st2, NULL) == SQLITE_OK);
  CHECK(sqlite3_step(st2) == SQLITE_ROW);
#define TXT(i) ((const char *)sqlite3_column_text(st2, i))
#define I64(i) sqlite3_column_int64(st2, i)
#define DBL(i) sqlite3_column_double(st2, i)
#define ISNULL(i) (sqlite3_column_type(st2, i) == SQLITE_NULL)
  CHECK_EQ_INT(I64(0), 1);
  CHECK_STR(TXT(1), "req-0123456789abcdef");
  CHECK_EQ_INT(I64(2), 1732000000123456LL);
  CHECK_EQ_INT(I64(3), 1732000000987654LL);
  CHECK_STR(TXT(4), "openai");
  CHECK_STR(TXT(5), "team-a");
  CHECK_STR(TXT(6), "summarize");
  CHECK_STR(TXT(7), "openai/gpt-4o-mini-2024-07-18");
  CHECK_STR(TXT(8), "openai");
  CHECK_STR(TXT(9), "gpt-4o-mini");
  CHECK_STR(TXT(10), "gpt-4o-mini-2024-07-18");
  CHECK_EQ_INT(I64(11), 1);
  CHECK_EQ_INT(I64(12), 1000);
  CHECK_EQ_INT(I64(13), 400);
  CHECK_EQ_INT(I64(14), 7);
  CHECK_EQ_INT(I64(15), 200);
  CHECK_EQ_INT(I64(16), 50);
  CHECK_EQ_INT(I64(17), 240000000);
  CHECK_EQ_INT(I64(18), 4000000000LL);
  CHECK(DBL(19) == 812.625);   /* binary-exact values: stored and read bit for bit */
  CHECK(DBL(20) == 800.5);
  CHECK(DBL(21) == 123.25);
  CHECK(DBL(22) == 12.125);
  CHECK_EQ_INT(I64(23), 200);
  CHECK_STR(TXT(24), "upstream_retried");
  CHECK_STR(TXT(25), "first attempt: 503 «overloaded»");
  CHECK(DBL(26) == 240000000 / 1e12);
  CHECK(DBL(27) == 4000000000LL / 1e12);
  CHECK_EQ_INT(I64(28), 2);
  CHECK_STR(TXT(29), "[{\"status\":503,\"ms\":20}]");
  CHECK_STR(TXT(30), "POST /v1/chat/completions");
  CHECK(DBL(31) == 1.5 && DBL(32) == 20.25 && DBL(33) == 187.5);

  CHECK(sqlite3_step(st2) == SQLITE_ROW);
  CHECK_STR(TXT(1), "req-2");
  CHECK_EQ_INT(I64(2), 5);
  CHECK_EQ_INT(I64(11), 0);
  for (int i = 4; i <= 10; i++) CHECK_MSG(ISNULL(i), "column %d should be NULL", i);
  for (int i = 12; i <= 18; i++) CHECK_MSG(ISNULL(i), "column %d should be NULL", i);
  CHECK(DBL(19) == 0.5);
  CHECK(ISNULL(20) && ISNULL(21));
  CHECK_STR(TXT(24), "bad_request");
  CHECK(ISNULL(25) && ISNULL(26) && ISNULL(27) && ISNULL(29) && ISNULL(30));
  CHECK(ISNULL(31) && ISNULL(32) && ISNULL(33));   /* not a local answer */
  CHECK_EQ_INT(I64(28), 0);

  CHECK(sqlite3_step(st2) == SQLITE_ROW);
  CHECK_STR(TXT(5), "team-b");
  CHECK(sqlite3_step(st2) == SQLITE_DONE);
  sqlite3_finalize(st2);

  /* the connection settings the design relies on */
  CHECK_EQ_INT(query_int(db, "PRAGMA user_version"), db_schema_version());
  sqlite3_stmt *jm;
  sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &jm, NULL);
  CHECK(sqlite3_step(jm) == SQLITE_ROW && !strcmp((const char *)sqlite3_column_text(jm, 0), "wal"));
  sqlite3_finalize(jm);
  /* the indexes for time and model/task queries exist and are used */
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM sqlite_master WHERE type='index' AND "
                             "name IN ('requests_started','requests_model_started',"
                             "'requests_task_started','requests_request_id')"), 4);
  sqlite3_stmt *qp;
  sqlite3_prepare_v2(db, "EXPLAIN QUERY PLAN SELECT sum(cost_pusd) FROM requests WHERE "
                         "model='gpt-4o-mini' AND started_us > 0", -1, &qp, NULL);
  bool uses = false;
  while (sqlite3_step(qp) == SQLITE_ROW)
    uses |= strstr((const char *)sqlite3_column_text(qp, 3), "requests_model_started") != NULL;
  sqlite3_finalize(qp);
  CHECK(uses);
  sqlite3_close(db);
  db_close(w);
  rm_db(path);
}

static void test_long_strings(void) {
  const char *path = tmp_path("long.db");
  char err[256];
  struct db_writer *w = db_open(path, NULL, err, sizeof err);
  CHECK(w != NULL);
  if (!w) return;
  /* 5000 bytes of a 2-byte character: the message is cut at 4096 bytes without splitting one */
  char *msg = malloc(10001);
  for (int i = 0; i < 5000; i++) memcpy(msg + 2 * i, "é", 2);
  msg[10000] = 0;
  struct db_row r = {.error_message = msg, .model = msg, .attempts = 1};
  memset(r.request_id, 'x', sizeof r.request_id);   /* not terminated: copied up to its size */
  CHECK_EQ_INT(db_log(w, &r), 0);
  db_close(w);
  free(msg);
  sqlite3 *db = open_ro(path);
  CHECK_EQ_INT(query_int(db, "SELECT length(CAST(error_message AS BLOB)) FROM requests"), 4096);
  CHECK_EQ_INT(query_int(db, "SELECT length(CAST(model AS BLOB)) FROM requests"), 1024);
  CHECK_EQ_INT(query_int(db, "SELECT length(request_id) FROM requests"), 39);
  sqlite3_close(db);
  rm_db(path);
}

/* ------------------------------------------------------------------ many threads */

struct th_arg { struct db_writer *w; int id, n; int rejected, overflowed; double max_log_ms; };

static void *logger(void *p) {
  struct th_arg *a = p;
  struct db_row r = {.client_api = "openai", .model = "gpt-4o-mini", .provider = "openai",
                     .route = "openai/gpt-4o-mini", .upstream_model = "gpt-4o-mini",
                     .input_tokens = 100, .output_tokens = 20, .cost_pusd = 27000000,
                     .baseline_cost_pusd = 450000000, .total_ms = 10, .upstream_ms = 9,
                     .ttft_ms = 5, .overhead_ms = 1, .http_status = 200, .attempts = 1};
  for (int i = 0; i < a->n; i++) {
    snprintf(r.request_id, sizeof r.request_id, "t%d-%d", a->id, i);
    r.started_us = (int64_t)a->id * 1000000000LL + i;
    r.finished_us = r.started_us + 10000;
    r.input_tokens = i;
    double t0 = now_s();
    int rc = db_log(a->w, &r);
    double ms = (now_s() - t0) * 1e3;
    if (ms > a->max_log_ms) a->max_log_ms = ms;
    if (rc < 0) a->rejected++;
    if (rc == 1) a->overflowed++;
  }
  return NULL;
}

static void test_threads(void) {
  const char *path = tmp_path("mt.db");
  char err[256];
  struct db_writer *w = db_open(path, NULL, err, sizeof err);
  CHECK(w != NULL);
  if (!w) return;
  enum { THREADS = 4, PER = 25000 };
  pthread_t th[THREADS];
  struct th_arg a[THREADS];
  double t0 = now_s();
  for (int i = 0; i < THREADS; i++) {
    a[i] = (struct th_arg){.w = w, .id = i, .n = PER};
    pthread_create(&th[i], NULL, logger, &a[i]);
  }
  for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
  double t_logged = now_s();
  db_sync(w);
  double t_synced = now_s();
  struct db_stats st;
  db_stats(w, &st);
  db_close(w);
  int rejected = 0;
  double max_ms = 0;
  for (int i = 0; i < THREADS; i++) {
    rejected += a[i].rejected;
    if (a[i].max_log_ms > max_ms) max_ms = a[i].max_log_ms;
  }
  CHECK_EQ_INT(rejected, 0);
  CHECK_EQ_U64(st.queued, THREADS * PER);
  CHECK_EQ_U64(st.written, THREADS * PER);
  CHECK_EQ_U64(st.failed, 0);
  CHECK_EQ_U64(st.rejected, 0);
  printf("db: %d rows from %d threads: logged in %.3f s, on disk after %.3f s (%.0f rows/s, "
         "%llu batches, slowest db_log %.2f ms; sanitizer builds are several times slower)\n",
         THREADS * PER, THREADS, t_logged - t0, t_synced - t0, THREADS * PER / (t_synced - t0),
         (unsigned long long)st.batches, max_ms);

  sqlite3 *db = open_ro(path);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM requests"), THREADS * PER);
  CHECK_EQ_INT(query_int(db, "SELECT count(DISTINCT request_id) FROM requests"), THREADS * PER);
  /* each thread's rows are in its own order (one FIFO queue) */
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM (SELECT started_us - lag(started_us) OVER "
                             "(PARTITION BY started_us / 1000000000 ORDER BY id) AS d FROM "
                             "requests) WHERE d <= 0"), 0);
  CHECK_EQ_INT(query_int(db, "SELECT sum(input_tokens) FROM requests"),
               (int64_t)THREADS * PER * (PER - 1) / 2);
  sqlite3_close(db);
  rm_db(path);
}

static void test_close_flushes(void) {
  const char *path = tmp_path("close.db");
  struct db_options o = db_default_options();
  o.flush_interval_ms = 60000;   /* the writer would sit on a short batch for a minute... */
  o.batch_max = 100000;
  struct db_writer *w = db_open(path, &o, NULL, 0);
  CHECK(w != NULL);
  if (!w) return;
  struct db_row r = {.http_status = 200};
  for (int i = 0; i < 10000; i++) {
    snprintf(r.request_id, sizeof r.request_id, "c%d", i);
    CHECK_EQ_INT(db_log(w, &r), 0);
  }
  double t0 = now_s();
  db_close(w);   /* ...but close does not wait for the interval: it drains now */
  CHECK(now_s() - t0 < 30);
  /* the WAL was checkpointed into the main file and removed */
  char wal[300];
  snprintf(wal, sizeof wal, "%s-wal", path);
  CHECK(access(wal, F_OK) != 0);
  CHECK_EQ_INT(count_rows(path), 10000);
  rm_db(path);
}

/* ------------------------------------------------------------------ migrations */

static char *schema_text(const char *path) {
  sqlite3 *db = open_ro(path);
  sqlite3_stmt *st;
  static char buf[8192];
  buf[0] = 0;
  sqlite3_prepare_v2(db, "SELECT group_concat(sql, ';') FROM (SELECT sql FROM sqlite_master "
                         "ORDER BY name)", -1, &st, NULL);
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
    snprintf(buf, sizeof buf, "%s", (const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(db);
  return strdup(buf);
}

static void test_reopen_idempotent(void) {
  const char *path = tmp_path("re.db");
  struct db_writer *w = db_open(path, NULL, NULL, 0);
  struct db_row r = {.http_status = 200};
  strcpy(r.request_id, "a");
  db_log(w, &r);
  db_close(w);
  char *s1 = schema_text(path);
  for (int i = 0; i < 3; i++) {
    w = db_open(path, NULL, NULL, 0);
    CHECK(w != NULL);
    strcpy(r.request_id, "b");
    db_log(w, &r);
    db_close(w);
  }
  char *s2 = schema_text(path);
  CHECK_STR(s1, s2);
  CHECK(strstr(s1, "CREATE TABLE requests") != NULL);
  CHECK_EQ_INT(count_rows(path), 4);
  free(s1);
  free(s2);
  rm_db(path);
}

/* Two writers opening one fresh file at once (two gateway processes on one log): both migrate
 * it without error, the migration runs once, both can write. */
struct opener { const char *path; struct db_writer *w; char err[256]; };
static void *open_one(void *p) {
  struct opener *o = p;
  o->w = db_open(o->path, NULL, o->err, sizeof o->err);
  return NULL;
}

static void test_concurrent_open(void) {
  const char *path = tmp_path("two.db");
  struct opener o[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    o[i] = (struct opener){.path = path};
    pthread_create(&th[i], NULL, open_one, &o[i]);
  }
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  struct db_row r = {.http_status = 200};
  for (int i = 0; i < 4; i++) {
    CHECK_MSG(o[i].w != NULL, "opener %d: %s", i, o[i].err);
    snprintf(r.request_id, sizeof r.request_id, "w%d", i);
    if (o[i].w) CHECK_EQ_INT(db_log(o[i].w, &r), 0);
  }
  for (int i = 0; i < 4; i++) db_close(o[i].w);
  CHECK_EQ_INT(count_rows(path), 4);
  sqlite3 *db = open_ro(path);
  CHECK_EQ_INT(query_int(db, "PRAGMA user_version"), db_schema_version());
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM sqlite_master WHERE type='table' AND "
                             "name='requests'"), 1);
  sqlite3_close(db);
  rm_db(path);
}

static void test_old_version(void) {
  const char *path = tmp_path("old.db");
  char err[256] = "";
  /* a database as the first release left it: schema 1, one row */
  sqlite3 *db;
  CHECK(sqlite3_open(path, &db) == SQLITE_OK);
  CHECK_EQ_INT(db_schema_migrate(db, 1, err, sizeof err), 0);
  CHECK_EQ_INT(query_int(db, "PRAGMA user_version"), 1);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM pragma_table_info('requests') WHERE "
                             "name='attempts'"), 0);
  CHECK(sqlite3_exec(db, "INSERT INTO requests (request_id, started_us, finished_us, streamed, "
                         "cost_pusd) VALUES ('old-1', 1, 2, 0, 42)", NULL, NULL, NULL) == SQLITE_OK);
  /* migrating to the version it has is a no-op */
  CHECK_EQ_INT(db_schema_migrate(db, 1, err, sizeof err), 0);
  CHECK_EQ_INT(db_schema_migrate(db, 99, err, sizeof err), -EINVAL);
  sqlite3_close(db);

  struct db_writer *w = db_open(path, NULL, err, sizeof err);
  CHECK_MSG(w != NULL, "%s", err);
  if (!w) return;
  struct db_row r = {.attempts = 3, .attempt_log = "[]", .http_status = 200};
  strcpy(r.request_id, "new-1");
  db_log(w, &r);
  db_close(w);
  db = open_ro(path);
  CHECK_EQ_INT(query_int(db, "PRAGMA user_version"), db_schema_version());
  CHECK_EQ_INT(query_int(db, "SELECT attempts FROM requests WHERE request_id='old-1'"), 0);
  CHECK_EQ_INT(query_int(db, "SELECT attempt_log IS NULL FROM requests WHERE request_id='old-1'"), 1);
  CHECK_EQ_INT(query_int(db, "SELECT cost_pusd FROM requests WHERE request_id='old-1'"), 42);
  CHECK_EQ_INT(query_int(db, "SELECT attempts FROM requests WHERE request_id='new-1'"), 3);
  CHECK_EQ_INT(query_int(db, "SELECT endpoint IS NULL FROM requests WHERE request_id='old-1'"), 1);
  sqlite3_close(db);
  rm_db(path);
}

static void test_refusals(void) {
  char err[512] = "";
  /* newer than this build */
  const char *path = tmp_path("new.db");
  sqlite3 *db;
  sqlite3_open(path, &db);
  sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL);
  sqlite3_close(db);
  CHECK(db_open(path, NULL, err, sizeof err) == NULL);
  char want[512];
  snprintf(want, sizeof want, "%s: database schema version 99 is newer than this tiergate (%d)",
           path, db_schema_version());
  CHECK_STR(err, want);
  rm_db(path);
  /* not a database */
  path = tmp_path("junk.db");
  FILE *f = fopen(path, "w");
  fputs("this is not an SQLite file, it is a text file of some length............\n", f);
  fclose(f);
  err[0] = 0;
  CHECK(db_open(path, NULL, err, sizeof err) == NULL);
  CHECK_MSG(strstr(err, "not a database") != NULL, "got: %s", err);
  rm_db(path);
  /* a directory that does not exist */
  err[0] = 0;
  CHECK(db_open("/nonexistent-dir/x.db", NULL, err, sizeof err) == NULL);
  CHECK_MSG(strstr(err, "/nonexistent-dir/x.db") && strstr(err, "unable to open"), "got: %s", err);
  CHECK(db_open("", NULL, err, sizeof err) == NULL);
  CHECK_STR(err, "no database path");
}

/* ------------------------------------------------------------------ back-pressure */

static void test_full_queue(void) {
  const char *path = tmp_path("full.db");
  struct db_options o = db_default_options();
  o.queue_cap = 4;
  o.overflow_cap = 2;
  o.batch_max = 1000;            /* the writer waits for a batch that never fills... */
  o.flush_interval_ms = 60000;   /* ...for a minute: the queue stays as db_log leaves it */
  struct db_writer *w = db_open(path, &o, NULL, 0);
  CHECK(w != NULL);
  if (!w) return;
  struct db_row r = {.http_status = 200};
  int rcs[8];
  for (int i = 0; i < 8; i++) {
    snprintf(r.request_id, sizeof r.request_id, "f%d", i);
    rcs[i] = db_log(w, &r);
  }
  for (int i = 0; i < 4; i++) CHECK_EQ_INT(rcs[i], 0);          /* the queue */
  CHECK_EQ_INT(rcs[4], 1);                                      /* the reserve: shed work */
  CHECK_EQ_INT(rcs[5], 1);
  CHECK_EQ_INT(rcs[6], -ENOSPC);                                /* the hard cap */
  CHECK_EQ_INT(rcs[7], -ENOSPC);
  struct db_stats st;
  db_stats(w, &st);
  CHECK_EQ_U64(st.queued, 6);
  CHECK_EQ_U64(st.overflowed, 2);
  CHECK_EQ_U64(st.rejected, 2);
  CHECK_EQ_U64(st.depth, 6);
  CHECK_EQ_U64(st.written, 0);
  db_sync(w);   /* a sync does not wait for the interval either */
  db_stats(w, &st);
  CHECK_EQ_U64(st.written, 6);
  CHECK_EQ_U64(st.depth, 0);
  /* drained: the queue takes rows again */
  CHECK_EQ_INT(db_log(w, &r), 0);
  db_close(w);
  CHECK_EQ_INT(count_rows(path), 7);
  CHECK_EQ_INT(db_log(NULL, &r), -EINVAL);
  rm_db(path);
}

/* Another connection holds the write lock for a while: the writer waits on the disk, db_log()
 * does not. */
struct locker { const char *path; int hold_ms; _Atomic int locked; };
static void *hold_lock(void *p) {
  struct locker *l = p;
  sqlite3 *db;
  sqlite3_open(l->path, &db);
  sqlite3_busy_timeout(db, 5000);
  sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  l->locked = 1;
  nanosleep(&(struct timespec){l->hold_ms / 1000, (long)(l->hold_ms % 1000) * 1000000L}, NULL);
  sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
  sqlite3_close(db);
  return NULL;
}

static void test_disk_blocked(void) {
  const char *path = tmp_path("blocked.db");
  struct db_options o = db_default_options();
  o.batch_max = 16;
  o.flush_interval_ms = 1;
  struct db_writer *w = db_open(path, &o, NULL, 0);
  CHECK(w != NULL);
  if (!w) return;
  struct locker l = {.path = path, .hold_ms = 600};
  pthread_t th;
  pthread_create(&th, NULL, hold_lock, &l);
  while (!l.locked) nanosleep(&(struct timespec){0, 1000000}, NULL);
  struct th_arg a = {.w = w, .id = 0, .n = 3000};
  double t0 = now_s();
  logger(&a);
  double logged = now_s() - t0;
  struct db_stats st;
  db_stats(w, &st);
  CHECK_MSG(logged < 0.5, "3000 db_log calls took %.3f s while the disk was locked", logged);
  CHECK_MSG(st.written == 0, "written %llu while locked", (unsigned long long)st.written);
  CHECK_EQ_INT(a.rejected, 0);
  pthread_join(th, NULL);
  db_sync(w);
  db_stats(w, &st);
  CHECK_EQ_U64(st.written, 3000);
  CHECK_EQ_U64(st.failed, 0);
  db_close(w);
  CHECK_EQ_INT(count_rows(path), 3000);
  rm_db(path);
}

/* A write that cannot succeed (the table was dropped behind the writer's back): the rows are
 * counted as failed, the error kept, and sync/close do not hang. */
static void test_write_error(void) {
  const char *path = tmp_path("err.db");
  struct db_writer *w = db_open(path, NULL, NULL, 0);
  CHECK(w != NULL);
  if (!w) return;
  sqlite3 *db;
  sqlite3_open(path, &db);
  CHECK(sqlite3_exec(db, "DROP TABLE requests", NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_close(db);
  struct db_row r = {.http_status = 200};
  for (int i = 0; i < 5; i++) db_log(w, &r);
  db_sync(w);
  struct db_stats st;
  db_stats(w, &st);
  CHECK_EQ_U64(st.failed, 5);
  CHECK_EQ_U64(st.written, 0);
  CHECK_MSG(strstr(st.last_error, "no such table") != NULL, "last_error: %s", st.last_error);
  db_close(w);
  rm_db(path);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/tiergate-db-XXXXXX");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  test_round_trip();
  test_long_strings();
  test_threads();
  test_close_flushes();
  test_reopen_idempotent();
  test_concurrent_open();
  test_old_version();
  test_refusals();
  test_full_queue();
  test_disk_blocked();
  test_write_error();
  rmdir(dir);
  return check_done();
}
