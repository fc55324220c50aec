/*
 * request.c: the request lifecycle on top of the HTTP server: the rt_req of each HTTP request
 * (created when the server hands it over, freed when the server reports its end), the replies
 * with the gateway's own headers, the one error path, and the end of every request (one metrics
 * observation, one log row).
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

#include <event2/event.h>
#include <time.h>

#include "router/internal.h"
#include "router/xlate/xlate.h"

int64_t rt_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t rt_wall_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int rt_model_index(const struct pol_config *cfg, const struct pol_model *m) {
  if (!m || !cfg || m < cfg->models || m >= cfg->models + cfg->n_models) return -1;
  return (int)(m - cfg->models);
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

/* An upstream header that is not a well-formed field (a CR, LF, NUL or other control byte in its
 * value could add header lines to our client's reply): dropped, and said once on stderr. */
static bool pass_ok(const struct rt_req *r, const struct up_header *h) {
  if (rt_http_field_ok(h->name, h->value)) return true;
  bool name_ok = rt_http_field_ok(h->name, "");
  fprintf(stderr, "tiergate: request %s: upstream header '%.64s' dropped: control bytes in its %s\n",
          r->id, name_ok ? h->name : "?", name_ok ? "value" : "name");
  return false;
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
    if (!pass_ok(r, &keep[i])) continue;
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
      if (!pass_ok(r, &all[i])) continue;
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

const char *rt_req_answer_error_class(const struct rt_req *r) {
  const struct pol_provider *p = rt_req_provider(r);
  if (p && p->kind == POL_PROVIDER_LOCAL && r->local_stats.error_class) return r->local_stats.error_class;
  return "upstream_error";
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


/* "METHOD /path" for the endpoint column: the route's own label for known routes, else the
 * request's path, printable ASCII only and capped (the path is whatever the client sent). */
static void endpoint_text(const struct rt_req *r, char *buf, size_t cap) {
  const char *m = r->head->method[0] ? r->head->method : "-";
  if (r->route != RT_ROUTE_OTHER && r->route != RT_ROUTE_MODEL) {
    snprintf(buf, cap, "%s %s", m, rt_route_label(r->route));
    return;
  }
  size_t n = (size_t)snprintf(buf, cap, "%s ", m);
  if (n >= cap) return;
  size_t plen = r->head->target ? r->head->path_len : 0;
  if (plen > 200) plen = 200;
  for (size_t i = 0; i < plen && n + 1 < cap; i++) {
    unsigned char c = (unsigned char)r->head->target[i];
    buf[n++] = c > 0x20 && c < 0x7f ? (char)c : '?';
  }
  if (!plen && n + 1 < cap) buf[n++] = '-';
  buf[n] = 0;
}

static void req_log(struct rt_req *r) {
  struct rt_server *s = r->srv;
  const struct pol_config *cfg = s->cfg;
  int64_t t_end = rt_now_us();
  double total_ms = (double)(t_end - r->t0) / 1e3;
  double upstream_ms = -1;
  if (r->t_up_start) upstream_ms = (double)((r->t_up_end ? r->t_up_end : t_end) - r->t_up_start) / 1e3;
  double overhead_ms = total_ms - (upstream_ms > 0 ? upstream_ms : 0);
  if (overhead_ms < 0) overhead_ms = 0;

  /* a local answer cut short (the client left) reports no usage frame, but the engine's counts
   * of what it did are known */
  if (!r->have_usage && r->local_stats.valid && r->local_stats.prompt_tokens > 0) {
    memset(&r->usage, 0, sizeof r->usage);
    r->usage.input_tokens = r->local_stats.prompt_tokens;
    r->usage.cached_tokens = r->local_stats.cached_tokens;
    r->usage.output_tokens = r->local_stats.completion_tokens;
    r->have_usage = true;
  }
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
      .local = r->local_stats.valid,
      .queue_ms = r->local_stats.queue_ms,
      .prefill_ms = r->local_stats.prefill_ms,
      .decode_tps = r->local_stats.decode_tps,
  };
  snprintf(row.request_id, sizeof row.request_id, "%s", r->id);
  int rc = db_log(s->db, &row);
  if (rc < 0) fprintf(stderr, "tiergate: log row %s lost (db_log %d)\n", r->id, rc);
  /* 1: the writer is behind and the row went into its reserve; new API work is refused (503)
   * until a row is queued normally again, so the log catches up instead of losing rows */
  if (rc == 1 && !s->log_pressure) fprintf(stderr, "tiergate: request log is behind: shedding new requests\n");
  s->log_pressure = rc == 1 || rc == -ENOSPC;
}

/* ------------------------------------------------------------------ replies */

void rt_resp_start(struct rt_req *r, int status, const char *content_type, int64_t content_length,
                   const struct rt_kv *extra, size_t n_extra) {
  if (r->resp_started) return;
  r->resp_started = true;
  r->status = status;
  int64_t now = rt_now_us();
  int64_t up = 0;
  if (r->t_up_start) {
    /* a stream's reply starts at its first event, while the transfer runs: the wait for that
     * event was the upstream's time too */
    int64_t e = r->t_up_end ? r->t_up_end : r->t_first_token ? r->t_first_token
              : r->t_up_headers ? r->t_up_headers : now;
    up = e - r->t_up_start;
  }
  double overhead_ms = (double)(now - r->t0 - up) / 1e3;

  /* the gateway's headers, then the upstream's passed on, then the caller's extras; the
   * gateway's own retry advice replaces the upstream's (resilience.c decides) */
  struct rt_kv h[8 + RT_MAX_PASS_HEADERS + 8];
  size_t n = 0;
  char route[600], ovh[32], att[16];
  h[n++] = (struct rt_kv){"x-tiergate-request-id", r->id};
  if (r->model) {
    snprintf(route, sizeof route, "%s/%s", rt_req_provider_name(r), rt_req_upstream_model(r));
    h[n++] = (struct rt_kv){"x-tiergate-route", route};
  }
  snprintf(ovh, sizeof ovh, "%.3f", overhead_ms < 0 ? 0 : overhead_ms);
  h[n++] = (struct rt_kv){"x-tiergate-overhead-ms", ovh};
  if (r->attempts > 1) {
    snprintf(att, sizeof att, "%d", r->attempts);
    h[n++] = (struct rt_kv){"x-tiergate-attempts", att};
  }
  if (r->should_retry) h[n++] = (struct rt_kv){"x-should-retry", r->should_retry > 0 ? "true" : "false"};
  for (size_t i = 0; i < r->n_pass; i++) {
    if (r->should_retry && !strcasecmp(r->pass[i].name, "x-should-retry")) continue;
    h[n++] = r->pass[i];
  }
  for (size_t i = 0; i < n_extra && n < sizeof h / sizeof h[0]; i++) {
    if (r->should_retry && !strcasecmp(extra[i].name, "x-should-retry")) continue;
    h[n++] = extra[i];
  }
  rt_http_resp_start(r->q, status, content_type, content_length, h, n);
}

void rt_resp_body(struct rt_req *r, const void *p, size_t n) {
  if (r->finished) return;
  rt_http_resp_body(r->q, p, n);
}

size_t rt_resp_pending(const struct rt_req *r) { return rt_http_resp_pending(r->q); }

void rt_resp_end(struct rt_req *r) {
  if (r->finished) return;
  r->finished = true;
  rt_http_resp_end(r->q);   /* on_finish logs and frees R */
}

void rt_resp_full(struct rt_req *r, int status, const char *content_type, const void *body,
                  size_t n, const struct rt_kv *extra, size_t n_extra) {
  rt_resp_start(r, status, content_type, (int64_t)n, extra, n_extra);
  rt_resp_body(r, body, n);
  rt_resp_end(r);
}

/* ------------------------------------------------------------------ the HTTP server's callbacks */

static void req_free(struct rt_req *r) {
  if (!r) return;
  rt_call_cancel_io(r);
  rt_call_free(r);
  free(r->model_name);
  free(r->pass_buf);
  free(r->up_ctype);
  if (r->up_body) evbuffer_free(r->up_body);
  up_sse_free(&r->sse);
  rt_xs_free(r->xs);
  free(r->up_extra_header);
  if (r->q) r->q->ud = NULL;
  free(r);
}

/* The request's rt_req, made when the server first hands it over. NULL when out of memory. */
static struct rt_req *req_of(struct rt_http_req *q) {
  if (q->ud) return q->ud;
  struct rt_server *s = rt_http_app_data(q);
  struct rt_req *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->srv = s;
  r->q = q;
  r->head = &q->head;
  r->body = q->body ? q->body : "";
  r->body_len = q->body ? q->body_len : 0;
  r->t0 = q->t0;
  r->wall0_us = q->wall0_us;
  uint64_t a = rt_rand64(&s->rng), b = rt_rand64(&s->rng);
  snprintf(r->id, sizeof r->id, "req_%016llx%08llx", (unsigned long long)a,
           (unsigned long long)(b >> 32));
  rt_route_match(r);
  q->ud = r;
  return r;
}

/* Out of memory before anything could be set up: a bare reply keeps the connection's framing. */
static void bare_500(struct rt_http_req *q) {
  static const char body[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\"}}";
  rt_http_resp_start(q, 500, "application/json", sizeof body - 1, NULL, 0);
  rt_http_resp_body(q, body, sizeof body - 1);
  rt_http_resp_end(q);
}

static void on_request(struct rt_http_req *q) {
  struct rt_req *r = req_of(q);
  if (!r) {
    bare_500(q);
    return;
  }
  rt_req_dispatch(r);
}

static void on_error(struct rt_http_req *q, int status, const char *cls, const char *code,
                     const char *msg) {
  struct rt_req *r = req_of(q);
  if (!r) {
    bare_500(q);
    return;
  }
  rt_req_fail(r, status, cls, "invalid_request_error", code, NULL, "%s", msg);
}

static void on_abort(struct rt_http_req *q, int status, const char *cls, const char *msg) {
  struct rt_req *r = q->ud;
  if (!r) return;
  if (!r->finished) {
    r->finished = true;
    r->status = status;
    r->error_class = cls;
    snprintf(r->error_msg, sizeof r->error_msg, "%s", msg);
    rt_call_cancel_io(r);
    req_log(r);
  }
  req_free(r);
}

static void on_finish(struct rt_http_req *q) {
  struct rt_req *r = q->ud;
  if (!r) return;
  r->finished = true;
  req_log(r);
  req_free(r);
}

static void on_writable(struct rt_http_req *q) {
  struct rt_req *r = q->ud;
  if (r) rt_call_resume_io(r);
}

static void on_cut(struct rt_http_req *q) {
  struct rt_req *r = q->ud;
  if (r && r->surface->stream_error)
    r->surface->stream_error(r, "shutdown", "the gateway shut down before the reply was complete");
}

const struct rt_http_app rt_req_http_app = {
    .on_request = on_request,
    .on_error = on_error,
    .on_abort = on_abort,
    .on_finish = on_finish,
    .on_writable = on_writable,
    .on_cut = on_cut,
};
