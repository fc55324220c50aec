/*
 * mock_upstream.c: a fast mock LLM upstream for tiergate's tests and benchmarks. HTTP/1.1 on
 * libevent bufferevents over loopback, one thread, TCP_NODELAY, keep-alive.
 *
 *   mock_upstream [--host 127.0.0.1] [--port 0] [--verbose] [--no-record]
 *
 * Prints the port it listens on as the first line of stdout ("12345\n"), then serves until
 * SIGINT/SIGTERM. Routes:
 *   POST <anything>/chat/completions   OpenAI Chat Completions (mock_openai.c)
 *   GET  /healthz                      "ok"
 *   GET  /_mock/last[?tag=T]           the last request received (or the last tagged T): method,
 *                                      path, headers, body, and what became of it
 *   GET  /_mock/stats                  counters (requests, completed, aborted, connections...)
 *   POST /_mock/reset                  forget recorded requests and counters
 * Behaviour per request: tests/mock/README.md.
 *
 * DESIGN. Our own small HTTP/1.1 server rather than evhttp, because the faults need control
 * evhttp does not give: a reset (RST) after exactly N bytes or N frames, a stall between SSE
 * frames, a hung connection, and noticing the peer closing while a reply is in flight (that is
 * how tests see that the gateway cancelled its upstream transfer). A surface (mock_openai.c)
 * builds a plan of frames; this file executes it: headers after `delay_ms`, then each frame
 * when due, waiting for the socket to drain before any delay or cut so that a reset really
 * happens after the bytes left, and so a huge body never piles up in memory twice.
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "mock.h"

/* Requests remembered for /_mock/last, and how much of each body is kept. */
#define RECORD_RING 256
#define RECORD_BODY_MAX ((size_t)1 << 20)
/* A connection whose client sends more than this while we are still replying is cut. */
#define PIPELINE_MAX ((size_t)1 << 20)
/* Plain bodies and pending output are handled in slices of this size (back-pressure). */
#define SLICE ((size_t)256 << 10)

struct record {
  uint64_t id;         /* 1, 2, ... among recorded requests; 0: empty slot */
  uint64_t seq;        /* request sequence number (in the reply's ids) */
  char method[16];
  char *path, *query;
  struct mock_header *headers;
  int n_headers;
  char *body;          /* first RECORD_BODY_MAX bytes */
  size_t body_len;     /* full length received */
  char *tag;
  /* "active", "done", "aborted" (the peer closed before the reply ended), "reset", "closed"
   * (deliberate cuts), "hung" (deliberately silent; "aborted" once the peer gives up) */
  const char *state;
  int status;
  size_t frames_sent;
  size_t bytes_sent;
  double started_ms, finished_ms;  /* monotonic, ms */
};

struct conn;

/* Requests seen per tag, for fail_times (a flaky upstream that recovers). */
#define TAG_COUNTERS 1024
struct tag_counter {
  char *tag;
  long seen;
};

struct server {
  struct event_base *base;
  bool verbose, record;
  uint64_t seq, rec_n;
  struct record ring[RECORD_RING];
  struct conn *conns;  /* every open connection, to free them at exit */
  struct tag_counter tags[TAG_COUNTERS];
  size_t n_tags, next_evict;
  /* counters for /_mock/stats; "requests" counts API requests, not /_mock/ or /healthz */
  uint64_t accepted, open_conns, requests, completed, aborted, resets, bad_requests, active;
  uint64_t max_active;  /* most replies in flight at once (concurrency seen by the upstream) */
};

enum conn_phase {
  PH_READ_HEAD,   /* waiting for a complete header block */
  PH_READ_BODY,   /* Content-Length body */
  PH_READ_CHUNKS, /* chunked request body */
  PH_REPLY,       /* executing a plan */
  PH_HUNG,        /* deliberately silent until the peer goes away */
};

/* What to do once the output has drained. */
enum after_drain { AD_NONE, AD_NEXT, AD_FINISH, AD_RESET, AD_CLOSE, AD_HANG };

struct conn {
  struct server *srv;
  struct conn *prev, *next;
  struct bufferevent *bev;
  struct event *timer;   /* delays and stalls */
  struct event *kick;    /* runs `after` from the loop when nothing is left to drain */
  enum conn_phase phase;
  bool counted_api;      /* the request in flight is an API request (for the counters) */
  /* request being read */
  struct mock_req rq;
  size_t need;           /* body bytes still expected (Content-Length) */
  long chunk_left;       /* chunked: bytes left in the current chunk, -1 reading a size line */
  bool chunk_trailer;    /* chunked: the 0-size chunk was read, skipping trailers */
  bool keep_alive;
  /* reply */
  struct mock_opts opts;
  struct mock_plan plan;
  size_t next_frame;     /* index of the next frame to send */
  size_t frame_off;      /* plain body: bytes of the current frame already sent */
  bool headers_sent;
  bool stalled;          /* the one stall_after_chunks pause already happened */
  bool timer_done;       /* the delay for the current step has elapsed */
  enum after_drain after;
  size_t bytes_sent;
  uint64_t rec_id;       /* record of the request in the ring, 0 if none */
};

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) abort();
  return p;
}

