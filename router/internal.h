/*
 * internal.h: declarations shared by the rooms of router/ that work on a request (not a public
 * interface). The rooms, and what each may use (README "router/: the gateway process"):
 *
 *   http/     the HTTP/1.1 server and parser (http.h): libevent only, no API, policy or database
 *   json/     byte-level JSON scanning, splicing, quoting (json.h): used by every room
 *   xlate/    OpenAI <-> Anthropic translation, pure functions over JSON (xlate.h)
 *   api/      the surfaces: openai.c, anthropic.c (validation, replies, one error renderer per
 *             API), routes.c (the route table: which handler, surface, shedding)
 *   call/     where a request is answered: call.c (one interface, three kinds: OpenAI-kind and
 *             Anthropic-kind upstreams, the local engine), resilience.c (the verdicts between
 *             attempts), balance.c, xcall.c (translated calls), local.c (the local kind)
 *   local/    the scheduler thread that owns the engine contexts (sched.h): slm/ only
 *   core/     the request lifecycle (request.c: replies with the gateway's headers, the one
 *             error path, the log row), metrics.c, gateway.c (startup and wiring)
 *   cli.c     `tiergate serve`, `tiergate config check`
 *
 * DESIGN. One thread runs one libevent loop that owns every client connection and every upstream
 * transfer (upstream/), so nothing on the request path takes a lock; local generation runs on its
 * scheduler thread and comes back through an event. Each request is an rt_req (core/) attached to
 * the HTTP server's rt_http_req; it lives until the server reports the reply finished or aborted,
 * then writes exactly one log row (db_log copies it to the writer thread) and one metrics
 * observation. A surface turns a request into a call and the answer into the client's format;
 * errors go through the surface's one error renderer so every failure has the caller's shape.
 */
#ifndef TIERGATE_ROUTER_INTERNAL_H
#define TIERGATE_ROUTER_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db/db.h"
#include "policies/policies.h"
#include "upstream/upstream.h"

struct evbuffer;
struct event_base;

#include "router/http/http.h"
#include "router/json/json.h"

/* ------------------------------------------------------------------ metrics.c */

enum rt_route {
  RT_ROUTE_CHAT = 0,        /* POST /v1/chat/completions */
  RT_ROUTE_MODELS,          /* GET /v1/models */
  RT_ROUTE_MODEL,           /* GET /v1/models/{id} */
  RT_ROUTE_HEALTHZ,         /* GET /healthz */
  RT_ROUTE_METRICS,         /* GET /metrics */
  RT_ROUTE_MESSAGES,        /* POST /v1/messages */
  RT_ROUTE_COUNT_TOKENS,    /* POST /v1/messages/count_tokens */
  RT_ROUTE_EMBEDDINGS,      /* POST /v1/embeddings */
  RT_ROUTE_OTHER,           /* 404 / 405 / unparsable requests */
  RT_ROUTE_COUNT
};
const char *rt_route_label(enum rt_route r);

struct rt_metrics;

/* What one finished request contributes. model_index: index into cfg->models, -1 for none. */
struct rt_observation {
  enum rt_route route;
  int model_index;
  int status;
  bool streamed;
  double total_ms, upstream_ms, overhead_ms;   /* upstream_ms < 0: no upstream call */
  const struct pol_usage *usage;               /* NULL if unknown */
  int64_t cost_pusd, baseline_cost_pusd;       /* -1 unknown */
};

/* Gauges sampled when /metrics is rendered. */
struct rt_gauges {
  size_t connections, in_flight, upstream_active;
  struct db_stats db;
  bool draining;
};

struct rt_metrics *rt_metrics_new(const struct pol_config *cfg);
void rt_metrics_free(struct rt_metrics *m);      /* accepts NULL */
void rt_metrics_observe(struct rt_metrics *m, const struct rt_observation *o);
/* Writes S as a Prometheus label value (backslash, quote and newline escaped). */
void rt_metrics_label(struct evbuffer *out, const char *s);
/* Appends the Prometheus text exposition (format 0.0.4) to OUT. */
void rt_metrics_render(const struct rt_metrics *m, const struct rt_gauges *g, struct evbuffer *out);

/* ------------------------------------------------------------------ server.c + request.c */
/* (rt_req fields for translation are declared here; the translators themselves in xlate.h) */
struct rt_xstream;

struct rt_server;
struct rt_req;

/* ------------------------------------------------------------------ resilience.c (per request) */

struct rt_call_ops;
struct rt_dep;
struct rt_attempt_rec;
struct event;

#define RT_MAX_CHAIN 16   /* a model and its fallbacks (transitively, depth first, deduplicated) */

