/*
 * test_xlate.c: every translation rule of router/xlate_*.c, one assertion per rule on exact
 * values: requests both ways, replies both ways, errors and statuses, headers and times, and the
 * stream state machines on small hand-made sequences (the recorded sequences are replayed byte
 * for byte by test_xlate_golden.c).
 */
#include <event2/buffer.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "router/internal.h"
#include "router/xlate/xlate.h"

/* ------------------------------------------------------------------ helpers */

static json_t *o2a(const char *body, const char *version, struct rt_xerr *err) {
  struct rt_xreq_opts o = {"claude-up", version, 0};
  size_t n;
  char *s = rt_xreq_openai_to_anthropic(body, strlen(body), &o, &n, err);
  if (!s) return NULL;
  CHECK_EQ_INT(n, strlen(s));
  json_t *j = json_loads(s, 0, NULL);
  CHECK_MSG(j != NULL, "translation is not JSON: %s", s);
  free(s);
  return j;
}

static json_t *a2o(const char *body, struct rt_xerr *err) {
  struct rt_xreq_opts o = {"gpt-up", NULL, 0};
  size_t n;
  char *s = rt_xreq_anthropic_to_openai(body, strlen(body), &o, &n, err);
  if (!s) return NULL;
  json_t *j = json_loads(s, 0, NULL);
  CHECK_MSG(j != NULL, "translation is not JSON: %s", s);
  free(s);
  return j;
}

/* Asserts that J equals the JSON text WANT (exactly: same keys, same values). */
#define CHECK_JSON(j, want) check_json_((j), (want), __FILE__, __LINE__)
static void check_json_(const json_t *j, const char *want, const char *file, int line) {
  json_t *w = json_loads(want, JSON_DECODE_ANY, NULL);
  check_count_++;
  if (!w) {
    check_failures_++;
    fprintf(stderr, "%s:%d: FAIL: bad expected JSON %s\n", file, line, want);
    return;
  }
  if (!j || !json_equal(j, w)) {
    char *got = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : strdup("(null)");
    char *exp = json_dumps(w, JSON_COMPACT | JSON_SORT_KEYS);
    check_failures_++;
    fprintf(stderr, "%s:%d: FAIL: JSON differs\n   got: %s\n  want: %s\n", file, line, got, exp);
    free(got);
    free(exp);
  }
  json_decref(w);
}

static const json_t *get(const json_t *j, const char *key) { return json_object_get(j, key); }

/* A refused translation: status 400 naming PARAM. */
static void check_refused(json_t *j, const struct rt_xerr *e, const char *param, const char *what) {
  CHECK_MSG(j == NULL, "%s: translated, expected a 400", what);
  json_decref(j);
  CHECK_EQ_INT(e->status, 400);
  CHECK_MSG(!strcmp(e->param, param), "%s: param '%s', expected '%s' (%s)", what, e->param, param, e->msg);
  CHECK(strlen(e->msg) > 10);
}

/* Stream helpers: feed (event, data) pairs, collect the output text. */
static char *xs_run(struct rt_xstream *s, const char *const *ev, size_t n, int *last_rc) {
  struct evbuffer *out = evbuffer_new();
  int rc = RT_XS_MORE;
  for (size_t i = 0; i + 1 < n; i += 2) rc = rt_xs_event(s, ev[i], ev[i + 1], strlen(ev[i + 1]), out);
  *last_rc = rc;
  size_t len = evbuffer_get_length(out);
  char *txt = malloc(len + 1);
  evbuffer_remove(out, txt, len);
  txt[len] = 0;
  evbuffer_free(out);
  return txt;
}

/* ------------------------------------------------------------------ OpenAI -> Anthropic */

