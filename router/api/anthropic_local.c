/*
 * anthropic_local.c: the Anthropic surface's side of local answers: Messages and count_tokens
 * requests read into the engine's terms (struct rt_gen) and the engine's output written back as
 * exactly what Anthropic sends: message objects, the SSE event sequence the official SDK expects
 * (message_start, content_block_start, ping, content_block_delta..., content_block_stop,
 * message_delta with the stop reason and usage, message_stop; every frame with its event: line),
 * {"input_tokens": N} for count_tokens, and Anthropic-shaped errors (rt_xerr_render_anthropic, the
 * one renderer of that shape). call/local.c drives these through struct rt_local_api.
 *
 * Usage: a prompt prefix reused from a slot's KV cache is reported as cache_read_input_tokens
 * (and left out of input_tokens), as Anthropic reports its prompt cache.
 */
#include <event2/buffer.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router/internal.h"
#include "router/xlate/xlate.h"

#define ADD_LIT(b, lit) evbuffer_add((b), (lit), sizeof(lit) - 1)
#define MAX_STOPS 64

/* A 400 with the field P (copied: it may be a key of the parsed body, freed before the caller
 * reads it) and the message. */
static int bad(struct rt_xerr *e, const char *p, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(struct rt_xerr *e, const char *p, const char *fmt, ...) {
  e->status = 400;
  snprintf(e->param, sizeof e->param, "%s", p ? p : "");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
  return 400;
}

static bool has_nul(const json_t *s) { return strlen(json_string_value(s)) != json_string_length(s); }

/* Text of a content (a string, or text blocks joined); FIELD names it in messages. With
 * SKIP_TOOLS, tool_use and tool_result blocks are left for the caller (messages); else refused. */
static int text_of_blocks(const json_t *c, const char *field, bool skip_tools, char **out,
                          struct rt_xerr *e);
static int text_of(const json_t *c, const char *field, char **out, struct rt_xerr *e) {
  return text_of_blocks(c, field, false, out, e);
}

static int text_of_blocks(const json_t *c, const char *field, bool skip_tools, char **out,
                          struct rt_xerr *e) {
  char where[80];
  if (json_is_string(c)) {
    if (has_nul(c)) {
      snprintf(where, sizeof where, "%s", field);
      return bad(e, where, "the text contains a NUL character");
    }
    *out = strdup(json_string_value(c));
    return *out ? 0 : 500;
  }
  if (!json_is_array(c)) {
    snprintf(where, sizeof where, "%s", field);
    return bad(e, where, "Input should be a valid string or a list of content blocks");
  }
  size_t total = 0;
  for (size_t k = 0; k < json_array_size(c); k++) {
    const json_t *b = json_array_get(c, k);
    const char *type = json_string_value(json_object_get(b, "type"));
    snprintf(where, sizeof where, "%s.%zu", field, k);
    if (!type) return bad(e, where, "a content block needs a type");
    if (skip_tools && (!strcmp(type, "tool_use") || !strcmp(type, "tool_result"))) continue;
    if (strcmp(type, "text")) {
      const char *what = !strcmp(type, "image") ? "images"
                       : !strcmp(type, "document") ? "documents"
                       : !strcmp(type, "tool_use") || !strcmp(type, "tool_result") ? "tool blocks here"
                       : !strcmp(type, "thinking") || !strcmp(type, "redacted_thinking") ? "thinking blocks"
                       : NULL;
      if (what)
        return bad(e, where, "%s are not supported by local models (send them to a "
                                           "model that accepts them)", what);
      return bad(e, where, "unknown content block type '%.40s'", type);
    }
    const json_t *t = json_object_get(b, "text");
    if (!json_is_string(t)) return bad(e, where, "text: Input should be a valid string");
    if (has_nul(t)) return bad(e, where, "the text contains a NUL character");
    total += json_string_length(t);
  }
  char *s = malloc(total + 1);
  if (!s) return 500;
  size_t o = 0;
  for (size_t k = 0; k < json_array_size(c); k++) {
    const json_t *t = json_object_get(json_array_get(c, k), "text");
    if (!json_is_string(t)) continue;   /* a tool block the caller handles */
    memcpy(s + o, json_string_value(t), json_string_length(t));
    o += json_string_length(t);
  }
  s[o] = 0;
  *out = s;
  return 0;
}

static int push_msg(struct rt_gen *g, size_t *cap, const char *role, char *text) {
  if (g->n_msgs == *cap) {
    size_t nc = *cap ? 2 * *cap : 8;
    struct rt_gen_msg *m = realloc(g->msgs, nc * sizeof *m);
    if (!m) {
      free(text);
      return 500;
    }
    g->msgs = m;
    *cap = nc;
  }
  g->msgs[g->n_msgs] = (struct rt_gen_msg){strdup(role), text};
  if (!g->msgs[g->n_msgs++].role) return 500;
  return 0;
}

static char *dump(const json_t *v) { return rt_json_dumps_exact(v); }

/* One Messages API message as the engine's turns: its text; an assistant's tool_use blocks as the
 * JSON the model answers tool calls with ({"name":...,"arguments":...}); a user's tool_result
 * blocks as "tool" turns before the user's own text. */
static int add_message(struct rt_gen *g, size_t *cap, const char *role, const json_t *content,
                       size_t i, struct rt_xerr *e) {
  char field[48];
  snprintf(field, sizeof field, "messages.%zu.content", i);
  char *text = NULL;
  int st = text_of_blocks(content, field, true, &text, e);
  if (st) return st;
  for (size_t k = 0; json_is_array(content) && k < json_array_size(content); k++) {
    const json_t *b = json_array_get(content, k);
    const char *type = json_string_value(json_object_get(b, "type"));
    char where[80];
    snprintf(where, sizeof where, "%s.%zu", field, k);
    if (!strcmp(type, "tool_use")) {
      const char *name = json_string_value(json_object_get(b, "name"));
      const json_t *input = json_object_get(b, "input");
      if (strcmp(role, "assistant") || !name || !json_is_object(input)) {
        free(text);
        return bad(e, where, strcmp(role, "assistant") ? "tool_use blocks belong to assistant turns"
                                                       : "a tool_use block needs a name and an input object");
      }
      json_t *env = json_pack("{s:s,s:O}", "name", name, "arguments", input);
      char *js = env ? dump(env) : NULL;
      json_decref(env);
      size_t tl = strlen(text), jl = js ? strlen(js) : 0;
      char *t2 = js ? realloc(text, tl + jl + 2) : NULL;
      if (!t2) {
        free(js);
        free(text);
        return 500;
      }
      text = t2;
      if (tl) text[tl++] = '\n';
      memcpy(text + tl, js, jl + 1);
      free(js);
    } else if (!strcmp(type, "tool_result")) {
      if (strcmp(role, "user")) {
        free(text);
        return bad(e, where, "tool_result blocks belong to user turns");
      }
      const json_t *rc = json_object_get(b, "content");
      char *res = NULL;
      if (!rc || json_is_null(rc)) res = strdup("");
      else if ((st = text_of(rc, where, &res, e))) {
        free(text);
        return st;
      }
      if (!res || (st = push_msg(g, cap, "tool", res))) {
        free(text);
        return st ? st : 500;
      }
    }
  }
  /* a user turn made only of tool results has no text of its own */
  if (!*text && !strcmp(role, "user") && json_is_array(content) && json_array_size(content)) {
    free(text);
    return 0;
  }
  return push_msg(g, cap, role, text);
}

/* tools, tool_choice and output_config.format: what the reply must be. */
static int parse_format(const json_t *root, bool count, struct rt_gen *g, struct rt_xerr *e) {
  const json_t *oc = json_object_get(root, "output_config");
  if (oc && !json_is_null(oc)) {
    if (!json_is_object(oc)) return bad(e, "output_config", "Input should be an object");
    const char *kk;
    const json_t *vv;
    json_object_foreach((json_t *)oc, kk, vv) {
      if (strcmp(kk, "format") && !json_is_null(vv))
        return bad(e, "output_config", "%s: not supported by local models", kk);
    }
    const json_t *f = json_object_get(oc, "format");
    if (f && !json_is_null(f)) {
      const char *t = json_string_value(json_object_get(f, "type"));
      const json_t *sch = json_object_get(f, "schema");
      if (!t || strcmp(t, "json_schema") || !(json_is_object(sch) || json_is_boolean(sch)))
        return bad(e, "output_config.format", "expected {\"type\": \"json_schema\", \"schema\": {...}}");
      g->format = RT_GEN_FMT_SCHEMA;
      g->schema_strict = true;   /* Anthropic's structured outputs are strict */
      if (!(g->schema = dump(sch))) return 500;
    }
  }
  const json_t *tools = json_object_get(root, "tools");
  const json_t *tc = json_object_get(root, "tool_choice");
  const char *choice = json_string_value(json_object_get(tc, "type"));
  if (tc && !json_is_null(tc) && !choice) return bad(e, "tool_choice", "Input should be an object with a type");
  if (tools && !json_is_null(tools) && !json_is_array(tools)) return bad(e, "tools", "Input should be a valid list");
  bool have = json_array_size(tools) > 0;
  if (!have || (choice && !strcmp(choice, "none"))) {
    if (choice && !strcmp(choice, "tool") && !have) return bad(e, "tool_choice", "names a tool but tools is empty");
    return 0;
  }
  if (g->format != RT_GEN_FMT_TEXT)
    return bad(e, "tools", "a local model answers either with a tool call or in the output format, not both");
  size_t n = json_array_size(tools);
  g->tools = calloc(n, sizeof *g->tools);
  if (!g->tools) return 500;
  for (size_t i = 0; i < n; i++) {
    const json_t *t = json_array_get(tools, i);
    const char *type = json_string_value(json_object_get(t, "type"));
    const char *name = json_string_value(json_object_get(t, "name"));
    const json_t *sch = json_object_get(t, "input_schema");
    char where[40];
    snprintf(where, sizeof where, "tools.%zu", i);
    if (type && strcmp(type, "custom"))
      return bad(e, where, "server tools (%.40s) are not supported by local models", type);
    if (!name || !*name) return bad(e, where, "name: Field required");
    if (!json_is_object(sch)) return bad(e, where, "input_schema: Field required (a JSON Schema object)");
    for (size_t k = 0; k < g->n_tools; k++)
      if (!strcmp(g->tools[k].name, name)) return bad(e, where, "duplicate tool name '%.64s'", name);
    struct rt_gen_tool *gt = &g->tools[g->n_tools++];
    const char *desc = json_string_value(json_object_get(t, "description"));
    gt->name = strdup(name);
    gt->description = desc ? strdup(desc) : NULL;
    gt->parameters = dump(sch);
    if (!gt->name || !gt->parameters || (desc && !gt->description)) return 500;
  }
  g->format = RT_GEN_FMT_TOOL;
  g->tool_forced = -1;
  if (choice && !strcmp(choice, "tool")) {
    const char *name = json_string_value(json_object_get(tc, "name"));
    for (size_t k = 0; name && k < g->n_tools; k++)
      if (!strcmp(g->tools[k].name, name)) g->tool_forced = (int)k;
    if (g->tool_forced < 0) return bad(e, "tool_choice", "no tool named '%.64s' in tools", name ? name : "");
  } else if ((!choice || strcmp(choice, "any")) && !count) {
    /* auto (the default) lets the model answer in text or call a tool: a constrained local model
     * cannot leave that open, so it says so instead of ignoring the tools (count_tokens counts
     * such a request as if a call were required: the tools' description is in the prompt) */
    return bad(e, "tool_choice", "local models call tools only when the call is required: use "
               "{\"type\": \"any\"} or {\"type\": \"tool\", \"name\": ...} (or {\"type\": "
               "\"none\"} for a text answer)");
  } else if (g->n_tools == 1) {
    g->tool_forced = 0;
  }
  return 0;
}

static const char *const accepted[] = {"model", "messages", "max_tokens", "system",
                                       "stop_sequences", "temperature", "top_p", "top_k", "stream",
                                       "metadata", "service_tier", "tools", "tool_choice",
                                       "output_config", NULL};

static int parse(const char *body, size_t len, bool count, struct rt_gen *g, struct rt_xerr *e) {
  memset(g, 0, sizeof *g);
  g->max_tokens = -1;
  g->temperature = g->top_p = g->min_p = -1;
  memset(e, 0, sizeof *e);
  json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
  if (!json_is_object(root)) {
    json_decref(root);
    return bad(e, NULL, "The request body is not valid JSON.");
  }
  int st = 0;
  const char *k;
  json_t *v;
  json_object_foreach(root, k, v) {
    bool ok = false;
    for (const char *const *a = accepted; *a && !ok; a++) ok = !strcmp(*a, k);
    if (ok) continue;
    if (json_is_null(v)) continue;
    if (!strcmp(k, "thinking") && !strcmp(json_string_value(json_object_get(v, "type")) ?
                                          json_string_value(json_object_get(v, "type")) : "", "disabled"))
      continue;
    if (!strcmp(k, "thinking"))
      st = bad(e, k, "extended thinking is not supported by local models");
    else
      st = bad(e, k, "Extra inputs are not permitted");
    goto out;
  }
  const json_t *msgs = json_object_get(root, "messages");
  const json_t *sys = json_object_get(root, "system");
  size_t nm = json_array_size(msgs), cap = 0;
  if (sys && !json_is_null(sys)) {
    char *t = NULL;
    if ((st = text_of(sys, "system", &t, e))) goto out;
    if ((st = push_msg(g, &cap, "system", t))) goto out;
  }
  for (size_t i = 0; i < nm; i++) {
    const json_t *m = json_array_get(msgs, i);
    const char *role = json_string_value(json_object_get(m, "role"));
    char where[48];
    snprintf(where, sizeof where, "messages.%zu.role", i);
    if (!role || (strcmp(role, "user") && strcmp(role, "assistant"))) {
      st = bad(e, where, "Input should be 'user' or 'assistant'");
      goto out;
    }
    if ((st = add_message(g, &cap, role, json_object_get(m, "content"), i, e))) goto out;
  }
  if ((st = parse_format(root, count, g, e))) goto out;
  const json_t *mt = json_object_get(root, "max_tokens");
  if (!count) {
    if (!json_is_integer(mt) || json_integer_value(mt) < 1 || json_integer_value(mt) > INT32_MAX) {
      st = bad(e, "max_tokens", mt ? "Input should be a valid integer of at least 1"
                                                 : "Field required");
      goto out;
    }
    g->max_tokens = (int32_t)json_integer_value(mt);
  }
  const json_t *x;
  if ((x = json_object_get(root, "temperature")) && !json_is_null(x)) {
    if (!json_is_number(x) || json_number_value(x) < 0 || json_number_value(x) > 1) {
      st = bad(e, "temperature", "Input should be a number between 0 and 1");
      goto out;
    }
    g->temperature = json_number_value(x);
  }
  if ((x = json_object_get(root, "top_p")) && !json_is_null(x)) {
    if (!json_is_number(x) || json_number_value(x) < 0 || json_number_value(x) > 1) {
      st = bad(e, "top_p", "Input should be a number between 0 and 1");
      goto out;
    }
    g->top_p = json_number_value(x);
  }
  if ((x = json_object_get(root, "top_k")) && !json_is_null(x)) {
    if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > (1 << 20)) {
      st = bad(e, "top_k", "Input should be a non-negative integer");
      goto out;
    }
    g->top_k = (int32_t)json_integer_value(x);
  }
  if ((x = json_object_get(root, "stream")) && !json_is_null(x)) {
    if (!json_is_boolean(x)) {
      st = bad(e, "stream", "Input should be a valid boolean");
      goto out;
    }
    g->stream = !count && json_is_true(x);
  }
  g->include_usage = true;   /* Anthropic streams always carry usage */
  if ((x = json_object_get(root, "stop_sequences")) && !json_is_null(x)) {
    if (!json_is_array(x) || json_array_size(x) > MAX_STOPS) {
      st = bad(e, "stop_sequences", "Input should be a list of at most %d strings",
               MAX_STOPS);
      goto out;
    }
    g->stops = calloc(json_array_size(x) + 1, sizeof *g->stops);
    if (!g->stops) {
      st = 500;
      goto out;
    }
    for (size_t i = 0; i < json_array_size(x); i++) {
      const json_t *s = json_array_get(x, i);
      if (!json_is_string(s) || !json_string_length(s) || has_nul(s)) {
        char where[40];
        snprintf(where, sizeof where, "stop_sequences.%zu", i);
        st = bad(e, where, "Input should be a non-empty string");
        goto out;
      }
      if (!(g->stops[g->n_stops++] = strdup(json_string_value(s)))) {
        st = 500;
        goto out;
      }
    }
  }
out:
  json_decref(root);
  if (st == 500) {
    e->status = 500;
    snprintf(e->msg, sizeof e->msg, "out of memory");
  }
  if (st) rt_gen_free(g);
  return st;
}

