/*
 * test_sched.c: the local-execution scheduler (router/local/sched.c) against references computed
 * here with the slm API directly: greedy and sampled tokens of jobs alone, batched, queued and
 * prefilled in chunks; stop strings, EOG, max_tokens, a full context; prefix reuse; cancel,
 * queue limits, drain and free; UTF-8 of every delta on a byte-level vocabulary; logprobs against
 * a log-softmax of the logits; embeddings against one context per input.
 *
 * Models: stories260K (real weights, SentencePiece), tiny-llama/tiny-qwen2 (random weights,
 * byte-level BPE with byte tokens) from $TIERGATE_SHARED_DIR/models.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "router/local/sched.h"

#define MAXGEN 512
#define MAXTEXT 16384
#define MAXTOP 20

static struct slm_model *m_st;   /* stories260K */
static struct slm_model *m_tl;   /* tiny-llama Q8_0 */
static struct slm_model *m_tq;   /* tiny-qwen2 Q8_0 */

/* ---------------------------------------------------------------- notify and waiting */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static unsigned g_notified;
static struct rt_sched *g_log_sched;     /* when set, notify logs last_batch per call */
static uint32_t g_batch_log[8192];
static size_t g_batch_n;
static struct rt_job *g_cancel_job;      /* when set, notify cancels it once generated_tokens */
static struct rt_sched *g_cancel_sched;  /* reaches g_cancel_after (between two steps) */
static uint64_t g_cancel_after, g_cancel_gen;

static void on_notify(void *ud) {
  (void)ud;
  pthread_mutex_lock(&g_mu);
  g_notified++;
  if (g_log_sched && g_batch_n < sizeof g_batch_log / sizeof g_batch_log[0]) {
    struct rt_sched_stats st;
    rt_sched_stats(g_log_sched, &st);
    g_batch_log[g_batch_n++] = st.last_batch;
  }
  if (g_cancel_job) {
    struct rt_sched_stats st;
    rt_sched_stats(g_cancel_sched, &st);
    if (st.generated_tokens >= g_cancel_after) {
      rt_job_cancel(g_cancel_job);   /* on the scheduler thread, between two steps */
      g_cancel_gen = st.generated_tokens;
      g_cancel_job = NULL;
    }
  }
  pthread_cond_broadcast(&g_cv);
  pthread_mutex_unlock(&g_mu);
}

/* Waits for the next notify, at most 20 ms (takes are polled too, so a lost wake-up only costs
 * time). */
static void wait_notify(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_nsec += 20 * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&g_mu);
  unsigned seen = g_notified;
  while (g_notified == seen)
    if (pthread_cond_timedwait(&g_cv, &g_mu, &ts)) break;
  pthread_mutex_unlock(&g_mu);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------------- UTF-8 (the test's own) */

/* Length of the well-formed character at P (1..4), or 0 if P[0..n) does not start with one;
 * *SUB gets the length of the maximal ill-formed subpart then (>= 1). Unicode table 3-7. */
static size_t u8_char(const uint8_t *p, size_t n, size_t *sub) {
  static const struct { uint8_t lo0, hi0; int len; uint8_t lo1, hi1; } tab[] = {
      {0x00, 0x7F, 1, 0, 0},       {0xC2, 0xDF, 2, 0x80, 0xBF}, {0xE0, 0xE0, 3, 0xA0, 0xBF},
      {0xE1, 0xEC, 3, 0x80, 0xBF}, {0xED, 0xED, 3, 0x80, 0x9F}, {0xEE, 0xEF, 3, 0x80, 0xBF},
      {0xF0, 0xF0, 4, 0x90, 0xBF}, {0xF1, 0xF3, 4, 0x80, 0xBF}, {0xF4, 0xF4, 4, 0x80, 0x8F},
  };
  *sub = 1;
  for (size_t r = 0; r < sizeof tab / sizeof tab[0]; r++) {
    if (p[0] < tab[r].lo0 || p[0] > tab[r].hi0) continue;
    if (tab[r].len == 1) return 1;
    size_t k = 1;
    for (; k < (size_t)tab[r].len && k < n; k++) {
      uint8_t lo = k == 1 ? tab[r].lo1 : 0x80, hi = k == 1 ? tab[r].hi1 : 0xBF;
      if (p[k] < lo || p[k] > hi) break;
    }
    if (k == (size_t)tab[r].len) return k;
    *sub = k;
    return 0;
  }
  return 0;
}

static bool u8_valid(const char *s, size_t n) {
  const uint8_t *p = (const uint8_t *)s;
  for (size_t i = 0; i < n;) {
    size_t sub, k = u8_char(p + i, n - i, &sub);
    if (!k) return false;
    i += k;
  }
  return true;
}

/* RAW with every maximal ill-formed subpart replaced by U+FFFD, into OUT (cap 3 x n). */
static size_t u8_sanitize(const uint8_t *raw, size_t n, char *out, size_t *n_repl) {
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    size_t sub, k = u8_char(raw + i, n - i, &sub);
    if (k) {
      memcpy(out + o, raw + i, k);
      o += k;
      i += k;
    } else {
      memcpy(out + o, "\xEF\xBF\xBD", 3);
      o += 3;
      i += sub;
      (*n_repl)++;
    }
  }
  return o;
}

/* ---------------------------------------------------------------- references */

static int argmax(const float *v, int n) {
  int b = 0;
  for (int i = 1; i < n; i++)
    if (v[i] > v[b]) b = i;
  return b;
}

/* A plain decode loop over one sequence: the prompt in one batch, then one token at a time, until
 * MAX_NEW tokens, an EOG token (included) or a full context (n_ctx). SP NULL: greedy argmax, else
 * an slm_sampler with SP. LOGITS (optional): n_vocab floats per generated token. Returns the
 * token count; *CTX_FULL tells whether the context ended it. */
static int ref_run(const struct slm_model *m, const slm_token *prompt, int np, int max_new,
                   const struct slm_sampler_params *sp, uint32_t n_ctx, slm_token *out,
                   float *logits, bool *ctx_full) {
  struct slm_context_params cp = slm_context_default_params();
  cp.n_ctx = n_ctx;
  cp.n_batch = (uint32_t)np > 512 ? (uint32_t)np : 512;
  cp.n_threads = 2;
  struct slm_context *c = slm_context_new(m, &cp);
  struct slm_sampler *smp = sp ? slm_sampler_new(m, sp) : NULL;
  const int nv = slm_n_vocab(m);
  int n = 0;
  if (ctx_full) *ctx_full = false;
  struct slm_batch b = slm_batch_one(prompt, np);
  if (!c || slm_decode(c, &b)) goto out;
  const float *lg = slm_get_logits(c, np - 1);
  while (n < max_new) {
    if (logits) memcpy(logits + (size_t)n * nv, lg, (size_t)nv * sizeof *lg);
    slm_token t = smp ? slm_sampler_sample(smp, lg, NULL) : argmax(lg, nv);
    out[n++] = t;
    if (slm_token_is_eog(m, t) || n == max_new) break;
    if ((uint32_t)slm_kv_pos(c, 0) >= slm_context_n_ctx(c)) {
      if (ctx_full) *ctx_full = true;
      break;
    }
    struct slm_batch b1 = slm_batch_one(&t, 1);
    if (slm_decode(c, &b1)) break;
    lg = slm_get_logits(c, 0);
  }
out:
  slm_sampler_free(smp);
  slm_context_free(c);
  return n;
}

