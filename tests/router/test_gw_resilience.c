/*
 * test_gw_resilience.c: retries, fallbacks, load balancing, circuit breakers and deadlines,
 * against the real binary with faults injected by the mock upstream (three mock processes A, B,
 * C behind providers a, b, c, A's Anthropic surface behind provider an, and a closed port behind
 * provider dead).
 *
 * Every case asserts what the client received (status, body or stream, x-tiergate-route,
 * x-tiergate-attempts, x-should-retry), how long it took (the waits the config and the upstream
 * asked for, within tolerances that allow for ASan on a busy machine), how many requests the
 * upstreams saw, and the request's log row (attempts, route, error class, and the attempt_log
 * JSON: per attempt the deployment, status / class, latency, the wait before it, what came
 * next). Test configs use millisecond backoffs and cooldowns to keep the wall time small.
 */
#include <pthread.h>

#include "router/itest.h"

static struct th_mock mock_b, mock_c;

static long long count(const struct th_mock *m) { return th_mock_stat(m, "requests"); }

/* POSTs a chat request for MODEL with EXTRA (members appended to the body, may be NULL) and
 * HEADERS (NULL-terminated "Name: value" list or NULL); returns the wall time in ms. */
static double chat(const char *model, bool stream, const char *extra, const char *const *headers,
                   struct th_resp *r) {
  char *body = th_fmt("{\"model\":\"%s\",\"stream\":%s,\"messages\":[{\"role\":\"user\","
                      "\"content\":\"a b\"}]%s%s}",
                      model, stream ? "true" : "false", extra ? "," : "", extra ? extra : "");
  const char *def[] = {"Content-Type: application/json", NULL};
  const char *hdr[8];
  size_t n = 0;
  hdr[n++] = "Content-Type: application/json";
  for (size_t i = 0; headers && headers[i] && n < 7; i++) hdr[n++] = headers[i];
  hdr[n] = NULL;
  struct th_req rq = {.method = "POST", .body = body, .headers = headers ? hdr : def,
                      .timeout_ms = 15000};
  double t0 = th_now_ms();
  gw_req(&rq, "/v1/chat/completions", r);
  double took = th_now_ms() - t0;
  free(body);
  return took;
}

static const char *hdr(const struct th_resp *r, const char *name) {
  static char buf[4][256];
  static int k;
  k = (k + 1) % 4;
  return th_resp_header(r, name, buf[k], sizeof buf[k]);
}

/* The log row and its attempt_log parsed (NULL when the column is NULL). */
static json_t *row_and_log(const struct th_resp *r, json_t **log) {
  json_t *row = db_row_of(r);
  *log = NULL;
  const char *al = row ? jstr(row, "attempt_log") : NULL;
  if (al) {
    *log = json_loads(al, 0, NULL);
    CHECK_MSG(json_is_array(*log), "attempt_log is not a JSON array: %s", al);
  }
  return row;
}

static void check_ok_plain(const struct th_resp *r, const char *what) {
  CHECK_MSG(r->status == 200, "%s: status %ld (body %.300s)", what, r->status, r->body);
  CHECK_MSG(jstr(r->json, "choices.0.message.content") != NULL, "%s: no content in %.200s", what,
            r->body);
  CHECK_MSG(hdr(r, "x-should-retry") == NULL, "%s: x-should-retry on a success", what);
}

/* ------------------------------------------------------------------ retries */

static void test_429_retry_after(void) {
  struct th_resp r;
  json_t *log;
  /* retry-after-ms: 300 -> the gateway waits 300 ms, then the second attempt succeeds */
  long long a0 = count(&it.mock);
  double took = chat("retry", false,
                     "\"mock\":{\"status\":429,\"retry_after_ms\":\"300\",\"fail_times\":1,\"tag\":\"ra1\"}",
                     NULL, &r);
  check_ok_plain(&r, "429 retry-after-ms");
  CHECK_MSG(took >= 295 && took < 300 + 600, "429 retry-after-ms 300: took %.0f ms", took);
  CHECK_STR(hdr(&r, "x-tiergate-attempts"), "2");
  CHECK_STR(hdr(&r, "x-tiergate-route"), "a/gpt-4o-mini");
  CHECK_EQ_INT(count(&it.mock) - a0, 2);
  json_t *row = row_and_log(&r, &log);
  CHECK_EQ_INT(row_int(row, "attempts"), 2);
  CHECK_EQ_INT(row_int(row, "http_status"), 200);
  CHECK(row_null(row, "error_class"));
  CHECK_EQ_INT(json_array_size(log), 2);
  CHECK_EQ_INT(jint(log, "0.attempt"), 1);
  CHECK_EQ_INT(jint(log, "0.status"), 429);
  CHECK_STR(jstr(log, "0.class"), "429");
  CHECK_STR(jstr(log, "0.deployment"), "a/gpt-4o-mini");
  CHECK_EQ_INT(jint(log, "0.retry_after_ms"), 300);
  CHECK_STR(jstr(log, "0.next"), "retry");
  CHECK_EQ_INT(jint(log, "1.status"), 200);
  CHECK_STR(jstr(log, "1.next"), "answer");
  double waited = th_jnum(log, "1.waited_ms");
  CHECK_MSG(waited >= 295 && waited < 300 + 400, "waited %.1f ms for retry-after-ms 300", waited);
  printf("429 retry-after-ms 300: client %.0f ms, gateway waited %.1f ms\n", took, waited);
  json_decref(log);
  json_decref(row);
  th_resp_free(&r);

  /* retry-after in seconds (the standard header) */
  took = chat("retry", false,
              "\"mock\":{\"status\":429,\"retry_after\":\"1\",\"fail_times\":1,\"tag\":\"ra2\"}",
              NULL, &r);
  check_ok_plain(&r, "429 retry-after 1");
  CHECK_MSG(took >= 995 && took < 1000 + 700, "429 retry-after 1 s: took %.0f ms", took);
  row = row_and_log(&r, &log);
  CHECK_EQ_INT(jint(log, "0.retry_after_ms"), 1000);
  waited = th_jnum(log, "1.waited_ms");
  CHECK_MSG(waited >= 995 && waited < 1000 + 400, "waited %.1f ms for retry-after 1", waited);
  printf("429 retry-after 1: client %.0f ms, gateway waited %.1f ms\n", took, waited);
  json_decref(log);
  json_decref(row);
  th_resp_free(&r);

  /* longer than the model's max_delay (1500 ms): not waited for; the 429 goes back at once with
   * its retry-after, and x-should-retry: false (the gateway gave up on purpose) */
  a0 = count(&it.mock);
  took = chat("retry", false,
              "\"mock\":{\"status\":429,\"retry_after\":\"5\",\"fail_times\":1,\"tag\":\"ra3\"}",
              NULL, &r);
  CHECK_EQ_INT(r.status, 429);
  CHECK_MSG(took < 600, "429 over the cap: took %.0f ms", took);
  CHECK_STR(hdr(&r, "retry-after"), "5");
  CHECK_STR(hdr(&r, "x-should-retry"), "false");
  CHECK_STR(jstr(r.json, "error.code"), "rate_limit_exceeded");   /* the upstream's body */
  CHECK_EQ_INT(count(&it.mock) - a0, 1);
  row = row_and_log(&r, &log);
  CHECK_EQ_INT(row_int(row, "attempts"), 1);
  CHECK_STR(jstr(row, "error_class"), "upstream_error");
  CHECK_EQ_INT(json_array_size(log), 1);
  CHECK_EQ_INT(jint(log, "0.retry_after_ms"), 5000);
  CHECK_STR(jstr(log, "0.next"), "final");
  json_decref(log);
  json_decref(row);
  th_resp_free(&r);
}

