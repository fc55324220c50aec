/*
 * mock_anthropic.c: the Anthropic Messages surface of the mock upstream
 * (POST .../v1/messages and POST .../v1/messages/count_tokens). Turns a request into a reply
 * plan: a message object, or an SSE stream of Anthropic events (each with its `event:` line), or
 * an Anthropic-shaped error. The engine applies every fault control to it unchanged.
 *
 * The same rules as the OpenAI surface (tests/mock/README.md), in Anthropic's terms:
 *   prompt            = (1 + words of `system`, when present) + sum over messages of
 *                       (1 + words of the message's text); reported as input_tokens = prompt -
 *                       cached - cache writes, cache_read_input_tokens, cache_creation_input_tokens
 *                       (so the canonical prompt is the same number both surfaces report)
 *   output_tokens     = reply words (default 8, capped by max_tokens -> stop_reason max_tokens)
 *                       + reasoning_tokens (then a thinking block comes first and
 *                       output_tokens_details.thinking_tokens says how many)
 *   reply text        = words cycling through the last message's text (tool results included);
 *                       a stop sequence found in it cuts it -> stop_reason stop_sequence
 * Tools: with `tools` (and tool_choice not none, and the last turn not a tool result) the reply
 * is one tool_use block (id toolu_mock_<seq>) of the named or first tool with input built from
 * its input_schema, stop_reason tool_use; streamed as input_json_delta "" then two halves.
 *
 * Like the real API it refuses what a gateway should never forward: no anthropic-version
 * header, no max_tokens (messages), and temperature/top_p/top_k under version 2026-10-21.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock.h"

static const char *default_error_type(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 402: return "billing_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 504: return "timeout_error";
    case 529: return "overloaded_error";
    default: return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

/* Anthropic's error body; CODE is unused (Anthropic errors have none). */
void mock_anthropic_error(struct mock_plan *p, int status, const char *type, const char *code,
                          const char *message) {
  (void)code;
  json_t *body = json_pack("{s:s,s:{s:s,s:s},s:s}", "type", "error", "error", "type",
                           type ? type : default_error_type(status), "message",
                           message ? message : "mock error", "request_id", "req_mock_error");
  mock_plan_json(p, status, body);
}

/* Text of Anthropic content: a string, or the text of text blocks and of tool_result contents,
 * joined by spaces. Caller frees. */
static void append(char **out, size_t *len, size_t *cap, const char *t) {
  size_t tl = strlen(t);
  while (*len + tl + 2 > *cap) {
    *cap *= 2;
    *out = realloc(*out, *cap);
    if (!*out) abort();
  }
  if (*len) (*out)[(*len)++] = ' ';
  memcpy(*out + *len, t, tl + 1);
  *len += tl;
}

static void content_text_into(const json_t *content, char **out, size_t *len, size_t *cap) {
  if (json_is_string(content)) {
    append(out, len, cap, json_string_value(content));
    return;
  }
  size_t i;
  json_t *b;
  json_array_foreach(content, i, b) {
    const char *t = json_string_value(json_object_get(b, "text"));
    if (t) append(out, len, cap, t);
    const char *type = json_string_value(json_object_get(b, "type"));
    if (type && !strcmp(type, "tool_result")) content_text_into(json_object_get(b, "content"), out, len, cap);
  }
}

static char *content_text(const json_t *content) {
  size_t cap = 64, len = 0;
  char *out = malloc(cap);
  if (!out) abort();
  out[0] = 0;
  content_text_into(content, &out, &len, &cap);
  return out;
}

static bool has_tool_result(const json_t *content) {
  size_t i;
  json_t *b;
  json_array_foreach(content, i, b) {
    const char *type = json_string_value(json_object_get(b, "type"));
    if (type && !strcmp(type, "tool_result")) return true;
  }
  return false;
}

/* Deterministic input for a tool from its input_schema (string "mock", integer/number 1,
 * boolean true, array [], object {}, else null). */
static json_t *tool_input(const json_t *tool) {
  json_t *args = json_object();
  json_t *props = json_object_get(json_object_get(tool, "input_schema"), "properties");
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
  return args;
}