static void test_o2a_request(void) {
  struct rt_xerr e;
  json_t *j;

  /* system prompts, max tokens default, model mapping, a plain turn as a string */
  j = o2a("{\"model\":\"c\",\"messages\":[{\"role\":\"system\",\"content\":\"Be terse.\"},"
          "{\"role\":\"user\",\"content\":\"hi\"}]}", RT_ANTHROPIC_V1, &e);
  CHECK_JSON(j, "{\"model\":\"claude-up\",\"max_tokens\":8192,\"system\":\"Be terse.\","
                "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
  json_decref(j);

  /* system + developer (array of parts) -> text blocks; max_completion_tokens wins over max_tokens */
  j = o2a("{\"model\":\"c\",\"max_tokens\":5,\"max_completion_tokens\":77,\"messages\":["
          "{\"role\":\"system\",\"content\":\"A\"},{\"role\":\"developer\",\"content\":[{\"type\":"
          "\"text\",\"text\":\"B1\"},{\"type\":\"text\",\"text\":\"B2\"}]},{\"role\":\"user\","
          "\"content\":\"q\"}]}", RT_ANTHROPIC_V1, &e);
  CHECK_EQ_INT(json_integer_value(get(j, "max_tokens")), 77);
  CHECK_JSON(get(j, "system"), "[{\"type\":\"text\",\"text\":\"A\"},{\"type\":\"text\",\"text\":\"B1\\nB2\"}]");
  json_decref(j);
  j = o2a("{\"model\":\"c\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}",
          RT_ANTHROPIC_V1, &e);
  CHECK_EQ_INT(json_integer_value(get(j, "max_tokens")), 5);
  json_decref(j);

  /* mid-conversation system: in place on 2026-10-21, wrapped into the user turn on 2023-06-01 */
  const char *mid = "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
                    "{\"role\":\"assistant\",\"content\":\"b\"},{\"role\":\"system\",\"content\":"
                    "\"switch to French\"},{\"role\":\"user\",\"content\":\"c\"}]}";
  j = o2a(mid, RT_ANTHROPIC_V2, &e);
  CHECK_JSON(get(j, "messages"), "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\","
                                 "\"content\":\"b\"},{\"role\":\"system\",\"content\":\"switch to "
                                 "French\"},{\"role\":\"user\",\"content\":\"c\"}]");
  CHECK(get(j, "system") == NULL);
  json_decref(j);
  j = o2a(mid, RT_ANTHROPIC_V1, &e);
  CHECK_JSON(get(j, "messages"),
             "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"},"
             "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"<system>\\nswitch to "
             "French\\n</system>\"},{\"type\":\"text\",\"text\":\"c\"}]}]");
  json_decref(j);

  /* same-role turns merge; images by URL and base64; empty assistant text skipped */
  j = o2a("{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":\"one\"},{\"role\":\"user\","
          "\"content\":[{\"type\":\"text\",\"text\":\"two\"},{\"type\":\"image_url\",\"image_url\":"
          "{\"url\":\"https://x.test/a.png\",\"detail\":\"low\"}},{\"type\":\"image_url\","
          "\"image_url\":{\"url\":\"data:image/png;base64,iVBORw0K\"}}]},{\"role\":\"assistant\","
          "\"content\":\"\"},{\"role\":\"assistant\",\"content\":\"ok\"}]}", RT_ANTHROPIC_V1, &e);
  CHECK_JSON(get(j, "messages"),
             "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"one\"},{\"type\":\"text\","
             "\"text\":\"two\"},{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":"
             "\"https://x.test/a.png\"}},{\"type\":\"image\",\"source\":{\"type\":\"base64\","
             "\"media_type\":\"image/png\",\"data\":\"iVBORw0K\"}}]},{\"role\":\"assistant\","
             "\"content\":\"ok\"}]");
  json_decref(j);

  /* tool calls and results: tool_use with parsed input, tool results merged into one user turn
   * (first), ids kept verbatim or mapped when Anthropic would refuse them */
  j = o2a("{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":\"weather?\"},"
          "{\"role\":\"assistant\",\"content\":\"Looking.\",\"tool_calls\":[{\"id\":\"call_1\","
          "\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":"
          "\"{\\\"city\\\":\\\"Paris\\\"}\"}},{\"id\":\"call.2\",\"type\":\"function\",\"function\":"
          "{\"name\":\"get_time\",\"arguments\":\"\"}}]},{\"role\":\"tool\",\"tool_call_id\":"
          "\"call_1\",\"content\":\"18C\"},{\"role\":\"tool\",\"tool_call_id\":\"call.2\","
          "\"content\":[{\"type\":\"text\",\"text\":\"noon\"}]},{\"role\":\"user\",\"content\":"
          "\"thanks\"}]}", RT_ANTHROPIC_V1, &e);
  const json_t *msgs = get(j, "messages");
  CHECK_EQ_INT(json_array_size(msgs), 3);
  CHECK_JSON(json_array_get(msgs, 1),
             "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"Looking.\"},"
             "{\"type\":\"tool_use\",\"id\":\"call_1\",\"name\":\"get_weather\",\"input\":"
             "{\"city\":\"Paris\"}},{\"type\":\"tool_use\",\"id\":\"tg_5574489a7450a20f\",\"name\":"
             "\"get_time\",\"input\":{}}]}");
  CHECK_JSON(json_array_get(msgs, 2),
             "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"call_1\","
             "\"content\":\"18C\"},{\"type\":\"tool_result\",\"tool_use_id\":"
             "\"tg_5574489a7450a20f\",\"content\":\"noon\"},{\"type\":\"text\",\"text\":\"thanks\"}]}");
  json_decref(j);

  /* tool_result blocks go first in their user turn even when user text came before */
  j = o2a("{\"model\":\"c\",\"messages\":[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":"
          "[{\"id\":\"t1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
          "{\"role\":\"user\",\"content\":\"note\"},{\"role\":\"tool\",\"tool_call_id\":\"t1\","
          "\"content\":\"r\"}]}", RT_ANTHROPIC_V1, &e);
  CHECK_JSON(json_array_get(get(j, "messages"), 1),
             "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\","
             "\"content\":\"r\"},{\"type\":\"text\",\"text\":\"note\"}]}");
  json_decref(j);

  /* tools, tool_choice, parallel_tool_calls */
  const char *tools = "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"description\":"
                      "\"does f\",\"parameters\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":"
                      "\"number\",\"minimum\":0.1}}},\"strict\":true}},{\"type\":\"function\","
                      "\"function\":{\"name\":\"g\"}}]";
  char body[1024];
  snprintf(body, sizeof body, "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],%s,"
                              "\"tool_choice\":\"required\",\"parallel_tool_calls\":false}", tools);
  j = o2a(body, RT_ANTHROPIC_V1, &e);
  CHECK_JSON(get(j, "tools"),
             "[{\"name\":\"f\",\"description\":\"does f\",\"input_schema\":{\"type\":\"object\","
             "\"properties\":{\"a\":{\"type\":\"number\",\"minimum\":0.1}}},\"strict\":true},"
             "{\"name\":\"g\",\"input_schema\":{\"type\":\"object\",\"properties\":{}}}]");
  CHECK_JSON(get(j, "tool_choice"), "{\"type\":\"any\",\"disable_parallel_tool_use\":true}");
  json_decref(j);
  static const char *const choices[][2] = {
      {"\"auto\"", "{\"type\":\"auto\"}"},
      {"\"none\"", "{\"type\":\"none\"}"},
      {"{\"type\":\"function\",\"function\":{\"name\":\"g\"}}", "{\"type\":\"tool\",\"name\":\"g\"}"}};
  for (int k = 0; k < 3; k++) {
    snprintf(body, sizeof body, "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                                "%s,\"tool_choice\":%s}", tools, choices[k][0]);
    j = o2a(body, RT_ANTHROPIC_V1, &e);
    CHECK_JSON(get(j, "tool_choice"), choices[k][1]);
    json_decref(j);
  }
  snprintf(body, sizeof body, "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                              "%s,\"parallel_tool_calls\":false}", tools);
  j = o2a(body, RT_ANTHROPIC_V1, &e);
  CHECK_JSON(get(j, "tool_choice"), "{\"type\":\"auto\",\"disable_parallel_tool_use\":true}");
  json_decref(j);

  /* stop, sampling (clamped on 2023-06-01, dropped on 2026-10-21), user, response_format,
   * stream, dropped fields, unknown fields passed through */
  const char *many = "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                     "\"stop\":\"END\",\"temperature\":1.5,\"top_p\":0.9,\"seed\":3,\"user\":\"u-7\","
                     "\"metadata\":{\"k\":\"v\"},\"stream\":true,\"stream_options\":{\"include_usage\":"
                     "true},\"frequency_penalty\":0.5,\"logit_bias\":{\"1\":2},\"n\":1,"
                     "\"logprobs\":false,\"response_format\":{\"type\":\"json_schema\",\"json_schema\":"
                     "{\"name\":\"r\",\"schema\":{\"type\":\"object\"}}},\"reasoning_effort\":\"minimal\","
                     "\"thinking\":{\"type\":\"adaptive\"},\"mock\":{\"tag\":\"t\"}}";
  j = o2a(many, RT_ANTHROPIC_V1, &e);
  CHECK_JSON(j, "{\"model\":\"claude-up\",\"max_tokens\":8192,\"messages\":[{\"role\":\"user\","
                "\"content\":\"x\"}],\"output_config\":{\"format\":{\"type\":\"json_schema\",\"schema\":"
                "{\"type\":\"object\"}},\"effort\":\"low\"},\"stop_sequences\":[\"END\"],"
                "\"temperature\":1.0,\"top_p\":0.9,\"stream\":true,\"metadata\":{\"user_id\":\"u-7\"},"
                "\"thinking\":{\"type\":\"adaptive\"},\"mock\":{\"tag\":\"t\"}}");
  json_decref(j);
  j = o2a(many, RT_ANTHROPIC_V2, &e);
  CHECK(get(j, "temperature") == NULL && get(j, "top_p") == NULL);
  CHECK_JSON(get(j, "stop_sequences"), "[\"END\"]");
  json_decref(j);
  j = o2a("{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":0.7,"
          "\"stop\":[\"a\",\"b\"],\"safety_identifier\":\"s1\",\"user\":\"u1\"}", RT_ANTHROPIC_V1, &e);
  CHECK_JSON(get(j, "stop_sequences"), "[\"a\",\"b\"]");
  CHECK_JSON(get(j, "metadata"), "{\"user_id\":\"s1\"}");
  json_decref(j);
  {
    /* 0.7 is printed as written, not as 0.69999999999999996 */
    struct rt_xreq_opts o = {"c", RT_ANTHROPIC_V1, 100};
    const char *b = "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":0.7}";
    size_t n;
    char *s = rt_xreq_openai_to_anthropic(b, strlen(b), &o, &n, &e);
    CHECK(s && strstr(s, "\"temperature\":0.7}") && strstr(s, "\"max_tokens\":100,"));
    free(s);
  }
  /* json_object: an instruction appended to the system prompt */
  j = o2a("{\"model\":\"c\",\"messages\":[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\","
          "\"content\":\"x\"}],\"response_format\":{\"type\":\"json_object\"}}", RT_ANTHROPIC_V1, &e);
  CHECK_JSON(get(j, "system"), "[{\"type\":\"text\",\"text\":\"S\"},{\"type\":\"text\",\"text\":"
                               "\"Respond with a single valid JSON object and nothing else.\"}]");
  json_decref(j);

  /* refusals: each names its field */
  static const char *const bad[][2] = {
      {"\"n\":2", "n"},
      {"\"logprobs\":true", "logprobs"},
      {"\"top_logprobs\":3", "top_logprobs"},
      {"\"modalities\":[\"text\",\"audio\"]", "modalities"},
      {"\"max_tokens\":-1", "max_tokens"},
      {"\"max_completion_tokens\":\"9\"", "max_completion_tokens"},
      {"\"stop\":5", "stop"},
      {"\"temperature\":\"hot\"", "temperature"},
      {"\"tools\":[{\"type\":\"custom\",\"custom\":{\"name\":\"x\"}}]", "tools[0]"},
      {"\"tool_choice\":\"sometimes\"", "tool_choice"},
      {"\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\"}}",
       "response_format.json_schema.schema"},
      {"\"reasoning_effort\":\"extreme\"", "reasoning_effort"},
      {"\"functions\":[{\"name\":\"f\"}]", "functions"},
      {"\"web_search_options\":{}", "web_search_options"},
  };
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    snprintf(body, sizeof body, "{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],%s}",
             bad[k][0]);
    check_refused(o2a(body, RT_ANTHROPIC_V1, &e), &e, bad[k][1], bad[k][0]);
  }
  static const char *const badmsg[][2] = {
      {"{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\",\"input_audio\":{\"data\":\"x\","
       "\"format\":\"wav\"}}]}", "messages[0].content[0]"},
      {"{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"ftp://x\"}}]}",
       "messages[0].content[0]"},
      {"{\"role\":\"user\",\"content\":[{\"type\":\"file\",\"file\":{\"file_id\":\"file-1\"}}]}",
       "messages[0].content[0]"},
      {"{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"a\",\"type\":\"function\","
       "\"function\":{\"name\":\"f\",\"arguments\":\"[1,2]\"}}]}", "messages[0].tool_calls[0]"},
      {"{\"role\":\"function\",\"name\":\"f\",\"content\":\"x\"}", "messages[0]"},
      {"{\"role\":\"robot\",\"content\":\"x\"}", "messages[0]"},
      {"{\"role\":\"tool\",\"content\":\"x\"}", "messages[0]"},
      {"{\"role\":\"system\",\"content\":\"only a system prompt\"}", "messages"},
  };
  for (size_t k = 0; k < sizeof badmsg / sizeof badmsg[0]; k++) {
    snprintf(body, sizeof body, "{\"model\":\"c\",\"messages\":[%s]}", badmsg[k][0]);
    check_refused(o2a(body, RT_ANTHROPIC_V1, &e), &e, badmsg[k][1], badmsg[k][0]);
  }
  /* a PDF in a file part becomes a document */
  j = o2a("{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"file\","
          "\"file\":{\"file_data\":\"data:application/pdf;base64,JVBER\",\"filename\":\"a.pdf\"}}]}]}",
          RT_ANTHROPIC_V1, &e);
  CHECK_JSON(get(j, "messages"), "[{\"role\":\"user\",\"content\":[{\"type\":\"document\",\"source\":"
                                 "{\"type\":\"base64\",\"media_type\":\"application/pdf\",\"data\":"
                                 "\"JVBER\"}}]}]");
  json_decref(j);
  check_refused(o2a("[1]", RT_ANTHROPIC_V1, &e), &e, "", "not an object");
}

