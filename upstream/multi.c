/*
 * multi.c: libcurl's multi interface driven by a libevent loop (contract in upstream.h).
 *
 * DESIGN. libcurl tells us which sockets to watch (sock_cb) and when to wake it up (timer_cb); we
 * mirror both with libevent events and call curl_multi_socket_action() when they fire, then read
 * finished transfers with curl_multi_info_read() (check_done). Per-transfer state hangs on
 * CURLOPT_PRIVATE, per-socket state on curl_multi_assign().
 *
 * Traps:
 * - curl_multi_remove_handle() must not run inside a libcurl callback. up_cancel() can be called
 *   from anywhere (including another transfer's write callback), so it only flags the transfer and
 *   queues it on a "reap" event that removes and frees it from a clean stack frame. A flagged
 *   transfer answers every later libcurl callback with an error so no byte reaches its owner.
 * - libcurl has no "first byte" nor "idle" timeout: one per-transfer libevent timer serves both:
 *   until the status line it is the first-byte deadline, afterwards it is re-armed with the idle
 *   timeout at every delivery (and stopped while the receiver has paused the transfer).
 * - curl_easy_pause(CONT) may run the write callback synchronously: up_resume() can re-enter
 *   on_data (documented in the header).
 * - Easy handles are recycled (curl_easy_reset) through a small free list; connections live in the
 *   multi handle's pool whatever easy handle used them.
 * - CURLOPT_PIPEWAIT only on https URLs: on plain http it queued every request to a cold host
 *   behind the first response (see up_start).
 */
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "upstream/upstream.h"

#define MAX_HEADER_BYTES (64 * 1024) /* response header block cap; extra headers are dropped */
#define MAX_HEADERS 128
#define EASY_POOL_MAX 64

struct up_sock {
  struct up_sock *prev, *next;
  struct event *ev;
  curl_socket_t fd;
};

struct up_multi {
  struct event_base *base;
  CURLM *multi;
  struct event *timer;     /* libcurl's single timeout */
  struct event *reaper;    /* removes cancelled transfers outside libcurl callbacks */
  struct up_transfer *active;   /* doubly linked, every transfer still owned by the multi */
  struct up_transfer *reap;     /* cancelled, waiting for the reaper (singly linked via reap_next) */
  struct up_sock *socks;
  CURL *pool[EASY_POOL_MAX];
  int n_pool;
  size_t n_active;
};

struct up_transfer {
  struct up_multi *m;
  struct up_transfer *prev, *next, *reap_next;
  CURL *easy;
  struct curl_slist *hdrs;
  char *body;
  struct up_callbacks cb;
  void *ud;
  struct event *fb_timer;  /* first-byte deadline, then idle deadline */
  int fb_ms, idle_ms;
  double t_start, t_first_byte;
  /* response header block: "name\0value\0" pairs, indexed once complete */
  char *hbuf;
  size_t hlen, hcap;
  size_t nh;
  struct up_header *harr;
  int http_status;
  bool headers_done, cancelled, aborted, done, in_reap, paused;
  enum up_status forced;   /* set by our own timers; UP_OK when libcurl's verdict stands */
  char errbuf[CURL_ERROR_SIZE];
};

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

const char *up_status_name(enum up_status s) {
  switch (s) {
  case UP_OK: return "ok";
  case UP_ERR_CONNECT: return "connect";
  case UP_ERR_TIMEOUT_CONNECT: return "timeout_connect";
  case UP_ERR_TIMEOUT_FIRST_BYTE: return "timeout_first_byte";
  case UP_ERR_TIMEOUT_IDLE: return "timeout_idle";
  case UP_ERR_TIMEOUT_TOTAL: return "timeout_total";
  case UP_ERR_RECV: return "recv";
  case UP_ERR_ABORTED: return "aborted";
  case UP_ERR_OTHER: return "other";
  }
  return "?";
}

/* ------------------------------------------------------------------ event plumbing */

static void check_done(struct up_multi *m);

static void sock_event_cb(evutil_socket_t fd, short kind, void *arg) {
  struct up_multi *m = arg;
  int action = ((kind & EV_READ) ? CURL_CSELECT_IN : 0) | ((kind & EV_WRITE) ? CURL_CSELECT_OUT : 0);
  int running = 0;
  curl_multi_socket_action(m->multi, fd, action, &running);
  check_done(m);
}

