/*
 * test_gw_local.c: local serving end to end: `tiergate serve` answering OpenAI and Anthropic
 * requests from its in-process engine (providers of kind local on ../shared/models/stories260K.gguf,
 * a trained SentencePiece model, and tiny-qwen2-Q8_0.gguf, random weights with a byte-level BPE
 * vocabulary), with the mock upstream as the OpenAI provider the fallbacks go to.
 *
 * The expected answers are computed here with the engine's own API (slm/slm.h): the model's chat
 * template, the tokenizer with special tokens, then a greedy (or seeded) decode loop on a context
 * of one sequence. Replies are compared with them exactly: text, prompt and completion tokens,
 * finish reasons, where a stop sequence cuts, how many prompt tokens the prefix cache reused, the
 * embeddings. Every part ends the itest way: one log row per request, and the gateway exiting 0
 * on SIGTERM (under ASan: no leak).
 *
 * Gateways, one after the other (one mock for all): A, the main one, with several local providers
 * of different slots / queue sizes; B, stopped with SIGTERM while one stream runs and three wait
 * in the queue. The start-up failures (a missing model file, a vocabulary-only GGUF) run
 * `tiergate serve` and `tiergate config check` as plain processes.
 */
#include <pthread.h>
#include <sys/socket.h>

#include "router/itest.h"
#include "slm/slm.h"

#define CTX 256          /* context of the small providers */
#define LONG_CTX 2048    /* of `one`, `lone` and gateway B's `drain` (stories260K's trained context) */
#define MAXGEN 2100      /* tokens a reference may generate */
#define THREADS 2        /* engine threads: the gateway's and the references' */

static struct slm_model *m_stories, *m_qwen;

/* ------------------------------------------------------------------ small helpers */

static const char *hdr(const struct th_resp *r, const char *name) {
  static char buf[4][256];
  static int k;
  k = (k + 1) % 4;
  return th_resp_header(r, name, buf[k], sizeof buf[k]);
}

/* The reply's JSON, parsed allowing \u0000 (the random-weight model's bytes may hold a NUL). */
static json_t *J(struct th_resp *r) {
  if (!r->json) r->json = json_loadb(r->body, r->body_len, JSON_ALLOW_NUL, NULL);
  return r->json;
}

/* The string at PATH is exactly the LEN bytes at S. */
static bool jtext_is(const json_t *j, const char *path, const char *s, size_t len) {
  const json_t *v = th_jget(j, path);
  return json_is_string(v) && json_string_length(v) == len &&
         !memcmp(json_string_value(v), s, len);
}

static bool starts_with(const char *s, const char *prefix) {
  return s && !strncmp(s, prefix, strlen(prefix));
}

/* A chat message list as JSON (OpenAI's shape; Anthropic's too when no system turn is in it). */
static json_t *msgs_json(const struct slm_chat_msg *m, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(a, json_pack("{s:s,s:s}", "role", m[i].role, "content", m[i].content));
  return a;
}

/* A request body: {"model", "messages"} plus the members of EXTRA (a JSON object text or NULL).
 * With SYSTEM, Anthropic's shape: the system prompt as the top-level `system`. malloc'd. */
static char *body_of(const char *model, const char *system, const struct slm_chat_msg *m, size_t n,
                     const char *extra) {
  json_t *o = json_pack("{s:s,s:o}", "model", model, "messages", msgs_json(m, n));
  if (system) json_object_set_new(o, "system", json_string(system));
  if (extra) {
    json_error_t e;
    json_t *x = json_loads(extra, 0, &e);
    CHECK_MSG(json_is_object(x), "bad extra members in the test: %s (%s)", extra, e.text);
    if (x) json_object_update(o, x);
    json_decref(x);
  }
  char *s = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  return s;
}

static void post(const char *path, const char *body, struct th_resp *r) {
  const char *h[] = {"Content-Type: application/json", NULL};
  struct th_req rq = {.method = "POST", .body = body, .headers = h, .timeout_ms = 30000};
  gw_req(&rq, path, r);
}

/* One user message to MODEL on PATH; EXTRA as in body_of. */
static void ask(const char *path, const char *model, const char *user, const char *extra,
                struct th_resp *r) {
  struct slm_chat_msg m = {"user", user};
  char *b = body_of(model, NULL, &m, 1, extra);
  post(path, b, r);
  free(b);
}

/* A counter or gauge of a local provider from /metrics; NAN if absent. */
static double metric(const char *name, const char *provider) {
  struct th_resp r;
  struct th_req rq = {0};
  gw_req(&rq, "/metrics", &r);
  char key[200];
  snprintf(key, sizeof key, "\n%s{provider=\"%s\"} ", name, provider);
  const char *p = r.body ? strstr(r.body, key) : NULL;
  double v = p ? strtod(p + strlen(key), NULL) : NAN;
  th_resp_free(&r);
  return v;
}

/* Waits up to timeout_ms for a gauge of PROVIDER to reach at least WANT. */
static bool wait_metric(const char *name, const char *provider, double want, int timeout_ms) {
  double deadline = th_now_ms() + timeout_ms;
  while (th_now_ms() < deadline) {
    if (metric(name, provider) >= want) return true;
    th_sleep_ms(20);
  }
  return false;
}

/* ------------------------------------------------------------------ references (slm API) */

struct ref {
  slm_token prompt[LONG_CTX];
  int32_t n_prompt;
  slm_token gen[MAXGEN];       /* every sampled token, an end-of-generation one included */
  int32_t n_gen;
  bool eog;                    /* ended by an EOG token (not counted in completion_tokens) */
  size_t raw_end[MAXGEN];      /* bytes of the pieces of gen[0..i] */
  char *raw;                   /* the pieces' bytes */
  size_t raw_len;
  char *text;                  /* what a client sees: raw with ill-formed UTF-8 as U+FFFD */
  size_t len;
};

static struct ref *ref_new(void) { return calloc(1, sizeof(struct ref)); }
static void ref_free(struct ref *r) {
  if (!r) return;
  free(r->raw);
  free(r->text);
  free(r);
}
static int32_t completion_of(const struct ref *r) { return r->n_gen - (r->eog ? 1 : 0); }

/* Raw model bytes as the gateway's decoder releases them: each maximal ill-formed subpart becomes
 * U+FFFD (the Unicode recommendation). OUT holds 3 x N bytes. Returns the length. */
static size_t utf8_fix(const unsigned char *s, size_t n, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    unsigned char b = s[i];
    if (b < 0x80) {
      out[o++] = (char)b;
      i++;
      continue;
    }
    size_t need = b >= 0xC2 && b <= 0xDF ? 2 : b >= 0xE0 && b <= 0xEF ? 3 : b >= 0xF0 && b <= 0xF4 ? 4 : 0;
    unsigned char lo = b == 0xE0 ? 0xA0 : b == 0xF0 ? 0x90 : 0x80;
    unsigned char hi = b == 0xED ? 0x9F : b == 0xF4 ? 0x8F : 0xBF;
    size_t k = 1;
    while (need && k < need && i + k < n) {
      unsigned char c = s[i + k];
      if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xBF)) break;
      k++;
    }
    if (need && k == need) {
      memcpy(out + o, s + i, need);
      o += need;
    } else {
      memcpy(out + o, "\xEF\xBF\xBD", 3);
      o += 3;
    }
    i += k;
  }
  return o;
}

/* MSGS rendered with M's chat template and tokenized with special tokens, as the gateway does. */
static int32_t ref_tokens(const struct slm_model *m, const struct slm_chat_msg *msgs, size_t n,
                          slm_token *out, int32_t cap) {
  static char buf[65536];
  int32_t len = slm_chat_apply(m, msgs, n, true, buf, sizeof buf);
  CHECK_MSG(len > 0 && len < (int32_t)sizeof buf, "chat template: %d", len);
  if (len <= 0 || len >= (int32_t)sizeof buf) return -1;
  int32_t nt = slm_tokenize(m, buf, (size_t)len, out, cap, true, true);
  CHECK_MSG(nt > 0, "tokenize: %d", nt);
  return nt;
}

static slm_token argmax(const float *l, int32_t n) {
  slm_token best = 0;
  for (slm_token i = 1; i < n; i++)
    if (l[i] > l[best]) best = i;   /* ties to the lowest id, as the engine's greedy sampler */
  return best;
}

/* The answer to MSGS: greedy when SP is NULL, else sampled with SP (the prompt in the penalty
 * history, as the scheduler does), at most MAX_TOKENS tokens, on a context of N_CTX cells. */
static struct ref *ref_run(const struct slm_model *m, uint32_t n_ctx, const struct slm_chat_msg *msgs,
                           size_t n, int32_t max_tokens, const struct slm_sampler_params *sp) {
  struct ref *r = ref_new();
  r->n_prompt = ref_tokens(m, msgs, n, r->prompt, LONG_CTX);
  r->raw = malloc((size_t)MAXGEN * 64);
  r->text = malloc((size_t)MAXGEN * 64 * 3);
  if (r->n_prompt <= 0 || !r->raw || !r->text) return r;
  struct slm_context_params cp = slm_context_default_params();
  cp.n_ctx = n_ctx;
  cp.n_seq = 1;
  cp.n_batch = 512;
  cp.n_threads = THREADS;
  cp.kv_type = SLM_KV_F16;
  struct slm_context *c = slm_context_new(m, &cp);
  CHECK(c != NULL);
  struct slm_sampler *smp = sp ? slm_sampler_new(m, sp) : NULL;
  for (int32_t i = 0; smp && i < r->n_prompt; i++)
    if (i >= r->n_prompt - sp->penalty_last_n) slm_sampler_accept(smp, r->prompt[i]);
  int32_t last = 0;
  for (int32_t off = 0; c && off < r->n_prompt; off += 512) {
    int32_t k = r->n_prompt - off < 512 ? r->n_prompt - off : 512;
    struct slm_batch b = slm_batch_one(r->prompt + off, k);
    CHECK_EQ_INT(slm_decode(c, &b), 0);
    last = k - 1;
  }
  int32_t nv = slm_n_vocab(m);
  char piece[256];
  while (c && r->n_gen < max_tokens && r->n_gen < MAXGEN) {
    const float *lg = slm_get_logits(c, last);
    if (!lg) break;
    slm_token t = smp ? slm_sampler_sample(smp, lg, NULL) : argmax(lg, nv);
    r->gen[r->n_gen++] = t;
    if (slm_token_is_eog(m, t)) {
      r->eog = true;
      break;
    }
    int32_t pl = slm_token_to_piece(m, t, piece, sizeof piece, false);
    CHECK(pl >= 0 && pl <= 64);
    if (pl > 0 && pl <= 64) {
      memcpy(r->raw + r->raw_len, piece, (size_t)pl);
      r->raw_len += (size_t)pl;
    }
    r->raw_end[r->n_gen - 1] = r->raw_len;
    if (r->n_gen >= max_tokens) break;
    struct slm_batch b = slm_batch_one(&t, 1);
    if (slm_decode(c, &b)) break;
    last = 0;
  }
  r->len = utf8_fix((const unsigned char *)r->raw, r->raw_len, r->text);
  r->text[r->len] = 0;
  slm_sampler_free(smp);
  slm_context_free(c);
  return r;
}

static struct ref *greedy(const struct slm_model *m, const char *user, int32_t max_tokens) {
  struct slm_chat_msg msg = {"user", user};
  return ref_run(m, CTX, &msg, 1, max_tokens, NULL);
}

