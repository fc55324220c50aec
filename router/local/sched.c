/*
 * sched.c: the local-execution scheduler (sched.h): one thread that owns the engine contexts of
 * one model and runs many generation and embedding jobs at once.
 *
 * DESIGN. The loop thread submits jobs into a FIFO under s->mu; the scheduler thread runs
 * iterations of: take cancellations -> admit queued jobs into free slots -> one generation step
 * (one slm_decode over every running sequence) -> one embedding batch (on the second context) ->
 * notify. With nothing running or queued it sleeps on s->cv (submit, cancel, drain and free
 * signal it).
 *
 * A generation step's batch: first one token per decoding sequence (its last sampled token),
 * then prompt chunks of the prefilling jobs (at most prefill_chunk tokens each, round-robin from
 * the slot after the one served first last time) until n_batch tokens. Logits are asked only for
 * rows that are sampled: every decode token and the last prompt token of a job whose prompt ends
 * in this step, so at most n_slots rows (the context's n_outputs). slm_decode's results do not
 * depend on the batch composition (its kernels are batch-invariant, forward.c and kernels.h), so a
 * job's greedy tokens are the same alone, batched or prefilled in chunks.
 *
 * Slots remember the tokens in their KV sequence (prompt + fed generated tokens); admission puts a
 * job in the free slot with the longest common prefix (ties and no match: least recently used),
 * drops the rest with slm_kv_remove and recomputes at least the last prompt token (its logits).
 *
 * Text path of a sampled token (scheduler thread only, no lock): the piece's bytes go through a
 * streaming UTF-8 decoder (a character is emitted when complete; each maximal ill-formed subpart
 * becomes U+FFFD), then into the job's hold buffer, where slm_stop_scan decides how much can be
 * released (held: the tail that could still grow into a stop string; never: a stop string and
 * what follows). Generated tokens wait in a pending list until all their text is released (with
 * logprobs they are reported with it). Then the job's outbox mutex is taken once per step to
 * append the released text and tokens; rt_job_take swaps the outbox buffers with the consumer's
 * (no copy), so the capacity of both is reused and the steady state allocates nothing.
 *
 * Locks: s->mu guards the queues, live count and flags; job->mu guards the outbox. The only
 * nesting is job->mu -> s->mu (rt_job_cancel): nothing takes a job's mutex while holding s->mu.
 * That nesting is also what makes cancel safe against rt_sched_free: a job not yet finished
 * (checked under job->mu) still has its scheduler, and the scheduler marks every job finished
 * under job->mu before it goes away.
 */
#include "router/local/sched.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_CHUNK 128
#define DEFAULT_BATCH 512
#define MAX_TOP 20            /* top_logprobs cap (the OpenAI API's) */
#define MAX_STOPS 16          /* stop strings per job */
#define MAX_STOP_LEN 256      /* bytes per stop string */
#define MAX_EMBD_INPUTS 2048  /* inputs per embedding job (the OpenAI API's cap) */
#define EMBD_SEQ 8            /* sequences of the embedding context (inputs per batch) */

/* ---------------------------------------------------------------- jobs */

enum job_kind { JOB_GEN, JOB_EMBD };
enum job_state { JS_QUEUED, JS_PREFILL, JS_DECODE, JS_DONE };

/* A generated token whose text is not all released yet. START/END: offsets of its text in the
 * job's output stream (END unknown while its bytes are an incomplete UTF-8 character). */
struct ptok {
  slm_token tok;
  float logprob;
  bool end_known;
  uint64_t start, end;
};

struct rt_job {
  atomic_int refs;                 /* the loop's + the scheduler's (until it finishes the job) */
  atomic_bool cancel;
  struct rt_sched *s;              /* touched by cancel only while the job is unfinished */
  enum job_kind kind;
  struct rt_job *next;             /* queue link (s->mu) */

  /* parameters, immutable after submit */
  slm_token *prompt;
  int32_t n_prompt, max_tokens;
  struct slm_sampler_params sp;
  char **stops;
  size_t n_stops;
  bool logprobs;
  bool ignore_eos;                 /* EOG tokens are masked before sampling */
  struct slm_matcher *mt;          /* structured output: where the text is in the constraint */
  int32_t n_top;                   /* alternatives per token (0 without logprobs) */
  slm_token *in_tok;               /* embedding inputs, concatenated */
  int32_t *in_off;                 /* [n_inputs + 1] */
  size_t n_inputs;
  float *embd;                     /* [n_inputs][n_embd] results */
  int32_t n_embd;

  /* scheduler thread only */
  enum job_state st;
  int slot;
  int32_t n_fed;                   /* prompt tokens in the KV cache */
  slm_token next_tok;              /* sampled, fed in the next step */
  int32_t n_gen, n_cached;
  int32_t b_first, b_n;            /* rows of this step's batch */
  struct slm_sampler *smp;
  uint8_t u8[4];                   /* incomplete UTF-8 character */
  int n_u8, u8_need;
  char *hold;                      /* text not released yet */
  size_t hold_len, hold_cap;
  uint64_t text_abs, released_abs; /* bytes emitted into the stream / released from it */
  struct ptok *pt;                 /* pending tokens, oldest first */
  struct slm_token_prob *ptop;     /* [pt_cap][n_top] their alternatives */
  size_t pt_len, pt_cap;
  int64_t t_submit, t_slot, t_first, t_last;
  size_t e_next;                   /* embedding: next input */
  int32_t e_done;                  /* tokens of input e_next already decoded (chunked input) */
  /* staged for this step's outbox update */
  size_t rel_text;                 /* bytes at the front of hold to release */
  size_t rel_tok;                  /* tokens at the front of pt to release */
  enum rt_finish fin;
  int fin_stop;
  const char *fin_err;

  /* outbox (mu) */
  pthread_mutex_t mu;
  char *o_text;
  size_t o_len, o_cap;
  struct rt_job_token *o_tok;
  size_t o_ntok, o_tok_cap;
  struct slm_token_prob *o_top;    /* [o_tok_cap][n_top] */
  enum rt_finish finish;
  int stop_index;
  char err[192];
  int32_t o_cached, o_gen;
  int64_t o_queued, o_prefill, o_decode;

  /* consumer side (the loop thread) */
  char *c_text;
  size_t c_cap;
  struct rt_job_token *c_tok;
  size_t c_tok_cap;
  struct slm_token_prob *c_top;
  bool c_finish_seen;
  bool c_embd_ok;
};

/* ---------------------------------------------------------------- scheduler */

struct slot {
  struct rt_job *job;              /* NULL: free */
  slm_token *cache;                /* [n_ctx] tokens in this KV sequence */
  int32_t n_cache;
  uint64_t last_used;              /* step counter at the last assignment / release */
};

