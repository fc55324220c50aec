/*
 * bench_xlate.c: what translating a streamed reply costs, against passing the same stream
 * through untranslated. A streamed reply of N tokens (default 500: the mock sends one SSE frame
 * per word) is fetched four ways through `tiergate serve` in front of the mock upstream:
 *
 *   oa->oa  OpenAI client, OpenAI upstream        passthrough (re-framed event by event)
 *   an->oa  OpenAI client, Anthropic upstream     translated A2O
 *   an->an  Anthropic client, Anthropic upstream  passthrough
 *   oa->an  Anthropic client, OpenAI upstream     translated O2A
 *
 * Translation overhead = translated - passthrough of the SAME upstream stream: an->oa minus
 * an->an (Anthropic upstream), oa->an minus oa->oa (OpenAI upstream). Measured end to end
 * (time to the last byte of the client's stream, requests one at a time, the four paths
 * interleaved so machine noise spreads evenly), plus the gateway's CPU time per stream (from
 * /proc, paths run in blocks) and, in-process, the translator's own CPU per stream fed the
 * recorded upstream bytes (upstream/sse.c + rt_xs_event) next to a minimal passthrough
 * (parse + re-frame) of the same bytes.
 *
 *   build/tests/bench/bench_xlate [--tokens 500] [--iters 300] [--inproc-iters 2000]
 * Environment: TIERGATE_BIN, MOCK_UPSTREAM_BIN (default: beside this binary in the build dir).
 * Prints a Markdown table. Not a test: on a busy machine the numbers carry the noise (say so).
 */
#include <curl/curl.h>
#include <event2/buffer.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mock/harness.h"
#include "router/internal.h"
#include "router/xlate/xlate.h"

enum { P_OA_OA, P_AN_OA, P_AN_AN, P_OA_AN, NPATH };
static const char *const path_name[NPATH] = {"oa->oa (passthrough)", "an->oa (translated A2O)",
                                             "an->an (passthrough)", "oa->an (translated O2A)"};

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  int i = (int)(p * (n - 1) + 0.5);
  return v[i < n ? i : n - 1];
}

/* CPU time (user + system) of PID in milliseconds, from /proc. */
static double cpu_ms(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  const char *p = strrchr(buf, ')');
  unsigned long ut = 0, st = 0;
  if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) return -1;
  return (double)(ut + st) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

struct sink {
  char *buf;
  size_t len, cap;
};

static size_t on_body(char *p, size_t sz, size_t nm, void *ud) {
  struct sink *s = ud;
  size_t n = sz * nm;
  if (s->len + n + 1 > s->cap) {
    s->cap = (s->len + n + 1) * 2;
    s->buf = realloc(s->buf, s->cap);
    if (!s->buf) abort();
  }
  memcpy(s->buf + s->len, p, n);
  s->len += n;
  s->buf[s->len] = 0;
  return n;
}

/* One streamed request; returns the time to the last byte (ms) or -1; the body in SINK. */
static double fetch(CURL *c, const char *base, int path, int tokens, struct sink *sink) {
  char url[256], body[512];
  bool anthropic_client = path == P_AN_AN || path == P_OA_AN;
  const char *model = path == P_OA_OA || path == P_OA_AN ? "gpt-4o-mini" : "claude-haiku-4-5";
  snprintf(url, sizeof url, "%s%s", base, anthropic_client ? "/v1/messages" : "/v1/chat/completions");
  if (anthropic_client)
    snprintf(body, sizeof body, "{\"model\":\"%s\",\"max_tokens\":%d,\"stream\":true,\"messages\":[{\"role\":"
                                "\"user\",\"content\":\"count these words\"}],\"mock\":{\"completion_tokens\":%d}}",
             model, tokens * 2, tokens);
  else
    snprintf(body, sizeof body, "{\"model\":\"%s\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                                "\"messages\":[{\"role\":\"user\",\"content\":\"count these words\"}],"
                                "\"mock\":{\"completion_tokens\":%d}}", model, tokens);
  struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
  if (anthropic_client) h = curl_slist_append(h, "anthropic-version: 2023-06-01");
  sink->len = 0;
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, sink);
  curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
  double t0 = now_ms();
  CURLcode rc = curl_easy_perform(c);
  double t = now_ms() - t0;
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(h);
  if (rc != CURLE_OK || status != 200) return -1;
  /* the stream must be complete: the client format's last frame */
  const char *end = anthropic_client ? "event: message_stop" : "data: [DONE]";
  if (!sink->buf || !strstr(sink->buf, end)) return -1;
  return t;
}

