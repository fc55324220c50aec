/*
 * xlate_resp.c: non-streamed replies, error replies (body and status) and response headers
 * translated between OpenAI Chat Completions and Anthropic Messages (PROTOCOLS.md §3.2-3.4,
 * §3.6). Pure: the clock comes in as an argument.
 *
 * Usage (§3.4): OpenAI's prompt_tokens INCLUDES cached and cache-written tokens, Anthropic's
 * input_tokens EXCLUDES them. Both directions go through policies/'s canonical pol_usage, read
 * from the upstream's own format, so the counts the client sees and the ones the log bills are
 * the same numbers:
 *   prompt_tokens = input + cache_read + cache_creation      cached_tokens = cache_read
 *   cache_write_tokens = cache_creation                       completion_tokens = output_tokens
 *   reasoning_tokens = output_tokens_details.thinking_tokens
 */
#include <event2/buffer.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "router/json/json.h"
#include "router/xlate/xlate.h"

#define ADD_LIT(b, lit) evbuffer_add((b), (lit), sizeof(lit) - 1)

#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* ------------------------------------------------------------------ stop reasons */

const char *rt_x_finish_from_stop(const char *s) {
  if (!s) return "stop";
  if (!strcmp(s, "max_tokens") || !strcmp(s, "model_context_window_exceeded")) return "length";
  if (!strcmp(s, "tool_use")) return "tool_calls";
  if (!strcmp(s, "refusal")) return "content_filter";
  return "stop"; /* end_turn, stop_sequence, pause_turn (no equivalent), unknown */
}

const char *rt_x_stop_from_finish(const char *f) {
  if (!f) return "end_turn";
  if (!strcmp(f, "length")) return "max_tokens";
  if (!strcmp(f, "tool_calls") || !strcmp(f, "function_call")) return "tool_use";
  if (!strcmp(f, "content_filter")) return "refusal";
  return "end_turn"; /* OpenAI does not say whether a stop sequence matched */
}

/* ------------------------------------------------------------------ replies */

static json_t *openai_usage(const struct pol_usage *u) {
  return json_pack("{s:I,s:I,s:I,s:{s:I,s:I},s:{s:I}}", "prompt_tokens", (json_int_t)u->input_tokens,
                   "completion_tokens", (json_int_t)u->output_tokens, "total_tokens",
                   (json_int_t)(u->input_tokens + u->output_tokens), "prompt_tokens_details",
                   "cached_tokens", (json_int_t)u->cached_tokens, "cache_write_tokens",
                   (json_int_t)u->cache_write_tokens, "completion_tokens_details",
                   "reasoning_tokens", (json_int_t)u->reasoning_tokens);
}

static json_t *anthropic_usage(const struct pol_usage *u) {
  json_t *j = json_pack("{s:I,s:I,s:I,s:I}", "input_tokens",
                        (json_int_t)(u->input_tokens - u->cached_tokens - u->cache_write_tokens),
                        "cache_creation_input_tokens", (json_int_t)u->cache_write_tokens,
                        "cache_read_input_tokens", (json_int_t)u->cached_tokens, "output_tokens",
                        (json_int_t)u->output_tokens);
  if (u->reasoning_tokens > 0)
    json_object_set_new(j, "output_tokens_details",
                        json_pack("{s:I}", "thinking_tokens", (json_int_t)u->reasoning_tokens));
  return j;
}

