/*
 * test_gw_anthropic.c: the Anthropic surface and translation, through `tiergate serve` in front
 * of the mock upstream (which speaks both APIs). Three paths, each plain, streamed, with tools
 * and failing:
 *   Anthropic client -> Anthropic upstream   (passthrough: bytes kept, model mapped, versions)
 *   Anthropic client -> OpenAI upstream      (translated both ways)
 *   OpenAI client    -> Anthropic upstream   (translated both ways)
 * plus the surface's own errors in Anthropic's shape, count_tokens, the Anthropic model list,
 * and the log rows (client_api, exact canonical usage and cost) of every request.
 */
#include "router/itest.h"

/* micro-USD per 1M tokens = pico-USD per token (built-in table) */
#define P_HAIKU_IN 1000000LL
#define P_HAIKU_CACHED 100000LL
#define P_HAIKU_WRITE 1250000LL
#define P_HAIKU_OUT 5000000LL
#define P_SONNET_IN 3000000LL
#define P_SONNET_OUT 15000000LL

#define MODELS                           \
  "  claude-haiku-4-5:\n"                \
  "    provider: mock-anthropic\n"       \
  "  claude-sonnet-4-5:\n"               \
  "    provider: mock-anthropic-2026\n"  \
  "  claude-alias:\n"                    \
  "    provider: mock-anthropic\n"       \
  "    model: claude-haiku-4-5-20251001\n" \
  "  claude-nokey:\n"                    \
  "    provider: nokey\n"                \
  "    model: gpt-4o-mini\n"             \
  "  claude-retry:\n"                    \
  "    provider: mock-anthropic\n"       \
  "    model: claude-haiku-4-5\n"        \
  "    retry: {max_attempts: 3, base_delay: 10ms, jitter: none}\n" \
  "    timeouts: {idle: 300ms}\n"        \
  "  gpt-retry:\n"                       \
  "    provider: mock\n"                 \
  "    model: gpt-4o-mini\n"             \
  "    retry: {max_attempts: 3, base_delay: 10ms, jitter: none}\n" \
  "    timeouts: {idle: 300ms}\n"        \
  "  claude-down:\n"                     \
  "    provider: mock-anthropic\n"       \
  "    model: \"claude-haiku-4-5;status=529\"\n" \
  "    price: {input: 1.00, output: 5.00}\n" \
  "    fallbacks: [gpt-4o-mini]\n"

/* system (1 + 2 words) + user (1 + 3): 7 prompt tokens; the mock answers 8 words */
#define A_MSGS "\"system\":\"Be terse.\",\"messages\":[{\"role\":\"user\",\"content\":\"say hello world\"}]"
#define O_MSGS                                                                         \
  "\"messages\":[{\"role\":\"system\",\"content\":\"Be terse.\"},{\"role\":\"user\"," \
  "\"content\":\"say hello world\"}]"
#define REPLY "say hello world say hello world say hello"

/* Cost at haiku's prices: PROMPT includes CACHED and WRITE. */
static long long haiku_cost(long long prompt, long long cached, long long write, long long out) {
  return (prompt - cached - write) * P_HAIKU_IN + cached * P_HAIKU_CACHED + write * P_HAIKU_WRITE +
         out * P_HAIKU_OUT;
}

/* POST to the gateway as an Anthropic client (version V, key style BEARER or x-api-key). */
static void an_post(const char *path, const char *version, bool bearer, const char *extra,
                    const char *body, struct th_resp *r) {
  char vh[64], eh[256];
  const char *hdr[6];
  int n = 0;
  hdr[n++] = "Content-Type: application/json";
  hdr[n++] = bearer ? "Authorization: Bearer sk-ant-client-secret" : "x-api-key: sk-ant-client-secret";
  if (version) {
    snprintf(vh, sizeof vh, "anthropic-version: %s", version);
    hdr[n++] = vh;
  }
  if (extra) {
    snprintf(eh, sizeof eh, "%s", extra);
    hdr[n++] = eh;
  }
  hdr[n] = NULL;
  struct th_req rq = {.method = "POST", .body = body, .headers = hdr};
  gw_req(&rq, path, r);
}

static void messages(const char *body, struct th_resp *r) {
  an_post("/v1/messages", "2023-06-01", false, NULL, body, r);
}

/* An Anthropic event stream: every frame must have an event: line matching data.type. Returns
 * [{event, data}] (caller decrefs). */
static json_t *an_events(const struct th_resp *r) {
  json_t *out = json_array();
  const char *p = r->body, *end = r->body + r->body_len;
  while (p < end) {
    const char *fe = strstr(p, "\n\n");
    if (!fe) {
      CHECK_MSG(0, "stream ends inside a frame: %.80s", p);
      break;
    }
    char ev[64] = "";
    char *data = NULL;
    for (const char *l = p; l < fe;) {
      const char *nl = memchr(l, '\n', (size_t)(fe - l));
      const char *le = nl ? nl : fe;
      if (!strncmp(l, "event: ", 7)) snprintf(ev, sizeof ev, "%.*s", (int)(le - l - 7), l + 7);
      else if (!strncmp(l, "data: ", 6)) data = strndup(l + 6, (size_t)(le - l - 6));
      l = nl ? nl + 1 : fe;
    }
    CHECK_MSG(ev[0] != 0, "frame without an event: line: %.80s", p);
    json_t *d = data ? json_loads(data, 0, NULL) : NULL;
    CHECK_MSG(d != NULL, "frame data is not JSON: %.80s", data ? data : "(none)");
    if (d) CHECK_MSG(!strcmp(jstr(d, "type") ? jstr(d, "type") : "", ev), "event %s carries type %s", ev,
                     jstr(d, "type"));
    json_array_append_new(out, json_pack("{s:s,s:o}", "event", ev, "data", d ? d : json_null()));
    free(data);
    p = fe + 2;
  }
  return out;
}

/* The event names of a stream joined by spaces, and its text / tool input concatenated. */
static void an_summary(const json_t *evs, char *names, size_t ncap, char *text, size_t tcap,
                       char *json, size_t jcap) {
  names[0] = text[0] = json[0] = 0;
  size_t i;
  json_t *e;
  json_array_foreach(evs, i, e) {
    const char *ev = jstr(e, "event");
    if (strcmp(ev, "ping")) {
      if (names[0]) strncat(names, " ", ncap - strlen(names) - 1);
      strncat(names, ev, ncap - strlen(names) - 1);
    }
    const char *t = jstr(e, "data.delta.text");
    if (t) strncat(text, t, tcap - strlen(text) - 1);
    const char *pj = jstr(e, "data.delta.partial_json");
    if (pj) strncat(json, pj, jcap - strlen(json) - 1);
  }
}

static const char *hdr(const struct th_resp *r, const char *name) {
  static char buf[4][256];
  static int k;
  k = (k + 1) % 4;
  return th_resp_header(r, name, buf[k], sizeof buf[k]);
}

/* ================================================================== Anthropic -> Anthropic */

