/*
 * anthropic.c: the Anthropic surface: POST /v1/messages (plain and SSE), POST
 * /v1/messages/count_tokens, GET /v1/models[/{id}] in Anthropic's shape (asked with an
 * anthropic-version header), and Anthropic's error shape for every failure on these paths:
 * {"type":"error","error":{"type","message"},"request_id"} with a `request-id` header.
 *
 * Clients: both auth styles are accepted (x-api-key, and Authorization: Bearer as SDK 1.x sends
 * it); the gateway has no client keys yet, so neither is checked, and neither is ever forwarded.
 * Both API versions: anthropic-version 2023-06-01 (also assumed when the header is absent, for
 * curl) and 2026-10-21, on which temperature/top_p/top_k, document blocks in assistant turns and
 * citations on user text are refused with a 400, as Anthropic does.
 *
 * Upstreams: an Anthropic provider gets the client's body byte for byte with the model mapped
 * (and sampling parameters removed when the provider speaks 2026-10-21), the provider's
 * x-api-key and anthropic-version, and the client's anthropic-beta; its reply comes back byte
 * for byte apart from the model name, each SSE event re-framed with its `event:` line. An
 * OpenAI-compatible provider is reached through translation (xlate_call.c).
 *
 * count_tokens: forwarded to the provider when the model is served by Anthropic; otherwise
 * estimated here (rt_anthropic_estimate_tokens, README "count_tokens"), said so in the
 * `x-tiergate-token-count: estimate` header.
 */
#include <event2/buffer.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "router/internal.h"
#include "router/xlate/xlate.h"


#define ADD_LIT(b, lit) evbuffer_add((b), (lit), sizeof(lit) - 1)

/* ------------------------------------------------------------------ errors */

static bool has_pass(const struct rt_req *r, const char *name) {
  for (size_t i = 0; i < r->n_pass; i++)
    if (!strcasecmp(r->pass[i].name, name)) return true;
  return false;
}

/* The one error builder of this surface (rt_req_fail ends here). TYPE and CODE come from the
 * OpenAI-minded call sites; Anthropic's type follows from the status. */
static void anthropic_error(struct rt_req *r, int status, const char *type, const char *code,
                            const char *param, const char *message) {
  (void)code;
  const char *atype = rt_anthropic_error_type(status);
  if (status == 408) atype = "timeout_error";
  if (type && !strcmp(type, "overloaded_error")) atype = type;
  struct evbuffer *b = evbuffer_new();
  if (!b) {
    rt_resp_full(r, 500, "application/json", "{}", 2, NULL, 0);
    return;
  }
  char msg[600];
  /* Anthropic names the field at the start of the message ("max_tokens: Field required") */
  size_t pl = param ? strlen(param) : 0;
  if (pl && strncmp(message, param, pl)) snprintf(msg, sizeof msg, "%s: %s", param, message);
  else snprintf(msg, sizeof msg, "%s", message);
  rt_xerr_render_anthropic(b, atype, msg, r->id);
  struct rt_kv extra[1] = {{"request-id", r->id}};
  size_t n = evbuffer_get_length(b);
  rt_resp_full(r, status, "application/json", evbuffer_pullup(b, -1), n, extra,
               has_pass(r, "request-id") ? 0 : 1);
  evbuffer_free(b);
}

/* Sends SSE bytes; the first ones start the reply (status and headers): until a byte was
 * relayed, a stalled or broken attempt can still be retried or replaced by a fallback. */
static void sse_write(struct rt_req *r, const void *p, size_t n) {
  if (!r->resp_started) {
    static const struct rt_kv extra[] = {{"cache-control", "no-cache"}};
    rt_resp_start(r, r->up_status ? r->up_status : 200, "text/event-stream; charset=utf-8", -1, extra, 1);
  }
  rt_resp_body(r, p, n);
}

/* A mid-stream error event. */
static void stream_error_event(struct rt_req *r, const char *type, const char *message) {
  struct evbuffer *b = evbuffer_new();
  if (!b) return;
  if (r->xs) {
    rt_xs_fail(r->xs, type, message, b); /* a translated stream: its state ends too */
  } else {
    ADD_LIT(b, "event: error\ndata: ");
    rt_xerr_render_anthropic(b, type, message, NULL);
    ADD_LIT(b, "\n\n");
  }
  size_t n = evbuffer_get_length(b);
  sse_write(r, evbuffer_pullup(b, -1), n);
  evbuffer_free(b);
}

