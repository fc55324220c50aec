/*
 * xlate_call.c: upstream calls whose format differs from the client's: an OpenAI client served
 * by an Anthropic upstream, and an Anthropic client served by an OpenAI-compatible upstream.
 * Call ops (rt_call_ops, see call.c) built on the pure translators of xlate.h.
 *
 * DESIGN. One set of handlers serves both directions; the client's surface says which way:
 *   body      xlate_req.c (a request the target cannot express is refused with a 400 in the
 *             client's shape before anything is sent: r->refuse_status, see call.c)
 *   headers   rate-limit, retry and request-id headers translated (xlate_resp.c)
 *   stream    upstream bytes -> upstream/sse.c -> rt_xs_event -> the client's frames, one write
 *             per upstream event, as they arrive; back-pressure pauses the upstream like the
 *             OpenAI surface does
 *   reply     whole replies and error replies translated once complete (statuses: 529 <-> 503,
 *             402 -> 429 ...; "x-should-retry: false" when no retry can help)
 * Usage for the log always comes from the upstream's own format (canonical pol_usage), so a
 * translated request costs exactly what the same request sent natively costs.
 */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "router/internal.h"
#include "router/xlate/xlate.h"


/* Is the client an Anthropic one (upstream OpenAI), or an OpenAI one (upstream Anthropic)? */
static bool anthropic_client(const struct rt_req *r) { return r->surface == &rt_anthropic_surface; }

/* The model name the client sees: the one whose deployment answered (a fallback shows its own
 * name, as on the untranslated paths). */
static const char *shown_model(const struct rt_req *r) {
  return r->served ? r->served->name : r->model->name;
}

/* ------------------------------------------------------------------ bodies */

static char *refuse(struct rt_req *r, const struct rt_xerr *e) {
  r->refuse_status = e->status ? e->status : 500;
  snprintf(r->refuse_param, sizeof r->refuse_param, "%s", e->param);
  snprintf(r->error_msg, sizeof r->error_msg, "%s", e->msg);
  return NULL;
}

static char *build_to_anthropic(struct rt_req *r, const char *upstream_model, size_t *len) {
  free(r->up_extra_header); /* a fallback from another kind may have left one */
  r->up_extra_header = NULL;
  const struct pol_provider *p = rt_req_provider(r);
  struct rt_xreq_opts o = {upstream_model, p ? p->anthropic_version : RT_ANTHROPIC_V1, 0};
  struct rt_xerr e;
  char *b = rt_xreq_openai_to_anthropic(r->body, r->body_len, &o, len, &e);
  return b ? b : refuse(r, &e);
}

static char *build_to_openai(struct rt_req *r, const char *upstream_model, size_t *len) {
  free(r->up_extra_header);
  r->up_extra_header = NULL;
  struct rt_xreq_opts o = {upstream_model, NULL, 0};
  struct rt_xerr e;
  char *b = rt_xreq_anthropic_to_openai(r->body, r->body_len, &o, len, &e);
  return b ? b : refuse(r, &e);
}

/* ------------------------------------------------------------------ headers */

static void on_headers(struct rt_req *r, int status, const struct up_header *h, size_t n) {
  bool ac = anthropic_client(r);
  int64_t now_ms = rt_wall_us() / 1000;
  /* the upstream's headers in the client's terms (names and values translated) */
  char names[RT_MAX_PASS_HEADERS][256], values[RT_MAX_PASS_HEADERS][256];   /* cap: both */
  struct up_header keep[RT_MAX_PASS_HEADERS];
  size_t nk = 0;
  for (size_t i = 0; i < n && nk < RT_MAX_PASS_HEADERS; i++) {
    int kept = ac ? rt_xhdr_openai_to_anthropic(h[i].name, h[i].value, now_ms, names[nk], values[nk],
                                                sizeof names[nk])
                  : rt_xhdr_anthropic_to_openai(h[i].name, h[i].value, now_ms, names[nk], values[nk],
                                                sizeof names[nk]);
    if (kept) {
      keep[nk] = (struct up_header){names[nk], values[nk]};
      nk++;
    }
  }
  rt_req_pass_headers(r, keep, nk, h, n);
  bool sse = r->up_ctype && !strncasecmp(r->up_ctype, "text/event-stream", 17);
  if (r->stream && status >= 200 && status < 300 && sse) {
    char fallback[64];
    snprintf(fallback, sizeof fallback, "msg_%s", r->id);
    struct rt_xs_opts o = {shown_model(r), rt_wall_us() / 1000000, r->client_usage, fallback};
    rt_xs_free(r->xs); /* reset() already did, after a failed attempt; never two */
    r->xs = rt_xs_new(ac ? RT_XS_O2A : RT_XS_A2O, &o);
    if (!r->xs) {
      r->up_body = evbuffer_new(); /* out of memory: fails in on_done as a bad reply */
      r->up_too_large = true;
      return;
    }
    /* the client's reply starts with the first translated frame (flush), not now: until a
     * byte was relayed, a stalled or broken attempt can still be retried or replaced */
    r->sse_mode = true;
    up_sse_init(&r->sse, MAX_SSE_EVENT);
  } else {
    r->up_body = evbuffer_new();
  }
}

