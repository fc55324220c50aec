/*
 * test_gw_errors.c: every error row of the gateway issue, against the real binary. Each bad
 * input gets an OpenAI-shaped error object with the right status and type, never reaches the
 * upstream, never crashes the gateway, and leaves one log row with its status and an error
 * class. Upstream failures map to 502 / 504; upstream 4xx/5xx pass through with their body and
 * retry-after.
 */
#include <errno.h>

#include "router/itest.h"

static long long upstream_requests(void) { return th_mock_stat(&it.mock, "requests"); }

/* Checks an OpenAI error reply and its log row. CLS: the expected error class, or NULL for "any
 * non-empty class". */
static void check_error(const struct th_resp *r, int status, const char *type, const char *cls,
                        const char *what) {
  CHECK_MSG(r->status == status, "%s: status %ld, want %d (body %.200s)", what, r->status, status,
            r->body);
  CHECK_MSG(r->json && json_is_object(jget(r->json, "error")), "%s: no error object: %.200s",
            what, r->body);
  const char *msg = jstr(r->json, "error.message");
  CHECK_MSG(msg && strlen(msg) > 5, "%s: no useful error message", what);
  if (type) CHECK_MSG(jstr(r->json, "error.type") && !strcmp(jstr(r->json, "error.type"), type),
                      "%s: error.type %s, want %s", what, jstr(r->json, "error.type"), type);
  char h[128];
  CHECK_MSG(th_resp_header(r, "content-type", h, sizeof h) && !strncmp(h, "application/json", 16),
            "%s: content-type %s", what, h);
  json_t *row = db_row_of(r);
  if (row) {
    CHECK_MSG(row_int(row, "http_status") == status, "%s: logged status %lld", what,
              row_int(row, "http_status"));
    const char *ec = jstr(row, "error_class");
    CHECK_MSG(ec && *ec, "%s: no error class logged", what);
    if (cls && ec) CHECK_MSG(!strcmp(ec, cls), "%s: error class %s, want %s", what, ec, cls);
  }
  json_decref(row);
}

