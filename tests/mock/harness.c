/*
 * harness.c: process, HTTP and socket helpers for the mock self-test and the gateway
 * integration tests (see harness.h).
 */
#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sqlite3.h>

extern char **environ;

/* ------------------------------------------------------------------ time */

double th_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void th_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) && errno == EINTR) {
  }
}

char *th_fmt(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *s = malloc((size_t)n + 1);
  if (!s) abort();
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

/* ------------------------------------------------------------------ processes */

int th_spawn(struct th_proc *p, char *const argv[], char *const env_extra[]) {
  return th_spawn_out(p, argv, env_extra, NULL);
}

int th_spawn_out(struct th_proc *p, char *const argv[], char *const env_extra[],
                 const char *stdout_path) {
  int fds[2] = {-1, -1};
  p->pid = 0;
  p->out_fd = -1;
  if (!stdout_path && pipe(fds)) {
    perror("harness: pipe");
    return -1;
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    perror("harness: fork");
    if (fds[0] >= 0) close(fds[0]);
    if (fds[1] >= 0) close(fds[1]);
    return -1;
  }
  if (pid == 0) {
    if (stdout_path) {
      int fd = open(stdout_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) dup2(fd, 1);
    } else {
      dup2(fds[1], 1);
      close(fds[0]);
      close(fds[1]);
    }
    for (size_t i = 0; env_extra && env_extra[i]; i++) putenv(env_extra[i]);
    /* The test may have ignored SIGPIPE; the child starts clean. */
    signal(SIGPIPE, SIG_DFL);
    execve(argv[0], argv, environ);
    fprintf(stderr, "harness: exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  if (!stdout_path) {
    close(fds[1]);
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    p->out_fd = fds[0];
  }
  p->pid = pid;
  return 0;
}

int th_read_line(struct th_proc *p, char *buf, size_t cap, int timeout_ms) {
  size_t n = 0;
  double deadline = th_now_ms() + timeout_ms;
  while (n + 1 < cap) {
    int left = (int)(deadline - th_now_ms());
    if (left <= 0) break;
    struct pollfd pfd = {p->out_fd, POLLIN, 0};
    int r = poll(&pfd, 1, left);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    char ch;
    ssize_t k = read(p->out_fd, &ch, 1);
    if (k <= 0) break;
    if (ch == '\n') {
      buf[n] = 0;
      return (int)n;
    }
    buf[n++] = ch;
  }
  buf[n] = 0;
  return -1;
}

bool th_alive(struct th_proc *p) {
  if (!p->pid) return false;
  int st;
  pid_t r = waitpid(p->pid, &st, WNOHANG);
  if (r == 0) return true;
  return false;
}

int th_wait(struct th_proc *p, int timeout_ms) {
  if (!p->pid) return -1;
  double deadline = th_now_ms() + timeout_ms;
  int st = -1;
  for (;;) {
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid) break;
    if (r < 0) {
      st = -1;
      break;
    }
    if (th_now_ms() > deadline) {
      fprintf(stderr, "harness: pid %d did not exit in %d ms, killing\n", (int)p->pid,
              timeout_ms);
      kill(p->pid, SIGKILL);
      waitpid(p->pid, NULL, 0);
      st = -1;
      break;
    }
    th_sleep_ms(5);
  }
  if (p->out_fd >= 0) close(p->out_fd);
  p->out_fd = -1;
  p->pid = 0;
  return st;
}

int th_stop(struct th_proc *p, int sig, int timeout_ms) {
  if (!p->pid) return -1;
  kill(p->pid, sig);
  return th_wait(p, timeout_ms);
}

long th_rss_kb(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  char *s = th_read_file(path, NULL);
  const char *v = s ? strstr(s, "VmRSS:") : NULL;
  long kb = v ? atol(v + 6) : -1;
  free(s);
  return kb;
}

/* ------------------------------------------------------------------ the mock */

int th_mock_start(struct th_mock *m, const char *const *extra_args) {
  memset(m, 0, sizeof *m);
  const char *bin = getenv("MOCK_UPSTREAM_BIN");
  if (!bin) {
    fprintf(stderr, "harness: MOCK_UPSTREAM_BIN is not set\n");
    return -1;
  }
  char *argv[16];
  int n = 0;
  argv[n++] = (char *)bin;
  for (size_t i = 0; extra_args && extra_args[i] && n < 15; i++) argv[n++] = (char *)extra_args[i];
  argv[n] = NULL;
  if (th_spawn(&m->proc, argv, NULL)) return -1;
  char line[64];
  if (th_read_line(&m->proc, line, sizeof line, 10000) <= 0 || atoi(line) <= 0) {
    fprintf(stderr, "harness: mock_upstream did not print its port\n");
    th_stop(&m->proc, SIGKILL, 1000);
    return -1;
  }
  m->port = atoi(line);
  snprintf(m->url, sizeof m->url, "http://127.0.0.1:%d", m->port);
  return 0;
}

int th_mock_stop(struct th_mock *m) {
  return th_stop(&m->proc, SIGTERM, 10000);
}

json_t *th_mock_last(const struct th_mock *m, const char *tag) {
  struct th_resp r;
  char path[256];
  snprintf(path, sizeof path, "/_mock/last%s%s", tag ? "?tag=" : "", tag ? tag : "");
  if (th_get(m->url, path, &r) || r.status != 200 || !r.json) {
    th_resp_free(&r);
    return NULL;
  }
  json_t *j = json_incref(r.json);
  th_resp_free(&r);
  return j;
}

json_t *th_mock_stats(const struct th_mock *m) {
  struct th_resp r;
  if (th_get(m->url, "/_mock/stats", &r) || r.status != 200 || !r.json) {
    th_resp_free(&r);
    return NULL;
  }
  json_t *j = json_incref(r.json);
  th_resp_free(&r);
  return j;
}

long long th_mock_stat(const struct th_mock *m, const char *name) {
  json_t *s = th_mock_stats(m);
  json_t *v = json_object_get(s, name);
  long long x = json_is_integer(v) ? json_integer_value(v) : -1;
  json_decref(s);
  return x;
}

json_t *th_mock_wait_state(const struct th_mock *m, const char *tag, const char *state,
                           int timeout_ms) {
  double deadline = th_now_ms() + timeout_ms;
  json_t *last = NULL;
  for (;;) {
    json_decref(last);
    last = th_mock_last(m, tag);
    const char *st = json_string_value(json_object_get(last, "state"));
    if (st && !strcmp(st, state)) return last;
    if (th_now_ms() > deadline) break;
    th_sleep_ms(10);
  }
  fprintf(stderr, "harness: request tagged '%s' never reached state '%s' (last: '%s')\n",
          tag ? tag : "", state,
          last ? json_string_value(json_object_get(last, "state")) : "none");
  json_decref(last);
  return NULL;
}

/* ------------------------------------------------------------------ the gateway */

int th_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t sl = sizeof sin;
  if (bind(fd, (struct sockaddr *)&sin, sizeof sin) || getsockname(fd, (struct sockaddr *)&sin, &sl)) {
    close(fd);
    return -1;
  }
  close(fd);
  return ntohs(sin.sin_port);
}