/* ------------------------------------------------------------------ Anthropic -> OpenAI */

static void test_a2o_request(void) {
  struct rt_xerr e;
  json_t *j;

  j = a2o("{\"model\":\"m\",\"max_tokens\":64,\"system\":\"Be terse.\",\"messages\":[{\"role\":"
          "\"user\",\"content\":\"hi\"}],\"stop_sequences\":[\"1\",\"2\",\"3\",\"4\",\"5\"],"
          "\"temperature\":0.2,\"top_p\":0.5,\"top_k\":40,\"metadata\":{\"user_id\":\"u9\"},"
          "\"stream\":true,\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":2048},"
          "\"service_tier\":\"auto\",\"mock\":{\"tag\":\"x\"}}", &e);
  CHECK_JSON(j, "{\"model\":\"gpt-up\",\"messages\":[{\"role\":\"system\",\"content\":\"Be terse.\"},"
                "{\"role\":\"user\",\"content\":\"hi\"}],\"max_completion_tokens\":64,\"stop\":"
                "[\"1\",\"2\",\"3\",\"4\"],\"temperature\":0.2,\"top_p\":0.5,\"stream\":true,"
                "\"stream_options\":{\"include_usage\":true},\"user\":\"u9\",\"mock\":{\"tag\":\"x\"}}");
  json_decref(j);

  /* system blocks, images both ways, documents, tool use and results, thinking dropped,
   * system turns in place */
  j = a2o("{\"model\":\"m\",\"max_tokens\":8,\"system\":[{\"type\":\"text\",\"text\":\"A\","
          "\"cache_control\":{\"type\":\"ephemeral\"}},{\"type\":\"text\",\"text\":\"B\"}],"
          "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"look\"},"
          "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/jpeg\",\"data\":"
          "\"/9j/\"}},{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":\"https://x.test/i.png\"}},"
          "{\"type\":\"document\",\"source\":{\"type\":\"base64\",\"media_type\":\"application/pdf\","
          "\"data\":\"JVB\"}},{\"type\":\"document\",\"source\":{\"type\":\"text\",\"media_type\":"
          "\"text/plain\",\"data\":\"plain doc\"}}]},{\"role\":\"assistant\",\"content\":[{\"type\":"
          "\"thinking\",\"thinking\":\"hmm\",\"signature\":\"s\"},{\"type\":\"text\",\"text\":\"Calling.\"},"
          "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"f\",\"input\":{\"b\":1.5,\"a\":[true]}}]},"
          "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\","
          "\"content\":[{\"type\":\"text\",\"text\":\"r1\"},{\"type\":\"text\",\"text\":\"r2\"}]},"
          "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_2\",\"content\":\"boom\",\"is_error\":true},"
          "{\"type\":\"text\",\"text\":\"go on\"}]},{\"role\":\"system\",\"content\":\"late\"}]}", &e);
  CHECK_JSON(get(j, "messages"),
             "[{\"role\":\"system\",\"content\":[{\"type\":\"text\",\"text\":\"A\"},{\"type\":\"text\","
             "\"text\":\"B\"}]},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"look\"},"
             "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/jpeg;base64,/9j/\"}},"
             "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x.test/i.png\"}},{\"type\":"
             "\"file\",\"file\":{\"file_data\":\"data:application/pdf;base64,JVB\",\"filename\":"
             "\"document.pdf\"}},{\"type\":\"text\",\"text\":\"plain doc\"}]},{\"role\":\"assistant\","
             "\"content\":\"Calling.\",\"tool_calls\":[{\"id\":\"toolu_1\",\"type\":\"function\","
             "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"b\\\":1.5,\\\"a\\\":[true]}\"}}]},"
             "{\"role\":\"tool\",\"tool_call_id\":\"toolu_1\",\"content\":\"r1\\nr2\"},{\"role\":\"tool\","
             "\"tool_call_id\":\"toolu_2\",\"content\":\"Error: boom\"},{\"role\":\"user\",\"content\":"
             "\"go on\"},{\"role\":\"system\",\"content\":\"late\"}]");
  CHECK(get(j, "stream") == NULL && get(j, "stream_options") == NULL);
  json_decref(j);

  /* an assistant turn of tool calls only has content null */
  j = a2o("{\"model\":\"m\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\",\"content\":\"x\"},"
          "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\","
          "\"input\":{}}]}]}", &e);
  CHECK_JSON(json_array_get(get(j, "messages"), 1),
             "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"t\",\"type\":"
             "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}");
  json_decref(j);

  /* tools, tool_choice + disable_parallel_tool_use, output_config */
  j = a2o("{\"model\":\"m\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
          "\"tools\":[{\"name\":\"f\",\"description\":\"d\",\"input_schema\":{\"type\":\"object\","
          "\"properties\":{}},\"cache_control\":{\"type\":\"ephemeral\"}},{\"type\":\"custom\",\"name\":"
          "\"g\",\"input_schema\":{\"type\":\"object\"},\"strict\":true}],\"tool_choice\":{\"type\":"
          "\"tool\",\"name\":\"g\",\"disable_parallel_tool_use\":true},\"output_config\":{\"effort\":"
          "\"max\",\"format\":{\"type\":\"json_schema\",\"schema\":{\"type\":\"object\"}}}}", &e);
  CHECK_JSON(get(j, "tools"),
             "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"description\":\"d\",\"parameters\":"
             "{\"type\":\"object\",\"properties\":{}}}},{\"type\":\"function\",\"function\":{\"name\":"
             "\"g\",\"parameters\":{\"type\":\"object\"},\"strict\":true}}]");
  CHECK_JSON(get(j, "tool_choice"), "{\"type\":\"function\",\"function\":{\"name\":\"g\"}}");
  CHECK(json_is_false(get(j, "parallel_tool_calls")));
  CHECK_STR(json_string_value(get(j, "reasoning_effort")), "xhigh");
  CHECK_JSON(get(j, "response_format"), "{\"type\":\"json_schema\",\"json_schema\":{\"name\":"
                                        "\"response\",\"schema\":{\"type\":\"object\"},\"strict\":true}}");
  json_decref(j);
  static const char *const tcs[][2] = {{"{\"type\":\"auto\"}", "\"auto\""},
                                       {"{\"type\":\"any\"}", "\"required\""},
                                       {"{\"type\":\"none\"}", "\"none\""}};
  char body[1024];
  for (int k = 0; k < 3; k++) {
    snprintf(body, sizeof body, "{\"model\":\"m\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\","
                                "\"content\":\"x\"}],\"tools\":[{\"name\":\"f\",\"input_schema\":"
                                "{\"type\":\"object\"}}],\"tool_choice\":%s}", tcs[k][0]);
    j = a2o(body, &e);
    CHECK_JSON(get(j, "tool_choice"), tcs[k][1]);
    CHECK(get(j, "parallel_tool_calls") == NULL);
    json_decref(j);
  }

  /* refusals */
  static const char *const bad[][2] = {
      {"\"tools\":[{\"type\":\"web_search_20250305\",\"name\":\"web_search\"}]", "tools[0]"},
      {"\"tool_choice\":{\"type\":\"maybe\"}", "tool_choice"},
      {"\"mcp_servers\":[{\"url\":\"x\"}]", "mcp_servers"},
      {"\"output_config\":{\"format\":{\"type\":\"json_schema\"}}", "output_config.format.schema"},
  };
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    snprintf(body, sizeof body, "{\"model\":\"m\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\","
                                "\"content\":\"x\"}],%s}", bad[k][0]);
    check_refused(a2o(body, &e), &e, bad[k][1], bad[k][0]);
  }
  static const char *const badmsg[][2] = {
      {"{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":{\"type\":\"file\",\"file_id\":"
       "\"f\"}}]}", "messages[0].content[0]"},
      {"{\"role\":\"user\",\"content\":[{\"type\":\"document\",\"source\":{\"type\":\"url\",\"url\":"
       "\"https://x.test/a.pdf\"}}]}", "messages[0].content[0]"},
      {"{\"role\":\"user\",\"content\":[{\"type\":\"search_result\",\"source\":\"s\"}]}",
       "messages[0].content[0]"},
      {"{\"role\":\"assistant\",\"content\":[{\"type\":\"server_tool_use\",\"id\":\"s\",\"name\":"
       "\"web_search\",\"input\":{}}]}", "messages[0].content[0]"},
      {"{\"role\":\"bot\",\"content\":\"x\"}", "messages[0].content"},
  };
  for (size_t k = 0; k < sizeof badmsg / sizeof badmsg[0]; k++) {
    snprintf(body, sizeof body, "{\"model\":\"m\",\"max_tokens\":8,\"messages\":[%s]}", badmsg[k][0]);
    check_refused(a2o(body, &e), &e, badmsg[k][1], badmsg[k][0]);
  }
}

