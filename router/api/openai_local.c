/*
 * openai_local.c: the OpenAI surface's side of local answers: Chat Completions and Embeddings
 * requests read into the engine's terms (struct rt_gen, struct rt_embed) and the engine's output
 * written back as exactly what OpenAI sends: chat.completion objects, chat.completion.chunk SSE
 * frames ending in `data: [DONE]`, embedding lists, and OpenAI-shaped errors (rt_xerr_render_openai,
 * the one renderer of that shape). call/local.c drives these through struct rt_local_api.
 *
 * What a local model honours, and what it refuses with a 400 naming the field rather than
 * dropping silently, is listed in README "Local models". Unknown top-level fields are refused as
 * OpenAI does ("Unrecognized request argument supplied"), except the informational ones every
 * SDK may send (user, metadata, store, service_tier, ...).
 */
#include <event2/buffer.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router/internal.h"
#include "router/xlate/xlate.h"

#define ADD_LIT(b, lit) evbuffer_add((b), (lit), sizeof(lit) - 1)
#define MAX_STOPS 4          /* OpenAI's limit */
#define MAX_EMBED_INPUTS 2048

void rt_gen_free(struct rt_gen *g) {
  for (size_t i = 0; i < g->n_msgs; i++) {
    free(g->msgs[i].role);
    free(g->msgs[i].content);
  }
  free(g->msgs);
  for (size_t i = 0; i < g->n_stops; i++) free(g->stops[i]);
  free(g->stops);
  free(g->schema);
  for (size_t i = 0; i < g->n_tools; i++) {
    free(g->tools[i].name);
    free(g->tools[i].description);
    free(g->tools[i].parameters);
  }
  free(g->tools);
  memset(g, 0, sizeof *g);
}

/* A JSON value as compact text, key order kept (schemas: properties come in the order given). */
static char *dump(const json_t *v) { return rt_json_dumps_exact(v); }

void rt_embed_free(struct rt_embed *e) {
  for (size_t i = 0; i < e->n_in; i++) {
    free(e->in[i].text);
    free(e->in[i].tokens);
  }
  free(e->in);
  memset(e, 0, sizeof *e);
}

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

/* A number in [LO, HI] (or null: absent, *out unchanged). */
static int num_in(const json_t *v, const char *name, double lo, double hi, double *out,
                  struct rt_xerr *e) {
  if (!v || json_is_null(v)) return 0;
  if (!json_is_number(v))
    return bad(e, name, "Invalid type for '%s': expected a number.", name);
  double x = json_number_value(v);
  if (!(x >= lo && x <= hi))
    return bad(e, name, "Invalid '%s': %g is out of range (%g to %g).", name, x, lo, hi);
  *out = x;
  return 0;
}

static int int_in(const json_t *v, const char *name, int64_t lo, int64_t hi, int64_t *out,
                  struct rt_xerr *e) {
  if (!v || json_is_null(v)) return 0;
  if (!json_is_integer(v))
    return bad(e, name, "Invalid type for '%s': expected an integer.", name);
  json_int_t x = json_integer_value(v);
  if (x < lo || x > hi)
    return bad(e, name, "Invalid '%s': %lld is out of range (%lld to %lld).", name,
               (long long)x, (long long)lo, (long long)hi);
  *out = x;
  return 0;
}

static int bool_of(const json_t *v, const char *name, bool *out, struct rt_xerr *e) {
  if (!v || json_is_null(v)) return 0;
  if (!json_is_boolean(v))
    return bad(e, name, "Invalid type for '%s': expected a boolean.", name);
  *out = json_is_true(v);
  return 0;
}

/* Is the string valid UTF-8? (jansson decodes \u escapes to UTF-8, so this is the content.) */
static bool has_nul(const json_t *s) { return strlen(json_string_value(s)) != json_string_length(s); }