int th_tmpdir(char *out, size_t cap, const char *prefix) {
  const char *tmp = getenv("TMPDIR");
  snprintf(out, cap, "%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", prefix);
  if (!mkdtemp(out)) {
    perror("harness: mkdtemp");
    return -1;
  }
  return 0;
}

void th_rmdir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char path[1024];
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    unlink(path);
  }
  closedir(d);
  rmdir(dir);
}

int th_gw_prepare(struct th_gw *g) {
  memset(g, 0, sizeof *g);
  if (th_tmpdir(g->dir, sizeof g->dir, "tiergate-test")) return -1;
  snprintf(g->config_path, sizeof g->config_path, "%s/tiergate.yaml", g->dir);
  snprintf(g->db_path, sizeof g->db_path, "%s/tiergate.db", g->dir);
  snprintf(g->port_file, sizeof g->port_file, "%s/port", g->dir);
  snprintf(g->stdout_path, sizeof g->stdout_path, "%s/stdout.log", g->dir);
  return 0;
}

int th_gw_start(struct th_gw *g, const char *yaml, char *const extra_env[]) {
  const char *bin = getenv("TIERGATE_BIN");
  if (!bin) {
    fprintf(stderr, "harness: TIERGATE_BIN is not set\n");
    return -1;
  }
  if (yaml && th_write_file(g->config_path, yaml, strlen(yaml))) return -1;
  unlink(g->port_file);
  g->port = 0;
  /* listen: port 0 in the config; the gateway writes the port it got to --port-file. Its
   * stdout goes to a file: a pipe nobody reads could fill up and block it. */
  char *argv[] = {(char *)bin, "serve", "--config", g->config_path, "--port-file", g->port_file,
                  NULL};
  if (th_spawn_out(&g->proc, argv, extra_env, g->stdout_path)) return -1;
  double deadline = th_now_ms() + 20000;
  while (th_now_ms() < deadline) {
    if (!th_alive(&g->proc)) {
      fprintf(stderr, "harness: tiergate exited during startup\n");
      g->proc.pid = 0;
      return -1;
    }
    if (!g->port) {
      char *pf = th_read_file(g->port_file, NULL);
      if (pf && atoi(pf) > 0) {
        g->port = atoi(pf);
        snprintf(g->url, sizeof g->url, "http://127.0.0.1:%d", g->port);
      }
      free(pf);
    }
    if (g->port) {
      struct th_resp r;
      char url[128];
      snprintf(url, sizeof url, "%s/healthz", g->url);
      struct th_req rq = {.url = url, .timeout_ms = 2000};
      int rc = th_http(&rq, &r);
      long st = r.status;
      th_resp_free(&r);
      if (!rc && st == 200) return 0;
    }
    th_sleep_ms(20);
  }
  fprintf(stderr, "harness: tiergate did not answer /healthz (port %d)\n", g->port);
  th_stop(&g->proc, SIGKILL, 1000);
  return -1;
}