/* ------------------------------------------------------------------ replies */

static void test_replies(void) {
  struct pol_usage u;
  bool have;
  size_t n;
  /* Anthropic message -> chat.completion: text joined, tool_use -> tool_calls, thinking dropped,
   * usage per §3.4 (prompt = input + cache read + cache write) */
  const char *msg =
      "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-haiku-4-5\","
      "\"content\":[{\"type\":\"thinking\",\"thinking\":\"t\",\"signature\":\"s\"},{\"type\":\"text\","
      "\"text\":\"Hello \"},{\"type\":\"text\",\"text\":\"there\"},{\"type\":\"tool_use\",\"id\":"
      "\"toolu_1\",\"name\":\"get_weather\",\"input\":{\"city\":\"Paris\"}}],\"stop_reason\":\"tool_use\","
      "\"stop_sequence\":null,\"usage\":{\"input_tokens\":10,\"output_tokens\":20,"
      "\"cache_creation_input_tokens\":3,\"cache_read_input_tokens\":5,\"output_tokens_details\":"
      "{\"thinking_tokens\":4}}}";
  char *s = rt_xresp_anthropic_to_openai(msg, strlen(msg), "public", 1700000000, &n, &u, &have);
  json_t *j = json_loads(s, 0, NULL);
  CHECK_JSON(j, "{\"id\":\"msg_1\",\"object\":\"chat.completion\",\"created\":1700000000,\"model\":"
                "\"public\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
                "\"Hello there\",\"refusal\":null,\"tool_calls\":[{\"id\":\"toolu_1\",\"type\":"
                "\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":"
                "\"{\\\"city\\\":\\\"Paris\\\"}\"}}],\"annotations\":[]},\"logprobs\":null,"
                "\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":18,"
                "\"completion_tokens\":20,\"total_tokens\":38,\"prompt_tokens_details\":"
                "{\"cached_tokens\":5,\"cache_write_tokens\":3},\"completion_tokens_details\":"
                "{\"reasoning_tokens\":4}}}");
  CHECK(have);
  CHECK_EQ_INT(u.input_tokens, 18);
  CHECK_EQ_INT(u.cached_tokens, 5);
  CHECK_EQ_INT(u.cache_write_tokens, 3);
  CHECK_EQ_INT(u.output_tokens, 20);
  CHECK_EQ_INT(u.reasoning_tokens, 4);
  json_decref(j);
  free(s);
  CHECK(rt_xresp_anthropic_to_openai("{\"x\":1}", 7, "m", 0, &n, &u, &have) == NULL);
  CHECK(rt_xresp_anthropic_to_openai("nope", 4, "m", 0, &n, &u, &have) == NULL);

  /* chat.completion -> Anthropic message; reverse usage: input = prompt - cached - cache write */
  const char *cc =
      "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"gpt-4o\","
      "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Sure.\","
      "\"tool_calls\":[{\"id\":\"call_9\",\"type\":\"function\",\"function\":{\"name\":\"f\","
      "\"arguments\":\"{\\\"a\\\":1}\"}},{\"id\":\"call_10\",\"type\":\"function\",\"function\":"
      "{\"name\":\"g\",\"arguments\":\"not json\"}}]},\"finish_reason\":\"tool_calls\"}],"
      "\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":30,\"total_tokens\":130,"
      "\"prompt_tokens_details\":{\"cached_tokens\":40,\"cache_write_tokens\":10},"
      "\"completion_tokens_details\":{\"reasoning_tokens\":12}}}";
  s = rt_xresp_openai_to_anthropic(cc, strlen(cc), "public", &n, &u, &have);
  j = json_loads(s, 0, NULL);
  CHECK_JSON(j, "{\"id\":\"chatcmpl-1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"public\","
                "\"content\":[{\"type\":\"text\",\"text\":\"Sure.\"},{\"type\":\"tool_use\",\"id\":"
                "\"call_9\",\"name\":\"f\",\"input\":{\"a\":1}},{\"type\":\"tool_use\",\"id\":\"call_10\","
                "\"name\":\"g\",\"input\":{}}],\"stop_reason\":\"tool_use\",\"stop_sequence\":null,"
                "\"usage\":{\"input_tokens\":50,\"cache_creation_input_tokens\":10,"
                "\"cache_read_input_tokens\":40,\"output_tokens\":30,\"output_tokens_details\":"
                "{\"thinking_tokens\":12}}}");
  CHECK(have && u.input_tokens == 100 && u.cached_tokens == 40 && u.output_tokens == 30);
  json_decref(j);
  free(s);
  CHECK(rt_xresp_openai_to_anthropic("{\"choices\":[]}", 14, "m", &n, &u, &have) == NULL);

  /* finish_reason <-> stop_reason, the whole table */
  static const char *const f2s[][2] = {{"stop", "end_turn"}, {"length", "max_tokens"},
                                       {"tool_calls", "tool_use"}, {"function_call", "tool_use"},
                                       {"content_filter", "refusal"}, {"weird", "end_turn"}};
  for (size_t k = 0; k < sizeof f2s / sizeof f2s[0]; k++) CHECK_STR(rt_x_stop_from_finish(f2s[k][0]), f2s[k][1]);
  static const char *const s2f[][2] = {{"end_turn", "stop"}, {"stop_sequence", "stop"},
                                       {"max_tokens", "length"}, {"tool_use", "tool_calls"},
                                       {"refusal", "content_filter"},
                                       {"model_context_window_exceeded", "length"},
                                       {"pause_turn", "stop"}};
  for (size_t k = 0; k < sizeof s2f / sizeof s2f[0]; k++) CHECK_STR(rt_x_finish_from_stop(s2f[k][0]), s2f[k][1]);
}

