/*
 * xlate_stream.c: the two streaming translators (PROTOCOLS.md §3.5), one upstream SSE event in,
 * the client's frames out at once.
 *
 * Anthropic upstream -> OpenAI client (A2O), per event:
 *   message_start          chunk delta {role:"assistant",content:""}; keep id, input usage
 *   content_block_start    text: (its text, if any); tool_use: tool_calls[k] {id, type, name,
 *                          arguments:""} with k counting tool blocks only; thinking, server
 *                          tools, unknown blocks: ignored (with their deltas)
 *   text_delta             delta {content}
 *   input_json_delta       tool_calls[k] {function:{arguments: partial_json}}
 *   message_delta          remember stop_reason and the cumulative usage
 *   message_stop           chunk delta {} + finish_reason; usage chunk (choices []) if the client
 *                          asked include_usage; data: [DONE]
 *   ping, unknown events   nothing
 *   error                  data: {"error":{...}} (mapped type), then the stream is over
 *
 * OpenAI upstream -> Anthropic client (O2A), per chunk:
 *   first chunk            message_start (content [], usage 0/0: OpenAI tells usage at the end)
 *   delta.content/refusal  a text block (opened at the next index when another block is open),
 *                          text_delta
 *   delta.tool_calls[k]    first fragment: close the open block, tool_use block start {id, name,
 *                          input:{}}; every non-empty arguments fragment: input_json_delta
 *   finish_reason          remember it, close the open block
 *   usage (last chunk)     remember it
 *   data: [DONE]           message_delta {stop_reason, stop_sequence:null} + cumulative usage,
 *                          message_stop
 *   {"error":...}          event: error (mapped type), then the stream is over
 * Every O2A frame carries its `event:` line (the Anthropic SDK ignores frames without one).
 *
 * Frames are written by hand (fixed key order, strings escaped by rt_json_quote), so the output
 * is byte-for-byte predictable: the golden tests compare it exactly.
 */
#include <event2/buffer.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router/json/json.h"
#include "router/xlate/xlate.h"

#define ADD_LIT(b, lit) evbuffer_add((b), (lit), sizeof(lit) - 1)

#define MAX_BLOCKS 4096   /* Anthropic content blocks / OpenAI tool calls tracked per stream */

enum { ST_NEW, ST_STARTED, ST_END, ST_FAILED };
enum { BLK_NONE = 0, BLK_TEXT, BLK_TOOL, BLK_IGNORED };

struct rt_xstream {
  enum rt_xs_dir dir;
  int state;
  char *model;
  char *id;
  char *fallback_id;
  int64_t created;
  bool include_usage;
  bool content;                 /* client content written */
  struct pol_usage usage;
  bool have_usage;
  char err_msg[512];

  /* A2O: per Anthropic block index, its kind and OpenAI tool index */
  unsigned char *kind;
  int *tool;
  size_t n_blocks;
  int n_tools;
  char stop_reason[48];
  bool have_stop;
  char *prefix;                 /* chunk text up to the delta */

  /* O2A */
  int open;                     /* index of the open block, -1 none */
  int open_kind;
  int next_block;
  int *tool_block;              /* OpenAI tool index -> block index (-1 unseen) */
  size_t n_tool_block;
  char finish[48];
  bool have_finish;
};

struct rt_xstream *rt_xs_new(enum rt_xs_dir dir, const struct rt_xs_opts *o) {
  struct rt_xstream *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->dir = dir;
  s->model = strdup(o->model ? o->model : "");
  s->fallback_id = strdup(o->fallback_id ? o->fallback_id : "msg_tiergate");
  if (!s->model || !s->fallback_id) {
    rt_xs_free(s);
    return NULL;
  }
  s->created = o->created;
  s->include_usage = o->include_usage;
  s->open = -1;
  return s;
}