static int tok_text(const struct slm_model *m, const char *text, slm_token *out, int cap) {
  return slm_tokenize(m, text, strlen(text), out, cap, true, false);
}

/* ---------------------------------------------------------------- running jobs */

struct res {
  struct rt_job *j;
  char text[MAXTEXT];
  size_t len;
  slm_token toks[MAXGEN];
  float lp[MAXGEN];
  struct slm_token_prob top[MAXGEN][MAXTOP];
  int n_top[MAXGEN];
  int ntok;
  enum rt_finish fin;
  int stop_index;
  int32_t n_prompt, n_cached, n_gen;
  int64_t queued_us, prefill_us, decode_us;
  int deltas, bad_deltas, takes_after_end;
  bool done;
};

/* Takes what job R produced; returns true when it has finished. Checks every delta's text. */
static bool pump(struct res *r) {
  if (r->done) return true;
  struct rt_job_delta d;
  if (!rt_job_take(r->j, &d)) return false;
  r->deltas++;
  if (!u8_valid(d.text, d.text_len)) r->bad_deltas++;
  if (d.text[d.text_len] != 0) r->bad_deltas++;   /* NUL-terminated */
  if (r->len + d.text_len < MAXTEXT) {
    memcpy(r->text + r->len, d.text, d.text_len);
    r->len += d.text_len;
    r->text[r->len] = 0;
  }
  for (size_t i = 0; i < d.n_tokens && r->ntok < MAXGEN; i++) {
    r->toks[r->ntok] = d.tokens[i].token;
    r->lp[r->ntok] = d.tokens[i].logprob;
    r->n_top[r->ntok] = d.tokens[i].n_top;
    for (int k = 0; k < d.tokens[i].n_top && k < MAXTOP; k++) r->top[r->ntok][k] = d.tokens[i].top[k];
    r->ntok++;
  }
  r->n_prompt = d.n_prompt;
  r->n_cached = d.n_cached;
  r->n_gen = d.n_generated;
  r->queued_us = d.queued_us;
  r->prefill_us = d.prefill_us;
  r->decode_us = d.decode_us;
  if (d.finish != RT_FINISH_NONE) {
    r->fin = d.finish;
    r->stop_index = d.stop_index;
    r->done = true;
  }
  return r->done;
}

/* Pumps all N jobs until each has finished (or 120 s pass: a failure). */
static void pump_all(struct res **rs, int n) {
  double t0 = now_s();
  for (;;) {
    bool all = true, any = false;
    for (int i = 0; i < n; i++) {
      bool was = rs[i]->done;
      int before = rs[i]->deltas;
      all &= pump(rs[i]);
      any |= rs[i]->deltas != before || was != rs[i]->done;
    }
    if (all) return;
    if (now_s() - t0 > 120) {
      CHECK_MSG(0, "jobs did not finish within 120 s");
      return;
    }
    if (!any) wait_notify();
  }
}

static struct res *res_new(void) { return calloc(1, sizeof(struct res)); }

static void res_free(struct res *r) {
  if (!r) return;
  rt_job_release(r->j);
  free(r);
}

static struct rt_job_params greedy_params(const slm_token *p, int n, int max_tokens) {
  struct rt_job_params jp = {0};
  jp.prompt = p;
  jp.n_prompt = n;
  jp.max_tokens = max_tokens;
  jp.sampling = slm_sampler_default_params();
  jp.sampling.temperature = 0;
  jp.logprobs = true;   /* the token ids come back with the text */
  return jp;
}

static struct rt_sched *sched_new(const struct slm_model *m, uint32_t n_slots, uint32_t n_queue,
                                  uint32_t n_ctx, uint32_t chunk) {
  struct rt_sched_params sp = rt_sched_default_params();
  sp.model = m;
  sp.n_threads = 2;
  sp.n_slots = n_slots;
  sp.n_queue = n_queue;
  sp.n_ctx = n_ctx;
  sp.prefill_chunk = chunk;
  sp.notify = on_notify;
  char err[256] = "";
  struct rt_sched *s = rt_sched_new(&sp, err, sizeof err);
  CHECK_MSG(s != NULL, "rt_sched_new: %s", err);
  return s;
}

static bool same_tokens(const slm_token *a, int na, const slm_token *b, int nb) {
  return na == nb && !memcmp(a, b, (size_t)na * sizeof *a);
}

/* ---------------------------------------------------------------- tests */

static const char *const story_prompts[16] = {
    "Once upon a time",  "The little dog",   "Lily and Tom went to",  "One day, a bird",
    "Tim had a red ball", "The sun was hot",  "Mom said",              "A big cat sat on",
    "There was a girl",   "The boy was sad because", "In the park",     "Sam liked to eat",
    "The fish swam",      "Anna found a box", "It was a cold day and", "The old man",
};