static void timer_event_cb(evutil_socket_t fd, short kind, void *arg) {
  struct up_multi *m = arg;
  int running = 0;
  curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(m);
}

/* CURLMOPT_TIMERFUNCTION: -1 deletes the timer, 0 means "as soon as possible" (next loop turn:
 * calling socket_action from here is not allowed). */
static int multi_timer_cb(CURLM *multi, long timeout_ms, void *userp) {
  struct up_multi *m = userp;
  if (timeout_ms < 0) {
    evtimer_del(m->timer);
  } else {
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(m->timer, &tv);
  }
  return 0;
}

static void sock_free(struct up_multi *m, struct up_sock *s) {
  if (s->prev) s->prev->next = s->next;
  else m->socks = s->next;
  if (s->next) s->next->prev = s->prev;
  event_free(s->ev);
  free(s);
}

/* CURLMOPT_SOCKETFUNCTION */
static int multi_sock_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp) {
  struct up_multi *m = userp;
  struct up_sock *s = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (s) {
      curl_multi_assign(m->multi, fd, NULL);
      sock_free(m, s);
    }
    return 0;
  }
  short flags = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
                ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
  if (!s) {
    s = calloc(1, sizeof *s);
    if (!s) return -1;
    s->fd = fd;
    s->ev = event_new(m->base, fd, flags, sock_event_cb, m);
    if (!s->ev) {
      free(s);
      return -1;
    }
    s->next = m->socks;
    if (m->socks) m->socks->prev = s;
    m->socks = s;
    curl_multi_assign(m->multi, fd, s);
  } else {
    event_del(s->ev);
    event_assign(s->ev, m->base, fd, flags, sock_event_cb, m);
  }
  event_add(s->ev, NULL);
  return 0;
}

/* ------------------------------------------------------------------ transfer lifetime */

static void transfer_free(struct up_transfer *t) {
  struct up_multi *m = t->m;
  if (t->prev) t->prev->next = t->next;
  else if (m->active == t) m->active = t->next;
  if (t->next) t->next->prev = t->prev;
  m->n_active--;
  if (t->fb_timer) event_free(t->fb_timer);
  curl_slist_free_all(t->hdrs);
  free(t->body);
  free(t->hbuf);
  free(t->harr);
  if (t->easy) {
    if (m->n_pool < EASY_POOL_MAX) {
      curl_easy_reset(t->easy);
      m->pool[m->n_pool++] = t->easy;
    } else {
      curl_easy_cleanup(t->easy);
    }
  }
  free(t);
}

static enum up_status classify(struct up_transfer *t, CURLcode code) {
  if (t->forced != UP_OK) return t->forced;
  switch (code) {
  case CURLE_OK: return UP_OK;
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
  case CURLE_COULDNT_CONNECT:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
    return UP_ERR_CONNECT;
  case CURLE_OPERATION_TIMEDOUT: {
    curl_off_t pre = 0;
    curl_easy_getinfo(t->easy, CURLINFO_PRETRANSFER_TIME_T, &pre);
    if (pre == 0) return UP_ERR_TIMEOUT_CONNECT;
    return t->http_status ? UP_ERR_TIMEOUT_TOTAL : UP_ERR_TIMEOUT_FIRST_BYTE;
  }
  case CURLE_WRITE_ERROR:
    return t->aborted ? UP_ERR_ABORTED : UP_ERR_OTHER;
  case CURLE_RECV_ERROR:
  case CURLE_SEND_ERROR:
  case CURLE_PARTIAL_FILE:
  case CURLE_GOT_NOTHING:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
  case CURLE_WEIRD_SERVER_REPLY:
  case CURLE_BAD_CONTENT_ENCODING:
    return UP_ERR_RECV;
  default:
    return UP_ERR_OTHER;
  }
}

/* Ends T with a verdict: fills the result, runs on_done, frees T. The handle must already be out
 * of the multi. */
