/*
 * itest.h: the fixture of the gateway integration tests (tests/router/test_gw_*.c): a mock
 * upstream and `tiergate serve` on ephemeral ports with the standard test config (see
 * th_gw_test_yaml in tests/mock/harness.h), a temp SQLite file, and helpers that send requests
 * while remembering every x-tiergate-request-id, so each test can end by checking that the
 * request log holds exactly one row per request it made.
 *
 * Header-only (static functions) because each test is its own executable; include it once.
 */
#ifndef TIERGATE_TESTS_ITEST_H
#define TIERGATE_TESTS_ITEST_H

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "check.h"
#include "mock/harness.h"

#define jstr th_jstr
#define jint th_jint
#define jget th_jget

#define ITEST_MAX_IDS 4096

struct itest {
  struct th_mock mock;
  struct th_gw gw;
  char *ids[ITEST_MAX_IDS];   /* x-tiergate-request-id of every API request made */
  int n_ids;
  int no_id;                  /* API responses that came back without the header */
  bool gw_stopped;            /* a test stopped the gateway itself... */
  int gw_status;              /* ...and this was its wait status */
};

static struct itest it;

/* Prices in pico-USD per token = micro-USD per 1M tokens (tiergate's built-in table, checked
 * against ../shared/data/prices.json by the policies tests). */
#define P_4O_MINI_IN 150000LL
#define P_4O_MINI_CACHED 75000LL
#define P_4O_MINI_OUT 600000LL
#define P_4O_IN 2500000LL
#define P_4O_CACHED 1250000LL
#define P_4O_OUT 10000000LL

/* Exact cost in pico-USD: prompt includes cached; completion includes reasoning. */
static inline long long itest_cost(long long prompt, long long cached, long long completion,
                                   long long p_in, long long p_cached, long long p_out) {
  return (prompt - cached) * p_in + cached * p_cached + completion * p_out;
}

static int itest_start(const char *limits, const char *extra_models) {
  memset(&it, 0, sizeof it);
  signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (th_mock_start(&it.mock, NULL)) return -1;
  if (th_gw_prepare(&it.gw)) return -1;
  char *yaml = th_gw_test_yaml(&it.gw, it.mock.port, limits, extra_models);
  int rc = th_gw_start(&it.gw, yaml, th_gw_test_env());
  free(yaml);
  return rc;
}

static inline void itest_note_id(const struct th_resp *r) {
  char id[128];
  if (!th_resp_header(r, "x-tiergate-request-id", id, sizeof id)) {
    if (r->status) it.no_id++;
    return;
  }
  for (int i = 0; i < it.n_ids; i++)
    if (!strcmp(it.ids[i], id)) {
      CHECK_MSG(0, "request id %s returned twice", id);
      return;
    }
  if (it.n_ids < ITEST_MAX_IDS) it.ids[it.n_ids++] = strdup(id);
}

/* POST JSON to the gateway's PATH and remember the request id. */
static inline void gw_post(const char *path, const char *json, struct th_resp *r) {
  CHECK_EQ_INT(th_post_json(it.gw.url, path, json, r), 0);
  itest_note_id(r);
}

static inline void gw_chat(const char *json, struct th_resp *r) {
  gw_post("/v1/chat/completions", json, r);
}

/* The same request straight to the mock, for comparison. */
static inline json_t *direct(const char *json, struct th_resp *r) {
  CHECK_EQ_INT(th_post_json(it.mock.url, "/v1/chat/completions", json, r), 0);
  return r->json;
}

/* Remembers the request id found in a raw HTTP response head (raw-socket tests). */
static inline void itest_note_raw(const char *raw) {
  const char *id = strcasestr(raw, "x-tiergate-request-id:");
  char v[128];
  if (id && sscanf(id + 22, " %127[^\r\n]", v) == 1 && it.n_ids < ITEST_MAX_IDS)
    it.ids[it.n_ids++] = strdup(v);
}

/* Any request to the gateway, remembering the id. */
static inline void gw_req(struct th_req *rq, const char *path, struct th_resp *r) {
  char url[512];
  snprintf(url, sizeof url, "%s%s", it.gw.url, path);
  rq->url = url;
  CHECK_EQ_INT(th_http(rq, r), 0);
  itest_note_id(r);
}

