/*
 * loadgen.c: an open-loop HTTP/1.1 load generator for the gateway benchmarks.
 *
 *   loadgen --port N [--host 127.0.0.1] [--path /v1/chat/completions] --rate R --duration S
 *           [--warmup S] [--body FILE | --body-text JSON] [--header "K: V"]... [--stream]
 *           [--max-conns N] [--timeout-ms MS] [--label TEXT]
 *
 * Prints one JSON object: counts, the achieved rate, and latency percentiles in microseconds.
 *
 * DESIGN. Open loop: request i is due at t0 + i/R whatever happened to the ones before, and its
 * latency is measured from that intended time, not from when a connection happened to be free to
 * send it. A slow server therefore shows up as latency (queueing included) instead of silently
 * lowering the offered rate, which is the coordinated-omission trap of closed-loop tools like wrk.
 * Sends are driven by a precise timer (EVENT_BASE_FLAG_PRECISE_TIMER: timerfd, microseconds) so
 * the schedule is not rounded to epoll's millisecond timeouts. Due requests go to an idle
 * keep-alive connection, or a new one (up to --max-conns), or wait in a FIFO; a request still
 * waiting or unanswered after --timeout-ms counts as an error. Responses are parsed just enough
 * to find their end (Content-Length or chunked); with --stream also the time to the first body
 * byte. Requests during --warmup are sent but not measured.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#define MAX_HEADERS 16

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

struct req {
  uint64_t idx;
  double due_us;      /* intended send time */
  double sent_us;     /* actually written */
  double first_us;    /* first body byte (streams) */
  bool measured;      /* after the warm-up */
};

enum rstate { R_HEAD, R_BODY_CL, R_CHUNK_SIZE, R_CHUNK_DATA, R_CHUNK_CRLF, R_TRAILER };

struct conn {
  struct gen *g;
  struct bufferevent *bev;
  struct conn *next_idle;
  bool connected, busy, dead;
  struct req cur;
  enum rstate st;
  size_t need;
  int status;
  bool close_after;
};

struct gen {
  struct event_base *base;
  struct event *tick;
  struct sockaddr_in addr;
  char *request;       /* the bytes of one request */
  size_t request_len;
  double rate, duration_s, warmup_s;
  double t0_us;
  uint64_t next_idx, total;  /* requests scheduled so far / in all */
  bool stream;
  int max_conns, n_conns;
  double timeout_us;
  struct conn *idle;
  /* FIFO of due requests waiting for a connection */
  struct req *queue;
  size_t q_head, q_len, q_cap;
  /* results */
  uint64_t sent, ok, bad_status, conn_errors, timeouts, done_all;
  uint64_t status_hist[6];   /* by hundreds: 1xx..5xx, [0] other */
  double *lat, *ttfb, *service;  /* measured, in us */
  size_t n_lat, n_ttfb, n_service, cap_lat;
  double last_done_us;
  uint64_t measured_total;
};

static void conn_start(struct gen *g);
static void dispatch(struct gen *g);

static void *xrealloc(void *p, size_t n) {
  p = realloc(p, n);
  if (!p) {
    fputs("loadgen: out of memory\n", stderr);
    exit(1);
  }
  return p;
}

static void record(struct gen *g, const struct req *r, bool ok, double end_us) {
  g->done_all++;
  g->last_done_us = end_us;
  if (!r->measured) return;
  if (!ok) return;
  if (g->n_lat == g->cap_lat) {
    g->cap_lat = g->cap_lat ? g->cap_lat * 2 : 65536;
    g->lat = xrealloc(g->lat, g->cap_lat * sizeof *g->lat);
    g->ttfb = xrealloc(g->ttfb, g->cap_lat * sizeof *g->ttfb);
    g->service = xrealloc(g->service, g->cap_lat * sizeof *g->service);
  }
  g->lat[g->n_lat++] = end_us - r->due_us;
  g->service[g->n_service++] = end_us - r->sent_us;
  if (g->stream && r->first_us > 0) g->ttfb[g->n_ttfb++] = r->first_us - r->due_us;
}