static void transfer_end(struct up_transfer *t, CURLcode code) {
  struct up_result r;
  memset(&r, 0, sizeof r);
  r.status = classify(t, code);
  r.http_status = t->http_status;
  double now = now_ms();
  r.total_ms = now - t->t_start;
  r.first_byte_ms = t->t_first_byte > 0 ? t->t_first_byte - t->t_start : -1;
  curl_off_t ct = 0;
  long v = 0, nconn = 0;
  curl_easy_getinfo(t->easy, CURLINFO_CONNECT_TIME_T, &ct);
  curl_easy_getinfo(t->easy, CURLINFO_HTTP_VERSION, &v);
  curl_easy_getinfo(t->easy, CURLINFO_NUM_CONNECTS, &nconn);
  r.connect_ms = (double)ct / 1e3;
  r.http_version = v == CURL_HTTP_VERSION_2_0 ? 2 : v == CURL_HTTP_VERSION_1_1 ? 11
                   : v == CURL_HTTP_VERSION_1_0 ? 10 : 0;
  r.reused_connection = nconn == 0;
  if (r.status != UP_OK) {
    const char *why = t->errbuf[0] ? t->errbuf : curl_easy_strerror(code);
    switch (r.status) {
    case UP_ERR_TIMEOUT_FIRST_BYTE:
      snprintf(r.message, sizeof r.message, "no response from upstream within the first-byte timeout");
      break;
    case UP_ERR_TIMEOUT_IDLE:
      snprintf(r.message, sizeof r.message, "upstream went silent for longer than the idle timeout");
      break;
    case UP_ERR_ABORTED:
      snprintf(r.message, sizeof r.message, "transfer aborted by the receiver");
      break;
    default:
      snprintf(r.message, sizeof r.message, "%s", why);
    }
  }
  t->done = true;
  if (t->cb.on_done && !t->cancelled) t->cb.on_done(t->ud, &r);
  if (t->cancelled && t->in_reap) return; /* the reaper frees it */
  transfer_free(t);
}

static void check_done(struct up_multi *m) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(m->multi, &left))) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL *e = msg->easy_handle;
    CURLcode code = msg->data.result;
    struct up_transfer *t = NULL;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&t);
    if (!t || t->cancelled) continue; /* the reaper owns cancelled transfers */
    curl_multi_remove_handle(m->multi, e);
    if (t->fb_timer) evtimer_del(t->fb_timer);
    transfer_end(t, code);
  }
}

static void reaper_cb(evutil_socket_t fd, short kind, void *arg) {
  struct up_multi *m = arg;
  while (m->reap) {
    struct up_transfer *t = m->reap;
    m->reap = t->reap_next;
    curl_multi_remove_handle(m->multi, t->easy);
    transfer_free(t);
  }
}

static void arm(struct up_transfer *t, int ms) {
  if (!t->fb_timer) return;
  if (ms <= 0) {
    evtimer_del(t->fb_timer);
    return;
  }
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  evtimer_add(t->fb_timer, &tv);
}

static void deadline_cb(evutil_socket_t fd, short kind, void *arg) {
  struct up_transfer *t = arg;
  if (t->cancelled || t->done || t->paused) return;
  t->forced = t->http_status ? UP_ERR_TIMEOUT_IDLE : UP_ERR_TIMEOUT_FIRST_BYTE;
  curl_multi_remove_handle(t->m->multi, t->easy);
  transfer_end(t, CURLE_OPERATION_TIMEDOUT);
}

/* ------------------------------------------------------------------ libcurl data callbacks */

