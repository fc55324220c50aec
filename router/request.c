/*
 * request.c: the request lifecycle: route a parsed request to its surface, the one error path,
 * and the end of every request (one metrics observation, one log row).
 *
 * Every request that reaches the gateway gets one log row, operational GETs (/healthz, /metrics,
 * /v1/models) included: the row's endpoint column ("GET /healthz") tells them apart, so cost
 * reports filter on it instead of the log silently missing requests.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router/internal.h"

static bool path_is(const struct rt_req *r, const char *p) {
  size_t n = strlen(p);
  return r->head.path_len == n && !memcmp(r->head.target, p, n);
}

static bool method_is(const struct rt_req *r, const char *m) { return !strcmp(r->head.method, m); }

static void method_not_allowed(struct rt_req *r, const char *allow) {
  /* the Allow header rides along as a pass-through header of this reply */
  static const char name[] = "allow";
  if (r->n_pass < RT_MAX_PASS_HEADERS) {
    r->pass[r->n_pass].name = name;
    r->pass[r->n_pass].value = allow;
    r->n_pass++;
  }
  rt_req_fail(r, 405, "method_not_allowed", "invalid_request_error", "method_not_allowed", NULL,
              "Method %s is not allowed for %.*s (allowed: %s).", r->head.method,
              (int)r->head.path_len, r->head.target, allow);
}

static void healthz(struct rt_req *r) {
  if (r->srv->draining) {
    static const char body[] = "{\"status\":\"draining\"}";
    rt_resp_full(r, 503, "application/json", body, sizeof body - 1, NULL, 0);
  } else {
    static const char body[] = "{\"status\":\"ok\"}";
    rt_resp_full(r, 200, "application/json", body, sizeof body - 1, NULL, 0);
  }
}

static void metrics(struct rt_req *r) {
  struct rt_server *s = r->srv;
  struct rt_gauges g = {.connections = s->n_conns, .in_flight = s->n_reqs ? s->n_reqs - 1 : 0,
                        .upstream_active = up_multi_active(s->up), .draining = s->draining};
  if (s->db) db_stats(s->db, &g.db);
  struct evbuffer *b = evbuffer_new();
  if (!b) {
    rt_req_fail(r, 500, "internal", "server_error", NULL, NULL, "out of memory");
    return;
  }
  rt_metrics_render(s->metrics, &g, b);
  rt_resil_render(s->resil, b);
  size_t n = evbuffer_get_length(b);
  rt_resp_full(r, 200, "text/plain; version=0.0.4; charset=utf-8", evbuffer_pullup(b, -1), n, NULL, 0);
  evbuffer_free(b);
}

/* API work is refused while the request log is behind (see rt_req_log). */
static bool shed(struct rt_req *r) {
  if (!r->srv->log_pressure) return false;
  static const char name[] = "retry-after", one[] = "1";
  if (r->n_pass < RT_MAX_PASS_HEADERS) {
    r->pass[r->n_pass].name = name;
    r->pass[r->n_pass].value = one;
    r->n_pass++;
  }
  rt_req_fail(r, 503, "overloaded", "server_error", "server_overloaded", NULL,
              "The gateway is overloaded (its request log is behind); retry shortly.");
  return true;
}

void rt_req_pick_surface(struct rt_req *r) {
  static const char messages[] = "/v1/messages";
  bool anthropic = r->head.path_len >= sizeof messages - 1 &&
                   !memcmp(r->head.target, messages, sizeof messages - 1) &&
                   (r->head.path_len == sizeof messages - 1 || r->head.target[sizeof messages - 1] == '/');
  /* the Anthropic SDK lists models at the same path as OpenAI's: its version header tells */
  if (!anthropic && r->head.path_len >= 10 && !memcmp(r->head.target, "/v1/models", 10) &&
      rt_http_header(&r->head, "anthropic-version"))
    anthropic = true;
  r->surface = anthropic ? &rt_anthropic_surface : &rt_openai_surface;
}