static void test_5xx(void) {
  struct th_resp r;
  json_t *log;
  /* 500 once: retried after the backoff (jitter none: base 50 ms) */
  double took = chat("retry", false, "\"mock\":{\"status\":500,\"fail_times\":1,\"tag\":\"e500\"}",
                     NULL, &r);
  check_ok_plain(&r, "500 then success");
  CHECK_MSG(took >= 48 && took < 50 + 600, "500 then success: %.0f ms", took);
  json_t *row = row_and_log(&r, &log);
  CHECK_EQ_INT(row_int(row, "attempts"), 2);
  CHECK_STR(jstr(log, "0.class"), "5xx");
  CHECK_EQ_INT(jint(log, "0.status"), 500);
  CHECK_MSG(th_jnum(log, "1.waited_ms") >= 48, "waited %.1f ms, backoff is 50 ms",
            th_jnum(log, "1.waited_ms"));
  json_decref(log);
  json_decref(row);
  th_resp_free(&r);

  /* 500 every time: three attempts, backoffs 50 then 100 ms, the last 500 passed through with
   * x-should-retry: false so the SDK does not multiply the attempts */
  long long a0 = count(&it.mock);
  took = chat("retry", false, "\"mock\":{\"status\":500,\"tag\":\"e500b\"}", NULL, &r);
  CHECK_EQ_INT(r.status, 500);
  CHECK_STR(jstr(r.json, "error.type"), "server_error");
  CHECK_STR(hdr(&r, "x-should-retry"), "false");
  CHECK_STR(hdr(&r, "x-tiergate-attempts"), "3");
  CHECK_EQ_INT(count(&it.mock) - a0, 3);
  CHECK_MSG(took >= 148 && took < 150 + 800, "3 attempts with 50+100 ms backoff: %.0f ms", took);
  row = row_and_log(&r, &log);
  CHECK_EQ_INT(row_int(row, "attempts"), 3);
  CHECK_EQ_INT(row_int(row, "http_status"), 500);
  CHECK_STR(jstr(row, "error_class"), "upstream_error");
  CHECK_EQ_INT(json_array_size(log), 3);
  CHECK_STR(jstr(log, "0.next"), "retry");
  CHECK_STR(jstr(log, "1.next"), "retry");
  CHECK_STR(jstr(log, "2.next"), "final");
  double w1 = th_jnum(log, "1.waited_ms"), w2 = th_jnum(log, "2.waited_ms");
  CHECK_MSG(w1 >= 48 && w1 < 300, "first backoff %.1f ms (want 50)", w1);
  CHECK_MSG(w2 >= 98 && w2 < 350, "second backoff %.1f ms (want 100)", w2);
  printf("500 x3: client %.0f ms, backoffs %.1f and %.1f ms\n", took, w1, w2);
  json_decref(log);
  json_decref(row);
  th_resp_free(&r);

  /* 529 (Anthropic's overloaded) twice, then a success, streamed */
  a0 = count(&it.mock);
  took = chat("retry", true, "\"mock\":{\"status\":529,\"fail_times\":2,\"tag\":\"e529\"}", NULL, &r);
  CHECK_EQ_INT(r.status, 200);
  int done;
  json_t *chunks = sse_chunks(&r, &done);
  CHECK_EQ_INT(done, 1);
  CHECK_STR(jstr(chunks, "1.choices.0.delta.content"), "a");
  json_decref(chunks);
  CHECK_EQ_INT(count(&it.mock) - a0, 3);
  row = row_and_log(&r, &log);
  CHECK_EQ_INT(row_int(row, "attempts"), 3);
  CHECK_EQ_INT(row_int(row, "streamed"), 1);
  CHECK_STR(jstr(log, "0.class"), "529");
  CHECK_STR(jstr(log, "1.class"), "529");
  CHECK_STR(jstr(log, "2.next"), "answer");
  json_decref(log);
  json_decref(row);
  th_resp_free(&r);

  /* a 400 is never retried; the upstream's x-should-retry passes through untouched */
  a0 = count(&it.mock);
  chat("retry", false, "\"mock\":{\"status\":400,\"tag\":\"e400\"}", NULL, &r);
  CHECK_EQ_INT(r.status, 400);
  CHECK_EQ_INT(count(&it.mock) - a0, 1);
  CHECK(hdr(&r, "x-should-retry") == NULL);
  th_resp_free(&r);
}

