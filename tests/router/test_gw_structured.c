/*
 * test_gw_structured.c: structured output through `tiergate serve` (README "Structured output:
 * JSON Schema and tool calls"): OpenAI response_format json_schema / json_object, Anthropic
 * output_config.format, and forced tool calls in both APIs, answered by local providers on
 * ../shared/models/stories260K.gguf (SentencePiece, context 2048) and tiny-qwen2-Q8_0.gguf
 * (byte-level BPE, random weights, context 512: its trained maximum).
 *
 * Every reply's JSON (content, tool arguments, tool_use input) is queued with its schema and
 * validated at the end by an independent validator, Debian's python3-jsonschema through
 * tests/router/jsonschema_validate.py (one process for all; a control item that must fail
 * proves the validator judges). Exact checks besides: temperature 0 gives the same JSON plain and
 * streamed, in both APIs, strict true and false; a seed gives the same JSON plain and streamed;
 * the wire shapes of each API's tool calls (PROTOCOLS.md), streamed arguments concatenated equal
 * the plain ones; prompt tokens equal count_tokens; a tool round trip renders the earlier call as
 * the envelope JSON (prompt tokens equal the engine's own rendering, computed here with slm.h);
 * errors name the keyword and its pointer in the caller's format; max_tokens too small to finish
 * the JSON ends with finish "length" (a 200, not a 500 that opened the breaker); one log row per
 * request and a clean exit (SIGTERM, exit 0: no leak under ASan).
 *
 * The real-world schemas: from ../shared/data/jsonschema/maskbench-dev.jsonl, from every 200th
 * line on, the first schema of at most 1000 bytes (compact) that `tiergate slm schema check`
 * compiles (exit 0); on tiny-qwen2 only those whose prompt leaves room for a reply.
 */
#include <sys/wait.h>

#include "router/itest.h"
#include "slm/slm.h"

#define SEEDS 4              /* temperature-1 seeds per schema and model */
#define MAXTOK 300           /* max_tokens of a structured reply (less where the context is short) */
#define MB_STEP 200          /* maskbench: every 200th line */
#define MB_MAX_BYTES 1000    /* ... a schema of at most this many bytes (the prompt holds it) */
#define MIN_ROOM 48          /* tokens a reply needs at least (else a model is skipped) */

struct model {
  const char *name;          /* the gateway's model name */
  const char *file;
  int ctx;
  struct slm_model *m;       /* for reference prompts */
};
static struct model models[2] = {
    {"stories", "models/stories260K.gguf", 2048, NULL},
    {"qwen", "models/tiny-qwen2-Q8_0.gguf", 512, NULL},
};

/* ------------------------------------------------------------------ small helpers */

static const char *hdr(const struct th_resp *r, const char *name) {
  static char buf[4][512];
  static int k;
  k = (k + 1) % 4;
  return th_resp_header(r, name, buf[k], sizeof buf[k]);
}

/* The reply's JSON, parsed allowing \u0000 (tiny-qwen2's strings may hold one). An Anthropic
 * tool_use carries the generated arguments as JSON itself, and a model may generate valid JSON
 * that jansson refuses (an integer past 64 bits, an exponent past a double's, \u0000 in an
 * extra property's name): then the reply is parsed with that input read as {} (the input's raw
 * text is what an_call validates and compares). */
static json_t *J(struct th_resp *r) {
  if (!r->json) r->json = json_loadb(r->body, r->body_len, JSON_ALLOW_NUL, NULL);
  const char *ip = r->json || !r->body ? NULL : strstr(r->body, "\"input\":"), *ie = NULL;
  for (const char *q = ip; q && (q = strstr(q, "}],\"stop_reason\"")); q++) ie = q;
  if (ip && ie && ie > ip) {
    char *t = th_fmt("%.*s{}%s", (int)(ip + 8 - r->body), r->body, ie);
    r->json = json_loads(t, JSON_ALLOW_NUL, NULL);
    free(t);
  }
  return r->json;
}

static void post(const char *path, const char *body, struct th_resp *r) {
  const char *h[] = {"Content-Type: application/json", NULL};
  struct th_req rq = {.method = "POST", .body = body, .headers = h, .timeout_ms = 60000};
  gw_req(&rq, path, r);
}

/* A JSON text (compact, key order kept) of V, malloc'd. */
static char *dumps(const json_t *v) {
  return json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
}

/* A request body from a printf format (the JSON must parse: checked), malloc'd. */
static char *body(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *body(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0) s = NULL;
  va_end(ap);
  json_error_t e;
  json_t *j = s ? json_loads(s, 0, &e) : NULL;
  CHECK_MSG(j != NULL, "the test built a bad body (%s): %.300s", j ? "" : e.text, s ? s : "");
  json_decref(j);
  return s;
}

static bool starts_with(const char *s, const char *p) { return s && !strncmp(s, p, strlen(p)); }

/* ------------------------------------------------------------------ the independent validator */

static FILE *vq;                 /* queued (id, schema, text) items, JSON Lines */
static char vq_path[400];
static int vq_n;

/* Queues TEXT[0..LEN) to be validated against SCHEMA (a JSON text) under the label ID. */
static void expect_valid(const char *id, const char *schema, const char *text, size_t len) {
  json_t *s = json_loads(schema, 0, NULL);
  CHECK_MSG(s != NULL, "%s: the schema is not JSON", id);
  if (!s || !vq) return;
  json_t *o = json_pack("{s:s,s:o,s:s%}", "id", id, "schema", s, "text", text ? text : "", text ? len : 0);
  char *line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
  json_decref(o);
  CHECK(line != NULL);
  if (line) fprintf(vq, "%s\n", line);
  free(line);
  vq_n++;
}

static void validator_open(const char *dir) {
  snprintf(vq_path, sizeof vq_path, "%s/validate.jsonl", dir);
  vq = fopen(vq_path, "w");
  CHECK_MSG(vq != NULL, "cannot write %s", vq_path);
  /* the control: an item the validator must reject, so a validator that judges nothing fails */
  expect_valid("control-must-fail", "{\"type\":\"integer\",\"minimum\":3}", "2", 1);
}

/* Runs the validator over the queue: every item ok but the control. */
static void validator_run(void) {
  if (!vq) return;
  fclose(vq);
  vq = NULL;
  const char *src = getenv("TIERGATE_SOURCE_DIR");
  char *cmd = th_fmt("python3 '%s/tests/router/jsonschema_validate.py' '%s' 2>&1", src ? src : ".", vq_path);
  FILE *p = popen(cmd, "r");
  free(cmd);
  CHECK_MSG(p != NULL, "cannot run the validator");
  if (!p) return;
  char line[4096];
  int ok = 0, fail = 0, total = -1, t_ok = -1, t_fail = -1;
  bool control = false;
  while (fgets(line, sizeof line, p)) {
    line[strcspn(line, "\n")] = 0;
    if (starts_with(line, "ok ")) {
      ok++;
    } else if (starts_with(line, "FAIL control-must-fail:")) {
      control = true;
      fail++;
    } else if (starts_with(line, "FAIL ")) {
      fail++;
      CHECK_MSG(0, "validator: %s", line);
    } else if (sscanf(line, "total %d ok %d fail %d", &total, &t_ok, &t_fail) == 3) {
      ;
    } else {
      CHECK_MSG(0, "validator said: %s", line);
    }
  }
  int st = pclose(p);
  CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 1, "validator exit status %d (want 1: the control fails)", st);
  CHECK_MSG(control, "the control item was not rejected: the validator does not judge");
  CHECK_EQ_INT(total, vq_n);
  CHECK_EQ_INT(ok + fail, vq_n);
  CHECK_EQ_INT(fail, 1);
  printf("validator: %d replies validated by python3-jsonschema, %d valid, %d invalid (besides the "
         "control)\n", vq_n - 1, ok, fail - (control ? 1 : 0));
}

/* ------------------------------------------------------------------ stream parsing */

/* What an OpenAI stream carried. */
struct oa_stream {
  char *content;             /* content deltas concatenated (malloc'd) */
  size_t content_len;
  char finish[32];
  char tool_id[96], tool_name[128];
  char *args;                /* tool call argument fragments concatenated (malloc'd) */
  size_t args_len;
  int n_arg_frags;
};

static void oa_stream_free(struct oa_stream *s) {
  free(s->content);
  free(s->args);
  memset(s, 0, sizeof *s);
}

static void append(char **buf, size_t *len, const json_t *s) {
  if (!json_is_string(s)) return;
  size_t n = json_string_length(s);
  char *b = realloc(*buf, *len + n + 1);
  if (!b) return;
  memcpy(b + *len, json_string_value(s), n);
  *len += n;
  b[*len] = 0;
  *buf = b;
}

/* Parses and checks an OpenAI chat stream: chunks of one id, the role first, exactly one finish
 * chunk (the last before [DONE], with an empty delta). With TOOL, the first chunk carries the
 * call's index 0, id, type "function", name and empty arguments (content null), and every later
 * delta only {index: 0, function: {arguments}}; without, content deltas only. */
