/*
 * gateway.c: the gateway process's wiring: the event loop, the HTTP server (http/) with the
 * request lifecycle's callbacks (request.c), upstream transfers (upstream/), the local models
 * (call/local.c: one engine and scheduler thread per provider of kind local), metrics, the
 * resilience registry, per-provider request headers, signals; and the orderly shutdown (SIGTERM:
 * stop accepting, queued local requests get 503, running ones and streams finish).
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "router/internal.h"

static int split_hostport(const char *hp, char *host, size_t hcap, char *port, size_t pcap) {
  const char *colon;
  if (hp[0] == '[') {
    const char *rb = strchr(hp, ']');
    if (!rb || rb[1] != ':') return -1;
    snprintf(host, hcap, "%.*s", (int)(rb - hp - 1), hp + 1);
    colon = rb + 1;
  } else {
    colon = strrchr(hp, ':');
    if (!colon) return -1;
    snprintf(host, hcap, "%.*s", (int)(colon - hp), hp);
  }
  snprintf(port, pcap, "%s", colon + 1);
  if (!port[0]) return -1;
  for (const char *p = port; *p; p++)
    if (*p < '0' || *p > '9') return -1;
  return 0;
}

static char *build_models_json(const struct pol_config *cfg, struct rt_local *const *local,
                               int64_t created, size_t *len) {
  struct evbuffer *b = evbuffer_new();
  if (!b) return NULL;
  evbuffer_add_printf(b, "{\"object\":\"list\",\"data\":[");
  for (size_t i = 0; i < cfg->n_models; i++) {
    const struct pol_model *m = &cfg->models[i];
    evbuffer_add_printf(b, "%s{\"id\":", i ? "," : "");
    rt_json_quote(b, m->name, strlen(m->name));
    evbuffer_add_printf(b, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":", (long long)created);
    const char *owner = m->provider ? m->provider->name : "tiergate";
    rt_json_quote(b, owner, strlen(owner));
    const struct rt_local *l = m->provider ? local[m->provider - cfg->providers] : NULL;
    if (l) evbuffer_add_printf(b, ",\"context_length\":%d", (int)rt_local_n_ctx(l));
    evbuffer_add(b, "}", 1);
  }
  evbuffer_add_printf(b, "]}");
  *len = evbuffer_get_length(b);
  char *s = malloc(*len + 1);
  if (s) {
    evbuffer_remove(b, s, *len);
    s[*len] = '\0';
  }
  evbuffer_free(b);
  return s;
}

static int build_provider_cache(struct rt_server *s) {
  const struct pol_config *cfg = s->cfg;
  s->prov = calloc(cfg->n_providers ? cfg->n_providers : 1, sizeof *s->prov);
  if (!s->prov) return -1;
  for (size_t i = 0; i < cfg->n_providers; i++) {
    const struct pol_provider *p = &cfg->providers[i];
    struct rt_provider_cache *pc = &s->prov[i];
    if (p->kind == POL_PROVIDER_LOCAL) continue;   /* no HTTP request is ever built for it */
    size_t n = 4 + p->n_headers;
    pc->hdr = calloc(n, sizeof *pc->hdr);
    if (!pc->hdr) return -1;
    size_t k = 0;
    if (p->kind == POL_PROVIDER_ANTHROPIC) {
      if (p->api_key && asprintf(&pc->hdr[k++], "x-api-key: %s", p->api_key) < 0) return -1;
      if (asprintf(&pc->hdr[k++], "anthropic-version: %s",
                   p->anthropic_version ? p->anthropic_version : "2023-06-01") < 0)
        return -1;
    } else {
      if (p->api_key && asprintf(&pc->hdr[k++], "Authorization: Bearer %s", p->api_key) < 0) return -1;
    }
    if (asprintf(&pc->hdr[k++], "Content-Type: application/json") < 0) return -1;
    if (asprintf(&pc->hdr[k++], "User-Agent: tiergate/0.1") < 0) return -1;
    for (size_t h = 0; h < p->n_headers; h++)
      if (asprintf(&pc->hdr[k++], "%s: %s", p->headers[h].name, p->headers[h].value) < 0) return -1;
    pc->n_hdr = k;
  }
  return 0;
}

static void free_provider_cache(struct rt_server *s) {
  if (!s->prov) return;
  for (size_t i = 0; i < s->cfg->n_providers; i++) {
    for (size_t k = 0; k < s->prov[i].n_hdr; k++) free(s->prov[i].hdr[k]);
    free(s->prov[i].hdr);
  }
  free(s->prov);
}

static int write_port_file(const char *path, int port) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
  FILE *f = fopen(tmp, "w");
  if (!f) return -1;
  fprintf(f, "%d\n", port);
  if (fclose(f) != 0) return -1;
  return rename(tmp, path);
}

static void signal_cb(evutil_socket_t sig, short kind, void *arg) {
  struct rt_server *s = arg;
  rt_http_server_drain(s->http);
}

/* Shutdown began: local requests still waiting for a slot get 503 now (running ones finish). */
static void on_drain(void *ud) {
  struct rt_server *s = ud;
  for (size_t i = 0; s->local && i < s->cfg->n_providers; i++) rt_local_drain(s->local[i]);
}