static void test_stalls_and_resets(void) {
  struct th_resp r;
  json_t *log;
  /* no first byte within 250 ms: the attempt times out, the retry succeeds */
  long long a0 = count(&it.mock);
  double took = chat("retry", false,
                     "\"mock\":{\"delay_ms\":3000,\"fail_times\":1,\"tag\":\"fb1\"}", NULL, &r);
  check_ok_plain(&r, "stall before the first byte");
  CHECK_MSG(took >= 240 && took < 250 + 50 + 700, "stall then retry: %.0f ms", took);
  CHECK_EQ_INT(count(&it.mock) - a0, 2);
  json_t *row = row_and_log(&r, &log);
  CHECK_EQ_INT(row_int(row, "attempts"), 2);
  CHECK_STR(jstr(log, "0.class"), "timeout");
  CHECK_STR(jstr(log, "0.error"), "timeout_first_byte");
  CHECK(jget(log, "0.status") == NULL);
  double lat = th_jnum(log, "0.latency_ms");
  CHECK_MSG(lat >= 240 && lat < 600, "timed-out attempt lasted %.1f ms (first_byte 250 ms)", lat);
  json_decref(log);
  json_decref(row);
  th_resp_free(&r);

  /* a stream whose headers come at once but whose first event stalls: nothing was relayed yet,
   * so the idle timeout (250 ms) is retried and the client sees one clean stream */
  took = chat("retry", true,
              "\"mock\":{\"first_chunk_delay_ms\":3000,\"fail_times\":1,\"tag\":\"ttft\"}", NULL, &r);
  CHECK_EQ_INT(r.status, 200);
  int done;
  json_t *chunks = sse_chunks(&r, &done);
  CHECK_EQ_INT(done, 1);
  CHECK_EQ_INT(json_array_size(chunks), 10);   /* role, 8 words, finish */
  json_decref(chunks);
  CHECK_MSG(took >= 240 && took < 1000, "stream stalled before its first event: %.0f ms", took);
  row = row_and_log(&r, &log);
  CHECK_EQ_INT(row_int(row, "attempts"), 2);
  CHECK_STR(jstr(log, "0.error"), "timeout_idle");
  CHECK_EQ_INT(jint(log, "0.status"), 200);
  json_decref(log);
  json_decref(row);
  th_resp_free(&r);

  /* a stall after two events: bytes reached the client, so no retry: the stream ends with an
   * error event (no [DONE]) after the idle timeout, and the upstream saw one request */
  a0 = count(&it.mock);
  took = chat("retry", true,
              "\"mock\":{\"stall_after_chunks\":2,\"stall_ms\":3000,\"tag\":\"mid\"}", NULL, &r);
  CHECK_EQ_INT(r.status, 200);
  chunks = sse_chunks(&r, &done);
  CHECK_EQ_INT(done, 0);
  size_t n = json_array_size(chunks);
  CHECK_EQ_INT(n, 3);
  CHECK_STR(jstr(chunks, "1.choices.0.delta.content"), "a");
  CHECK_MSG(n && json_is_object(jget(json_array_get(chunks, n - 1), "error")),
            "the stream did not end with an error event");
  CHECK_STR(th_jstr(json_array_get(chunks, n - 1), "error.code"), "upstream_timeout");
  json_decref(chunks);
  CHECK_MSG(took >= 240 && took < 1200, "mid-stream stall: %.0f ms", took);
  CHECK_EQ_INT(count(&it.mock) - a0, 1);
  row = row_and_log(&r, &log);
  CHECK_EQ_INT(row_int(row, "attempts"), 1);
  CHECK_STR(jstr(row, "error_class"), "upstream_timeout");
  CHECK_STR(jstr(log, "0.error"), "timeout_idle");
  CHECK_STR(jstr(log, "0.next"), "final");
  json_decref(log);
  json_decref(row);
  th_resp_free(&r);
  json_t *up = th_mock_wait_state(&it.mock, "mid", "aborted", 3000);
  CHECK_MSG(up != NULL, "the stalled stream was not cancelled upstream");
  json_decref(up);

  /* a reset before any reply: retried */
  a0 = count(&it.mock);
  chat("retry", false, "\"mock\":{\"reset_after_bytes\":0,\"fail_times\":1,\"tag\":\"rst\"}", NULL, &r);
  check_ok_plain(&r, "reset then success");
  CHECK_EQ_INT(count(&it.mock) - a0, 2);
  row = row_and_log(&r, &log);
  CHECK_STR(jstr(log, "0.class"), "connect");
  CHECK_STR(jstr(log, "0.error"), "recv");
  json_decref(log);
  json_decref(row);
  th_resp_free(&r);
}