static char *xstrndup(const char *s, size_t n) {
  char *d = xmalloc(n + 1);
  memcpy(d, s, n);
  d[n] = 0;
  return d;
}

static char *xstrdup(const char *s) { return xstrndup(s, strlen(s)); }

/* ------------------------------------------------------------------ records */

static void record_clear(struct record *r) {
  free(r->path);
  free(r->query);
  for (int i = 0; i < r->n_headers; i++) {
    free(r->headers[i].name);
    free(r->headers[i].value);
  }
  free(r->headers);
  free(r->body);
  free(r->tag);
  memset(r, 0, sizeof *r);
}

static struct record *record_find(struct server *s, uint64_t id) {
  if (!id) return NULL;
  struct record *r = &s->ring[id % RECORD_RING];
  return r->id == id ? r : NULL;
}

static uint64_t record_new(struct server *s, const struct mock_req *rq, const char *tag) {
  uint64_t id = ++s->rec_n;
  struct record *r = &s->ring[id % RECORD_RING];
  record_clear(r);
  r->id = id;
  r->seq = rq->seq;
  memcpy(r->method, rq->method, sizeof r->method);
  r->path = xstrdup(rq->path);
  r->query = xstrdup(rq->query);
  r->headers = xmalloc(sizeof *r->headers * (size_t)(rq->n_headers ? rq->n_headers : 1));
  for (int i = 0; i < rq->n_headers; i++) {
    r->headers[i].name = xstrdup(rq->headers[i].name);
    r->headers[i].value = xstrdup(rq->headers[i].value);
  }
  r->n_headers = rq->n_headers;
  size_t keep = rq->body_len < RECORD_BODY_MAX ? rq->body_len : RECORD_BODY_MAX;
  r->body = xstrndup(rq->body ? rq->body : "", keep);
  r->body_len = rq->body_len;
  r->tag = tag ? xstrdup(tag) : NULL;
  r->state = "active";
  r->started_ms = now_ms();
  return id;
}

static json_t *record_json(const struct record *r) {
  json_t *h = json_object();
  for (int i = 0; i < r->n_headers; i++) {
    /* Repeated headers are joined with ", " as HTTP allows. */
    json_t *old = json_object_get(h, r->headers[i].name);
    json_t *v;
    if (old) {
      size_t n = strlen(json_string_value(old)) + strlen(r->headers[i].value) + 3;
      char *joined = xmalloc(n);
      snprintf(joined, n, "%s, %s", json_string_value(old), r->headers[i].value);
      v = json_string(joined);
      free(joined);
    } else {
      v = json_string(r->headers[i].value);
    }
    json_object_set_new(h, r->headers[i].name, v ? v : json_string("(not utf-8)"));
  }
  double end = r->finished_ms > 0 ? r->finished_ms : now_ms();
  json_t *o = json_pack("{s:I,s:s,s:s,s:s,s:o,s:I,s:s,s:i,s:I,s:I,s:f}", "seq",
                        (json_int_t)r->seq, "method", r->method, "path", r->path, "query",
                        r->query, "headers", h, "body_len", (json_int_t)r->body_len, "state",
                        r->state, "status", r->status, "frames_sent",
                        (json_int_t)r->frames_sent, "bytes_sent", (json_int_t)r->bytes_sent,
                        "duration_ms", end - r->started_ms);
  if (!o) abort();
  json_object_set_new(o, "tag", r->tag ? json_string(r->tag) : json_null());
  json_t *body = r->body_len <= RECORD_BODY_MAX ? json_loads(r->body, JSON_DECODE_ANY, NULL)
                                                : NULL;
  /* The raw text too: tests check that numbers and escapes were passed through untouched. */
  json_t *t = json_stringn(r->body, strlen(r->body));
  json_object_set_new(o, "body", body ? body : json_null());
  json_object_set_new(o, "body_text", t ? t : json_string("(not utf-8)"));
  return o;
}

/* ------------------------------------------------------------------ connections */

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_step(struct conn *c);

static void req_clear(struct mock_req *rq) {
  free(rq->path);
  for (int i = 0; i < rq->n_headers; i++) {
    free(rq->headers[i].name);
    free(rq->headers[i].value);
  }
  free(rq->headers);
  free(rq->body);
  memset(rq, 0, sizeof *rq);
}