static size_t header_cb(char *p, size_t size, size_t nitems, void *userdata) {
  struct up_transfer *t = userdata;
  size_t n = size * nitems;
  if (t->cancelled) return 0; /* != n: libcurl aborts */
  if (t->headers_done) return n; /* trailers: ignored */
  size_t len = n;
  while (len && (p[len - 1] == '\n' || p[len - 1] == '\r')) len--;
  if (len >= 5 && !memcmp(p, "HTTP/", 5)) {
    /* a status line starts a new header block (after 1xx blocks too) */
    const char *sp = memchr(p, ' ', len);
    int code = 0;
    if (sp) {
      for (const char *q = sp + 1; q < p + len && *q >= '0' && *q <= '9' && code < 1000; q++)
        code = code * 10 + (*q - '0');
    }
    if (!t->http_status) {
      t->t_first_byte = now_ms();
      arm(t, t->idle_ms);
    }
    t->http_status = code ? code : 1;
    t->hlen = 0;
    t->nh = 0;
    return n;
  }
  if (len == 0) {
    if (t->http_status >= 200 || t->http_status == 1) {
      t->headers_done = true;
      free(t->harr);
      t->harr = t->nh ? calloc(t->nh, sizeof *t->harr) : NULL;
      size_t k = 0;
      for (size_t off = 0; k < t->nh && t->harr && off < t->hlen; k++) {
        t->harr[k].name = t->hbuf + off;
        off += strlen(t->hbuf + off) + 1;
        t->harr[k].value = t->hbuf + off;
        off += strlen(t->hbuf + off) + 1;
      }
      if (t->cb.on_headers) t->cb.on_headers(t->ud, t->http_status, t->harr, t->harr ? k : 0);
      if (t->cancelled) return 0;
    }
    return n;
  }
  const char *colon = memchr(p, ':', len);
  if (!colon || colon == p || t->nh >= MAX_HEADERS) return n;
  size_t nlen = (size_t)(colon - p);
  const char *v = colon + 1;
  size_t vlen = (size_t)(p + len - v);
  while (vlen && (*v == ' ' || *v == '\t')) v++, vlen--;
  while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t')) vlen--;
  if (memchr(p, '\0', nlen) || memchr(v, '\0', vlen)) {
    /* stored NUL-separated, so it cannot be kept; a NUL never belongs in a header anyway */
    fprintf(stderr, "tiergate: upstream header dropped: NUL byte in it\n");
    return n;
  }
  size_t need = t->hlen + nlen + vlen + 2;
  if (need > MAX_HEADER_BYTES) return n;
  if (need > t->hcap) {
    /* grows while the block is read; pointers into it are only taken once it is complete */
    size_t cap = t->hcap ? t->hcap : 1024;
    while (cap < need) cap *= 2;
    char *b = realloc(t->hbuf, cap);
    if (!b) return n;
    t->hbuf = b;
    t->hcap = cap;
  }
  memcpy(t->hbuf + t->hlen, p, nlen);
  t->hbuf[t->hlen + nlen] = '\0';
  t->hlen += nlen + 1;
  memcpy(t->hbuf + t->hlen, v, vlen);
  t->hbuf[t->hlen + vlen] = '\0';
  t->hlen += vlen + 1;
  t->nh++;
  return n;
}

static size_t write_cb(char *p, size_t size, size_t nmemb, void *userdata) {
  struct up_transfer *t = userdata;
  size_t n = size * nmemb;
  if (t->cancelled) return CURL_WRITEFUNC_ERROR;
  if (!t->cb.on_data || n == 0) return n;
  t->paused = false;
  int rc = t->cb.on_data(t->ud, p, n);
  if (t->cancelled) return CURL_WRITEFUNC_ERROR;
  if (rc == UP_DATA_PAUSE) {
    t->paused = true; /* the receiver is slow, not the upstream: no idle deadline meanwhile */
    arm(t, 0);
    return CURL_WRITEFUNC_PAUSE;
  }
  arm(t, t->idle_ms);
  if (rc < 0) {
    t->aborted = true;
    return CURL_WRITEFUNC_ERROR;
  }
  return n;
}

/* ------------------------------------------------------------------ public API */

/* Is URL https (case-insensitive scheme)? */
static bool is_https(const char *url) {
  static const char https[] = "https://";
  for (size_t i = 0; i < sizeof https - 1; i++) {
    char c = url[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
    if (c != https[i]) return false;
  }
  return true;
}

struct up_multi *up_multi_new(struct event_base *base, char *err, size_t errlen) {
  struct up_multi *m = calloc(1, sizeof *m);
  if (!m) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  m->base = base;
  m->multi = curl_multi_init();
  m->timer = evtimer_new(base, timer_event_cb, m);
  m->reaper = event_new(base, -1, 0, reaper_cb, m);
  if (!m->multi || !m->timer || !m->reaper) {
    snprintf(err, errlen, "cannot create the libcurl multi handle or its events");
    up_multi_free(m);
    return NULL;
  }
  curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, multi_sock_cb);
  curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
  curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, multi_timer_cb);
  curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
  curl_multi_setopt(m->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  /* keep enough idle connections for bursts; libcurl's default shrinks with the handle count */
  curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, 256L);
  /* no cap per host (0, libcurl's default, stated here because a cap would queue HTTP/1.1
   * requests behind slow streams exactly like PIPEWAIT did); MAX_TOTAL_CONNECTIONS stays 0 too */
  curl_multi_setopt(m->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
  return m;
}

void up_multi_free(struct up_multi *m) {
  if (!m) return;
  while (m->active) {
    struct up_transfer *t = m->active;
    if (m->multi) curl_multi_remove_handle(m->multi, t->easy);
    transfer_free(t);
  }
  m->reap = NULL;
  for (int i = 0; i < m->n_pool; i++) curl_easy_cleanup(m->pool[i]);
  if (m->multi) curl_multi_cleanup(m->multi);
  while (m->socks) sock_free(m, m->socks);
  if (m->timer) event_free(m->timer);
  if (m->reaper) event_free(m->reaper);
  free(m);
}