/* A stop string taken from the reference's text: the first STOP_LEN bytes at the first space at
 * or after a third of the text whose first occurrence is there. *AT gets its offset. */
static const char *pick_stop(const struct ref *r, size_t stop_len, size_t *at) {
  static char s[64];
  for (size_t p = r->len / 3; p + stop_len <= r->len && stop_len < sizeof s; p++) {
    if (r->text[p] != ' ') continue;
    memcpy(s, r->text + p, stop_len);
    s[stop_len] = 0;
    if (strchr(s, '"') || strchr(s, '\\') || strchr(s, '\n')) continue;
    if ((size_t)(strstr(r->text, s) - r->text) != p) continue;
    *at = p;
    return s;
  }
  return NULL;
}

/* Tokens sampled until the text holds the stop string that starts at byte AT (the token that
 * completes it included): the completion_tokens of a reply cut there. ASCII text only. */
static int32_t tokens_to_stop(const struct ref *r, size_t at, size_t stop_len) {
  for (int32_t i = 0; i < r->n_gen; i++)
    if (r->raw_end[i] >= at + stop_len) return i + 1;
  return -1;
}

/* ------------------------------------------------------------------ stream parsing */

/* The JSON chunks of an OpenAI stream (NUL allowed) and whether it ended with one [DONE]. */
static json_t *openai_chunks(const struct th_resp *r, int *done) {
  json_t *data = th_sse_data(r->body, r->body_len);
  json_t *chunks = json_array();
  *done = 0;
  size_t i;
  json_t *d;
  json_array_foreach(data, i, d) {
    const char *s = json_string_value(d);
    if (!strcmp(s, "[DONE]")) {
      (*done)++;
      CHECK_MSG(i == json_array_size(data) - 1, "[DONE] is not the last frame");
      continue;
    }
    json_t *c = json_loadb(s, json_string_length(d), JSON_ALLOW_NUL, NULL);
    CHECK_MSG(c != NULL, "stream frame is not JSON: %.200s", s);
    if (c) json_array_append_new(chunks, c);
  }
  json_decref(data);
  return chunks;
}

/* Checks an OpenAI stream's shape (role chunk first, content deltas, one finish chunk, the usage
 * chunk only when asked for, [DONE]) and returns its text (malloc'd, *LEN bytes), *FINISH and the
 * usage chunk (or NULL; caller decrefs). */
static char *openai_stream_text(const struct th_resp *r, bool include_usage, size_t *len,
                                char *finish, size_t fcap, json_t **usage) {
  int done = 0;
  json_t *ch = openai_chunks(r, &done);
  CHECK_EQ_INT(done, 1);
  size_t n = json_array_size(ch), cap = r->body_len + 1, o = 0;
  char *text = malloc(cap);
  finish[0] = 0;
  *usage = NULL;
  const char *id = jstr(json_array_get(ch, 0), "id");
  CHECK_MSG(n >= 2, "%zu chunks", n);
  CHECK_STR(jstr(json_array_get(ch, 0), "choices.0.delta.role"), "assistant");
  CHECK_MSG(jtext_is(json_array_get(ch, 0), "choices.0.delta.content", "", 0),
            "the role chunk carries text");
  int finishes = 0;
  for (size_t i = 0; i < n; i++) {
    json_t *c = json_array_get(ch, i);
    CHECK_STR(jstr(c, "object"), "chat.completion.chunk");
    CHECK_STR(jstr(c, "id"), id);
    const json_t *u = json_object_get(c, "usage");
    if (include_usage && i == n - 1) {
      CHECK_MSG(json_is_object(u), "last chunk has no usage: %.200s", r->body);
      CHECK_EQ_INT(json_array_size(json_object_get(c, "choices")), 0);
      *usage = json_incref((json_t *)u);
      continue;
    }
    if (include_usage) CHECK_MSG(json_is_null(u), "chunk %zu: usage before the end", i);
    else CHECK_MSG(!u || json_is_null(u), "chunk %zu: usage without include_usage", i);
    CHECK_EQ_INT(json_array_size(json_object_get(c, "choices")), 1);
    const char *fr = jstr(c, "choices.0.finish_reason");
    const json_t *t = th_jget(c, "choices.0.delta.content");
    if (fr) {
      finishes++;
      snprintf(finish, fcap, "%s", fr);
      CHECK_MSG(t == NULL, "the finish chunk carries text");
      CHECK_MSG(i == n - 1 - (include_usage ? 1 : 0), "finish chunk at %zu of %zu", i, n);
    }
    if (i > 0) CHECK_MSG(th_jget(c, "choices.0.delta.role") == NULL, "role again in chunk %zu", i);
    if (json_is_string(t) && o + json_string_length(t) < cap) {
      memcpy(text + o, json_string_value(t), json_string_length(t));
      o += json_string_length(t);
    }
  }
  CHECK_EQ_INT(finishes, 1);
  json_decref(ch);
  text[o] = 0;
  *len = o;
  return text;
}

/* An Anthropic event stream: [{event, data}] in order, every frame with an event: line that
 * matches data.type. */
static json_t *anthropic_events(const struct th_resp *r) {
  json_t *out = json_array();
  char ev[64] = "";
  const char *p = r->body, *end = r->body + r->body_len;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    size_t ll = eol ? (size_t)(eol - p) : (size_t)(end - p);
    if (ll > 7 && !strncmp(p, "event: ", 7)) {
      snprintf(ev, sizeof ev, "%.*s", (int)(ll - 7), p + 7);
    } else if (ll > 6 && !strncmp(p, "data: ", 6)) {
      json_t *d = json_loadb(p + 6, ll - 6, JSON_ALLOW_NUL, NULL);
      CHECK_MSG(d != NULL, "event data is not JSON: %.*s", (int)ll, p);
      CHECK_MSG(ev[0], "a frame without its event: line: %.*s", (int)ll, p);
      CHECK_STR(jstr(d, "type"), ev);
      json_array_append_new(out, json_pack("{s:s,s:o}", "event", ev, "data", d ? d : json_null()));
      ev[0] = 0;
    } else if (ll) {
      CHECK_MSG(0, "unexpected line in an event stream: %.*s", (int)ll, p);
    }
    if (!eol) break;
    p = eol + 1;
  }
  return out;
}

/* Checks the event order the Anthropic SDK expects and returns the text and the two usages. */
static char *anthropic_stream_text(const struct th_resp *r, size_t *len, json_t **start,
                                   json_t **delta) {
  json_t *evs = anthropic_events(r);
  size_t n = json_array_size(evs), cap = r->body_len + 1, o = 0;
  char *text = malloc(cap);
  static const char *const head[] = {"message_start", "content_block_start", "ping"};
  static const char *const tail[] = {"content_block_stop", "message_delta", "message_stop"};
  CHECK_MSG(n >= 6, "%zu events", n);
  for (size_t i = 0; i < n; i++) {
    const char *e = jstr(json_array_get(evs, i), "event");
    const json_t *d = th_jget(json_array_get(evs, i), "data");
    if (i < 3) CHECK_STR(e, head[i]);
    else if (i + 3 >= n) CHECK_STR(e, tail[i + 3 - n]);
    else CHECK_STR(e, "content_block_delta");
    if (e && !strcmp(e, "content_block_delta")) {
      CHECK_EQ_INT(jint(d, "index"), 0);
      CHECK_STR(jstr(d, "delta.type"), "text_delta");
      const json_t *t = th_jget(d, "delta.text");
      CHECK_MSG(json_is_string(t) && json_string_length(t) > 0, "empty text_delta");
      if (json_is_string(t) && o + json_string_length(t) < cap) {
        memcpy(text + o, json_string_value(t), json_string_length(t));
        o += json_string_length(t);
      }
    }
  }
  const json_t *ms = th_jget(json_array_get(evs, 0), "data");
  CHECK_STR(jstr(ms, "message.type"), "message");
  CHECK_STR(jstr(ms, "message.role"), "assistant");
  CHECK_EQ_INT(json_array_size(th_jget(ms, "message.content")), 0);
  CHECK_STR(jstr(th_jget(json_array_get(evs, 1), "data"), "content_block.type"), "text");
  *start = json_incref((json_t *)th_jget(ms, "message.usage"));
  *delta = n >= 2 ? json_incref((json_t *)th_jget(json_array_get(evs, n - 2), "data")) : NULL;
  json_decref(evs);
  text[o] = 0;
  *len = o;
  return text;
}

/* ------------------------------------------------------------------ OpenAI chat */

/* Plain and streamed (with and without include_usage) at temperature 0 give the reference's text,
 * usage and finish reason. */
static void check_openai_greedy(const char *model, const struct slm_model *m, const char *user,
                                int32_t max_tokens, const char *want_finish) {
  struct ref *ref = greedy(m, user, max_tokens);
  CHECK_STR(ref->eog ? "stop" : "length", want_finish);   /* the case this call is meant for */
  char extra[200];
  snprintf(extra, sizeof extra, "{\"temperature\":0,\"max_tokens\":%d}", max_tokens);
  struct th_resp r;
  ask("/v1/chat/completions", model, user, extra, &r);
  json_t *j = J(&r);
  CHECK_MSG(r.status == 200, "%s: %ld %.300s", model, r.status, r.body);
  CHECK_MSG(jtext_is(j, "choices.0.message.content", ref->text, ref->len),
            "%s %s: text\n got  %.300s\n want %.300s", model, user,
            jstr(j, "choices.0.message.content"), ref->text);
  CHECK_STR(jstr(j, "choices.0.finish_reason"), want_finish);
  CHECK_STR(jstr(j, "object"), "chat.completion");
  CHECK_STR(jstr(j, "model"), model);
  CHECK_STR(jstr(j, "choices.0.message.role"), "assistant");
  CHECK_MSG(starts_with(jstr(j, "id"), "chatcmpl-"), "id %s", jstr(j, "id"));
  CHECK_EQ_INT(jint(j, "usage.prompt_tokens"), ref->n_prompt);
  CHECK_EQ_INT(jint(j, "usage.completion_tokens"), completion_of(ref));
  CHECK_EQ_INT(jint(j, "usage.total_tokens"), ref->n_prompt + completion_of(ref));
  char route[128];
  snprintf(route, sizeof route, "%s/%s", !strcmp(model, "local") ? "stories" : model, model);
  CHECK_STR(hdr(&r, "x-tiergate-route"), route);
  json_t *row = db_row_of(&r);
  CHECK_EQ_INT(row_int(row, "http_status"), 200);
  CHECK_EQ_INT(row_int(row, "input_tokens"), ref->n_prompt);
  CHECK_EQ_INT(row_int(row, "output_tokens"), completion_of(ref));
  CHECK_EQ_INT(row_int(row, "cached_tokens"), jint(j, "usage.prompt_tokens_details.cached_tokens"));
  CHECK_STR(jstr(row, "route"), route);
  CHECK_STR(jstr(row, "client_api"), "openai");
  CHECK_EQ_INT(row_int(row, "streamed"), 0);
  /* stories is free (price 0), qwen costs 1.00 / 2.00 USD per 1M (cached input at the input price) */
  long long cost = !strcmp(model, "qwen") ? ref->n_prompt * 1000000LL + completion_of(ref) * 2000000LL : 0;
  CHECK_EQ_INT(row_int(row, "cost_pusd"), cost);
  json_decref(row);
  th_resp_free(&r);

  for (int iu = 0; iu < 2; iu++) {
    snprintf(extra, sizeof extra, "{\"temperature\":0,\"max_tokens\":%d,\"stream\":true%s}", max_tokens,
             iu ? ",\"stream_options\":{\"include_usage\":true}" : "");
    ask("/v1/chat/completions", model, user, extra, &r);
    CHECK_MSG(r.status == 200, "%s stream: %ld %.300s", model, r.status, r.body);
    char ct[128];
    CHECK_MSG(starts_with(th_resp_header(&r, "content-type", ct, sizeof ct), "text/event-stream"),
              "content-type %s", ct);
    size_t len = 0;
    char fin[32];
    json_t *usage = NULL;
    char *text = openai_stream_text(&r, iu, &len, fin, sizeof fin, &usage);
    CHECK_MSG(len == ref->len && !memcmp(text, ref->text, len),
              "%s stream: text\n got  %.300s\n want %.300s", model, text, ref->text);
    CHECK_STR(fin, want_finish);
    if (iu) {
      CHECK_EQ_INT(jint(usage, "prompt_tokens"), ref->n_prompt);
      CHECK_EQ_INT(jint(usage, "completion_tokens"), completion_of(ref));
    }
    row = db_row_of(&r);
    CHECK_EQ_INT(row_int(row, "streamed"), 1);
    CHECK_EQ_INT(row_int(row, "input_tokens"), ref->n_prompt);   /* known with or without the chunk */
    CHECK_EQ_INT(row_int(row, "output_tokens"), completion_of(ref));
    json_decref(row);
    json_decref(usage);
    free(text);
    th_resp_free(&r);
  }
  ref_free(ref);
}