static void test_single_greedy(void) {
  slm_token p[64];
  int np = tok_text(m_st, "Once upon a time", p, 64);
  slm_token ref[64];
  int nref = ref_run(m_st, p, np, 48, NULL, 256, ref, NULL, NULL);
  CHECK_EQ_INT(nref, 48);
  struct rt_sched *s = sched_new(m_st, 2, 4, 256, 0);
  if (!s) return;
  CHECK_EQ_INT(rt_sched_n_ctx(s), 256);
  CHECK(rt_sched_kv_bytes(s) > 0);
  struct res *r = res_new();
  struct rt_job_params jp = greedy_params(p, np, 48);
  CHECK_EQ_INT(rt_sched_submit(s, &jp, &r->j), 0);
  struct res *rs[1] = {r};
  pump_all(rs, 1);
  CHECK_EQ_INT(r->fin, RT_FINISH_LENGTH);
  CHECK_EQ_INT(r->n_gen, 48);
  CHECK_EQ_INT(r->ntok, 48);
  CHECK_MSG(same_tokens(r->toks, r->ntok, ref, nref), "single greedy job differs from the decode loop");
  char want[4096];
  int wl = slm_detokenize(m_st, ref, nref, want, sizeof want - 1, false, false);
  CHECK(wl > 0);
  want[wl > 0 ? wl : 0] = 0;
  CHECK_STR(r->text, want);
  CHECK_EQ_INT(r->n_prompt, np);
  CHECK_EQ_INT(r->n_cached, 0);
  CHECK(r->prefill_us > 0 && r->decode_us > 0);
  CHECK_EQ_INT(r->bad_deltas, 0);
  /* after the end, a take still reports the finish but nothing new */
  struct rt_job_delta d;
  CHECK_EQ_INT(rt_job_take(r->j, &d), 0);
  CHECK_EQ_INT(d.finish, RT_FINISH_LENGTH);
  CHECK_EQ_INT(d.text_len, 0);
  struct rt_sched_stats st;
  rt_sched_stats(s, &st);
  CHECK_EQ_U64(st.generated_tokens, 48);
  CHECK_EQ_U64(st.prompt_tokens, (uint64_t)np);
  CHECK_EQ_U64(st.batch_tokens, (uint64_t)np + 47);   /* generated tokens are fed back too */
  CHECK_EQ_U64(st.steps, 48);                         /* the prompt in one step, then 47 */
  CHECK_EQ_U64(st.jobs_done, 1);
  CHECK_EQ_INT(st.active, 0);
  res_free(r);

  /* max_tokens 1 */
  r = res_new();
  jp.max_tokens = 1;
  CHECK_EQ_INT(rt_sched_submit(s, &jp, &r->j), 0);
  rs[0] = r;
  pump_all(rs, 1);
  CHECK_EQ_INT(r->fin, RT_FINISH_LENGTH);
  CHECK_EQ_INT(r->n_gen, 1);
  CHECK(r->ntok == 1 && r->toks[0] == ref[0]);
  res_free(r);
  rt_sched_free(s);
}

/* NJOBS different prompts on N_SLOTS slots (the rest queued): each job's tokens equal its tokens
 * alone. */
static void test_concurrent(const struct slm_model *m, bool text_prompts, uint32_t n_slots,
                            int njobs, int max_tokens) {
  slm_token prompts[16][64];
  int np[16];
  slm_token ref[16][MAXGEN];
  int nref[16];
  uint64_t seed = 12345;
  for (int i = 0; i < njobs; i++) {
    if (text_prompts) {
      np[i] = tok_text(m, story_prompts[i], prompts[i], 64);
    } else {
      np[i] = 3 + i * 2;   /* 3..33 random tokens (byte-level vocabulary, no specials) */
      for (int k = 0; k < np[i]; k++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        prompts[i][k] = 3 + (slm_token)((seed >> 33) % (uint64_t)(slm_n_vocab(m) - 3));
      }
    }
    nref[i] = ref_run(m, prompts[i], np[i], max_tokens, NULL, 256, ref[i], NULL, NULL);
  }
  /* the queue holds exactly the jobs beyond the slots (16 slots: none; 4 slots: 12) */
  struct rt_sched *s = sched_new(m, n_slots, (uint32_t)njobs - n_slots, 256, 0);
  if (!s) return;
  struct res *rs[16];
  for (int i = 0; i < njobs; i++) {
    rs[i] = res_new();
    struct rt_job_params jp = greedy_params(prompts[i], np[i], max_tokens);
    CHECK_EQ_INT(rt_sched_submit(s, &jp, &rs[i]->j), 0);
  }
  pump_all(rs, njobs);
  int n_same = 0, gen = 0;
  for (int i = 0; i < njobs; i++) {
    bool same = same_tokens(rs[i]->toks, rs[i]->ntok, ref[i], nref[i] -
                            (nref[i] && slm_token_is_eog(m, ref[i][nref[i] - 1])));
    CHECK_MSG(same, "job %d of %d (slots %u): tokens differ from the job alone", i, njobs, n_slots);
    n_same += same;
    gen += rs[i]->n_gen;
    CHECK_EQ_INT(rs[i]->n_gen, nref[i]);
    CHECK_EQ_INT(rs[i]->bad_deltas, 0);
  }
  struct rt_sched_stats st;
  rt_sched_stats(s, &st);
  CHECK_EQ_U64(st.generated_tokens, (uint64_t)gen);
  /* batching happened: fewer steps than one per token and per prompt */
  CHECK_MSG(st.steps < (uint64_t)gen, "steps %llu for %d tokens", (unsigned long long)st.steps, gen);
  if (n_slots < (uint32_t)njobs) {
    /* queued jobs waited for a slot */
    CHECK(rs[njobs - 1]->queued_us > 0);
    CHECK_MSG(st.batch_tokens / st.steps <= n_slots * 64, "batch size");
  }
  CHECK_EQ_U64(st.jobs_done, (uint64_t)njobs);
  printf("concurrent %s slots %u jobs %d: %d/%d same, %llu steps, %.1f tokens/step\n",
         m == m_st ? "stories" : "tiny", n_slots, njobs, n_same, njobs,
         (unsigned long long)st.steps, (double)st.batch_tokens / (double)st.steps);
  for (int i = 0; i < njobs; i++) res_free(rs[i]);
  rt_sched_free(s);
}

static void test_sampled_seed(void) {
  slm_token p[64];
  int np = tok_text(m_st, "The little dog", p, 64);
  struct slm_sampler_params sp = slm_sampler_default_params();
  sp.temperature = 1.0f;
  sp.top_k = 0;
  sp.top_p = 1.0f;
  sp.min_p = 0.0f;
  sp.seed = 42;
  slm_token ref[64];
  int nref = ref_run(m_st, p, np, 40, &sp, 256, ref, NULL, NULL);
  struct rt_sched *s = sched_new(m_st, 3, 4, 256, 0);
  if (!s) return;
  struct res *r[3];
  for (int i = 0; i < 3; i++) {
    r[i] = res_new();
    struct rt_job_params jp = greedy_params(p, np, 40);
    jp.sampling = sp;
    jp.sampling.seed = i < 2 ? 42 : 43;
    CHECK_EQ_INT(rt_sched_submit(s, &jp, &r[i]->j), 0);
  }
  pump_all(r, 3);
  CHECK_MSG(same_tokens(r[0]->toks, r[0]->ntok, r[1]->toks, r[1]->ntok), "same seed, different tokens");
  CHECK_MSG(!same_tokens(r[0]->toks, r[0]->ntok, r[2]->toks, r[2]->ntok), "another seed, same tokens");
  int nr = nref - (nref && slm_token_is_eog(m_st, ref[nref - 1]));
  CHECK_MSG(same_tokens(r[0]->toks, r[0]->ntok, ref, nr), "sampled tokens differ from slm_sampler's");
  CHECK_STR(r[0]->text, r[1]->text);
  for (int i = 0; i < 3; i++) res_free(r[i]);
  rt_sched_free(s);
}

static void run_one(struct rt_sched *s, struct res *r, const struct rt_job_params *jp) {
  CHECK_EQ_INT(rt_sched_submit(s, jp, &r->j), 0);
  struct res *rs[1] = {r};
  pump_all(rs, 1);
}

