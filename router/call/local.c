/*
 * local.c: the local kind of answer: a request served by the in-process engine, as if the engine
 * were an upstream of the surface's own API.
 *
 * DESIGN. An rt_local per provider of kind local owns the loaded model and its scheduler thread
 * (local/sched.h). An attempt (rt_local_call) parses the body with the surface's parser (api/),
 * renders the prompt with the model's chat template, tokenizes it, and submits a job. The
 * scheduler thread wakes the loop through an event (event_active from its notify callback, so
 * libevent runs with pthread support); the loop takes each job's new output and renders it with
 * the surface's renderers into the bytes an upstream of that API would send: SSE frames as the
 * tokens come, or one JSON reply at the end. Those bytes go to the call's ops through the same
 * up_callbacks an HTTP transfer uses (on_headers, on_data, on_done; never from inside
 * rt_local_start), so retries, fallbacks, breakers, usage, cost, logging and metrics work
 * unchanged. Failures are answered the way an upstream would: a 400 in the API's error shape for
 * what the model cannot do (the message says "maximum context length" for a prompt that is too
 * long, so `fallback_on: [context_length]` works), a 503 with retry-after and x-should-retry:
 * false when the queue is full (the deployment is not retried; the model's fallbacks are),
 * timeouts as the transfer timeouts (first token, total).
 *
 * Back-pressure: when the ops' on_data returns UP_DATA_PAUSE (the client is slow), the rendered
 * bytes are kept and offered again on rt_local_resume; the job keeps generating into its outbox
 * meanwhile (bounded by max_tokens). A cancelled call releases its job: the scheduler frees the
 * slot before its next decode step.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "router/internal.h"
#include "router/local/sched.h"
#include "router/xlate/xlate.h"
#include "slm/slm.h"
#include "slm/vocab.h"

#define MAX_PROMPT_BYTES (8u << 20)   /* a rendered prompt; the body limit keeps it far below */

struct rt_local {
  struct event_base *base;
  const struct pol_provider *p;
  struct slm_model *model;
  struct rt_sched *sched;
  struct event *wake;                /* made active by the scheduler thread */
  struct rt_local_call *calls;       /* live attempts, polled on wake */
  int32_t n_ctx;
  uint64_t rng;
  char file[256];                    /* the config file, for messages */
  /* structured output, made on the first request that needs it */
  struct slm_vocab_index *vi;        /* the model's token tables */
  struct slm_constraint_cache *cc;   /* compiled constraints by (kind, text, params) */
};

#define CONSTRAINT_CACHE_ENTRIES 256

enum call_state { C_PENDING, C_RUNNING, C_DONE };

struct rt_local_call {
  struct rt_local *l;
  struct rt_local_call *prev, *next;
  const struct rt_local_api *api;
  const struct up_callbacks *cb;
  void *ud;
  struct rt_local_stats *stats;
  struct rt_gen g;
  struct rt_embed e;
  struct rt_job *job;
  char id[64];
  char request_id[48];
  char model[256];
  int64_t created;
  int32_t n_prompt;
  enum call_state state;
  bool started;                      /* on_headers delivered */
  bool paused;                       /* on_data asked to wait: OUT holds what it refused */
  bool in_cb;                        /* inside a callback: a cancel only marks */
  bool cancelled;
  bool first_token;                  /* the engine produced something (first-byte timeout off) */
  bool job_done;                     /* the job's end was taken */
  struct evbuffer *out;              /* rendered, not yet taken by on_data */
  /* a reply decided without the engine (errors, counts): status, headers, body */
  int reply_status;
  bool reply_no_retry;
  char reply_retry_after[16];
  /* the end to report */
  struct up_result res;
  /* the whole reply (not streamed): text and, with logprobs, pieces */
  struct evbuffer *text;
  struct evbuffer *piece_bytes;      /* every piece's and alternative's text */
  struct piece_rec { size_t off, len; float logprob; size_t top0, n_top; } *pieces;
  size_t n_pieces, cap_pieces;
  struct alt_rec { size_t off, len; float logprob; } *alts;
  size_t n_alts, cap_alts;
  /* structured output */
  struct slm_constraint *constraint; /* NULL: free text */
  const char *relaxed;               /* keywords a relaxed schema dropped ("" none), for a header */
  char tool_id[48];
  const char *tool_name;             /* FMT_TOOL: the tool being called, once known */
  struct evbuffer *env;              /* FMT_TOOL, any tool: the envelope's text until the name is known */
  bool env_args;                     /* ... its arguments started: the rest streams (but its last '}') */
  size_t env_sent;                   /* ... bytes of the envelope passed on */
  /* the finish and usage, once known */
  enum rt_gen_finish finish;
  const char *stop_seq;
  int32_t cached, completion;
  /* timers */
  struct event *timer;               /* deferred delivery, then the timeouts */
  int64_t t_start, first_deadline, total_deadline;   /* monotonic us; 0 = none */
  int first_byte_ms, total_ms;
};

/* ------------------------------------------------------------------ call lifetime */

static void fill_stats(struct rt_local_call *c, const struct rt_job_delta *d);

static void call_free(struct rt_local_call *c) {
  struct rt_local *l = c->l;
  if (c->prev) c->prev->next = c->next;
  else if (l->calls == c) l->calls = c->next;
  if (c->next) c->next->prev = c->prev;
  rt_job_release(c->job);
  rt_gen_free(&c->g);
  rt_embed_free(&c->e);
  if (c->out) evbuffer_free(c->out);
  if (c->text) evbuffer_free(c->text);
  if (c->piece_bytes) evbuffer_free(c->piece_bytes);
  if (c->env) evbuffer_free(c->env);
  slm_constraint_free(c->constraint);
  free(c->pieces);
  free(c->alts);
  if (c->timer) event_free(c->timer);
  free(c);
}

void rt_local_cancel(struct rt_local_call *c) {
  if (!c) return;
  if (c->job && c->state == C_RUNNING && !c->in_cb && c->api->op == RT_LOCAL_GENERATE) {
    struct rt_job_delta d;   /* what the engine did until now, for the log row */
    rt_job_take(c->job, &d);
    fill_stats(c, &d);
  }
  if (c->in_cb) {
    c->cancelled = true;   /* freed when the callback returns */
    return;
  }
  call_free(c);
}

/* Runs one of the ops' callbacks; returns false when the call was cancelled (and freed) by it. */
static bool deliver_headers(struct rt_local_call *c, int status, const struct up_header *h,
                            size_t n) {
  c->in_cb = true;
  c->cb->on_headers(c->ud, status, h, n);
  c->in_cb = false;
  if (c->cancelled) {
    call_free(c);
    return false;
  }
  c->started = true;
  return true;
}

/* Offers OUT to on_data. Returns false when the call is gone (cancelled, or ended by an abort). */
static bool deliver_out(struct rt_local_call *c) {
  size_t n = evbuffer_get_length(c->out);
  if (!n) return true;
  c->in_cb = true;
  int rc = c->cb->on_data(c->ud, (const char *)evbuffer_pullup(c->out, -1), n);
  c->in_cb = false;
  if (c->cancelled) {
    call_free(c);
    return false;
  }
  if (rc == UP_DATA_PAUSE) {
    c->paused = true;
    return true;
  }
  evbuffer_drain(c->out, n);
  if (rc == UP_DATA_ABORT) {
    c->res.status = UP_ERR_ABORTED;
    snprintf(c->res.message, sizeof c->res.message, "the reply was refused by the gateway");
    c->state = C_DONE;
  }
  return true;
}