static void test_openai_greedy(void) {
  check_openai_greedy("local", m_stories, "Once upon a time", 40, "length");
  check_openai_greedy("qwen", m_qwen, "Hi", 24, "length");
  /* random weights that end their turn: an EOG token is a finish, not text */
  check_openai_greedy("qwen", m_qwen, "Bye", 64, "stop");
}

/* ------------------------------------------------------------------ Anthropic messages */

static void check_anthropic_greedy(const char *model, const struct slm_model *m, const char *user,
                                   int32_t max_tokens, const char *want_stop) {
  struct ref *ref = greedy(m, user, max_tokens);
  char extra[200];
  snprintf(extra, sizeof extra, "{\"temperature\":0,\"max_tokens\":%d}", max_tokens);
  struct th_resp r;
  ask("/v1/messages", model, user, extra, &r);
  json_t *j = J(&r);
  CHECK_MSG(r.status == 200, "%s: %ld %.300s", model, r.status, r.body);
  CHECK_STR(jstr(j, "type"), "message");
  CHECK_STR(jstr(j, "role"), "assistant");
  CHECK_STR(jstr(j, "model"), model);
  CHECK_MSG(starts_with(jstr(j, "id"), "msg_"), "id %s", jstr(j, "id"));
  CHECK_EQ_INT(json_array_size(json_object_get(j, "content")), 1);
  CHECK_STR(jstr(j, "content.0.type"), "text");
  CHECK_MSG(jtext_is(j, "content.0.text", ref->text, ref->len), "%s: text\n got  %.300s\n want %.300s",
            model, jstr(j, "content.0.text"), ref->text);
  CHECK_STR(jstr(j, "stop_reason"), want_stop);
  CHECK(json_is_null(th_jget(j, "stop_sequence")));
  CHECK_EQ_INT(jint(j, "usage.input_tokens") + jint(j, "usage.cache_read_input_tokens"), ref->n_prompt);
  CHECK_EQ_INT(jint(j, "usage.cache_creation_input_tokens"), 0);
  CHECK_EQ_INT(jint(j, "usage.output_tokens"), completion_of(ref));
  json_t *row = db_row_of(&r);
  CHECK_STR(jstr(row, "client_api"), "anthropic");
  CHECK_EQ_INT(row_int(row, "input_tokens"), ref->n_prompt);   /* the canonical prompt total */
  CHECK_EQ_INT(row_int(row, "cached_tokens"), jint(j, "usage.cache_read_input_tokens"));
  CHECK_EQ_INT(row_int(row, "output_tokens"), completion_of(ref));
  json_decref(row);
  th_resp_free(&r);

  snprintf(extra, sizeof extra, "{\"temperature\":0,\"max_tokens\":%d,\"stream\":true}", max_tokens);
  ask("/v1/messages", model, user, extra, &r);
  CHECK_MSG(r.status == 200, "%s stream: %ld %.300s", model, r.status, r.body);
  size_t len = 0;
  json_t *start = NULL, *delta = NULL;
  char *text = anthropic_stream_text(&r, &len, &start, &delta);
  CHECK_MSG(len == ref->len && !memcmp(text, ref->text, len), "%s stream: text\n got  %.300s\n want %.300s",
            model, text, ref->text);
  CHECK_EQ_INT(jint(start, "input_tokens") + jint(start, "cache_read_input_tokens"), ref->n_prompt);
  CHECK_STR(jstr(delta, "delta.stop_reason"), want_stop);
  CHECK(json_is_null(th_jget(delta, "delta.stop_sequence")));
  CHECK_EQ_INT(jint(delta, "usage.output_tokens"), completion_of(ref));
  CHECK_EQ_INT(jint(delta, "usage.input_tokens") + jint(delta, "usage.cache_read_input_tokens"),
               ref->n_prompt);
  row = db_row_of(&r);
  CHECK_EQ_INT(row_int(row, "streamed"), 1);
  CHECK_EQ_INT(row_int(row, "input_tokens"), ref->n_prompt);
  CHECK_EQ_INT(row_int(row, "output_tokens"), completion_of(ref));
  json_decref(row);
  json_decref(start);
  json_decref(delta);
  free(text);
  th_resp_free(&r);
  ref_free(ref);
}

static void test_anthropic_greedy(void) {
  check_anthropic_greedy("local", m_stories, "Once upon a time", 40, "max_tokens");
  check_anthropic_greedy("qwen", m_qwen, "Bye", 64, "end_turn");

  /* a system prompt is the template's system turn */
  struct slm_chat_msg msgs[] = {{"system", "You tell stories."}, {"user", "A dog"}};
  struct ref *ref = ref_run(m_stories, CTX, msgs, 2, 12, NULL);
  char *b = body_of("local", "You tell stories.", msgs + 1, 1, "{\"max_tokens\":12,\"temperature\":0}");
  struct th_resp r;
  post("/v1/messages", b, &r);
  CHECK_MSG(jtext_is(J(&r), "content.0.text", ref->text, ref->len), "system: %.300s", r.body);
  CHECK_EQ_INT(jint(r.json, "usage.input_tokens") + jint(r.json, "usage.cache_read_input_tokens"),
               ref->n_prompt);
  free(b);
  th_resp_free(&r);
  ref_free(ref);
}

/* ------------------------------------------------------------------ stop sequences */

static void test_stops(void) {
  struct ref *ref = greedy(m_stories, "Once upon a time", 60);
  size_t at = 0;
  const char *stop = pick_stop(ref, 5, &at);
  CHECK_MSG(stop != NULL, "no stop string in %s", ref->text);
  if (!stop) {
    ref_free(ref);
    return;
  }
  CHECK_MSG(ref->raw_len == ref->len, "the stop test wants ASCII text");
  int32_t want_tokens = tokens_to_stop(ref, at, strlen(stop));
  printf("stop string '%s' at byte %zu (token %d of %d)\n", stop, at, want_tokens, ref->n_gen);
  char extra[300];
  struct th_resp r;

  /* Anthropic: the second of two stop sequences matches; the reply ends right before it */
  for (int stream = 0; stream < 2; stream++) {
    snprintf(extra, sizeof extra, "{\"temperature\":0,\"max_tokens\":60,\"stream\":%s,"
             "\"stop_sequences\":[\"zq#never\",\"%s\"]}", stream ? "true" : "false", stop);
    ask("/v1/messages", "local", "Once upon a time", extra, &r);
    CHECK_EQ_INT(r.status, 200);
    if (!stream) {
      json_t *j = J(&r);
      CHECK_MSG(jtext_is(j, "content.0.text", ref->text, at), "cut at %zu: %.300s", at, r.body);
      CHECK_STR(jstr(j, "stop_reason"), "stop_sequence");
      CHECK_STR(jstr(j, "stop_sequence"), stop);
      CHECK_EQ_INT(jint(j, "usage.output_tokens"), want_tokens);
    } else {
      size_t len = 0;
      json_t *start = NULL, *delta = NULL;
      char *text = anthropic_stream_text(&r, &len, &start, &delta);
      CHECK_MSG(len == at && !memcmp(text, ref->text, at), "stream cut: %s", text);
      CHECK_STR(jstr(delta, "delta.stop_reason"), "stop_sequence");
      CHECK_STR(jstr(delta, "delta.stop_sequence"), stop);
      CHECK_EQ_INT(jint(delta, "usage.output_tokens"), want_tokens);
      json_decref(start);
      json_decref(delta);
      free(text);
    }
    th_resp_free(&r);
  }
  /* OpenAI `stop`: a string, then a list; finish_reason "stop" */
  for (int k = 0; k < 3; k++) {
    snprintf(extra, sizeof extra, "{\"temperature\":0,\"max_tokens\":60,\"stream\":%s,\"stop\":%s\"%s\"%s}",
             k == 2 ? "true" : "false", k ? "[\"zq#never\"," : "", stop, k ? "]" : "");
    ask("/v1/chat/completions", "local", "Once upon a time", extra, &r);
    CHECK_EQ_INT(r.status, 200);
    if (k < 2) {
      json_t *j = J(&r);
      CHECK_MSG(jtext_is(j, "choices.0.message.content", ref->text, at), "cut at %zu: %.300s", at, r.body);
      CHECK_STR(jstr(j, "choices.0.finish_reason"), "stop");
      CHECK_EQ_INT(jint(j, "usage.completion_tokens"), want_tokens);
    } else {
      size_t len = 0;
      char fin[32];
      json_t *usage = NULL;
      char *text = openai_stream_text(&r, false, &len, fin, sizeof fin, &usage);
      CHECK_MSG(len == at && !memcmp(text, ref->text, at), "stream cut: %s", text);
      CHECK_STR(fin, "stop");
      free(text);
    }
    th_resp_free(&r);
  }
  ref_free(ref);
}

/* ------------------------------------------------------------------ sampling */