static void conn_free(struct conn *c) {
  struct gen *g = c->g;
  if (c->busy) {
    g->conn_errors++;
    record(g, &c->cur, false, now_us());
  }
  /* Unlink from the idle list. */
  for (struct conn **pp = &g->idle; *pp; pp = &(*pp)->next_idle)
    if (*pp == c) {
      *pp = c->next_idle;
      break;
    }
  bufferevent_free(c->bev);
  g->n_conns--;
  free(c);
}

static void conn_idle(struct conn *c) {
  c->busy = false;
  c->next_idle = c->g->idle;
  c->g->idle = c;
}

/* Parses what has arrived; returns true when the response is complete. */
static bool parse(struct conn *c, struct evbuffer *in) {
  for (;;) {
    switch (c->st) {
      case R_HEAD: {
        struct evbuffer_ptr p = evbuffer_search(in, "\r\n\r\n", 4, NULL);
        if (p.pos < 0) return false;
        size_t hl = (size_t)p.pos + 4;
        char *h = malloc(hl + 1);
        evbuffer_remove(in, h, hl);
        h[hl] = 0;
        c->status = 0;
        sscanf(h, "HTTP/1.%*d %d", &c->status);
        c->close_after = false;
        bool chunked = false;
        long long cl = 0;
        for (char *line = strstr(h, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
          char *l = line + 2;
          if (!strncasecmp(l, "content-length:", 15)) cl = atoll(l + 15);
          else if (!strncasecmp(l, "transfer-encoding:", 18) && strcasestr(l, "chunked") &&
                   strcasestr(l, "chunked") < strstr(l, "\r\n"))
            chunked = true;
          else if (!strncasecmp(l, "connection:", 11) && strcasestr(l, "close") &&
                   strcasestr(l, "close") < strstr(l, "\r\n"))
            c->close_after = true;
        }
        free(h);
        if (c->status == 100) continue;
        if (chunked) {
          c->st = R_CHUNK_SIZE;
        } else {
          c->st = R_BODY_CL;
          c->need = (size_t)cl;
        }
        break;
      }
      case R_BODY_CL: {
        size_t n = evbuffer_get_length(in);
        if (n && c->cur.first_us == 0) c->cur.first_us = now_us();
        size_t take = n < c->need ? n : c->need;
        evbuffer_drain(in, take);
        c->need -= take;
        if (c->need) return false;
        return true;
      }
      case R_CHUNK_SIZE: {
        size_t n;
        char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF_STRICT);
        if (!line) return false;
        c->need = strtoul(line, NULL, 16);
        free(line);
        if (c->need == 0) {
          c->st = R_TRAILER;
        } else {
          if (c->cur.first_us == 0) c->cur.first_us = now_us();
          c->st = R_CHUNK_DATA;
        }
        break;
      }
      case R_CHUNK_DATA: {
        size_t n = evbuffer_get_length(in);
        size_t take = n < c->need ? n : c->need;
        evbuffer_drain(in, take);
        c->need -= take;
        if (c->need) return false;
        c->st = R_CHUNK_CRLF;
        break;
      }
      case R_CHUNK_CRLF:
        if (evbuffer_get_length(in) < 2) return false;
        evbuffer_drain(in, 2);
        c->st = R_CHUNK_SIZE;
        break;
      case R_TRAILER: {
        size_t n;
        char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF_STRICT);
        if (!line) return false;
        free(line);
        if (n == 0) return true;
        break;
      }
    }
  }
}