/* The end: on_done once (it may start another attempt), then the call is freed. */
static void deliver_done(struct rt_local_call *c) {
  c->res.total_ms = (double)(rt_now_us() - c->t_start) / 1e3;
  c->in_cb = true;
  c->cb->on_done(c->ud, &c->res);
  c->in_cb = false;
  call_free(c);
}

/* ------------------------------------------------------------------ replies without the engine */

/* An error (or count) reply decided before or instead of running the model, delivered from the
 * timer like an upstream's. */
static void set_reply(struct rt_local_call *c, int status, const char *type, const char *code,
                      const char *param, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void set_reply(struct rt_local_call *c, int status, const char *type, const char *code,
                      const char *param, const char *fmt, ...) {
  char msg[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  evbuffer_drain(c->out, evbuffer_get_length(c->out));
  c->api->error(status, type, code, param, msg, c->request_id, c->out);
  c->reply_status = status;
  if (c->stats) {
    /* the log row says why the model refused, not "upstream_error" */
    c->stats->error_class = code && !strcmp(code, "context_length_exceeded") ? "context_length"
                          : code && !strcmp(code, "local_queue_full") ? "local_queue_full"
                          : code && !strcmp(code, "shutdown") ? "shutdown"
                          : status == 400 ? "bad_request" : "local_engine_error";
  }
}

static void send_reply(struct rt_local_call *c) {
  struct up_header h[5];
  size_t n = 0;
  h[n++] = (struct up_header){"content-type", "application/json"};
  h[n++] = (struct up_header){c->api->id_header, c->request_id};
  if (c->reply_retry_after[0]) h[n++] = (struct up_header){"retry-after", c->reply_retry_after};
  if (c->reply_no_retry) h[n++] = (struct up_header){"x-should-retry", "false"};
  c->res.http_status = c->reply_status;
  if (!deliver_headers(c, c->reply_status, h, n)) return;
  if (!deliver_out(c)) return;
  if (c->paused) {
    c->state = C_DONE;   /* the rest (on_done) follows the resume */
    return;
  }
  deliver_done(c);
}

/* ------------------------------------------------------------------ the engine's output */

static void piece_text(struct rt_local *l, slm_token t, struct evbuffer *b, size_t *off,
                       size_t *len) {
  char buf[256];
  int32_t k = slm_token_to_piece(l->model, t, buf, sizeof buf, false);
  if (k < 0) k = 0;
  *off = evbuffer_get_length(b);
  *len = (size_t)k;
  evbuffer_add(b, buf, (size_t)k);
}

/* Appends the delta's tokens (logprobs) to the call's piece records. */
static void keep_pieces(struct rt_local_call *c, const struct rt_job_delta *d) {
  for (size_t i = 0; i < d->n_tokens; i++) {
    const struct rt_job_token *t = &d->tokens[i];
    if (c->n_pieces == c->cap_pieces) {
      size_t cap = c->cap_pieces ? 2 * c->cap_pieces : 64;
      struct piece_rec *p = realloc(c->pieces, cap * sizeof *p);
      if (!p) return;
      c->pieces = p;
      c->cap_pieces = cap;
    }
    struct piece_rec *pr = &c->pieces[c->n_pieces++];
    piece_text(c->l, t->token, c->piece_bytes, &pr->off, &pr->len);
    pr->logprob = t->logprob;
    pr->top0 = c->n_alts;
    pr->n_top = 0;
    for (int32_t k = 0; k < t->n_top; k++) {
      if (c->n_alts == c->cap_alts) {
        size_t cap = c->cap_alts ? 2 * c->cap_alts : 256;
        struct alt_rec *a = realloc(c->alts, cap * sizeof *a);
        if (!a) break;
        c->alts = a;
        c->cap_alts = cap;
      }
      struct alt_rec *ar = &c->alts[c->n_alts++];
      piece_text(c->l, t->top[k].token, c->piece_bytes, &ar->off, &ar->len);
      ar->logprob = t->top[k].logprob;
      pr->n_top++;
    }
  }
}

/* Views of the piece records from FIRST on, for a renderer (arrays malloc'd, freed by the caller). */
static struct rt_gen_piece *piece_views(struct rt_local_call *c, size_t first, struct rt_gen_alt **alts_out) {
  *alts_out = NULL;
  size_t n = c->n_pieces - first;
  if (!n) return NULL;
  const char *base = (const char *)evbuffer_pullup(c->piece_bytes, -1);
  struct rt_gen_piece *v = calloc(n, sizeof *v);
  struct rt_gen_alt *a = calloc(c->n_alts ? c->n_alts : 1, sizeof *a);
  if (!v || !a) {
    free(v);
    free(a);
    return NULL;
  }
  for (size_t i = 0; i < c->n_alts; i++) a[i] = (struct rt_gen_alt){base + c->alts[i].off, c->alts[i].len, c->alts[i].logprob};
  for (size_t i = 0; i < n; i++) {
    const struct piece_rec *p = &c->pieces[first + i];
    v[i] = (struct rt_gen_piece){base + p->off, p->len, p->logprob, a + p->top0, p->n_top};
  }
  *alts_out = a;
  return v;
}

static enum rt_gen_finish map_finish(enum rt_finish f) {
  switch (f) {
  case RT_FINISH_STOP: return RT_GEN_STOP_SEQ;
  case RT_FINISH_DONE: return RT_GEN_END;
  case RT_FINISH_LENGTH:
  case RT_FINISH_CONTEXT: return RT_GEN_LENGTH;
  default: return RT_GEN_END;
  }
}

/* The counts and timings as of delta D (kept current at every take, so an attempt cut short,
 * by a client that went away, still logs what the engine did). */
static void fill_stats(struct rt_local_call *c, const struct rt_job_delta *d) {
  c->cached = d->n_cached;
  c->completion = d->n_generated - (d->finish == RT_FINISH_EOG ? 1 : 0);
  if (c->completion < 0) c->completion = 0;
  if (!c->stats) return;
  c->stats->valid = true;
  c->stats->prompt_tokens = d->n_prompt;
  c->stats->completion_tokens = c->completion;
  c->stats->queue_ms = (double)d->queued_us / 1e3;
  c->stats->prefill_ms = (double)d->prefill_us / 1e3;
  c->stats->cached_tokens = d->n_cached;
  c->stats->decode_tps = d->n_generated > 1 && d->decode_us > 0
                             ? (double)(d->n_generated - 1) * 1e6 / (double)d->decode_us
                             : -1;
}

/* In the text T[0..N) of a call of one tool among several ({"name":"X","arguments":...}),
 * finds the tool's name (its JSON string at [*name_off, *name_len)) and where the arguments start.
 * Returns true once both are known. */
static bool envelope_head(const char *t, size_t n, size_t *name_off, size_t *name_len,
                          size_t *args_off) {
  size_t i = 0;
#define WS() while (i < n && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r')) i++
#define LIT(s) do { size_t l_ = sizeof(s) - 1; if (n - i < l_ || memcmp(t + i, s, l_)) return false; i += l_; } while (0)
  WS();
  LIT("{");
  WS();
  LIT("\"name\"");
  WS();
  LIT(":");
  WS();
  if (i >= n || t[i] != '"') return false;
  size_t s0 = i++;
  while (i < n && t[i] != '"') i += t[i] == '\\' ? 2 : 1;
  if (i >= n) return false;
  *name_off = s0;
  *name_len = ++i - s0;
  WS();
  LIT(",");
  WS();
  LIT("\"arguments\"");
  WS();
  LIT(":");
  WS();
#undef WS
#undef LIT
  if (i >= n) return false;
  *args_off = i;
  return true;
}

/* The envelope's end: what follows the arguments (whitespace and its closing brace). */
static size_t envelope_args_end(const char *t, size_t n) {
  while (n && (t[n - 1] == ' ' || t[n - 1] == '\t' || t[n - 1] == '\n' || t[n - 1] == '\r')) n--;
  return n && t[n - 1] == '}' ? n - 1 : n;
}

/* The part of the reply's text a client sees now: the text itself, or for a call of one tool
 * among several the arguments inside the envelope once the tool's name is known (the envelope's
 * last byte is held back until the end, where its closing brace is dropped). Sets c->tool_name
 * when the name becomes known. */
static void visible_text(struct rt_local_call *c, const char *text, size_t len, bool end,
                         const char **out, size_t *out_len) {
  *out = text;
  *out_len = len;
  if (!c->env) return;
  evbuffer_add(c->env, text, len);
  const char *t = (const char *)evbuffer_pullup(c->env, -1);
  size_t n = evbuffer_get_length(c->env), no, nl, ao;
  *out = NULL;
  *out_len = 0;
  if (!envelope_head(t, n, &no, &nl, &ao)) return;
  if (!c->tool_name) {
    json_t *name = json_loadb(t + no, nl, JSON_DECODE_ANY, NULL);
    for (size_t k = 0; json_is_string(name) && k < c->g.n_tools; k++)
      if (!strcmp(c->g.tools[k].name, json_string_value(name))) c->tool_name = c->g.tools[k].name;
    json_decref(name);
    if (!c->tool_name) return;   /* cannot happen: the constraint allows only their names */
    c->env_args = true;
    c->env_sent = ao;
  }
  /* only a complete envelope ends in its own '}': one cut by max_tokens (or a stop string) ends
   * inside the arguments, and a '}' there is theirs (dropping it lost a generated byte) */
  size_t limit = !end ? n - 1 : c->finish == RT_GEN_END ? envelope_args_end(t, n) : n;
  /* the byte held back may end a character of several: hold back all of it (a delta of its
   * first bytes alone is not UTF-8, and the client's JSON parser rejects the frame) */
  if (!end)
    while (limit > c->env_sent && ((unsigned char)t[limit] & 0xC0) == 0x80) limit--;
  if (limit > c->env_sent) {
    *out = t + c->env_sent;
    *out_len = limit - c->env_sent;
    c->env_sent = limit;
  }
}

/* Takes the job's new output and renders it. */
static void pump(struct rt_local_call *c) {
  if (c->state != C_RUNNING || c->paused) return;
  struct rt_job_delta d;
  if (!rt_job_take(c->job, &d)) return;
  if (d.n_generated > 0 || d.text_len) c->first_token = true;
  bool end = d.finish != RT_FINISH_NONE;
  fill_stats(c, &d);
  if (end) {
    c->job_done = true;
    if (d.finish == RT_FINISH_STOP && d.stop_index >= 0 && (size_t)d.stop_index < c->g.n_stops)
      c->stop_seq = c->g.stops[d.stop_index];
    c->finish = map_finish(d.finish);
  }
  if (end && (d.finish == RT_FINISH_ERROR || d.finish == RT_FINISH_CANCELLED ||
              d.finish == RT_FINISH_SHUTDOWN)) {
    if (!c->started && d.finish == RT_FINISH_SHUTDOWN) {
      snprintf(c->reply_retry_after, sizeof c->reply_retry_after, "1");
      /* a draining engine never takes it again: without this the drain retried every queued
       * request after retry-after (1 s), failed again, and opened the breaker (then the client
       * got breaker_open instead of shutdown); fallbacks still may take it */
      c->reply_no_retry = true;
      set_reply(c, 503, "server_error", "shutdown", NULL,
                "The local model '%s' is not taking new work: the gateway is shutting down.",
                c->model);
      c->state = C_PENDING;
      send_reply(c);
      return;
    }
    if (!c->started) {
      set_reply(c, 500, "server_error", "local_engine_error", NULL,
                "The local model '%s' failed: %s", c->model, d.error ? d.error : "cancelled");
      c->state = C_PENDING;
      send_reply(c);
      return;
    }
    /* mid-stream: the ops end the client's stream with their error frame */
    c->res.status = UP_ERR_OTHER;
    snprintf(c->res.message, sizeof c->res.message, "the local engine failed: %s",
             d.error ? d.error : "cancelled");
    c->state = C_DONE;
    deliver_done(c);
    return;
  }

  struct rt_gen_reply rp = {.id = c->id, .model = c->model, .created = c->created,
                            .finish = end ? c->finish : RT_GEN_RUNNING, .stop_seq = c->stop_seq,
                            .prompt_tokens = c->n_prompt, .cached_tokens = c->cached,
                            .completion_tokens = c->completion};
  size_t first_piece = c->n_pieces;
  if (c->g.logprobs) keep_pieces(c, &d);
  rp.tool_id = c->tool_id;
  if (c->g.stream) {
    const char *vt;
    size_t vl;
    visible_text(c, d.text, d.text_len, end, &vt, &vl);
    rp.tool_name = c->tool_name;
    /* a tool call's stream starts once its name is known (at once for a named tool) */
    if (!c->started && (c->g.format != RT_GEN_FMT_TOOL || c->tool_name || end)) {
      struct up_header h[3] = {{"content-type", "text/event-stream"},
                               {c->api->id_header, c->request_id}};
      size_t nh = 2;
      if (c->relaxed && *c->relaxed) h[nh++] = (struct up_header){"x-tiergate-schema-relaxed", c->relaxed};
      c->res.http_status = 200;
      if (!deliver_headers(c, 200, h, nh)) return;
      c->api->stream_begin(&c->g, &rp, c->out);
    }
    if (!c->started) return;   /* the name is still coming */
    struct rt_gen_alt *alts = NULL;
    struct rt_gen_piece *pv = c->g.logprobs ? piece_views(c, first_piece, &alts) : NULL;
    if (vl || pv) {
      rp.text = vt;
      rp.len = vl;
      rp.pieces = pv;
      rp.n_pieces = pv ? c->n_pieces - first_piece : 0;
      rp.finish = RT_GEN_RUNNING;
      c->api->stream_delta(&c->g, &rp, c->out);
    }
    free(pv);
    free(alts);
    if (end) {
      rp.text = NULL;
      rp.len = 0;
      rp.pieces = NULL;
      rp.n_pieces = 0;
      rp.finish = c->finish;
      c->api->stream_end(&c->g, &rp, c->out);
      c->state = C_DONE;
    }
    if (!deliver_out(c)) return;
    if (c->state == C_DONE && !c->paused) deliver_done(c);
    return;
  }
  /* whole reply: gather until the end */
  evbuffer_add(c->text, d.text, d.text_len);
  if (!end) return;
  struct rt_gen_alt *alts = NULL;
  struct rt_gen_piece *pv = c->g.logprobs ? piece_views(c, 0, &alts) : NULL;
  const char *all = (const char *)evbuffer_pullup(c->text, -1);
  size_t all_len = evbuffer_get_length(c->text);
  visible_text(c, all, all_len, true, &rp.text, &rp.len);
  rp.tool_name = c->tool_name;
  rp.pieces = pv;
  rp.n_pieces = pv ? c->n_pieces : 0;
  c->api->whole(&c->g, &rp, c->out);
  free(pv);
  free(alts);
  struct up_header h[3] = {{"content-type", "application/json"},
                           {c->api->id_header, c->request_id}};
  size_t nh = 2;
  if (c->relaxed && *c->relaxed) h[nh++] = (struct up_header){"x-tiergate-schema-relaxed", c->relaxed};
  c->res.http_status = 200;
  c->state = C_DONE;
  if (!deliver_headers(c, 200, h, nh)) return;
  if (!deliver_out(c)) return;
  if (!c->paused) deliver_done(c);
}

static void pump_embed(struct rt_local_call *c) {
  if (c->state != C_RUNNING) return;
  struct rt_job_delta d;
  if (!rt_job_take(c->job, &d) || d.finish == RT_FINISH_NONE) return;
  c->state = C_PENDING;
  if (d.finish != RT_FINISH_EOG) {
    set_reply(c, 500, "server_error", "local_engine_error", NULL,
              "The local model '%s' could not compute the embeddings: %s", c->model,
              d.error ? d.error : "cancelled");
    send_reply(c);
    return;
  }
  int32_t dim = 0;
  const float *v = rt_job_embeddings(c->job, &dim);
  if (!v || dim <= 0) {
    set_reply(c, 500, "server_error", "local_engine_error", NULL, "no embeddings were computed");
    send_reply(c);
    return;
  }
  evbuffer_drain(c->out, evbuffer_get_length(c->out));
  c->api->embeddings(&c->e, c->model, v, c->e.n_in, dim, d.n_prompt, c->out);
  c->reply_status = 200;
  send_reply(c);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg) {
  struct rt_local *l = arg;
  for (struct rt_local_call *c = l->calls, *next; c; c = next) {
    next = c->next;   /* C may be freed by its callbacks (never another call) */
    if (!c->job) continue;
    if (c->api->op == RT_LOCAL_EMBED) pump_embed(c);
    else pump(c);
  }
}

static void notify(void *ud) {
  struct rt_local *l = ud;
  event_active(l->wake, EV_READ, 0);
}

/* The call's timer: first the deferred delivery of a decided reply, then the deadlines. */
static void arm_deadline(struct rt_local_call *c) {
  int64_t now = rt_now_us(), next = 0;
  if (!c->first_token && c->first_deadline) next = c->first_deadline;
  if (c->total_deadline && (!next || c->total_deadline < next)) next = c->total_deadline;
  if (!next) return;
  int64_t us = next - now;
  if (us < 1000) us = 1000;
  struct timeval tv = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};
  evtimer_add(c->timer, &tv);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg) {
  struct rt_local_call *c = arg;
  if (c->state == C_PENDING) {
    send_reply(c);
    return;
  }
  if (c->state != C_RUNNING) return;
  int64_t now = rt_now_us();
  bool first = !c->first_token && c->first_deadline && now >= c->first_deadline;
  bool total = c->total_deadline && now >= c->total_deadline;
  if (!first && !total) {
    arm_deadline(c);
    return;
  }
  rt_job_cancel(c->job);
  c->res.status = first ? UP_ERR_TIMEOUT_FIRST_BYTE : UP_ERR_TIMEOUT_TOTAL;
  snprintf(c->res.message, sizeof c->res.message,
           first ? "the local model '%s' produced no token within %d ms (queued or prefilling)"
                 : "the local model '%s' did not finish within %d ms",
           c->model, first ? c->first_byte_ms : c->total_ms);
  c->state = C_DONE;
  deliver_done(c);
}

/* ------------------------------------------------------------------ starting an attempt */

/* ------------------------------------------------------------------ structured output */

/* A copy of the JSON Schema text S with every local $ref ("#", "#/...") moved under PREFIX (a
 * JSON pointer), so a tool's parameters keep their meaning inside the envelope schema. */
static void rebase_refs(json_t *v, const char *prefix) {
  if (json_is_array(v)) {
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) rebase_refs(x, prefix);
    return;
  }
  if (!json_is_object(v)) return;
  const char *k;
  json_t *x;
  json_object_foreach(v, k, x) {
    const char *ref = json_string_value(x);
    if (!strcmp(k, "$ref") && ref && ref[0] == '#' && (ref[1] == 0 || ref[1] == '/')) {
      char *nr = NULL;
      if (asprintf(&nr, "%s%s", prefix, ref + 1) >= 0) json_object_set_new(v, k, json_string(nr));
      free(nr);
    } else {
      rebase_refs(x, prefix);
    }
  }
}

