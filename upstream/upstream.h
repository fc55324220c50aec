/*
 * upstream.h: HTTP calls to remote LLM APIs on the gateway's event loop, the SSE parser, and the
 * timing pieces of resilience (backoff with jitter, retry-after parsing, circuit breakers).
 * Public header of upstream/. This folder knows no model, no provider format and no database:
 * it moves bytes and reports what happened, the router decides what they mean.
 *
 * DESIGN. One up_multi per event loop wraps a libcurl multi handle driven by libevent
 * (CURLMOPT_SOCKETFUNCTION + CURLMOPT_TIMERFUNCTION, curl_multi_socket_action; no extra thread, no
 * blocking call). A transfer is one HTTP request; its state lives on CURLOPT_PRIVATE. Connections
 * are pooled by the multi handle (keep-alive reuse across transfers, HTTP/2 multiplexing when a TLS
 * upstream offers it), sockets get TCP_NODELAY. Four deadlines per transfer: connect and total are
 * libcurl's; first byte (response status line) and idle (silence between body pieces, for stalled
 * streams) are our own libevent timer, because libcurl has neither.
 *
 * Callbacks run on the loop thread, never re-entrantly from inside up_start() or up_cancel():
 *   on_headers  once, when the final (non-1xx) response header block is complete;
 *   on_data     for each piece of the body as it arrives (streaming: never buffered here);
 *   on_done     exactly once at the end, unless the transfer was cancelled with up_cancel().
 * Any callback may call up_cancel() on its own transfer (then on_done is not called) and on_done
 * may start new transfers (retries). The transfer is freed right after on_done returns.
 *
 * Usage:
 *   struct up_multi *m = up_multi_new(base, err, sizeof err);
 *   struct up_request rq = { .url = "http://127.0.0.1:9000/v1/chat/completions", .method = "POST",
 *                            .headers = hdrs, .n_headers = 2, .body = b, .body_len = n,
 *                            .connect_timeout_ms = 5000, .first_byte_timeout_ms = 60000,
 *                            .total_timeout_ms = 600000 };
 *   struct up_callbacks cb = { on_headers, on_data, on_done };
 *   struct up_transfer *t = up_start(m, &rq, &cb, ctx);
 *   ...
 *   up_multi_free(m);   // cancels what is still running, without callbacks
 */
#ifndef TIERGATE_UPSTREAM_H
#define TIERGATE_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

/* ------------------------------------------------------------------ transfers */

struct up_multi;
struct up_transfer;

/* How a transfer ended. Timeouts are split by phase so callers can map them (504) and, later,
 * decide whether a retry is safe (nothing reached the client before the first byte). */
enum up_status {
  UP_OK = 0,                 /* a complete response (any HTTP status) */
  UP_ERR_CONNECT,            /* DNS failure, refused, unreachable: nothing was sent */
  UP_ERR_TIMEOUT_CONNECT,    /* connect_timeout_ms elapsed while connecting */
  UP_ERR_TIMEOUT_FIRST_BYTE, /* first_byte_timeout_ms elapsed before the status line */
  UP_ERR_TIMEOUT_IDLE,       /* idle_timeout_ms of silence between two pieces of the body */
  UP_ERR_TIMEOUT_TOTAL,      /* total_timeout_ms elapsed (possibly mid-body) */
  UP_ERR_RECV,               /* connection reset / closed / malformed response */
  UP_ERR_ABORTED,            /* on_data asked to stop (returned UP_DATA_ABORT) */
  UP_ERR_OTHER,              /* anything else libcurl reported */
};

/* Name of a status for logs ("connect", "timeout_first_byte", ...). */
const char *up_status_name(enum up_status s);

struct up_header {
  const char *name;     /* as received (HTTP/2 names are lower case); NUL-terminated */
  const char *value;    /* trimmed; NUL-terminated */
};

struct up_result {
  enum up_status status;
  int http_status;        /* 0 if no response status line arrived */
  char message[256];      /* human-readable cause when status != UP_OK */
  double connect_ms;      /* TCP+TLS connect time, 0 on a reused connection */
  double first_byte_ms;   /* start to status line, -1 if none */
  double total_ms;        /* start to end */
  long http_version;      /* 11, 2 (HTTP/2), 0 unknown */
  bool reused_connection;
};

struct up_request {
  const char *url;
  const char *method;              /* "POST" (default when NULL), "GET" */
  const char *const *headers;      /* "Name: value" lines, copied */
  size_t n_headers;
  const char *body;                /* copied; may be NULL with body_len 0 */
  size_t body_len;
  int connect_timeout_ms;          /* <= 0: libcurl's default */
  int first_byte_timeout_ms;       /* <= 0: none */
  int idle_timeout_ms;             /* <= 0: none; silence allowed between body pieces */
  int total_timeout_ms;            /* <= 0: none */
  const char *ca_file;             /* PEM file of CAs to verify an https upstream with; NULL:
                                    * the system's bundle */
};