/* ------------------------------------------------------------------ errors */

static void test_errors(void) {
  struct rt_xerror x;
  /* Anthropic upstream -> OpenAI client (status, type, code) */
  struct { int st; const char *type; int want; const char *otype, *ocode; bool no_retry; } a[] = {
      {400, "invalid_request_error", 400, "invalid_request_error", NULL, false},
      {401, "authentication_error", 401, "invalid_request_error", "invalid_api_key", false},
      {402, "billing_error", 429, "insufficient_quota", "insufficient_quota", true},
      {403, "permission_error", 403, "invalid_request_error", "permission_denied", false},
      {404, "not_found_error", 404, "invalid_request_error", "model_not_found", false},
      {413, "request_too_large", 413, "invalid_request_error", "request_too_large", false},
      {429, "rate_limit_error", 429, "requests", "rate_limit_exceeded", false},
      {500, "api_error", 500, "server_error", NULL, false},
      {529, "overloaded_error", 503, "service_unavailable_error", "server_is_overloaded", false},
      {504, "timeout_error", 504, "server_error", "timeout", false},
  };
  for (size_t k = 0; k < sizeof a / sizeof a[0]; k++) {
    char body[256];
    snprintf(body, sizeof body, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":\"the model "
                                "said no\"},\"request_id\":\"req_1\"}", a[k].type);
    rt_xerr_anthropic_to_openai(a[k].st, body, strlen(body), &x);
    CHECK_MSG(x.status == a[k].want, "%d -> %d, want %d", a[k].st, x.status, a[k].want);
    CHECK_STR(x.type, a[k].otype);
    CHECK_MSG(a[k].ocode ? x.code && !strcmp(x.code, a[k].ocode) : x.code == NULL, "%d code %s", a[k].st,
              x.code ? x.code : "null");
    CHECK_EQ_INT(x.no_retry, a[k].no_retry);
    CHECK_STR(x.message, "the model said no");
  }
  const char *spend = "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"cap\","
                      "\"details\":{\"error_code\":\"enforced_spend_limit_reached\"}}}";
  rt_xerr_anthropic_to_openai(429, spend, strlen(spend), &x);
  CHECK(x.status == 429 && x.no_retry && !strcmp(x.code, "insufficient_quota"));
  rt_xerr_anthropic_to_openai(502, "<html>Bad Gateway</html>", 24, &x);
  CHECK_EQ_INT(x.status, 502);
  CHECK_STR(x.type, "server_error");
  CHECK_STR(x.message, "<html>Bad Gateway</html>");

  /* OpenAI upstream -> Anthropic client */
  struct { int st; const char *body; int want; const char *type; bool no_retry; } o[] = {
      {400, "{\"error\":{\"message\":\"m\",\"type\":\"invalid_request_error\"}}", 400, "invalid_request_error", false},
      {422, "{\"error\":{\"message\":\"m\"}}", 400, "invalid_request_error", false},
      {401, "{\"error\":{\"message\":\"m\",\"code\":\"invalid_api_key\"}}", 401, "authentication_error", false},
      {403, "{\"error\":{\"message\":\"m\"}}", 403, "permission_error", false},
      {404, "{\"error\":{\"message\":\"m\",\"code\":\"model_not_found\"}}", 404, "not_found_error", false},
      {413, "{\"error\":{\"message\":\"m\"}}", 413, "request_too_large", false},
      {429, "{\"error\":{\"message\":\"m\",\"code\":\"rate_limit_exceeded\"}}", 429, "rate_limit_error", false},
      {429, "{\"error\":{\"message\":\"m\",\"type\":\"insufficient_quota\",\"code\":\"insufficient_quota\"}}",
       429, "rate_limit_error", true},
      {500, "{\"error\":{\"message\":\"m\",\"type\":\"server_error\"}}", 500, "api_error", false},
      {503, "{\"error\":{\"message\":\"m\",\"code\":\"server_is_overloaded\"}}", 529, "overloaded_error", false},
      {504, "{\"error\":{\"message\":\"m\"}}", 504, "timeout_error", false},
  };
  for (size_t k = 0; k < sizeof o / sizeof o[0]; k++) {
    rt_xerr_openai_to_anthropic(o[k].st, o[k].body, strlen(o[k].body), &x);
    CHECK_MSG(x.status == o[k].want, "%d -> %d, want %d", o[k].st, x.status, o[k].want);
    CHECK_STR(x.type, o[k].type);
    CHECK_EQ_INT(x.no_retry, o[k].no_retry);
    CHECK_STR(x.message, "m");
  }
  rt_xerr_openai_to_anthropic(500, "", 0, &x);
  CHECK_STR(x.message, "upstream answered HTTP 500");

  /* rendered bodies */
  struct evbuffer *b = evbuffer_new();
  rt_xerr_render_anthropic(b, "not_found_error", "no \"such\" model", "req_42");
  size_t n = evbuffer_get_length(b);
  char *txt = (char *)evbuffer_pullup(b, -1);
  CHECK_EQ_INT(n, strlen("{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\",\"message\":"
                         "\"no \\\"such\\\" model\"},\"request_id\":\"req_42\"}"));
  CHECK(!memcmp(txt, "{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\",\"message\":"
                     "\"no \\\"such\\\" model\"},\"request_id\":\"req_42\"}", n));
  evbuffer_drain(b, n);
  rt_xerr_render_openai(b, "invalid_request_error", NULL, "n", "bad n");
  n = evbuffer_get_length(b);
  txt = (char *)evbuffer_pullup(b, -1);
  const char *want = "{\"error\":{\"message\":\"bad n\",\"type\":\"invalid_request_error\","
                     "\"param\":\"n\",\"code\":null}}";
  CHECK(n == strlen(want) && !memcmp(txt, want, n));
  evbuffer_free(b);
  CHECK_STR(rt_anthropic_error_type(529), "overloaded_error");
  CHECK_STR(rt_anthropic_error_type(502), "api_error");
  CHECK_STR(rt_anthropic_error_type(405), "invalid_request_error");
}