/* ------------------------------------------------------------------ in-process */

struct pass_ctx {
  struct evbuffer *out;
  struct pol_usage usage;
  bool anthropic;
};

/* The least a passthrough does per event (what openai.c / anthropic.c do): find the usage
 * (scan, or parse the few events that carry it) and re-frame the event for the client. */
static int pass_event(void *ud, const struct up_sse_event *ev) {
  struct pass_ctx *p = ud;
  if (p->anthropic) {
    if (!strcmp(ev->event, "message_start") || !strcmp(ev->event, "message_delta")) {
      json_t *d = json_loadb(ev->data, ev->data_len, 0, NULL);
      const json_t *u = json_object_get(d, "usage");
      if (!u) u = json_object_get(json_object_get(d, "message"), "usage");
      if (u) pol_usage_update_anthropic(u, &p->usage);
      json_decref(d);
    }
    evbuffer_add_printf(p->out, "event: %s\n", ev->event);
  } else {
    struct rt_json_span v;
    if (rt_json_find(ev->data, ev->data_len, "usage", &v) == 1 && !rt_json_is_null(ev->data, v)) {
      json_t *u = json_loadb(ev->data + v.off, v.len, 0, NULL);
      pol_usage_from_openai(u, &p->usage);
      json_decref(u);
    }
  }
  evbuffer_add(p->out, "data: ", 6);
  evbuffer_add(p->out, ev->data, ev->data_len);
  evbuffer_add(p->out, "\n\n", 2);
  return 0;
}

struct xs_ctx {
  struct rt_xstream *xs;
  struct evbuffer *out;
};

static int xs_event(void *ud, const struct up_sse_event *ev) {
  struct xs_ctx *x = ud;
  return rt_xs_event(x->xs, ev->event, ev->data, ev->data_len, x->out) == RT_XS_BAD;
}

/* Per-stream time (µs) of feeding IN (in 4 KiB pieces, as libcurl delivers) to a passthrough or
 * to the translator. Returns p50 and p99 over ITERS, and the client bytes of one run. */
static void inproc(const char *in, size_t n, bool anthropic_upstream, bool translate, int iters,
                   double *p50, double *p99, size_t *out_bytes) {
  double *t = malloc(sizeof *t * (size_t)iters);
  for (int k = 0; k < iters; k++) {
    struct evbuffer *out = evbuffer_new();
    struct up_sse sse;
    up_sse_init(&sse, 0);
    double t0 = now_ms();
    if (translate) {
      struct rt_xs_opts o = {"public", 1700000000, true, "msg_x"};
      struct xs_ctx x = {rt_xs_new(anthropic_upstream ? RT_XS_A2O : RT_XS_O2A, &o), out};
      for (size_t off = 0; off < n; off += 4096)
        up_sse_feed(&sse, in + off, n - off < 4096 ? n - off : 4096, xs_event, &x);
      rt_xs_free(x.xs);
    } else {
      struct pass_ctx p = {out, {0}, anthropic_upstream};
      for (size_t off = 0; off < n; off += 4096)
        up_sse_feed(&sse, in + off, n - off < 4096 ? n - off : 4096, pass_event, &p);
    }
    t[k] = (now_ms() - t0) * 1e3;
    *out_bytes = evbuffer_get_length(out);
    up_sse_free(&sse);
    evbuffer_free(out);
  }
  *p50 = pct(t, iters, 0.5);
  *p99 = pct(t, iters, 0.99);
  free(t);
}

