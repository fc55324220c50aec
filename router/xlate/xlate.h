/*
 * xlate.h: translation between the OpenAI Chat Completions and the Anthropic Messages formats,
 * both ways: requests, responses, errors and their statuses, rate-limit headers, and streams.
 * Private to router/ (like internal.h); the rules are listed in README "Translation".
 *
 *   xlate_req.c     request bodies: OpenAI -> Anthropic and Anthropic -> OpenAI
 *   xlate_resp.c    non-streamed replies, error bodies and statuses, response headers
 *   xlate_stream.c  the two streaming state machines, event by event
 *
 * Everything here is pure: no I/O, no clock (times come in as arguments), no global state, so
 * each rule has a unit test (tests/router/test_xlate.c) and the streams have golden tests
 * replayed at every chunk split (tests/router/test_xlate_golden.c). The glue that runs these
 * inside upstream calls is xlate_call.c (OpenAI client, Anthropic upstream) and anthropic.c
 * (Anthropic client, either upstream).
 *
 * Canonical usage (policies/ struct pol_usage) is computed from what the UPSTREAM reports, in
 * its own format, before any translation: the log row and the cost never depend on the client's
 * format.
 */
#ifndef TIERGATE_ROUTER_XLATE_H
#define TIERGATE_ROUTER_XLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policies/policies.h"

struct evbuffer;

/* max_tokens sent to an Anthropic upstream when the OpenAI request names none (Anthropic
 * requires it; OpenAI's default is "as much as fits"). Every current Claude model allows more. */
#define RT_XLATE_DEFAULT_MAX_TOKENS 8192

/* Anthropic API versions this gateway speaks (clients and upstreams). 2026-10-21 rejects
 * temperature/top_p/top_k, document blocks in assistant turns and citations on user text. */
#define RT_ANTHROPIC_V1 "2023-06-01"
#define RT_ANTHROPIC_V2 "2026-10-21"
/* Is VERSION one that forbids sampling parameters (2026-10-21 and later)? */
bool rt_anthropic_version_strict(const char *version);

/* Why a translation refused a request: a 400 in the caller's format (status 500: out of
 * memory). param names the offending field ("messages[2].content[0]"), "" when none. */
struct rt_xerr {
  int status;
  char param[96];
  char msg[256];
};

/* ------------------------------------------------------------------ requests (xlate_req.c) */

struct rt_xreq_opts {
  const char *upstream_model;      /* the model name to send */
  const char *anthropic_version;   /* OpenAI -> Anthropic: the version the upstream gets */
  int default_max_tokens;          /* OpenAI -> Anthropic when absent; <= 0: the default above */
};

/* An OpenAI chat body (already validated by rt_openai_validate) as an Anthropic Messages body.
 * Returns malloc'd JSON text (*out_len set), or NULL with ERR filled. */
char *rt_xreq_openai_to_anthropic(const char *body, size_t len, const struct rt_xreq_opts *o,
                                  size_t *out_len, struct rt_xerr *err);
/* An Anthropic Messages body (validated by rt_anthropic_validate) as an OpenAI chat body; a
 * stream asks for stream_options.include_usage. Returns malloc'd text or NULL with ERR. */
char *rt_xreq_anthropic_to_openai(const char *body, size_t len, const struct rt_xreq_opts *o,
                                  size_t *out_len, struct rt_xerr *err);

/* ------------------------------------------------------------------ replies (xlate_resp.c) */

/* A 2xx Anthropic message as an OpenAI chat.completion (model shown as MODEL, created as given).
 * USAGE gets the canonical usage when the reply has one (*have_usage). Returns malloc'd text, or
 * NULL when BODY is not a message object. */
char *rt_xresp_anthropic_to_openai(const char *body, size_t n, const char *model, int64_t created,
                                   size_t *out_len, struct pol_usage *usage, bool *have_usage);
/* A 2xx OpenAI chat.completion as an Anthropic message (first choice). */
char *rt_xresp_openai_to_anthropic(const char *body, size_t n, const char *model, size_t *out_len,
                                   struct pol_usage *usage, bool *have_usage);

/* finish_reason <-> stop_reason (unknown values: "stop" / "end_turn"). */
const char *rt_x_finish_from_stop(const char *stop_reason);
const char *rt_x_stop_from_finish(const char *finish_reason);

/* An error as the client will see it. */
struct rt_xerror {
  int status;
  const char *type;       /* static string */
  const char *code;       /* OpenAI code (static) or NULL */
  bool no_retry;          /* tell the SDK not to retry (x-should-retry: false) */
  char message[512];
};
/* An Anthropic upstream's error reply (status + body, which may be anything) for an OpenAI
 * client: 529 -> 503 server_is_overloaded, 402 -> 429 insufficient_quota, ... */
void rt_xerr_anthropic_to_openai(int status, const char *body, size_t n, struct rt_xerror *out);
/* An OpenAI upstream's error reply for an Anthropic client: 503 -> 529 overloaded_error, 422 ->
 * 400, 429 insufficient_quota -> 429 rate_limit_error without retries, ... */