void rt_req_dispatch(struct rt_req *r) {
  static const char models_prefix[] = "/v1/models/";
  bool anthropic = r->surface == &rt_anthropic_surface;
  if (path_is(r, "/v1/messages")) {
    r->route = RT_ROUTE_MESSAGES;
    if (method_is(r, "POST")) rt_anthropic_messages(r);
    else method_not_allowed(r, "POST");
  } else if (path_is(r, "/v1/messages/count_tokens")) {
    r->route = RT_ROUTE_COUNT_TOKENS;
    if (method_is(r, "POST")) rt_anthropic_count_tokens(r);
    else method_not_allowed(r, "POST");
  } else if (path_is(r, "/v1/chat/completions")) {
    r->route = RT_ROUTE_CHAT;
    if (!method_is(r, "POST")) method_not_allowed(r, "POST");
    else if (!shed(r)) rt_openai_chat(r);
  } else if (path_is(r, "/v1/models")) {
    r->route = RT_ROUTE_MODELS;
    if (!method_is(r, "GET")) method_not_allowed(r, "GET");
    else if (anthropic) rt_anthropic_models(r);
    else rt_openai_models(r);
  } else if (r->head.path_len > sizeof models_prefix - 1 &&
             !memcmp(r->head.target, models_prefix, sizeof models_prefix - 1)) {
    r->route = RT_ROUTE_MODEL;
    if (!method_is(r, "GET")) {
      method_not_allowed(r, "GET");
      return;
    }
    char id[512];
    const char *raw = r->head.target + sizeof models_prefix - 1;
    size_t rawlen = r->head.path_len - (sizeof models_prefix - 1);
    if (rt_url_decode(raw, rawlen, id, sizeof id) < 0) {
      rt_req_fail(r, 400, "bad_request", "invalid_request_error", NULL, NULL,
                  "Malformed model id in the URL.");
      return;
    }
    if (anthropic) rt_anthropic_model(r, id);
    else rt_openai_model(r, id);
  } else if (path_is(r, "/healthz")) {
    r->route = RT_ROUTE_HEALTHZ;
    if (method_is(r, "GET")) healthz(r);
    else method_not_allowed(r, "GET");
  } else if (path_is(r, "/metrics")) {
    r->route = RT_ROUTE_METRICS;
    if (method_is(r, "GET")) metrics(r);
    else method_not_allowed(r, "GET");
  } else {
    r->route = RT_ROUTE_OTHER;
    rt_req_fail(r, 404, "not_found", "invalid_request_error", "unknown_url", NULL,
                "Invalid URL (%s %.*s)", r->head.method, (int)(r->head.path_len > 200 ? 200 : r->head.path_len),
                r->head.target);
  }
}

void rt_req_fail(struct rt_req *r, int status, const char *error_class, const char *type,
                 const char *code, const char *param, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->error_msg, sizeof r->error_msg, fmt, ap);
  va_end(ap);
  r->error_class = error_class;
  r->surface->send_error(r, status, type, code, param, r->error_msg);
}

void rt_req_pass_headers(struct rt_req *r, const struct up_header *keep, size_t n_keep,
                         const struct up_header *all, size_t n_all) {
  if (n_keep > RT_MAX_PASS_HEADERS) n_keep = RT_MAX_PASS_HEADERS;
  size_t need = 0;
  for (size_t i = 0; i < n_keep; i++) need += strlen(keep[i].name) + strlen(keep[i].value) + 2;
  free(r->pass_buf);
  r->pass_buf = need ? malloc(need) : NULL;
  r->n_pass = 0;
  size_t off = 0;
  for (size_t i = 0; i < n_keep && r->pass_buf; i++) {
    size_t nl = strlen(keep[i].name) + 1, vl = strlen(keep[i].value) + 1;
    char *name = r->pass_buf + off;
    memcpy(name, keep[i].name, nl);
    for (char *p = name; *p; p++)
      if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    memcpy(name + nl, keep[i].value, vl);
    r->pass[r->n_pass].name = name;
    r->pass[r->n_pass].value = name + nl;
    r->n_pass++;
    off += nl + vl;
  }
  for (size_t i = 0; i < n_all; i++) {
    if (!strcasecmp(all[i].name, "content-type")) {
      free(r->up_ctype);
      r->up_ctype = strdup(all[i].value);
    }
  }
}