size_t up_multi_active(const struct up_multi *m) { return m ? m->n_active : 0; }

struct up_transfer *up_start(struct up_multi *m, const struct up_request *rq,
                             const struct up_callbacks *cb, void *ud) {
  if (!m || !rq || !rq->url) return NULL;
  struct up_transfer *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->m = m;
  t->cb = *cb;
  t->ud = ud;
  t->easy = m->n_pool ? m->pool[--m->n_pool] : curl_easy_init();
  if (!t->easy) {
    free(t);
    return NULL;
  }
  /* link first so transfer_free() can undo everything on the error paths below */
  t->next = m->active;
  if (m->active) m->active->prev = t;
  m->active = t;
  m->n_active++;

  bool ok = true;
  for (size_t i = 0; i < rq->n_headers && ok; i++) {
    struct curl_slist *n = curl_slist_append(t->hdrs, rq->headers[i]);
    if (!n) ok = false;
    else t->hdrs = n;
  }
  /* no "Expect: 100-continue" round trip for large bodies: the upstreams answer directly */
  struct curl_slist *n = ok ? curl_slist_append(t->hdrs, "Expect:") : NULL;
  if (!n) ok = false;
  else t->hdrs = n;
  if (ok && rq->body_len) {
    t->body = malloc(rq->body_len);
    if (!t->body) ok = false;
    else memcpy(t->body, rq->body, rq->body_len);
  }
  t->fb_ms = rq->first_byte_timeout_ms;
  t->idle_ms = rq->idle_timeout_ms;
  if (ok && (t->fb_ms > 0 || t->idle_ms > 0)) {
    t->fb_timer = evtimer_new(m->base, deadline_cb, t);
    if (!t->fb_timer) ok = false;
  }
  if (!ok) {
    transfer_free(t);
    return NULL;
  }

  CURL *e = t->easy;
  curl_easy_setopt(e, CURLOPT_URL, rq->url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, t);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->hdrs);
  const char *method = rq->method ? rq->method : "POST";
  if (!strcmp(method, "GET")) {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->body ? t->body : "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
    if (strcmp(method, "POST")) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  }
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  /* PIPEWAIT makes a transfer wait for a connection that is still being set up to say whether it
   * multiplexes, instead of opening its own. Only an https upstream can say yes (h2 through ALPN,
   * known once the TLS handshake ends). Over plain http (llama-server, vLLM, Ollama and most
   * local servers: HTTP/1.1) libcurl learns it only from the first response, so every request to
   * a cold host queued behind the first one: one slow stream held the others for its whole
   * length. Plain http therefore opens parallel connections at once. */
  curl_easy_setopt(e, CURLOPT_PIPEWAIT, is_https(rq->url) ? 1L : 0L);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  /* libcurl's receive buffer is per transfer in flight (16 KiB by default): 4 KiB holds an SSE
   * frame or most replies in one read and saves ~12 KiB per concurrent call (measured: 500
   * streams in flight, RSS 44.6 -> 36.8 MB) */
  curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 4096L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  if (rq->connect_timeout_ms > 0)
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)rq->connect_timeout_ms);
  if (rq->total_timeout_ms > 0) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)rq->total_timeout_ms);
  if (rq->ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, rq->ca_file);

  t->t_start = now_ms();
  if (curl_multi_add_handle(m->multi, e) != CURLM_OK) {
    transfer_free(t);
    return NULL;
  }
  arm(t, t->fb_ms);
  return t;
}

void up_cancel(struct up_transfer *t) {
  if (!t || t->cancelled) return;
  t->cancelled = true;
  if (t->done) return; /* inside its own on_done: freed right after */
  if (t->fb_timer) evtimer_del(t->fb_timer);
  t->in_reap = true;
  t->reap_next = t->m->reap;
  t->m->reap = t;
  event_active(t->m->reaper, 0, 0);
}

void up_resume(struct up_transfer *t) {
  if (!t || t->cancelled || t->done) return;
  if (t->paused) {
    t->paused = false;
    arm(t, t->idle_ms);
  }
  curl_easy_pause(t->easy, CURLPAUSE_CONT);
}
