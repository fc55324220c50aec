/*
 * server.c: the HTTP/1.1 front end on libevent bufferevents: accept, read and frame requests,
 * write replies (whole or streamed), enforce client timeouts, close connections, shut down cleanly.
 * It knows no API surface: the application (struct rt_http_app) answers requests and errors.
 *
 * DESIGN. Why not evhttp: libevent 2.1's evhttp answers an oversized body (413) and malformed
 * requests itself, with an HTML page and without calling us, so those failures could get neither
 * an API-shaped error nor a log row; it also buffers every body before the callback and gives no
 * hook for back-pressure on streamed replies. This file is a small server on bufferevents
 * instead, with the parsing in parse.c.
 *
 * A connection is a little state machine:
 *   IDLE ──bytes──▶ HEAD ──head parsed──▶ BODY ──body complete──▶ PROCESSING ──reply queued──▶ IDLE
 *     │                (deadline timer: the whole request within client_timeout_ms)      │
 *     └─ idle timer ─▶ closed                      errors / Connection: close ──▶ CLOSING ┘
 * Only one request per connection is processed at a time; pipelined bytes wait in the input
 * buffer and are parsed on the next loop turn after the reply (never re-entrantly). While a
 * request is processed the socket stays readable so a disconnect is seen at once (on_abort lets
 * the application cancel its work). Writes have a timeout (a client that stops reading is cut
 * off) and on_writable tells a streaming producer when the client caught up.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "router/http/http.h"

#define READ_HIGH_WATER (1u << 20)  /* stop reading a connection with this much unparsed input */
#define LINGER_MS 1000              /* discard input this long after a closing reply */

enum conn_state { CONN_IDLE, CONN_HEAD, CONN_BODY, CONN_PROCESSING, CONN_CLOSING };

struct rt_http_conn {
  struct rt_http_server *srv;
  struct rt_http_conn *prev, *next;
  struct bufferevent *bev;
  struct event *timer;       /* idle timeout / request deadline / deferred parse / linger */
  enum conn_state state;
  struct rt_http_req *req;   /* being read or processed */
  struct rt_chunked chunked;
  bool close_after;          /* close once the current reply is written */
  bool parse_pending;        /* pipelined input waits for the timer's next turn */
  bool shut;                 /* CLOSING: write side shut down, lingering */
};

struct rt_http_server {
  struct event_base *base;
  struct rt_http_app app;
  struct rt_http_limits lim;
  struct evconnlistener *listener;
  struct rt_http_conn *conns;
  size_t n_conns, n_reqs;
  bool draining;
  struct event *drain_timer;        /* the drain deadline; also ends accept_error_cb's pause */
  char bound[128];
  int port;
};

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t wall_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void set_timer_ms(struct event *ev, int ms) {
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  evtimer_add(ev, &tv);
}

static void conn_free(struct rt_http_conn *c);
static void try_parse(struct rt_http_conn *c);

/* ------------------------------------------------------------------ requests on a connection */

static struct rt_http_req *req_new(struct rt_http_conn *c) {
  struct rt_http_server *s = c->srv;
  struct rt_http_req *q = calloc(1, sizeof *q);
  if (!q) return NULL;
  q->srv = s;
  q->conn = c;
  q->t0 = now_us();
  q->wall0_us = wall_us();
  s->n_reqs++;
  c->req = q;
  return q;
}

static void req_free(struct rt_http_req *q) {
  if (!q) return;
  q->srv->n_reqs--;
  if (q->conn && q->conn->req == q) q->conn->req = NULL;
  free(q->head_buf);
  free(q->body);
  free(q);
}

/* The request ends without a complete reply: the application learns why, then Q is freed. */
static void req_abort(struct rt_http_req *q, int status, const char *cls, const char *msg) {
  if (!q->finished) {
    q->finished = true;
    if (!q->resp_started) q->status = status;
    if (q->conn) {
      q->conn->req = NULL;
      q->conn = NULL;
    }
    q->srv->app.on_abort(q, status, cls, msg);
  }
  req_free(q);
}

