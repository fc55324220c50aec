/*
 * routes.c: the route table of the gateway's API: for each path, the method it takes, the surface
 * whose error shape and log name it uses, its flags, and its handler. Every request goes through
 * rt_route_match (as soon as its head is known, so that even a 413 answers in the caller's shape)
 * and rt_req_dispatch (method check, shedding, the handler). Adding a route is one line here.
 *
 * Shedding: while the request log is behind (db_log reported back-pressure), every route flagged
 * ROUTE_SHED (the API routes that do work) answers 503 with retry-after: 1 until it catches up;
 * operational GETs (/healthz, /metrics, the model lists) still answer.
 */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router/internal.h"

enum { ROUTE_SHED = 1u << 0 };   /* refused while the request log is behind */

struct route {
  const char *path;
  bool prefix;                      /* path is a prefix ("/v1/models/" + id) */
  const char *method;
  enum rt_route id;
  const struct rt_surface *surface; /* NULL: OpenAI's, or Anthropic's when anthropic-version is sent */
  unsigned flags;
  void (*handler)(struct rt_req *r);
};

static void healthz(struct rt_req *r);
static void metrics(struct rt_req *r);
static void models(struct rt_req *r);
static void model(struct rt_req *r);

static const struct route routes[] = {
    {"/v1/chat/completions", false, "POST", RT_ROUTE_CHAT, &rt_openai_surface, ROUTE_SHED, rt_openai_chat},
    {"/v1/messages", false, "POST", RT_ROUTE_MESSAGES, &rt_anthropic_surface, ROUTE_SHED,
     rt_anthropic_messages},
    {"/v1/messages/count_tokens", false, "POST", RT_ROUTE_COUNT_TOKENS, &rt_anthropic_surface,
     ROUTE_SHED, rt_anthropic_count_tokens},
    {"/v1/embeddings", false, "POST", RT_ROUTE_EMBEDDINGS, &rt_openai_surface, ROUTE_SHED,
     rt_openai_embeddings},
    {"/v1/models", false, "GET", RT_ROUTE_MODELS, NULL, 0, models},
    {"/v1/models/", true, "GET", RT_ROUTE_MODEL, NULL, 0, model},
    {"/healthz", false, "GET", RT_ROUTE_HEALTHZ, &rt_openai_surface, 0, healthz},
    {"/metrics", false, "GET", RT_ROUTE_METRICS, &rt_openai_surface, 0, metrics},
};

static bool path_matches(const struct rt_http_head *h, const struct route *rt) {
  size_t n = strlen(rt->path);
  if (rt->prefix) return h->path_len > n && !memcmp(h->target, rt->path, n);
  return h->path_len == n && !memcmp(h->target, rt->path, n);
}

static const struct route *find(const struct rt_req *r) {
  if (!r->head || !r->head->target) return NULL;
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
    if (path_matches(r->head, &routes[i])) return &routes[i];
  return NULL;
}

void rt_route_match(struct rt_req *r) {
  const struct route *rt = find(r);
  r->route = rt ? rt->id : RT_ROUTE_OTHER;
  r->surface = &rt_openai_surface;
  if (rt && rt->surface) {
    r->surface = rt->surface;
    return;
  }
  if (!r->head || !r->head->target) return;
  /* unknown paths under /v1/messages are the Anthropic SDK's; the model lists (and paths like
   * them) answer in Anthropic's shape when the request carries its version header */
  const struct rt_http_head *h = r->head;
  static const char msgs[] = "/v1/messages/", mdl[] = "/v1/models";
  if (h->path_len >= sizeof msgs - 1 && !memcmp(h->target, msgs, sizeof msgs - 1))
    r->surface = &rt_anthropic_surface;
  else if (h->path_len >= sizeof mdl - 1 && !memcmp(h->target, mdl, sizeof mdl - 1) &&
           rt_http_header(h, "anthropic-version"))
    r->surface = &rt_anthropic_surface;
}