struct rt_sched {
  struct rt_sched_params p;
  const struct slm_model *m;
  struct slm_context *ctx;         /* generation: n_seq = n_slots */
  struct slm_context *ectx;        /* embeddings (mean pooling), created on the first job */
  bool ectx_failed;
  uint32_t n_ctx, n_batch, chunk, n_slots;
  int32_t n_vocab, n_embd;
  struct slot *slots;
  slm_token *b_tok;                /* [n_batch] the step's batch */
  int32_t *b_seq;
  int8_t *b_logits;
  char *piece;                     /* [piece_cap] one token's bytes */
  int32_t piece_cap;
  slm_token *eog;                  /* the vocabulary's end-of-generation tokens (ignore_eos) */
  int32_t n_eog;
  float *masked;                   /* [n_vocab] a logits row with them masked */
  struct slm_token_prob top[1 + MAX_TOP];
  uint32_t rr;                     /* prefill round-robin: first slot to look at */
  uint32_t n_active;               /* jobs in slots (scheduler thread; read under mu) */
  uint64_t step_no;
  unsigned seen_cancel;
  struct rt_job *ecur;             /* embedding job being run */
  struct rt_job *admit[256];       /* popped this iteration */

  pthread_t thread;
  bool thread_ok;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  /* guarded by mu */
  struct rt_job *q_head, *q_tail;  /* generation jobs waiting for a slot */
  struct rt_job *eq_head, *eq_tail;   /* embedding jobs waiting */
  uint32_t n_q, n_eq;
  uint32_t n_live;                 /* accepted jobs not finished */
  unsigned cancel_gen;             /* bumped by rt_job_cancel */
  bool stop, draining, wake_notify;

  /* stats */
  atomic_uint st_queued, st_active, st_last_batch;
  atomic_ullong st_steps, st_batch_tokens, st_prompt, st_cached, st_generated, st_decode_us,
      st_done, st_rejected;
};

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#define RLX memory_order_relaxed

/* Grows *P (elements of SZ bytes, capacity *CAP) to hold at least NEED; geometric. 0 or -ENOMEM. */
static int grow(void **p, size_t *cap, size_t need, size_t sz) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 64;
  while (c < need) c *= 2;
  void *q = realloc(*p, c * sz);
  if (!q) return -ENOMEM;
  *p = q;
  *cap = c;
  return 0;
}

static void job_free(struct rt_job *j) {
  slm_sampler_free(j->smp);
  slm_matcher_free(j->mt);
  free(j->prompt);
  for (size_t i = 0; i < j->n_stops; i++) free(j->stops[i]);
  free(j->stops);
  free(j->in_tok);
  free(j->in_off);
  free(j->embd);
  free(j->hold);
  free(j->pt);
  free(j->ptop);
  free(j->o_text);
  free(j->o_tok);
  free(j->o_top);
  free(j->c_text);
  free(j->c_tok);
  free(j->c_top);
  pthread_mutex_destroy(&j->mu);
  free(j);
}

static void job_unref(struct rt_job *j) {
  if (atomic_fetch_sub(&j->refs, 1) == 1) job_free(j);
}

/* ---------------------------------------------------------------- UTF-8 and text */

static int hold_put(struct rt_job *j, const void *b, size_t n) {
  if (grow((void **)&j->hold, &j->hold_cap, j->hold_len + n + 1, 1)) return -ENOMEM;
  memcpy(j->hold + j->hold_len, b, n);
  j->hold_len += n;
  j->text_abs += n;
  return 0;
}

static int emit_fffd(struct rt_job *j) { return hold_put(j, "\xEF\xBF\xBD", 3); }

/* Feeds one byte to the job's streaming UTF-8 decoder (maximal-subpart replacement, as the
 * Unicode standard recommends and browsers do): complete characters go to the hold buffer. */
static int utf8_byte(struct rt_job *j, uint8_t b) {
  for (;;) {
    if (j->n_u8 == 0) {
      if (b < 0x80) return hold_put(j, &b, 1);
      if (b >= 0xC2 && b <= 0xDF) j->u8_need = 2;
      else if (b >= 0xE0 && b <= 0xEF) j->u8_need = 3;
      else if (b >= 0xF0 && b <= 0xF4) j->u8_need = 4;
      else return emit_fffd(j);   /* a stray continuation byte, C0/C1 or F5..FF */
      j->u8[j->n_u8++] = b;
      return 0;
    }
    uint8_t lo = 0x80, hi = 0xBF;
    if (j->n_u8 == 1) {   /* the second byte's range excludes overlongs, surrogates, > U+10FFFF */
      uint8_t l = j->u8[0];
      if (l == 0xE0) lo = 0xA0;
      else if (l == 0xED) hi = 0x9F;
      else if (l == 0xF0) lo = 0x90;
      else if (l == 0xF4) hi = 0x8F;
    }
    if (b >= lo && b <= hi) {
      j->u8[j->n_u8++] = b;
      if (j->n_u8 < j->u8_need) return 0;
      j->n_u8 = 0;
      return hold_put(j, j->u8, (size_t)j->u8_need);
    }
    j->n_u8 = 0;   /* the pending bytes are one ill-formed subpart; B starts afresh */
    if (emit_fffd(j)) return -ENOMEM;
  }
}

/* Every pending token whose bytes are all in the stream now gets its end offset. */
static void mark_ends(struct rt_job *j) {
  if (j->n_u8) return;
  for (size_t i = j->pt_len; i-- > 0 && !j->pt[i].end_known;) {
    j->pt[i].end = j->text_abs;
    j->pt[i].end_known = true;
  }
}

/* The index of the stop string matching at offset OFF of the hold buffer (the lowest one). */
static int stop_at(const struct rt_job *j, size_t off) {
  for (size_t i = 0; i < j->n_stops; i++) {
    size_t l = strlen(j->stops[i]);
    if (l && l <= j->hold_len - off && !memcmp(j->hold + off, j->stops[i], l)) return (int)i;
  }
  return 0;
}

/* Decides what of the hold buffer and the pending tokens is released this step (rel_text,
 * rel_tok) and whether a stop string ends the job. FINAL: the job ends (flush everything). */
static void plan_release(struct rt_job *j, bool final) {
  size_t safe = j->hold_len;
  if (j->n_stops) {
    int64_t m = slm_stop_scan(j->hold, j->hold_len, (const char *const *)j->stops, j->n_stops,
                              &safe);
    if (m >= 0) {
      uint64_t cut = j->released_abs + (uint64_t)m;
      j->fin = RT_FINISH_STOP;
      j->fin_stop = stop_at(j, (size_t)m);
      j->rel_text = (size_t)m;
      size_t k = 0;
      while (k < j->pt_len && j->pt[k].start < cut) k++;   /* a token cut by the stop is in */
      j->rel_tok = k;
      return;
    }
  }
  if (final) safe = j->hold_len;
  j->rel_text = safe;
  uint64_t upto = j->released_abs + safe;
  size_t k = 0;
  while (k < j->pt_len && j->pt[k].end_known && j->pt[k].end <= upto) k++;
  j->rel_tok = k;
}

/* Runs token T (sampled, TOP its log-probabilities when asked) through the job's text path and
 * finish rules; sets j->fin when the job ends. 0 or -ENOMEM. */