/* A message's content as one text: a string, or an array of text parts (joined). */
static int content_text(const json_t *c, size_t i, bool allow_null, char **out, struct rt_xerr *e) {
  char where[64];
  snprintf(where, sizeof where, "messages[%zu].content", i);
  if (!c || json_is_null(c)) {
    if (!allow_null) return bad(e, where, "Missing required parameter: '%s'.", where);
    *out = strdup("");
    return *out ? 0 : 500;
  }
  if (json_is_string(c)) {
    if (has_nul(c))
      return bad(e, where, "Invalid '%s': the text contains a NUL character.", where);
    *out = strdup(json_string_value(c));
    return *out ? 0 : 500;
  }
  if (!json_is_array(c))
    return bad(e, where, "Invalid type for '%s': expected a string or an array of "
                                       "content parts.", where);
  size_t total = 0;
  for (size_t k = 0; k < json_array_size(c); k++) {
    const json_t *part = json_array_get(c, k);
    const char *type = json_string_value(json_object_get(part, "type"));
    snprintf(where, sizeof where, "messages[%zu].content[%zu]", i, k);
    if (!json_is_object(part) || !type)
      return bad(e, where, "Invalid '%s': expected a content part object with a "
                                         "type.", where);
    if (strcmp(type, "text")) {
      const char *what = !strcmp(type, "image_url") ? "images"
                       : !strcmp(type, "input_audio") ? "audio"
                       : !strcmp(type, "file") ? "files" : NULL;
      if (what)
        return bad(e, where, "Invalid '%s': %s are not supported by local models "
                                           "(send them to a model that accepts them).", where, what);
      return bad(e, where, "Invalid '%s': unknown content part type '%.40s'.", where,
                 type);
    }
    const json_t *t = json_object_get(part, "text");
    if (!json_is_string(t))
      return bad(e, where, "Invalid '%s.text': expected a string.", where);
    if (has_nul(t))
      return bad(e, where, "Invalid '%s.text': the text contains a NUL character.",
                 where);
    total += json_string_length(t);
  }
  char *s = malloc(total + 1);
  if (!s) return 500;
  size_t o = 0;
  for (size_t k = 0; k < json_array_size(c); k++) {
    const json_t *t = json_object_get(json_array_get(c, k), "text");
    memcpy(s + o, json_string_value(t), json_string_length(t));
    o += json_string_length(t);
  }
  s[o] = 0;
  *out = s;
  return 0;
}

/* Top-level fields: what is honoured, what is accepted as information only, what is refused. */
static const char *const honoured[] = {
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "seed",
    "stop", "frequency_penalty", "presence_penalty", "logprobs", "top_logprobs", "stream",
    "stream_options", "n", "response_format", "tools", "tool_choice",
    /* extensions local servers take (llama-server, vLLM), honoured here */
    "top_k", "min_p", "repetition_penalty", "ignore_eos", NULL};
static const char *const informational[] = {"user", "metadata", "store", "service_tier",
                                            "safety_identifier", "prompt_cache_key",
                                            "parallel_tool_calls", NULL};

static bool in_list(const char *const *l, const char *k) {
  for (; *l; l++)
    if (!strcmp(*l, k)) return true;
  return false;
}

/* A field a local model cannot honour yet, when set to something that would change the answer. */
static const char *refused(const char *k, const json_t *v) {
  if (json_is_null(v)) return NULL;
  if (!strcmp(k, "functions") || !strcmp(k, "function_call"))
    return "the deprecated functions API is not supported by local models (use tools and tool_choice)";
  if (!strcmp(k, "logit_bias"))
    return json_is_object(v) && json_object_size(v) == 0 ? NULL : "logit_bias is not supported by local models";
  if (!strcmp(k, "audio")) return "audio output is not supported by local models";
  if (!strcmp(k, "modalities")) {
    for (size_t i = 0; json_is_array(v) && i < json_array_size(v); i++) {
      const char *m = json_string_value(json_array_get(v, i));
      if (!m || strcmp(m, "text")) return "local models only produce text (modalities)";
    }
    return NULL;
  }
  if (!strcmp(k, "prediction")) return "predicted outputs are not supported by local models";
  if (!strcmp(k, "web_search_options")) return "web search is not supported by local models";
  if (!strcmp(k, "reasoning_effort") || !strcmp(k, "verbosity"))
    return "reasoning controls are not supported by local models";
  return "";
}

