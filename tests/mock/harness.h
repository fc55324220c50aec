/*
 * harness.h: helpers the mock self-test and the gateway integration tests share: spawning and
 * stopping processes, the mock upstream and `tiergate serve` on ephemeral ports with a temp
 * config and database, an HTTP client (libcurl easy) that keeps status, headers, body and
 * timings, and a raw-socket client for what libcurl hides (when each byte arrived, closing a
 * connection mid-stream, slow senders).
 *
 * Everything returns 0 / a value >= 0 on success and -1 on failure with a message on stderr;
 * tests assert on the values, the harness only reports why it could not get them.
 */
#ifndef TIERGATE_TESTS_HARNESS_H
#define TIERGATE_TESTS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

/* ------------------------------------------------------------------ time */

double th_now_ms(void);  /* monotonic */
void th_sleep_ms(int ms);

/* ------------------------------------------------------------------ processes */

struct th_proc {
  pid_t pid;      /* 0: not running */
  int out_fd;     /* read end of the child's stdout, -1 if not piped */
};

/* Starts argv[0] (a path) with extra environment entries ("K=V", NULL-terminated list or NULL).
 * The child's stdout is piped to out_fd; stderr is inherited (it lands in the test log). */
int th_spawn(struct th_proc *p, char *const argv[], char *const env_extra[]);
/* Same, with the child's stdout written to the file STDOUT_PATH instead of a pipe (NULL: pipe). */
int th_spawn_out(struct th_proc *p, char *const argv[], char *const env_extra[],
                 const char *stdout_path);
/* Reads one line of the child's stdout (without the newline). Returns its length, or -1 on
 * EOF/timeout. */
int th_read_line(struct th_proc *p, char *buf, size_t cap, int timeout_ms);
/* Sends SIG and waits up to timeout_ms for the exit. Returns the wait status, or -1 if it did
 * not exit (it is then killed with SIGKILL). */
int th_stop(struct th_proc *p, int sig, int timeout_ms);
/* Waits up to timeout_ms for the exit without signalling; returns the wait status, or -1 (then
 * killed with SIGKILL). */
int th_wait(struct th_proc *p, int timeout_ms);
/* Resident set size of PID in KiB, -1 if unknown. */
long th_rss_kb(pid_t pid);
/* Non-blocking: true while the process runs. */
bool th_alive(struct th_proc *p);

/* ------------------------------------------------------------------ the mock upstream */

struct th_mock {
  struct th_proc proc;
  int port;
  char url[64];   /* "http://127.0.0.1:PORT" */
};

/* Starts $MOCK_UPSTREAM_BIN (extra args may be NULL). */
int th_mock_start(struct th_mock *m, const char *const *extra_args);
/* SIGTERM; returns the wait status (0 = clean exit, which under ASan also means no leak). */
int th_mock_stop(struct th_mock *m);
/* GET /_mock/last[?tag=T]; NULL if none. Caller decrefs. */
json_t *th_mock_last(const struct th_mock *m, const char *tag);
/* GET /_mock/stats; NULL on failure. */
json_t *th_mock_stats(const struct th_mock *m);
/* One counter of /_mock/stats, -1 on failure. */
long long th_mock_stat(const struct th_mock *m, const char *name);
/* Polls /_mock/last?tag=T until its "state" is STATE, up to timeout_ms. Returns the record
 * (caller decrefs) or NULL. */
json_t *th_mock_wait_state(const struct th_mock *m, const char *tag, const char *state,
                           int timeout_ms);

/* ------------------------------------------------------------------ the gateway */

struct th_gw {
  struct th_proc proc;
  int port;               /* read from the port file once listening */
  char url[64];           /* "http://127.0.0.1:PORT" */
  char dir[256];          /* temp dir holding config, database, port file, stdout log */
  char config_path[320];
  char db_path[320];
  char port_file[320];
  char stdout_path[320];
};

/* A free TCP port on 127.0.0.1 (bound then released): nothing listens there afterwards. */
int th_free_port(void);
/* Makes a temp dir (under $TMPDIR or /tmp). */
int th_tmpdir(char *out, size_t cap, const char *prefix);
/* Removes DIR and the files in it (one level). */
void th_rmdir(const char *dir);

/* Makes the temp dir and sets the paths. */
int th_gw_prepare(struct th_gw *g);
/* Writes YAML (if not NULL) to g->config_path, starts `$TIERGATE_BIN serve --config ...
 * --port-file ...` and waits until GET /healthz answers 200 (up to 20 s). The YAML should say
 * `listen: 127.0.0.1:0`. extra_env: "K=V" entries or NULL. */