/* The JSON Schema text the reply of G must satisfy (malloc'd), or NULL for free text. A call of
 * one tool among several is the envelope {"name": <one of them>, "arguments": <its parameters>}. */
static char *reply_schema(const struct rt_gen *g, struct rt_xerr *e) {
  switch (g->format) {
  case RT_GEN_FMT_TEXT: return NULL;
  case RT_GEN_FMT_JSON: return strdup("{\"type\":\"object\"}");
  case RT_GEN_FMT_SCHEMA: return strdup(g->schema);
  case RT_GEN_FMT_TOOL: break;
  }
  if (g->tool_forced >= 0) return strdup(g->tools[g->tool_forced].parameters);
  json_t *any = json_array();
  for (size_t i = 0; any && i < g->n_tools; i++) {
    json_t *params = json_loads(g->tools[i].parameters, 0, NULL);
    if (!params) {
      snprintf(e->param, sizeof e->param, "tools");
      snprintf(e->msg, sizeof e->msg, "the parameters of tool '%.64s' are not valid JSON", g->tools[i].name);
      json_decref(any);
      return NULL;
    }
    char prefix[64];
    snprintf(prefix, sizeof prefix, "#/anyOf/%zu/properties/arguments", i);
    rebase_refs(params, prefix);
    json_t *alt = json_pack("{s:s,s:{s:{s:s},s:o},s:[s,s],s:b}", "type", "object", "properties",
                            "name", "const", g->tools[i].name, "arguments", params, "required",
                            "name", "arguments", "additionalProperties", 0);
    if (!alt || json_array_append_new(any, alt)) {
      json_decref(any);
      return NULL;
    }
  }
  json_t *env = any ? json_pack("{s:o}", "anyOf", any) : NULL;
  char *text = env ? rt_json_dumps_exact(env) : NULL;
  json_decref(env);
  return text;
}