static void oa_stream(const struct th_resp *r, bool tool, struct oa_stream *s) {
  memset(s, 0, sizeof *s);
  s->content = calloc(1, 1);
  s->args = calloc(1, 1);
  CHECK_MSG(starts_with(hdr(r, "content-type"), "text/event-stream"), "not a stream: %.300s", r->body);
  json_t *data = th_sse_data(r->body, r->body_len);
  size_t n = json_array_size(data);
  CHECK_MSG(n >= 3, "%zu frames: %.300s", n, r->body);
  CHECK_STR(json_string_value(json_array_get(data, n - 1)), "[DONE]");
  const char *id0 = NULL;
  char idbuf[128] = "";
  int finishes = 0;
  for (size_t i = 0; i + 1 < n; i++) {
    const char *txt = json_string_value(json_array_get(data, i));
    json_t *c = json_loads(txt, JSON_ALLOW_NUL, NULL);
    CHECK_MSG(c != NULL, "frame %zu is not JSON: %.200s", i, txt);
    if (!c) continue;
    CHECK_STR(jstr(c, "object"), "chat.completion.chunk");
    if (!id0 && jstr(c, "id")) {
      snprintf(idbuf, sizeof idbuf, "%s", jstr(c, "id"));
      id0 = idbuf;
    }
    CHECK_STR(jstr(c, "id"), id0);
    if (json_array_size(json_object_get(c, "choices")) == 0) {   /* a usage chunk */
      json_decref(c);
      continue;
    }
    const json_t *d = th_jget(c, "choices.0.delta");
    const char *fr = jstr(c, "choices.0.finish_reason");
    const json_t *tc = json_object_get(d, "tool_calls");
    if (i == 0) {
      CHECK_STR(jstr(d, "role"), "assistant");
      if (tool) {
        CHECK_MSG(json_is_null(json_object_get(d, "content")), "first tool chunk: content not null");
        CHECK_EQ_INT(json_array_size(tc), 1);
        const json_t *t0 = json_array_get(tc, 0);
        CHECK_EQ_INT(jint(t0, "index"), 0);
        CHECK_MSG(starts_with(jstr(t0, "id"), "call_"), "tool call id %s", jstr(t0, "id"));
        CHECK_STR(jstr(t0, "type"), "function");
        CHECK_STR(jstr(t0, "function.arguments"), "");
        snprintf(s->tool_id, sizeof s->tool_id, "%s", jstr(t0, "id") ? jstr(t0, "id") : "");
        snprintf(s->tool_name, sizeof s->tool_name, "%s", jstr(t0, "function.name") ? jstr(t0, "function.name") : "");
      } else {
        CHECK_STR(jstr(d, "content"), "");
        CHECK_MSG(tc == NULL, "tool_calls in a text stream");
      }
    } else if (fr) {
      finishes++;
      snprintf(s->finish, sizeof s->finish, "%s", fr);
      CHECK_EQ_INT(json_object_size(d), 0);
    } else {
      CHECK_MSG(json_object_get(d, "role") == NULL, "role again in chunk %zu", i);
      if (tool) {
        CHECK_MSG(json_object_get(d, "content") == NULL, "content in tool chunk %zu", i);
        CHECK_EQ_INT(json_array_size(tc), 1);
        const json_t *t = json_array_get(tc, 0);
        CHECK_EQ_INT(jint(t, "index"), 0);
        CHECK_MSG(!json_object_get(t, "id") && !json_object_get(t, "type") &&
                  !th_jget(t, "function.name"), "id/type/name again in chunk %zu", i);
        const json_t *a = th_jget(t, "function.arguments");
        CHECK_MSG(json_is_string(a) && json_string_length(a) > 0, "empty argument fragment");
        append(&s->args, &s->args_len, a);
        s->n_arg_frags++;
      } else {
        CHECK_MSG(tc == NULL, "tool_calls in a text stream");
        append(&s->content, &s->content_len, json_object_get(d, "content"));
      }
    }
    json_decref(c);
  }
  CHECK_EQ_INT(finishes, 1);
  json_decref(data);
}

/* What an Anthropic stream carried. */
struct an_stream {
  char *text;                /* text_delta texts or input_json_delta partial_json concatenated */
  size_t len;
  char stop[32];
  char tool_id[96], tool_name[128];
  int in_tokens, cache_read;
};

/* Parses and checks an Anthropic event stream: message_start, content_block_start (type tool_use
 * with id, name, input {} when TOOL; else text ""), ping, deltas of the block's type,
 * content_block_stop, message_delta (stop_reason), message_stop; every data's type is its event. */
static void an_stream(const struct th_resp *r, bool tool, struct an_stream *s) {
  memset(s, 0, sizeof *s);
  s->text = calloc(1, 1);
  CHECK_MSG(starts_with(hdr(r, "content-type"), "text/event-stream"), "not a stream: %.300s", r->body);
  json_t *evs = json_array();
  char ev[64] = "";
  const char *p = r->body, *end = r->body + r->body_len;
  while (p && p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    size_t ll = eol ? (size_t)(eol - p) : (size_t)(end - p);
    if (ll > 7 && !strncmp(p, "event: ", 7)) {
      snprintf(ev, sizeof ev, "%.*s", (int)(ll - 7), p + 7);
    } else if (ll > 6 && !strncmp(p, "data: ", 6)) {
      json_t *d = json_loadb(p + 6, ll - 6, JSON_ALLOW_NUL, NULL);
      CHECK_MSG(d != NULL && ev[0], "bad frame: %.*s", (int)ll, p);
      if (d) {
        CHECK_STR(jstr(d, "type"), ev);
        json_array_append_new(evs, d);
      }
      ev[0] = 0;
    } else if (ll) {
      CHECK_MSG(0, "unexpected line: %.*s", (int)ll, p);
    }
    p = eol ? eol + 1 : NULL;
  }
  size_t n = json_array_size(evs);
  CHECK_MSG(n >= 6, "%zu events: %.300s", n, r->body);
  static const char *const head[] = {"message_start", "content_block_start", "ping"};
  static const char *const tail[] = {"content_block_stop", "message_delta", "message_stop"};
  for (size_t i = 0; i < n; i++) {
    const json_t *d = json_array_get(evs, i);
    const char *t = jstr(d, "type");
    if (i < 3) CHECK_STR(t, head[i]);
    else if (i + 3 >= n) CHECK_STR(t, tail[i + 3 - n]);
    else {
      CHECK_STR(t, "content_block_delta");
      CHECK_EQ_INT(jint(d, "index"), 0);
      CHECK_STR(jstr(d, "delta.type"), tool ? "input_json_delta" : "text_delta");
      const json_t *x = th_jget(d, tool ? "delta.partial_json" : "delta.text");
      CHECK_MSG(json_is_string(x) && json_string_length(x) > 0, "empty delta");
      append(&s->text, &s->len, x);
    }
  }
  const json_t *cb = th_jget(json_array_get(evs, 1), "content_block");
  CHECK_EQ_INT(jint(json_array_get(evs, 1), "index"), 0);
  if (tool) {
    CHECK_STR(jstr(cb, "type"), "tool_use");
    CHECK_MSG(starts_with(jstr(cb, "id"), "toolu_"), "tool_use id %s", jstr(cb, "id"));
    const json_t *in = json_object_get(cb, "input");
    CHECK_MSG(json_is_object(in) && json_object_size(in) == 0, "content_block_start input is not {}");
    snprintf(s->tool_id, sizeof s->tool_id, "%s", jstr(cb, "id") ? jstr(cb, "id") : "");
    snprintf(s->tool_name, sizeof s->tool_name, "%s", jstr(cb, "name") ? jstr(cb, "name") : "");
  } else {
    CHECK_STR(jstr(cb, "type"), "text");
    CHECK_STR(jstr(cb, "text"), "");
  }
  const json_t *md = json_array_get(evs, n >= 2 ? n - 2 : 0);
  snprintf(s->stop, sizeof s->stop, "%s", jstr(md, "delta.stop_reason") ? jstr(md, "delta.stop_reason") : "");
  s->in_tokens = (int)jint(md, "usage.input_tokens");
  s->cache_read = (int)jint(md, "usage.cache_read_input_tokens");
  json_decref(evs);
}

/* ------------------------------------------------------------------ count_tokens */

/* The prompt tokens of an Anthropic request with the members EXTRA (JSON members, no braces),
 * from count_tokens. */
static int count_tokens(const char *model, const char *extra) {
  char *b = body("{\"model\":\"%s\",%s}", model, extra);
  struct th_resp r;
  post("/v1/messages/count_tokens", b, &r);
  CHECK_MSG(r.status == 200, "count_tokens: %ld %.300s", r.status, r.body);
  int n = (int)jint(J(&r), "input_tokens");
  th_resp_free(&r);
  free(b);
  return n;
}

/* ------------------------------------------------------------------ JSON Schema replies */

struct schema_case {
  const char *name;
  const char *schema;
};

/* Hand-written schemas: nesting, enums, bounds, patterns, formats, arrays with min/maxItems,
 * $defs/$ref (recursive too), anyOf, draft-07 definitions, patternProperties; each small enough
 * that tiny-qwen2's 512-token context holds the prompt and a reply. */
static const struct schema_case cases[] = {
    {"person",
     "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":10},"
     "\"age\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":120},\"role\":{\"enum\":[\"dev\",\"ops\"]},"
     "\"addr\":{\"type\":\"object\",\"properties\":{\"zip\":{\"type\":\"string\",\"pattern\":\"^[0-9]{5}$\"}},"
     "\"required\":[\"zip\"],\"additionalProperties\":false}},\"required\":[\"name\",\"age\",\"role\",\"addr\"],"
     "\"additionalProperties\":false}"},
    {"formats",
     "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\",\"format\":\"uuid\"},"
     "\"at\":{\"type\":\"string\",\"format\":\"date-time\"},\"day\":{\"type\":\"string\",\"format\":\"date\"},"
     "\"ip\":{\"type\":\"string\",\"format\":\"ipv4\"},\"mail\":{\"type\":\"string\",\"format\":\"email\",\"maxLength\":20}},"
     "\"required\":[\"id\",\"at\",\"day\",\"ip\",\"mail\"],\"additionalProperties\":false}"},
    {"formats2",
     "{\"type\":\"object\",\"properties\":{\"t\":{\"type\":\"string\",\"format\":\"time\"},"
     "\"v6\":{\"type\":\"string\",\"format\":\"ipv6\"},\"u\":{\"type\":\"string\",\"format\":\"uri\",\"maxLength\":24},"
     "\"code\":{\"type\":\"string\",\"pattern\":\"^[A-Z]{3}-[0-9]{2,4}$\"}},\"required\":[\"t\",\"v6\",\"u\",\"code\"],"
     "\"additionalProperties\":false}"},
    {"arrays",
     "{\"type\":\"object\",\"properties\":{\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":4},"
     "\"minItems\":2,\"maxItems\":3},\"xs\":{\"type\":\"array\",\"items\":{\"type\":\"number\",\"minimum\":0,"
     "\"exclusiveMaximum\":1},\"maxItems\":2}},\"required\":[\"tags\",\"xs\"],\"additionalProperties\":false}"},
    {"refs",
     "{\"$defs\":{\"pt\":{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"integer\",\"minimum\":-9,\"maximum\":9},"
     "\"y\":{\"type\":\"integer\"}},\"required\":[\"x\",\"y\"],\"additionalProperties\":false}},\"type\":\"object\","
     "\"properties\":{\"a\":{\"$ref\":\"#/$defs/pt\"},\"b\":{\"$ref\":\"#/$defs/pt\"}},\"required\":[\"a\",\"b\"],"
     "\"additionalProperties\":false}"},
    {"tree",
     "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":9},"
     "\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/node\"},\"maxItems\":2}},\"required\":[\"v\",\"kids\"],"
     "\"additionalProperties\":false}},\"$ref\":\"#/$defs/node\"}"},
    {"anyof",
     "{\"type\":\"object\",\"properties\":{\"shape\":{\"anyOf\":[{\"type\":\"object\",\"properties\":{\"kind\":"
     "{\"const\":\"circle\"},\"r\":{\"type\":\"number\",\"minimum\":0}},\"required\":[\"kind\",\"r\"],"
     "\"additionalProperties\":false},{\"type\":\"object\",\"properties\":{\"kind\":{\"const\":\"rect\"},"
     "\"w\":{\"type\":\"integer\"}},\"required\":[\"kind\",\"w\"],\"additionalProperties\":false}]},"
     "\"note\":{\"type\":[\"string\",\"null\"],\"maxLength\":8}},\"required\":[\"shape\",\"note\"],"
     "\"additionalProperties\":false}"},
    {"toplevel-array",
     "{\"type\":\"array\",\"items\":{\"enum\":[1,\"two\",null,true,{\"k\":[3]}]},\"minItems\":1,\"maxItems\":4}"},
    {"draft7",
     "{\"$schema\":\"http://json-schema.org/draft-07/schema#\",\"definitions\":{\"n\":{\"type\":\"integer\","
     "\"exclusiveMinimum\":-5,\"exclusiveMaximum\":50,\"multipleOf\":3}},\"type\":\"object\",\"properties\":"
     "{\"ok\":{\"type\":\"boolean\"},\"n\":{\"$ref\":\"#/definitions/n\"}},\"required\":[\"ok\",\"n\"],"
     "\"additionalProperties\":false}"},
    {"pattern-props",
     "{\"type\":\"object\",\"properties\":{\"word\":{\"type\":\"string\",\"minLength\":3,\"maxLength\":6}},"
     "\"patternProperties\":{\"^x-[a-z]{1,4}$\":{\"type\":\"integer\"}},\"additionalProperties\":false,"
     "\"required\":[\"word\"],\"minProperties\":2,\"maxProperties\":3}"},
};

