/*
 * fuzz_xlate.c: libFuzzer target for the OpenAI <-> Anthropic translation (router/xlate_*.c)
 * and the Anthropic surface's pure parts (router/anthropic.c), all of which read bytes chosen by
 * clients or upstreams. Besides "no crash, no leak, no overread", each target checks what the
 * gateway relies on:
 *   - a request translation that succeeds yields a JSON object with the fields the target API
 *     requires (model, messages; max_tokens for Anthropic);
 *   - a stream translation writes only whole frames of the client's format: `data: ` frames
 *     for OpenAI clients, frames opening with `event: ` for Anthropic clients, at every split;
 *   - a passthrough body built from a validated request is valid JSON again.
 *
 * The first input byte picks the target. Built as a fuzzer only with -Dfuzz=true (CC=clang); the
 * corpus in corpus/xlate/ is replayed by every normal test run.
 */
#include <event2/buffer.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "router/internal.h"
#include "router/xlate/xlate.h"

static void check_object(const char *s, size_t n, bool anthropic) {
  json_t *j = json_loadb(s, n, 0, NULL);
  if (!json_is_object(j) || !json_is_string(json_object_get(j, "model")) ||
      !json_is_array(json_object_get(j, "messages")))
    abort();
  if (anthropic && !json_is_integer(json_object_get(j, "max_tokens"))) abort();
  json_decref(j);
}

static void requests(const char *d, size_t n, int which) {
  struct rt_xreq_opts o = {"up-model", which == 0 ? RT_ANTHROPIC_V1 : RT_ANTHROPIC_V2, 0};
  struct rt_xerr e;
  size_t len = 0;
  char *out = which < 2 ? rt_xreq_openai_to_anthropic(d, n, &o, &len, &e)
                        : rt_xreq_anthropic_to_openai(d, n, &o, &len, &e);
  if (out) check_object(out, len, which < 2);
  else if (e.status != 400 && e.status != 500) abort();
  free(out);
}

static void replies(const char *d, size_t n) {
  struct pol_usage u;
  bool have;
  size_t len;
  char *a = rt_xresp_anthropic_to_openai(d, n, "m", 1, &len, &u, &have);
  if (a) {
    json_t *j = json_loadb(a, len, 0, NULL);
    if (!json_is_array(json_object_get(j, "choices"))) abort();
    json_decref(j);
  }
  free(a);
  char *b = rt_xresp_openai_to_anthropic(d, n, "m", &len, &u, &have);
  if (b) {
    json_t *j = json_loadb(b, len, 0, NULL);
    if (!json_is_array(json_object_get(j, "content"))) abort();
    json_decref(j);
  }
  free(b);
  struct rt_xerror x;
  rt_xerr_anthropic_to_openai(529, d, n, &x);
  if (x.status < 400 || !x.type) abort();
  rt_xerr_openai_to_anthropic(503, d, n, &x);
  if (x.status < 400 || !x.type) abort();
}

struct run {
  struct rt_xstream *xs;
  struct evbuffer *out;
  int rc;
};

static int on_event(void *ud, const struct up_sse_event *ev) {
  struct run *r = ud;
  r->rc = rt_xs_event(r->xs, ev->event, ev->data, ev->data_len, r->out);
  if (r->rc == RT_XS_BAD) {
    rt_xs_fail(r->xs, "api_error", "bad", r->out);
    r->rc = RT_XS_FAILED;
  }
  return r->rc != RT_XS_MORE;
}

/* Every frame of OUT is a whole frame of the client's format. */
static void check_frames(struct evbuffer *out, bool anthropic_client) {
  size_t n = evbuffer_get_length(out);
  char *s = malloc(n + 1);
  evbuffer_copyout(out, s, n);
  s[n] = 0;
  size_t pos = 0;
  while (pos < n) {
    if (strncmp(s + pos, anthropic_client ? "event: " : "data: ", anthropic_client ? 7 : 6)) abort();
    char *end = strstr(s + pos, "\n\n");
    if (!end) abort();
    pos = (size_t)(end - s) + 2;
  }
  free(s);
}

static void stream(const char *d, size_t n, bool a2o, size_t cut) {
  struct rt_xs_opts o = {"m", 1, true, "msg_f"};
  struct run r = {rt_xs_new(a2o ? RT_XS_A2O : RT_XS_O2A, &o), evbuffer_new(), RT_XS_MORE};
  struct up_sse p;
  up_sse_init(&p, 1 << 16);
  if (cut > n) cut = n;
  if (up_sse_feed(&p, d, cut, on_event, &r) == 0) up_sse_feed(&p, d + cut, n - cut, on_event, &r);
  if (r.rc == RT_XS_MORE) rt_xs_eof(r.xs, r.out);
  (void)rt_xs_usage(r.xs);
  check_frames(r.out, !a2o);
  up_sse_free(&p);
  rt_xs_free(r.xs);
  evbuffer_free(r.out);
}

static void surface(const char *d, size_t n) {
  struct rt_chat_info info;
  const char *param;
  char msg[300];
  for (int strict = 0; strict < 2; strict++) {
    if (rt_anthropic_validate(d, n, strict, strict, &info, &param, msg, sizeof msg) == 0) {
      size_t len;
      char *b = rt_anthropic_upstream_body(d, n, "up", strict, &len);
      if (!b) abort();
      json_t *j = json_loadb(b, len, 0, NULL);
      if (!json_is_object(j) || strcmp(json_string_value(json_object_get(j, "model")), "up")) abort();
      json_decref(j);
      free(b);
      if (rt_anthropic_estimate_tokens(d, n) < 0) abort();
      rt_chat_info_free(&info);
    }
  }
}

static void times(const char *d, size_t n) {
  char s[64], out[64], name[128], value[128];
  size_t l = n < sizeof s - 1 ? n : sizeof s - 1;
  memcpy(s, d, l);
  s[l] = 0;
  int64_t ms = rt_x_parse_go_duration(s);
  if (ms >= 0) {
    rt_x_format_go_duration(ms, out, sizeof out);
    if (rt_x_parse_go_duration(out) != ms) abort(); /* formatting round-trips */
  }
  rt_x_parse_rfc3339(s);
  rt_xhdr_openai_to_anthropic("x-ratelimit-reset-tokens", s, 1795176000000LL, name, value, sizeof name);
  rt_xhdr_anthropic_to_openai("anthropic-ratelimit-tokens-reset", s, 1795176000000LL, name, value, sizeof name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > (1u << 20)) return 0;
  const char *d = (const char *)data + 1;
  size_t n = size - 1;
  switch (data[0] % 8) {
  case 0: requests(d, n, 0); requests(d, n, 1); break;
  case 1: requests(d, n, 2); break;
  case 2: replies(d, n); break;
  case 3: stream(d, n, true, n); stream(d, n, true, n / 2); break;
  case 4: stream(d, n, false, n); stream(d, n, false, n / 3); break;
  case 5: surface(d, n); break;
  case 6: times(d, n); break;
  default: requests(d, n, 0); requests(d, n, 2); surface(d, n); break;
  }
  return 0;
}
