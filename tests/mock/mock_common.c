/*
 * mock_common.c: what every surface of the mock upstream shares: the behaviour options (parsed
 * from the model name suffix and the body's "mock" object), the reply plan, and the token
 * accounting rules (see tests/mock/README.md for the rules the tests rely on).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock.h"

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) {
    fputs("mock_upstream: out of memory\n", stderr);
    abort();
  }
  return p;
}

static char *xstrdup(const char *s) {
  size_t n = strlen(s);
  char *d = xmalloc(n + 1);
  memcpy(d, s, n + 1);
  return d;
}

/* ------------------------------------------------------------------ options */

void mock_opts_init(struct mock_opts *o) {
  memset(o, 0, sizeof *o);
  o->delay_ms = -1;
  o->first_chunk_delay_ms = -1;
  o->chunk_delay_ms = -1;
  o->stall_after_chunks = -1;
  o->stall_ms = -1;
  o->reset_after_chunks = -1;
  o->close_after_chunks = -1;
  o->hang_after_chunks = -1;
  o->reset_after_bytes = -1;
  o->status = -1;
  o->completion_tokens = -1;
  o->prompt_tokens = -1;
  o->cached_tokens = -1;
  o->cache_write_tokens = -1;
  o->reasoning_tokens = -1;
  o->huge_bytes = -1;
  o->error_after_chunks = -1;
  o->tool_calls = -1;
  o->fail_times = -1;
}

void mock_opts_free(struct mock_opts *o) {
  free(o->retry_after);
  free(o->retry_after_ms);
  free(o->error_type);
  free(o->error_code);
  free(o->error_message);
  free(o->error_body);
  free(o->content);
  free(o->tool_arguments);
  free(o->tag);
  free(o->raw_header);
  free(o->raw_body);
  free(o->raw_content_type);
  mock_opts_init(o);
}

enum opt_kind { OPT_INT, OPT_LONG, OPT_BOOL, OPT_STR };

struct opt_def {
  const char *name;
  enum opt_kind kind;
  size_t off;
  long max;  /* for numbers */
};

#define OFF(f) offsetof(struct mock_opts, f)
static const struct opt_def opt_defs[] = {
    {"delay_ms", OPT_INT, OFF(delay_ms), 3600000},
    {"latency_ms", OPT_INT, OFF(delay_ms), 3600000},
    {"first_chunk_delay_ms", OPT_INT, OFF(first_chunk_delay_ms), 3600000},
    {"chunk_delay_ms", OPT_INT, OFF(chunk_delay_ms), 3600000},
    {"stall_after_chunks", OPT_INT, OFF(stall_after_chunks), INT_MAX},
    {"stall_ms", OPT_INT, OFF(stall_ms), 3600000},
    {"reset_after_chunks", OPT_INT, OFF(reset_after_chunks), INT_MAX},
    {"close_after_chunks", OPT_INT, OFF(close_after_chunks), INT_MAX},
    {"hang_after_chunks", OPT_INT, OFF(hang_after_chunks), INT_MAX},
    {"reset_after_bytes", OPT_LONG, OFF(reset_after_bytes), LONG_MAX},
    {"close", OPT_BOOL, OFF(close), 1},
    {"status", OPT_INT, OFF(status), 999},
    {"retry_after", OPT_STR, OFF(retry_after), 0},
    {"retry_after_ms", OPT_STR, OFF(retry_after_ms), 0},
    {"error_type", OPT_STR, OFF(error_type), 0},
    {"error_code", OPT_STR, OFF(error_code), 0},
    {"error_message", OPT_STR, OFF(error_message), 0},
    {"error_body", OPT_STR, OFF(error_body), 0},
    {"content", OPT_STR, OFF(content), 0},
    {"completion_tokens", OPT_INT, OFF(completion_tokens), MOCK_MAX_COMPLETION_TOKENS},
    {"prompt_tokens", OPT_INT, OFF(prompt_tokens), INT_MAX},
    {"cached_tokens", OPT_INT, OFF(cached_tokens), INT_MAX},
    {"cache_write_tokens", OPT_INT, OFF(cache_write_tokens), INT_MAX},
    {"reasoning_tokens", OPT_INT, OFF(reasoning_tokens), MOCK_MAX_COMPLETION_TOKENS},
    {"huge_bytes", OPT_LONG, OFF(huge_bytes), MOCK_MAX_HUGE_BYTES},
    {"error_after_chunks", OPT_INT, OFF(error_after_chunks), INT_MAX},
    {"tool_calls", OPT_INT, OFF(tool_calls), 1},
    {"tool_arguments", OPT_STR, OFF(tool_arguments), 0},
    {"no_usage", OPT_BOOL, OFF(no_usage), 1},
    {"tag", OPT_STR, OFF(tag), 0},
    {"fail_times", OPT_INT, OFF(fail_times), INT_MAX},
    {"raw_header", OPT_STR, OFF(raw_header), 0},
    {"raw_body", OPT_STR, OFF(raw_body), 0},
    {"raw_content_type", OPT_STR, OFF(raw_content_type), 0},
};