static void test_stops(void) {
  slm_token p[64];
  int np = tok_text(m_st, "Once upon a time", p, 64);
  slm_token ref[64];
  int nref = ref_run(m_st, p, np, 48, NULL, 256, ref, NULL, NULL);
  char full[4096];
  int fl = slm_detokenize(m_st, ref, nref, full, sizeof full - 1, false, false);
  full[fl] = 0;
  /* a token boundary k | k+1 (piece k of >= 3 bytes, k+1 of >= 2): the stop is the last 2 bytes of
   * piece k and the first 2 of piece k+1, and it must first occur at that boundary */
  char pieces[64][64];
  int plen[64], off[65];
  off[0] = 0;
  for (int i = 0; i < nref; i++) {
    plen[i] = slm_token_to_piece(m_st, ref[i], pieces[i], 63, false);
    off[i + 1] = off[i] + plen[i];
  }
  int k = -1;
  char stop[8];
  for (int i = 2; i + 1 < nref && k < 0; i++) {
    if (plen[i] < 3 || plen[i + 1] < 2) continue;   /* token i is cut, not all inside the stop */
    memcpy(stop, pieces[i] + plen[i] - 2, 2);
    memcpy(stop + 2, pieces[i + 1], 2);
    stop[4] = 0;
    const char *at = strstr(full, stop);
    if (at && at - full == off[i + 1] - 2) k = i;
  }
  CHECK_MSG(k >= 0, "no token boundary for the stop test");
  if (k < 0) return;
  struct rt_sched *s = sched_new(m_st, 2, 4, 256, 0);
  if (!s) return;

  /* the stop spans tokens k and k+1: the text ends right before it */
  const char *stops1[3] = {"zzzz", stop, "qqq"};
  struct res *r = res_new();
  struct rt_job_params jp = greedy_params(p, np, 48);
  jp.stops = stops1;
  jp.n_stops = 3;
  run_one(s, r, &jp);
  CHECK_EQ_INT(r->fin, RT_FINISH_STOP);
  CHECK_EQ_INT(r->stop_index, 1);
  CHECK_EQ_INT(r->len, (size_t)(off[k + 1] - 2));
  CHECK(r->len <= (size_t)fl && !memcmp(r->text, full, r->len));
  CHECK_EQ_INT(r->n_gen, k + 2);      /* sampled through the token completing the stop */
  CHECK_EQ_INT(r->ntok, k + 1);       /* token k is cut by the stop and reported; k+1 is not */
  CHECK_EQ_INT(r->bad_deltas, 0);
  res_free(r);

  /* a stop whose prefix appears (held back) but that never completes: the whole text comes out */
  char partial[64];
  snprintf(partial, sizeof partial, "%.*sXYZ", plen[3], pieces[3]);
  const char *stops2[1] = {partial};
  r = res_new();
  jp.stops = stops2;
  jp.n_stops = 1;
  run_one(s, r, &jp);
  CHECK_EQ_INT(r->fin, RT_FINISH_LENGTH);
  CHECK_STR(r->text, full);
  CHECK_EQ_INT(r->ntok, nref);
  res_free(r);

  /* a stop matching the whole first token: nothing at all is released */
  char first[64];
  snprintf(first, sizeof first, "%.*s", plen[0], pieces[0]);
  const char *stops3[1] = {first};
  r = res_new();
  jp.stops = stops3;
  run_one(s, r, &jp);
  CHECK_EQ_INT(r->fin, RT_FINISH_STOP);
  CHECK_EQ_INT(r->len, 0);
  CHECK_EQ_INT(r->ntok, 0);
  CHECK_EQ_INT(r->n_gen, 1);
  res_free(r);
  rt_sched_free(s);
}

static void test_eog(void) {
  /* tiny-llama's greedy continuation of this prompt ends with an EOG token */
  slm_token p[64];
  int np = tok_text(m_tl, "Once upon a time", p, 64);
  slm_token ref[MAXGEN];
  int nref = ref_run(m_tl, p, np, 200, NULL, 256, ref, NULL, NULL);
  CHECK_MSG(nref > 0 && nref < 200 && slm_token_is_eog(m_tl, ref[nref - 1]),
            "the reference does not end with EOG (%d tokens)", nref);
  struct rt_sched *s = sched_new(m_tl, 2, 2, 256, 0);
  if (!s) return;
  struct res *r = res_new();
  struct rt_job_params jp = greedy_params(p, np, 200);
  run_one(s, r, &jp);
  CHECK_EQ_INT(r->fin, RT_FINISH_EOG);
  CHECK_EQ_INT(r->n_gen, nref);               /* the EOG token counts */
  CHECK_EQ_INT(r->ntok, nref - 1);            /* but is not text */
  CHECK(same_tokens(r->toks, r->ntok, ref, nref - 1));
  /* the text: the bytes of the tokens, ill-formed parts as U+FFFD */
  uint8_t raw[4096];
  size_t rl = 0;
  for (int i = 0; i < nref - 1; i++) {
    int32_t n = slm_token_to_piece(m_tl, ref[i], (char *)raw + rl, (int32_t)(sizeof raw - rl), false);
    if (n > 0) rl += (size_t)n;
  }
  char want[3 * 4096];
  size_t nrep = 0, wl = u8_sanitize(raw, rl, want, &nrep);
  CHECK_EQ_INT(r->len, wl);
  CHECK(r->len == wl && !memcmp(r->text, want, wl));
  CHECK_EQ_INT(r->bad_deltas, 0);
  res_free(r);

  /* ignore_eos: the EOG token can no longer be sampled, so the same greedy run goes on to
   * max_tokens; until the EOG step it is the reference, and no EOG token ever comes out */
  struct res *r2 = res_new();
  struct rt_job_params jp2 = greedy_params(p, np, nref + 20);
  jp2.ignore_eos = true;
  run_one(s, r2, &jp2);
  CHECK_EQ_INT(r2->fin, RT_FINISH_LENGTH);
  CHECK_EQ_INT(r2->n_gen, nref + 20);
  CHECK_EQ_INT(r2->ntok, nref + 20);
  CHECK(same_tokens(r2->toks, nref - 1, ref, nref - 1));
  int eogs = 0;
  for (int i = 0; i < r2->ntok; i++) eogs += slm_token_is_eog(m_tl, r2->toks[i]);
  CHECK_EQ_INT(eogs, 0);
  res_free(r2);
  rt_sched_free(s);
}