static void read_cb(struct bufferevent *bev, void *arg) {
  struct conn *c = arg;
  struct gen *g = c->g;
  struct evbuffer *in = bufferevent_get_input(bev);
  if (!c->busy) {
    /* Bytes nobody asked for. */
    evbuffer_drain(in, evbuffer_get_length(in));
    return;
  }
  if (!parse(c, in)) return;
  double end = now_us();
  bool ok = c->status >= 200 && c->status < 300;
  int h = c->status / 100;
  g->status_hist[h >= 1 && h <= 5 ? h : 0]++;
  if (ok) g->ok++;
  else g->bad_status++;
  c->busy = false;
  record(g, &c->cur, ok, end);
  if (c->close_after) {
    conn_free(c);
  } else {
    conn_idle(c);
  }
  dispatch(g);
}

static void event_cb(struct bufferevent *bev, short what, void *arg) {
  struct conn *c = arg;
  (void)bev;
  if (what & BEV_EVENT_CONNECTED) {
    int one = 1;
    setsockopt(bufferevent_getfd(c->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->connected = true;
    conn_idle(c);
    dispatch(c->g);
    return;
  }
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
    struct gen *g = c->g;
    conn_free(c);
    dispatch(g);
  }
}

static void conn_start(struct gen *g) {
  struct conn *c = calloc(1, sizeof *c);
  c->g = g;
  c->bev = bufferevent_socket_new(g->base, -1, BEV_OPT_CLOSE_ON_FREE);
  bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
  bufferevent_enable(c->bev, EV_READ | EV_WRITE);
  g->n_conns++;
  if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&g->addr, sizeof g->addr)) {
    g->conn_errors++;
    bufferevent_free(c->bev);
    g->n_conns--;
    free(c);
  }
}

static void send_on(struct conn *c, struct req r) {
  struct gen *g = c->g;
  c->busy = true;
  c->cur = r;
  c->cur.sent_us = now_us();
  c->cur.first_us = 0;
  c->st = R_HEAD;
  bufferevent_write(c->bev, g->request, g->request_len);
  g->sent++;
}

/* Sends queued requests on idle connections; expires the ones that waited too long. */
static void dispatch(struct gen *g) {
  double t = now_us();
  while (g->q_len) {
    struct req *r = &g->queue[g->q_head];
    if (t - r->due_us > g->timeout_us) {
      g->timeouts++;
      record(g, r, false, t);
      g->q_head = (g->q_head + 1) % g->q_cap;
      g->q_len--;
      continue;
    }
    struct conn *c = g->idle;
    if (!c) break;
    g->idle = c->next_idle;
    send_on(c, *r);
    g->q_head = (g->q_head + 1) % g->q_cap;
    g->q_len--;
  }
  /* More connections while requests wait (each connect takes a loop turn). */
  int want = (int)g->q_len;
  for (int i = 0; i < want && g->n_conns < g->max_conns; i++) conn_start(g);
}

static void enqueue(struct gen *g, struct req r) {
  if (g->q_len == g->q_cap) {
    size_t cap = g->q_cap ? g->q_cap * 2 : 1024;
    struct req *q = malloc(cap * sizeof *q);
    for (size_t i = 0; i < g->q_len; i++) q[i] = g->queue[(g->q_head + i) % g->q_cap];
    free(g->queue);
    g->queue = q;
    g->q_cap = cap;
    g->q_head = 0;
  }
  g->queue[(g->q_head + g->q_len) % g->q_cap] = r;
  g->q_len++;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg) {
  struct gen *g = arg;
  (void)fd;
  (void)what;
  double t = now_us();
  while (g->next_idx < g->total) {
    double due = g->t0_us + (double)g->next_idx * 1e6 / g->rate;
    if (due > t) break;
    struct req r = {.idx = g->next_idx, .due_us = due,
                    .measured = due >= g->t0_us + g->warmup_s * 1e6};
    if (r.measured) g->measured_total++;
    enqueue(g, r);
    g->next_idx++;
  }
  dispatch(g);
  /* Busy requests that never finish are timeouts too: checked when everything was sent. */
  if (g->next_idx < g->total) {
    double due = g->t0_us + (double)g->next_idx * 1e6 / g->rate;
    double wait = due - now_us();
    if (wait < 0) wait = 0;
    struct timeval tv = {(long)(wait / 1e6), (long)fmod(wait, 1e6)};
    evtimer_add(g->tick, &tv);
  } else if (g->done_all + g->q_len < g->total ||
             g->q_len) {
    /* Waiting for the tail; give up after the timeout. */
    if (t - (g->t0_us + g->duration_s * 1e6) > g->timeout_us) {
      event_base_loopbreak(g->base);
      return;
    }
    struct timeval tv = {0, 10000};
    evtimer_add(g->tick, &tv);
  } else {
    event_base_loopbreak(g->base);
  }
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p) {
  if (!n) return -1;
  size_t i = (size_t)ceil(p / 100.0 * (double)n);
  if (i < 1) i = 1;
  if (i > n) i = n;
  return v[i - 1];
}