/* ------------------------------------------------------------------ streams */

/* Sends the client's frames in OUT; the first ones start the reply (status and headers). */
static void flush(struct rt_req *r, struct evbuffer *out) {
  size_t n = evbuffer_get_length(out);
  if (!n) return;
  if (!r->resp_started) {
    static const struct rt_kv extra[] = {{"cache-control", "no-cache"}};
    rt_resp_start(r, r->up_status ? r->up_status : 200, "text/event-stream; charset=utf-8", -1, extra, 1);
  }
  rt_resp_body(r, evbuffer_pullup(out, -1), n);
  evbuffer_drain(out, n);
}

static int sse_event(void *ud, const struct up_sse_event *ev) {
  struct rt_req *r = ud;
  struct evbuffer *out = evbuffer_new();
  if (!out) return -1;
  int rc = rt_xs_event(r->xs, ev->event, ev->data, ev->data_len, out);
  if (rc == RT_XS_BAD && !r->resp_started) {
    /* nothing reached the client: end the attempt as a bad reply (it may be retried) */
    evbuffer_free(out);
    r->bad_event = true;
    return RT_SSE_ABORT; /* abort the transfer: nothing was relayed yet */
  }
  if (rc == RT_XS_BAD) {
    r->error_class = "upstream_bad_response";
    snprintf(r->error_msg, sizeof r->error_msg,
             "The upstream provider '%s' sent a stream event that could not be translated.",
             rt_req_provider_name(r));
    rt_xs_fail(r->xs, anthropic_client(r) ? "api_error" : "server_error", r->error_msg, out);
    rc = RT_XS_FAILED;
  } else if (rc == RT_XS_FAILED) {
    r->error_class = "upstream_stream_error";
    snprintf(r->error_msg, sizeof r->error_msg, "%.255s", rt_xs_error_message(r->xs));
  }
  if (!r->t_first_token && rt_xs_has_content(r->xs)) r->t_first_token = rt_now_us();
  flush(r, out);
  evbuffer_free(out);
  r->done_sent = rc != RT_XS_MORE;
  return rc == RT_XS_MORE ? 0 : 1; /* after the end, the rest of the upstream bytes are ignored */
}

static int on_data(struct rt_req *r, const char *p, size_t n) {
  if (r->sse_mode && r->done_sent) return UP_DATA_OK; /* after the end: ignored */
  return rt_req_take_data(r, p, n, sse_event);
}

/* ------------------------------------------------------------------ the end */

static void take_stream_usage(struct rt_req *r) {
  const struct pol_usage *u = rt_xs_usage(r->xs);
  if (u) {
    r->usage = *u;
    r->have_usage = true;
  }
}

/* An upstream error reply, translated into the client's error. */
static void send_error_reply(struct rt_req *r, int status, const char *body, size_t n) {
  bool ac = anthropic_client(r);
  struct rt_xerror xe;
  if (ac) rt_xerr_openai_to_anthropic(status, body, n, &xe);
  else rt_xerr_anthropic_to_openai(status, body, n, &xe);
  r->error_class = "upstream_error";
  snprintf(r->error_msg, sizeof r->error_msg, "%.255s", xe.message);
  struct evbuffer *b = evbuffer_new();
  if (!b) {
    rt_resp_full(r, 502, "application/json", "{}", 2, NULL, 0);
    return;
  }
  if (ac) rt_xerr_render_anthropic(b, xe.type, xe.message, r->id);
  else rt_xerr_render_openai(b, xe.type, xe.code, NULL, xe.message);
  /* no retry can help (a quota): say so, unless resilience.c already decided what to say */
  if (xe.no_retry && !r->should_retry) r->should_retry = -1;
  size_t len = evbuffer_get_length(b);
  rt_resp_full(r, xe.status, "application/json", evbuffer_pullup(b, -1), len, NULL, 0);
  evbuffer_free(b);
}