/* ------------------------------------------------------------------ headers and times */

static void test_headers(void) {
  CHECK_EQ_INT(rt_x_parse_go_duration("1s"), 1000);
  CHECK_EQ_INT(rt_x_parse_go_duration("6m0s"), 360000);
  CHECK_EQ_INT(rt_x_parse_go_duration("12ms"), 12);
  CHECK_EQ_INT(rt_x_parse_go_duration("1h2m3.5s"), 3723500);
  CHECK_EQ_INT(rt_x_parse_go_duration("20.5s"), 20500);
  CHECK_EQ_INT(rt_x_parse_go_duration("0"), 0);
  CHECK_EQ_INT(rt_x_parse_go_duration("1500us"), 2);
  CHECK_EQ_INT(rt_x_parse_go_duration(""), -1);
  CHECK_EQ_INT(rt_x_parse_go_duration("5"), -1);
  CHECK_EQ_INT(rt_x_parse_go_duration("5x"), -1);
  CHECK_EQ_INT(rt_x_parse_go_duration("-1s"), -1);
  char buf[64];
  static const struct { int64_t ms; const char *s; } d[] = {
      {0, "0s"}, {12, "12ms"}, {1000, "1s"}, {1500, "1.5s"}, {360000, "6m0s"}, {65000, "1m5s"},
      {3723500, "1h2m3.5s"}, {20050, "20.05s"}};
  for (size_t k = 0; k < sizeof d / sizeof d[0]; k++) {
    rt_x_format_go_duration(d[k].ms, buf, sizeof buf);
    CHECK_STR(buf, d[k].s);
  }
  CHECK_EQ_INT(rt_x_parse_rfc3339("2026-11-20T12:00:05Z"), 1795176005000LL);
  CHECK_EQ_INT(rt_x_parse_rfc3339("2026-11-20T12:00:05.25Z"), 1795176005250LL);
  CHECK_EQ_INT(rt_x_parse_rfc3339("2026-11-20T13:00:05+01:00"), 1795176005000LL);
  CHECK_EQ_INT(rt_x_parse_rfc3339("2026-11-20 12:00:05z"), 1795176005000LL);
  CHECK_EQ_INT(rt_x_parse_rfc3339("2026-11-20T12:00:05"), -1);
  CHECK_EQ_INT(rt_x_parse_rfc3339("2026-13-20T12:00:05Z"), -1);
  CHECK_EQ_INT(rt_x_parse_rfc3339("yesterday"), -1);
  rt_x_format_rfc3339(1795176005000LL, buf, sizeof buf);
  CHECK_STR(buf, "2026-11-20T12:00:05Z");
  rt_x_format_rfc3339(1795176005001LL, buf, sizeof buf);
  CHECK_STR(buf, "2026-11-20T12:00:06Z"); /* rounded up: a reset is never early */

  int64_t now = 1795176000000LL; /* 2026-11-20T12:00:00Z */
  char name[128], value[128];
  CHECK_EQ_INT(rt_xhdr_openai_to_anthropic("x-ratelimit-reset-requests", "6m0s", now, name, value, 128), 1);
  CHECK_STR(name, "anthropic-ratelimit-requests-reset");
  CHECK_STR(value, "2026-11-20T12:06:00Z");
  CHECK_EQ_INT(rt_xhdr_openai_to_anthropic("X-RateLimit-Remaining-Tokens", "999", now, name, value, 128), 1);
  CHECK_STR(name, "anthropic-ratelimit-tokens-remaining");
  CHECK_STR(value, "999");
  CHECK_EQ_INT(rt_xhdr_openai_to_anthropic("x-ratelimit-limit-requests", "10000", now, name, value, 128), 1);
  CHECK_STR(name, "anthropic-ratelimit-requests-limit");
  CHECK_EQ_INT(rt_xhdr_openai_to_anthropic("x-request-id", "req_abc", now, name, value, 128), 1);
  CHECK_STR(name, "request-id");
  CHECK_EQ_INT(rt_xhdr_openai_to_anthropic("retry-after", "7", now, name, value, 128), 1);
  CHECK(!strcmp(name, "retry-after") && !strcmp(value, "7"));
  CHECK_EQ_INT(rt_xhdr_openai_to_anthropic("retry-after-ms", "250", now, name, value, 128), 1);
  CHECK_EQ_INT(rt_xhdr_openai_to_anthropic("openai-processing-ms", "3", now, name, value, 128), 0);
  CHECK_EQ_INT(rt_xhdr_openai_to_anthropic("x-ratelimit-reset-tokens", "soon", now, name, value, 128), 0);

  CHECK_EQ_INT(rt_xhdr_anthropic_to_openai("anthropic-ratelimit-tokens-reset", "2026-11-20T12:01:05Z",
                                           now, name, value, 128), 1);
  CHECK_STR(name, "x-ratelimit-reset-tokens");
  CHECK_STR(value, "1m5s");
  CHECK_EQ_INT(rt_xhdr_anthropic_to_openai("anthropic-ratelimit-requests-reset", "2026-11-20T11:00:00Z",
                                           now, name, value, 128), 1);
  CHECK_STR(value, "0s"); /* already passed */
  CHECK_EQ_INT(rt_xhdr_anthropic_to_openai("anthropic-ratelimit-requests-remaining", "49", now, name, value, 128), 1);
  CHECK_STR(name, "x-ratelimit-remaining-requests");
  CHECK_EQ_INT(rt_xhdr_anthropic_to_openai("request-id", "req_011", now, name, value, 128), 1);
  CHECK_STR(name, "x-request-id");
  CHECK_EQ_INT(rt_xhdr_anthropic_to_openai("anthropic-ratelimit-input-tokens-limit", "1", now, name, value, 128), 0);
  CHECK_EQ_INT(rt_xhdr_anthropic_to_openai("x-should-retry", "false", now, name, value, 128), 1);
  CHECK(!strcmp(name, "x-should-retry") && !strcmp(value, "false"));
}

