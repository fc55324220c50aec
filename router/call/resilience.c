/*
 * resilience.c: what the gateway does when an upstream fails: retries with backoff, fallbacks to
 * other models, load balancing across a model's deployments, a circuit breaker per deployment,
 * deadlines, and the attempt log that explains it afterwards. call.c drives it (contract in
 * internal.h); the timing pieces (backoff, retry-after, the breaker state machine) are pure
 * functions in upstream/backoff.c and upstream/breaker.c, the choice among deployments is
 * balance.c.
 *
 * DESIGN. A request walks a chain: its model, then the model's fallbacks (depth first, each
 * model once). On each model it makes up to retry.max_attempts attempts. An attempt goes to a
 * deployment chosen by the balancer among the eligible ones: breaker ready (closed, or open past
 * its cooldown and no probe out: then this attempt is the probe), provider key present, provider
 * kind reachable from the caller's surface, not ruled out for this request. After a failure:
 *
 *   1. nothing may follow once a byte reached the client (r->resp_started): the stream ends with
 *      an error event (the surface's job) and the failure counts for the breaker;
 *   2. retry on the same model if the failure class is in retry.on (or the upstream said
 *      x-should-retry: true), attempts remain, and a deployment is eligible: one not yet tried in
 *      this request goes at once; otherwise wait retry-after (when the response gave one, up to
 *      retry.max_delay: a longer one rules that deployment out) or the jittered backoff;
 *   3. else fall back to the next model in the chain that has an eligible deployment, at once,
 *      if the class is in the failing model's fallback_on;
 *   4. else the surface renders this last failure, with `x-should-retry: false` whenever the
 *      gateway retried or fell back, or wanted to and could not (the SDK would only repeat it).
 * No retry or fallback starts past the request's deadlines: the whole request must end by
 * min(model total timeout, x-tiergate-timeout-ms); the reply must start by the client SDK's own
 * timeout (x-stainless-timeout, seconds: after it the SDK has given up); retry.budget caps the
 * time after which no new attempt begins.
 *
 * Breakers are per deployment (provider + upstream model, shared by the models that name the
 * same pair; settings of the first such model in the file). An upstream `x-should-retry: false`
 * or a 429 saying the quota is spent rules that deployment out for the request but not the
 * others. When nothing can be tried at all (every breaker open) the request fails fast with 503,
 * `x-should-retry: true` and a retry-after of the shortest remaining cooldown.
 *
 * Everything runs on the loop thread: plain counters, no locks.
 */
#include <event2/buffer.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "router/internal.h"

#define MAX_RECS 64           /* attempt log entries kept per request */
#define ERR_HEAD_MAX 4096     /* bytes of an error body kept to classify it */

enum outcome { OUT_OK, OUT_CONNECT, OUT_TIMEOUT, OUT_408, OUT_429, OUT_4XX, OUT_5XX, OUT_529,
               OUT_ERROR, OUT_CANCELLED, N_OUT };
static const char *const outcome_names[N_OUT] = {"ok",  "connect", "timeout", "408",   "429",
                                                 "4xx", "5xx",     "529",     "error", "cancelled"};

/* Reasons a deployment was not eligible (struct rt_call.skips). */
enum { SKIP_BREAKER = 1u << 0, SKIP_NOKEY = 1u << 1, SKIP_UNSUPPORTED = 1u << 2 };

struct rt_dep {
  const struct pol_provider *provider;
  const char *upstream_model;
  char *label;                 /* "provider/upstream-model" */
  struct up_breaker breaker;
  unsigned breaker_on;         /* POL_FAIL_* that count as failures */
  int in_flight;
  uint64_t outcomes[N_OUT];
};

struct rt_resil {
  const struct pol_config *cfg;
  struct rt_dep *deps;
  size_t n_deps;
  size_t *first;               /* [n_models]: model i's deployment j is deps[dep_of[first[i] + j]] */
  size_t *dep_of;
  uint64_t *retries, *fallbacks;   /* [n_models], counted on the model being left/retried */
  uint64_t rng;
};

struct rt_attempt_rec {
  const struct pol_model *model;
  const struct rt_dep *dep;
  int http_status;             /* 0: none */
  const char *error;           /* transport failure (up_status_name), NULL if a response came */
  const char *cls;             /* failure class or skip reason, NULL for success */
  double latency_ms, waited_ms;
  int64_t retry_after_ms;      /* -1: none */
  const char *next;            /* "answer", "retry", "fallback", "final", "skipped", "cancelled" */
};

/* ------------------------------------------------------------------ registry */

