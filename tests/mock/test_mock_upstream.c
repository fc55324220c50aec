/*
 * test_mock_upstream.c: the mock upstream's own test. Every behaviour the gateway tests rely on
 * is checked here against the mock alone, over real loopback HTTP, so that a failing gateway
 * test points at the gateway and not at its test double.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "check.h"
#include "mock/harness.h"

static struct th_mock mock;

/* POST a chat request to the mock; the response is in r. */
static void chat(const char *json, struct th_resp *r) {
  CHECK_EQ_INT(th_post_json(mock.url, "/v1/chat/completions", json, r), 0);
}

#define jstr th_jstr
#define jint th_jint
#define jget th_jget

static void test_plain(void) {
  struct th_resp r;
  /* prompt = (1 + 3) + (1 + 3) = 8; reply = 8 words cycling "say hello world". */
  chat("{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"system\",\"content\":\"You are "
       "terse.\"},{\"role\":\"user\",\"content\":\"say hello world\"}],\"seed\":7}",
       &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK(r.json != NULL);
  CHECK_STR(jstr(r.json, "object"), "chat.completion");
  CHECK_STR(jstr(r.json, "model"), "gpt-4o-mini");
  CHECK_STR(jstr(r.json, "choices.0.message.content"),
            "say hello world say hello world say hello");
  CHECK_STR(jstr(r.json, "choices.0.finish_reason"), "stop");
  CHECK_EQ_INT(jint(r.json, "usage.prompt_tokens"), 8);
  CHECK_EQ_INT(jint(r.json, "usage.completion_tokens"), 8);
  CHECK_EQ_INT(jint(r.json, "usage.total_tokens"), 16);
  CHECK_EQ_INT(jint(r.json, "usage.prompt_tokens_details.cached_tokens"), 0);
  char h[128];
  CHECK(th_resp_header(&r, "x-request-id", h, sizeof h) && !strncmp(h, "req_mock_", 9));
  CHECK(th_resp_header(&r, "content-type", h, sizeof h) && !strcmp(h, "application/json"));
  th_resp_free(&r);

  /* Array content with text parts; max_tokens caps the reply and says "length". */
  chat("{\"model\":\"m\",\"max_tokens\":3,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
       "\"text\",\"text\":\"one two\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}},{"
       "\"type\":\"text\",\"text\":\"three\"}]}]}",
       &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR(jstr(r.json, "choices.0.message.content"), "one two three");
  CHECK_STR(jstr(r.json, "choices.0.finish_reason"), "length");
  CHECK_EQ_INT(jint(r.json, "usage.prompt_tokens"), 4);
  CHECK_EQ_INT(jint(r.json, "usage.completion_tokens"), 3);
  th_resp_free(&r);

  /* Usage knobs: cached, reasoning (added to completion), explicit completion length. */
  chat("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a b c d e f g h i\"}],"
       "\"mock\":{\"completion_tokens\":5,\"reasoning_tokens\":2,\"cached_tokens\":4}}",
       &r);
  CHECK_EQ_INT(jint(r.json, "usage.prompt_tokens"), 10);
  CHECK_EQ_INT(jint(r.json, "usage.prompt_tokens_details.cached_tokens"), 4);
  CHECK_EQ_INT(jint(r.json, "usage.completion_tokens"), 7);
  CHECK_EQ_INT(jint(r.json, "usage.completion_tokens_details.reasoning_tokens"), 2);
  CHECK_EQ_INT(jint(r.json, "usage.total_tokens"), 17);
  CHECK_STR(jstr(r.json, "choices.0.message.content"), "a b c d e");
  th_resp_free(&r);

  /* Fixed content. */
  chat("{\"model\":\"m\",\"messages\":[],\"mock\":{\"content\":\"Fixed \\\"quoted\\\" text\"}}",
       &r);
  CHECK_STR(jstr(r.json, "choices.0.message.content"), "Fixed \"quoted\" text");
  CHECK_EQ_INT(jint(r.json, "usage.completion_tokens"), 3);
  CHECK_EQ_INT(jint(r.json, "usage.prompt_tokens"), 0);
  th_resp_free(&r);
}

static void test_echo(void) {
  struct th_resp r;
  char url[128];
  snprintf(url, sizeof url, "%s/v1/chat/completions", mock.url);
  const char *hdr[] = {"Authorization: Bearer sk-test-123", "Content-Type: application/json",
                       "X-Extra: one", "X-Extra: two", NULL};
  const char *body =
      "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"logprobs\":true,"
      "\"response_format\":{\"type\":\"json_object\"},\"mock\":{\"tag\":\"echo1\"}}";
  struct th_req rq = {.url = url, .body = body, .headers = hdr};
  CHECK_EQ_INT(th_http(&rq, &r), 0);
  CHECK_EQ_INT(r.status, 200);
  th_resp_free(&r);
  /* An untagged request after it: ?tag= must still find the tagged one. */
  chat("{\"model\":\"m\",\"messages\":[]}", &r);
  th_resp_free(&r);

  json_t *last = th_mock_last(&mock, "echo1");
  CHECK(last != NULL);
  CHECK_STR(jstr(last, "method"), "POST");
  CHECK_STR(jstr(last, "path"), "/v1/chat/completions");
  CHECK_STR(jstr(last, "headers.authorization"), "Bearer sk-test-123");
  CHECK_STR(jstr(last, "headers.x-extra"), "one, two");
  CHECK_STR(jstr(last, "tag"), "echo1");
  CHECK_STR(jstr(last, "state"), "done");
  CHECK_EQ_INT(jint(last, "status"), 200);
  CHECK(json_is_true(jget(last, "body.logprobs")));
  CHECK_STR(jstr(last, "body.response_format.type"), "json_object");
  CHECK_EQ_INT(jint(last, "body_len"), (long long)strlen(body));
  json_decref(last);

  last = th_mock_last(&mock, NULL);
  CHECK(last && json_is_null(json_object_get(last, "tag")));
  CHECK_EQ_INT(json_array_size(jget(last, "body.messages")), 0);
  json_decref(last);

  last = th_mock_last(&mock, "no-such-tag");
  CHECK(last == NULL);
}

static void test_errors(void) {
  struct th_resp r;
  char h[64];
  /* Fault from the model name (how a gateway config pins one to a public model). */
  chat("{\"model\":\"gpt-4o-mini;status=429;retry_after=7\",\"messages\":[]}", &r);
  CHECK_EQ_INT(r.status, 429);
  CHECK_STR(jstr(r.json, "error.type"), "requests");
  CHECK_STR(jstr(r.json, "error.code"), "rate_limit_exceeded");
  CHECK(th_resp_header(&r, "retry-after", h, sizeof h) && !strcmp(h, "7"));
  th_resp_free(&r);

  /* The body's "mock" object overrides the model's options. */
  chat("{\"model\":\"m;status=429\",\"messages\":[],\"mock\":{\"status\":503,\"retry_after_ms\":"
       "250,\"error_message\":\"busy\"}}",
       &r);
  CHECK_EQ_INT(r.status, 503);
  CHECK_STR(jstr(r.json, "error.message"), "busy");
  CHECK_STR(jstr(r.json, "error.type"), "service_unavailable_error");
  CHECK(th_resp_header(&r, "retry-after-ms", h, sizeof h) && !strcmp(h, "250"));
  CHECK(th_resp_header(&r, "retry-after", h, sizeof h) == NULL);
  th_resp_free(&r);

  chat("{\"model\":\"m\",\"messages\":[],\"mock\":{\"status\":500,\"error_body\":\"<html>oops\"}}",
       &r);
  CHECK_EQ_INT(r.status, 500);
  CHECK_STR(r.body, "<html>oops");
  th_resp_free(&r);

  /* The mock validates like the real API. */
  chat("{\"model\":\"m\",", &r);
  CHECK_EQ_INT(r.status, 400);
  CHECK_STR(jstr(r.json, "error.type"), "invalid_request_error");
  th_resp_free(&r);
  chat("[1,2]", &r);
  CHECK_EQ_INT(r.status, 400);
  th_resp_free(&r);
  chat("{\"model\":\"m\",\"messages\":\"no\"}", &r);
  CHECK_EQ_INT(r.status, 400);
  th_resp_free(&r);
  /* Unknown or mistyped options are refused loudly, not ignored. */
  chat("{\"model\":\"m\",\"messages\":[],\"mock\":{\"stauts\":500}}", &r);
  CHECK_EQ_INT(r.status, 400);
  CHECK(strstr(r.body, "stauts") != NULL);
  th_resp_free(&r);
  chat("{\"model\":\"m;delay_ms=abc\",\"messages\":[]}", &r);
  CHECK_EQ_INT(r.status, 400);
  th_resp_free(&r);
  chat("{\"model\":\"m\",\"messages\":[],\"mock\":{\"delay_ms\":-5}}", &r);
  CHECK_EQ_INT(r.status, 400);
  th_resp_free(&r);

  CHECK_EQ_INT(th_get(mock.url, "/v1/chat/completions", &r), 0);
  CHECK_EQ_INT(r.status, 405);
  th_resp_free(&r);
  CHECK_EQ_INT(th_get(mock.url, "/nope", &r), 0);
  CHECK_EQ_INT(r.status, 404);
  th_resp_free(&r);
  CHECK_EQ_INT(th_get(mock.url, "/healthz", &r), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR(r.body, "ok\n");
  th_resp_free(&r);
  /* Any prefix before /chat/completions works (a provider base URL with a path). */
  CHECK_EQ_INT(th_post_json(mock.url, "/some/prefix/v1/chat/completions",
                            "{\"model\":\"m\",\"messages\":[]}", &r),
               0);
  CHECK_EQ_INT(r.status, 200);
  th_resp_free(&r);
}

/* Parses a stream body into its chunk objects (the [DONE] marker counted separately). */
static json_t *parse_chunks(const struct th_resp *r, int *done) {
  json_t *data = th_sse_data(r->body, r->body_len);
  json_t *chunks = json_array();
  *done = 0;
  size_t i;
  json_t *d;
  json_array_foreach(data, i, d) {
    if (!strcmp(json_string_value(d), "[DONE]")) {
      (*done)++;
      CHECK_EQ_INT(i, json_array_size(data) - 1);  /* [DONE] is last */
      continue;
    }
    json_t *c = json_loads(json_string_value(d), 0, NULL);
    CHECK_MSG(c != NULL, "stream frame is not JSON: %s", json_string_value(d));
    if (c) json_array_append_new(chunks, c);
  }
  json_decref(data);
  return chunks;
}

static void test_flaky(void) {
  struct th_resp r;
  const char *b = "{\"model\":\"m\",\"messages\":[],\"mock\":{\"tag\":\"flaky\",\"status\":503,"
                  "\"retry_after\":\"1\",\"fail_times\":2}}";
  int want[] = {503, 503, 200, 200};
  for (int i = 0; i < 4; i++) {
    chat(b, &r);
    CHECK_EQ_INT(r.status, want[i]);
    char h[16];
    CHECK((th_resp_header(&r, "retry-after", h, sizeof h) != NULL) == (want[i] == 503));
    th_resp_free(&r);
  }
  /* Another tag has its own count. */
  chat("{\"model\":\"m\",\"messages\":[],\"mock\":{\"tag\":\"flaky2\",\"status\":500,"
       "\"fail_times\":1}}",
       &r);
  CHECK_EQ_INT(r.status, 500);
  th_resp_free(&r);
}

static void test_stream(void) {
  struct th_resp r;
  int done;
  char h[128];
  /* No include_usage: no usage key anywhere. */
  chat("{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"alpha "
       "beta\"}],\"mock\":{\"completion_tokens\":3}}",
       &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK(th_resp_header(&r, "content-type", h, sizeof h) && !strncmp(h, "text/event-stream", 17));
  CHECK(th_resp_header(&r, "transfer-encoding", h, sizeof h) && !strcmp(h, "chunked"));
  json_t *chunks = parse_chunks(&r, &done);
  CHECK_EQ_INT(done, 1);
  /* role, 3 words, finish */
  CHECK_EQ_INT(json_array_size(chunks), 5);
  CHECK_STR(jstr(chunks, "0.choices.0.delta.role"), "assistant");
  CHECK_STR(jstr(chunks, "1.choices.0.delta.content"), "alpha");
  CHECK_STR(jstr(chunks, "2.choices.0.delta.content"), " beta");
  CHECK_STR(jstr(chunks, "3.choices.0.delta.content"), " alpha");
  CHECK_STR(jstr(chunks, "4.choices.0.finish_reason"), "stop");
  size_t i;
  json_t *c;
  json_array_foreach(chunks, i, c) {
    CHECK(json_object_get(c, "usage") == NULL);
    CHECK_STR(jstr(c, "object"), "chat.completion.chunk");
    CHECK_STR(jstr(c, "id"), jstr(chunks, "0.id"));
  }
  json_decref(chunks);
  th_resp_free(&r);

  /* include_usage: usage:null on each chunk, then a final chunk with choices [] and totals. */
  chat("{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true},\"messages\":"
       "[{\"role\":\"user\",\"content\":\"x y z\"}],\"mock\":{\"cached_tokens\":1}}",
       &r);
  chunks = parse_chunks(&r, &done);
  CHECK_EQ_INT(done, 1);
  size_t n = json_array_size(chunks);
  CHECK_EQ_INT(n, 1 + 8 + 1 + 1);
  json_array_foreach(chunks, i, c) {
    if (i + 1 < n) CHECK(json_is_null(json_object_get(c, "usage")));
  }
  const json_t *u = json_array_get(chunks, n - 1);
  CHECK_EQ_INT(json_array_size(json_object_get(u, "choices")), 0);
  CHECK_EQ_INT(jint(u, "usage.prompt_tokens"), 4);
  CHECK_EQ_INT(jint(u, "usage.completion_tokens"), 8);
  CHECK_EQ_INT(jint(u, "usage.prompt_tokens_details.cached_tokens"), 1);
  json_decref(chunks);
  th_resp_free(&r);

  /* no_usage: an upstream that ignores include_usage. */
  chat("{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true},\"messages\":"
       "[],\"mock\":{\"no_usage\":true,\"completion_tokens\":1}}",
       &r);
  chunks = parse_chunks(&r, &done);
  CHECK_EQ_INT(json_array_size(chunks), 3);
  json_decref(chunks);
  th_resp_free(&r);

  /* Mid-stream error frame after 2 frames, no [DONE]. */
  chat("{\"model\":\"m\",\"stream\":true,\"messages\":[],\"mock\":{\"error_after_chunks\":2}}", &r);
  CHECK_EQ_INT(r.status, 200);
  chunks = parse_chunks(&r, &done);
  CHECK_EQ_INT(done, 0);
  CHECK_EQ_INT(json_array_size(chunks), 3);
  CHECK_STR(jstr(chunks, "2.error.type"), "server_error");
  json_decref(chunks);
  th_resp_free(&r);
}

static const char *tools_json =
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_time\",\"parameters\":{}}},{"
    "\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":"
    "\"object\",\"properties\":{\"city\":{\"type\":\"string\"},\"days\":{\"type\":\"integer\"}}}}}]";

static void test_tools(void) {
  struct th_resp r;
  char *body = th_fmt("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"weather?\"}"
                      "],%s,\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":"
                      "\"get_weather\"}}}",
                      tools_json);
  chat(body, &r);
  free(body);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR(jstr(r.json, "choices.0.finish_reason"), "tool_calls");
  CHECK(json_is_null(jget(r.json, "choices.0.message.content")));
  CHECK_STR(jstr(r.json, "choices.0.message.tool_calls.0.type"), "function");
  CHECK_STR(jstr(r.json, "choices.0.message.tool_calls.0.function.name"), "get_weather");
  CHECK_STR(jstr(r.json, "choices.0.message.tool_calls.0.function.arguments"),
            "{\"city\":\"mock\",\"days\":1}");
  const char *id = jstr(r.json, "choices.0.message.tool_calls.0.id");
  CHECK(id && !strncmp(id, "call_mock_", 10));
  th_resp_free(&r);

  /* Default: the first tool. Streamed: name first, arguments in fragments. */
  body = th_fmt("{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":"
                "\"t\"}],%s,\"mock\":{\"tool_arguments\":{\"tz\":\"UTC\"}}}",
                tools_json);
  chat(body, &r);
  free(body);
  int done;
  json_t *chunks = parse_chunks(&r, &done);
  CHECK_EQ_INT(done, 1);
  CHECK_STR(jstr(chunks, "1.choices.0.delta.tool_calls.0.function.name"), "get_time");
  CHECK_STR(jstr(chunks, "1.choices.0.delta.tool_calls.0.type"), "function");
  char args[256] = "";
  size_t i;
  json_t *c;
  json_array_foreach(chunks, i, c) {
    const char *a = jstr(c, "choices.0.delta.tool_calls.0.function.arguments");
    if (a) strncat(args, a, sizeof args - strlen(args) - 1);
  }
  CHECK_STR(args, "{\"tz\":\"UTC\"}");
  CHECK_STR(jstr(json_array_get(chunks, json_array_size(chunks) - 1), "choices.0.finish_reason"),
            "tool_calls");
  json_decref(chunks);
  th_resp_free(&r);

  /* After the tool result: a text reply built from the result. */
  body = th_fmt("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"w?\"},{\"role\":"
                "\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":"
                "\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{}\"}}]},{"
                "\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"sunny 21C\"}],%s,"
                "\"mock\":{\"completion_tokens\":4}}",
                tools_json);
  chat(body, &r);
  free(body);
  CHECK_STR(jstr(r.json, "choices.0.finish_reason"), "stop");
  CHECK_STR(jstr(r.json, "choices.0.message.content"), "sunny 21C sunny 21C");
  /* prompt = (1+1) + (1+0) + (1+2) */
  CHECK_EQ_INT(jint(r.json, "usage.prompt_tokens"), 6);
  th_resp_free(&r);

  /* tool_choice none: text. */
  body = th_fmt("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],%s,"
                "\"tool_choice\":\"none\"}",
                tools_json);
  chat(body, &r);
  free(body);
  CHECK_STR(jstr(r.json, "choices.0.finish_reason"), "stop");
  th_resp_free(&r);
}

/* Reads a raw HTTP response until `until` appears, returning ms when it first appeared. */
static double raw_wait_for(int fd, char *acc, size_t cap, size_t *len, const char *until,
                           int timeout_ms) {
  double t0 = th_now_ms();
  while (!strstr(acc, until)) {
    int left = timeout_ms - (int)(th_now_ms() - t0);
    if (left <= 0 || *len + 1 >= cap) return -1;
    ssize_t k = th_recv(fd, acc + *len, cap - *len - 1, left);
    if (k <= 0) return -1;
    *len += (size_t)k;
    acc[*len] = 0;
  }
  return th_now_ms();
}

static void test_timing(void) {
  struct th_resp r;
  /* Latency before the first byte. */
  chat("{\"model\":\"m;delay_ms=300\",\"messages\":[]}", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_MSG(r.ttfb_ms >= 290, "ttfb %.1f ms, want >= 300", r.ttfb_ms);
  th_resp_free(&r);

  /* Chunks arrive incrementally: the first well before the last. */
  int fd = th_connect(mock.port);
  CHECK(fd >= 0);
  double t0 = th_now_ms();
  th_send_post(fd, "/v1/chat/completions",
               "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":"
               "\"tick\"}],\"mock\":{\"completion_tokens\":5,\"chunk_delay_ms\":80}}",
               NULL);
  static char acc[65536];
  size_t len = 0;
  acc[0] = 0;
  double t_first = raw_wait_for(fd, acc, sizeof acc, &len, "\"role\"", 5000);
  double t_done = raw_wait_for(fd, acc, sizeof acc, &len, "[DONE]", 5000);
  CHECK(t_first > 0 && t_done > 0);
  /* role frame immediately, then 5 words + finish, 80 ms apart: >= 480 ms in total. */
  CHECK_MSG(t_first - t0 < 200, "first frame after %.1f ms", t_first - t0);
  CHECK_MSG(t_done - t_first >= 400, "stream took only %.1f ms after the first frame",
            t_done - t_first);
  close(fd);

  /* A stall in the middle. */
  fd = th_connect(mock.port);
  t0 = th_now_ms();
  th_send_post(fd, "/v1/chat/completions",
               "{\"model\":\"m\",\"stream\":true,\"messages\":[],\"mock\":{\"completion_tokens\":2,"
               "\"stall_after_chunks\":2,\"stall_ms\":400}}",
               NULL);
  len = 0;
  acc[0] = 0;
  t_first = raw_wait_for(fd, acc, sizeof acc, &len, "\"role\"", 5000);
  t_done = raw_wait_for(fd, acc, sizeof acc, &len, "[DONE]", 5000);
  CHECK_MSG(t_first > 0 && t_first - t0 < 200, "first frame after %.1f ms", t_first - t0);
  CHECK_MSG(t_done - t_first >= 380, "stall of only %.1f ms", t_done - t_first);
  close(fd);
}

static void test_cuts(void) {
  struct th_resp r;
  char tag[32];
  /* Reset after 2 frames: the client sees a reset, the record says so. */
  int fd = th_connect(mock.port);
  th_send_post(fd, "/v1/chat/completions",
               "{\"model\":\"m\",\"stream\":true,\"messages\":[],\"mock\":{\"reset_after_chunks\":2,"
               "\"tag\":\"rst\"}}",
               NULL);
  char *all;
  int rc;
  size_t n = th_recv_all(fd, &all, 5000, &rc);
  CHECK_EQ_INT(rc, -1);
  CHECK_EQ_INT(errno, ECONNRESET);
  (void)n;
  free(all);
  close(fd);
  json_t *last = th_mock_last(&mock, "rst");
  CHECK_STR(jstr(last, "state"), "reset");
  CHECK_EQ_INT(jint(last, "frames_sent"), 2);
  json_decref(last);

  /* Through libcurl: a reset is a receive error. */
  chat("{\"model\":\"m\",\"stream\":true,\"messages\":[],\"mock\":{\"reset_after_chunks\":1}}", &r);
  CHECK(r.curl_rc == CURLE_RECV_ERROR || r.curl_rc == CURLE_PARTIAL_FILE);
  th_resp_free(&r);

  /* Close (FIN) after 3 frames: a truncated stream, no terminating chunk. */
  chat("{\"model\":\"m\",\"stream\":true,\"messages\":[],\"mock\":{\"close_after_chunks\":3,\"tag\":"
       "\"fin\"}}",
       &r);
  CHECK_MSG(r.curl_rc == CURLE_PARTIAL_FILE || r.curl_rc == CURLE_RECV_ERROR, "curl rc %d",
            r.curl_rc);
  CHECK(strstr(r.body, "[DONE]") == NULL);
  th_resp_free(&r);
  last = th_mock_last(&mock, "fin");
  CHECK_STR(jstr(last, "state"), "closed");
  json_decref(last);

  /* No reply at all, then a reset. */
  chat("{\"model\":\"m\",\"messages\":[],\"mock\":{\"reset_after_bytes\":0}}", &r);
  CHECK(r.curl_rc != CURLE_OK);
  CHECK_EQ_INT(r.status, 0);
  th_resp_free(&r);

  /* A plain body cut after 20 bytes: status line arrives, then the reset. */
  fd = th_connect(mock.port);
  th_send_post(fd, "/v1/chat/completions",
               "{\"model\":\"m\",\"messages\":[],\"mock\":{\"reset_after_bytes\":20}}", NULL);
  n = th_recv_all(fd, &all, 5000, &rc);
  CHECK_EQ_INT(n, 20);
  CHECK(!strncmp(all, "HTTP/1.1 200 OK\r\n", 17));
  free(all);
  close(fd);

  /* Hang after the first frame: the client gives up, and the mock notices it going. */
  for (int k = 0; k < 2; k++) {
    snprintf(tag, sizeof tag, "hang%d", k);
    char *body = th_fmt("{\"model\":\"m\",\"stream\":true,\"messages\":[],\"mock\":{"
                        "\"%s\":1,\"tag\":\"%s\"}}",
                        k ? "hang_after_chunks" : "first_chunk_delay_ms", tag);
    if (!k) {
      /* k == 0: a long delay before the first frame instead of a hang. */
      free(body);
      body = th_fmt("{\"model\":\"m\",\"stream\":true,\"messages\":[],\"mock\":{"
                    "\"first_chunk_delay_ms\":60000,\"tag\":\"%s\"}}",
                    tag);
    }
    char url[128];
    snprintf(url, sizeof url, "%s/v1/chat/completions", mock.url);
    struct th_req rq = {.url = url, .body = body, .timeout_ms = 300};
    long long aborted0 = th_mock_stat(&mock, "aborted");
    th_http(&rq, &r);
    free(body);
    CHECK_EQ_INT(r.curl_rc, CURLE_OPERATION_TIMEDOUT);
    CHECK_EQ_INT(r.status, 200);
    th_resp_free(&r);
    last = th_mock_wait_state(&mock, tag, "aborted", 3000);
    CHECK_MSG(last != NULL, "mock did not see the client of %s go", tag);
    json_decref(last);
    CHECK_EQ_INT(th_mock_stat(&mock, "aborted"), aborted0 + 1);
  }

  /* Client disconnect mid-stream: the mock records an abort and stops sending. */
  fd = th_connect(mock.port);
  th_send_post(fd, "/v1/chat/completions",
               "{\"model\":\"m\",\"stream\":true,\"messages\":[],\"mock\":{\"completion_tokens\":50,"
               "\"chunk_delay_ms\":50,\"tag\":\"gone\"}}",
               NULL);
  static char acc[65536];
  size_t len = 0;
  acc[0] = 0;
  CHECK(raw_wait_for(fd, acc, sizeof acc, &len, "\"role\"", 5000) > 0);
  close(fd);
  last = th_mock_wait_state(&mock, "gone", "aborted", 3000);
  CHECK(last != NULL);
  CHECK_MSG(jint(last, "frames_sent") < 50, "frames_sent %lld", jint(last, "frames_sent"));
  json_decref(last);
}

static void test_huge(void) {
  struct th_resp r;
  /* 8 MiB of reply text in one JSON body. */
  chat("{\"model\":\"m\",\"messages\":[],\"mock\":{\"huge_bytes\":8388608}}", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK(r.body_len > 8388608);
  const char *content = jstr(r.json, "choices.0.message.content");
  CHECK(content && strlen(content) == 8388608);
  CHECK_EQ_INT(jint(r.json, "usage.completion_tokens"), 2097152);
  th_resp_free(&r);
  /* Streamed: 1 MiB in 16 KiB pieces. */
  chat("{\"model\":\"m\",\"stream\":true,\"messages\":[],\"mock\":{\"huge_bytes\":1048576}}", &r);
  int done;
  json_t *chunks = parse_chunks(&r, &done);
  CHECK_EQ_INT(done, 1);
  CHECK_EQ_INT(json_array_size(chunks), 1 + 64 + 1);
  json_decref(chunks);
  th_resp_free(&r);
  /* A large request body (2 MiB) is received whole and recorded by length. */
  size_t big = 2u << 20;
  char *body = malloc(big + 128);
  int off = sprintf(body, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"");
  memset(body + off, 'a', big);
  strcpy(body + off + big, "\"}],\"mock\":{\"tag\":\"big\"}}");
  chat(body, &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_EQ_INT(jint(r.json, "usage.prompt_tokens"), 2);
  th_resp_free(&r);
  json_t *last = th_mock_last(&mock, "big");
  CHECK_EQ_INT(jint(last, "body_len"), (long long)strlen(body));
  json_decref(last);
  free(body);
}

static void test_http_edges(void) {
  /* Chunked request body and two pipelined requests on one connection. */
  int fd = th_connect(mock.port);
  const char *p1 = "{\"model\":\"chunk", *p2 = "ed\",\"messages\":[]}    ";
  const char *b2 = "{\"model\":\"p2\",\"messages\":[]}";
  char *req = th_fmt("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                     "chunked\r\n\r\n%zx\r\n%s\r\n%zx;ext=1\r\n%s\r\n0\r\nTrailer: t\r\n\r\n"
                     "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     strlen(p1), p1, strlen(p2), p2, strlen(b2), b2);
  th_send_all(fd, req, strlen(req));
  free(req);
  char *all;
  int rc;
  th_recv_all(fd, &all, 5000, &rc);
  CHECK_EQ_INT(rc, 0);  /* closed by the mock after the second (Connection: close) */
  const char *first = strstr(all, "\"model\":\"chunked\"");
  const char *second = strstr(all, "\"model\":\"p2\"");
  CHECK(first && second && first < second);
  free(all);
  close(fd);

  /* Garbage gets a 400 and a close, not a crash. */
  fd = th_connect(mock.port);
  th_send_all(fd, "NONSENSE\r\n\r\n", 12);
  th_recv_all(fd, &all, 5000, &rc);
  CHECK(!strncmp(all, "HTTP/1.1 400", 12));
  free(all);
  close(fd);
  /* Headers that never end are capped. */
  fd = th_connect(mock.port);
  char junk[4096];
  memset(junk, 'h', sizeof junk);
  for (int i = 0; i < 20; i++) th_send_all(fd, junk, sizeof junk);
  th_recv_all(fd, &all, 5000, &rc);
  CHECK(!strncmp(all, "HTTP/1.1 431", 12));
  free(all);
  close(fd);
  /* Expect: 100-continue is answered. */
  fd = th_connect(mock.port);
  const char *eb = "{\"model\":\"e\",\"messages\":[]}";
  char *e = th_fmt("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n"
                   "Expect: 100-continue\r\n\r\n",
                   strlen(eb));
  th_send_all(fd, e, strlen(e));
  free(e);
  char buf[256];
  ssize_t k = th_recv(fd, buf, sizeof buf - 1, 5000);
  CHECK(k > 0 && !strncmp(buf, "HTTP/1.1 100 Continue\r\n\r\n", 25));
  th_send_all(fd, eb, strlen(eb));
  k = th_recv(fd, buf, sizeof buf - 1, 5000);
  CHECK(k > 0 && !strncmp(buf, "HTTP/1.1 200 OK", 15));
  close(fd);
}

/* Keep-alive round trips with one libcurl handle: a sanity check on speed, printed, with a
 * floor low enough for a loaded CI machine under sanitizers. The benchmark measures for real. */
static size_t sink(char *d, size_t s, size_t n, void *a) {
  (void)d;
  (void)a;
  return s * n;
}

static void test_throughput(void) {
  CURL *h = curl_easy_init();
  char url[128];
  snprintf(url, sizeof url, "%s/v1/chat/completions", mock.url);
  struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: application/json");
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS,
                   "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
  curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
  int ok = 0, n = 2000;
  long long accepted0 = th_mock_stat(&mock, "accepted");
  double t0 = th_now_ms();
  for (int i = 0; i < n; i++) {
    long st = 0;
    if (curl_easy_perform(h) == CURLE_OK &&
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st) == CURLE_OK && st == 200)
      ok++;
  }
  double ms = th_now_ms() - t0;
  curl_slist_free_all(hl);
  curl_easy_cleanup(h);
  CHECK_EQ_INT(ok, n);
  /* One connection for all of them (keep-alive works) plus the stats call itself. */
  CHECK_EQ_INT(th_mock_stat(&mock, "accepted") - accepted0, 2);
  printf("mock: %d sequential keep-alive requests in %.0f ms (%.0f req/s, one client)\n", n, ms,
         n * 1000.0 / ms);
  CHECK_MSG(n * 1000.0 / ms > 300, "only %.0f req/s", n * 1000.0 / ms);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (th_mock_start(&mock, NULL)) {
    CHECK_MSG(0, "cannot start the mock");
    return check_done();
  }
  CHECK(mock.port > 0);
  test_plain();
  test_echo();
  test_errors();
  test_flaky();
  test_stream();
  test_tools();
  test_timing();
  test_cuts();
  test_huge();
  test_http_edges();
  test_throughput();
  /* After all that: nothing left in flight, and a clean exit (no leaks under ASan). */
  th_sleep_ms(50);
  CHECK_EQ_INT(th_mock_stat(&mock, "active"), 0);
  int st = th_mock_stop(&mock);
  CHECK_MSG(st == 0, "mock exit status %d", st);
  curl_global_cleanup();
  return check_done();
}
