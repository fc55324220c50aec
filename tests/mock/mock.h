/*
 * mock.h: private header of the mock upstream (tests/mock/), shared by the HTTP engine
 * (mock_upstream.c) and the API surfaces (mock_openai.c; an Anthropic surface joins later).
 *
 * DESIGN. A surface turns one parsed request into a `mock_plan`: a status, header lines, and the
 * body as a list of frames (one frame for a plain JSON body, one per SSE event for a stream). It
 * never writes to a socket and never sleeps. The engine executes the plan and applies the fault
 * controls that make sense for any surface (latency, stalls, resets, cut-offs, delays between
 * frames) from the same `mock_opts`, so a second API surface gets every fault for free.
 *
 * Behaviour is selected per request, from two places merged in this order:
 *   1. the upstream model name: everything after the first ';' is `key=value` pairs separated by
 *      ';' (e.g. "gpt-4o-mini;status=429;retry_after=2"), so a gateway config can pin a fault to
 *      a public model name;
 *   2. a `"mock": {...}` object in the request body (the gateway forwards unknown fields as they
 *      are), whose keys override the model's.
 * The keys are listed in tests/mock/README.md.
 */
#ifndef TIERGATE_TESTS_MOCK_H
#define TIERGATE_TESTS_MOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Caps on what the mock accepts or makes (every buffer fed from outside has one). */
#define MOCK_MAX_HEADER_BYTES (64 * 1024)
#define MOCK_MAX_HEADERS 128
#define MOCK_MAX_BODY_BYTES ((size_t)64 * 1024 * 1024)
#define MOCK_MAX_HUGE_BYTES ((long)256 * 1024 * 1024)
#define MOCK_MAX_COMPLETION_TOKENS 1000000
#define MOCK_DEFAULT_COMPLETION_TOKENS 8

struct mock_header {
  char *name;   /* lower-cased */
  char *value;  /* surrounding whitespace trimmed */
};

/* One request as received. Strings are NUL-terminated; body may hold NULs (body_len counts). */
struct mock_req {
  char method[16];
  char *path;   /* without the query */
  char *query;  /* after '?', or "" */
  struct mock_header *headers;
  int n_headers;
  char *body;
  size_t body_len;
  uint64_t seq; /* 1, 2, ... in arrival order */
};

/* Fault and content controls. -1 (or NULL) means "not set". */
struct mock_opts {
  /* engine (any surface) */
  int delay_ms;              /* before the status line: latency / stall before the first byte */
  int first_chunk_delay_ms;  /* after the headers, before the first body frame */
  int chunk_delay_ms;        /* before every later frame */
  int stall_after_chunks;    /* after N frames, pause stall_ms (once) */
  int stall_ms;
  int reset_after_chunks;    /* after N frames, reset the connection (RST) */
  int close_after_chunks;    /* after N frames, close the connection (FIN), no terminator */
  int hang_after_chunks;     /* after N frames, send nothing more and keep the connection open */
  long reset_after_bytes;    /* after N bytes of the response (headers included), RST; 0: no reply */
  bool close;                /* send Connection: close and close after the reply */
  /* surfaces */
  int status;                /* HTTP status; >= 400 sends an error body in the surface's shape */
  char *retry_after;         /* retry-after header value */
  char *retry_after_ms;      /* retry-after-ms header value */
  char *error_type, *error_code, *error_message;
  char *error_body;          /* raw error body, replaces the generated one */
  char *content;             /* reply text, replaces the generated one */
  int completion_tokens;     /* words in the reply; default 8 */
  int prompt_tokens;         /* override the computed prompt tokens */
  int cached_tokens;         /* part of the prompt reported as cache hits */
  int cache_write_tokens;    /* part of the prompt reported as cache writes */
  int reasoning_tokens;      /* added to completion tokens and reported as reasoning */
  long huge_bytes;           /* reply text of this many bytes ('x'), for huge bodies */
  int error_after_chunks;    /* stream: after N frames send an error frame and end */
  int tool_calls;            /* 0: never call tools; 1: call when tools are given (default) */
  char *tool_arguments;      /* arguments JSON text for the tool call */
  bool no_usage;             /* stream: never send the usage chunk */
  char *tag;                 /* label echoed in /_mock/last?tag= */
  int fail_times;            /* only the first N requests with this tag get `status` (retries) */
  /* raw bytes, for hostile-upstream tests; %XX escapes are decoded (so CR, LF, NUL can be sent) */
  char *raw_header;          /* appended to the header block as is (add your own \r\n) */
  char *raw_body;            /* replaces the whole body (plain, Content-Length) */
  char *raw_content_type;    /* the Content-Type sent with raw_body (default application/json) */
};