static double rnd(struct rt_resil *x) { return (double)(rt_rand64(&x->rng) >> 11) * 0x1.0p-53; }

struct rt_resil *rt_resil_new(const struct pol_config *cfg, uint64_t seed) {
  struct rt_resil *x = calloc(1, sizeof *x);
  if (!x) return NULL;
  x->cfg = cfg;
  x->rng = (seed ^ 0x9E3779B97F4A7C15ULL) | 1;
  size_t total = 0;
  for (size_t i = 0; i < cfg->n_models; i++) total += cfg->models[i].n_deployments;
  size_t nm = cfg->n_models ? cfg->n_models : 1;
  x->first = calloc(nm, sizeof *x->first);
  x->dep_of = calloc(total ? total : 1, sizeof *x->dep_of);
  x->deps = calloc(total ? total : 1, sizeof *x->deps);
  x->retries = calloc(nm, sizeof *x->retries);
  x->fallbacks = calloc(nm, sizeof *x->fallbacks);
  if (!x->first || !x->dep_of || !x->deps || !x->retries || !x->fallbacks) goto oom;
  size_t k = 0;
  for (size_t i = 0; i < cfg->n_models; i++) {
    const struct pol_model *m = &cfg->models[i];
    x->first[i] = k;
    for (size_t j = 0; j < m->n_deployments; j++, k++) {
      const struct pol_deployment *d = &m->deployments[j];
      size_t e = 0;
      while (e < x->n_deps && !(x->deps[e].provider == d->provider &&
                                !strcmp(x->deps[e].upstream_model, d->upstream_model)))
        e++;
      if (e == x->n_deps) {
        struct rt_dep *n = &x->deps[x->n_deps++];
        n->provider = d->provider;
        n->upstream_model = d->upstream_model;
        if (asprintf(&n->label, "%s/%s", d->provider->name, d->upstream_model) < 0) {
          n->label = NULL;
          goto oom;
        }
        struct up_breaker_config bc = {
            .failures = m->breaker.failures,
            .error_rate_pct = m->breaker.error_rate_pct,
            .min_requests = m->breaker.min_requests,
            .window_ms = m->breaker.window_ms,
            .cooldown_ms = m->breaker.cooldown_ms,
        };
        up_breaker_init(&n->breaker, &bc);
        n->breaker_on = m->breaker.on;
      }
      x->dep_of[k] = e;
    }
  }
  return x;
oom:
  rt_resil_free(x);
  return NULL;
}

void rt_resil_free(struct rt_resil *x) {
  if (!x) return;
  for (size_t i = 0; i < x->n_deps; i++) free(x->deps[i].label);
  free(x->deps);
  free(x->first);
  free(x->dep_of);
  free(x->retries);
  free(x->fallbacks);
  free(x);
}

static struct rt_dep *dep_for(const struct rt_resil *x, const struct pol_model *m, size_t j) {
  size_t mi = (size_t)rt_model_index(x->cfg, m);
  return &x->deps[x->dep_of[x->first[mi] + j]];
}

