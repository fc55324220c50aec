/*
 * test_multi.c: upstream/multi.c against the loopback test server: plain and streamed replies,
 * connection reuse, every failure class (connect, first-byte/total timeout, reset before and
 * during the body, abort), cancel from inside a callback, pause/resume, concurrency, teardown.
 */
#include <curl/curl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "testsrv.h"
#include "upstream/upstream.h"

static struct event_base *base;
static struct up_multi *multi;
static int port;

struct res {
  int status;                /* from on_headers */
  char xreqid[64];
  int n_data;
  size_t bytes;
  char body[8192];           /* first bytes */
  bool done;
  struct up_result r;
  int pause_first;           /* return UP_DATA_PAUSE on the first call */
  int abort_after;           /* return UP_DATA_ABORT at this call */
  int cancel_after;          /* up_cancel at this call */
  size_t first_len;          /* length of the first delivery (pause test) */
  struct up_transfer *t;
};

static void on_headers(void *ud, int status, const struct up_header *h, size_t n) {
  struct res *r = ud;
  r->status = status;
  for (size_t i = 0; i < n; i++)
    if (!strcasecmp(h[i].name, "x-request-id")) snprintf(r->xreqid, sizeof r->xreqid, "%s", h[i].value);
}

static int on_data(void *ud, const char *p, size_t n) {
  struct res *r = ud;
  if (r->pause_first == 1) {
    r->pause_first = 2;
    r->first_len = n;
    return UP_DATA_PAUSE;
  }
  r->n_data++;
  if (r->bytes + n < sizeof r->body) memcpy(r->body + r->bytes, p, n);
  r->bytes += n;
  if (r->abort_after && r->n_data == r->abort_after) return UP_DATA_ABORT;
  if (r->cancel_after && r->n_data == r->cancel_after) up_cancel(r->t);
  return UP_DATA_OK;
}

static void on_done(void *ud, const struct up_result *res) {
  struct res *r = ud;
  r->done = true;
  r->r = *res;
}