/* The mock's stream, straight from the mock (the upstream bytes the gateway sees). */
static char *mock_stream(CURL *c, const char *mock_url, bool anthropic, int tokens, size_t *n) {
  struct sink s = {0};
  char url[256], body[512];
  snprintf(url, sizeof url, "%s%s", mock_url, anthropic ? "/v1/messages" : "/v1/chat/completions");
  snprintf(body, sizeof body, "{\"model\":\"m\",\"max_tokens\":%d,\"stream\":true,\"stream_options\":"
                              "{\"include_usage\":true},\"messages\":[{\"role\":\"user\",\"content\":"
                              "\"count these words\"}],\"mock\":{\"completion_tokens\":%d}}", tokens * 2, tokens);
  struct curl_slist *h = curl_slist_append(NULL, "anthropic-version: 2023-06-01");
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
  CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(h);
  if (rc != CURLE_OK) {
    free(s.buf);
    return NULL;
  }
  *n = s.len;
  return s.buf;
}

/* Default binaries: this program lives in BUILD/tests/bench/. */
static void default_env(const char *argv0) {
  char dir[1024];
  snprintf(dir, sizeof dir, "%s", argv0);
  char *slash = strrchr(dir, '/');
  if (slash) *slash = 0;
  else snprintf(dir, sizeof dir, ".");
  char p[1200];
  snprintf(p, sizeof p, "%s/../../tiergate", dir);
  setenv("TIERGATE_BIN", p, 0);
  snprintf(p, sizeof p, "%s/../mock/mock_upstream", dir);
  setenv("MOCK_UPSTREAM_BIN", p, 0);
}