/* Prometheus label value: backslash, quote and newline escaped. */
void rt_resil_render(const struct rt_resil *x, struct evbuffer *out) {
  if (!x) return;
  evbuffer_add_printf(out, "# HELP tiergate_breaker_state Circuit breaker of each upstream deployment "
                           "(0 closed, 1 open, 2 half-open).\n# TYPE tiergate_breaker_state gauge\n");
  for (size_t i = 0; i < x->n_deps; i++) {
    evbuffer_add_printf(out, "tiergate_breaker_state{deployment=\"");
    rt_metrics_label(out, x->deps[i].label);
    evbuffer_add_printf(out, "\"} %d\n", (int)x->deps[i].breaker.state);
  }
  evbuffer_add_printf(out, "# HELP tiergate_breaker_transitions_total Circuit breaker state changes, "
                           "by the state entered.\n# TYPE tiergate_breaker_transitions_total counter\n");
  static const enum up_breaker_state to[] = {UP_BREAKER_OPEN, UP_BREAKER_HALF_OPEN, UP_BREAKER_CLOSED};
  for (size_t i = 0; i < x->n_deps; i++) {
    for (size_t t = 0; t < 3; t++) {
      evbuffer_add_printf(out, "tiergate_breaker_transitions_total{deployment=\"");
      rt_metrics_label(out, x->deps[i].label);
      evbuffer_add_printf(out, "\",to=\"%s\"} %llu\n", up_breaker_state_name(to[t]),
                          (unsigned long long)x->deps[i].breaker.transitions[to[t]]);
    }
  }
  evbuffer_add_printf(out, "# HELP tiergate_upstream_in_flight Upstream calls running, per deployment.\n"
                           "# TYPE tiergate_upstream_in_flight gauge\n");
  for (size_t i = 0; i < x->n_deps; i++) {
    evbuffer_add_printf(out, "tiergate_upstream_in_flight{deployment=\"");
    rt_metrics_label(out, x->deps[i].label);
    evbuffer_add_printf(out, "\"} %d\n", x->deps[i].in_flight);
  }
  evbuffer_add_printf(out, "# HELP tiergate_upstream_attempts_total Upstream attempts, per deployment "
                           "and outcome.\n# TYPE tiergate_upstream_attempts_total counter\n");
  for (size_t i = 0; i < x->n_deps; i++) {
    for (int o = 0; o < N_OUT; o++) {
      if (!x->deps[i].outcomes[o]) continue;
      evbuffer_add_printf(out, "tiergate_upstream_attempts_total{deployment=\"");
      rt_metrics_label(out, x->deps[i].label);
      evbuffer_add_printf(out, "\",outcome=\"%s\"} %llu\n", outcome_names[o],
                          (unsigned long long)x->deps[i].outcomes[o]);
    }
  }
  evbuffer_add_printf(out, "# HELP tiergate_retries_total Retries decided, per model retried.\n"
                           "# TYPE tiergate_retries_total counter\n");
  for (size_t i = 0; i < x->cfg->n_models; i++) {
    evbuffer_add_printf(out, "tiergate_retries_total{model=\"");
    rt_metrics_label(out, x->cfg->models[i].name);
    evbuffer_add_printf(out, "\"} %llu\n", (unsigned long long)x->retries[i]);
  }
  evbuffer_add_printf(out, "# HELP tiergate_fallbacks_total Fallbacks decided, per model left.\n"
                           "# TYPE tiergate_fallbacks_total counter\n");
  for (size_t i = 0; i < x->cfg->n_models; i++) {
    evbuffer_add_printf(out, "tiergate_fallbacks_total{model=\"");
    rt_metrics_label(out, x->cfg->models[i].name);
    evbuffer_add_printf(out, "\"} %llu\n", (unsigned long long)x->fallbacks[i]);
  }
}

/* ------------------------------------------------------------------ the attempt log */

static void push_rec(struct rt_call *c, const struct rt_attempt_rec *rec) {
  if (c->n_recs >= MAX_RECS) return;
  if (c->n_recs == c->cap_recs) {
    size_t cap = c->cap_recs ? c->cap_recs * 2 : 4;
    struct rt_attempt_rec *n = realloc(c->recs, cap * sizeof *n);
    if (!n) return;   /* the log loses an entry; the request goes on */
    c->recs = n;
    c->cap_recs = cap;
  }
  c->recs[c->n_recs++] = *rec;
}

static void skip_rec(struct rt_call *c, const struct pol_model *m, const struct rt_dep *d,
                     const char *why) {
  struct rt_attempt_rec rec = {.model = m, .dep = d, .cls = why, .retry_after_ms = -1,
                               .next = "skipped"};
  push_rec(c, &rec);
}

static void rec_json(struct evbuffer *b, const struct rt_attempt_rec *e, int n) {
  evbuffer_add(b, "{", 1);
  if (n > 0) evbuffer_add_printf(b, "\"attempt\":%d,", n);
  evbuffer_add(b, "\"model\":", 8);
  rt_json_quote(b, e->model->name, strlen(e->model->name));
  evbuffer_add(b, ",\"deployment\":", 14);
  rt_json_quote(b, e->dep->label, strlen(e->dep->label));
  if (e->http_status > 0) evbuffer_add_printf(b, ",\"status\":%d", e->http_status);
  if (e->error) evbuffer_add_printf(b, ",\"error\":\"%s\"", e->error);
  evbuffer_add_printf(b, ",\"class\":");
  if (e->cls) evbuffer_add_printf(b, "\"%s\"", e->cls);
  else evbuffer_add(b, "null", 4);
  if (n > 0)
    evbuffer_add_printf(b, ",\"latency_ms\":%.1f,\"waited_ms\":%.1f", e->latency_ms, e->waited_ms);
  if (e->retry_after_ms >= 0) evbuffer_add_printf(b, ",\"retry_after_ms\":%lld", (long long)e->retry_after_ms);
  evbuffer_add_printf(b, ",\"next\":\"%s\"}", e->next);
}