/* The gateway cuts a started stream (shutdown deadline): an error event, unless it is over. */
static void anthropic_stream_error(struct rt_req *r, const char *code, const char *message) {
  (void)code;
  if (!r->sse_mode || r->finished || r->done_sent) return;
  stream_error_event(r, "api_error", message);
  r->done_sent = true;
}

const struct rt_surface rt_anthropic_surface = {"anthropic", anthropic_error, anthropic_stream_error};

/* ------------------------------------------------------------------ validation */

static int bad(const char **param, const char *p, char *msg, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int bad(const char **param, const char *p, char *msg, size_t cap, const char *fmt, ...) {
  *param = p;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, cap, fmt, ap);
  va_end(ap);
  return 400;
}

/* Blocks of a message's content. ROLE decides what a strict (2026-10-21) client may send. */
static int check_blocks(const json_t *content, size_t mi, const char *role, bool strict,
                        const char **param, char *msg, size_t cap) {
  size_t i;
  json_t *b;
  json_array_foreach(content, i, b) {
    const char *type = json_string_value(json_object_get(b, "type"));
    if (!json_is_object(b) || !type)
      return bad(param, "messages", msg, cap,
                 "messages.%zu.content.%zu: expected a content block object with a type", mi, i);
    if (!strcmp(type, "text") && !json_is_string(json_object_get(b, "text")))
      return bad(param, "messages", msg, cap, "messages.%zu.content.%zu.text: Field required", mi, i);
    if (strict && !strcmp(role, "assistant") && !strcmp(type, "document"))
      return bad(param, "messages", msg, cap,
                 "messages.%zu.content.%zu: document blocks are not allowed in assistant messages "
                 "with anthropic-version 2026-10-21", mi, i);
    const json_t *cit = json_object_get(b, "citations");
    if (strict && !strcmp(role, "user") && !strcmp(type, "text") && json_array_size(cit) > 0)
      return bad(param, "messages", msg, cap,
                 "messages.%zu.content.%zu.citations: not allowed on user text blocks with "
                 "anthropic-version 2026-10-21", mi, i);
  }
  return 0;
}