/* What the model is told about the required format, added to the system turn: a small model
 * follows a schema it sees far better, and the constraint makes the reply valid either way. */
static char *format_instruction(const struct rt_gen *g) {
  char *s = NULL;
  int rc = -1;
  if (g->format == RT_GEN_FMT_JSON) {
    rc = asprintf(&s, "Answer with a JSON object.");
  } else if (g->format == RT_GEN_FMT_SCHEMA) {
    rc = asprintf(&s, "Answer with JSON that matches this JSON Schema:\n%s", g->schema);
  } else if (g->format == RT_GEN_FMT_TOOL && g->tool_forced >= 0) {
    const struct rt_gen_tool *t = &g->tools[g->tool_forced];
    rc = asprintf(&s, "Call the function %s%s%s. Answer with its arguments: a JSON object that "
                      "matches this JSON Schema:\n%s", t->name, t->description ? ": " : "",
                  t->description ? t->description : "", t->parameters);
  } else if (g->format == RT_GEN_FMT_TOOL) {
    size_t len = 0;
    FILE *f = open_memstream(&s, &len);
    if (!f) return NULL;
    fputs("Call one of these functions. Answer with a JSON object {\"name\": the function's "
          "name, \"arguments\": its arguments}.\n", f);
    for (size_t i = 0; i < g->n_tools; i++)
      fprintf(f, "- %s%s%s; arguments: %s\n", g->tools[i].name, g->tools[i].description ? ": " : "",
              g->tools[i].description ? g->tools[i].description : "", g->tools[i].parameters);
    rc = fclose(f) ? -1 : 0;
  }
  return rc < 0 ? NULL : s;
}

