/*
 * streams.c: the load generator of the local-serving benchmark (tests/bench/local/run.sh):
 * concurrent streamed OpenAI chat completions against one server (tiergate serving a local model,
 * or llama-server), measuring what a user of local serving sees.
 *
 *   streams --port P --streams N [--rounds R] [--warmup W] [--max-tokens 64] [--model NAME]
 *           [--prompt-tokens T] [--pid PID] [--label TEXT] [--host 127.0.0.1] [--timeout-s S]
 *   streams --arrival --port P [--background 7] [--prompt-tokens 64] [--rounds R]
 *           [--bg-max-tokens 512] [--probe-max-tokens 8] [--settle-ms 500] [...]
 *
 * Prints one JSON object on stdout (see print_load / print_arrival for the fields); progress and
 * server errors go to stderr. Exit status 0 when every request succeeded, 1 otherwise.
 *
 * Every request is {"model", "messages": [one user message], "max_tokens", "temperature": 0,
 * "stream": true, "stream_options": {"include_usage": true}, "ignore_eos": true}: ignore_eos keeps
 * random-weight models generating the full max_tokens. Each user message starts with a nonce
 * unique to the request (and to the run), so neither server can reuse another request's cached
 * prompt (both have prefix caches; a benchmark of cold requests must not hit them).
 *
 * DESIGN
 * - Load mode: closed loop, one fixed batch per round. Each round opens N connections, waits until
 *   all are connected, then writes the N requests back to back and waits for all N streams to end.
 *   A round is one measurement: aggregate tokens/s = sum of completion tokens / (last stream's end
 *   - first request written). Rounds before --warmup are not measured. The report gives the
 *   median over rounds of that figure, and TTFT percentiles over all measured streams pooled.
 * - Time is taken from the moment a request's last byte is written (send() returned; connection
 *   set-up is before it and excluded): a request the server queues behind others shows its wait in
 *   its TTFT (no coordinated omission: nothing waits in this program before being written).
 * - TTFT: request written -> the read that delivered the first SSE chunk whose
 *   choices[0].delta.content is a non-empty string (a role-only first chunk does not count).
 *   Tokens: usage.completion_tokens of the final chunk, else the number of content chunks.
 *   Per-stream decode rate: (tokens - 1) / (end - first content), the figure `slm bench`'s tgN
 *   measures (tokens after the first, no prompt). Inter-token gaps: between content chunks.
 * - Arrival mode: per round, the probe (a --prompt-tokens prompt, calibrated against the server's
 *   own usage.prompt_tokens) alone, then the same kind of probe (another nonce) sent while
 *   --background streams decode: they are started together, and the probe is written once each of
 *   them has received 3 content chunks. After the probe ends the background streams are cut (the
 *   server frees their slots on the disconnect) and the loop waits --settle-ms. The report gives
 *   the median TTFT alone and loaded, their ratio, and the longest gap between two content chunks
 *   of any background stream while the probe was in flight (a prefill that freezes the running
 *   streams shows up there).
 * - RSS: with --pid, /proc/PID/status VmRSS every 50 ms (the maximum seen) and VmHWM at the end.
 * - One thread, libevent for readiness only; sockets are read into a fixed buffer per stream and
 *   parsed incrementally (HTTP/1.1 head, chunked / Content-Length / until-close body, SSE lines).
 *   Every buffer has a cap; a response line or head beyond it fails that stream.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#define MAX_STREAMS 256
#define REQ_CAP 16384         /* one request's bytes */
#define IN_CAP 65536          /* raw bytes read and not yet parsed, per stream */
#define LINE_CAP 65536        /* one SSE line (a data: payload) */
#define HEAD_CAP 16384        /* the response head */
#define ERR_BODY_CAP 512      /* kept of a non-200 body, for the message */
#define PROMPT_CAP 8192       /* the user message */

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* ---------------------------------------------------------------- streams */

enum phase { P_HEAD, P_BODY_CL, P_BODY_EOF, P_CHUNK_SIZE, P_CHUNK_DATA, P_CHUNK_CRLF, P_TRAILER,
             P_END };
enum sstate { S_FREE, S_CONNECTING, S_READY, S_SENT, S_DONE };

struct run;

struct stream {
  struct run *run;
  int fd;
  struct event *ev;
  enum sstate state;
  bool background;            /* arrival mode: one of the decoding streams */
  size_t req_len, in_len, line_len, err_len;
  /* response parsing */
  enum phase phase;
  size_t need;                /* bytes left in the current chunk / Content-Length body */
  int status;
  /* results; times in us on CLOCK_MONOTONIC, 0 = not yet */
  double t_sent, t_first, t_last, t_end;
  long usage_completion, usage_prompt; /* -1: no usage chunk */
  long chunks;                /* chunks with non-empty content */
  bool saw_done, failed;
  bool count_only;            /* calibration: only usage.prompt_tokens matters, content may be
                                 empty (one token that is an incomplete UTF-8 sequence) */
  char err[256];
  /* buffers (not cleared between requests: their lengths are) */
  char req[REQ_CAP];          /* the request */
  char in[IN_CAP];            /* bytes read and not yet parsed */
  char line[LINE_CAP];        /* the SSE line being assembled */
  char err_body[ERR_BODY_CAP]; /* the start of a non-200 body */
};

struct samples {
  double *v;
  size_t n, cap;
};