static int n_schema_replies, n_schema_models_skipped;
static int n_finished, n_cut;   /* structured replies that ended / were cut by max_tokens */

/* Did a structured reply end (STOP: "stop", "end_turn") rather than run out of max_tokens (CUT:
 * "length", "max_tokens")? Anything else fails. Only an ended reply is a whole JSON text to
 * validate: a small model may write a string until the budget runs out, and then the reply is a
 * prefix of a valid text (main checks that most replies end). */
static bool ended(const char *id, const char *got, const char *stop, const char *cut) {
  bool s = got && !strcmp(got, stop), c = got && !strcmp(got, cut);
  CHECK_MSG(s || c, "%s: finish %s, neither %s nor %s", id, got ? got : "(null)", stop, cut);
  n_finished += s;
  n_cut += c;
  return s;
}

/* One schema on one model, both APIs: temperature 0 plain = streamed = strict false = the
 * other API, prompt tokens = count_tokens; SEEDS seeds at temperature 1 (plain = streamed at
 * each seed); every JSON queued for validation. Returns false when the model's context cannot
 * hold the prompt and a reply (nothing is asked then). */
static bool run_schema(const struct model *md, const char *label, const char *schema) {
  const char *user = "Give me the JSON.";
  char *fmt_an = th_fmt("\"output_config\":{\"format\":{\"type\":\"json_schema\",\"schema\":%s}}", schema);
  char *msgs = th_fmt("\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]", user);
  char *cnt = th_fmt("%s,%s", msgs, fmt_an);
  int n_prompt = count_tokens(md->name, cnt);
  free(cnt);
  int room = md->ctx - n_prompt, mt = room < MAXTOK ? room : MAXTOK;
  if (room < MIN_ROOM) {
    free(fmt_an);
    free(msgs);
    return false;
  }
  char id[256];
  struct th_resp r;
  /* OpenAI, strict, temperature 0 */
  char *rf = th_fmt("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"s\","
                    "\"strict\":true,\"schema\":%s}}", schema);
  char *rf_loose = th_fmt("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"s\","
                          "\"strict\":false,\"schema\":%s}}", schema);
  char *b = body("{\"model\":\"%s\",%s,%s,\"temperature\":0,\"max_tokens\":%d}", md->name, msgs, rf, mt);
  post("/v1/chat/completions", b, &r);
  free(b);
  CHECK_MSG(r.status == 200, "%s/%s: %ld %.300s", md->name, label, r.status, r.body);
  CHECK_MSG(hdr(&r, "x-tiergate-schema-relaxed") == NULL, "relaxed header on a strict reply");
  const json_t *c0j = th_jget(J(&r), "choices.0.message.content");
  size_t c0_len = json_string_length(c0j);
  char *c0 = json_is_string(c0j) ? strndup(json_string_value(c0j), c0_len) : strdup("");
  CHECK_EQ_INT(jint(J(&r), "usage.prompt_tokens"), n_prompt);
  snprintf(id, sizeof id, "%s/%s/openai/t0", md->name, label);
  bool done0 = ended(id, jstr(J(&r), "choices.0.finish_reason"), "stop", "length");
  if (done0) expect_valid(id, schema, c0, c0_len);
  th_resp_free(&r);
  /* strict false: the same constraint (nothing to drop), the same reply, no header */
  b = body("{\"model\":\"%s\",%s,%s,\"temperature\":0,\"max_tokens\":%d}", md->name, msgs, rf_loose, mt);
  post("/v1/chat/completions", b, &r);
  free(b);
  CHECK_MSG(r.status == 200, "%s/%s strict false: %ld %.300s", md->name, label, r.status, r.body);
  CHECK_MSG(hdr(&r, "x-tiergate-schema-relaxed") == NULL, "relaxed header, nothing was dropped");
  CHECK_STR(jstr(J(&r), "choices.0.message.content"), c0);
  th_resp_free(&r);
  /* OpenAI stream */
  b = body("{\"model\":\"%s\",%s,%s,\"temperature\":0,\"max_tokens\":%d,\"stream\":true}", md->name,
           msgs, rf, mt);
  post("/v1/chat/completions", b, &r);
  free(b);
  struct oa_stream os;
  oa_stream(&r, false, &os);
  CHECK_MSG(os.content_len == c0_len && !memcmp(os.content, c0, c0_len),
            "%s/%s: streamed %s != plain %s", md->name, label, os.content, c0);
  CHECK_STR(os.finish, done0 ? "stop" : "length");
  oa_stream_free(&os);
  th_resp_free(&r);
  /* Anthropic plain and stream: the same prompt, so the same JSON */
  b = body("{\"model\":\"%s\",%s,%s,\"temperature\":0,\"max_tokens\":%d}", md->name, msgs, fmt_an, mt);
  post("/v1/messages", b, &r);
  CHECK_MSG(r.status == 200, "%s/%s anthropic: %ld %.300s", md->name, label, r.status, r.body);
  CHECK_STR(jstr(J(&r), "content.0.type"), "text");
  CHECK_STR(jstr(J(&r), "content.0.text"), c0);
  CHECK_STR(jstr(J(&r), "stop_reason"), done0 ? "end_turn" : "max_tokens");
  CHECK_EQ_INT(jint(J(&r), "usage.input_tokens") + jint(J(&r), "usage.cache_read_input_tokens"), n_prompt);
  th_resp_free(&r);
  free(b);
  b = body("{\"model\":\"%s\",%s,%s,\"temperature\":0,\"max_tokens\":%d,\"stream\":true}", md->name,
           msgs, fmt_an, mt);
  post("/v1/messages", b, &r);
  free(b);
  struct an_stream as;
  an_stream(&r, false, &as);
  CHECK_MSG(as.len == c0_len && !memcmp(as.text, c0, c0_len), "%s/%s: anthropic streamed %s != %s",
            md->name, label, as.text, c0);
  CHECK_STR(as.stop, done0 ? "end_turn" : "max_tokens");
  free(as.text);
  th_resp_free(&r);
  n_schema_replies += 5;
  /* temperature 1 at seeds: OpenAI plain = stream at each seed; Anthropic (no seed) too */
  for (int seed = 1; seed <= SEEDS; seed++) {
    b = body("{\"model\":\"%s\",%s,%s,\"temperature\":1,\"seed\":%d,\"max_tokens\":%d}", md->name,
             msgs, seed & 1 ? rf : rf_loose, seed, mt);
    post("/v1/chat/completions", b, &r);
    free(b);
    CHECK_MSG(r.status == 200, "%s/%s seed %d: %ld %.300s", md->name, label, seed, r.status, r.body);
    const json_t *cj = th_jget(J(&r), "choices.0.message.content");
    snprintf(id, sizeof id, "%s/%s/openai/seed%d", md->name, label, seed);
    bool done = ended(id, jstr(J(&r), "choices.0.finish_reason"), "stop", "length");
    if (done) expect_valid(id, schema, json_string_value(cj), json_string_length(cj));
    char *plain = strndup(json_is_string(cj) ? json_string_value(cj) : "", json_string_length(cj));
    size_t plain_len = json_string_length(cj);
    th_resp_free(&r);
    b = body("{\"model\":\"%s\",%s,%s,\"temperature\":1,\"seed\":%d,\"max_tokens\":%d,\"stream\":true}",
             md->name, msgs, rf, seed, mt);
    post("/v1/chat/completions", b, &r);
    free(b);
    oa_stream(&r, false, &os);
    CHECK_MSG(os.content_len == plain_len && !memcmp(os.content, plain, plain_len),
              "%s/%s seed %d: streamed %s != plain %s", md->name, label, seed, os.content, plain);
    CHECK_STR(os.finish, done ? "stop" : "length");
    oa_stream_free(&os);
    th_resp_free(&r);
    free(plain);
    b = body("{\"model\":\"%s\",%s,%s,\"temperature\":1,\"max_tokens\":%d%s}", md->name, msgs, fmt_an,
             mt, seed & 1 ? "" : ",\"stream\":true");
    post("/v1/messages", b, &r);
    free(b);
    CHECK_MSG(r.status == 200, "%s/%s anthropic t1: %ld %.300s", md->name, label, r.status, r.body);
    snprintf(id, sizeof id, "%s/%s/anthropic/t1-%d", md->name, label, seed);
    if (seed & 1) {
      const json_t *t = th_jget(J(&r), "content.0.text");
      if (ended(id, jstr(J(&r), "stop_reason"), "end_turn", "max_tokens"))
        expect_valid(id, schema, json_string_value(t), json_string_length(t));
    } else {
      an_stream(&r, false, &as);
      if (ended(id, as.stop, "end_turn", "max_tokens")) expect_valid(id, schema, as.text, as.len);
      free(as.text);
    }
    th_resp_free(&r);
    n_schema_replies += 3;
  }
  free(c0);
  free(rf);
  free(rf_loose);
  free(fmt_an);
  free(msgs);
  return true;
}

