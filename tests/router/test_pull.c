/*
 * test_pull.c: `tiergate pull` (router/pull.c) end to end: the real binary ($TIERGATE_BIN) against
 * a small blocking HTTP/1.1 server on 127.0.0.1 that runs in a thread of this test.
 *
 * The server serves one generated 256 KiB GGUF file (magic, version 3, no tensors, no keys, then
 * pseudo-random bytes) on several paths that each misbehave in their own way:
 *   /model.gguf     Range honoured (206 / 416)        /norange.gguf  Range ignored (always 200)
 *   /cut.gguf       the first full GET is cut halfway  /redir.gguf    302 to /model.gguf
 *   /missing.gguf   404                               /page.html     an HTML page, 200
 *   /badrange.gguf  206 with a Content-Range for the wrong start
 *   /<org>/<repo>/resolve/main/<file>  the catalogue's paths, for TIERGATE_PULL_MIRROR
 * and records every request's path and Range header so the tests can check what was asked.
 * Expected sha256 values come from the system's sha256sum, not from tiergate's own code.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#define FILE_LEN (256 * 1024)
#define MAX_REQS 256

/* ---------------------------------------------------------------------------------------- */
/* The server.                                                                                 */

struct req_log {
  char path[512];
  char range[128];   /* the Range header's value, "" when none */
  int status;        /* what the server answered */
};

static struct {
  int lfd, port;
  pthread_t thread;
  volatile int stop;
  pthread_mutex_t mu;
  struct req_log reqs[MAX_REQS];
  int n_reqs;
  int cut_pending;   /* /cut.gguf: cut the next GET without Range halfway */
  uint8_t *data;     /* the GGUF file */
  size_t len;
} srv = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void send_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
    if (w <= 0) return;
    c += w;
    n -= (size_t)w;
  }
}

static void respond(int fd, int status, const char *reason, const char *extra_headers,
                    const void *body, size_t body_len, size_t send_len) {
  char head[1024];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n", status,
                   reason, body_len, extra_headers ? extra_headers : "");
  send_all(fd, head, (size_t)n);
  if (body && send_len) send_all(fd, body, send_len);
}

/* Serves the file: RANGE_START < 0 = no Range header; HONOUR = answer Range with 206/416;
 * CUT = send only half of a full answer, then close. Returns the status sent. */
static int serve_file(int fd, long range_start, bool honour, bool cut) {
  char hdr[256];
  if (honour && range_start >= 0) {
    if ((size_t)range_start >= srv.len) {
      snprintf(hdr, sizeof hdr, "Content-Range: bytes */%zu\r\n", srv.len);
      respond(fd, 416, "Range Not Satisfiable", hdr, NULL, 0, 0);
      return 416;
    }
    size_t start = (size_t)range_start;
    snprintf(hdr, sizeof hdr,
             "Content-Type: application/octet-stream\r\nContent-Range: bytes %zu-%zu/%zu\r\n",
             start, srv.len - 1, srv.len);
    respond(fd, 206, "Partial Content", hdr, srv.data + start, srv.len - start, srv.len - start);
    return 206;
  }
  respond(fd, 200, "OK", "Content-Type: application/octet-stream\r\nAccept-Ranges: bytes\r\n",
          srv.data, srv.len, cut ? srv.len / 2 : srv.len);
  return 200;
}