static void test_seed(void) {
  /* temperature 1 with top_p / top_k: the same seed gives the same answer, which is what the
   * engine's sampler gives with that seed; another seed gives another */
  struct slm_sampler_params sp = slm_sampler_default_params();
  sp.temperature = 1.0f;
  sp.top_p = 0.9f;
  sp.top_k = 40;
  sp.min_p = 0.0f;
  sp.repeat_penalty = 1.0f;
  sp.presence_penalty = sp.frequency_penalty = 0.0f;
  sp.penalty_last_n = CTX;
  sp.seed = 42;
  sp.n_probs = 0;
  struct slm_chat_msg msg = {"user", "Once upon a time"};
  struct ref *ref = ref_run(m_stories, CTX, &msg, 1, 40, &sp);
  struct ref *gref = greedy(m_stories, "Once upon a time", 40);
  CHECK_MSG(ref->len != gref->len || memcmp(ref->text, gref->text, ref->len),
            "sampling at seed 42 gave the greedy text");
  struct th_resp r;
  for (int i = 0; i < 2; i++) {
    ask("/v1/chat/completions", "local", "Once upon a time",
        "{\"temperature\":1,\"top_p\":0.9,\"top_k\":40,\"max_tokens\":40,\"seed\":42}", &r);
    CHECK_MSG(r.status == 200, "seeded: %ld %.300s", r.status, r.body);
    CHECK_MSG(jtext_is(J(&r), "choices.0.message.content", ref->text, ref->len),
              "seed 42 (%d):\n got  %.300s\n want %.300s", i, jstr(r.json, "choices.0.message.content"),
              ref->text);
    th_resp_free(&r);
  }
  /* Anthropic has no seed: top_k and top_p are accepted and sampling runs its max_tokens */
  ask("/v1/messages", "local", "Once upon a time",
      "{\"temperature\":1,\"top_p\":0.9,\"top_k\":40,\"max_tokens\":40}", &r);
  CHECK_MSG(r.status == 200, "anthropic sampling: %ld %.300s", r.status, r.body);
  CHECK_EQ_INT(jint(J(&r), "usage.output_tokens"), 40);
  th_resp_free(&r);
  int differ = 0;
  for (int s = 43; s <= 44; s++) {
    char extra[200];
    snprintf(extra, sizeof extra, "{\"temperature\":1,\"top_p\":0.9,\"top_k\":40,\"max_tokens\":40,\"seed\":%d}", s);
    ask("/v1/chat/completions", "local", "Once upon a time", extra, &r);
    differ += !jtext_is(J(&r), "choices.0.message.content", ref->text, ref->len);
    th_resp_free(&r);
  }
  CHECK_MSG(differ >= 1, "seeds 43 and 44 both gave seed 42's text: the seed is not used");
  ref_free(ref);
  ref_free(gref);
}

static void test_logprobs(void) {
  struct ref *ref = greedy(m_stories, "Once upon a time", 6);
  for (int stream = 0; stream < 2; stream++) {
    struct th_resp r;
    ask("/v1/chat/completions", "local", "Once upon a time",
        stream ? "{\"temperature\":0,\"max_tokens\":6,\"logprobs\":true,\"top_logprobs\":3,\"stream\":true}"
               : "{\"temperature\":0,\"max_tokens\":6,\"logprobs\":true,\"top_logprobs\":3}", &r);
    CHECK_MSG(r.status == 200, "logprobs: %ld %.300s", r.status, r.body);
    /* the token entries, from the one reply or from every chunk */
    json_t *all = json_array();
    if (!stream) {
      CHECK_MSG(J(&r) != NULL, "logprobs reply is not JSON: %.400s", r.body);
      json_array_extend(all, (json_t *)th_jget(r.json, "choices.0.logprobs.content"));
    } else {
      int done = 0;
      json_t *ch = openai_chunks(&r, &done);
      CHECK_EQ_INT(done, 1);
      size_t i;
      json_t *c;
      json_array_foreach(ch, i, c) {
        const json_t *lc = th_jget(c, "choices.0.logprobs.content");
        if (json_is_array(lc)) json_array_extend(all, (json_t *)lc);
      }
      json_decref(ch);
    }
    CHECK_EQ_INT(json_array_size(all), ref->n_gen);
    size_t i;
    json_t *e;
    json_array_foreach(all, i, e) {
      char piece[64];
      int32_t pl = i < (size_t)ref->n_gen ? slm_token_to_piece(m_stories, ref->gen[i], piece, sizeof piece, false) : 0;
      CHECK_MSG(jtext_is(e, "token", piece, (size_t)(pl > 0 ? pl : 0)), "token %zu: %s", i, jstr(e, "token"));
      CHECK_EQ_INT(json_array_size(json_object_get(e, "bytes")), pl);
      double lp = th_jnum(e, "logprob");
      CHECK_MSG(lp <= 0 && lp > -100, "logprob %g", lp);
      const json_t *top = json_object_get(e, "top_logprobs");
      CHECK_EQ_INT(json_array_size(top), 3);
      for (size_t k = 1; k < json_array_size(top); k++)
        CHECK_MSG(th_jnum(json_array_get(top, k), "logprob") <= th_jnum(json_array_get(top, k - 1), "logprob"),
                  "top_logprobs not sorted at %zu", k);
      /* greedy: the chosen token is the most likely one */
      CHECK_STR(jstr(json_array_get(top, 0), "token"), jstr(e, "token"));
      CHECK_NEAR(th_jnum(json_array_get(top, 0), "logprob"), lp, 1e-6);
    }
    json_decref(all);
    th_resp_free(&r);
  }
  ref_free(ref);
}

/* ------------------------------------------------------------------ count_tokens, models */

static void test_count_tokens(void) {
  const char *models[] = {"local", "qwen"};
  const struct slm_model *mm[] = {m_stories, m_qwen};
  struct slm_chat_msg msgs[] = {{"system", "Be brief."}, {"user", "Count these words, please."},
                                {"assistant", "Five."}, {"user", "And these?"}};
  for (int k = 0; k < 2; k++) {
    slm_token toks[LONG_CTX];
    int32_t n = ref_tokens(mm[k], msgs, 4, toks, LONG_CTX);
    char *b = body_of(models[k], "Be brief.", msgs + 1, 3, NULL);
    struct th_resp r;
    post("/v1/messages/count_tokens", b, &r);
    free(b);
    CHECK_MSG(r.status == 200, "count_tokens: %ld %.300s", r.status, r.body);
    CHECK_EQ_INT(jint(r.json, "input_tokens"), n);
    CHECK_EQ_INT(json_object_size(r.json), 1);
    CHECK_MSG(hdr(&r, "x-tiergate-token-count") == NULL, "a local count is not an estimate");
    json_t *row = db_row_of(&r);
    CHECK_EQ_INT(row_int(row, "cost_pusd"), 0);
    json_decref(row);
    th_resp_free(&r);
    /* the chat's prompt_tokens for the same conversation */
    b = body_of(models[k], NULL, msgs, 4, "{\"max_tokens\":1,\"temperature\":0}");
    post("/v1/chat/completions", b, &r);
    free(b);
    CHECK_EQ_INT(jint(J(&r), "usage.prompt_tokens"), n);
    th_resp_free(&r);
  }
}

static void test_models(void) {
  struct th_resp r;
  struct th_req rq = {0};
  gw_req(&rq, "/v1/models", &r);
  CHECK_EQ_INT(r.status, 200);
  const char *want[][2] = {{"local", "256"}, {"qwen", "256"}, {"one", "2048"}, {"wide", "256"},
                           {"gpt-4o-mini", NULL}};
  for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
    const json_t *found = NULL;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(r.json, "data"), i, e) if (!strcmp(jstr(e, "id"), want[w][0]))
        found = e;
    CHECK_MSG(found != NULL, "/v1/models lacks %s", want[w][0]);
    if (want[w][1]) CHECK_EQ_INT(jint(found, "context_length"), atoi(want[w][1]));
    else CHECK_MSG(!json_object_get(found, "context_length"), "context_length on an upstream model");
  }
  th_resp_free(&r);
}

/* ------------------------------------------------------------------ embeddings */

static void embed_ref(const char *text, float *out, int32_t *n_tok) {
  slm_token t[CTX];
  int32_t n = slm_tokenize(m_stories, text, strlen(text), t, CTX, true, false);
  *n_tok = n;
  struct slm_context_params cp = slm_context_default_params();
  cp.n_ctx = CTX;
  cp.n_seq = 1;
  cp.n_threads = THREADS;
  cp.kv_type = SLM_KV_F16;
  cp.pooling = SLM_POOL_MEAN;
  struct slm_context *c = slm_context_new(m_stories, &cp);
  struct slm_batch b = slm_batch_one(t, n);
  CHECK_EQ_INT(c ? slm_decode(c, &b) : -1, 0);
  const float *e = c ? slm_get_embeddings(c, 0) : NULL;
  int32_t d = slm_n_embd(m_stories);
  double ss = 0;
  for (int32_t i = 0; e && i < d; i++) ss += (double)e[i] * e[i];
  for (int32_t i = 0; e && i < d; i++) out[i] = (float)(e[i] / sqrt(ss));
  slm_context_free(c);
}

static int b64v(char c) {
  return c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26
       : c >= '0' && c <= '9' ? c - '0' + 52 : c == '+' ? 62 : c == '/' ? 63 : -1;
}

static size_t b64_decode(const char *s, unsigned char *out, size_t cap) {
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (; *s && *s != '='; s++) {
    int v = b64v(*s);
    if (v < 0) return 0;
    acc = acc << 6 | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (o < cap) out[o++] = (unsigned char)(acc >> bits);
    }
  }
  return o;
}