static int take_token(struct rt_sched *s, struct rt_job *j, slm_token t,
                      const struct slm_token_prob *top) {
  j->n_gen++;
  j->t_last = now_us();
  if (j->n_gen == 1) j->t_first = j->t_last;
  atomic_fetch_add_explicit(&s->st_generated, 1, RLX);
  bool eog = slm_token_is_eog(s->m, t);
  if (!eog) {
    size_t old_cap = j->pt_cap;
    if (grow((void **)&j->pt, &j->pt_cap, j->pt_len + 1, sizeof *j->pt)) return -ENOMEM;
    if (j->n_top && (j->pt_cap != old_cap || !j->ptop)) {   /* ptop follows pt's capacity */
      void *q = realloc(j->ptop, j->pt_cap * (size_t)j->n_top * sizeof *j->ptop);
      if (!q) return -ENOMEM;
      j->ptop = q;
    }
    struct ptok *pt = &j->pt[j->pt_len];
    pt->tok = t;
    pt->logprob = top ? top[0].logprob : 0.0f;
    pt->start = j->text_abs;
    pt->end_known = false;
    if (j->n_top)
      memcpy(j->ptop + j->pt_len * (size_t)j->n_top, top + 1, (size_t)j->n_top * sizeof *top);
    j->pt_len++;
    int32_t n = slm_token_to_piece(s->m, t, s->piece, s->piece_cap, false);
    for (int32_t i = 0; i < n; i++)
      if (utf8_byte(j, (uint8_t)s->piece[i])) return -ENOMEM;
    mark_ends(j);
  }
  bool done = !eog && j->mt && slm_matcher_is_done(j->mt);   /* nothing can follow */
  bool final = eog || done || j->n_gen >= j->max_tokens ||
               (uint32_t)s->slots[j->slot].n_cache >= s->n_ctx;
  if (final && j->n_u8) {   /* an incomplete character at the end */
    j->n_u8 = 0;
    if (emit_fffd(j)) return -ENOMEM;
    mark_ends(j);
  }
  plan_release(j, final);
  if (j->fin == RT_FINISH_NONE && final)
    j->fin = eog ? RT_FINISH_EOG : done ? RT_FINISH_DONE
             : j->n_gen >= j->max_tokens ? RT_FINISH_LENGTH : RT_FINISH_CONTEXT;
  if (j->fin == RT_FINISH_NONE) j->next_tok = t;
  return 0;
}

/* ---------------------------------------------------------------- the outbox */

static void usage_to_outbox(struct rt_job *j) {
  j->o_cached = j->n_cached;
  j->o_gen = j->n_gen;
  j->o_queued = j->t_slot ? j->t_slot - j->t_submit : 0;
  j->o_prefill = j->t_first ? j->t_first - j->t_slot : 0;
  j->o_decode = j->t_first ? j->t_last - j->t_first : 0;
}

/* Moves the staged release (rel_text, rel_tok) and finish into the outbox: the job's one locked
 * section of the step. Returns true if the consumer has something new. */
static bool publish(struct rt_sched *s, struct rt_job *j) {
  bool news = j->rel_text > 0 || j->rel_tok > 0 || j->fin != RT_FINISH_NONE;
  bool oom = false;
  pthread_mutex_lock(&j->mu);
  if (j->rel_text) {
    if (grow((void **)&j->o_text, &j->o_cap, j->o_len + j->rel_text + 1, 1)) {
      oom = true;
    } else {
      memcpy(j->o_text + j->o_len, j->hold, j->rel_text);
      j->o_len += j->rel_text;
      j->o_text[j->o_len] = 0;
    }
  }
  if (j->rel_tok && j->logprobs && !oom) {
    size_t old = j->o_tok_cap;
    if (grow((void **)&j->o_tok, &j->o_tok_cap, j->o_ntok + j->rel_tok, sizeof *j->o_tok)) {
      oom = true;
    } else if (j->n_top && (j->o_tok_cap != old || !j->o_top)) {
      void *q = realloc(j->o_top, j->o_tok_cap * (size_t)j->n_top * sizeof *j->o_top);
      if (!q) oom = true;
      else j->o_top = q;
    }
    for (size_t i = 0; !oom && i < j->rel_tok; i++) {
      struct rt_job_token *o = &j->o_tok[j->o_ntok + i];
      o->token = j->pt[i].tok;
      o->logprob = j->pt[i].logprob;
      o->top = NULL;   /* set by rt_job_take */
      o->n_top = j->n_top;
      if (j->n_top)
        memcpy(j->o_top + (j->o_ntok + i) * (size_t)j->n_top, j->ptop + i * (size_t)j->n_top,
               (size_t)j->n_top * sizeof *j->o_top);
    }
    if (!oom) j->o_ntok += j->rel_tok;
  }
  if (oom && j->fin == RT_FINISH_NONE) {
    j->fin = RT_FINISH_ERROR;
    j->fin_err = "out of memory";
  }
  if (j->fin != RT_FINISH_NONE) {
    j->finish = j->fin;
    j->stop_index = j->fin == RT_FINISH_STOP ? j->fin_stop : 0;
    if (j->fin == RT_FINISH_ERROR) snprintf(j->err, sizeof j->err, "%s", j->fin_err);
  }
  usage_to_outbox(j);
  pthread_mutex_unlock(&j->mu);
  /* drop what was released from the scheduler-side buffers */
  if (j->rel_text) {
    memmove(j->hold, j->hold + j->rel_text, j->hold_len - j->rel_text);
    j->hold_len -= j->rel_text;
    j->released_abs += j->rel_text;
  }
  if (j->rel_tok) {
    memmove(j->pt, j->pt + j->rel_tok, (j->pt_len - j->rel_tok) * sizeof *j->pt);
    if (j->n_top)
      memmove(j->ptop, j->ptop + j->rel_tok * (size_t)j->n_top,
              (j->pt_len - j->rel_tok) * (size_t)j->n_top * sizeof *j->ptop);
    j->pt_len -= j->rel_tok;
  }
  j->rel_text = j->rel_tok = 0;
  return news;
}

/* Ends a job the scheduler holds: publishes FIN (with what was staged), drops the scheduler's
 * reference. The caller has freed its slot. */
static void finish_job(struct rt_sched *s, struct rt_job *j, enum rt_finish fin, const char *err) {
  if (j->fin == RT_FINISH_NONE) {
    j->fin = fin;
    j->fin_err = err ? err : "";
  }
  if (j->fin != RT_FINISH_STOP && j->fin != RT_FINISH_EOG && j->fin != RT_FINISH_LENGTH &&
      j->fin != RT_FINISH_CONTEXT && j->fin != RT_FINISH_DONE)
    j->rel_text = j->rel_tok = 0;   /* cancelled, shut down, failed: nothing more is released */
  j->st = JS_DONE;
  slm_sampler_free(j->smp);
  j->smp = NULL;
  publish(s, j);
  pthread_mutex_lock(&s->mu);
  s->n_live--;
  pthread_mutex_unlock(&s->mu);
  atomic_fetch_add_explicit(&s->st_done, 1, RLX);
  job_unref(j);
}

/* ---------------------------------------------------------------- slots */

static void slot_release(struct rt_sched *s, struct rt_job *j) {
  struct slot *sl = &s->slots[j->slot];
  sl->job = NULL;
  sl->last_used = s->step_no;
  s->n_active--;
}