struct run {
  struct event_base *base;
  struct event *rss_timer, *deadline;
  struct sockaddr_in addr;
  const char *host, *model, *label;
  int port;
  long pid;
  long rss_max_kib;
  double timeout_s;
  bool (*until)(struct run *);     /* the condition the loop runs until */
  bool timed_out;
  uint64_t nonce_seed, nonce;      /* the prompts' nonces: mix64(seed + counter) */
  struct stream *s;                /* MAX_STREAMS + 1 (the probe) */
  /* arrival mode: the probe is in flight between these two times */
  struct stream *probe;
  double bg_gap_max_us;            /* longest content gap of a background stream meanwhile */
  /* load mode: inter-token gaps of the measured round(s), in us */
  struct samples *gaps;
  int errors;
  /* the streams the loop's current condition looks at */
  struct stream *batch;
  int batch_n;
  long min_chunks;                 /* all_decoding: content chunks each must have */
};

static void *xcalloc(size_t n, size_t sz) {
  void *p = calloc(n, sz);
  if (!p) {
    fputs("streams: out of memory\n", stderr);
    exit(1);
  }
  return p;
}

static void samples_init(struct samples *sm, size_t cap) {
  sm->v = xcalloc(cap ? cap : 1, sizeof *sm->v);
  sm->n = 0;
  sm->cap = cap ? cap : 1;
}