static void test_schemas(void) {
  int n_ran[2] = {0, 0};
  for (size_t k = 0; k < 2; k++)
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
      char label[96];
      snprintf(label, sizeof label, "hand:%s", cases[i].name);
      bool ran = run_schema(&models[k], label, cases[i].schema);
      /* stories (2048 tokens) holds every one; tiny-qwen2 (512, its trained maximum) not the
       * largest prompts (the schema is in the system turn) */
      CHECK_MSG(ran || k == 1, "%s: the hand-written schema %s does not fit the context",
                models[k].name, cases[i].name);
      n_ran[k] += ran;
    }
  CHECK_MSG(2 * n_ran[1] >= (int)(sizeof cases / sizeof cases[0]), "tiny-qwen2 ran only %d hand-written "
            "schemas", n_ran[1]);
}

/* OpenAI json_object: a JSON object, plain = streamed at temperature 0, and at seeds. */
static void test_json_object(void) {
  for (size_t k = 0; k < 2; k++) {
    const struct model *md = &models[k];
    char *c0 = NULL;
    for (int seed = 0; seed <= SEEDS; seed++) {
      for (int stream = 0; stream < 2; stream++) {
        char *b = body("{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"JSON please\"}],"
                       "\"response_format\":{\"type\":\"json_object\"},\"temperature\":%d,\"seed\":%d,"
                       "\"max_tokens\":120%s}", md->name, seed ? 1 : 0, seed, stream ? ",\"stream\":true" : "");
        struct th_resp r;
        post("/v1/chat/completions", b, &r);
        free(b);
        char id[128];
        snprintf(id, sizeof id, "%s/json_object/seed%d/%s", md->name, seed, stream ? "stream" : "plain");
        if (!stream) {
          CHECK_MSG(r.status == 200, "%s: %ld %.300s", id, r.status, r.body);
          CHECK_STR(jstr(J(&r), "choices.0.finish_reason"), "stop");
          const char *c = jstr(J(&r), "choices.0.message.content");
          free(c0);
          c0 = strdup(c ? c : "");
          expect_valid(id, "{\"type\":\"object\"}", c0, strlen(c0));
        } else {
          struct oa_stream os;
          oa_stream(&r, false, &os);
          CHECK_STR(os.finish, "stop");
          CHECK_MSG(c0 && !strcmp(os.content, c0), "%s: %s != %s", id, os.content, c0 ? c0 : "");
          oa_stream_free(&os);
        }
        th_resp_free(&r);
        n_schema_replies++;
      }
    }
    free(c0);
  }
}

/* ------------------------------------------------------------------ real-world schemas */

/* Does `tiergate slm schema check` compile the schema text S (exit 0; 3 refused)? */
static int cli_check(const char *dir, const char *s, char *err, size_t errcap) {
  char *path = th_fmt("%s/schema.json", dir);
  th_write_file(path, s, strlen(s));
  char *cmd = th_fmt("'%s' slm schema check '%s' < /dev/null 2>&1", getenv("TIERGATE_BIN"), path);
  FILE *p = popen(cmd, "r");
  free(cmd);
  free(path);
  if (!p) return -1;
  size_t n = fread(err, 1, errcap - 1, p);
  err[n] = 0;
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_maskbench(const char *dir) {
  size_t len = 0;
  char *all = th_read_file(check_shared_path("data/jsonschema/maskbench-dev.jsonl"), &len);
  CHECK_MSG(all != NULL, "no maskbench-dev.jsonl");
  if (!all) return;
  /* the lines */
  size_t n_lines = 0, cap = 8192;
  char **line = calloc(cap, sizeof *line);
  for (char *p = all, *e; p && *p && n_lines < cap; p = e ? e + 1 : NULL) {
    e = strchr(p, '\n');
    if (e) *e = 0;
    line[n_lines++] = p;
  }
  CHECK_EQ_INT(n_lines, 5842);
  int picked = 0, refused_seen = 0, on_qwen = 0, ran = 0;
  for (size_t start = 0; start < n_lines; start += MB_STEP) {
    for (size_t i = start; i < n_lines && i < start + MB_STEP; i++) {
      json_t *o = json_loads(line[i], 0, NULL);
      char *s = o ? dumps(json_object_get(o, "schema")) : NULL;
      char label[200];
      snprintf(label, sizeof label, "maskbench:%zu:%s", i, jstr(o, "id") ? jstr(o, "id") : "?");
      json_decref(o);
      if (!s || strlen(s) > MB_MAX_BYTES) {
        free(s);
        continue;
      }
      char err[512];
      int st = cli_check(dir, s, err, sizeof err);
      CHECK_MSG(st == 0 || st == 3, "schema check %s: exit %d %s", label, st, err);
      if (st == 3) {
        refused_seen++;
        CHECK_MSG(starts_with(err, "unsupported: "), "%s: %s", label, err);
      }
      if (st != 0) {
        free(s);
        continue;
      }
      picked++;
      for (size_t k = 0; k < 2; k++) {
        if (run_schema(&models[k], label, s)) {
          ran++;
          on_qwen += k == 1;
        } else {
          n_schema_models_skipped++;
        }
      }
      free(s);
      break;
    }
  }
  printf("maskbench: %d schemas picked (%d refused by the engine on the way), %d schema x model "
         "runs (%d on tiny-qwen2; %d skipped: prompt too long for its context)\n", picked,
         refused_seen, ran, on_qwen, n_schema_models_skipped);
  CHECK_EQ_INT(picked, 30);           /* 5842 lines, one per 200 */
  CHECK_MSG(on_qwen >= 10, "only %d maskbench schemas fit tiny-qwen2", on_qwen);
  free(line);
  free(all);
}

/* ------------------------------------------------------------------ tool calls */

struct tool {
  const char *name, *desc, *params;
};
static const struct tool tools[] = {
    {"get_weather", "Weather of a city",
     "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\",\"maxLength\":12},"
     "\"unit\":{\"enum\":[\"c\",\"f\"]}},\"required\":[\"city\",\"unit\"],\"additionalProperties\":false}"},
    {"add", "Add two integers",
     "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\",\"minimum\":-99,\"maximum\":99},"
     "\"b\":{\"type\":\"integer\"}},\"required\":[\"a\",\"b\"],\"additionalProperties\":false}"},
    /* local $refs: with several tools they move under the envelope (rebased) */
    {"span", NULL,
     "{\"$defs\":{\"p\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":9}},\"type\":\"object\","
     "\"properties\":{\"lo\":{\"$ref\":\"#/$defs/p\"},\"hi\":{\"$ref\":\"#/$defs/p\"}},"
     "\"required\":[\"lo\",\"hi\"]}"},
};
#define N_TOOLS 3

static const struct tool *tool_named(const char *name) {
  for (int i = 0; name && i < N_TOOLS; i++)
    if (!strcmp(tools[i].name, name)) return &tools[i];
  return NULL;
}

/* The tools FIRST..FIRST+N as OpenAI's (ANTHROPIC false) or Anthropic's JSON array, malloc'd. */
static char *tools_json(int first, int n, bool anthropic) {
  json_t *a = json_array();
  for (int i = first; i < first + n; i++) {
    json_t *p = json_loads(tools[i].params, JSON_PRESERVE_ORDER, NULL);
    json_t *t;
    if (anthropic) {
      t = json_pack("{s:s,s:o}", "name", tools[i].name, "input_schema", p);
      if (tools[i].desc) json_object_set_new(t, "description", json_string(tools[i].desc));
    } else {
      json_t *fn = json_pack("{s:s,s:o}", "name", tools[i].name, "parameters", p);
      if (tools[i].desc) json_object_set_new(fn, "description", json_string(tools[i].desc));
      t = json_pack("{s:s,s:o}", "type", "function", "function", fn);
    }
    json_array_append_new(a, t);
  }
  char *s = dumps(a);
  json_decref(a);
  return s;
}

static int n_tool_replies;

/* The tool call of an OpenAI reply: checks the shape (content null, one call with id "call_...",
 * type function, finish tool_calls), queues its arguments for validation against the called tool's
 * parameters, and returns the name and arguments (malloc'd). */
static void oa_call(struct th_resp *r, const char *id, char **name, char **args) {
  *name = *args = NULL;
  CHECK_MSG(r->status == 200, "%s: %ld %.300s", id, r->status, r->body);
  json_t *j = J(r);
  CHECK_STR(jstr(j, "choices.0.finish_reason"), "tool_calls");
  CHECK_STR(jstr(j, "choices.0.message.role"), "assistant");
  CHECK_MSG(json_is_null(th_jget(j, "choices.0.message.content")), "%s: content is not null", id);
  const json_t *tc = th_jget(j, "choices.0.message.tool_calls");
  CHECK_EQ_INT(json_array_size(tc), 1);
  const json_t *c = json_array_get(tc, 0);
  CHECK_MSG(starts_with(jstr(c, "id"), "call_"), "%s: call id %s", id, jstr(c, "id"));
  CHECK_STR(jstr(c, "type"), "function");
  const char *nm = jstr(c, "function.name");
  const json_t *a = th_jget(c, "function.arguments");
  CHECK_MSG(json_is_string(a), "%s: arguments is not a string", id);
  const struct tool *t = tool_named(nm);
  CHECK_MSG(t != NULL, "%s: called an unknown tool '%s'", id, nm ? nm : "(null)");
  if (t && json_is_string(a)) expect_valid(id, t->params, json_string_value(a), json_string_length(a));
  *name = strdup(nm ? nm : "");
  *args = strdup(json_is_string(a) ? json_string_value(a) : "");
  n_tool_replies++;
}