/* Marks the reply in flight as over; `state` is the record's final state. */
static void reply_over(struct conn *c, const char *state) {
  struct server *s = c->srv;
  if (c->phase != PH_REPLY && c->phase != PH_HUNG) return;
  struct record *r = record_find(s, c->rec_id);
  if (r) {
    r->state = state;
    r->finished_ms = now_ms();
  }
  if (c->counted_api) {
    if (!strcmp(state, "done")) s->completed++;
    else if (!strcmp(state, "aborted")) s->aborted++;
  }
  s->active--;
  c->phase = PH_READ_HEAD;
  c->rec_id = 0;
  c->counted_api = false;
}

/* Frees the connection; a reply still in flight counts as aborted by the peer. With `reset`,
 * the socket is closed with a RST instead of a FIN. */
static void conn_free(struct conn *c, bool reset) {
  struct server *s = c->srv;
  reply_over(c, "aborted");
  if (reset) {
    /* SO_LINGER 0 turns close() into a RST. */
    struct linger lg = {1, 0};
    setsockopt(bufferevent_getfd(c->bev), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    s->resets++;
  }
  if (c->prev) c->prev->next = c->next;
  else s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  bufferevent_free(c->bev);
  event_free(c->timer);
  event_free(c->kick);
  req_clear(&c->rq);
  mock_opts_free(&c->opts);
  mock_plan_free(&c->plan);
  s->open_conns--;
  free(c);
}

/* Schedules ACTION for when the output has drained (write callback), or at once from the loop
 * (kick) when it already has. Never frees the connection itself: callers up the stack may
 * still use it. */
static void conn_after(struct conn *c, enum after_drain a) {
  c->after = a;
  if (!evbuffer_get_length(bufferevent_get_output(c->bev))) event_active(c->kick, EV_TIMEOUT, 1);
}

/* Ends the reply: back to reading the next request, or close. */
static void conn_finish(struct conn *c) {
  reply_over(c, "done");
  req_clear(&c->rq);
  mock_opts_free(&c->opts);
  mock_plan_free(&c->plan);
  if (!c->keep_alive) {
    conn_free(c, false);
    return;
  }
  /* A pipelined request may already be waiting. */
  if (evbuffer_get_length(bufferevent_get_input(c->bev))) conn_read_cb(c->bev, c);
}

/* Runs the pending after-drain action; may free the connection. Call only from a callback
 * that returns right after. */
static void conn_run_after(struct conn *c) {
  enum after_drain a = c->after;
  c->after = AD_NONE;
  switch (a) {
    case AD_NONE: break;
    case AD_NEXT: conn_step(c); break;
    case AD_FINISH: conn_finish(c); break;
    case AD_RESET: reply_over(c, "reset"); conn_free(c, true); break;
    case AD_CLOSE: reply_over(c, "closed"); conn_free(c, false); break;
    case AD_HANG: {
      struct record *r = record_find(c->srv, c->rec_id);
      if (r) r->state = "hung";
      c->phase = PH_HUNG;
      break;
    }
  }
}

static void conn_write_cb(struct bufferevent *bev, void *arg) {
  (void)bev;
  conn_run_after(arg);
}

static void conn_kick_cb(evutil_socket_t fd, short what, void *arg) {
  struct conn *c = arg;
  (void)fd;
  (void)what;
  if (!evbuffer_get_length(bufferevent_get_output(c->bev))) conn_run_after(c);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg) {
  struct conn *c = arg;
  (void)fd;
  (void)what;
  c->timer_done = true;
  conn_step(c);
}

static void start_reply(struct conn *c) {
  c->phase = PH_REPLY;
  if (++c->srv->active > c->srv->max_active) c->srv->max_active = c->srv->active;
  c->next_frame = 0;
  c->frame_off = 0;
  c->headers_sent = false;
  c->stalled = false;
  c->timer_done = false;
  c->bytes_sent = 0;
  c->after = AD_NONE;
}

/* Sends a small reply outside the plan machinery (malformed HTTP from the client), then closes. */
static void conn_simple_reply(struct conn *c, int status, const char *msg) {
  struct evbuffer *out = bufferevent_get_output(c->bev);
  evbuffer_add_printf(out,
                      "HTTP/1.1 %d Error\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n%s",
                      status, strlen(msg), msg);
  c->srv->bad_requests++;
  start_reply(c);
  conn_after(c, AD_CLOSE);
}

/* Parses the header block (len bytes, ending in CRLFCRLF) into c->rq. Returns 0 or an HTTP
 * status to fail with. */
static int parse_head(struct conn *c, char *head, size_t len) {
  head[len - 4] = 0;  /* drop the blank line */
  char *line = head, *next;
  char *eol = strstr(line, "\r\n");
  next = eol ? eol + 2 : line + strlen(line);
  if (eol) *eol = 0;
  /* Request line: METHOD SP target SP HTTP/1.x */
  char *sp1 = strchr(line, ' ');
  char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
  if (!sp1 || !sp2 || sp1 == line || (size_t)(sp1 - line) >= sizeof c->rq.method) return 400;
  if (strncmp(sp2 + 1, "HTTP/1.", 7)) return 505;
  memcpy(c->rq.method, line, (size_t)(sp1 - line));
  c->rq.method[sp1 - line] = 0;
  char *target = sp1 + 1;
  *sp2 = 0;
  bool http10 = !strcmp(sp2 + 1, "HTTP/1.0");
  size_t tl = strlen(target);
  c->rq.path = xstrndup(target, tl);
  char *q = strchr(c->rq.path, '?');
  if (q) {
    *q = 0;
    c->rq.query = q + 1;
  } else {
    c->rq.query = c->rq.path + tl;  /* the NUL: "" */
  }
  c->rq.headers = xmalloc(sizeof *c->rq.headers * MOCK_MAX_HEADERS);
  c->keep_alive = !http10;
  bool chunked = false;
  long long clen = -1;
  for (line = next; *line; line = next) {
    eol = strstr(line, "\r\n");
    next = eol ? eol + 2 : line + strlen(line);
    if (eol) *eol = 0;
    char *colon = strchr(line, ':');
    if (!colon || colon == line) return 400;
    if (c->rq.n_headers == MOCK_MAX_HEADERS) return 431;
    for (char *p = line; p < colon; p++) *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t') v++;
    size_t vl = strlen(v);
    while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
    struct mock_header *h = &c->rq.headers[c->rq.n_headers++];
    h->name = xstrndup(line, (size_t)(colon - line));
    h->value = xstrndup(v, vl);
    if (!strcmp(h->name, "content-length")) {
      char *end;
      errno = 0;
      clen = strtoll(h->value, &end, 10);
      if (errno || *end || end == h->value || clen < 0) return 400;
    } else if (!strcmp(h->name, "transfer-encoding")) {
      if (strcasecmp(h->value, "chunked")) return 501;
      chunked = true;
    } else if (!strcmp(h->name, "connection")) {
      if (!strcasecmp(h->value, "close")) c->keep_alive = false;
      if (!strcasecmp(h->value, "keep-alive")) c->keep_alive = true;
    }
  }
  if (chunked && clen >= 0) return 400;
  if (clen > (long long)MOCK_MAX_BODY_BYTES) return 413;
  const char *expect = mock_req_header(&c->rq, "expect");
  if (expect && !strcasecmp(expect, "100-continue"))
    evbuffer_add_printf(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n");
  if (chunked) {
    c->phase = PH_READ_CHUNKS;
    c->chunk_left = -1;
    c->chunk_trailer = false;
    c->rq.body = xmalloc(1);
    c->rq.body_len = 0;
  } else {
    c->phase = PH_READ_BODY;
    c->need = clen > 0 ? (size_t)clen : 0;
    c->rq.body = xmalloc(c->need + 1);
    c->rq.body_len = 0;
  }
  return 0;
}

/* Reads a chunked body. Returns 1 when complete, 0 when more is needed, or an HTTP status. */
static int read_chunks(struct conn *c, struct evbuffer *in) {
  for (;;) {
    if (c->chunk_left < 0 || c->chunk_trailer) {
      size_t n;
      char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF_STRICT);
      if (!line) return evbuffer_get_length(in) > 4096 ? 400 : 0;
      if (c->chunk_trailer) {
        free(line);
        if (n == 0) return 1;
        continue;
      }
      char *end;
      errno = 0;
      long long sz = strtoll(line, &end, 16);
      bool bad = errno || end == line || sz < 0 || (*end && *end != ';');
      free(line);
      if (bad) return 400;
      if ((size_t)sz > MOCK_MAX_BODY_BYTES - c->rq.body_len) return 413;
      if (sz == 0) {
        c->chunk_trailer = true;
        continue;
      }
      char *b = realloc(c->rq.body, c->rq.body_len + (size_t)sz + 1);
      if (!b) abort();
      c->rq.body = b;
      c->chunk_left = (long)sz;
    }
    if (c->chunk_left > 0) {
      size_t avail = evbuffer_get_length(in);
      if (!avail) return 0;
      size_t take = avail < (size_t)c->chunk_left ? avail : (size_t)c->chunk_left;
      evbuffer_remove(in, c->rq.body + c->rq.body_len, take);
      c->rq.body_len += take;
      c->chunk_left -= (long)take;
      if (c->chunk_left > 0) return 0;
    }
    /* The CRLF after the chunk data. */
    if (evbuffer_get_length(in) < 2) return 0;
    char crlf[2];
    evbuffer_remove(in, crlf, 2);
    if (crlf[0] != '\r' || crlf[1] != '\n') return 400;
    c->chunk_left = -1;
  }
}

static bool path_ends_with(const char *path, const char *suffix) {
  size_t pl = strlen(path), sl = strlen(suffix);
  return pl >= sl && !strcmp(path + pl - sl, suffix);
}

/* How many requests with TAG came before this one (counts this one). */
static long tag_seen(struct server *s, const char *tag) {
  for (size_t i = 0; i < s->n_tags; i++)
    if (!strcmp(s->tags[i].tag, tag)) return s->tags[i].seen++;
  struct tag_counter *t;
  if (s->n_tags < TAG_COUNTERS) {
    t = &s->tags[s->n_tags++];
  } else {
    t = &s->tags[s->next_evict++ % TAG_COUNTERS];
    free(t->tag);
  }
  t->tag = xstrdup(tag);
  t->seen = 1;
  return 0;
}

static void tags_clear(struct server *s) {
  for (size_t i = 0; i < s->n_tags; i++) free(s->tags[i].tag);
  s->n_tags = 0;
  s->next_evict = 0;
}

/* API requests: parse the body, merge the behaviour options, record, hand to the surface. */
/* The API surfaces the mock speaks: requests whose path ends in `suffix` (any prefix, so a
 * provider base URL with a path works) go to `handle`; `error` builds that API's error shape for
 * refusals made here (bad mock options, wrong method). An Anthropic surface is one more row. */
struct surface {
  const char *suffix;
  void (*handle)(const struct mock_req *, const json_t *, const struct mock_opts *,
                 struct mock_plan *);
  void (*error)(struct mock_plan *, int status, const char *type, const char *code,
                const char *message);
};

static const struct surface surfaces[] = {
    {"/chat/completions", mock_openai_chat, mock_openai_error},
    {"/v1/messages", mock_anthropic_messages, mock_anthropic_error},
    {"/v1/messages/count_tokens", mock_anthropic_count_tokens, mock_anthropic_error},
};

/* raw_header / raw_body: bytes a real API would never send (hostile-upstream tests). */
static void apply_raw(const struct mock_opts *o, struct mock_plan *p) {
  if (o->raw_header) {
    size_t n;
    char *b = mock_percent_decode(o->raw_header, &n);
    char *h = realloc(p->headers, p->headers_len + n + 1);
    if (!h) abort();
    memcpy(h + p->headers_len, b, n);
    p->headers_len += n;
    h[p->headers_len] = 0;
    p->headers = h;
    free(b);
  }
  if (o->raw_body) {
    for (size_t i = 0; i < p->n_frames; i++) free(p->frames[i].data);
    p->n_frames = 0;
    p->chunked = false;
    p->content_type = o->raw_content_type ? o->raw_content_type : "application/json";
    size_t n;
    char *b = mock_percent_decode(o->raw_body, &n);
    mock_plan_frame(p, b, n);
  }
}

static void dispatch_api(struct conn *c, const struct surface *sf) {
  struct server *s = c->srv;
  struct mock_req *rq = &c->rq;
  struct mock_plan *p = &c->plan;
  c->counted_api = true;
  s->requests++;
  json_t *body = json_loadb(rq->body, rq->body_len, 0, NULL);
  /* Behaviour: the model-name suffix first, then the body's "mock" object. */
  char err[256] = "";
  int bad = 0;
  const char *model = json_string_value(json_object_get(body, "model"));
  const char *semi = model ? strchr(model, ';') : NULL;
  if (semi) bad = mock_opts_apply_kv(&c->opts, semi + 1, err, sizeof err);
  json_t *mo = json_object_get(body, "mock");
  if (!bad && mo) bad = mock_opts_apply_json(&c->opts, mo, err, sizeof err);
  if (!bad && c->opts.fail_times >= 0) {
    /* A flaky upstream: the first fail_times requests of the tag (or model) fail, then the
     * faults stop. */
    const char *key = c->opts.tag ? c->opts.tag : model ? model : "";
    if (tag_seen(s, key) >= c->opts.fail_times) {
      c->opts.status = -1;
      free(c->opts.retry_after);
      free(c->opts.retry_after_ms);
      c->opts.retry_after = c->opts.retry_after_ms = NULL;
      c->opts.delay_ms = -1;
      c->opts.reset_after_bytes = -1;
      c->opts.reset_after_chunks = c->opts.close_after_chunks = c->opts.hang_after_chunks = -1;
      c->opts.error_after_chunks = -1;
      /* stalls too, so "a stall before the first token, then a healthy stream" can be staged */
      c->opts.first_chunk_delay_ms = c->opts.stall_after_chunks = c->opts.stall_ms = -1;
    }
  }
  c->rec_id = s->record ? record_new(s, rq, c->opts.tag) : 0;
  if (bad) {
    mock_opts_free(&c->opts);  /* no faults on a request we refuse */
    sf->error(p, 400, "invalid_request_error", "mock_option", err);
  } else {
    sf->handle(rq, body, &c->opts, p);
    apply_raw(&c->opts, p);
  }
  json_decref(body);
  if (c->opts.close) c->keep_alive = false;
}

/* Builds the plan for a complete request and starts executing it. */
static void dispatch(struct conn *c) {
  struct server *s = c->srv;
  struct mock_req *rq = &c->rq;
  struct mock_plan *p = &c->plan;
  rq->body[rq->body_len] = 0;
  rq->seq = ++s->seq;
  mock_opts_init(&c->opts);
  mock_plan_init(p);
  bool get = !strcmp(rq->method, "GET"), post = !strcmp(rq->method, "POST");

  const struct surface *sf = NULL;
  for (size_t i = 0; i < sizeof surfaces / sizeof surfaces[0] && !sf; i++)
    if (path_ends_with(rq->path, surfaces[i].suffix)) sf = &surfaces[i];
  if (sf) {
    if (post) dispatch_api(c, sf);
    else sf->error(p, 405, NULL, NULL, "mock: use POST");
  } else if (!strcmp(rq->path, "/_mock/last") && get) {
    const char *tag = !strncmp(rq->query, "tag=", 4) ? rq->query + 4 : NULL;
    struct record *found = NULL;
    for (uint64_t id = s->rec_n; id > 0 && id + RECORD_RING > s->rec_n && !found; id--) {
      struct record *r = record_find(s, id);
      if (r && (!tag || (r->tag && !strcmp(r->tag, tag)))) found = r;
    }
    if (found) mock_plan_json(p, 200, record_json(found));
    else mock_plan_json(p, 404, json_pack("{s:s}", "error", "no such request recorded"));
  } else if (!strcmp(rq->path, "/_mock/stats") && get) {
    mock_plan_json(p, 200,
                   json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "requests",
                             (json_int_t)s->requests, "completed", (json_int_t)s->completed,
                             "aborted", (json_int_t)s->aborted, "resets", (json_int_t)s->resets,
                             "active", (json_int_t)s->active, "connections",
                             (json_int_t)s->open_conns, "accepted", (json_int_t)s->accepted,
                             "bad_requests", (json_int_t)s->bad_requests, "max_active",
                             (json_int_t)s->max_active));
  } else if (!strcmp(rq->path, "/_mock/reset") && post) {
    for (int i = 0; i < RECORD_RING; i++) record_clear(&s->ring[i]);
    tags_clear(s);
    s->requests = s->completed = s->aborted = s->resets = s->bad_requests = s->max_active = 0;
    s->accepted = s->open_conns;
    mock_plan_json(p, 200, json_pack("{s:b}", "ok", 1));
  } else if (!strcmp(rq->path, "/healthz")) {
    p->content_type = "text/plain";
    mock_plan_frame_str(p, "ok\n");
  } else {
    mock_openai_error(p, 404, "invalid_request_error", "unknown_url", "mock: unknown path");
  }

  start_reply(c);
  struct record *r = record_find(s, c->rec_id);
  if (r) r->status = p->status;
  if (s->verbose)
    fprintf(stderr, "mock: #%llu %s %s -> %d (%zu frames)\n", (unsigned long long)rq->seq,
            rq->method, rq->path, p->status, p->n_frames);
  conn_step(c);
}