int rt_anthropic_validate(const char *body, size_t len, bool count, bool strict,
                          struct rt_chat_info *info, const char **param, char *msg, size_t cap) {
  memset(info, 0, sizeof *info);
  *param = NULL;
  if (len == 0) return bad(param, NULL, msg, cap, "The request body is empty: expected a JSON object.");
  json_error_t je;
  json_t *root = json_loadb(body, len, JSON_DECODE_ANY, &je);
  if (!root)
    return bad(param, NULL, msg, cap, "The request body is not valid JSON: %s (line %d, column %d).",
               je.text, je.line, je.column);
  int st = 400;
  if (!json_is_object(root)) {
    bad(param, NULL, msg, cap, "The request body must be a JSON object.");
    goto out;
  }
  static const char *const unique[] = {"model", "messages", "stream", "max_tokens", "system"};
  int seen[5] = {0};
  struct rt_json_iter it;
  struct rt_json_span k, v;
  int rc;
  rt_json_iter_begin(&it, body, len);
  while ((rc = rt_json_iter_next(&it, &k, &v)) == 1) {
    for (int i = 0; i < 5; i++) {
      if (rt_json_key_is(body, k, unique[i]) && ++seen[i] > 1) {
        bad(param, unique[i], msg, cap, "Duplicate key '%s' in the request body.", unique[i]);
        goto out;
      }
    }
  }
  if (rc < 0) {
    bad(param, NULL, msg, cap, "The request body is not valid JSON.");
    goto out;
  }
  const json_t *model = json_object_get(root, "model");
  if (!model || json_is_null(model)) {
    bad(param, "model", msg, cap, "Field required");
    goto out;
  }
  if (!json_is_string(model) || json_string_length(model) == 0 ||
      strlen(json_string_value(model)) != json_string_length(model)) {
    bad(param, "model", msg, cap, "Input should be a non-empty string");
    goto out;
  }
  const json_t *mt = json_object_get(root, "max_tokens");
  if (!count && (!mt || json_is_null(mt))) {
    bad(param, "max_tokens", msg, cap, "Field required");
    goto out;
  }
  if (mt && !count && (!json_is_integer(mt) || json_integer_value(mt) < 0)) {
    bad(param, "max_tokens", msg, cap, "Input should be a non-negative integer");
    goto out;
  }
  const json_t *msgs = json_object_get(root, "messages");
  if (!msgs) {
    bad(param, "messages", msg, cap, "Field required");
    goto out;
  }
  if (!json_is_array(msgs)) {
    bad(param, "messages", msg, cap, "Input should be a valid list");
    goto out;
  }
  if (json_array_size(msgs) == 0) {
    bad(param, "messages", msg, cap, "at least one message is required");
    goto out;
  }
  size_t i;
  json_t *m;
  json_array_foreach(msgs, i, m) {
    const char *role = json_string_value(json_object_get(m, "role"));
    const json_t *content = json_object_get(m, "content");
    if (!json_is_object(m)) {
      bad(param, "messages", msg, cap, "messages.%zu: Input should be an object", i);
      goto out;
    }
    if (!role || (strcmp(role, "user") && strcmp(role, "assistant") && strcmp(role, "system"))) {
      bad(param, "messages", msg, cap, "messages.%zu.role: Input should be 'user', 'assistant' or 'system'", i);
      goto out;
    }
    if (!json_is_string(content) && !json_is_array(content)) {
      bad(param, "messages", msg, cap, "messages.%zu.content: Input should be a string or a list of "
                                       "content blocks", i);
      goto out;
    }
    if (json_is_array(content) && check_blocks(content, i, role, strict, param, msg, cap)) goto out;
  }
  const json_t *sys = json_object_get(root, "system");
  if (sys && !json_is_null(sys)) {
    bool ok = json_is_string(sys) || json_is_array(sys);
    json_t *b;
    json_array_foreach(sys, i, b) if (!json_is_string(json_object_get(b, "text"))) ok = false;
    if (!ok) {
      bad(param, "system", msg, cap, "Input should be a string or a list of text blocks");
      goto out;
    }
  }
  const json_t *stream = json_object_get(root, "stream");
  if (stream && !json_is_boolean(stream) && !json_is_null(stream)) {
    bad(param, "stream", msg, cap, "Input should be a valid boolean");
    goto out;
  }
  static const char *const sampling[] = {"temperature", "top_p", "top_k"};
  for (int s = 0; s < 3; s++) {
    const json_t *x = json_object_get(root, sampling[s]);
    if (!x) continue;
    if (strict) {
      /* what the API itself answers on 2026-10-21, even for the default value */
      bad(param, sampling[s], msg, cap, "Extra inputs are not permitted (anthropic-version "
                                        "2026-10-21 removed %s)", sampling[s]);
      goto out;
    }
    if (!json_is_number(x) && !json_is_null(x)) {
      bad(param, sampling[s], msg, cap, "Input should be a valid number");
      goto out;
    }
  }
  const json_t *stop = json_object_get(root, "stop_sequences");
  if (stop && !json_is_null(stop)) {
    bool ok = json_is_array(stop);
    json_t *x;
    json_array_foreach(stop, i, x) if (!json_is_string(x)) ok = false;
    if (!ok) {
      bad(param, "stop_sequences", msg, cap, "Input should be a list of strings");
      goto out;
    }
  }
  const json_t *tools = json_object_get(root, "tools");
  if (tools && !json_is_null(tools)) {
    bool ok = json_is_array(tools);
    json_t *x;
    json_array_foreach(tools, i, x) if (!json_is_object(x) || !json_is_string(json_object_get(x, "name"))) ok = false;
    if (!ok) {
      bad(param, "tools", msg, cap, "Input should be a list of tools, each with a name");
      goto out;
    }
  }
  const json_t *tc = json_object_get(root, "tool_choice");
  if (tc && !json_is_null(tc) && !json_is_string(json_object_get(tc, "type"))) {
    bad(param, "tool_choice", msg, cap, "Input should be an object with a type");
    goto out;
  }
  const json_t *md = json_object_get(root, "metadata");
  if (md && !json_is_null(md) && !json_is_object(md)) {
    bad(param, "metadata", msg, cap, "Input should be an object");
    goto out;
  }
  info->stream = json_is_true(stream);
  info->model_name = strdup(json_string_value(model));
  if (!info->model_name) {
    st = 500;
    snprintf(msg, cap, "out of memory");
    goto out;
  }
  st = 0;
out:
  json_decref(root);
  return st;
}