static void handle(int fd) {
  char buf[16384];
  size_t n = 0;
  struct timeval tv = {.tv_sec = 5};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  while (n < sizeof buf - 1) {
    ssize_t r = recv(fd, buf + n, sizeof buf - 1 - n, 0);
    if (r <= 0) return;
    n += (size_t)r;
    buf[n] = 0;
    if (strstr(buf, "\r\n\r\n")) break;
  }
  struct req_log rq = {0};
  if (sscanf(buf, "GET %511s HTTP/1.1", rq.path) != 1) return;
  long range_start = -1;
  for (char *line = strstr(buf, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
    if (!strncasecmp(line + 2, "Range:", 6)) {
      char *v = line + 8;
      while (*v == ' ') v++;
      size_t k = strcspn(v, "\r\n");
      if (k >= sizeof rq.range) k = sizeof rq.range - 1;
      memcpy(rq.range, v, k);
      if (!strncmp(v, "bytes=", 6)) range_start = strtol(v + 6, NULL, 10);
    }
  }
  const char *p = rq.path;
  int status;
  if (!strcmp(p, "/model.gguf")) {
    status = serve_file(fd, range_start, true, false);
  } else if (!strcmp(p, "/cut.gguf")) {
    pthread_mutex_lock(&srv.mu);
    bool cut = range_start < 0 && srv.cut_pending;
    if (cut) srv.cut_pending = 0;
    pthread_mutex_unlock(&srv.mu);
    status = serve_file(fd, range_start, true, cut);
  } else if (!strcmp(p, "/norange.gguf")) {
    status = serve_file(fd, range_start, false, false);
  } else if (!strcmp(p, "/redir.gguf")) {
    respond(fd, 302, "Found", "Location: /model.gguf\r\n", NULL, 0, 0);
    status = 302;
  } else if (!strcmp(p, "/page.html")) {
    static const char page[] = "<!DOCTYPE html>\n<html><head><title>Model page</title></head>"
                               "<body>not the file</body></html>\n";
    respond(fd, 200, "OK", "Content-Type: text/html; charset=utf-8\r\n", page, sizeof page - 1,
            sizeof page - 1);
    status = 200;
  } else if (!strcmp(p, "/badrange.gguf") && range_start > 0) {
    char hdr[128];
    snprintf(hdr, sizeof hdr, "Content-Range: bytes 0-%zu/%zu\r\n", srv.len - 1, srv.len);
    respond(fd, 206, "Partial Content", hdr, srv.data, srv.len, srv.len);
    status = 206;
  } else if (strstr(p, "/resolve/main/") && strlen(p) > 5 && !strcmp(p + strlen(p) - 5, ".gguf")) {
    status = serve_file(fd, range_start, true, false);
  } else {
    static const char nf[] = "<html><body>404 Not Found</body></html>";
    respond(fd, 404, "Not Found", "Content-Type: text/html\r\n", nf, sizeof nf - 1, sizeof nf - 1);
    status = 404;
  }
  rq.status = status;
  pthread_mutex_lock(&srv.mu);
  if (srv.n_reqs < MAX_REQS) srv.reqs[srv.n_reqs++] = rq;
  pthread_mutex_unlock(&srv.mu);
}

static void *serve_loop(void *arg) {
  (void)arg;
  while (!srv.stop) {
    int fd = accept(srv.lfd, NULL, NULL);
    if (fd < 0) continue;
    if (!srv.stop) handle(fd);
    shutdown(fd, SHUT_RDWR);
    close(fd);
  }
  return NULL;
}

static int srv_start(void) {
  srv.lfd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(srv.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  if (bind(srv.lfd, (struct sockaddr *)&a, sizeof a) || listen(srv.lfd, 16) ||
      getsockname(srv.lfd, (struct sockaddr *)&a, &al))
    return -1;
  srv.port = ntohs(a.sin_port);
  return pthread_create(&srv.thread, NULL, serve_loop, NULL) ? -1 : 0;
}

static void srv_stop(void) {
  srv.stop = 1;
  int fd = socket(AF_INET, SOCK_STREAM, 0);   /* wake accept() */
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv.port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  connect(fd, (struct sockaddr *)&a, sizeof a);
  close(fd);
  pthread_join(srv.thread, NULL);
  close(srv.lfd);
}

static int n_reqs(void) {
  pthread_mutex_lock(&srv.mu);
  int n = srv.n_reqs;
  pthread_mutex_unlock(&srv.mu);
  return n;
}

static struct req_log last_req(void) {
  pthread_mutex_lock(&srv.mu);
  struct req_log r = srv.n_reqs ? srv.reqs[srv.n_reqs - 1] : (struct req_log){0};
  pthread_mutex_unlock(&srv.mu);
  return r;
}

/* ---------------------------------------------------------------------------------------- */
/* Running tiergate.                                                                           */

static const char *bin;
static char tmp[256];

struct run {
  int rc;       /* exit status, or -1 if it did not exit normally */
  char *out;    /* stdout, stderr (NUL-terminated, freed by run_free) */
  char *err;
};

struct run_opts {
  const char *cwd;       /* or NULL */
  long fsize_limit;      /* RLIMIT_FSIZE in bytes, 0 = none */
  int stderr_fd;         /* >= 0: use this as stderr instead of a file */
};

/* Runs `tiergate pull ARGS...` (NULL-terminated) and collects exit status, stdout and stderr. */
static struct run run_pull_opts(const struct run_opts *o, const char *const *args) {
  char out_path[512], err_path[512];
  snprintf(out_path, sizeof out_path, "%s/stdout.txt", tmp);
  snprintf(err_path, sizeof err_path, "%s/stderr.txt", tmp);
  const char *argv[32] = {bin, "pull"};
  int argc = 2;
  for (; args[argc - 2] && argc < 31; argc++) argv[argc] = args[argc - 2];
  argv[argc] = NULL;
  pid_t pid = fork();
  if (pid == 0) {
    int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int fe = o && o->stderr_fd >= 0 ? o->stderr_fd : open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int fi = open("/dev/null", O_RDONLY);
    dup2(fi, 0);
    dup2(fo, 1);
    dup2(fe, 2);
    if (o && o->cwd && chdir(o->cwd)) _exit(126);
    if (o && o->fsize_limit) {
      struct rlimit rl = {.rlim_cur = (rlim_t)o->fsize_limit, .rlim_max = (rlim_t)o->fsize_limit};
      signal(SIGXFSZ, SIG_IGN);   /* stays ignored across exec: write() fails with EFBIG */
      setrlimit(RLIMIT_FSIZE, &rl);
    }
    execv(bin, (char *const *)argv);
    _exit(127);
  }
  struct run r = {.rc = -1};
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
  if (WIFEXITED(st)) r.rc = WEXITSTATUS(st);
  r.out = check_read_file(out_path, NULL);
  r.err = (o && o->stderr_fd >= 0) ? strdup("") : check_read_file(err_path, NULL);
  if (!r.out) r.out = strdup("");
  if (!r.err) r.err = strdup("");
  return r;
}

#define RUN(...) run_pull_opts(NULL, (const char *const[]){__VA_ARGS__, NULL})

static void run_free(struct run *r) {
  free(r->out);
  free(r->err);
}

/* Helpers on files. */
static bool exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

static long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) ? -1 : (long)st.st_size;
}

