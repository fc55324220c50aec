/*
 * schema.c: the request log's schema, its migrations, and the connection settings.
 *
 * DESIGN. PRAGMA user_version holds the schema version. Migrations are forward-only, listed in
 * order below, and never edited once shipped: a change is a new entry. Each runs in one IMMEDIATE
 * transaction that also sets user_version, and re-reads the version after taking the write lock,
 * so two processes opening one file at once migrate it once. A database newer than this build is
 * refused rather than written with the wrong columns.
 *
 * Units in the table: times since the epoch in microseconds (started_us, finished_us), durations
 * in milliseconds (REAL), money in pico-USD (INTEGER, exact; cost_usd and baseline_cost_usd are
 * virtual columns dividing by 1e12 for people). NULL means unknown: a cost without a price, a
 * latency that was never measured, tokens of a request that never reached an upstream.
 *
 * Connection: WAL (readers such as `sqlite3 tiergate.db` or a dashboard never block the writer),
 * synchronous=NORMAL (a commit is durable against a process crash; an OS crash may lose the last
 * commits but never corrupts the file), busy_timeout so a checkpointing reader does not fail a
 * batch.
 */
#include "db/db.h"
#include "db/internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct migration {
  int version;
  const char *what;
  const char *sql;
};

static const struct migration migrations[] = {
    {1, "request log",
     "CREATE TABLE requests ("
     "  id INTEGER PRIMARY KEY,"
     "  request_id TEXT NOT NULL,"
     "  started_us INTEGER NOT NULL,"          /* wall clock, us since the epoch */
     "  finished_us INTEGER NOT NULL,"
     "  client_api TEXT,"                      /* openai | anthropic */
     "  tenant TEXT,"
     "  task TEXT,"
     "  route TEXT,"                           /* provider/model that served it */
     "  provider TEXT,"
     "  model TEXT,"                           /* public name the client asked for */
     "  upstream_model TEXT,"
     "  streamed INTEGER NOT NULL,"
     "  input_tokens INTEGER,"                 /* all prompt tokens, cached included */
     "  cached_tokens INTEGER,"
     "  cache_write_tokens INTEGER,"
     "  output_tokens INTEGER,"                /* reasoning included */
     "  reasoning_tokens INTEGER,"
     "  cost_pusd INTEGER,"                    /* pico-USD; NULL unknown */
     "  baseline_cost_pusd INTEGER,"
     "  total_ms REAL,"
     "  upstream_ms REAL,"
     "  ttft_ms REAL,"
     "  overhead_ms REAL,"
     "  http_status INTEGER,"
     "  error_class TEXT,"
     "  error_message TEXT,"
     "  cost_usd REAL GENERATED ALWAYS AS (cost_pusd / 1e12) VIRTUAL,"
     "  baseline_cost_usd REAL GENERATED ALWAYS AS (baseline_cost_pusd / 1e12) VIRTUAL"
     ");"
     /* time-range scans, and per-model / per-task reports over a time range */
     "CREATE INDEX requests_started ON requests(started_us);"
     "CREATE INDEX requests_model_started ON requests(model, started_us);"
     "CREATE INDEX requests_task_started ON requests(task, started_us);"
     "CREATE INDEX requests_request_id ON requests(request_id);"},
    {2, "upstream attempts (retries, fallbacks)",
     "ALTER TABLE requests ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE requests ADD COLUMN attempt_log TEXT;"},   /* JSON: why earlier ones failed */
    {3, "endpoint of every request (operational GETs are logged too)",
     "ALTER TABLE requests ADD COLUMN endpoint TEXT;"},      /* "POST /v1/messages", ... */
    {4, "local answers: time queued for a slot, prefill time, decode speed",
     "ALTER TABLE requests ADD COLUMN queue_ms REAL;"
     "ALTER TABLE requests ADD COLUMN prefill_ms REAL;"
     "ALTER TABLE requests ADD COLUMN decode_tps REAL;"},
};