/* ------------------------------------------------------------------ upstream bodies */

char *rt_anthropic_upstream_body(const char *body, size_t len, const char *upstream_model,
                                 bool drop_sampling, size_t *out_len) {
  if (!drop_sampling) return rt_openai_upstream_body(body, len, upstream_model, false, out_len);
  /* members kept verbatim (key and value bytes), the sampling ones left out; only the
   * whitespace between members changes */
  struct rt_json_iter it;
  if (rt_json_iter_begin(&it, body, len) < 0) return NULL;
  struct evbuffer *b = evbuffer_new();
  if (!b) return NULL;
  struct rt_json_span k, v;
  int rc, n = 0;
  ADD_LIT(b, "{");
  while ((rc = rt_json_iter_next(&it, &k, &v)) == 1) {
    if (rt_json_key_is(body, k, "temperature") || rt_json_key_is(body, k, "top_p") ||
        rt_json_key_is(body, k, "top_k"))
      continue;
    if (n++) ADD_LIT(b, ",");
    evbuffer_add(b, body + k.off, k.len);
    ADD_LIT(b, ":");
    if (upstream_model && rt_json_key_is(body, k, "model")) rt_json_quote(b, upstream_model, strlen(upstream_model));
    else evbuffer_add(b, body + v.off, v.len);
  }
  ADD_LIT(b, "}");
  char *out = NULL;
  if (rc == 0) {
    *out_len = evbuffer_get_length(b);
    out = malloc(*out_len + 1);
    if (out) {
      evbuffer_remove(b, out, *out_len);
      out[*out_len] = 0;
    }
  }
  evbuffer_free(b);
  return out;
}

/* ------------------------------------------------------------------ count_tokens estimate */

/* Bytes of text in an Anthropic content value, images and documents counted apart. */
static void count_content(const json_t *c, int64_t *text_bytes, int64_t *images) {
  if (json_is_string(c)) {
    *text_bytes += (int64_t)json_string_length(c);
    return;
  }
  size_t i;
  json_t *b;
  json_array_foreach(c, i, b) {
    const char *type = json_string_value(json_object_get(b, "type"));
    if (!type) continue;
    if (!strcmp(type, "text")) {
      *text_bytes += (int64_t)json_string_length(json_object_get(b, "text"));
    } else if (!strcmp(type, "image")) {
      (*images)++;
    } else if (!strcmp(type, "document")) {
      const json_t *src = json_object_get(b, "source");
      const char *st = json_string_value(json_object_get(src, "type"));
      size_t dl = json_string_length(json_object_get(src, "data"));
      /* text documents count their text; base64 (PDF) its decoded size */
      *text_bytes += (int64_t)(st && !strcmp(st, "base64") ? dl * 3 / 4 : dl);
    } else if (!strcmp(type, "tool_result")) {
      count_content(json_object_get(b, "content"), text_bytes, images);
    } else {
      /* tool_use and anything else: its JSON */
      char *s = json_dumps(b, JSON_COMPACT);
      if (s) *text_bytes += (int64_t)strlen(s);
      free(s);
    }
  }
}