/* The tool_use of an Anthropic reply: shape (one tool_use block, id "toolu_...", stop_reason
 * tool_use), its input queued for validation; returns the name and the input as compact JSON. */
static void an_call(struct th_resp *r, const char *id, char **name, char **input) {
  *name = *input = NULL;
  CHECK_MSG(r->status == 200, "%s: %ld %.300s", id, r->status, r->body);
  json_t *j = J(r);
  CHECK_MSG(j != NULL, "%s: the reply is not JSON: %.2000s", id, r->body);
  CHECK_STR(jstr(j, "stop_reason"), "tool_use");
  CHECK_EQ_INT(json_array_size(json_object_get(j, "content")), 1);
  const json_t *b = th_jget(j, "content.0");
  CHECK_STR(jstr(b, "type"), "tool_use");
  CHECK_MSG(starts_with(jstr(b, "id"), "toolu_"), "%s: id %s", id, jstr(b, "id"));
  const char *nm = jstr(b, "name");
  const json_t *in = json_object_get(b, "input");
  CHECK_MSG(json_is_object(in), "%s: input is not an object", id);
  const struct tool *t = tool_named(nm);
  CHECK_MSG(t != NULL, "%s: called an unknown tool '%s'", id, nm ? nm : "(null)");
  /* the input's own text, as the client's JSON parser reads it (the gateway passes the
   * generated arguments through; a dump of the parsed object would fold repeated keys and -0) */
  char *s = NULL;
  const char *ip = strstr(r->body, "\"input\":"), *ie = NULL;
  for (const char *q = ip; q && (q = strstr(q, "}],\"stop_reason\"")); q++) ie = q;
  if (ip && ie && ie > ip) s = strndup(ip + 8, (size_t)(ie - ip - 8));
  CHECK_MSG(s != NULL, "%s: no input in %.300s", id, r->body);
  if (!s) s = strdup("");
  if (t) expect_valid(id, t->params, s, strlen(s));
  *name = strdup(nm ? nm : "");
  *input = s;
  n_tool_replies++;
}

/* One tool-choice setting on one model, both APIs: temperature 0 plain = streamed (name and
 * arguments), OpenAI = Anthropic (the same prompt), the called tool in the allowed set, and
 * SEEDS seeds at temperature 1 (OpenAI plain = stream at a seed). FIRST/N: the tools given;
 * FORCED: the one named in tool_choice (NULL: required / any). */
static bool run_tools(const struct model *md, int first, int n, const char *forced) {
  char *oa_tools = tools_json(first, n, false), *an_tools = tools_json(first, n, true);
  char *oa_choice = forced ? th_fmt("{\"type\":\"function\",\"function\":{\"name\":\"%s\"}}", forced)
                           : strdup("\"required\"");
  char *an_choice = forced ? th_fmt("{\"type\":\"tool\",\"name\":\"%s\"}", forced)
                           : strdup("{\"type\":\"any\"}");
  const char *msgs = "\"messages\":[{\"role\":\"user\",\"content\":\"Call a tool.\"}]";
  char *cnt = th_fmt("%s,\"tools\":%s,\"tool_choice\":%s", msgs, an_tools, an_choice);
  int n_prompt = count_tokens(md->name, cnt);
  free(cnt);
  int room = md->ctx - n_prompt, mt = room < 200 ? room : 200;
  char what[160];
  snprintf(what, sizeof what, "%s/tools%d-%d/%s", md->name, first, first + n - 1, forced ? forced : "any");
  bool ran = room >= MIN_ROOM;
  if (!ran) {   /* tiny-qwen2's 512 tokens hold no three tools' prompt: test_tools counts these */
    printf("%s: skipped, the prompt (%d tokens) leaves no room in %d\n", what, n_prompt, md->ctx);
    goto out;
  }
  char id[256];
  struct th_resp r;
  char *name0 = NULL, *args0 = NULL;
  /* OpenAI plain, temperature 0 */
  char *b = body("{\"model\":\"%s\",%s,\"tools\":%s,\"tool_choice\":%s,\"temperature\":0,\"max_tokens\":%d}",
                 md->name, msgs, oa_tools, oa_choice, mt);
  post("/v1/chat/completions", b, &r);
  free(b);
  snprintf(id, sizeof id, "%s/openai/t0", what);
  oa_call(&r, id, &name0, &args0);
  CHECK_EQ_INT(jint(J(&r), "usage.prompt_tokens"), n_prompt);
  if (forced) CHECK_STR(name0, forced);
  bool in_set = false;
  for (int i = first; name0 && i < first + n; i++) in_set |= !strcmp(tools[i].name, name0);
  CHECK_MSG(in_set, "%s: called '%s', not one of the tools given", what, name0 ? name0 : "");
  th_resp_free(&r);
  /* OpenAI stream */
  b = body("{\"model\":\"%s\",%s,\"tools\":%s,\"tool_choice\":%s,\"temperature\":0,\"max_tokens\":%d,"
           "\"stream\":true}", md->name, msgs, oa_tools, oa_choice, mt);
  post("/v1/chat/completions", b, &r);
  free(b);
  struct oa_stream os;
  oa_stream(&r, true, &os);
  CHECK_STR(os.finish, "tool_calls");
  CHECK_STR(os.tool_name, name0 ? name0 : "");
  CHECK_MSG(args0 && !strcmp(os.args, args0), "%s: streamed arguments %s != plain %s", what, os.args,
            args0 ? args0 : "");
  CHECK_MSG(os.n_arg_frags >= 2, "%s: the arguments came in %d fragment(s), not as generated", what,
            os.n_arg_frags);
  oa_stream_free(&os);
  th_resp_free(&r);
  /* Anthropic plain and stream: the same prompt, the same call */
  b = body("{\"model\":\"%s\",%s,\"tools\":%s,\"tool_choice\":%s,\"temperature\":0,\"max_tokens\":%d}",
           md->name, msgs, an_tools, an_choice, mt);
  post("/v1/messages", b, &r);
  free(b);
  snprintf(id, sizeof id, "%s/anthropic/t0", what);
  char *aname = NULL, *ainput = NULL;
  an_call(&r, id, &aname, &ainput);
  CHECK_STR(aname, name0 ? name0 : "");
  CHECK_STR(ainput, args0 ? args0 : "");   /* compact, keys in generated order: the same text */
  CHECK_EQ_INT(jint(J(&r), "usage.input_tokens") + jint(J(&r), "usage.cache_read_input_tokens"), n_prompt);
  th_resp_free(&r);
  b = body("{\"model\":\"%s\",%s,\"tools\":%s,\"tool_choice\":%s,\"temperature\":0,\"max_tokens\":%d,"
           "\"stream\":true}", md->name, msgs, an_tools, an_choice, mt);
  post("/v1/messages", b, &r);
  free(b);
  struct an_stream as;
  an_stream(&r, true, &as);
  CHECK_STR(as.stop, "tool_use");
  CHECK_STR(as.tool_name, name0 ? name0 : "");
  CHECK_STR(as.text, args0 ? args0 : "");
  free(as.text);
  th_resp_free(&r);
  free(aname);
  free(ainput);
  /* temperature 1 */
  for (int seed = 1; seed <= SEEDS; seed++) {
    char *nm = NULL, *args = NULL;
    b = body("{\"model\":\"%s\",%s,\"tools\":%s,\"tool_choice\":%s,\"temperature\":1,\"seed\":%d,"
             "\"max_tokens\":%d}", md->name, msgs, oa_tools, oa_choice, seed, mt);
    post("/v1/chat/completions", b, &r);
    free(b);
    snprintf(id, sizeof id, "%s/openai/seed%d", what, seed);
    oa_call(&r, id, &nm, &args);
    if (forced) CHECK_STR(nm, forced);
    th_resp_free(&r);
    b = body("{\"model\":\"%s\",%s,\"tools\":%s,\"tool_choice\":%s,\"temperature\":1,\"seed\":%d,"
             "\"max_tokens\":%d,\"stream\":true}", md->name, msgs, oa_tools, oa_choice, seed, mt);
    post("/v1/chat/completions", b, &r);
    free(b);
    oa_stream(&r, true, &os);
    CHECK_STR(os.tool_name, nm ? nm : "");
    CHECK_MSG(args && !strcmp(os.args, args), "%s: streamed %s != plain %s", id, os.args, args ? args : "");
    oa_stream_free(&os);
    th_resp_free(&r);
    free(nm);
    free(args);
    b = body("{\"model\":\"%s\",%s,\"tools\":%s,\"tool_choice\":%s,\"temperature\":1,\"max_tokens\":%d%s}",
             md->name, msgs, an_tools, an_choice, mt, seed & 1 ? "" : ",\"stream\":true");
    post("/v1/messages", b, &r);
    free(b);
    snprintf(id, sizeof id, "%s/anthropic/t1-%d", what, seed);
    if (seed & 1) {
      an_call(&r, id, &nm, &args);
      if (forced) CHECK_STR(nm, forced);
      free(nm);
      free(args);
    } else {
      an_stream(&r, true, &as);
      CHECK_STR(as.stop, "tool_use");
      const struct tool *t = tool_named(as.tool_name);
      CHECK_MSG(t != NULL, "%s: unknown tool %s", id, as.tool_name);
      if (forced) CHECK_STR(as.tool_name, forced);
      if (t) expect_valid(id, t->params, as.text, as.len);
      free(as.text);
      n_tool_replies++;
    }
    th_resp_free(&r);
  }
  free(name0);
  free(args0);
out:
  free(oa_tools);
  free(an_tools);
  free(oa_choice);
  free(an_choice);
  return ran;
}

static void test_tools(void) {
  for (size_t k = 0; k < 2; k++) {
    int ran = 0;
    ran += run_tools(&models[k], 0, 1, NULL);         /* one tool, required / any */
    ran += run_tools(&models[k], 0, 3, NULL);         /* three tools: the envelope, the name first */
    ran += run_tools(&models[k], 0, 3, "span");       /* one named among three ($refs not rebased) */
    ran += run_tools(&models[k], 2, 1, "span");       /* one named, alone */
    /* the long context runs them all; a short one at least those with one tool in the prompt */
    CHECK_MSG(ran >= (models[k].ctx >= 2048 ? 4 : 3), "%s: only %d of 4 tool settings fit",
              models[k].name, ran);
  }
}