/* ------------------------------------------------------------------ stream state machines */

static void test_streams(void) {
  int rc;
  struct rt_xs_opts o = {"public", 1700000000, false, "msg_fb"};

  /* A2O: thinking is dropped, the finish chunk maps max_tokens -> length, no usage chunk when
   * the client did not ask, but the usage is known (for the log) */
  struct rt_xstream *s = rt_xs_new(RT_XS_A2O, &o);
  const char *ev[] = {
      "message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_7\",\"usage\":{\"input_tokens\":5,\"cache_read_input_tokens\":2,\"output_tokens\":1}}}",
      "content_block_start", "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}",
      "content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hm\"}}",
      "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}",
      "content_block_start", "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}",
      "ping", "{\"type\":\"ping\"}",
      "content_block_delta", "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\\n\"}}",
      "future_event", "{\"type\":\"future_event\"}",
      "message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{\"output_tokens\":9}}",
      "message_stop", "{\"type\":\"message_stop\"}",
  };
  char *txt = xs_run(s, ev, sizeof ev / sizeof ev[0], &rc);
  CHECK_EQ_INT(rc, RT_XS_END);
  const char *pre = "data: {\"id\":\"msg_7\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
                    "\"model\":\"public\",\"choices\":[{\"index\":0,\"delta\":";
  char want[2048];
  snprintf(want, sizeof want,
           "%s{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n"
           "%s{\"content\":\"Hi\\n\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n"
           "%s{},\"logprobs\":null,\"finish_reason\":\"length\"}]}\n\n"
           "data: [DONE]\n\n", pre, pre, pre);
  CHECK_STR(txt, want);
  free(txt);
  const struct pol_usage *u = rt_xs_usage(s);
  CHECK(u && u->input_tokens == 7 && u->cached_tokens == 2 && u->output_tokens == 9);
  CHECK(rt_xs_has_content(s));
  /* after the end, events are ignored */
  struct evbuffer *out = evbuffer_new();
  CHECK_EQ_INT(rt_xs_event(s, "message_stop", "{\"type\":\"message_stop\"}", strlen("{\"type\":\"message_stop\"}"), out), RT_XS_END);
  CHECK_EQ_INT(evbuffer_get_length(out), 0);
  rt_xs_free(s);

  /* A2O out of order / malformed: nothing written */
  s = rt_xs_new(RT_XS_A2O, &o);
  CHECK_EQ_INT(rt_xs_event(s, "content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0}", strlen("{\"type\":\"content_block_delta\",\"index\":0}"), out), RT_XS_BAD);
  CHECK_EQ_INT(rt_xs_event(s, "message_start", "not json", strlen("not json"), out), RT_XS_BAD);
  CHECK_EQ_INT(evbuffer_get_length(out), 0);
  CHECK_EQ_INT(rt_xs_event(s, "message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}", strlen("{\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}"), out), RT_XS_MORE);
  CHECK_EQ_INT(rt_xs_event(s, "message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}", strlen("{\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}"), out), RT_XS_BAD);
  CHECK_EQ_INT(rt_xs_event(s, "content_block_delta", "{\"type\":\"content_block_delta\",\"index\":3,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}", strlen("{\"type\":\"content_block_delta\",\"index\":3,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}"), out), RT_XS_BAD);
  CHECK_EQ_INT(rt_xs_event(s, "content_block_start", "{\"type\":\"content_block_start\",\"index\":99999,\"content_block\":{\"type\":\"text\"}}", strlen("{\"type\":\"content_block_start\",\"index\":99999,\"content_block\":{\"type\":\"text\"}}"), out), RT_XS_BAD);
  /* the stream cut before message_delta: an error frame */
  evbuffer_drain(out, evbuffer_get_length(out));
  CHECK_EQ_INT(rt_xs_eof(s, out), RT_XS_FAILED);
  size_t n = evbuffer_get_length(out);
  txt = (char *)evbuffer_pullup(out, -1);
  const char *cut = "data: {\"error\":{\"message\":\"The upstream stream ended before the answer was "
                    "complete.\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n";
  CHECK(n == strlen(cut) && !memcmp(txt, cut, n));
  evbuffer_drain(out, n);
  rt_xs_free(s);

  /* O2A: a refusal delta is text; finish without [DONE] is completed at EOF */
  s = rt_xs_new(RT_XS_O2A, &o);
  const char *ov[] = {
      "", "{\"id\":\"chatcmpl-5\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}",
      "", "{\"id\":\"chatcmpl-5\",\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\"No.\"},\"finish_reason\":null}]}",
      "", "{\"id\":\"chatcmpl-5\",\"choices\":[{\"index\":1,\"delta\":{\"content\":\"other choice\"},\"finish_reason\":null}]}",
      "", "{\"id\":\"chatcmpl-5\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"content_filter\"}]}",
  };
  txt = xs_run(s, ov, sizeof ov / sizeof ov[0], &rc);
  CHECK_EQ_INT(rc, RT_XS_MORE);
  CHECK_EQ_INT(rt_xs_eof(s, out), RT_XS_END);
  n = evbuffer_get_length(out);
  char *tail = malloc(n + 1);
  evbuffer_remove(out, tail, n);
  tail[n] = 0;
  const char *head_want =
      "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"chatcmpl-5\",\"type\":"
      "\"message\",\"role\":\"assistant\",\"model\":\"public\",\"content\":[],\"stop_reason\":null,"
      "\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,\"output_tokens\":0}}}\n\n"
      "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
      "{\"type\":\"text\",\"text\":\"\"}}\n\n"
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
      "{\"type\":\"text_delta\",\"text\":\"No.\"}}\n\n"
      "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n";
  CHECK_STR(txt, head_want);
  CHECK_STR(tail, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
                  "\"refusal\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":0}}\n\n"
                  "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
  free(txt);
  free(tail);
  CHECK(rt_xs_usage(s) == NULL);
  rt_xs_free(s);

  /* O2A: a tool fragment without a name first is malformed; an upstream error frame */
  s = rt_xs_new(RT_XS_O2A, &o);
  const char *frag = "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
                     "\"function\":{\"arguments\":\"{}\"}}]}}]}";
  CHECK_EQ_INT(rt_xs_event(s, "", frag, strlen(frag), out), RT_XS_BAD);
  evbuffer_drain(out, evbuffer_get_length(out));
  const char *err = "{\"error\":{\"message\":\"Overloaded\",\"type\":\"service_unavailable_error\","
                    "\"code\":\"server_is_overloaded\"}}";
  CHECK_EQ_INT(rt_xs_event(s, "", err, strlen(err), out), RT_XS_FAILED);
  n = evbuffer_get_length(out);
  txt = (char *)evbuffer_pullup(out, -1);
  const char *ew = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                   "\"message\":\"Overloaded\"}}\n\n";
  CHECK(n == strlen(ew) && !memcmp(txt, ew, n));
  CHECK_STR(rt_xs_error_message(s), "Overloaded");
  evbuffer_drain(out, n);
  /* after a failure, nothing more is written, even by rt_xs_fail */
  rt_xs_fail(s, "api_error", "again", out);
  CHECK_EQ_INT(evbuffer_get_length(out), 0);
  rt_xs_free(s);

  /* O2A: an empty stream ([DONE] only) is still a well-formed message */
  s = rt_xs_new(RT_XS_O2A, &o);
  CHECK_EQ_INT(rt_xs_event(s, "", "[DONE]", strlen("[DONE]"), out), RT_XS_END);
  n = evbuffer_get_length(out);
  txt = (char *)evbuffer_pullup(out, -1);
  CHECK(n > 0 && strstr(txt, "\"id\":\"msg_fb\"") && strstr(txt, "\"stop_reason\":\"end_turn\""));
  evbuffer_drain(out, n);
  rt_xs_free(s);

  /* gateway-side failure mid-stream, in each format */
  s = rt_xs_new(RT_XS_A2O, &o);
  rt_xs_fail(s, "server_error", "upstream reset", out);
  n = evbuffer_get_length(out);
  txt = (char *)evbuffer_pullup(out, -1);
  CHECK(n && !strncmp(txt, "data: {\"error\":{\"message\":\"upstream reset\",\"type\":\"server_error\"", 64));
  evbuffer_drain(out, n);
  rt_xs_free(s);
  evbuffer_free(out);
  CHECK(rt_anthropic_version_strict("2026-10-21"));
  CHECK(rt_anthropic_version_strict("2027-01-01"));
  CHECK(!rt_anthropic_version_strict("2023-06-01"));
  CHECK(!rt_anthropic_version_strict(NULL));
}