/* The state of one request's upstream call across attempts (embedded in rt_req, zeroed with it).
 * Owned by resilience.c; call.c reads the deadlines and the running attempt's deployment. */
struct rt_call {
  const struct rt_call_ops *const *ops_by_kind;   /* the surface's ops per provider kind */
  const struct pol_model *chain[RT_MAX_CHAIN];    /* [0] the model asked for, then fallbacks */
  size_t n_chain, pos;             /* chain[pos] is the model being tried */
  int tries;                       /* attempts on chain[pos] */
  int backoffs;                    /* backoff waits on chain[pos] (the exponent) */
  int prev_delay_ms;               /* last backoff (decorrelated jitter) */
  uint64_t tried, banned;          /* deployments of chain[pos] tried / not to be retried */
  unsigned last_class;             /* POL_FAIL_* of the last failed attempt */
  unsigned skips;                  /* RT_SKIP_* reasons seen while choosing (no attempt made) */
  int64_t deadline_us;             /* monotonic: the whole request ends by then */
  int64_t start_deadline_us;       /* the reply must start by then (client's SDK timeout) */
  int64_t budget_us;               /* no retry or fallback starts after this */
  int client_timeout_ms;           /* x-tiergate-timeout-ms, 0 if absent */
  /* the running attempt */
  struct rt_dep *dep;              /* NULL between attempts */
  int ticket;                      /* its breaker ticket (UP_BREAKER_*) */
  int64_t t_attempt;               /* when it started */
  double waited_ms;                /* time between the previous attempt's end and its start */
  int64_t t_prev_end;              /* when the previous attempt ended, 0 if none */
  uint64_t skipped;                /* deployments of chain[pos] already logged as skipped */
  int64_t retry_after_ms;          /* what its response asked for, -1 none */
  signed char up_should_retry;     /* its x-should-retry: 1 true, -1 false, 0 absent */
  char *err_head;                  /* first bytes of an error body (>= 400), for classifying */
  size_t err_len;
  struct event *timer;             /* backoff wait */
  /* what happened, for the log row (NULL until something worth explaining happened) */
  struct rt_attempt_rec *recs;
  size_t n_recs, cap_recs;
  char *log_json;
};

/* A client API: its error shape and its name in the log. */
struct rt_surface {
  const char *name;   /* db_row.client_api */
  /* Sends an error reply in this API's shape; status/type/code/param/message as decided by
   * rt_req_fail. */
  void (*send_error)(struct rt_req *r, int status, const char *type, const char *code,
                     const char *param, const char *message);
  /* Ends a stream that already started (status sent) with this API's error event and the end
   * of the body; used when the gateway itself must cut it (shutdown deadline). */
  void (*stream_error)(struct rt_req *r, const char *code, const char *message);
};
extern const struct rt_surface rt_openai_surface;
extern const struct rt_surface rt_anthropic_surface;

/* Headers kept from the upstream reply and passed on to the client. */
/* xorshift64*: request ids and balancing need spread and uniqueness, not secrecy. STATE must
 * not be 0. */
static inline uint64_t rt_rand64(uint64_t *state) {
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545F4914F6CDD1DULL;
}

/* What an attempt on a local model measured (the log row shows it). */
struct rt_local_stats {
  bool valid;
  double queue_ms;             /* waiting for a slot */
  double prefill_ms;           /* slot to first token */
  double decode_tps;           /* generated tokens per second after the first, -1 if < 2 */
  int32_t cached_tokens;       /* prompt tokens reused from the slot's cache */
  int32_t prompt_tokens, completion_tokens;   /* as of the last output taken */
  const char *error_class;     /* why the local model refused it ("bad_request", "context_length",
                                * "local_queue_full", ...), NULL if it did not */
};

#define RT_MAX_PASS_HEADERS 24
#define MAX_UPSTREAM_BODY (32u << 20)   /* non-streamed reply we are willing to buffer */
#define MAX_SSE_EVENT (4u << 20)        /* one SSE event from upstream */
#define STREAM_HIGH_WATER (1u << 20)    /* pause the upstream when the client lags this much */

struct rt_req {
  struct rt_server *srv;
  struct rt_http_req *q;           /* the HTTP request (valid for the whole life of R) */
  const struct rt_surface *surface;
  enum rt_route route;
  char id[40];

  /* the request as received (inside Q) */
  const struct rt_http_head *head; /* head->target NULL when the head could not be parsed */
  const char *body;                /* NUL-terminated */
  size_t body_len;

  /* timings: monotonic microseconds; 0 = did not happen */
  int64_t t0;                      /* head parsed */
  int64_t wall0_us;                /* wall clock at t0 */
  int64_t t_up_start, t_up_headers, t_up_end, t_first_token;