void mock_opts_init(struct mock_opts *o);
void mock_opts_free(struct mock_opts *o);
/* Applies "k=v;k=v" (the part of a model name after ';'). Unknown keys are errors. Returns 0 or
 * -1 with a message in err. */
int mock_opts_apply_kv(struct mock_opts *o, const char *kv, char *err, size_t errlen);
/* Applies a `"mock": {...}` object. Returns 0 or -1 with a message in err. */
int mock_opts_apply_json(struct mock_opts *o, const json_t *obj, char *err, size_t errlen);

/* One piece of the body. The engine writes it as is, or as one HTTP chunk when chunked. */
struct mock_frame {
  char *data;
  size_t len;
};

struct mock_plan {
  int status;
  char *headers;        /* extra header lines, each "Name: value\r\n" (malloc'd), or NULL */
  size_t headers_len;
  const char *content_type;
  bool chunked;         /* streamed: Transfer-Encoding: chunked, frames sent as they are due */
  struct mock_frame *frames;
  size_t n_frames, cap_frames;
};

void mock_plan_init(struct mock_plan *p);
void mock_plan_free(struct mock_plan *p);
/* Adds a header line (formatted). */
void mock_plan_header(struct mock_plan *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Adds a frame; takes ownership of data (malloc'd, len bytes). */
void mock_plan_frame(struct mock_plan *p, char *data, size_t len);
/* Adds a frame with a copy of a NUL-terminated string. */
void mock_plan_frame_str(struct mock_plan *p, const char *s);
/* Adds `data: <json>\n\n` (or `event: NAME\ndata: ...` when event != NULL); steals j. */
void mock_plan_sse_json(struct mock_plan *p, const char *event, json_t *j);
/* Sets a one-frame JSON body; steals j. */
void mock_plan_json(struct mock_plan *p, int status, json_t *j);

/* Decodes %XX escapes of S into a malloc'd buffer (NUL-terminated; *len gets the length, NULs
 * included). A '%' not followed by two hex digits stays as is. */
char *mock_percent_decode(const char *s, size_t *len);

/* Request helpers. */
const char *mock_req_header(const struct mock_req *rq, const char *lower_name);

/* Token accounting shared by the surfaces (documented in tests/mock/README.md). */
/* Whitespace-separated words in s. */
int mock_count_words(const char *s);
/* Words of a message's text: a string, or the `text` of every part of an array; 0 otherwise. */
int mock_content_words(const json_t *content);
/* Reply text of n words cycling through the words of `source` ("mock" if it has none). */
char *mock_reply_text(const char *source, int n);

/* --- surfaces. Each fills the plan for one request; body is the parsed JSON (NULL if the body
 * did not parse: the surface answers 400). The engine has already applied the fault controls of
 * `o` that it owns. */
void mock_openai_chat(const struct mock_req *rq, const json_t *body, const struct mock_opts *o,
                      struct mock_plan *p);
/* OpenAI-shaped error body. */
void mock_openai_error(struct mock_plan *p, int status, const char *type, const char *code,
                       const char *message);
/* The Anthropic surface (mock_anthropic.c): POST .../v1/messages and .../v1/messages/count_tokens,
 * and Anthropic's error shape ({"type":"error","error":{type,message}}; CODE unused). */
void mock_anthropic_messages(const struct mock_req *rq, const json_t *body,
                             const struct mock_opts *o, struct mock_plan *p);
void mock_anthropic_count_tokens(const struct mock_req *rq, const json_t *body,
                                 const struct mock_opts *o, struct mock_plan *p);
void mock_anthropic_error(struct mock_plan *p, int status, const char *type, const char *code,
                          const char *message);

#endif
