/*
 * server.c: the HTTP/1.1 front end on libevent bufferevents: accept, read and frame requests,
 * write replies (whole or streamed), enforce client timeouts, close connections, shut down cleanly.
 *
 * DESIGN. Why not evhttp: libevent 2.1's evhttp answers an oversized body (413) and malformed
 * requests itself, with an HTML page and without calling us, so those failures could get neither
 * an OpenAI-shaped error nor a log row; it also buffers every body before the callback and gives
 * no hook for back-pressure on streamed replies. This file is a small server on bufferevents
 * instead, with the parsing in http.c.
 *
 * A connection is a little state machine:
 *   IDLE ──bytes──▶ HEAD ──head parsed──▶ BODY ──body complete──▶ PROCESSING ──reply queued──▶ IDLE
 *     │                (deadline timer: the whole request within client_timeout_ms)      │
 *     └─ idle timer ─▶ closed                      errors / Connection: close ──▶ CLOSING ┘
 * Only one request per connection is processed at a time; pipelined bytes wait in the input
 * buffer and are parsed on the next loop turn after the reply (never re-entrantly). While a
 * request is processed the socket stays readable so a disconnect is seen at once (EOF cancels the
 * upstream transfer). Writes have a timeout (a client that stops reading is cut off) and a
 * streamed reply pauses the upstream transfer when the client falls behind (rt_req_on_drain).
 * CLOSING writes what is queued, half-closes, and discards input for a moment ("lingering close")
 * so an early error reply (413) is not destroyed by a TCP reset while the client still sends.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "router/internal.h"
#include "router/xlate.h"

#define READ_HIGH_WATER (1u << 20)  /* stop reading a connection with this much unparsed input */
#define LINGER_MS 1000              /* discard input this long after a closing reply */

enum conn_state { CONN_IDLE, CONN_HEAD, CONN_BODY, CONN_PROCESSING, CONN_CLOSING };

struct rt_conn {
  struct rt_server *srv;
  struct rt_conn *prev, *next;
  struct bufferevent *bev;
  struct event *timer;       /* idle timeout / request deadline / deferred parse / linger */
  enum conn_state state;
  struct rt_req *req;        /* being read or processed */
  struct rt_chunked chunked;
  bool close_after;          /* close once the current reply is written */
  bool parse_pending;        /* pipelined input waits for the timer's next turn */
  bool shut;                 /* CLOSING: write side shut down, lingering */
};

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

static void set_timer_ms(struct event *ev, int ms) {
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  evtimer_add(ev, &tv);
}

static uint64_t rng_next(struct rt_server *s) { return rt_rand64(&s->rng); }

static void conn_free(struct rt_conn *c);
static void try_parse(struct rt_conn *c);

/* ------------------------------------------------------------------ requests on a connection */

static struct rt_req *req_new(struct rt_conn *c) {
  struct rt_server *s = c->srv;
  struct rt_req *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->srv = s;
  r->conn = c;
  r->surface = &rt_openai_surface;
  r->route = RT_ROUTE_OTHER;
  r->t0 = rt_now_us();
  r->wall0_us = rt_wall_us();
  r->keep_alive = false;
  uint64_t a = rng_next(s), b = rng_next(s);
  snprintf(r->id, sizeof r->id, "req_%016llx%08llx", (unsigned long long)a,
           (unsigned long long)(b >> 32));
  r->next = s->reqs;
  if (s->reqs) s->reqs->prev = r;
  s->reqs = r;
  s->n_reqs++;
  c->req = r;
  return r;
}

void rt_req_free(struct rt_req *r) {
  if (!r) return;
  struct rt_server *s = r->srv;
  if (r->prev) r->prev->next = r->next;
  else if (s->reqs == r) s->reqs = r->next;
  if (r->next) r->next->prev = r->prev;
  s->n_reqs--;
  if (r->xfer) up_cancel(r->xfer);
  rt_call_free(r);
  if (r->conn && r->conn->req == r) r->conn->req = NULL;
  free(r->head_buf);
  free(r->body);
  free(r->model_name);
  free(r->pass_buf);
  free(r->up_ctype);
  if (r->up_body) evbuffer_free(r->up_body);
  up_sse_free(&r->sse);
  rt_xs_free(r->xs);
  free(r->up_extra_header);
  free(r);
}