/* response_format, tools and tool_choice: what the reply must be (README "Structured output"). */
static int parse_format(const json_t *root, struct rt_gen *g, struct rt_xerr *e) {
  const json_t *rf = json_object_get(root, "response_format");
  const json_t *tools = json_object_get(root, "tools");
  const json_t *tc = json_object_get(root, "tool_choice");
  if (rf && !json_is_null(rf)) {
    const char *t = json_string_value(json_object_get(rf, "type"));
    if (!json_is_object(rf) || !t)
      return bad(e, "response_format", "Invalid 'response_format': expected an object with a type.");
    if (!strcmp(t, "json_object")) {
      g->format = RT_GEN_FMT_JSON;
    } else if (!strcmp(t, "json_schema")) {
      const json_t *js = json_object_get(rf, "json_schema");
      const json_t *sch = json_object_get(js, "schema");
      if (!json_is_object(js) || !json_is_string(json_object_get(js, "name")))
        return bad(e, "response_format.json_schema", "Invalid 'response_format.json_schema': "
                   "expected an object with a name (and a schema).");
      if (sch && !json_is_object(sch) && !json_is_boolean(sch))
        return bad(e, "response_format.json_schema.schema", "Invalid "
                   "'response_format.json_schema.schema': expected a JSON Schema object.");
      g->format = RT_GEN_FMT_SCHEMA;
      g->schema = sch ? dump(sch) : strdup("{}");
      /* OpenAI's default is strict: false; a schema the engine cannot express exactly is then
       * compiled without the keywords it cannot express (the reply says which), and with
       * strict: true it is refused */
      g->schema_strict = json_is_true(json_object_get(js, "strict"));
      if (!g->schema) return 500;
    } else if (strcmp(t, "text")) {
      return bad(e, "response_format.type", "Invalid 'response_format.type': '%.40s' (expected "
                 "'text', 'json_object' or 'json_schema').", t);
    }
  }
  const char *choice = json_is_string(tc) ? json_string_value(tc) : NULL;
  if (tc && !json_is_null(tc) && !choice && !json_is_object(tc))
    return bad(e, "tool_choice", "Invalid type for 'tool_choice': expected a string or an object.");
  bool have_tools = json_is_array(tools) && json_array_size(tools) > 0;
  if (tools && !json_is_null(tools) && !json_is_array(tools))
    return bad(e, "tools", "Invalid type for 'tools': expected an array.");
  if (!have_tools || (choice && !strcmp(choice, "none"))) {
    if (json_is_object(tc) && !have_tools)
      return bad(e, "tool_choice", "Invalid 'tool_choice': it names a function but 'tools' is empty.");
    return 0;   /* no tools, or the client said not to call them */
  }
  if (g->format != RT_GEN_FMT_TEXT)
    return bad(e, "tools", "Invalid 'tools': a local model answers either with a tool call or in "
               "the response_format, not both.");
  size_t n = json_array_size(tools);
  g->tools = calloc(n, sizeof *g->tools);
  if (!g->tools) return 500;
  for (size_t i = 0; i < n; i++) {
    const json_t *t = json_array_get(tools, i);
    const json_t *fn = json_object_get(t, "function");
    const char *type = json_string_value(json_object_get(t, "type"));
    const char *name = json_string_value(json_object_get(fn, "name"));
    char where[48];
    snprintf(where, sizeof where, "tools[%zu]", i);
    if (!type || strcmp(type, "function"))
      return bad(e, where, "Invalid '%s': local models call function tools only (type "
                 "'function').", where);
    if (!name || !*name)
      return bad(e, where, "Invalid '%s.function.name': expected a non-empty string.", where);
    for (size_t k = 0; k < g->n_tools; k++)
      if (!strcmp(g->tools[k].name, name))
        return bad(e, where, "Invalid '%s': duplicate function name '%.64s'.", where, name);
    const json_t *params = json_object_get(fn, "parameters");
    if (params && !json_is_object(params))
      return bad(e, where, "Invalid '%s.function.parameters': expected a JSON Schema object.", where);
    struct rt_gen_tool *gt = &g->tools[g->n_tools++];
    const char *desc = json_string_value(json_object_get(fn, "description"));
    gt->name = strdup(name);
    gt->description = desc ? strdup(desc) : NULL;
    gt->parameters = params ? dump(params) : strdup("{\"type\":\"object\"}");
    if (!gt->name || !gt->parameters || (desc && !gt->description)) return 500;
  }
  g->format = RT_GEN_FMT_TOOL;
  g->tool_forced = -1;
  if (json_is_object(tc)) {
    const char *name = json_string_value(json_object_get(json_object_get(tc, "function"), "name"));
    const char *type = json_string_value(json_object_get(tc, "type"));
    if (!type || strcmp(type, "function") || !name)
      return bad(e, "tool_choice", "Invalid 'tool_choice': expected {\"type\": \"function\", "
                 "\"function\": {\"name\": ...}} (local models do not take allowed_tools).");
    for (size_t k = 0; k < g->n_tools; k++)
      if (!strcmp(g->tools[k].name, name)) g->tool_forced = (int)k;
    if (g->tool_forced < 0)
      return bad(e, "tool_choice", "Invalid 'tool_choice': no tool named '%.64s' in 'tools'.", name);
  } else if (!choice || strcmp(choice, "required")) {
    /* "auto" (the default with tools) lets a model answer in text or call a tool; a local model
     * answers under a constraint, which cannot leave that choice open: say so rather than
     * answering in text as if the tools were not there */
    return bad(e, "tool_choice", "Invalid 'tool_choice': local models call tools only when the "
               "call is required: set tool_choice to 'required' or name a function (or 'none' "
               "for a text answer).");
  } else if (g->n_tools == 1) {
    g->tool_forced = 0;
  }
  return 0;
}