/* Adds x; beyond the capacity fixed at init the sample is dropped (counted by the caller's n). */
static void samples_add(struct samples *sm, double x) {
  if (sm->n < sm->cap) sm->v[sm->n++] = x;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Nearest-rank percentile (p in [0, 100]) of v[0..n), which it sorts; NAN when n == 0. */
static double percentile(double *v, size_t n, double p) {
  if (n == 0) return NAN;
  qsort(v, n, sizeof *v, cmp_double);
  size_t rank = (size_t)ceil(p / 100.0 * (double)n);
  if (rank < 1) rank = 1;
  if (rank > n) rank = n;
  return v[rank - 1];
}

static double median(double *v, size_t n) {
  if (n == 0) return NAN;
  qsort(v, n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

__attribute__((format(printf, 2, 3))) static void stream_fail(struct stream *st, const char *fmt, ...) {
  if (!st->failed) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->err, sizeof st->err, fmt, ap);
    va_end(ap);
  }
  st->failed = true;
}

/* Closes the connection; the stream keeps its results. */
static void stream_close(struct stream *st) {
  if (st->ev) {
    event_free(st->ev);
    st->ev = NULL;
  }
  if (st->fd >= 0) {
    close(st->fd);
    st->fd = -1;
  }
}

static void stream_end(struct stream *st, double t) {
  if (st->state == S_DONE) return;
  st->state = S_DONE;
  st->t_end = t;
  if (!st->failed && st->status != 200) stream_fail(st, "HTTP status not 200");
  if (!st->failed && st->count_only && st->usage_prompt < 0)
    stream_fail(st, "no usage.prompt_tokens in the stream");
  if (!st->failed && !st->count_only && st->chunks == 0)
    stream_fail(st, "the stream ended with no content chunk");
  if (st->failed) {
    st->run->errors++;
    fprintf(stderr, "streams [%s]: %s request failed: %s (status %d)%s%.*s\n", st->run->label,
            st->count_only ? "a calibration" : st->background ? "a background" : "a measured",
            st->err, st->status,
            st->err_len ? ": " : "", (int)st->err_len, st->err_body);
  }
  stream_close(st);
}

/* One SSE data payload. */
static void on_data(struct stream *st, const char *p, size_t n, double t) {
  if (n == 6 && !memcmp(p, "[DONE]", 6)) {
    st->saw_done = true;
    return;
  }
  json_error_t jerr;
  json_t *j = json_loadb(p, n, 0, &jerr);
  if (!j) {
    stream_fail(st, "bad JSON in an SSE event: %s", jerr.text);
    return;
  }
  json_t *e = json_object_get(j, "error");
  if (e && !json_is_null(e)) {
    const char *m = json_string_value(json_object_get(e, "message"));
    stream_fail(st, "error event: %s", m ? m : "(no message)");
  }
  json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
  const char *content = json_string_value(json_object_get(json_object_get(c0, "delta"), "content"));
  if (content && *content) {
    if (st->t_first == 0) {
      st->t_first = t;
    } else {
      double gap = t - st->t_last;
      struct run *r = st->run;
      if (st->background) {
        if (r->probe && r->probe->t_sent > 0 && r->probe->state != S_DONE && gap > r->bg_gap_max_us)
          r->bg_gap_max_us = gap;
      } else if (r->gaps) {
        samples_add(r->gaps, gap);
      }
    }
    st->t_last = t;
    st->chunks++;
  }
  json_t *u = json_object_get(j, "usage");
  if (json_is_object(u)) {
    json_t *ct = json_object_get(u, "completion_tokens"), *pt = json_object_get(u, "prompt_tokens");
    if (json_is_integer(ct)) st->usage_completion = (long)json_integer_value(ct);
    if (json_is_integer(pt)) st->usage_prompt = (long)json_integer_value(pt);
  }
  json_decref(j);
}

/* Decoded body bytes: split into SSE lines ("data: ..." handled, others ignored). A non-200 body
 * is only kept (its start) for the error message. */
static void on_body(struct stream *st, const char *p, size_t n, double t) {
  if (st->status != 200) {
    size_t take = n < ERR_BODY_CAP - st->err_len ? n : ERR_BODY_CAP - st->err_len;
    memcpy(st->err_body + st->err_len, p, take);
    st->err_len += take;
    return;
  }
  for (size_t i = 0; i < n; i++) {
    char ch = p[i];
    if (ch != '\n') {
      if (st->line_len == LINE_CAP) {
        stream_fail(st, "SSE line longer than %d bytes", LINE_CAP);
        return;
      }
      st->line[st->line_len++] = ch;
      continue;
    }
    size_t len = st->line_len;
    st->line_len = 0;
    if (len && st->line[len - 1] == '\r') len--;
    if (len >= 5 && !memcmp(st->line, "data:", 5)) {
      size_t off = 5;
      if (off < len && st->line[off] == ' ') off++;
      on_data(st, st->line + off, len - off, t);
    }
  }
}

/* Parses what is in st->in; consumes what it used. Returns when it needs more bytes or the
 * response is complete (phase P_END). */
static void parse(struct stream *st, double t) {
  size_t pos = 0;
  while (st->phase != P_END && !st->failed) {
    char *p = st->in + pos;
    size_t avail = st->in_len - pos;
    if (st->phase == P_HEAD) {
      char *e = memmem(p, avail, "\r\n\r\n", 4);
      if (!e) {
        if (avail > HEAD_CAP) stream_fail(st, "response head over %d bytes", HEAD_CAP);
        break;
      }
      size_t hl = (size_t)(e - p) + 4;
      if (hl > HEAD_CAP) {
        stream_fail(st, "response head over %d bytes", HEAD_CAP);
        break;
      }
      char head[HEAD_CAP + 1];
      memcpy(head, p, hl);
      head[hl] = 0;
      int status = 0;
      if (sscanf(head, "HTTP/1.%*d %d", &status) != 1) stream_fail(st, "bad status line");
      st->status = status;
      bool chunked = false;
      long long cl = -1;
      for (char *l = strstr(head, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n")) {
        char *h = l + 2, *eol = strstr(h, "\r\n");
        if (eol) *eol = 0;  /* one header line at a time; restored below */
        if (!strncasecmp(h, "content-length:", 15)) cl = atoll(h + 15);
        if (!strncasecmp(h, "transfer-encoding:", 18) && strcasestr(h, "chunked")) chunked = true;
        if (eol) *eol = '\r';
      }
      pos += hl;
      if (status == 100) continue;
      if (chunked) st->phase = P_CHUNK_SIZE;
      else if (cl >= 0) {
        st->phase = P_BODY_CL;
        st->need = (size_t)cl;
      } else st->phase = P_BODY_EOF;
    } else if (st->phase == P_BODY_CL || st->phase == P_BODY_EOF || st->phase == P_CHUNK_DATA) {
      size_t take = avail;
      if (st->phase != P_BODY_EOF && take > st->need) take = st->need;
      if (take) on_body(st, p, take, t);
      pos += take;
      if (st->phase != P_BODY_EOF) st->need -= take;
      if (st->phase == P_BODY_CL && st->need == 0) st->phase = P_END;
      else if (st->phase == P_CHUNK_DATA && st->need == 0) st->phase = P_CHUNK_CRLF;
      else break;
    } else if (st->phase == P_CHUNK_SIZE || st->phase == P_CHUNK_CRLF || st->phase == P_TRAILER) {
      char *e = memmem(p, avail, "\r\n", 2);
      if (!e) {
        if (avail > 1024) stream_fail(st, "chunk line over 1024 bytes");
        break;
      }
      size_t ll = (size_t)(e - p);
      if (st->phase == P_CHUNK_SIZE) {
        char *end;
        unsigned long long sz = strtoull(p, &end, 16);
        if (end == p) stream_fail(st, "bad chunk size");
        st->need = (size_t)sz;
        st->phase = sz ? P_CHUNK_DATA : P_TRAILER;
      } else if (st->phase == P_CHUNK_CRLF) {
        if (ll != 0) stream_fail(st, "no CRLF after a chunk");
        st->phase = P_CHUNK_SIZE;
      } else if (ll == 0) {
        st->phase = P_END;
      }
      pos += ll + 2;
    }
  }
  memmove(st->in, st->in + pos, st->in_len - pos);
  st->in_len -= pos;
}

static void check_until(struct run *r) {
  if (r->until && r->until(r)) event_base_loopbreak(r->base);
}

static void on_read(evutil_socket_t fd, short what, void *arg) {
  struct stream *st = arg;
  double t = now_us();
  if (st->in_len == IN_CAP) {
    stream_fail(st, "input buffer full (%d bytes unparsed)", IN_CAP);
    stream_end(st, t);
    check_until(st->run);
    return;
  }
  ssize_t n = read(fd, st->in + st->in_len, IN_CAP - st->in_len);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) {
    if (n < 0) stream_fail(st, "read: %s", strerror(errno));
    else if (st->phase != P_BODY_EOF && st->phase != P_END) stream_fail(st, "connection closed mid-response");
    stream_end(st, t);
  } else {
    st->in_len += (size_t)n;
    parse(st, t);
    if (st->phase == P_END || st->failed) stream_end(st, t);
  }
  check_until(st->run);
}

static void on_connected(evutil_socket_t fd, short what, void *arg) {
  struct stream *st = arg;
  int err = 0;
  socklen_t len = sizeof err;
  event_free(st->ev);
  st->ev = NULL;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  if (err) {
    stream_fail(st, "connect: %s", strerror(err));
    stream_end(st, now_us());
  } else {
    st->state = S_READY;
  }
  check_until(st->run);
}

/* Builds the request of st for a user message and max_tokens. Returns 0 or -ENOSPC. */
static int stream_prepare(struct run *r, struct stream *st, const char *content, long max_tokens,
                          bool background) {
  stream_close(st);
  memset(st, 0, offsetof(struct stream, req));
  st->run = r;
  st->fd = -1;
  st->background = background;
  st->usage_completion = st->usage_prompt = -1;
  json_t *msg = json_pack("{s:s,s:s}", "role", "user", "content", content);
  json_t *body = json_pack("{s:s,s:[o],s:i,s:f,s:b,s:{s:b},s:b}", "model", r->model, "messages",
                           msg, "max_tokens", (int)max_tokens, "temperature", 0.0, "stream", 1,
                           "stream_options", "include_usage", 1, "ignore_eos", 1);
  char *b = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  if (!b) return -ENOMEM;
  int n = snprintf(st->req, REQ_CAP,
                   "POST /v1/chat/completions HTTP/1.1\r\nHost: %s:%d\r\n"
                   "Content-Type: application/json\r\nAccept: text/event-stream\r\n"
                   "Connection: close\r\nContent-Length: %zu\r\n\r\n%s",
                   r->host, r->port, strlen(b), b);
  free(b);
  if (n < 0 || n >= REQ_CAP) return -ENOSPC;
  st->req_len = (size_t)n;
  return 0;
}

static void stream_connect(struct stream *st) {
  struct run *r = st->run;
  st->state = S_CONNECTING;
  st->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (st->fd < 0) {
    stream_fail(st, "socket: %s", strerror(errno));
    stream_end(st, now_us());
    return;
  }
  int one = 1;
  setsockopt(st->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(st->fd, (struct sockaddr *)&r->addr, sizeof r->addr) < 0 && errno != EINPROGRESS) {
    stream_fail(st, "connect: %s", strerror(errno));
    stream_end(st, now_us());
    return;
  }
  st->ev = event_new(r->base, st->fd, EV_WRITE, on_connected, st);
  event_add(st->ev, NULL);
}

/* Writes the request in one send() (it is far smaller than a socket buffer) and stamps t_sent. */
static void stream_send(struct stream *st) {
  struct run *r = st->run;
  ssize_t n = send(st->fd, st->req, st->req_len, MSG_NOSIGNAL);
  st->t_sent = now_us();
  if (n != (ssize_t)st->req_len) {
    stream_fail(st, "send: %s", n < 0 ? strerror(errno) : "short write");
    stream_end(st, st->t_sent);
    return;
  }
  st->state = S_SENT;
  st->ev = event_new(r->base, st->fd, EV_READ | EV_PERSIST, on_read, st);
  event_add(st->ev, NULL);
}

/* --------------------------------------------------------------- the loop */

static void on_deadline(evutil_socket_t fd, short what, void *arg) {
  struct run *r = arg;
  r->timed_out = true;
  event_base_loopbreak(r->base);
}

/* Runs the event loop until cond(r) holds or --timeout-s passes (then r->timed_out). */
static void run_until(struct run *r, bool (*cond)(struct run *)) {
  r->until = cond;
  r->timed_out = false;
  if (cond(r)) return;
  struct timeval tv = {(time_t)r->timeout_s, (suseconds_t)((r->timeout_s - floor(r->timeout_s)) * 1e6)};
  evtimer_add(r->deadline, &tv);
  event_base_dispatch(r->base);
  evtimer_del(r->deadline);
  r->until = NULL;
}

static bool all_connected(struct run *r) {
  for (int i = 0; i < r->batch_n; i++)
    if (r->batch[i].state == S_CONNECTING) return false;
  return true;
}

static bool all_done(struct run *r) {
  for (int i = 0; i < r->batch_n; i++)
    if (r->batch[i].state != S_DONE) return false;
  return true;
}

static bool all_decoding(struct run *r) {
  for (int i = 0; i < r->batch_n; i++)
    if (r->batch[i].state != S_DONE && r->batch[i].chunks < r->min_chunks) return false;
  return true;
}

/* Connects the n prepared streams, then writes their requests back to back. Streams whose
 * connection failed are already done (failed). */
static void batch_start(struct run *r, struct stream *b, int n) {
  for (int i = 0; i < n; i++) stream_connect(&b[i]);
  r->batch = b;
  r->batch_n = n;
  run_until(r, all_connected);
  for (int i = 0; i < n; i++)
    if (b[i].state == S_READY) stream_send(&b[i]);
}

static void batch_wait(struct run *r, struct stream *b, int n) {
  r->batch = b;
  r->batch_n = n;
  run_until(r, all_done);
  if (r->timed_out)
    for (int i = 0; i < n; i++)
      if (b[i].state != S_DONE) {
        stream_fail(&b[i], "timed out after --timeout-s");
        stream_end(&b[i], now_us());
      }
}

/* Cuts the streams still running (arrival mode's background); they are not errors. */
static void batch_cut(struct stream *b, int n) {
  for (int i = 0; i < n; i++)
    if (b[i].state != S_DONE) {
      b[i].state = S_DONE;
      b[i].t_end = now_us();
      stream_close(&b[i]);
    }
}

static bool never(struct run *r) { return false; }

static void sleep_loop(struct run *r, double ms) {
  double keep = r->timeout_s;
  r->timeout_s = ms / 1e3;
  run_until(r, never);
  r->timeout_s = keep;
}

static long proc_status_kib(long pid, const char *key) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%ld/status", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long v = -1;
  size_t kl = strlen(key);
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, key, kl) && line[kl] == ':') {
      v = atol(line + kl + 1);
      break;
    }
  fclose(f);
  return v;
}