static void on_done(struct rt_req *r, const struct up_result *res) {
  bool ac = anthropic_client(r);
  const char *pname = rt_req_provider_name(r);
  if (res->status != UP_OK) {
    if (r->sse_mode && r->resp_started) {
      if (!r->done_sent) {
        bool to = rt_up_timed_out(res);
        r->error_class = rt_req_interrupted(r, res, r->error_msg, sizeof r->error_msg);
        struct evbuffer *out = evbuffer_new();
        if (out) {
          rt_xs_fail(r->xs, ac ? (to ? "timeout_error" : "api_error") : "server_error", r->error_msg, out);
          flush(r, out);
          evbuffer_free(out);
        }
      }
      take_stream_usage(r);
      rt_resp_end(r);
      return;
    }
    if (r->sse_mode && res->status == UP_ERR_ABORTED && !r->up_too_large)
      rt_req_fail(r, 502, "upstream_bad_response", "server_error", "upstream_bad_response", NULL,
                  "The upstream provider '%s' sent a stream event that %s.", pname,
                  r->bad_event ? "could not be translated" : "exceeded the size limit");
    else
      rt_req_fail_upstream(r, res);
    return;
  }

  if (r->sse_mode) {
    if (!r->done_sent) {
      struct evbuffer *out = evbuffer_new();
      if (out) {
        if (rt_xs_eof(r->xs, out) == RT_XS_FAILED && !r->error_class) {
          r->error_class = "upstream_disconnect";
          snprintf(r->error_msg, sizeof r->error_msg,
                   "The upstream stream from provider '%s' ended before the answer was complete.", pname);
        }
        flush(r, out);
        evbuffer_free(out);
      }
      r->done_sent = true;
    }
    take_stream_usage(r);
    rt_resp_end(r);
    return;
  }

  size_t n = r->up_body ? evbuffer_get_length(r->up_body) : 0;
  const char *body = n ? (const char *)evbuffer_pullup(r->up_body, -1) : "";
  int status = r->up_status;
  if (r->up_too_large) {
    rt_req_fail(r, 500, "internal", "server_error", NULL, NULL, "out of memory");
    return;
  }
  if (status >= 200 && status < 300) {
    size_t ol = 0;
    char *t = ac ? rt_xresp_openai_to_anthropic(body, n, shown_model(r), &ol, &r->usage, &r->have_usage)
                 : rt_xresp_anthropic_to_openai(body, n, shown_model(r), rt_wall_us() / 1000000, &ol,
                                                &r->usage, &r->have_usage);
    if (!t) {
      rt_req_fail(r, 502, "upstream_bad_response", "server_error", "upstream_bad_response", NULL,
                  "The upstream provider '%s' sent a reply that is not a %s.", pname,
                  ac ? "chat completion" : "message");
      return;
    }
    rt_resp_full(r, status, "application/json", t, ol, NULL, 0);
    free(t);
    return;
  }
  if (status >= 400) {
    send_error_reply(r, status, body, n);
    return;
  }
  rt_req_fail(r, 502, "upstream_bad_response", "server_error", "upstream_bad_response", NULL,
              "The upstream provider '%s' answered HTTP %d.", pname, status);
}

/* A failed attempt is dropped (retry, fallback): forget this surface's own state of it. */
static void reset(struct rt_req *r) {
  rt_xs_free(r->xs);
  r->xs = NULL;
  free(r->up_extra_header);
  r->up_extra_header = NULL;
  r->refuse_status = 0;
  r->refuse_param[0] = 0;
  r->bad_event = false;
}

const struct rt_call_ops rt_xcall_openai_to_anthropic = {.path = "/v1/messages",
                                                         .build_body = build_to_anthropic,
                                                         .on_headers = on_headers,
                                                         .on_data = on_data,
                                                         .on_done = on_done,
                                                         .reset = reset};
const struct rt_call_ops rt_xcall_anthropic_to_openai = {.path = "/chat/completions",
                                                         .build_body = build_to_openai,
                                                         .on_headers = on_headers,
                                                         .on_data = on_data,
                                                         .on_done = on_done,
                                                         .reset = reset};