/* Queues bytes of the reply, honouring reset_after_bytes. Returns false when the byte budget
 * ran out (the caller then resets once the output drains). */
static bool conn_out(struct conn *c, const void *data, size_t len) {
  long lim = c->opts.reset_after_bytes;
  bool cut = false;
  if (lim >= 0 && c->bytes_sent + len >= (size_t)lim) {
    len = (size_t)lim - c->bytes_sent;
    cut = true;
  }
  if (len) bufferevent_write(c->bev, data, len);
  c->bytes_sent += len;
  struct record *r = record_find(c->srv, c->rec_id);
  if (r) r->bytes_sent = c->bytes_sent;
  return !cut;
}

static void arm(struct conn *c, int ms) {
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  evtimer_add(c->timer, &tv);
}

/* A cut of a stream (reset, close, hang) due before frame i, if any. */
static enum after_drain cut_at(const struct mock_opts *o, size_t i) {
  if (o->reset_after_chunks >= 0 && i == (size_t)o->reset_after_chunks) return AD_RESET;
  if (o->close_after_chunks >= 0 && i == (size_t)o->close_after_chunks) return AD_CLOSE;
  if (o->hang_after_chunks >= 0 && i == (size_t)o->hang_after_chunks) return AD_HANG;
  return AD_NONE;
}