int64_t rt_anthropic_estimate_tokens(const char *body, size_t len) {
  json_t *root = json_loadb(body, len, 0, NULL);
  if (!json_is_object(root)) {
    json_decref(root);
    return -1;
  }
  int64_t text = 0, images = 0, overhead = 0;
  const json_t *sys = json_object_get(root, "system");
  if (sys && !json_is_null(sys)) {
    count_content(sys, &text, &images);
    overhead += 3;
  }
  size_t i;
  json_t *m;
  json_array_foreach(json_object_get(root, "messages"), i, m) {
    count_content(json_object_get(m, "content"), &text, &images);
    overhead += 3; /* role and turn markers */
  }
  json_t *t;
  json_array_foreach(json_object_get(root, "tools"), i, t) {
    char *s = json_dumps(t, JSON_COMPACT);
    if (s) text += (int64_t)strlen(s);
    free(s);
    overhead += 10;
  }
  json_decref(root);
  /* ~4 bytes of UTF-8 per token (the usual rule of thumb for English text with BPE tokenizers);
   * an image counts 1600 tokens, the most one image costs Claude (about 1.15 megapixels) */
  return (text + 3) / 4 + images * 1600 + overhead;
}

/* ------------------------------------------------------------------ passthrough to Anthropic */

/* The public name to show in replies, or NULL when it equals the upstream's (no rewrite). */
static char *pass_build(struct rt_req *r, const char *upstream_model, size_t *len) {
  const struct pol_provider *p = rt_req_provider(r);
  const char *map = upstream_model && strcmp(upstream_model, r->model_name) ? upstream_model : NULL;
  const char *beta = rt_http_header(r->head, "anthropic-beta");
  free(r->up_extra_header);
  r->up_extra_header = NULL;
  if (beta && *beta && strlen(beta) < 1024 && !strpbrk(beta, "\r\n")) {
    size_t n = strlen(beta) + 20;
    r->up_extra_header = malloc(n);
    if (r->up_extra_header) snprintf(r->up_extra_header, n, "anthropic-beta: %s", beta);
  }
  return rt_anthropic_upstream_body(r->body, r->body_len, map,
                                    p && rt_anthropic_version_strict(p->anthropic_version), len);
}

static bool passed_header(const char *name) {
  return !strcasecmp(name, "request-id") || !strcasecmp(name, "retry-after") ||
         !strcasecmp(name, "x-tiergate-schema-relaxed") ||
         !strcasecmp(name, "retry-after-ms") || !strcasecmp(name, "x-should-retry") ||
         !strncasecmp(name, "anthropic-ratelimit-", 20);
}

static void pass_headers(struct rt_req *r, int status, const struct up_header *h, size_t n) {
  struct up_header keep[RT_MAX_PASS_HEADERS];
  size_t nk = 0;
  for (size_t i = 0; i < n && nk < RT_MAX_PASS_HEADERS; i++)
    if (passed_header(h[i].name)) keep[nk++] = h[i];
  rt_req_pass_headers(r, keep, nk, h, n);
  bool sse = r->up_ctype && !strncasecmp(r->up_ctype, "text/event-stream", 17);
  if (r->stream && status >= 200 && status < 300 && sse) {
    r->sse_mode = true; /* the reply starts with the first event (sse_write) */
    up_sse_init(&r->sse, MAX_SSE_EVENT);
  } else {
    r->up_body = evbuffer_new();
  }
}

/* Writes one event with its event: line (data split into data: lines at newlines). */
static void send_event(struct rt_req *r, const char *type, const char *data, size_t n) {
  struct evbuffer *b = evbuffer_new();
  if (!b) return;
  evbuffer_add_printf(b, "event: %s\n", type);
  const char *p = data, *end = data + n;
  do {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    ADD_LIT(b, "data: ");
    evbuffer_add(b, p, (size_t)(le - p));
    ADD_LIT(b, "\n");
    p = nl ? nl + 1 : end;
  } while (p < end);
  ADD_LIT(b, "\n");
  size_t len = evbuffer_get_length(b);
  sse_write(r, evbuffer_pullup(b, -1), len);
  evbuffer_free(b);
}

/* message_start with message.model replaced by the public name. Returns malloc'd text or NULL. */
static char *rename_nested_model(const char *s, size_t n, const char *public_name, size_t *out_len) {
  struct rt_json_span m, v;
  if (rt_json_find(s, n, "message", &m) != 1 || s[m.off] != '{') return NULL;
  if (rt_json_find(s + m.off, m.len, "model", &v) != 1 || s[m.off + v.off] != '"') return NULL;
  size_t ql;
  char *q = rt_json_quote_str(public_name, strlen(public_name), &ql);
  if (!q) return NULL;
  struct rt_json_edit e = {m.off + v.off, v.len, q, ql};
  char *out = rt_json_splice(s, n, &e, 1, out_len);
  free(q);
  return out;
}