static const json_t *pick_tool(const json_t *body, const struct mock_opts *o) {
  if (o->tool_calls == 0) return NULL;
  const json_t *tools = json_object_get(body, "tools");
  if (!json_is_array(tools) || json_array_size(tools) == 0) return NULL;
  const json_t *choice = json_object_get(body, "tool_choice");
  const char *ct = json_string_value(json_object_get(choice, "type"));
  if (ct && !strcmp(ct, "none")) return NULL;
  const json_t *msgs = json_object_get(body, "messages");
  const json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
  if (has_tool_result(json_object_get(last, "content")) && o->tool_calls != 1) return NULL;
  const char *want = ct && !strcmp(ct, "tool") ? json_string_value(json_object_get(choice, "name")) : NULL;
  size_t i;
  json_t *t;
  json_array_foreach(tools, i, t) {
    const char *name = json_string_value(json_object_get(t, "name"));
    if (name && (!want || !strcmp(want, name))) return t;
  }
  return NULL;
}

/* Prompt tokens by the mock's rule. */
static int prompt_tokens(const json_t *body) {
  int prompt = 0;
  const json_t *sys = json_object_get(body, "system");
  if (sys && !json_is_null(sys)) {
    char *t = content_text(sys);
    prompt += 1 + mock_count_words(t);
    free(t);
  }
  size_t i;
  json_t *m;
  json_array_foreach(json_object_get(body, "messages"), i, m) {
    char *t = content_text(json_object_get(m, "content"));
    prompt += 1 + mock_count_words(t);
    free(t);
  }
  return prompt;
}

static void std_headers(const struct mock_req *rq, const struct mock_opts *o, struct mock_plan *p) {
  mock_plan_header(p, "request-id: req_mock_%llu", (unsigned long long)rq->seq);
  mock_plan_header(p, "anthropic-ratelimit-requests-limit: 4000");
  mock_plan_header(p, "anthropic-ratelimit-requests-remaining: 3999");
  mock_plan_header(p, "anthropic-ratelimit-requests-reset: 2026-11-20T12:00:05Z");
  mock_plan_header(p, "anthropic-ratelimit-input-tokens-limit: 400000");
  if (o->retry_after) mock_plan_header(p, "retry-after: %s", o->retry_after);
  if (o->retry_after_ms) mock_plan_header(p, "retry-after-ms: %s", o->retry_after_ms);
}

/* Checks shared by both routes; false when an error plan was made. */
static bool check_request(const struct mock_req *rq, const json_t *body, bool count,
                          struct mock_plan *p) {
  const char *version = mock_req_header(rq, "anthropic-version");
  if (!version) {
    mock_anthropic_error(p, 400, NULL, NULL, "mock: anthropic-version header is required");
    return false;
  }
  if (!json_is_object(body)) {
    mock_anthropic_error(p, 400, NULL, NULL,
                         body ? "mock: body is not a JSON object" : "mock: body is not valid JSON");
    return false;
  }
  if (!json_is_string(json_object_get(body, "model")) || !json_is_array(json_object_get(body, "messages"))) {
    mock_anthropic_error(p, 400, NULL, NULL, "mock: 'model' (string) and 'messages' (array) are required");
    return false;
  }
  if (!count && !json_is_integer(json_object_get(body, "max_tokens"))) {
    mock_anthropic_error(p, 400, NULL, NULL, "max_tokens: Field required");
    return false;
  }
  if (!strcmp(version, "2026-10-21")) {
    static const char *const gone[] = {"temperature", "top_p", "top_k"};
    for (int k = 0; k < 3; k++) {
      if (json_object_get(body, gone[k])) {
        char m[96];
        snprintf(m, sizeof m, "%s: Extra inputs are not permitted", gone[k]);
        mock_anthropic_error(p, 400, NULL, NULL, m);
        return false;
      }
    }
  }
  return true;
}

static json_t *usage_json(int input, int cache_read, int cache_write, int output, int thinking) {
  json_t *u = json_pack("{s:i,s:i,s:i,s:i}", "input_tokens", input, "cache_creation_input_tokens",
                        cache_write, "cache_read_input_tokens", cache_read, "output_tokens", output);
  if (thinking > 0)
    json_object_set_new(u, "output_tokens_details", json_pack("{s:i}", "thinking_tokens", thinking));
  return u;
}

static json_t *event(const char *type) { return json_pack("{s:s}", "type", type); }

void mock_anthropic_count_tokens(const struct mock_req *rq, const json_t *body,
                                 const struct mock_opts *o, struct mock_plan *p) {
  std_headers(rq, o, p);
  if (!check_request(rq, body, true, p)) return;
  if (o->status >= 400) {
    mock_anthropic_error(p, o->status, o->error_type, NULL,
                         o->error_message ? o->error_message : "mock: injected error");
    return;
  }
  int prompt = o->prompt_tokens >= 0 ? o->prompt_tokens : prompt_tokens(body);
  mock_plan_json(p, 200, json_pack("{s:i}", "input_tokens", prompt));
}