const char *rt_resil_log_json(struct rt_req *r) {
  struct rt_call *c = &r->call;
  if (!c->n_recs && !c->dep) return NULL;
  struct evbuffer *b = evbuffer_new();
  if (!b) return NULL;
  evbuffer_add(b, "[", 1);
  int n = 0;
  for (size_t i = 0; i < c->n_recs; i++) {
    if (i) evbuffer_add(b, ",", 1);
    bool attempt = strcmp(c->recs[i].next, "skipped") != 0;
    rec_json(b, &c->recs[i], attempt ? ++n : 0);
  }
  if (c->dep) {
    /* the request ended (client gone, shutdown) while an attempt ran */
    struct rt_attempt_rec rec = {.model = r->served, .dep = c->dep, .retry_after_ms = -1,
                                 .latency_ms = (double)(rt_now_us() - c->t_attempt) / 1e3,
                                 .waited_ms = c->waited_ms, .cls = NULL, .next = "cancelled"};
    if (c->n_recs) evbuffer_add(b, ",", 1);
    rec_json(b, &rec, ++n);
  }
  evbuffer_add(b, "]", 1);
  size_t len = evbuffer_get_length(b);
  free(c->log_json);
  c->log_json = malloc(len + 1);
  if (c->log_json) {
    evbuffer_remove(b, c->log_json, len);
    c->log_json[len] = '\0';
  }
  evbuffer_free(b);
  return c->log_json;
}

/* ------------------------------------------------------------------ per request */

/* A header's value as a positive number (digits, optional fraction); -1 if absent or bad. */
static double header_number(const char *v) {
  if (!v) return -1;
  char *end;
  double d = strtod(v, &end);
  while (*end == ' ' || *end == '\t') end++;
  if (end == v || *end || !(d > 0) || d > 1e9) return -2;
  return d;
}

static void add_chain(struct rt_call *c, const struct pol_model *m) {
  for (size_t i = 0; i < c->n_chain; i++)
    if (c->chain[i] == m) return;
  if (c->n_chain == RT_MAX_CHAIN) return;
  c->chain[c->n_chain++] = m;
  for (size_t i = 0; i < m->n_fallbacks; i++) add_chain(c, m->fallbacks[i]);
}