static void test_bad_bodies(void) {
  struct th_resp r;
  long long up0 = upstream_requests();
  static const struct {
    const char *body, *what;
  } bad[] = {
      {"{\"model\":\"gpt-4o-mini\",", "truncated JSON"},
      {"{\"model\":\"gpt-4o-mini\" \"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "missing comma"},
      {"", "empty body"},
      {"not json at all", "text"},
      {"{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}}", "trailing garbage"},
      {"{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}",
       "invalid UTF-8"},
      {"[1,2,3]", "array body"},
      {"\"a string\"", "string body"},
      {"42", "number body"},
      {"null", "null body"},
      {"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "missing model"},
      {"{\"model\":\"gpt-4o-mini\"}", "missing messages"},
      {"{\"model\":42,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "model not a string"},
      {"{\"model\":null,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "model null"},
      {"{\"model\":\"gpt-4o-mini\",\"messages\":\"hi\"}", "messages a string"},
      {"{\"model\":\"gpt-4o-mini\",\"messages\":{}}", "messages an object"},
      {"{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":\"yes\"}", "stream not a bool"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    gw_chat(bad[i].body, &r);
    check_error(&r, 400, "invalid_request_error", "bad_request", bad[i].what);
    th_resp_free(&r);
  }
  CHECK_EQ_INT(upstream_requests(), up0);
}

static void test_unknown_model_and_key(void) {
  struct th_resp r;
  long long up0 = upstream_requests();
  gw_chat("{\"model\":\"gpt-9-ultra\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r);
  check_error(&r, 404, "invalid_request_error", "model_not_found", "unknown model");
  CHECK_STR(jstr(r.json, "error.code"), "model_not_found");
  CHECK(strstr(jstr(r.json, "error.message") ? jstr(r.json, "error.message") : "", "gpt-9-ultra"));
  th_resp_free(&r);
  /* A model whose provider has no key: a clear error naming the variable to set. */
  gw_chat("{\"model\":\"nokey-model\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r);
  check_error(&r, 401, "invalid_request_error", NULL, "missing provider key");
  const char *m = jstr(r.json, "error.message");
  CHECK_MSG(m && strstr(m, "TIERGATE_TEST_UNSET_KEY"), "message does not name the variable: %s",
            m ? m : "");
  th_resp_free(&r);
  CHECK_EQ_INT(upstream_requests(), up0);
}

static void test_too_large(void) {
  struct th_resp r;
  long long up0 = upstream_requests();
  /* 64 KiB limit in the test config: a 100 KiB body. */
  size_t n = 100 * 1024;
  char *body = malloc(n + 128);
  int off = sprintf(body, "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"");
  memset(body + off, 'a', n);
  strcpy(body + off + n, "\"}]}");
  gw_chat(body, &r);
  check_error(&r, 413, NULL, NULL, "body over the limit");
  th_resp_free(&r);

  /* Same, chunked (no Content-Length to judge by). */
  char url[128];
  snprintf(url, sizeof url, "%s/v1/chat/completions", it.gw.url);
  const char *hdr[] = {"Content-Type: application/json", "Transfer-Encoding: chunked", NULL};
  struct th_req rq = {.method = "POST", .body = body, .headers = hdr};
  gw_req(&rq, "/v1/chat/completions", &r);
  check_error(&r, 413, NULL, NULL, "chunked body over the limit");
  th_resp_free(&r);
  free(body);

  /* A Content-Length that claims 10 GB is refused up front, without waiting for the bytes. */
  int fd = th_connect(it.gw.port);
  const char *head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     "application/json\r\nContent-Length: 10000000000\r\n\r\n{";
  th_send_all(fd, head, strlen(head));
  char buf[4096];
  double t0 = th_now_ms();
  ssize_t k = th_recv(fd, buf, sizeof buf - 1, 3000);
  CHECK_MSG(k > 12 && !strncmp(buf, "HTTP/1.1 413", 12), "no early 413 (%zd)", k);
  CHECK(th_now_ms() - t0 < 2000);
  if (k > 0) {
    buf[k] = 0;
    itest_note_raw(buf);
  }
  close(fd);
  /* Just under the limit is fine. */
  n = 60 * 1024;
  body = malloc(n + 128);
  off = sprintf(body, "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"");
  memset(body + off, 'a', n);
  strcpy(body + off + n, "\"}]}");
  gw_chat(body, &r);
  CHECK_EQ_INT(r.status, 200);
  th_resp_free(&r);
  free(body);
  CHECK_EQ_INT(upstream_requests(), up0 + 1);
}

static void test_paths(void) {
  struct th_resp r;
  struct th_req rq = {0};
  gw_req(&rq, "/v1/nope", &r);
  check_error(&r, 404, "invalid_request_error", NULL, "unknown path");
  th_resp_free(&r);
  rq = (struct th_req){.method = "POST", .body = "{}"};
  gw_req(&rq, "/v2/chat/completions", &r);
  check_error(&r, 404, "invalid_request_error", NULL, "unknown POST path");
  th_resp_free(&r);
  rq = (struct th_req){.method = "GET"};
  gw_req(&rq, "/v1/chat/completions", &r);
  check_error(&r, 405, "invalid_request_error", NULL, "GET on chat completions");
  char h[64];
  CHECK(th_resp_header(&r, "allow", h, sizeof h) && strstr(h, "POST"));
  th_resp_free(&r);
  rq = (struct th_req){.method = "DELETE"};
  gw_req(&rq, "/v1/chat/completions", &r);
  check_error(&r, 405, "invalid_request_error", NULL, "DELETE on chat completions");
  th_resp_free(&r);
  rq = (struct th_req){.method = "POST", .body = "{}"};
  gw_req(&rq, "/v1/models", &r);
  check_error(&r, 405, "invalid_request_error", NULL, "POST on models");
  th_resp_free(&r);
  rq = (struct th_req){0};
  gw_req(&rq, "/v1/models/gpt-404", &r);
  check_error(&r, 404, "invalid_request_error", NULL, "unknown model id");
  th_resp_free(&r);
}

static void test_upstream_failures(void) {
  struct th_resp r;
  /* Connect refused. */
  gw_chat("{\"model\":\"dead-model\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r);
  check_error(&r, 502, NULL, "upstream_connect", "connect failure");
  th_resp_free(&r);
  gw_chat("{\"model\":\"dead-model\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r);
  check_error(&r, 502, NULL, "upstream_connect", "connect failure, streamed");
  th_resp_free(&r);

  /* No first byte within first_byte_timeout (1 s): 504, and the upstream sees us hang up. */
  double t0 = th_now_ms();
  gw_chat("{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"mock\":{\"delay_ms\":4000,\"tag\":\"slow\"}}",
          &r);
  double took = th_now_ms() - t0;
  check_error(&r, 504, NULL, "upstream_timeout", "upstream timeout");
  CHECK_MSG(took >= 900 && took < 3000, "504 after %.0f ms (first_byte_timeout is 1 s)", took);
  th_resp_free(&r);
  json_t *up = th_mock_wait_state(&it.mock, "slow", "aborted", 3000);
  CHECK_MSG(up != NULL, "the upstream never saw the timed-out request cancelled");
  json_decref(up);
  /* Same for a stream that never starts. */
  gw_chat("{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"mock\":{\"delay_ms\":4000}}",
          &r);
  check_error(&r, 504, NULL, "upstream_timeout", "upstream timeout, streamed");
  th_resp_free(&r);

  /* Reset before any reply: a 502. */
  gw_chat("{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"mock\":{\"reset_after_bytes\":0}}", &r);
  check_error(&r, 502, NULL, NULL, "reset before the reply");
  th_resp_free(&r);
  /* A plain body cut in the middle: a 502, not half a body. */
  gw_chat("{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"mock\":{\"reset_after_bytes\":300}}", &r);
  check_error(&r, 502, NULL, NULL, "reset in the body");
  th_resp_free(&r);
}

/* After the 200 has gone out, a failing upstream can only end the stream: the client sees the
 * frames that arrived, then an error frame or the end, and never a [DONE] it did not earn. */
static void test_midstream_failures(void) {
  static const struct {
    const char *mock, *what;
  } cases[] = {
      {"\"reset_after_chunks\":3", "reset mid-stream"},
      {"\"close_after_chunks\":3", "close mid-stream"},
      {"\"hang_after_chunks\":3", "stall mid-stream (idle timeout 1 s)"},
      {"\"error_after_chunks\":3", "error frame mid-stream"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct th_resp r;
    char *body = th_fmt("{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[{\"role\":"
                        "\"user\",\"content\":\"a b\"}],\"mock\":{%s,\"tag\":\"mid%zu\"}}",
                        cases[i].mock, i);
    double t0 = th_now_ms();
    gw_chat(body, &r);
    double took = th_now_ms() - t0;
    free(body);
    CHECK_MSG(r.status == 200, "%s: status %ld", cases[i].what, r.status);
    CHECK_MSG(took < 4000, "%s: took %.0f ms", cases[i].what, took);
    int done;
    json_t *chunks = sse_chunks(&r, &done);
    if (i == 3) {
      /* The upstream's error frame is relayed (the SDK raises on it). */
      bool relayed = false;
      size_t k;
      json_t *c;
      json_array_foreach(chunks, k, c) relayed |= json_is_object(jget(c, "error"));
      CHECK_MSG(relayed, "%s: error frame not relayed", cases[i].what);
    } else {
      CHECK_MSG(done == 0, "%s: the client got [DONE] for a broken stream", cases[i].what);
    }
    CHECK_MSG(json_array_size(chunks) >= 3, "%s: only %zu frames relayed", cases[i].what,
              json_array_size(chunks));
    CHECK_STR(jstr(chunks, "1.choices.0.delta.content"), "a");
    json_decref(chunks);
    json_t *row = db_row_of(&r);
    const char *ec = jstr(row, "error_class");
    CHECK_MSG(ec && *ec, "%s: no error class logged", cases[i].what);
    CHECK_EQ_INT(row_int(row, "streamed"), 1);
    json_decref(row);
    th_resp_free(&r);
  }
  /* The stalled one: the gateway gave up on the upstream. */
  json_t *up = th_mock_wait_state(&it.mock, "mid2", "aborted", 3000);
  CHECK(up != NULL);
  json_decref(up);
}

static void test_passthrough(void) {
  struct th_resp r, d;
  char h[128], hd[128];
  static const struct {
    const char *mock, *what;
    int status;
  } cases[] = {
      {"\"status\":429,\"retry_after\":\"7\",\"error_message\":\"Rate limit reached for requests\"",
       "429 with retry-after", 429},
      {"\"status\":503,\"retry_after\":\"2\",\"retry_after_ms\":\"1500\"", "503 with retry-after-ms",
       503},
      {"\"status\":500", "500", 500},
      {"\"status\":400,\"error_code\":\"context_length_exceeded\",\"error_message\":\"This "
       "model's maximum context length is 128000 tokens.\"",
       "upstream 400", 400},
      {"\"status\":401,\"error_message\":\"Incorrect API key provided\"", "upstream 401", 401},
      {"\"status\":529,\"error_type\":\"overloaded_error\"", "529", 529},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    for (int stream = 0; stream < 2; stream++) {
      char *body = th_fmt("{\"model\":\"gpt-4o-mini\",\"stream\":%s,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"mock\":{%s}}",
                          stream ? "true" : "false", cases[i].mock);
      gw_chat(body, &r);
      direct(body, &d);
      free(body);
      CHECK_MSG(r.status == cases[i].status, "%s: status %ld", cases[i].what, r.status);
      /* The upstream's error body, unchanged. */
      CHECK_MSG(d.json && r.json && json_equal(d.json, r.json), "%s: body %.200s, upstream's %.200s",
                cases[i].what, r.body, d.body);
      const char *names[] = {"retry-after", "retry-after-ms"};
      for (int k = 0; k < 2; k++) {
        bool up = th_resp_header(&d, names[k], hd, sizeof hd) != NULL;
        bool gw = th_resp_header(&r, names[k], h, sizeof h) != NULL;
        CHECK_MSG(up == gw && (!up || !strcmp(h, hd)), "%s: %s %s vs upstream %s", cases[i].what,
                  names[k], gw ? h : "(none)", up ? hd : "(none)");
      }
      json_t *row = db_row_of(&r);
      CHECK_EQ_INT(row_int(row, "http_status"), cases[i].status);
      CHECK_MSG(jstr(row, "error_class") != NULL, "%s: no error class", cases[i].what);
      CHECK_EQ_INT(row_int(row, "streamed"), stream);
      json_decref(row);
      th_resp_free(&r);
      th_resp_free(&d);
    }
  }
  /* A non-JSON error body passes through as it is, too. */
  gw_chat("{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"mock\":{\"status\":502,\"error_body\":"
          "\"<html>bad gateway</html>\"}}",
          &r);
  CHECK_EQ_INT(r.status, 502);
  CHECK_STR(r.body, "<html>bad gateway</html>");
  th_resp_free(&r);
}

/* Garbage on the socket: an error reply or a close, never a crash; the gateway keeps serving. */
static void test_garbage(void) {
  static const char *junk[] = {
      "GARBAGE\r\n\r\n",
      "GET / HTTP/9.9\r\n\r\n",
      "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
      "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 12abc\r\n\r\n",
      "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
      "POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
      "\x00\x01\x02\x03\r\n\r\n",
      "GET /v1/models HTTP/1.1\r\nNo-Colon-Here\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
    int fd = th_connect(it.gw.port);
    CHECK(fd >= 0);
    size_t len = i == 7 ? 8 : strlen(junk[i]);
    th_send_all(fd, junk[i], len);
    char *all;
    int rc;
    size_t n = th_recv_all(fd, &all, 3000, &rc);
    CHECK_MSG(n == 0 || !strncmp(all, "HTTP/1.1 4", 10) || !strncmp(all, "HTTP/1.1 5", 10),
              "junk %zu: %.40s", i, all);
    CHECK_MSG(rc != -2, "junk %zu: connection left open", i);
    if (n) itest_note_raw(all);
    free(all);
    close(fd);
  }
  /* Headers that never end. */
  int fd = th_connect(it.gw.port);
  th_send_all(fd, "GET /healthz HTTP/1.1\r\n", 23);
  char line[1024];
  memset(line, 'x', sizeof line);
  line[0] = 'X';
  line[1] = ':';
  int sent = 0;
  for (int i = 0; i < 2048 && !th_send_all(fd, line, sizeof line); i++) sent++;
  char *all;
  int rc;
  th_recv_all(fd, &all, 3000, &rc);
  CHECK_MSG(sent < 2048 || !strncmp(all, "HTTP/1.1 431", 12) || !strncmp(all, "HTTP/1.1 400", 12),
            "2 MiB of headers: %.40s", all);
  if (!strncmp(all, "HTTP/1.1 4", 10)) itest_note_raw(all);
  free(all);
  close(fd);

  struct th_resp r;
  gw_chat("{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r);
  CHECK_EQ_INT(r.status, 200);
  th_resp_free(&r);
}

int main(void) {
  if (itest_start(NULL, NULL)) {
    CHECK_MSG(0, "cannot start the mock and the gateway");
    return check_done();
  }
  test_bad_bodies();
  test_unknown_model_and_key();
  test_too_large();
  test_paths();
  test_upstream_failures();
  test_midstream_failures();
  test_passthrough();
  test_garbage();
  itest_finish();
  return check_done();
}