/* Puts J into the free slot sharing the longest prefix with its prompt (else the least recently
 * used one) and trims that slot's cache to the reused part. */
static void admit(struct rt_sched *s, struct rt_job *j) {
  int best = -1;
  int32_t best_lcp = -1;
  for (uint32_t i = 0; i < s->n_slots; i++) {
    struct slot *sl = &s->slots[i];
    if (sl->job) continue;
    int32_t n = sl->n_cache < j->n_prompt ? sl->n_cache : j->n_prompt, k = 0;
    while (k < n && sl->cache[k] == j->prompt[k]) k++;
    if (k > best_lcp || (k == best_lcp && sl->last_used < s->slots[best].last_used)) {
      best = (int)i;
      best_lcp = k;
    }
  }
  struct slot *sl = &s->slots[best];
  int32_t reuse = best_lcp < j->n_prompt - 1 ? best_lcp : j->n_prompt - 1;
  slm_kv_remove(s->ctx, best, reuse, -1);
  sl->n_cache = reuse;
  sl->job = j;
  sl->last_used = s->step_no;
  s->n_active++;
  j->slot = best;
  j->n_fed = reuse;
  j->n_cached = reuse;
  j->st = JS_PREFILL;
  j->t_slot = now_us();
  atomic_fetch_add_explicit(&s->st_cached, (unsigned long long)reuse, RLX);
  struct slm_sampler_params sp = j->sp;
  sp.n_probs = j->n_top;
  j->smp = slm_sampler_new(s->m, &sp);
  if (!j->smp) {
    slot_release(s, j);
    finish_job(s, j, RT_FINISH_ERROR, "out of memory (sampler)");
    return;
  }
  /* the prompt's tail is the penalties' history, as llama-server does */
  int32_t from = j->n_prompt - (sp.penalty_last_n > 0 ? sp.penalty_last_n : 0);
  for (int32_t i = from > 0 ? from : 0; sp.penalty_last_n > 0 && i < j->n_prompt; i++)
    slm_sampler_accept(j->smp, j->prompt[i]);
}

/* ---------------------------------------------------------------- a generation step */

/* Builds and decodes one batch over the running jobs, samples, publishes. Returns true if any
 * job got output or finished. */
static bool gen_step(struct rt_sched *s) {
  int32_t n = 0, prompt_toks = 0;
  const int32_t nb = (int32_t)s->n_batch;
  for (uint32_t i = 0; i < s->n_slots; i++) {
    struct rt_job *j = s->slots[i].job;
    if (!j) continue;
    j->b_n = 0;
    if (j->st != JS_DECODE) continue;
    s->b_tok[n] = j->next_tok;
    s->b_seq[n] = (int32_t)i;
    s->b_logits[n] = 1;
    j->b_first = n++;
    j->b_n = 1;
  }
  int first_served = -1;
  for (uint32_t k = 0; k < s->n_slots && n < nb; k++) {
    uint32_t i = (s->rr + k) % s->n_slots;
    struct rt_job *j = s->slots[i].job;
    if (!j || j->st != JS_PREFILL) continue;
    int32_t take = j->n_prompt - j->n_fed;
    if (take > (int32_t)s->chunk) take = (int32_t)s->chunk;
    if (take > nb - n) take = nb - n;
    memcpy(s->b_tok + n, j->prompt + j->n_fed, (size_t)take * sizeof *s->b_tok);
    for (int32_t t = 0; t < take; t++) {
      s->b_seq[n + t] = (int32_t)i;
      s->b_logits[n + t] = 0;
    }
    if (j->n_fed + take == j->n_prompt) s->b_logits[n + take - 1] = 1;
    j->b_first = n;
    j->b_n = take;
    n += take;
    prompt_toks += take;
    if (first_served < 0) first_served = (int)i;
  }
  if (first_served >= 0) s->rr = ((uint32_t)first_served + 1) % s->n_slots;
  if (n == 0) return false;

  struct slm_batch b = {n, s->b_tok, NULL, s->b_seq, s->b_logits};
  int64_t t0 = now_us();
  int rc = slm_decode(s->ctx, &b);
  int64_t dt = now_us() - t0;
  s->step_no++;
  atomic_fetch_add_explicit(&s->st_steps, 1, RLX);
  atomic_fetch_add_explicit(&s->st_batch_tokens, (unsigned long long)n, RLX);
  atomic_store_explicit(&s->st_last_batch, (unsigned)n, RLX);
  atomic_fetch_add_explicit(&s->st_decode_us, (unsigned long long)dt, RLX);
  bool news = false;
  if (rc) {   /* nothing was computed: the caches are as before; fail the jobs of this batch */
    char msg[192];
    snprintf(msg, sizeof msg, "engine: %s", slm_errmsg(s->ctx));
    for (uint32_t i = 0; i < s->n_slots; i++) {
      struct rt_job *j = s->slots[i].job;
      if (!j || !j->b_n) continue;
      slot_release(s, j);
      finish_job(s, j, RT_FINISH_ERROR, msg);   /* copied into the job's err */
      news = true;
    }
    return news;
  }
  atomic_fetch_add_explicit(&s->st_prompt, (unsigned long long)prompt_toks, RLX);

  for (uint32_t i = 0; i < s->n_slots; i++) {
    struct rt_job *j = s->slots[i].job;
    if (!j || !j->b_n) continue;
    struct slot *sl = &s->slots[i];
    memcpy(sl->cache + sl->n_cache, s->b_tok + j->b_first, (size_t)j->b_n * sizeof *sl->cache);
    sl->n_cache += j->b_n;
    int32_t row = j->b_first + j->b_n - 1;
    if (j->st == JS_PREFILL) {
      j->n_fed += j->b_n;
      if (j->n_fed < j->n_prompt) continue;
      j->st = JS_DECODE;
    }
    const float *logits = slm_get_logits(s->ctx, row);
    if (j->ignore_eos && s->n_eog) {   /* as llama.cpp's ignore_eos: they cannot be sampled */
      memcpy(s->masked, logits, (size_t)s->n_vocab * sizeof *s->masked);
      for (int32_t k = 0; k < s->n_eog; k++) s->masked[s->eog[k]] = -INFINITY;
      logits = s->masked;
    }
    slm_token t;
    if (j->mt) {
      /* the text must still be able to end in the tokens left after this one */
      slm_matcher_set_budget(j->mt, j->max_tokens - j->n_gen);
      t = slm_sampler_sample_constrained(j->smp, logits, j->mt, j->logprobs ? s->top : NULL);
      if (t < 0) {
        /* no token keeps the text completable in the tokens left: max_tokens is too small for
         * this constraint. Go on without the budget for this step, so the reply ends at
         * max_tokens with finish "length" as a text reply would (it was a 500, and counted as a
         * breaker failure, for a client's small max_tokens) */
        slm_matcher_set_budget(j->mt, -1);
        t = slm_sampler_sample_constrained(j->smp, logits, j->mt, j->logprobs ? s->top : NULL);
      }
      if (t < 0) {
        slot_release(s, j);
        finish_job(s, j, RT_FINISH_ERROR, "no token can continue the structured output");
        news = true;
        continue;
      }
      if (!slm_token_is_eog(s->m, t)) slm_matcher_accept_token(j->mt, t);
    } else {
      t = slm_sampler_sample(j->smp, logits, j->logprobs ? s->top : NULL);
    }
    if (take_token(s, j, t, j->logprobs ? s->top : NULL) && j->fin == RT_FINISH_NONE) {
      j->fin = RT_FINISH_ERROR;
      j->fin_err = "out of memory";
    }
    if (j->fin != RT_FINISH_NONE) {
      slot_release(s, j);
      finish_job(s, j, j->fin, j->fin_err);
      news = true;
    } else {
      news |= publish(s, j);
    }
  }
  return news;
}