char *rt_xresp_anthropic_to_openai(const char *body, size_t n, const char *model, int64_t created,
                                   size_t *out_len, struct pol_usage *usage, bool *have_usage) {
  *have_usage = false;
  json_t *in = json_loadb(body, n, 0, NULL);
  const json_t *content = json_object_get(in, "content");
  if (!json_is_object(in) || !json_is_array(content)) {
    json_decref(in);
    return NULL;
  }
  /* text blocks concatenated; tool_use -> tool_calls; thinking and server-tool blocks dropped */
  size_t cap = 256, len = 0;
  char *text = malloc(cap);
  json_t *calls = json_array();
  bool any_text = false;
  if (!text) goto fail;
  text[0] = 0;
  size_t i;
  json_t *b;
  json_array_foreach(content, i, b) {
    const char *type = json_string_value(json_object_get(b, "type"));
    if (!type) continue;
    if (!strcmp(type, "text") && json_is_string(json_object_get(b, "text"))) {
      const json_t *t = json_object_get(b, "text");
      size_t tl = json_string_length(t);
      if (len + tl + 1 > cap) {
        while (len + tl + 1 > cap) cap *= 2;
        char *nt = realloc(text, cap);
        if (!nt) goto fail;
        text = nt;
      }
      memcpy(text + len, json_string_value(t), tl);
      len += tl;
      text[len] = 0;
      any_text = true;
    } else if (!strcmp(type, "tool_use")) {
      const char *id = json_string_value(json_object_get(b, "id"));
      const char *name = json_string_value(json_object_get(b, "name"));
      const json_t *input = json_object_get(b, "input");
      char *args = input ? json_dumps(input, DUMP_FLAGS | JSON_ENCODE_ANY) : strdup("{}");
      if (!args) goto fail;
      json_array_append_new(calls, json_pack("{s:s,s:s,s:{s:s,s:s}}", "id", id ? id : "", "type",
                                             "function", "function", "name", name ? name : "",
                                             "arguments", args));
      free(args);
    }
  }
  json_t *msg = json_pack("{s:s}", "role", "assistant");
  json_object_set_new(msg, "content", any_text ? json_stringn(text, len) : json_null());
  json_object_set_new(msg, "refusal", json_null());
  if (json_array_size(calls)) json_object_set(msg, "tool_calls", calls);
  json_object_set_new(msg, "annotations", json_array());
  const char *id = json_string_value(json_object_get(in, "id"));
  json_t *out = json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:o,s:n,s:s}]}", "id", id ? id : "",
                          "object", "chat.completion", "created", (json_int_t)created, "model",
                          model ? model : "", "choices", "index", 0, "message", msg, "logprobs",
                          "finish_reason",
                          rt_x_finish_from_stop(json_string_value(json_object_get(in, "stop_reason"))));
  struct pol_usage u;
  if (out && pol_usage_from_anthropic(json_object_get(in, "usage"), &u) == 0) {
    *usage = u;
    *have_usage = true;
    json_object_set_new(out, "usage", openai_usage(&u));
  }
  char *s = out ? json_dumps(out, DUMP_FLAGS) : NULL;
  json_decref(out);
  free(text);
  json_decref(calls);
  json_decref(in);
  if (s) *out_len = strlen(s);
  return s;
fail:
  free(text);
  json_decref(calls);
  json_decref(in);
  return NULL;
}

char *rt_xresp_openai_to_anthropic(const char *body, size_t n, const char *model, size_t *out_len,
                                   struct pol_usage *usage, bool *have_usage) {
  *have_usage = false;
  json_t *in = json_loadb(body, n, 0, NULL);
  const json_t *choice = json_array_get(json_object_get(in, "choices"), 0);
  const json_t *msg = json_object_get(choice, "message");
  if (!json_is_object(in) || !json_is_object(msg)) {
    json_decref(in);
    return NULL;
  }
  json_t *content = json_array();
  const json_t *c = json_object_get(msg, "content");
  if (json_is_string(c) && json_string_length(c)) {
    json_array_append_new(content, json_pack("{s:s,s:O}", "type", "text", "text", c));
  } else if (json_is_array(c)) {
    size_t i;
    json_t *part;
    json_array_foreach(c, i, part) {
      const json_t *t = json_object_get(part, "text");
      if (!json_is_string(t)) t = json_object_get(part, "refusal");
      if (json_is_string(t) && json_string_length(t))
        json_array_append_new(content, json_pack("{s:s,s:O}", "type", "text", "text", t));
    }
  }
  const json_t *refusal = json_object_get(msg, "refusal");
  if (json_is_string(refusal) && json_string_length(refusal))
    json_array_append_new(content, json_pack("{s:s,s:O}", "type", "text", "text", refusal));
  size_t i;
  json_t *call;
  json_array_foreach(json_object_get(msg, "tool_calls"), i, call) {
    const json_t *fn = json_object_get(call, "function");
    const char *args = json_string_value(json_object_get(fn, "arguments"));
    json_t *input = args ? json_loads(args, 0, NULL) : NULL;
    if (!json_is_object(input)) {
      /* a model that wrote invalid JSON arguments: Anthropic's input must be an object */
      json_decref(input);
      input = json_object();
    }
    const char *id = json_string_value(json_object_get(call, "id"));
    const char *name = json_string_value(json_object_get(fn, "name"));
    json_array_append_new(content, json_pack("{s:s,s:s,s:s,s:o}", "type", "tool_use", "id",
                                             id ? id : "", "name", name ? name : "", "input", input));
  }
  const char *id = json_string_value(json_object_get(in, "id"));
  json_t *out = json_pack("{s:s,s:s,s:s,s:s,s:o,s:s,s:n}", "id", id ? id : "", "type", "message",
                          "role", "assistant", "model", model ? model : "", "content", content,
                          "stop_reason",
                          rt_x_stop_from_finish(json_string_value(json_object_get(choice, "finish_reason"))),
                          "stop_sequence");
  struct pol_usage u;
  if (out && pol_usage_from_openai(json_object_get(in, "usage"), &u) == 0) {
    *usage = u;
    *have_usage = true;
    json_object_set_new(out, "usage", anthropic_usage(&u));
  } else if (out) {
    json_object_set_new(out, "usage", json_pack("{s:i,s:i}", "input_tokens", 0, "output_tokens", 0));
  }
  char *s = out ? json_dumps(out, DUMP_FLAGS) : NULL;
  json_decref(out);
  json_decref(in);
  if (s) *out_len = strlen(s);
  return s;
}

