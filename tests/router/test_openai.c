/*
 * test_openai.c: the byte-exact JSON helpers (router/json.c) and the OpenAI surface's pure parts
 * (router/openai.c): validation, the upstream body, the model rename in replies.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "router/internal.h"

static int validate(const char *body, struct rt_chat_info *info, const char **param, char *msg) {
  return rt_openai_validate(body, strlen(body), info, param, msg, 256);
}

static char *upbody(const char *body, const char *model, bool usage) {
  size_t n;
  return rt_openai_upstream_body(body, strlen(body), model, usage, &n);
}

int main(void) {
  /* ---------------------------------------------------------------- the scanner */
  {
    const char *s = " { \"a\" : [1,{\"b\":\"}\"}], \"m\\u006fdel\":\"x\\\"y\" ,\"n\":-1.5e3,\"t\":true} ";
    struct rt_json_iter it;
    struct rt_json_span k, v;
    CHECK_EQ_INT(rt_json_iter_begin(&it, s, strlen(s)), 0);
    CHECK_EQ_INT(rt_json_iter_next(&it, &k, &v), 1);
    CHECK(rt_json_key_is(s, k, "a"));
    CHECK_EQ_INT(v.len, strlen("[1,{\"b\":\"}\"}]"));
    CHECK_EQ_INT(rt_json_iter_next(&it, &k, &v), 1);
    CHECK(rt_json_key_is(s, k, "model")); /* escaped key decoded */
    CHECK(!rt_json_key_is(s, k, "mode"));
    CHECK(strncmp(s + v.off, "\"x\\\"y\"", v.len) == 0);
    CHECK_EQ_INT(rt_json_iter_next(&it, &k, &v), 1);
    CHECK(strncmp(s + v.off, "-1.5e3", v.len) == 0 && v.len == 6);
    CHECK_EQ_INT(rt_json_iter_next(&it, &k, &v), 1);
    CHECK_EQ_INT(rt_json_iter_next(&it, &k, &v), 0);
    CHECK_EQ_INT(s[it.pos], '}');
    /* malformed input ends the walk, never overruns */
    const char *bad[] = {"{\"a\":", "{\"a\" 1}", "{\"a\":1,,}", "{\"a\":\"unterminated}", "[1]", "",
                         "{\"a\":[1,2}", "{\"a\":1 \"b\":2}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      int rc = rt_json_iter_begin(&it, bad[i], strlen(bad[i]));
      if (rc == 0) {
        while ((rc = rt_json_iter_next(&it, &k, &v)) == 1) {
        }
      }
      CHECK_MSG(rc == -1, "'%s' gave %d", bad[i], rc);
    }
    struct rt_json_span u;
    const char *chunk = "{\"choices\":[ ],\"usage\":null,\"x\":{}}";
    CHECK_EQ_INT(rt_json_find(chunk, strlen(chunk), "usage", &u), 1);
    CHECK(rt_json_is_null(chunk, u));
    CHECK_EQ_INT(rt_json_find(chunk, strlen(chunk), "choices", &u), 1);
    CHECK(rt_json_is_empty_array(chunk, u));
    CHECK_EQ_INT(rt_json_find(chunk, strlen(chunk), "nope", &u), 0);
    size_t ql;
    char *q = rt_json_quote_str("a\"b\\c\n\x01", 7, &ql);
    CHECK_STR(q, "\"a\\\"b\\\\c\\n\\u0001\"");
    CHECK_EQ_INT(ql, strlen(q));
    free(q);
  }

  /* ---------------------------------------------------------------- validation */
  struct rt_chat_info info;
  const char *param;
  char msg[256];
  CHECK_EQ_INT(validate("{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                        &info, &param, msg), 0);
  CHECK_STR(info.model_name, "gpt-4o-mini");
  CHECK(!info.stream && !info.client_usage);
  rt_chat_info_free(&info);
  CHECK_EQ_INT(validate("{\"model\":\"m\",\"messages\":[{}],\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
                        &info, &param, msg), 0);
  CHECK(info.stream && info.client_usage);
  rt_chat_info_free(&info);
  CHECK_EQ_INT(validate("{\"model\":\"m\",\"messages\":[{}],\"stream\":true,\"stream_options\":null}", &info, &param, msg), 0);
  CHECK(info.stream && !info.client_usage);
  rt_chat_info_free(&info);

  struct {
    const char *body, *param, *msg_part;
  } bad[] = {
      {"", NULL, "empty"},
      {"{\"model\":", NULL, "could not parse"},
      {"{\"model\":\"m\",\"messages\":[{}]} x", NULL, "could not parse"},
      {"[1,2]", NULL, "JSON object"},
      {"\"str\"", NULL, "JSON object"},
      {"{\"messages\":[{}]}", "model", "must provide a model"},
      {"{\"model\":\"\",\"messages\":[{}]}", "model", "must provide a model"},
      {"{\"model\":null,\"messages\":[{}]}", "model", "must provide a model"},
      {"{\"model\":7,\"messages\":[{}]}", "model", "expected a string"},
      {"{\"model\":\"a\\u0000b\",\"messages\":[{}]}", "model", "NUL"},
      {"{\"model\":\"m\"}", "messages", "Missing required parameter"},
      {"{\"model\":\"m\",\"messages\":{}}", "messages", "expected an array"},
      {"{\"model\":\"m\",\"messages\":[]}", "messages", "empty array"},
      {"{\"model\":\"m\",\"messages\":[{},3]}", "messages", "messages[1]"},
      {"{\"model\":\"m\",\"messages\":[{}],\"stream\":\"yes\"}", "stream", "boolean"},
      {"{\"model\":\"m\",\"messages\":[{}],\"stream_options\":1}", "stream_options", "object"},
      {"{\"model\":\"m\",\"messages\":[{}],\"model\":\"n\"}", "model", "Duplicate"},
      {"{\"model\":\"m\",\"messages\":[{}],\"\\u006dodel\":\"n\"}", "model", "Duplicate"},
      {"{\"model\":\"m\",\"messages\":[{\"content\":\"\xff\"}]}", NULL, "could not parse"}, /* bad UTF-8 */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int st = validate(bad[i].body, &info, &param, msg);
    CHECK_MSG(st == 400, "body %zu: status %d", i, st);
    CHECK_MSG((param == NULL && bad[i].param == NULL) ||
                  (param && bad[i].param && !strcmp(param, bad[i].param)),
              "body %zu: param %s", i, param ? param : "(null)");
    CHECK_MSG(strstr(msg, bad[i].msg_part) != NULL, "body %zu: message '%s'", i, msg);
    CHECK(info.model_name == NULL);
  }

  /* ---------------------------------------------------------------- the upstream body */
  /* every byte kept, only the model value replaced (floats, spacing and escapes untouched) */
  const char *orig = "{ \"model\" : \"fast\", \"temperature\":0.70000, \"x\":\"\\u00e9\\n\", \"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
  char *u = upbody(orig, "gpt-4o-mini", false);
  CHECK_STR(u, "{ \"model\" : \"gpt-4o-mini\", \"temperature\":0.70000, \"x\":\"\\u00e9\\n\", \"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
  free(u);
  u = upbody(orig, NULL, false);
  CHECK_STR(u, orig);
  free(u);
  /* streams: include_usage added when absent, forced when false, kept when true, null replaced */
  u = upbody("{\"stream\":true,\"model\":\"fast\",\"messages\":[{}]}", "up", true);
  CHECK_STR(u, "{\"stream\":true,\"model\":\"up\",\"messages\":[{}],\"stream_options\":{\"include_usage\":true}}");
  free(u);
  u = upbody("{\"model\":\"m\",\"stream_options\":{\"include_usage\":false,\"include_obfuscation\":false},\"stream\":true}", NULL, true);
  CHECK_STR(u, "{\"model\":\"m\",\"stream_options\":{\"include_usage\":true,\"include_obfuscation\":false},\"stream\":true}");
  free(u);
  u = upbody("{\"model\":\"m\",\"stream_options\":{\"include_usage\":true},\"stream\":true}", NULL, true);
  CHECK_STR(u, "{\"model\":\"m\",\"stream_options\":{\"include_usage\":true},\"stream\":true}");
  free(u);
  u = upbody("{\"stream_options\":null,\"model\":\"m\",\"stream\":true}", "u2", true);
  CHECK_STR(u, "{\"stream_options\":{\"include_usage\":true},\"model\":\"u2\",\"stream\":true}");
  free(u);
  u = upbody("{\"stream_options\":{},\"model\":\"m\"}", "a\"b", true);
  CHECK_STR(u, "{\"stream_options\":{\"include_usage\":true},\"model\":\"a\\\"b\"}");
  free(u);

  /* ---------------------------------------------------------------- replies: model rename */
  size_t rl;
  const char *reply = "{\"id\":\"c1\",\"model\":\"gpt-4o-mini-2024-07-18\",\"usage\":{\"prompt_tokens\":1}}";
  char *rn = rt_openai_rename_model(reply, strlen(reply), "fast", &rl);
  CHECK_STR(rn, "{\"id\":\"c1\",\"model\":\"fast\",\"usage\":{\"prompt_tokens\":1}}");
  CHECK_EQ_INT(rl, strlen(rn));
  free(rn);
  CHECK(rt_openai_rename_model(reply, strlen(reply), NULL, &rl) == NULL);          /* no alias */
  const char *same = "{\"model\":\"fast\"}";
  CHECK(rt_openai_rename_model(same, strlen(same), "fast", &rl) == NULL);         /* already */
  const char *nomodel = "{\"error\":{\"model\":\"x\"}}";
  CHECK(rt_openai_rename_model(nomodel, strlen(nomodel), "fast", &rl) == NULL);   /* not top-level */
  CHECK(rt_openai_rename_model("not json", 8, "fast", &rl) == NULL);
  return check_done();
}