int th_gw_stop(struct th_gw *g, int sig, int timeout_ms) {
  if (!g->proc.pid) return -1;
  return th_stop(&g->proc, sig, timeout_ms);
}

char *th_gw_test_yaml(const struct th_gw *g, int mock_port, const char *limits,
                      const char *extra_models) {
  int dead = th_free_port();  /* nothing listens there: connect is refused */
  return th_fmt(
      "listen: 127.0.0.1:0\n"
      "database: %s\n"
      "providers:\n"
      "  mock:\n"
      "    kind: openai\n"
      "    base_url: http://127.0.0.1:%d/v1\n"
      "    api_key_env: TIERGATE_TEST_KEY\n"
      "    headers:\n"
      "      X-Provider-Extra: from-config\n"
      "  dead:\n"
      "    kind: openai\n"
      "    base_url: http://127.0.0.1:%d/v1\n"
      "    api_key_env: TIERGATE_TEST_KEY\n"
      "  nokey:\n"
      "    kind: openai\n"
      "    base_url: http://127.0.0.1:%d/v1\n"
      "    api_key_env: TIERGATE_TEST_UNSET_KEY\n"
      /* the mock's Anthropic surface, in both API versions (no model uses them by default) */
      "  mock-anthropic:\n"
      "    kind: anthropic\n"
      "    base_url: http://127.0.0.1:%d\n"
      "    api_key_env: TIERGATE_TEST_KEY\n"
      "  mock-anthropic-2026:\n"
      "    kind: anthropic\n"
      "    base_url: http://127.0.0.1:%d\n"
      "    api_key_env: TIERGATE_TEST_KEY\n"
      "    anthropic_version: \"2026-10-21\"\n"
      "models:\n"
      "  gpt-4o-mini:\n"
      "    provider: mock\n"
      "  gpt-4o:\n"
      "    provider: mock\n"
      "  mapped:\n"
      "    provider: mock\n"
      "    model: gpt-4.1-nano\n"
      "  priced:\n"
      "    provider: mock\n"
      "    model: my-finetune\n"
      "    price: {input: 1.00, cached_input: 0.50, output: 3.00}\n"
      "  unpriced:\n"
      "    provider: mock\n"
      "    model: no-such-price-model\n"
      "  dead-model:\n"
      "    provider: dead\n"
      "    model: gpt-4o-mini\n"
      "  nokey-model:\n"
      "    provider: nokey\n"
      "    model: gpt-4o-mini\n"
      "%s"
      "default_model: gpt-4o-mini\n"
      "baseline_model: gpt-4o\n"
      "limits:\n%s"
      "retry:\n"
      "  max_attempts: 1\n"
      "breaker:\n"
      "  failures: 0\n"
      "  error_rate: 0%%\n",
      g->db_path, mock_port, dead, mock_port, mock_port, mock_port,
      extra_models ? extra_models : "",
      limits ? limits
             : "  max_body_bytes: 64KiB\n"
               "  connect_timeout: 2s\n"
               "  first_byte_timeout: 1s\n"
               "  idle_timeout: 1s\n"
               "  total_timeout: 10s\n"
               "  client_timeout: 1s\n");
}