static int pass_sse_event(void *ud, const struct up_sse_event *ev) {
  struct rt_req *r = ud;
  const char *type = ev->event;
  json_t *d = NULL;
  char tbuf[64];
  if (!*type) {
    /* an upstream that leaves out event: lines: the type is in the data */
    d = json_loadb(ev->data, ev->data_len, 0, NULL);
    snprintf(tbuf, sizeof tbuf, "%s", json_string_value(json_object_get(d, "type")) ? json_string_value(json_object_get(d, "type")) : "");
    type = tbuf;
  }
  if (!*type) {
    json_decref(d);
    return 0; /* neither an event line nor a type: nothing an Anthropic client could use */
  }
  char *renamed = NULL;
  size_t rl = 0;
  if (!strcmp(type, "message_start") || !strcmp(type, "message_delta") || !strcmp(type, "error")) {
    if (!d) d = json_loadb(ev->data, ev->data_len, 0, NULL);
    const json_t *u = !strcmp(type, "message_start") ? json_object_get(json_object_get(d, "message"), "usage")
                                                      : json_object_get(d, "usage");
    if (u && pol_usage_update_anthropic(u, &r->usage) == 0) r->have_usage = true;
    if (!strcmp(type, "message_start") && rt_req_alias(r))
      renamed = rename_nested_model(ev->data, ev->data_len, rt_req_alias(r), &rl);
    if (!strcmp(type, "error")) {
      r->error_class = "upstream_stream_error";
      const char *m = json_string_value(json_object_get(json_object_get(d, "error"), "message"));
      snprintf(r->error_msg, sizeof r->error_msg, "%s", m ? m : "upstream sent an error event");
      r->done_sent = true;
    }
  } else if (!strcmp(type, "message_stop")) {
    r->done_sent = true;
  } else if (!r->t_first_token && (!strcmp(type, "content_block_delta") || !strcmp(type, "content_block_start"))) {
    r->t_first_token = rt_now_us();
  }
  json_decref(d);
  if (renamed) send_event(r, type, renamed, rl);
  else send_event(r, type, ev->data, ev->data_len);
  free(renamed);
  return 0;
}

static int pass_data(struct rt_req *r, const char *p, size_t n) {
  return rt_req_take_data(r, p, n, pass_sse_event);
}

static void pass_done(struct rt_req *r, const struct up_result *res) {
  const char *pname = rt_req_provider_name(r);
  if (res->status != UP_OK) {
    if (r->sse_mode && r->resp_started) {
      if (!r->done_sent) {
        r->error_class = rt_req_interrupted(r, res, r->error_msg, sizeof r->error_msg);
        stream_error_event(r, rt_up_timed_out(res) ? "timeout_error" : "api_error", r->error_msg);
      }
      rt_resp_end(r);
      return;
    }
    rt_req_fail_upstream(r, res);
    return;
  }
  if (r->sse_mode) {
    if (!r->done_sent) {
      r->error_class = "upstream_disconnect";
      snprintf(r->error_msg, sizeof r->error_msg,
               "The upstream stream from provider '%s' ended before message_stop.", pname);
      stream_error_event(r, "api_error", r->error_msg);
    }
    rt_resp_end(r);
    return;
  }
  size_t n = r->up_body ? evbuffer_get_length(r->up_body) : 0;
  const char *body = n ? (const char *)evbuffer_pullup(r->up_body, -1) : "";
  const char *ctype = r->up_ctype ? r->up_ctype : "application/json";
  int status = r->up_status ? r->up_status : 502;
  if (status >= 200 && status < 300) {
    if (r->route == RT_ROUTE_COUNT_TOKENS) {
      /* counting is free: a known zero usage, so the log shows cost 0, not unknown */
      memset(&r->usage, 0, sizeof r->usage);
      r->have_usage = true;
    } else {
      json_t *root = json_loadb(body, n, 0, NULL);
      struct pol_usage u;
      if (root && pol_usage_from_anthropic(json_object_get(root, "usage"), &u) == 0) {
        r->usage = u;
        r->have_usage = true;
      } else if (!json_is_object(root)) {
        r->error_class = "upstream_bad_response";
        snprintf(r->error_msg, sizeof r->error_msg, "upstream reply is not a JSON object");
      }
      json_decref(root);
    }
    rt_resp_json_renamed(r, status, ctype, body, n, true);
    return;
  }
  if (status >= 400) {
    /* already in Anthropic's shape: passed through with its status and headers */
    r->error_class = rt_req_answer_error_class(r);
    snprintf(r->error_msg, sizeof r->error_msg, "upstream provider '%s' answered HTTP %d", pname, status);
    json_t *root = json_loadb(body, n, 0, NULL);
    const char *m = json_string_value(json_object_get(json_object_get(root, "error"), "message"));
    if (m) snprintf(r->error_msg, sizeof r->error_msg, "%s", m);
    json_decref(root);
  }
  rt_resp_full(r, status, ctype, body, n, NULL, 0);
}