static void on_rss(evutil_socket_t fd, short what, void *arg) {
  struct run *r = arg;
  long v = proc_status_kib(r->pid, "VmRSS");
  if (v > r->rss_max_kib) r->rss_max_kib = v;
}

/* CPU time on the machine, for telling how much of it other processes took during a
 * measurement (a shared machine): busy = all CPUs' non-idle ticks (steal included), and the
 * ticks of the server (--pid) and of this program. */
struct cpu_snap {
  double busy, server, self;  /* clock ticks */
};

static double proc_ticks(long pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');  /* after the command name, which may hold spaces */
  unsigned long long ut = 0, st = 0;
  if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
    return 0;
  return (double)(ut + st);
}

static void cpu_snap(const struct run *r, struct cpu_snap *c) {
  memset(c, 0, sizeof *c);
  FILE *f = fopen("/proc/stat", "r");
  if (f) {
    unsigned long long v[10] = {0};
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
               &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]) >= 8)
      c->busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]);  /* not idle, iowait, guest */
    fclose(f);
  }
  if (r->pid > 0) c->server = proc_ticks(r->pid);
  c->self = proc_ticks((long)getpid());
}

/* The share (percent of all CPUs) that processes other than the server and this program used
 * between a and b, over wall_us. */
static double others_pct(const struct cpu_snap *a, const struct cpu_snap *b, double wall_us) {
  static long hz, ncpu;
  if (!hz) hz = sysconf(_SC_CLK_TCK), ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  double others = (b->busy - a->busy) - (b->server - a->server) - (b->self - a->self);
  if (others < 0) others = 0;
  double avail = wall_us / 1e6 * (double)hz * (double)(ncpu > 0 ? ncpu : 1);
  return avail > 0 ? 100.0 * others / avail : 0;
}