char *const *th_gw_test_env(void) {
  static char key[] = "TIERGATE_TEST_KEY=sk-tiergate-test-key";
  static char *env[] = {key, NULL};
  unsetenv("TIERGATE_TEST_UNSET_KEY");
  return env;
}

/* ------------------------------------------------------------------ HTTP */

struct collect {
  struct th_resp *r;
  double start;
  size_t cap, hcap, hlen;
};

static void buf_add(char **buf, size_t *len, size_t *cap, const char *data, size_t n) {
  if (*len + n + 1 > *cap) {
    size_t c = *cap ? *cap : 4096;
    while (*len + n + 1 > c) c *= 2;
    char *b = realloc(*buf, c);
    if (!b) abort();
    *buf = b;
    *cap = c;
  }
  memcpy(*buf + *len, data, n);
  *len += n;
  (*buf)[*len] = 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg) {
  struct collect *c = arg;
  size_t n = size * nmemb;
  if (c->r->ttfb_ms < 0 && n) c->r->ttfb_ms = th_now_ms() - c->start;
  buf_add(&c->r->body, &c->r->body_len, &c->cap, data, n);
  return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg) {
  struct collect *c = arg;
  size_t n = size * nmemb;
  /* A new status line starts a new block (100 Continue): keep only the last one. */
  if (n >= 5 && !strncmp(data, "HTTP/", 5)) c->hlen = 0;
  buf_add(&c->r->headers, &c->hlen, &c->hcap, data, n);
  return n;
}

int th_http(const struct th_req *rq, struct th_resp *out) {
  memset(out, 0, sizeof *out);
  out->ttfb_ms = -1;
  CURL *h = curl_easy_init();
  if (!h) return -1;
  struct collect c = {out, th_now_ms(), 0, 0, 0};
  struct curl_slist *hl = NULL;
  for (size_t i = 0; rq->headers && rq->headers[i]; i++) hl = curl_slist_append(hl, rq->headers[i]);
  /* No "Expect: 100-continue" dance: it only adds a round trip on loopback. */
  hl = curl_slist_append(hl, "Expect:");
  curl_easy_setopt(h, CURLOPT_URL, rq->url);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &c);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &c);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, rq->timeout_ms > 0 ? rq->timeout_ms : 10000L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, out->err);
  if (rq->body) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)(rq->body_len ? rq->body_len : strlen(rq->body)));
  }
  if (rq->method) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
  CURLcode rc = curl_easy_perform(h);
  out->curl_rc = (int)rc;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
  out->total_ms = th_now_ms() - c.start;
  if (!out->body) buf_add(&out->body, &out->body_len, &c.cap, "", 0);
  if (!out->headers) buf_add(&out->headers, &c.hlen, &c.hcap, "", 0);
  if (out->ttfb_ms < 0 && out->status) out->ttfb_ms = out->total_ms;
  out->json = json_loadb(out->body, out->body_len, 0, NULL);
  curl_slist_free_all(hl);
  curl_easy_cleanup(h);
  if (rc != CURLE_OK && !out->err[0]) snprintf(out->err, sizeof out->err, "%s", curl_easy_strerror(rc));
  return 0;
}