int rt_req_take_data(struct rt_req *r, const char *p, size_t n, up_sse_cb on_event) {
  if (r->sse_mode) {
    if (rt_resp_pending(r) > STREAM_HIGH_WATER) {
      r->paused = true;
      return UP_DATA_PAUSE;
    }
    int rc = up_sse_feed(&r->sse, p, n, on_event, r);
    return rc < 0 || rc == RT_SSE_ABORT ? UP_DATA_ABORT : UP_DATA_OK;
  }
  if (!r->t_first_token) r->t_first_token = rt_now_us();
  if (!r->up_body) return UP_DATA_ABORT;
  if (evbuffer_get_length(r->up_body) + n > MAX_UPSTREAM_BODY) {
    r->up_too_large = true;
    return UP_DATA_ABORT;
  }
  evbuffer_add(r->up_body, p, n);
  return UP_DATA_OK;
}

bool rt_up_timed_out(const struct up_result *res) {
  return res->status == UP_ERR_TIMEOUT_CONNECT || res->status == UP_ERR_TIMEOUT_FIRST_BYTE ||
         res->status == UP_ERR_TIMEOUT_IDLE || res->status == UP_ERR_TIMEOUT_TOTAL;
}

const char *rt_req_interrupted(const struct rt_req *r, const struct up_result *res, char *msg,
                               size_t cap) {
  bool to = rt_up_timed_out(res), big = res->status == UP_ERR_ABORTED;
  snprintf(msg, cap, "The upstream stream from provider '%.60s' was interrupted: %.120s%s",
           rt_req_provider_name(r), big ? "an event exceeded the size limit" : res->message,
           to ? " (timeout)" : "");
  return to ? "upstream_timeout" : big ? "upstream_bad_response" : "upstream_disconnect";
}

void rt_req_fail_upstream(struct rt_req *r, const struct up_result *res) {
  const char *pname = rt_req_provider_name(r);
  if (rt_up_timed_out(res))
    rt_req_fail(r, 504, "upstream_timeout", "server_error", "upstream_timeout", NULL,
                "The upstream provider '%s' did not answer in time (%s): %s", pname,
                up_status_name(res->status), res->message);
  else if (res->status == UP_ERR_CONNECT)
    rt_req_fail(r, 502, "upstream_connect", "server_error", "upstream_connect_failed", NULL,
                "Could not connect to the upstream provider '%s': %s", pname, res->message);
  else if (r->up_too_large)
    rt_req_fail(r, 502, "upstream_bad_response", "server_error", "upstream_response_too_large", NULL,
                "The upstream provider '%s' sent a reply larger than %u bytes.", pname,
                MAX_UPSTREAM_BODY);
  else
    rt_req_fail(r, 502, "upstream_disconnect", "server_error", "upstream_error", NULL,
                "The upstream provider '%s' failed mid-reply: %s", pname, res->message);
}

void rt_req_on_drain(struct rt_req *r) {
  if (r->paused && r->xfer) {
    r->paused = false;
    up_resume(r->xfer);
  }
}

/* "METHOD /path" for the endpoint column: the route's own label for known routes, else the
 * request's path, printable ASCII only and capped (the path is whatever the client sent). */
static void endpoint_text(const struct rt_req *r, char *buf, size_t cap) {
  const char *m = r->head.method[0] ? r->head.method : "-";
  if (r->route != RT_ROUTE_OTHER && r->route != RT_ROUTE_MODEL) {
    snprintf(buf, cap, "%s %s", m, rt_route_label(r->route));
    return;
  }
  size_t n = (size_t)snprintf(buf, cap, "%s ", m);
  if (n >= cap) return;
  size_t plen = r->head.target ? r->head.path_len : 0;
  if (plen > 200) plen = 200;
  for (size_t i = 0; i < plen && n + 1 < cap; i++) {
    unsigned char c = (unsigned char)r->head.target[i];
    buf[n++] = c > 0x20 && c < 0x7f ? (char)c : '?';
  }
  if (!plen && n + 1 < cap) buf[n++] = '-';
  buf[n] = 0;
}