/* ---------------------------------------------------------------- prompts */

static const char *const WORDS[] = {
  "harbor", "lantern", "meadow", "copper", "river", "falcon", "winter", "garden", "silver",
  "candle", "mountain", "orchard", "thunder", "marble", "willow", "compass",
};
#define NWORDS (sizeof WORDS / sizeof *WORDS)

/* splitmix64: the nonce of request k of this process. */
static uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/* The user message: a nonce unique to the request and then the first `chars` bytes of
 * " harbor lantern meadow ..." (or, with chars < 0, a fixed short instruction). The nonce is 8
 * pseudo-random decimal digits and ':' (seeded by time and pid, so another run's prompts differ
 * too: servers keep prompt caches across requests); digits are one token each in the tokenizers
 * here, so every nonce has the same token count, and its first digit already differs from the
 * previous request's nine times in ten, so no cached prefix beyond the template is shared.
 * Byte steps of the filler let the calibration reach an exact token count. Returns 0 or -ENOSPC. */
static int make_prompt(struct run *r, char *out, size_t cap, long chars) {
  uint64_t h = mix64(r->nonce_seed + r->nonce++);
  int n = snprintf(out, cap, "%08llu:", (unsigned long long)(h % 100000000ull));
  if (chars < 0) {
    n += snprintf(out + n, cap - (size_t)n, " Write a long story about a lighthouse keeper.");
    return n < 0 || (size_t)n >= cap ? -ENOSPC : 0;
  }
  if ((size_t)n + (size_t)chars >= cap) return -ENOSPC;
  size_t end = (size_t)n + (size_t)chars;
  for (size_t i = 0; (size_t)n < end; i++) {
    out[n++] = ' ';
    for (const char *w = WORDS[i % NWORDS]; *w && (size_t)n < end; w++) out[n++] = *w;
  }
  out[n] = 0;
  return 0;
}

/* The server's prompt_tokens for a message of `chars` filler bytes (one request, max_tokens 1);
 * -1 on failure. */
static long prompt_tokens_of(struct run *r, struct stream *st, long chars) {
  char prompt[PROMPT_CAP];
  if (make_prompt(r, prompt, sizeof prompt, chars) || stream_prepare(r, st, prompt, 1, false))
    return -1;
  st->count_only = true;
  batch_start(r, st, 1);
  batch_wait(r, st, 1);
  return st->failed ? -1 : st->usage_prompt;
}

/* The number of filler bytes whose prompt the server counts as closest to `target` tokens (exact
 * unless the tokenizer skips that count); -1 on failure. *got_out: that count. */
static long calibrate(struct run *r, struct stream *st, long target, long *got_out) {
  long probe = target * 4 < PROMPT_CAP / 2 ? target * 4 : PROMPT_CAP / 2;
  long t0 = prompt_tokens_of(r, st, 0), t1 = prompt_tokens_of(r, st, probe);
  if (t0 < 0 || t1 < 0) return -1;
  double per_char = t1 > t0 ? (double)(t1 - t0) / (double)probe : 1.0;
  long c = lround((double)(target - t0) / per_char);
  if (c < 0) c = 0;
  if (c > PROMPT_CAP / 2) c = PROMPT_CAP / 2;
  long best_c = -1, best_d = 0, best_t = 0;
  int prev_dir = 0;
  /* walk one byte at a time towards the target; stop on it or once the error changes sign */
  for (int it = 0; it < 64; it++) {
    long t = prompt_tokens_of(r, st, c);
    if (t < 0) return -1;
    long d = labs(t - target);
    if (best_c < 0 || d < best_d) best_c = c, best_d = d, best_t = t;
    if (t == target) break;
    int dir = t < target ? 1 : -1;
    if (prev_dir && dir != prev_dir) break;
    prev_dir = dir;
    c += dir;
    if (c < 0 || c > PROMPT_CAP / 2) break;
  }
  *got_out = best_t;
  return best_c;
}

/* ------------------------------------------------------------------ modes */

/* A JSON number, or null for NaN and infinities (no round measured). */
static void put_num(const char *key, double x) {
  if (isfinite(x)) printf("\"%s\":%.3f", key, x);
  else printf("\"%s\":null", key);
}

static void put_array(const char *key, const struct samples *sm) {
  printf("\"%s\":[", key);
  for (size_t i = 0; i < sm->n; i++) printf("%s%.3f", i ? "," : "", sm->v[i]);
  printf("]");
}

