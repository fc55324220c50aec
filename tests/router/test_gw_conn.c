/*
 * test_gw_conn.c: connections and concurrency. A client that goes away cancels its upstream
 * transfer (the mock sees the connection close); slow, idle and non-reading clients are cut off
 * by client_timeout (1 s in the test config) without the gateway buffering without bound; 200
 * concurrent requests are served at once, not one after another; SIGTERM drains the requests in
 * flight, refuses new ones, and flushes every log row before a clean exit.
 */
#include <errno.h>
#include <sys/socket.h>

#include "router/itest.h"

/* Reads until NEEDLE appears; returns the time, -1 on timeout or close. */
static double wait_for(int fd, char *acc, size_t cap, size_t *len, const char *needle, int ms) {
  double t0 = th_now_ms();
  while (!strstr(acc, needle)) {
    int left = ms - (int)(th_now_ms() - t0);
    if (left <= 0 || *len + 1 >= cap) return -1;
    ssize_t k = th_recv(fd, acc + *len, cap - *len - 1, left);
    if (k <= 0) return -1;
    *len += (size_t)k;
    acc[*len] = 0;
  }
  return th_now_ms();
}

/* Waits for the gateway to close FD; returns ms until EOF/reset, or -1 if still open after ms.
 * What arrived before the close is kept in out (may be NULL). */
static double wait_closed(int fd, int ms, char **out) {
  double t0 = th_now_ms();
  int rc;
  char *all;
  th_recv_all(fd, &all, ms, &rc);
  if (out) *out = all;
  else free(all);
  return rc == -2 ? -1 : th_now_ms() - t0;
}

static void test_client_disconnect(void) {
  static char acc[1 << 16];
  /* Mid-stream. */
  int fd = th_connect(it.gw.port);
  th_send_post(fd, "/v1/chat/completions",
               "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[{\"role\":\"user\","
               "\"content\":\"go\"}],\"mock\":{\"tag\":\"gone1\",\"completion_tokens\":40,"
               "\"chunk_delay_ms\":100}}",
               NULL);
  size_t len = 0;
  acc[0] = 0;
  CHECK(wait_for(fd, acc, sizeof acc, &len, "\"content\":\"go\"", 5000) > 0);
  int before = it.n_ids;
  itest_note_raw(acc);
  CHECK_EQ_INT(it.n_ids, before + 1);
  double t0 = th_now_ms();
  close(fd);
  json_t *up = th_mock_wait_state(&it.mock, "gone1", "aborted", 3000);
  CHECK_MSG(up != NULL, "the upstream transfer was not cancelled when the client left");
  CHECK_MSG(th_now_ms() - t0 < 1500, "cancelled only after %.0f ms", th_now_ms() - t0);
  CHECK(jint(up, "frames_sent") < 20);
  json_decref(up);
  if (it.n_ids == before + 1) {
    json_t *row = db_row(it.ids[before], 5000);
    const char *ec = jstr(row, "error_class");
    CHECK_MSG(ec && strstr(ec, "disconnect"), "error class %s", ec ? ec : "(null)");
    CHECK_EQ_INT(row_int(row, "streamed"), 1);
    json_decref(row);
  }

  /* While waiting for a plain reply, and for a stream's first byte: the upstream is cancelled
   * long before it would have answered (or timed out). */
  for (int stream = 0; stream < 2; stream++) {
    char tag[16];
    snprintf(tag, sizeof tag, "gone%d", 2 + stream);
    char *body = th_fmt("{\"model\":\"gpt-4o-mini\",\"stream\":%s,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"mock\":{"
                        "\"tag\":\"%s\",\"delay_ms\":5000}}",
                        stream ? "true" : "false", tag);
    fd = th_connect(it.gw.port);
    th_send_post(fd, "/v1/chat/completions", body, NULL);
    free(body);
    /* Wait until the gateway has the upstream request in flight, then leave. */
    json_t *rec = th_mock_wait_state(&it.mock, tag, "active", 2000);
    CHECK(rec != NULL);
    json_decref(rec);
    close(fd);
    up = th_mock_wait_state(&it.mock, tag, "aborted", 3000);
    CHECK_MSG(up != NULL, "%s: upstream not cancelled", tag);
    CHECK_MSG(up && th_jnum(up, "duration_ms") < 900, "%s: upstream cancelled after %.0f ms", tag,
              th_jnum(up, "duration_ms"));
    json_decref(up);
  }
}