/* Adds the format instruction to the first system turn (a new one when there is none). */
static int add_instruction(struct rt_gen *g) {
  char *ins = format_instruction(g);
  if (!ins) return g->format == RT_GEN_FMT_TEXT ? 0 : -1;
  if (g->n_msgs && !strcmp(g->msgs[0].role, "system")) {
    char *t = NULL;
    int rc = asprintf(&t, "%s%s%s", g->msgs[0].content, *g->msgs[0].content ? "\n\n" : "", ins);
    free(ins);
    if (rc < 0) return -1;
    free(g->msgs[0].content);
    g->msgs[0].content = t;
    return 0;
  }
  struct rt_gen_msg *m = realloc(g->msgs, (g->n_msgs + 1) * sizeof *m);
  if (m) g->msgs = m;
  char *role = m ? strdup("system") : NULL;
  if (!role) {
    free(ins);
    return -1;
  }
  memmove(g->msgs + 1, g->msgs, g->n_msgs * sizeof *g->msgs);
  g->msgs[0] = (struct rt_gen_msg){role, ins};
  g->n_msgs++;
  return 0;
}

/* The compiled constraint of the reply, from the provider's cache. 0, or -1 with a 400 reply set
 * (naming the keyword and its JSON pointer) or a 500. */
static int reply_constraint(struct rt_local_call *c) {
  struct rt_local *l = c->l;
  struct rt_xerr xe = {0};
  char *schema = reply_schema(&c->g, &xe);
  if (!schema) {
    if (xe.msg[0]) set_reply(c, 400, "invalid_request_error", "invalid_schema", xe.param, "%s", xe.msg);
    else set_reply(c, 500, "server_error", "internal", NULL, "out of memory");
    return -1;
  }
  if (!l->vi) l->vi = slm_vocab_index_new(l->model);
  if (l->vi && !l->cc) l->cc = slm_constraint_cache_new(l->vi, CONSTRAINT_CACHE_ENTRIES);
  if (!l->vi || !l->cc) {
    free(schema);
    set_reply(c, 500, "server_error", "internal", NULL, "out of memory (vocabulary index)");
    return -1;
  }
  struct slm_constraint_params cp = slm_constraint_default_params();
  cp.whitespace = SLM_JSON_WS_COMPACT;   /* no runs of spaces from a small model */
  cp.relaxed = c->g.format == RT_GEN_FMT_SCHEMA && !c->g.schema_strict;
  struct slm_constraint_error ce;
  memset(&ce, 0, sizeof ce);
  c->constraint = slm_constraint_cache_get(l->cc, SLM_CONSTRAINT_JSON_SCHEMA, schema,
                                           strlen(schema), &cp, &ce);
  free(schema);
  if (!c->constraint) {
    const char *field = c->g.format == RT_GEN_FMT_TOOL ? "tools" : c->api->op == RT_LOCAL_GENERATE &&
                        c->api->tool_id_prefix && !strcmp(c->api->tool_id_prefix, "toolu_")
                        ? "output_config.format.schema" : "response_format.json_schema.schema";
    /* a tool's schema is named by the tool and a pointer into its own parameters: with several
     * tools the engine's pointer is into the envelope reply_schema built ("/anyOf/I/properties/
     * arguments/..."), a document the client never sent */
    const char *ptr = ce.pointer, *tool = NULL;
    if (c->g.format == RT_GEN_FMT_TOOL && c->g.tool_forced >= 0) {
      tool = c->g.tools[c->g.tool_forced].name;
    } else if (c->g.format == RT_GEN_FMT_TOOL) {
      static const char arg[] = "/properties/arguments";
      char *end = NULL;
      unsigned long i = strncmp(ptr, "/anyOf/", 7) ? ULONG_MAX : strtoul(ptr + 7, &end, 10);
      if (i < c->g.n_tools && end && !strncmp(end, arg, sizeof arg - 1) &&
          (end[sizeof arg - 1] == 0 || end[sizeof arg - 1] == '/')) {
        tool = c->g.tools[i].name;
        ptr = end + sizeof arg - 1;
      }
    }
    if (ce.code == -ENOMEM) {
      set_reply(c, 500, "server_error", "internal", NULL, "out of memory compiling the schema");
    } else {
      set_reply(c, 400, "invalid_request_error", "unsupported_schema", field,
                "The local model cannot follow this schema: %s at '%s'%s%.64s%s%s%s (%s).",
                ce.keyword[0] ? ce.keyword : "schema", ptr, tool ? " in the parameters of tool '" : "",
                tool ? tool : "", tool ? "'" : "", ce.message[0] ? ": " : "",
                ce.message, ce.code == -E2BIG ? "too large to compile"
                            : c->g.schema_strict || c->g.format != RT_GEN_FMT_SCHEMA
                                ? "strict schemas are compiled with their whole meaning or refused"
                                : "not expressible even with the keywords it cannot enforce dropped");
    }
    return -1;
  }
  if (slm_constraint_is_empty(c->constraint)) {
    set_reply(c, 400, "invalid_request_error", "unsupported_schema", "schema",
              "The schema accepts no value at all: no reply could satisfy it.");
    return -1;
  }
  c->relaxed = slm_constraint_relaxed_keywords(c->constraint);
  return 0;
}