static void test_embeddings(void) {
  const int32_t D = slm_n_embd(m_stories);
  float want[2][512];
  int32_t nt[2];
  const char *texts[] = {"hello world", "a dog and a cat"};
  embed_ref(texts[0], want[0], &nt[0]);
  embed_ref(texts[1], want[1], &nt[1]);
  CHECK_MSG(D > 0 && D <= 512, "n_embd %d", D);
  /* texts[0] as token ids, as the gateway tokenizes an input (BOS as the vocabulary asks) */
  slm_token toks[64];
  int32_t n0 = slm_tokenize(m_stories, texts[0], strlen(texts[0]), toks, 64, true, false);
  char ids[512] = "";
  for (int32_t i = 0; i < n0; i++)
    snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "%s%d", i ? "," : "", toks[i]);
  struct {
    char *body;
    int n;
    int which[2];   /* the texts the returned vectors are of */
    bool b64;
  } cases[] = {
      {th_fmt("{\"model\":\"local\",\"input\":\"%s\"}", texts[0]), 1, {0}, false},
      {th_fmt("{\"model\":\"local\",\"input\":[\"%s\",\"%s\"]}", texts[0], texts[1]), 2, {0, 1}, false},
      {th_fmt("{\"model\":\"local\",\"input\":[%s]}", ids), 1, {0}, false},
      {th_fmt("{\"model\":\"local\",\"input\":[[%s],[%s]],\"encoding_format\":\"float\"}", ids, ids), 2,
       {0, 0}, false},
      {th_fmt("{\"model\":\"local\",\"input\":[\"%s\",\"%s\"],\"encoding_format\":\"base64\"}", texts[0],
              texts[1]), 2, {0, 1}, true},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    struct th_resp r;
    post("/v1/embeddings", cases[k].body, &r);
    CHECK_MSG(r.status == 200, "embeddings %zu: %ld %.300s", k, r.status, r.body);
    CHECK_STR(jstr(r.json, "object"), "list");
    CHECK_STR(jstr(r.json, "model"), "local");
    CHECK_EQ_INT(json_array_size(json_object_get(r.json, "data")), cases[k].n);
    int32_t want_usage = 0;
    for (int i = 0; i < cases[k].n; i++) {
      int w = cases[k].which[i];
      want_usage += nt[w];
      const json_t *e = json_array_get(json_object_get(r.json, "data"), (size_t)i);
      CHECK_STR(jstr(e, "object"), "embedding");
      CHECK_EQ_INT(jint(e, "index"), i);
      float v[512];
      int32_t got = 0;
      const json_t *emb = json_object_get(e, "embedding");
      if (cases[k].b64) {
        unsigned char raw[2048];
        size_t nb = json_is_string(emb) ? b64_decode(json_string_value(emb), raw, sizeof raw) : 0;
        CHECK_EQ_INT(nb, (size_t)D * 4);   /* little-endian float32 */
        got = (int32_t)(nb / 4);
        memcpy(v, raw, nb);
      } else {
        CHECK_EQ_INT(json_array_size(emb), D);
        for (size_t x = 0; x < json_array_size(emb) && x < 512; x++)
          v[got++] = (float)json_number_value(json_array_get(emb, x));
      }
      double norm = 0, maxdiff = 0;
      for (int32_t x = 0; x < got; x++) {
        norm += (double)v[x] * v[x];
        double d = fabs((double)v[x] - want[w][x]);
        if (d > maxdiff) maxdiff = d;
      }
      CHECK_NEAR(norm, 1.0, 1e-5);
      CHECK_MSG(got == D && maxdiff < 1e-5, "embedding %zu.%d differs from the engine's by %g", k, i,
                maxdiff);
    }
    CHECK_EQ_INT(jint(r.json, "usage.prompt_tokens"), want_usage);
    CHECK_EQ_INT(jint(r.json, "usage.total_tokens"), want_usage);
    json_t *row = db_row_of(&r);
    CHECK_EQ_INT(row_int(row, "input_tokens"), want_usage);
    CHECK_STR(jstr(row, "endpoint"), "POST /v1/embeddings");
    json_decref(row);
    th_resp_free(&r);
  }
  /* base64 decodes to exactly the floats of the float encoding */
  struct th_resp rf, rb;
  post("/v1/embeddings", cases[0].body, &rf);
  char *b64body = th_fmt("{\"model\":\"local\",\"input\":\"%s\",\"encoding_format\":\"base64\"}", texts[0]);
  post("/v1/embeddings", b64body, &rb);
  unsigned char raw[2048];
  const char *s = jstr(rb.json, "data.0.embedding");
  size_t nb = s ? b64_decode(s, raw, sizeof raw) : 0;
  const json_t *fl = th_jget(rf.json, "data.0.embedding");
  int same = 0;
  for (size_t x = 0; x < nb / 4 && x < json_array_size(fl); x++) {
    float a, b = (float)json_number_value(json_array_get(fl, x));
    memcpy(&a, raw + 4 * x, 4);
    same += a == b;
  }
  CHECK_EQ_INT(same, D);
  th_resp_free(&rf);
  th_resp_free(&rb);
  free(b64body);

  /* bad input: OpenAI's error shape, param named */
  const char *bad[][2] = {
      {"{\"model\":\"local\",\"input\":[]}", "input"},
      {"{\"model\":\"local\",\"input\":5}", "input"},
      {"{\"model\":\"local\",\"input\":[[1,2,99999]]}", "input"},
      {"{\"model\":\"local\",\"input\":[\"\"]}", "input"},
      {"{\"model\":\"local\",\"input\":\"x\",\"encoding_format\":\"hex\"}", "encoding_format"},
      {"{\"model\":\"local\",\"input\":\"x\",\"frobnicate\":true}", "frobnicate"},
  };
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    struct th_resp r;
    post("/v1/embeddings", bad[k][0], &r);
    CHECK_MSG(r.status == 400, "%s: %ld %.200s", bad[k][0], r.status, r.body);
    CHECK_STR(jstr(r.json, "error.type"), "invalid_request_error");
    CHECK_STR(jstr(r.json, "error.param"), bad[k][1]);
    CHECK_MSG(jstr(r.json, "error.message") && *jstr(r.json, "error.message"), "no message");
    json_t *row = db_row_of(&r);
    CHECK_EQ_INT(row_int(row, "http_status"), 400);
    json_decref(row);
    th_resp_free(&r);
  }
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) free(cases[k].body);
}

/* ------------------------------------------------------------------ bad requests */

struct bad_case {
  const char *api;      /* "o" (chat completions) or "a" (messages) */
  const char *body;     /* members after "model":"local" */
  const char *field;    /* OpenAI: error.param; Anthropic: the message starts with it */
};