/* on_data's return values */
#define UP_DATA_OK     0
#define UP_DATA_PAUSE  1   /* the same bytes are delivered again after up_resume() */
#define UP_DATA_ABORT  (-1)

struct up_callbacks {
  void (*on_headers)(void *ud, int http_status, const struct up_header *h, size_t n);
  int (*on_data)(void *ud, const char *p, size_t n);
  void (*on_done)(void *ud, const struct up_result *r);
};

/* Creates the multi handle on BASE. Returns NULL and a message in err on failure. Call
 * curl_global_init() once before (tiergate's main does). */
struct up_multi *up_multi_new(struct event_base *base, char *err, size_t errlen);
/* Cancels every running transfer (no callbacks), frees everything. Accepts NULL. */
void up_multi_free(struct up_multi *m);
/* Transfers running now. */
size_t up_multi_active(const struct up_multi *m);

/* Starts a transfer. Returns it, or NULL (out of memory / bad request: no callback will run). */
struct up_transfer *up_start(struct up_multi *m, const struct up_request *rq,
                             const struct up_callbacks *cb, void *ud);
/* Stops a transfer: no callback runs for it afterwards; its connection is closed, not reused.
 * Safe from inside its own callbacks. Accepts NULL. */
void up_cancel(struct up_transfer *t);
/* Resumes a transfer whose on_data returned UP_DATA_PAUSE. libcurl may deliver the held bytes
 * from inside this call (on_data runs re-entrantly). While paused the idle timer does not run. */
void up_resume(struct up_transfer *t);

/* ------------------------------------------------------------------ retry timing (backoff.c) */

/* How a backoff delay is spread (see backoff.c for why jitter matters). */
enum up_jitter {
  UP_JITTER_FULL = 0,       /* uniform in [0, min(max, base * 2^(retry-1))]: the default */
  UP_JITTER_DECORRELATED,   /* min(max, uniform in [base, 3 * previous delay]) */
  UP_JITTER_NONE,           /* min(max, base * 2^(retry-1)): deterministic (tests) */
};

/* The wait before retry number RETRY (1 = the first retry), in ms, within [0, max_ms]. PREV_MS is
 * the previous delay (decorrelated jitter only; <= base means "none yet"). U is a uniform random
 * number in [0, 1) supplied by the caller, so the function is pure. base > max is clamped to max.
 *   up_backoff_ms(UP_JITTER_NONE, 250, 8000, 3, 0, 0.0) == 1000 */
int up_backoff_ms(enum up_jitter j, int base_ms, int max_ms, int retry, int prev_ms, double u);

/* The wait an upstream response asks for, in ms: `retry-after-ms` (milliseconds, fractions allowed)
 * wins over `retry-after` (delay-seconds, fractions tolerated, or an HTTP-date compared with
 * NOW_WALL_MS, the wall clock in ms since the epoch). Either argument may be NULL (header absent).
 * Returns the wait (0 for a date in the past; at most 2^31-1), or -1 when neither is usable
 * (absent, negative, not a number nor a date). An unusable retry-after-ms falls back to
 * retry-after, as the OpenAI and Anthropic SDKs do. */
int64_t up_retry_after_ms(const char *retry_after_ms, const char *retry_after, int64_t now_wall_ms);

/* An HTTP-date (RFC 9110 5.6.7: IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", the obsolete RFC 850
 * "Sunday, 06-Nov-94 08:49:37 GMT" and asctime "Sun Nov  6 08:49:37 1994" forms) as seconds since
 * the epoch, or -1 when malformed (bad field, impossible date, trailing text). */
int64_t up_http_date(const char *s);

/* ------------------------------------------------------------------ circuit breaker (breaker.c) */

/*
 * A circuit breaker for one upstream deployment: CLOSED lets calls through and counts outcomes;
 * it OPENs after `failures` consecutive failures or an error rate of at least `error_rate_pct`
 * over the last `window_ms` once that window holds `min_requests` outcomes; after `cooldown_ms`
 * the next caller becomes the single HALF_OPEN probe (everyone else is refused meanwhile); the
 * probe's success closes it, its failure re-opens it for another cooldown. No timers: state moves
 * when asked, so callers skip an unready breaker instead of waiting on it. The clock is passed in
 * (monotonic ms). Not thread-safe.
 *
 *   struct up_breaker b;
 *   up_breaker_init(&b, &(struct up_breaker_config){.failures = 5, .cooldown_ms = 30000});
 *   int t = up_breaker_acquire(&b, now);          // UP_BREAKER_DENY: skip this deployment
 *   ... the call ...
 *   up_breaker_record(&b, now, t, succeeded);     // or up_breaker_release(&b, t) if cancelled
 */
enum up_breaker_state { UP_BREAKER_CLOSED = 0, UP_BREAKER_OPEN = 1, UP_BREAKER_HALF_OPEN = 2 };