static void print_pct(const char *name, double *v, size_t n, double scale) {
  printf("\"%s\":{\"n\":%zu", name, n);
  if (n) {
    double p50 = percentile(v, n, 50), p90 = percentile(v, n, 90), p99 = percentile(v, n, 99);
    printf(",\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"min\":%.3f,\"max\":%.3f", p50 * scale,
           p90 * scale, p99 * scale, v[0] * scale, v[n - 1] * scale);
  }
  printf("}");
}

static void samples_free(struct samples *sm) {
  free(sm->v);
  sm->v = NULL;
  sm->n = sm->cap = 0;
}

static void print_rss(const struct run *r) {
  if (r->pid > 0)
    printf(",\"rss_max_kib\":%ld,\"hwm_kib\":%ld", r->rss_max_kib, proc_status_kib(r->pid, "VmHWM"));
}

static int mode_load(struct run *r, const char *label, int n, int rounds, int warmup,
                     long max_tokens, long prompt_chars, long prompt_tokens_seen) {
  struct samples agg, ttft, decode, gaps, ptok, ctok, wall, noise;
  samples_init(&agg, (size_t)rounds);
  samples_init(&noise, (size_t)rounds);
  samples_init(&wall, (size_t)rounds);
  samples_init(&ttft, (size_t)(rounds * n));
  samples_init(&decode, (size_t)(rounds * n));
  samples_init(&ptok, (size_t)(rounds * n));
  samples_init(&ctok, (size_t)(rounds * n));
  samples_init(&gaps, (size_t)rounds * (size_t)n * (size_t)(max_tokens + 1));
  char prompt[PROMPT_CAP];
  for (int round = 0; round < warmup + rounds; round++) {
    bool measured = round >= warmup;
    r->gaps = measured ? &gaps : NULL;
    for (int i = 0; i < n; i++)
      if (make_prompt(r, prompt, sizeof prompt, prompt_chars) ||
          stream_prepare(r, &r->s[i], prompt, max_tokens, false)) {
        fputs("streams: request too large\n", stderr);
        return 1;
      }
    int err0 = r->errors;
    struct cpu_snap c0, c1;
    double w0 = now_us();
    cpu_snap(r, &c0);
    batch_start(r, r->s, n);
    batch_wait(r, r->s, n);
    cpu_snap(r, &c1);
    if (!measured) {
      r->errors = err0;  /* a failed warm-up request is reported, not counted */
      continue;
    }
    samples_add(&noise, others_pct(&c0, &c1, now_us() - w0));
    double t0 = 0, t1 = 0, tokens = 0;
    for (int i = 0; i < n; i++) {
      struct stream *st = &r->s[i];
      if (st->failed) continue;
      long tok = st->usage_completion >= 0 ? st->usage_completion : st->chunks;
      tokens += (double)tok;
      if (t0 == 0 || st->t_sent < t0) t0 = st->t_sent;
      if (st->t_end > t1) t1 = st->t_end;
      samples_add(&ttft, st->t_first - st->t_sent);
      if (tok > 1 && st->t_end > st->t_first)
        samples_add(&decode, (double)(tok - 1) / ((st->t_end - st->t_first) / 1e6));
      samples_add(&ptok, (double)st->usage_prompt);
      samples_add(&ctok, (double)tok);
    }
    if (t1 > t0) {
      samples_add(&agg, tokens / ((t1 - t0) / 1e6));
      samples_add(&wall, (t1 - t0) / 1e3);
    }
    fprintf(stderr, "  %s round %d: %.0f tokens in %.0f ms = %.2f tok/s (other processes: %.0f %% "
            "CPU)\n", label, round - warmup + 1, tokens, (t1 - t0) / 1e3,
            t1 > t0 ? tokens / ((t1 - t0) / 1e6) : 0.0, noise.v[noise.n - 1]);
  }
  printf("{\"mode\":\"load\",\"label\":\"%s\",\"streams\":%d,\"rounds\":%d,\"warmup\":%d,"
         "\"max_tokens\":%ld,\"errors\":%d,", label, n, rounds, warmup, max_tokens, r->errors);
  put_array("agg_tps_rounds", &agg);
  printf(",");
  put_array("round_ms_rounds", &wall);
  printf(",");
  put_array("others_cpu_pct_rounds", &noise);
  printf(",");
  put_num("others_cpu_pct_max", noise.n ? percentile(noise.v, noise.n, 100) : NAN);
  printf(",");
  put_num("agg_tps", median(agg.v, agg.n));
  printf(",");
  put_num("round_ms", median(wall.v, wall.n));
  printf(",");
  print_pct("ttft_ms", ttft.v, ttft.n, 1e-3);
  printf(",");
  print_pct("decode_tps_stream", decode.v, decode.n, 1.0);
  printf(",");
  print_pct("itl_ms", gaps.v, gaps.n, 1e-3);
  printf(",");
  print_pct("prompt_tokens", ptok.v, ptok.n, 1.0);
  printf(",");
  print_pct("completion_tokens", ctok.v, ctok.n, 1.0);
  if (prompt_tokens_seen > 0) printf(",\"prompt_tokens_calibrated\":%ld", prompt_tokens_seen);
  print_rss(r);
  printf("}\n");
  samples_free(&agg);
  samples_free(&noise);
  samples_free(&wall);
  samples_free(&ttft);
  samples_free(&decode);
  samples_free(&ptok);
  samples_free(&ctok);
  samples_free(&gaps);
  return r->errors ? 1 : 0;
}