static bool same_as_served(const char *path) {
  size_t n = 0;
  char *b = check_read_file(path, &n);
  bool same = b && n == srv.len && !memcmp(b, srv.data, n);
  free(b);
  return same;
}

static void write_file(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) return;
  fwrite(p, 1, n, f);
  fclose(f);
}

static const char *dir_for(const char *name) {
  static char bufs[8][512];
  static int k;
  char *d = bufs[k++ & 7];
  snprintf(d, sizeof bufs[0], "%s/%s", tmp, name);
  return d;
}

static const char *join(const char *dir, const char *file) {
  static char bufs[8][768];
  static int k;
  char *p = bufs[k++ & 7];
  snprintf(p, sizeof bufs[0], "%s/%s", dir, file);
  return p;
}

static char url_buf[8][256];
static int url_k;
static const char *url(const char *path) {
  char *u = url_buf[url_k++ & 7];
  snprintf(u, sizeof url_buf[0], "http://127.0.0.1:%d%s", srv.port, path);
  return u;
}

/* stdout is exactly "PATH\n". */
static bool stdout_is_path(const struct run *r, const char *path) {
  size_t n = strlen(path);
  return !strncmp(r->out, path, n) && r->out[n] == '\n' && r->out[n + 1] == 0;
}

static char sha_served[65];

/* The sha256 of PATH by the system's sha256sum; "" if that fails. */
static void sha256sum(const char *path, char out[65]) {
  char cmd[600];
  out[0] = 0;
  snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
  FILE *p = popen(cmd, "r");
  if (!p) return;
  if (fscanf(p, "%64s", out) != 1) out[0] = 0;
  pclose(p);
}