/* The Allow header rides along as a pass-through header of the error reply. */
static void method_not_allowed(struct rt_req *r, const char *allow) {
  static const char name[] = "allow";
  if (r->n_pass < RT_MAX_PASS_HEADERS) r->pass[r->n_pass++] = (struct rt_kv){name, allow};
  rt_req_fail(r, 405, "method_not_allowed", "invalid_request_error", "method_not_allowed", NULL,
              "Method %s is not allowed for %.*s (allowed: %s).", r->head->method,
              (int)r->head->path_len, r->head->target, allow);
}

static bool shed(struct rt_req *r) {
  if (!r->srv->log_pressure) return false;
  static const char name[] = "retry-after", one[] = "1";
  if (r->n_pass < RT_MAX_PASS_HEADERS) r->pass[r->n_pass++] = (struct rt_kv){name, one};
  rt_req_fail(r, 503, "overloaded", "server_error", "server_overloaded", NULL,
              "The gateway is overloaded (its request log is behind); retry shortly.");
  return true;
}

void rt_req_dispatch(struct rt_req *r) {
  const struct route *rt = find(r);
  if (!rt) {
    rt_req_fail(r, 404, "not_found", "invalid_request_error", "unknown_url", NULL,
                "Invalid URL (%s %.*s)", r->head->method,
                (int)(r->head->path_len > 200 ? 200 : r->head->path_len), r->head->target);
    return;
  }
  if (strcmp(r->head->method, rt->method)) {
    method_not_allowed(r, rt->method);
    return;
  }
  if ((rt->flags & ROUTE_SHED) && shed(r)) return;
  rt->handler(r);
}

/* ------------------------------------------------------------------ operational routes */

static void healthz(struct rt_req *r) {
  if (rt_http_server_draining(r->srv->http)) {
    static const char body[] = "{\"status\":\"draining\"}";
    rt_resp_full(r, 503, "application/json", body, sizeof body - 1, NULL, 0);
  } else {
    static const char body[] = "{\"status\":\"ok\"}";
    rt_resp_full(r, 200, "application/json", body, sizeof body - 1, NULL, 0);
  }
}

static void metrics(struct rt_req *r) {
  struct rt_server *s = r->srv;
  size_t reqs = rt_http_server_requests(s->http);
  struct rt_gauges g = {.connections = rt_http_server_connections(s->http),
                        .in_flight = reqs ? reqs - 1 : 0,   /* this request excluded */
                        .upstream_active = up_multi_active(s->up),
                        .draining = rt_http_server_draining(s->http)};
  if (s->db) db_stats(s->db, &g.db);
  struct evbuffer *b = evbuffer_new();
  if (!b) {
    rt_req_fail(r, 500, "internal", "server_error", NULL, NULL, "out of memory");
    return;
  }
  rt_metrics_render(s->metrics, &g, b);
  rt_resil_render(s->resil, b);
  rt_local_render_metrics(s->local, s->cfg->n_providers, b);
  size_t n = evbuffer_get_length(b);
  rt_resp_full(r, 200, "text/plain; version=0.0.4; charset=utf-8", evbuffer_pullup(b, -1), n, NULL, 0);
  evbuffer_free(b);
}

static void models(struct rt_req *r) {
  if (r->surface == &rt_anthropic_surface) rt_anthropic_models(r);
  else rt_openai_models(r);
}

static void model(struct rt_req *r) {
  static const char prefix[] = "/v1/models/";
  char id[512];
  const char *raw = r->head->target + sizeof prefix - 1;
  size_t rawlen = r->head->path_len - (sizeof prefix - 1);
  if (rt_url_decode(raw, rawlen, id, sizeof id) < 0) {
    rt_req_fail(r, 400, "bad_request", "invalid_request_error", NULL, NULL,
                "Malformed model id in the URL.");
    return;
  }
  if (r->surface == &rt_anthropic_surface) rt_anthropic_model(r, id);
  else rt_openai_model(r, id);
}