static int parse_chat(const char *body, size_t len, struct rt_gen *g, struct rt_xerr *e) {
  memset(g, 0, sizeof *g);
  g->max_tokens = -1;
  g->temperature = g->top_p = g->min_p = -1;
  memset(e, 0, sizeof *e);
  json_error_t je;
  json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, &je);
  if (!json_is_object(root)) {
    json_decref(root);
    return bad(e, NULL, "We could not parse the JSON body of your request.");
  }
  int st = 0;
  const char *k;
  json_t *v;
  json_object_foreach(root, k, v) {
    if (in_list(honoured, k) || in_list(informational, k)) continue;
    const char *why = refused(k, v);
    if (!why) continue;
    if (*why) st = bad(e, k, "Invalid '%s': %s.", k, why);
    else st = bad(e, k, "Unrecognized request argument supplied: %s", k);
    goto out;
  }
  const json_t *msgs = json_object_get(root, "messages");
  size_t nm = json_array_size(msgs);
  g->msgs = calloc(nm ? nm : 1, sizeof *g->msgs);
  if (!g->msgs) {
    st = 500;
    goto out;
  }
  for (size_t i = 0; i < nm; i++) {
    const json_t *m = json_array_get(msgs, i);
    char where[48];
    snprintf(where, sizeof where, "messages[%zu].role", i);
    const char *role = json_string_value(json_object_get(m, "role"));
    if (!role) {
      st = bad(e, where, json_object_get(m, "role") ? "Invalid type for '%s': expected a string."
                                                                  : "Missing required parameter: '%s'.", where);
      goto out;
    }
    const char *as = NULL;
    if (!strcmp(role, "system") || !strcmp(role, "developer")) as = "system";
    else if (!strcmp(role, "user")) as = "user";
    else if (!strcmp(role, "assistant")) as = "assistant";
    else if (!strcmp(role, "tool")) as = "tool";
    else if (!strcmp(role, "function")) {
      st = bad(e, where, "Invalid '%s': 'function' messages (deprecated) are not supported by "
                         "local models; use 'tool'.", where);
      goto out;
    } else {
      st = bad(e, where, "Invalid value for '%s': '%.40s'. Supported values are: "
                                       "'system', 'developer', 'user' and 'assistant'.", where, role);
      goto out;
    }
    char *text = NULL;
    if ((st = content_text(json_object_get(m, "content"), i, !strcmp(as, "assistant"), &text, e)))
      goto out;
    /* an assistant's earlier tool calls are part of the conversation: the model sees them as the
     * JSON it answers tool calls with ({"name":...,"arguments":...}) */
    const json_t *tc = json_object_get(m, "tool_calls");
    if (!strcmp(as, "assistant") && json_is_array(tc) && json_array_size(tc)) {
      size_t ci;
      const json_t *call;
      json_array_foreach(tc, ci, call) {
        const json_t *fn = json_object_get(call, "function");
        const char *name = json_string_value(json_object_get(fn, "name"));
        const char *args = json_string_value(json_object_get(fn, "arguments"));
        if (!name || !args) {
          free(text);
          char w2[64];
          snprintf(w2, sizeof w2, "messages[%zu].tool_calls[%zu]", i, ci);
          st = bad(e, w2, "Invalid '%s': expected {type: 'function', function: {name, "
                             "arguments}}.", w2);
          goto out;
        }
        json_t *av = json_loads(args, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        json_t *env = json_pack("{s:s,s:o}", "name", name, "arguments", av ? av : json_string(args));
        char *js = env ? dump(env) : NULL;
        json_decref(env);
        size_t tl = strlen(text), jl = js ? strlen(js) : 0;
        char *t2 = js ? realloc(text, tl + jl + 2) : NULL;
        if (!t2) {
          free(js);
          free(text);
          st = 500;
          goto out;
        }
        text = t2;
        if (tl) text[tl++] = '\n';
        memcpy(text + tl, js, jl + 1);
        free(js);
      }
    }
    g->msgs[g->n_msgs].role = strdup(as);
    g->msgs[g->n_msgs].content = text;
    g->n_msgs++;
    if (!g->msgs[g->n_msgs - 1].role) {
      st = 500;
      goto out;
    }
  }
  int64_t x = -1;
  if ((st = int_in(json_object_get(root, "max_completion_tokens"), "max_completion_tokens", 1,
                   INT32_MAX, &x, e)))
    goto out;
  if (x < 0 && (st = int_in(json_object_get(root, "max_tokens"), "max_tokens", 1, INT32_MAX, &x, e)))
    goto out;
  g->max_tokens = x > 0 ? (int32_t)x : -1;
  if ((st = num_in(json_object_get(root, "temperature"), "temperature", 0, 2, &g->temperature, e)) ||
      (st = num_in(json_object_get(root, "top_p"), "top_p", 0, 1, &g->top_p, e)) ||
      (st = num_in(json_object_get(root, "min_p"), "min_p", 0, 1, &g->min_p, e)) ||
      (st = num_in(json_object_get(root, "frequency_penalty"), "frequency_penalty", -2, 2,
                   &g->frequency_penalty, e)) ||
      (st = num_in(json_object_get(root, "presence_penalty"), "presence_penalty", -2, 2,
                   &g->presence_penalty, e)) ||
      (st = num_in(json_object_get(root, "repetition_penalty"), "repetition_penalty", 0.01, 10,
                   &g->repetition_penalty, e)))
    goto out;
  int64_t topk = 0, seed = 0, n = 1, tlp = 0;
  if ((st = int_in(json_object_get(root, "top_k"), "top_k", 0, 1 << 20, &topk, e)))
    goto out;
  g->top_k = (int32_t)topk;
  const json_t *sv = json_object_get(root, "seed");
  if (sv && !json_is_null(sv)) {
    if ((st = int_in(sv, "seed", INT64_MIN, INT64_MAX, &seed, e))) goto out;
    g->has_seed = true;
    g->seed = (uint64_t)seed;
  }
  if ((st = int_in(json_object_get(root, "n"), "n", 1, 128, &n, e))) goto out;
  if (n > 1) {
    st = bad(e, "n", "Invalid 'n': local models generate one choice per request "
                                   "(n must be 1).");
    goto out;
  }
  if ((st = bool_of(json_object_get(root, "logprobs"), "logprobs", &g->logprobs, e)) ||
      (st = int_in(json_object_get(root, "top_logprobs"), "top_logprobs", 0, 20, &tlp, e)) ||
      (st = bool_of(json_object_get(root, "ignore_eos"), "ignore_eos", &g->ignore_eos, e)) ||
      (st = bool_of(json_object_get(root, "stream"), "stream", &g->stream, e)))
    goto out;
  if (tlp > 0 && !g->logprobs) {
    st = bad(e, "top_logprobs", "Invalid 'top_logprobs': logprobs must be set to "
                                              "true when top_logprobs is used.");
    goto out;
  }
  g->top_logprobs = (int32_t)tlp;
  const json_t *so = json_object_get(root, "stream_options");
  if (json_is_object(so)) g->include_usage = json_is_true(json_object_get(so, "include_usage"));
  const json_t *stop = json_object_get(root, "stop");
  if (stop && !json_is_null(stop)) {
    size_t ns = json_is_string(stop) ? 1 : json_is_array(stop) ? json_array_size(stop) : (size_t)-1;
    if (ns == (size_t)-1 || ns > MAX_STOPS) {
      st = bad(e, "stop", ns == (size_t)-1 ? "Invalid type for 'stop': expected a "
                                                           "string or an array of strings."
                                                         : "Invalid 'stop': at most 4 stop sequences.");
      goto out;
    }
    g->stops = calloc(ns ? ns : 1, sizeof *g->stops);
    if (!g->stops) {
      st = 500;
      goto out;
    }
    for (size_t i = 0; i < ns; i++) {
      const json_t *s = json_is_string(stop) ? stop : json_array_get(stop, i);
      if (!json_is_string(s) || json_string_length(s) == 0 || has_nul(s)) {
        st = bad(e, "stop", "Invalid 'stop[%zu]': expected a non-empty string.", i);
        goto out;
      }
      if (!(g->stops[g->n_stops++] = strdup(json_string_value(s)))) {
        st = 500;
        goto out;
      }
    }
  }
  if ((st = parse_format(root, g, e))) goto out;
out:
  json_decref(root);
  if (st == 500) {
    e->status = 500;
    snprintf(e->msg, sizeof e->msg, "out of memory");
  }
  if (st) rt_gen_free(g);
  return st;
}