/* ---------------------------------------------------------------------------------------- */
/* The cases.                                                                                  */

static void test_plain_and_already_there(void) {
  const char *d = dir_for("plain");   /* does not exist yet: pull creates it */
  const char *f = join(d, "model.gguf");
  struct run r = RUN(url("/model.gguf"), "-o", d);
  CHECK_EQ_INT(r.rc, 0);
  CHECK_MSG(stdout_is_path(&r, f), "stdout: '%s' want '%s\\n'", r.out, f);
  CHECK(same_as_served(f));
  CHECK(!exists(join(d, "model.gguf.part")));
  CHECK_MSG(strstr(r.err, sha_served) != NULL, "stderr lacks sha256 %s: %s", sha_served, r.err);
  CHECK_MSG(!strchr(r.err, '\r'), "non-tty stderr has a carriage return: %s", r.err);
  CHECK_MSG(strstr(r.err, "100%") != NULL, "no final progress line: %s", r.err);
  CHECK_MSG(strstr(r.err, "none known to compare") != NULL, "%s", r.err);
  CHECK_STR(last_req().path, "/model.gguf");
  CHECK_STR(last_req().range, "");
  run_free(&r);

  /* Already there, right hash: no request at all. */
  int before = n_reqs();
  r = RUN(url("/model.gguf"), "-o", d, "--sha256", sha_served);
  CHECK_EQ_INT(r.rc, 0);
  CHECK(stdout_is_path(&r, f));
  CHECK_MSG(strstr(r.err, "already there") != NULL && strstr(r.err, "verified") != NULL, "%s",
            r.err);
  CHECK_EQ_INT(n_reqs(), before);
  run_free(&r);

  /* Already there, nothing to compare with: still not fetched again. */
  r = RUN(url("/model.gguf"), "-o", d, "--quiet");
  CHECK_EQ_INT(r.rc, 0);
  CHECK(stdout_is_path(&r, f));
  CHECK_STR(r.err, "");   /* --quiet: nothing but the path */
  CHECK_EQ_INT(n_reqs(), before);
  run_free(&r);

  /* Already there with the wrong hash: refused, the file left alone. */
  char other[65];
  memset(other, 'a', 64);
  other[64] = 0;
  r = RUN(url("/model.gguf"), "-o", d, "--sha256", other);
  CHECK_EQ_INT(r.rc, 1);
  CHECK_STR(r.out, "");
  CHECK_MSG(strstr(r.err, sha_served) && strstr(r.err, other), "%s", r.err);
  CHECK(same_as_served(f));
  CHECK_EQ_INT(n_reqs(), before);
  run_free(&r);
}

static void test_404(void) {
  const char *d = dir_for("404");
  const char *u = url("/missing.gguf");
  struct run r = RUN(u, "-o", d);
  CHECK_EQ_INT(r.rc, 1);
  CHECK_STR(r.out, "");
  CHECK_MSG(strstr(r.err, u) && strstr(r.err, "404") && strstr(r.err, "Not Found"), "%s", r.err);
  CHECK(!exists(join(d, "missing.gguf")));
  CHECK(!exists(join(d, "missing.gguf.part")));
  run_free(&r);
}

static void test_html(void) {
  const char *d = dir_for("html");
  struct run r = RUN(url("/page.html"), "-o", d);
  CHECK_EQ_INT(r.rc, 1);
  CHECK_STR(r.out, "");
  CHECK_MSG(strstr(r.err, "not a GGUF file") && strstr(r.err, "an HTML page") &&
                strstr(r.err, "<!DOCTYPE html>"),
            "%s", r.err);
  CHECK(!exists(join(d, "page.html")));
  CHECK(!exists(join(d, "page.html.part")));
  run_free(&r);
}