/* The prompt of G as tokens (template, then tokenizer), malloc'd; NULL with a reply set. */
static slm_token *prompt_tokens(struct rt_local_call *c, int32_t *n_out) {
  struct rt_local *l = c->l;
  size_t n = c->g.n_msgs;
  struct slm_chat_msg *msgs = calloc(n ? n : 1, sizeof *msgs);
  if (!msgs) return NULL;
  for (size_t i = 0; i < n; i++) msgs[i] = (struct slm_chat_msg){c->g.msgs[i].role, c->g.msgs[i].content};
  /* ends with an assistant turn: the model continues it (prefill), as llama-server does */
  bool add = !(n && !strcmp(c->g.msgs[n - 1].role, "assistant"));
  const char *tmpl = l->p->local.chat_template;
  int32_t need = tmpl ? slm_chat_render(tmpl, msgs, n, add, NULL, 0)
                      : slm_chat_apply(l->model, msgs, n, add, NULL, 0);
  char *text = NULL;
  int32_t len = -1;
  if (need < 0 && (size_t)-need <= MAX_PROMPT_BYTES && (text = malloc((size_t)-need))) {
    len = tmpl ? slm_chat_render(tmpl, msgs, n, add, text, -need)
               : slm_chat_apply(l->model, msgs, n, add, text, -need);
  } else if (need >= 0 && (text = malloc((size_t)need + 1))) {
    len = tmpl ? slm_chat_render(tmpl, msgs, n, add, text, need + 1)
               : slm_chat_apply(l->model, msgs, n, add, text, need + 1);
  }
  free(msgs);
  if (!text || len < 0) {
    free(text);
    set_reply(c, 400, "invalid_request_error", "context_length_exceeded", "messages",
              "The conversation is too long for the local model '%s' (maximum context length "
              "%d tokens).", c->model, l->n_ctx);
    return NULL;
  }
  int32_t cap = len + 8;
  slm_token *toks = malloc((size_t)cap * sizeof *toks);
  int32_t nt = toks ? slm_tokenize(l->model, text, (size_t)len, toks, cap, true, true) : -1;
  if (nt < 0 && nt != INT32_MIN && toks) {
    cap = -nt;
    slm_token *t2 = realloc(toks, (size_t)cap * sizeof *toks);
    nt = t2 ? slm_tokenize(l->model, text, (size_t)len, t2, cap, true, true) : -1;
    toks = t2 ? t2 : toks;
  }
  free(text);
  if (nt <= 0) {
    free(toks);
    set_reply(c, 400, "invalid_request_error", NULL, "messages",
              "The local model '%s' could not tokenize the conversation.", c->model);
    return NULL;
  }
  *n_out = nt;
  return toks;
}

static void start_generate(struct rt_local_call *c) {
  struct rt_local *l = c->l;
  int32_t n = 0;
  if (c->g.format != RT_GEN_FMT_TEXT && add_instruction(&c->g)) {
    set_reply(c, 500, "server_error", "internal", NULL, "out of memory");
    return;
  }
  if (c->g.format != RT_GEN_FMT_TEXT && c->api->op == RT_LOCAL_GENERATE && reply_constraint(c))
    return;
  if (c->g.format == RT_GEN_FMT_TOOL) {
    uint64_t a = rt_rand64(&l->rng);
    snprintf(c->tool_id, sizeof c->tool_id, "%s%016" PRIx64, c->api->tool_id_prefix, a);
    if (c->g.tool_forced >= 0) c->tool_name = c->g.tools[c->g.tool_forced].name;
    else if (!(c->env = evbuffer_new())) {
      set_reply(c, 500, "server_error", "internal", NULL, "out of memory");
      return;
    }
  }
  slm_token *toks = prompt_tokens(c, &n);
  if (!toks) return;
  c->n_prompt = n;
  if (c->api->op == RT_LOCAL_COUNT) {
    free(toks);
    struct rt_gen_reply rp = {.id = c->id, .model = c->model, .prompt_tokens = n};
    evbuffer_drain(c->out, evbuffer_get_length(c->out));
    c->api->whole(&c->g, &rp, c->out);
    c->reply_status = 200;
    return;
  }
  if (n + 1 > l->n_ctx) {
    free(toks);
    set_reply(c, 400, "invalid_request_error", "context_length_exceeded", "messages",
              "This model's maximum context length is %d tokens. However, your messages resulted "
              "in %d tokens.", l->n_ctx, n);
    return;
  }
  int32_t room = l->n_ctx - n;
  if (c->g.max_tokens > 0 && c->g.max_tokens > room && c->g.max_tokens > 0) {
    /* as OpenAI: a max_tokens that cannot fit with the prompt is an error, not a silent cut */
    free(toks);
    set_reply(c, 400, "invalid_request_error", "context_length_exceeded", "max_tokens",
              "This model's maximum context length is %d tokens. However, you requested %d "
              "tokens (%d in the messages, %d in the completion).", l->n_ctx,
              n + c->g.max_tokens, n, c->g.max_tokens);
    return;
  }
  struct rt_job_params jp = {
      .prompt = toks,
      .n_prompt = n,
      .max_tokens = c->g.max_tokens > 0 ? c->g.max_tokens : room,
      .stops = (const char *const *)c->g.stops,
      .n_stops = c->g.n_stops,
      .ignore_eos = c->g.ignore_eos,
      .logprobs = c->g.logprobs,
      .top_logprobs = c->g.logprobs ? c->g.top_logprobs : 0,
      .constraint = c->constraint,
  };
  struct slm_sampler_params sp = slm_sampler_default_params();
  /* the APIs' defaults (temperature 1, no truncation), not a local server's */
  sp.temperature = c->g.temperature >= 0 ? (float)c->g.temperature : 1.0f;
  sp.top_p = c->g.top_p >= 0 ? (float)c->g.top_p : 1.0f;
  sp.top_k = c->g.top_k > 0 ? c->g.top_k : 0;
  sp.min_p = c->g.min_p >= 0 ? (float)c->g.min_p : 0.0f;
  sp.presence_penalty = (float)c->g.presence_penalty;
  sp.frequency_penalty = (float)c->g.frequency_penalty;
  sp.repeat_penalty = c->g.repetition_penalty > 0 ? (float)c->g.repetition_penalty : 1.0f;
  sp.penalty_last_n = l->n_ctx;
  sp.seed = c->g.has_seed ? c->g.seed : rt_rand64(&l->rng);
  sp.n_probs = c->g.logprobs ? c->g.top_logprobs : 0;
  jp.sampling = sp;
  int rc = rt_sched_submit(l->sched, &jp, &c->job);
  free(toks);
  if (rc == 0) {
    c->state = C_RUNNING;
    return;
  }
  c->job = NULL;
  if (rc == -EAGAIN) {
    snprintf(c->reply_retry_after, sizeof c->reply_retry_after, "1");
    c->reply_no_retry = true;   /* another deployment or a fallback may; this one is full */
    set_reply(c, c->api->busy_status, "server_error", "local_queue_full", NULL,
              "The local model '%s' is at capacity (%d running, %d queued): retry shortly.",
              c->model, l->p->local.slots, l->p->local.queue);
  } else if (rc == -ESHUTDOWN) {
    snprintf(c->reply_retry_after, sizeof c->reply_retry_after, "1");
    c->reply_no_retry = true;   /* as a queued job at drain: not this deployment again */
    set_reply(c, 503, "server_error", "shutdown", NULL,
              "The local model '%s' is not taking new work: the gateway is shutting down.", c->model);
  } else if (rc == -E2BIG) {
    set_reply(c, 400, "invalid_request_error", "context_length_exceeded", "messages",
              "This model's maximum context length is %d tokens. However, your messages resulted "
              "in %d tokens.", l->n_ctx, n);
  } else {
    set_reply(c, 500, "server_error", "local_engine_error", NULL,
              "The local model '%s' could not start the request (error %d).", c->model, rc);
  }
}