static void test_prefix_reuse(void) {
  slm_token p[64];
  int np = tok_text(m_st, "Once upon a time", p, 64);
  slm_token g1[64];
  int n1 = ref_run(m_st, p, np, 16, NULL, 256, g1, NULL, NULL);
  struct rt_sched *s = sched_new(m_st, 2, 4, 256, 0);
  if (!s) return;
  struct res *r = res_new();
  struct rt_job_params jp = greedy_params(p, np, 16);
  run_one(s, r, &jp);
  CHECK(same_tokens(r->toks, r->ntok, g1, n1));
  CHECK_EQ_INT(r->n_cached, 0);
  res_free(r);

  /* the prompt extends the first job's: its prompt and first 4 generated tokens are in a slot
   * (the 16th generated token was never fed) */
  slm_token p2[64];
  memcpy(p2, p, (size_t)np * sizeof *p);
  memcpy(p2 + np, g1, 4 * sizeof *g1);
  p2[np + 4] = g1[4] == 400 ? 401 : 400;
  p2[np + 5] = 300;
  int np2 = np + 6;
  slm_token g2[64];
  int n2 = ref_run(m_st, p2, np2, 12, NULL, 256, g2, NULL, NULL);
  r = res_new();
  jp = greedy_params(p2, np2, 12);
  run_one(s, r, &jp);
  CHECK_EQ_INT(r->n_cached, np + 4);
  CHECK_MSG(same_tokens(r->toks, r->ntok, g2, n2), "tokens with a reused prefix differ");
  res_free(r);

  /* the same prompt again: all but the last prompt token reused */
  r = res_new();
  jp = greedy_params(p, np, 16);
  run_one(s, r, &jp);
  CHECK_EQ_INT(r->n_cached, np - 1);
  CHECK_MSG(same_tokens(r->toks, r->ntok, g1, n1), "tokens of an identical prompt differ");
  res_free(r);

  /* p2 again: job 3 took the slot holding p2 (its longest prefix: all of p, against an empty
   * slot) and left p + 15 fed tokens there, so p2 finds np + 4 again */
  r = res_new();
  jp = greedy_params(p2, np2, 12);
  run_one(s, r, &jp);
  CHECK_EQ_INT(r->n_cached, np + 4);
  CHECK(same_tokens(r->toks, r->ntok, g2, n2));
  res_free(r);
  struct rt_sched_stats st;
  rt_sched_stats(s, &st);
  CHECK_EQ_U64(st.cached_tokens, (uint64_t)(np + 4 + np - 1 + np + 4));
  rt_sched_free(s);
}

static void test_chunked_prefill(void) {
  slm_token pa[64], pb[512];
  int na = tok_text(m_st, "Tim had a red ball", pa, 64);
  const char *longtext =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
      "park. One day, she saw a big, red ball. She wanted to play with it, but it was too high. "
      "Lily's mom said, let's go to the park and play with the ball together.";
  int nb = tok_text(m_st, longtext, pb, 512);
  CHECK_MSG(nb >= 64, "long prompt has %d tokens", nb);
  slm_token ra[MAXGEN], rb[64];
  int nra = ref_run(m_st, pa, na, 400, NULL, 512, ra, NULL, NULL);
  int nrb = ref_run(m_st, pb, nb, 6, NULL, 512, rb, NULL, NULL);
  struct rt_sched *s = sched_new(m_st, 2, 2, 512, 8);
  if (!s) return;
  struct res *a = res_new(), *b = res_new();
  pthread_mutex_lock(&g_mu);
  g_log_sched = s;
  g_batch_n = 0;
  pthread_mutex_unlock(&g_mu);
  /* A's prompt takes one step; B's (>= 8 chunks) is fed while A decodes */
  struct rt_job_params jp = greedy_params(pa, na, 400);
  CHECK_EQ_INT(rt_sched_submit(s, &jp, &a->j), 0);
  jp = greedy_params(pb, nb, 6);
  CHECK_EQ_INT(rt_sched_submit(s, &jp, &b->j), 0);
  struct res *rs[2] = {a, b};
  pump_all(rs, 2);
  pthread_mutex_lock(&g_mu);
  g_log_sched = NULL;
  /* B's prefill: ceil(nb / 8) steps of 8 prompt tokens, each also carrying A's token */
  int interleaved = 0;
  for (size_t i = 0; i < g_batch_n; i++) interleaved += g_batch_log[i] == 9;
  size_t logged = g_batch_n;
  pthread_mutex_unlock(&g_mu);
  CHECK_MSG(interleaved >= nb / 8 - 2, "%d steps of 1 decode + 8 prompt tokens (of %zu logged), "
            "want >= %d", interleaved, logged, nb / 8 - 2);
  CHECK_MSG(same_tokens(a->toks, a->ntok, ra, nra), "the decoding job changed during a prefill");
  CHECK_MSG(same_tokens(b->toks, b->ntok, rb, nrb), "the chunked prompt gives other tokens");
  CHECK_EQ_INT(a->fin, RT_FINISH_LENGTH);
  CHECK_EQ_INT(b->fin, RT_FINISH_LENGTH);
  res_free(a);
  res_free(b);
  rt_sched_free(s);
}