/* Advances the plan as far as it can go now; called on start, on a timer, and on a drain.
 * Never frees the connection (see conn_after). */
static void conn_step(struct conn *c) {
  struct mock_plan *p = &c->plan;
  struct mock_opts *o = &c->opts;
  struct evbuffer *out = bufferevent_get_output(c->bev);
  if (c->after != AD_NONE || c->phase != PH_REPLY) return;

  if (!c->headers_sent) {
    if (o->delay_ms > 0 && !c->timer_done) {
      arm(c, o->delay_ms);
      return;
    }
    c->timer_done = false;
    c->headers_sent = true;
    if (o->reset_after_bytes == 0) {
      conn_after(c, AD_RESET);
      return;
    }
    char head[512];
    size_t body_len = 0;
    for (size_t i = 0; i < p->n_frames; i++) body_len += p->frames[i].len;
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s%s",
                     p->status, p->status < 400 ? "OK" : "Error", p->content_type,
                     p->chunked ? "Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n"
                                : "",
                     c->keep_alive ? "" : "Connection: close\r\n");
    if (!p->chunked)
      n += snprintf(head + n, sizeof head - (size_t)n, "Content-Length: %zu\r\n", body_len);
    bool ok = conn_out(c, head, (size_t)n) &&
              (!p->headers_len || conn_out(c, p->headers, p->headers_len)) &&
              conn_out(c, "\r\n", 2);
    if (!ok) {
      conn_after(c, AD_RESET);
      return;
    }
  }

  if (p->chunked) {
    for (;;) {
      size_t i = c->next_frame;
      /* Cuts happen once frame i-1 has left the socket; i == n_frames cuts before the
       * terminating chunk. */
      enum after_drain cut = cut_at(o, i);
      if (cut != AD_NONE) {
        conn_after(c, cut);
        return;
      }
      if (i == p->n_frames) break;
      int delay = 0;
      if (i == 0 && o->first_chunk_delay_ms > 0) delay = o->first_chunk_delay_ms;
      if (i > 0 && o->chunk_delay_ms > 0) delay = o->chunk_delay_ms;
      bool stall_here = !c->stalled && o->stall_after_chunks >= 0 &&
                        i == (size_t)o->stall_after_chunks && o->stall_ms > 0;
      if (stall_here) delay += o->stall_ms;
      if (delay > 0 && !c->timer_done) {
        arm(c, delay);
        return;
      }
      if (stall_here) c->stalled = true;
      c->timer_done = false;
      char sz[24];
      int n = snprintf(sz, sizeof sz, "%zx\r\n", p->frames[i].len);
      bool ok = conn_out(c, sz, (size_t)n) &&
                conn_out(c, p->frames[i].data, p->frames[i].len) && conn_out(c, "\r\n", 2);
      c->next_frame++;
      struct record *r = record_find(c->srv, c->rec_id);
      if (r) r->frames_sent = c->next_frame;
      if (!ok) {
        conn_after(c, AD_RESET);
        return;
      }
      if (evbuffer_get_length(out) > SLICE) {
        conn_after(c, AD_NEXT);
        return;
      }
    }
    if (!conn_out(c, "0\r\n\r\n", 5)) {
      conn_after(c, AD_RESET);
      return;
    }
  } else {
    /* Plain body: queued in slices so a huge body streams with back-pressure. */
    while (c->next_frame < p->n_frames) {
      struct mock_frame *f = &p->frames[c->next_frame];
      size_t len = f->len - c->frame_off < SLICE ? f->len - c->frame_off : SLICE;
      bool ok = conn_out(c, f->data + c->frame_off, len);
      c->frame_off += len;
      if (c->frame_off == f->len) {
        c->next_frame++;
        c->frame_off = 0;
      }
      if (!ok) {
        conn_after(c, AD_RESET);
        return;
      }
      if (evbuffer_get_length(out) >= SLICE) {
        conn_after(c, AD_NEXT);
        return;
      }
    }
  }
  conn_after(c, AD_FINISH);
}