static int hexdig(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

char *mock_percent_decode(const char *s, size_t *len) {
  size_t n = strlen(s), o = 0;
  char *d = xmalloc(n + 1);
  for (size_t i = 0; i < n; i++) {
    int a, b;
    if (s[i] == '%' && i + 2 < n + 1 && (a = hexdig(s[i + 1])) >= 0 && (b = hexdig(s[i + 2])) >= 0) {
      d[o++] = (char)(a * 16 + b);
      i += 2;
    } else {
      d[o++] = s[i];
    }
  }
  d[o] = 0;
  *len = o;
  return d;
}

static const struct opt_def *opt_find(const char *name, size_t len) {
  for (size_t i = 0; i < sizeof opt_defs / sizeof opt_defs[0]; i++)
    if (strlen(opt_defs[i].name) == len && !memcmp(opt_defs[i].name, name, len))
      return &opt_defs[i];
  return NULL;
}

/* Sets one option from text (model-name form) or from a JSON value (one of the two is given). */
static int opt_set(struct mock_opts *o, const struct opt_def *d, const char *text,
                   const json_t *jv, char *err, size_t errlen) {
  char *field = (char *)o + d->off;
  if (d->kind == OPT_STR) {
    char *s;
    if (text) {
      s = xstrdup(text);
    } else if (json_is_string(jv)) {
      s = xstrdup(json_string_value(jv));
    } else if (json_is_integer(jv)) {
      char tmp[32];
      snprintf(tmp, sizeof tmp, "%lld", (long long)json_integer_value(jv));
      s = xstrdup(tmp);
    } else if (json_is_object(jv) || json_is_array(jv)) {
      s = json_dumps(jv, JSON_COMPACT);  /* tool_arguments may be given as an object */
      if (!s) s = xstrdup("");
    } else {
      snprintf(err, errlen, "mock option '%s' must be a string", d->name);
      return -1;
    }
    free(*(char **)field);
    *(char **)field = s;
    return 0;
  }
  long long v;
  if (text) {
    if (d->kind == OPT_BOOL && (!strcmp(text, "true") || !strcmp(text, "false"))) {
      v = !strcmp(text, "true");
    } else {
      char *end;
      errno = 0;
      v = strtoll(text, &end, 10);
      if (errno || end == text || *end) {
        snprintf(err, errlen, "mock option '%s' wants a number, got '%s'", d->name, text);
        return -1;
      }
    }
  } else if (json_is_integer(jv)) {
    v = json_integer_value(jv);
  } else if (json_is_boolean(jv)) {
    v = json_is_true(jv);
  } else {
    snprintf(err, errlen, "mock option '%s' wants a number", d->name);
    return -1;
  }
  if (v < 0 || v > d->max) {
    snprintf(err, errlen, "mock option '%s' out of range: %lld (0..%ld)", d->name, v, d->max);
    return -1;
  }
  switch (d->kind) {
    case OPT_INT: *(int *)field = (int)v; break;
    case OPT_LONG: *(long *)field = (long)v; break;
    case OPT_BOOL: *(bool *)field = v != 0; break;
    case OPT_STR: break;
  }
  return 0;
}

int mock_opts_apply_kv(struct mock_opts *o, const char *kv, char *err, size_t errlen) {
  const char *p = kv;
  while (*p) {
    const char *end = strchr(p, ';');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len) {
      const char *eq = memchr(p, '=', len);
      if (!eq) {
        snprintf(err, errlen, "mock option '%.*s' in the model name has no '='", (int)len, p);
        return -1;
      }
      const struct opt_def *d = opt_find(p, (size_t)(eq - p));
      if (!d) {
        snprintf(err, errlen, "unknown mock option '%.*s' in the model name", (int)(eq - p), p);
        return -1;
      }
      size_t vlen = len - (size_t)(eq + 1 - p);
      char *val = xmalloc(vlen + 1);
      memcpy(val, eq + 1, vlen);
      val[vlen] = 0;
      int rc = opt_set(o, d, val, NULL, err, errlen);
      free(val);
      if (rc) return rc;
    }
    p += len;
    if (*p == ';') p++;
  }
  return 0;
}