int main(int argc, char **argv) {
  int tokens = 500, iters = 300, inproc_iters = 2000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--tokens")) tokens = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--iters")) iters = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--inproc-iters")) inproc_iters = atoi(argv[i + 1]);
    else {
      fprintf(stderr, "usage: %s [--tokens N] [--iters N] [--inproc-iters N]\n", argv[0]);
      return 2;
    }
  }
  if (tokens < 1 || tokens > 100000 || iters < 10 || inproc_iters < 10) {
    fprintf(stderr, "bench_xlate: tokens 1..100000, iters >= 10\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  default_env(argv[0]);
  curl_global_init(CURL_GLOBAL_DEFAULT);

  struct th_mock mock;
  struct th_gw gw;
  if (th_mock_start(&mock, (const char *const[]){"--no-record", NULL}) || th_gw_prepare(&gw)) return 1;
  char *yaml = th_fmt("listen: 127.0.0.1:0\ndatabase: %s\nproviders:\n"
                      "  mock: {kind: openai, base_url: \"http://127.0.0.1:%d/v1\"}\n"
                      "  mocka: {kind: anthropic, base_url: \"http://127.0.0.1:%d\"}\n"
                      "models:\n  gpt-4o-mini: {provider: mock}\n  claude-haiku-4-5: {provider: mocka}\n"
                      "retry: {max_attempts: 1}\n",
                      gw.db_path, mock.port, mock.port);
  if (th_gw_start(&gw, yaml, NULL)) return 1;
  free(yaml);

  CURL *c = curl_easy_init();
  struct sink sink = {0};
  /* warm up: connections, caches, the mock's and the gateway's first requests */
  for (int k = 0; k < 20; k++)
    for (int p = 0; p < NPATH; p++)
      if (fetch(c, gw.url, p, tokens, &sink) < 0) {
        fprintf(stderr, "bench_xlate: path %s failed: %.300s\n", path_name[p], sink.buf ? sink.buf : "");
        return 1;
      }

  /* end to end, interleaved */
  double *t[NPATH];
  int fails = 0;
  for (int p = 0; p < NPATH; p++) t[p] = malloc(sizeof(double) * (size_t)iters);
  for (int k = 0; k < iters; k++)
    for (int p = 0; p < NPATH; p++) {
      double ms = fetch(c, gw.url, p, tokens, &sink);
      if (ms < 0) fails++;
      t[p][k] = ms < 0 ? 1e9 : ms;
    }
  double p50[NPATH], p99[NPATH];
  for (int p = 0; p < NPATH; p++) {
    p50[p] = pct(t[p], iters, 0.5);
    p99[p] = pct(t[p], iters, 0.99);
  }
  /* gateway CPU per stream, each path in a block */
  double cpu[NPATH];
  int block = iters / 2 > 50 ? iters / 2 : 50;
  for (int p = 0; p < NPATH; p++) {
    double c0 = cpu_ms(gw.proc.pid);
    for (int k = 0; k < block; k++)
      if (fetch(c, gw.url, p, tokens, &sink) < 0) fails++;
    cpu[p] = (cpu_ms(gw.proc.pid) - c0) * 1e3 / block;
  }

  /* in-process: the upstream bytes of each format, through passthrough and translator */
  size_t an_n = 0, oa_n = 0, ob[4];
  char *an = mock_stream(c, mock.url, true, tokens, &an_n);
  char *oa = mock_stream(c, mock.url, false, tokens, &oa_n);
  double ip50[4], ip99[4];
  if (an && oa) {
    inproc(an, an_n, true, false, inproc_iters, &ip50[0], &ip99[0], &ob[0]);
    inproc(an, an_n, true, true, inproc_iters, &ip50[1], &ip99[1], &ob[1]);
    inproc(oa, oa_n, false, false, inproc_iters, &ip50[2], &ip99[2], &ob[2]);
    inproc(oa, oa_n, false, true, inproc_iters, &ip50[3], &ip99[3], &ob[3]);
  }

  double load[3] = {0};
  if (getloadavg(load, 3) < 0) load[0] = -1;
  printf("Streamed reply of %d tokens (one SSE frame per token), %d requests per path interleaved, "
         "%d failed; load average %.2f %.2f %.2f on %ld CPUs.\n\n",
         tokens, iters, fails, load[0], load[1], load[2], sysconf(_SC_NPROCESSORS_ONLN));
  printf("| path | time to last byte p50 / p99, ms | tiergate CPU per stream, µs |\n|---|---|---|\n");
  for (int p = 0; p < NPATH; p++) printf("| %s | %.3f / %.3f | %.0f |\n", path_name[p], p50[p], p99[p], cpu[p]);
  printf("\n| translation | overhead p50 / p99, ms (translated - passthrough, same upstream) | CPU per stream, µs |\n|---|---|---|\n");
  printf("| Anthropic upstream -> OpenAI client | %+.3f / %+.3f | %+.0f |\n", p50[P_AN_OA] - p50[P_AN_AN],
         p99[P_AN_OA] - p99[P_AN_AN], cpu[P_AN_OA] - cpu[P_AN_AN]);
  printf("| OpenAI upstream -> Anthropic client | %+.3f / %+.3f | %+.0f |\n", p50[P_OA_AN] - p50[P_OA_OA],
         p99[P_OA_AN] - p99[P_OA_OA], cpu[P_OA_AN] - cpu[P_OA_OA]);
  if (an && oa) {
    printf("\nIn-process, the upstream bytes (%zu Anthropic, %zu OpenAI) fed in 4 KiB pieces, %d runs:\n\n",
           an_n, oa_n, inproc_iters);
    printf("| upstream stream | minimal passthrough p50 / p99, µs | translator p50 / p99, µs | per event, µs (p50) |\n|---|---|---|---|\n");
    printf("| Anthropic (%d events) -> OpenAI chunks | %.1f / %.1f | %.1f / %.1f | %.2f vs %.2f |\n", tokens + 6,
           ip50[0], ip99[0], ip50[1], ip99[1], ip50[0] / (tokens + 6), ip50[1] / (tokens + 6));
    printf("| OpenAI (%d chunks) -> Anthropic events | %.1f / %.1f | %.1f / %.1f | %.2f vs %.2f |\n", tokens + 4,
           ip50[2], ip99[2], ip50[3], ip99[3], ip50[2] / (tokens + 4), ip50[3] / (tokens + 4));
  }
  free(an);
  free(oa);
  free(sink.buf);
  for (int p = 0; p < NPATH; p++) free(t[p]);
  curl_easy_cleanup(c);
  int gs = th_gw_stop(&gw, SIGTERM, 15000);
  th_mock_stop(&mock);
  th_rmdir(gw.dir);
  curl_global_cleanup();
  return gs == 0 && fails == 0 ? 0 : 1;
}