/* A failure before or while reading the request: the application replies (an error in the
 * caller's shape, with a log row) and the connection closes afterwards. */
static void conn_fail(struct rt_http_conn *c, int status, const char *cls, const char *code,
                      const char *msg) {
  struct rt_http_req *q = c->req ? c->req : req_new(c);
  c->close_after = true;
  if (!q) {
    conn_free(c);
    return;
  }
  if (!q->body && !(q->body = calloc(1, 1))) {
    conn_free(c);
    return;
  }
  c->state = CONN_PROCESSING;
  evtimer_del(c->timer);
  c->srv->app.on_error(q, status, cls, code, msg);
}

static void dispatch(struct rt_http_conn *c) {
  struct rt_http_req *q = c->req;
  evtimer_del(c->timer);
  c->state = CONN_PROCESSING;
  if (!q->body) q->body = calloc(1, 1);
  if (!q->body) {
    conn_fail(c, 500, "internal", NULL, "out of memory");
    return;
  }
  q->body[q->body_len] = '\0';
  c->srv->app.on_request(q);
}

static int body_sink(void *ud, const char *p, size_t n) {
  struct rt_http_req *q = ud;
  size_t max = q->srv->lim.max_body_bytes;
  if (q->body_len + n > max) return -EFBIG;
  if (q->body_len + n + 1 > q->body_cap) {
    size_t cap = q->body_cap ? q->body_cap : 4096;
    while (cap < q->body_len + n + 1) cap *= 2;
    if (cap > max + 1) cap = max + 1;
    char *b = realloc(q->body, cap);
    if (!b) return -ENOMEM;
    q->body = b;
    q->body_cap = cap;
  }
  memcpy(q->body + q->body_len, p, n);
  q->body_len += n;
  return 0;
}

static void too_large(struct rt_http_conn *c) {
  char msg[160];
  snprintf(msg, sizeof msg, "Request body too large: the limit is %zu bytes.",
           c->srv->lim.max_body_bytes);
  conn_fail(c, 413, "request_too_large", "request_too_large", msg);
}

