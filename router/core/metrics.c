/*
 * metrics.c: the gateway's Prometheus metrics (text exposition format 0.0.4) for GET /metrics.
 *
 * Everything is updated and read on the event-loop thread, so plain integers suffice. Label sets
 * are bounded so a client cannot grow memory: route is one of RT_ROUTE_COUNT fixed labels, model
 * is a configured model's public name (or "" for requests that named none / an unknown one),
 * status is an HTTP status (100-599) and each (route, model) pair keeps at most MAX_STATUSES.
 */
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "router/internal.h"

#define MAX_STATUSES 48

/* Upper bounds in seconds. Latency spans sub-millisecond (local answers) to minutes (long
 * generations); overhead is the gateway's own time and lives in the tens of microseconds. */
static const double lat_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                    1, 2.5, 5, 10, 30, 60, 120, 300};
static const double ovh_bounds[] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                    0.01, 0.025, 0.05, 0.1};
#define N_LAT (sizeof lat_bounds / sizeof lat_bounds[0])
#define N_OVH (sizeof ovh_bounds / sizeof ovh_bounds[0])

struct status_count {
  int status;
  uint64_t n;
};

struct per_route_model {
  struct status_count st[MAX_STATUSES];
  int n_st;
};

struct hist {
  uint64_t b[N_LAT + 1]; /* cumulative is computed when rendering; last = +Inf */
  double sum;
  uint64_t count;
};

struct per_model {
  struct hist total, upstream;
  uint64_t ovh_b[N_OVH + 1];
  double ovh_sum;
  uint64_t ovh_count;
  uint64_t tok_in, tok_cached, tok_out, tok_reasoning;
  int64_t cost_pusd, baseline_pusd;
  uint64_t streamed;
};

struct rt_metrics {
  const struct pol_config *cfg;
  size_t n_models;                 /* cfg->n_models + 1: slot 0 is "no model" */
  struct per_route_model *rm;      /* [RT_ROUTE_COUNT][n_models] */
  struct per_model *pm;            /* [n_models] */
};

const char *rt_route_label(enum rt_route r) {
  switch (r) {
  case RT_ROUTE_CHAT: return "/v1/chat/completions";
  case RT_ROUTE_MODELS: return "/v1/models";
  case RT_ROUTE_MODEL: return "/v1/models/{id}";
  case RT_ROUTE_HEALTHZ: return "/healthz";
  case RT_ROUTE_METRICS: return "/metrics";
  case RT_ROUTE_MESSAGES: return "/v1/messages";
  case RT_ROUTE_COUNT_TOKENS: return "/v1/messages/count_tokens";
  case RT_ROUTE_EMBEDDINGS: return "/v1/embeddings";
  default: return "other";
  }
}

struct rt_metrics *rt_metrics_new(const struct pol_config *cfg) {
  struct rt_metrics *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->cfg = cfg;
  m->n_models = (cfg ? cfg->n_models : 0) + 1;
  m->rm = calloc(RT_ROUTE_COUNT * m->n_models, sizeof *m->rm);
  m->pm = calloc(m->n_models, sizeof *m->pm);
  if (!m->rm || !m->pm) {
    rt_metrics_free(m);
    return NULL;
  }
  return m;
}

void rt_metrics_free(struct rt_metrics *m) {
  if (!m) return;
  free(m->rm);
  free(m->pm);
  free(m);
}

static void hist_add(struct hist *h, double sec) {
  size_t i = 0;
  while (i < N_LAT && sec > lat_bounds[i]) i++;
  h->b[i]++;
  h->sum += sec;
  h->count++;
}

void rt_metrics_observe(struct rt_metrics *m, const struct rt_observation *o) {
  if (!m) return;
  size_t mi = (o->model_index >= 0 && (size_t)o->model_index + 1 < m->n_models)
                  ? (size_t)o->model_index + 1 : 0;
  enum rt_route route = o->route < RT_ROUTE_COUNT ? o->route : RT_ROUTE_OTHER;
  struct per_route_model *rm = &m->rm[(size_t)route * m->n_models + mi];
  int status = (o->status >= 100 && o->status <= 599) ? o->status : 0;
  int k;
  for (k = 0; k < rm->n_st && rm->st[k].status != status; k++) {
  }
  if (k == rm->n_st && rm->n_st < MAX_STATUSES) rm->st[rm->n_st++].status = status;
  if (k < rm->n_st) rm->st[k].n++;

  struct per_model *pm = &m->pm[mi];
  hist_add(&pm->total, o->total_ms / 1e3);
  if (o->upstream_ms >= 0) {
    hist_add(&pm->upstream, o->upstream_ms / 1e3);
    double sec = o->overhead_ms / 1e3;
    size_t i = 0;
    while (i < N_OVH && sec > ovh_bounds[i]) i++;
    pm->ovh_b[i]++;
    pm->ovh_sum += sec;
    pm->ovh_count++;
  }
  if (o->streamed) pm->streamed++;
  if (o->usage) {
    pm->tok_in += (uint64_t)(o->usage->input_tokens > 0 ? o->usage->input_tokens : 0);
    pm->tok_cached += (uint64_t)(o->usage->cached_tokens > 0 ? o->usage->cached_tokens : 0);
    pm->tok_out += (uint64_t)(o->usage->output_tokens > 0 ? o->usage->output_tokens : 0);
    pm->tok_reasoning += (uint64_t)(o->usage->reasoning_tokens > 0 ? o->usage->reasoning_tokens : 0);
  }
  if (o->cost_pusd > 0) pm->cost_pusd += o->cost_pusd;
  if (o->baseline_cost_pusd > 0) pm->baseline_pusd += o->baseline_cost_pusd;
}

