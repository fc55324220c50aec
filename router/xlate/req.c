/*
 * xlate_req.c: request bodies translated between OpenAI Chat Completions and Anthropic Messages,
 * both ways (PROTOCOLS.md §3.1-3.2; README "Translation" lists every rule and what is dropped).
 *
 * DESIGN. The body is parsed with jansson, walked field by field against the list of fields the
 * source API defines, and a new body is built. Three kinds of fields:
 *   - translated (messages, tools, stop, max tokens, ...): rewritten into the target's shape;
 *   - known to have no equivalent: dropped when dropping keeps the meaning (seed, logit_bias,
 *     sampling parameters on 2026-10-21), refused with a 400 naming the field when the client
 *     would silently get something else than it asked for (n > 1, logprobs, audio);
 *   - not defined by the source API at all: passed through untouched, as the OpenAI surface does,
 *     so a client can reach target-specific features (an OpenAI SDK sending `thinking` to Claude
 *     through extra body fields) and the mock's `mock` control object reaches the mock.
 * Numbers are printed with 15 significant digits (JSON_REAL_PRECISION(15)): any decimal a person
 * wrote with up to 15 digits comes out as written (0.7 stays 0.7), where the default 17 would
 * print 0.69999999999999996.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "router/xlate/xlate.h"

#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

bool rt_anthropic_version_strict(const char *version) {
  /* versions are dates: compare as strings */
  return version && strlen(version) == 10 && strcmp(version, RT_ANTHROPIC_V2) >= 0;
}

static int fail(struct rt_xerr *e, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct rt_xerr *e, const char *param, const char *fmt, ...) {
  e->status = 400;
  snprintf(e->param, sizeof e->param, "%s", param ? param : "");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
  return -1;
}