static void test_passthrough(void) {
  struct th_resp r, d;
  /* numbers and escapes a re-encoder would change; anthropic-beta forwarded; sampling kept on
   * a 2023-06-01 upstream */
  const char *body = "{\"model\":\"claude-haiku-4-5\",\"max_tokens\":100," A_MSGS
                     ",\"temperature\":0.7,\"top_k\":5,\"x_num\":1.50e+3,\"x_uni\":\"h\\u00e9\","
                     "\"mock\":{\"tag\":\"aa-plain\",\"cached_tokens\":2,\"cache_write_tokens\":1}}";
  an_post("/v1/messages", "2023-06-01", true, "anthropic-beta: tools-2024-04-04,other", body, &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR(jstr(r.json, "type"), "message");
  CHECK_STR(jstr(r.json, "model"), "claude-haiku-4-5");
  CHECK_STR(jstr(r.json, "content.0.text"), REPLY);
  CHECK_EQ_INT(jint(r.json, "usage.input_tokens"), 4);
  CHECK_EQ_INT(jint(r.json, "usage.cache_read_input_tokens"), 2);
  CHECK_EQ_INT(jint(r.json, "usage.cache_creation_input_tokens"), 1);
  CHECK_STR(hdr(&r, "x-tiergate-route"), "mock-anthropic/claude-haiku-4-5");
  CHECK(hdr(&r, "request-id") && !strncmp(hdr(&r, "request-id"), "req_mock_", 9));
  CHECK_STR(hdr(&r, "anthropic-ratelimit-requests-limit"), "4000");
  json_t *up = th_mock_last(&it.mock, "aa-plain");
  CHECK_STR(jstr(up, "path"), "/v1/messages");
  CHECK_STR(jstr(up, "headers.x-api-key"), "sk-tiergate-test-key");
  CHECK_STR(jstr(up, "headers.anthropic-version"), "2023-06-01");
  CHECK_STR(jstr(up, "headers.anthropic-beta"), "tools-2024-04-04,other");
  CHECK(jget(up, "headers.authorization") == NULL);
  const char *raw = jstr(up, "body_text");
  CHECK(raw && !strstr(raw, "sk-ant-client-secret"));
  CHECK_MSG(raw && !strcmp(raw, body), "body not forwarded byte for byte: %s", raw);
  json_decref(up);
  /* the reply is the upstream's, apart from the id the mock numbers */
  {
    const char *dh[] = {"Content-Type: application/json", "anthropic-version: 2023-06-01", NULL};
    char url[256];
    snprintf(url, sizeof url, "%s/v1/messages", it.mock.url);
    struct th_req drq = {.method = "POST", .url = url, .body = body, .headers = dh};
    CHECK_EQ_INT(th_http(&drq, &d), 0);
    CHECK_EQ_INT(d.status, 200);
    json_t *a = json_deep_copy(r.json), *b = json_deep_copy(d.json);
    json_object_del(a, "id");
    json_object_del(b, "id");
    CHECK_MSG(json_equal(a, b), "reply differs from the upstream's");
    json_decref(a);
    json_decref(b);
    th_resp_free(&d);
  }
  json_t *row = db_row_of(&r);
  CHECK_STR(jstr(row, "client_api"), "anthropic");
  CHECK_STR(jstr(row, "provider"), "mock-anthropic");
  CHECK_STR(jstr(row, "upstream_model"), "claude-haiku-4-5");
  CHECK_EQ_INT(row_int(row, "input_tokens"), 7);
  CHECK_EQ_INT(row_int(row, "cached_tokens"), 2);
  CHECK_EQ_INT(row_int(row, "cache_write_tokens"), 1);
  CHECK_EQ_INT(row_int(row, "output_tokens"), 8);
  CHECK_EQ_INT(row_int(row, "cost_pusd"), haiku_cost(7, 2, 1, 8));
  /* baseline gpt-4o: no cache-write price, so those bill at its input price */
  CHECK_EQ_INT(row_int(row, "baseline_cost_pusd"), 4 * P_4O_IN + 2 * P_4O_CACHED + 1 * P_4O_IN + 8 * P_4O_OUT);
  CHECK_EQ_INT(row_int(row, "http_status"), 200);
  json_decref(row);
  th_resp_free(&r);

  /* a 2026-10-21 upstream: sampling parameters are removed (the mock would answer 400), the
   * rest kept; the client may still be on 2023-06-01 */
  an_post("/v1/messages", "2023-06-01", false, NULL,
          "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":100," A_MSGS
          ",\"temperature\":0.2,\"top_p\":0.9,\"top_k\":3,\"stop_sequences\":[\"world say\"],"
          "\"mock\":{\"tag\":\"aa-2026\"}}", &r);
  CHECK_EQ_INT(r.status, 200);
  /* the mock cut the reply at the stop sequence */
  CHECK_STR(jstr(r.json, "stop_reason"), "stop_sequence");
  CHECK_STR(jstr(r.json, "stop_sequence"), "world say");
  CHECK_STR(jstr(r.json, "content.0.text"), "say hello ");
  up = th_mock_last(&it.mock, "aa-2026");
  CHECK_STR(jstr(up, "headers.anthropic-version"), "2026-10-21");
  CHECK(jget(up, "body.temperature") == NULL && jget(up, "body.top_p") == NULL && jget(up, "body.top_k") == NULL);
  CHECK_EQ_INT(jint(up, "body.max_tokens"), 100);
  CHECK_STR(jstr(up, "body.stop_sequences.0"), "world say");
  json_decref(up);
  row = db_row_of(&r);
  CHECK_EQ_INT(row_int(row, "output_tokens"), 2);
  CHECK_EQ_INT(row_int(row, "cost_pusd"), 7 * P_SONNET_IN + 2 * P_SONNET_OUT);
  json_decref(row);
  th_resp_free(&r);

  /* an alias: upstream name sent, public name shown (plain and in message_start) */
  messages("{\"model\":\"claude-alias\",\"max_tokens\":100," A_MSGS ",\"mock\":{\"tag\":\"aa-alias\"}}", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR(jstr(r.json, "model"), "claude-alias");
  up = th_mock_last(&it.mock, "aa-alias");
  CHECK_STR(jstr(up, "body.model"), "claude-haiku-4-5-20251001");
  json_decref(up);
  /* the dated snapshot is priced as claude-haiku-4-5 */
  row = db_row_of(&r);
  CHECK_EQ_INT(row_int(row, "cost_pusd"), haiku_cost(7, 0, 0, 8));
  json_decref(row);
  th_resp_free(&r);
}

static void test_passthrough_stream(void) {
  struct th_resp r;
  char names[1024], text[512], js[512];
  messages("{\"model\":\"claude-alias\",\"max_tokens\":100,\"stream\":true," A_MSGS
           ",\"mock\":{\"reasoning_tokens\":4,\"cached_tokens\":3}}", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK(hdr(&r, "content-type") && !strncmp(hdr(&r, "content-type"), "text/event-stream", 17));
  json_t *evs = an_events(&r);
  an_summary(evs, names, sizeof names, text, sizeof text, js, sizeof js);
  CHECK_STR(names, "message_start content_block_start content_block_delta content_block_delta "
                   "content_block_stop content_block_start content_block_delta content_block_delta "
                   "content_block_delta content_block_delta content_block_delta content_block_delta "
                   "content_block_delta content_block_delta content_block_stop message_delta message_stop");
  CHECK_STR(text, REPLY);
  CHECK_STR(jstr(json_array_get(evs, 0), "data.message.model"), "claude-alias");
  json_decref(evs);
  json_t *row = db_row_of(&r);
  CHECK_EQ_INT(row_int(row, "streamed"), 1);
  CHECK_EQ_INT(row_int(row, "input_tokens"), 7);
  CHECK_EQ_INT(row_int(row, "cached_tokens"), 3);
  CHECK_EQ_INT(row_int(row, "output_tokens"), 12);
  CHECK_EQ_INT(row_int(row, "reasoning_tokens"), 4);
  CHECK_EQ_INT(row_int(row, "cost_pusd"), haiku_cost(7, 3, 0, 12));
  CHECK(th_jnum(row, "ttft_ms") >= 0);
  json_decref(row);
  th_resp_free(&r);

  /* tools, streamed: input_json_delta fragments concatenate to the input */
  messages("{\"model\":\"claude-haiku-4-5\",\"max_tokens\":100,\"stream\":true," A_MSGS
           ",\"tools\":[{\"name\":\"get_weather\",\"input_schema\":{\"type\":\"object\",\"properties\":"
           "{\"city\":{\"type\":\"string\"},\"days\":{\"type\":\"integer\"}}}}]}", &r);
  CHECK_EQ_INT(r.status, 200);
  evs = an_events(&r);
  an_summary(evs, names, sizeof names, text, sizeof text, js, sizeof js);
  CHECK_STR(js, "{\"city\":\"mock\",\"days\":1}");
  CHECK_STR(jstr(json_array_get(evs, 1), "data.content_block.type"), "tool_use");
  CHECK_STR(jstr(json_array_get(evs, 1), "data.content_block.name"), "get_weather");
  CHECK_STR(jstr(json_array_get(evs, json_array_size(evs) - 2), "data.delta.stop_reason"), "tool_use");
  json_decref(evs);
  th_resp_free(&r);

  /* non-streamed tools */
  messages("{\"model\":\"claude-haiku-4-5\",\"max_tokens\":100," A_MSGS
           ",\"tools\":[{\"name\":\"a\",\"input_schema\":{\"type\":\"object\"}},{\"name\":\"b\","
           "\"input_schema\":{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"boolean\"}}}}],"
           "\"tool_choice\":{\"type\":\"tool\",\"name\":\"b\"}}", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR(jstr(r.json, "content.0.type"), "tool_use");
  CHECK_STR(jstr(r.json, "content.0.name"), "b");
  CHECK(json_is_true(jget(r.json, "content.0.input.x")));
  CHECK_STR(jstr(r.json, "stop_reason"), "tool_use");
  th_resp_free(&r);
}

static void test_passthrough_errors(void) {
  struct th_resp r;
  /* upstream errors come back as they are: status, body, retry headers */
  messages("{\"model\":\"claude-haiku-4-5\",\"max_tokens\":10," A_MSGS
           ",\"mock\":{\"status\":529,\"error_message\":\"Overloaded\"}}", &r);
  CHECK_EQ_INT(r.status, 529);
  CHECK_STR(jstr(r.json, "type"), "error");
  CHECK_STR(jstr(r.json, "error.type"), "overloaded_error");
  CHECK_STR(jstr(r.json, "error.message"), "Overloaded");
  json_t *row = db_row_of(&r);
  CHECK_EQ_INT(row_int(row, "http_status"), 529);
  CHECK_STR(jstr(row, "error_class"), "upstream_error");
  CHECK_STR(jstr(row, "error_message"), "Overloaded");
  json_decref(row);
  th_resp_free(&r);
  messages("{\"model\":\"claude-haiku-4-5\",\"max_tokens\":10," A_MSGS
           ",\"mock\":{\"status\":429,\"retry_after\":\"7\"}}", &r);
  CHECK_EQ_INT(r.status, 429);
  CHECK_STR(jstr(r.json, "error.type"), "rate_limit_error");
  CHECK_STR(hdr(&r, "retry-after"), "7");
  th_resp_free(&r);

  /* mid-stream: the upstream's error event passes with its event line; a cut stream gets one */
  messages("{\"model\":\"claude-haiku-4-5\",\"max_tokens\":10,\"stream\":true," A_MSGS
           ",\"mock\":{\"error_after_chunks\":4}}", &r);
  CHECK_EQ_INT(r.status, 200);
  json_t *evs = an_events(&r);
  CHECK_EQ_INT(json_array_size(evs), 5);
  const json_t *last = json_array_get(evs, json_array_size(evs) - 1);
  CHECK_STR(jstr(last, "event"), "error");
  CHECK_STR(jstr(last, "data.error.type"), "overloaded_error");
  json_decref(evs);
  row = db_row_of(&r);
  CHECK_STR(jstr(row, "error_class"), "upstream_stream_error");
  json_decref(row);
  th_resp_free(&r);
  messages("{\"model\":\"claude-haiku-4-5\",\"max_tokens\":10,\"stream\":true," A_MSGS
           ",\"mock\":{\"close_after_chunks\":5}}", &r);
  evs = an_events(&r);
  last = json_array_get(evs, json_array_size(evs) - 1);
  CHECK_STR(jstr(last, "event"), "error");
  CHECK_STR(jstr(last, "data.error.type"), "api_error");
  json_decref(evs);
  row = db_row_of(&r);
  CHECK_STR(jstr(row, "error_class"), "upstream_disconnect");
  json_decref(row);
  th_resp_free(&r);
}

/* ================================================================== the surface's own errors */

static void check_an_error(const struct th_resp *r, int status, const char *type, const char *msg_part,
                           const char *error_class) {
  CHECK_MSG(r->status == status, "status %ld, want %d (%.200s)", r->status, status, r->body);
  CHECK_STR(jstr(r->json, "type"), "error");
  CHECK_STR(jstr(r->json, "error.type"), type);
  const char *m = jstr(r->json, "error.message");
  CHECK_MSG(m && strstr(m, msg_part), "message '%s' lacks '%s'", m ? m : "(none)", msg_part);
  /* request_id in the body and the request-id header: the gateway's id */
  const char *rid = jstr(r->json, "request_id");
  CHECK(rid && hdr(r, "x-tiergate-request-id") && !strcmp(rid, hdr(r, "x-tiergate-request-id")));
  CHECK(rid && hdr(r, "request-id") && !strcmp(rid, hdr(r, "request-id")));
  json_t *row = db_row_of(r);
  CHECK_STR(jstr(row, "client_api"), "anthropic");
  CHECK_EQ_INT(row_int(row, "http_status"), status);
  CHECK_STR(jstr(row, "error_class"), error_class);
  json_decref(row);
}

static void test_surface_errors(void) {
  struct th_resp r;
  static const struct { const char *body; const char *part; } bad[] = {
      {"", "empty"},
      {"{\"model\":", "not valid JSON"},
      {"[1,2]", "must be a JSON object"},
      {"{\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model: Field required"},
      {"{\"model\":\"claude-haiku-4-5\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
       "max_tokens: Field required"},
      {"{\"model\":\"claude-haiku-4-5\",\"max_tokens\":\"5\",\"messages\":[]}", "max_tokens"},
      {"{\"model\":7,\"max_tokens\":5,\"messages\":[]}", "model"},
      {"{\"model\":\"claude-haiku-4-5\",\"max_tokens\":5,\"messages\":{}}", "messages: Input should be a valid list"},
      {"{\"model\":\"claude-haiku-4-5\",\"max_tokens\":5,\"messages\":[]}", "at least one message"},
      {"{\"model\":\"claude-haiku-4-5\",\"max_tokens\":5,\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}",
       "messages.0.role"},
      {"{\"model\":\"claude-haiku-4-5\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":5}]}",
       "messages.0.content"},
      {"{\"model\":\"claude-haiku-4-5\",\"max_tokens\":5,\"stream\":\"yes\",\"messages\":[{\"role\":\"user\","
       "\"content\":\"x\"}]}", "stream"},
      {"{\"model\":\"claude-haiku-4-5\",\"model\":\"x\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
       "\"content\":\"x\"}]}", "Duplicate key 'model'"},
      /* invalid UTF-8 inside a string */
      {"{\"model\":\"claude-haiku-4-5\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}",
       "not valid JSON"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    messages(bad[i].body, &r);
    check_an_error(&r, 400, "invalid_request_error", bad[i].part, "bad_request");
    th_resp_free(&r);
  }
  messages("{\"model\":\"claude-nope\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &r);
  check_an_error(&r, 404, "not_found_error", "model: claude-nope", "model_not_found");
  th_resp_free(&r);
  /* 2026-10-21 client: the fields that version removed are refused, as Anthropic does */
  an_post("/v1/messages", "2026-10-21", true, NULL,
          "{\"model\":\"claude-haiku-4-5\",\"max_tokens\":5,\"temperature\":1.0,\"messages\":[{\"role\":"
          "\"user\",\"content\":\"x\"}]}", &r);
  check_an_error(&r, 400, "invalid_request_error", "temperature: Extra inputs are not permitted", "bad_request");
  th_resp_free(&r);
  an_post("/v1/messages", "2026-10-21", true, NULL,
          "{\"model\":\"claude-haiku-4-5\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":"
          "[{\"type\":\"text\",\"text\":\"x\",\"citations\":[{\"type\":\"char_location\"}]}]}]}", &r);
  check_an_error(&r, 400, "invalid_request_error", "citations", "bad_request");
  th_resp_free(&r);
  /* ... but fine on 2023-06-01, and the header may be absent (curl) */
  an_post("/v1/messages", NULL, false, NULL,
          "{\"model\":\"claude-haiku-4-5\",\"max_tokens\":5,\"temperature\":1.0,\"messages\":[{\"role\":"
          "\"user\",\"content\":\"x\"}]}", &r);
  CHECK_EQ_INT(r.status, 200);
  th_resp_free(&r);
  an_post("/v1/messages", "2024-02-30", false, NULL, "{}", &r);
  check_an_error(&r, 400, "invalid_request_error", "anthropic-version", "bad_request");
  th_resp_free(&r);
  /* over the body limit (64 KiB in the test config): 413 in Anthropic's shape */
  size_t big = 70 * 1024;
  char *b = malloc(big + 1);
  memset(b, ' ', big);
  b[big] = 0;
  messages(b, &r);
  free(b);
  check_an_error(&r, 413, "request_too_large", "too large", "request_too_large");
  th_resp_free(&r);
  /* provider without its key; provider down */
  messages("{\"model\":\"claude-nokey\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &r);
  check_an_error(&r, 401, "authentication_error", "TIERGATE_TEST_UNSET_KEY", "missing_api_key");
  th_resp_free(&r);
  messages("{\"model\":\"dead-model\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &r);
  check_an_error(&r, 502, "api_error", "Could not connect", "upstream_connect");
  th_resp_free(&r);
  /* wrong method */
  struct th_req rq = {.method = "GET"};
  gw_req(&rq, "/v1/messages", &r);
  check_an_error(&r, 405, "invalid_request_error", "not allowed", "method_not_allowed");
  th_resp_free(&r);
}

/* ================================================================== Anthropic -> OpenAI */

static void test_a2o(void) {
  struct th_resp r;
  char names[1024], text[512], js[512];
  /* plain: the OpenAI upstream gets a chat body; the client an Anthropic message */
  an_post("/v1/messages", "2026-10-21", true, NULL,
          "{\"model\":\"gpt-4o-mini\",\"max_tokens\":100," A_MSGS
          ",\"stop_sequences\":[\"zzz\"],\"metadata\":{\"user_id\":\"u-42\"},\"mock\":{\"tag\":\"a2o\","
          "\"cached_tokens\":2}}", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR(jstr(r.json, "type"), "message");
  CHECK_STR(jstr(r.json, "role"), "assistant");
  CHECK_STR(jstr(r.json, "model"), "gpt-4o-mini");
  CHECK_STR(jstr(r.json, "content.0.type"), "text");
  CHECK_STR(jstr(r.json, "content.0.text"), REPLY);
  CHECK_STR(jstr(r.json, "stop_reason"), "end_turn");
  CHECK_EQ_INT(jint(r.json, "usage.input_tokens"), 5);         /* 7 - 2 cached */
  CHECK_EQ_INT(jint(r.json, "usage.cache_read_input_tokens"), 2);
  CHECK_EQ_INT(jint(r.json, "usage.output_tokens"), 8);
  CHECK(hdr(&r, "request-id") && !strncmp(hdr(&r, "request-id"), "req_mock_", 9));
  CHECK_STR(hdr(&r, "anthropic-ratelimit-requests-limit"), "10000");
  json_t *up = th_mock_last(&it.mock, "a2o");
  CHECK_STR(jstr(up, "path"), "/v1/chat/completions");
  CHECK_STR(jstr(up, "headers.authorization"), "Bearer sk-tiergate-test-key");
  CHECK_STR(jstr(up, "body.messages.0.role"), "system");
  CHECK_STR(jstr(up, "body.messages.0.content"), "Be terse.");
  CHECK_STR(jstr(up, "body.messages.1.content"), "say hello world");
  CHECK_EQ_INT(jint(up, "body.max_completion_tokens"), 100);
  CHECK_STR(jstr(up, "body.stop.0"), "zzz");
  CHECK_STR(jstr(up, "body.user"), "u-42");
  CHECK(jget(up, "body.max_tokens") == NULL && jget(up, "body.system") == NULL);
  json_decref(up);
  json_t *row = db_row_of(&r);
  CHECK_STR(jstr(row, "client_api"), "anthropic");
  CHECK_STR(jstr(row, "provider"), "mock");
  CHECK_EQ_INT(row_int(row, "input_tokens"), 7);
  CHECK_EQ_INT(row_int(row, "cached_tokens"), 2);
  CHECK_EQ_INT(row_int(row, "cost_pusd"), itest_cost(7, 2, 8, P_4O_MINI_IN, P_4O_MINI_CACHED, P_4O_MINI_OUT));
  json_decref(row);
  th_resp_free(&r);

  /* streamed: the Anthropic event sequence, usage at the end (the upstream was asked for it) */
  messages("{\"model\":\"gpt-4o-mini\",\"max_tokens\":100,\"stream\":true," A_MSGS
           ",\"mock\":{\"tag\":\"a2o-s\",\"reasoning_tokens\":2}}", &r);
  CHECK_EQ_INT(r.status, 200);
  json_t *evs = an_events(&r);
  an_summary(evs, names, sizeof names, text, sizeof text, js, sizeof js);
  CHECK_STR(names, "message_start content_block_start content_block_delta content_block_delta "
                   "content_block_delta content_block_delta content_block_delta content_block_delta "
                   "content_block_delta content_block_delta content_block_stop message_delta message_stop");
  CHECK_STR(text, REPLY);
  const json_t *md = jget(json_array_get(evs, json_array_size(evs) - 2), "data");
  CHECK_STR(jstr(md, "delta.stop_reason"), "end_turn");
  CHECK_EQ_INT(jint(md, "usage.input_tokens"), 7);
  CHECK_EQ_INT(jint(md, "usage.output_tokens"), 10);
  CHECK_EQ_INT(jint(md, "usage.output_tokens_details.thinking_tokens"), 2);
  json_decref(evs);
  up = th_mock_last(&it.mock, "a2o-s");
  CHECK(json_is_true(jget(up, "body.stream_options.include_usage")));
  json_decref(up);
  row = db_row_of(&r);
  CHECK_EQ_INT(row_int(row, "streamed"), 1);
  CHECK_EQ_INT(row_int(row, "output_tokens"), 10);
  CHECK_EQ_INT(row_int(row, "reasoning_tokens"), 2);
  CHECK_EQ_INT(row_int(row, "cost_pusd"), 7 * P_4O_MINI_IN + 10 * P_4O_MINI_OUT);
  json_decref(row);
  th_resp_free(&r);

  /* tools, a full round trip: tool_use out, tool_result back, an answer built from it */
  const char *tools = "\"tools\":[{\"name\":\"get_weather\",\"description\":\"Weather\",\"input_schema\":"
                      "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}]";
  char body[2048];
  snprintf(body, sizeof body, "{\"model\":\"gpt-4o-mini\",\"max_tokens\":100," A_MSGS ",%s,"
                              "\"tool_choice\":{\"type\":\"any\",\"disable_parallel_tool_use\":true},"
                              "\"mock\":{\"tag\":\"a2o-t\"}}", tools);
  messages(body, &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR(jstr(r.json, "stop_reason"), "tool_use");
  CHECK_STR(jstr(r.json, "content.0.type"), "tool_use");
  CHECK_STR(jstr(r.json, "content.0.name"), "get_weather");
  CHECK_STR(jstr(r.json, "content.0.input.city"), "mock");
  char tool_id[128];
  snprintf(tool_id, sizeof tool_id, "%s", jstr(r.json, "content.0.id") ? jstr(r.json, "content.0.id") : "");
  up = th_mock_last(&it.mock, "a2o-t");
  CHECK_STR(jstr(up, "body.tools.0.type"), "function");
  CHECK_STR(jstr(up, "body.tools.0.function.name"), "get_weather");
  CHECK_STR(jstr(up, "body.tools.0.function.parameters.type"), "object");
  CHECK_STR(jstr(up, "body.tool_choice"), "required");
  CHECK(json_is_false(jget(up, "body.parallel_tool_calls")));
  json_decref(up);
  th_resp_free(&r);
  snprintf(body, sizeof body,
           "{\"model\":\"gpt-4o-mini\",\"max_tokens\":100,\"messages\":[{\"role\":\"user\",\"content\":"
           "\"weather?\"},{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"%s\","
           "\"name\":\"get_weather\",\"input\":{\"city\":\"Paris\"}}]},{\"role\":\"user\",\"content\":"
           "[{\"type\":\"tool_result\",\"tool_use_id\":\"%s\",\"content\":\"sunny and warm\"}]}],%s,"
           "\"mock\":{\"tag\":\"a2o-t2\"}}", tool_id, tool_id, tools);
  messages(body, &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR(jstr(r.json, "stop_reason"), "end_turn");
  CHECK_STR(jstr(r.json, "content.0.text"), "sunny and warm sunny and warm sunny and");
  up = th_mock_last(&it.mock, "a2o-t2");
  CHECK_STR(jstr(up, "body.messages.1.tool_calls.0.id"), tool_id);
  CHECK_STR(jstr(up, "body.messages.1.tool_calls.0.function.arguments"), "{\"city\":\"Paris\"}");
  CHECK_STR(jstr(up, "body.messages.2.role"), "tool");
  CHECK_STR(jstr(up, "body.messages.2.tool_call_id"), tool_id);
  json_decref(up);
  th_resp_free(&r);

  /* streamed tool call */
  snprintf(body, sizeof body, "{\"model\":\"gpt-4o-mini\",\"max_tokens\":100,\"stream\":true," A_MSGS ",%s}", tools);
  messages(body, &r);
  evs = an_events(&r);
  an_summary(evs, names, sizeof names, text, sizeof text, js, sizeof js);
  CHECK_STR(names, "message_start content_block_start content_block_delta content_block_delta "
                   "content_block_stop message_delta message_stop");
  CHECK_STR(js, "{\"city\":\"mock\"}");
  CHECK_STR(jstr(json_array_get(evs, 1), "data.content_block.type"), "tool_use");
  CHECK_STR(jstr(json_array_get(evs, 5), "data.delta.stop_reason"), "tool_use");
  json_decref(evs);
  th_resp_free(&r);

  /* errors: 429 with retry-after; 503 -> 529; insufficient_quota -> no retry; a 400 the
   * translation refuses; a mid-stream error */
  messages("{\"model\":\"gpt-4o-mini\",\"max_tokens\":10," A_MSGS ",\"mock\":{\"status\":429,\"retry_after\":\"3\"}}", &r);
  CHECK_EQ_INT(r.status, 429);
  CHECK_STR(jstr(r.json, "type"), "error");
  CHECK_STR(jstr(r.json, "error.type"), "rate_limit_error");
  CHECK_STR(hdr(&r, "retry-after"), "3");
  CHECK(hdr(&r, "x-should-retry") == NULL);
  row = db_row_of(&r);
  CHECK_EQ_INT(row_int(row, "http_status"), 429);
  CHECK_STR(jstr(row, "error_class"), "upstream_error");
  json_decref(row);
  th_resp_free(&r);
  messages("{\"model\":\"gpt-4o-mini\",\"max_tokens\":10," A_MSGS ",\"mock\":{\"status\":503}}", &r);
  CHECK_EQ_INT(r.status, 529);
  CHECK_STR(jstr(r.json, "error.type"), "overloaded_error");
  th_resp_free(&r);
  messages("{\"model\":\"gpt-4o-mini\",\"max_tokens\":10," A_MSGS ",\"mock\":{\"status\":429,"
           "\"error_type\":\"insufficient_quota\",\"error_code\":\"insufficient_quota\"}}", &r);
  CHECK_EQ_INT(r.status, 429);
  CHECK_STR(hdr(&r, "x-should-retry"), "false");
  th_resp_free(&r);
  messages("{\"model\":\"gpt-4o-mini\",\"max_tokens\":10," A_MSGS ",\"tools\":[{\"type\":"
           "\"web_search_20250305\",\"name\":\"web_search\"}]}", &r);
  check_an_error(&r, 400, "invalid_request_error", "tools[0]", "bad_request");
  th_resp_free(&r);
  messages("{\"model\":\"gpt-4o-mini\",\"max_tokens\":10,\"stream\":true," A_MSGS
           ",\"mock\":{\"error_after_chunks\":3,\"error_message\":\"boom\"}}", &r);
  CHECK_EQ_INT(r.status, 200);
  evs = an_events(&r);
  const json_t *last = json_array_get(evs, json_array_size(evs) - 1);
  CHECK_STR(jstr(last, "event"), "error");
  CHECK_STR(jstr(last, "data.error.type"), "api_error");
  CHECK_STR(jstr(last, "data.error.message"), "boom");
  json_decref(evs);
  row = db_row_of(&r);
  CHECK_STR(jstr(row, "error_class"), "upstream_stream_error");
  CHECK_STR(jstr(row, "error_message"), "boom");
  json_decref(row);
  th_resp_free(&r);
}

/* ================================================================== OpenAI -> Anthropic */

static void test_o2a(void) {
  struct th_resp r;
  int done;
  /* plain; usage per §3.4: prompt_tokens includes cache reads and writes */
  gw_chat("{\"model\":\"claude-haiku-4-5\"," O_MSGS ",\"temperature\":0.4,\"seed\":1,"
          "\"user\":\"u-7\",\"mock\":{\"tag\":\"o2a\",\"cached_tokens\":3,\"cache_write_tokens\":1}}", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR(jstr(r.json, "object"), "chat.completion");
  CHECK_STR(jstr(r.json, "model"), "claude-haiku-4-5");
  CHECK_STR(jstr(r.json, "choices.0.message.role"), "assistant");
  CHECK_STR(jstr(r.json, "choices.0.message.content"), REPLY);
  CHECK_STR(jstr(r.json, "choices.0.finish_reason"), "stop");
  CHECK_EQ_INT(jint(r.json, "usage.prompt_tokens"), 7);
  CHECK_EQ_INT(jint(r.json, "usage.prompt_tokens_details.cached_tokens"), 3);
  CHECK_EQ_INT(jint(r.json, "usage.prompt_tokens_details.cache_write_tokens"), 1);
  CHECK_EQ_INT(jint(r.json, "usage.completion_tokens"), 8);
  CHECK_EQ_INT(jint(r.json, "usage.total_tokens"), 15);
  CHECK(hdr(&r, "x-request-id") && !strncmp(hdr(&r, "x-request-id"), "req_mock_", 9));
  CHECK_STR(hdr(&r, "x-ratelimit-limit-requests"), "4000");
  json_t *up = th_mock_last(&it.mock, "o2a");
  CHECK_STR(jstr(up, "path"), "/v1/messages");
  CHECK_STR(jstr(up, "headers.x-api-key"), "sk-tiergate-test-key");
  CHECK_STR(jstr(up, "headers.anthropic-version"), "2023-06-01");
  CHECK_STR(jstr(up, "body.system"), "Be terse.");
  CHECK_STR(jstr(up, "body.messages.0.content"), "say hello world");
  CHECK_EQ_INT(jint(up, "body.max_tokens"), 8192);
  CHECK_NEAR(th_jnum(up, "body.temperature"), 0.4, 1e-12);
  CHECK(jget(up, "body.seed") == NULL);
  CHECK_STR(jstr(up, "body.metadata.user_id"), "u-7");
  json_decref(up);
  json_t *row = db_row_of(&r);
  CHECK_STR(jstr(row, "client_api"), "openai");
  CHECK_STR(jstr(row, "provider"), "mock-anthropic");
  CHECK_EQ_INT(row_int(row, "input_tokens"), 7);
  CHECK_EQ_INT(row_int(row, "cached_tokens"), 3);
  CHECK_EQ_INT(row_int(row, "cache_write_tokens"), 1);
  CHECK_EQ_INT(row_int(row, "cost_pusd"), haiku_cost(7, 3, 1, 8));
  json_decref(row);
  th_resp_free(&r);

  /* a 2026-10-21 upstream: sampling dropped in translation */
  gw_chat("{\"model\":\"claude-sonnet-4-5\"," O_MSGS ",\"temperature\":0.4,\"top_p\":0.5,"
          "\"max_tokens\":50,\"mock\":{\"tag\":\"o2a-26\"}}", &r);
  CHECK_EQ_INT(r.status, 200);
  up = th_mock_last(&it.mock, "o2a-26");
  CHECK(jget(up, "body.temperature") == NULL && jget(up, "body.top_p") == NULL);
  CHECK_EQ_INT(jint(up, "body.max_tokens"), 50);
  json_decref(up);
  th_resp_free(&r);

  /* streamed with include_usage, thinking dropped, reasoning counted */
  gw_chat("{\"model\":\"claude-haiku-4-5\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
          O_MSGS ",\"mock\":{\"reasoning_tokens\":5}}", &r);
  CHECK_EQ_INT(r.status, 200);
  json_t *chunks = sse_chunks(&r, &done);
  CHECK_EQ_INT(done, 1);
  CHECK_EQ_INT(json_array_size(chunks), 1 + 8 + 1 + 1);
  char text[512] = "";
  size_t i;
  json_t *c;
  json_array_foreach(chunks, i, c) {
    CHECK_STR(jstr(c, "object"), "chat.completion.chunk");
    CHECK_STR(jstr(c, "model"), "claude-haiku-4-5");
    const char *t = jstr(c, "choices.0.delta.content");
    if (t) strncat(text, t, sizeof text - strlen(text) - 1);
  }
  CHECK_STR(text, REPLY);
  const json_t *last = json_array_get(chunks, json_array_size(chunks) - 1);
  CHECK_EQ_INT(json_array_size(jget(last, "choices")), 0);
  CHECK_EQ_INT(jint(last, "usage.prompt_tokens"), 7);
  CHECK_EQ_INT(jint(last, "usage.completion_tokens"), 13);
  CHECK_EQ_INT(jint(last, "usage.completion_tokens_details.reasoning_tokens"), 5);
  CHECK_STR(jstr(json_array_get(chunks, json_array_size(chunks) - 2), "choices.0.finish_reason"), "stop");
  json_decref(chunks);
  row = db_row_of(&r);
  CHECK_EQ_INT(row_int(row, "streamed"), 1);
  CHECK_EQ_INT(row_int(row, "output_tokens"), 13);
  CHECK_EQ_INT(row_int(row, "reasoning_tokens"), 5);
  CHECK_EQ_INT(row_int(row, "cost_pusd"), haiku_cost(7, 0, 0, 13));
  CHECK(th_jnum(row, "ttft_ms") >= 0);
  json_decref(row);
  th_resp_free(&r);

  /* streamed without include_usage: no usage chunk, the log still knows; max_tokens -> length */
  gw_chat("{\"model\":\"claude-haiku-4-5\",\"stream\":true,\"max_tokens\":3," O_MSGS "}", &r);
  chunks = sse_chunks(&r, &done);
  CHECK_EQ_INT(done, 1);
  CHECK_EQ_INT(json_array_size(chunks), 1 + 3 + 1);
  json_array_foreach(chunks, i, c) CHECK(jget(c, "usage") == NULL);
  CHECK_STR(jstr(json_array_get(chunks, 4), "choices.0.finish_reason"), "length");
  json_decref(chunks);
  row = db_row_of(&r);
  CHECK_EQ_INT(row_int(row, "output_tokens"), 3);
  json_decref(row);
  th_resp_free(&r);

  /* tools, streamed: argument fragments concatenate to the call's JSON; then the round trip */
  const char *tools = "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
                      "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"},"
                      "\"n\":{\"type\":\"number\"}}}}}]";
  char body[2048];
  snprintf(body, sizeof body, "{\"model\":\"claude-haiku-4-5\",\"stream\":true," O_MSGS ",%s,"
                              "\"parallel_tool_calls\":false,\"mock\":{\"tag\":\"o2a-t\"}}", tools);
  gw_chat(body, &r);
  chunks = sse_chunks(&r, &done);
  CHECK_EQ_INT(done, 1);
  char args[256] = "", call_id[128] = "";
  json_array_foreach(chunks, i, c) {
    const json_t *tc = jget(c, "choices.0.delta.tool_calls.0");
    if (!tc) continue;
    CHECK_EQ_INT(jint(tc, "index"), 0);
    if (jstr(tc, "id")) {
      snprintf(call_id, sizeof call_id, "%s", jstr(tc, "id"));
      CHECK_STR(jstr(tc, "function.name"), "get_weather");
      CHECK_STR(jstr(tc, "type"), "function");
    }
    const char *a = jstr(tc, "function.arguments");
    if (a) strncat(args, a, sizeof args - strlen(args) - 1);
  }
  CHECK_STR(args, "{\"city\":\"mock\",\"n\":1}");
  CHECK(!strncmp(call_id, "toolu_mock_", 11));
  CHECK_STR(jstr(json_array_get(chunks, json_array_size(chunks) - 1), "choices.0.finish_reason"), "tool_calls");
  json_decref(chunks);
  up = th_mock_last(&it.mock, "o2a-t");
  CHECK_STR(jstr(up, "body.tools.0.name"), "get_weather");
  CHECK_STR(jstr(up, "body.tools.0.input_schema.type"), "object");
  CHECK_STR(jstr(up, "body.tool_choice.type"), "auto");
  CHECK(json_is_true(jget(up, "body.tool_choice.disable_parallel_tool_use")));
  json_decref(up);
  th_resp_free(&r);
  snprintf(body, sizeof body,
           "{\"model\":\"claude-haiku-4-5\",\"messages\":[{\"role\":\"user\",\"content\":\"weather?\"},"
           "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"%s\",\"type\":\"function\","
           "\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Oslo\\\"}\"}}]},"
           "{\"role\":\"tool\",\"tool_call_id\":\"%s\",\"content\":\"cold and dark\"}],%s,"
           "\"mock\":{\"tag\":\"o2a-t2\"}}", call_id, call_id, tools);
  gw_chat(body, &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR(jstr(r.json, "choices.0.message.content"), "cold and dark cold and dark cold and");
  up = th_mock_last(&it.mock, "o2a-t2");
  CHECK_STR(jstr(up, "body.messages.1.content.0.type"), "tool_use");
  CHECK_STR(jstr(up, "body.messages.1.content.0.input.city"), "Oslo");
  CHECK_STR(jstr(up, "body.messages.2.content.0.type"), "tool_result");
  CHECK_STR(jstr(up, "body.messages.2.content.0.tool_use_id"), call_id);
  json_decref(up);
  th_resp_free(&r);
  /* non-streamed tool call */
  snprintf(body, sizeof body, "{\"model\":\"claude-haiku-4-5\"," O_MSGS ",%s,\"tool_choice\":"
                              "{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}}", tools);
  gw_chat(body, &r);
  CHECK_STR(jstr(r.json, "choices.0.finish_reason"), "tool_calls");
  CHECK_STR(jstr(r.json, "choices.0.message.tool_calls.0.function.arguments"), "{\"city\":\"mock\",\"n\":1}");
  CHECK(json_is_null(jget(r.json, "choices.0.message.content")));
  th_resp_free(&r);

  /* errors: 529 -> 503 with retry-after; 402 -> 429 insufficient_quota, no retry; a request
   * Anthropic cannot express -> 400 naming the field; mid-stream error -> error frame, no [DONE] */
  gw_chat("{\"model\":\"claude-haiku-4-5\"," O_MSGS ",\"mock\":{\"status\":529,\"retry_after\":\"2\"}}", &r);
  CHECK_EQ_INT(r.status, 503);
  CHECK_STR(jstr(r.json, "error.type"), "service_unavailable_error");
  CHECK_STR(jstr(r.json, "error.code"), "server_is_overloaded");
  CHECK_STR(hdr(&r, "retry-after"), "2");
  row = db_row_of(&r);
  CHECK_EQ_INT(row_int(row, "http_status"), 503);
  CHECK_STR(jstr(row, "error_class"), "upstream_error");
  json_decref(row);
  th_resp_free(&r);
  gw_chat("{\"model\":\"claude-haiku-4-5\"," O_MSGS ",\"mock\":{\"status\":402}}", &r);
  CHECK_EQ_INT(r.status, 429);
  CHECK_STR(jstr(r.json, "error.code"), "insufficient_quota");
  CHECK_STR(hdr(&r, "x-should-retry"), "false");
  th_resp_free(&r);
  gw_chat("{\"model\":\"claude-haiku-4-5\"," O_MSGS ",\"mock\":{\"status\":401}}", &r);
  CHECK_EQ_INT(r.status, 401);
  CHECK_STR(jstr(r.json, "error.code"), "invalid_api_key");
  th_resp_free(&r);
  gw_chat("{\"model\":\"claude-haiku-4-5\"," O_MSGS ",\"n\":2}", &r);
  CHECK_EQ_INT(r.status, 400);
  CHECK_STR(jstr(r.json, "error.param"), "n");
  CHECK_STR(jstr(r.json, "error.type"), "invalid_request_error");
  row = db_row_of(&r);
  CHECK_STR(jstr(row, "error_class"), "bad_request");
  CHECK_STR(jstr(row, "model"), "claude-haiku-4-5");
  json_decref(row);
  th_resp_free(&r);
  gw_chat("{\"model\":\"claude-haiku-4-5\",\"stream\":true," O_MSGS ",\"mock\":{\"error_after_chunks\":4}}", &r);
  CHECK_EQ_INT(r.status, 200);
  json_t *data = th_sse_data(r.body, r.body_len);
  const char *lastd = json_string_value(json_array_get(data, json_array_size(data) - 1));
  CHECK(lastd && strstr(lastd, "\"error\":{") && strstr(lastd, "server_is_overloaded"));
  CHECK(!strstr(r.body, "[DONE]"));
  json_decref(data);
  row = db_row_of(&r);
  CHECK_STR(jstr(row, "error_class"), "upstream_stream_error");
  json_decref(row);
  th_resp_free(&r);
  /* a reset mid-stream: an error frame, logged as a disconnect */
  gw_chat("{\"model\":\"claude-haiku-4-5\",\"stream\":true," O_MSGS ",\"mock\":{\"reset_after_chunks\":4}}", &r);
  CHECK(strstr(r.body, "\"error\":{") && !strstr(r.body, "[DONE]"));
  row = db_row_of(&r);
  CHECK_STR(jstr(row, "error_class"), "upstream_disconnect");
  json_decref(row);
  th_resp_free(&r);
}

/* ================================================================== count_tokens, models */

static void test_count_and_models(void) {
  struct th_resp r;
  an_post("/v1/messages/count_tokens", "2026-10-21", true, NULL,
          "{\"model\":\"claude-alias\"," A_MSGS ",\"mock\":{\"tag\":\"count\"}}", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_EQ_INT(jint(r.json, "input_tokens"), 7);
  CHECK(hdr(&r, "x-tiergate-token-count") == NULL);
  json_t *up = th_mock_last(&it.mock, "count");
  CHECK_STR(jstr(up, "path"), "/v1/messages/count_tokens");
  CHECK_STR(jstr(up, "body.model"), "claude-haiku-4-5-20251001");
  json_decref(up);
  json_t *row = db_row_of(&r);
  CHECK_STR(jstr(row, "client_api"), "anthropic");
  CHECK_EQ_INT(row_int(row, "cost_pusd"), 0);
  json_decref(row);
  th_resp_free(&r);
  /* an OpenAI-served model: an estimate, said so (4 bytes a token + per-message overhead) */
  an_post("/v1/messages/count_tokens", "2023-06-01", false, NULL,
          "{\"model\":\"gpt-4o-mini\",\"system\":\"12345678\",\"messages\":[{\"role\":\"user\",\"content\":"
          "\"abcdefghijkl\"},{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":{\"type\":\"url\","
          "\"url\":\"https://x.test/i.png\"}}]}]}", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_EQ_INT(jint(r.json, "input_tokens"), (8 + 12 + 3) / 4 + 1600 + 3 * 3);
  CHECK_STR(hdr(&r, "x-tiergate-token-count"), "estimate");
  th_resp_free(&r);
  an_post("/v1/messages/count_tokens", "2023-06-01", false, NULL, "{\"model\":\"x\"}", &r);
  check_an_error(&r, 400, "invalid_request_error", "messages", "bad_request");
  th_resp_free(&r);

  /* the model list in Anthropic's shape when asked with an anthropic-version header */
  const char *h[] = {"anthropic-version: 2023-06-01", NULL};
  struct th_req rq = {.method = "GET", .headers = h};
  char url[256];
  snprintf(url, sizeof url, "%s/v1/models", it.gw.url);
  rq.url = url;
  CHECK_EQ_INT(th_http(&rq, &r), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR(jstr(r.json, "data.0.type"), "model");
  CHECK(json_is_false(jget(r.json, "has_more")));
  CHECK_STR(jstr(r.json, "first_id"), jstr(r.json, "data.0.id"));
  CHECK_EQ_INT(json_array_size(jget(r.json, "data")), 7 + 7);
  th_resp_free(&r);
  snprintf(url, sizeof url, "%s/v1/models/claude-alias", it.gw.url);
  CHECK_EQ_INT(th_http(&rq, &r), 0);
  CHECK_STR(jstr(r.json, "id"), "claude-alias");
  CHECK_STR(jstr(r.json, "type"), "model");
  th_resp_free(&r);
  snprintf(url, sizeof url, "%s/v1/models/nope", it.gw.url);
  CHECK_EQ_INT(th_http(&rq, &r), 0);
  itest_note_id(&r);
  check_an_error(&r, 404, "not_found_error", "nope", "model_not_found");
  th_resp_free(&r);
  /* without the header, OpenAI's list as before */
  CHECK_EQ_INT(th_get(it.gw.url, "/v1/models", &r), 0);
  CHECK_STR(jstr(r.json, "object"), "list");
  th_resp_free(&r);

  /* metrics: the Anthropic routes are counted */
  CHECK_EQ_INT(th_get(it.gw.url, "/metrics", &r), 0);
  CHECK(strstr(r.body, "tiergate_requests_total{route=\"/v1/messages\",model=\"claude-haiku-4-5\",status=\"200\"}"));
  CHECK(strstr(r.body, "tiergate_requests_total{route=\"/v1/messages/count_tokens\",model=\"claude-alias\",status=\"200\"} 1"));
  th_resp_free(&r);
}

/* ================================================================== with resilience */

static void test_resilience(void) {
  struct th_resp r;
  char names[1024], text[512], js[512];
  /* a stream whose first event stalls is retried before the client sees a byte: passthrough,
   * and both translated directions */
  messages("{\"model\":\"claude-retry\",\"max_tokens\":100,\"stream\":true," A_MSGS
           ",\"mock\":{\"tag\":\"r-aa\",\"first_chunk_delay_ms\":3000,\"fail_times\":1}}", &r);
  CHECK_EQ_INT(r.status, 200);
  json_t *evs = an_events(&r);
  an_summary(evs, names, sizeof names, text, sizeof text, js, sizeof js);
  CHECK_STR(text, REPLY);
  CHECK_STR(jstr(json_array_get(evs, json_array_size(evs) - 1), "event"), "message_stop");
  CHECK_EQ_INT(json_array_size(evs), 14);
  json_decref(evs);
  CHECK_STR(hdr(&r, "x-tiergate-attempts"), "2");
  json_t *row = db_row_of(&r);
  CHECK_EQ_INT(row_int(row, "attempts"), 2);
  CHECK_EQ_INT(row_int(row, "http_status"), 200);
  CHECK_EQ_INT(row_int(row, "output_tokens"), 8);
  json_decref(row);
  th_resp_free(&r);
  int done;
  gw_chat("{\"model\":\"claude-retry\",\"stream\":true," O_MSGS
          ",\"mock\":{\"tag\":\"r-o2a\",\"first_chunk_delay_ms\":3000,\"fail_times\":1}}", &r);
  CHECK_EQ_INT(r.status, 200);
  json_t *chunks = sse_chunks(&r, &done);
  CHECK_EQ_INT(done, 1);
  CHECK_EQ_INT(json_array_size(chunks), 1 + 8 + 1);
  json_decref(chunks);
  CHECK_STR(hdr(&r, "x-tiergate-attempts"), "2");
  th_resp_free(&r);
  messages("{\"model\":\"gpt-retry\",\"max_tokens\":100,\"stream\":true," A_MSGS
           ",\"mock\":{\"tag\":\"r-a2o\",\"first_chunk_delay_ms\":3000,\"fail_times\":1}}", &r);
  CHECK_EQ_INT(r.status, 200);
  evs = an_events(&r);
  an_summary(evs, names, sizeof names, text, sizeof text, js, sizeof js);
  CHECK_STR(text, REPLY);
  json_decref(evs);
  CHECK_STR(hdr(&r, "x-tiergate-attempts"), "2");
  th_resp_free(&r);
  /* a translated 503 (-> 529 for the client) is retried like any 5xx, invisibly */
  messages("{\"model\":\"gpt-retry\",\"max_tokens\":100," A_MSGS
           ",\"mock\":{\"tag\":\"r-503\",\"status\":503,\"fail_times\":2}}", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR(jstr(r.json, "content.0.text"), REPLY);
  CHECK_STR(hdr(&r, "x-tiergate-attempts"), "3");
  th_resp_free(&r);

  /* a fallback across provider kinds: an Anthropic model answering 529 falls back to an OpenAI
   * model; the Anthropic client gets a translated answer, the OpenAI client a native one; the
   * reply names the model that answered */
  messages("{\"model\":\"claude-down\",\"max_tokens\":100," A_MSGS "}", &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_STR(jstr(r.json, "type"), "message");
  CHECK_STR(jstr(r.json, "model"), "gpt-4o-mini");
  CHECK_STR(jstr(r.json, "content.0.text"), REPLY);
  CHECK_STR(hdr(&r, "x-tiergate-route"), "mock/gpt-4o-mini");
  row = db_row_of(&r);
  CHECK_STR(jstr(row, "client_api"), "anthropic");
  CHECK_STR(jstr(row, "provider"), "mock");
  CHECK_EQ_INT(row_int(row, "attempts"), 2);
  CHECK(jstr(row, "attempt_log") && strstr(jstr(row, "attempt_log"), "\"next\":\"fallback\""));
  json_decref(row);
  th_resp_free(&r);
  gw_chat("{\"model\":\"claude-down\",\"stream\":true," O_MSGS "}", &r);
  CHECK_EQ_INT(r.status, 200);
  chunks = sse_chunks(&r, &done);
  CHECK_EQ_INT(done, 1);
  CHECK_STR(jstr(json_array_get(chunks, 0), "model"), "gpt-4o-mini");
  json_decref(chunks);
  th_resp_free(&r);
}

int main(void) {
  if (itest_start(NULL, MODELS)) {
    fprintf(stderr, "could not start the mock and the gateway\n");
    return 1;
  }
  test_passthrough();
  test_passthrough_stream();
  test_passthrough_errors();
  test_surface_errors();
  test_a2o();
  test_o2a();
  test_count_and_models();
  test_resilience();
  itest_finish();
  return check_done();
}