static void start_embed(struct rt_local_call *c) {
  struct rt_local *l = c->l;
  size_t n = c->e.n_in;
  slm_token **tok = calloc(n ? n : 1, sizeof *tok);
  int32_t *len = calloc(n ? n : 1, sizeof *len);
  bool ok = tok && len;
  int32_t nv = slm_n_vocab(l->model), total = 0;
  for (size_t i = 0; ok && i < n; i++) {
    struct rt_embed_in *in = &c->e.in[i];
    if (in->text) {
      int32_t cap = (int32_t)in->text_len + 8;
      tok[i] = malloc((size_t)cap * sizeof **tok);
      int32_t k = tok[i] ? slm_tokenize(l->model, in->text, in->text_len, tok[i], cap, true, false) : -1;
      if (k <= 0) {
        set_reply(c, 400, "invalid_request_error", NULL, "input",
                  "input[%zu] could not be tokenized (empty or invalid text).", i);
        ok = false;
        break;
      }
      len[i] = k;
    } else {
      tok[i] = malloc((in->n_tokens ? in->n_tokens : 1) * sizeof **tok);
      if (!tok[i]) {
        ok = false;
        break;
      }
      for (size_t k = 0; k < in->n_tokens; k++) {
        if (in->tokens[k] < 0 || in->tokens[k] >= nv) {
          set_reply(c, 400, "invalid_request_error", NULL, "input",
                    "input[%zu][%zu]: token %d is not in the model's vocabulary (0..%d).", i, k,
                    in->tokens[k], nv - 1);
          ok = false;
          break;
        }
        tok[i][k] = in->tokens[k];
      }
      len[i] = (int32_t)in->n_tokens;
    }
    if (ok && len[i] > l->n_ctx) {
      set_reply(c, 400, "invalid_request_error", "context_length_exceeded", "input",
                "input[%zu] has %d tokens; this model's maximum context length is %d tokens.", i,
                len[i], l->n_ctx);
      ok = false;
    }
    total += len[i];
  }
  if (ok) {
    int rc = rt_sched_submit_embed(l->sched, (const slm_token *const *)tok, len, n, &c->job);
    if (rc == 0) {
      c->n_prompt = total;
      c->state = C_RUNNING;
    } else {
      c->job = NULL;
      if (rc == -EAGAIN) {
        snprintf(c->reply_retry_after, sizeof c->reply_retry_after, "1");
        c->reply_no_retry = true;
        set_reply(c, c->api->busy_status, "server_error", "local_queue_full", NULL,
                  "The local model '%s' is at capacity: retry shortly.", c->model);
      } else if (rc == -ENOTSUP) {
        set_reply(c, 400, "invalid_request_error", "unsupported", "model",
                  "The local model '%s' does not serve embeddings (embeddings: false).", c->model);
      } else {
        set_reply(c, 500, "server_error", "local_engine_error", NULL,
                  "The local model '%s' could not start the request (error %d).", c->model, rc);
      }
    }
  } else if (!c->reply_status) {
    set_reply(c, 500, "server_error", "internal", NULL, "out of memory");
  }
  for (size_t i = 0; tok && i < n; i++) free(tok[i]);
  free(tok);
  free(len);
}

struct rt_local_call *rt_local_start(struct rt_local *l, const struct rt_local_api *api,
                                     const char *body, size_t n, const char *shown_model,
                                     const char *request_id, const struct up_request *to,
                                     const struct up_callbacks *cb,
                                     void *ud, struct rt_local_stats *stats) {
  struct rt_local_call *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->l = l;
  c->api = api;
  c->cb = cb;
  c->ud = ud;
  c->stats = stats;
  if (stats) memset(stats, 0, sizeof *stats);
  c->out = evbuffer_new();
  c->text = evbuffer_new();
  c->piece_bytes = evbuffer_new();
  c->timer = evtimer_new(l->base, timer_cb, c);
  if (!c->out || !c->text || !c->piece_bytes || !c->timer) {
    call_free(c);
    return NULL;
  }
  c->next = l->calls;
  if (l->calls) l->calls->prev = c;
  l->calls = c;
  c->t_start = rt_now_us();
  c->created = rt_wall_us() / 1000000;
  snprintf(c->model, sizeof c->model, "%s", shown_model);
  snprintf(c->request_id, sizeof c->request_id, "%s", request_id ? request_id : "");
  uint64_t a = rt_rand64(&l->rng), b = rt_rand64(&l->rng);
  snprintf(c->id, sizeof c->id, "%s%016" PRIx64 "%08" PRIx64, api->id_prefix, a, b >> 32);
  c->state = C_PENDING;

  struct rt_xerr xe;
  int st = api->op == RT_LOCAL_EMBED ? api->parse_embed(body, n, &c->e, &xe)
                                     : api->parse(body, n, &c->g, &xe);
  if (st) {
    set_reply(c, st, st == 400 ? "invalid_request_error" : "server_error", NULL,
              xe.param[0] ? xe.param : NULL, "%s", xe.msg);
  } else if (api->op == RT_LOCAL_EMBED) {
    start_embed(c);
  } else {
    start_generate(c);
  }
  if (c->state == C_PENDING) {
    event_active(c->timer, EV_TIMEOUT, 0);   /* the reply goes out from the loop, not from here */
    return c;
  }
  c->first_byte_ms = to ? to->first_byte_timeout_ms : 0;
  c->total_ms = to ? to->total_timeout_ms : 0;
  if (c->first_byte_ms > 0) c->first_deadline = c->t_start + (int64_t)c->first_byte_ms * 1000;
  if (c->total_ms > 0) c->total_deadline = c->t_start + (int64_t)c->total_ms * 1000;
  arm_deadline(c);
  event_active(l->wake, EV_READ, 0);   /* output may already be there */
  return c;
}

void rt_local_resume(struct rt_local_call *c) {
  if (!c || !c->paused) return;
  c->paused = false;
  if (!deliver_out(c)) return;
  if (c->paused) return;
  if (c->state == C_DONE) {
    deliver_done(c);
    return;
  }
  event_active(c->l->wake, EV_READ, 0);   /* what the job produced meanwhile */
}

/* ------------------------------------------------------------------ the engine of a provider */

static int load_model(const struct pol_config *cfg, const struct pol_provider *p,
                      struct slm_model **out, char *err, size_t errlen) {
  const struct pol_local *lc = &p->local;
  char e[400] = "";
  struct slm_model_params mp = slm_model_default_params();
  *out = slm_model_load(lc->model_path, &mp, e, sizeof e);
  if (!*out) {
    snprintf(err, errlen, "%s:%d:%d: provider '%s': cannot load model_path: %s", cfg->path,
             lc->path_line, lc->path_col, p->name, e);
    return -1;
  }
  return 0;
}

static int32_t context_of(const struct pol_provider *p, const struct slm_model *m) {
  int32_t n = p->local.context;
  int32_t train = slm_n_ctx_train(m);
  if (train > 0 && n > train) n = train;
  return n;
}

static int threads_of(const struct pol_provider *p) {
  if (p->local.threads > 0) return p->local.threads;
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

/* Bytes of memory the machine has for us (MemAvailable), 0 if unknown. */
static uint64_t mem_available(void) {
  FILE *f = fopen("/proc/meminfo", "r");
  if (!f) return 0;
  char line[256];
  uint64_t kb = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "MemAvailable: %" SCNu64 " kB", &kb) == 1) break;
  fclose(f);
  return kb * 1024;
}