/* Reads as much of the current request as the input holds; dispatches it when complete. */
static void try_parse(struct rt_http_conn *c) {
  struct rt_http_server *s = c->srv;
  struct evbuffer *in = bufferevent_get_input(c->bev);

  if (c->state == CONN_IDLE) {
    /* RFC 9112 2.2: ignore empty lines before a request line */
    unsigned char *p;
    while ((p = evbuffer_pullup(in, 1)) && (*p == '\r' || *p == '\n')) evbuffer_drain(in, 1);
    if (evbuffer_get_length(in) == 0) return;
    c->state = CONN_HEAD;
    set_timer_ms(c->timer, s->lim.client_timeout_ms);
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
    struct rt_http_req *q = req_new(c);
    if (!q || !(q->head_buf = malloc(head_len + 1))) {
      conn_fail(c, 500, "internal", NULL, "out of memory");
      return;
    }
    evbuffer_remove(in, q->head_buf, head_len);
    q->head_buf[head_len] = '\0';
    const char *why = "malformed request";
    int rc = rt_http_parse_head(q->head_buf, head_len, &q->head, &why);
    if (rc) {
      int st = rc == -E2BIG ? 431 : rc == -EPROTONOSUPPORT ? 505 : rc == -ENOSYS ? 501 : 400;
      q->head.target = NULL;
      char msg[200];
      snprintf(msg, sizeof msg, "Malformed HTTP request: %s.", why);
      conn_fail(c, st, "bad_request", "malformed_request", msg);
      return;
    }
    q->keep_alive = q->head.keep_alive;
    if (!q->keep_alive) c->close_after = true;
    size_t max = s->lim.max_body_bytes;
    bool has_body = q->head.chunked || q->head.content_length > 0;
    if (q->head.content_length > 0 && (uint64_t)q->head.content_length > max) {
      too_large(c);
      return;
    }
    if (q->head.chunked) {
      memset(&c->chunked, 0, sizeof c->chunked);
    } else if (q->head.content_length > 0) {
      q->body_cap = (size_t)q->head.content_length + 1;
      q->body = malloc(q->body_cap);
      if (!q->body) {
        conn_fail(c, 500, "internal", NULL, "out of memory");
        return;
      }
    }
    if (!has_body) {
      dispatch(c);
      return;
    }
    if (q->head.expect_continue && q->head.minor == 1)
      bufferevent_write(c->bev, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    c->state = CONN_BODY;
  }

  if (c->state == CONN_BODY) {
    struct rt_http_req *q = c->req;
    if (!q->head.chunked) {
      size_t need = (size_t)q->head.content_length - q->body_len;
      size_t avail = evbuffer_get_length(in);
      size_t take = avail < need ? avail : need;
      if (take) {
        evbuffer_remove(in, q->body + q->body_len, take);
        q->body_len += take;
      }
      if (q->body_len == (size_t)q->head.content_length) dispatch(c);
      return;
    }
    for (;;) {
      struct evbuffer_iovec v;
      if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0) return;
      size_t used = 0;
      int rc = rt_chunked_feed(&c->chunked, v.iov_base, v.iov_len, &used, body_sink, q);
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
static void conn_response_done(struct rt_http_conn *c) {
  struct rt_http_server *s = c->srv;
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
    set_timer_ms(c->timer, s->lim.client_timeout_ms);
  }
}

/* CLOSING and the output is empty: half-close and linger, or free. */
static void conn_closing_flushed(struct rt_http_conn *c) {
  if (c->shut) return;
  c->shut = true;
  shutdown(bufferevent_getfd(c->bev), SHUT_WR);
  set_timer_ms(c->timer, LINGER_MS);
}

static void read_cb(struct bufferevent *bev, void *arg) {
  struct rt_http_conn *c = arg;
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
  struct rt_http_conn *c = arg;
  if (c->state == CONN_CLOSING) conn_closing_flushed(c);
  else if (c->state == CONN_PROCESSING && c->req) c->srv->app.on_writable(c->req);
}

static void event_cb(struct bufferevent *bev, short what, void *arg) {
  struct rt_http_conn *c = arg;
  if (c->state == CONN_PROCESSING && c->req) {
    if (what & BEV_EVENT_TIMEOUT)
      req_abort(c->req, 408, "client_timeout", "client stopped reading the reply");
    else
      req_abort(c->req, 499, "client_disconnect", "client closed the connection");
  }
  conn_free(c);
}

static void timer_cb(evutil_socket_t fd, short kind, void *arg) {
  struct rt_http_conn *c = arg;
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

static void drain_check(struct rt_http_server *s) {
  if (s->draining && s->n_conns == 0) event_base_loopexit(s->base, NULL);
}

static void conn_free(struct rt_http_conn *c) {
  struct rt_http_server *s = c->srv;
  if (c->req) {
    /* a request still being read was never handed over: nothing to tell the application */
    if (c->state == CONN_PROCESSING && !c->req->finished)
      req_abort(c->req, 499, "client_disconnect", "client closed the connection");
    else
      req_free(c->req);
  }
  bufferevent_free(c->bev);
  event_free(c->timer);
  if (c->prev) c->prev->next = c->next;
  else s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  s->n_conns--;
  free(c);
  if (s->listener && !s->draining && s->n_conns + 1 == (size_t)s->lim.max_connections)
    evconnlistener_enable(s->listener);
  drain_check(s);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg) {
  struct rt_http_server *s = arg;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct rt_http_conn *c = calloc(1, sizeof *c);
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
  int ms = s->lim.client_timeout_ms;
  struct timeval wtv = {ms / 1000, (ms % 1000) * 1000};
  bufferevent_set_timeouts(bev, NULL, &wtv);
  bufferevent_enable(bev, EV_READ | EV_WRITE);
  set_timer_ms(c->timer, ms);
  if (s->n_conns >= (size_t)s->lim.max_connections) evconnlistener_disable(l);
}

static void accept_error_cb(struct evconnlistener *l, void *arg) {
  /* EMFILE and friends: pause accepting briefly rather than spinning */
  struct rt_http_server *s = arg;
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

void rt_http_resp_start(struct rt_http_req *q, int status, const char *content_type,
                        int64_t content_length, const struct rt_kv *hdr, size_t n_hdr) {
  if (q->resp_started) return;
  q->resp_started = true;
  q->status = status;
  struct rt_http_conn *c = q->conn;
  if (!c) return;
  struct rt_http_server *s = q->srv;
  struct evbuffer *out = bufferevent_get_output(c->bev);
  if (!q->keep_alive || s->draining) c->close_after = true;
  bool chunked = false;
  q->no_body = q->head.target && !strcmp(q->head.method, "HEAD");
  if (content_length < 0) {
    if (q->head.minor == 1 && q->head.target) chunked = true;
    else if (!q->no_body) c->close_after = true; /* HTTP/1.0: the body ends with the connection */
  }
  q->resp_chunked = chunked;
  evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\ndate: %s\r\n", status, reason(status), http_date());
  if (content_type && rt_http_field_ok("content-type", content_type))
    evbuffer_add_printf(out, "content-type: %s\r\n", content_type);
  if (chunked) evbuffer_add(out, "transfer-encoding: chunked\r\n", 28);
  else if (content_length >= 0)
    evbuffer_add_printf(out, "content-length: %lld\r\n", (long long)content_length);
  if (c->close_after) evbuffer_add(out, "connection: close\r\n", 19);
  else if (q->head.minor == 0) evbuffer_add(out, "connection: keep-alive\r\n", 24);
  for (size_t i = 0; i < n_hdr; i++) {
    /* the last line of defence against header injection: whatever the application relays or
     * builds, a field with a CR, LF or other control byte never reaches the wire */
    if (!rt_http_field_ok(hdr[i].name, hdr[i].value)) {
      fprintf(stderr, "tiergate: reply header dropped: malformed name or value (control bytes)\n");
      continue;
    }
    evbuffer_add_printf(out, "%s: %s\r\n", hdr[i].name, hdr[i].value);
  }
  evbuffer_add(out, "\r\n", 2);
}

void rt_http_resp_body(struct rt_http_req *q, const void *p, size_t n) {
  struct rt_http_conn *c = q->conn;
  if (!c || !q->resp_started || q->finished || n == 0 || q->no_body) return;
  struct evbuffer *out = bufferevent_get_output(c->bev);
  if (q->resp_chunked) {
    evbuffer_add_printf(out, "%zx\r\n", n);
    evbuffer_add(out, p, n);
    evbuffer_add(out, "\r\n", 2);
  } else {
    evbuffer_add(out, p, n);
  }
}

size_t rt_http_resp_pending(const struct rt_http_req *q) {
  return q->conn ? evbuffer_get_length(bufferevent_get_output(q->conn->bev)) : 0;
}

void rt_http_resp_end(struct rt_http_req *q) {
  if (q->finished) return;
  q->finished = true;
  struct rt_http_conn *c = q->conn;
  if (c && q->resp_chunked && !q->no_body)
    evbuffer_add(bufferevent_get_output(c->bev), "0\r\n\r\n", 5);
  q->srv->app.on_finish(q);
  if (c) {
    q->conn = NULL;
    conn_response_done(c);
  }
  req_free(q);
}

/* ------------------------------------------------------------------ shutdown */

/* Best-effort synchronous write of what is queued (the connection is about to be freed). The
 * bufferevent keeps its output's front frozen, so the bytes are sent from a peek, not drained. */
static void flush_now(struct rt_http_conn *c) {
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
  struct rt_http_server *s = arg;
  if (!s->draining) {
    /* accept_error_cb's pause is over (unless the connection cap holds the listener off) */
    if (s->listener && s->n_conns < (size_t)s->lim.max_connections)
      evconnlistener_enable(s->listener);
    return;
  }
  fprintf(stderr, "tiergate: drain deadline reached, closing %zu connection(s)\n", s->n_conns);
  while (s->conns) {
    struct rt_http_conn *c = s->conns;
    if (c->state == CONN_PROCESSING && c->req) {
      struct rt_http_req *q = c->req;
      static const char why[] = "the gateway shut down before the reply was complete";
      if (q->resp_started && !q->finished) {
        /* a stream in progress gets its API's final frame and a proper end, written now
         * (best effort, non-blocking) since the connection is freed right after */
        s->app.on_cut(q);
        if (q->resp_chunked) evbuffer_add(bufferevent_get_output(c->bev), "0\r\n\r\n", 5);
        flush_now(c);
      }
      req_abort(q, 503, "shutdown", why);
    }
    conn_free(c);
  }
  event_base_loopexit(s->base, NULL);
}

void rt_http_server_drain(struct rt_http_server *s) {
  if (s->draining) {
    fprintf(stderr, "tiergate: second signal, stopping now\n");
    event_active(s->drain_timer, EV_TIMEOUT, 0);
    return;
  }
  s->draining = true;
  fprintf(stderr, "tiergate: shutting down: %zu request(s) in flight, waiting up to %d ms\n",
          s->n_reqs, s->lim.drain_ms);
  if (s->listener) {
    evconnlistener_free(s->listener);
    s->listener = NULL;
  }
  if (s->app.on_drain) s->app.on_drain(s->app.ud);
  for (struct rt_http_conn *c = s->conns, *next; c; c = next) {
    next = c->next;
    if (c->state == CONN_IDLE && !c->parse_pending) conn_free(c);
  }
  set_timer_ms(s->drain_timer, s->lim.drain_ms);
  drain_check(s);
}

bool rt_http_server_draining(const struct rt_http_server *s) { return s->draining; }
void *rt_http_app_data(const struct rt_http_req *q) { return q->srv->app.ud; }
const char *rt_http_server_bound(const struct rt_http_server *s) { return s->bound; }
int rt_http_server_port(const struct rt_http_server *s) { return s->port; }
size_t rt_http_server_connections(const struct rt_http_server *s) { return s->n_conns; }
size_t rt_http_server_requests(const struct rt_http_server *s) { return s->n_reqs; }

/* ------------------------------------------------------------------ setup */

struct rt_http_server *rt_http_server_new(struct event_base *base, const char *host,
                                          const char *port, const struct rt_http_limits *limits,
                                          const struct rt_http_app *app, char *err, size_t errlen) {
  struct rt_http_server *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  s->base = base;
  s->app = *app;
  s->lim = *limits;
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
  struct addrinfo *ai = NULL;
  int gai = getaddrinfo(host && host[0] ? host : NULL, port, &hints, &ai);
  if (gai) {
    snprintf(err, errlen, "cannot resolve listen address %s:%s: %s", host, port, gai_strerror(gai));
    free(s);
    return NULL;
  }
  s->drain_timer = evtimer_new(base, drain_deadline_cb, s);
  s->listener = evconnlistener_new_bind(base, accept_cb, s,
                                        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                                        1024, ai->ai_addr, (int)ai->ai_addrlen);
  freeaddrinfo(ai);
  if (!s->listener || !s->drain_timer) {
    snprintf(err, errlen, "cannot listen on %s:%s: %s", host, port, strerror(errno));
    rt_http_server_free(s);
    return NULL;
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
  return s;
}

void rt_http_server_free(struct rt_http_server *s) {
  if (!s) return;
  s->draining = true;
  while (s->conns) {
    struct rt_http_conn *c = s->conns;
    if (c->state == CONN_PROCESSING && c->req)
      req_abort(c->req, 503, "shutdown", "the gateway shut down before the reply was complete");
    conn_free(c);
  }
  if (s->listener) evconnlistener_free(s->listener);
  if (s->drain_timer) event_free(s->drain_timer);
  free(s);
}