/* ------------------------------------------------------------------ rendering */

static void head(struct evbuffer *b, const char *object, const struct rt_gen_reply *rp) {
  ADD_LIT(b, "{\"id\":");
  rt_json_quote(b, rp->id, strlen(rp->id));
  evbuffer_add_printf(b, ",\"object\":\"%s\",\"created\":%lld,\"model\":", object,
                      (long long)rp->created);
  rt_json_quote(b, rp->model, strlen(rp->model));
  ADD_LIT(b, ",\"system_fingerprint\":\"tiergate-local\"");
}

static void bytes_array(struct evbuffer *b, const char *s, size_t n) {
  ADD_LIT(b, "[");
  for (size_t i = 0; i < n; i++) evbuffer_add_printf(b, "%s%u", i ? "," : "", (unsigned char)s[i]);
  ADD_LIT(b, "]");
}

/* A token's text for the "token" field: its bytes when they are UTF-8, else with U+FFFD for the
 * bytes that are not (the "bytes" field carries them exactly). */
static void token_string(struct evbuffer *b, const char *s, size_t n) {
  char tmp[1024];
  size_t o = 0;
  for (size_t i = 0; i < n && o + 4 < sizeof tmp;) {
    unsigned char c = (unsigned char)s[i];
    size_t l = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    bool ok = l && i + l <= n;
    for (size_t k = 1; ok && k < l; k++) ok = ((unsigned char)s[i + k] & 0xC0) == 0x80;
    if (ok) {
      memcpy(tmp + o, s + i, l);
      o += l;
      i += l;
    } else {
      memcpy(tmp + o, "\xEF\xBF\xBD", 3);
      o += 3;
      i++;
    }
  }
  rt_json_quote(b, tmp, o);
}

static void logprob_value(struct evbuffer *b, float lp) {
  if (isfinite(lp)) evbuffer_add_printf(b, "%.9g", (double)lp);
  else ADD_LIT(b, "-9999.0");   /* what OpenAI reports for an impossible token */
}