/* ------------------------------------------------------------------ routes */

/* The client's anthropic-version: sets r->anthropic_strict; 0, or a 400 already sent. */
static int check_version(struct rt_req *r) {
  const char *v = rt_http_header(r->head, "anthropic-version");
  if (!v || !*v || !strcmp(v, RT_ANTHROPIC_V1)) return 0;
  if (!strcmp(v, RT_ANTHROPIC_V2)) {
    r->anthropic_strict = true;
    return 0;
  }
  rt_req_fail(r, 400, "bad_request", "invalid_request_error", NULL, "anthropic-version",
              "unsupported version '%.40s' (this gateway speaks %s and %s)", v, RT_ANTHROPIC_V1,
              RT_ANTHROPIC_V2);
  return -1;
}

/* Validation and model lookup shared by both POST routes; 0 when the request may proceed. */
static int prepare(struct rt_req *r, bool count) {
  if (check_version(r)) return -1;
  struct rt_chat_info info;
  const char *param = NULL;
  char msg[300];
  int st = rt_anthropic_validate(r->body, r->body_len, count, r->anthropic_strict, &info, &param,
                                 msg, sizeof msg);
  if (st) {
    rt_req_fail(r, st, st == 400 ? "bad_request" : "internal",
                st == 400 ? "invalid_request_error" : "server_error", NULL, param, "%s", msg);
    return -1;
  }
  r->model_name = info.model_name;
  r->stream = !count && info.stream;
  const struct pol_model *m = pol_model_find(r->srv->cfg, r->model_name);
  if (!m) {
    rt_req_fail(r, 404, "model_not_found", "not_found_error", "model_not_found", "model", "%.200s",
                r->model_name);
    return -1;
  }
  r->model = m;
  return 0;
}

/* A failed attempt is dropped (retry, fallback): its extra header goes with it. */
static void pass_reset(struct rt_req *r) {
  free(r->up_extra_header);
  r->up_extra_header = NULL;
}

/* the local engine answers in Anthropic's format too: the same ops read its reply */
static const struct rt_call_ops to_anthropic = {.path = "/v1/messages",
                                                .local = &rt_anthropic_local_messages,
                                                .build_body = pass_build,
                                                .on_headers = pass_headers,
                                                .on_data = pass_data,
                                                .on_done = pass_done,
                                                .reset = pass_reset};

void rt_anthropic_messages(struct rt_req *r) {
  if (prepare(r, false)) return;
  /* the SDK sends no stream_options: a translated OpenAI stream must still report usage at the
   * end (message_delta), which xlate_call.c asks the upstream for */
  static const struct rt_call_ops *const ops[RT_PROVIDER_KINDS] = {
      [POL_PROVIDER_OPENAI] = &rt_xcall_anthropic_to_openai, [POL_PROVIDER_ANTHROPIC] = &to_anthropic,
      [POL_PROVIDER_LOCAL] = &to_anthropic};
  rt_call_start(r, ops);
}

static const struct rt_call_ops count_anthropic = {.path = "/v1/messages/count_tokens",
                                                   .local = &rt_anthropic_local_count,
                                                   .build_body = pass_build,
                                                   .on_headers = pass_headers,
                                                   .on_data = pass_data,
                                                   .on_done = pass_done,
                                                   .reset = pass_reset};