  /* what it is about */
  const struct pol_model *model;   /* configured model, NULL if none/unknown */
  const struct pol_deployment *deployment;  /* where the (last) attempt went, NULL before */
  const struct pol_model *served;  /* the model of that deployment (a fallback's, or model) */
  const struct rt_call_ops *call_ops;
  char *model_name;                /* what the client asked for (may be unknown) */
  bool stream, client_usage;       /* stream:true; stream_options.include_usage:true */
  struct up_transfer *xfer;        /* running upstream transfer (HTTP kinds) */
  struct rt_local_call *lcall;     /* running local attempt (local kind) */
  struct rt_local_stats local_stats;   /* what the last local attempt measured */
  int attempts;                    /* upstream attempts started */
  struct rt_call call;             /* retries, fallbacks, deadlines (resilience.c) */

  /* the upstream's reply */
  int up_status;
  char *pass_buf;                  /* "name\0value\0" for the headers passed on */
  size_t pass_len;
  struct rt_kv pass[RT_MAX_PASS_HEADERS];
  size_t n_pass;
  char *up_ctype;
  struct evbuffer *up_body;        /* non-streaming reply being buffered */
  bool up_too_large;
  bool sse_mode, done_sent, paused;
  struct up_sse sse;
  struct pol_usage usage;
  bool have_usage;

  /* translation between API formats (xlate_call.c, anthropic.c) */
  struct rt_xstream *xs;           /* stream translator of a translated call, or NULL */
  int refuse_status;               /* build_body refused the request: the call layer replies
                                    * this status (400) with error_msg and refuse_param */
  char refuse_param[96];
  char *up_extra_header;           /* one more "Name: value" line for the upstream, or NULL */
  bool anthropic_strict;           /* Anthropic client on version 2026-10-21 */
  bool bad_event;                  /* the attempt ended on an untranslatable stream event */

  /* the reply */
  int status;                      /* status sent (or to log) */
  bool resp_started, finished;
  signed char should_retry;        /* x-should-retry sent: 1 true, -1 false, 0 none of ours (the
                                    * upstream's, if any, passes through) */
  const char *error_class;
  char error_msg[256];
};

/* request.c: replies (through the HTTP server, with the gateway's x-tiergate-* headers and the
 * headers passed on from the upstream). All are no-ops once the client is gone. */
/* Starts the reply: status line and headers. content_length < 0 means a streamed body (chunked
 * for HTTP/1.1, close-delimited for 1.0). extra: additional headers (may be NULL). */
void rt_resp_start(struct rt_req *r, int status, const char *content_type, int64_t content_length,
                   const struct rt_kv *extra, size_t n_extra);
void rt_resp_body(struct rt_req *r, const void *p, size_t n);
/* The reply is complete: finishes the body; the server's on_finish logs the request and frees R. */
void rt_resp_end(struct rt_req *r);
/* Whole reply at once (rt_resp_start + body + end). */
void rt_resp_full(struct rt_req *r, int status, const char *content_type, const void *body,
                  size_t n, const struct rt_kv *extra, size_t n_extra);
/* Bytes queued to the client and not yet written (0 when gone). */
size_t rt_resp_pending(const struct rt_req *r);

