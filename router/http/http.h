/*
 * http.h: the gateway's HTTP/1.1 front end: the request parser (parse.c: pure, fuzzed) and the
 * server (server.c: listener, connections, framing, timeouts, replies, drain). Private to router/.
 *
 * This room knows no API surface, no policy and no database: it reads requests and writes the
 * replies the application (struct rt_http_app) gives it. Every request it has read ends in exactly
 * one of two application callbacks, on_finish (the reply was written) or on_abort (the client went
 * away, stopped reading, or the gateway shut down first), so the application can log each one.
 * Uses libevent only.
 */
#ifndef TIERGATE_ROUTER_HTTP_H
#define TIERGATE_ROUTER_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;


#define RT_MAX_HEAD_BYTES (16 * 1024)  /* request line + headers; more is 431 */
#define RT_MAX_HEADERS 100             /* more is 431 */

struct rt_kv {
  const char *name;    /* NUL-terminated, inside the head buffer */
  const char *value;   /* NUL-terminated, trimmed */
};

struct rt_http_head {
  char method[16];
  const char *target;      /* NUL-terminated request target ("/v1/models?x=1"); for an
                            * absolute-form target ("http://host/v1/models") its path part */
  const char *authority;   /* absolute-form only: "host:port" (authority_len bytes, not
                            * NUL-terminated); NULL for origin-form */
  size_t authority_len;
  size_t path_len;         /* length of the path part of target (before '?') */
  int minor;               /* HTTP/1.<minor>, 0 or 1 */
  struct rt_kv hdr[RT_MAX_HEADERS];
  size_t n_hdr;
  int64_t content_length;  /* -1 when absent */
  bool chunked;            /* Transfer-Encoding: chunked */
  bool keep_alive;         /* after this request (version default + Connection header) */
  bool expect_continue;    /* Expect: 100-continue */
};

/* Parses a complete request head (request line + headers + empty line) of LEN bytes, in place:
 * names and values are NUL-terminated inside BUF, which must outlive H. Returns 0, or:
 *   -EINVAL   malformed (400), *why says what
 *   -E2BIG    too many headers (431)
 *   -EPROTONOSUPPORT  not HTTP/1.0 or 1.1 (505)
 *   -ENOSYS   a Transfer-Encoding other than chunked (501) */
int rt_http_parse_head(char *buf, size_t len, struct rt_http_head *h, const char **why);
/* What the server accepts (RFC 9112 3.2): rt_http_parse_head's syntax, plus absolute-form
 * targets (http:// or https://, as proxies send them: the path becomes TARGET, the host
 * AUTHORITY), and the Host rules: an HTTP/1.1 request without Host, any request with more than
 * one, or a Host that is not host[:port] is -EINVAL (400). */
int rt_http_parse_request(char *buf, size_t len, struct rt_http_head *h, const char **why);
/* Is NAME: VALUE a well-formed header field to send (RFC 9110 5.1, 5.5)? NAME one or more token
 * characters, VALUE visible ASCII, spaces, tabs and obs-text (bytes >= 0x80) only: no CR, LF,
 * NUL, other control byte or DEL, which would let whoever chose the value add header lines (or
 * break the client's parser). Every header the server writes passes through it. */
bool rt_http_field_ok(const char *name, const char *value);
/* Case-insensitive header lookup; NULL when absent. */
const char *rt_http_header(const struct rt_http_head *h, const char *name);

/* Incremental decoder for a chunked request body. */
struct rt_chunked {
  int state;
  uint64_t remaining;      /* bytes left in the current chunk */
  size_t line;             /* bytes of the current size/trailer line (capped) */
  int digits;
};
/* Sink for decoded bytes: return 0, or non-zero to stop (returned by rt_chunked_feed). */
typedef int (*rt_chunked_sink)(void *ud, const char *p, size_t n);
/* Feeds N bytes; *used gets how many were consumed. Returns 1 when the body is complete (the
 * rest of the input belongs to the next request), 0 when more input is needed, -EINVAL on a
 * malformed body, or the sink's non-zero value. */
int rt_chunked_feed(struct rt_chunked *c, const char *in, size_t n, size_t *used,
                    rt_chunked_sink sink, void *ud);

/* Percent-decodes SRC[0..n) into DST (cap bytes, NUL-terminated). Returns the length, or -1 on
 * a bad escape, an encoded NUL or overflow. */
int rt_url_decode(const char *src, size_t n, char *dst, size_t cap);

/* ------------------------------------------------------------------ server.c */

struct rt_http_server;
struct rt_http_conn;

/* One request on a connection, from its first byte to the end of its reply. Owned by the server;
 * the application reads it and answers through rt_http_resp_*. It stays valid until the server
 * calls on_finish or on_abort for it (then it is freed right after the callback returns). */