/* ------------------------------------------------------------------ errors */

const char *rt_anthropic_error_type(int status) {
  switch (status) {
  case 401: return "authentication_error";
  case 402: return "billing_error";
  case 403: return "permission_error";
  case 404: return "not_found_error";
  case 409: return "conflict_error";
  case 413: return "request_too_large";
  case 429: return "rate_limit_error";
  case 504: return "timeout_error";
  case 529: return "overloaded_error";
  default: return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

/* The upstream's error message: error.message (or error as a string), else the start of the
 * body; the caller's prefix when there is nothing. */
static void error_message(int status, const char *body, size_t n, char *out, size_t cap,
                          const char **type_out, const char **code_out, json_t **root_out) {
  json_t *root = json_loadb(body, n, 0, NULL);
  const json_t *e = json_object_get(root, "error");
  const char *m = json_string_value(json_object_get(e, "message"));
  if (!m) m = json_string_value(e);
  if (!m) m = json_string_value(json_object_get(root, "message"));
  if (m) {
    snprintf(out, cap, "%s", m);
  } else {
    /* not the JSON we expected (a proxy's HTML page...): show a printable start of it */
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < cap && k < 200; i++)
      out[k++] = (body[i] >= 0x20 && body[i] < 0x7f) ? body[i] : ' ';
    out[k] = 0;
    if (!k) snprintf(out, cap, "upstream answered HTTP %d", status);
  }
  *type_out = json_string_value(json_object_get(e, "type"));
  *code_out = json_string_value(json_object_get(e, "code"));
  *root_out = root;
}

void rt_xerr_anthropic_to_openai(int status, const char *body, size_t n, struct rt_xerror *out) {
  const char *utype, *ucode;
  json_t *root;
  memset(out, 0, sizeof *out);
  error_message(status, body, n, out->message, sizeof out->message, &utype, &ucode, &root);
  const char *t = utype ? utype : rt_anthropic_error_type(status);
  out->status = status;
  out->type = status >= 500 ? "server_error" : "invalid_request_error";
  if (!strcmp(t, "authentication_error") || status == 401) {
    out->status = 401;
    out->code = "invalid_api_key";
  } else if (!strcmp(t, "billing_error") || status == 402) {
    out->status = 429;
    out->type = "insufficient_quota";
    out->code = "insufficient_quota";
    out->no_retry = true;
  } else if (!strcmp(t, "permission_error") || status == 403) {
    out->status = 403;
    out->code = "permission_denied";
  } else if (!strcmp(t, "not_found_error") || status == 404) {
    out->status = 404;
    out->code = strstr(out->message, "model") ? "model_not_found" : "not_found";
  } else if (!strcmp(t, "request_too_large") || status == 413) {
    out->status = 413;
    out->code = "request_too_large";
  } else if (!strcmp(t, "rate_limit_error") || status == 429) {
    out->status = 429;
    out->type = "requests";
    out->code = "rate_limit_exceeded";
    /* a monthly spend cap is a 429 that no retry will fix */
    const char *ec = json_string_value(
        json_object_get(json_object_get(json_object_get(root, "error"), "details"), "error_code"));
    if (ec && !strcmp(ec, "enforced_spend_limit_reached")) {
      out->type = "insufficient_quota";
      out->code = "insufficient_quota";
      out->no_retry = true;
    }
  } else if (!strcmp(t, "overloaded_error") || status == 529) {
    out->status = 503;
    out->type = "service_unavailable_error";
    out->code = "server_is_overloaded";
  } else if (!strcmp(t, "timeout_error") || status == 504) {
    out->status = 504;
    out->type = "server_error";
    out->code = "timeout";
  } else if (!strcmp(t, "api_error") || status >= 500) {
    out->type = "server_error";
    if (status < 500) out->status = 500;
  }
  json_decref(root);
}

void rt_xerr_openai_to_anthropic(int status, const char *body, size_t n, struct rt_xerror *out) {
  const char *utype, *ucode;
  json_t *root;
  memset(out, 0, sizeof *out);
  error_message(status, body, n, out->message, sizeof out->message, &utype, &ucode, &root);
  out->status = status;
  switch (status) {
  case 422: out->status = 400; break;
  case 503: out->status = 529; break;
  default: break;
  }
  if (status == 429 && ((ucode && !strcmp(ucode, "insufficient_quota")) ||
                        (utype && !strcmp(utype, "insufficient_quota"))))
    out->no_retry = true;
  if (out->status < 400) out->status = 500;  /* an error reply with a success status */
  out->type = rt_anthropic_error_type(out->status);
  json_decref(root);
}

void rt_xerr_render_openai(struct evbuffer *b, const char *type, const char *code, const char *param,
                           const char *message) {
  if (!type) type = "invalid_request_error";
  ADD_LIT(b, "{\"error\":{\"message\":");
  rt_json_quote(b, message, strlen(message));
  ADD_LIT(b, ",\"type\":");
  rt_json_quote(b, type, strlen(type));
  ADD_LIT(b, ",\"param\":");
  if (param) rt_json_quote(b, param, strlen(param));
  else ADD_LIT(b, "null");
  ADD_LIT(b, ",\"code\":");
  if (code) rt_json_quote(b, code, strlen(code));
  else ADD_LIT(b, "null");
  ADD_LIT(b, "}}");
}

void rt_xerr_render_anthropic(struct evbuffer *b, const char *type, const char *message,
                              const char *request_id) {
  ADD_LIT(b, "{\"type\":\"error\",\"error\":{\"type\":");
  rt_json_quote(b, type, strlen(type));
  ADD_LIT(b, ",\"message\":");
  rt_json_quote(b, message, strlen(message));
  ADD_LIT(b, "}");
  if (request_id) {
    ADD_LIT(b, ",\"request_id\":");
    rt_json_quote(b, request_id, strlen(request_id));
  }
  ADD_LIT(b, "}");
}

/* ------------------------------------------------------------------ times */

int64_t rt_x_parse_go_duration(const char *s) {
  if (!s || !*s) return -1;
  double total = 0;
  const char *p = s;
  if (!strcmp(p, "0")) return 0;
  while (*p) {
    char *end;
    if (!((*p >= '0' && *p <= '9') || *p == '.')) return -1;
    double v = strtod(p, &end);
    if (end == p || v < 0) return -1;
    p = end;
    double unit;
    if (!strncmp(p, "ms", 2)) unit = 1, p += 2;
    else if (!strncmp(p, "us", 2)) unit = 1e-3, p += 2;
    else if (!strncmp(p, "\xc2\xb5s", 3)) unit = 1e-3, p += 3; /* µs */
    else if (!strncmp(p, "ns", 2)) unit = 1e-6, p += 2;
    else if (*p == 'h') unit = 3600e3, p++;
    else if (*p == 'm') unit = 60e3, p++;
    else if (*p == 's') unit = 1e3, p++;
    else return -1;
    total += v * unit;
    if (total > 1e15) return -1;
  }
  return (int64_t)llround(total);
}

void rt_x_format_go_duration(int64_t ms, char *out, size_t cap) {
  if (ms < 0) ms = 0;
  if (ms < 1000) {
    snprintf(out, cap, "%lldms", (long long)ms);
    if (ms == 0) snprintf(out, cap, "0s");
    return;
  }
  int64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60, frac = ms % 1000;
  char sec[32];
  if (frac) {
    snprintf(sec, sizeof sec, "%lld.%03lld", (long long)s, (long long)frac);
    size_t l = strlen(sec);
    while (sec[l - 1] == '0') sec[--l] = 0;
  } else {
    snprintf(sec, sizeof sec, "%lld", (long long)s);
  }
  if (h) snprintf(out, cap, "%lldh%lldm%ss", (long long)h, (long long)m, sec);
  else if (m) snprintf(out, cap, "%lldm%ss", (long long)m, sec);
  else snprintf(out, cap, "%ss", sec);
}

int64_t rt_x_parse_rfc3339(const char *s) {
  int Y, M, D, h, m, sec, n = 0;
  if (!s || sscanf(s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &sec, &n) != 6 || n != 19)
    return -1;
  if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60) return -1;
  const char *p = s + 19;
  int64_t frac_ms = 0;
  if (*p == '.') {
    p++;
    int digits = 0;
    int64_t scale = 100;
    while (*p >= '0' && *p <= '9') {
      if (digits < 3) frac_ms += (*p - '0') * scale;
      scale /= 10;
      digits++;
      p++;
    }
    if (!digits) return -1;
  }
  int64_t off = 0;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int oh, om;
    if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2 || strlen(p) != 6) return -1;
    off = (oh * 3600 + om * 60) * (*p == '+' ? 1 : -1);
    p += 6;
  } else {
    return -1;
  }
  if (*p) return -1;
  struct tm tm = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = m,
                  .tm_sec = sec};
  time_t t = timegm(&tm);
  return ((int64_t)t - off) * 1000 + frac_ms;
}