static void test_cancel_and_limits(void) {
  slm_token pa[64], pb[64], pc[64];
  int na = tok_text(m_st, "The sun was hot", pa, 64);
  int nb = tok_text(m_st, "Mom said", pb, 64);
  int nc = tok_text(m_st, "The old man", pc, 64);
  slm_token rb[64];
  int nrb = ref_run(m_st, pb, nb, 8, NULL, 2048, rb, NULL, NULL);

  /* one slot, queue of 2: A runs, B and C wait, D is refused */
  struct rt_sched *s = sched_new(m_st, 1, 2, 2048, 0);
  if (!s) return;
  struct res *a = res_new(), *b = res_new(), *c = res_new(), *d = res_new();
  struct rt_job_params ja = greedy_params(pa, na, 2000), jb = greedy_params(pb, nb, 8),
                       jc = greedy_params(pc, nc, 8);
  CHECK_EQ_INT(rt_sched_submit(s, &ja, &a->j), 0);
  CHECK_EQ_INT(rt_sched_submit(s, &jb, &b->j), 0);
  CHECK_EQ_INT(rt_sched_submit(s, &jc, &c->j), 0);
  CHECK_EQ_INT(rt_sched_submit(s, &jc, &d->j), -EAGAIN);
  CHECK(d->j == NULL);
  struct rt_sched_stats st;
  rt_sched_stats(s, &st);
  CHECK_EQ_U64(st.jobs_rejected, 1);
  while (!a->done && a->ntok < 3)
    if (!pump(a)) wait_notify();
  rt_sched_stats(s, &st);
  CHECK_EQ_INT(st.queued, 2);
  CHECK_EQ_INT(st.active, 1);

  /* C cancelled while queued: it ends at once, A still running */
  rt_job_cancel(c->j);
  struct res *rc1[1] = {c};
  pump_all(rc1, 1);
  CHECK_EQ_INT(c->fin, RT_FINISH_CANCELLED);
  CHECK_EQ_INT(c->n_gen, 0);
  pump(a);
  CHECK(!a->done);

  /* A cancelled between two steps (from notify): no further step runs it, B gets the slot */
  rt_sched_stats(s, &st);
  pthread_mutex_lock(&g_mu);
  g_cancel_sched = s;
  g_cancel_after = st.generated_tokens + 3;
  g_cancel_job = a->j;
  pthread_mutex_unlock(&g_mu);
  struct res *rab[2] = {a, b};
  pump_all(rab, 2);
  rt_job_cancel(a->j);   /* idempotent, and harmless once finished */
  CHECK_EQ_INT(a->fin, RT_FINISH_CANCELLED);
  pthread_mutex_lock(&g_mu);
  CHECK(g_cancel_job == NULL);
  CHECK_MSG((uint64_t)a->n_gen == g_cancel_gen, "cancelled job went on: %d tokens, cancelled at %llu",
            a->n_gen, (unsigned long long)g_cancel_gen);
  pthread_mutex_unlock(&g_mu);
  CHECK_EQ_INT(b->fin, RT_FINISH_LENGTH);
  CHECK_MSG(same_tokens(b->toks, b->ntok, rb, nrb), "the job after a cancel differs");
  CHECK(b->queued_us > 0);
  /* a slot and the queue are free again */
  CHECK_EQ_INT(rt_sched_submit(s, &jc, &d->j), 0);
  struct res *rd[1] = {d};
  pump_all(rd, 1);
  CHECK_EQ_INT(d->fin, RT_FINISH_LENGTH);
  res_free(a);
  res_free(b);
  res_free(c);
  res_free(d);

  /* bad parameters */
  struct rt_job *j = NULL;
  struct rt_job_params bad = greedy_params(pa, 0, 8);
  CHECK_EQ_INT(rt_sched_submit(s, &bad, &j), -EINVAL);
  bad = greedy_params(pa, na, 0);
  CHECK_EQ_INT(rt_sched_submit(s, &bad, &j), -EINVAL);
  slm_token oob[2] = {1, 512};
  bad = greedy_params(oob, 2, 8);
  CHECK_EQ_INT(rt_sched_submit(s, &bad, &j), -EINVAL);
  bad = greedy_params(pa, na, 8);
  bad.top_logprobs = 21;
  CHECK_EQ_INT(rt_sched_submit(s, &bad, &j), -EINVAL);
  bad.top_logprobs = 2;
  bad.logprobs = false;
  CHECK_EQ_INT(rt_sched_submit(s, &bad, &j), -EINVAL);
  bad = greedy_params(pa, na, 8);
  const char *badstop[1] = {"\xC3"};
  bad.stops = badstop;
  bad.n_stops = 1;
  CHECK_EQ_INT(rt_sched_submit(s, &bad, &j), -EINVAL);
  CHECK(j == NULL);
  rt_sched_free(s);

  /* a prompt of n_ctx tokens does not fit; n_ctx - 1 does and ends on the full context */
  s = sched_new(m_st, 1, 1, 64, 0);
  if (!s) return;
  slm_token lp[64];
  for (int i = 0; i < 64; i++) lp[i] = pa[i % na];
  bad = greedy_params(lp, 64, 8);
  CHECK_EQ_INT(rt_sched_submit(s, &bad, &j), -E2BIG);
  slm_token rl[8];
  bool full = false;
  int nrl = ref_run(m_st, lp, 63, 8, NULL, 64, rl, NULL, &full);
  CHECK(full && nrl == 2);
  struct res *r = res_new();
  bad = greedy_params(lp, 63, 8);
  run_one(s, r, &bad);
  CHECK_EQ_INT(r->fin, RT_FINISH_CONTEXT);
  CHECK_EQ_INT(r->n_gen, 2);
  CHECK(same_tokens(r->toks, r->ntok, rl, nrl));
  res_free(r);
  rt_sched_free(s);
}

static void test_drain_and_free(void) {
  slm_token pa[64], pb[64];
  int na = tok_text(m_st, "A big cat sat on", pa, 64);
  int nb = tok_text(m_st, "In the park", pb, 64);
  slm_token ra[MAXGEN];
  int nra = ref_run(m_st, pa, na, 400, NULL, 512, ra, NULL, NULL);
  struct rt_sched *s = sched_new(m_st, 1, 4, 512, 0);
  if (!s) return;
  struct res *a = res_new(), *b = res_new(), *c = res_new();
  struct rt_job_params ja = greedy_params(pa, na, 400), jb = greedy_params(pb, nb, 8);
  CHECK_EQ_INT(rt_sched_submit(s, &ja, &a->j), 0);
  CHECK_EQ_INT(rt_sched_submit(s, &jb, &b->j), 0);
  CHECK_EQ_INT(rt_sched_submit(s, &jb, &c->j), 0);
  while (!a->done && a->ntok < 2)
    if (!pump(a)) wait_notify();
  rt_sched_drain(s);
  /* queued jobs are finished when drain returns */
  CHECK(pump(b) && b->fin == RT_FINISH_SHUTDOWN);
  CHECK(pump(c) && c->fin == RT_FINISH_SHUTDOWN);
  CHECK_EQ_INT(b->n_gen, 0);
  struct rt_job *j = NULL;
  CHECK_EQ_INT(rt_sched_submit(s, &jb, &j), -ESHUTDOWN);
  struct res *ra1[1] = {a};
  pump_all(ra1, 1);
  CHECK_EQ_INT(a->fin, RT_FINISH_LENGTH);
  CHECK(same_tokens(a->toks, a->ntok, ra, nra));
  res_free(a);
  res_free(b);
  res_free(c);
  rt_sched_free(s);

  /* free with jobs running, queued and held by the loop: they end cancelled, stay readable */
  s = sched_new(m_st, 2, 4, 256, 0);
  if (!s) return;
  struct res *rs[4];
  for (int i = 0; i < 4; i++) {
    rs[i] = res_new();
    struct rt_job_params jp = greedy_params(pa, na, 200);
    CHECK_EQ_INT(rt_sched_submit(s, &jp, &rs[i]->j), 0);
  }
  const slm_token *in[1] = {pb};
  int32_t len[1] = {nb};
  struct rt_job *ej = NULL;
  CHECK_EQ_INT(rt_sched_submit_embed(s, in, len, 1, &ej), 0);
  while (!rs[0]->done && rs[0]->ntok < 2)
    if (!pump(rs[0])) wait_notify();
  rt_job_release(rs[3]->j);   /* released before the free: the scheduler frees it */
  rs[3]->j = NULL;
  rt_sched_free(s);
  for (int i = 0; i < 3; i++) {
    CHECK(pump(rs[i]) || rs[i]->done);
    CHECK_EQ_INT(rs[i]->fin, RT_FINISH_CANCELLED);
    rt_job_cancel(rs[i]->j);   /* harmless after the scheduler is gone */
  }
  struct rt_job_delta d;
  rt_job_take(ej, &d);
  CHECK(d.finish == RT_FINISH_CANCELLED || d.finish == RT_FINISH_EOG);
  rt_job_release(ej);
  for (int i = 0; i < 4; i++) res_free(rs[i]);
}

