/*
 * call.c: the upstream call of a request, between a surface (which speaks the client's API) and
 * upstream/ (which moves bytes): pick the deployment, check its key, build URL and provider
 * headers, ask the surface for the body, run the transfer with the model's timeouts, and hand
 * the events back to the surface.
 *
 * DESIGN. Everything about *where* a request goes lives here so that retries, fallbacks, load
 * balancing and circuit breakers (issue 4) slot in without touching the surfaces: an attempt that
 * fails before any byte reached the client (r->resp_started false) can be retried or sent to the
 * next deployment / fallback model from call_done(), with build_body() called again because the
 * upstream model name (or format) may differ per deployment. Today one attempt is made on the
 * model's first deployment. Provider kinds differ only in the auth headers built once per
 * provider at startup (server.c, rt_provider_cache) and in the path the surface names.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router/internal.h"

static void call_headers(void *ud, int status, const struct up_header *h, size_t n) {
  struct rt_req *r = ud;
  r->t_up_headers = rt_now_us();
  r->up_status = status;
  r->call_ops->on_headers(r, status, h, n);
}

static int call_data(void *ud, const char *p, size_t n) {
  struct rt_req *r = ud;
  return r->call_ops->on_data(r, p, n);
}

static void call_done(void *ud, const struct up_result *res) {
  struct rt_req *r = ud;
  r->xfer = NULL;
  r->t_up_end = rt_now_us();
  /* issue 4: retry / fall back here when res failed (or r->up_status is retryable) and
   * !r->resp_started; the surface then sees only the final attempt. */
  r->call_ops->on_done(r, res);
}

static const struct up_callbacks call_cb = {call_headers, call_data, call_done};

void rt_call_start(struct rt_req *r, const struct rt_call_ops *const ops_by_kind[RT_PROVIDER_KINDS]) {
  struct rt_server *s = r->srv;
  const struct pol_model *m = r->model;
  const struct pol_deployment *d = m->n_deployments ? &m->deployments[0] : NULL;
  const struct pol_provider *p = d ? d->provider : m->provider;
  r->deployment = d;
  const struct rt_call_ops *ops = (unsigned)p->kind < RT_PROVIDER_KINDS ? ops_by_kind[p->kind] : NULL;
  r->call_ops = ops;
  if (!p->api_key && p->api_key_env) {
    rt_req_fail(r, 401, "missing_api_key", "invalid_request_error", "missing_api_key", NULL,
                "tiergate has no API key for provider '%s' (model '%s'): set the environment "
                "variable %s and restart the gateway.",
                p->name, m->name, p->api_key_env);
    return;
  }
  if (!ops) {
    rt_req_fail(r, 501, "unsupported", "invalid_request_error", "unsupported_provider", "model",
                "Model '%s' is served by provider '%s', whose API format cannot be reached from "
                "this endpoint yet.", m->name, p->name);
    return;
  }
  size_t blen = 0;
  char *body = ops->build_body(r, rt_req_upstream_model(r), &blen);
  if (!body) {
    rt_req_fail(r, 500, "internal", "server_error", NULL, NULL, "could not build the upstream request");
    return;
  }
  const struct rt_provider_cache *pc = &s->prov[p - s->cfg->providers];
  char url[2048];
  snprintf(url, sizeof url, "%s%s", p->base_url, ops->path);
  const char *hdrs[72];
  size_t nh = 0;
  for (size_t i = 0; i < pc->n_hdr && nh < 70; i++) hdrs[nh++] = pc->hdr[i];
  hdrs[nh++] = r->stream ? "Accept: text/event-stream" : "Accept: application/json";
  const struct pol_timeouts *to = &m->timeouts;
  struct up_request rq = {
      .url = url,
      .method = "POST",
      .headers = hdrs,
      .n_headers = nh,
      .body = body,
      .body_len = blen,
      .connect_timeout_ms = to->connect_ms,
      .first_byte_timeout_ms = to->first_byte_ms,
      .idle_timeout_ms = to->idle_ms,
      .total_timeout_ms = to->total_ms,
  };
  r->t_up_start = rt_now_us();
  r->attempts++;
  r->xfer = up_start(s->up, &rq, &call_cb, r);
  free(body);
  if (!r->xfer) {
    r->t_up_end = rt_now_us();
    rt_req_fail(r, 500, "internal", "server_error", NULL, NULL, "could not start the upstream request");
  }
}

const char *rt_req_upstream_model(const struct rt_req *r) {
  if (r->deployment) return r->deployment->upstream_model;
  return r->model ? r->model->upstream_model : NULL;
}

const char *rt_req_provider_name(const struct rt_req *r) {
  if (r->deployment) return r->deployment->provider->name;
  return r->model && r->model->provider ? r->model->provider->name : NULL;
}