static int refuse(struct rt_refusal *no, int status, const char *cls, const char *type,
                  const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static int refuse(struct rt_refusal *no, int status, const char *cls, const char *type,
                  const char *code, const char *param, const char *fmt, ...) {
  no->status = status;
  no->error_class = cls;
  no->type = type;
  no->code = code;
  no->param = param;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(no->msg, sizeof no->msg, fmt, ap);
  va_end(ap);
  return -1;
}

int rt_resil_begin(struct rt_req *r, struct rt_refusal *no) {
  struct rt_call *c = &r->call;
  const struct pol_model *m = r->model;
  c->n_chain = c->pos = 0;
  add_chain(c, m);
  c->retry_after_ms = -1;
  int64_t t0 = r->t0 ? r->t0 : rt_now_us();
  c->deadline_us = t0 + (int64_t)m->timeouts.total_ms * 1000;
  const char *v = rt_http_header(r->head, "x-tiergate-timeout-ms");
  if (v) {
    double ms = header_number(v);
    if (ms < 1 || ms > 86400000 || ms != (double)(int64_t)ms)
      return refuse(no, 400, "bad_request", "invalid_request_error", "invalid_timeout", NULL,
                    "Invalid x-tiergate-timeout-ms header '%.40s': expected a whole number of "
                    "milliseconds between 1 and 86400000.", v);
    c->client_timeout_ms = (int)ms;
    if (t0 + (int64_t)ms * 1000 < c->deadline_us) c->deadline_us = t0 + (int64_t)ms * 1000;
  }
  c->start_deadline_us = c->deadline_us;
  /* The SDKs' per-attempt timeout, whole seconds, covering the wait for the response headers
   * (their stream reading has none). Past it the SDK has given up, so no retry should start. A
   * bad value is ignored: the header is the SDK's, not a request the client wrote. */
  double sdk = header_number(rt_http_header(r->head, "x-stainless-timeout"));
  if (sdk > 0 && t0 + (int64_t)(sdk * 1e6) < c->start_deadline_us)
    c->start_deadline_us = t0 + (int64_t)(sdk * 1e6);
  c->budget_us = m->retry.budget_ms > 0 ? t0 + (int64_t)m->retry.budget_ms * 1000 : c->deadline_us;
  return 0;
}

/* Can an attempt (or the end of a wait) at T still fit the request's limits? */
static bool time_ok(const struct rt_call *c, int64_t t) {
  return t + 1000 < c->deadline_us && t < c->start_deadline_us && t <= c->budget_us;
}

/* Is deployment J of M eligible now (ignoring this request's tried/banned marks)? *why gets the
 * SKIP_* reason when not. */
static bool usable(const struct rt_req *r, const struct pol_model *m, size_t j, int64_t now_ms,
                   unsigned *why) {
  const struct pol_deployment *d = &m->deployments[j];
  const struct pol_provider *p = d->provider;
  *why = 0;
  if ((unsigned)p->kind >= RT_PROVIDER_KINDS || !r->call.ops_by_kind[p->kind]) *why = SKIP_UNSUPPORTED;
  else if (!p->api_key && p->api_key_env) *why = SKIP_NOKEY;
  else if (!up_breaker_ready(&dep_for(r->srv->resil, m, j)->breaker, now_ms)) *why = SKIP_BREAKER;
  return *why == 0;
}

static const char *skip_name(unsigned why) {
  return why == SKIP_BREAKER ? "breaker_open" : why == SKIP_NOKEY ? "missing_api_key" : "unsupported";
}

/* Does M have an eligible deployment not in BANNED? Logs the ineligible ones as skipped once per
 * visit of the model (SKIPPED tracks which) when LOG. */
static bool has_candidate(struct rt_req *r, const struct pol_model *m, uint64_t banned,
                          uint64_t *skipped, int64_t now_ms, bool log) {
  bool any = false;
  for (size_t j = 0; j < m->n_deployments; j++) {
    unsigned why;
    if (banned >> j & 1) continue;
    if (usable(r, m, j, now_ms, &why)) {
      any = true;
    } else {
      r->call.skips |= why;
      if (log && !(*skipped >> j & 1)) {
        *skipped |= 1ull << j;
        skip_rec(&r->call, m, dep_for(r->srv->resil, m, j), skip_name(why));
      }
    }
  }
  return any;
}

static void enter_model(struct rt_call *c, size_t pos) {
  c->pos = pos;
  c->tries = c->backoffs = c->prev_delay_ms = 0;
  c->tried = c->banned = c->skipped = 0;
}

/* The first model of the chain at or after FROM with an eligible deployment, logging the
 * deployments of the ones passed over; -1 if none. */
static long next_available(struct rt_req *r, size_t from, int64_t now_ms) {
  struct rt_call *c = &r->call;
  for (size_t k = from; k < c->n_chain; k++) {
    uint64_t skipped = 0;
    if (has_candidate(r, c->chain[k], 0, &skipped, now_ms, true)) return (long)k;
  }
  return -1;
}

/* Nothing left to try: the verdict the call layer replies with. Returns -1. */
static int fail_unavailable(struct rt_req *r, int64_t now_ms, struct rt_refusal *no) {
  struct rt_call *c = &r->call;
  const struct pol_model *m = r->model;
  if (r->attempts > 0) {
    no->should_retry = -1;
    return refuse(no, 503, "upstream_unavailable", "service_unavailable_error",
                  "upstream_unavailable", NULL, "No deployment of model '%s' is available for "
                  "another attempt after %d failed attempt(s) (circuit breakers open).",
                  m->name, r->attempts);
  }
  if (c->skips & SKIP_BREAKER) {
    /* fail fast; the shortest cooldown left tells the client when a probe will be let through */
    int64_t wait = -1;
    for (size_t k = 0; k < c->n_chain; k++)
      for (size_t j = 0; j < c->chain[k]->n_deployments; j++) {
        const struct rt_dep *d = dep_for(r->srv->resil, c->chain[k], j);
        if (d->breaker.state == UP_BREAKER_CLOSED) continue;
        int64_t w = up_breaker_wait_ms(&d->breaker, now_ms);
        if (w == 0) w = d->breaker.cfg.cooldown_ms < 1000 ? d->breaker.cfg.cooldown_ms : 1000;
        if (wait < 0 || w < wait) wait = w;
      }
    if (wait < 1) wait = 1;
    no->retry_after_ms = wait;
    no->should_retry = 1;
    return refuse(no, 503, "breaker_open", "service_unavailable_error", "upstream_unavailable",
                  NULL, "Model '%s' is unavailable: the circuit breaker of every deployment that "
                  "could serve it is open after repeated upstream failures; retry in %lld ms.",
                  m->name, (long long)wait);
  }
  if (c->skips & SKIP_NOKEY) {
    for (size_t k = 0; k < c->n_chain; k++)
      for (size_t j = 0; j < c->chain[k]->n_deployments; j++) {
        const struct pol_provider *p = c->chain[k]->deployments[j].provider;
        if (p->api_key || !p->api_key_env) continue;
        return refuse(no, 401, "missing_api_key", "invalid_request_error", "missing_api_key",
                      NULL, "tiergate has no API key for provider '%s' (model '%s'): set the "
                      "environment variable %s and restart the gateway.",
                      p->name, m->name, p->api_key_env);
      }
  }
  const struct pol_provider *p = m->deployments[0].provider;
  return refuse(no, 501, "unsupported", "invalid_request_error", "unsupported_provider", "model",
                "Model '%s' is served by provider '%s', whose API format cannot be reached from "
                "this endpoint yet.", m->name, p->name);
}

int rt_resil_next(struct rt_req *r, struct rt_refusal *no) {
  struct rt_call *c = &r->call;
  struct rt_resil *x = r->srv->resil;
  int64_t now = rt_now_us(), now_ms = now / 1000;
  const struct pol_model *m;
  int idx;
  for (;;) {
    m = c->chain[c->pos];
    struct rt_pick_cand cand[64];
    size_t n = m->n_deployments < 64 ? m->n_deployments : 64;
    bool untried = false;
    for (size_t j = 0; j < n; j++) {
      unsigned why;
      cand[j].weight = m->deployments[j].weight;
      cand[j].in_flight = dep_for(x, m, j)->in_flight;
      cand[j].eligible = !(c->banned >> j & 1) && usable(r, m, j, now_ms, &why);
      if (!cand[j].eligible && !(c->banned >> j & 1)) {
        c->skips |= why;
        if (!(c->skipped >> j & 1) && !(c->tried >> j & 1)) {   /* its attempt is logged */
          c->skipped |= 1ull << j;
          skip_rec(c, m, dep_for(x, m, j), skip_name(why));
        }
      }
      untried |= cand[j].eligible && !(c->tried >> j & 1);
    }
    if (untried)   /* a deployment not yet tried in this request goes first */
      for (size_t j = 0; j < n; j++)
        if (c->tried >> j & 1) cand[j].eligible = false;
    idx = rt_balance_pick(m->balance, cand, n, rnd(x));
    if (idx >= 0) break;
    /* nothing on this model: move on if it was never tried (unavailable) or its failure falls
     * back */
    long k = -1;
    if (c->pos + 1 < c->n_chain && time_ok(c, now) &&
        (c->tries == 0 || (c->last_class & m->fallback_on)))
      k = next_available(r, c->pos + 1, now_ms);
    if (k < 0) return fail_unavailable(r, now_ms, no);
    if (c->tries) x->fallbacks[rt_model_index(x->cfg, m)]++;
    enter_model(c, (size_t)k);
  }
  struct rt_dep *d = dep_for(x, m, (size_t)idx);
  c->ticket = up_breaker_acquire(&d->breaker, now_ms);   /* ready was checked: never DENY */
  c->dep = d;
  d->in_flight++;
  c->t_attempt = now;
  c->waited_ms = c->t_prev_end ? (double)(now - c->t_prev_end) / 1e3 : 0;
  c->tried |= 1ull << idx;
  c->tries++;
  c->retry_after_ms = -1;
  c->up_should_retry = 0;
  c->err_len = 0;
  r->deployment = &m->deployments[idx];
  r->served = m;
  r->call_ops = c->ops_by_kind[m->deployments[idx].provider->kind];
  return 0;
}

void rt_resil_timeouts(const struct rt_req *r, struct up_request *rq) {
  const struct rt_call *c = &r->call;
  const struct pol_timeouts *to = &r->served->timeouts;
  int64_t now = rt_now_us();
  int64_t left = (c->deadline_us - now) / 1000, start_left = (c->start_deadline_us - now) / 1000;
  if (left < 1) left = 1;
  if (start_left < 1) start_left = 1;
  rq->connect_timeout_ms = to->connect_ms < start_left ? to->connect_ms : (int)start_left;
  rq->first_byte_timeout_ms = to->first_byte_ms < start_left ? to->first_byte_ms : (int)start_left;
  rq->idle_timeout_ms = to->idle_ms;
  rq->total_timeout_ms = to->total_ms < left ? to->total_ms : (int)left;
}

void rt_resil_on_headers(struct rt_req *r, int status, const struct up_header *h, size_t n) {
  struct rt_call *c = &r->call;
  if (status < 300) return;
  const char *ra_ms = NULL, *ra = NULL;
  for (size_t i = 0; i < n; i++) {
    if (!strcasecmp(h[i].name, "retry-after-ms")) ra_ms = h[i].value;
    else if (!strcasecmp(h[i].name, "retry-after")) ra = h[i].value;
    else if (!strcasecmp(h[i].name, "x-should-retry"))
      c->up_should_retry = !strcasecmp(h[i].value, "true") ? 1 : !strcasecmp(h[i].value, "false") ? -1 : 0;
  }
  c->retry_after_ms = up_retry_after_ms(ra_ms, ra, rt_wall_us() / 1000);
}

void rt_resil_on_data(struct rt_req *r, const char *p, size_t n) {
  struct rt_call *c = &r->call;
  if (c->err_len >= ERR_HEAD_MAX) return;
  if (!c->err_head && !(c->err_head = malloc(ERR_HEAD_MAX + 1))) return;
  size_t k = ERR_HEAD_MAX - c->err_len < n ? ERR_HEAD_MAX - c->err_len : n;
  memcpy(c->err_head + c->err_len, p, k);
  c->err_len += k;
  c->err_head[c->err_len] = '\0';
}

static bool err_says(const struct rt_call *c, const char *const *needles) {
  if (!c->err_head || !c->err_len) return false;
  for (; *needles; needles++)
    if (strcasestr(c->err_head, *needles)) return true;
  return false;
}

static const char *class_name(unsigned cls) {
  if (cls & POL_FAIL_CONTEXT) return "context_length";
  switch (cls) {
  case POL_FAIL_CONNECT: return "connect";
  case POL_FAIL_TIMEOUT: return "timeout";
  case POL_FAIL_408: return "408";
  case POL_FAIL_429: return "429";
  case POL_FAIL_5XX: return "5xx";
  case POL_FAIL_529: return "529";
  case POL_FAIL_4XX: return "4xx";
  default: return "error";
  }
}

int rt_resil_done(struct rt_req *r, const struct up_result *res) {
  struct rt_call *c = &r->call;
  struct rt_resil *x = r->srv->resil;
  struct rt_dep *d = c->dep;
  const struct pol_model *m = c->chain[c->pos];
  int64_t now = rt_now_us(), now_ms = now / 1000;
  int http = r->up_status;   /* a status line may have come before a transport failure */

  /* what kind of failure, if any */
  unsigned cls = 0;
  bool ok = false, verdict = true, unhealthy = false;
  enum outcome out = OUT_ERROR;
  switch (res->status) {
  case UP_OK:
    if (http < 400) {
      ok = true;
      out = OUT_OK;
      break;
    }
    cls = pol_fail_class(http, false, false);
    if (cls == POL_FAIL_4XX) {
      static const char *const ctx[] = {"context_length_exceeded", "maximum context length",
                                        "context window", "prompt is too long", NULL};
      if (err_says(c, ctx)) cls |= POL_FAIL_CONTEXT;
    }
    out = http == 408 ? OUT_408 : http == 429 ? OUT_429 : http == 529 ? OUT_529
          : http >= 500 ? OUT_5XX : OUT_4XX;
    break;
  case UP_ERR_CONNECT:
  case UP_ERR_RECV:       /* refused, reset, closed early: nothing usable arrived */
    cls = POL_FAIL_CONNECT;
    out = OUT_CONNECT;
    break;
  case UP_ERR_TIMEOUT_CONNECT:
  case UP_ERR_TIMEOUT_FIRST_BYTE:
  case UP_ERR_TIMEOUT_IDLE:
  case UP_ERR_TIMEOUT_TOTAL:
    cls = POL_FAIL_TIMEOUT;
    out = OUT_TIMEOUT;
    break;
  case UP_ERR_ABORTED:    /* our own limit (reply too large): says nothing about the upstream */
    verdict = false;
    break;
  case UP_ERR_OTHER:
    unhealthy = true;
    break;
  }
  unhealthy |= (cls & d->breaker_on) != 0;
  /* a local model at capacity or shutting down is working as designed (its own back-pressure,
   * like an upstream's 429): it says nothing about its health */
  const char *lcls = d->provider->kind == POL_PROVIDER_LOCAL ? r->local_stats.error_class : NULL;
  if (lcls && (!strcmp(lcls, "local_queue_full") || !strcmp(lcls, "shutdown"))) verdict = false;
  if (verdict) up_breaker_record(&d->breaker, now_ms, c->ticket, !unhealthy);
  else up_breaker_release(&d->breaker, c->ticket);
  d->in_flight--;
  d->outcomes[out]++;
  c->dep = NULL;
  c->t_prev_end = now;
  if (cls) c->last_class = cls;

  struct rt_attempt_rec rec = {
      .model = m, .dep = d, .http_status = http,
      .error = res->status == UP_OK ? NULL : up_status_name(res->status),
      .cls = ok ? NULL : class_name(cls),
      .latency_ms = (double)(now - c->t_attempt) / 1e3, .waited_ms = c->waited_ms,
      .retry_after_ms = c->retry_after_ms,
  };
  if (ok) {
    /* a first-try success has nothing to explain: no log entry (attempt_log stays NULL) */
    rec.next = "answer";
    if (c->n_recs) push_rec(c, &rec);
    return RT_RESIL_FINAL;
  }
  if (r->resp_started || !r->q->conn) {
    rec.next = "final";   /* bytes reached the client: the stream ends with an error event */
    push_rec(c, &rec);
    return RT_RESIL_FINAL;
  }

  /* this deployment is not retried for this request when it asked not to be, or for longer than
   * we wait, or its quota is spent */
  size_t j = (size_t)(r->deployment - m->deployments);
  static const char *const quota[] = {"insufficient_quota", "spend_limit", "billing", NULL};
  if (c->up_should_retry < 0 || (http == 429 && err_says(c, quota)) ||
      c->retry_after_ms > m->retry.max_delay_ms)
    c->banned |= 1ull << j;

  bool wanted = false;
  bool retryable = (cls & m->retry.on) || (cls && c->up_should_retry > 0);
  if (retryable && m->retry.max_attempts > 1) {
    wanted = true;
    int delay = -1;
    if (c->tries < m->retry.max_attempts) {
      bool untried = false, any = false;
      for (size_t k = 0; k < m->n_deployments && k < 64; k++) {
        unsigned why;
        if (c->banned >> k & 1 || !usable(r, m, k, now_ms, &why)) continue;
        any = true;
        untried |= !(c->tried >> k & 1);
      }
      if (untried) {
        delay = 0;
      } else if (any) {
        if (c->retry_after_ms >= 0 && !(c->banned >> j & 1)) {
          delay = (int)c->retry_after_ms;
        } else {
          enum up_jitter jt = m->retry.jitter == POL_JITTER_DECORRELATED ? UP_JITTER_DECORRELATED
                              : m->retry.jitter == POL_JITTER_NONE       ? UP_JITTER_NONE
                                                                         : UP_JITTER_FULL;
          delay = up_backoff_ms(jt, m->retry.base_delay_ms, m->retry.max_delay_ms,
                                c->backoffs + 1, c->prev_delay_ms, rnd(x));
        }
        c->backoffs++;
        c->prev_delay_ms = delay;
      }
      if (delay >= 0 && !time_ok(c, now + (int64_t)delay * 1000)) delay = -1;   /* no time left */
    }
    if (delay >= 0) {
      rec.next = "retry";
      push_rec(c, &rec);
      x->retries[rt_model_index(x->cfg, m)]++;
      return delay;
    }
  }
  if ((cls & m->fallback_on) && c->pos + 1 < c->n_chain) {
    wanted = true;
    size_t mark = c->n_recs;
    rec.next = "fallback";
    push_rec(c, &rec);
    long k = time_ok(c, now) ? next_available(r, c->pos + 1, now_ms) : -1;
    if (k >= 0) {
      x->fallbacks[rt_model_index(x->cfg, m)]++;
      enter_model(c, (size_t)k);
      return 0;
    }
    if (mark < c->n_recs) c->recs[mark].next = "final";
  } else {
    rec.next = "final";
    push_rec(c, &rec);
  }
  if (r->attempts > 1 || wanted) r->should_retry = -1;
  return RT_RESIL_FINAL;
}

void rt_resil_abandon(struct rt_req *r) {
  struct rt_call *c = &r->call;
  if (!c->dep) return;
  up_breaker_release(&c->dep->breaker, c->ticket);
  c->dep->in_flight--;
  c->dep = NULL;
}

void rt_resil_cleanup(struct rt_req *r) {
  struct rt_call *c = &r->call;
  if (c->dep) {
    c->dep->outcomes[OUT_CANCELLED]++;
    rt_resil_abandon(r);
  }
  free(c->recs);
  c->recs = NULL;
  c->n_recs = c->cap_recs = 0;
  free(c->err_head);
  c->err_head = NULL;
  free(c->log_json);
  c->log_json = NULL;
}