static void test_bad_requests(void) {
  static const struct bad_case cases[] = {
      {"o", "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":2", "n"},
      {"o", "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":"
            "{\"url\":\"https://x/y.png\"}}]}]", "messages[0].content[0]"},
      {"o", "\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]", "messages[0].role"},
      /* tools with tool_choice auto (the default): a constrained local model cannot leave the
       * choice between text and a call open */
      {"o", "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\","
            "\"function\":{\"name\":\"f\",\"parameters\":{}}}]", "tool_choice"},
      {"o", "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"response_format\":{\"type\":"
            "\"xml\"}", "response_format.type"},
      {"o", "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"frobnicate\":1", "frobnicate"},
      {"o", "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":\"x\"", "temperature"},
      {"o", "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":\"5\"", "max_tokens"},
      {"o", "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":5", "stop"},
      {"o", "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_logprobs\":2", "top_logprobs"},
      {"o", "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":\"yes\"", "logprobs"},
      {"a", "\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image\","
            "\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\",\"data\":\"AA==\"}}]}]",
       "messages.0.content.0"},
      {"a", "\"max_tokens\":5,\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]", "messages.0.role"},
      {"a", "\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"name\":"
            "\"f\",\"input_schema\":{\"type\":\"object\"}}]", "tool_choice"},
      {"a", "\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"frobnicate\":1",
       "frobnicate"},
      {"a", "\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":\"x\"",
       "temperature"},
      {"a", "\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":1.5",
       "temperature"},
      {"a", "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]", "max_tokens"},
      {"a", "\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop_sequences\":[\"\"]",
       "stop_sequences.0"},
      {"a", "\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_k\":\"x\"", "top_k"},
  };
  /* none of them reaches the engine */
  double p0 = metric("tiergate_local_prompt_tokens_total", "stories");
  double s0 = metric("tiergate_local_steps_total", "stories");
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const struct bad_case *c = &cases[k];
    bool oa = c->api[0] == 'o';
    char *body = th_fmt("{\"model\":\"local\",%s}", c->body);
    struct th_resp r;
    post(oa ? "/v1/chat/completions" : "/v1/messages", body, &r);
    CHECK_MSG(r.status == 400, "%s: %ld %.300s", body, r.status, r.body);
    if (oa) {
      CHECK_STR(jstr(r.json, "error.type"), "invalid_request_error");
      CHECK_STR(jstr(r.json, "error.param"), c->field);
      const char *m = jstr(r.json, "error.message");
      CHECK_MSG(m && strstr(m, c->field), "message does not name %s: %s", c->field, m);
    } else {
      CHECK_STR(jstr(r.json, "type"), "error");
      CHECK_STR(jstr(r.json, "error.type"), "invalid_request_error");
      const char *m = jstr(r.json, "error.message");
      CHECK_MSG(starts_with(m, c->field), "message does not start with %s: %s", c->field, m);
    }
    json_t *row = db_row_of(&r);
    CHECK_EQ_INT(row_int(row, "http_status"), 400);
    CHECK_STR(jstr(row, "error_class"), "bad_request");
    CHECK_STR(jstr(row, "client_api"), oa ? "openai" : "anthropic");
    json_decref(row);
    th_resp_free(&r);
    free(body);
  }
  CHECK_EQ_INT(metric("tiergate_local_prompt_tokens_total", "stories"), p0);
  CHECK_EQ_INT(metric("tiergate_local_steps_total", "stories"), s0);
}

static void test_context_length(void) {
  /* 300 words are far more than 256 tokens */
  char *words = calloc(1, 2000);
  for (int i = 0; i < 300; i++) strcat(words, "word ");
  slm_token toks[LONG_CTX];
  struct slm_chat_msg msg = {"user", words};
  int32_t n = ref_tokens(m_stories, &msg, 1, toks, LONG_CTX);
  CHECK_MSG(n > CTX, "%d tokens", n);
  double p0 = metric("tiergate_local_prompt_tokens_total", "stories");
  struct th_resp r;
  ask("/v1/chat/completions", "local", words, NULL, &r);
  CHECK_EQ_INT(r.status, 400);
  CHECK_STR(jstr(r.json, "error.code"), "context_length_exceeded");
  CHECK_STR(jstr(r.json, "error.type"), "invalid_request_error");
  CHECK_STR(jstr(r.json, "error.param"), "messages");
  char want[200];
  snprintf(want, sizeof want, "maximum context length is %d tokens. However, your messages resulted in %d tokens",
           CTX, n);
  CHECK_MSG(jstr(r.json, "error.message") && strstr(jstr(r.json, "error.message"), want),
            "message: %s", jstr(r.json, "error.message"));
  json_t *row = db_row_of(&r);
  CHECK_STR(jstr(row, "error_class"), "context_length");
  CHECK_EQ_INT(row_int(row, "http_status"), 400);
  json_decref(row);
  th_resp_free(&r);

  char extra[100];
  snprintf(extra, sizeof extra, "{\"max_tokens\":%d}", 10);
  ask("/v1/messages", "local", words, extra, &r);
  CHECK_EQ_INT(r.status, 400);
  CHECK_STR(jstr(r.json, "error.type"), "invalid_request_error");
  CHECK_MSG(jstr(r.json, "error.message") && strstr(jstr(r.json, "error.message"), "maximum context length"),
            "message: %s", jstr(r.json, "error.message"));
  row = db_row_of(&r);
  CHECK_STR(jstr(row, "error_class"), "context_length");
  json_decref(row);
  th_resp_free(&r);

  /* a prompt that fits with a max_tokens that does not */
  ask("/v1/chat/completions", "local", "Hi", "{\"max_tokens\":250}", &r);
  CHECK_EQ_INT(r.status, 400);
  CHECK_STR(jstr(r.json, "error.param"), "max_tokens");
  CHECK_MSG(jstr(r.json, "error.message") && strstr(jstr(r.json, "error.message"), "maximum context length"),
            "message: %s", jstr(r.json, "error.message"));
  th_resp_free(&r);

  /* fallback_on: [context_length] sends it to the mock, which echoes the prompt's words */
  for (int a = 0; a < 2; a++) {
    ask(a ? "/v1/messages" : "/v1/chat/completions", "local-ctx", words, a ? extra : NULL, &r);
    CHECK_MSG(r.status == 200, "context fallback: %ld %.300s", r.status, r.body);
    CHECK_STR(hdr(&r, "x-tiergate-route"), "mock/gpt-4o-mini");
    CHECK_STR(hdr(&r, "x-tiergate-attempts"), "2");
    json_t *log = NULL;
    row = db_row_of(&r);
    log = json_loads(jstr(row, "attempt_log") ? jstr(row, "attempt_log") : "", 0, NULL);
    CHECK_EQ_INT(json_array_size(log), 2);
    CHECK_STR(jstr(log, "0.deployment"), "stories/local-ctx");
    CHECK_EQ_INT(jint(log, "0.status"), 400);
    CHECK_STR(jstr(log, "0.class"), "context_length");
    CHECK_STR(jstr(log, "0.next"), "fallback");
    CHECK_STR(jstr(log, "1.deployment"), "mock/gpt-4o-mini");
    CHECK_STR(jstr(log, "1.next"), "answer");
    CHECK_STR(jstr(row, "route"), "mock/gpt-4o-mini");
    CHECK(row_null(row, "queue_ms"));   /* the mock answered: no engine timings */
    CHECK(row_null(row, "prefill_ms"));
    CHECK(row_null(row, "decode_tps"));
    json_decref(log);
    json_decref(row);
    th_resp_free(&r);
  }
  CHECK_EQ_INT(metric("tiergate_local_prompt_tokens_total", "stories"), p0);
  free(words);
}

/* ------------------------------------------------------------------ prefix reuse */

/* Prompt tokens the scheduler reuses for a prompt P2 from a slot that served P1 and generated G
 * (its cache: P1 and every generated token but the last, which was never fed back). */
static int32_t reuse_of(const struct ref *first, const slm_token *p2, int32_t n2) {
  int32_t lcp = 0;
  while (lcp < n2) {
    slm_token t = lcp < first->n_prompt ? first->prompt[lcp]
                : lcp - first->n_prompt < first->n_gen - 1 ? first->gen[lcp - first->n_prompt] : -1;
    if (t != p2[lcp]) break;
    lcp++;
  }
  return lcp < n2 - 1 ? lcp : n2 - 1;
}

static void test_prefix_reuse(void) {
  for (int a = 0; a < 2; a++) {
    const char *u1 = a ? "Tell me about a big red ball" : "Tell me about a small green frog";
    struct ref *first = greedy(m_stories, u1, 24);
    struct slm_chat_msg conv[3] = {{"user", u1}, {"assistant", first->text}, {"user", "And then?"}};
    slm_token p2[LONG_CTX];
    int32_t n2 = ref_tokens(m_stories, conv, 3, p2, LONG_CTX);
    int32_t want_cached = reuse_of(first, p2, n2);
    printf("prefix reuse (%s): %d of %d prompt tokens\n", a ? "anthropic" : "openai", want_cached, n2);
    CHECK_MSG(want_cached > first->n_prompt / 2, "the test's conversation shares too little");
    const char *path = a ? "/v1/messages" : "/v1/chat/completions";
    struct th_resp r;
    ask(path, "local", u1, "{\"temperature\":0,\"max_tokens\":24}", &r);
    CHECK_MSG(jtext_is(J(&r), a ? "content.0.text" : "choices.0.message.content", first->text, first->len),
              "turn 1: %.300s", r.body);
    th_resp_free(&r);
    double hits0 = metric("tiergate_local_prefix_cache_hit_tokens_total", "stories");
    double gen0 = metric("tiergate_local_generated_tokens_total", "stories");
    char *b = body_of("local", NULL, conv, 3, "{\"temperature\":0,\"max_tokens\":8}");
    post(path, b, &r);
    free(b);
    CHECK_MSG(r.status == 200, "turn 2: %ld %.300s", r.status, r.body);
    json_t *j = J(&r);
    if (a) {
      CHECK_EQ_INT(jint(j, "usage.cache_read_input_tokens"), want_cached);
      CHECK_EQ_INT(jint(j, "usage.input_tokens"), n2 - want_cached);
    } else {
      CHECK_EQ_INT(jint(j, "usage.prompt_tokens"), n2);
      CHECK_EQ_INT(jint(j, "usage.prompt_tokens_details.cached_tokens"), want_cached);
    }
    json_t *row = db_row_of(&r);
    CHECK_EQ_INT(row_int(row, "cached_tokens"), want_cached);
    CHECK_EQ_INT(row_int(row, "input_tokens"), n2);
    CHECK_MSG(!row_null(row, "queue_ms") && th_jnum(row, "queue_ms") >= 0, "queue_ms");
    CHECK_MSG(!row_null(row, "prefill_ms") && th_jnum(row, "prefill_ms") > 0, "prefill_ms");
    CHECK_MSG(!row_null(row, "decode_tps") && th_jnum(row, "decode_tps") > 0, "decode_tps");
    json_decref(row);
    /* the metrics moved by exactly this request's numbers */
    CHECK_EQ_INT(metric("tiergate_local_prefix_cache_hit_tokens_total", "stories") - hits0, want_cached);
    CHECK_EQ_INT(metric("tiergate_local_generated_tokens_total", "stories") - gen0, 8);
    th_resp_free(&r);
    ref_free(first);
  }
  /* the mock's rows have no engine timings */
  struct th_resp r;
  ask("/v1/chat/completions", "gpt-4o-mini", "hello there", NULL, &r);
  CHECK_EQ_INT(r.status, 200);
  json_t *row = db_row_of(&r);
  CHECK(row_null(row, "queue_ms"));
  CHECK(row_null(row, "prefill_ms"));
  CHECK(row_null(row, "decode_tps"));
  json_decref(row);
  th_resp_free(&r);
}

static void test_metrics(void) {
  struct th_resp r;
  struct th_req rq = {0};
  gw_req(&rq, "/metrics", &r);
  const char *series[] = {"tiergate_local_queue_depth", "tiergate_local_active_sequences",
                          "tiergate_local_batch_tokens", "tiergate_local_steps_total",
                          "tiergate_local_batch_tokens_total", "tiergate_local_prompt_tokens_total",
                          "tiergate_local_prefix_cache_hit_tokens_total",
                          "tiergate_local_generated_tokens_total", "tiergate_local_decode_seconds_total"};
  for (size_t i = 0; i < sizeof series / sizeof series[0]; i++) {
    char *k = th_fmt("# TYPE %s ", series[i]);
    CHECK_MSG(r.body && strstr(r.body, k), "/metrics lacks %s", series[i]);
    free(k);
  }
  th_resp_free(&r);
  /* a greedy request moves the counters by its own numbers; the same prompt again is a cache hit */
  struct ref *ref = greedy(m_qwen, "metrics please", 10);
  double g0 = metric("tiergate_local_generated_tokens_total", "qwen");
  double p0 = metric("tiergate_local_prompt_tokens_total", "qwen");
  double h0 = metric("tiergate_local_prefix_cache_hit_tokens_total", "qwen");
  double d0 = metric("tiergate_local_decode_seconds_total", "qwen");
  ask("/v1/chat/completions", "qwen", "metrics please", "{\"temperature\":0,\"max_tokens\":10}", &r);
  int32_t cached1 = (int32_t)jint(J(&r), "usage.prompt_tokens_details.cached_tokens");
  th_resp_free(&r);
  CHECK_EQ_INT(metric("tiergate_local_generated_tokens_total", "qwen") - g0, ref->n_gen);
  CHECK_EQ_INT(metric("tiergate_local_prompt_tokens_total", "qwen") - p0, ref->n_prompt - cached1);
  CHECK_EQ_INT(metric("tiergate_local_prefix_cache_hit_tokens_total", "qwen") - h0, cached1);
  CHECK_MSG(metric("tiergate_local_decode_seconds_total", "qwen") > d0, "decode seconds did not move");
  ask("/v1/chat/completions", "qwen", "metrics please", "{\"temperature\":0,\"max_tokens\":10}", &r);
  CHECK_EQ_INT(jint(J(&r), "usage.prompt_tokens_details.cached_tokens"), ref->n_prompt - 1);
  th_resp_free(&r);
  CHECK_EQ_INT(metric("tiergate_local_prefix_cache_hit_tokens_total", "qwen") - h0,
               cached1 + ref->n_prompt - 1);
  CHECK_EQ_INT(metric("tiergate_local_prompt_tokens_total", "qwen") - p0, ref->n_prompt - cached1 + 1);
  CHECK_EQ_INT(metric("tiergate_local_queue_depth", "qwen"), 0);
  CHECK_EQ_INT(metric("tiergate_local_active_sequences", "qwen"), 0);
  ref_free(ref);
}

/* ------------------------------------------------------------------ concurrency */

#define NSTREAMS 16
#define CONC_TOKENS 48

struct conc {
  const char *url;
  char *body;
  pthread_barrier_t *go;
  struct th_resp r;
};

static void *conc_main(void *arg) {
  struct conc *c = arg;
  const char *h[] = {"Content-Type: application/json", NULL};
  struct th_req rq = {.method = "POST", .url = c->url, .body = c->body, .headers = h,
                      .timeout_ms = 60000};
  pthread_barrier_wait(c->go);
  th_http(&rq, &c->r);
  return NULL;
}

static void test_concurrent(void) {
  static const char *const who[NSTREAMS] = {"Tom", "Lily", "Ben", "Sue", "a cat", "a dog", "the sun",
                                            "a tree", "Max", "Mia", "a bird", "the sea", "a car",
                                            "Anna", "a frog", "Sam"};
  struct ref *refs[NSTREAMS];
  char *users[NSTREAMS];
  for (int i = 0; i < NSTREAMS; i++) {
    users[i] = th_fmt("Tell me about %s", who[i]);
    refs[i] = greedy(m_stories, users[i], CONC_TOKENS);
  }
  char extra[160];
  /* alone, one after the other: the reference */
  snprintf(extra, sizeof extra, "{\"temperature\":0,\"max_tokens\":%d}", CONC_TOKENS);
  for (int i = 0; i < NSTREAMS; i++) {
    struct th_resp r;
    ask("/v1/chat/completions", "wide", users[i], extra, &r);
    CHECK_MSG(jtext_is(J(&r), "choices.0.message.content", refs[i]->text, refs[i]->len),
              "alone %d: %.200s", i, r.body);
    th_resp_free(&r);
  }
  /* all 16 at once, streamed: 16 slots, then 4 slots + 12 queued */
  const char *models[] = {"wide", "narrow"};
  for (int mdl = 0; mdl < 2; mdl++) {
    double steps0 = metric("tiergate_local_steps_total", models[mdl]);
    double gen0 = metric("tiergate_local_generated_tokens_total", models[mdl]);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, NSTREAMS);
    struct conc c[NSTREAMS];
    pthread_t th[NSTREAMS];
    char url[128];
    snprintf(url, sizeof url, "%s/v1/chat/completions", it.gw.url);
    snprintf(extra, sizeof extra, "{\"temperature\":0,\"max_tokens\":%d,\"stream\":true}", CONC_TOKENS);
    for (int i = 0; i < NSTREAMS; i++) {
      struct slm_chat_msg m = {"user", users[i]};
      c[i] = (struct conc){.url = url, .body = body_of(models[mdl], NULL, &m, 1, extra), .go = &go};
      pthread_create(&th[i], NULL, conc_main, &c[i]);
    }
    int same = 0;
    for (int i = 0; i < NSTREAMS; i++) {
      pthread_join(th[i], NULL);
      itest_note_id(&c[i].r);
      CHECK_MSG(c[i].r.status == 200, "%s stream %d: %ld %.200s", models[mdl], i, c[i].r.status, c[i].r.body);
      size_t len = 0;
      char fin[32];
      json_t *usage = NULL;
      char *text = openai_stream_text(&c[i].r, false, &len, fin, sizeof fin, &usage);
      bool ok = len == refs[i]->len && !memcmp(text, refs[i]->text, len);
      CHECK_MSG(ok, "%s stream %d:\n got  %.200s\n want %.200s", models[mdl], i, text, refs[i]->text);
      same += ok;
      free(text);
      json_decref(usage);
      th_resp_free(&c[i].r);
      free(c[i].body);
    }
    pthread_barrier_destroy(&go);
    double steps = metric("tiergate_local_steps_total", models[mdl]) - steps0;
    double gen = metric("tiergate_local_generated_tokens_total", models[mdl]) - gen0;
    printf("%s: %d of %d concurrent streams equal alone; %.0f tokens in %.0f decode steps\n",
           models[mdl], same, NSTREAMS, gen, steps);
    int want_gen = 0;
    for (int i = 0; i < NSTREAMS; i++) want_gen += refs[i]->n_gen;
    CHECK_EQ_INT(gen, want_gen);
    /* they really ran together: far fewer steps than tokens */
    CHECK_MSG(steps < gen / 2, "%s: %.0f steps for %.0f tokens: not batched", models[mdl], steps, gen);
  }
  for (int i = 0; i < NSTREAMS; i++) {
    free(users[i]);
    ref_free(refs[i]);
  }
}

/* ------------------------------------------------------------------ capacity: queue, disconnect */

/* Opens a raw connection and sends a streamed chat request; returns the fd once the response head
 * and its first event arrived (the head's request id noted), or -1. */