static void conn_read_cb(struct bufferevent *bev, void *arg) {
  struct conn *c = arg;
  struct evbuffer *in = bufferevent_get_input(bev);
  for (;;) {
    if (c->phase == PH_REPLY || c->phase == PH_HUNG) {
      /* The client is sending ahead (pipelining) or garbage: keep it, but not forever. */
      if (evbuffer_get_length(in) > PIPELINE_MAX) conn_free(c, false);
      return;
    }
    if (c->phase == PH_READ_HEAD) {
      if (!evbuffer_get_length(in)) return;
      struct evbuffer_ptr pos = evbuffer_search(in, "\r\n\r\n", 4, NULL);
      if (pos.pos < 0 || (size_t)pos.pos + 4 > MOCK_MAX_HEADER_BYTES) {
        if (evbuffer_get_length(in) > MOCK_MAX_HEADER_BYTES)
          conn_simple_reply(c, 431, "header block too large\n");
        return;
      }
      size_t hl = (size_t)pos.pos + 4;
      char *head = xmalloc(hl + 1);
      evbuffer_remove(in, head, hl);
      head[hl] = 0;
      int st = parse_head(c, head, hl);
      free(head);
      if (st) {
        req_clear(&c->rq);
        conn_simple_reply(c, st, "bad request\n");
        return;
      }
    }
    if (c->phase == PH_READ_BODY) {
      size_t avail = evbuffer_get_length(in);
      size_t take = avail < c->need ? avail : c->need;
      if (take) {
        evbuffer_remove(in, c->rq.body + c->rq.body_len, take);
        c->rq.body_len += take;
        c->need -= take;
      }
      if (c->need) return;
      dispatch(c);
      continue;
    }
    if (c->phase == PH_READ_CHUNKS) {
      int st = read_chunks(c, in);
      if (st == 0) return;
      if (st != 1) {
        req_clear(&c->rq);
        conn_simple_reply(c, st, "bad chunked body\n");
        return;
      }
      dispatch(c);
      continue;
    }
  }
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg) {
  (void)bev;
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) conn_free(arg, false);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg) {
  struct server *s = arg;
  (void)l;
  (void)sa;
  (void)salen;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct conn *c = calloc(1, sizeof *c);
  if (!c) {
    evutil_closesocket(fd);
    return;
  }
  c->srv = s;
  c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
  c->timer = evtimer_new(s->base, conn_timer_cb, c);
  c->kick = event_new(s->base, -1, 0, conn_kick_cb, c);
  if (!c->bev || !c->timer || !c->kick) {
    if (c->bev) bufferevent_free(c->bev);
    else evutil_closesocket(fd);
    if (c->timer) event_free(c->timer);
    if (c->kick) event_free(c->kick);
    free(c);
    return;
  }
  c->phase = PH_READ_HEAD;
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
  bufferevent_enable(c->bev, EV_READ | EV_WRITE);
  s->accepted++;
  s->open_conns++;
}