static void logprobs(struct evbuffer *b, const struct rt_gen *g, const struct rt_gen_reply *rp) {
  if (!g->logprobs) {
    ADD_LIT(b, "null");
    return;
  }
  ADD_LIT(b, "{\"content\":[");
  for (size_t i = 0; i < rp->n_pieces; i++) {
    const struct rt_gen_piece *p = &rp->pieces[i];
    /* ADD_LIT takes sizeof of its argument: a ?: of two literals is a pointer (8 bytes), which
     * cut the literal to `{"token"` and broke the JSON; so the comma goes separately */
    if (i) ADD_LIT(b, ",");
    ADD_LIT(b, "{\"token\":");
    token_string(b, p->text, p->len);
    ADD_LIT(b, ",\"logprob\":");
    logprob_value(b, p->logprob);
    ADD_LIT(b, ",\"bytes\":");
    bytes_array(b, p->text, p->len);
    ADD_LIT(b, ",\"top_logprobs\":[");
    for (size_t k = 0; k < p->n_top; k++) {
      if (k) ADD_LIT(b, ",");   /* not a ?: inside ADD_LIT: see above */
      ADD_LIT(b, "{\"token\":");
      token_string(b, p->top[k].text, p->top[k].len);
      ADD_LIT(b, ",\"logprob\":");
      logprob_value(b, p->top[k].logprob);
      ADD_LIT(b, ",\"bytes\":");
      bytes_array(b, p->top[k].text, p->top[k].len);
      ADD_LIT(b, "}");
    }
    ADD_LIT(b, "]}");
  }
  ADD_LIT(b, "],\"refusal\":null}");
}

static const char *finish_reason(const struct rt_gen_reply *rp) {
  if (rp->finish == RT_GEN_LENGTH) return "length";
  return rp->tool_name ? "tool_calls" : "stop";
}

static void usage(struct evbuffer *b, const struct rt_gen_reply *rp) {
  evbuffer_add_printf(b, "\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,"
                         "\"total_tokens\":%d,\"prompt_tokens_details\":{\"cached_tokens\":%d},"
                         "\"completion_tokens_details\":{\"reasoning_tokens\":0}}",
                      rp->prompt_tokens, rp->completion_tokens,
                      rp->prompt_tokens + rp->completion_tokens, rp->cached_tokens);
}

static void frame_end(struct evbuffer *b) { ADD_LIT(b, "\n\n"); }

static void chunk(struct evbuffer *b, const struct rt_gen *g, const struct rt_gen_reply *rp,
                  const char *delta_json, bool with_text, bool lp, const char *finish) {
  ADD_LIT(b, "data: ");
  head(b, "chat.completion.chunk", rp);
  ADD_LIT(b, ",\"choices\":[{\"index\":0,\"delta\":{");
  evbuffer_add(b, delta_json, strlen(delta_json));
  if (with_text) {
    ADD_LIT(b, "\"content\":");
    rt_json_quote(b, rp->text ? rp->text : "", rp->len);
  }
  ADD_LIT(b, "},\"logprobs\":");
  if (lp) logprobs(b, g, rp);
  else ADD_LIT(b, "null");
  ADD_LIT(b, ",\"finish_reason\":");
  if (finish) evbuffer_add_printf(b, "\"%s\"", finish);
  else ADD_LIT(b, "null");
  ADD_LIT(b, "}]");
  if (g->include_usage) ADD_LIT(b, ",\"usage\":null");
  ADD_LIT(b, "}");
  frame_end(b);
}

/* A tool call's delta: {"tool_calls":[{"index":0, (first: id, type, name,) "arguments":TEXT}]} */
static void tool_delta(struct evbuffer *b, const struct rt_gen_reply *rp, bool first) {
  ADD_LIT(b, "\"tool_calls\":[{\"index\":0,");
  if (first) {
    ADD_LIT(b, "\"id\":");
    rt_json_quote(b, rp->tool_id, strlen(rp->tool_id));
    ADD_LIT(b, ",\"type\":\"function\",\"function\":{\"name\":");
    rt_json_quote(b, rp->tool_name, strlen(rp->tool_name));
    ADD_LIT(b, ",\"arguments\":");
  } else {
    ADD_LIT(b, "\"function\":{\"arguments\":");
  }
  rt_json_quote(b, rp->text ? rp->text : "", rp->len);
  ADD_LIT(b, "}}]");
}

static void chat_stream_begin(const struct rt_gen *g, const struct rt_gen_reply *rp,
                              struct evbuffer *out) {
  if (rp->tool_name) {   /* the call's id and name come first, its arguments follow */
    struct evbuffer *d = evbuffer_new();
    if (!d) return;
    ADD_LIT(d, "\"role\":\"assistant\",\"content\":null,");
    struct rt_gen_reply empty = *rp;
    empty.text = "";
    empty.len = 0;
    tool_delta(d, &empty, true);
    evbuffer_add(d, "", 1);
    chunk(out, g, rp, (const char *)evbuffer_pullup(d, -1), false, false, NULL);
    evbuffer_free(d);
    return;
  }
  struct rt_gen_reply empty = *rp;
  empty.text = "";
  empty.len = 0;
  chunk(out, g, &empty, "\"role\":\"assistant\",", true, false, NULL);
}