int mock_opts_apply_json(struct mock_opts *o, const json_t *obj, char *err, size_t errlen) {
  if (!json_is_object(obj)) {
    snprintf(err, errlen, "\"mock\" must be an object");
    return -1;
  }
  const char *key;
  json_t *val;
  json_object_foreach((json_t *)obj, key, val) {
    const struct opt_def *d = opt_find(key, strlen(key));
    if (!d) {
      snprintf(err, errlen, "unknown mock option '%s'", key);
      return -1;
    }
    if (json_is_null(val)) continue;
    if (opt_set(o, d, NULL, val, err, errlen)) return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------ plan */

void mock_plan_init(struct mock_plan *p) {
  memset(p, 0, sizeof *p);
  p->status = 200;
  p->content_type = "application/json";
}

void mock_plan_free(struct mock_plan *p) {
  for (size_t i = 0; i < p->n_frames; i++) free(p->frames[i].data);
  free(p->frames);
  free(p->headers);
  mock_plan_init(p);
}

void mock_plan_header(struct mock_plan *p, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 2, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n > sizeof line - 3) n = (int)(sizeof line - 3);
  /* A header value must not smuggle a line break into the response. */
  for (int i = 0; i < n; i++)
    if (line[i] == '\r' || line[i] == '\n') line[i] = ' ';
  line[n++] = '\r';
  line[n++] = '\n';
  char *h = realloc(p->headers, p->headers_len + (size_t)n + 1);
  if (!h) abort();
  memcpy(h + p->headers_len, line, (size_t)n);
  p->headers_len += (size_t)n;
  h[p->headers_len] = 0;
  p->headers = h;
}

void mock_plan_frame(struct mock_plan *p, char *data, size_t len) {
  if (p->n_frames == p->cap_frames) {
    size_t cap = p->cap_frames ? p->cap_frames * 2 : 16;
    struct mock_frame *f = realloc(p->frames, cap * sizeof *f);
    if (!f) abort();
    p->frames = f;
    p->cap_frames = cap;
  }
  p->frames[p->n_frames].data = data;
  p->frames[p->n_frames].len = len;
  p->n_frames++;
}

void mock_plan_frame_str(struct mock_plan *p, const char *s) {
  mock_plan_frame(p, xstrdup(s), strlen(s));
}

void mock_plan_sse_json(struct mock_plan *p, const char *event, json_t *j) {
  char *s = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  if (!s) abort();
  size_t n = strlen(s);
  size_t cap = n + (event ? strlen(event) : 0) + 32;
  char *f = xmalloc(cap);
  int len = event ? snprintf(f, cap, "event: %s\ndata: %s\n\n", event, s)
                  : snprintf(f, cap, "data: %s\n\n", s);
  free(s);
  mock_plan_frame(p, f, (size_t)len);
}

void mock_plan_json(struct mock_plan *p, int status, json_t *j) {
  p->status = status;
  p->content_type = "application/json";
  char *s = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  if (!s) abort();
  mock_plan_frame(p, s, strlen(s));
}

/* ------------------------------------------------------------------ requests and text */

const char *mock_req_header(const struct mock_req *rq, const char *lower_name) {
  for (int i = 0; i < rq->n_headers; i++)
    if (!strcmp(rq->headers[i].name, lower_name)) return rq->headers[i].value;
  return NULL;
}

int mock_count_words(const char *s) {
  int n = 0;
  bool in = false;
  for (; *s; s++) {
    bool sp = isspace((unsigned char)*s);
    if (!sp && !in) n++;
    in = !sp;
  }
  return n;
}

int mock_content_words(const json_t *content) {
  if (json_is_string(content)) return mock_count_words(json_string_value(content));
  if (!json_is_array(content)) return 0;
  int n = 0;
  size_t i;
  json_t *part;
  json_array_foreach(content, i, part) {
    json_t *t = json_object_get(part, "text");
    if (json_is_string(t)) n += mock_count_words(json_string_value(t));
  }
  return n;
}

char *mock_reply_text(const char *source, int n) {
  if (!source) source = "";
  if (!mock_count_words(source)) source = "mock";
  /* Reply bytes are capped like every other buffer: long source words cannot blow it up. */
  size_t cap = 256, len = 0;
  char *out = xmalloc(cap);
  const char *p = source;
  for (int w = 0; w < n; w++) {
    while (*p && isspace((unsigned char)*p)) p++;
    if (!*p) {
      p = source;
      while (isspace((unsigned char)*p)) p++;
    }
    const char *start = p;
    while (*p && !isspace((unsigned char)*p)) p++;
    size_t wl = (size_t)(p - start);
    if (len + wl + 2 > (size_t)MOCK_MAX_HUGE_BYTES) break;
    while (len + wl + 2 > cap) {
      cap *= 2;
      out = realloc(out, cap);
      if (!out) abort();
    }
    if (w) out[len++] = ' ';
    memcpy(out + len, start, wl);
    len += wl;
  }
  out[len] = 0;
  return out;
}