/* ------------------------------------------------------------------ deadlines */

static void test_deadlines(void) {
  struct th_resp r;
  json_t *log;
  const char *h300[] = {"x-tiergate-timeout-ms: 300", NULL};
  /* the client's deadline (300 ms) is shorter than the model's timeouts: 504 at 300 ms, and no
   * retry although timeouts are retried (no time left) */
  long long a0 = count(&it.mock);
  double took = chat("slowok", false, "\"mock\":{\"delay_ms\":3000,\"tag\":\"dl\"}", h300, &r);
  CHECK_EQ_INT(r.status, 504);
  CHECK_STR(jstr(r.json, "error.code"), "upstream_timeout");
  CHECK_MSG(took >= 290 && took < 300 + 500, "deadline 300 ms: answered after %.0f ms", took);
  CHECK_STR(hdr(&r, "x-should-retry"), "false");
  CHECK_EQ_INT(count(&it.mock) - a0, 1);
  json_t *row = row_and_log(&r, &log);
  CHECK_EQ_INT(row_int(row, "attempts"), 1);
  CHECK_STR(jstr(row, "error_class"), "upstream_timeout");
  json_decref(log);
  json_decref(row);
  th_resp_free(&r);

  /* a backoff that would end past the deadline is not started: 500 with retry-after 1 s and a
   * deadline of 300 ms -> the 500 at once */
  took = chat("slowok", false, "\"mock\":{\"status\":500,\"retry_after_ms\":\"1000\",\"tag\":\"dl2\"}",
              h300, &r);
  CHECK_EQ_INT(r.status, 500);
  CHECK_MSG(took < 700, "no retry past the deadline: %.0f ms", took);   /* a retry: > 1000 */
  CHECK_STR(hdr(&r, "x-should-retry"), "false");
  th_resp_free(&r);

  /* x-stainless-timeout (the SDK's own timeout, seconds): same rule for starting retries */
  const char *sdk1[] = {"x-stainless-timeout: 1", NULL};
  took = chat("slowok", false, "\"mock\":{\"status\":503,\"retry_after_ms\":\"1200\",\"tag\":\"dl3\"}",
              sdk1, &r);
  CHECK_EQ_INT(r.status, 503);
  CHECK_MSG(took < 900, "no retry past the SDK's timeout: %.0f ms", took);   /* a retry: > 1200 */
  th_resp_free(&r);

  /* a malformed deadline is a clear 400 */
  const char *bad[] = {"x-tiergate-timeout-ms: soon", NULL};
  chat("slowok", false, NULL, bad, &r);
  CHECK_EQ_INT(r.status, 400);
  CHECK_STR(jstr(r.json, "error.code"), "invalid_timeout");
  th_resp_free(&r);
}

/* ------------------------------------------------------------------ fallbacks */

