/*
 * call.c: where a request is answered, between a surface (which speaks the client's API) and the
 * kinds of answer: an HTTP upstream of either API (upstream/ moves the bytes) or the local engine
 * (local.c, which produces the same bytes an upstream of the surface's API would). One attempt at
 * a time, each on the deployment resilience.c chose, with the URL, provider headers, body and
 * timeouts of that deployment, and the events handed back to the surface.
 *
 * DESIGN. Everything about *where* a request goes lives here and in resilience.c, so the surfaces
 * know nothing of retries: an attempt that fails before any byte reached the client
 * (r->resp_started false) is dropped (the generic per-attempt fields below and the surface's own
 * through ops->reset) and another one starts, at once or after a backoff timer on the event loop
 * (never a sleep), possibly on another deployment or a fallback model, with build_body() called
 * again because the upstream model name (or format) may differ. The surface's on_done sees only
 * the final attempt. Provider kinds differ in the auth headers built once per provider at
 * startup (server.c, rt_provider_cache) and in the ops the surface gives for that kind.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router/internal.h"

static void call_next(struct rt_req *r);

/* Resilience's verdict when nothing (more) can be attempted: the reply, in the caller's shape. */
static void send_refusal(struct rt_req *r, const struct rt_refusal *no) {
  char ra_ms[24], ra[24];   /* rt_req_fail writes the reply before returning */
  if (no->retry_after_ms > 0 && r->n_pass + 2 <= RT_MAX_PASS_HEADERS) {
    snprintf(ra_ms, sizeof ra_ms, "%lld", (long long)no->retry_after_ms);
    snprintf(ra, sizeof ra, "%lld", (long long)((no->retry_after_ms + 999) / 1000));
    r->pass[r->n_pass++] = (struct rt_kv){"retry-after-ms", ra_ms};
    r->pass[r->n_pass++] = (struct rt_kv){"retry-after", ra};
  }
  if (no->should_retry) r->should_retry = no->should_retry;
  rt_req_fail(r, no->status, no->error_class, no->type, no->code, no->param, "%s", no->msg);
}

void rt_call_cancel_io(struct rt_req *r) {
  if (r->xfer) up_cancel(r->xfer);
  r->xfer = NULL;
  if (r->lcall) rt_local_cancel(r->lcall);
  r->lcall = NULL;
}

void rt_call_resume_io(struct rt_req *r) {
  if (!r->paused) return;
  r->paused = false;
  if (r->xfer) up_resume(r->xfer);
  else if (r->lcall) rt_local_resume(r->lcall);
}

static void call_headers(void *ud, int status, const struct up_header *h, size_t n) {
  struct rt_req *r = ud;
  r->t_up_headers = rt_now_us();
  r->up_status = status;
  rt_resil_on_headers(r, status, h, n);
  r->call_ops->on_headers(r, status, h, n);
}

static int call_data(void *ud, const char *p, size_t n) {
  struct rt_req *r = ud;
  if (r->up_status >= 400) rt_resil_on_data(r, p, n);
  return r->call_ops->on_data(r, p, n);
}

/* A failed attempt is dropped: forget its reply so the next one starts clean. */
static void reset_attempt(struct rt_req *r) {
  free(r->pass_buf);
  r->pass_buf = NULL;
  r->pass_len = 0;
  r->n_pass = 0;
  free(r->up_ctype);
  r->up_ctype = NULL;
  if (r->up_body) evbuffer_free(r->up_body);
  r->up_body = NULL;
  r->up_too_large = false;
  if (r->sse_mode) up_sse_free(&r->sse);
  r->sse_mode = r->done_sent = r->paused = false;
  memset(&r->usage, 0, sizeof r->usage);
  r->have_usage = false;
  r->up_status = 0;
  r->error_class = NULL;
  r->error_msg[0] = '\0';
  r->t_first_token = 0;
  r->t_up_headers = 0;
  if (r->call_ops && r->call_ops->reset) r->call_ops->reset(r);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg) {
  struct rt_req *r = arg;
  if (!r->finished) call_next(r);
}

static void call_done(void *ud, const struct up_result *res) {
  struct rt_req *r = ud;
  r->xfer = NULL;
  r->lcall = NULL;
  r->t_up_end = rt_now_us();
  int delay = rt_resil_done(r, res);
  if (delay == RT_RESIL_FINAL) {
    r->call_ops->on_done(r, res);
    return;
  }
  reset_attempt(r);
  if (delay == 0) {
    call_next(r);   /* starting a transfer from on_done is allowed (upstream.h) */
    return;
  }
  if (!r->call.timer) r->call.timer = evtimer_new(r->srv->base, timer_cb, r);
  if (!r->call.timer) {
    call_next(r);   /* out of memory for a timer: retry at once rather than hang */
    return;
  }
  struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
  evtimer_add(r->call.timer, &tv);
}

static const struct up_callbacks call_cb = {call_headers, call_data, call_done};

/* Starts the attempt resilience.c chose (r->deployment, r->served, r->call_ops). Returns 0, or -1
 * after replying. */