static int mode_arrival(struct run *r, const char *label, int bg, int rounds, int warmup,
                        long chars, long target, long got, long probe_max, long bg_max,
                        double settle_ms) {
  struct samples alone, loaded, ratio, gap, ptok, noise;
  samples_init(&alone, (size_t)rounds);
  samples_init(&noise, (size_t)rounds);
  samples_init(&loaded, (size_t)rounds);
  samples_init(&ratio, (size_t)rounds);
  samples_init(&gap, (size_t)rounds);
  samples_init(&ptok, (size_t)rounds * 2);
  int bg_ended = 0;
  char prompt[PROMPT_CAP];
  struct stream *probe = &r->s[MAX_STREAMS];
  r->gaps = NULL;
  for (int round = 0; round < warmup + rounds; round++) {
    bool measured = round >= warmup;
    int err0 = r->errors;
    struct cpu_snap c0, c1;
    double w0 = now_us();
    cpu_snap(r, &c0);
    /* alone */
    if (make_prompt(r, prompt, sizeof prompt, chars) ||
        stream_prepare(r, probe, prompt, probe_max, false))
      return 1;
    batch_start(r, probe, 1);
    batch_wait(r, probe, 1);
    double t_alone = probe->failed ? NAN : probe->t_first - probe->t_sent;
    long p_alone = probe->usage_prompt;
    sleep_loop(r, settle_ms);
    /* while bg streams decode */
    for (int i = 0; i < bg; i++) {
      char bprompt[PROMPT_CAP];
      if (make_prompt(r, bprompt, sizeof bprompt, -1) ||
          stream_prepare(r, &r->s[i], bprompt, bg_max, true))
        return 1;
    }
    batch_start(r, r->s, bg);
    r->batch = r->s;
    r->batch_n = bg;
    r->min_chunks = 3;
    run_until(r, all_decoding);
    if (make_prompt(r, prompt, sizeof prompt, chars) ||
        stream_prepare(r, probe, prompt, probe_max, false))
      return 1;
    r->probe = probe;
    r->bg_gap_max_us = 0;
    batch_start(r, probe, 1);
    batch_wait(r, probe, 1);
    double t_loaded = probe->failed ? NAN : probe->t_first - probe->t_sent;
    long p_loaded = probe->usage_prompt;
    int ended = 0;
    for (int i = 0; i < bg; i++) ended += r->s[i].state == S_DONE;
    cpu_snap(r, &c1);
    double w1 = now_us();
    batch_cut(r->s, bg);
    r->probe = NULL;
    sleep_loop(r, settle_ms);
    if (!measured) {
      r->errors = err0;
      continue;
    }
    bg_ended += ended;
    samples_add(&noise, others_pct(&c0, &c1, w1 - w0));
    if (!isnan(t_alone) && !isnan(t_loaded)) {
      samples_add(&alone, t_alone / 1e3);
      samples_add(&loaded, t_loaded / 1e3);
      samples_add(&ratio, t_loaded / t_alone);
      samples_add(&gap, r->bg_gap_max_us / 1e3);
    }
    samples_add(&ptok, (double)p_alone);
    samples_add(&ptok, (double)p_loaded);
    fprintf(stderr, "  %s round %d: TTFT alone %.1f ms, with %d decoding %.1f ms (x%.2f), longest "
            "background gap %.1f ms (other processes: %.0f %% CPU)\n", label, round - warmup + 1,
            t_alone / 1e3, bg, t_loaded / 1e3, t_loaded / t_alone, r->bg_gap_max_us / 1e3,
            noise.v[noise.n - 1]);
  }
  printf("{\"mode\":\"arrival\",\"label\":\"%s\",\"background\":%d,\"rounds\":%d,\"warmup\":%d,"
         "\"errors\":%d,\"prompt_tokens_target\":%ld,\"prompt_chars\":%ld,"
         "\"prompt_tokens_calibrated\":%ld,\"probe_max_tokens\":%ld,\"bg_max_tokens\":%ld,"
         "\"bg_ended_before_probe_done\":%d,",
         label, bg, rounds, warmup, r->errors, target, chars, got, probe_max, bg_max, bg_ended);
  put_array("alone_ttft_ms_rounds", &alone);
  printf(",");
  put_array("loaded_ttft_ms_rounds", &loaded);
  printf(",");
  put_array("ratio_rounds", &ratio);
  printf(",");
  put_array("others_cpu_pct_rounds", &noise);
  printf(",");
  put_num("others_cpu_pct_max", noise.n ? percentile(noise.v, noise.n, 100) : NAN);
  printf(",");
  double ma = median(alone.v, alone.n), ml = median(loaded.v, loaded.n);
  put_num("alone_ttft_ms", ma);
  printf(",");
  put_num("loaded_ttft_ms", ml);
  printf(",");
  put_num("ratio", ml / ma);
  printf(",");
  put_num("ratio_median", median(ratio.v, ratio.n));
  printf(",");
  print_pct("bg_gap_max_ms", gap.v, gap.n, 1.0);
  printf(",");
  print_pct("prompt_tokens", ptok.v, ptok.n, 1.0);
  print_rss(r);
  printf("}\n");
  samples_free(&alone);
  samples_free(&noise);
  samples_free(&loaded);
  samples_free(&ratio);
  samples_free(&gap);
  samples_free(&ptok);
  return r->errors ? 1 : 0;
}

/* ------------------------------------------------------------------- main */