static void test_slow_clients(void) {
  char *got;
  /* Connected, silent. */
  int fd = th_connect(it.gw.port);
  double ms = wait_closed(fd, 5000, NULL);
  CHECK_MSG(ms >= 0 && ms < 4000, "silent connection still open (%.0f)", ms);
  close(fd);

  /* Half a header block, then silence. */
  fd = th_connect(it.gw.port);
  th_send_all(fd, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n", 46);
  ms = wait_closed(fd, 5000, &got);
  CHECK_MSG(ms >= 0 && ms < 4000, "half-sent headers: still open (%.0f)", ms);
  CHECK_MSG(!*got || !strncmp(got, "HTTP/1.1 408", 12), "half-sent headers: %.40s", got);
  if (*got) itest_note_raw(got);
  free(got);
  close(fd);

  /* Slowloris: a byte of body every 300 ms. The whole request must arrive within the client
   * timeout, so trickling does not keep the connection alive. */
  fd = th_connect(it.gw.port);
  const char *head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     "application/json\r\nContent-Length: 100\r\n\r\n{";
  th_send_all(fd, head, strlen(head));
  double t0 = th_now_ms();
  bool closed = false;
  for (int i = 0; i < 20 && !closed; i++) {
    char buf[512];
    ssize_t k = th_recv(fd, buf, sizeof buf - 1, 300);
    if (k >= 0) {
      if (k > 0) {
        buf[k] = 0;
        CHECK_MSG(!strncmp(buf, "HTTP/1.1 408", 12), "slowloris: %.40s", buf);
        itest_note_raw(buf);
      }
      closed = true;
      break;
    }
    if (k == -1) {
      closed = true;
      break;
    }
    if (th_send_all(fd, " ", 1)) {
      closed = true;
      break;
    }
  }
  CHECK_MSG(closed && th_now_ms() - t0 < 4000, "slowloris kept for %.0f ms", th_now_ms() - t0);
  close(fd);

  /* Keep-alive connection idle after a reply. */
  fd = th_connect(it.gw.port);
  th_send_post(fd, "/v1/chat/completions", "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", NULL);
  static char acc[1 << 16];
  size_t len = 0;
  acc[0] = 0;
  CHECK(wait_for(fd, acc, sizeof acc, &len, "chat.completion", 5000) > 0);
  itest_note_raw(acc);
  ms = wait_closed(fd, 8000, NULL);
  CHECK_MSG(ms >= 0, "idle keep-alive connection never closed");
  close(fd);
}

/* A client that stops reading a big stream: the gateway must not buffer the upstream whole; it
 * cuts the client off and cancels the upstream (which is then still sending: "aborted"). */
static void test_nonreading_client(void) {
  long rss0 = th_rss_kb(it.gw.proc.pid);
  int fd = th_connect(it.gw.port);
  int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  th_send_post(fd, "/v1/chat/completions",
               "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"mock\":{\"tag\":"
               "\"noread\",\"huge_bytes\":134217728}}",
               NULL);
  json_t *up = th_mock_wait_state(&it.mock, "noread", "aborted", 15000);
  CHECK_MSG(up != NULL, "upstream of a non-reading client not cancelled (buffered whole?)");
  if (up) printf("non-reading client: upstream had sent %lld bytes when cancelled\n",
                 jint(up, "bytes_sent"));
  json_decref(up);
  long rss1 = th_rss_kb(it.gw.proc.pid);
  printf("gateway RSS %ld KiB before, %ld KiB after\n", rss0, rss1);
  CHECK_MSG(rss1 - rss0 < 64 * 1024, "RSS grew by %ld KiB for one stalled client", rss1 - rss0);
  char buf[256];
  ssize_t k = th_recv(fd, buf, sizeof buf - 1, 1000);
  if (k > 0) {
    buf[k] = 0;
    itest_note_raw(buf);
  }
  close(fd);
}

/* ------------------------------------------------------------------ concurrency */

struct xfer {
  CURL *h;
  struct curl_slist *hdr;
  char *body;
  char *out;
  size_t len, cap;
  char *head;
  size_t hlen, hcap;
};

static size_t x_write(char *d, size_t s, size_t n, void *a) {
  struct xfer *x = a;
  size_t k = s * n;
  if (x->len + k + 1 > x->cap) {
    x->cap = (x->len + k + 1) * 2;
    x->out = realloc(x->out, x->cap);
  }
  memcpy(x->out + x->len, d, k);
  x->len += k;
  x->out[x->len] = 0;
  return k;
}

static size_t x_header(char *d, size_t s, size_t n, void *a) {
  struct xfer *x = a;
  size_t k = s * n;
  if (x->hlen + k + 1 > x->hcap) {
    x->hcap = (x->hlen + k + 1) * 2;
    x->head = realloc(x->head, x->hcap);
  }
  memcpy(x->head + x->hlen, d, k);
  x->hlen += k;
  x->head[x->hlen] = 0;
  return k;
}

static void x_init(struct xfer *x, const char *body) {
  memset(x, 0, sizeof *x);
  char url[128];
  snprintf(url, sizeof url, "%s/v1/chat/completions", it.gw.url);
  x->h = curl_easy_init();
  x->body = strdup(body);
  x->hdr = curl_slist_append(NULL, "Content-Type: application/json");
  curl_easy_setopt(x->h, CURLOPT_URL, url);
  curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->hdr);
  curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, x->body);
  curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, x_write);
  curl_easy_setopt(x->h, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(x->h, CURLOPT_HEADERFUNCTION, x_header);
  curl_easy_setopt(x->h, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(x->h, CURLOPT_TIMEOUT_MS, 20000L);
  curl_easy_setopt(x->h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
}

static void x_free(struct xfer *x) {
  curl_easy_cleanup(x->h);
  curl_slist_free_all(x->hdr);
  free(x->body);
  free(x->out);
  free(x->head);
}

/* Runs every transfer at once; returns the wall time in ms. on_tick (may be NULL) is called
 * about every 10 ms with the elapsed time. */
static double run_all(struct xfer *xs, int n, void (*on_tick)(double), int *failed) {
  CURLM *m = curl_multi_init();
  curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
  for (int i = 0; i < n; i++) curl_multi_add_handle(m, xs[i].h);
  double t0 = th_now_ms();
  int running = n;
  *failed = 0;
  while (running) {
    curl_multi_perform(m, &running);
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m, &left)))
      if (msg->msg == CURLMSG_DONE && msg->data.result != CURLE_OK) (*failed)++;
    if (running) curl_multi_poll(m, NULL, 0, 10, NULL);
    if (on_tick) on_tick(th_now_ms() - t0);
  }
  double ms = th_now_ms() - t0;
  for (int i = 0; i < n; i++) curl_multi_remove_handle(m, xs[i].h);
  curl_multi_cleanup(m);
  return ms;
}