void mock_anthropic_messages(const struct mock_req *rq, const json_t *body,
                             const struct mock_opts *o, struct mock_plan *p) {
  std_headers(rq, o, p);
  if (!check_request(rq, body, false, p)) return;
  if (o->status >= 400) {
    if (o->error_body) {
      p->status = o->status;
      mock_plan_frame_str(p, o->error_body);
    } else {
      mock_anthropic_error(p, o->status, o->error_type, NULL,
                           o->error_message ? o->error_message : "mock: injected error");
    }
    return;
  }
  const char *model = json_string_value(json_object_get(body, "model"));
  const json_t *msgs = json_object_get(body, "messages");

  /* usage */
  int prompt = o->prompt_tokens >= 0 ? o->prompt_tokens : prompt_tokens(body);
  int cached = o->cached_tokens > 0 ? o->cached_tokens : 0;
  if (cached > prompt) cached = prompt;
  int cache_write = o->cache_write_tokens > 0 ? o->cache_write_tokens : 0;
  if (cache_write > prompt - cached) cache_write = prompt - cached;
  int input = prompt - cached - cache_write;
  int reasoning = o->reasoning_tokens > 0 ? o->reasoning_tokens : 0;

  /* reply */
  const json_t *tool = pick_tool(body, o);
  const char *stop = "end_turn";
  const char *stop_seq = NULL;
  char *text = NULL;
  json_t *input_obj = NULL;
  int words;
  if (tool) {
    words = o->completion_tokens >= 0 ? o->completion_tokens : MOCK_DEFAULT_COMPLETION_TOKENS;
    input_obj = o->tool_arguments ? json_loads(o->tool_arguments, 0, NULL) : tool_input(tool);
    if (!json_is_object(input_obj)) {
      json_decref(input_obj);
      input_obj = json_object();
    }
    stop = "tool_use";
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
    json_int_t cap = json_integer_value(json_object_get(body, "max_tokens"));
    if (cap >= 0 && cap < words) {
      words = (int)cap;
      stop = "max_tokens";
    }
    const json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
    char *src = content_text(json_object_get(last, "content"));
    text = mock_reply_text(src, words);
    free(src);
    /* a stop sequence in the reply cuts it there (the sequence itself is not included) */
    size_t si;
    json_t *sq;
    json_array_foreach(json_object_get(body, "stop_sequences"), si, sq) {
      const char *s = json_string_value(sq);
      char *at = s && *s ? strstr(text, s) : NULL;
      if (at) {
        *at = 0;
        words = mock_count_words(text);
        stop = "stop_sequence";
        stop_seq = s;
        break;
      }
    }
  }
  int output = words + reasoning;
  char id[64], tool_id[64];
  snprintf(id, sizeof id, "msg_mock_%llu", (unsigned long long)rq->seq);
  snprintf(tool_id, sizeof tool_id, "toolu_mock_%llu", (unsigned long long)rq->seq);
  const char *tool_name = tool ? json_string_value(json_object_get(tool, "name")) : NULL;

  if (!json_is_true(json_object_get(body, "stream"))) {
    json_t *content = json_array();
    if (reasoning > 0)
      json_array_append_new(content, json_pack("{s:s,s:s,s:s}", "type", "thinking", "thinking",
                                               "mock thinking", "signature", "mock_signature"));
    if (tool)
      json_array_append_new(content, json_pack("{s:s,s:s,s:s,s:O}", "type", "tool_use", "id",
                                               tool_id, "name", tool_name, "input", input_obj));
    else
      json_array_append_new(content, json_pack("{s:s,s:s}", "type", "text", "text", text));
    json_t *res = json_pack("{s:s,s:s,s:s,s:s,s:o,s:s,s:o,s:o}", "id", id, "type", "message",
                            "role", "assistant", "model", model, "content", content,
                            "stop_reason", stop, "stop_sequence",
                            stop_seq ? json_string(stop_seq) : json_null(), "usage",
                            usage_json(input, cached, cache_write, output, reasoning));
    mock_plan_json(p, 200, res);
    free(text);
    json_decref(input_obj);
    return;
  }

  /* Streaming: every frame with its event: line, as the API sends them. */
  p->chunked = true;
  p->content_type = "text/event-stream; charset=utf-8";
  json_t *ms = json_pack("{s:s,s:s,s:s,s:s,s:[],s:n,s:n,s:o}", "id", id, "type", "message", "role",
                         "assistant", "model", model, "content", "stop_reason", "stop_sequence",
                         "usage", usage_json(input, cached, cache_write, 1, 0));
  json_t *start = event("message_start");
  json_object_set_new(start, "message", ms);
  mock_plan_sse_json(p, "message_start", start);
  int index = 0;
  if (reasoning > 0) {
    mock_plan_sse_json(p, "content_block_start",
                       json_pack("{s:s,s:i,s:{s:s,s:s,s:s}}", "type", "content_block_start", "index",
                                 index, "content_block", "type", "thinking", "thinking", "",
                                 "signature", ""));
    mock_plan_sse_json(p, "content_block_delta",
                       json_pack("{s:s,s:i,s:{s:s,s:s}}", "type", "content_block_delta", "index",
                                 index, "delta", "type", "thinking_delta", "thinking", "mock thinking"));
    mock_plan_sse_json(p, "content_block_delta",
                       json_pack("{s:s,s:i,s:{s:s,s:s}}", "type", "content_block_delta", "index",
                                 index, "delta", "type", "signature_delta", "signature", "mock_signature"));
    mock_plan_sse_json(p, "content_block_stop",
                       json_pack("{s:s,s:i}", "type", "content_block_stop", "index", index));
    index++;
  }
  if (tool) {
    mock_plan_sse_json(p, "content_block_start",
                       json_pack("{s:s,s:i,s:{s:s,s:s,s:s,s:{}}}", "type", "content_block_start",
                                 "index", index, "content_block", "type", "tool_use", "id", tool_id,
                                 "name", tool_name, "input"));
    char *args = json_dumps(input_obj, JSON_COMPACT | JSON_SORT_KEYS);
    size_t al = strlen(args), half = al / 2;
    /* like the API: an empty first fragment, then the JSON in pieces */
    const char *frags[3] = {"", NULL, NULL};
    char *a1 = strndup(args, half), *a2 = strdup(args + half);
    frags[1] = a1;
    frags[2] = a2;
    for (int k = 0; k < 3; k++)
      mock_plan_sse_json(p, "content_block_delta",
                         json_pack("{s:s,s:i,s:{s:s,s:s}}", "type", "content_block_delta", "index",
                                   index, "delta", "type", "input_json_delta", "partial_json",
                                   frags[k]));
    free(a1);
    free(a2);
    free(args);
  } else {
    mock_plan_sse_json(p, "content_block_start",
                       json_pack("{s:s,s:i,s:{s:s,s:s}}", "type", "content_block_start", "index",
                                 index, "content_block", "type", "text", "text", ""));
    mock_plan_sse_json(p, "ping", event("ping"));
    const char *s = text;
    size_t tl = strlen(text);
    bool huge = o->huge_bytes > 0 && !o->content;
    while (*s) {
      const char *e;
      if (huge) {
        e = s + (tl - (size_t)(s - text) < 16384 ? tl - (size_t)(s - text) : 16384);
      } else {
        e = s + 1;
        while (*e && *e != ' ') e++;
      }
      json_t *piece = json_stringn(s, (size_t)(e - s));
      if (!piece) piece = json_string("");
      mock_plan_sse_json(p, "content_block_delta",
                         json_pack("{s:s,s:i,s:{s:s,s:o}}", "type", "content_block_delta", "index",
                                   index, "delta", "type", "text_delta", "text", piece));
      s = e;
    }
  }
  mock_plan_sse_json(p, "content_block_stop",
                     json_pack("{s:s,s:i}", "type", "content_block_stop", "index", index));
  json_t *md = json_pack("{s:s,s:{s:s,s:o},s:o}", "type", "message_delta", "delta", "stop_reason",
                         stop, "stop_sequence", stop_seq ? json_string(stop_seq) : json_null(),
                         "usage", json_pack("{s:i}", "output_tokens", output));
  if (reasoning > 0)
    json_object_set_new(json_object_get(md, "usage"), "output_tokens_details",
                        json_pack("{s:i}", "thinking_tokens", reasoning));
  mock_plan_sse_json(p, "message_delta", md);
  mock_plan_sse_json(p, "message_stop", event("message_stop"));

  /* A mid-stream error replaces everything after frame N (the SDK throws on it). */
  if (o->error_after_chunks >= 0 && (size_t)o->error_after_chunks < p->n_frames) {
    for (size_t k = (size_t)o->error_after_chunks; k < p->n_frames; k++) free(p->frames[k].data);
    p->n_frames = (size_t)o->error_after_chunks;
    json_t *e = json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error", "type",
                          o->error_type ? o->error_type : "overloaded_error", "message",
                          o->error_message ? o->error_message : "Overloaded");
    mock_plan_sse_json(p, "error", e);
  }
  free(text);
  json_decref(input_obj);
}