static int start_attempt(struct rt_req *r) {
  struct rt_server *s = r->srv;
  const struct pol_deployment *d = r->deployment;
  const struct pol_provider *p = d->provider;
  const struct rt_call_ops *ops = r->call_ops;
  size_t blen = 0;
  char *body = ops->build_body(r, d->upstream_model, &blen);
  if (!body) {
    rt_resil_abandon(r);
    if (r->refuse_status) {
      /* a translation refused the request: this upstream's format cannot express it */
      char msg[sizeof r->error_msg];
      snprintf(msg, sizeof msg, "%s", r->error_msg);
      rt_req_fail(r, r->refuse_status, r->refuse_status == 400 ? "bad_request" : "internal",
                  r->refuse_status == 400 ? "invalid_request_error" : "server_error", NULL,
                  r->refuse_param[0] ? r->refuse_param : NULL, "%s", msg);
      return -1;
    }
    rt_req_fail(r, 500, "internal", "server_error", NULL, NULL, "could not build the upstream request");
    return -1;
  }
  struct up_request rq = {.method = "POST", .body = body, .body_len = blen};
  rt_resil_timeouts(r, &rq);
  int64_t now = rt_now_us();
  if (!r->t_up_start) r->t_up_start = now;   /* upstream time spans every attempt */
  r->t_up_end = 0;
  r->attempts++;
  if (p->kind == POL_PROVIDER_LOCAL) {
    /* the engine answers in the ops' API, through the same callbacks as a transfer */
    struct rt_local *l = s->local[p - s->cfg->providers];
    const struct pol_model *shown = r->served ? r->served : r->model;
    r->lcall = l && ops->local ? rt_local_start(l, ops->local, body, blen, shown->name, r->id, &rq,
                                                &call_cb, r, &r->local_stats)
                               : NULL;
    free(body);
    if (!r->lcall) {
      r->t_up_end = rt_now_us();
      rt_resil_abandon(r);
      rt_req_fail(r, 500, "internal", "server_error", NULL, NULL, "could not start the local model");
      return -1;
    }
    return 0;
  }
  const struct rt_provider_cache *pc = &s->prov[p - s->cfg->providers];
  char url[2048];
  snprintf(url, sizeof url, "%s%s", p->base_url, ops->path);
  const char *hdrs[72];
  size_t nh = 0;
  for (size_t i = 0; i < pc->n_hdr && nh < 70; i++) hdrs[nh++] = pc->hdr[i];
  hdrs[nh++] = r->stream ? "Accept: text/event-stream" : "Accept: application/json";
  if (r->up_extra_header) hdrs[nh++] = r->up_extra_header;  /* e.g. the client's anthropic-beta */
  rq.url = url;
  rq.headers = hdrs;
  rq.n_headers = nh;
  r->xfer = up_start(s->up, &rq, &call_cb, r);
  free(body);
  if (!r->xfer) {
    r->t_up_end = rt_now_us();
    rt_resil_abandon(r);
    rt_req_fail(r, 500, "internal", "server_error", NULL, NULL, "could not start the upstream request");
    return -1;
  }
  return 0;
}

static void call_next(struct rt_req *r) {
  struct rt_refusal no = {0};
  if (rt_resil_next(r, &no) < 0) {
    send_refusal(r, &no);
    return;
  }
  start_attempt(r);
}

void rt_call_start(struct rt_req *r, const struct rt_call_ops *const ops_by_kind[RT_PROVIDER_KINDS]) {
  r->call.ops_by_kind = ops_by_kind;
  struct rt_refusal no = {0};
  if (rt_resil_begin(r, &no) < 0) {
    send_refusal(r, &no);
    return;
  }
  call_next(r);
}

void rt_call_free(struct rt_req *r) {
  if (r->call.timer) {
    event_free(r->call.timer);
    r->call.timer = NULL;
  }
  rt_resil_cleanup(r);
}

const struct pol_provider *rt_req_provider(const struct rt_req *r) {
  if (r->deployment) return r->deployment->provider;
  return r->model ? r->model->provider : NULL;
}

const char *rt_req_upstream_model(const struct rt_req *r) {
  if (r->deployment) return r->deployment->upstream_model;
  return r->model ? r->model->upstream_model : NULL;
}

const char *rt_req_alias(const struct rt_req *r) {
  const struct pol_model *m = r->served ? r->served : r->model;
  const char *up = rt_req_upstream_model(r);
  if (!m || !up || !strcmp(m->name, up)) return NULL;
  return m->name;
}

void rt_resp_json_renamed(struct rt_req *r, int status, const char *ctype, const char *body,
                          size_t n, bool rename) {
  size_t rl;
  char *renamed = rename ? rt_openai_rename_model(body, n, rt_req_alias(r), &rl) : NULL;
  if (renamed) rt_resp_full(r, status, ctype, renamed, rl, NULL, 0);
  else rt_resp_full(r, status, ctype, body, n, NULL, 0);
  free(renamed);
}

const char *rt_req_provider_name(const struct rt_req *r) {
  if (r->deployment) return r->deployment->provider->name;
  return r->model && r->model->provider ? r->model->provider->name : NULL;
}