/* Loads every local provider's model and starts its scheduler. 0, or -1 after printing why. */
static int start_locals(struct rt_server *s) {
  const struct pol_config *cfg = s->cfg;
  s->local = calloc(cfg->n_providers ? cfg->n_providers : 1, sizeof *s->local);
  if (!s->local) return -1;
  for (size_t i = 0; i < cfg->n_providers; i++) {
    const struct pol_provider *p = &cfg->providers[i];
    if (p->kind != POL_PROVIDER_LOCAL) continue;
    char err[700];
    int64_t t0 = rt_now_us();
    s->local[i] = rt_local_new(s->base, cfg, p, err, sizeof err);
    if (!s->local[i]) {
      fprintf(stderr, "%s\ntiergate: refusing to start: a local model could not be loaded\n", err);
      return -1;
    }
    fprintf(stderr, "tiergate: provider '%s': local model %s loaded in %.0f ms (%d slot(s) x %d "
                    "tokens)\n", p->name, p->local.model_path, (double)(rt_now_us() - t0) / 1e3,
            p->local.slots, (int)rt_local_n_ctx(s->local[i]));
  }
  return 0;
}

int rt_server_run(const struct pol_config *cfg, struct db_writer *db, const struct rt_serve_opts *o) {
  struct rt_server srv;
  struct rt_server *s = &srv;
  memset(s, 0, sizeof *s);
  s->cfg = cfg;
  s->db = db;
  s->started_wall = (int64_t)time(NULL);
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof seed, 0) != sizeof seed) seed = (uint64_t)rt_wall_us();
  s->rng = seed | 1;

  char host[256], port[16];
  if (o->listen) {
    if (split_hostport(o->listen, host, sizeof host, port, sizeof port)) {
      fprintf(stderr, "tiergate: --listen wants HOST:PORT, got '%s'\n", o->listen);
      return 2;
    }
  } else {
    snprintf(host, sizeof host, "%s", cfg->listen_host ? cfg->listen_host : "127.0.0.1");
    snprintf(port, sizeof port, "%d", cfg->listen_port);
  }

  signal(SIGPIPE, SIG_IGN);
  int rc = 1;
  char err[256];
  /* local models' scheduler threads wake the loop with event_active */
  if (evthread_use_pthreads() != 0) {
    fprintf(stderr, "tiergate: libevent has no thread support\n");
    return 1;
  }
  s->base = event_base_new();
  if (!s->base) goto out;
  if (start_locals(s)) goto out;
  struct rt_http_limits lim = {
      .max_body_bytes = cfg->limits.max_body_bytes,
      .client_timeout_ms = cfg->limits.client_timeout_ms,
      .max_connections = cfg->limits.max_connections,
      .drain_ms = o->drain_ms > 0 ? o->drain_ms : 10000,
  };
  struct rt_http_app app = rt_req_http_app;
  app.ud = s;
  app.on_drain = on_drain;
  s->http = rt_http_server_new(s->base, host, port, &lim, &app, err, sizeof err);
  if (!s->http) {
    fprintf(stderr, "tiergate: %s\n", err);
    goto out;
  }
  s->up = up_multi_new(s->base, err, sizeof err);
  if (!s->up) {
    fprintf(stderr, "tiergate: %s\n", err);
    goto out;
  }
  s->metrics = rt_metrics_new(cfg);
  s->resil = rt_resil_new(cfg, s->rng);
  s->models_json = build_models_json(cfg, s->local, s->started_wall, &s->models_json_len);
  s->sig_int = evsignal_new(s->base, SIGINT, signal_cb, s);
  s->sig_term = evsignal_new(s->base, SIGTERM, signal_cb, s);
  if (!s->metrics || !s->resil || !s->models_json || !s->sig_int || !s->sig_term ||
      build_provider_cache(s)) {
    fprintf(stderr, "tiergate: out of memory\n");
    goto out;
  }
  evsignal_add(s->sig_int, NULL);
  evsignal_add(s->sig_term, NULL);

  if (o->port_file && write_port_file(o->port_file, rt_http_server_port(s->http))) {
    fprintf(stderr, "tiergate: cannot write port file %s: %s\n", o->port_file, strerror(errno));
    goto out;
  }
  printf("tiergate: listening on http://%s\n", rt_http_server_bound(s->http));
  fflush(stdout);

  event_base_dispatch(s->base);
  rc = 0;
  fprintf(stderr, "tiergate: stopped accepting; %zu request(s) unfinished\n",
          rt_http_server_requests(s->http));

out:
  rt_http_server_free(s->http);   /* aborts what is left: every request gets its log row */
  up_multi_free(s->up);
  for (size_t i = 0; s->local && i < cfg->n_providers; i++) rt_local_free(s->local[i]);
  free(s->local);
  rt_metrics_free(s->metrics);
  rt_resil_free(s->resil);   /* after every request is gone: they hold its deployments */
  free(s->models_json);
  free_provider_cache(s);
  if (s->sig_int) event_free(s->sig_int);
  if (s->sig_term) event_free(s->sig_term);
  if (s->base) event_base_free(s->base);
  return rc;
}