static void chat_stream_delta(const struct rt_gen *g, const struct rt_gen_reply *rp,
                              struct evbuffer *out) {
  if (rp->tool_name) {
    struct evbuffer *d = evbuffer_new();
    if (!d) return;
    tool_delta(d, rp, false);
    evbuffer_add(d, "", 1);
    chunk(out, g, rp, (const char *)evbuffer_pullup(d, -1), false, g->logprobs, NULL);
    evbuffer_free(d);
    return;
  }
  chunk(out, g, rp, "", true, g->logprobs, NULL);
}

static void chat_stream_end(const struct rt_gen *g, const struct rt_gen_reply *rp,
                            struct evbuffer *out) {
  chunk(out, g, rp, "", false, false, finish_reason(rp));
  if (g->include_usage) {
    ADD_LIT(out, "data: ");
    head(out, "chat.completion.chunk", rp);
    ADD_LIT(out, ",\"choices\":[],");
    usage(out, rp);
    ADD_LIT(out, "}");
    frame_end(out);
  }
  ADD_LIT(out, "data: [DONE]\n\n");
}

static void chat_whole(const struct rt_gen *g, const struct rt_gen_reply *rp, struct evbuffer *out) {
  head(out, "chat.completion", rp);
  ADD_LIT(out, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
  if (rp->tool_name) {
    ADD_LIT(out, "null,\"tool_calls\":[{\"id\":");
    rt_json_quote(out, rp->tool_id, strlen(rp->tool_id));
    ADD_LIT(out, ",\"type\":\"function\",\"function\":{\"name\":");
    rt_json_quote(out, rp->tool_name, strlen(rp->tool_name));
    ADD_LIT(out, ",\"arguments\":");
    rt_json_quote(out, rp->text ? rp->text : "", rp->len);
    ADD_LIT(out, "}}]");
  } else {
    rt_json_quote(out, rp->text ? rp->text : "", rp->len);
  }
  ADD_LIT(out, ",\"refusal\":null,\"annotations\":[]},\"logprobs\":");
  logprobs(out, g, rp);
  evbuffer_add_printf(out, ",\"finish_reason\":\"%s\"}],", finish_reason(rp));
  usage(out, rp);
  ADD_LIT(out, "}");
}

static void openai_error_body(int status, const char *type, const char *code, const char *param,
                              const char *message, const char *request_id, struct evbuffer *out) {
  if (!type) type = status >= 500 ? "server_error" : "invalid_request_error";
  rt_xerr_render_openai(out, type, code, param, message);
}

static void openai_stream_error(const char *message, struct evbuffer *out) {
  ADD_LIT(out, "data: ");
  rt_xerr_render_openai(out, "server_error", "local_engine_error", NULL, message);
  frame_end(out);
}

const struct rt_local_api rt_openai_local_chat = {
    .name = "OpenAI chat completions",
    .id_prefix = "chatcmpl-",
    .tool_id_prefix = "call_",
    .busy_status = 503,
    .op = RT_LOCAL_GENERATE,
    .parse = parse_chat,
    .stream_begin = chat_stream_begin,
    .stream_delta = chat_stream_delta,
    .stream_end = chat_stream_end,
    .whole = chat_whole,
    .error = openai_error_body,
    .id_header = "x-request-id",
    .stream_error = openai_stream_error,
};

/* ------------------------------------------------------------------ embeddings */

static int parse_embed(const char *body, size_t len, struct rt_embed *e, struct rt_xerr *err) {
  memset(e, 0, sizeof *e);
  memset(err, 0, sizeof *err);
  json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
  if (!json_is_object(root)) {
    json_decref(root);
    return bad(err, NULL, "We could not parse the JSON body of your request.");
  }
  int st = 0;
  const char *k;
  json_t *v;
  json_object_foreach(root, k, v) {
    if (!strcmp(k, "model") || !strcmp(k, "input") || !strcmp(k, "encoding_format") ||
        !strcmp(k, "dimensions") || !strcmp(k, "user"))
      continue;
    st = bad(err, k, "Unrecognized request argument supplied: %s", k);
    goto out;
  }
  const json_t *fmt = json_object_get(root, "encoding_format");
  if (fmt && !json_is_null(fmt)) {
    const char *f = json_string_value(fmt);
    if (!f || (strcmp(f, "float") && strcmp(f, "base64"))) {
      st = bad(err, "encoding_format", "Invalid 'encoding_format': expected 'float' or "
                                                   "'base64'.");
      goto out;
    }
    e->base64 = !strcmp(f, "base64");
  }
  int64_t dims = 0;
  if ((st = int_in(json_object_get(root, "dimensions"), "dimensions", 1, 1 << 16, &dims, err)))
    goto out;
  e->dimensions = (int32_t)dims;
  const json_t *in = json_object_get(root, "input");
  if (!in || json_is_null(in)) {
    st = bad(err, "input", "Missing required parameter: 'input'.");
    goto out;
  }
  /* one text, one token array, or a list of either */
  bool one = json_is_string(in) ||
             (json_is_array(in) && json_array_size(in) && json_is_integer(json_array_get(in, 0)));
  size_t n = one ? 1 : json_is_array(in) ? json_array_size(in) : 0;
  if (!json_is_string(in) && !json_is_array(in)) {
    st = bad(err, "input", "Invalid type for 'input': expected a string, an array of "
                                       "strings, or token arrays.");
    goto out;
  }
  if (n == 0 || n > MAX_EMBED_INPUTS) {
    st = bad(err, "input", n ? "Invalid 'input': at most %d inputs per request."
                                         : "Invalid 'input': empty.", MAX_EMBED_INPUTS);
    goto out;
  }
  e->in = calloc(n, sizeof *e->in);
  if (!e->in) {
    st = 500;
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    const json_t *x = one ? in : json_array_get(in, i);
    struct rt_embed_in *ei = &e->in[e->n_in++];
    if (json_is_string(x)) {
      if (json_string_length(x) == 0 || has_nul(x)) {
        st = bad(err, "input", "Invalid 'input[%zu]': expected a non-empty string.", i);
        goto out;
      }
      ei->text = strdup(json_string_value(x));
      ei->text_len = json_string_length(x);
      if (!ei->text) {
        st = 500;
        goto out;
      }
    } else if (json_is_array(x) && json_array_size(x)) {
      ei->n_tokens = json_array_size(x);
      ei->tokens = malloc(ei->n_tokens * sizeof *ei->tokens);
      if (!ei->tokens) {
        st = 500;
        goto out;
      }
      for (size_t t = 0; t < ei->n_tokens; t++) {
        const json_t *tok = json_array_get(x, t);
        if (!json_is_integer(tok) || json_integer_value(tok) < 0 ||
            json_integer_value(tok) > INT32_MAX) {
          st = bad(err, "input", "Invalid 'input[%zu][%zu]': expected a token id "
                                             "(a non-negative integer).", i, t);
          goto out;
        }
        ei->tokens[t] = (int32_t)json_integer_value(tok);
      }
    } else {
      st = bad(err, "input", "Invalid 'input[%zu]': expected a non-empty string or "
                                         "token array.", i);
      goto out;
    }
  }
out:
  json_decref(root);
  if (st == 500) {
    err->status = 500;
    snprintf(err->msg, sizeof err->msg, "out of memory");
  }
  if (st) rt_embed_free(e);
  return st;
}

static void base64(struct evbuffer *b, const unsigned char *p, size_t n) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char q[4];
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                 (i + 2 < n ? p[i + 2] : 0);
    q[0] = tab[v >> 18 & 63];
    q[1] = tab[v >> 12 & 63];
    q[2] = i + 1 < n ? tab[v >> 6 & 63] : '=';
    q[3] = i + 2 < n ? tab[v & 63] : '=';
    evbuffer_add(b, q, 4);
  }
}