void rt_xs_free(struct rt_xstream *s) {
  if (!s) return;
  free(s->model);
  free(s->id);
  free(s->fallback_id);
  free(s->kind);
  free(s->tool);
  free(s->prefix);
  free(s->tool_block);
  free(s);
}

const struct pol_usage *rt_xs_usage(const struct rt_xstream *s) {
  return s && s->have_usage ? &s->usage : NULL;
}

bool rt_xs_has_content(const struct rt_xstream *s) { return s && s->content; }

const char *rt_xs_error_message(const struct rt_xstream *s) { return s ? s->err_msg : ""; }

static void quote(struct evbuffer *out, const char *s) { rt_json_quote(out, s, strlen(s)); }

static void quote_j(struct evbuffer *out, const json_t *str) {
  rt_json_quote(out, json_string_value(str), json_string_length(str));
}

/* ================================================================== A2O */

static void a2o_chunk_begin(struct rt_xstream *s, struct evbuffer *out) {
  ADD_LIT(out, "data: ");
  evbuffer_add(out, s->prefix, strlen(s->prefix));
}

/* Ends a chunk whose delta was just written. */
static void a2o_chunk_end(struct rt_xstream *s, struct evbuffer *out, const char *finish) {
  if (finish) evbuffer_add_printf(out, ",\"logprobs\":null,\"finish_reason\":\"%s\"}]", finish);
  else ADD_LIT(out, ",\"logprobs\":null,\"finish_reason\":null}]");
  if (s->include_usage) ADD_LIT(out, ",\"usage\":null");
  ADD_LIT(out, "}\n\n");
}

static int a2o_prefix(struct rt_xstream *s) {
  struct evbuffer *b = evbuffer_new();
  if (!b) return -1;
  ADD_LIT(b, "{\"id\":");
  quote(b, s->id);
  evbuffer_add_printf(b, ",\"object\":\"chat.completion.chunk\",\"created\":%lld,\"model\":",
                      (long long)s->created);
  quote(b, s->model);
  ADD_LIT(b, ",\"choices\":[{\"index\":0,\"delta\":");
  size_t n = evbuffer_get_length(b);
  s->prefix = malloc(n + 1);
  if (s->prefix) {
    evbuffer_remove(b, s->prefix, n);
    s->prefix[n] = 0;
  }
  evbuffer_free(b);
  return s->prefix ? 0 : -1;
}

static void a2o_usage_chunk(struct rt_xstream *s, struct evbuffer *out) {
  const struct pol_usage *u = &s->usage;
  ADD_LIT(out, "data: {\"id\":");
  quote(out, s->id);
  evbuffer_add_printf(out, ",\"object\":\"chat.completion.chunk\",\"created\":%lld,\"model\":",
                      (long long)s->created);
  quote(out, s->model);
  evbuffer_add_printf(out,
                      ",\"choices\":[],\"usage\":{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,"
                      "\"total_tokens\":%lld,\"prompt_tokens_details\":{\"cached_tokens\":%lld,"
                      "\"cache_write_tokens\":%lld},\"completion_tokens_details\":"
                      "{\"reasoning_tokens\":%lld}}}\n\n",
                      (long long)u->input_tokens, (long long)u->output_tokens,
                      (long long)(u->input_tokens + u->output_tokens), (long long)u->cached_tokens,
                      (long long)u->cache_write_tokens, (long long)u->reasoning_tokens);
}

static void a2o_finish(struct rt_xstream *s, struct evbuffer *out) {
  a2o_chunk_begin(s, out);
  ADD_LIT(out, "{}");
  a2o_chunk_end(s, out, rt_x_finish_from_stop(s->have_stop ? s->stop_reason : NULL));
  if (s->include_usage && s->have_usage) a2o_usage_chunk(s, out);
  ADD_LIT(out, "data: [DONE]\n\n");
  s->state = ST_END;
}