void rt_xerr_openai_to_anthropic(int status, const char *body, size_t n, struct rt_xerror *out);
/* Anthropic's error type for an HTTP status (400 invalid_request_error, 529 overloaded_error). */
const char *rt_anthropic_error_type(int status);
/* Error bodies: {"error":{"message","type","param","code"}} and
 * {"type":"error","error":{"type","message"},"request_id"} (request_id NULL: omitted). */
void rt_xerr_render_openai(struct evbuffer *out, const char *type, const char *code,
                           const char *param, const char *message);
void rt_xerr_render_anthropic(struct evbuffer *out, const char *type, const char *message,
                              const char *request_id);

/* Response headers. Each returns 1 and the translated header in NAME/VALUE (buffers of CAP
 * bytes), or 0 to drop it. OpenAI's relative resets ("6m0s")
 * into Anthropic's RFC 3339 instants and back. retry-after, retry-after-ms and x-should-retry
 * pass unchanged; request ids swap names (x-request-id <-> request-id). NOW_MS: milliseconds
 * since the epoch. */
int rt_xhdr_openai_to_anthropic(const char *name, const char *value, int64_t now_ms, char *oname,
                                char *ovalue, size_t cap);
int rt_xhdr_anthropic_to_openai(const char *name, const char *value, int64_t now_ms, char *oname,
                                char *ovalue, size_t cap);
/* Go-style duration ("1s", "6m0s", "12ms", "1h2m3.5s") in milliseconds, -1 if malformed. */
int64_t rt_x_parse_go_duration(const char *s);
/* Milliseconds as a Go-style duration ("1m5s", "250ms", "0s"). */
void rt_x_format_go_duration(int64_t ms, char *out, size_t cap);
/* RFC 3339 ("2026-11-20T12:00:05Z", "...05.25+01:00") in milliseconds since the epoch, -1 if
 * malformed; and back (UTC, whole seconds). */
int64_t rt_x_parse_rfc3339(const char *s);
void rt_x_format_rfc3339(int64_t ms, char *out, size_t cap);

/* ------------------------------------------------------------------ streams (xlate_stream.c) */

/*
 * A stream translator: fed the upstream's SSE events one at a time (as upstream/sse.c parses
 * them), it appends the client's frames to an evbuffer at once, holding nothing back except what
 * the target format only says at the end (finish reason, usage). It never sees bytes, so chunk
 * boundaries cannot matter; the golden tests prove it with the real parser in front.
 *
 *   RT_XS_A2O  Anthropic events -> OpenAI chunks (`data: {...}` ... `data: [DONE]`)
 *   RT_XS_O2A  OpenAI chunks -> Anthropic events (every frame with its `event:` line)
 */
enum rt_xs_dir { RT_XS_A2O, RT_XS_O2A };

struct rt_xstream;

struct rt_xs_opts {
  const char *model;        /* shown to the client (the public name) */
  int64_t created;          /* A2O: the chunks' "created" (seconds) */
  bool include_usage;       /* A2O: the client asked stream_options.include_usage */
  const char *fallback_id;  /* O2A: message id if the upstream's chunks carry none */
};

/* Returns NULL on allocation failure. */
struct rt_xstream *rt_xs_new(enum rt_xs_dir dir, const struct rt_xs_opts *o);
void rt_xs_free(struct rt_xstream *s);   /* accepts NULL */

/* rt_xs_event / rt_xs_eof results */
#define RT_XS_MORE 0        /* keep feeding */
#define RT_XS_END 1         /* the client's stream is complete (terminal frames written) */
#define RT_XS_FAILED 2      /* an error frame was written (upstream error event): stream over */
#define RT_XS_BAD (-1)      /* the event is malformed or out of order: nothing written */

/* One upstream event (EVENT: its `event:` name, "" if none; DATA: its data). Events after END or
 * FAILED are ignored (RT_XS_END / RT_XS_FAILED again). */
int rt_xs_event(struct rt_xstream *s, const char *event, const char *data, size_t n,
                struct evbuffer *out);
/* The upstream stream ended. Completes the client's stream when the upstream had finished its
 * answer without saying so in its last frame (O2A: a finish_reason but no [DONE]), returning
 * RT_XS_END; otherwise writes an error frame (the answer was cut) and returns RT_XS_FAILED. */
int rt_xs_eof(struct rt_xstream *s, struct evbuffer *out);
/* Writes a gateway-side failure (upstream reset, timeout, malformed event) as the client's
 * mid-stream error frame and ends the stream. TYPE is the client format's error type. */
void rt_xs_fail(struct rt_xstream *s, const char *type, const char *message, struct evbuffer *out);
/* The canonical usage reported by the upstream so far; NULL before any. */
const struct pol_usage *rt_xs_usage(const struct rt_xstream *s);
/* Has any content (text, tool call) been written for the client? (time to first token) */
bool rt_xs_has_content(const struct rt_xstream *s);
/* The upstream's error event, when FAILED came from one: its message ("" otherwise). */
const char *rt_xs_error_message(const struct rt_xstream *s);

#endif