static void usage(FILE *f) {
  fputs("usage: streams --port P --streams N [--rounds R] [--warmup W] [--max-tokens 64]\n"
        "               [--prompt-tokens T] [--model NAME] [--pid PID] [--label TEXT]\n"
        "               [--host 127.0.0.1] [--timeout-s 600]\n"
        "       streams --arrival --port P [--background 7] [--prompt-tokens 64] [--rounds R]\n"
        "               [--bg-max-tokens 512] [--probe-max-tokens 8] [--settle-ms 500] [...]\n",
        f);
}

int main(int argc, char **argv) {
  static struct option lo[] = {
    {"port", required_argument, 0, 'p'},       {"host", required_argument, 0, 'H'},
    {"streams", required_argument, 0, 'n'},    {"rounds", required_argument, 0, 'r'},
    {"warmup", required_argument, 0, 'w'},     {"max-tokens", required_argument, 0, 'm'},
    {"model", required_argument, 0, 'M'},      {"prompt-tokens", required_argument, 0, 'T'},
    {"pid", required_argument, 0, 'P'},        {"label", required_argument, 0, 'l'},
    {"timeout-s", required_argument, 0, 't'},  {"arrival", no_argument, 0, 'a'},
    {"background", required_argument, 0, 'b'}, {"bg-max-tokens", required_argument, 0, 'B'},
    {"probe-max-tokens", required_argument, 0, 'q'}, {"settle-ms", required_argument, 0, 's'},
    {"help", no_argument, 0, 'h'},             {0, 0, 0, 0},
  };
  struct run r = {0};
  r.host = "127.0.0.1";
  r.model = "local";
  r.timeout_s = 600;
  struct timespec seed_ts;
  clock_gettime(CLOCK_REALTIME, &seed_ts);
  r.nonce_seed = mix64((uint64_t)seed_ts.tv_sec * 1000000000ull + (uint64_t)seed_ts.tv_nsec) ^
                 (uint64_t)getpid() << 32;
  int n = 1, rounds = 3, warmup = 1, bg = 7;
  long max_tokens = 64, prompt_tokens = -1, bg_max = 512, probe_max = 8;
  double settle_ms = 500;
  bool arrival = false;
  const char *label = "";
  int ch;
  while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    switch (ch) {
      case 'p': r.port = atoi(optarg); break;
      case 'H': r.host = optarg; break;
      case 'n': n = atoi(optarg); break;
      case 'r': rounds = atoi(optarg); break;
      case 'w': warmup = atoi(optarg); break;
      case 'm': max_tokens = atol(optarg); break;
      case 'M': r.model = optarg; break;
      case 'T': prompt_tokens = atol(optarg); break;
      case 'P': r.pid = atol(optarg); break;
      case 'l': label = optarg; break;
      case 't': r.timeout_s = atof(optarg); break;
      case 'a': arrival = true; break;
      case 'b': bg = atoi(optarg); break;
      case 'B': bg_max = atol(optarg); break;
      case 'q': probe_max = atol(optarg); break;
      case 's': settle_ms = atof(optarg); break;
      case 'h': usage(stdout); return 0;
      default: usage(stderr); return 2;
    }
  }
  if (r.port <= 0 || r.port > 65535 || n < 1 || n > MAX_STREAMS || rounds < 1 || warmup < 0 ||
      max_tokens < 1 || bg < 0 || bg > MAX_STREAMS || bg_max < 1 || probe_max < 1 ||
      r.timeout_s <= 0 || settle_ms < 0 || strlen(label) > 200 || strchr(label, '"') ||
      strchr(label, '\\')) {
    usage(stderr);
    return 2;
  }
  if (arrival && prompt_tokens < 0) prompt_tokens = 64;
  r.label = label;
  r.addr.sin_family = AF_INET;
  r.addr.sin_port = htons((uint16_t)r.port);
  if (inet_pton(AF_INET, r.host, &r.addr.sin_addr) != 1) {
    fprintf(stderr, "streams: --host must be an IPv4 address, got %s\n", r.host);
    return 2;
  }
  struct event_config *cfg = event_config_new();
  event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
  r.base = event_base_new_with_config(cfg);
  event_config_free(cfg);
  r.deadline = evtimer_new(r.base, on_deadline, &r);
  r.s = xcalloc(MAX_STREAMS + 1, sizeof *r.s);
  for (int i = 0; i <= MAX_STREAMS; i++) r.s[i].fd = -1;
  if (r.pid > 0) {
    r.rss_timer = event_new(r.base, -1, EV_PERSIST, on_rss, &r);
    struct timeval tv = {0, 50000};
    event_add(r.rss_timer, &tv);
    on_rss(-1, 0, &r);
  }
  /* The prompt: calibrated against the server's own token count when --prompt-tokens is set. */
  long chars = -1, got = -1;
  if (prompt_tokens > 0) {
    chars = calibrate(&r, &r.s[MAX_STREAMS], prompt_tokens, &got);
    if (chars < 0) {
      fprintf(stderr, "streams: could not calibrate a %ld-token prompt (does the server answer "
              "and report usage.prompt_tokens?)\n", prompt_tokens);
      return 1;
    }
    fprintf(stderr, "  %s: %ld filler bytes -> %ld prompt tokens (target %ld)\n", label, chars, got,
            prompt_tokens);
    r.errors = 0;
  }
  int rc = arrival ? mode_arrival(&r, label, bg, rounds, warmup, chars, prompt_tokens, got,
                                  probe_max, bg_max, settle_ms)
                   : mode_load(&r, label, n, rounds, warmup, max_tokens, chars, got);
  fflush(stdout);
  for (int i = 0; i <= MAX_STREAMS; i++) stream_close(&r.s[i]);
  if (r.rss_timer) event_free(r.rss_timer);
  event_free(r.deadline);
  event_base_free(r.base);
  free(r.s);
  return rc;
}