struct up_breaker_config {
  int failures;            /* consecutive failures that open it; 0: not by count */
  int error_rate_pct;      /* error rate (1-100) that opens it; 0: not by rate */
  int min_requests;        /* outcomes the window must hold before the rate counts (>= 1) */
  int window_ms;           /* length of the sliding error-rate window */
  int cooldown_ms;         /* open -> half-open after this */
};

#define UP_BREAKER_BUCKETS 10
struct up_breaker {
  struct up_breaker_config cfg;
  enum up_breaker_state state;
  int consecutive;                           /* failures in a row while closed */
  int64_t opened_ms;                         /* when it last opened */
  bool probe_out;                            /* half-open: the probe is in flight */
  int64_t bucket_epoch[UP_BREAKER_BUCKETS];  /* now / (window / BUCKETS) of each slot, -1 empty */
  uint32_t bucket_n[UP_BREAKER_BUCKETS], bucket_fail[UP_BREAKER_BUCKETS];
  uint64_t transitions[3];                   /* entries into each state (metrics) */
};

/* up_breaker_acquire's tickets */
#define UP_BREAKER_DENY  0   /* not now: skip this deployment */
#define UP_BREAKER_PASS  1   /* closed: an ordinary call */
#define UP_BREAKER_PROBE 2   /* this call is the half-open probe */

void up_breaker_init(struct up_breaker *b, const struct up_breaker_config *cfg);
/* False when both failures and error_rate_pct are 0 (it never opens). */
bool up_breaker_enabled(const struct up_breaker *b);
/* Would acquire() let a call through now? Changes nothing (for choosing among deployments). */
bool up_breaker_ready(const struct up_breaker *b, int64_t now_ms);
/* Lets a call through or not; returns a ticket. An open breaker past its cooldown turns half-open
 * here and the caller gets UP_BREAKER_PROBE. */
int up_breaker_acquire(struct up_breaker *b, int64_t now_ms);
/* The outcome of a call acquire() let through (TICKET as returned). */
void up_breaker_record(struct up_breaker *b, int64_t now_ms, int ticket, bool ok);
/* A call acquire() let through ended without a verdict (cancelled): frees the probe slot. */
void up_breaker_release(struct up_breaker *b, int ticket);
/* ms until an open breaker's cooldown ends (0 when not open or already over). */
int64_t up_breaker_wait_ms(const struct up_breaker *b, int64_t now_ms);
/* "closed", "open", "half_open" */
const char *up_breaker_state_name(enum up_breaker_state s);

/* ------------------------------------------------------------------ SSE parser */

/*
 * Server-Sent Events parser (WHATWG "event stream interpretation"), fed arbitrary byte chunks:
 * line ends CRLF, LF or CR (a CR ending one chunk and an LF starting the next count once), comment
 * lines (':' first) ignored, `data:` lines joined with '\n', one optional space after the colon
 * dropped, a leading UTF-8 BOM dropped, an event dispatched at each blank line when it has data.
 * Every buffer is capped: an event (its field lines together) larger than max_event_bytes stops
 * the parser with -E2BIG. Not thread-safe; one parser per stream.
 */
struct up_sse_event {
  const char *event;      /* NUL-terminated; "" when the event had no event: line */
  const char *data;       /* NUL-terminated (data may itself contain NULs: use data_len) */
  size_t data_len;
  const char *id;         /* last id: seen in the stream so far, "" if none */
};

/* Return 0 to continue, non-zero to stop: up_sse_feed() returns that value. */
typedef int (*up_sse_cb)(void *ud, const struct up_sse_event *ev);

struct up_sse {
  size_t max_event;       /* cap on one event's bytes (lines + data) */
  char *line;  size_t line_len,  line_cap;   /* the line being read */
  char *data;  size_t data_len,  data_cap;   /* data of the event being built */
  char event[64];                            /* event type (longer names are truncated) */
  char id[128];                              /* last event id (longer ids are truncated) */
  size_t event_bytes;     /* bytes of the event being built, against max_event */
  bool has_data;          /* a data: line was seen for the current event */
  bool last_cr;           /* previous chunk ended with CR: skip one LF */
  bool started;           /* first bytes seen (BOM check done) */
  int error;              /* sticky: -E2BIG / -ENOMEM */
  uint64_t events;        /* dispatched so far */
};

#define UP_SSE_DEFAULT_MAX_EVENT (1u << 20)

/* max_event_bytes 0 means UP_SSE_DEFAULT_MAX_EVENT. */
void up_sse_init(struct up_sse *p, size_t max_event_bytes);
/* Feeds N bytes. Returns 0, the callback's non-zero value, -E2BIG (event over the cap) or -ENOMEM.
 * After an error every later call returns it again. */
int up_sse_feed(struct up_sse *p, const char *buf, size_t n, up_sse_cb cb, void *ud);
/* End of stream. Returns true if an incomplete event (or line) was pending: the stream was cut. */
bool up_sse_truncated(const struct up_sse *p);
void up_sse_free(struct up_sse *p);   /* frees buffers; the struct may be re-initialised */

#endif
