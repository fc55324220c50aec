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

/* HTTP/2 over TLS against nghttpd (Debian's nghttp2-server, in tests/run.sh's packages) with a
 * self-signed certificate made here by openssl: on a cold pool, 8 GETs started together share one
 * connection (PIPEWAIT still waits for ALPN on https) and every one is answered over h2. Returns
 * without checking when either binary is missing (printed as a skip). */
static void test_h2(void) {
  if (system("command -v nghttpd >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1") != 0) {
    printf("SKIP h2: nghttpd or openssl missing (apt-get install nghttp2-server openssl)\n");
    return;
  }
  char dir[] = "/tmp/tg_h2_XXXXXX";
  if (!mkdtemp(dir)) {
    CHECK(0);
    return;
  }
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem "
           "-days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1 && "
           "mkdir -p www && printf 'hello h2' > www/x.txt",
           dir);
  CHECK_EQ_INT(system(cmd), 0);
  /* a free port: bind 0, read it, close, hand it to nghttpd */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bind(fd, (struct sockaddr *)&sin, sizeof sin);
  socklen_t sl = sizeof sin;
  getsockname(fd, (struct sockaddr *)&sin, &sl);
  int hp = ntohs(sin.sin_port);
  close(fd);
  snprintf(cmd, sizeof cmd,
           "cd %s && (nghttpd -a 127.0.0.1 -d www %d key.pem cert.pem >nghttpd.log 2>&1 & "
           "echo $! > pid)", dir, hp);
  CHECK_EQ_INT(system(cmd), 0);
  char url[128], ca[256];
  snprintf(url, sizeof url, "https://127.0.0.1:%d/x.txt", hp);
  snprintf(ca, sizeof ca, "%s/cert.pem", dir);
  /* wait until it listens */
  for (int i = 0; i < 100; i++) {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)hp),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = connect(c, (struct sockaddr *)&a, sizeof a) == 0;
    close(c);
    if (ok) break;
    usleep(20000);
  }
  char err[128];
  struct up_multi *m = up_multi_new(base, err, sizeof err);
  enum { N = 8 };
  static struct res r[N];
  struct res *rs[N];
  for (int i = 0; i < N; i++) {
    memset(&r[i], 0, sizeof r[i]);
    rs[i] = &r[i];
    struct up_request rq = {.url = url, .method = "GET", .connect_timeout_ms = 3000,
                            .total_timeout_ms = 5000, .ca_file = ca};
    r[i].t = up_start(m, &rq, &cbs, &r[i]);
  }
  run_until(rs, N, 6000);
  int ok = 0, h2 = 0, fresh = 0;
  for (int i = 0; i < N; i++) {
    ok += r[i].done && r[i].r.status == UP_OK && r[i].status == 200 && !strcmp(r[i].body, "hello h2");
    h2 += r[i].r.http_version == 2;
    fresh += r[i].done && !r[i].r.reused_connection;
    if (i == 0 && r[i].r.status != UP_OK) printf("h2: %s\n", r[i].r.message);
  }
  CHECK_EQ_INT(ok, N);
  CHECK_EQ_INT(h2, N);
  CHECK_MSG(fresh == 1, "%d connections opened for %d multiplexed h2 requests", fresh, N);
  up_multi_free(m);
  snprintf(cmd, sizeof cmd, "kill $(cat %s/pid) 2>/dev/null; rm -rf %s", dir, dir);
  if (system(cmd) != 0) printf("cleanup of %s failed\n", dir);
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

  /* A cold pool (fresh multi handle, no connection yet) to an HTTP/1.1 server: a slow stream
   * started first must not hold the requests started right after it (they get connections of
   * their own at once). With CURLOPT_PIPEWAIT on every transfer they waited for the first
   * response to finish: 10 s here. Then 20 slow streams at once on another cold pool: every one
   * has its first bytes within the second. */
  {
    struct res slow = {0}, f[3];
    memset(f, 0, sizeof f);
    double t0 = now_ms();
    CHECK(start(&slow, "{\"stream\":true,\"x\":\"MODE:slowsse\"}", 2000, 20000, port) != NULL);
    for (int i = 0; i < 3; i++) CHECK(start(&f[i], "{\"x\":\"MODE:plain\"}", 2000, 20000, port) != NULL);
    struct res *rs[] = {&f[0], &f[1], &f[2]};
    run_until(rs, 3, 3000);
    double el = now_ms() - t0;
    for (int i = 0; i < 3; i++) {
      CHECK_MSG(f[i].done && f[i].r.status == UP_OK && f[i].status == 200,
                "fast call %d behind a slow stream on a cold pool: done %d status %d", i,
                f[i].done, f[i].status);
    }
    CHECK_MSG(el < 1500, "fast calls took %.0f ms behind a slow stream", el);
    CHECK_MSG(!slow.done && slow.n_data >= 1, "the slow stream is still running (%d pieces)",
              slow.n_data);
    if (!slow.done) up_cancel(slow.t);
    run_for(50);
    up_multi_free(multi);
    multi = up_multi_new(base, err, sizeof err);

    enum { NS = 20 };
    static struct res streams[NS];
    t0 = now_ms();
    for (int i = 0; i < NS; i++) {
      memset(&streams[i], 0, sizeof streams[i]);
      start(&streams[i], "{\"stream\":true,\"x\":\"MODE:slowsse\"}", 2000, 20000, port);
    }
    int started = 0;
    while (now_ms() - t0 < 3000 && started < NS) {
      run_for(10);
      started = 0;
      for (int i = 0; i < NS; i++) started += streams[i].n_data >= 1;
    }
    el = now_ms() - t0;
    CHECK_MSG(started == NS && el < 1500, "%d of %d cold-pool streams started within %.0f ms",
              started, NS, el);
    for (int i = 0; i < NS; i++)
      if (!streams[i].done) up_cancel(streams[i].t);
    run_for(50);
    up_multi_free(multi);
    multi = up_multi_new(base, err, sizeof err);
  }

  test_h2();

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