void rt_req_log(struct rt_req *r) {
  struct rt_server *s = r->srv;
  const struct pol_config *cfg = s->cfg;
  int64_t t_end = rt_now_us();
  double total_ms = (double)(t_end - r->t0) / 1e3;
  double upstream_ms = -1;
  if (r->t_up_start) upstream_ms = (double)((r->t_up_end ? r->t_up_end : t_end) - r->t_up_start) / 1e3;
  double overhead_ms = total_ms - (upstream_ms > 0 ? upstream_ms : 0);
  if (overhead_ms < 0) overhead_ms = 0;

  int64_t cost = -1, baseline = -1;
  if (r->have_usage && r->model) {
    cost = pol_cost_pusd(r->deployment ? &r->deployment->price : &r->model->price, &r->usage);
    baseline = pol_baseline_cost_pusd(cfg, r->model, &r->usage);
  }

  struct rt_observation o = {
      .route = r->route,
      .model_index = rt_model_index(cfg, r->model),
      .status = r->status,
      .streamed = r->sse_mode,
      .total_ms = total_ms,
      .upstream_ms = upstream_ms,
      .overhead_ms = overhead_ms,
      .usage = r->have_usage ? &r->usage : NULL,
      .cost_pusd = cost,
      .baseline_cost_pusd = baseline,
  };
  rt_metrics_observe(s->metrics, &o);

  if (!s->db) return;
  char endpoint[256];
  endpoint_text(r, endpoint, sizeof endpoint);
  char route[512];
  const char *provider = NULL, *upstream_model = NULL;
  if (r->model) {
    provider = rt_req_provider_name(r);
    upstream_model = rt_req_upstream_model(r);
    snprintf(route, sizeof route, "%s/%s", provider, upstream_model);
  }
  char model[257];
  if (r->model_name) snprintf(model, sizeof model, "%s", r->model_name);
  struct db_row row = {
      .started_us = r->wall0_us,
      .finished_us = r->wall0_us + (t_end - r->t0),
      .client_api = r->surface->name,
      .endpoint = endpoint,
      .route = provider ? route : NULL,
      .provider = provider,
      .model = r->model_name ? model : NULL,
      .upstream_model = upstream_model,
      .streamed = r->stream,
      .input_tokens = r->have_usage ? r->usage.input_tokens : 0,
      .cached_tokens = r->have_usage ? r->usage.cached_tokens : 0,
      .cache_write_tokens = r->have_usage ? r->usage.cache_write_tokens : 0,
      .output_tokens = r->have_usage ? r->usage.output_tokens : 0,
      .reasoning_tokens = r->have_usage ? r->usage.reasoning_tokens : 0,
      .cost_pusd = cost,
      .baseline_cost_pusd = baseline,
      .total_ms = total_ms,
      .upstream_ms = upstream_ms,
      .ttft_ms = r->t_first_token ? (double)(r->t_first_token - r->t0) / 1e3 : -1,
      .overhead_ms = overhead_ms,
      .http_status = r->status,
      .error_class = r->error_class,
      .error_message = r->error_class ? r->error_msg : NULL,
      .attempts = r->attempts,
      .attempt_log = rt_resil_log_json(r),
  };
  snprintf(row.request_id, sizeof row.request_id, "%s", r->id);
  int rc = db_log(s->db, &row);
  if (rc < 0) fprintf(stderr, "tiergate: log row %s lost (db_log %d)\n", r->id, rc);
  /* 1: the writer is behind and the row went into its reserve; new API work is refused (503)
   * until a row is queued normally again, so the log catches up instead of losing rows */
  if (rc == 1 && !s->log_pressure) fprintf(stderr, "tiergate: request log is behind: shedding new requests\n");
  s->log_pressure = rc == 1 || rc == -ENOSPC;
}