struct rt_http_req {
  struct rt_http_server *srv;
  struct rt_http_conn *conn;       /* NULL once the client is gone */
  struct rt_http_head head;        /* head.target is NULL when the head could not be parsed */
  char *body;                      /* NUL-terminated ("" when there is none) */
  size_t body_len;
  int64_t t0;                      /* monotonic microseconds: the head was read (or failed) */
  int64_t wall0_us;                /* the wall clock then */
  bool keep_alive;                 /* the client's wish after this request */
  void *ud;                        /* the application's state for this request */
  /* the reply */
  int status;                      /* status line sent */
  bool resp_started, resp_chunked, finished;
  /* private to server.c */
  char *head_buf;
  size_t body_cap;
  bool no_body;                    /* a HEAD request: the reply's head only, whatever is passed */
};

/* What the server calls. Every callback runs on the loop thread. */
struct rt_http_app {
  void *ud;                        /* passed to on_drain; rt_http_app_data() returns it */
  /* A complete request: answer it now or later with rt_http_resp_* (ending in rt_http_resp_end). */
  void (*on_request)(struct rt_http_req *q);
  /* A request that could not be read: malformed (400, 431, 501, 505), too large (413), too slow
   * (408). Answer it at once with the error in the caller's API shape; the connection is closed
   * after the reply. CLS is the error class for the log, CODE a machine-readable code. */
  void (*on_error)(struct rt_http_req *q, int status, const char *cls, const char *code,
                   const char *msg);
  /* A request ends without its whole reply: the client closed the connection (499) or stopped
   * reading (408), or the gateway shut down first (503). Release the request's state. */
  void (*on_abort)(struct rt_http_req *q, int status, const char *cls, const char *msg);
  /* The reply is complete (rt_http_resp_end): log it, release the request's state. */
  void (*on_finish)(struct rt_http_req *q);
  /* The client took the bytes queued for it (streaming back-pressure: resume the producer). */
  void (*on_writable)(struct rt_http_req *q);
  /* Shutdown deadline for a request whose reply has started: write a final frame now (it is sent
   * best effort, then the request is aborted). */
  void (*on_cut)(struct rt_http_req *q);
  /* Shutdown began (SIGINT/SIGTERM): in-flight requests may finish within the drain deadline. */
  void (*on_drain)(void *ud);
};

struct rt_http_limits {
  size_t max_body_bytes;           /* larger bodies get 413 */
  int client_timeout_ms;           /* whole request within it; idle keep-alive; stalled writes */
  int max_connections;             /* at the cap, the connection idle the longest is closed to
                                    * admit a new one; with none idle, accepting waits */
  int idle_timeout_ms;             /* a connection with no request in progress is closed after
                                    * this (<= 0, or over client_timeout_ms: client_timeout_ms) */
  int drain_ms;                    /* shutdown deadline for in-flight requests */
};

/* Listens on HOST:PORT ("" host: any). Returns NULL with a message in ERR. APP and LIMITS are
 * copied. */
struct rt_http_server *rt_http_server_new(struct event_base *base, const char *host,
                                          const char *port, const struct rt_http_limits *limits,
                                          const struct rt_http_app *app, char *err, size_t errlen);
/* Aborts what is still running (on_abort 503 shutdown), closes everything. Accepts NULL. */
void rt_http_server_free(struct rt_http_server *s);
/* Begins shutdown: stop accepting, close idle connections, let in-flight requests finish until the
 * drain deadline (then cut them); the loop is asked to exit when no connection is left. A second
 * call cuts at once. */
void rt_http_server_drain(struct rt_http_server *s);
bool rt_http_server_draining(const struct rt_http_server *s);
/* The application's ud (struct rt_http_app.ud) of the server Q arrived on. */
void *rt_http_app_data(const struct rt_http_req *q);
/* "127.0.0.1:8080" / "[::1]:8080" and the port actually bound. */
const char *rt_http_server_bound(const struct rt_http_server *s);
int rt_http_server_port(const struct rt_http_server *s);
/* Open connections and requests being read or answered. */
size_t rt_http_server_connections(const struct rt_http_server *s);
size_t rt_http_server_requests(const struct rt_http_server *s);

/* Replies. All are no-ops once the client is gone. Starts the reply: status line, the server's
 * own headers (date, framing, connection) and the application's HDR. CONTENT_LENGTH < 0 means a
 * streamed body (chunked for HTTP/1.1, close-delimited for 1.0). A reply to HEAD carries the
 * same head and never a body byte, whatever the application passes to rt_http_resp_body (RFC
 * 9110 9.3.2: a body there would be read as the start of the next reply on a kept-alive
 * connection). Header fields that fail rt_http_field_ok are dropped (and said on stderr). */
void rt_http_resp_start(struct rt_http_req *q, int status, const char *content_type,
                        int64_t content_length, const struct rt_kv *hdr, size_t n_hdr);
void rt_http_resp_body(struct rt_http_req *q, const void *p, size_t n);
/* The reply is complete: on_finish runs, then Q is freed (it must not be used after). */
void rt_http_resp_end(struct rt_http_req *q);
/* Bytes queued to the client and not yet written (0 when gone). */
size_t rt_http_resp_pending(const struct rt_http_req *q);

#endif