/* A failure before or while reading the request: reply (through the surface, so it is an
 * OpenAI-shaped error with a log row) and close the connection afterwards. */
static void conn_fail(struct rt_conn *c, int status, const char *cls, const char *code,
                      const char *msg) {
  struct rt_req *r = c->req ? c->req : req_new(c);
  c->close_after = true;
  if (!r) {
    conn_free(c);
    return;
  }
  c->state = CONN_PROCESSING;
  evtimer_del(c->timer);
  rt_req_fail(r, status, cls, "invalid_request_error", code, NULL, "%s", msg);
}

static void dispatch(struct rt_conn *c) {
  struct rt_req *r = c->req;
  evtimer_del(c->timer);
  c->state = CONN_PROCESSING;
  if (!r->body) r->body = calloc(1, 1);
  if (!r->body) {
    conn_fail(c, 500, "internal", NULL, "out of memory");
    return;
  }
  r->body[r->body_len] = '\0';
  rt_req_dispatch(r);
}

static int body_sink(void *ud, const char *p, size_t n) {
  struct rt_req *r = ud;
  size_t max = r->srv->cfg->limits.max_body_bytes;
  if (r->body_len + n > max) return -EFBIG;
  if (r->body_len + n + 1 > r->body_cap) {
    size_t cap = r->body_cap ? r->body_cap : 4096;
    while (cap < r->body_len + n + 1) cap *= 2;
    if (cap > max + 1) cap = max + 1;
    char *b = realloc(r->body, cap);
    if (!b) return -ENOMEM;
    r->body = b;
    r->body_cap = cap;
  }
  memcpy(r->body + r->body_len, p, n);
  r->body_len += n;
  return 0;
}

static void too_large(struct rt_conn *c) {
  char msg[160];
  snprintf(msg, sizeof msg, "Request body too large: the limit is %zu bytes.",
           c->srv->cfg->limits.max_body_bytes);
  conn_fail(c, 413, "request_too_large", "request_too_large", msg);
}