static void signal_cb(evutil_socket_t sig, short what, void *arg) {
  (void)sig;
  (void)what;
  event_base_loopbreak(arg);
}

static void usage(FILE *f) {
  fputs("usage: mock_upstream [--host ADDR] [--port N] [--verbose] [--no-record]\n"
        "  Prints the port it listens on (first line of stdout), serves until SIGTERM.\n",
        f);
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = 0;
  struct server *s = calloc(1, sizeof *s);
  if (!s) return 1;
  s->record = true;
  static const struct option longopts[] = {
      {"host", required_argument, NULL, 'H'}, {"port", required_argument, NULL, 'p'},
      {"verbose", no_argument, NULL, 'v'},    {"no-record", no_argument, NULL, 'n'},
      {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "H:p:vnh", longopts, NULL)) != -1) {
    switch (ch) {
      case 'H': host = optarg; break;
      case 'p': port = atoi(optarg); break;
      case 'v': s->verbose = true; break;
      case 'n': s->record = false; break;
      case 'h': usage(stdout); free(s); return 0;
      default: usage(stderr); free(s); return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
    fprintf(stderr, "mock_upstream: bad --host '%s' (IPv4 address)\n", host);
    free(s);
    return 2;
  }
  s->base = event_base_new();
  struct evconnlistener *l = evconnlistener_new_bind(
      s->base, accept_cb, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 1024,
      (struct sockaddr *)&sin, sizeof sin);
  if (!l) {
    fprintf(stderr, "mock_upstream: cannot listen on %s:%d: %s\n", host, port, strerror(errno));
    event_base_free(s->base);
    free(s);
    return 1;
  }
  struct sockaddr_in bound;
  socklen_t bl = sizeof bound;
  getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&bound, &bl);
  printf("%d\n", ntohs(bound.sin_port));
  fflush(stdout);
  struct event *sigint = evsignal_new(s->base, SIGINT, signal_cb, s->base);
  struct event *sigterm = evsignal_new(s->base, SIGTERM, signal_cb, s->base);
  evsignal_add(sigint, NULL);
  evsignal_add(sigterm, NULL);
  event_base_dispatch(s->base);
  while (s->conns) conn_free(s->conns, false);
  evconnlistener_free(l);
  event_free(sigint);
  event_free(sigterm);
  for (int i = 0; i < RECORD_RING; i++) record_clear(&s->ring[i]);
  tags_clear(s);
  event_base_free(s->base);
  free(s);
  return 0;
}