/* Sampled text on a byte-level vocabulary (byte tokens, tokens ending in a UTF-8 lead byte):
 * every delta is valid UTF-8 and all of it is the tokens' bytes with ill-formed parts replaced. */
static void test_utf8(void) {
  struct rt_sched *s = sched_new(m_tq, 8, 0, 256, 0);
  if (!s) return;
  struct res *rs[8];
  slm_token p[4] = {300, 40, 200, 77};
  for (int i = 0; i < 8; i++) {
    rs[i] = res_new();
    struct rt_job_params jp = greedy_params(p, 4, 160);
    jp.sampling.temperature = 3.0f;
    jp.sampling.top_k = 0;
    jp.sampling.top_p = 1.0f;
    jp.sampling.min_p = 0.0f;
    jp.sampling.seed = 1000 + (uint64_t)i;
    CHECK_EQ_INT(rt_sched_submit(s, &jp, &rs[i]->j), 0);
  }
  pump_all(rs, 8);
  size_t split = 0, repl = 0;
  static uint8_t raw[MAXGEN * 8];
  static char want[MAXGEN * 24];
  static int bound[MAXGEN * 8 + 1];
  for (int i = 0; i < 8; i++) {
    struct res *r = rs[i];
    CHECK_EQ_INT(r->bad_deltas, 0);
    CHECK(r->deltas > 1);
    size_t rl = 0;
    memset(bound, 0, sizeof bound);
    for (int t = 0; t < r->ntok; t++) {
      int32_t n = slm_token_to_piece(m_tq, r->toks[t], (char *)raw + rl, 64, false);
      if (n > 0) rl += (size_t)n;
      bound[rl] = 1;   /* a token boundary after byte rl - 1 */
    }
    size_t nrep = 0, wl = u8_sanitize(raw, rl, want, &nrep);
    CHECK_MSG(r->len == wl && !memcmp(r->text, want, wl), "job %d: text is not the sanitized bytes", i);
    repl += nrep;
    for (size_t k = 0; k < rl;) {   /* well-formed characters that span a token boundary */
      size_t sub, cl = u8_char(raw + k, rl - k, &sub);
      if (cl > 1)
        for (size_t q = k + 1; q < k + cl; q++)
          if (bound[q]) {
            split++;
            break;
          }
      k += cl ? cl : sub;
    }
  }
  printf("utf8: %zu characters split over tokens, %zu replacements\n", split, repl);
  CHECK_MSG(split >= 3, "the test saw only %zu split characters", split);
  CHECK(repl >= 3);
  for (int i = 0; i < 8; i++) res_free(rs[i]);
  rt_sched_free(s);
}

static void test_logprobs(void) {
  slm_token p[64];
  int np = tok_text(m_st, "Lily and Tom went to", p, 64);
  const int nv = slm_n_vocab(m_st);
  float *lg = malloc((size_t)nv * 24 * sizeof *lg);
  struct rt_sched *s = sched_new(m_st, 2, 2, 256, 0);
  if (!s || !lg) return;
  for (int mode = 0; mode < 2; mode++) {   /* greedy; then temperature 0.7 (seeded) */
    struct slm_sampler_params sp = slm_sampler_default_params();
    sp.temperature = mode ? 0.7f : 0.0f;
    sp.seed = 7;
    slm_token ref[24];
    int nref = ref_run(m_st, p, np, 20, mode ? &sp : NULL, 256, ref, lg, NULL);
    struct res *r = res_new();
    struct rt_job_params jp = greedy_params(p, np, 20);
    jp.sampling = sp;
    jp.top_logprobs = 5;
    run_one(s, r, &jp);
    CHECK(same_tokens(r->toks, r->ntok, ref, nref));
    float temp = mode ? 0.7f : 1.0f;
    double worst = 0;
    for (int i = 0; i < r->ntok && i < nref; i++) {
      const float *l = lg + (size_t)i * nv;
      double mx = -INFINITY, sum = 0;
      for (int k = 0; k < nv; k++) mx = fmax(mx, l[k] / temp);
      for (int k = 0; k < nv; k++) sum += exp(l[k] / temp - mx);
      double lse = mx + log(sum);
      double want = l[r->toks[i]] / temp - lse;
      worst = fmax(worst, fabs(want - r->lp[i]));
      CHECK_EQ_INT(r->n_top[i], 5);
      for (int k = 0; k < 5; k++) {
        const struct slm_token_prob *tp = &r->top[i][k];
        worst = fmax(worst, fabs(tp->logprob - (l[tp->token] / temp - lse)));
        if (k) CHECK(tp->logprob <= r->top[i][k - 1].logprob);
      }
      if (!mode) CHECK_EQ_INT(r->top[i][0].token, r->toks[i]);
      CHECK_EQ_INT(r->top[i][0].token, argmax(l, nv));
    }
    CHECK_MSG(worst < 1e-4, "logprob error %g", worst);
    res_free(r);
  }
  free(lg);
  rt_sched_free(s);
}

/* The pooled embedding of one input in its own context, normalized. */
static void ref_embed(const struct slm_model *m, const slm_token *t, int n, float *out) {
  struct slm_context_params cp = slm_context_default_params();
  cp.n_ctx = 256;
  cp.n_threads = 2;
  cp.pooling = SLM_POOL_MEAN;
  struct slm_context *c = slm_context_new(m, &cp);
  struct slm_batch b = slm_batch_one(t, n);
  int E = slm_n_embd(m);
  memset(out, 0, (size_t)E * sizeof *out);
  if (c && slm_decode(c, &b) == 0) {
    const float *e = slm_get_embeddings(c, 0);
    double ss = 0;
    for (int i = 0; i < E; i++) ss += (double)e[i] * e[i];
    for (int i = 0; i < E; i++) out[i] = (float)(e[i] / sqrt(ss));
  }
  slm_context_free(c);
}