/* Reads as much of the current request as the input holds; dispatches it when complete. */
static void try_parse(struct rt_conn *c) {
  struct rt_server *s = c->srv;
  struct evbuffer *in = bufferevent_get_input(c->bev);

  if (c->state == CONN_IDLE) {
    /* RFC 9112 2.2: ignore empty lines before a request line */
    unsigned char *p;
    while ((p = evbuffer_pullup(in, 1)) && (*p == '\r' || *p == '\n')) evbuffer_drain(in, 1);
    if (evbuffer_get_length(in) == 0) return;
    c->state = CONN_HEAD;
    set_timer_ms(c->timer, s->cfg->limits.client_timeout_ms);
  }

  if (c->state == CONN_HEAD) {
    size_t len = evbuffer_get_length(in);
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    if (end.pos < 0 || (size_t)end.pos + 4 > RT_MAX_HEAD_BYTES) {
      if (len >= RT_MAX_HEAD_BYTES || end.pos >= 0)
        conn_fail(c, 431, "bad_request", "request_header_fields_too_large",
                  "Request header fields too large.");
      return;
    }
    size_t head_len = (size_t)end.pos + 4;
    struct rt_req *r = req_new(c);
    if (!r || !(r->head_buf = malloc(head_len + 1))) {
      conn_fail(c, 500, "internal", NULL, "out of memory");
      return;
    }
    evbuffer_remove(in, r->head_buf, head_len);
    r->head_buf[head_len] = '\0';
    const char *why = "malformed request";
    int rc = rt_http_parse_head(r->head_buf, head_len, &r->head, &why);
    if (rc) {
      int st = rc == -E2BIG ? 431 : rc == -EPROTONOSUPPORT ? 505 : rc == -ENOSYS ? 501 : 400;
      r->head.target = NULL;
      char msg[200];
      snprintf(msg, sizeof msg, "Malformed HTTP request: %s.", why);
      conn_fail(c, st, "bad_request", "malformed_request", msg);
      return;
    }
    r->keep_alive = r->head.keep_alive;
    if (!r->keep_alive) c->close_after = true;
    rt_req_pick_surface(r);  /* a 413 or a bad body below answers in the caller's API shape */
    size_t max = s->cfg->limits.max_body_bytes;
    bool has_body = r->head.chunked || r->head.content_length > 0;
    if (r->head.content_length > 0 && (uint64_t)r->head.content_length > max) {
      too_large(c);
      return;
    }
    if (r->head.chunked) {
      memset(&c->chunked, 0, sizeof c->chunked);
    } else if (r->head.content_length > 0) {
      r->body_cap = (size_t)r->head.content_length + 1;
      r->body = malloc(r->body_cap);
      if (!r->body) {
        conn_fail(c, 500, "internal", NULL, "out of memory");
        return;
      }
    }
    if (!has_body) {
      dispatch(c);
      return;
    }
    if (r->head.expect_continue && r->head.minor == 1)
      bufferevent_write(c->bev, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    c->state = CONN_BODY;
  }

  if (c->state == CONN_BODY) {
    struct rt_req *r = c->req;
    if (!r->head.chunked) {
      size_t need = (size_t)r->head.content_length - r->body_len;
      size_t avail = evbuffer_get_length(in);
      size_t take = avail < need ? avail : need;
      if (take) {
        evbuffer_remove(in, r->body + r->body_len, take);
        r->body_len += take;
      }
      if (r->body_len == (size_t)r->head.content_length) dispatch(c);
      return;
    }
    for (;;) {
      struct evbuffer_iovec v;
      if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0) return;
      size_t used = 0;
      int rc = rt_chunked_feed(&c->chunked, v.iov_base, v.iov_len, &used, body_sink, r);
      evbuffer_drain(in, used);
      if (rc == 1) {
        dispatch(c);
        return;
      }
      if (rc == -EFBIG) {
        too_large(c);
        return;
      }
      if (rc < 0) {
        conn_fail(c, rc == -ENOMEM ? 500 : 400, "bad_request", "malformed_request",
                  "Malformed chunked request body.");
        return;
      }
    }
  }
}

/* The reply of the current request is fully queued. */
static void conn_response_done(struct rt_conn *c) {
  struct rt_server *s = c->srv;
  c->req = NULL;
  if (c->close_after || s->draining) {
    c->state = CONN_CLOSING;
    /* freeing happens from a clean stack frame: write_cb when the output drains, or the timer */
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) set_timer_ms(c->timer, 0);
    else evtimer_del(c->timer);
    return;
  }
  c->state = CONN_IDLE;
  if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
    c->parse_pending = true;
    set_timer_ms(c->timer, 0);
  } else {
    set_timer_ms(c->timer, s->cfg->limits.client_timeout_ms);
  }
}

/* CLOSING and the output is empty: half-close and linger, or free. */
static void conn_closing_flushed(struct rt_conn *c) {
  if (c->shut) return;
  c->shut = true;
  shutdown(bufferevent_getfd(c->bev), SHUT_WR);
  set_timer_ms(c->timer, LINGER_MS);
}

static void read_cb(struct bufferevent *bev, void *arg) {
  struct rt_conn *c = arg;
  struct evbuffer *in = bufferevent_get_input(bev);
  switch (c->state) {
  case CONN_CLOSING:
    evbuffer_drain(in, evbuffer_get_length(in));
    return;
  case CONN_PROCESSING:
    return; /* pipelined: parsed after the reply */
  default:
    if (c->parse_pending) return;
    try_parse(c);
  }
}

static void write_cb(struct bufferevent *bev, void *arg) {
  struct rt_conn *c = arg;
  if (c->state == CONN_CLOSING) conn_closing_flushed(c);
  else if (c->state == CONN_PROCESSING && c->req) rt_req_on_drain(c->req);
}