/* Integers past 64 bits are valid JSON and a schema may ask for them (minimum 1e20): the
 * Anthropic reply's input is the generated arguments themselves, plain as streamed (a parse in
 * the gateway refused such an integer and answered input {} with stop_reason tool_use). OpenAI
 * carries the arguments as a string: the same text. */
static void test_big_integers(void) {
  const char *params = "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\","
                       "\"minimum\":1e20}},\"required\":[\"n\"],\"additionalProperties\":false}";
  const char *msgs = "\"messages\":[{\"role\":\"user\",\"content\":\"Call a tool.\"}]";
  const struct model *md = &models[0];
  struct th_resp r;
  char *b = body("{\"model\":\"%s\",%s,\"tools\":[{\"name\":\"big\",\"input_schema\":%s}],\"tool_choice\":"
                 "{\"type\":\"tool\",\"name\":\"big\"},\"temperature\":0,\"max_tokens\":60}", md->name, msgs, params);
  post("/v1/messages", b, &r);
  free(b);
  CHECK_MSG(r.status == 200, "big integers: %ld %.300s", r.status, r.body);
  CHECK_STR(jstr(J(&r), "stop_reason"), "tool_use");
  const char *ip = strstr(r.body, "\"input\":"), *ie = strstr(r.body, "}],\"stop_reason\"");
  char *plain = ip && ie && ie > ip ? strndup(ip + 8, (size_t)(ie - ip - 8)) : strdup("");
  expect_valid("stories/big-integers/anthropic", params, plain, strlen(plain));
  CHECK_MSG(strlen(plain) > 22, "big integers: input %s holds no integer past 64 bits", plain);
  th_resp_free(&r);
  b = body("{\"model\":\"%s\",%s,\"tools\":[{\"name\":\"big\",\"input_schema\":%s}],\"tool_choice\":"
           "{\"type\":\"tool\",\"name\":\"big\"},\"temperature\":0,\"max_tokens\":60,\"stream\":true}",
           md->name, msgs, params);
  post("/v1/messages", b, &r);
  free(b);
  struct an_stream as;
  an_stream(&r, true, &as);
  CHECK_STR(as.stop, "tool_use");
  CHECK_STR(as.text, plain);
  free(as.text);
  th_resp_free(&r);
  b = body("{\"model\":\"%s\",%s,\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"big\","
           "\"parameters\":%s}}],\"tool_choice\":\"required\",\"temperature\":0,\"max_tokens\":60}",
           md->name, msgs, params);
  post("/v1/chat/completions", b, &r);
  free(b);
  CHECK_MSG(r.status == 200, "big integers (OpenAI): %ld %.300s", r.status, r.body);
  CHECK_STR(jstr(J(&r), "choices.0.finish_reason"), "tool_calls");
  CHECK_STR(jstr(J(&r), "choices.0.message.tool_calls.0.function.arguments"), plain);
  th_resp_free(&r);
  free(plain);
}

/* ------------------------------------------------------------------ a tool round trip */

/* MSGS rendered with the model's chat template and tokenized as the gateway does: the count. */
static int ref_prompt_tokens(const struct slm_model *m, const struct slm_chat_msg *msgs, size_t n) {
  static char buf[65536];
  static slm_token toks[8192];
  int32_t len = slm_chat_apply(m, msgs, n, true, buf, sizeof buf);
  CHECK_MSG(len > 0 && len < (int32_t)sizeof buf, "chat template: %d", len);
  if (len <= 0 || len >= (int32_t)sizeof buf) return -1;
  return slm_tokenize(m, buf, (size_t)len, toks, 8192, true, true);
}

/* The earlier call and its result are shown to the model: an assistant turn holding the call as
 * {"name":...,"arguments":...} and a tool turn with the result (prompt tokens = the engine's own
 * rendering of exactly those turns); the same conversation in Anthropic's blocks gives the same
 * prompt; and a round trip with the tools still required gets another valid call. */
static void test_round_trip(void) {
  struct slm_chat_msg ref[] = {
      {"user", "What is 2 plus 3?"},
      {"assistant", "{\"name\":\"add\",\"arguments\":{\"a\":2,\"b\":3}}"},
      {"tool", "5"},
  };
  const char *oa_msgs =
      "\"messages\":[{\"role\":\"user\",\"content\":\"What is 2 plus 3?\"},{\"role\":\"assistant\","
      "\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":"
      "\"add\",\"arguments\":\"{\\\"a\\\": 2, \\\"b\\\": 3}\"}}]},{\"role\":\"tool\",\"tool_call_id\":"
      "\"call_1\",\"content\":\"5\"}]";
  const char *an_msgs =
      "\"messages\":[{\"role\":\"user\",\"content\":\"What is 2 plus 3?\"},{\"role\":\"assistant\","
      "\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"add\",\"input\":{\"a\":2,\"b\":3}}]},"
      "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\",\"content\":"
      "[{\"type\":\"text\",\"text\":\"5\"}]}]}]";
  for (size_t k = 0; k < 2; k++) {
    const struct model *md = &models[k];
    int want = ref_prompt_tokens(md->m, ref, 3);
    /* all three tools where they fit with a reply, else "add" alone (tiny-qwen2's 512 tokens) */
    int first = 0, nt = 3;
    char *an_tools = tools_json(first, nt, true);
    char *cnt = th_fmt("%s,\"tools\":%s,\"tool_choice\":{\"type\":\"any\"}", an_msgs, an_tools);
    if (md->ctx - count_tokens(md->name, cnt) < 2 * MIN_ROOM) {
      first = 1;
      nt = 1;
      free(an_tools);
      an_tools = tools_json(first, nt, true);
    }
    free(cnt);
    char *oa_tools = tools_json(first, nt, false);
    struct th_resp r;
    /* a text answer to the tool's result */
    char *b = body("{\"model\":\"%s\",%s,\"temperature\":0,\"max_tokens\":12}", md->name, oa_msgs);
    post("/v1/chat/completions", b, &r);
    free(b);
    CHECK_MSG(r.status == 200, "%s round trip: %ld %.300s", md->name, r.status, r.body);
    CHECK_EQ_INT(jint(J(&r), "usage.prompt_tokens"), want);
    CHECK_MSG(jstr(J(&r), "choices.0.message.content") != NULL, "no text answer");
    char *text = strdup(jstr(J(&r), "choices.0.message.content") ? jstr(J(&r), "choices.0.message.content") : "");
    th_resp_free(&r);
    /* Anthropic: tool_use + tool_result blocks (tools declared, tool_choice none: no format) */
    b = body("{\"model\":\"%s\",%s,\"tools\":%s,\"tool_choice\":{\"type\":\"none\"},\"temperature\":0,"
             "\"max_tokens\":12}", md->name, an_msgs, an_tools);
    post("/v1/messages", b, &r);
    free(b);
    CHECK_MSG(r.status == 200, "%s anthropic round trip: %ld %.300s", md->name, r.status, r.body);
    CHECK_EQ_INT(jint(J(&r), "usage.input_tokens") + jint(J(&r), "usage.cache_read_input_tokens"), want);
    CHECK_STR(jstr(J(&r), "content.0.text"), text);
    th_resp_free(&r);
    free(text);
    /* the round trip with the tools still required: another call, valid */
    char id[128], *nm = NULL, *args = NULL;
    b = body("{\"model\":\"%s\",%s,\"tools\":%s,\"tool_choice\":\"required\",\"temperature\":0,"
             "\"max_tokens\":%d}", md->name, oa_msgs, oa_tools, k ? 40 : 150);
    post("/v1/chat/completions", b, &r);
    free(b);
    snprintf(id, sizeof id, "%s/round-trip/openai", md->name);
    oa_call(&r, id, &nm, &args);
    th_resp_free(&r);
    free(nm);
    free(args);
    b = body("{\"model\":\"%s\",%s,\"tools\":%s,\"tool_choice\":{\"type\":\"any\"},\"temperature\":0,"
             "\"max_tokens\":%d}", md->name, an_msgs, an_tools, k ? 40 : 150);
    post("/v1/messages", b, &r);
    free(b);
    snprintf(id, sizeof id, "%s/round-trip/anthropic", md->name);
    an_call(&r, id, &nm, &args);
    th_resp_free(&r);
    free(nm);
    free(args);
    free(oa_tools);
    free(an_tools);
  }
}

/* ------------------------------------------------------------------ errors */

/* An OpenAI 400: error.type invalid_request_error, PARAM, CODE (NULL: null), the message holding
 * WANT. */
static void oa_400(const char *what, const char *b, const char *param, const char *code, const char *want) {
  struct th_resp r;
  post("/v1/chat/completions", b, &r);
  CHECK_MSG(r.status == 400, "%s: %ld %.300s", what, r.status, r.body);
  json_t *j = J(&r);
  CHECK_STR(jstr(j, "error.type"), "invalid_request_error");
  CHECK_STR(jstr(j, "error.param"), param);
  if (code) CHECK_STR(jstr(j, "error.code"), code);
  else CHECK_MSG(json_is_null(th_jget(j, "error.code")), "%s: code not null", what);
  CHECK_MSG(jstr(j, "error.message") && strstr(jstr(j, "error.message"), want), "%s: no '%s' in %s",
            what, want, r.body);
  th_resp_free(&r);
}

/* An Anthropic 400: {"type":"error","error":{"type":"invalid_request_error","message":WANT...}}. */
static void an_400(const char *what, const char *b, const char *want_prefix) {
  struct th_resp r;
  post("/v1/messages", b, &r);
  CHECK_MSG(r.status == 400, "%s: %ld %.300s", what, r.status, r.body);
  json_t *j = J(&r);
  CHECK_STR(jstr(j, "type"), "error");
  CHECK_STR(jstr(j, "error.type"), "invalid_request_error");
  CHECK_MSG(starts_with(jstr(j, "error.message"), want_prefix), "%s: message %s does not start with %s",
            what, jstr(j, "error.message"), want_prefix);
  CHECK_MSG(jstr(j, "request_id") != NULL, "%s: no request_id", what);
  th_resp_free(&r);
}