static void test_fallbacks(void) {
  struct th_resp r;
  json_t *log;
  /* provider dead (connect refused) -> fallback model fb2 on provider b */
  long long b0 = count(&mock_b);
  double took = chat("fb", false, NULL, NULL, &r);
  check_ok_plain(&r, "fallback after connect refused");
  CHECK_STR(hdr(&r, "x-tiergate-route"), "b/gpt-4o-mini");
  CHECK_STR(jstr(r.json, "model"), "fb2");   /* the public name of the model that answered */
  CHECK_MSG(took < 800, "fallback: %.0f ms", took);
  CHECK_EQ_INT(count(&mock_b) - b0, 1);
  json_t *row = row_and_log(&r, &log);
  CHECK_EQ_INT(row_int(row, "attempts"), 2);
  CHECK_STR(jstr(row, "model"), "fb");
  CHECK_STR(jstr(row, "route"), "b/gpt-4o-mini");
  CHECK_STR(jstr(row, "provider"), "b");
  CHECK_STR(jstr(log, "0.model"), "fb");
  CHECK_STR(jstr(log, "0.deployment"), "dead/gpt-4o-mini");
  CHECK_STR(jstr(log, "0.class"), "connect");
  CHECK_STR(jstr(log, "0.error"), "connect");
  CHECK_STR(jstr(log, "0.next"), "fallback");
  CHECK_STR(jstr(log, "1.model"), "fb2");
  CHECK_STR(jstr(log, "1.deployment"), "b/gpt-4o-mini");
  CHECK_STR(jstr(log, "1.next"), "answer");
  json_decref(log);
  json_decref(row);
  th_resp_free(&r);

  /* a 500 from provider a falls back to provider b, streamed */
  long long a0 = count(&it.mock);
  b0 = count(&mock_b);
  chat("fb500", true, NULL, NULL, &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR(hdr(&r, "x-tiergate-route"), "b/gpt-4o-mini");
  int done;
  json_t *chunks = sse_chunks(&r, &done);
  CHECK_EQ_INT(done, 1);
  json_decref(chunks);
  CHECK_EQ_INT(count(&it.mock) - a0, 1);
  CHECK_EQ_INT(count(&mock_b) - b0, 1);
  th_resp_free(&r);

  /* a context-length 400 does not fall back by default... */
  b0 = count(&mock_b);
  chat("fbctx", false, NULL, NULL, &r);
  CHECK_EQ_INT(r.status, 400);
  CHECK_STR(jstr(r.json, "error.code"), "context_length_exceeded");
  CHECK(hdr(&r, "x-should-retry") == NULL);
  CHECK_EQ_INT(count(&mock_b) - b0, 0);
  row = row_and_log(&r, &log);
  CHECK_STR(jstr(log, "0.class"), "context_length");
  json_decref(log);
  json_decref(row);
  th_resp_free(&r);
  /* ...but does where fallback_on lists context_length (to a model with a larger window) */
  chat("fbctx2", false, NULL, NULL, &r);
  check_ok_plain(&r, "context-length fallback");
  CHECK_STR(hdr(&r, "x-tiergate-route"), "b/gpt-4o-mini");
  CHECK_EQ_INT(count(&mock_b) - b0, 1);
  th_resp_free(&r);
}

/* ------------------------------------------------------------------ load balancing */

static void test_weighted(void) {
  long long a0 = count(&it.mock), b0 = count(&mock_b);
  int n = 200, ok = 0;
  for (int i = 0; i < n; i++) {
    struct th_resp r;
    chat("lb", false, NULL, NULL, &r);
    ok += r.status == 200;
    th_resp_free(&r);
  }
  long long a = count(&it.mock) - a0, b = count(&mock_b) - b0;
  CHECK_EQ_INT(ok, n);
  CHECK_EQ_INT(a + b, n);
  /* weights 3:1 -> a gets 150 on average, standard deviation 6.1: 5 sigma either way */
  CHECK_MSG(a >= 120 && a <= 180, "weighted 3:1 over %d requests: a %lld, b %lld", n, a, b);
  printf("weighted 3:1: a %lld, b %lld of %d\n", a, b, n);
}

struct lif_arg {
  int delay_ms;
  long status;
};

static void *lif_thread(void *p) {
  struct lif_arg *a = p;
  th_sleep_ms(a->delay_ms);
  struct th_resp r;
  char *body = th_fmt("{\"model\":\"lif\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
  th_post_json(it.gw.url, "/v1/chat/completions", body, &r);
  a->status = r.status;
  free(body);
  th_resp_free(&r);
  return NULL;
}

static void test_least_in_flight(void) {
  /* a: 600 ms per request, b: fast. Requests every 60 ms: while a's request runs it has one in
   * flight and b none, so b takes them; a only gets one when both are idle (a tie). Weighted 1:1
   * would send a about half. */
  enum { N = 16 };
  long long a0 = count(&it.mock), b0 = count(&mock_b);
  pthread_t th[N];
  struct lif_arg arg[N];
  for (int i = 0; i < N; i++) {
    arg[i] = (struct lif_arg){.delay_ms = i * 60};
    pthread_create(&th[i], NULL, lif_thread, &arg[i]);
  }
  int ok = 0;
  for (int i = 0; i < N; i++) {
    pthread_join(th[i], NULL);
    ok += arg[i].status == 200;
  }
  long long a = count(&it.mock) - a0, b = count(&mock_b) - b0;
  CHECK_EQ_INT(ok, N);
  CHECK_EQ_INT(a + b, N);
  CHECK_MSG(a <= 4 && b >= N - 4, "least in flight: slow a got %lld, fast b %lld of %d", a, b, N);
  printf("least in flight: slow a %lld, fast b %lld of %d\n", a, b, (int)N);
  /* these requests were not logged through gw_req: note their ids by reading the log */
  json_t *rows = th_db_query(it.gw.db_path, "SELECT request_id FROM requests WHERE model = 'lif'");
  size_t k;
  json_t *row;
  json_array_foreach(rows, k, row) if (it.n_ids < ITEST_MAX_IDS) it.ids[it.n_ids++] =
      strdup(jstr(row, "request_id"));
  json_decref(rows);
}

/* ------------------------------------------------------------------ circuit breakers */

static long long metric(const char *line_prefix) {
  struct th_resp r;
  th_get(it.gw.url, "/metrics", &r);
  long long v = -1;
  const char *p = r.body ? strstr(r.body, line_prefix) : NULL;
  if (p) v = atoll(p + strlen(line_prefix));
  th_resp_free(&r);
  return v;
}

#define C_DEP "c/gpt-4o-mini;delay_ms=3000;fail_times=3"
#define CTX_MODEL "gpt-4o-mini;status=400;error_code=context_length_exceeded;" \
                  "error_message=The maximum context length is 128000 tokens"

static void test_breaker(void) {
  struct th_resp r;
  json_t *log, *row;
  /* brk: deployment c (weight 1) hangs for its first 3 requests (first_byte timeout 200 ms);
   * deployment b is a standby (weight 0). Breaker: 2 consecutive failures, 400 ms cooldown. */
  long long c0 = count(&mock_c);
  for (int i = 0; i < 2; i++) {
    double took = chat("brk", false, NULL, NULL, &r);
    check_ok_plain(&r, "breaker: failure then standby");
    CHECK_STR(hdr(&r, "x-tiergate-route"), "b/gpt-4o-mini");
    CHECK_MSG(took >= 190 && took < 900, "request %d with c hanging: %.0f ms", i, took);
    row = row_and_log(&r, &log);
    CHECK_EQ_INT(row_int(row, "attempts"), 2);
    CHECK_STR(jstr(log, "0.deployment"), C_DEP);
    CHECK_STR(jstr(log, "0.class"), "timeout");
    /* another deployment: no backoff */
    CHECK_MSG(th_jnum(log, "1.waited_ms") < 50, "waited before the standby: %s", jstr(row, "attempt_log"));
    json_decref(log);
    json_decref(row);
    th_resp_free(&r);
  }
  CHECK_EQ_INT(count(&mock_c) - c0, 2);
  CHECK_EQ_INT(metric("tiergate_breaker_state{deployment=\"" C_DEP "\"} "), 1);
  CHECK_EQ_INT(metric("tiergate_breaker_transitions_total{deployment=\"" C_DEP "\",to=\"open\"} "), 1);

  /* open: c is skipped without a call, quickly */
  for (int i = 0; i < 3; i++) {
    double took = chat("brk", false, NULL, NULL, &r);
    check_ok_plain(&r, "breaker open: skipped");
    CHECK_STR(hdr(&r, "x-tiergate-route"), "b/gpt-4o-mini");
    CHECK_MSG(took < 180, "request with c's breaker open took %.0f ms", took);   /* trying c: > 200 */
    row = row_and_log(&r, &log);
    CHECK_EQ_INT(row_int(row, "attempts"), 1);
    CHECK_STR(jstr(log, "0.deployment"), C_DEP);
    CHECK_STR(jstr(log, "0.class"), "breaker_open");
    CHECK_STR(jstr(log, "0.next"), "skipped");
    CHECK_STR(jstr(log, "1.next"), "answer");
    json_decref(log);
    json_decref(row);
    th_resp_free(&r);
  }
  CHECK_EQ_INT(count(&mock_c) - c0, 2);

  /* after the cooldown one probe goes to c; it still hangs: open again, b answers */
  th_sleep_ms(450);
  double took = chat("brk", false, NULL, NULL, &r);
  check_ok_plain(&r, "failed probe");
  CHECK_STR(hdr(&r, "x-tiergate-route"), "b/gpt-4o-mini");
  CHECK_MSG(took >= 190, "the probe was not made (%.0f ms)", took);
  CHECK_EQ_INT(count(&mock_c) - c0, 3);
  th_resp_free(&r);
  CHECK_EQ_INT(metric("tiergate_breaker_transitions_total{deployment=\"" C_DEP "\",to=\"half_open\"} "), 1);
  CHECK_EQ_INT(metric("tiergate_breaker_transitions_total{deployment=\"" C_DEP "\",to=\"open\"} "), 2);
  chat("brk", false, NULL, NULL, &r);
  CHECK_EQ_INT(count(&mock_c) - c0, 3);   /* open again: skipped */
  th_resp_free(&r);

  /* the next probe succeeds (c recovered): closed, and c serves again */
  th_sleep_ms(450);
  chat("brk", false, NULL, NULL, &r);
  check_ok_plain(&r, "successful probe");
  CHECK_STR(hdr(&r, "x-tiergate-route"), C_DEP);
  th_resp_free(&r);
  CHECK_EQ_INT(metric("tiergate_breaker_state{deployment=\"" C_DEP "\"} "), 0);
  CHECK_EQ_INT(metric("tiergate_breaker_transitions_total{deployment=\"" C_DEP "\",to=\"closed\"} "), 1);
  chat("brk", false, NULL, NULL, &r);
  CHECK_STR(hdr(&r, "x-tiergate-route"), C_DEP);
  row = row_and_log(&r, &log);
  CHECK(log == NULL);   /* a first-try success has nothing to explain */
  json_decref(row);
  th_resp_free(&r);
  CHECK_EQ_INT(count(&mock_c) - c0, 5);
}

static void test_breaker_fail_fast(void) {
  struct th_resp r;
  json_t *log, *row;
  /* gone: one deployment on a closed port; 2 failures open its breaker (cooldown 10 s) */
  for (int i = 0; i < 2; i++) {
    chat("gone", false, NULL, NULL, &r);
    CHECK_EQ_INT(r.status, 502);
    CHECK(hdr(&r, "x-should-retry") == NULL);   /* no retries configured: not ours to say */
    th_resp_free(&r);
  }
  double took = chat("gone", false, NULL, NULL, &r);
  CHECK_EQ_INT(r.status, 503);
  CHECK_MSG(took < 250, "fail fast took %.0f ms", took);
  CHECK_STR(jstr(r.json, "error.code"), "upstream_unavailable");
  CHECK_STR(jstr(r.json, "error.type"), "service_unavailable_error");
  CHECK_STR(hdr(&r, "x-should-retry"), "true");
  const char *ra = hdr(&r, "retry-after-ms");
  CHECK_MSG(ra && atoi(ra) > 9000 && atoi(ra) <= 10000, "retry-after-ms %s (cooldown 10 s)", ra ? ra : "-");
  CHECK_STR(hdr(&r, "retry-after"), "10");
  row = row_and_log(&r, &log);
  CHECK_EQ_INT(row_int(row, "attempts"), 0);
  CHECK_EQ_INT(row_int(row, "http_status"), 503);
  CHECK_STR(jstr(row, "error_class"), "breaker_open");
  CHECK_STR(jstr(log, "0.class"), "breaker_open");
  json_decref(log);
  json_decref(row);
  th_resp_free(&r);
  /* streamed requests fail the same way, before any stream starts */
  chat("gone", true, NULL, NULL, &r);
  CHECK_EQ_INT(r.status, 503);
  CHECK(json_is_object(jget(r.json, "error")));
  th_resp_free(&r);
}

/* ------------------------------------------------------------------ the Anthropic side */

/* POSTs an Anthropic Messages request (anthropic-version 2023-06-01) for MODEL. */
static double messages(const char *model, bool stream, const char *extra, struct th_resp *r) {
  char *body = th_fmt("{\"model\":\"%s\",\"max_tokens\":64,\"stream\":%s,\"messages\":[{\"role\":"
                      "\"user\",\"content\":\"a b\"}]%s%s}",
                      model, stream ? "true" : "false", extra ? "," : "", extra ? extra : "");
  const char *hdr[] = {"Content-Type: application/json", "anthropic-version: 2023-06-01",
                       "x-api-key: sk-client", NULL};
  struct th_req rq = {.method = "POST", .body = body, .headers = hdr, .timeout_ms = 15000};
  double t0 = th_now_ms();
  gw_req(&rq, "/v1/messages", r);
  free(body);
  return th_now_ms() - t0;
}

static void test_anthropic(void) {
  struct th_resp r;
  json_t *log, *row;
  /* an Anthropic client, an Anthropic upstream answering 529 (overloaded) once: retried */
  long long a0 = count(&it.mock);
  messages("claude-r", false, "\"mock\":{\"status\":529,\"fail_times\":1,\"tag\":\"an529\"}", &r);
  CHECK_MSG(r.status == 200, "anthropic 529 then success: %ld %.200s", r.status, r.body);
  CHECK_STR(jstr(r.json, "type"), "message");
  CHECK_STR(hdr(&r, "x-tiergate-attempts"), "2");
  CHECK_EQ_INT(count(&it.mock) - a0, 2);
  row = row_and_log(&r, &log);
  CHECK_STR(jstr(row, "client_api"), "anthropic");
  CHECK_EQ_INT(row_int(row, "attempts"), 2);
  CHECK_STR(jstr(log, "0.class"), "529");
  CHECK_STR(jstr(log, "0.deployment"), "an/claude-haiku-4-5");
  CHECK_STR(jstr(log, "1.next"), "answer");
  json_decref(log);
  json_decref(row);
  th_resp_free(&r);

  /* the same, streamed: the 529 comes before any event, the client sees one clean stream */
  messages("claude-r", true, "\"mock\":{\"status\":529,\"fail_times\":1,\"tag\":\"an529s\"}", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_MSG(r.body && strstr(r.body, "event: message_stop"), "no message_stop in %.300s", r.body);
  CHECK_MSG(r.body && !strstr(r.body, "event: error"), "error event in a retried stream");
  th_resp_free(&r);

  /* an OpenAI client whose Claude model is overloaded falls back to an OpenAI model on another
   * provider: translated call first, native one second */
  long long b0 = count(&mock_b);
  chat("claude-fb", false, NULL, NULL, &r);
  check_ok_plain(&r, "fallback from an Anthropic upstream");
  CHECK_STR(hdr(&r, "x-tiergate-route"), "b/gpt-4o-mini");
  CHECK_EQ_INT(count(&mock_b) - b0, 1);
  row = row_and_log(&r, &log);
  CHECK_STR(jstr(log, "0.deployment"), "an/claude-haiku-4-5;status=529");
  CHECK_EQ_INT(jint(log, "0.status"), 529);
  CHECK_STR(jstr(log, "0.next"), "fallback");
  CHECK_STR(jstr(log, "1.model"), "fb2");
  json_decref(log);
  json_decref(row);
  th_resp_free(&r);

  /* open breakers fail fast in the caller's own error shape */
  messages("gone", false, NULL, &r);
  CHECK_EQ_INT(r.status, 503);
  CHECK_STR(jstr(r.json, "type"), "error");
  CHECK_MSG(jstr(r.json, "error.type") != NULL, "no Anthropic error type: %.200s", r.body);
  CHECK_STR(hdr(&r, "x-should-retry"), "true");
  CHECK(hdr(&r, "retry-after") != NULL);
  th_resp_free(&r);
}

/* ------------------------------------------------------------------ clients that leave */

static void test_disconnect_during_backoff(void) {
  /* the client leaves while the gateway waits out a 429's retry-after-ms (800 ms): the timer is
   * cancelled with the request, the retry never goes out, the row says what happened */
  long long a0 = count(&it.mock);
  int fd = th_connect(it.gw.port);
  CHECK(fd >= 0);
  th_send_post(fd, "/v1/chat/completions",
               "{\"model\":\"slowok\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
               "\"mock\":{\"status\":429,\"retry_after_ms\":\"800\",\"fail_times\":1,\"tag\":\"bo\"}}",
               NULL);
  th_sleep_ms(250);
  close(fd);
  th_sleep_ms(1000);
  CHECK_EQ_INT(count(&it.mock) - a0, 1);
  json_t *rows = NULL;
  for (int i = 0; i < 100; i++) {
    rows = th_db_query(it.gw.db_path,
                       "SELECT * FROM requests WHERE model = 'slowok' AND http_status = 499");
    if (rows && json_array_size(rows) > 0) break;
    json_decref(rows);
    rows = NULL;
    th_sleep_ms(20);
  }
  CHECK_MSG(rows && json_array_size(rows) == 1, "no single 499 row for the client that left");
  json_t *row = rows ? json_array_get(rows, 0) : NULL;
  if (row) {
    it.ids[it.n_ids++] = strdup(jstr(row, "request_id"));
    CHECK_STR(jstr(row, "error_class"), "client_disconnect");
    CHECK_EQ_INT(row_int(row, "attempts"), 1);
    json_t *log = json_loads(jstr(row, "attempt_log") ? jstr(row, "attempt_log") : "", 0, NULL);
    CHECK_EQ_INT(json_array_size(log), 1);
    CHECK_EQ_INT(jint(log, "0.status"), 429);
    CHECK_STR(jstr(log, "0.next"), "retry");
    json_decref(log);
  }
  json_decref(rows);
}

/* Every upstream call was accounted for: nothing left in flight on any deployment. */
static void test_in_flight_settled(void) {
  struct th_resp r;
  th_get(it.gw.url, "/metrics", &r);
  int lines = 0;
  for (const char *p = r.body; p && (p = strstr(p, "\ntiergate_upstream_in_flight{")); p++) {
    const char *sp = strchr(p + 1, '}');
    lines++;
    CHECK_MSG(sp && atoi(sp + 2) == 0, "still in flight: %.120s", p + 1);
  }
  CHECK_MSG(lines >= 8, "%d in-flight gauges", lines);
  th_resp_free(&r);
}

int main(void) {
  (void)itest_start;   /* this test runs its own fixture: three mocks, its own config */
  memset(&it, 0, sizeof it);
  signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (th_mock_start(&it.mock, NULL) || th_mock_start(&mock_b, NULL) ||
      th_mock_start(&mock_c, NULL) || th_gw_prepare(&it.gw)) {
    CHECK_MSG(0, "cannot start the mocks");
    return check_done();
  }
  int dead = th_free_port();
  char *yaml = th_fmt(
      "listen: 127.0.0.1:0\n"
      "database: %s\n"
      "providers:\n"
      "  a: {kind: openai, base_url: 'http://127.0.0.1:%d/v1', api_key_env: TIERGATE_TEST_KEY}\n"
      "  b: {kind: openai, base_url: 'http://127.0.0.1:%d/v1', api_key_env: TIERGATE_TEST_KEY}\n"
      "  c: {kind: openai, base_url: 'http://127.0.0.1:%d/v1', api_key_env: TIERGATE_TEST_KEY}\n"
      "  dead: {kind: openai, base_url: 'http://127.0.0.1:%d/v1', api_key_env: TIERGATE_TEST_KEY}\n"
      "  an: {kind: anthropic, base_url: 'http://127.0.0.1:%d', api_key_env: TIERGATE_TEST_KEY}\n"
      "models:\n"
      "  retry:\n"
      "    provider: a\n"
      "    model: gpt-4o-mini\n"
      "    retry: {max_attempts: 3, base_delay: 50ms, max_delay: 1500ms, jitter: none}\n"
      "    timeouts: {first_byte: 250ms, idle: 250ms}\n"
      "  slowok:\n"
      "    provider: a\n"
      "    model: gpt-4o-mini\n"
      "    retry: {max_attempts: 3, base_delay: 50ms, max_delay: 5s, jitter: none}\n"
      "  fb:\n"
      "    provider: dead\n"
      "    model: gpt-4o-mini\n"
      "    fallbacks: [fb2]\n"
      "  fb2:\n"
      "    provider: b\n"
      "    model: gpt-4o-mini\n"
      /* faults pinned to provider a's upstream model name: the body goes to the fallback too */
      "  fb500: {provider: a, model: 'gpt-4o-mini;status=500', fallbacks: [fb2]}\n"
      "  fbctx: {provider: a, model: '" CTX_MODEL "', fallbacks: [fb2]}\n"
      "  fbctx2: {provider: a, model: '" CTX_MODEL "', fallbacks: [fb2], fallback_on: [context_length]}\n"
      "  lb:\n"
      "    deployments:\n"
      "      - {provider: a, model: gpt-4o-mini, weight: 3}\n"
      "      - {provider: b, model: gpt-4o-mini, weight: 1}\n"
      "  lif:\n"
      "    balance: least_in_flight\n"
      "    deployments:\n"
      "      - {provider: a, model: 'gpt-4o-mini;delay_ms=600'}\n"
      "      - {provider: b, model: gpt-4o-mini}\n"
      "  brk:\n"
      "    deployments:\n"
      "      - {provider: c, model: 'gpt-4o-mini;delay_ms=3000;fail_times=3'}\n"
      "      - {provider: b, model: gpt-4o-mini, weight: 0}\n"
      "    timeouts: {first_byte: 200ms}\n"
      "    retry: {max_attempts: 2, base_delay: 10ms, jitter: none}\n"
      "    breaker: {failures: 2, error_rate: 0%%, cooldown: 400ms}\n"
      "  claude-r:\n"
      "    provider: an\n"
      "    model: claude-haiku-4-5\n"
      "    retry: {max_attempts: 3, base_delay: 20ms, jitter: none}\n"
      "  claude-fb: {provider: an, model: 'claude-haiku-4-5;status=529', fallbacks: [fb2]}\n"
      "  gone:\n"
      "    provider: dead\n"
      "    model: gone-model\n"
      "    breaker: {failures: 2, error_rate: 0%%, cooldown: 10s}\n"
      "limits:\n"
      "  connect_timeout: 2s\n"
      "  first_byte_timeout: 5s\n"
      "  idle_timeout: 5s\n"
      "  total_timeout: 20s\n"
      "  client_timeout: 5s\n"
      "retry: {max_attempts: 1}\n"
      "breaker: {failures: 0, error_rate: 0%%}\n",
      it.gw.db_path, it.mock.port, mock_b.port, mock_c.port, dead, it.mock.port);
  int rc = th_gw_start(&it.gw, yaml, th_gw_test_env());
  free(yaml);
  if (rc) {
    CHECK_MSG(0, "cannot start tiergate");
    return check_done();
  }
  test_429_retry_after();
  test_5xx();
  test_stalls_and_resets();
  test_deadlines();
  test_fallbacks();
  test_weighted();
  test_least_in_flight();
  test_breaker();
  test_breaker_fail_fast();
  test_anthropic();
  test_disconnect_during_backoff();
  test_in_flight_settled();
  itest_finish();
  CHECK_EQ_INT(th_mock_stop(&mock_b), 0);
  CHECK_EQ_INT(th_mock_stop(&mock_c), 0);
  return check_done();
}