int th_gw_start(struct th_gw *g, const char *yaml, char *const extra_env[]);
/* Sends SIG and waits; returns the wait status or -1. */
int th_gw_stop(struct th_gw *g, int sig, int timeout_ms);
/* The standard test config (malloc'd): providers `mock` (the mock at MOCK_PORT, key from
 * TIERGATE_TEST_KEY, one extra header), `dead` (a closed port), `nokey` (key variable unset),
 * `mock-anthropic` and `mock-anthropic-2026` (the mock's Anthropic surface, anthropic_version
 * 2023-06-01 and 2026-10-21; no standard model uses them);
 * models gpt-4o-mini, gpt-4o (baseline), mapped (-> gpt-4.1-nano), priced (-> my-finetune with a
 * price override 1.00/0.50/3.00), unpriced, dead-model, nokey-model, plus EXTRA_MODELS (YAML
 * lines indented by 2, or NULL); LIMITS replaces the limits block body (lines indented by 2, or
 * NULL for 64KiB body, 2s connect, 1s first byte and idle, 10s total, 1s client); one attempt
 * per request (no retries) and no circuit breaker: a plain proxy whose failures pass through. */
char *th_gw_test_yaml(const struct th_gw *g, int mock_port, const char *limits,
                      const char *extra_models);
/* The environment the standard config wants: TIERGATE_TEST_KEY=sk-tiergate-test-key. */
char *const *th_gw_test_env(void);

/* ------------------------------------------------------------------ HTTP (libcurl) */

struct th_resp {
  long status;         /* 0 if no response */
  int curl_rc;         /* CURLcode */
  char err[256];
  char *body;          /* NUL-terminated, body_len bytes */
  size_t body_len;
  char *headers;       /* raw header block of the final response, NUL-terminated */
  double ttfb_ms;      /* start to first body byte (or headers if no body), -1 if none */
  double total_ms;
  json_t *json;        /* body parsed as JSON, or NULL */
};

struct th_req {
  const char *method;          /* default POST when body, else GET */
  const char *url;
  const char *body;            /* NULL: none */
  size_t body_len;             /* 0: strlen(body) */
  const char *const *headers;  /* "Name: value" list, NULL-terminated, or NULL */
  long timeout_ms;             /* default 10000 */
};

int th_http(const struct th_req *rq, struct th_resp *out);
/* Shorthands: POST a JSON body to url+path / GET url+path. */
int th_post_json(const char *base, const char *path, const char *json, struct th_resp *out);
int th_get(const char *base, const char *path, struct th_resp *out);
/* A response header's value (first match, case-insensitive), copied into buf; NULL if absent. */
const char *th_resp_header(const struct th_resp *r, const char *name, char *buf, size_t cap);
void th_resp_free(struct th_resp *r);

/* SSE: the `data:` payloads of a complete event-stream body, in order. Returns a JSON array of
 * strings (caller decrefs). */
json_t *th_sse_data(const char *body, size_t len);

/* ------------------------------------------------------------------ raw sockets */

/* Connects to 127.0.0.1:port (TCP_NODELAY, blocking). Returns the fd or -1. */
int th_connect(int port);
int th_send_all(int fd, const void *buf, size_t len);
/* Sends a POST with a JSON body (Content-Length) to PATH. */
int th_send_post(int fd, const char *path, const char *json, const char *extra_headers);
/* Waits up to timeout_ms for data and reads what is there. Returns bytes read, 0 on EOF, -1 on
 * error (errno kept: ECONNRESET...), -2 on timeout. */
ssize_t th_recv(int fd, char *buf, size_t cap, int timeout_ms);
/* Reads until EOF or timeout into a malloc'd buffer. Returns length; *rc_out gets the last
 * th_recv result (0 EOF, -1 error, -2 timeout). */
size_t th_recv_all(int fd, char **out, int timeout_ms, int *rc_out);
/* Closes with a RST instead of a FIN. */
void th_close_reset(int fd);

/* ------------------------------------------------------------------ SQLite */

/* Runs SQL on the database at PATH (read-only) and returns the rows as a JSON array of objects
 * (column name -> integer, real, string or null); NULL on error (message on stderr). */
json_t *th_db_query(const char *path, const char *sql);

/* ------------------------------------------------------------------ JSON paths */

/* Walks "a.b.0.c" (object keys, array indexes) from J; NULL if any step is missing. */
const json_t *th_jget(const json_t *j, const char *path);
/* The string at PATH, or NULL. */
const char *th_jstr(const json_t *j, const char *path);
/* The integer at PATH, or -999 when absent or not an integer. */
long long th_jint(const json_t *j, const char *path);
/* The number (integer or real) at PATH, or NAN. */
double th_jnum(const json_t *j, const char *path);

/* ------------------------------------------------------------------ misc */

/* Reads a whole file (malloc'd, NUL-terminated); NULL on failure. */
char *th_read_file(const char *path, size_t *len);
int th_write_file(const char *path, const char *data, size_t len);
/* Builds a string with printf formatting (malloc'd). */
char *th_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