static void test_embeddings(void) {
  slm_token in[3][128];
  int32_t len[3];
  len[0] = tok_text(m_st, "The dog ran", in[0], 128);
  len[1] = tok_text(m_st, "Lily saw a big red ball in the park and she was happy", in[1], 128);
  len[2] = tok_text(m_st, "Once upon a time, there was a little girl named Lily. She loved to "
                    "play outside in the park with her friends every day.", in[2], 128);
  CHECK(len[2] > 16);   /* longer than the chunk below: embedded in chunks while streams run */
  int E = slm_n_embd(m_st);
  float ref[3][64];
  CHECK(E <= 64);
  for (int i = 0; i < 3; i++) ref_embed(m_st, in[i], len[i], ref[i]);

  slm_token pa[64], pb[64];
  int na = tok_text(m_st, "Sam liked to eat", pa, 64), nb = tok_text(m_st, "The fish swam", pb, 64);
  slm_token ra[MAXGEN], rb[MAXGEN];
  int nra = ref_run(m_st, pa, na, 200, NULL, 256, ra, NULL, NULL);
  int nrb = ref_run(m_st, pb, nb, 200, NULL, 256, rb, NULL, NULL);
  struct rt_sched *s = sched_new(m_st, 2, 4, 256, 16);
  if (!s) return;
  struct res *a = res_new(), *b = res_new();
  struct rt_job_params jp = greedy_params(pa, na, 200);
  CHECK_EQ_INT(rt_sched_submit(s, &jp, &a->j), 0);
  jp = greedy_params(pb, nb, 200);
  CHECK_EQ_INT(rt_sched_submit(s, &jp, &b->j), 0);
  while (!a->done && a->ntok < 2)
    if (!pump(a)) wait_notify();
  const slm_token *ins[3] = {in[0], in[1], in[2]};
  struct rt_job *ej = NULL;
  CHECK_EQ_INT(rt_sched_submit_embed(s, ins, len, 3, &ej), 0);
  int32_t ne = -1;
  CHECK(rt_job_embeddings(ej, &ne) == NULL);
  struct rt_job_delta d = {0};
  double t0 = now_s();
  while (now_s() - t0 < 60) {
    rt_job_take(ej, &d);
    if (d.finish != RT_FINISH_NONE) break;
    wait_notify();
  }
  CHECK_EQ_INT(d.finish, RT_FINISH_EOG);
  const float *v = rt_job_embeddings(ej, &ne);
  CHECK_EQ_INT(ne, E);
  CHECK(v != NULL);
  for (int i = 0; v && i < 3; i++) {
    double ss = 0, worst = 0;
    for (int k = 0; k < E; k++) {
      ss += (double)v[i * E + k] * v[i * E + k];
      worst = fmax(worst, fabs(v[i * E + k] - ref[i][k]));
    }
    CHECK_NEAR(sqrt(ss), 1.0, 1e-5);
    CHECK_MSG(worst <= 1e-5, "input %d: embedding differs by %g", i, worst);
  }
  rt_job_release(ej);
  struct res *rs[2] = {a, b};
  pump_all(rs, 2);
  CHECK_MSG(same_tokens(a->toks, a->ntok, ra, nra), "stream A changed by embeddings");
  CHECK_MSG(same_tokens(b->toks, b->ntok, rb, nrb), "stream B changed by embeddings");
  CHECK(a->decode_us > 0);

  /* the same inputs with no stream running: one batch */
  CHECK_EQ_INT(rt_sched_submit_embed(s, ins, len, 3, &ej), 0);
  t0 = now_s();
  while (now_s() - t0 < 60) {
    rt_job_take(ej, &d);
    if (d.finish != RT_FINISH_NONE) break;
    wait_notify();
  }
  v = rt_job_embeddings(ej, &ne);
  for (int i = 0; v && i < 3; i++) {
    double worst = 0;
    for (int k = 0; k < E; k++) worst = fmax(worst, fabs(v[i * E + k] - ref[i][k]));
    CHECK_MSG(worst <= 1e-5, "input %d (one batch): embedding differs by %g", i, worst);
  }
  CHECK(v != NULL);
  rt_job_release(ej);

  /* errors */
  int32_t badlen[1] = {257};
  CHECK_EQ_INT(rt_sched_submit_embed(s, ins, badlen, 1, &ej), -E2BIG);
  CHECK_EQ_INT(rt_sched_submit_embed(s, ins, len, 0, &ej), -EINVAL);
  res_free(a);
  res_free(b);
  rt_sched_free(s);

  struct rt_sched_params sp = rt_sched_default_params();
  sp.model = m_st;
  sp.n_threads = 1;
  sp.n_ctx = 64;
  sp.embeddings = false;
  char err[256];
  s = rt_sched_new(&sp, err, sizeof err);
  CHECK(s != NULL);
  if (s) CHECK_EQ_INT(rt_sched_submit_embed(s, ins, len, 1, &ej), -ENOTSUP);
  rt_sched_free(s);
}

static void test_params(void) {
  char err[256] = "";
  struct rt_sched_params sp = rt_sched_default_params();
  CHECK_EQ_INT(sp.n_slots, 4);
  CHECK_EQ_INT(sp.n_ctx, 4096);
  CHECK(rt_sched_new(&sp, err, sizeof err) == NULL);   /* no model */
  CHECK(strstr(err, "model") != NULL);
  sp.model = m_st;
  sp.n_slots = 0;
  CHECK(rt_sched_new(&sp, err, sizeof err) == NULL);
  sp.n_slots = 8;
  sp.n_batch = 4;
  CHECK(rt_sched_new(&sp, err, sizeof err) == NULL);
  CHECK(strstr(err, "n_batch") != NULL);
  rt_sched_free(NULL);
  rt_job_release(NULL);
}

int main(int argc, char **argv) {
  char err[256];
  m_st = slm_model_load(check_shared_path("models/stories260K.gguf"), NULL, err, sizeof err);
  CHECK_MSG(m_st != NULL, "%s", err);
  m_tl = slm_model_load(check_shared_path("models/tiny-llama-Q8_0.gguf"), NULL, err, sizeof err);
  CHECK_MSG(m_tl != NULL, "%s", err);
  m_tq = slm_model_load(check_shared_path("models/tiny-qwen2-Q8_0.gguf"), NULL, err, sizeof err);
  CHECK_MSG(m_tq != NULL, "%s", err);
  if (!m_st || !m_tl || !m_tq) return check_done();
  const char *only = argc > 1 ? argv[1] : NULL;
#define RUN(name, call)                                   \
  do {                                                    \
    if (!only || !strcmp(only, name)) {                   \
      double t0_ = now_s();                               \
      call;                                               \
      printf("%-16s %.2f s\n", name, now_s() - t0_);      \
      fflush(stdout);                                     \
    }                                                     \
  } while (0)
  RUN("params", test_params());
  RUN("single", test_single_greedy());
  RUN("concurrent", {
    test_concurrent(m_st, true, 16, 16, 40);
    test_concurrent(m_st, true, 4, 16, 40);
    test_concurrent(m_tq, false, 16, 16, 32);
    test_concurrent(m_tl, false, 4, 16, 32);
  });
  RUN("seed", test_sampled_seed());
  RUN("stops", test_stops());
  RUN("eog", test_eog());
  RUN("prefix", test_prefix_reuse());
  RUN("chunked", test_chunked_prefill());
  RUN("cancel", test_cancel_and_limits());
  RUN("drain", test_drain_and_free());
  RUN("utf8", test_utf8());
  RUN("logprobs", test_logprobs());
  RUN("embeddings", test_embeddings());
  slm_model_free(m_st);
  slm_model_free(m_tl);
  slm_model_free(m_tq);
  return check_done();
}