#define UNIQ "{\"type\":\"object\",\"properties\":{\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"a\",\"b\",\"c\"]}," \
             "\"maxItems\":3,\"uniqueItems\":true}},\"required\":[\"tags\"],\"additionalProperties\":false}"
#define UNIQ_DROPPED "{\"type\":\"object\",\"properties\":{\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"a\",\"b\",\"c\"]}," \
             "\"maxItems\":3}},\"required\":[\"tags\"],\"additionalProperties\":false}"
#define M_HDR "\"model\":\"stories\",\"max_tokens\":60,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]"

static void test_errors(const char *dir) {
  /* what the engine refuses: uniqueItems, the CLI says so (exit 3) */
  char err[512];
  CHECK_EQ_INT(cli_check(dir, UNIQ, err, sizeof err), 3);
  CHECK_MSG(starts_with(err, "unsupported: uniqueItems at /properties/tags/uniqueItems"), "cli: %s", err);
  const char *want = "The local model cannot follow this schema: uniqueItems at '/properties/tags/uniqueItems'";
  char *b = body("{" M_HDR ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"u\","
                 "\"strict\":true,\"schema\":" UNIQ "}}}");
  oa_400("strict uniqueItems", b, "response_format.json_schema.schema", "unsupported_schema", want);
  free(b);
  b = body("{" M_HDR ",\"output_config\":{\"format\":{\"type\":\"json_schema\",\"schema\":" UNIQ "}}}");
  char *w = th_fmt("output_config.format.schema: %s", want);
  an_400("anthropic uniqueItems", b, w);
  free(w);
  free(b);
  /* strict false: answered, the header names what was dropped; valid without it */
  for (int stream = 0; stream < 2; stream++) {
    b = body("{" M_HDR ",\"temperature\":1,\"seed\":7,\"response_format\":{\"type\":\"json_schema\","
             "\"json_schema\":{\"name\":\"u\",\"strict\":false,\"schema\":" UNIQ "}}%s}",
             stream ? ",\"stream\":true" : "");
    struct th_resp r;
    post("/v1/chat/completions", b, &r);
    free(b);
    CHECK_MSG(r.status == 200, "strict false: %ld %.300s", r.status, r.body);
    CHECK_STR(hdr(&r, "x-tiergate-schema-relaxed"), "uniqueItems");
    char id[64];
    snprintf(id, sizeof id, "relaxed/%s", stream ? "stream" : "plain");
    if (stream) {
      struct oa_stream os;
      oa_stream(&r, false, &os);
      expect_valid(id, UNIQ_DROPPED, os.content, os.content_len);
      oa_stream_free(&os);
    } else {
      const json_t *c = th_jget(J(&r), "choices.0.message.content");
      expect_valid(id, UNIQ_DROPPED, json_string_value(c), json_string_length(c));
    }
    th_resp_free(&r);
  }
  /* a schema that is not an object */
  oa_400("schema not an object", "{" M_HDR ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":"
         "{\"name\":\"x\",\"schema\":[1]}}}", "response_format.json_schema.schema", NULL,
         "expected a JSON Schema object");
  an_400("anthropic schema not an object", "{" M_HDR ",\"output_config\":{\"format\":{\"type\":"
         "\"json_schema\",\"schema\":\"x\"}}}", "output_config.format: expected");
  /* tools with a bad schema */
  oa_400("parameters not an object", "{" M_HDR ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":"
         "\"t\",\"parameters\":5}}],\"tool_choice\":\"required\"}", "tools[0]", NULL,
         "Invalid 'tools[0].function.parameters': expected a JSON Schema object.");
  an_400("input_schema not an object", "{" M_HDR ",\"tools\":[{\"name\":\"t\",\"input_schema\":7}],"
         "\"tool_choice\":{\"type\":\"any\"}}", "tools.0: input_schema: Field required");
  const char *tu = "{\"type\":\"function\",\"function\":{\"name\":\"t\",\"parameters\":" UNIQ "}}";
  const char *tg = "{\"type\":\"function\",\"function\":{\"name\":\"g\",\"parameters\":{\"type\":\"object\"}}}";
  const char *want_t = "uniqueItems at '/properties/tags/uniqueItems' in the parameters of tool 't'";
  b = body("{" M_HDR ",\"tools\":[%s],\"tool_choice\":\"required\"}", tu);
  oa_400("tool with uniqueItems", b, "tools", "unsupported_schema", want_t);
  free(b);
  /* among several: the pointer is into the tool's own parameters, not the envelope */
  b = body("{" M_HDR ",\"tools\":[%s,%s],\"tool_choice\":\"required\"}", tg, tu);
  oa_400("second of two tools with uniqueItems", b, "tools", "unsupported_schema", want_t);
  free(b);
  b = body("{" M_HDR ",\"tools\":[{\"name\":\"g\",\"input_schema\":{\"type\":\"object\"}},{\"name\":\"t\","
           "\"input_schema\":" UNIQ "}],\"tool_choice\":{\"type\":\"any\"}}");
  w = th_fmt("tools: The local model cannot follow this schema: %s", want_t);
  an_400("anthropic tool with uniqueItems", b, w);
  free(w);
  free(b);
  /* tool_choice naming an unknown tool */
  b = body("{" M_HDR ",\"tools\":[%s],\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"nope\"}}}", tg);
  oa_400("unknown tool", b, "tool_choice", NULL, "no tool named 'nope' in 'tools'");
  free(b);
  an_400("anthropic unknown tool", "{" M_HDR ",\"tools\":[{\"name\":\"g\",\"input_schema\":{\"type\":\"object\"}}],"
         "\"tool_choice\":{\"type\":\"tool\",\"name\":\"nope\"}}", "tool_choice: no tool named 'nope' in tools");
  /* tool_choice auto (and tools without tool_choice: auto is the default) */
  b = body("{" M_HDR ",\"tools\":[%s],\"tool_choice\":\"auto\"}", tg);
  oa_400("tool_choice auto", b, "tool_choice", NULL, "local models call tools only when the call is required");
  free(b);
  b = body("{" M_HDR ",\"tools\":[%s]}", tg);
  oa_400("tools without tool_choice", b, "tool_choice", NULL, "local models call tools only when the call is required");
  free(b);
  an_400("anthropic auto", "{" M_HDR ",\"tools\":[{\"name\":\"g\",\"input_schema\":{\"type\":\"object\"}}],"
         "\"tool_choice\":{\"type\":\"auto\"}}", "tool_choice: local models call tools only when the call is required");
  an_400("anthropic tools without tool_choice", "{" M_HDR ",\"tools\":[{\"name\":\"g\",\"input_schema\":"
         "{\"type\":\"object\"}}]}", "tool_choice: local models call tools only when the call is required");
  /* tools and a response format together */
  b = body("{" M_HDR ",\"tools\":[%s],\"tool_choice\":\"required\",\"response_format\":{\"type\":\"json_object\"}}", tg);
  oa_400("tools + response_format", b, "tools", NULL, "either with a tool call or in the response_format");
  free(b);
  an_400("anthropic tools + output_config", "{" M_HDR ",\"tools\":[{\"name\":\"g\",\"input_schema\":"
         "{\"type\":\"object\"}}],\"tool_choice\":{\"type\":\"any\"},\"output_config\":{\"format\":{\"type\":"
         "\"json_schema\",\"schema\":{\"type\":\"object\"}}}}", "tools: a local model answers either with a tool call");
  /* tool_choice none with tools: a text answer, no format */
  b = body("{" M_HDR ",\"tools\":[%s],\"tool_choice\":\"none\",\"temperature\":0,\"max_tokens\":5}", tg);
  struct th_resp r;
  post("/v1/chat/completions", b, &r);
  free(b);
  CHECK_MSG(r.status == 200, "tool_choice none: %ld %.300s", r.status, r.body);
  CHECK_MSG(th_jget(J(&r), "choices.0.message.tool_calls") == NULL, "tool_calls with tool_choice none");
  CHECK(jstr(J(&r), "choices.0.message.content") != NULL);
  th_resp_free(&r);
  /* the log row of a refused schema says bad_request */
  b = body("{" M_HDR ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"u\","
           "\"strict\":true,\"schema\":" UNIQ "}}}");
  post("/v1/chat/completions", b, &r);
  free(b);
  json_t *row = db_row_of(&r);
  CHECK_EQ_INT(row_int(row, "http_status"), 400);
  CHECK_STR(jstr(row, "error_class"), "bad_request");
  json_decref(row);
  th_resp_free(&r);
}

/* ------------------------------------------------------------------ max_tokens too small */

/* A max_tokens the JSON cannot be finished in: a 200 ending with finish "length" (what a text
 * reply does), the text cut where the tokens ran out; never a 500 (which was also a breaker
 * failure: two of them opened the breaker for the model). */