/* request.c */
void rt_req_dispatch(struct rt_req *r);
/* Records the error (class for the log, message) and sends it through r->surface. */
void rt_req_fail(struct rt_req *r, int status, const char *error_class, const char *type,
                 const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
/* Sets the upstream headers passed back to the client to the N_KEEP pairs of KEEP (names lower
 * cased; an earlier attempt's are dropped, never mixed in) and records the upstream's
 * content-type from ALL. */
void rt_req_pass_headers(struct rt_req *r, const struct up_header *keep, size_t n_keep,
                         const struct up_header *all, size_t n_all);
/* A call's upstream bytes: fed to ON_EVENT when the reply is a stream (pausing the upstream while
 * the client lags; ON_EVENT returns 0 to go on, 1 to ignore the rest, RT_SSE_ABORT to end the
 * transfer), else gathered up to MAX_UPSTREAM_BODY. Returns an UP_DATA_* code. */
#define RT_SSE_ABORT 2
int rt_req_take_data(struct rt_req *r, const char *p, size_t n, up_sse_cb on_event);
/* The log's error class of an error reply that came from where the request was answered:
 * "upstream_error" for an upstream, the local model's own reason for a local one. */
const char *rt_req_answer_error_class(const struct rt_req *r);
/* True for the up_status values that are timeouts. */
bool rt_up_timed_out(const struct up_result *res);
/* A stream already under way was cut: writes the message for the client's error event into MSG
 * and returns the log's error class. */
const char *rt_req_interrupted(const struct rt_req *r, const struct up_result *res, char *msg,
                               size_t cap);
/* The upstream call failed before any of the reply reached the client: the error reply (504
 * timeout, 502 connect / too large / disconnect) through the client's surface. */
void rt_req_fail_upstream(struct rt_req *r, const struct up_result *res);
/* The HTTP server's callbacks (gateway.c hands them to it). */
extern const struct rt_http_app rt_req_http_app;

/* call.c: where R is answered (r->model set, r->stream decided), in one or more attempts. One
 * interface, three kinds behind it, chosen by the provider of the deployment each attempt uses:
 *   POL_PROVIDER_OPENAI     an OpenAI-compatible upstream over HTTP (upstream/)
 *   POL_PROVIDER_ANTHROPIC  an Anthropic upstream over HTTP
 *   POL_PROVIDER_LOCAL      the in-process engine (local.c): it answers in the format of the ops
 *                           (the surface's own), through the same callbacks an upstream would
 * Each attempt: resilience.c picks a deployment of the model or of a fallback (balancing, skipping
 * open breakers, providers without a key and kinds the surface has no ops for) or gives a verdict
 * when nothing is left (503 breakers open, 401 missing key, 501 unreachable kind), which call.c
 * sends; call.c builds URL and headers, asks ops->build_body for the body and starts the attempt
 * with the model's timeouts clipped to the request's deadline; the ops get the answer's events.
 * A failed attempt that sent nothing to the client may be retried or replaced by a fallback
 * (ops->reset runs first); the ops' on_done sees only the final attempt. On any failure to start
 * it replies through rt_req_fail itself: the caller just returns. A surface serves another format
 * by adding ops for that kind that translate. */
#define RT_PROVIDER_KINDS POL_PROVIDER_KINDS
struct rt_local_api;
struct rt_call_ops {
  const char *path;                      /* appended to the provider's base_url */
  /* What the local engine does with the body build_body gives, and in which API's shape it
   * answers (the local kind's ops are the surface's own passthrough ops with this set). */
  const struct rt_local_api *local;
  /* The body to send for UPSTREAM_MODEL (malloc'd, *len set), NULL on failure. */
  char *(*build_body)(struct rt_req *r, const char *upstream_model, size_t *len);
  void (*on_headers)(struct rt_req *r, int status, const struct up_header *h, size_t n);
  int (*on_data)(struct rt_req *r, const char *p, size_t n);    /* UP_DATA_* */
  /* Exactly once per call (the attempt's handle already NULL, r->t_up_end set): the final
   * attempt's end. */
  void (*on_done)(struct rt_req *r, const struct up_result *res);
  /* Optional: a failed attempt is dropped for a retry or fallback (nothing reached the client):
   * forget what on_headers/on_data kept of it. call.c has already reset the generic fields
   * (pass headers, up_ctype, up_body, up_too_large, sse_mode/sse, done_sent, paused, usage,
   * up_status, error_class/error_msg, t_first_token). */
  void (*reset)(struct rt_req *r);
};
void rt_call_start(struct rt_req *r, const struct rt_call_ops *const ops[RT_PROVIDER_KINDS]);
/* Releases what the call holds (backoff timer, in-flight count, breaker probe, attempt log);
 * rt_req_free calls it. Idempotent. */
void rt_call_free(struct rt_req *r);
/* The running attempt, whatever its kind: stop it (no callback afterwards), or resume it after
 * its on_data paused it (r->paused) because the client fell behind. */
void rt_call_cancel_io(struct rt_req *r);
void rt_call_resume_io(struct rt_req *r);

/* ------------------------------------------------------------------ the local kind (call/local.c)
 *
 * A request answered by the in-process engine is parsed into an rt_gen by its surface's parser
 * (api/, in the surface's own terms and errors), run by the scheduler of the provider's model
 * (local/sched.h), and rendered back by the surface's renderers into exactly the bytes an upstream
 * of that API would send (JSON, or SSE frames), which local.c hands to the call's ops through the
 * same up_callbacks an HTTP transfer uses. So surfaces, resilience, logging and metrics see one
 * kind of answer whatever produced it. */
struct rt_gen_msg {
  char *role;                  /* "system", "user", "assistant" (developer is given as system) */
  char *content;               /* the text (parts joined) */
};
/* A generation request in the engine's terms. Sampling fields < 0 (or has_* false) keep the
 * engine's greedy/default behaviour as documented in README "Local models". */
struct rt_gen {
  struct rt_gen_msg *msgs;
  size_t n_msgs;
  int32_t max_tokens;          /* -1: until the context is full */
  double temperature;          /* < 0: absent (1.0 for OpenAI, 1.0 for Anthropic: both APIs'
                                * default; 0 is greedy) */
  double top_p;                /* < 0: off */
  int32_t top_k;               /* <= 0: off */
  double min_p;                /* < 0: off */
  double presence_penalty, frequency_penalty;   /* 0: off */
  double repetition_penalty;   /* <= 0: off */
  bool has_seed;
  uint64_t seed;
  char **stops;                /* stop strings */
  size_t n_stops;
  bool logprobs;
  int32_t top_logprobs;
  bool stream, include_usage;
  bool ignore_eos;             /* keep generating past end-of-turn tokens (benchmarks) */
  /* structured output: what the reply must be (compiled to a constraint by local.c) */
  enum rt_gen_format {
    RT_GEN_FMT_TEXT = 0,       /* free text */
    RT_GEN_FMT_JSON,           /* a JSON object (OpenAI json_object) */
    RT_GEN_FMT_SCHEMA,         /* JSON valid under SCHEMA (json_schema, Anthropic output_config) */
    RT_GEN_FMT_TOOL,           /* a call of one of TOOLS: its arguments valid under its schema */
  } format;
  char *schema;                /* FMT_SCHEMA: the schema's JSON text */
  bool schema_strict;          /* a keyword the engine cannot express is an error (else dropped,
                                * and said so); OpenAI strict: false relaxes */
  struct rt_gen_tool {
    char *name, *description;
    char *parameters;          /* JSON Schema text of the arguments ({"type":"object"} if none) */
  } *tools;
  size_t n_tools;
  int tool_forced;             /* FMT_TOOL: index of the tool the client named, -1: any of them */
};
void rt_gen_free(struct rt_gen *g);   /* frees what the parser allocated; G itself not */

/* Embedding inputs: texts, or token arrays as the OpenAI API allows. */
struct rt_embed_in {
  char *text;                  /* NULL when TOKENS is given */
  size_t text_len;
  int32_t *tokens;
  size_t n_tokens;
};
struct rt_embed {
  struct rt_embed_in *in;
  size_t n_in;
  bool base64;                 /* encoding_format: "base64" */
  int32_t dimensions;          /* 0: the model's; else truncate and renormalise */
};
void rt_embed_free(struct rt_embed *e);

enum rt_gen_finish {
  RT_GEN_RUNNING = 0,
  RT_GEN_END,                  /* the model ended its turn */
  RT_GEN_STOP_SEQ,             /* a stop string matched (stop_seq says which) */
  RT_GEN_LENGTH,               /* max_tokens, or the context is full */
};
/* One generated token with its log-probability (logprobs), and the best alternatives. */
struct rt_gen_alt {
  const char *text;
  size_t len;
  float logprob;
};
struct rt_gen_piece {
  const char *text;            /* the token's bytes (may be part of a UTF-8 character) */
  size_t len;
  float logprob;
  const struct rt_gen_alt *top;
  size_t n_top;
};
/* What a renderer is given: the reply so far (stream: the new part; whole: all of it). */
struct rt_gen_reply {
  const char *id;              /* reply id ("chatcmpl-..." / "msg_..." made by local.c) */
  const char *model;           /* the model name to show */
  int64_t created;             /* seconds since the epoch */
  const char *text;
  size_t len;
  const struct rt_gen_piece *pieces;   /* with logprobs */
  size_t n_pieces;
  enum rt_gen_finish finish;   /* RT_GEN_RUNNING until the last call */
  const char *stop_seq;        /* RT_GEN_STOP_SEQ: the stop string */
  /* FMT_TOOL: the reply is a call of this tool; TEXT/LEN are (a part of) its arguments' JSON */
  const char *tool_name;
  const char *tool_id;         /* "call_..." / "toolu_..." */
  int32_t prompt_tokens, cached_tokens, completion_tokens;
};

/* An API the local engine can answer in (its surface implements it, api/). Every function writes
 * to OUT; parsers return 0, or an HTTP status (400, 500) with the field (or "") and a message in
 * ERR (struct rt_xerr of xlate.h). */
enum rt_local_op { RT_LOCAL_GENERATE, RT_LOCAL_COUNT, RT_LOCAL_EMBED };
struct rt_xerr;
struct rt_local_api {
  const char *name;            /* for messages */
  const char *id_prefix;       /* of reply ids: "chatcmpl-", "msg_" */
  const char *tool_id_prefix;  /* of tool call ids: "call_", "toolu_" */
  int busy_status;             /* what this API answers when the model is at capacity (503 /
                                * Anthropic's 529 overloaded) */
  enum rt_local_op op;
  int (*parse)(const char *body, size_t n, struct rt_gen *g, struct rt_xerr *err);  /* GENERATE, COUNT */
  int (*parse_embed)(const char *body, size_t n, struct rt_embed *e, struct rt_xerr *err);  /* EMBED */
  /* GENERATE, streamed: the first frames (before any text), the text so far, the last frames */
  void (*stream_begin)(const struct rt_gen *g, const struct rt_gen_reply *rp, struct evbuffer *out);
  void (*stream_delta)(const struct rt_gen *g, const struct rt_gen_reply *rp, struct evbuffer *out);
  void (*stream_end)(const struct rt_gen *g, const struct rt_gen_reply *rp, struct evbuffer *out);
  /* GENERATE, whole: the complete reply; COUNT: the count reply (rp->prompt_tokens) */
  void (*whole)(const struct rt_gen *g, const struct rt_gen_reply *rp, struct evbuffer *out);
  /* EMBED: N vectors of DIM floats */
  void (*embeddings)(const struct rt_embed *e, const char *model, const float *v, size_t n,
                     int32_t dim, int32_t prompt_tokens, struct evbuffer *out);
  /* An error body in this API's shape (TYPE: OpenAI's error type; the surface maps it). */
  void (*error)(int status, const char *type, const char *code, const char *param,
                const char *message, const char *request_id, struct evbuffer *out);
  const char *id_header;       /* the reply header that carries the request id in this API
                                * (x-request-id / request-id), sent with every local reply */
  /* A mid-stream error frame (the engine failed after the reply started). */
  void (*stream_error)(const char *message, struct evbuffer *out);
};
extern const struct rt_local_api rt_openai_local_chat, rt_openai_local_embed;   /* openai_local.c */
extern const struct rt_local_api rt_anthropic_local_messages, rt_anthropic_local_count;   /* anthropic_local.c */

struct rt_local;        /* one local provider's model and scheduler */
struct rt_local_call;   /* one attempt on it */


/* Loads P's model (file errors are reported as "FILE:LINE:COL: message" of the config in ERR) and
 * starts its scheduler. NULL on failure. */
struct rt_local *rt_local_new(struct event_base *base, const struct pol_config *cfg,
                              const struct pol_provider *p, char *err, size_t errlen);
void rt_local_free(struct rt_local *l);   /* accepts NULL; after every call on it is gone */
void rt_local_drain(struct rt_local *l);  /* queued requests get 503; running ones finish */
/* The model's context (tokens per sequence) and its size, for /v1/models and config check. */
int32_t rt_local_n_ctx(const struct rt_local *l);
/* Checks P's model without serving it (config check): loads the file, sizes the KV cache for
 * slots x context against the machine's memory. 0, or -1 with "FILE:LINE:COL: message" in ERR. */
int rt_local_check(const struct pol_config *cfg, const struct pol_provider *p, char *err,
                   size_t errlen, char *info, size_t infolen);
/* Starts an attempt: BODY (in API's format) is parsed, run, and answered through CB with UD
 * (REQUEST_ID goes in the API's request-id header and error bodies),
 * never from inside this call. Returns NULL only when out of memory. TIMEOUTS: first_byte (until
 * the first token), idle (between tokens) and total, as for an upstream. STATS, when not NULL,
 * is filled when the attempt ends. */
struct rt_local_call *rt_local_start(struct rt_local *l, const struct rt_local_api *api,
                                     const char *body, size_t n, const char *shown_model,
                                     const char *request_id,
                                     const struct up_request *timeouts,
                                     const struct up_callbacks *cb, void *ud,
                                     struct rt_local_stats *stats);
void rt_local_cancel(struct rt_local_call *c);   /* no callback runs afterwards; accepts NULL */
void rt_local_resume(struct rt_local_call *c);   /* after on_data returned UP_DATA_PAUSE */
/* Prometheus lines for every local model (queue depth, active sequences, batch size, tokens/s,
 * prefix-cache hits). */
void rt_local_render_metrics(struct rt_local *const *locals, size_t n, struct evbuffer *out);

/* balance.c: one candidate deployment of a model, as the balancer sees it. */
struct rt_pick_cand {
  int weight;              /* >= 0; 0: standby, used only when no weighted one is eligible */
  int in_flight;           /* calls running on it now */
  bool eligible;           /* may take this attempt */
};
/* Chooses among C[0..n) by HOW (weighted random, or least in flight per unit of weight with
 * weighted-random ties); U is uniform in [0, 1). Returns the index, -1 when none is eligible. */
int rt_balance_pick(enum pol_balance how, const struct rt_pick_cand *c, size_t n, double u);

/* resilience.c: per server, the run-time state of every upstream deployment (provider + upstream
 * model; models naming the same pair share it): circuit breaker, calls in flight, counters. */
struct rt_resil;
struct rt_resil *rt_resil_new(const struct pol_config *cfg, uint64_t seed);
void rt_resil_free(struct rt_resil *x);   /* accepts NULL */
/* Appends the resilience metrics (breaker state and transitions, attempts by outcome, in flight,
 * retries, fallbacks) in Prometheus text format. */
void rt_resil_render(const struct rt_resil *x, struct evbuffer *out);

/* resilience.c, per request (call.c drives these):
 * rt_resil_begin   deadlines from the model and the client's headers, the fallback chain.
 *                  0, or -1 with the verdict in NO (a malformed x-tiergate-timeout-ms: 400).
 * rt_resil_next    chooses the next attempt's deployment: sets r->deployment, r->served,
 *                  r->call_ops, r->call.dep (breaker ticket taken, in flight counted). 0, or -1
 *                  with the verdict in NO (nothing left to try: 503 when breakers are open, 401
 *                  for a missing key, 501 for an unreachable kind).
 * rt_resil_timeouts  the attempt's timeouts: the served model's, clipped to the deadlines.
 * rt_resil_on_headers / rt_resil_on_data  see the attempt's response (retry-after,
 *                  x-should-retry, the start of an error body).
 * rt_resil_done    the attempt ended: breaker verdict, attempt log; returns RT_RESIL_FINAL (hand
 *                  the result to the surface) or the delay in ms before rt_resil_next (retry or
 *                  fallback; r->should_retry is set for the final reply).
 * rt_resil_abandon the attempt never started (up_start failed): undoes rt_resil_next's counts.
 * rt_resil_cleanup releases the running attempt (cancelled) and frees the log; idempotent.
 * rt_resil_log_json  the attempt_log column: NULL for a first-try success, else a JSON array. */
#define RT_RESIL_FINAL (-1)
/* resilience.c's verdict when a request cannot (or can no longer) be attempted: the reply the
 * call layer sends for it (resilience decides, the call layer replies). */
struct rt_refusal {
  int status;
  const char *error_class, *type, *code, *param;
  signed char should_retry;        /* x-should-retry to send: 1 true, -1 false, 0 none */
  int64_t retry_after_ms;          /* > 0: send retry-after-ms and retry-after */
  char msg[300];
};
int rt_resil_begin(struct rt_req *r, struct rt_refusal *no);
int rt_resil_next(struct rt_req *r, struct rt_refusal *no);
void rt_resil_timeouts(const struct rt_req *r, struct up_request *rq);
void rt_resil_on_headers(struct rt_req *r, int status, const struct up_header *h, size_t n);
void rt_resil_on_data(struct rt_req *r, const char *p, size_t n);
int rt_resil_done(struct rt_req *r, const struct up_result *res);
void rt_resil_abandon(struct rt_req *r);
void rt_resil_cleanup(struct rt_req *r);
const char *rt_resil_log_json(struct rt_req *r);

/* Where the request goes / went: the deployment's upstream model and provider name (the model's
 * first deployment before any attempt); NULL without a model. */
const char *rt_req_upstream_model(const struct rt_req *r);
const char *rt_req_provider_name(const struct rt_req *r);
/* The name replies show for the model: the public name of the model whose deployment answered
 * (a fallback shows its own name; x-tiergate-route and the log say which), or NULL when it is
 * the upstream's own name and nothing needs renaming. */
const char *rt_req_alias(const struct rt_req *r);
/* A whole JSON reply to the client, its top-level "model" renamed to rt_req_alias() when RENAME
 * (else, or when the body cannot be rewritten, sent as it is). */
void rt_resp_json_renamed(struct rt_req *r, int status, const char *ctype, const char *body,
                          size_t n, bool rename);

/* openai.c */
void rt_openai_chat(struct rt_req *r);
void rt_openai_embeddings(struct rt_req *r);
void rt_openai_models(struct rt_req *r);
void rt_openai_model(struct rt_req *r, const char *id);
/* Validates a chat body (JSON, object, model string, messages array of objects, duplicate
 * top-level keys). Returns 0 and fills INFO, or 400 with *param (NULL or the field) and a message
 * in MSG. Pure: no I/O, unit-tested. */
struct rt_chat_info {
  char *model_name;        /* malloc'd: the model the client asked for */
  bool stream;             /* "stream": true */
  bool client_usage;       /* "stream_options": {"include_usage": true} */
};
int rt_openai_validate(const char *body, size_t len, struct rt_chat_info *info, const char **param,
                       char *msg, size_t msgcap);
void rt_chat_info_free(struct rt_chat_info *info);
/* Builds the upstream body from a validated one: the top-level "model" replaced by
 * UPSTREAM_MODEL (NULL: kept) and, when FORCE_USAGE, stream_options.include_usage set to true;
 * every other byte unchanged. Returns malloc'd text or NULL (out of memory / malformed). */
char *rt_openai_upstream_body(const char *body, size_t len, const char *upstream_model,
                              bool force_usage, size_t *out_len);
/* Builds the client-visible copy of an upstream JSON object with its top-level "model" replaced
 * by PUBLIC_NAME (NULL: unchanged). Returns malloc'd text or NULL (then send the original). */
char *rt_openai_rename_model(const char *s, size_t n, const char *public_name, size_t *out_len);

/* anthropic.c: the Anthropic surface. */
void rt_anthropic_messages(struct rt_req *r);
void rt_anthropic_count_tokens(struct rt_req *r);
/* GET /v1/models[/{id}] asked with an anthropic-version header: Anthropic's list shape. */
void rt_anthropic_models(struct rt_req *r);
void rt_anthropic_model(struct rt_req *r, const char *id);
/* routes.c: the route and surface of a request, from its path and headers (as soon as the head is
 * known, so a 413 or a malformed body already gets the caller's error shape). */
void rt_route_match(struct rt_req *r);
/* Validates a Messages body (JSON, object, model, max_tokens unless COUNT, messages and their
 * blocks, types; on a strict (2026-10-21) client the fields that version rejects). Returns 0 and
 * INFO (model_name malloc'd, stream), or 400 with *param and a message. Pure, unit-tested. */
int rt_anthropic_validate(const char *body, size_t len, bool count, bool strict,
                          struct rt_chat_info *info, const char **param, char *msg, size_t msgcap);
/* Upstream body for an Anthropic upstream from a validated Messages body: "model" replaced by
 * UPSTREAM_MODEL (NULL: kept) and, when DROP_SAMPLING, temperature/top_p/top_k removed; every
 * other byte unchanged. Returns malloc'd text or NULL. */
char *rt_anthropic_upstream_body(const char *body, size_t len, const char *upstream_model,
                                 bool drop_sampling, size_t *out_len);
/* The count_tokens estimate for a model that is not served by Anthropic (see README). */
int64_t rt_anthropic_estimate_tokens(const char *body, size_t len);

/* xlate_call.c: upstream calls whose formats differ (call ops, see rt_call_start). */
extern const struct rt_call_ops rt_xcall_openai_to_anthropic;   /* OpenAI client */
extern const struct rt_call_ops rt_xcall_anthropic_to_openai;   /* Anthropic client */
/* The provider the request goes to (the deployment's once chosen). */
const struct pol_provider *rt_req_provider(const struct rt_req *r);

/* Per provider, built once at startup: the fixed request headers (auth included). */
struct rt_provider_cache {
  char **hdr;               /* "Name: value" lines */
  size_t n_hdr;
};

/* The gateway: everything a request may reach (gateway.c builds it). */
struct rt_server {
  struct event_base *base;
  const struct pol_config *cfg;
  struct db_writer *db;
  struct up_multi *up;
  struct rt_http_server *http;
  struct rt_metrics *metrics;
  bool log_pressure;                /* db_log reported back-pressure: shed new API requests */
  struct event *sig_int, *sig_term;
  int64_t started_wall;             /* seconds since the epoch */
  uint64_t rng;
  struct rt_provider_cache *prov;   /* [cfg->n_providers] */
  struct rt_resil *resil;           /* deployments: breakers, in flight (resilience.c) */
  struct rt_local **local;          /* [cfg->n_providers]: the local kind's engines, else NULL */
  char *models_json;                /* GET /v1/models reply, built once */
  size_t models_json_len;
};

int64_t rt_now_us(void);
int64_t rt_wall_us(void);
/* Model's index in cfg->models, -1 for NULL. */
int rt_model_index(const struct pol_config *cfg, const struct pol_model *m);

/* gateway.c: setup, the loop, teardown (cli.c drives it). */
struct rt_serve_opts {
  const char *listen;        /* "host:port" override, NULL: config */
  const char *port_file;     /* write the bound port here, NULL: no */
  int drain_ms;              /* shutdown deadline for in-flight requests */
};
int rt_server_run(const struct pol_config *cfg, struct db_writer *db, const struct rt_serve_opts *o);

#endif
