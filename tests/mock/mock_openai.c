/*
 * mock_openai.c: the OpenAI Chat Completions surface of the mock upstream
 * (POST .../chat/completions). Turns a request into a reply plan: a chat.completion object, or an
 * SSE stream of chat.completion.chunk frames ending in `data: [DONE]`, or an OpenAI-shaped error.
 *
 * Everything in the reply is a function of the request (see tests/mock/README.md):
 *   prompt_tokens     = sum over messages of (1 + words of the message's text)
 *   completion_tokens = reply words (default 8, capped by max_completion_tokens / max_tokens,
 *                       then finish_reason "length") + reasoning_tokens
 *   reply text        = that many words cycling through the words of the last message's text
 * When `tools` are given (and tool_choice is not "none" and the last message is not a tool
 * result) the reply is one call of the named or first tool, with arguments derived from its
 * JSON schema, so an SDK can do a full tool round trip.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock.h"

/* Fixed, so two identical requests produce identical bodies. */
#define MOCK_CREATED 1732000000

static const char *default_error_type(int status) {
  switch (status) {
    case 400: case 401: case 404: case 409: case 413: case 422: return "invalid_request_error";
    case 403: return "permission_error";
    case 429: return "requests";
    case 503: return "service_unavailable_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

static const char *default_error_code(int status) {
  switch (status) {
    case 401: return "invalid_api_key";
    case 404: return "model_not_found";
    case 429: return "rate_limit_exceeded";
    case 503: return "server_is_overloaded";
    default: return NULL;
  }
}

void mock_openai_error(struct mock_plan *p, int status, const char *type, const char *code,
                       const char *message) {
  json_t *e = json_object();
  json_object_set_new(e, "message", json_string(message ? message : "mock error"));
  json_object_set_new(e, "type", json_string(type ? type : default_error_type(status)));
  json_object_set_new(e, "param", json_null());
  if (!code) code = default_error_code(status);
  json_object_set_new(e, "code", code ? json_string(code) : json_null());
  json_t *body = json_object();
  json_object_set_new(body, "error", e);
  mock_plan_json(p, status, body);
}

/* Text of a message's content: a string, or the text parts joined by spaces. Caller frees. */
static char *content_text(const json_t *content) {
  if (json_is_string(content)) return strdup(json_string_value(content));
  size_t cap = 64, len = 0;
  char *out = malloc(cap);
  if (!out) abort();
  out[0] = 0;
  if (json_is_array(content)) {
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part) {
      const char *t = json_string_value(json_object_get(part, "text"));
      if (!t) continue;
      size_t tl = strlen(t);
      while (len + tl + 2 > cap) {
        cap *= 2;
        out = realloc(out, cap);
        if (!out) abort();
      }
      if (len) out[len++] = ' ';
      memcpy(out + len, t, tl + 1);
      len += tl;
    }
  }
  return out;
}

/* Deterministic arguments for a tool from its JSON schema: each property gets a value of its
 * type (string "mock", integer/number 1, boolean true, array [], object {}), else null. */
static char *tool_arguments(const json_t *fn) {
  json_t *args = json_object();
  json_t *props = json_object_get(json_object_get(fn, "parameters"), "properties");
  const char *name;
  json_t *schema;
  json_object_foreach(props, name, schema) {
    const char *type = json_string_value(json_object_get(schema, "type"));
    json_t *v;
    if (!type) v = json_null();
    else if (!strcmp(type, "string")) v = json_string("mock");
    else if (!strcmp(type, "integer") || !strcmp(type, "number")) v = json_integer(1);
    else if (!strcmp(type, "boolean")) v = json_true();
    else if (!strcmp(type, "array")) v = json_array();
    else if (!strcmp(type, "object")) v = json_object();
    else v = json_null();
    json_object_set_new(args, name, v);
  }
  char *s = json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(args);
  return s;
}

/* The function object of the tool to call, or NULL when the reply is text. */
static const json_t *pick_tool(const json_t *body, const struct mock_opts *o) {
  if (o->tool_calls == 0) return NULL;
  const json_t *tools = json_object_get(body, "tools");
  if (!json_is_array(tools) || json_array_size(tools) == 0) return NULL;
  const json_t *choice = json_object_get(body, "tool_choice");
  if (json_is_string(choice) && !strcmp(json_string_value(choice), "none")) return NULL;
  const json_t *msgs = json_object_get(body, "messages");
  const json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
  const char *role = json_string_value(json_object_get(last, "role"));
  if (role && !strcmp(role, "tool") && o->tool_calls != 1) return NULL;
  const char *want = json_string_value(
      json_object_get(json_object_get(choice, "function"), "name"));
  size_t i;
  json_t *t;
  json_array_foreach(tools, i, t) {
    const json_t *fn = json_object_get(t, "function");
    const char *name = json_string_value(json_object_get(fn, "name"));
    if (name && (!want || !strcmp(want, name))) return fn;
  }
  return NULL;
}

static json_t *usage_json(int prompt, int completion, int cached, int cache_write,
                          int reasoning) {
  json_t *pd = json_pack("{s:i,s:i,s:i}", "cached_tokens", cached, "audio_tokens", 0,
                         "cache_write_tokens", cache_write);
  json_t *cd = json_pack("{s:i,s:i,s:i,s:i}", "reasoning_tokens", reasoning, "audio_tokens", 0,
                         "accepted_prediction_tokens", 0, "rejected_prediction_tokens", 0);
  return json_pack("{s:i,s:i,s:i,s:o,s:o}", "prompt_tokens", prompt, "completion_tokens",
                   completion, "total_tokens", prompt + completion, "prompt_tokens_details", pd,
                   "completion_tokens_details", cd);
}

/* A chat.completion.chunk with the given delta (stolen) and finish reason. */
static json_t *chunk(const char *id, const char *model, json_t *delta, const char *finish,
                     bool usage_null) {
  json_t *choice = json_pack("{s:i,s:o,s:n,s:o}", "index", 0, "delta", delta, "logprobs",
                             "finish_reason", finish ? json_string(finish) : json_null());
  json_t *c = json_pack("{s:s,s:s,s:i,s:s,s:s,s:[o]}", "id", id, "object",
                        "chat.completion.chunk", "created", MOCK_CREATED, "model", model,
                        "system_fingerprint", "fp_mock", "choices", choice);
  if (usage_null) json_object_set_new(c, "usage", json_null());
  return c;
}

void mock_openai_chat(const struct mock_req *rq, const json_t *body, const struct mock_opts *o,
                      struct mock_plan *p) {
  char id[64];
  snprintf(id, sizeof id, "chatcmpl-mock-%llu", (unsigned long long)rq->seq);
  mock_plan_header(p, "x-request-id: req_mock_%llu", (unsigned long long)rq->seq);
  mock_plan_header(p, "openai-processing-ms: 1");
  mock_plan_header(p, "x-ratelimit-limit-requests: 10000");
  mock_plan_header(p, "x-ratelimit-remaining-requests: 9999");
  if (o->retry_after) mock_plan_header(p, "retry-after: %s", o->retry_after);
  if (o->retry_after_ms) mock_plan_header(p, "retry-after-ms: %s", o->retry_after_ms);

  /* Validation, like the real API: the gateway should catch these first, so a test that sees
   * them here has found a gateway that forwarded garbage. */
  if (!json_is_object(body)) {
    mock_openai_error(p, 400, "invalid_request_error", NULL,
                      body ? "mock: body is not a JSON object" : "mock: body is not valid JSON");
    return;
  }
  const char *model = json_string_value(json_object_get(body, "model"));
  const json_t *msgs = json_object_get(body, "messages");
  if (!model || !json_is_array(msgs)) {
    mock_openai_error(p, 400, "invalid_request_error", NULL,
                      "mock: 'model' (string) and 'messages' (array) are required");
    return;
  }
  if (o->status >= 400) {
    if (o->error_body) {
      p->status = o->status;
      mock_plan_frame_str(p, o->error_body);
    } else {
      mock_openai_error(p, o->status, o->error_type, o->error_code,
                        o->error_message ? o->error_message : "mock: injected error");
    }
    return;
  }

  /* Usage. */
  int prompt = 0;
  size_t i;
  json_t *m;
  json_array_foreach(msgs, i, m) prompt += 1 + mock_content_words(json_object_get(m, "content"));
  if (o->prompt_tokens >= 0) prompt = o->prompt_tokens;
  int cached = o->cached_tokens > 0 ? o->cached_tokens : 0;
  if (cached > prompt) cached = prompt;
  int cache_write = o->cache_write_tokens > 0 ? o->cache_write_tokens : 0;
  if (cache_write > prompt - cached) cache_write = prompt - cached;
  int reasoning = o->reasoning_tokens > 0 ? o->reasoning_tokens : 0;

  /* Reply. */
  const json_t *tool = pick_tool(body, o);
  const char *finish = "stop";
  char *text = NULL, *args = NULL;
  int words;
  if (tool) {
    words = o->completion_tokens >= 0 ? o->completion_tokens : MOCK_DEFAULT_COMPLETION_TOKENS;
    args = o->tool_arguments ? strdup(o->tool_arguments) : tool_arguments(tool);
    finish = "tool_calls";
  } else if (o->content) {
    text = strdup(o->content);
    words = o->completion_tokens >= 0 ? o->completion_tokens : mock_count_words(text);
  } else if (o->huge_bytes > 0) {
    text = malloc((size_t)o->huge_bytes + 1);
    if (!text) abort();
    memset(text, 'x', (size_t)o->huge_bytes);
    text[o->huge_bytes] = 0;
    words = o->completion_tokens >= 0 ? o->completion_tokens : (int)((o->huge_bytes + 3) / 4);
  } else {
    words = o->completion_tokens >= 0 ? o->completion_tokens : MOCK_DEFAULT_COMPLETION_TOKENS;
    json_t *cap = json_object_get(body, "max_completion_tokens");
    if (!json_is_integer(cap)) cap = json_object_get(body, "max_tokens");
    if (json_is_integer(cap) && json_integer_value(cap) >= 0 &&
        json_integer_value(cap) < words) {
      words = (int)json_integer_value(cap);
      finish = "length";
    }
    const json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
    char *src = content_text(json_object_get(last, "content"));
    text = mock_reply_text(src, words);
    free(src);
  }
  int completion = words + reasoning;
  char call_id[64];
  snprintf(call_id, sizeof call_id, "call_mock_%llu", (unsigned long long)rq->seq);
  const char *tool_name = tool ? json_string_value(json_object_get(tool, "name")) : NULL;

  const json_t *stream = json_object_get(body, "stream");
  if (!json_is_true(stream)) {
    json_t *msg = json_pack("{s:s,s:o,s:n,s:[]}", "role", "assistant", "content",
                            text ? json_string(text) : json_null(), "refusal", "annotations");
    if (tool) {
      json_object_set_new(
          msg, "tool_calls",
          json_pack("[{s:s,s:s,s:{s:s,s:s}}]", "id", call_id, "type", "function", "function",
                    "name", tool_name, "arguments", args));
    }
    json_t *res = json_pack(
        "{s:s,s:s,s:i,s:s,s:[{s:i,s:o,s:n,s:s}],s:o,s:s,s:s}", "id", id, "object",
        "chat.completion", "created", MOCK_CREATED, "model", model, "choices", "index", 0,
        "message", msg, "logprobs", "finish_reason", finish, "usage",
        usage_json(prompt, completion, cached, cache_write, reasoning), "service_tier",
        "default", "system_fingerprint", "fp_mock");
    mock_plan_json(p, 200, res);
    free(text);
    free(args);
    return;
  }

  /* Streaming. */
  p->chunked = true;
  p->content_type = "text/event-stream; charset=utf-8";
  bool include_usage =
      json_is_true(json_object_get(json_object_get(body, "stream_options"), "include_usage")) &&
      !o->no_usage;
  mock_plan_sse_json(p, NULL,
                     chunk(id, model,
                           json_pack("{s:s,s:s,s:n}", "role", "assistant", "content", "",
                                     "refusal"),
                           NULL, include_usage));
  if (tool) {
    json_t *first = json_pack("{s:[{s:i,s:s,s:s,s:{s:s,s:s}}]}", "tool_calls", "index", 0, "id",
                              call_id, "type", "function", "function", "name", tool_name,
                              "arguments", "");
    mock_plan_sse_json(p, NULL, chunk(id, model, first, NULL, include_usage));
    /* Arguments in two fragments, as a real model streams them. */
    size_t al = strlen(args), half = al / 2;
    for (int k = 0; k < 2; k++) {
      size_t off = k ? half : 0, len = k ? al - half : half;
      json_t *frag = json_stringn(args + off, len);
      if (!frag) frag = json_string("");  /* a split inside a UTF-8 sequence: keep going */
      json_t *d = json_pack("{s:[{s:i,s:{s:o}}]}", "tool_calls", "index", 0, "function",
                            "arguments", frag);
      mock_plan_sse_json(p, NULL, chunk(id, model, d, NULL, include_usage));
    }
  } else if (o->huge_bytes > 0 && !o->content) {
    /* Huge replies go in 16 KiB pieces, not one word per frame. */
    size_t tl = strlen(text);
    for (size_t off = 0; off < tl; off += 16384) {
      size_t len = tl - off < 16384 ? tl - off : 16384;
      json_t *d = json_pack("{s:o}", "content", json_stringn(text + off, len));
      mock_plan_sse_json(p, NULL, chunk(id, model, d, NULL, include_usage));
    }
  } else {
    /* One frame per word: "w0", " w1", " w2", ... concatenate to the text. */
    const char *s = text;
    while (*s) {
      const char *e = s + 1;
      while (*e && *e != ' ') e++;
      json_t *piece = json_stringn(s, (size_t)(e - s));
      if (!piece) piece = json_string("");
      mock_plan_sse_json(p, NULL,
                         chunk(id, model, json_pack("{s:o}", "content", piece), NULL,
                               include_usage));
      s = e;
    }
  }
  mock_plan_sse_json(p, NULL, chunk(id, model, json_object(), finish, include_usage));
  if (include_usage) {
    json_t *u = json_pack("{s:s,s:s,s:i,s:s,s:s,s:[],s:o}", "id", id, "object",
                          "chat.completion.chunk", "created", MOCK_CREATED, "model", model,
                          "system_fingerprint", "fp_mock", "choices", "usage",
                          usage_json(prompt, completion, cached, cache_write, reasoning));
    mock_plan_sse_json(p, NULL, u);
  }
  mock_plan_frame_str(p, "data: [DONE]\n\n");

  /* A mid-stream error replaces everything after frame N (the SDK throws on it). */
  if (o->error_after_chunks >= 0 && (size_t)o->error_after_chunks < p->n_frames) {
    for (size_t k = (size_t)o->error_after_chunks; k < p->n_frames; k++)
      free(p->frames[k].data);
    p->n_frames = (size_t)o->error_after_chunks;
    json_t *e = json_pack("{s:{s:s,s:s,s:n,s:s}}", "error", "message",
                          o->error_message ? o->error_message : "mock: injected stream error",
                          "type", o->error_type ? o->error_type : "server_error", "param",
                          "code", o->error_code ? o->error_code : "server_error");
    mock_plan_sse_json(p, NULL, e);
  }
  free(text);
  free(args);
}
