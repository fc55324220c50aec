/*
 * db.h: the request log. Public header of db/.
 *
 * DESIGN. SQLite in WAL mode, schema versioned with PRAGMA user_version and forward-only
 * migrations. The event loop never touches the disk: db_log() copies the row into a bounded
 * in-memory queue and returns at once; one writer thread drains the queue in batched
 * transactions. db_close() (clean shutdown) flushes every queued row before returning.
 *
 * No row is lost: when the queue is full, db_log() still accepts the row into a small overflow
 * reserve (counted in db_stats) rather than dropping it, and reports back-pressure so the caller
 * can shed new work; it only fails when the hard cap (queue + reserve) is reached.
 *
 * The table is `requests` (schema in db/schema.c): one row per request, money as exact pico-USD
 * integers (cost_pusd, baseline_cost_pusd) with virtual cost_usd / baseline_cost_usd columns,
 * indexes on started_us, (model, started_us), (task, started_us) and request_id. Read it with any
 * SQLite client while the gateway runs (WAL: readers never block the writer).
 *
 * Thread-safety: db_log(), db_sync() and db_stats() may be called from any thread; open/close
 * from one.
 *
 * Example
 *   char err[256];
 *   struct db_writer *w = db_open("tiergate.db", NULL, err, sizeof err);
 *   if (!w) { fprintf(stderr, "%s\n", err); return 1; }
 *   struct db_row row = {.started_us = t0, .finished_us = t1, .model = "gpt-4o-mini",
 *                        .cost_pusd = 240000000, .baseline_cost_pusd = -1, .http_status = 200};
 *   snprintf(row.request_id, sizeof row.request_id, "%s", id);
 *   if (db_log(w, &row) == 1) shed_new_work();   // over queue_cap: the disk is behind
 *   ...
 *   db_close(w);                                 // every accepted row is on disk
 *
 * Measured (bench_db, 2-core shared machine): about 50k rows/s sustained into a fresh file,
 * a few microseconds per db_log().
 */
#ifndef TIERGATE_DB_H
#define TIERGATE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One request as it is logged. Strings are copied by db_log() (names and ids up to 1 KiB,
 * error_message 4 KiB, attempt_log 64 KiB; longer ones are cut at a UTF-8 boundary); NULL means
 * SQL NULL. Unknown numbers are stored as NULL: negative token counts and costs, negative or NaN
 * durations, http_status <= 0. */
struct db_row {
  char request_id[40];
  int64_t started_us;         /* wall clock, microseconds since the epoch */
  int64_t finished_us;
  const char *client_api;     /* "openai" | "anthropic" */
  const char *endpoint;       /* "POST /v1/chat/completions", "GET /healthz", ... */
  const char *tenant;         /* virtual key / tenant, if any */
  const char *task;           /* filled by the router issues; NULL for now */
  const char *route;          /* "provider/model" that served it, or NULL */
  const char *provider;
  const char *model;          /* public model name the client asked for */
  const char *upstream_model;
  bool streamed;
  int64_t input_tokens, cached_tokens, cache_write_tokens, output_tokens, reasoning_tokens;
  int64_t cost_pusd;          /* pico-USD, -1 unknown */
  int64_t baseline_cost_pusd; /* what the baseline model would have charged, -1 unknown */
  double total_ms;
  double upstream_ms;         /* -1 if no upstream call */
  double ttft_ms;             /* time to first token (streams) or first byte; -1 if none */
  double overhead_ms;         /* total minus upstream */
  int http_status;
  const char *error_class;    /* NULL on success; else "bad_request", "upstream_timeout", ... */
  const char *error_message;
  int attempts;               /* upstream attempts (issue 4) */
  const char *attempt_log;    /* JSON text: why earlier attempts failed (issue 4); NULL if none */
  /* a local model answered (schema v4): else the three columns are NULL */
  bool local;
  double queue_ms;            /* waiting for one of the model's slots */
  double prefill_ms;          /* slot to first token */
  double decode_tps;          /* generated tokens per second after the first; -1 unknown */
};

struct db_stats {
  uint64_t queued;        /* accepted by db_log */
  uint64_t written;       /* committed to disk */
  uint64_t overflowed;    /* accepted into the overflow reserve */
  uint64_t rejected;      /* refused at the hard cap (lost) */
  uint64_t batches;       /* transactions attempted */
  size_t depth;           /* rows waiting now */
  uint64_t failed;        /* accepted but lost to a write error (disk full, I/O error) */
  char last_error[256];   /* the last write error, "" if none */
};

struct db_writer;

/* Start from db_default_options() and change what you need. Zero queue_cap, batch_max or
 * flush_interval_ms take the default; zero overflow_cap means no reserve. */
struct db_options {
  size_t queue_cap;       /* default 65536 rows */
  size_t overflow_cap;    /* default 65536 rows more */
  int batch_max;          /* rows per transaction, default 512 */
  int flush_interval_ms;  /* commit at least this often when rows wait, default 50 */
};
struct db_options db_default_options(void);

/* Opens (creating if needed) and migrates PATH, starts the writer thread. OPT may be NULL for
 * the defaults. Returns NULL with a message in err on failure (unwritable path, not an SQLite
 * file, a schema newer than this build). */
struct db_writer *db_open(const char *path, const struct db_options *opt, char *err, size_t errlen);
/* Flushes every queued row, stops the writer, closes the database and frees W (calls racing
 * with it get -EPIPE; none may follow it). Accepts NULL. */
void db_close(struct db_writer *w);

/* Queues a copy of ROW. Returns 0; 1 if accepted into the overflow reserve (back-pressure: shed
 * new work); -ENOSPC if refused at the hard cap; -EPIPE after close. Never blocks on disk. */
int db_log(struct db_writer *w, const struct db_row *row);
/* Blocks until every row queued before the call is committed (tests, shutdown). */
void db_sync(struct db_writer *w);
void db_stats(struct db_writer *w, struct db_stats *out);

/* Current schema version after migrations. */
int db_schema_version(void);

#endif