static const struct up_callbacks cbs = {on_headers, on_data, on_done};

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Runs the loop until every res is done or ms elapse. */
static void run_until(struct res **rs, int n, int ms) {
  double end = now_ms() + ms;
  while (now_ms() < end) {
    int all = 1;
    for (int i = 0; i < n; i++) all &= rs[i]->done;
    if (all) return;
    struct timeval tv = {0, 5000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
  }
}

static void run_for(int ms) {
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  event_base_loopexit(base, &tv);
  event_base_dispatch(base);
}

static struct up_transfer *start(struct res *r, const char *mode_body, int fb_ms, int total_ms, int p) {
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/chat/completions", p);
  const char *hdrs[] = {"Content-Type: application/json", "Authorization: Bearer sk-test"};
  struct up_request rq = {.url = url, .method = "POST", .headers = hdrs, .n_headers = 2,
                          .body = mode_body, .body_len = strlen(mode_body),
                          .connect_timeout_ms = 1000, .first_byte_timeout_ms = fb_ms,
                          .total_timeout_ms = total_ms};
  r->t = up_start(multi, &rq, &cbs, r);
  return r->t;
}

static void resume_cb(evutil_socket_t fd, short k, void *arg) {
  struct res *r = arg;
  up_resume(r->t);
}

int main(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  struct testsrv *srv = testsrv_start(&port);
  CHECK(srv != NULL);
  if (!srv) return check_done();
  base = event_base_new();
  char err[128];
  multi = up_multi_new(base, err, sizeof err);
  CHECK(multi != NULL);

  /* plain, then again on the reused connection */
  {
    struct res a = {0}, b = {0};
    struct res *rs[] = {&a};
    CHECK(start(&a, "{\"model\":\"m\",\"x\":\"MODE:plain\"}", 2000, 5000, port) != NULL);
    run_until(rs, 1, 3000);
    CHECK(a.done);
    CHECK_EQ_INT(a.r.status, UP_OK);
    CHECK_EQ_INT(a.r.http_status, 200);
    CHECK_EQ_INT(a.status, 200);
    CHECK_STR(a.xreqid, "upstream-req-1");
    CHECK(strstr(a.body, "\"chatcmpl-t1\"") != NULL);
    CHECK_EQ_INT(a.r.http_version, 11);
    CHECK(a.r.first_byte_ms >= 0 && a.r.first_byte_ms <= a.r.total_ms);
    CHECK(!a.r.reused_connection);
    rs[0] = &b;
    start(&b, "{\"x\":\"MODE:plain\"}", 2000, 5000, port);
    run_until(rs, 1, 3000);
    CHECK_EQ_INT(b.r.status, UP_OK);
    CHECK(b.r.reused_connection);
    CHECK_EQ_INT(up_multi_active(multi), 0);
  }

  /* streamed: several deliveries as the server writes them */
  {
    struct res a = {0};
    struct res *rs[] = {&a};
    start(&a, "{\"stream\":true,\"x\":\"MODE:sse\",\"stream_options\":{\"include_usage\":true}}", 2000, 5000, port);
    run_until(rs, 1, 3000);
    CHECK_EQ_INT(a.r.status, UP_OK);
    CHECK(a.n_data >= 3);
    CHECK(strstr(a.body, "data: [DONE]") != NULL);
    CHECK(strstr(a.body, "\"choices\":[],\"usage\"") != NULL);
  }

  /* pause on the first delivery, resume 50 ms later: the same bytes come again */
  {
    struct res a = {0}, ref = {0};
    struct res *rs[] = {&ref};
    start(&ref, "{\"stream\":true,\"x\":\"MODE:sse\"}", 2000, 5000, port);
    run_until(rs, 1, 3000);
    a.pause_first = 1;
    rs[0] = &a;
    start(&a, "{\"stream\":true,\"x\":\"MODE:sse\"}", 2000, 5000, port);
    struct event *ev = evtimer_new(base, resume_cb, &a);
    struct timeval tv = {0, 50000};
    evtimer_add(ev, &tv);
    run_until(rs, 1, 3000);
    event_free(ev);
    CHECK_EQ_INT(a.r.status, UP_OK);
    CHECK_EQ_INT(a.pause_first, 2);
    CHECK(a.first_len > 0);
    CHECK_EQ_INT(a.bytes, ref.bytes);
    CHECK(a.bytes < sizeof a.body && memcmp(a.body, ref.body, a.bytes) == 0);
  }

  /* first-byte timeout: the server never answers */
  {
    struct res a = {0};
    struct res *rs[] = {&a};
    double t0 = now_ms();
    start(&a, "MODE:stall", 200, 5000, port);
    run_until(rs, 1, 3000);
    double el = now_ms() - t0;
    CHECK_EQ_INT(a.r.status, UP_ERR_TIMEOUT_FIRST_BYTE);
    CHECK_EQ_INT(a.r.http_status, 0);
    CHECK_MSG(el >= 190 && el < 1500, "first-byte timeout after %.1f ms", el);
  }

  /* total timeout in the middle of a slow stream */
  {
    struct res a = {0};
    struct res *rs[] = {&a};
    start(&a, "{\"stream\":true,\"x\":\"MODE:slowsse\"}", 1000, 300, port);
    run_until(rs, 1, 3000);
    CHECK_EQ_INT(a.r.status, UP_ERR_TIMEOUT_TOTAL);
    CHECK_EQ_INT(a.r.http_status, 200);
    CHECK(a.n_data >= 2);
  }

  /* idle timeout: chunks come every 50 ms, 20 ms of silence is too much */
  {
    struct res a = {0};
    struct res *rs[] = {&a};
    struct up_request rq;
    (void)rq;
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/chat/completions", port);
    const char *body = "{\"stream\":true,\"x\":\"MODE:slowsse\"}";
    struct up_request r2 = {.url = url, .body = body, .body_len = strlen(body),
                            .first_byte_timeout_ms = 1000, .idle_timeout_ms = 20, .total_timeout_ms = 5000};
    a.t = up_start(multi, &r2, &cbs, &a);
    run_until(rs, 1, 3000);
    CHECK_EQ_INT(a.r.status, UP_ERR_TIMEOUT_IDLE);
    CHECK_EQ_INT(a.r.http_status, 200);
    CHECK_STR(up_status_name(a.r.status), "timeout_idle");
  }

  /* connection refused: a port nobody listens on */
  {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&sin, sizeof sin);
    socklen_t sl = sizeof sin;
    getsockname(fd, (struct sockaddr *)&sin, &sl);
    int dead = ntohs(sin.sin_port);
    close(fd);
    struct res a = {0};
    struct res *rs[] = {&a};
    start(&a, "MODE:plain", 1000, 2000, dead);
    run_until(rs, 1, 3000);
    CHECK_EQ_INT(a.r.status, UP_ERR_CONNECT);
    CHECK(a.r.message[0] != '\0');
    CHECK_STR(up_status_name(a.r.status), "connect");
  }

  /* reset before any byte, and in the middle of a stream */
  {
    struct res a = {0}, b = {0};
    struct res *rs[] = {&a, &b};
    start(&a, "MODE:reset", 1000, 2000, port);
    start(&b, "{\"stream\":true,\"x\":\"MODE:midreset\"}", 1000, 2000, port);
    run_until(rs, 2, 3000);
    CHECK_EQ_INT(a.r.status, UP_ERR_RECV);
    CHECK_EQ_INT(b.r.status, UP_ERR_RECV);
    CHECK_EQ_INT(b.r.http_status, 200);
    CHECK(b.n_data >= 1);
  }

  /* the receiver aborts */
  {
    struct res a = {0};
    struct res *rs[] = {&a};
    a.abort_after = 1;
    start(&a, "{\"stream\":true,\"x\":\"MODE:slowsse\"}", 1000, 5000, port);
    run_until(rs, 1, 3000);
    CHECK_EQ_INT(a.r.status, UP_ERR_ABORTED);
  }

  /* cancel from inside on_data: no on_done, the server sees the connection go */
  {
    struct testsrv_stats before, after;
    testsrv_stats(srv, &before);
    struct res a = {0};
    a.cancel_after = 2;
    start(&a, "{\"stream\":true,\"x\":\"MODE:slowsse\"}", 1000, 5000, port);
    double end = now_ms() + 3000;
    while (a.n_data < 2 && now_ms() < end) run_for(10);
    run_for(200);
    CHECK_EQ_INT(a.n_data, 2);
    CHECK(!a.done);
    CHECK_EQ_INT(up_multi_active(multi), 0);
    testsrv_stats(srv, &after);
    CHECK_EQ_INT(after.peer_closed - before.peer_closed, 1);
  }

  /* cancel from outside, before anything arrived */
  {
    struct res a = {0};
    start(&a, "MODE:stall", 0, 0, port);
    run_for(20);
    up_cancel(a.t);
    run_for(50);
    CHECK(!a.done);
    CHECK_EQ_INT(up_multi_active(multi), 0);
  }

  /* 50 at once */
  {
    enum { N = 50 };
    static struct res many[N];
    struct res *rs[N];
    for (int i = 0; i < N; i++) {
      memset(&many[i], 0, sizeof many[i]);
      rs[i] = &many[i];
      start(&many[i], i % 2 ? "MODE:plain" : "{\"stream\":true,\"x\":\"MODE:sse\"}", 2000, 5000, port);
    }
    run_until(rs, N, 5000);
    int ok = 0;
    for (int i = 0; i < N; i++) ok += many[i].done && many[i].r.status == UP_OK && many[i].status == 200;
    CHECK_EQ_INT(ok, N);
  }

  /* GET works too */
  {
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/mode/plain", port);
    struct res a = {0};
    struct res *rs[] = {&a};
    struct up_request rq = {.url = url, .method = "GET"};
    a.t = up_start(multi, &rq, &cbs, &a);
    run_until(rs, 1, 3000);
    CHECK_EQ_INT(a.r.status, UP_OK);
    CHECK(strstr(a.body, "chatcmpl-t1") != NULL);
  }

  /* teardown with a transfer still running: no callback, no leak (ASan) */
  {
    struct res a = {0};
    start(&a, "MODE:stall", 0, 0, port);
    run_for(20);
    up_multi_free(multi);
    multi = NULL;
    CHECK(!a.done);
  }
  event_base_free(base);
  testsrv_stop(srv);
  curl_global_cleanup();
  return check_done();
}
