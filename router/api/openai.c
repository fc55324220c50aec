/*
 * openai.c: the OpenAI surface: POST /v1/chat/completions (plain and SSE), GET /v1/models,
 * GET /v1/models/{id}, and the OpenAI error shape used for every failure on these paths.
 *
 * DESIGN. Byte fidelity: the client's body is validated with jansson but forwarded as its own
 * bytes with two surgical edits (json.c): the model name mapped to the upstream's, and, for
 * streams, stream_options.include_usage forced on so the gateway always learns the usage (the
 * extra usage chunk is dropped again if the client did not ask for it). Upstream bodies come back
 * byte for byte, except the top-level "model" when the public name differs from the upstream
 * name (an alias): then the client sees the name it asked for.
 *
 * Streams are relayed event by event as they arrive: upstream bytes → SSE parser (upstream/sse.c)
 * → one chunked-encoding chunk per event. When the client reads slower than the upstream writes,
 * the transfer is paused (UP_DATA_PAUSE) and resumed when the client's buffer drains.
 *
 * Error mapping (status, error class in the log): validation 400 bad_request, unknown model 404
 * model_not_found, provider without key 401 missing_api_key, connect failure 502
 * upstream_connect, timeouts 504 upstream_timeout, broken/oversized reply 502, upstream 4xx/5xx
 * passed through with body and rate-limit/retry-after headers (upstream_error). After a stream
 * has started the status is already sent: a failure becomes a final `data: {"error":...}` frame.
 */
#include <event2/buffer.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "router/internal.h"
#include "router/xlate/xlate.h"


/* ------------------------------------------------------------------ errors */

/* The surface's one error reply (rt_req_fail ends here); the body is rendered by xlate/'s
 * rt_xerr_render_openai, the one renderer of OpenAI's error shape. */
static void openai_error(struct rt_req *r, int status, const char *type, const char *code,
                         const char *param, const char *message) {
  struct evbuffer *b = evbuffer_new();
  if (!b) {
    rt_resp_full(r, 500, "application/json", "{}", 2, NULL, 0);
    return;
  }
  rt_xerr_render_openai(b, type, code, param, message);
  size_t n = evbuffer_get_length(b);
  rt_resp_full(r, status, "application/json", evbuffer_pullup(b, -1), n, NULL, 0);
  evbuffer_free(b);
}

static void openai_stream_error(struct rt_req *r, const char *code, const char *message);
const struct rt_surface rt_openai_surface = {"openai", openai_error, openai_stream_error};

/* ------------------------------------------------------------------ validation and rewriting */

void rt_chat_info_free(struct rt_chat_info *info) {
  free(info->model_name);
  info->model_name = NULL;
}