/* A field path for messages ("messages[2].content[0]"); silently truncated, never overflows. */
static void pathf(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void pathf(char *dst, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(dst, cap, fmt, ap);
  va_end(ap);
}

static int oom(struct rt_xerr *e) {
  e->status = 500;
  e->param[0] = 0;
  snprintf(e->msg, sizeof e->msg, "out of memory");
  return -1;
}

static bool key_in(const char *key, const char *const *list) {
  for (; *list; list++)
    if (!strcmp(key, *list)) return true;
  return false;
}

static char *dump(json_t *out, size_t *out_len, struct rt_xerr *err) {
  char *s = json_dumps(out, DUMP_FLAGS);
  if (!s) {
    oom(err);
    return NULL;
  }
  *out_len = strlen(s);
  return s;
}

/* A data URL "data:<media type>;base64,<data>": media type and data spans. */
static bool parse_data_url(const char *url, char *mt, size_t mtcap, const char **data) {
  if (strncasecmp(url, "data:", 5)) return false;
  const char *p = url + 5;
  const char *semi = strchr(p, ';');
  const char *comma = strchr(p, ',');
  if (!semi || !comma || semi > comma || strncasecmp(semi, ";base64,", 8) || semi != comma - 7)
    return false;
  size_t l = (size_t)(semi - p);
  if (l == 0 || l >= mtcap) return false;
  memcpy(mt, p, l);
  mt[l] = 0;
  *data = comma + 1;
  return true;
}

/* ================================================================== OpenAI -> Anthropic */

/* Tool ids: Anthropic wants [A-Za-z0-9_-]+. Valid ids are kept verbatim (call_... works as is);
 * any other id maps to "tg_" + a 64-bit FNV-1a hash in hex, deterministically, so a tool_use and
 * its tool_result in the same history still match. */
static json_t *tool_id(const char *id) {
  bool ok = *id != 0;
  for (const char *p = id; *p && ok; p++)
    ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
         *p == '_' || *p == '-';
  if (ok && strlen(id) <= 200) return json_string(id);
  uint64_t h = 1469598103934665603ULL;
  for (const unsigned char *p = (const unsigned char *)id; *p; p++) h = (h ^ *p) * 1099511628211ULL;
  char buf[32];
  pathf(buf, sizeof buf, "tg_%016llx", (unsigned long long)h);
  return json_string(buf);
}

/* The text of a system/developer/tool message's content: a string, or text parts joined by
 * "\n". Returns malloc'd text, or NULL after fail(). */
static char *text_of(const json_t *content, const char *param, struct rt_xerr *err) {
  if (json_is_string(content)) return strdup(json_string_value(content));
  if (json_is_null(content) || !content) return strdup("");
  if (!json_is_array(content)) {
    fail(err, param, "%s: expected a string or an array of text parts.", param);
    return NULL;
  }
  size_t cap = 64, len = 0;
  char *out = malloc(cap);
  if (!out) {
    oom(err);
    return NULL;
  }
  out[0] = 0;
  size_t i;
  json_t *part;
  json_array_foreach(content, i, part) {
    const char *type = json_string_value(json_object_get(part, "type"));
    const json_t *t = json_object_get(part, "text");
    if (!type || strcmp(type, "text") || !json_is_string(t)) {
      free(out);
      fail(err, param, "%s[%zu]: only text parts can be translated here.", param, i);
      return NULL;
    }
    size_t tl = json_string_length(t);
    if (len + tl + 2 > cap) {
      while (len + tl + 2 > cap) cap *= 2;
      char *n = realloc(out, cap);
      if (!n) {
        free(out);
        oom(err);
        return NULL;
      }
      out = n;
    }
    if (i) out[len++] = '\n';
    memcpy(out + len, json_string_value(t), tl);
    len += tl;
    out[len] = 0;
  }
  return out;
}

static json_t *text_block(const char *text) {
  return json_pack("{s:s,s:s}", "type", "text", "text", text);
}

/* An OpenAI image_url part as an Anthropic image block. */
static json_t *image_block(const json_t *part, const char *param, struct rt_xerr *err) {
  const char *url = json_string_value(json_object_get(json_object_get(part, "image_url"), "url"));
  if (!url) {
    fail(err, param, "%s.image_url.url: expected a string.", param);
    return NULL;
  }
  char mt[128];
  const char *data;
  if (parse_data_url(url, mt, sizeof mt, &data))
    return json_pack("{s:s,s:{s:s,s:s,s:s}}", "type", "image", "source", "type", "base64",
                     "media_type", mt, "data", data);
  if (!strncasecmp(url, "https://", 8) || !strncasecmp(url, "http://", 7))
    return json_pack("{s:s,s:{s:s,s:s}}", "type", "image", "source", "type", "url", "url", url);
  fail(err, param, "%s.image_url.url: expected an http(s) URL or a base64 data URL.", param);
  return NULL;
}

/* An OpenAI file part (base64 PDF in file_data) as an Anthropic document block. */
static json_t *file_block(const json_t *part, const char *param, struct rt_xerr *err) {
  const json_t *file = json_object_get(part, "file");
  const char *fd = json_string_value(json_object_get(file, "file_data"));
  char mt[128];
  const char *data;
  if (!fd) {
    fail(err, param, "%s.file: only inline file_data can be translated for this model "
                     "(file_id refers to OpenAI's file storage).", param);
    return NULL;
  }
  if (!parse_data_url(fd, mt, sizeof mt, &data) || strcasecmp(mt, "application/pdf")) {
    fail(err, param, "%s.file.file_data: expected a base64 data URL of a PDF "
                     "(data:application/pdf;base64,...).", param);
    return NULL;
  }
  return json_pack("{s:s,s:{s:s,s:s,s:s}}", "type", "document", "source", "type", "base64",
                   "media_type", "application/pdf", "data", data);
}

/* Content of a user or assistant message as Anthropic blocks appended to BLOCKS. Empty text is
 * skipped (Anthropic rejects empty text blocks). */
static int content_blocks(const json_t *content, bool user, json_t *blocks, const char *param,
                          struct rt_xerr *err) {
  if (!content || json_is_null(content)) return 0;
  if (json_is_string(content)) {
    if (json_string_length(content)) json_array_append_new(blocks, text_block(json_string_value(content)));
    return 0;
  }
  if (!json_is_array(content)) return fail(err, param, "%s: expected a string or an array.", param);
  size_t i;
  json_t *part;
  json_array_foreach(content, i, part) {
    char p[96];
    pathf(p, sizeof p, "%s[%zu]", param, i);
    const char *type = json_string_value(json_object_get(part, "type"));
    if (!json_is_object(part) || !type) return fail(err, p, "%s: expected a content part with a type.", p);
    json_t *b = NULL;
    if (!strcmp(type, "text") || (!user && !strcmp(type, "refusal"))) {
      const json_t *t = json_object_get(part, !strcmp(type, "text") ? "text" : "refusal");
      if (!json_is_string(t)) return fail(err, p, "%s.%s: expected a string.", p, type);
      if (!json_string_length(t)) continue;
      b = text_block(json_string_value(t));
    } else if (user && !strcmp(type, "image_url")) {
      if (!(b = image_block(part, p, err))) return -1;
    } else if (user && !strcmp(type, "file")) {
      if (!(b = file_block(part, p, err))) return -1;
    } else {
      return fail(err, p, "%s: content parts of type '%.40s' cannot be sent to an Anthropic model.",
                  p, type);
    }
    if (!b) return oom(err);
    json_array_append_new(blocks, b);
  }
  return 0;
}

/* An assistant's tool_calls as tool_use blocks appended to BLOCKS. */
static int tool_use_blocks(const json_t *calls, json_t *blocks, const char *param,
                           struct rt_xerr *err) {
  if (!calls || json_is_null(calls)) return 0;
  if (!json_is_array(calls)) return fail(err, param, "%s: expected an array.", param);
  size_t i;
  json_t *c;
  json_array_foreach(calls, i, c) {
    char p[96];
    pathf(p, sizeof p, "%s[%zu]", param, i);
    const char *id = json_string_value(json_object_get(c, "id"));
    const json_t *fn = json_object_get(c, "function");
    const char *name = json_string_value(json_object_get(fn, "name"));
    const json_t *args = json_object_get(fn, "arguments");
    const char *type = json_string_value(json_object_get(c, "type"));
    if (type && strcmp(type, "function"))
      return fail(err, p, "%s: tool calls of type '%.40s' cannot be sent to an Anthropic model.", p, type);
    if (!id || !name) return fail(err, p, "%s: a tool call needs an id and a function name.", p);
    json_t *input;
    if (!args || json_is_null(args) || (json_is_string(args) && json_string_length(args) == 0)) {
      input = json_object();
    } else if (json_is_string(args)) {
      input = json_loads(json_string_value(args), 0, NULL);
      if (!json_is_object(input)) {
        json_decref(input);
        return fail(err, p, "%s.function.arguments: not a JSON object, so it cannot become a "
                            "tool_use input.", p);
      }
    } else {
      return fail(err, p, "%s.function.arguments: expected a string of JSON.", p);
    }
    json_t *b = json_pack("{s:s,s:o,s:s,s:o}", "type", "tool_use", "id", tool_id(id), "name", name,
                          "input", input);
    if (!b) return oom(err);
    json_array_append_new(blocks, b);
  }
  return 0;
}

/* Appends a turn, merging it into the previous one when the role is the same (Anthropic wants
 * alternating user/assistant turns). A "system" turn (2026-10-21, mid-conversation) never
 * merges. Steals BLOCKS. */
static void push_turn(json_t *turns, const char *role, json_t *blocks) {
  if (json_array_size(blocks) == 0) {
    json_decref(blocks);
    return;
  }
  json_t *last = json_array_get(turns, json_array_size(turns) - 1);
  const char *lr = json_string_value(json_object_get(last, "role"));
  if (lr && !strcmp(lr, role) && strcmp(role, "system")) {
    json_array_extend(json_object_get(last, "content"), blocks);
    json_decref(blocks);
    return;
  }
  json_array_append_new(turns, json_pack("{s:s,s:o}", "role", role, "content", blocks));
}

/* Final shape of the turns: tool_result blocks first in each user turn (Anthropic requires them
 * right after the tool_use turn; stable order otherwise), and a turn of one plain text block
 * written as a string. */
static void finish_turns(json_t *turns) {
  size_t i;
  json_t *t;
  json_array_foreach(turns, i, t) {
    json_t *blocks = json_object_get(t, "content");
    if (!json_is_array(blocks)) continue;
    if (!strcmp(json_string_value(json_object_get(t, "role")), "user")) {
      json_t *sorted = json_array();
      for (int pass = 0; pass < 2; pass++) {
        size_t k;
        json_t *b;
        json_array_foreach(blocks, k, b) {
          bool tr = !strcmp(json_string_value(json_object_get(b, "type")), "tool_result");
          if (tr == (pass == 0)) json_array_append(sorted, b);
        }
      }
      json_object_set_new(t, "content", sorted);
      blocks = sorted;
    }
    if (json_array_size(blocks) == 1) {
      json_t *b = json_array_get(blocks, 0);
      if (json_object_size(b) == 2 && !strcmp(json_string_value(json_object_get(b, "type")), "text"))
        json_object_set(t, "content", json_object_get(b, "text"));
    }
  }
}

/* messages -> (system, turns). */
static int o2a_messages(const json_t *msgs, bool strict, json_t *out, json_t **system_parts,
                        struct rt_xerr *err) {
  json_t *turns = json_array();
  json_t *sys = json_array();
  bool leading = true;
  size_t i;
  json_t *m;
  int rc = 0;
  json_array_foreach(msgs, i, m) {
    char p[96];
    pathf(p, sizeof p, "messages[%zu]", i);
    const char *role = json_string_value(json_object_get(m, "role"));
    const json_t *content = json_object_get(m, "content");
    if (!role) {
      rc = fail(err, p, "%s.role: expected a string.", p);
      break;
    }
    char cp[96];
    pathf(cp, sizeof cp, "%s.content", p);
    if (!strcmp(role, "system") || !strcmp(role, "developer")) {
      char *text = text_of(content, cp, err);
      if (!text) {
        rc = -1;
        break;
      }
      if (leading) {
        if (*text) json_array_append_new(sys, json_string(text));
      } else if (strict) {
        /* 2026-10-21 takes system turns in place (SDK 1.12 SystemMessageParam) */
        json_t *b = json_array();
        json_array_append_new(b, text_block(text));
        if (*text) push_turn(turns, "system", b);
        else json_decref(b);
      } else {
        /* 2023-06-01 has no system turn: the instruction rides in the user turn, marked */
        size_t n = strlen(text) + 32;
        char *w = malloc(n);
        if (w) {
          snprintf(w, n, "<system>\n%s\n</system>", text);
          json_t *b = json_array();
          json_array_append_new(b, text_block(w));
          push_turn(turns, "user", b);
          free(w);
        }
      }
      free(text);
      continue;
    }
    leading = false;
    json_t *blocks = json_array();
    if (!strcmp(role, "user")) {
      rc = content_blocks(content, true, blocks, cp, err);
      if (!rc) push_turn(turns, "user", blocks);
    } else if (!strcmp(role, "assistant")) {
      char tp[96];
      pathf(tp, sizeof tp, "%s.tool_calls", p);
      if (json_object_get(m, "function_call") && !json_is_null(json_object_get(m, "function_call"))) {
        rc = fail(err, p, "%s.function_call: the deprecated function_call cannot be translated; "
                          "use tool_calls.", p);
      } else {
        rc = content_blocks(content, false, blocks, cp, err);
        const json_t *refusal = json_object_get(m, "refusal");
        if (!rc && json_is_string(refusal) && json_string_length(refusal))
          json_array_append_new(blocks, text_block(json_string_value(refusal)));
        if (!rc) rc = tool_use_blocks(json_object_get(m, "tool_calls"), blocks, tp, err);
      }
      if (!rc) push_turn(turns, "assistant", blocks);
    } else if (!strcmp(role, "tool")) {
      const char *id = json_string_value(json_object_get(m, "tool_call_id"));
      if (!id) {
        rc = fail(err, p, "%s.tool_call_id: expected a string.", p);
      } else {
        char *text = text_of(content, cp, err);
        if (!text) {
          rc = -1;
        } else {
          json_t *b = json_pack("{s:s,s:o}", "type", "tool_result", "tool_use_id", tool_id(id));
          if (*text) json_object_set_new(b, "content", json_string(text));
          json_array_append_new(blocks, b);
          free(text);
          push_turn(turns, "user", blocks);
        }
      }
    } else if (!strcmp(role, "function")) {
      rc = fail(err, p, "%s: the deprecated 'function' role cannot be translated; use 'tool'.", p);
    } else {
      rc = fail(err, p, "%s.role: unknown role '%.40s'.", p, role);
    }
    if (rc) {
      json_decref(blocks);
      break;
    }
  }
  if (!rc && json_array_size(turns) == 0)
    rc = fail(err, "messages", "messages: an Anthropic model needs at least one user or assistant "
                               "message besides the system prompt.");
  if (rc) {
    json_decref(turns);
    json_decref(sys);
    return -1;
  }
  finish_turns(turns);
  json_object_set_new(out, "messages", turns);
  *system_parts = sys;
  return 0;
}

static int o2a_tools(const json_t *tools, json_t *out, struct rt_xerr *err) {
  if (!tools || json_is_null(tools)) return 0;
  if (!json_is_array(tools)) return fail(err, "tools", "tools: expected an array.");
  json_t *at = json_array();
  size_t i;
  json_t *t;
  json_array_foreach(tools, i, t) {
    char p[64];
    pathf(p, sizeof p, "tools[%zu]", i);
    const char *type = json_string_value(json_object_get(t, "type"));
    const json_t *fn = json_object_get(t, "function");
    const char *name = json_string_value(json_object_get(fn, "name"));
    if (!type || strcmp(type, "function") || !name) {
      json_decref(at);
      return fail(err, p, "%s: only function tools with a name can be sent to an Anthropic model.", p);
    }
    json_t *a = json_pack("{s:s}", "name", name);
    const json_t *desc = json_object_get(fn, "description");
    if (json_is_string(desc)) json_object_set(a, "description", (json_t *)desc);
    json_t *params = json_object_get(fn, "parameters");
    if (json_is_object(params)) {
      json_t *schema = json_deep_copy(params);
      /* input_schema must be an object schema */
      if (!json_object_get(schema, "type")) json_object_set_new(schema, "type", json_string("object"));
      json_object_set_new(a, "input_schema", schema);
    } else {
      json_object_set_new(a, "input_schema", json_pack("{s:s,s:{}}", "type", "object", "properties"));
    }
    const json_t *strict = json_object_get(fn, "strict");
    if (json_is_boolean(strict)) json_object_set(a, "strict", (json_t *)strict);
    json_array_append_new(at, a);
  }
  if (json_array_size(at)) json_object_set_new(out, "tools", at);
  else json_decref(at);
  return 0;
}

static int o2a_tool_choice(const json_t *tc, const json_t *ptc, bool have_tools, json_t *out,
                           struct rt_xerr *err) {
  json_t *choice = NULL;
  if (tc && !json_is_null(tc)) {
    const char *s = json_string_value(tc);
    if (s && !strcmp(s, "auto")) choice = json_pack("{s:s}", "type", "auto");
    else if (s && !strcmp(s, "required")) choice = json_pack("{s:s}", "type", "any");
    else if (s && !strcmp(s, "none")) choice = json_pack("{s:s}", "type", "none");
    else if (json_is_object(tc)) {
      const char *type = json_string_value(json_object_get(tc, "type"));
      const char *name = json_string_value(json_object_get(json_object_get(tc, "function"), "name"));
      if (type && !strcmp(type, "function") && name)
        choice = json_pack("{s:s,s:s}", "type", "tool", "name", name);
    }
    if (!choice)
      return fail(err, "tool_choice", "tool_choice: expected \"auto\", \"required\", \"none\" or "
                                      "{\"type\":\"function\",\"function\":{\"name\":...}} for an "
                                      "Anthropic model.");
  }
  if (json_is_false(ptc) && have_tools) {
    if (!choice) choice = json_pack("{s:s}", "type", "auto");
    if (strcmp(json_string_value(json_object_get(choice, "type")), "none"))
      json_object_set_new(choice, "disable_parallel_tool_use", json_true());
  }
  /* a tool_choice without tools is refused by Anthropic; OpenAI ignores "none"/"auto" then */
  if (choice && !have_tools) {
    const char *type = json_string_value(json_object_get(choice, "type"));
    if (!strcmp(type, "auto") || !strcmp(type, "none")) {
      json_decref(choice);
      return 0;
    }
    json_decref(choice);
    return fail(err, "tool_choice", "tool_choice requires tools.");
  }
  if (choice) json_object_set_new(out, "tool_choice", choice);
  return 0;
}

/* Fields of Chat Completions that have no Anthropic equivalent and are dropped: they tune or
 * label a generation without changing what a client must be able to read back. */
static const char *const o2a_dropped[] = {
    "seed", "frequency_penalty", "presence_penalty", "logit_bias", "store", "prediction",
    "prompt_cache_key", "prompt_cache_retention", "verbosity", "service_tier", "stream_options",
    "metadata", NULL};

char *rt_xreq_openai_to_anthropic(const char *body, size_t len, const struct rt_xreq_opts *o,
                                  size_t *out_len, struct rt_xerr *err) {
  memset(err, 0, sizeof *err);
  json_error_t je;
  json_t *in = json_loadb(body, len, 0, &je);
  if (!json_is_object(in)) {
    json_decref(in);
    fail(err, "", "The request body is not a JSON object.");
    return NULL;
  }
  bool strict = rt_anthropic_version_strict(o->anthropic_version);
  json_t *out = json_object();
  json_t *system = NULL;
  char *text = NULL;
  int rc = 0;
  json_object_set_new(out, "model", json_string(o->upstream_model ? o->upstream_model
                                                                    : json_string_value(json_object_get(in, "model"))));

  /* max tokens: required by Anthropic */
  const json_t *mt = json_object_get(in, "max_completion_tokens");
  const char *mt_name = "max_completion_tokens";
  if (!mt || json_is_null(mt)) {
    mt = json_object_get(in, "max_tokens");
    mt_name = "max_tokens";
  }
  if (mt && !json_is_null(mt)) {
    if (!json_is_integer(mt) || json_integer_value(mt) < 0) {
      rc = fail(err, mt_name, "%s: expected a non-negative integer.", mt_name);
      goto out;
    }
    json_object_set(out, "max_tokens", (json_t *)mt);
  } else {
    json_object_set_new(out, "max_tokens", json_integer(o->default_max_tokens > 0
                                                            ? o->default_max_tokens
                                                            : RT_XLATE_DEFAULT_MAX_TOKENS));
  }

  json_t *sys_parts = NULL;
  rc = o2a_messages(json_object_get(in, "messages"), strict, out, &sys_parts, err);
  if (rc) goto out;
  /* response_format json_object has no Anthropic switch: it becomes an instruction */
  const json_t *rf = json_object_get(in, "response_format");
  const char *rf_type = json_string_value(json_object_get(rf, "type"));
  if (rf && !json_is_null(rf)) {
    if (!rf_type) {
      json_decref(sys_parts);
      rc = fail(err, "response_format", "response_format: expected an object with a type.");
      goto out;
    }
    if (!strcmp(rf_type, "json_object")) {
      json_array_append_new(sys_parts, json_string("Respond with a single valid JSON object and "
                                                   "nothing else."));
    } else if (!strcmp(rf_type, "json_schema")) {
      const json_t *schema = json_object_get(json_object_get(rf, "json_schema"), "schema");
      if (!json_is_object(schema)) {
        json_decref(sys_parts);
        rc = fail(err, "response_format.json_schema.schema",
                  "response_format.json_schema.schema: expected a JSON schema object.");
        goto out;
      }
      json_t *oc = json_object();
      json_object_set_new(oc, "format", json_pack("{s:s,s:O}", "type", "json_schema", "schema", schema));
      json_object_set_new(out, "output_config", oc);
    } else if (strcmp(rf_type, "text")) {
      json_decref(sys_parts);
      rc = fail(err, "response_format.type", "response_format.type '%.40s' cannot be translated.",
                rf_type);
      goto out;
    }
  }
  if (json_array_size(sys_parts) == 1) {
    system = json_incref(json_array_get(sys_parts, 0));
  } else if (json_array_size(sys_parts) > 1) {
    system = json_array();
    size_t i;
    json_t *s;
    json_array_foreach(sys_parts, i, s) json_array_append_new(system, text_block(json_string_value(s)));
  }
  json_decref(sys_parts);
  if (system) {
    /* system goes before messages, as people write it */
    json_t *msgs = json_incref(json_object_get(out, "messages"));
    json_object_del(out, "messages");
    json_object_set_new(out, "system", system);
    json_object_set_new(out, "messages", msgs);
    system = NULL;
  }

  /* stop sequences */
  const json_t *stop = json_object_get(in, "stop");
  if (json_is_string(stop)) {
    json_object_set_new(out, "stop_sequences", json_pack("[O]", stop));
  } else if (json_is_array(stop)) {
    size_t i;
    json_t *s;
    json_array_foreach(stop, i, s) if (!json_is_string(s)) {
      rc = fail(err, "stop", "stop: expected a string or an array of strings.");
      goto out;
    }
    if (json_array_size(stop)) json_object_set(out, "stop_sequences", (json_t *)stop);
  } else if (stop && !json_is_null(stop)) {
    rc = fail(err, "stop", "stop: expected a string or an array of strings.");
    goto out;
  }

  /* sampling: 2026-10-21 answers 400 to any of them, so they are dropped there */
  static const char *const sampling[] = {"temperature", "top_p"};
  for (int k = 0; k < 2; k++) {
    const json_t *v = json_object_get(in, sampling[k]);
    if (!v || json_is_null(v)) continue;
    if (!json_is_number(v)) {
      rc = fail(err, sampling[k], "%s: expected a number.", sampling[k]);
      goto out;
    }
    if (strict) continue;
    double x = json_number_value(v);
    if (k == 0 && x > 1) json_object_set_new(out, "temperature", json_real(1.0));  /* 0-2 -> 0-1 */
    else json_object_set(out, sampling[k], (json_t *)v);
  }

  const json_t *n = json_object_get(in, "n");
  if (n && !json_is_null(n) && !(json_is_integer(n) && json_integer_value(n) == 1)) {
    rc = fail(err, "n", "n: Anthropic models return one choice per request; n must be 1.");
    goto out;
  }
  if (json_is_true(json_object_get(in, "logprobs"))) {
    rc = fail(err, "logprobs", "logprobs: Anthropic models do not return log probabilities.");
    goto out;
  }
  const json_t *tlp = json_object_get(in, "top_logprobs");
  if (tlp && !json_is_null(tlp) && !(json_is_integer(tlp) && json_integer_value(tlp) == 0)) {
    rc = fail(err, "top_logprobs", "top_logprobs: Anthropic models do not return log probabilities.");
    goto out;
  }
  const json_t *audio = json_object_get(in, "audio");
  const json_t *mods = json_object_get(in, "modalities");
  bool wants_audio = audio && !json_is_null(audio);
  size_t mi;
  json_t *mv;
  json_array_foreach(mods, mi, mv) if (json_is_string(mv) && !strcmp(json_string_value(mv), "audio"))
      wants_audio = true;
  if (wants_audio) {
    rc = fail(err, "modalities", "modalities: Anthropic models do not produce audio.");
    goto out;
  }
  const json_t *wso = json_object_get(in, "web_search_options");
  if (wso && !json_is_null(wso)) {
    rc = fail(err, "web_search_options", "web_search_options cannot be translated for an "
                                         "Anthropic model.");
    goto out;
  }
  if ((json_object_get(in, "functions") && !json_is_null(json_object_get(in, "functions"))) ||
      (json_object_get(in, "function_call") && !json_is_null(json_object_get(in, "function_call")))) {
    rc = fail(err, "functions", "functions / function_call are deprecated and not translated; "
                                "use tools / tool_choice.");
    goto out;
  }

  if (json_is_true(json_object_get(in, "stream"))) json_object_set_new(out, "stream", json_true());

  /* user identity: safety_identifier (current) or user (deprecated) */
  const json_t *uid = json_object_get(in, "safety_identifier");
  if (!json_is_string(uid)) uid = json_object_get(in, "user");
  if (json_is_string(uid) && json_string_length(uid))
    json_object_set_new(out, "metadata", json_pack("{s:O}", "user_id", uid));

  rc = o2a_tools(json_object_get(in, "tools"), out, err);
  if (rc) goto out;
  rc = o2a_tool_choice(json_object_get(in, "tool_choice"), json_object_get(in, "parallel_tool_calls"),
                       json_object_get(out, "tools") != NULL, out, err);
  if (rc) goto out;

  const json_t *re = json_object_get(in, "reasoning_effort");
  if (json_is_string(re)) {
    const char *e = json_string_value(re);
    const char *mapped = !strcmp(e, "minimal") || !strcmp(e, "low") ? "low"
                         : !strcmp(e, "medium")                     ? "medium"
                         : !strcmp(e, "high")                       ? "high"
                         : !strcmp(e, "xhigh")                      ? "xhigh"
                                                                    : NULL;
    if (mapped) {
      json_t *oc = json_object_get(out, "output_config");
      if (!oc) {
        oc = json_object();
        json_object_set_new(out, "output_config", oc);
      }
      json_object_set_new(oc, "effort", json_string(mapped));
    } else if (strcmp(e, "none")) {
      rc = fail(err, "reasoning_effort", "reasoning_effort '%.20s' cannot be translated.", e);
      goto out;
    }
  } else if (re && !json_is_null(re)) {
    rc = fail(err, "reasoning_effort", "reasoning_effort: expected a string.");
    goto out;
  }

  /* everything else: fields OpenAI does not define pass through untouched */
  static const char *const handled[] = {
      "model", "messages", "max_completion_tokens", "max_tokens", "temperature", "top_p", "stop",
      "n", "logprobs", "top_logprobs", "audio", "modalities", "web_search_options", "functions",
      "function_call", "stream", "safety_identifier", "user", "tools", "tool_choice",
      "parallel_tool_calls", "response_format", "reasoning_effort", NULL};
  const char *key;
  json_t *v;
  json_object_foreach(in, key, v) {
    if (key_in(key, handled) || key_in(key, o2a_dropped)) continue;
    if (json_object_get(out, key)) continue;
    json_object_set(out, key, v);
  }

out:
  free(text);
  json_decref(system);
  char *res = rc ? NULL : dump(out, out_len, err);
  json_decref(out);
  json_decref(in);
  return res;
}

/* ================================================================== Anthropic -> OpenAI */

/* Text of Anthropic content (a string, or the text of text blocks joined with SEP). Other block
 * types are left to the caller. Returns malloc'd text. */
static char *a_text(const json_t *content, const char *sep) {
  if (json_is_string(content)) return strdup(json_string_value(content));
  size_t cap = 64, len = 0, sl = strlen(sep);
  char *out = malloc(cap);
  if (!out) return NULL;
  out[0] = 0;
  bool first = true;
  size_t i;
  json_t *b;
  json_array_foreach(content, i, b) {
    const json_t *t = json_object_get(b, "text");
    const char *type = json_string_value(json_object_get(b, "type"));
    if (!type || strcmp(type, "text") || !json_is_string(t)) continue;
    size_t tl = json_string_length(t);
    if (len + tl + sl + 1 > cap) {
      while (len + tl + sl + 1 > cap) cap *= 2;
      char *n = realloc(out, cap);
      if (!n) {
        free(out);
        return NULL;
      }
      out = n;
    }
    if (!first) {
      memcpy(out + len, sep, sl);
      len += sl;
    }
    first = false;
    memcpy(out + len, json_string_value(t), tl);
    len += tl;
    out[len] = 0;
  }
  return out;
}

/* An Anthropic image block as an OpenAI image_url part. */
static json_t *a_image_part(const json_t *b, const char *p, struct rt_xerr *err) {
  const json_t *src = json_object_get(b, "source");
  const char *st = json_string_value(json_object_get(src, "type"));
  if (st && !strcmp(st, "base64")) {
    const char *mt = json_string_value(json_object_get(src, "media_type"));
    const char *data = json_string_value(json_object_get(src, "data"));
    if (!mt || !data) {
      fail(err, p, "%s.source: base64 images need media_type and data.", p);
      return NULL;
    }
    size_t n = strlen(mt) + strlen(data) + 16;
    char *url = malloc(n);
    if (!url) {
      oom(err);
      return NULL;
    }
    snprintf(url, n, "data:%s;base64,%s", mt, data);
    json_t *part = json_pack("{s:s,s:{s:s}}", "type", "image_url", "image_url", "url", url);
    free(url);
    return part;
  }
  if (st && !strcmp(st, "url") && json_is_string(json_object_get(src, "url")))
    return json_pack("{s:s,s:{s:O}}", "type", "image_url", "image_url", "url",
                     json_object_get(src, "url"));
  fail(err, p, "%s.source: only base64 and url images can be sent to an OpenAI-compatible model.", p);
  return NULL;
}

/* An Anthropic document block as an OpenAI part (PDF -> file part, plain text -> text part). */
static json_t *a_document_part(const json_t *b, const char *p, struct rt_xerr *err) {
  const json_t *src = json_object_get(b, "source");
  const char *st = json_string_value(json_object_get(src, "type"));
  const char *mt = json_string_value(json_object_get(src, "media_type"));
  const char *data = json_string_value(json_object_get(src, "data"));
  if (st && !strcmp(st, "base64") && mt && !strcasecmp(mt, "application/pdf") && data) {
    size_t n = strlen(data) + 40;
    char *url = malloc(n);
    if (!url) {
      oom(err);
      return NULL;
    }
    snprintf(url, n, "data:application/pdf;base64,%s", data);
    const char *title = json_string_value(json_object_get(b, "title"));
    json_t *part = json_pack("{s:s,s:{s:s,s:s}}", "type", "file", "file", "file_data", url,
                             "filename", title ? title : "document.pdf");
    free(url);
    return part;
  }
  if (st && !strcmp(st, "text") && data) return json_pack("{s:s,s:s}", "type", "text", "text", data);
  fail(err, p, "%s: only base64 PDF and plain-text documents can be sent to an OpenAI-compatible "
               "model.", p);
  return NULL;
}

/* Collapses a parts array of one text part into a string (what every compatible server reads). */
static json_t *collapse_parts(json_t *parts) {
  if (json_array_size(parts) == 1) {
    json_t *p = json_array_get(parts, 0);
    if (!strcmp(json_string_value(json_object_get(p, "type")), "text")) {
      json_t *s = json_incref(json_object_get(p, "text"));
      json_decref(parts);
      return s;
    }
  }
  return parts;
}

/* One Anthropic user turn: tool_result blocks become `tool` messages (first: they must follow the
 * assistant's tool_calls), the rest one user message. */
static int a2o_user(const json_t *content, const char *param, json_t *msgs, struct rt_xerr *err) {
  if (json_is_string(content)) {
    json_array_append_new(msgs, json_pack("{s:s,s:O}", "role", "user", "content", content));
    return 0;
  }
  json_t *parts = json_array();
  size_t i;
  json_t *b;
  json_array_foreach(content, i, b) {
    char p[96];
    pathf(p, sizeof p, "%s[%zu]", param, i);
    const char *type = json_string_value(json_object_get(b, "type"));
    json_t *part = NULL;
    if (!type) {
      json_decref(parts);
      return fail(err, p, "%s.type: expected a string.", p);
    }
    if (!strcmp(type, "text")) {
      if (!json_is_string(json_object_get(b, "text"))) {
        json_decref(parts);
        return fail(err, p, "%s.text: expected a string.", p);
      }
      part = json_pack("{s:s,s:O}", "type", "text", "text", json_object_get(b, "text"));
    } else if (!strcmp(type, "image")) {
      part = a_image_part(b, p, err);
    } else if (!strcmp(type, "document")) {
      part = a_document_part(b, p, err);
    } else if (!strcmp(type, "tool_result")) {
      const char *id = json_string_value(json_object_get(b, "tool_use_id"));
      const json_t *c = json_object_get(b, "content");
      char *text = c ? a_text(c, "\n") : strdup("");
      if (!id || !text) {
        free(text);
        json_decref(parts);
        return id ? oom(err) : fail(err, p, "%s.tool_use_id: expected a string.", p);
      }
      /* OpenAI tool messages carry text only: images in a result follow as user parts */
      size_t k;
      json_t *cb;
      json_array_foreach(c, k, cb) {
        const char *ct = json_string_value(json_object_get(cb, "type"));
        if (ct && !strcmp(ct, "image")) {
          json_t *ip = a_image_part(cb, p, err);
          if (!ip) {
            free(text);
            json_decref(parts);
            return -1;
          }
          json_array_append_new(parts, ip);
        }
      }
      json_t *tm;
      if (json_is_true(json_object_get(b, "is_error"))) {
        size_t n = strlen(text) + 16;
        char *e = malloc(n);
        if (e) snprintf(e, n, "Error: %s", text);
        tm = json_pack("{s:s,s:s,s:s}", "role", "tool", "tool_call_id", id, "content", e ? e : text);
        free(e);
      } else {
        tm = json_pack("{s:s,s:s,s:s}", "role", "tool", "tool_call_id", id, "content", text);
      }
      free(text);
      json_array_append_new(msgs, tm);
      continue;
    } else {
      json_decref(parts);
      return fail(err, p, "%s: blocks of type '%.40s' cannot be sent to an OpenAI-compatible model.",
                  p, type);
    }
    if (!part) {
      json_decref(parts);
      return -1;
    }
    json_array_append_new(parts, part);
  }
  if (json_array_size(parts))
    json_array_append_new(msgs, json_pack("{s:s,s:o}", "role", "user", "content", collapse_parts(parts)));
  else json_decref(parts);
  return 0;
}

static int a2o_assistant(const json_t *content, const char *param, json_t *msgs,
                         struct rt_xerr *err) {
  if (json_is_string(content)) {
    json_array_append_new(msgs, json_pack("{s:s,s:O}", "role", "assistant", "content", content));
    return 0;
  }
  json_t *calls = json_array();
  size_t i;
  json_t *b;
  json_array_foreach(content, i, b) {
    char p[96];
    pathf(p, sizeof p, "%s[%zu]", param, i);
    const char *type = json_string_value(json_object_get(b, "type"));
    if (!type) {
      json_decref(calls);
      return fail(err, p, "%s.type: expected a string.", p);
    }
    if (!strcmp(type, "text") || !strcmp(type, "thinking") || !strcmp(type, "redacted_thinking"))
      continue; /* text is gathered below; thinking has no Chat Completions slot: dropped */
    if (!strcmp(type, "tool_use")) {
      const char *id = json_string_value(json_object_get(b, "id"));
      const char *name = json_string_value(json_object_get(b, "name"));
      const json_t *input = json_object_get(b, "input");
      char *args = input ? json_dumps(input, DUMP_FLAGS | JSON_ENCODE_ANY) : strdup("{}");
      if (!id || !name || !args) {
        free(args);
        json_decref(calls);
        return fail(err, p, "%s: a tool_use block needs an id, a name and an input.", p);
      }
      json_array_append_new(calls, json_pack("{s:s,s:s,s:{s:s,s:s}}", "id", id, "type", "function",
                                             "function", "name", name, "arguments", args));
      free(args);
      continue;
    }
    json_decref(calls);
    return fail(err, p, "%s: blocks of type '%.40s' cannot be sent to an OpenAI-compatible model.",
                p, type);
  }
  char *text = a_text(content, "");
  if (!text) {
    json_decref(calls);
    return oom(err);
  }
  json_t *m = json_pack("{s:s}", "role", "assistant");
  json_object_set_new(m, "content", *text || !json_array_size(calls) ? json_string(text) : json_null());
  free(text);
  if (json_array_size(calls)) json_object_set_new(m, "tool_calls", calls);
  else json_decref(calls);
  json_array_append_new(msgs, m);
  return 0;
}

static int a2o_tools(const json_t *tools, json_t *out, struct rt_xerr *err) {
  if (!tools || json_is_null(tools)) return 0;
  json_t *ot = json_array();
  size_t i;
  json_t *t;
  json_array_foreach(tools, i, t) {
    char p[64];
    pathf(p, sizeof p, "tools[%zu]", i);
    const char *type = json_string_value(json_object_get(t, "type"));
    const char *name = json_string_value(json_object_get(t, "name"));
    if ((type && strcmp(type, "custom")) || !name) {
      json_decref(ot);
      return fail(err, p, "%s: Anthropic server tools (type '%.40s') cannot run on an "
                          "OpenAI-compatible model; only custom tools translate.",
                  p, type ? type : "?");
    }
    json_t *fn = json_pack("{s:s}", "name", name);
    const json_t *desc = json_object_get(t, "description");
    if (json_is_string(desc)) json_object_set(fn, "description", (json_t *)desc);
    const json_t *schema = json_object_get(t, "input_schema");
    if (json_is_object(schema)) json_object_set(fn, "parameters", (json_t *)schema);
    const json_t *strict = json_object_get(t, "strict");
    if (json_is_boolean(strict)) json_object_set(fn, "strict", (json_t *)strict);
    json_array_append_new(ot, json_pack("{s:s,s:o}", "type", "function", "function", fn));
  }
  if (json_array_size(ot)) json_object_set_new(out, "tools", ot);
  else json_decref(ot);
  return 0;
}

static int a2o_tool_choice(const json_t *tc, json_t *out, struct rt_xerr *err) {
  if (!tc || json_is_null(tc)) return 0;
  const char *type = json_string_value(json_object_get(tc, "type"));
  json_t *c = NULL;
  if (type && !strcmp(type, "auto")) c = json_string("auto");
  else if (type && !strcmp(type, "any")) c = json_string("required");
  else if (type && !strcmp(type, "none")) c = json_string("none");
  else if (type && !strcmp(type, "tool") && json_is_string(json_object_get(tc, "name")))
    c = json_pack("{s:s,s:{s:O}}", "type", "function", "function", "name", json_object_get(tc, "name"));
  if (!c) return fail(err, "tool_choice", "tool_choice: expected type auto, any, tool (with a name) or none.");
  json_object_set_new(out, "tool_choice", c);
  if (json_is_true(json_object_get(tc, "disable_parallel_tool_use")))
    json_object_set_new(out, "parallel_tool_calls", json_false());
  return 0;
}

/* Anthropic fields with no Chat Completions equivalent, dropped: they tune Anthropic's service
 * (tiers, caching, geography, containers) or turn on extended thinking, which an OpenAI model
 * either does on its own (reasoning models) or cannot do. */
static const char *const a2o_dropped[] = {"top_k", "thinking", "service_tier", "cache_control",
                                          "container", "inference_geo", "speed", "diagnostics",
                                          "context_management", NULL};

char *rt_xreq_anthropic_to_openai(const char *body, size_t len, const struct rt_xreq_opts *o,
                                  size_t *out_len, struct rt_xerr *err) {
  memset(err, 0, sizeof *err);
  json_t *in = json_loadb(body, len, 0, NULL);
  if (!json_is_object(in)) {
    json_decref(in);
    fail(err, "", "The request body is not a JSON object.");
    return NULL;
  }
  json_t *out = json_object();
  json_t *msgs = json_array();
  int rc = 0;
  json_object_set_new(out, "model", json_string(o->upstream_model ? o->upstream_model
                                                                    : json_string_value(json_object_get(in, "model"))));

  const json_t *sys = json_object_get(in, "system");
  if (json_is_string(sys) && json_string_length(sys)) {
    json_array_append_new(msgs, json_pack("{s:s,s:O}", "role", "system", "content", sys));
  } else if (json_is_array(sys) && json_array_size(sys)) {
    json_t *parts = json_array();
    size_t i;
    json_t *b;
    json_array_foreach(sys, i, b) {
      if (!json_is_string(json_object_get(b, "text"))) {
        json_decref(parts);
        rc = fail(err, "system", "system[%zu]: expected a text block.", i);
        goto out;
      }
      json_array_append_new(parts, json_pack("{s:s,s:O}", "type", "text", "text", json_object_get(b, "text")));
    }
    json_array_append_new(msgs, json_pack("{s:s,s:o}", "role", "system", "content", collapse_parts(parts)));
  }

  size_t i;
  json_t *m;
  json_array_foreach(json_object_get(in, "messages"), i, m) {
    char p[96];
    pathf(p, sizeof p, "messages[%zu].content", i);
    const char *role = json_string_value(json_object_get(m, "role"));
    const json_t *content = json_object_get(m, "content");
    if (!role || !(json_is_string(content) || json_is_array(content))) {
      rc = fail(err, p, "messages[%zu]: expected a role and a string or array content.", i);
      goto out;
    }
    if (!strcmp(role, "user")) rc = a2o_user(content, p, msgs, err);
    else if (!strcmp(role, "assistant")) rc = a2o_assistant(content, p, msgs, err);
    else if (!strcmp(role, "system")) {
      char *t = a_text(content, "\n");
      if (!t) rc = oom(err);
      else json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "system", "content", t));
      free(t);
    } else {
      rc = fail(err, p, "messages[%zu].role: unknown role '%.40s'.", i, role);
    }
    if (rc) goto out;
  }
  json_object_set_new(out, "messages", msgs);
  msgs = NULL;

  const json_t *mt = json_object_get(in, "max_tokens");
  if (json_is_integer(mt)) json_object_set(out, "max_completion_tokens", (json_t *)mt);

  const json_t *stop = json_object_get(in, "stop_sequences");
  if (json_is_array(stop) && json_array_size(stop)) {
    /* OpenAI takes at most 4 */
    json_t *s = json_array();
    for (size_t k = 0; k < json_array_size(stop) && k < 4; k++) json_array_append(s, json_array_get(stop, k));
    json_object_set_new(out, "stop", s);
  }
  static const char *const sampling[] = {"temperature", "top_p"};
  for (int k = 0; k < 2; k++) {
    const json_t *v = json_object_get(in, sampling[k]);
    if (json_is_number(v)) json_object_set(out, sampling[k], (json_t *)v);
  }
  if (json_is_true(json_object_get(in, "stream"))) {
    json_object_set_new(out, "stream", json_true());
    json_object_set_new(out, "stream_options", json_pack("{s:b}", "include_usage", 1));
  }
  const json_t *uid = json_object_get(json_object_get(in, "metadata"), "user_id");
  if (json_is_string(uid)) json_object_set(out, "user", (json_t *)uid);

  rc = a2o_tools(json_object_get(in, "tools"), out, err);
  if (!rc) rc = a2o_tool_choice(json_object_get(in, "tool_choice"), out, err);
  if (rc) goto out;

  const json_t *oc = json_object_get(in, "output_config");
  if (json_is_object(oc)) {
    const json_t *effort = json_object_get(oc, "effort");
    if (json_is_string(effort)) {
      const char *e = json_string_value(effort);
      json_object_set_new(out, "reasoning_effort", json_string(!strcmp(e, "max") ? "xhigh" : e));
    }
    const json_t *fmt = json_object_get(oc, "format");
    if (json_is_object(fmt)) {
      const json_t *schema = json_object_get(fmt, "schema");
      if (!json_is_object(schema)) {
        rc = fail(err, "output_config.format.schema", "output_config.format: expected a json_schema "
                                                      "format with a schema object.");
        goto out;
      }
      json_object_set_new(out, "response_format",
                          json_pack("{s:s,s:{s:s,s:O,s:b}}", "type", "json_schema", "json_schema",
                                    "name", "response", "schema", schema, "strict", 1));
    }
  }
  if (json_object_get(in, "mcp_servers") && !json_is_null(json_object_get(in, "mcp_servers"))) {
    rc = fail(err, "mcp_servers", "mcp_servers cannot be used with an OpenAI-compatible model.");
    goto out;
  }

  static const char *const handled[] = {"model", "system", "messages", "max_tokens",
                                        "stop_sequences", "temperature", "top_p", "stream",
                                        "metadata", "tools", "tool_choice", "output_config",
                                        "mcp_servers", NULL};
  const char *key;
  json_t *v;
  json_object_foreach(in, key, v) {
    if (key_in(key, handled) || key_in(key, a2o_dropped)) continue;
    if (json_object_get(out, key)) continue;
    json_object_set(out, key, v);
  }

out:;
  char *res = rc ? NULL : dump(out, out_len, err);
  json_decref(msgs);
  json_decref(out);
  json_decref(in);
  return res;
}