/* ---------------------------------------------------------------- embeddings */

static bool embd_ctx(struct rt_sched *s) {
  if (s->ectx || s->ectx_failed) return s->ectx != NULL;
  struct slm_context_params cp = slm_context_default_params();
  cp.n_ctx = s->n_ctx;
  cp.n_seq = EMBD_SEQ;
  cp.n_batch = s->n_batch;
  cp.n_threads = s->p.n_threads;
  cp.kv_type = s->p.kv_type;
  cp.pooling = SLM_POOL_MEAN;
  cp.n_outputs = 1;   /* no logits are asked; the smallest buffer */
  s->ectx = slm_context_new(s->m, &cp);
  s->ectx_failed = s->ectx == NULL;
  return s->ectx != NULL;
}

static void l2_normalize(float *v, int32_t n) {
  double ss = 0;
  for (int32_t i = 0; i < n; i++) ss += (double)v[i] * v[i];
  if (ss <= 0) return;
  float inv = (float)(1.0 / sqrt(ss));
  for (int32_t i = 0; i < n; i++) v[i] *= inv;
}

/* One batch of the current embedding job (whole inputs as sequences of one batch while they fit;
 * a longer one alone, in chunks, its mean accumulated over the chunks). BUDGET: tokens. Returns
 * true if a job finished. */
static bool embd_step(struct rt_sched *s, int32_t budget) {
  struct rt_job *j = s->ecur;
  if (!j) {
    pthread_mutex_lock(&s->mu);
    j = s->eq_head;
    if (j) {
      s->eq_head = j->next;
      if (!s->eq_head) s->eq_tail = NULL;
      s->n_eq--;
      atomic_store_explicit(&s->st_queued, s->n_q + s->n_eq, RLX);
    }
    pthread_mutex_unlock(&s->mu);
    if (!j) return false;
    j->t_slot = now_us();
    s->ecur = j;
  }
  if (atomic_load(&j->cancel)) {
    s->ecur = NULL;
    if (s->ectx) slm_kv_clear(s->ectx);
    finish_job(s, j, RT_FINISH_CANCELLED, NULL);
    return true;
  }
  if (!embd_ctx(s)) {
    s->ecur = NULL;
    finish_job(s, j, RT_FINISH_ERROR, "could not create the embedding context");
    return true;
  }
  const int32_t E = s->n_embd;
  struct { size_t idx; int32_t n, done_before; bool last; } part[EMBD_SEQ];
  int nseq = 0;
  int32_t n = 0;
  while (j->e_next < j->n_inputs && nseq < EMBD_SEQ && n < budget) {
    int32_t len = j->in_off[j->e_next + 1] - j->in_off[j->e_next];
    int32_t rem = len - j->e_done;
    if (nseq > 0 && rem > budget - n) break;   /* only the first input of a batch is chunked */
    int32_t take = rem < budget - n ? rem : budget - n;
    const slm_token *src = j->in_tok + j->in_off[j->e_next] + j->e_done;
    memcpy(s->b_tok + n, src, (size_t)take * sizeof *s->b_tok);
    for (int32_t t = 0; t < take; t++) {
      s->b_seq[n + t] = nseq;
      s->b_logits[n + t] = 0;
    }
    part[nseq].idx = j->e_next;
    part[nseq].n = take;
    part[nseq].done_before = j->e_done;
    part[nseq].last = take == rem;
    nseq++;
    n += take;
    if (take < rem) {
      j->e_done += take;
      break;
    }
    j->e_next++;
    j->e_done = 0;
  }
  struct slm_batch b = {n, s->b_tok, NULL, s->b_seq, s->b_logits};
  int rc = slm_decode(s->ectx, &b);
  if (rc) {
    char msg[192];
    snprintf(msg, sizeof msg, "engine: %s", slm_errmsg(s->ectx));
    slm_kv_clear(s->ectx);
    s->ecur = NULL;
    finish_job(s, j, RT_FINISH_ERROR, msg);
    return true;
  }
  for (int r = 0; r < nseq; r++) {
    const float *e = slm_get_embeddings(s->ectx, r);
    float *dst = j->embd + part[r].idx * (size_t)E;
    int32_t len = j->in_off[part[r].idx + 1] - j->in_off[part[r].idx];
    if (part[r].done_before == 0 && part[r].last) {
      memcpy(dst, e, (size_t)E * sizeof *dst);   /* the whole input in one batch */
    } else {
      float w = (float)part[r].n;   /* chunk mean x chunk length: the sum over the chunk */
      for (int32_t i = 0; i < E; i++) dst[i] = part[r].done_before ? dst[i] + e[i] * w : e[i] * w;
      if (part[r].last)
        for (int32_t i = 0; i < E; i++) dst[i] /= (float)len;
    }
    if (part[r].last) {
      l2_normalize(dst, E);
      slm_kv_remove(s->ectx, r, 0, -1);
    }
  }
  if (j->e_next < j->n_inputs) return false;
  s->ecur = NULL;
  finish_job(s, j, RT_FINISH_EOG, NULL);
  return true;
}

/* ---------------------------------------------------------------- the thread */