int rt_openai_validate(const char *body, size_t len, struct rt_chat_info *info, const char **param,
                       char *msg, size_t msgcap) {
  memset(info, 0, sizeof *info);
  *param = NULL;
  if (len == 0) {
    snprintf(msg, msgcap, "We could not parse the JSON body of your request: the body is empty.");
    return 400;
  }
  json_error_t je;
  json_t *root = json_loadb(body, len, JSON_ALLOW_NUL | JSON_DECODE_ANY, &je);
  if (!root) {
    snprintf(msg, msgcap,
             "We could not parse the JSON body of your request: %s (line %d, column %d).",
             je.text, je.line, je.column);
    return 400;
  }
  int st = 400;
  if (!json_is_object(root)) {
    snprintf(msg, msgcap, "The request body must be a JSON object.");
    goto out;
  }
  /* duplicate keys that matter: jansson keeps the last, an upstream might keep the first */
  static const char *const unique[] = {"model", "messages", "stream", "stream_options"};
  int seen[4] = {0};
  struct rt_json_iter it;
  struct rt_json_span k, v;
  int rc;
  rt_json_iter_begin(&it, body, len);
  while ((rc = rt_json_iter_next(&it, &k, &v)) == 1) {
    for (int i = 0; i < 4; i++) {
      if (rt_json_key_is(body, k, unique[i]) && ++seen[i] > 1) {
        *param = unique[i];
        snprintf(msg, msgcap, "Duplicate key '%s' in the request body.", unique[i]);
        goto out;
      }
    }
  }
  if (rc < 0) {
    snprintf(msg, msgcap, "We could not parse the JSON body of your request.");
    goto out;
  }
  json_t *model = json_object_get(root, "model");
  if (!model || json_is_null(model) || (json_is_string(model) && json_string_length(model) == 0)) {
    *param = "model";
    snprintf(msg, msgcap, "you must provide a model parameter");
    goto out;
  }
  if (!json_is_string(model)) {
    *param = "model";
    snprintf(msg, msgcap, "Invalid type for 'model': expected a string.");
    goto out;
  }
  if (strlen(json_string_value(model)) != json_string_length(model)) {
    *param = "model";
    snprintf(msg, msgcap, "Invalid 'model': contains a NUL character.");
    goto out;
  }
  json_t *messages = json_object_get(root, "messages");
  if (!messages) {
    *param = "messages";
    snprintf(msg, msgcap, "Missing required parameter: 'messages'.");
    goto out;
  }
  if (!json_is_array(messages)) {
    *param = "messages";
    snprintf(msg, msgcap, "Invalid type for 'messages': expected an array of objects.");
    goto out;
  }
  if (json_array_size(messages) == 0) {
    *param = "messages";
    snprintf(msg, msgcap, "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                          "but got an empty array instead.");
    goto out;
  }
  for (size_t i = 0; i < json_array_size(messages); i++) {
    if (!json_is_object(json_array_get(messages, i))) {
      *param = "messages";
      snprintf(msg, msgcap, "Invalid type for 'messages[%zu]': expected an object.", i);
      goto out;
    }
  }
  json_t *stream = json_object_get(root, "stream");
  if (stream && !json_is_boolean(stream) && !json_is_null(stream)) {
    *param = "stream";
    snprintf(msg, msgcap, "Invalid type for 'stream': expected a boolean.");
    goto out;
  }
  info->stream = json_is_true(stream);
  json_t *so = json_object_get(root, "stream_options");
  if (so && !json_is_object(so) && !json_is_null(so)) {
    *param = "stream_options";
    snprintf(msg, msgcap, "Invalid type for 'stream_options': expected an object.");
    goto out;
  }
  info->client_usage = json_is_object(so) && json_is_true(json_object_get(so, "include_usage"));
  info->model_name = strdup(json_string_value(model));
  if (!info->model_name) {
    st = 500;
    snprintf(msg, msgcap, "out of memory");
    goto out;
  }
  st = 0;
out:
  json_decref(root);
  return st;
}

static int edit_cmp(const void *a, const void *b) {
  const struct rt_json_edit *x = a, *y = b;
  return x->off < y->off ? -1 : x->off > y->off;
}

char *rt_openai_upstream_body(const char *body, size_t len, const char *upstream_model,
                              bool force_usage, size_t *out_len) {
  struct rt_json_iter it;
  if (rt_json_iter_begin(&it, body, len) < 0) return NULL;
  struct rt_json_span k, v, model_v = {0, 0}, so_v = {0, 0};
  bool have_model = false, have_so = false;
  int rc;
  while ((rc = rt_json_iter_next(&it, &k, &v)) == 1) {
    if (rt_json_key_is(body, k, "model")) {
      model_v = v;
      have_model = true;
    } else if (rt_json_key_is(body, k, "stream_options")) {
      so_v = v;
      have_so = true;
    }
  }
  if (rc < 0) return NULL;
  size_t close_pos = it.pos;

  struct rt_json_edit e[2];
  size_t ne = 0;
  char *quoted = NULL, *so_text = NULL;
  static const char so_new[] = "{\"include_usage\":true}";
  static const char so_member[] = ",\"stream_options\":{\"include_usage\":true}";
  if (upstream_model && have_model) {
    size_t ql;
    quoted = rt_json_quote_str(upstream_model, strlen(upstream_model), &ql);
    if (!quoted) return NULL;
    e[ne++] = (struct rt_json_edit){model_v.off, model_v.len, quoted, ql};
  }
  if (force_usage) {
    if (!have_so) {
      /* a member is inserted before the closing brace; the object has members (model at least) */
      if (it.count > 0) e[ne++] = (struct rt_json_edit){close_pos, 0, so_member, sizeof so_member - 1};
      else e[ne++] = (struct rt_json_edit){close_pos, 0, so_member + 1, sizeof so_member - 2};
    } else if (rt_json_is_null(body, so_v)) {
      e[ne++] = (struct rt_json_edit){so_v.off, so_v.len, so_new, sizeof so_new - 1};
    } else {
      json_t *so = json_loadb(body + so_v.off, so_v.len, JSON_ALLOW_NUL, NULL);
      if (json_is_object(so) && !json_is_true(json_object_get(so, "include_usage"))) {
        json_object_set_new(so, "include_usage", json_true());
        so_text = json_dumps(so, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (so_text) e[ne++] = (struct rt_json_edit){so_v.off, so_v.len, so_text, strlen(so_text)};
      }
      json_decref(so);
    }
  }
  qsort(e, ne, sizeof e[0], edit_cmp);
  char *out = rt_json_splice(body, len, e, ne, out_len);
  free(quoted);
  free(so_text);
  return out;
}

char *rt_openai_rename_model(const char *s, size_t n, const char *public_name, size_t *out_len) {
  if (!public_name) return NULL;
  struct rt_json_span v;
  if (rt_json_find(s, n, "model", &v) != 1 || v.len < 2 || s[v.off] != '"') return NULL;
  size_t ql;
  char *quoted = rt_json_quote_str(public_name, strlen(public_name), &ql);
  if (!quoted) return NULL;
  if (ql == v.len && !memcmp(quoted, s + v.off, ql)) {
    free(quoted);
    return NULL;
  }
  struct rt_json_edit e = {v.off, v.len, quoted, ql};
  char *out = rt_json_splice(s, n, &e, 1, out_len);
  free(quoted);
  return out;
}

/* ------------------------------------------------------------------ upstream reply handling */

/* The public name to show in replies, or NULL when it equals the upstream's (no rewrite). */
static bool passed_header(const char *name) {
  return !strcasecmp(name, "x-request-id") || !strcasecmp(name, "retry-after") ||
         !strcasecmp(name, "x-tiergate-schema-relaxed") ||
         !strcasecmp(name, "retry-after-ms") || !strncasecmp(name, "x-ratelimit-", 12) ||
         !strcasecmp(name, "openai-processing-ms") || !strcasecmp(name, "x-should-retry");
}

static void on_headers(struct rt_req *r, int status, const struct up_header *h, size_t n) {
  struct up_header keep[RT_MAX_PASS_HEADERS];
  size_t nk = 0;
  for (size_t i = 0; i < n && nk < RT_MAX_PASS_HEADERS; i++)
    if (passed_header(h[i].name)) keep[nk++] = h[i];
  rt_req_pass_headers(r, keep, nk, h, n);
  bool sse = r->up_ctype && !strncasecmp(r->up_ctype, "text/event-stream", 17);
  if (r->stream && status >= 200 && status < 300 && sse) {
    /* the client's reply starts with the first event (send_frame), not now: until a byte was
     * relayed, a stalled or broken attempt can still be retried or replaced by a fallback */
    r->sse_mode = true;
    up_sse_init(&r->sse, MAX_SSE_EVENT);
  } else {
    r->up_body = evbuffer_new();
  }
}

/* Sends one SSE frame: optional event line, the data (one data: line per line), blank line.
 * The first frame starts the reply (status and headers). */
static void send_frame(struct rt_req *r, const char *event, const char *data, size_t n) {
  if (!r->resp_started) {
    static const struct rt_kv extra[] = {{"cache-control", "no-cache"}};
    rt_resp_start(r, r->up_status ? r->up_status : 200, "text/event-stream; charset=utf-8", -1,
                  extra, 1);
  }
  struct evbuffer *b = evbuffer_new();
  if (!b) return;
  if (event && *event) evbuffer_add_printf(b, "event: %s\n", event);
  const char *p = data, *end = data + n;
  do {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    evbuffer_add(b, "data: ", 6);
    evbuffer_add(b, p, (size_t)(le - p));
    evbuffer_add(b, "\n", 1);
    p = nl ? nl + 1 : end;
  } while (p < end);
  evbuffer_add(b, "\n", 1);
  size_t len = evbuffer_get_length(b);
  rt_resp_body(r, evbuffer_pullup(b, -1), len);
  evbuffer_free(b);
}

static void take_usage(struct rt_req *r, const char *s, struct rt_json_span v) {
  json_t *u = json_loadb(s + v.off, v.len, 0, NULL);
  struct pol_usage usage;
  if (u && pol_usage_from_openai(u, &usage) == 0) {
    r->usage = usage;
    r->have_usage = true;
  }
  json_decref(u);
}

static void take_error_message(struct rt_req *r, const char *s, size_t n) {
  json_t *root = json_loadb(s, n, 0, NULL);
  json_t *msg = json_object_get(json_object_get(root, "error"), "message");
  if (json_is_string(msg)) snprintf(r->error_msg, sizeof r->error_msg, "%s", json_string_value(msg));
  json_decref(root);
}

static int sse_event(void *ud, const struct up_sse_event *ev) {
  struct rt_req *r = ud;
  const char *s = ev->data;
  size_t n = ev->data_len;
  if (n == 6 && !memcmp(s, "[DONE]", 6)) {
    if (!r->done_sent) send_frame(r, ev->event, s, n);
    r->done_sent = true;
    return 0;
  }
  struct rt_json_iter it;
  struct rt_json_span k, v, usage = {0, 0}, choices = {0, 0};
  bool has_usage = false, has_choices = false, has_error = false;
  if (rt_json_iter_begin(&it, s, n) == 0) {
    while (rt_json_iter_next(&it, &k, &v) == 1) {
      if (rt_json_key_is(s, k, "usage")) {
        usage = v;
        has_usage = !rt_json_is_null(s, v);
      } else if (rt_json_key_is(s, k, "choices")) {
        choices = v;
        has_choices = true;
      } else if (rt_json_key_is(s, k, "error")) {
        has_error = true;
      }
    }
  }
  if (has_error) {
    r->error_class = "upstream_stream_error";
    snprintf(r->error_msg, sizeof r->error_msg, "upstream sent an error event");
    take_error_message(r, s, n);
  }
  if (has_usage) {
    take_usage(r, s, usage);
    /* the extra usage-only chunk the gateway asked for on its own behalf */
    if (!r->client_usage && has_choices && rt_json_is_empty_array(s, choices)) return 0;
  }
  if (!r->t_first_token) r->t_first_token = rt_now_us();
  size_t rl;
  char *renamed = rt_openai_rename_model(s, n, rt_req_alias(r), &rl);
  if (renamed) {
    send_frame(r, ev->event, renamed, rl);
    free(renamed);
  } else {
    send_frame(r, ev->event, s, n);
  }
  return 0;
}

static int on_data(struct rt_req *r, const char *p, size_t n) {
  return rt_req_take_data(r, p, n, sse_event);
}

/* A mid-stream error frame: OpenAI's error object as the stream's last data event. */
static void error_frame(struct rt_req *r, const char *type, const char *code, const char *message) {
  struct evbuffer *b = evbuffer_new();
  if (!b) return;
  rt_xerr_render_openai(b, type, code, NULL, message);
  size_t n = evbuffer_get_length(b);
  send_frame(r, NULL, (const char *)evbuffer_pullup(b, -1), n);
  evbuffer_free(b);
}

static void stream_error(struct rt_req *r, const char *cls, const char *type, const char *code,
                         const char *message) {
  r->error_class = cls;
  snprintf(r->error_msg, sizeof r->error_msg, "%.255s", message);
  error_frame(r, type, code, message);
  rt_resp_end(r);
}

/* Surface hook: the gateway cuts a started stream (shutdown): error event, end of body. */
static void openai_stream_error(struct rt_req *r, const char *code, const char *message) {
  if (!r->sse_mode || r->finished) return;
  error_frame(r, "server_error", code, message);
}

static void on_done(struct rt_req *r, const struct up_result *res) {
  const char *pname = rt_req_provider_name(r);

  if (res->status != UP_OK) {
    if (r->sse_mode && r->resp_started) {
      char msg[400];
      bool to = rt_up_timed_out(res);
      const char *cls = rt_req_interrupted(r, res, msg, sizeof msg);
      stream_error(r, cls, "server_error", to ? "upstream_timeout" : "upstream_error", msg);
      return;
    }
    rt_req_fail_upstream(r, res);
    return;
  }

  if (r->sse_mode) {
    if (up_sse_truncated(&r->sse) && !r->done_sent) {
      stream_error(r, "upstream_disconnect", "server_error", "upstream_error",
                   "The upstream stream ended in the middle of an event.");
      return;
    }
    if (!r->done_sent) send_frame(r, NULL, "[DONE]", 6);
    r->done_sent = true;
    rt_resp_end(r);
    return;
  }

  size_t n = r->up_body ? evbuffer_get_length(r->up_body) : 0;
  const char *body = n ? (const char *)evbuffer_pullup(r->up_body, -1) : "";
  const char *ctype = r->up_ctype ? r->up_ctype : "application/json";
  int status = r->up_status ? r->up_status : 502;
  if (status >= 200 && status < 300) {
    struct rt_json_span v;
    int found = rt_json_find(body, n, "usage", &v);
    if (found == 1 && !rt_json_is_null(body, v)) take_usage(r, body, v);
    else if (found < 0) {
      r->error_class = "upstream_bad_response";
      snprintf(r->error_msg, sizeof r->error_msg, "upstream reply is not a JSON object");
    }
    rt_resp_json_renamed(r, status, ctype, body, n, found >= 0);
    return;
  }
  if (status >= 400) {
    r->error_class = rt_req_answer_error_class(r);
    snprintf(r->error_msg, sizeof r->error_msg, "upstream provider '%s' answered HTTP %d", pname, status);
    take_error_message(r, body, n);
  }
  rt_resp_full(r, status, ctype, body, n, NULL, 0);
}

/* ------------------------------------------------------------------ routes */

static char *build_body(struct rt_req *r, const char *upstream_model, size_t *len) {
  const char *map = upstream_model && strcmp(upstream_model, r->model_name) ? upstream_model : NULL;
  return rt_openai_upstream_body(r->body, r->body_len, map, r->stream, len);
}

void rt_openai_chat(struct rt_req *r) {
  struct rt_server *s = r->srv;
  struct rt_chat_info info;
  const char *param = NULL;
  char msg[256];
  int st = rt_openai_validate(r->body, r->body_len, &info, &param, msg, sizeof msg);
  if (st) {
    rt_req_fail(r, st, st == 400 ? "bad_request" : "internal",
                st == 400 ? "invalid_request_error" : "server_error", NULL, param, "%s", msg);
    return;
  }
  r->model_name = info.model_name;
  r->stream = info.stream;
  r->client_usage = info.client_usage;

  const struct pol_model *m = pol_model_find(s->cfg, r->model_name);
  if (!m) {
    rt_req_fail(r, 404, "model_not_found", "invalid_request_error", "model_not_found", "model",
                "The model `%.200s` does not exist or you do not have access to it.", r->model_name);
    return;
  }
  r->model = m;
  /* OpenAI-compatible upstreams get the body as is; Anthropic upstreams a translation */
  /* the local engine answers in OpenAI's format too: the same ops read its reply */
  static const struct rt_call_ops to_openai = {.path = "/chat/completions",
                                               .local = &rt_openai_local_chat,
                                               .build_body = build_body,
                                               .on_headers = on_headers,
                                               .on_data = on_data,
                                               .on_done = on_done};
  static const struct rt_call_ops *const ops[RT_PROVIDER_KINDS] = {
      [POL_PROVIDER_OPENAI] = &to_openai, [POL_PROVIDER_ANTHROPIC] = &rt_xcall_openai_to_anthropic,
      [POL_PROVIDER_LOCAL] = &to_openai};
  rt_call_start(r, ops);
}

/* POST /v1/embeddings: forwarded to OpenAI-compatible upstreams (the body as is, but the model),
 * answered by local models; Anthropic has no embeddings API (501 unsupported kind). */
static char *embed_body(struct rt_req *r, const char *upstream_model, size_t *len) {
  const char *map = upstream_model && strcmp(upstream_model, r->model_name) ? upstream_model : NULL;
  return rt_openai_upstream_body(r->body, r->body_len, map, false, len);
}

void rt_openai_embeddings(struct rt_req *r) {
  struct rt_server *s = r->srv;
  json_error_t je;
  json_t *root = json_loadb(r->body, r->body_len, JSON_ALLOW_NUL | JSON_DECODE_ANY, &je);
  const json_t *model = json_object_get(root, "model");
  if (!root) {
    rt_req_fail(r, 400, "bad_request", "invalid_request_error", NULL, NULL,
                "We could not parse the JSON body of your request: %s (line %d, column %d).",
                je.text, je.line, je.column);
    return;
  }
  if (!json_is_object(root) || !json_is_string(model) || !json_string_length(model) ||
      strlen(json_string_value(model)) != json_string_length(model)) {
    json_decref(root);
    rt_req_fail(r, 400, "bad_request", "invalid_request_error", NULL, "model",
                json_is_object(root) ? "you must provide a model parameter (a string)"
                                     : "The request body must be a JSON object.");
    return;
  }
  if (!json_object_get(root, "input")) {
    json_decref(root);
    rt_req_fail(r, 400, "bad_request", "invalid_request_error", NULL, "input",
                "Missing required parameter: 'input'.");
    return;
  }
  r->model_name = strdup(json_string_value(model));
  json_decref(root);
  if (!r->model_name) {
    rt_req_fail(r, 500, "internal", "server_error", NULL, NULL, "out of memory");
    return;
  }
  const struct pol_model *m = pol_model_find(s->cfg, r->model_name);
  if (!m) {
    rt_req_fail(r, 404, "model_not_found", "invalid_request_error", "model_not_found", "model",
                "The model `%.200s` does not exist or you do not have access to it.", r->model_name);
    return;
  }
  r->model = m;
  static const struct rt_call_ops embed = {.path = "/embeddings",
                                           .local = &rt_openai_local_embed,
                                           .build_body = embed_body,
                                           .on_headers = on_headers,
                                           .on_data = on_data,
                                           .on_done = on_done};
  static const struct rt_call_ops *const ops[RT_PROVIDER_KINDS] = {
      [POL_PROVIDER_OPENAI] = &embed, [POL_PROVIDER_LOCAL] = &embed};
  rt_call_start(r, ops);
}

void rt_openai_models(struct rt_req *r) {
  rt_resp_full(r, 200, "application/json", r->srv->models_json, r->srv->models_json_len, NULL, 0);
}

void rt_openai_model(struct rt_req *r, const char *id) {
  const struct pol_model *m = pol_model_find(r->srv->cfg, id);
  if (!m) {
    r->model_name = strdup(id);
    rt_req_fail(r, 404, "model_not_found", "invalid_request_error", "model_not_found", "model",
                "The model `%.200s` does not exist or you do not have access to it.", id);
    return;
  }
  struct evbuffer *b = evbuffer_new();
  if (!b) {
    rt_req_fail(r, 500, "internal", "server_error", NULL, NULL, "out of memory");
    return;
  }
  evbuffer_add(b, "{\"id\":", 6);
  rt_json_quote(b, m->name, strlen(m->name));
  evbuffer_add_printf(b, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":",
                      (long long)r->srv->started_wall);
  rt_json_quote(b, m->provider->name, strlen(m->provider->name));
  const struct rt_local *l = r->srv->local[m->provider - r->srv->cfg->providers];
  if (l) evbuffer_add_printf(b, ",\"context_length\":%d", (int)rt_local_n_ctx(l));
  evbuffer_add(b, "}", 1);
  size_t n = evbuffer_get_length(b);
  rt_resp_full(r, 200, "application/json", evbuffer_pullup(b, -1), n, NULL, 0);
  evbuffer_free(b);
}