#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

const char db_insert_sql[] =
    "INSERT INTO requests (request_id, started_us, finished_us, client_api, tenant, task, route,"
    " provider, model, upstream_model, streamed, input_tokens, cached_tokens, cache_write_tokens,"
    " output_tokens, reasoning_tokens, cost_pusd, baseline_cost_pusd, total_ms, upstream_ms,"
    " ttft_ms, overhead_ms, http_status, error_class, error_message, attempts, attempt_log,"
    " endpoint, queue_ms, prefill_ms, decode_tps)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";

int db_schema_version(void) { return migrations[N_MIGRATIONS - 1].version; }

static int user_version(sqlite3 *db, int *v) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK) return -1;
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *v = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return rc == SQLITE_ROW ? 0 : -1;
}

int db_schema_migrate(sqlite3 *db, int target, char *err, size_t errlen) {
  int cur;
  if (target < 0 || target > db_schema_version()) {
    snprintf(err, errlen, "unknown schema version %d", target);
    return -EINVAL;
  }
  if (user_version(db, &cur) < 0) {
    snprintf(err, errlen, "cannot read the schema version: %s", sqlite3_errmsg(db));
    return -EIO;
  }
  if (cur > db_schema_version()) {
    snprintf(err, errlen, "database schema version %d is newer than this tiergate (%d)", cur,
             db_schema_version());
    return -EINVAL;
  }
  for (int i = 0; i < N_MIGRATIONS && migrations[i].version <= target; i++) {
    const struct migration *m = &migrations[i];
    if (m->version <= cur) continue;
    char *msg = NULL;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK) goto fail;
    /* another process may have migrated while we waited for the lock */
    if (user_version(db, &cur) < 0) goto fail_rollback;
    if (cur >= m->version) {
      sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
      continue;
    }
    char bump[64];
    snprintf(bump, sizeof bump, "PRAGMA user_version = %d", m->version);
    if (sqlite3_exec(db, m->sql, NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(db, bump, NULL, NULL, &msg) != SQLITE_OK)
      goto fail_rollback;
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) goto fail_rollback;
    cur = m->version;
    continue;
  fail_rollback:
    snprintf(err, errlen, "migration %d (%s) failed: %s", m->version, m->what,
             msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return -EIO;
  fail:
    snprintf(err, errlen, "migration %d (%s) failed: %s", m->version, m->what,
             msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return -EIO;
  }
  return 0;
}

int db_schema_open(const char *path, sqlite3 **out, char *err, size_t errlen) {
  sqlite3 *db = NULL;
  *out = NULL;
  /* NOMUTEX: one thread uses the connection at a time (opened here, then handed to the writer) */
  int rc = sqlite3_open_v2(path, &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    snprintf(err, errlen, "cannot open %s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close(db);
    return -EIO;
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, 5000);
  /* journal_mode answers with the mode in force: "wal", or "memory" for :memory: databases */
  sqlite3_stmt *st;
  char mode[16] = "";
  if (sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL) == SQLITE_OK) {
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
      snprintf(mode, sizeof mode, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
  }
  if (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0) {
    snprintf(err, errlen, "cannot use %s: journal_mode=WAL refused (%s): %s", path,
             mode[0] ? mode : "error", sqlite3_errmsg(db));
    sqlite3_close(db);
    return -EIO;
  }
  char *msg = NULL;
  if (sqlite3_exec(db, "PRAGMA synchronous=NORMAL", NULL, NULL, &msg) != SQLITE_OK) {
    snprintf(err, errlen, "cannot use %s: %s", path, msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    sqlite3_close(db);
    return -EIO;
  }
  int mrc = db_schema_migrate(db, db_schema_version(), err, errlen);
  if (mrc < 0) {
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s: %s", path, err);
    snprintf(err, errlen, "%s", tmp);
    sqlite3_close(db);
    return mrc;
  }
  *out = db;
  return 0;
}