int th_post_json(const char *base, const char *path, const char *json, struct th_resp *out) {
  char url[512];
  snprintf(url, sizeof url, "%s%s", base, path);
  const char *hdr[] = {"Content-Type: application/json", NULL};
  struct th_req rq = {.method = "POST", .url = url, .body = json, .headers = hdr};
  return th_http(&rq, out);
}

int th_get(const char *base, const char *path, struct th_resp *out) {
  char url[512];
  snprintf(url, sizeof url, "%s%s", base, path);
  struct th_req rq = {.url = url};
  return th_http(&rq, out);
}

const char *th_resp_header(const struct th_resp *r, const char *name, char *buf, size_t cap) {
  size_t nl = strlen(name);
  const char *p = r->headers;
  while (p && *p) {
    const char *eol = strstr(p, "\r\n");
    size_t ll = eol ? (size_t)(eol - p) : strlen(p);
    if (ll > nl && p[nl] == ':' && !strncasecmp(p, name, nl)) {
      const char *v = p + nl + 1;
      while (*v == ' ' || *v == '\t') v++;
      size_t vl = ll - (size_t)(v - p);
      while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
      if (vl >= cap) vl = cap - 1;
      memcpy(buf, v, vl);
      buf[vl] = 0;
      return buf;
    }
    if (!eol) break;
    p = eol + 2;
  }
  return NULL;
}

void th_resp_free(struct th_resp *r) {
  free(r->body);
  free(r->headers);
  json_decref(r->json);
  memset(r, 0, sizeof *r);
}

json_t *th_sse_data(const char *body, size_t len) {
  json_t *arr = json_array();
  const char *p = body, *end = body + len;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    size_t ll = eol ? (size_t)(eol - p) : (size_t)(end - p);
    if (ll && p[ll - 1] == '\r') ll--;
    if (ll >= 5 && !strncmp(p, "data:", 5)) {
      const char *v = p + 5;
      if (*v == ' ') v++;
      json_t *s = json_stringn(v, ll - (size_t)(v - p));
      json_array_append_new(arr, s ? s : json_string("(not utf-8)"));
    }
    if (!eol) break;
    p = eol + 1;
  }
  return arr;
}

/* ------------------------------------------------------------------ raw sockets */

int th_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sin, sizeof sin)) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

int th_send_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len) {
    ssize_t k = send(fd, p, len, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    p += k;
    len -= (size_t)k;
  }
  return 0;
}

int th_send_post(int fd, const char *path, const char *json, const char *extra_headers) {
  char *req = th_fmt("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n%s\r\n%s",
                     path, strlen(json), extra_headers ? extra_headers : "", json);
  int rc = th_send_all(fd, req, strlen(req));
  free(req);
  return rc;
}

ssize_t th_recv(int fd, char *buf, size_t cap, int timeout_ms) {
  struct pollfd pfd = {fd, POLLIN, 0};
  double deadline = th_now_ms() + timeout_ms;
  for (;;) {
    int left = (int)(deadline - th_now_ms());
    if (left < 0) left = 0;
    int r = poll(&pfd, 1, left);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) return -2;
    if (r < 0) return -1;
    ssize_t k = recv(fd, buf, cap, 0);
    if (k < 0 && errno == EINTR) continue;
    return k;
  }
}