static int raw_stream(const char *model, const char *user, int max_tokens, char *head, size_t cap) {
  int fd = th_connect(it.gw.port);
  if (fd < 0) return -1;
  char *body = th_fmt("{\"model\":\"%s\",\"stream\":true,\"max_tokens\":%d,\"temperature\":0,"
                      "\"ignore_eos\":true,\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}",
                      model, max_tokens, user);
  th_send_post(fd, "/v1/chat/completions", body, NULL);
  free(body);
  size_t n = 0;
  head[0] = 0;
  double deadline = th_now_ms() + 20000;
  while (th_now_ms() < deadline && !strstr(head, "data: ")) {
    ssize_t k = th_recv(fd, head + n, cap - 1 - n, 20000);
    if (k <= 0) break;
    n += (size_t)k;
    head[n] = 0;
  }
  CHECK_MSG(strstr(head, "200 OK") && strstr(head, "data: "), "stream did not start: %.300s", head);
  itest_note_raw(head);
  return fd;
}

static json_t *row_of_raw(const char *head) {
  const char *id = strcasestr(head, "x-tiergate-request-id:");
  char v[128] = "";
  if (id) sscanf(id + 22, " %127[^\r\n]", v);
  return db_row(v, 10000);
}

static void test_queue_full(void) {
  char head[8192];
  int fd = raw_stream("one", "Hi", 2000, head, sizeof head);
  CHECK(fd >= 0);
  CHECK_EQ_INT(metric("tiergate_local_active_sequences", "one"), 1);
  /* while it runs (slots 1, queue 0): OpenAI, Anthropic, then both again on the model with a
   * fallback; the log rows are read after, so all four see the slot taken */
  struct th_resp r[4];
  ask("/v1/chat/completions", "one", "Hi", "{\"max_tokens\":5}", &r[0]);
  ask("/v1/messages", "one", "Hi", "{\"max_tokens\":5}", &r[1]);
  ask("/v1/chat/completions", "one-fb", "full queue", "{\"max_tokens\":5}", &r[2]);
  ask("/v1/messages", "one-fb", "full queue", "{\"max_tokens\":5}", &r[3]);
  CHECK_MSG(metric("tiergate_local_active_sequences", "one") == 1, "the long stream ended too soon");
  /* the first stream's client leaves; its row says 499 */
  close(fd);

  /* OpenAI: 503, retry-after, and not to be retried by the SDK */
  CHECK_EQ_INT(r[0].status, 503);
  CHECK_STR(hdr(&r[0], "retry-after"), "1");
  CHECK_STR(hdr(&r[0], "x-should-retry"), "false");
  CHECK_STR(jstr(r[0].json, "error.code"), "local_queue_full");
  json_t *row = db_row_of(&r[0]);
  CHECK_EQ_INT(row_int(row, "http_status"), 503);
  CHECK_STR(jstr(row, "error_class"), "local_queue_full");
  json_decref(row);
  /* Anthropic: 529 overloaded_error */
  CHECK_EQ_INT(r[1].status, 529);
  CHECK_STR(jstr(r[1].json, "type"), "error");
  CHECK_STR(jstr(r[1].json, "error.type"), "overloaded_error");
  CHECK_STR(hdr(&r[1], "x-should-retry"), "false");
  CHECK(hdr(&r[1], "retry-after") != NULL);
  row = db_row_of(&r[1]);
  CHECK_EQ_INT(row_int(row, "http_status"), 529);
  json_decref(row);
  /* with fallbacks the mock answers instead (it echoes the prompt), in the caller's format */
  for (int a = 0; a < 2; a++) {
    struct th_resp *q = &r[2 + a];
    CHECK_MSG(q->status == 200, "fallback: %ld %.300s", q->status, q->body);
    CHECK_STR(hdr(q, "x-tiergate-route"), "mock/gpt-4o-mini");
    CHECK_STR(hdr(q, "x-tiergate-attempts"), "2");
    CHECK_STR(jstr(q->json, a ? "content.0.text" : "choices.0.message.content"), "full queue full queue full");
    row = db_row_of(q);
    json_t *log = json_loads(jstr(row, "attempt_log") ? jstr(row, "attempt_log") : "", 0, NULL);
    CHECK_EQ_INT(json_array_size(log), 2);
    CHECK_STR(jstr(log, "0.deployment"), "one/one-fb");
    CHECK_EQ_INT(jint(log, "0.status"), a ? 529 : 503);
    CHECK_STR(jstr(log, "0.next"), "fallback");
    CHECK_STR(jstr(log, "1.model"), "gpt-4o-mini");
    CHECK_EQ_INT(jint(log, "1.status"), 200);
    CHECK_STR(jstr(log, "1.next"), "answer");
    CHECK_EQ_INT(row_int(row, "http_status"), 200);
    CHECK(row_null(row, "queue_ms"));   /* the mock answered: no engine timings */
    json_decref(log);
    json_decref(row);
  }
  for (int i = 0; i < 4; i++) th_resp_free(&r[i]);
  row = row_of_raw(head);
  CHECK_EQ_INT(row_int(row, "http_status"), 499);
  CHECK_STR(jstr(row, "error_class"), "client_disconnect");
  json_decref(row);
  /* and its slot is free again */
  double deadline = th_now_ms() + 5000;
  while (metric("tiergate_local_active_sequences", "one") != 0 && th_now_ms() < deadline) th_sleep_ms(20);
  CHECK_EQ_INT(metric("tiergate_local_active_sequences", "one"), 0);
  /* four queue-full answers in a row did not open the breaker (failures: 2): the model was at
   * capacity, not broken, and the next request is served locally */
  struct th_resp m;
  struct th_req rq = {0};
  gw_req(&rq, "/metrics", &m);
  CHECK_MSG(m.body && strstr(m.body, "tiergate_breaker_state{deployment=\"one/one\"} 0\n"),
            "the breaker of one/one opened on queue-full answers");
  th_resp_free(&m);
  struct th_resp again;
  ask("/v1/chat/completions", "one", "Hi", "{\"max_tokens\":5}", &again);
  CHECK_EQ_INT(again.status, 200);
  CHECK_STR(hdr(&again, "x-tiergate-route"), "one/one");
  th_resp_free(&again);
}

static void test_disconnect(void) {
  /* the whole long generation first, to know how long it takes */
  struct th_resp r;
  ask("/v1/chat/completions", "lone", "Hi", "{\"temperature\":0,\"max_tokens\":2000,\"ignore_eos\":true}", &r);
  CHECK_MSG(r.status == 200, "long: %ld %.200s", r.status, r.body);
  CHECK_EQ_INT(jint(J(&r), "usage.completion_tokens"), 2000);
  CHECK_STR(jstr(r.json, "choices.0.finish_reason"), "length");
  double full_ms = r.total_ms;
  th_resp_free(&r);

  double g0 = metric("tiergate_local_generated_tokens_total", "lone");
  char head[8192];
  int fd = raw_stream("lone", "Hi", 2000, head, sizeof head);
  CHECK(fd >= 0);
  close(fd);   /* gone after the first chunk */
  /* lone has one slot and a queue of one: if the slot stayed taken, this waits out the 2000 */
  double t0 = th_now_ms();
  ask("/v1/chat/completions", "lone", "Hi", "{\"temperature\":0,\"max_tokens\":8}", &r);
  double next_ms = th_now_ms() - t0;
  CHECK_EQ_INT(r.status, 200);
  CHECK_EQ_INT(jint(J(&r), "usage.completion_tokens"), 8);
  th_resp_free(&r);
  double cancelled_tokens = metric("tiergate_local_generated_tokens_total", "lone") - g0 - 8;
  printf("disconnect: whole generation %.0f ms, the next request %.0f ms; the left stream generated "
         "%.0f of 2000 tokens\n", full_ms, next_ms, cancelled_tokens);
  CHECK_MSG(next_ms < full_ms / 3, "next request %.0f ms, the whole generation %.0f ms", next_ms, full_ms);
  CHECK_MSG(cancelled_tokens >= 1 && cancelled_tokens < 1000, "%.0f tokens after the disconnect",
            cancelled_tokens);
  json_t *row = row_of_raw(head);
  CHECK_EQ_INT(row_int(row, "http_status"), 499);
  CHECK_STR(jstr(row, "error_class"), "client_disconnect");
  CHECK_EQ_INT(row_int(row, "streamed"), 1);
  /* what the engine did before the cancel is logged: the prompt, and the tokens taken so far */
  slm_token toks[LONG_CTX];
  struct slm_chat_msg hi = {"user", "Hi"};
  CHECK_EQ_INT(row_int(row, "input_tokens"), ref_tokens(m_stories, &hi, 1, toks, LONG_CTX));
  CHECK_MSG(row_int(row, "output_tokens") >= 1 && row_int(row, "output_tokens") <= cancelled_tokens,
            "499 row: %lld output tokens, %.0f generated", row_int(row, "output_tokens"), cancelled_tokens);
  json_decref(row);
  CHECK_EQ_INT(metric("tiergate_local_active_sequences", "lone"), 0);
}

/* ------------------------------------------------------------------ gateways */

static char *yaml_a(const char *db) {
  const char *st = check_shared_path("models/stories260K.gguf");
  const char *qw = check_shared_path("models/tiny-qwen2-Q8_0.gguf");
  return th_fmt(
      "listen: 127.0.0.1:0\n"
      "database: %s\n"
      "providers:\n"
      "  stories: {kind: local, model_path: '%s', threads: %d, context: %d, slots: 4, queue: 8, kv_type: f16}\n"
      "  qwen: {kind: local, model_path: '%s', threads: %d, context: %d, slots: 4, queue: 8, kv_type: f16,\n"
      "         price: {input: 1.00, output: 2.00}}\n"
      "  wide: {kind: local, model_path: '%s', threads: %d, context: %d, slots: 16, queue: 0}\n"
      "  narrow: {kind: local, model_path: '%s', threads: %d, context: %d, slots: 4, queue: 12}\n"
      "  one: {kind: local, model_path: '%s', threads: %d, context: %d, slots: 1, queue: 0}\n"
      "  lone: {kind: local, model_path: '%s', threads: %d, context: %d, slots: 1, queue: 1}\n"
      "  mock: {kind: openai, base_url: 'http://127.0.0.1:%d/v1', api_key_env: TIERGATE_TEST_KEY}\n"
      "models:\n"
      "  local: {provider: stories}\n"
      "  local-ctx: {provider: stories, fallbacks: [gpt-4o-mini], fallback_on: [context_length]}\n"
      "  qwen: {provider: qwen}\n"
      "  wide: {provider: wide}\n"
      "  narrow: {provider: narrow}\n"
      "  one: {provider: one}\n"
      "  one-fb: {provider: one, fallbacks: [gpt-4o-mini]}\n"
      "  lone: {provider: lone}\n"
      "  gpt-4o-mini: {provider: mock}\n"
      "retry: {max_attempts: 1}\n"
      /* on, and quick to open: a local model's own back-pressure (queue full) must not count */
      "breaker: {failures: 2, error_rate: 0%%, cooldown: 30s}\n"
      "limits: {max_body_bytes: 1MiB, connect_timeout: 2s, first_byte_timeout: 30s, idle_timeout: 30s,\n"
      "         total_timeout: 60s, client_timeout: 5s}\n",
      db, st, THREADS, CTX, qw, THREADS, CTX, st, THREADS, CTX, st, THREADS, CTX, st, THREADS, LONG_CTX,
      st, THREADS, LONG_CTX, it.mock.port);
}