void rt_x_format_rfc3339(int64_t ms, char *out, size_t cap) {
  time_t t = (time_t)((ms + 999) / 1000); /* a reset is never earlier than it was said to be */
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ------------------------------------------------------------------ headers */

static int copy_hdr(const char *name, const char *value, char *oname, char *ovalue, size_t cap) {
  snprintf(oname, cap, "%s", name);
  snprintf(ovalue, cap, "%s", value);
  return 1;
}

static bool passes_unchanged(const char *name) {
  return !strcasecmp(name, "retry-after") || !strcasecmp(name, "retry-after-ms") ||
         !strcasecmp(name, "x-should-retry");
}

int rt_xhdr_openai_to_anthropic(const char *name, const char *value, int64_t now_ms, char *oname,
                                char *ovalue, size_t cap) {
  if (passes_unchanged(name)) return copy_hdr(name, value, oname, ovalue, cap);
  if (!strcasecmp(name, "x-request-id")) return copy_hdr("request-id", value, oname, ovalue, cap);
  static const char pre[] = "x-ratelimit-";
  if (strncasecmp(name, pre, sizeof pre - 1)) return 0;
  const char *rest = name + sizeof pre - 1;  /* "limit-requests", "reset-tokens", ... */
  static const char *const kinds[] = {"limit", "remaining", "reset"};
  static const char *const what[] = {"requests", "tokens"};
  for (int k = 0; k < 3; k++) {
    size_t kl = strlen(kinds[k]);
    if (strncasecmp(rest, kinds[k], kl) || rest[kl] != '-') continue;
    for (int w = 0; w < 2; w++) {
      if (strcasecmp(rest + kl + 1, what[w])) continue;
      snprintf(oname, cap, "anthropic-ratelimit-%s-%s", what[w], kinds[k]);
      if (k < 2) {
        snprintf(ovalue, cap, "%s", value);
        return 1;
      }
      int64_t d = rt_x_parse_go_duration(value);
      if (d < 0) return 0;
      rt_x_format_rfc3339(now_ms + d, ovalue, cap);
      return 1;
    }
  }
  return 0;
}

int rt_xhdr_anthropic_to_openai(const char *name, const char *value, int64_t now_ms, char *oname,
                                char *ovalue, size_t cap) {
  if (passes_unchanged(name)) return copy_hdr(name, value, oname, ovalue, cap);
  if (!strcasecmp(name, "request-id")) return copy_hdr("x-request-id", value, oname, ovalue, cap);
  static const char pre[] = "anthropic-ratelimit-";
  if (strncasecmp(name, pre, sizeof pre - 1)) return 0;
  const char *rest = name + sizeof pre - 1;  /* "requests-limit", "tokens-reset", ... */
  static const char *const what[] = {"requests", "tokens"};
  static const char *const kinds[] = {"limit", "remaining", "reset"};
  for (int w = 0; w < 2; w++) {
    size_t wl = strlen(what[w]);
    if (strncasecmp(rest, what[w], wl) || rest[wl] != '-') continue;
    for (int k = 0; k < 3; k++) {
      if (strcasecmp(rest + wl + 1, kinds[k])) continue;
      snprintf(oname, cap, "x-ratelimit-%s-%s", kinds[k], what[w]);
      if (k < 2) {
        snprintf(ovalue, cap, "%s", value);
        return 1;
      }
      int64_t at = rt_x_parse_rfc3339(value);
      if (at < 0) return 0;
      rt_x_format_go_duration(at - now_ms, ovalue, cap);
      return 1;
    }
  }
  return 0; /* input-tokens / output-tokens limits have no OpenAI header */
}
