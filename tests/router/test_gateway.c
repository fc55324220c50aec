/*
 * test_gateway.c: smoke test of `tiergate serve` end to end, against the mock upstream
 * (tests/mock) over loopback: forwarding byte-exact with the model mapped and the provider's key
 * injected, the reply's model renamed for an alias, streaming with and without usage, the error
 * rows (400, 404, 405, 413, 401 missing key, 429 passed through, 504, 502), client disconnect
 * cancelling the upstream, clean shutdown on SIGTERM with every log row in SQLite.
 * The full integration suite lives with the mock (tests/integration); this one guards router/.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "harness.h"

static struct th_gw gw;
static struct th_mock mock;

static long post(const char *json, struct th_resp *r, const char *const *hdrs) {
  char url[128];
  snprintf(url, sizeof url, "%s/v1/chat/completions", gw.url);
  struct th_req rq = {.method = "POST", .url = url, .body = json, .headers = hdrs, .timeout_ms = 10000};
  th_http(&rq, r);
  return r->status;
}

static const char *hdr(const struct th_resp *r, const char *name) {
  static char buf[4][256];
  static int k;
  return th_resp_header(r, name, buf[k++ & 3], sizeof buf[0]);
}

static const char *err_code(const struct th_resp *r) {
  json_t *c = json_object_get(json_object_get(r->json, "error"), "code");
  return json_is_string(c) ? json_string_value(c) : "(null)";
}

int main(void) {
  if (th_mock_start(&mock, NULL) || th_gw_prepare(&gw)) {
    CHECK_MSG(0, "cannot start the mock upstream");
    return check_done();
  }
  char *yaml = th_fmt(
      "listen: 127.0.0.1:%d\n"
      "database: %s\n"
      "providers:\n"
      "  mock:\n"
      "    kind: openai\n"
      "    base_url: %s/v1\n"
      "    api_key_env: SMOKE_MOCK_KEY\n"
      "  keyless:\n"
      "    kind: openai\n"
      "    base_url: %s/v1\n"
      "    api_key_env: SMOKE_UNSET_KEY\n"
      "  dead:\n"
      "    kind: openai\n"
      "    base_url: http://127.0.0.1:%d/v1\n"
      "    api_key_env: SMOKE_MOCK_KEY\n"
      "models:\n"
      "  gpt-4o-mini:\n"
      "    provider: mock\n"
      "  fast:\n"
      "    provider: mock\n"
      "    model: gpt-4o-mini\n"
      "  needs-key:\n"
      "    provider: keyless\n"
      "    model: gpt-4o-mini\n"
      "  gone:\n"
      "    provider: dead\n"
      "    model: gpt-4o-mini\n"
      "baseline_model: gpt-4o-mini\n"
      "limits:\n"
      "  max_body_bytes: 2KiB\n"
      "  first_byte_timeout: 300ms\n"
      /* a plain proxy: failures pass through as they are (resilience has its own tests) */
      "retry: {max_attempts: 1}\n"
      "breaker: {failures: 0, error_rate: 0%%}\n",
      gw.port, gw.db_path, mock.url, mock.url, th_free_port());
  char *env[] = {"SMOKE_MOCK_KEY=sk-mock-key", NULL};
  unsetenv("SMOKE_UNSET_KEY");
  if (th_gw_start(&gw, yaml, env)) {
    CHECK_MSG(0, "cannot start tiergate");
    th_mock_stop(&mock);
    return check_done();
  }
  int api_requests = 0;
  struct th_resp r;

  /* an alias, forwarded with the upstream name and the provider's key; reply renamed back */
  const char *client_hdrs[] = {"Authorization: Bearer client-key", NULL};
  CHECK_EQ_INT(post("{\"model\":\"fast\",\"messages\":[{\"role\":\"user\",\"content\":\"say hello world\"}],"
                    "\"temperature\":0.70,\"mock\":{\"tag\":\"alias\"}}", &r, client_hdrs), 200);
  api_requests++;
  CHECK_STR(json_string_value(json_object_get(r.json, "model")), "fast");
  CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(r.json, "usage"), "prompt_tokens")), 4);
  CHECK_STR(hdr(&r, "x-tiergate-route"), "mock/gpt-4o-mini");
  CHECK(hdr(&r, "x-tiergate-request-id") && !strncmp(hdr(&r, "x-tiergate-request-id"), "req_", 4));
  CHECK(hdr(&r, "x-tiergate-overhead-ms") != NULL);
  CHECK(hdr(&r, "x-request-id") && !strncmp(hdr(&r, "x-request-id"), "req_mock_", 9));
  th_resp_free(&r);
  json_t *last = th_mock_last(&mock, "alias");
  CHECK(last != NULL);
  if (last) {
    json_t *h = json_object_get(last, "headers");
    CHECK_STR(json_string_value(json_object_get(h, "authorization")), "Bearer sk-mock-key");
    CHECK_STR(json_string_value(json_object_get(json_object_get(last, "body"), "model")), "gpt-4o-mini");
    json_decref(last);
  }

  /* a stream without include_usage: the gateway asked upstream for usage and drops that chunk */
  CHECK_EQ_INT(post("{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[{\"role\":\"user\","
                    "\"content\":\"one two three\"}],\"mock\":{\"tag\":\"s1\"}}", &r, NULL), 200);
  api_requests++;
  json_t *frames = th_sse_data(r.body, r.body_len);
  size_t nf = json_array_size(frames);
  CHECK(nf >= 3);
  CHECK_STR(json_string_value(json_array_get(frames, nf - 1)), "[DONE]");
  for (size_t i = 0; i < nf; i++)
    CHECK_MSG(!strstr(json_string_value(json_array_get(frames, i)), "\"choices\":[]"),
              "usage chunk leaked to a client that did not ask: %s", json_string_value(json_array_get(frames, i)));
  json_decref(frames);
  th_resp_free(&r);
  last = th_mock_last(&mock, "s1");
  CHECK(last && json_is_true(json_object_get(json_object_get(json_object_get(last, "body"), "stream_options"),
                                             "include_usage")));
  json_decref(last);

  /* with include_usage the usage chunk comes through */
  CHECK_EQ_INT(post("{\"model\":\"fast\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                    "\"messages\":[{\"role\":\"user\",\"content\":\"a b\"}]}", &r, NULL), 200);
  api_requests++;
  CHECK(strstr(r.body, "\"choices\":[]") != NULL);
  CHECK(strstr(r.body, "\"model\":\"fast\"") != NULL);
  CHECK(strstr(r.body, "gpt-4o-mini") == NULL);
  th_resp_free(&r);

  /* bad input: each an OpenAI error with the right status */
  CHECK_EQ_INT(post("{not json", &r, NULL), 400);
  api_requests++;
  CHECK(json_is_object(json_object_get(r.json, "error")));
  th_resp_free(&r);
  CHECK_EQ_INT(post("{\"model\":\"gpt-4o-mini\"}", &r, NULL), 400);
  api_requests++;
  CHECK_STR(json_string_value(json_object_get(json_object_get(r.json, "error"), "param")), "messages");
  th_resp_free(&r);
  CHECK_EQ_INT(post("{\"model\":\"nope\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &r, NULL), 404);
  api_requests++;
  CHECK_STR(err_code(&r), "model_not_found");
  th_resp_free(&r);
  char big[4096];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  memcpy(big, "{\"model\":\"x\",\"messages\":\"", 25);
  CHECK_EQ_INT(post(big, &r, NULL), 413);
  api_requests++;
  CHECK_STR(err_code(&r), "request_too_large");
  th_resp_free(&r);
  CHECK_EQ_INT(post("{\"model\":\"needs-key\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &r, NULL), 401);
  api_requests++;
  CHECK(strstr(r.body, "SMOKE_UNSET_KEY") != NULL);
  th_resp_free(&r);
  th_get(gw.url, "/v1/nothing", &r);
  api_requests++;
  CHECK_EQ_INT(r.status, 404);
  th_resp_free(&r);
  th_get(gw.url, "/v1/chat/completions", &r);
  api_requests++;
  CHECK_EQ_INT(r.status, 405);
  th_resp_free(&r);

  /* upstream failures */
  CHECK_EQ_INT(post("{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                    "\"mock\":{\"status\":429,\"retry_after\":7}}", &r, NULL), 429);
  api_requests++;
  CHECK_STR(hdr(&r, "retry-after"), "7");
  CHECK(json_is_object(json_object_get(r.json, "error")));
  th_resp_free(&r);
  double t0 = th_now_ms();
  CHECK_EQ_INT(post("{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                    "\"mock\":{\"delay_ms\":3000}}", &r, NULL), 504);
  api_requests++;
  CHECK(th_now_ms() - t0 < 2500);
  th_resp_free(&r);
  CHECK_EQ_INT(post("{\"model\":\"gone\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &r, NULL), 502);
  api_requests++;
  th_resp_free(&r);

  /* models list */
  th_get(gw.url, "/v1/models", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_EQ_INT(json_array_size(json_object_get(r.json, "data")), 4);
  th_resp_free(&r);

  /* a client that hangs up mid-stream cancels its upstream transfer */
  int fd = th_connect(gw.port);
  CHECK(fd >= 0);
  th_send_post(fd, "/v1/chat/completions",
               "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
               "\"mock\":{\"tag\":\"cut\",\"completion_tokens\":200,\"chunk_delay_ms\":20}}", NULL);
  api_requests++;
  char buf[512];
  CHECK(th_recv(fd, buf, sizeof buf, 3000) > 0);
  close(fd);
  json_t *cut = th_mock_wait_state(&mock, "cut", "aborted", 3000);
  CHECK_MSG(cut != NULL, "the upstream transfer was not cancelled");
  json_decref(cut);

  /* metrics know about it */
  th_get(gw.url, "/metrics", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK(strstr(r.body, "tiergate_requests_total{route=\"/v1/chat/completions\",model=\"fast\",status=\"200\"} 2") != NULL);
  CHECK(strstr(r.body, "tiergate_overhead_seconds_bucket") != NULL);
  th_resp_free(&r);

  /* clean shutdown: a request in flight when SIGTERM arrives still completes, new connections
   * are refused, the process exits 0 by itself, every row is on disk */
  fd = th_connect(gw.port);
  th_send_post(fd, "/v1/chat/completions",
               "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"late\"}],"
               "\"mock\":{\"delay_ms\":250}}", NULL);
  api_requests++;
  th_sleep_ms(80);
  kill(gw.proc.pid, SIGTERM);
  th_sleep_ms(80);
  CHECK_MSG(th_connect(gw.port) < 0, "a new connection was accepted while draining");
  char *late = NULL;
  int lrc = 0;
  size_t ln = th_recv_all(fd, &late, 5000, &lrc);
  CHECK_MSG(ln > 12 && !strncmp(late, "HTTP/1.1 200", 12), "in-flight reply during drain: %.80s",
            late ? late : "");
  CHECK(late && strstr(late, "connection: close") != NULL);
  CHECK_EQ_INT(lrc, 0); /* closed by the gateway after the reply */
  free(late);
  close(fd);
  int st = th_wait(&gw.proc, 5000); /* it exits by itself once the last connection is gone */
  CHECK_MSG(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "tiergate exit status %d", st);
  /* every request gets a row; the API ones are those not to the operational GETs */
#define API_ROWS "FROM requests WHERE endpoint NOT IN ('GET /healthz', 'GET /metrics', 'GET /v1/models')"
  json_t *rows = th_db_query(gw.db_path, "SELECT count(*) AS n " API_ROWS);
  CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(rows, 0), "n")), api_requests);
  json_decref(rows);
  rows = th_db_query(gw.db_path,
                     "SELECT http_status, error_class, input_tokens, output_tokens, cost_pusd, "
                     "baseline_cost_pusd, route " API_ROWS " ORDER BY id");
  CHECK_EQ_INT(json_array_size(rows), api_requests);
  json_t *first = json_array_get(rows, 0);
  CHECK_EQ_INT(json_integer_value(json_object_get(first, "http_status")), 200);
  CHECK_EQ_INT(json_integer_value(json_object_get(first, "input_tokens")), 4);
  CHECK_EQ_INT(json_integer_value(json_object_get(first, "output_tokens")), 8);
  /* gpt-4o-mini: $0.15 in, $0.60 out per 1M: 4*150000 + 8*600000 pico-USD */
  CHECK_EQ_INT(json_integer_value(json_object_get(first, "cost_pusd")), 4 * 150000 + 8 * 600000);
  CHECK_STR(json_string_value(json_object_get(first, "route")), "mock/gpt-4o-mini");
  const char *classes[] = {"bad_request", "model_not_found", "request_too_large", "missing_api_key",
                           "upstream_error", "upstream_timeout", "upstream_connect", "client_disconnect"};
  for (size_t c = 0; c < sizeof classes / sizeof classes[0]; c++) {
    int found = 0;
    for (size_t i = 0; i < json_array_size(rows); i++) {
      json_t *ec = json_object_get(json_array_get(rows, i), "error_class");
      found += json_is_string(ec) && !strcmp(json_string_value(ec), classes[c]);
    }
    CHECK_MSG(found > 0, "no row with error_class %s", classes[c]);
  }
  json_decref(rows);

  /* config check: an invalid file is refused with file:line:col */
  char cmd[1024];
  char *bad = th_fmt("%s/bad.yaml", gw.dir);
  th_write_file(bad, "listen: 127.0.0.1:1\nproviders: {}\nmodels:\n  m:\n    provider: nowhere\n", 66);
  snprintf(cmd, sizeof cmd, "%s config check %s 2>&1", getenv("TIERGATE_BIN"), bad);
  FILE *p = popen(cmd, "r");
  size_t n = p ? fread(buf, 1, sizeof buf - 1, p) : 0;
  buf[n] = '\0';
  int prc = p ? pclose(p) : -1;
  CHECK_MSG(WIFEXITED(prc) && WEXITSTATUS(prc) == 1, "config check exit %d", prc);
  CHECK_MSG(strstr(buf, "bad.yaml:5:") != NULL, "config check said: %s", buf);
  free(bad);

  th_mock_stop(&mock);
  th_rmdir(gw.dir);
  free(yaml);
  return check_done();
}