static void print_dist(const char *name, double *v, size_t n, bool comma) {
  qsort(v, n, sizeof *v, cmp_d);
  double sum = 0;
  for (size_t i = 0; i < n; i++) sum += v[i];
  printf("\"%s\":{\"n\":%zu,\"mean\":%.1f,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,"
         "\"max\":%.1f}%s",
         name, n, n ? sum / (double)n : -1, pct(v, n, 50), pct(v, n, 90), pct(v, n, 99),
         pct(v, n, 99.9), n ? v[n - 1] : -1, comma ? "," : "");
}

static void usage(void) {
  fputs("usage: loadgen --port N --rate R --duration S [--host A] [--path P] [--warmup S]\n"
        "               [--body FILE | --body-text JSON] [--header 'K: V']... [--stream]\n"
        "               [--max-conns N] [--timeout-ms MS] [--label TEXT]\n",
        stderr);
}

int main(int argc, char **argv) {
  struct gen g;
  memset(&g, 0, sizeof g);
  const char *host = "127.0.0.1", *path = "/v1/chat/completions", *body_file = NULL;
  const char *body_text = NULL, *label = "";
  const char *headers[MAX_HEADERS];
  int n_headers = 0, port = 0;
  g.rate = 1000;
  g.duration_s = 5;
  g.warmup_s = 1;
  g.max_conns = 512;
  g.timeout_us = 5e6;
  static const struct option lo[] = {
      {"host", 1, NULL, 'H'},     {"port", 1, NULL, 'p'},       {"path", 1, NULL, 'P'},
      {"rate", 1, NULL, 'r'},     {"duration", 1, NULL, 'd'},   {"warmup", 1, NULL, 'w'},
      {"body", 1, NULL, 'b'},     {"body-text", 1, NULL, 'B'},  {"header", 1, NULL, 'h'},
      {"stream", 0, NULL, 's'},   {"max-conns", 1, NULL, 'c'},  {"timeout-ms", 1, NULL, 't'},
      {"label", 1, NULL, 'l'},    {NULL, 0, NULL, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    switch (ch) {
      case 'H': host = optarg; break;
      case 'p': port = atoi(optarg); break;
      case 'P': path = optarg; break;
      case 'r': g.rate = atof(optarg); break;
      case 'd': g.duration_s = atof(optarg); break;
      case 'w': g.warmup_s = atof(optarg); break;
      case 'b': body_file = optarg; break;
      case 'B': body_text = optarg; break;
      case 'h':
        if (n_headers < MAX_HEADERS) headers[n_headers++] = optarg;
        break;
      case 's': g.stream = true; break;
      case 'c': g.max_conns = atoi(optarg); break;
      case 't': g.timeout_us = atof(optarg) * 1e3; break;
      case 'l': label = optarg; break;
      default: usage(); return 2;
    }
  }
  if (port <= 0 || g.rate <= 0 || g.duration_s <= 0 || g.max_conns < 1) {
    usage();
    return 2;
  }
  char *body = NULL;
  size_t body_len = 0;
  if (body_file) {
    FILE *f = fopen(body_file, "rb");
    if (!f) {
      perror(body_file);
      return 2;
    }
    fseek(f, 0, SEEK_END);
    body_len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    body = malloc(body_len + 1);
    if (fread(body, 1, body_len, f) != body_len) body_len = 0;
    fclose(f);
  } else {
    body = strdup(body_text ? body_text
                            : "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\","
                              "\"content\":\"hello\"}]}");
    body_len = strlen(body);
  }
  /* One request, built once. */
  size_t cap = body_len + 1024 + (size_t)n_headers * 256;
  g.request = malloc(cap);
  int n = snprintf(g.request, cap,
                   "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\n",
                   path, host, port, body_len);
  for (int i = 0; i < n_headers; i++)
    n += snprintf(g.request + n, cap - (size_t)n, "%s\r\n", headers[i]);
  n += snprintf(g.request + n, cap - (size_t)n, "\r\n");
  memcpy(g.request + n, body, body_len);
  g.request_len = (size_t)n + body_len;
  free(body);

  g.addr.sin_family = AF_INET;
  g.addr.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &g.addr.sin_addr) != 1) {
    fprintf(stderr, "loadgen: bad host %s\n", host);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  struct event_config *cfg = event_config_new();
  event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
  g.base = event_base_new_with_config(cfg);
  event_config_free(cfg);
  g.tick = evtimer_new(g.base, tick_cb, &g);
  g.total = (uint64_t)llround(g.rate * g.duration_s);

  /* A few connections up front, so the first requests do not pay for connects. */
  int pre = (int)(g.rate / 2000) + 4;
  for (int i = 0; i < pre && i < g.max_conns; i++) conn_start(&g);
  struct timeval settle = {0, 100000};
  event_base_loopexit(g.base, &settle);
  event_base_dispatch(g.base);

  g.t0_us = now_us();
  struct timeval zero = {0, 0};
  evtimer_add(g.tick, &zero);
  event_base_dispatch(g.base);
  double wall_s = (g.last_done_us - g.t0_us) / 1e6;

  /* Whatever is still in flight now never finished. */
  uint64_t unfinished = g.total > g.done_all ? g.total - g.done_all : 0;
  g.timeouts += unfinished;
  uint64_t errors = g.bad_status + g.conn_errors + g.timeouts;
  printf("{\"label\":\"%s\",\"rate\":%.0f,\"duration_s\":%.1f,\"warmup_s\":%.1f,\"stream\":%s,"
         "\"requests\":%llu,\"sent\":%llu,\"ok\":%llu,\"errors\":%llu,\"bad_status\":%llu,"
         "\"conn_errors\":%llu,\"timeouts\":%llu,\"status\":{\"2xx\":%llu,\"4xx\":%llu,"
         "\"5xx\":%llu},\"connections\":%d,\"achieved_rps\":%.1f,",
         label, g.rate, g.duration_s, g.warmup_s, g.stream ? "true" : "false",
         (unsigned long long)g.total, (unsigned long long)g.sent, (unsigned long long)g.ok,
         (unsigned long long)errors, (unsigned long long)g.bad_status,
         (unsigned long long)g.conn_errors, (unsigned long long)g.timeouts,
         (unsigned long long)g.status_hist[2], (unsigned long long)g.status_hist[4],
         (unsigned long long)g.status_hist[5], g.n_conns,
         wall_s > 0 ? (double)g.ok / wall_s : 0);
  print_dist("latency_us", g.lat, g.n_lat, true);
  print_dist("service_us", g.service, g.n_service, g.stream);
  if (g.stream) print_dist("ttfb_us", g.ttfb, g.n_ttfb, false);
  printf("}\n");
  while (g.idle) {
    struct conn *c = g.idle;
    g.idle = c->next_idle;
    bufferevent_free(c->bev);
    free(c);
  }
  event_free(g.tick);
  event_base_free(g.base);
  free(g.request);
  free(g.queue);
  free(g.lat);
  free(g.ttfb);
  free(g.service);
  return errors ? 1 : 0;
}