static int parse_messages(const char *body, size_t len, struct rt_gen *g, struct rt_xerr *e) {
  return parse(body, len, false, g, e);
}

static int parse_count(const char *body, size_t len, struct rt_gen *g, struct rt_xerr *e) {
  return parse(body, len, true, g, e);
}

/* ------------------------------------------------------------------ rendering */

static void event(struct evbuffer *b, const char *name) {
  evbuffer_add_printf(b, "event: %s\ndata: ", name);
}

static void usage(struct evbuffer *b, const struct rt_gen_reply *rp, int32_t output) {
  evbuffer_add_printf(b, "{\"input_tokens\":%d,\"cache_creation_input_tokens\":0,"
                         "\"cache_read_input_tokens\":%d,\"output_tokens\":%d}",
                      rp->prompt_tokens - rp->cached_tokens, rp->cached_tokens, output);
}

static const char *stop_reason(const struct rt_gen_reply *rp) {
  enum rt_gen_finish f = rp->finish;
  return f == RT_GEN_LENGTH ? "max_tokens" : f == RT_GEN_STOP_SEQ ? "stop_sequence"
         : rp->tool_name ? "tool_use" : "end_turn";
}

static void stop_fields(struct evbuffer *b, const struct rt_gen_reply *rp) {
  evbuffer_add_printf(b, "\"stop_reason\":\"%s\",\"stop_sequence\":", stop_reason(rp));
  if (rp->finish == RT_GEN_STOP_SEQ && rp->stop_seq) rt_json_quote(b, rp->stop_seq, strlen(rp->stop_seq));
  else ADD_LIT(b, "null");
}