static void embeddings(const struct rt_embed *e, const char *model, const float *v, size_t n,
                       int32_t dim, int32_t prompt_tokens, struct evbuffer *out) {
  int32_t d = e->dimensions > 0 && e->dimensions < dim ? e->dimensions : dim;
  float *tmp = malloc((size_t)d * sizeof *tmp);
  ADD_LIT(out, "{\"object\":\"list\",\"data\":[");
  for (size_t i = 0; i < n; i++) {
    const float *x = v + i * (size_t)dim;
    /* a shorter vector (dimensions) is renormalised, as OpenAI's are */
    double norm = 0;
    for (int32_t k = 0; k < d; k++) norm += (double)x[k] * x[k];
    double s = d < dim && norm > 0 ? 1.0 / sqrt(norm) : 1.0;
    for (int32_t k = 0; tmp && k < d; k++) tmp[k] = (float)(x[k] * s);
    evbuffer_add_printf(out, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":", i ? "," : "", i);
    if (e->base64 && tmp) {
      ADD_LIT(out, "\"");
      base64(out, (const unsigned char *)tmp, (size_t)d * sizeof *tmp);   /* little-endian float32 */
      ADD_LIT(out, "\"");
    } else {
      ADD_LIT(out, "[");
      for (int32_t k = 0; k < d; k++)
        evbuffer_add_printf(out, "%s%.9g", k ? "," : "", tmp ? (double)tmp[k] : (double)x[k]);
      ADD_LIT(out, "]");
    }
    ADD_LIT(out, "}");
  }
  free(tmp);
  ADD_LIT(out, "],\"model\":");
  rt_json_quote(out, model, strlen(model));
  evbuffer_add_printf(out, ",\"usage\":{\"prompt_tokens\":%d,\"total_tokens\":%d}}", prompt_tokens,
                      prompt_tokens);
}

const struct rt_local_api rt_openai_local_embed = {
    .name = "OpenAI embeddings",
    .id_prefix = "emb-",
    .busy_status = 503,
    .op = RT_LOCAL_EMBED,
    .parse_embed = parse_embed,
    .embeddings = embeddings,
    .error = openai_error_body,
    .id_header = "x-request-id",
};