static void test_concurrency(void) {
  enum { N = 200 };
  static struct xfer xs[N];
  struct th_resp r;
  CHECK_EQ_INT(th_post_json(it.mock.url, "/_mock/reset", "{}", &r), 0);
  th_resp_free(&r);
  for (int i = 0; i < N; i++) {
    /* Distinct prompts, half streamed; each answer takes the upstream 400 ms. */
    char *b = th_fmt("{\"model\":\"gpt-4o-mini\",\"stream\":%s,\"messages\":[{\"role\":\"user\","
                     "\"content\":\"req%d\"}],\"mock\":{\"delay_ms\":400,\"completion_tokens\":2}}",
                     i % 2 ? "true" : "false", i);
    x_init(&xs[i], b);
    free(b);
  }
  int failed;
  double ms = run_all(xs, N, NULL, &failed);
  printf("%d concurrent requests (400 ms upstream each) in %.0f ms\n", N, ms);
  CHECK_EQ_INT(failed, 0);
  /* One after another would take 80 s; at once, a little over 400 ms. */
  CHECK_MSG(ms < 4000, "%d concurrent requests took %.0f ms: head-of-line blocking?", N, ms);
  int ok = 0;
  for (int i = 0; i < N; i++) {
    long st = 0;
    curl_easy_getinfo(xs[i].h, CURLINFO_RESPONSE_CODE, &st);
    char want[64];
    snprintf(want, sizeof want, i % 2 ? "\"content\":\" req%d\"" : "\"content\":\"req%d req%d\"",
             i, i);
    bool body_ok = xs[i].out && strstr(xs[i].out, want) &&
                   (!(i % 2) || strstr(xs[i].out, "data: [DONE]"));
    CHECK_MSG(st == 200 && body_ok, "request %d: status %ld body %.120s", i, st,
              xs[i].out ? xs[i].out : "");
    ok += st == 200 && body_ok;
    if (xs[i].head) itest_note_raw(xs[i].head);
    x_free(&xs[i]);
  }
  CHECK_EQ_INT(ok, N);
  long long max_active = th_mock_stat(&it.mock, "max_active");
  printf("upstream saw up to %lld requests in flight at once\n", max_active);
  CHECK_MSG(max_active >= N / 2, "upstream saw at most %lld at once", max_active);
}

