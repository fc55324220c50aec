/*
 * test_gw_proxy.c: tiergate in front of the mock upstream, the happy paths. A request goes
 * through with the model name mapped, every other field untouched, the provider key injected and
 * the client's own credentials dropped; the reply comes back as the upstream sent it apart from
 * the model name; streams are relayed chunk by chunk as they arrive, with the usage chunk kept or
 * dropped as the client asked; and each request leaves one log row with exact tokens and costs.
 */
#include "router/itest.h"

/* 8 prompt tokens: (1 + 3) + (1 + 3); the mock answers 8 words. */
#define MSGS                                                                           \
  "\"messages\":[{\"role\":\"system\",\"content\":\"You are terse.\"},{\"role\":\"user\"," \
  "\"content\":\"say hello world\"}]"

/* A copy of J without the keys that legitimately differ between two calls: the id (the mock
 * numbers its replies) and the model (the gateway maps it). */
static json_t *strip(const json_t *j) {
  json_t *c = json_deep_copy(j);
  json_object_del(c, "id");
  json_object_del(c, "model");
  return c;
}

static void test_plain(void) {
  struct th_resp r, d;
  char h[256];
  const char *client_hdr[] = {"Content-Type: application/json",
                              "Authorization: Bearer client-secret-key",
                              "X-Client-Header: client-private",
                              "OpenAI-Organization: org-client", NULL};
  /* Fields the gateway does not interpret, in forms a re-serializer would change: 0.7 and
   * 1.50e+3 (jansson would print 0.69999999999999996 and 1500.0), \u escapes, nesting. */
  const char *body =
      "{\"model\":\"gpt-4o-mini\"," MSGS
      ",\"temperature\":0.7,\"top_p\":1e-1,\"x_num\":1.50e+3,\"seed\":42,\"logprobs\":true,"
      "\"top_logprobs\":2,\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":"
      "\"x\",\"schema\":{\"type\":\"object\"}}},\"metadata\":{\"k\":\"v\"},\"user\":\"u1\","
      "\"x_unicode\":\"h\\u00e9llo \\u2603 \\ud83d\\ude00\",\"x_nested\":{\"a\":[1,2,{\"b\":null}]"
      ",\"e\":{}},\"mock\":{\"tag\":\"plain\"}}";
  struct th_req rq = {.method = "POST", .body = body, .headers = client_hdr};
  gw_req(&rq, "/v1/chat/completions", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK(r.json != NULL);
  CHECK_STR(jstr(r.json, "model"), "gpt-4o-mini");
  CHECK_STR(jstr(r.json, "choices.0.message.content"), "say hello world say hello world say hello");
  CHECK_EQ_INT(jint(r.json, "usage.prompt_tokens"), 8);
  CHECK_EQ_INT(jint(r.json, "usage.completion_tokens"), 8);
  CHECK(th_resp_header(&r, "content-type", h, sizeof h) && !strncmp(h, "application/json", 16));
  CHECK(th_resp_header(&r, "x-tiergate-request-id", h, sizeof h) && strlen(h) >= 8);
  CHECK(th_resp_header(&r, "x-tiergate-route", h, sizeof h) && !strcmp(h, "mock/gpt-4o-mini"));
  CHECK(th_resp_header(&r, "x-tiergate-overhead-ms", h, sizeof h));
  double overhead = atof(h);
  CHECK_MSG(overhead >= 0 && overhead < r.total_ms, "overhead %.3f ms of %.3f", overhead,
            r.total_ms);

  /* What the mock received. */
  json_t *up = th_mock_last(&it.mock, "plain");
  CHECK(up != NULL);
  CHECK_STR(jstr(up, "path"), "/v1/chat/completions");
  CHECK_STR(jstr(up, "headers.authorization"), "Bearer sk-tiergate-test-key");
  CHECK_STR(jstr(up, "headers.x-provider-extra"), "from-config");
  CHECK(jget(up, "headers.x-client-header") == NULL);
  CHECK(jget(up, "headers.openai-organization") == NULL);
  const char *raw = jstr(up, "body_text");
  CHECK(raw && !strstr(raw, "client-secret-key"));
  CHECK(raw && strstr(raw, "\"temperature\":0.7"));
  CHECK(raw && strstr(raw, "\"top_p\":1e-1"));
  CHECK(raw && strstr(raw, "\"x_num\":1.50e+3"));
  CHECK(raw && strstr(raw, "\"x_unicode\":\"h\\u00e9llo \\u2603 \\ud83d\\ude00\""));
  /* Field for field, the body is the client's. */
  json_t *sent = json_loads(body, 0, NULL);
  CHECK_MSG(json_equal(sent, jget(up, "body")), "forwarded body differs: %.500s", raw);
  json_decref(sent);
  json_decref(up);

  /* The reply is the upstream's, field for field. */
  direct(body, &d);
  json_t *a = strip(r.json), *b = strip(d.json);
  CHECK_MSG(json_equal(a, b), "reply differs from the upstream's");
  json_decref(a);
  json_decref(b);
  th_resp_free(&d);

  /* The log row. */
  json_t *row = db_row_of(&r);
  CHECK_STR(jstr(row, "client_api"), "openai");
  CHECK_STR(jstr(row, "model"), "gpt-4o-mini");
  CHECK_STR(jstr(row, "upstream_model"), "gpt-4o-mini");
  CHECK_STR(jstr(row, "provider"), "mock");
  CHECK_STR(jstr(row, "route"), "mock/gpt-4o-mini");
  CHECK_EQ_INT(row_int(row, "streamed"), 0);
  CHECK_EQ_INT(row_int(row, "http_status"), 200);
  CHECK(row_null(row, "error_class"));
  CHECK_EQ_INT(row_int(row, "input_tokens"), 8);
  CHECK_EQ_INT(row_int(row, "cached_tokens"), 0);
  CHECK_EQ_INT(row_int(row, "output_tokens"), 8);
  CHECK_EQ_INT(row_int(row, "reasoning_tokens"), 0);
  CHECK_EQ_INT(row_int(row, "cost_pusd"), 8 * P_4O_MINI_IN + 8 * P_4O_MINI_OUT);
  CHECK_EQ_INT(row_int(row, "baseline_cost_pusd"), 8 * P_4O_IN + 8 * P_4O_OUT);
  CHECK_NEAR(th_jnum(row, "cost_usd"), 6e-6, 1e-15);
  double total = th_jnum(row, "total_ms"), upms = th_jnum(row, "upstream_ms");
  CHECK_MSG(total > 0 && upms >= 0 && upms <= total, "total %.3f upstream %.3f", total, upms);
  CHECK(th_jint(row, "started_us") > 1700000000000000LL);
  CHECK(th_jint(row, "finished_us") >= th_jint(row, "started_us"));
  json_decref(row);
  th_resp_free(&r);
}

static void test_mapping_and_prices(void) {
  struct th_resp r;
  /* mapped -> gpt-4.1-nano upstream: the upstream sees the upstream name, the client its own. */
  gw_chat("{\"model\":\"mapped\"," MSGS ",\"mock\":{\"tag\":\"mapped\",\"cached_tokens\":3}}", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR(jstr(r.json, "model"), "mapped");
  json_t *up = th_mock_last(&it.mock, "mapped");
  CHECK_STR(jstr(up, "body.model"), "gpt-4.1-nano");
  json_decref(up);
  char h[128];
  CHECK(th_resp_header(&r, "x-tiergate-route", h, sizeof h) && !strcmp(h, "mock/gpt-4.1-nano"));
  json_t *row = db_row_of(&r);
  CHECK_STR(jstr(row, "model"), "mapped");
  CHECK_STR(jstr(row, "upstream_model"), "gpt-4.1-nano");
  CHECK_EQ_INT(row_int(row, "cached_tokens"), 3);
  /* gpt-4.1-nano: 0.10 in, 0.025 cached, 0.40 out */
  CHECK_EQ_INT(row_int(row, "cost_pusd"), itest_cost(8, 3, 8, 100000, 25000, 400000));
  CHECK_EQ_INT(row_int(row, "baseline_cost_pusd"),
               itest_cost(8, 3, 8, P_4O_IN, P_4O_CACHED, P_4O_OUT));
  json_decref(row);
  th_resp_free(&r);

  /* A price override from the config, with cached and reasoning tokens: reasoning is part of
   * the completion and is not charged twice. */
  gw_chat("{\"model\":\"priced\"," MSGS
          ",\"mock\":{\"cached_tokens\":5,\"reasoning_tokens\":10,\"completion_tokens\":4}}",
          &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_EQ_INT(jint(r.json, "usage.completion_tokens"), 14);
  row = db_row_of(&r);
  CHECK_EQ_INT(row_int(row, "input_tokens"), 8);
  CHECK_EQ_INT(row_int(row, "cached_tokens"), 5);
  CHECK_EQ_INT(row_int(row, "output_tokens"), 14);
  CHECK_EQ_INT(row_int(row, "reasoning_tokens"), 10);
  CHECK_EQ_INT(row_int(row, "cost_pusd"), itest_cost(8, 5, 14, 1000000, 500000, 3000000));
  CHECK_EQ_INT(row_int(row, "baseline_cost_pusd"),
               itest_cost(8, 5, 14, P_4O_IN, P_4O_CACHED, P_4O_OUT));
  json_decref(row);
  th_resp_free(&r);

  /* No known price: the cost is unknown (NULL), the baseline still known. */
  gw_chat("{\"model\":\"unpriced\"," MSGS "}", &r);
  CHECK_EQ_INT(r.status, 200);
  row = db_row_of(&r);
  CHECK(row_null(row, "cost_pusd"));
  CHECK_EQ_INT(row_int(row, "baseline_cost_pusd"), 8 * P_4O_IN + 8 * P_4O_OUT);
  CHECK_EQ_INT(row_int(row, "output_tokens"), 8);
  json_decref(row);
  th_resp_free(&r);

  /* A big prompt: exact counts at scale (5000 words + 1). */
  size_t cap = 5000 * 6 + 256;
  char *big = malloc(cap);
  size_t off = (size_t)sprintf(big, "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\","
                                    "\"content\":\"");
  for (int i = 0; i < 5000; i++) off += (size_t)sprintf(big + off, "w%d ", i % 100);
  strcpy(big + off, "\"}]}");
  gw_chat(big, &r);
  free(big);
  CHECK_EQ_INT(r.status, 200);
  row = db_row_of(&r);
  CHECK_EQ_INT(row_int(row, "input_tokens"), 5001);
  CHECK_EQ_INT(row_int(row, "cost_pusd"), 5001 * P_4O_MINI_IN + 8 * P_4O_MINI_OUT);
  json_decref(row);
  th_resp_free(&r);
}

static void test_stream(void) {
  struct th_resp r, d;
  int done;
  char h[128];
  /* With include_usage: the usage chunk comes through, frames equal the upstream's. */
  const char *with = "{\"model\":\"mapped\",\"stream\":true,\"stream_options\":{\"include_usage\":"
                     "true}," MSGS ",\"mock\":{\"tag\":\"s1\",\"cached_tokens\":2}}";
  gw_chat(with, &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK(th_resp_header(&r, "content-type", h, sizeof h) && !strncmp(h, "text/event-stream", 17));
  json_t *chunks = sse_chunks(&r, &done);
  CHECK_EQ_INT(done, 1);
  size_t n = json_array_size(chunks);
  CHECK_EQ_INT(n, 1 + 8 + 1 + 1);
  const json_t *last = json_array_get(chunks, n - 1);
  CHECK_EQ_INT(json_array_size(jget(last, "choices")), 0);
  CHECK_EQ_INT(jint(last, "usage.prompt_tokens"), 8);
  CHECK_EQ_INT(jint(last, "usage.completion_tokens"), 8);
  CHECK_EQ_INT(jint(last, "usage.prompt_tokens_details.cached_tokens"), 2);
  direct(with, &d);
  json_t *dchunks = sse_chunks(&d, &done);
  CHECK_EQ_INT(json_array_size(dchunks), n);
  for (size_t i = 0; i < n && i < json_array_size(dchunks); i++) {
    CHECK_STR(jstr(json_array_get(chunks, i), "model"), "mapped");
    json_t *a = strip(json_array_get(chunks, i)), *b = strip(json_array_get(dchunks, i));
    CHECK_MSG(json_equal(a, b), "stream frame %zu differs from the upstream's", i);
    json_decref(a);
    json_decref(b);
  }
  json_decref(dchunks);
  th_resp_free(&d);
  json_decref(chunks);
  json_t *row = db_row_of(&r);
  CHECK_EQ_INT(row_int(row, "streamed"), 1);
  CHECK_EQ_INT(row_int(row, "http_status"), 200);
  CHECK_EQ_INT(row_int(row, "input_tokens"), 8);
  CHECK_EQ_INT(row_int(row, "cached_tokens"), 2);
  CHECK_EQ_INT(row_int(row, "output_tokens"), 8);
  CHECK_EQ_INT(row_int(row, "cost_pusd"), itest_cost(8, 2, 8, 100000, 25000, 400000));
  CHECK(th_jnum(row, "ttft_ms") >= 0);
  json_decref(row);
  th_resp_free(&r);

  /* Without include_usage: the gateway still asks upstream (it must bill), but the client gets
   * no usage chunk, and the content is the same. */
  gw_chat("{\"model\":\"gpt-4o-mini\",\"stream\":true," MSGS
          ",\"mock\":{\"tag\":\"s2\",\"reasoning_tokens\":3}}",
          &r);
  CHECK_EQ_INT(r.status, 200);
  json_t *up = th_mock_last(&it.mock, "s2");
  CHECK(json_is_true(jget(up, "body.stream_options.include_usage")));
  json_decref(up);
  chunks = sse_chunks(&r, &done);
  CHECK_EQ_INT(done, 1);
  CHECK_EQ_INT(json_array_size(chunks), 1 + 8 + 1);
  char text[512] = "";
  size_t i;
  json_t *c;
  json_array_foreach(chunks, i, c) {
    CHECK_MSG(json_array_size(jget(c, "choices")) == 1, "chunk %zu has no choice", i);
    const json_t *u = jget(c, "usage");
    CHECK_MSG(u == NULL || json_is_null(u), "chunk %zu carries usage the client did not ask for", i);
    const char *t = jstr(c, "choices.0.delta.content");
    if (t) strncat(text, t, sizeof text - strlen(text) - 1);
  }
  CHECK_STR(text, "say hello world say hello world say hello");
  json_decref(chunks);
  row = db_row_of(&r);
  CHECK_EQ_INT(row_int(row, "input_tokens"), 8);
  CHECK_EQ_INT(row_int(row, "output_tokens"), 11);
  CHECK_EQ_INT(row_int(row, "reasoning_tokens"), 3);
  CHECK_EQ_INT(row_int(row, "cost_pusd"), 8 * P_4O_MINI_IN + 11 * P_4O_MINI_OUT);
  json_decref(row);
  th_resp_free(&r);

  /* include_usage: false is not a request for usage either. */
  gw_chat("{\"model\":\"gpt-4o-mini\",\"stream\":true,\"stream_options\":{\"include_usage\":false},"
          MSGS "}",
          &r);
  chunks = sse_chunks(&r, &done);
  CHECK_EQ_INT(done, 1);
  CHECK_EQ_INT(json_array_size(chunks), 1 + 8 + 1);
  json_decref(chunks);
  th_resp_free(&r);

  /* A tool call, streamed: fragments pass as they are. */
  gw_chat("{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":"
          "\"w?\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
          "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}}]}",
          &r);
  chunks = sse_chunks(&r, &done);
  CHECK_STR(jstr(chunks, "1.choices.0.delta.tool_calls.0.function.name"), "get_weather");
  char args[128] = "";
  json_array_foreach(chunks, i, c) {
    const char *a = jstr(c, "choices.0.delta.tool_calls.0.function.arguments");
    if (a) strncat(args, a, sizeof args - strlen(args) - 1);
  }
  CHECK_STR(args, "{\"city\":\"mock\"}");
  json_decref(chunks);
  th_resp_free(&r);
}

/* Reads from a raw socket until NEEDLE shows up; returns the time it did, -1 on timeout. */
static double wait_for(int fd, char *acc, size_t cap, size_t *len, const char *needle, int ms) {
  double t0 = th_now_ms();
  while (!strstr(acc, needle)) {
    int left = ms - (int)(th_now_ms() - t0);
    if (left <= 0 || *len + 1 >= cap) return -1;
    ssize_t k = th_recv(fd, acc + *len, cap - *len - 1, left);
    if (k <= 0) return -1;
    *len += (size_t)k;
    acc[*len] = 0;
  }
  return th_now_ms();
}

/* Chunks are relayed as they arrive: the first reaches the client while the upstream is still
 * sending (the mock's record is still "active"), long before the last. */
static void test_incremental(void) {
  int fd = th_connect(it.gw.port);
  CHECK(fd >= 0);
  CHECK_EQ_INT(th_send_post(fd, "/v1/chat/completions",
                            "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[{\"role\":"
                            "\"user\",\"content\":\"tick tock\"}],\"mock\":{\"tag\":\"inc\","
                            "\"completion_tokens\":6,\"chunk_delay_ms\":150}}",
                            NULL),
               0);
  static char acc[1 << 16];
  size_t len = 0;
  acc[0] = 0;
  double t_first = wait_for(fd, acc, sizeof acc, &len, "\"content\":\"tick\"", 5000);
  CHECK(t_first > 0);
  json_t *up = th_mock_last(&it.mock, "inc");
  CHECK_STR(jstr(up, "state"), "active");
  CHECK_MSG(jint(up, "frames_sent") <= 3, "upstream already sent %lld frames",
            jint(up, "frames_sent"));
  json_decref(up);
  double t_done = wait_for(fd, acc, sizeof acc, &len, "[DONE]", 5000);
  CHECK(t_done > 0);
  /* 5 more words + finish + usage, 150 ms apart, came after the first. */
  CHECK_MSG(t_done - t_first >= 700, "whole stream within %.0f ms of the first chunk: buffered?",
            t_done - t_first);
  /* The id header comes in the response head. */
  int before = it.n_ids;
  itest_note_raw(acc);
  CHECK_EQ_INT(it.n_ids, before + 1);
  if (it.n_ids == before + 1) {
    json_t *row = db_row(it.ids[before], 5000);
    double ttft = th_jnum(row, "ttft_ms"), total = th_jnum(row, "total_ms");
    CHECK_MSG(ttft >= 0 && ttft < 500 && total >= 900, "ttft %.1f total %.1f", ttft, total);
    json_decref(row);
  }
  close(fd);
}

/* Operational GETs are logged too, one row each, told apart by the endpoint column. */
static void check_endpoint_row(const struct th_resp *r, const char *endpoint, int status) {
  itest_note_id(r);
  json_t *row = db_row_of(r);
  CHECK_STR(jstr(row, "endpoint"), endpoint);
  CHECK_EQ_INT(jint(row, "http_status"), status);
  CHECK(json_is_null(jget(row, "cost_pusd")));
  json_decref(row);
}

static void test_other_routes(void) {
  struct th_resp r;
  CHECK_EQ_INT(th_get(it.gw.url, "/healthz", &r), 0);
  CHECK_EQ_INT(r.status, 200);
  check_endpoint_row(&r, "GET /healthz", 200);
  th_resp_free(&r);

  CHECK_EQ_INT(th_get(it.gw.url, "/v1/models/gpt-4o", &r), 0);
  CHECK_EQ_INT(r.status, 200);
  check_endpoint_row(&r, "GET /v1/models/gpt-4o", 200);
  th_resp_free(&r);

  CHECK_EQ_INT(th_get(it.gw.url, "/v1/models", &r), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR(jstr(r.json, "object"), "list");
  const char *want[] = {"gpt-4o-mini", "gpt-4o", "mapped", "priced", "unpriced", "dead-model",
                        "nokey-model"};
  CHECK_EQ_INT(json_array_size(jget(r.json, "data")), 7);
  for (size_t k = 0; k < 7; k++) {
    bool found = false;
    size_t i;
    json_t *m;
    json_array_foreach(jget(r.json, "data"), i, m) {
      if (!strcmp(jstr(m, "id") ? jstr(m, "id") : "", want[k])) {
        found = true;
        CHECK_STR(jstr(m, "object"), "model");
      }
    }
    CHECK_MSG(found, "model %s missing from /v1/models", want[k]);
  }
  check_endpoint_row(&r, "GET /v1/models", 200);
  th_resp_free(&r);

  /* Prometheus text with the requests made so far. */
  CHECK_EQ_INT(th_get(it.gw.url, "/metrics", &r), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK(strstr(r.body, "# TYPE") != NULL);
  CHECK(strstr(r.body, "gpt-4o-mini") != NULL);
  check_endpoint_row(&r, "GET /metrics", 200);
  th_resp_free(&r);
}

int main(void) {
  if (itest_start(NULL, NULL)) {
    CHECK_MSG(0, "cannot start the mock and the gateway");
    return check_done();
  }
  test_plain();
  test_mapping_and_prices();
  test_stream();
  test_incremental();
  test_other_routes();
  itest_finish();
  return check_done();
}