static void test_cut_and_resume(void) {
  const char *d = dir_for("cut");
  const char *f = join(d, "cut.gguf"), *part = join(d, "cut.gguf.part");
  srv.cut_pending = 1;
  struct run r = RUN(url("/cut.gguf"), "-o", d);
  CHECK_EQ_INT(r.rc, 1);
  CHECK_STR(r.out, "");
  CHECK_MSG(strstr(r.err, "resume") != NULL, "%s", r.err);
  CHECK(!exists(f));
  CHECK_EQ_INT(file_size(part), FILE_LEN / 2);
  run_free(&r);

  /* Second run: hashes the half it has, asks for the rest, ends byte-identical. The expected
   * hash only matches if the kept half was hashed too. */
  r = RUN(url("/cut.gguf"), "-o", d, "--sha256", sha_served);
  CHECK_EQ_INT(r.rc, 0);
  CHECK(stdout_is_path(&r, f));
  struct req_log q = last_req();
  CHECK_STR(q.path, "/cut.gguf");
  CHECK_STR(q.range, "bytes=131072-");
  CHECK_EQ_INT(q.status, 206);
  CHECK(same_as_served(f));
  CHECK(!exists(part));
  CHECK_MSG(strstr(r.err, "resuming") && strstr(r.err, "verified"), "%s", r.err);
  run_free(&r);
}

static void test_range_ignored(void) {
  const char *d = dir_for("norange");
  mkdir(d, 0755);
  const char *f = join(d, "norange.gguf"), *part = join(d, "norange.gguf.part");
  /* A .part that starts like a GGUF file but whose bytes differ from the served ones: had it
   * been appended to, the result would differ. */
  uint8_t junk[100000];
  memcpy(junk, srv.data, 8);
  memset(junk + 8, 0xAA, sizeof junk - 8);
  write_file(part, junk, sizeof junk);
  struct run r = RUN(url("/norange.gguf"), "-o", d, "--sha256", sha_served);
  CHECK_EQ_INT(r.rc, 0);
  CHECK(stdout_is_path(&r, f));
  struct req_log q = last_req();
  CHECK_STR(q.range, "bytes=100000-");
  CHECK_EQ_INT(q.status, 200);
  CHECK_MSG(strstr(r.err, "ignored the Range request") != NULL, "%s", r.err);
  CHECK(same_as_served(f));
  CHECK(!exists(part));
  run_free(&r);
}

static void test_sha_mismatch(void) {
  const char *d = dir_for("mismatch");
  char zeros[65];
  memset(zeros, '0', 64);
  zeros[64] = 0;
  struct run r = RUN(url("/model.gguf"), "-o", d, "--sha256", zeros);
  CHECK_EQ_INT(r.rc, 1);
  CHECK_STR(r.out, "");
  char want[200];
  snprintf(want, sizeof want, "expected %s, got %s", zeros, sha_served);
  CHECK_MSG(strstr(r.err, want) != NULL, "stderr lacks '%s': %s", want, r.err);
  CHECK(!exists(join(d, "model.gguf")));
  CHECK(!exists(join(d, "model.gguf.part")));
  run_free(&r);
}

static void test_416_complete_part(void) {
  const char *d = dir_for("complete");
  mkdir(d, 0755);
  const char *f = join(d, "model.gguf"), *part = join(d, "model.gguf.part");
  write_file(part, srv.data, srv.len);
  struct run r = RUN(url("/model.gguf"), "-o", d, "--sha256", sha_served);
  CHECK_EQ_INT(r.rc, 0);
  CHECK(stdout_is_path(&r, f));
  struct req_log q = last_req();
  CHECK_STR(q.range, "bytes=262144-");
  CHECK_EQ_INT(q.status, 416);
  CHECK(same_as_served(f));
  CHECK(!exists(part));
  run_free(&r);
}

static void test_bad_content_range(void) {
  const char *d = dir_for("badrange");
  mkdir(d, 0755);
  const char *part = join(d, "badrange.gguf.part");
  write_file(part, srv.data, 1000);
  struct run r = RUN(url("/badrange.gguf"), "-o", d);
  CHECK_EQ_INT(r.rc, 1);
  CHECK_MSG(strstr(r.err, "Content-Range") != NULL, "%s", r.err);
  CHECK_EQ_INT(file_size(part), 1000);   /* kept as it was */
  CHECK(!exists(join(d, "badrange.gguf")));
  run_free(&r);
}