void rt_metrics_label(struct evbuffer *out, const char *s) {
  for (; *s; s++) {
    if (*s == '\\') evbuffer_add(out, "\\\\", 2);
    else if (*s == '"') evbuffer_add(out, "\\\"", 2);
    else if (*s == '\n') evbuffer_add(out, "\\n", 2);
    else evbuffer_add(out, s, 1);
  }
}

static const char *model_name(const struct rt_metrics *m, size_t mi) {
  return mi == 0 ? "" : m->cfg->models[mi - 1].name;
}

static void model_label(struct evbuffer *out, const struct rt_metrics *m, size_t mi) {
  evbuffer_add_printf(out, "model=\"");
  rt_metrics_label(out, model_name(m, mi));
  evbuffer_add(out, "\"", 1);
}

static void render_hist(struct evbuffer *out, const struct rt_metrics *m, const char *name,
                        const char *help, bool upstream) {
  evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
  for (size_t mi = 0; mi < m->n_models; mi++) {
    const struct hist *h = upstream ? &m->pm[mi].upstream : &m->pm[mi].total;
    if (!h->count) continue;
    uint64_t cum = 0;
    for (size_t i = 0; i <= N_LAT; i++) {
      cum += h->b[i];
      evbuffer_add_printf(out, "%s_bucket{", name);
      model_label(out, m, mi);
      if (i < N_LAT) evbuffer_add_printf(out, ",le=\"%g\"} %llu\n", lat_bounds[i], (unsigned long long)cum);
      else evbuffer_add_printf(out, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    evbuffer_add_printf(out, "%s_sum{", name);
    model_label(out, m, mi);
    evbuffer_add_printf(out, "} %.9g\n%s_count{", h->sum, name);
    model_label(out, m, mi);
    evbuffer_add_printf(out, "} %llu\n", (unsigned long long)h->count);
  }
}

void rt_metrics_render(const struct rt_metrics *m, const struct rt_gauges *g, struct evbuffer *out) {
  evbuffer_add_printf(out, "# HELP tiergate_requests_total Requests answered, by route, model and status.\n"
                           "# TYPE tiergate_requests_total counter\n");
  for (int r = 0; r < RT_ROUTE_COUNT; r++) {
    for (size_t mi = 0; mi < m->n_models; mi++) {
      const struct per_route_model *rm = &m->rm[(size_t)r * m->n_models + mi];
      for (int k = 0; k < rm->n_st; k++) {
        evbuffer_add_printf(out, "tiergate_requests_total{route=\"%s\",", rt_route_label((enum rt_route)r));
        model_label(out, m, mi);
        evbuffer_add_printf(out, ",status=\"%d\"} %llu\n", rm->st[k].status,
                            (unsigned long long)rm->st[k].n);
      }
    }
  }
  render_hist(out, m, "tiergate_request_duration_seconds",
              "Total request latency as seen by the gateway, first request byte to last reply byte.", false);
  render_hist(out, m, "tiergate_upstream_duration_seconds",
              "Upstream call latency, request sent to response complete.", true);

  evbuffer_add_printf(out, "# HELP tiergate_overhead_seconds Time spent in the gateway itself "
                           "(total minus upstream), requests forwarded upstream.\n"
                           "# TYPE tiergate_overhead_seconds histogram\n");
  for (size_t mi = 0; mi < m->n_models; mi++) {
    const struct per_model *pm = &m->pm[mi];
    if (!pm->ovh_count) continue;
    uint64_t cum = 0;
    for (size_t i = 0; i <= N_OVH; i++) {
      cum += pm->ovh_b[i];
      evbuffer_add_printf(out, "tiergate_overhead_seconds_bucket{");
      model_label(out, m, mi);
      if (i < N_OVH) evbuffer_add_printf(out, ",le=\"%g\"} %llu\n", ovh_bounds[i], (unsigned long long)cum);
      else evbuffer_add_printf(out, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    evbuffer_add_printf(out, "tiergate_overhead_seconds_sum{");
    model_label(out, m, mi);
    evbuffer_add_printf(out, "} %.9g\ntiergate_overhead_seconds_count{", pm->ovh_sum);
    model_label(out, m, mi);
    evbuffer_add_printf(out, "} %llu\n", (unsigned long long)pm->ovh_count);
  }

  evbuffer_add_printf(out, "# HELP tiergate_tokens_total Tokens reported by upstreams, by model and kind "
                           "(input includes cached, output includes reasoning).\n"
                           "# TYPE tiergate_tokens_total counter\n");
  for (size_t mi = 1; mi < m->n_models; mi++) {
    const struct per_model *pm = &m->pm[mi];
    const char *kinds[] = {"input", "cached_input", "output", "reasoning"};
    uint64_t vals[] = {pm->tok_in, pm->tok_cached, pm->tok_out, pm->tok_reasoning};
    for (int k = 0; k < 4; k++) {
      evbuffer_add_printf(out, "tiergate_tokens_total{");
      model_label(out, m, mi);
      evbuffer_add_printf(out, ",type=\"%s\"} %llu\n", kinds[k], (unsigned long long)vals[k]);
    }
  }
  evbuffer_add_printf(out, "# HELP tiergate_cost_usd_total Cost of the requests at list prices, by model.\n"
                           "# TYPE tiergate_cost_usd_total counter\n");
  for (size_t mi = 1; mi < m->n_models; mi++) {
    evbuffer_add_printf(out, "tiergate_cost_usd_total{");
    model_label(out, m, mi);
    evbuffer_add_printf(out, "} %.12f\n", (double)m->pm[mi].cost_pusd / 1e12);
  }
  evbuffer_add_printf(out, "# HELP tiergate_baseline_cost_usd_total What the baseline model would have "
                           "charged for the same tokens, by model.\n"
                           "# TYPE tiergate_baseline_cost_usd_total counter\n");
  for (size_t mi = 1; mi < m->n_models; mi++) {
    evbuffer_add_printf(out, "tiergate_baseline_cost_usd_total{");
    model_label(out, m, mi);
    evbuffer_add_printf(out, "} %.12f\n", (double)m->pm[mi].baseline_pusd / 1e12);
  }
  evbuffer_add_printf(out, "# HELP tiergate_streamed_requests_total Requests answered as SSE streams.\n"
                           "# TYPE tiergate_streamed_requests_total counter\n");
  for (size_t mi = 1; mi < m->n_models; mi++) {
    evbuffer_add_printf(out, "tiergate_streamed_requests_total{");
    model_label(out, m, mi);
    evbuffer_add_printf(out, "} %llu\n", (unsigned long long)m->pm[mi].streamed);
  }

  if (g) {
    evbuffer_add_printf(out,
        "# HELP tiergate_connections Client connections open.\n# TYPE tiergate_connections gauge\n"
        "tiergate_connections %zu\n"
        "# HELP tiergate_requests_in_flight Requests being served.\n# TYPE tiergate_requests_in_flight gauge\n"
        "tiergate_requests_in_flight %zu\n"
        "# HELP tiergate_upstream_transfers Upstream transfers running.\n# TYPE tiergate_upstream_transfers gauge\n"
        "tiergate_upstream_transfers %zu\n"
        "# HELP tiergate_log_rows_queued_total Log rows accepted by the writer queue.\n"
        "# TYPE tiergate_log_rows_queued_total counter\ntiergate_log_rows_queued_total %llu\n"
        "# HELP tiergate_log_rows_written_total Log rows committed to SQLite.\n"
        "# TYPE tiergate_log_rows_written_total counter\ntiergate_log_rows_written_total %llu\n"
        "# HELP tiergate_log_rows_lost_total Log rows refused at the queue's hard cap.\n"
        "# TYPE tiergate_log_rows_lost_total counter\ntiergate_log_rows_lost_total %llu\n"
        "# HELP tiergate_log_queue_depth Log rows waiting for the writer.\n"
        "# TYPE tiergate_log_queue_depth gauge\ntiergate_log_queue_depth %zu\n"
        "# HELP tiergate_draining 1 while shutting down.\n# TYPE tiergate_draining gauge\n"
        "tiergate_draining %d\n",
        g->connections, g->in_flight, g->upstream_active, (unsigned long long)g->db.queued,
        (unsigned long long)g->db.written, (unsigned long long)g->db.rejected, g->db.depth,
        g->draining ? 1 : 0);
  }
}