/* ------------------------------------------------------------------ the surface's pure parts */

static void test_surface_pure(void) {
  struct rt_chat_info info;
  const char *param;
  char msg[300];
  const char *ok = "{\"model\":\"m\",\"max_tokens\":5,\"stream\":true,\"messages\":[{\"role\":\"user\","
                   "\"content\":\"x\"}],\"temperature\":0.5}";
  CHECK_EQ_INT(rt_anthropic_validate(ok, strlen(ok), false, false, &info, &param, msg, sizeof msg), 0);
  CHECK_STR(info.model_name, "m");
  CHECK(info.stream);
  rt_chat_info_free(&info);
  /* strict (2026-10-21) refuses sampling parameters */
  CHECK_EQ_INT(rt_anthropic_validate(ok, strlen(ok), false, true, &info, &param, msg, sizeof msg), 400);
  CHECK_STR(param, "temperature");
  /* count_tokens needs no max_tokens */
  const char *count = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
  CHECK_EQ_INT(rt_anthropic_validate(count, strlen(count), true, false, &info, &param, msg, sizeof msg), 0);
  rt_chat_info_free(&info);
  CHECK_EQ_INT(rt_anthropic_validate(count, strlen(count), false, false, &info, &param, msg, sizeof msg), 400);
  CHECK_STR(param, "max_tokens");
  CHECK_STR(msg, "Field required");
  static const char *const bad[][2] = {
      {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"assistant\",\"content\":[{\"type\":"
       "\"text\"}]}]}", "messages"},
      {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
       "\"system\":[{\"type\":\"image\"}]}", "system"},
      {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
       "\"stop_sequences\":\"x\"}", "stop_sequences"},
      {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
       "\"tools\":[{\"description\":\"no name\"}]}", "tools"},
      {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
       "\"tool_choice\":\"auto\"}", "tool_choice"},
      {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
       "\"metadata\":[1]}", "metadata"},
      {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
       "\"top_k\":\"5\"}", "top_k"},
      {"{\"model\":\"\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model"},
      {"{\"model\":\"m\",\"max_tokens\":-1,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "max_tokens"},
      {"{\"model\":\"m\",\"max_tokens\":1,\"max_tokens\":2,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
       "max_tokens"},
  };
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    int st = rt_anthropic_validate(bad[k][0], strlen(bad[k][0]), false, false, &info, &param, msg, sizeof msg);
    CHECK_MSG(st == 400 && param && !strcmp(param, bad[k][1]), "%s: %d param %s (%s)", bad[k][0], st,
              param ? param : "null", msg);
  }
  /* strict: document blocks in assistant turns */
  const char *doc = "{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"assistant\",\"content\":"
                    "[{\"type\":\"document\",\"source\":{}}]}]}";
  CHECK_EQ_INT(rt_anthropic_validate(doc, strlen(doc), false, true, &info, &param, msg, sizeof msg), 400);
  CHECK(strstr(msg, "document") != NULL);
  CHECK_EQ_INT(rt_anthropic_validate(doc, strlen(doc), false, false, &info, &param, msg, sizeof msg), 0);
  rt_chat_info_free(&info);

  /* passthrough bodies: byte-exact model edit; sampling removed for a strict upstream */
  const char *b = "{ \"model\" : \"pub\", \"temperature\":0.70, \"max_tokens\":5,\"top_k\":3,"
                  "\"x\":1.50e+3,\"top_p\":1e-1 }";
  size_t n;
  char *o = rt_anthropic_upstream_body(b, strlen(b), "up-model", false, &n);
  CHECK_STR(o, "{ \"model\" : \"up-model\", \"temperature\":0.70, \"max_tokens\":5,\"top_k\":3,"
               "\"x\":1.50e+3,\"top_p\":1e-1 }");
  free(o);
  o = rt_anthropic_upstream_body(b, strlen(b), "up-model", true, &n);
  CHECK_STR(o, "{\"model\":\"up-model\",\"max_tokens\":5,\"x\":1.50e+3}");
  CHECK_EQ_INT(n, strlen(o));
  free(o);
  o = rt_anthropic_upstream_body(b, strlen(b), NULL, true, &n);
  CHECK_STR(o, "{\"model\":\"pub\",\"max_tokens\":5,\"x\":1.50e+3}");
  free(o);

  /* the count_tokens estimate: (text bytes + 3) / 4 + 1600 per image + 3 per turn + 10 per tool */
  const char *est = "{\"model\":\"m\",\"system\":\"12345678\",\"messages\":[{\"role\":\"user\","
                    "\"content\":[{\"type\":\"text\",\"text\":\"abcd\"},{\"type\":\"image\"}]}]}";
  CHECK_EQ_INT(rt_anthropic_estimate_tokens(est, strlen(est)), (12 + 3) / 4 + 1600 + 3 + 3);
  CHECK_EQ_INT(rt_anthropic_estimate_tokens("[]", 2), -1);
}

int main(void) {
  test_o2a_request();
  test_a2o_request();
  test_replies();
  test_errors();
  test_headers();
  test_streams();
  test_surface_pure();
  return check_done();
}