static void event_cb(struct bufferevent *bev, short what, void *arg) {
  struct rt_conn *c = arg;
  if (c->state == CONN_PROCESSING && c->req) {
    if (what & BEV_EVENT_TIMEOUT)
      rt_req_abort(c->req, 408, "client_timeout", "client stopped reading the reply");
    else
      rt_req_abort(c->req, 499, "client_disconnect", "client closed the connection");
  }
  conn_free(c);
}

static void timer_cb(evutil_socket_t fd, short kind, void *arg) {
  struct rt_conn *c = arg;
  switch (c->state) {
  case CONN_IDLE:
    if (c->parse_pending) {
      c->parse_pending = false;
      try_parse(c);
    } else {
      conn_free(c); /* keep-alive idle timeout */
    }
    return;
  case CONN_HEAD:
  case CONN_BODY:
    conn_fail(c, 408, "client_timeout", "request_timeout",
              "The request was not received within the client timeout.");
    return;
  case CONN_CLOSING:
    if (!c->shut && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
      conn_closing_flushed(c);
    else if (c->shut)
      conn_free(c);
    return;
  case CONN_PROCESSING:
    return;
  }
}

static void drain_check(struct rt_server *s) {
  if (s->draining && s->n_conns == 0) event_base_loopexit(s->base, NULL);
}

static void conn_free(struct rt_conn *c) {
  struct rt_server *s = c->srv;
  if (c->req) {
    if (c->state == CONN_PROCESSING && !c->req->finished)
      rt_req_abort(c->req, 499, "client_disconnect", "client closed the connection");
    else
      rt_req_free(c->req);
  }
  bufferevent_free(c->bev);
  event_free(c->timer);
  if (c->prev) c->prev->next = c->next;
  else s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  s->n_conns--;
  free(c);
  if (s->listener && !s->draining && s->n_conns + 1 == (size_t)s->cfg->limits.max_connections)
    evconnlistener_enable(s->listener);
  drain_check(s);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg) {
  struct rt_server *s = arg;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct rt_conn *c = calloc(1, sizeof *c);
  struct bufferevent *bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
  struct event *timer = c ? evtimer_new(s->base, timer_cb, c) : NULL;
  if (!c || !bev || !timer) {
    if (bev) bufferevent_free(bev);
    else evutil_closesocket(fd);
    if (timer) event_free(timer);
    free(c);
    return;
  }
  c->srv = s;
  c->bev = bev;
  c->timer = timer;
  c->state = CONN_IDLE;
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  s->n_conns++;
  bufferevent_setcb(bev, read_cb, write_cb, event_cb, c);
  bufferevent_setwatermark(bev, EV_READ, 0, READ_HIGH_WATER);
  int ms = s->cfg->limits.client_timeout_ms;
  struct timeval wtv = {ms / 1000, (ms % 1000) * 1000};
  bufferevent_set_timeouts(bev, NULL, &wtv);
  bufferevent_enable(bev, EV_READ | EV_WRITE);
  set_timer_ms(c->timer, ms);
  if (s->n_conns >= (size_t)s->cfg->limits.max_connections) evconnlistener_disable(l);
}

static void accept_error_cb(struct evconnlistener *l, void *arg) {
  /* EMFILE and friends: pause accepting briefly rather than spinning */
  struct rt_server *s = arg;
  fprintf(stderr, "tiergate: accept: %s\n", strerror(errno));
  evconnlistener_disable(l);
  if (s->drain_timer && !s->draining) set_timer_ms(s->drain_timer, 100);
}

/* ------------------------------------------------------------------ writing replies */

static const char *reason(int status) {
  switch (status) {
  case 100: return "Continue";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 402: return "Payment Required";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 413: return "Content Too Large";
  case 415: return "Unsupported Media Type";
  case 422: return "Unprocessable Content";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 499: return "Client Closed Request";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  case 529: return "Site Overloaded";
  default: return "Status";
  }
}

static const char *http_date(void) {
  static time_t last;
  static char buf[40];
  time_t now = time(NULL);
  if (now != last) {
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    last = now;
  }
  return buf;
}

void rt_resp_start(struct rt_req *r, int status, const char *content_type, int64_t content_length,
                   const struct rt_kv *extra, size_t n_extra) {
  if (r->resp_started) return;
  r->resp_started = true;
  r->status = status;
  struct rt_conn *c = r->conn;
  if (!c) return;
  struct rt_server *s = r->srv;
  struct evbuffer *out = bufferevent_get_output(c->bev);
  if (!r->keep_alive || s->draining) c->close_after = true;
  bool chunked = false;
  if (content_length < 0) {
    if (r->head.minor == 1 && r->head.target) chunked = true;
    else c->close_after = true; /* HTTP/1.0: the end of the body is the end of the connection */
  }
  r->resp_chunked = chunked;

  int64_t now = rt_now_us();
  int64_t up = 0;
  if (r->t_up_start) {
    /* a stream's reply starts at its first event (openai.c), while the transfer runs: the wait
     * for that event was the upstream's time too */
    int64_t e = r->t_up_end ? r->t_up_end : r->t_first_token ? r->t_first_token
              : r->t_up_headers ? r->t_up_headers : now;
    up = e - r->t_up_start;
  }
  double overhead_ms = (double)(now - r->t0 - up) / 1e3;

  evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\ndate: %s\r\n", status, reason(status), http_date());
  if (content_type) evbuffer_add_printf(out, "content-type: %s\r\n", content_type);
  if (chunked) evbuffer_add(out, "transfer-encoding: chunked\r\n", 28);
  else if (content_length >= 0)
    evbuffer_add_printf(out, "content-length: %lld\r\n", (long long)content_length);
  if (c->close_after) evbuffer_add(out, "connection: close\r\n", 19);
  else if (r->head.minor == 0) evbuffer_add(out, "connection: keep-alive\r\n", 24);
  evbuffer_add_printf(out, "x-tiergate-request-id: %s\r\n", r->id);
  if (r->model)
    evbuffer_add_printf(out, "x-tiergate-route: %s/%s\r\n", rt_req_provider_name(r),
                        rt_req_upstream_model(r));
  evbuffer_add_printf(out, "x-tiergate-overhead-ms: %.3f\r\n", overhead_ms < 0 ? 0 : overhead_ms);
  if (r->attempts > 1) evbuffer_add_printf(out, "x-tiergate-attempts: %d\r\n", r->attempts);
  /* the gateway's own retry advice replaces the upstream's (resilience.c decides) */
  if (r->should_retry)
    evbuffer_add_printf(out, "x-should-retry: %s\r\n", r->should_retry > 0 ? "true" : "false");
  for (size_t i = 0; i < r->n_pass; i++) {
    if (r->should_retry && !strcasecmp(r->pass[i].name, "x-should-retry")) continue;
    evbuffer_add_printf(out, "%s: %s\r\n", r->pass[i].name, r->pass[i].value);
  }
  for (size_t i = 0; i < n_extra; i++) {
    if (r->should_retry && !strcasecmp(extra[i].name, "x-should-retry")) continue;
    evbuffer_add_printf(out, "%s: %s\r\n", extra[i].name, extra[i].value);
  }
  evbuffer_add(out, "\r\n", 2);
}

void rt_resp_body(struct rt_req *r, const void *p, size_t n) {
  struct rt_conn *c = r->conn;
  if (!c || !r->resp_started || r->finished || n == 0) return;
  struct evbuffer *out = bufferevent_get_output(c->bev);
  if (r->resp_chunked) {
    evbuffer_add_printf(out, "%zx\r\n", n);
    evbuffer_add(out, p, n);
    evbuffer_add(out, "\r\n", 2);
  } else {
    evbuffer_add(out, p, n);
  }
}

size_t rt_resp_pending(const struct rt_req *r) {
  return r->conn ? evbuffer_get_length(bufferevent_get_output(r->conn->bev)) : 0;
}

void rt_resp_end(struct rt_req *r) {
  if (r->finished) return;
  r->finished = true;
  struct rt_conn *c = r->conn;
  if (c && r->resp_chunked) evbuffer_add(bufferevent_get_output(c->bev), "0\r\n\r\n", 5);
  rt_req_log(r);
  if (c) {
    r->conn = NULL;
    conn_response_done(c);
  }
  rt_req_free(r);
}

void rt_resp_full(struct rt_req *r, int status, const char *content_type, const void *body,
                  size_t n, const struct rt_kv *extra, size_t n_extra) {
  rt_resp_start(r, status, content_type, (int64_t)n, extra, n_extra);
  rt_resp_body(r, body, n);
  rt_resp_end(r);
}

/* rt_req_abort lives here because it must detach the request from its connection. */
void rt_req_abort(struct rt_req *r, int status, const char *error_class, const char *message) {
  if (r->finished) return;
  r->finished = true;
  r->status = status;
  r->error_class = error_class;
  snprintf(r->error_msg, sizeof r->error_msg, "%s", message);
  if (r->xfer) {
    up_cancel(r->xfer);
    r->xfer = NULL;
  }
  rt_req_log(r);
  if (r->conn) {
    r->conn->req = NULL;
    r->conn = NULL;
  }
  rt_req_free(r);
}

/* ------------------------------------------------------------------ shutdown */

/* Best-effort synchronous write of what is queued (the connection is about to be freed). The
 * bufferevent keeps its output's front frozen, so the bytes are sent from a peek, not drained. */
static void flush_now(struct rt_conn *c) {
  struct evbuffer *out = bufferevent_get_output(c->bev);
  int fd = bufferevent_getfd(c->bev);
  struct evbuffer_iovec v[16];
  int n = evbuffer_peek(out, -1, NULL, v, 16);
  for (int i = 0; i < n && i < 16; i++) {
    ssize_t w = send(fd, v[i].iov_base, v[i].iov_len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w < (ssize_t)v[i].iov_len) break;
  }
}

static void drain_deadline_cb(evutil_socket_t fd, short kind, void *arg) {
  struct rt_server *s = arg;
  if (!s->draining) {
    /* accept_error_cb's pause is over (unless the connection cap holds the listener off) */
    if (s->listener && s->n_conns < (size_t)s->cfg->limits.max_connections)
      evconnlistener_enable(s->listener);
    return;
  }
  fprintf(stderr, "tiergate: drain deadline reached, closing %zu connection(s)\n", s->n_conns);
  while (s->conns) {
    struct rt_conn *c = s->conns;
    if (c->state == CONN_PROCESSING && c->req) {
      struct rt_req *r = c->req;
      static const char why[] = "the gateway shut down before the reply was complete";
      if (r->resp_started && r->surface->stream_error) {
        /* a stream in progress gets its API's error event and a proper end, written now
         * (best effort, non-blocking) since the connection is freed right after */
        r->surface->stream_error(r, "shutdown", why);
        if (r->resp_chunked) evbuffer_add(bufferevent_get_output(c->bev), "0\r\n\r\n", 5);
        flush_now(c);
      }
      rt_req_abort(r, 503, "shutdown", why);
    }
    conn_free(c);
  }
  event_base_loopexit(s->base, NULL);
}

static void begin_drain(struct rt_server *s) {
  if (s->draining) {
    fprintf(stderr, "tiergate: second signal, stopping now\n");
    event_active(s->drain_timer, EV_TIMEOUT, 0);
    return;
  }
  s->draining = true;
  fprintf(stderr, "tiergate: shutting down: %zu request(s) in flight, waiting up to %d ms\n",
          s->n_reqs, s->drain_ms);
  if (s->listener) {
    evconnlistener_free(s->listener);
    s->listener = NULL;
  }
  for (struct rt_conn *c = s->conns, *next; c; c = next) {
    next = c->next;
    if (c->state == CONN_IDLE && !c->parse_pending) conn_free(c);
  }
  set_timer_ms(s->drain_timer, s->drain_ms);
  drain_check(s);
}

static void signal_cb(evutil_socket_t sig, short kind, void *arg) { begin_drain(arg); }

/* ------------------------------------------------------------------ setup */

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

static char *build_models_json(const struct pol_config *cfg, int64_t created, size_t *len) {
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

int rt_server_run(const struct pol_config *cfg, struct db_writer *db, const struct rt_serve_opts *o) {
  struct rt_server srv;
  struct rt_server *s = &srv;
  memset(s, 0, sizeof *s);
  s->cfg = cfg;
  s->db = db;
  s->drain_ms = o->drain_ms > 0 ? o->drain_ms : 10000;
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
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
  struct addrinfo *ai = NULL;
  int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
  if (gai) {
    fprintf(stderr, "tiergate: cannot resolve listen address %s:%s: %s\n", host, port, gai_strerror(gai));
    return 1;
  }
  s->base = event_base_new();
  if (!s->base) goto out;
  s->listener = evconnlistener_new_bind(s->base, accept_cb, s,
                                        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                                        1024, ai->ai_addr, (int)ai->ai_addrlen);
  if (!s->listener) {
    fprintf(stderr, "tiergate: cannot listen on %s:%s: %s\n", host, port, strerror(errno));
    goto out;
  }
  evconnlistener_set_error_cb(s->listener, accept_error_cb);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  getsockname(evconnlistener_get_fd(s->listener), (struct sockaddr *)&ss, &sl);
  char addr[INET6_ADDRSTRLEN] = "?";
  if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    inet_ntop(AF_INET6, &a6->sin6_addr, addr, sizeof addr);
    s->port = ntohs(a6->sin6_port);
    snprintf(s->bound, sizeof s->bound, "[%s]:%d", addr, s->port);
  } else {
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    inet_ntop(AF_INET, &a4->sin_addr, addr, sizeof addr);
    s->port = ntohs(a4->sin_port);
    snprintf(s->bound, sizeof s->bound, "%s:%d", addr, s->port);
  }

  s->up = up_multi_new(s->base, err, sizeof err);
  if (!s->up) {
    fprintf(stderr, "tiergate: %s\n", err);
    goto out;
  }
  s->metrics = rt_metrics_new(cfg);
  s->resil = rt_resil_new(cfg, s->rng);
  s->models_json = build_models_json(cfg, s->started_wall, &s->models_json_len);
  s->drain_timer = evtimer_new(s->base, drain_deadline_cb, s);
  s->sig_int = evsignal_new(s->base, SIGINT, signal_cb, s);
  s->sig_term = evsignal_new(s->base, SIGTERM, signal_cb, s);
  if (!s->metrics || !s->resil || !s->models_json || !s->drain_timer || !s->sig_int || !s->sig_term ||
      build_provider_cache(s)) {
    fprintf(stderr, "tiergate: out of memory\n");
    goto out;
  }
  evsignal_add(s->sig_int, NULL);
  evsignal_add(s->sig_term, NULL);

  if (o->port_file && write_port_file(o->port_file, s->port)) {
    fprintf(stderr, "tiergate: cannot write port file %s: %s\n", o->port_file, strerror(errno));
    goto out;
  }
  printf("tiergate: listening on http://%s\n", s->bound);
  fflush(stdout);

  event_base_dispatch(s->base);
  rc = 0;
  fprintf(stderr, "tiergate: stopped accepting; %zu request(s) unfinished\n", s->n_reqs);

out:
  while (s->conns) {
    struct rt_conn *c = s->conns;
    if (c->state == CONN_PROCESSING && c->req)
      rt_req_abort(c->req, 503, "shutdown", "the gateway shut down before the reply was complete");
    s->draining = true;
    conn_free(c);
  }
  if (s->listener) evconnlistener_free(s->listener);
  up_multi_free(s->up);
  rt_metrics_free(s->metrics);
  rt_resil_free(s->resil);   /* after every request is gone: they hold its deployments */
  free(s->models_json);
  free_provider_cache(s);
  if (s->drain_timer) event_free(s->drain_timer);
  if (s->sig_int) event_free(s->sig_int);
  if (s->sig_term) event_free(s->sig_term);
  if (s->base) event_base_free(s->base);
  if (ai) freeaddrinfo(ai);
  return rc;
}