static void test_too_short(void) {
  const char *schema = cases[0].schema;
  struct th_resp r;
  for (int mt = 1; mt <= 6; mt += 5) {
    /* OpenAI json_schema, plain and stream */
    char *b = body("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                   "\"temperature\":0,\"max_tokens\":%d,\"response_format\":{\"type\":\"json_schema\","
                   "\"json_schema\":{\"name\":\"p\",\"strict\":true,\"schema\":%s}}}", mt, schema);
    post("/v1/chat/completions", b, &r);
    free(b);
    CHECK_MSG(r.status == 200, "max_tokens %d: %ld %.300s", mt, r.status, r.body);
    CHECK_STR(jstr(J(&r), "choices.0.finish_reason"), "length");
    CHECK_EQ_INT(jint(J(&r), "usage.completion_tokens"), mt);
    const char *c = jstr(J(&r), "choices.0.message.content");
    CHECK_MSG(c && c[0] == '{' && strlen(c) <= (size_t)mt * 8, "max_tokens %d: content %s", mt, c ? c : "(null)");
    json_t *parsed = c ? json_loads(c, 0, NULL) : NULL;
    CHECK_MSG(parsed == NULL, "a cut reply parsed as JSON: %s", c);
    json_decref(parsed);
    char *plain = strdup(c ? c : "");
    th_resp_free(&r);
    b = body("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":true,"
             "\"temperature\":0,\"max_tokens\":%d,\"response_format\":{\"type\":\"json_schema\","
             "\"json_schema\":{\"name\":\"p\",\"strict\":true,\"schema\":%s}}}", mt, schema);
    post("/v1/chat/completions", b, &r);
    free(b);
    struct oa_stream os;
    oa_stream(&r, false, &os);
    CHECK_STR(os.finish, "length");
    CHECK_STR(os.content, plain);
    oa_stream_free(&os);
    th_resp_free(&r);
    free(plain);
  }
  /* a named tool: the cut arguments and finish length (OpenAI); input {} and max_tokens
   * (Anthropic) */
  char *oa1 = tools_json(1, 1, false), *an1 = tools_json(1, 1, true), *oa3 = tools_json(0, 3, false);
  char *b = body("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":%s,"
                 "\"tool_choice\":\"required\",\"temperature\":0,\"max_tokens\":4}", oa1);
  post("/v1/chat/completions", b, &r);
  free(b);
  CHECK_MSG(r.status == 200, "short tool call: %ld %.300s", r.status, r.body);
  CHECK_STR(jstr(J(&r), "choices.0.finish_reason"), "length");
  CHECK_STR(jstr(J(&r), "choices.0.message.tool_calls.0.function.name"), "add");
  const char *a = jstr(J(&r), "choices.0.message.tool_calls.0.function.arguments");
  CHECK_MSG(starts_with(a, "{"), "cut arguments: %s", a ? a : "(null)");
  printf("max_tokens 4, a named tool (OpenAI): arguments %s, finish length\n", a ? a : "(null)");
  th_resp_free(&r);
  b = body("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":%s,"
           "\"tool_choice\":{\"type\":\"any\"},\"temperature\":0,\"max_tokens\":4}", an1);
  post("/v1/messages", b, &r);
  free(b);
  CHECK_MSG(r.status == 200, "short tool_use: %ld %.300s", r.status, r.body);
  CHECK_STR(jstr(J(&r), "stop_reason"), "max_tokens");
  CHECK_STR(jstr(J(&r), "content.0.type"), "tool_use");
  CHECK_EQ_INT(json_object_size(th_jget(J(&r), "content.0.input")), 0);
  th_resp_free(&r);
  /* three tools, cut before the name is known: no call can be shown, an empty text reply */
  b = body("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":%s,"
           "\"tool_choice\":\"required\",\"temperature\":0,\"max_tokens\":3}", oa3);
  post("/v1/chat/completions", b, &r);
  free(b);
  CHECK_MSG(r.status == 200, "short envelope: %ld %.300s", r.status, r.body);
  CHECK_STR(jstr(J(&r), "choices.0.finish_reason"), "length");
  CHECK_STR(jstr(J(&r), "choices.0.message.content"), "");
  CHECK_MSG(th_jget(J(&r), "choices.0.message.tool_calls") == NULL, "a call without a name");
  th_resp_free(&r);
  free(oa1);
  free(an1);
  free(oa3);
  /* the breaker (failures: 2) is still closed: a normal structured request is answered */
  b = body("{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":0,"
           "\"max_tokens\":100,\"response_format\":{\"type\":\"json_object\"}}");
  post("/v1/chat/completions", b, &r);
  free(b);
  CHECK_MSG(r.status == 200, "after the short replies: %ld %.300s", r.status, r.body);
  th_resp_free(&r);
}

/* ------------------------------------------------------------------ count_tokens with tools */

static void test_count_tools(void) {
  char *an3 = tools_json(0, 3, true);
  const char *msgs = "\"messages\":[{\"role\":\"user\",\"content\":\"Count me.\"}]";
  for (size_t k = 0; k < 2; k++) {
    const struct model *md = &models[k];
    char *x = th_fmt("%s,\"tools\":%s", msgs, an3);
    int n_default = count_tokens(md->name, x);   /* no tool_choice: counted as a required call */
    free(x);
    x = th_fmt("%s,\"tools\":%s,\"tool_choice\":{\"type\":\"any\"}", msgs, an3);
    int n_any = count_tokens(md->name, x);
    free(x);
    x = th_fmt("%s,\"tools\":%s,\"tool_choice\":{\"type\":\"tool\",\"name\":\"add\"}", msgs, an3);
    int n_named = count_tokens(md->name, x);
    free(x);
    x = th_fmt("%s", msgs);
    int n_plain = count_tokens(md->name, x);
    free(x);
    CHECK_EQ_INT(n_default, n_any);
    CHECK_MSG(n_any > n_plain + 50 && n_named > n_plain + 20, "%s: the tools are not counted (%d %d %d)",
              md->name, n_any, n_named, n_plain);
    CHECK_MSG(n_named != n_any, "%s: a named tool counts as all of them", md->name);
    const char *choices[2] = {"{\"type\":\"any\"}", "{\"type\":\"tool\",\"name\":\"add\"}"};
    int want[2] = {n_any, n_named};
    for (int c = 0; c < 2; c++) {
      if (md->ctx - want[c] < 8) continue;
      char *b = body("{\"model\":\"%s\",%s,\"tools\":%s,\"tool_choice\":%s,\"temperature\":0,\"max_tokens\":%d}",
                     md->name, msgs, an3, choices[c], md->ctx - want[c] < 60 ? md->ctx - want[c] : 60);
      struct th_resp r;
      post("/v1/messages", b, &r);
      free(b);
      CHECK_MSG(r.status == 200, "%s count check: %ld %.300s", md->name, r.status, r.body);
      CHECK_EQ_INT(jint(J(&r), "usage.input_tokens") + jint(J(&r), "usage.cache_read_input_tokens"), want[c]);
      th_resp_free(&r);
    }
    printf("count_tokens %s: %d plain, %d with three tools (any), %d with one named\n", md->name,
           n_plain, n_any, n_named);
  }
  free(an3);
}

/* ------------------------------------------------------------------ the gateway */

static char *yaml_of(const char *db) {
  return th_fmt(
      "listen: 127.0.0.1:0\n"
      "database: %s\n"
      "providers:\n"
      "  stories: {kind: local, model_path: '%s', threads: 2, context: %d, slots: 4, queue: 16}\n"
      "  qwen: {kind: local, model_path: '%s', threads: 2, context: %d, slots: 4, queue: 16}\n"
      "models:\n"
      "  stories: {provider: stories}\n"
      "  qwen: {provider: qwen}\n"
      "retry: {max_attempts: 1}\n"
      /* on and quick to open: a client's small max_tokens must not count as a failure */
      "breaker: {failures: 2, error_rate: 0%%, cooldown: 60s}\n"
      "limits: {max_body_bytes: 1MiB, first_byte_timeout: 60s, idle_timeout: 60s, total_timeout: 120s}\n",
      db, check_shared_path(models[0].file), models[0].ctx, check_shared_path(models[1].file), models[1].ctx);
}

static void gateway_done(void) {
  int st = th_gw_stop(&it.gw, SIGTERM, 30000);
  CHECK_MSG(st == 0, "gateway exit status %d (want a clean 0: a drain and, under ASan, no leak)", st);
  CHECK_MSG(it.no_id == 0, "%d response(s) without x-tiergate-request-id", it.no_id);
  /* the harness's readiness probe (GET /healthz) is logged too: it is no request of ours */
  json_t *rows = th_db_query(it.gw.db_path, "SELECT request_id FROM requests WHERE endpoint <> 'GET /healthz'");
  CHECK(rows != NULL);
  int found = 0;
  for (int i = 0; i < it.n_ids; i++) {
    int n = 0;
    size_t k;
    json_t *row;
    json_array_foreach(rows, k, row) if (!strcmp(jstr(row, "request_id"), it.ids[i])) n++;
    CHECK_MSG(n == 1, "request %s has %d log rows", it.ids[i], n);
    found += n == 1;
    free(it.ids[i]);
  }
  CHECK_EQ_INT(json_array_size(rows), it.n_ids);
  printf("gateway: %d requests, %d with exactly one log row, %zu rows in all\n", it.n_ids, found,
         rows ? json_array_size(rows) : 0);
  json_decref(rows);
}

int main(void) {
  (void)itest_start;   /* no mock: local providers only */
  (void)itest_finish;
  memset(&it, 0, sizeof it);
  signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  char err[256] = "";
  struct slm_model_params mp = slm_model_default_params();
  for (int k = 0; k < 2; k++) {
    models[k].m = slm_model_load(check_shared_path(models[k].file), &mp, err, sizeof err);
    CHECK_MSG(models[k].m != NULL, "%s: %s", models[k].file, err);
  }
  if (!models[0].m || !models[1].m || th_gw_prepare(&it.gw)) {
    CHECK_MSG(0, "cannot start the fixture");
    return check_done();
  }
  char *yaml = yaml_of(it.gw.db_path);
  int rc = th_gw_start(&it.gw, yaml, th_gw_test_env());
  free(yaml);
  CHECK_MSG(rc == 0, "the gateway did not start");
  validator_open(it.gw.dir);
  double t0 = th_now_ms();
  if (rc == 0) {
    test_schemas();
    test_json_object();
    test_maskbench(it.gw.dir);
    test_tools();
    test_big_integers();
    test_round_trip();
    test_errors(it.gw.dir);
    test_too_short();
    test_count_tools();
    /* a reply cut by max_tokens is valid as far as it goes but judged by nothing: most must end */
    printf("%d structured replies ended, %d cut by max_tokens\n", n_finished, n_cut);
    CHECK_MSG(n_cut * 5 <= n_finished, "%d replies cut by max_tokens, %d ended: over 1 in 6 judged by "
              "nothing", n_cut, n_finished);
    printf("%d JSON Schema replies (%zu hand-written schemas x 2 models + 30 maskbench schemas + "
           "json_object), %d tool calls, seeds 1..%d at temperature 1; %.1f s\n", n_schema_replies,
           sizeof cases / sizeof cases[0], n_tool_replies, SEEDS, (th_now_ms() - t0) / 1e3);
  }
  gateway_done();
  validator_run();
  if (!check_failures_) th_rmdir(it.gw.dir);
  else fprintf(stderr, "kept %s (config, database, validator input) for a look\n", it.gw.dir);
  for (int k = 0; k < 2; k++) slm_model_free(models[k].m);
  curl_global_cleanup();
  return check_done();
}