static void a2o_error_frame(struct rt_xstream *s, struct evbuffer *out, const char *type,
                            const char *code, const char *message) {
  ADD_LIT(out, "data: ");
  rt_xerr_render_openai(out, type, code, NULL, message);
  ADD_LIT(out, "\n\n");
  s->state = ST_FAILED;
}

/* Block slot for Anthropic index IDX (growing), NULL if out of range. */
static bool a2o_slot(struct rt_xstream *s, json_int_t idx) {
  if (idx < 0 || idx >= MAX_BLOCKS) return false;
  if ((size_t)idx >= s->n_blocks) {
    size_t n = s->n_blocks ? s->n_blocks : 8;
    while (n <= (size_t)idx) n *= 2;
    unsigned char *k = realloc(s->kind, n);
    if (!k) return false;
    s->kind = k;
    int *t = realloc(s->tool, n * sizeof *t);
    if (!t) return false;
    s->tool = t;
    memset(s->kind + s->n_blocks, BLK_NONE, n - s->n_blocks);
    s->n_blocks = n;
  }
  return true;
}

static int a2o_event(struct rt_xstream *s, const char *event, const json_t *d,
                     struct evbuffer *out) {
  const char *type = json_string_value(json_object_get(d, "type"));
  if (!type) type = event;
  if (!strcmp(type, "ping")) return RT_XS_MORE;
  if (!strcmp(type, "error")) {
    char *text = json_dumps(d, JSON_COMPACT);
    struct rt_xerror xe;
    rt_xerr_anthropic_to_openai(500, text ? text : "", text ? strlen(text) : 0, &xe);
    free(text);
    snprintf(s->err_msg, sizeof s->err_msg, "%s", xe.message);
    a2o_error_frame(s, out, xe.type, xe.code, xe.message);
    return RT_XS_FAILED;
  }
  if (!strcmp(type, "message_start")) {
    if (s->state != ST_NEW) return RT_XS_BAD;
    const json_t *m = json_object_get(d, "message");
    const char *id = json_string_value(json_object_get(m, "id"));
    s->id = strdup(id ? id : s->fallback_id);
    if (!s->id || a2o_prefix(s)) return RT_XS_BAD;
    const json_t *u = json_object_get(m, "usage");
    if (u && pol_usage_update_anthropic(u, &s->usage) == 0) s->have_usage = true;
    s->state = ST_STARTED;
    a2o_chunk_begin(s, out);
    ADD_LIT(out, "{\"role\":\"assistant\",\"content\":\"\"}");
    a2o_chunk_end(s, out, NULL);
    return RT_XS_MORE;
  }
  if (s->state != ST_STARTED) {
    /* known events before message_start are out of order; unknown ones are ignored */
    if (!strcmp(type, "content_block_start") || !strcmp(type, "content_block_delta") ||
        !strcmp(type, "content_block_stop") || !strcmp(type, "message_delta") ||
        !strcmp(type, "message_stop"))
      return RT_XS_BAD;
    return RT_XS_MORE;
  }
  const json_t *jidx = json_object_get(d, "index");
  if (!strcmp(type, "content_block_start")) {
    const json_t *cb = json_object_get(d, "content_block");
    const char *bt = json_string_value(json_object_get(cb, "type"));
    if (!json_is_integer(jidx) || !bt || !a2o_slot(s, json_integer_value(jidx))) return RT_XS_BAD;
    size_t i = (size_t)json_integer_value(jidx);
    if (!strcmp(bt, "text")) {
      s->kind[i] = BLK_TEXT;
      const json_t *t = json_object_get(cb, "text");
      if (json_is_string(t) && json_string_length(t)) {
        a2o_chunk_begin(s, out);
        ADD_LIT(out, "{\"content\":");
        quote_j(out, t);
        ADD_LIT(out, "}");
        a2o_chunk_end(s, out, NULL);
        s->content = true;
      }
    } else if (!strcmp(bt, "tool_use")) {
      const json_t *id = json_object_get(cb, "id"), *name = json_object_get(cb, "name");
      if (!json_is_string(id) || !json_is_string(name)) return RT_XS_BAD;
      s->kind[i] = BLK_TOOL;
      s->tool[i] = s->n_tools++;
      a2o_chunk_begin(s, out);
      evbuffer_add_printf(out, "{\"tool_calls\":[{\"index\":%d,\"id\":", s->tool[i]);
      quote_j(out, id);
      ADD_LIT(out, ",\"type\":\"function\",\"function\":{\"name\":");
      quote_j(out, name);
      ADD_LIT(out, ",\"arguments\":");
      /* an input given whole in the start (not streamed) goes out as the first arguments */
      const json_t *input = json_object_get(cb, "input");
      char *args = json_object_size(input) ? json_dumps(input, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
      quote(out, args ? args : "");
      free(args);
      ADD_LIT(out, "}}]}");
      a2o_chunk_end(s, out, NULL);
      s->content = true;
    } else {
      s->kind[i] = BLK_IGNORED; /* thinking, redacted_thinking, server tools: no Chat slot */
    }
    return RT_XS_MORE;
  }
  if (!strcmp(type, "content_block_delta")) {
    if (!json_is_integer(jidx)) return RT_XS_BAD;
    json_int_t i = json_integer_value(jidx);
    if (i < 0 || (size_t)i >= s->n_blocks || s->kind[i] == BLK_NONE) return RT_XS_BAD;
    const json_t *delta = json_object_get(d, "delta");
    const char *dt = json_string_value(json_object_get(delta, "type"));
    if (!dt) return RT_XS_BAD;
    if (s->kind[i] == BLK_TEXT && !strcmp(dt, "text_delta")) {
      const json_t *t = json_object_get(delta, "text");
      if (!json_is_string(t)) return RT_XS_BAD;
      if (!json_string_length(t)) return RT_XS_MORE;
      a2o_chunk_begin(s, out);
      ADD_LIT(out, "{\"content\":");
      quote_j(out, t);
      ADD_LIT(out, "}");
      a2o_chunk_end(s, out, NULL);
      s->content = true;
    } else if (s->kind[i] == BLK_TOOL && !strcmp(dt, "input_json_delta")) {
      const json_t *pj = json_object_get(delta, "partial_json");
      if (!json_is_string(pj)) return RT_XS_BAD;
      if (!json_string_length(pj)) return RT_XS_MORE;
      a2o_chunk_begin(s, out);
      evbuffer_add_printf(out, "{\"tool_calls\":[{\"index\":%d,\"function\":{\"arguments\":", s->tool[i]);
      quote_j(out, pj);
      ADD_LIT(out, "}}]}");
      a2o_chunk_end(s, out, NULL);
    }
    /* citations, thinking and signature deltas have no Chat Completions slot */
    return RT_XS_MORE;
  }
  if (!strcmp(type, "content_block_stop")) return RT_XS_MORE;
  if (!strcmp(type, "message_delta")) {
    const char *sr = json_string_value(json_object_get(json_object_get(d, "delta"), "stop_reason"));
    if (sr) {
      snprintf(s->stop_reason, sizeof s->stop_reason, "%s", sr);
      s->have_stop = true;
    }
    const json_t *u = json_object_get(d, "usage");
    if (u && pol_usage_update_anthropic(u, &s->usage) == 0) s->have_usage = true;
    return RT_XS_MORE;
  }
  if (!strcmp(type, "message_stop")) {
    a2o_finish(s, out);
    return RT_XS_END;
  }
  return RT_XS_MORE; /* new event types may appear within a version: ignored */
}

/* ================================================================== O2A */

static void o2a_frame_begin(struct evbuffer *out, const char *type) {
  evbuffer_add_printf(out, "event: %s\ndata: {\"type\":\"%s\"", type, type);
}

static void o2a_start(struct rt_xstream *s, const char *id, struct evbuffer *out) {
  s->id = strdup(id && *id ? id : s->fallback_id);
  o2a_frame_begin(out, "message_start");
  ADD_LIT(out, ",\"message\":{\"id\":");
  quote(out, s->id ? s->id : "");
  ADD_LIT(out, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
  quote(out, s->model);
  ADD_LIT(out, ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":"
                    "{\"input_tokens\":0,\"output_tokens\":0}}}\n\n");
  s->state = ST_STARTED;
}

static void o2a_close(struct rt_xstream *s, struct evbuffer *out) {
  if (s->open < 0) return;
  o2a_frame_begin(out, "content_block_stop");
  evbuffer_add_printf(out, ",\"index\":%d}\n\n", s->open);
  s->open = -1;
  s->open_kind = BLK_NONE;
}

static void o2a_text(struct rt_xstream *s, const json_t *t, struct evbuffer *out) {
  if (s->open_kind != BLK_TEXT) {
    o2a_close(s, out);
    s->open = s->next_block++;
    s->open_kind = BLK_TEXT;
    o2a_frame_begin(out, "content_block_start");
    evbuffer_add_printf(out, ",\"index\":%d,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
                        s->open);
  }
  o2a_frame_begin(out, "content_block_delta");
  evbuffer_add_printf(out, ",\"index\":%d,\"delta\":{\"type\":\"text_delta\",\"text\":", s->open);
  quote_j(out, t);
  ADD_LIT(out, "}}\n\n");
  s->content = true;
}

static int o2a_tool(struct rt_xstream *s, const json_t *tc, size_t pos, struct evbuffer *out) {
  const json_t *jk = json_object_get(tc, "index");
  json_int_t k = json_is_integer(jk) ? json_integer_value(jk) : (json_int_t)pos;
  if (k < 0 || k >= MAX_BLOCKS) return RT_XS_BAD;
  if ((size_t)k >= s->n_tool_block) {
    size_t n = s->n_tool_block ? s->n_tool_block : 4;
    while (n <= (size_t)k) n *= 2;
    int *tb = realloc(s->tool_block, n * sizeof *tb);
    if (!tb) return RT_XS_BAD;
    for (size_t i = s->n_tool_block; i < n; i++) tb[i] = -1;
    s->tool_block = tb;
    s->n_tool_block = n;
  }
  const json_t *fn = json_object_get(tc, "function");
  if (s->tool_block[k] < 0) {
    const json_t *name = json_object_get(fn, "name");
    const json_t *id = json_object_get(tc, "id");
    if (!json_is_string(name)) return RT_XS_BAD; /* a call's first fragment names it */
    o2a_close(s, out);
    s->open = s->next_block++;
    s->open_kind = BLK_TOOL;
    s->tool_block[k] = s->open;
    o2a_frame_begin(out, "content_block_start");
    evbuffer_add_printf(out, ",\"index\":%d,\"content_block\":{\"type\":\"tool_use\",\"id\":", s->open);
    if (json_is_string(id)) {
      quote_j(out, id);
    } else {
      char gen[48];
      snprintf(gen, sizeof gen, "toolu_tg_%lld", (long long)k);
      quote(out, gen);
    }
    ADD_LIT(out, ",\"name\":");
    quote_j(out, name);
    ADD_LIT(out, ",\"input\":{}}}\n\n");
    s->content = true;
  }
  const json_t *args = json_object_get(fn, "arguments");
  if (json_is_string(args) && json_string_length(args)) {
    /* fragments of a call other than the open one (servers that interleave parallel calls) go
     * to their own block's index */
    o2a_frame_begin(out, "content_block_delta");
    evbuffer_add_printf(out, ",\"index\":%d,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":",
                        s->tool_block[k]);
    quote_j(out, args);
    ADD_LIT(out, "}}\n\n");
  }
  return RT_XS_MORE;
}

static void o2a_finish(struct rt_xstream *s, struct evbuffer *out) {
  if (s->state == ST_NEW) o2a_start(s, NULL, out);
  o2a_close(s, out);
  o2a_frame_begin(out, "message_delta");
  evbuffer_add_printf(out, ",\"delta\":{\"stop_reason\":\"%s\",\"stop_sequence\":null},\"usage\":",
                      rt_x_stop_from_finish(s->have_finish ? s->finish : NULL));
  if (s->have_usage) {
    const struct pol_usage *u = &s->usage;
    evbuffer_add_printf(out,
                        "{\"input_tokens\":%lld,\"cache_creation_input_tokens\":%lld,"
                        "\"cache_read_input_tokens\":%lld,\"output_tokens\":%lld",
                        (long long)(u->input_tokens - u->cached_tokens - u->cache_write_tokens),
                        (long long)u->cache_write_tokens, (long long)u->cached_tokens,
                        (long long)u->output_tokens);
    if (u->reasoning_tokens > 0)
      evbuffer_add_printf(out, ",\"output_tokens_details\":{\"thinking_tokens\":%lld}",
                          (long long)u->reasoning_tokens);
    ADD_LIT(out, "}}\n\n");
  } else {
    ADD_LIT(out, "{\"output_tokens\":0}}\n\n");
  }
  o2a_frame_begin(out, "message_stop");
  ADD_LIT(out, "}\n\n");
  s->state = ST_END;
}

static void o2a_error_frame(struct rt_xstream *s, struct evbuffer *out, const char *type,
                            const char *message) {
  ADD_LIT(out, "event: error\ndata: ");
  rt_xerr_render_anthropic(out, type, message, NULL);
  ADD_LIT(out, "\n\n");
  s->state = ST_FAILED;
}

/* An OpenAI error object's type as Anthropic's. */
static const char *o2a_error_type(const json_t *e) {
  const char *t = json_string_value(json_object_get(e, "type"));
  const char *c = json_string_value(json_object_get(e, "code"));
  if ((c && !strcmp(c, "server_is_overloaded")) || (t && !strcmp(t, "service_unavailable_error")))
    return "overloaded_error";
  if ((c && !strcmp(c, "rate_limit_exceeded")) || (t && (!strcmp(t, "requests") || !strcmp(t, "tokens"))))
    return "rate_limit_error";
  if (t && !strcmp(t, "invalid_request_error")) return "invalid_request_error";
  return "api_error";
}

static int o2a_event(struct rt_xstream *s, const json_t *d, struct evbuffer *out) {
  const json_t *e = json_object_get(d, "error");
  if (e && !json_is_null(e)) {
    const char *m = json_string_value(json_object_get(e, "message"));
    if (!m) m = json_string_value(e);
    snprintf(s->err_msg, sizeof s->err_msg, "%s", m ? m : "upstream error");
    o2a_error_frame(s, out, o2a_error_type(e), s->err_msg);
    return RT_XS_FAILED;
  }
  if (s->state == ST_NEW) o2a_start(s, json_string_value(json_object_get(d, "id")), out);
  const json_t *choices = json_object_get(d, "choices");
  size_t ci;
  json_t *c;
  json_array_foreach(choices, ci, c) {
    const json_t *jx = json_object_get(c, "index");
    if (json_is_integer(jx) && json_integer_value(jx) != 0) continue; /* one choice only */
    const json_t *delta = json_object_get(c, "delta");
    const json_t *t = json_object_get(delta, "content");
    if (json_is_string(t) && json_string_length(t)) o2a_text(s, t, out);
    const json_t *rf = json_object_get(delta, "refusal");
    if (json_is_string(rf) && json_string_length(rf)) o2a_text(s, rf, out);
    const json_t *tcs = json_object_get(delta, "tool_calls");
    size_t k;
    json_t *tc;
    json_array_foreach(tcs, k, tc) {
      if (o2a_tool(s, tc, k, out) < 0) return RT_XS_BAD;
    }
    const char *fr = json_string_value(json_object_get(c, "finish_reason"));
    if (fr) {
      snprintf(s->finish, sizeof s->finish, "%s", fr);
      s->have_finish = true;
      o2a_close(s, out);
    }
  }
  const json_t *u = json_object_get(d, "usage");
  struct pol_usage pu;
  if (json_is_object(u) && pol_usage_from_openai(u, &pu) == 0) {
    s->usage = pu;
    s->have_usage = true;
  }
  return RT_XS_MORE;
}

/* An OpenAI chunk reduced to the members the translation reads (choices, usage, error, and id
 * before the first frame). Chunks repeat id/object/created/model/fingerprint around a small
 * delta: decoding only the wanted members' bytes (json.c scanner) instead of the whole chunk
 * makes the translation about twice as cheap. NULL when the chunk is not a JSON object. */
static json_t *o2a_members(const struct rt_xstream *s, const char *data, size_t n) {
  struct rt_json_iter it;
  struct rt_json_span k, v;
  if (rt_json_iter_begin(&it, data, n) < 0) return NULL;
  json_t *d = json_object();
  int rc;
  while ((rc = rt_json_iter_next(&it, &k, &v)) == 1) {
    const char *name = rt_json_key_is(data, k, "choices") ? "choices"
                       : rt_json_key_is(data, k, "usage") ? "usage"
                       : rt_json_key_is(data, k, "error") ? "error"
                       : s->state == ST_NEW && rt_json_key_is(data, k, "id") ? "id"
                                                                            : NULL;
    if (!name || rt_json_is_null(data, v)) continue;
    json_t *x = json_loadb(data + v.off, v.len, JSON_DECODE_ANY, NULL);
    if (!x) {
      rc = -1;
      break;
    }
    json_object_set_new(d, name, x);
  }
  if (rc < 0) {
    json_decref(d);
    return NULL;
  }
  return d;
}

/* ================================================================== common */

int rt_xs_event(struct rt_xstream *s, const char *event, const char *data, size_t n,
                struct evbuffer *out) {
  if (s->state == ST_END) return RT_XS_END;
  if (s->state == ST_FAILED) return RT_XS_FAILED;
  if (s->dir == RT_XS_O2A && n == 6 && !memcmp(data, "[DONE]", 6)) {
    o2a_finish(s, out);
    return RT_XS_END;
  }
  json_t *d = s->dir == RT_XS_A2O ? json_loadb(data, n, 0, NULL) : o2a_members(s, data, n);
  if (!json_is_object(d)) {
    json_decref(d);
    return RT_XS_BAD;
  }
  int rc = s->dir == RT_XS_A2O ? a2o_event(s, event ? event : "", d, out) : o2a_event(s, d, out);
  json_decref(d);
  return rc;
}

int rt_xs_eof(struct rt_xstream *s, struct evbuffer *out) {
  if (s->state == ST_END) return RT_XS_END;
  if (s->state == ST_FAILED) return RT_XS_FAILED;
  /* the answer was complete even if the last frame is missing: finish it honestly */
  if (s->dir == RT_XS_A2O && s->state == ST_STARTED && s->have_stop) {
    a2o_finish(s, out);
    return RT_XS_END;
  }
  if (s->dir == RT_XS_O2A && s->have_finish) {
    o2a_finish(s, out);
    return RT_XS_END;
  }
  rt_xs_fail(s, s->dir == RT_XS_A2O ? "server_error" : "api_error",
             "The upstream stream ended before the answer was complete.", out);
  return RT_XS_FAILED;
}

void rt_xs_fail(struct rt_xstream *s, const char *type, const char *message, struct evbuffer *out) {
  if (s->state == ST_END || s->state == ST_FAILED) return;
  if (s->dir == RT_XS_A2O) a2o_error_frame(s, out, type, NULL, message);
  else o2a_error_frame(s, out, type, message);
}