static void *sched_main(void *arg) {
  struct rt_sched *s = arg;
  for (;;) {
    bool news = false;
    /* cancellations of running jobs, seen before the next step */
    for (uint32_t i = 0; i < s->n_slots; i++) {
      struct rt_job *j = s->slots[i].job;
      if (j && atomic_load_explicit(&j->cancel, memory_order_acquire)) {
        slot_release(s, j);
        finish_job(s, j, RT_FINISH_CANCELLED, NULL);
        news = true;
      }
    }
    struct rt_job *cancelled = NULL;
    size_t n_admit = 0;
    pthread_mutex_lock(&s->mu);
    while (!s->stop && s->n_active == 0 && !s->q_head && !s->eq_head && !s->ecur &&
           !s->wake_notify && s->cancel_gen == s->seen_cancel)
      pthread_cond_wait(&s->cv, &s->mu);
    if (s->stop) {
      pthread_mutex_unlock(&s->mu);
      break;
    }
    news |= s->wake_notify;
    s->wake_notify = false;
    if (s->cancel_gen != s->seen_cancel) {   /* cancelled while queued: out of the queues */
      s->seen_cancel = s->cancel_gen;
      struct rt_job **heads[2] = {&s->q_head, &s->eq_head};
      struct rt_job **tails[2] = {&s->q_tail, &s->eq_tail};
      uint32_t *counts[2] = {&s->n_q, &s->n_eq};
      for (int q = 0; q < 2; q++) {
        struct rt_job **pp = heads[q], *prev = NULL;
        while (*pp) {
          struct rt_job *j = *pp;
          if (atomic_load(&j->cancel)) {
            *pp = j->next;
            (*counts[q])--;
            j->next = cancelled;
            cancelled = j;
          } else {
            prev = j;
            pp = &j->next;
          }
        }
        *tails[q] = prev;
      }
    }
    uint32_t n_free = s->n_slots - s->n_active;
    while (n_free > 0 && s->q_head && n_admit < sizeof s->admit / sizeof s->admit[0]) {
      struct rt_job *j = s->q_head;
      s->q_head = j->next;
      if (!s->q_head) s->q_tail = NULL;
      s->n_q--;
      s->admit[n_admit++] = j;
      n_free--;
    }
    bool have_embd = s->ecur || s->eq_head;
    atomic_store_explicit(&s->st_queued, s->n_q + s->n_eq, RLX);
    pthread_mutex_unlock(&s->mu);

    while (cancelled) {
      struct rt_job *j = cancelled;
      cancelled = j->next;
      finish_job(s, j, RT_FINISH_CANCELLED, NULL);
      news = true;
    }
    for (size_t i = 0; i < n_admit; i++) {
      if (atomic_load(&s->admit[i]->cancel)) {
        finish_job(s, s->admit[i], RT_FINISH_CANCELLED, NULL);
        news = true;
      } else {
        admit(s, s->admit[i]);
      }
    }
    atomic_store_explicit(&s->st_active, s->n_active, RLX);
    if (s->n_active) news |= gen_step(s);
    atomic_store_explicit(&s->st_active, s->n_active, RLX);
    /* embeddings between generation steps: a small batch while streams run */
    if (have_embd)
      news |= embd_step(s, s->n_active ? (int32_t)s->chunk : (int32_t)s->n_batch);
    if (news && s->p.notify) s->p.notify(s->p.notify_ud);
  }
  return NULL;
}

/* ---------------------------------------------------------------- public: scheduler */

struct rt_sched_params rt_sched_default_params(void) {
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  return (struct rt_sched_params){
      .model = NULL,
      .n_threads = ncpu > 0 ? (int)ncpu : 1,
      .n_ctx = 4096,
      .n_slots = 4,
      .n_queue = 64,
      .kv_type = SLM_KV_F16,
      .prefill_chunk = DEFAULT_CHUNK,
      .n_batch = DEFAULT_BATCH,
      .embeddings = true,
      .notify = NULL,
      .notify_ud = NULL,
  };
}