/* ------------------------------------------------------------------ SIGTERM */

static bool signalled;
static double signal_at;

static void send_term(double elapsed) {
  if (!signalled && elapsed >= 200) {
    kill(it.gw.proc.pid, SIGTERM);
    signalled = true;
    signal_at = th_now_ms();
  }
}

static void test_sigterm_drain(void) {
  enum { N = 12 };
  struct xfer xs[N];
  for (int i = 0; i < N; i++) {
    char *b = i < 8 ? th_fmt("{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\","
                             "\"content\":\"drain%d\"}],\"mock\":{\"delay_ms\":800}}",
                             i)
                    : th_fmt("{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[{\"role\":"
                             "\"user\",\"content\":\"drain%d\"}],\"mock\":{\"chunk_delay_ms\":100}}",
                             i);
    x_init(&xs[i], b);
    free(b);
  }
  int failed;
  run_all(xs, N, send_term, &failed);
  CHECK(signalled);
  CHECK_EQ_INT(failed, 0);
  for (int i = 0; i < N; i++) {
    long st = 0;
    curl_easy_getinfo(xs[i].h, CURLINFO_RESPONSE_CODE, &st);
    CHECK_MSG(st == 200, "in-flight request %d: status %ld after SIGTERM", i, st);
    CHECK_MSG(xs[i].out && (i < 8 ? strstr(xs[i].out, "\"finish_reason\":\"stop\"")
                                  : strstr(xs[i].out, "data: [DONE]")),
              "in-flight request %d cut by the shutdown: %.100s", i, xs[i].out ? xs[i].out : "");
    if (xs[i].head) itest_note_raw(xs[i].head);
    x_free(&xs[i]);
  }
  /* Draining: no new work is taken. */
  int fd = th_connect(it.gw.port);
  if (fd >= 0) {
    th_send_post(fd, "/v1/chat/completions", "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", NULL);
    char *got;
    wait_closed(fd, 3000, &got);
    CHECK_MSG(!*got || !strncmp(got, "HTTP/1.1 503", 12), "new request during drain: %.40s",
              got);
    if (*got) itest_note_raw(got);
    free(got);
    close(fd);
  }
  it.gw_status = th_wait(&it.gw.proc, 10000);
  it.gw_stopped = true;
  CHECK_MSG(th_now_ms() - signal_at < 5000, "exit %.0f ms after SIGTERM", th_now_ms() - signal_at);
  /* Every row is on disk now (itest_finish checks one per request). */
}

int main(void) {
  /* Client timeout 1 s as in the standard config, but generous upstream timeouts: 200 requests
   * opening 200 upstream connections at once on a loaded CI machine under ASan must not turn
   * into 504s; this file tests the client side. */
  if (itest_start("  max_body_bytes: 64KiB\n  connect_timeout: 5s\n  first_byte_timeout: 10s\n"
                  "  idle_timeout: 5s\n  total_timeout: 30s\n  client_timeout: 1s\n",
                  NULL)) {
    CHECK_MSG(0, "cannot start the mock and the gateway");
    return check_done();
  }
  test_client_disconnect();
  test_slow_clients();
  test_nonreading_client();
  test_concurrency();
  test_sigterm_drain();
  itest_finish();
  return check_done();
}