static void message_head(struct evbuffer *b, const struct rt_gen_reply *rp) {
  ADD_LIT(b, "{\"id\":");
  rt_json_quote(b, rp->id, strlen(rp->id));
  ADD_LIT(b, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
  rt_json_quote(b, rp->model, strlen(rp->model));
}

static void stream_begin(const struct rt_gen *g, const struct rt_gen_reply *rp, struct evbuffer *out) {
  event(out, "message_start");
  ADD_LIT(out, "{\"type\":\"message_start\",\"message\":");
  message_head(out, rp);
  ADD_LIT(out, ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":");
  usage(out, rp, 1);
  ADD_LIT(out, "}}\n\n");
  event(out, "content_block_start");
  if (rp->tool_name) {
    ADD_LIT(out, "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
                 "\"tool_use\",\"id\":");
    rt_json_quote(out, rp->tool_id, strlen(rp->tool_id));
    ADD_LIT(out, ",\"name\":");
    rt_json_quote(out, rp->tool_name, strlen(rp->tool_name));
    ADD_LIT(out, ",\"input\":{}}}\n\n");
  } else {
    ADD_LIT(out, "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\","
                 "\"text\":\"\"}}\n\n");
  }
  event(out, "ping");
  ADD_LIT(out, "{\"type\":\"ping\"}\n\n");
}

static void stream_delta(const struct rt_gen *g, const struct rt_gen_reply *rp, struct evbuffer *out) {
  if (!rp->len) return;
  event(out, "content_block_delta");
  if (rp->tool_name)
    ADD_LIT(out, "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
                 "\"input_json_delta\",\"partial_json\":");
  else
    ADD_LIT(out, "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":");
  rt_json_quote(out, rp->text, rp->len);
  ADD_LIT(out, "}}\n\n");
}

static void stream_end(const struct rt_gen *g, const struct rt_gen_reply *rp, struct evbuffer *out) {
  event(out, "content_block_stop");
  ADD_LIT(out, "{\"type\":\"content_block_stop\",\"index\":0}\n\n");
  event(out, "message_delta");
  ADD_LIT(out, "{\"type\":\"message_delta\",\"delta\":{");
  stop_fields(out, rp);
  ADD_LIT(out, "},\"usage\":");
  usage(out, rp, rp->completion_tokens);
  ADD_LIT(out, "}\n\n");
  event(out, "message_stop");
  ADD_LIT(out, "{\"type\":\"message_stop\"}\n\n");
}

static void whole(const struct rt_gen *g, const struct rt_gen_reply *rp, struct evbuffer *out) {
  message_head(out, rp);
  if (rp->tool_name) {
    /* the input is the arguments' JSON itself, passed through: a complete reply is valid by
     * construction (a parse here refused integers past 64 bits, and their valid input became
     * {}); one cut by max_tokens or a stop string is no whole object and shows {} with its
     * stop_reason, as Anthropic does */
    bool whole_args = rp->finish == RT_GEN_END && rp->len;
    ADD_LIT(out, ",\"content\":[{\"type\":\"tool_use\",\"id\":");
    rt_json_quote(out, rp->tool_id, strlen(rp->tool_id));
    ADD_LIT(out, ",\"name\":");
    rt_json_quote(out, rp->tool_name, strlen(rp->tool_name));
    ADD_LIT(out, ",\"input\":");
    if (whole_args) evbuffer_add(out, rp->text, rp->len);
    else ADD_LIT(out, "{}");
    ADD_LIT(out, "}],");
  } else {
    ADD_LIT(out, ",\"content\":[{\"type\":\"text\",\"text\":");
    rt_json_quote(out, rp->text ? rp->text : "", rp->len);
    ADD_LIT(out, "}],");
  }
  stop_fields(out, rp);
  ADD_LIT(out, ",\"usage\":");
  usage(out, rp, rp->completion_tokens);
  ADD_LIT(out, "}");
}

static void count_whole(const struct rt_gen *g, const struct rt_gen_reply *rp, struct evbuffer *out) {
  evbuffer_add_printf(out, "{\"input_tokens\":%d}", rp->prompt_tokens);
}

static void error_body(int status, const char *type, const char *code, const char *param,
                       const char *message, const char *request_id, struct evbuffer *out) {
  char msg[700];
  /* Anthropic names the field at the start of the message ("max_tokens: Field required") */
  if (param && strncmp(message, param, strlen(param))) snprintf(msg, sizeof msg, "%s: %s", param, message);
  else snprintf(msg, sizeof msg, "%s", message);
  rt_xerr_render_anthropic(out, status == 529 ? "overloaded_error" : rt_anthropic_error_type(status),
                           msg, request_id && *request_id ? request_id : NULL);
}

static void stream_error(const char *message, struct evbuffer *out) {
  event(out, "error");
  rt_xerr_render_anthropic(out, "api_error", message, NULL);
  ADD_LIT(out, "\n\n");
}

const struct rt_local_api rt_anthropic_local_messages = {
    .name = "Anthropic messages",
    .id_prefix = "msg_",
    .tool_id_prefix = "toolu_",
    .busy_status = 529,
    .op = RT_LOCAL_GENERATE,
    .parse = parse_messages,
    .stream_begin = stream_begin,
    .stream_delta = stream_delta,
    .stream_end = stream_end,
    .whole = whole,
    .error = error_body,
    .id_header = "request-id",
    .stream_error = stream_error,
};

const struct rt_local_api rt_anthropic_local_count = {
    .name = "Anthropic count_tokens",
    .id_prefix = "msg_",
    .busy_status = 529,
    .op = RT_LOCAL_COUNT,
    .parse = parse_count,
    .whole = count_whole,
    .error = error_body,
    .id_header = "request-id",
};