void rt_sched_free(struct rt_sched *s) {
  if (!s) return;
  if (s->thread_ok) {
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
  }
  /* the thread is gone: every job still held ends here */
  for (uint32_t i = 0; s->slots && i < s->n_slots; i++) {
    struct rt_job *j = s->slots[i].job;
    if (!j) continue;
    slot_release(s, j);
    finish_job(s, j, RT_FINISH_CANCELLED, NULL);
  }
  if (s->ecur) finish_job(s, s->ecur, RT_FINISH_CANCELLED, NULL);
  s->ecur = NULL;
  for (int q = 0; q < 2; q++) {
    struct rt_job *j = q ? s->eq_head : s->q_head;
    while (j) {
      struct rt_job *nx = j->next;
      finish_job(s, j, RT_FINISH_CANCELLED, NULL);
      j = nx;
    }
  }
  s->q_head = s->eq_head = NULL;
  slm_context_free(s->ctx);
  slm_context_free(s->ectx);
  for (uint32_t i = 0; s->slots && i < s->n_slots; i++) free(s->slots[i].cache);
  free(s->slots);
  free(s->b_tok);
  free(s->b_seq);
  free(s->b_logits);
  free(s->piece);
  free(s->eog);
  free(s->masked);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

struct rt_sched *rt_sched_new(const struct rt_sched_params *p, char *err, size_t errlen) {
#define FAIL(...)                                   \
  do {                                              \
    if (err && errlen) snprintf(err, errlen, __VA_ARGS__); \
    rt_sched_free(s);                               \
    return NULL;                                    \
  } while (0)
  struct rt_sched *s = NULL;
  if (!p || !p->model) FAIL("no model");
  if (p->n_threads < 1) FAIL("n_threads must be >= 1 (got %d)", p->n_threads);
  if (p->n_slots < 1 || p->n_slots > 256) FAIL("n_slots must be 1..256 (got %u)", p->n_slots);
  if (p->n_queue > 65536) FAIL("n_queue must be 0..65536 (got %u)", p->n_queue);
  if (p->n_ctx < 2) FAIL("n_ctx must be >= 2 (got %u)", p->n_ctx);
  if (p->kv_type != SLM_KV_F32 && p->kv_type != SLM_KV_F16) FAIL("bad kv_type");
  uint32_t nb = p->n_batch ? p->n_batch : (p->n_slots > DEFAULT_BATCH ? p->n_slots : DEFAULT_BATCH);
  if (nb < p->n_slots) FAIL("n_batch (%u) must be >= n_slots (%u)", nb, p->n_slots);
  if (nb > 65536) FAIL("n_batch must be <= 65536 (got %u)", nb);
  if (slm_n_layer(p->model) <= 0) FAIL("the model has no weights (vocab_only)");

  s = calloc(1, sizeof *s);
  if (!s) FAIL("out of memory");
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  s->p = *p;
  s->m = p->model;
  s->n_slots = p->n_slots;
  s->n_batch = nb;
  s->chunk = p->prefill_chunk ? p->prefill_chunk : DEFAULT_CHUNK;
  if (s->chunk > nb) s->chunk = nb;
  s->n_vocab = slm_n_vocab(s->m);
  s->n_embd = slm_n_embd(s->m);

  struct slm_context_params cp = slm_context_default_params();
  cp.n_ctx = p->n_ctx;
  cp.n_seq = p->n_slots;
  cp.n_batch = nb;
  cp.n_threads = p->n_threads;
  cp.kv_type = p->kv_type;
  cp.n_outputs = p->n_slots;   /* at most one sampled row per job per step */
  s->ctx = slm_context_new(s->m, &cp);
  if (!s->ctx) FAIL("could not create the engine context (n_ctx %u x %u slots, n_batch %u): "
                    "out of memory or threads", p->n_ctx, p->n_slots, nb);
  s->n_ctx = slm_context_n_ctx(s->ctx);

  s->slots = calloc(s->n_slots, sizeof *s->slots);
  s->b_tok = malloc(nb * sizeof *s->b_tok);
  s->b_seq = malloc(nb * sizeof *s->b_seq);
  s->b_logits = malloc(nb * sizeof *s->b_logits);
  if (!s->slots || !s->b_tok || !s->b_seq || !s->b_logits) FAIL("out of memory");
  for (uint32_t i = 0; i < s->n_slots; i++)
    if (!(s->slots[i].cache = malloc(s->n_ctx * sizeof *s->slots[i].cache))) FAIL("out of memory");
  /* the longest piece of the vocabulary sizes the one piece buffer */
  int32_t maxp = 16;
  for (slm_token t = 0; t < s->n_vocab; t++) {
    int32_t r = slm_token_to_piece(s->m, t, NULL, 0, false);
    if (r < 0 && -r > maxp) maxp = -r;
  }
  s->piece_cap = maxp;
  if (!(s->piece = malloc((size_t)maxp))) FAIL("out of memory");
  for (slm_token t = 0; t < s->n_vocab; t++) s->n_eog += slm_token_is_eog(s->m, t);
  s->eog = malloc((size_t)(s->n_eog ? s->n_eog : 1) * sizeof *s->eog);
  s->masked = malloc((size_t)s->n_vocab * sizeof *s->masked);
  if (!s->eog || !s->masked) FAIL("out of memory");
  s->n_eog = 0;
  for (slm_token t = 0; t < s->n_vocab; t++)
    if (slm_token_is_eog(s->m, t)) s->eog[s->n_eog++] = t;

  if (pthread_create(&s->thread, NULL, sched_main, s)) FAIL("could not start the scheduler thread");
  s->thread_ok = true;
  return s;
#undef FAIL
}

void rt_sched_drain(struct rt_sched *s) {
  pthread_mutex_lock(&s->mu);
  s->draining = true;
  struct rt_job *lists[2] = {s->q_head, s->eq_head};
  uint32_t n = s->n_q + s->n_eq;
  s->q_head = s->q_tail = s->eq_head = s->eq_tail = NULL;
  s->n_q = s->n_eq = 0;
  atomic_store_explicit(&s->st_queued, 0, RLX);
  pthread_mutex_unlock(&s->mu);
  /* queued jobs were never touched by the scheduler thread: finish them here, at once */
  for (int q = 0; q < 2; q++)
    for (struct rt_job *j = lists[q], *nx; j; j = nx) {
      nx = j->next;
      j->fin = RT_FINISH_SHUTDOWN;
      j->st = JS_DONE;
      pthread_mutex_lock(&j->mu);
      j->finish = RT_FINISH_SHUTDOWN;
      usage_to_outbox(j);
      pthread_mutex_unlock(&j->mu);
      atomic_fetch_add_explicit(&s->st_done, 1, RLX);
      job_unref(j);
    }
  pthread_mutex_lock(&s->mu);
  s->n_live -= n;
  if (n) s->wake_notify = true;   /* the scheduler thread calls notify for them */
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

size_t rt_sched_kv_bytes(const struct rt_sched *s) { return slm_context_kv_bytes(s->ctx); }
uint32_t rt_sched_n_ctx(const struct rt_sched *s) { return s->n_ctx; }

void rt_sched_stats(const struct rt_sched *s, struct rt_sched_stats *o) {
  struct rt_sched *w = (struct rt_sched *)s;   /* atomics are read, never written */
  o->queued = atomic_load_explicit(&w->st_queued, RLX);
  o->active = atomic_load_explicit(&w->st_active, RLX);
  o->last_batch = atomic_load_explicit(&w->st_last_batch, RLX);
  o->steps = atomic_load_explicit(&w->st_steps, RLX);
  o->batch_tokens = atomic_load_explicit(&w->st_batch_tokens, RLX);
  o->prompt_tokens = atomic_load_explicit(&w->st_prompt, RLX);
  o->cached_tokens = atomic_load_explicit(&w->st_cached, RLX);
  o->generated_tokens = atomic_load_explicit(&w->st_generated, RLX);
  o->decode_us = atomic_load_explicit(&w->st_decode_us, RLX);
  o->jobs_done = atomic_load_explicit(&w->st_done, RLX);
  o->jobs_rejected = atomic_load_explicit(&w->st_rejected, RLX);
}

/* ---------------------------------------------------------------- public: jobs */

static struct rt_job *job_alloc(struct rt_sched *s, enum job_kind kind) {
  struct rt_job *j = calloc(1, sizeof *j);
  if (!j) return NULL;
  atomic_init(&j->refs, 2);
  atomic_init(&j->cancel, false);
  pthread_mutex_init(&j->mu, NULL);
  j->s = s;
  j->kind = kind;
  j->slot = -1;
  j->st = JS_QUEUED;
  return j;
}

/* Queues J (generation or embedding) unless the scheduler drains or is full. */
static int enqueue(struct rt_sched *s, struct rt_job *j) {
  pthread_mutex_lock(&s->mu);
  int rc = 0;
  if (s->draining || s->stop) rc = -ESHUTDOWN;
  else if (s->n_live >= s->n_slots + s->p.n_queue) rc = -EAGAIN;
  if (!rc) {
    j->t_submit = now_us();
    j->next = NULL;
    struct rt_job **head = j->kind == JOB_GEN ? &s->q_head : &s->eq_head;
    struct rt_job **tail = j->kind == JOB_GEN ? &s->q_tail : &s->eq_tail;
    if (*tail) (*tail)->next = j;
    else *head = j;
    *tail = j;
    if (j->kind == JOB_GEN) s->n_q++;
    else s->n_eq++;
    s->n_live++;
    atomic_store_explicit(&s->st_queued, s->n_q + s->n_eq, RLX);
    pthread_cond_signal(&s->cv);
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

static bool utf8_ok(const char *p, size_t n) {
  const uint8_t *u = (const uint8_t *)p;
  for (size_t i = 0; i < n;) {
    uint8_t b = u[i];
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b < 0x80) { i++; continue; }
    if (b >= 0xC2 && b <= 0xDF) need = 2;
    else if (b >= 0xE0 && b <= 0xEF) need = 3;
    else if (b >= 0xF0 && b <= 0xF4) need = 4;
    else return false;
    if (b == 0xE0) lo = 0xA0;
    else if (b == 0xED) hi = 0x9F;
    else if (b == 0xF0) lo = 0x90;
    else if (b == 0xF4) hi = 0x8F;
    if (i + need > n || u[i + 1] < lo || u[i + 1] > hi) return false;
    for (size_t k = 2; k < need; k++)
      if (u[i + k] < 0x80 || u[i + k] > 0xBF) return false;
    i += need;
  }
  return true;
}

int rt_sched_submit(struct rt_sched *s, const struct rt_job_params *p, struct rt_job **out) {
  if (out) *out = NULL;
  if (!s || !p || !out) return -EINVAL;
  int rc = 0;
  if (!p->prompt || p->n_prompt < 1 || p->max_tokens <= 0 || p->top_logprobs < 0 ||
      p->top_logprobs > MAX_TOP || (p->top_logprobs > 0 && !p->logprobs) ||
      (p->n_stops && !p->stops) || p->n_stops > MAX_STOPS)
    rc = -EINVAL;
  for (int32_t i = 0; !rc && i < p->n_prompt; i++)
    if (p->prompt[i] < 0 || p->prompt[i] >= s->n_vocab) rc = -EINVAL;
  for (size_t i = 0; !rc && i < p->n_stops; i++) {
    size_t l = p->stops[i] ? strlen(p->stops[i]) : 0;
    if (!p->stops[i] || l > MAX_STOP_LEN || !utf8_ok(p->stops[i], l)) rc = -EINVAL;
  }
  if (!rc && (uint32_t)p->n_prompt + 1 > s->n_ctx) rc = -E2BIG;
  if (rc) {
    atomic_fetch_add_explicit(&s->st_rejected, 1, RLX);
    return rc;
  }
  struct rt_job *j = job_alloc(s, JOB_GEN);
  if (!j) return -ENOMEM;
  j->n_prompt = p->n_prompt;
  j->max_tokens = p->max_tokens;
  j->sp = p->sampling;
  j->logprobs = p->logprobs;
  j->ignore_eos = p->ignore_eos;
  if (p->constraint && !(j->mt = slm_matcher_new(p->constraint))) {
    job_free(j);
    return -ENOMEM;
  }
  j->n_top = p->logprobs ? p->top_logprobs : 0;
  if (j->n_top > s->n_vocab - 1) j->n_top = s->n_vocab - 1;
  j->prompt = malloc((size_t)p->n_prompt * sizeof *j->prompt);
  bool ok = j->prompt != NULL;
  if (ok) memcpy(j->prompt, p->prompt, (size_t)p->n_prompt * sizeof *j->prompt);
  if (ok && p->n_stops) {
    ok = (j->stops = calloc(p->n_stops, sizeof *j->stops)) != NULL;
    for (size_t i = 0; ok && i < p->n_stops; i++) {
      ok = (j->stops[i] = strdup(p->stops[i])) != NULL;
      j->n_stops = i + 1;
    }
  }
  if (!ok) {
    job_free(j);
    return -ENOMEM;
  }
  rc = enqueue(s, j);
  if (rc) {
    atomic_fetch_add_explicit(&s->st_rejected, 1, RLX);
    job_free(j);
    return rc;
  }
  *out = j;
  return 0;
}

int rt_sched_submit_embed(struct rt_sched *s, const slm_token *const *inputs, const int32_t *lens,
                          size_t n_inputs, struct rt_job **out) {
  if (out) *out = NULL;
  if (!s || !out) return -EINVAL;
  if (!s->p.embeddings) return -ENOTSUP;
  int rc = 0;
  if (!inputs || !lens || n_inputs == 0 || n_inputs > MAX_EMBD_INPUTS) rc = -EINVAL;
  size_t total = 0;
  for (size_t i = 0; !rc && i < n_inputs; i++) {
    if (!inputs[i] || lens[i] < 1) {
      rc = -EINVAL;
      break;
    }
    if ((uint32_t)lens[i] > s->n_ctx) {
      rc = -E2BIG;
      break;
    }
    for (int32_t k = 0; k < lens[i]; k++)
      if (inputs[i][k] < 0 || inputs[i][k] >= s->n_vocab) rc = -EINVAL;
    total += (size_t)lens[i];
  }
  if (!rc && total > INT32_MAX) rc = -E2BIG;
  if (rc) {
    atomic_fetch_add_explicit(&s->st_rejected, 1, RLX);
    return rc;
  }
  struct rt_job *j = job_alloc(s, JOB_EMBD);
  if (!j) return -ENOMEM;
  j->n_inputs = n_inputs;
  j->n_embd = s->n_embd;
  j->in_tok = malloc(total * sizeof *j->in_tok);
  j->in_off = malloc((n_inputs + 1) * sizeof *j->in_off);
  j->embd = calloc(n_inputs * (size_t)s->n_embd, sizeof *j->embd);
  if (!j->in_tok || !j->in_off || !j->embd) {
    job_free(j);
    return -ENOMEM;
  }
  int32_t off = 0;
  for (size_t i = 0; i < n_inputs; i++) {
    j->in_off[i] = off;
    memcpy(j->in_tok + off, inputs[i], (size_t)lens[i] * sizeof *j->in_tok);
    off += lens[i];
  }
  j->in_off[n_inputs] = off;
  rc = enqueue(s, j);
  if (rc) {
    atomic_fetch_add_explicit(&s->st_rejected, 1, RLX);
    job_free(j);
    return rc;
  }
  *out = j;
  return 0;
}

int rt_job_take(struct rt_job *j, struct rt_job_delta *d) {
  memset(d, 0, sizeof *d);
  pthread_mutex_lock(&j->mu);
  /* swap the outbox buffers with the consumer's: the loop reads, the scheduler fills the other */
  char *t = j->c_text;
  size_t tc = j->c_cap;
  j->c_text = j->o_text;
  j->c_cap = j->o_cap;
  d->text_len = j->o_len;
  j->o_text = t;
  j->o_cap = tc;
  j->o_len = 0;
  struct rt_job_token *tk = j->c_tok;
  size_t tkc = j->c_tok_cap;
  struct slm_token_prob *tp = j->c_top;
  j->c_tok = j->o_tok;
  j->c_tok_cap = j->o_tok_cap;
  j->c_top = j->o_top;
  d->n_tokens = j->o_ntok;
  j->o_tok = tk;
  j->o_tok_cap = tkc;
  j->o_top = tp;
  j->o_ntok = 0;
  d->finish = j->finish;
  d->stop_index = j->stop_index;
  d->error = j->finish == RT_FINISH_ERROR ? j->err : NULL;
  d->n_prompt = j->kind == JOB_GEN ? j->n_prompt : (int32_t)(j->in_off ? j->in_off[j->n_inputs] : 0);
  d->n_cached = j->o_cached;
  d->n_generated = j->o_gen;
  d->queued_us = j->o_queued;
  d->prefill_us = j->o_prefill;
  d->decode_us = j->o_decode;
  pthread_mutex_unlock(&j->mu);

  d->text = d->text_len ? j->c_text : "";   /* publish keeps the text NUL-terminated */
  d->tokens = j->c_tok;
  for (size_t i = 0; i < d->n_tokens; i++)
    j->c_tok[i].top = j->n_top ? j->c_top + i * (size_t)j->n_top : NULL;
  bool first_end = d->finish != RT_FINISH_NONE && !j->c_finish_seen;
  if (first_end) {
    j->c_finish_seen = true;
    j->c_embd_ok = j->kind == JOB_EMBD && d->finish == RT_FINISH_EOG;
  }
  return d->text_len > 0 || d->n_tokens > 0 || first_end;
}

void rt_job_cancel(struct rt_job *j) {
  if (!j) return;
  pthread_mutex_lock(&j->mu);
  if (j->finish == RT_FINISH_NONE && !atomic_load(&j->cancel)) {
    atomic_store_explicit(&j->cancel, true, memory_order_release);
    struct rt_sched *s = j->s;   /* alive: the job is not finished (see the DESIGN note) */
    pthread_mutex_lock(&s->mu);
    s->cancel_gen++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
  }
  pthread_mutex_unlock(&j->mu);
}

void rt_job_release(struct rt_job *j) {
  if (!j) return;
  rt_job_cancel(j);
  job_unref(j);
}

const float *rt_job_embeddings(const struct rt_job *j, int32_t *n_embd) {
  if (n_embd) *n_embd = j && j->kind == JOB_EMBD ? j->n_embd : 0;
  return j && j->c_embd_ok ? j->embd : NULL;
}