size_t th_recv_all(int fd, char **out, int timeout_ms, int *rc_out) {
  size_t len = 0, cap = 0;
  char *buf = NULL;
  char tmp[65536];
  double deadline = th_now_ms() + timeout_ms;
  int rc = -2;
  for (;;) {
    int left = (int)(deadline - th_now_ms());
    if (left <= 0) {
      rc = -2;
      break;
    }
    ssize_t k = th_recv(fd, tmp, sizeof tmp, left);
    if (k <= 0) {
      rc = (int)k;
      break;
    }
    buf_add(&buf, &len, &cap, tmp, (size_t)k);
  }
  if (!buf) buf_add(&buf, &len, &cap, "", 0);
  *out = buf;
  if (rc_out) *rc_out = rc;
  return len;
}

void th_close_reset(int fd) {
  struct linger lg = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd);
}

/* ------------------------------------------------------------------ SQLite */

json_t *th_db_query(const char *path, const char *sql) {
  sqlite3 *db = NULL;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
    fprintf(stderr, "harness: open %s: %s\n", path, db ? sqlite3_errmsg(db) : "?");
    sqlite3_close(db);
    return NULL;
  }
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
    fprintf(stderr, "harness: %s: %s\n", sql, sqlite3_errmsg(db));
    sqlite3_close(db);
    return NULL;
  }
  json_t *rows = json_array();
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    json_t *row = json_object();
    for (int i = 0; i < sqlite3_column_count(st); i++) {
      json_t *v;
      switch (sqlite3_column_type(st, i)) {
        case SQLITE_INTEGER: v = json_integer(sqlite3_column_int64(st, i)); break;
        case SQLITE_FLOAT: v = json_real(sqlite3_column_double(st, i)); break;
        case SQLITE_NULL: v = json_null(); break;
        default: {
          const char *t = (const char *)sqlite3_column_text(st, i);
          v = json_string(t ? t : "");
          if (!v) v = json_string("(not utf-8)");
        }
      }
      json_object_set_new(row, sqlite3_column_name(st, i), v);
    }
    json_array_append_new(rows, row);
  }
  if (rc != SQLITE_DONE) {
    fprintf(stderr, "harness: %s: %s\n", sql, sqlite3_errmsg(db));
    json_decref(rows);
    rows = NULL;
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return rows;
}

/* ------------------------------------------------------------------ JSON paths */

const json_t *th_jget(const json_t *j, const char *path) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s", path);
  const json_t *cur = j;
  char *save = NULL;
  for (char *tok = strtok_r(buf, ".", &save); tok && cur; tok = strtok_r(NULL, ".", &save)) {
    if (json_is_array(cur)) cur = json_array_get(cur, (size_t)atoi(tok));
    else cur = json_object_get(cur, tok);
  }
  return cur;
}

const char *th_jstr(const json_t *j, const char *path) {
  return json_string_value(th_jget(j, path));
}

long long th_jint(const json_t *j, const char *path) {
  const json_t *v = th_jget(j, path);
  return json_is_integer(v) ? json_integer_value(v) : -999;
}

double th_jnum(const json_t *j, const char *path) {
  const json_t *v = th_jget(j, path);
  return json_is_number(v) ? json_number_value(v) : NAN;
}

/* ------------------------------------------------------------------ files */

char *th_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  if (!buf) abort();
  size_t k;
  while ((k = fread(buf + n, 1, cap - n - 1, f)) > 0) {
    n += k;
    if (n + 1 == cap) {
      cap *= 2;
      buf = realloc(buf, cap);
      if (!buf) abort();
    }
  }
  fclose(f);
  buf[n] = 0;
  if (len) *len = n;
  return buf;
}

int th_write_file(const char *path, const char *data, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) {
    fprintf(stderr, "harness: write %s: %s\n", path, strerror(errno));
    return -1;
  }
  size_t k = fwrite(data, 1, len, f);
  int rc = fclose(f);
  return k == len && rc == 0 ? 0 : -1;
}