void rt_anthropic_count_tokens(struct rt_req *r) {
  if (prepare(r, true)) return;
  /* Anthropic counts its own models; the local engine counts exactly (its template and
   * tokenizer) */
  const struct pol_provider *p = r->model->provider;
  if (p && (p->kind == POL_PROVIDER_ANTHROPIC || p->kind == POL_PROVIDER_LOCAL)) {
    static const struct rt_call_ops *const ops[RT_PROVIDER_KINDS] = {
        [POL_PROVIDER_OPENAI] = NULL, [POL_PROVIDER_ANTHROPIC] = &count_anthropic,
        [POL_PROVIDER_LOCAL] = &count_anthropic};
    rt_call_start(r, ops);
    return;
  }
  /* OpenAI-compatible APIs have no counting endpoint: an estimate, labelled as one */
  int64_t n = rt_anthropic_estimate_tokens(r->body, r->body_len);
  char body[64];
  int len = snprintf(body, sizeof body, "{\"input_tokens\":%lld}", (long long)(n < 0 ? 0 : n));
  memset(&r->usage, 0, sizeof r->usage);
  r->have_usage = true;
  static const struct rt_kv extra[] = {{"x-tiergate-token-count", "estimate"}};
  rt_resp_full(r, 200, "application/json", body, (size_t)len, extra, 1);
}

/* ------------------------------------------------------------------ models */

static void model_object(struct evbuffer *b, const struct pol_model *m, const char *created) {
  ADD_LIT(b, "{\"type\":\"model\",\"id\":");
  rt_json_quote(b, m->name, strlen(m->name));
  ADD_LIT(b, ",\"display_name\":");
  rt_json_quote(b, m->name, strlen(m->name));
  evbuffer_add_printf(b, ",\"created_at\":\"%s\"}", created);
}

void rt_anthropic_models(struct rt_req *r) {
  const struct pol_config *cfg = r->srv->cfg;
  char created[40];
  rt_x_format_rfc3339(r->srv->started_wall * 1000, created, sizeof created);
  struct evbuffer *b = evbuffer_new();
  if (!b) {
    rt_req_fail(r, 500, "internal", "server_error", NULL, NULL, "out of memory");
    return;
  }
  ADD_LIT(b, "{\"data\":[");
  for (size_t i = 0; i < cfg->n_models; i++) {
    if (i) ADD_LIT(b, ",");
    model_object(b, &cfg->models[i], created);
  }
  ADD_LIT(b, "],\"has_more\":false,\"first_id\":");
  if (cfg->n_models) rt_json_quote(b, cfg->models[0].name, strlen(cfg->models[0].name));
  else ADD_LIT(b, "null");
  ADD_LIT(b, ",\"last_id\":");
  if (cfg->n_models) {
    const char *last = cfg->models[cfg->n_models - 1].name;
    rt_json_quote(b, last, strlen(last));
  } else {
    ADD_LIT(b, "null");
  }
  ADD_LIT(b, "}");
  size_t n = evbuffer_get_length(b);
  rt_resp_full(r, 200, "application/json", evbuffer_pullup(b, -1), n, NULL, 0);
  evbuffer_free(b);
}

void rt_anthropic_model(struct rt_req *r, const char *id) {
  const struct pol_model *m = pol_model_find(r->srv->cfg, id);
  if (!m) {
    r->model_name = strdup(id);
    rt_req_fail(r, 404, "model_not_found", "not_found_error", "model_not_found", "model", "%.200s", id);
    return;
  }
  char created[40];
  rt_x_format_rfc3339(r->srv->started_wall * 1000, created, sizeof created);
  struct evbuffer *b = evbuffer_new();
  if (!b) {
    rt_req_fail(r, 500, "internal", "server_error", NULL, NULL, "out of memory");
    return;
  }
  model_object(b, m, created);
  size_t n = evbuffer_get_length(b);
  rt_resp_full(r, 200, "application/json", evbuffer_pullup(b, -1), n, NULL, 0);
  evbuffer_free(b);
}