/* Ends one gateway: SIGTERM (a clean exit 0), then one log row per request it answered. */
static void gateway_done(const char *name) {
  int st = it.gw_stopped ? it.gw_status : th_gw_stop(&it.gw, SIGTERM, 30000);
  CHECK_MSG(st == 0, "gateway %s exit status %d (want a clean 0)", name, st);
  CHECK_MSG(it.no_id == 0, "%d response(s) without x-tiergate-request-id", it.no_id);
  json_t *rows = th_db_query(it.gw.db_path, "SELECT request_id FROM requests");
  CHECK(rows != NULL);
  int found = 0;
  for (int i = 0; i < it.n_ids; i++) {
    int n = 0;
    size_t k;
    json_t *row;
    json_array_foreach(rows, k, row) if (!strcmp(jstr(row, "request_id"), it.ids[i])) n++;
    CHECK_MSG(n == 1, "request %s has %d log rows", it.ids[i], n);
    found += n == 1;
    free(it.ids[i]);
  }
  printf("gateway %s: %d requests, %d with exactly one log row, %zu rows in all\n", name, it.n_ids,
         found, rows ? json_array_size(rows) : 0);
  json_decref(rows);
  if (!check_failures_) th_rmdir(it.gw.dir);
  else fprintf(stderr, "kept %s (config, database, gateway stdout) for a look\n", it.gw.dir);
  it.n_ids = 0;
  it.no_id = 0;
  it.gw_stopped = false;
  memset(&it.gw, 0, sizeof it.gw);
}

/* ------------------------------------------------------------------ SIGTERM (gateway B) */

struct bg {
  char url[128];
  const char *body;
  struct th_resp r;
};

static void *bg_main(void *arg) {
  struct bg *b = arg;
  const char *h[] = {"Content-Type: application/json", NULL};
  struct th_req rq = {.method = "POST", .url = b->url, .body = b->body, .headers = h, .timeout_ms = 60000};
  th_http(&rq, &b->r);
  return NULL;
}

static void test_sigterm(void) {
  if (th_gw_prepare(&it.gw)) {
    CHECK_MSG(0, "no temp dir");
    return;
  }
  char *yaml = th_fmt("listen: 127.0.0.1:0\ndatabase: %s\nproviders:\n"
                      "  drain: {kind: local, model_path: '%s', threads: %d, context: %d, slots: 1, queue: 3}\n"
                      "models:\n  drain: {provider: drain}\n"
                      "limits: {first_byte_timeout: 60s, idle_timeout: 30s, total_timeout: 60s}\n",
                      it.gw.db_path, check_shared_path("models/stories260K.gguf"), THREADS, LONG_CTX);
  int rc = th_gw_start(&it.gw, yaml, th_gw_test_env());
  free(yaml);
  CHECK_MSG(rc == 0, "gateway B did not start");
  if (rc) return;
  /* one stream running, then three waiting (an OpenAI stream, an OpenAI plain, an Anthropic stream) */
  const char *bodies[4] = {
      "{\"model\":\"drain\",\"stream\":true,\"max_tokens\":1200,\"temperature\":0,\"messages\":"
      "[{\"role\":\"user\",\"content\":\"Hi\"}]}",
      "{\"model\":\"drain\",\"stream\":true,\"max_tokens\":50,\"messages\":[{\"role\":\"user\",\"content\":\"B\"}]}",
      "{\"model\":\"drain\",\"max_tokens\":50,\"messages\":[{\"role\":\"user\",\"content\":\"C\"}]}",
      "{\"model\":\"drain\",\"stream\":true,\"max_tokens\":50,\"messages\":[{\"role\":\"user\",\"content\":\"D\"}]}",
  };
  struct bg b[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    memset(&b[i], 0, sizeof b[i]);
    snprintf(b[i].url, sizeof b[i].url, "%s%s", it.gw.url, i == 3 ? "/v1/messages" : "/v1/chat/completions");
    b[i].body = bodies[i];
    pthread_create(&th[i], NULL, bg_main, &b[i]);
    if (i == 0) CHECK_MSG(wait_metric("tiergate_local_generated_tokens_total", "drain", 1, 20000),
                          "the first stream did not start");
  }
  CHECK_MSG(wait_metric("tiergate_local_queue_depth", "drain", 3, 20000), "three did not queue");
  double gen = metric("tiergate_local_generated_tokens_total", "drain");
  CHECK_MSG(gen < 1200, "the first stream ended before SIGTERM (%.0f tokens)", gen);
  kill(it.gw.proc.pid, SIGTERM);
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  it.gw_status = th_wait(&it.gw.proc, 30000);
  it.gw_stopped = true;
  for (int i = 0; i < 4; i++) itest_note_id(&b[i].r);
  /* the running stream finished normally */
  CHECK_MSG(b[0].r.status == 200, "running stream: %ld", b[0].r.status);
  size_t len = 0;
  char fin[32];
  json_t *usage = NULL;
  char *text = openai_stream_text(&b[0].r, false, &len, fin, sizeof fin, &usage);
  CHECK_STR(fin, "length");
  CHECK_MSG(!strstr(b[0].r.body, "\"error\""), "error frame in the drained stream");
  free(text);
  json_decref(usage);
  /* the queued ones were refused, 503, each in its API's shape */
  for (int i = 1; i < 4; i++) {
    CHECK_MSG(b[i].r.status == 503, "queued request %d at SIGTERM: %ld %.200s", i, b[i].r.status, b[i].r.body);
    CHECK(hdr(&b[i].r, "retry-after") != NULL);
    CHECK_STR(hdr(&b[i].r, "x-should-retry"), "false");   /* nor retried by the gateway: see below */
    if (i < 3) CHECK_STR(jstr(b[i].r.json, "error.code"), "shutdown");
    else CHECK_MSG(!strcmp(jstr(b[i].r.json, "type") ? jstr(b[i].r.json, "type") : "", "error") &&
                   jstr(b[i].r.json, "error.type"), "not an Anthropic error: %.200s", b[i].r.body);
  }
  CHECK_MSG(it.gw_status == 0, "gateway B exit status %d", it.gw_status);
  /* every request has its row (the log is flushed before the exit) */
  for (int i = 0; i < 4; i++) {
    json_t *row = db_row_of(&b[i].r);
    CHECK_EQ_INT(row_int(row, "http_status"), i ? 503 : 200);
    /* one attempt: a draining engine is not tried again (that waited out retry-after and opened
     * the breaker, so the client saw breaker_open) */
    CHECK_EQ_INT(row_int(row, "attempts"), 1);
    if (i) CHECK_STR(jstr(row, "error_class"), "shutdown");
    else CHECK_EQ_INT(row_int(row, "output_tokens"), 1200);
    json_decref(row);
    th_resp_free(&b[i].r);
  }
}

/* ------------------------------------------------------------------ start-up failures */

/* Runs `tiergate ARGS` with stderr into the output; returns the wait status, *OUT the output. */
static int run_tiergate(const char *args, char **out) {
  const char *bin = getenv("TIERGATE_BIN");
  *out = NULL;
  if (!bin) return -1;
  char *cmd = th_fmt("'%s' %s 2>&1", bin, args);
  FILE *p = popen(cmd, "r");
  free(cmd);
  size_t n = 0, cap = 65536;
  *out = calloc(1, cap);
  if (!p || !*out) return -1;
  size_t k;
  while ((k = fread(*out + n, 1, cap - 1 - n, p)) > 0) n += k;
  (*out)[n] = 0;
  return pclose(p);
}

static void test_startup_failures(void) {
  char dir[256];
  CHECK_EQ_INT(th_tmpdir(dir, sizeof dir, "gwlocal-bad"), 0);
  const char *files[] = {"/nonexistent/no-such-model.gguf", check_shared_path("vocab/ggml-vocab-llama-spm.gguf")};
  const char *why[] = {"No such file or directory", "missing tensor"};
  for (int k = 0; k < 2; k++) {
    char *cfg = th_fmt("%s/bad%d.yaml", dir, k);
    char *db = th_fmt("%s/bad%d.db", dir, k);
    /* model_path's value is at line 6, column 17 */
    char *yaml = th_fmt("listen: 127.0.0.1:0\n"
                        "database: %s\n"
                        "providers:\n"
                        "  bad:\n"
                        "    kind: local\n"
                        "    model_path: '%s'\n"
                        "models:\n"
                        "  bad: {provider: bad}\n",
                        db, files[k]);
    th_write_file(cfg, yaml, strlen(yaml));
    char *want = th_fmt("%s:6:17: provider 'bad': cannot load model_path: %s", cfg, files[k]);
    const char *cmds[] = {"serve --config", "config check"};
    for (int c = 0; c < 2; c++) {
      char *args = th_fmt("%s '%s'", cmds[c], cfg);
      char *out = NULL;
      int st = run_tiergate(args, &out);
      CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s on %s: status %d\n%s", cmds[c], files[k], st,
                out);
      CHECK_MSG(out && strstr(out, want), "%s: no '%s' in:\n%s", cmds[c], want, out);
      CHECK_MSG(out && strstr(out, why[k]), "%s: no '%s' in:\n%s", cmds[c], why[k], out);
      CHECK_MSG(out && !strstr(out, "Sanitizer"), "%s: sanitizer report:\n%s", cmds[c], out);
      if (c == 0) CHECK_MSG(out && !strstr(out, "listening on"), "serve started anyway");
      free(out);
      free(args);
    }
    free(want);
    free(yaml);
    free(db);
    free(cfg);
  }
  th_rmdir(dir);
}

/* ------------------------------------------------------------------ main */

int main(void) {
  (void)itest_start;   /* this test runs its own fixture: local providers in its own configs */
  memset(&it, 0, sizeof it);
  signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  char err[256] = "";
  struct slm_model_params mp = slm_model_default_params();
  m_stories = slm_model_load(check_shared_path("models/stories260K.gguf"), &mp, err, sizeof err);
  CHECK_MSG(m_stories != NULL, "stories260K: %s", err);
  m_qwen = slm_model_load(check_shared_path("models/tiny-qwen2-Q8_0.gguf"), &mp, err, sizeof err);
  CHECK_MSG(m_qwen != NULL, "tiny-qwen2: %s", err);
  if (!m_stories || !m_qwen || th_mock_start(&it.mock, NULL) || th_gw_prepare(&it.gw)) {
    CHECK_MSG(0, "cannot start the fixture");
    return check_done();
  }
  double t0 = th_now_ms();
  char *yaml = yaml_a(it.gw.db_path);
  int rc = th_gw_start(&it.gw, yaml, th_gw_test_env());
  free(yaml);
  CHECK_MSG(rc == 0, "gateway A did not start");
  if (rc == 0) {
    test_openai_greedy();
    test_anthropic_greedy();
    test_stops();
    test_seed();
    test_logprobs();
    test_count_tokens();
    test_models();
    test_embeddings();
    test_bad_requests();
    test_context_length();
    test_prefix_reuse();
    test_metrics();
    test_concurrent();
    test_queue_full();
    test_disconnect();
  }
  gateway_done("A");
  printf("gateway A: %.1f s\n", (th_now_ms() - t0) / 1e3);
  t0 = th_now_ms();
  test_sigterm();
  printf("gateway B: %.1f s\n", (th_now_ms() - t0) / 1e3);
  test_startup_failures();
  itest_finish();   /* gateway B (stopped by test_sigterm): one row per request; the mock */
  slm_model_free(m_stories);
  slm_model_free(m_qwen);
  return check_done();
}