/* KV bytes of SLOTS sequences of N_CTX cells: measured on a one-sequence context. */
static int kv_bytes(const struct pol_provider *p, const struct slm_model *m, int32_t n_ctx,
                    uint64_t *out) {
  struct slm_context_params cp = slm_context_default_params();
  cp.n_ctx = (uint32_t)n_ctx;
  cp.n_seq = 1;
  cp.n_threads = 1;
  cp.n_batch = 1;
  cp.kv_type = p->local.kv_type == POL_KV_F32 ? SLM_KV_F32 : SLM_KV_F16;
  struct slm_context *ctx = slm_context_new(m, &cp);
  if (!ctx) return -1;
  *out = (uint64_t)slm_context_kv_bytes(ctx) * (uint64_t)p->local.slots;
  slm_context_free(ctx);
  return 0;
}

static int check_memory(const struct pol_config *cfg, const struct pol_provider *p,
                        const struct slm_model *m, int32_t n_ctx, char *err, size_t errlen,
                        uint64_t *kv_out) {
  uint64_t kv = 0;
  if (kv_bytes(p, m, n_ctx, &kv)) {
    snprintf(err, errlen, "%s:%d: provider '%s': the engine cannot create a context of %d tokens "
             "for this model", cfg->path, p->line, p->name, n_ctx);
    return -1;
  }
  *kv_out = kv;
  uint64_t need = kv + slm_model_size_bytes(m) + (64u << 20), avail = mem_available();
  if (avail && need > avail) {
    snprintf(err, errlen, "%s:%d: provider '%s': slots x context (%d x %d tokens) needs %.1f GiB "
             "of KV cache, and with the model %.1f GiB, more than the %.1f GiB this machine has "
             "available: lower slots or context", cfg->path, p->line, p->name, p->local.slots,
             n_ctx, (double)kv / (1u << 30), (double)need / (1u << 30),
             (double)avail / (1u << 30));
    return -1;
  }
  return 0;
}

int rt_local_check(const struct pol_config *cfg, const struct pol_provider *p, char *err,
                   size_t errlen, char *info, size_t infolen) {
  struct slm_model *m = NULL;
  if (load_model(cfg, p, &m, err, errlen)) return -1;
  int32_t n_ctx = context_of(p, m);
  uint64_t kv = 0;
  int rc = check_memory(cfg, p, m, n_ctx, err, errlen, &kv);
  if (!rc && info)
    snprintf(info, infolen, "provider '%s': %s (%s, %s template), %.1f MiB, %d slot(s) x %d "
             "tokens, KV %.1f MiB", p->name, p->local.model_path, slm_model_arch(m),
             p->local.chat_template ? "configured" : slm_chat_template_name(m),
             (double)slm_model_size_bytes(m) / (1u << 20), p->local.slots, n_ctx,
             (double)kv / (1u << 20));
  slm_model_free(m);
  return rc;
}

struct rt_local *rt_local_new(struct event_base *base, const struct pol_config *cfg,
                              const struct pol_provider *p, char *err, size_t errlen) {
  struct rt_local *l = calloc(1, sizeof *l);
  if (!l) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  l->base = base;
  l->p = p;
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof seed, 0) != sizeof seed) seed = (uint64_t)rt_wall_us();
  l->rng = seed | 1;
  if (load_model(cfg, p, &l->model, err, errlen)) {
    free(l);
    return NULL;
  }
  l->n_ctx = context_of(p, l->model);
  uint64_t kv = 0;
  if (check_memory(cfg, p, l->model, l->n_ctx, err, errlen, &kv)) {
    rt_local_free(l);
    return NULL;
  }
  l->wake = event_new(base, -1, 0, wake_cb, l);
  if (!l->wake) {
    snprintf(err, errlen, "out of memory");
    rt_local_free(l);
    return NULL;
  }
  struct rt_sched_params sp = rt_sched_default_params();
  sp.model = l->model;
  sp.n_threads = threads_of(p);
  sp.n_ctx = (uint32_t)l->n_ctx;
  sp.n_slots = (uint32_t)p->local.slots;
  sp.n_queue = (uint32_t)p->local.queue;
  sp.kv_type = p->local.kv_type == POL_KV_F32 ? SLM_KV_F32 : SLM_KV_F16;
  sp.embeddings = p->local.embeddings;
  sp.notify = notify;
  sp.notify_ud = l;
  char e[300] = "";
  l->sched = rt_sched_new(&sp, e, sizeof e);
  if (!l->sched) {
    snprintf(err, errlen, "%s:%d: provider '%s': the engine could not start: %s", cfg->path,
             p->line, p->name, e);
    rt_local_free(l);
    return NULL;
  }
  return l;
}

void rt_local_drain(struct rt_local *l) {
  if (l && l->sched) rt_sched_drain(l->sched);
}

void rt_local_free(struct rt_local *l) {
  if (!l) return;
  while (l->calls) call_free(l->calls);
  rt_sched_free(l->sched);
  if (l->wake) event_free(l->wake);
  /* the structured-output tables, after the calls and jobs that held constraints from the cache
   * (the index must outlive its constraints); without this every gateway that had answered one
   * structured request leaked them and exited non-zero under ASan */
  slm_constraint_cache_free(l->cc);
  slm_vocab_index_free(l->vi);
  slm_model_free(l->model);
  free(l);
}

int32_t rt_local_n_ctx(const struct rt_local *l) { return l->n_ctx; }

void rt_local_render_metrics(struct rt_local *const *locals, size_t n, struct evbuffer *out) {
  static const struct {
    const char *name, *type, *help;
  } m[] = {
      {"tiergate_local_queue_depth", "gauge", "Requests waiting for a slot of a local model."},
      {"tiergate_local_active_sequences", "gauge", "Sequences decoding in a local model's slots."},
      {"tiergate_local_batch_tokens", "gauge", "Tokens in the last decode step of a local model."},
      {"tiergate_local_steps_total", "counter", "Decode steps run by a local model."},
      {"tiergate_local_batch_tokens_total", "counter",
       "Tokens over all decode steps (divided by steps: the mean batch size)."},
      {"tiergate_local_prompt_tokens_total", "counter", "Prompt tokens computed by a local model."},
      {"tiergate_local_prefix_cache_hit_tokens_total", "counter",
       "Prompt tokens reused from a slot's cache instead of recomputed."},
      {"tiergate_local_generated_tokens_total", "counter", "Tokens generated by a local model."},
      {"tiergate_local_decode_seconds_total", "counter",
       "Time in the engine's decode steps (generated tokens divided by it: tokens per second)."},
  };
  for (size_t k = 0; k < sizeof m / sizeof m[0]; k++) {
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", m[k].name, m[k].help, m[k].name,
                        m[k].type);
    for (size_t i = 0; i < n; i++) {
      if (!locals[i]) continue;
      struct rt_sched_stats st;
      rt_sched_stats(locals[i]->sched, &st);
      double v = k == 0 ? st.queued : k == 1 ? st.active : k == 2 ? st.last_batch
               : k == 3 ? (double)st.steps : k == 4 ? (double)st.batch_tokens
               : k == 5 ? (double)st.prompt_tokens : k == 6 ? (double)st.cached_tokens
               : k == 7 ? (double)st.generated_tokens : (double)st.decode_us / 1e6;
      evbuffer_add_printf(out, "%s{provider=\"", m[k].name);
      rt_metrics_label(out, locals[i]->p->name);
      evbuffer_add_printf(out, "\"} %.17g\n", v);
    }
  }
}