/* The log row of REQUEST_ID, waiting up to timeout_ms for the writer to commit it. NULL if it
 * never shows. Caller decrefs. */
static inline json_t *db_row(const char *request_id, int timeout_ms) {
  char *sql = th_fmt("SELECT * FROM requests WHERE request_id = '%s'", request_id);
  double deadline = th_now_ms() + timeout_ms;
  json_t *row = NULL;
  while (!row) {
    json_t *rows = th_db_query(it.gw.db_path, sql);
    if (rows && json_array_size(rows) == 1) row = json_incref(json_array_get(rows, 0));
    if (rows && json_array_size(rows) > 1) CHECK_MSG(0, "%zu rows for %s", json_array_size(rows), request_id);
    json_decref(rows);
    if (row || th_now_ms() > deadline) break;
    th_sleep_ms(20);
  }
  free(sql);
  if (!row) CHECK_MSG(0, "no log row for request %s", request_id);
  return row;
}

/* The log row of a response (by its x-tiergate-request-id). */
static inline json_t *db_row_of(const struct th_resp *r) {
  char id[128];
  if (!th_resp_header(r, "x-tiergate-request-id", id, sizeof id)) {
    CHECK_MSG(0, "response has no x-tiergate-request-id");
    return NULL;
  }
  return db_row(id, 5000);
}

static inline long long row_int(const json_t *row, const char *col) { return th_jint(row, col); }
static inline bool row_null(const json_t *row, const char *col) {
  return json_is_null(json_object_get(row, col));
}

/* Ends the test: stops the gateway with SIGTERM (it must exit 0: a clean drain, and no leak under
 * ASan), then checks that the log has exactly one row per request made. */
static void itest_finish(void) {
  int st = it.gw_stopped ? it.gw_status : th_gw_stop(&it.gw, SIGTERM, 15000);
  CHECK_MSG(st == 0, "tiergate exit status %d (want a clean 0)", st);
  CHECK_MSG(it.no_id == 0, "%d response(s) without x-tiergate-request-id", it.no_id);
  json_t *rows = th_db_query(it.gw.db_path, "SELECT request_id FROM requests");
  CHECK(rows != NULL);
  int found = 0;
  for (int i = 0; i < it.n_ids; i++) {
    int n = 0;
    size_t k;
    json_t *row;
    json_array_foreach(rows, k, row) if (!strcmp(jstr(row, "request_id"), it.ids[i])) n++;
    CHECK_MSG(n == 1, "request %s has %d log rows", it.ids[i], n);
    found += n == 1;
  }
  printf("%d requests, %d with exactly one log row, %zu rows in all\n", it.n_ids, found,
         rows ? json_array_size(rows) : 0);
  json_decref(rows);
  for (int i = 0; i < it.n_ids; i++) free(it.ids[i]);
  int ms = th_mock_stop(&it.mock);
  CHECK_MSG(ms == 0, "mock exit status %d", ms);
  if (check_failures_) {
    fprintf(stderr, "kept %s (config, database, gateway stdout) for a look\n", it.gw.dir);
  } else {
    th_rmdir(it.gw.dir);
  }
  curl_global_cleanup();
}

/* SSE helpers: the JSON chunks of a stream body, and whether it ended with [DONE]. */
static inline json_t *sse_chunks(const struct th_resp *r, int *done) {
  json_t *data = th_sse_data(r->body, r->body_len);
  json_t *chunks = json_array();
  *done = 0;
  size_t i;
  json_t *d;
  json_array_foreach(data, i, d) {
    const char *s = json_string_value(d);
    if (!strcmp(s, "[DONE]")) {
      (*done)++;
      CHECK_MSG(i == json_array_size(data) - 1, "[DONE] is not the last frame");
      continue;
    }
    json_t *c = json_loads(s, 0, NULL);
    CHECK_MSG(c != NULL, "stream frame is not JSON: %.200s", s);
    if (c) json_array_append_new(chunks, c);
  }
  json_decref(data);
  return chunks;
}

#endif