static void test_redirect(void) {
  const char *d = dir_for("redir");
  const char *f = join(d, "redir.gguf");
  struct run r = RUN(url("/redir.gguf"), "-o", d);
  CHECK_EQ_INT(r.rc, 0);
  CHECK(stdout_is_path(&r, f));
  CHECK(same_as_served(f));
  CHECK_STR(last_req().path, "/model.gguf");
  run_free(&r);
}

static void test_catalogue_via_mirror(void) {
  char mirror[128];
  snprintf(mirror, sizeof mirror, "http://127.0.0.1:%d/", srv.port);
  setenv("TIERGATE_PULL_MIRROR", mirror, 1);

  /* A catalogue entry without a known size or hash: fetched from the mirror's path. */
  const char *d = dir_for("mirror");
  const char *f = join(d, "smollm2-135m-instruct-q8_0.gguf");
  struct run r = RUN("smollm2-135m-instruct", "-o", d);
  CHECK_EQ_INT(r.rc, 0);
  CHECK(stdout_is_path(&r, f));
  CHECK(same_as_served(f));
  CHECK_STR(last_req().path,
            "/HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/resolve/main/smollm2-135m-instruct-q8_0.gguf");
  run_free(&r);

  /* An entry with a known size and sha256: the 256 KiB stand-in is refused before its body. */
  const char *d2 = dir_for("mirror2");
  r = RUN("Qwen2.5-0.5B-Instruct", "-o", d2);   /* names are case-insensitive */
  CHECK_EQ_INT(r.rc, 1);
  CHECK_MSG(strstr(r.err, "675710816") && strstr(r.err, "262144"), "%s", r.err);
  CHECK_STR(last_req().path,
            "/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/main/qwen2.5-0.5b-instruct-q8_0.gguf");
  CHECK(!exists(join(d2, "qwen2.5-0.5b-instruct-q8_0.gguf.part")));
  CHECK(!exists(join(d2, "qwen2.5-0.5b-instruct-q8_0.gguf")));
  run_free(&r);

  /* --sha256 replaces the catalogue's checks. */
  r = RUN("qwen2.5-0.5b-instruct", "-o", d2, "--sha256", sha_served);
  CHECK_EQ_INT(r.rc, 0);
  CHECK(stdout_is_path(&r, join(d2, "qwen2.5-0.5b-instruct-q8_0.gguf")));
  run_free(&r);

  /* --list shows the mirror's URLs and says which values are unknown. */
  r = RUN("--list");
  CHECK_EQ_INT(r.rc, 0);
  const char *names[] = {"qwen2.5-0.5b-instruct", "qwen2.5-0.5b-instruct-q4_k_m",
                         "smollm2-135m-instruct", "smollm2-360m-instruct", "qwen3-0.6b",
                         "llama-3.2-1b-instruct"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    CHECK_MSG(strstr(r.out, names[i]) != NULL, "--list lacks %s", names[i]);
  CHECK(strstr(r.out, "sha256  unknown") != NULL);
  CHECK(strstr(r.out, "ca59ca7f13d0e15a8cfa77bd17e65d24f6844b554a7b6c12e07a5f89ff76844e") != NULL);
  char mu[200];
  snprintf(mu, sizeof mu, "http://127.0.0.1:%d/Qwen/Qwen3-0.6B-GGUF/resolve/main/Qwen3-0.6B-Q8_0.gguf",
           srv.port);
  CHECK_MSG(strstr(r.out, mu) != NULL, "--list lacks %s", mu);
  run_free(&r);
  unsetenv("TIERGATE_PULL_MIRROR");

  r = RUN("--list");
  CHECK(strstr(r.out, "https://huggingface.co/Qwen/Qwen3-0.6B-GGUF/resolve/main/Qwen3-0.6B-Q8_0.gguf"));
  run_free(&r);
}

static void test_default_dirs(void) {
  /* $TIERGATE_MODELS */
  const char *d = dir_for("envdir");
  setenv("TIERGATE_MODELS", d, 1);
  struct run r = RUN(url("/model.gguf"), "-q");
  CHECK_EQ_INT(r.rc, 0);
  CHECK(stdout_is_path(&r, join(d, "model.gguf")));
  CHECK(same_as_served(join(d, "model.gguf")));
  run_free(&r);
  unsetenv("TIERGATE_MODELS");

  /* else ./models, relative to the working directory */
  const char *cwd = dir_for("cwd");
  mkdir(cwd, 0755);
  struct run_opts o = {.cwd = cwd, .stderr_fd = -1};
  r = run_pull_opts(&o, (const char *const[]){url("/model.gguf"), "-q", NULL});
  CHECK_EQ_INT(r.rc, 0);
  CHECK_STR(r.out, "models/model.gguf\n");
  CHECK(same_as_served(join(cwd, "models/model.gguf")));
  run_free(&r);
}

static void test_usage_errors(void) {
  struct run r = RUN("--help");
  CHECK_EQ_INT(r.rc, 0);
  CHECK(strstr(r.out, "usage: tiergate pull") != NULL);
  run_free(&r);

  r = run_pull_opts(NULL, (const char *const[]){NULL});
  CHECK_EQ_INT(r.rc, 2);
  CHECK(strstr(r.err, "usage:") != NULL);
  run_free(&r);

  r = RUN("ftp://127.0.0.1/x.gguf");
  CHECK_EQ_INT(r.rc, 2);
  CHECK_MSG(strstr(r.err, "http://") && strstr(r.err, "ftp://127.0.0.1/x.gguf"), "%s", r.err);
  run_free(&r);

  r = RUN("no-such-model");
  CHECK_EQ_INT(r.rc, 2);
  CHECK_MSG(strstr(r.err, "no-such-model") && strstr(r.err, "qwen3-0.6b") &&
                strstr(r.err, "smollm2-360m-instruct") && strstr(r.err, "llama-3.2-1b-instruct"),
            "%s", r.err);
  run_free(&r);

  const char *plainfile = join(tmp, "a-file");
  write_file(plainfile, "x", 1);
  r = RUN(url("/model.gguf"), "-o", plainfile);
  CHECK_EQ_INT(r.rc, 2);
  CHECK_MSG(strstr(r.err, "not a directory") != NULL, "%s", r.err);
  run_free(&r);

  r = RUN(url("/model.gguf"), "-o", join(tmp, "no/such/dir"));
  CHECK_EQ_INT(r.rc, 2);
  CHECK_MSG(strstr(r.err, "No such file or directory") != NULL, "%s", r.err);
  run_free(&r);

  r = RUN(url("/model.gguf"), "--sha256", "abc");
  CHECK_EQ_INT(r.rc, 2);
  CHECK_MSG(strstr(r.err, "64 hex digits") != NULL, "%s", r.err);
  run_free(&r);

  r = RUN(url("/model.gguf"), "--bogus");
  CHECK_EQ_INT(r.rc, 2);
  CHECK(strstr(r.err, "--bogus") != NULL);
  run_free(&r);

  r = RUN(url("/model.gguf"), url("/cut.gguf"));
  CHECK_EQ_INT(r.rc, 2);
  run_free(&r);

  r = RUN("http://127.0.0.1:1/", "-o", dir_for("noname"));
  CHECK_EQ_INT(r.rc, 2);
  CHECK_MSG(strstr(r.err, "file name") != NULL, "%s", r.err);
  run_free(&r);
}

static void test_network_error(void) {
  /* A port nobody listens on. */
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  bind(s, (struct sockaddr *)&a, sizeof a);
  getsockname(s, (struct sockaddr *)&a, &al);
  int port = ntohs(a.sin_port);
  close(s);
  char u[128];
  snprintf(u, sizeof u, "http://127.0.0.1:%d/x.gguf", port);
  const char *d = dir_for("neterr");
  struct run r = RUN(u, "-o", d);
  CHECK_EQ_INT(r.rc, 1);
  CHECK_MSG(strstr(r.err, u) && strcasestr(r.err, "connect"), "%s", r.err);
  CHECK(!exists(join(d, "x.gguf.part")));
  run_free(&r);
}

static void test_write_error(void) {
  /* RLIMIT_FSIZE stands in for a full disk: write() fails (EFBIG) after 64 KiB. */
  const char *d = dir_for("full");
  struct run_opts o = {.fsize_limit = 64 * 1024, .stderr_fd = -1};
  struct run r = run_pull_opts(&o, (const char *const[]){url("/model.gguf"), "-o", d, NULL});
  CHECK_EQ_INT(r.rc, 1);
  CHECK_STR(r.out, "");
  CHECK_MSG(strstr(r.err, "cannot write") && strstr(r.err, "model.gguf.part"), "%s", r.err);
  CHECK(!exists(join(d, "model.gguf")));
  CHECK_EQ_INT(file_size(join(d, "model.gguf.part")), 64 * 1024);   /* kept for a resume */
  run_free(&r);
  /* ...and with the limit gone, the next run resumes from there. */
  r = RUN(url("/model.gguf"), "-o", d, "--sha256", sha_served);
  CHECK_EQ_INT(r.rc, 0);
  CHECK_STR(last_req().range, "bytes=65536-");
  CHECK(same_as_served(join(d, "model.gguf")));
  run_free(&r);
}

static void test_tty_progress(void) {
  int m = posix_openpt(O_RDWR | O_NOCTTY);
  if (m < 0 || grantpt(m) || unlockpt(m)) {
    fprintf(stderr, "no pty here: skipping the terminal progress check\n");
    return;
  }
  int sl = open(ptsname(m), O_RDWR | O_NOCTTY);
  CHECK(sl >= 0);
  /* The pty's buffer holds far more than a few progress redraws; read it after the exit. */
  struct run_opts o = {.stderr_fd = sl};
  const char *d = dir_for("tty");
  struct run r = run_pull_opts(&o, (const char *const[]){url("/model.gguf"), "-o", d, NULL});
  close(sl);
  char buf[8192];
  size_t n = 0;
  fcntl(m, F_SETFL, O_NONBLOCK);
  for (;;) {
    ssize_t k = read(m, buf + n, sizeof buf - 1 - n);
    if (k <= 0) break;
    n += (size_t)k;
  }
  buf[n] = 0;
  close(m);
  CHECK_EQ_INT(r.rc, 0);
  CHECK_MSG(strchr(buf, '\r') != NULL && strstr(buf, "100%") != NULL, "tty output: %s", buf);
  run_free(&r);
}

int main(void) {
  bin = getenv("TIERGATE_BIN");
  if (!bin) {
    fprintf(stderr, "TIERGATE_BIN is not set\n");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  snprintf(tmp, sizeof tmp, "%s/tg-pull-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(tmp)) {
    perror("mkdtemp");
    return 1;
  }
  unsetenv("TIERGATE_MODELS");
  unsetenv("TIERGATE_PULL_MIRROR");

  /* The served file: a GGUF v3 header with no tensors and no keys, then xorshift bytes. */
  srv.len = FILE_LEN;
  srv.data = malloc(srv.len);
  memcpy(srv.data, "GGUF\x03\0\0\0", 8);
  memset(srv.data + 8, 0, 16);
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (size_t i = 24; i < srv.len; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    srv.data[i] = (uint8_t)x;
  }
  const char *src = join(tmp, "served.gguf");
  write_file(src, srv.data, srv.len);
  sha256sum(src, sha_served);
  CHECK_MSG(strlen(sha_served) == 64, "sha256sum did not run");
  if (srv_start()) {
    perror("server");
    return 1;
  }

  test_plain_and_already_there();
  test_404();
  test_html();
  test_cut_and_resume();
  test_range_ignored();
  test_sha_mismatch();
  test_416_complete_part();
  test_bad_content_range();
  test_redirect();
  test_catalogue_via_mirror();
  test_default_dirs();
  test_usage_errors();
  test_network_error();
  test_write_error();
  test_tty_progress();

  srv_stop();
  free(srv.data);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
  if (!check_failures_ && system(cmd)) fprintf(stderr, "could not remove %s\n", tmp);
  return check_done();
}
