/*
 * sched.h: local execution: one scheduler thread that owns the engine contexts of one local model
 * and serves many generation (and embedding) jobs at once. Uses only slm/ (and pthreads): it knows
 * no HTTP, no API format, no event loop. Private to router/.
 *
 * DESIGN. Jobs are submitted from the event-loop thread; the scheduler thread runs them:
 *   - continuous batching: up to n_slots sequences share one slm_context (one KV sequence each);
 *     a job joins a free slot between two decode steps and leaves it when it finishes, without
 *     waiting for the others;
 *   - chunked prefill: a prompt is fed at most prefill_chunk tokens per step, in the same
 *     slm_decode batch as the running sequences' next tokens, so a long prompt never freezes the
 *     streams that are already decoding (each step carries every decoding sequence's token);
 *   - prefix reuse: a slot keeps the tokens of its last job in its KV cache; a new job goes to the
 *     free slot whose cached tokens share the longest prefix with its prompt, and only the rest is
 *     computed (at least the last prompt token is always recomputed, for its logits);
 *   - sampling per job (its own slm_sampler, seeded), stop strings (slm_stop_scan: text that could
 *     still become a stop string is held back; a stop string and what follows are never released),
 *     UTF-8 reassembly (a character split over byte tokens is released whole), EOG tokens, max
 *     tokens and a full context as finish reasons;
 *   - cancellation: rt_job_cancel() is seen before the next decode step; the slot is free for the
 *     next job from that step on.
 * Output goes back through each job's outbox (a mutex-protected buffer the loop swaps out with
 * rt_job_take); after appending to any outboxes in a step the scheduler calls notify() once
 * (from its own thread: the loop side makes it an event_active()).
 *
 * Lifetimes: a job is shared by the loop and the scheduler (reference counted); the loop's
 * reference ends with rt_job_release() (which also cancels a job still running). The model must
 * outlive the scheduler. rt_sched_free() joins the thread; jobs not yet released by then finish as
 * RT_FINISH_CANCELLED (the loop may still take and release them).
 *
 * Threads: rt_sched_submit/_cancel/_take/_release/_stats/_drain may be called from any one thread
 * (the loop) concurrently with the scheduler thread; notify runs on the scheduler thread.
 */
#ifndef TIERGATE_ROUTER_LOCAL_SCHED_H
#define TIERGATE_ROUTER_LOCAL_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "slm/slm.h"

struct rt_sched;
struct rt_job;

struct rt_sched_params {
  const struct slm_model *model;   /* borrowed; must outlive the scheduler */
  int n_threads;                   /* engine threads (the scheduler thread is one); >= 1 */
  uint32_t n_ctx;                  /* KV cells per sequence (prompt + generated tokens); capped
                                    * at the model's training context (rt_sched_n_ctx) */
  uint32_t n_slots;                /* sequences decoded together; 1..256 */
  uint32_t n_queue;                /* jobs waiting for a slot beyond the running ones; 0..65536 */
  enum slm_kv_type kv_type;
  uint32_t prefill_chunk;          /* prompt tokens of one job per step; 0: default 128 */
  uint32_t n_batch;                /* tokens of one slm_decode call; 0: default max(512, n_slots);
                                    * must be >= n_slots */
  bool embeddings;                 /* also serve embedding jobs (a second context, mean pooling,
                                    * created on the first embedding job) */
  /* Called on the scheduler thread after a step appended output to one or more jobs (at most
   * once per step), and when a job finishes (jobs ended by rt_sched_drain too, right after it;
   * not for those ended by rt_sched_free). Must be cheap and thread-safe; it may call
   * rt_job_cancel. */
  void (*notify)(void *ud);
  void *notify_ud;
};
/* Defaults: n_threads = online CPUs, n_ctx 4096, n_slots 4, n_queue 64, F16 KV, chunk 128,
 * n_batch 512, embeddings on, notify NULL. */
struct rt_sched_params rt_sched_default_params(void);

/* Creates the contexts (every KV cache and scratch buffer allocated here) and starts the thread.
 * Returns NULL with a message in ERR (bad parameter, out of memory, engine error). */
struct rt_sched *rt_sched_new(const struct rt_sched_params *p, char *err, size_t errlen);
/* Stops the thread (running jobs end as RT_FINISH_CANCELLED), frees the contexts. Jobs the loop
 * still holds stay valid until released. Accepts NULL. */
void rt_sched_free(struct rt_sched *s);
/* Shutdown, first step: jobs still queued (no slot yet) finish at once as RT_FINISH_SHUTDOWN;
 * running ones go on; new submissions get -ESHUTDOWN. */
void rt_sched_drain(struct rt_sched *s);
/* Bytes the KV cache of the generation context takes when full (slots x n_ctx). */
size_t rt_sched_kv_bytes(const struct rt_sched *s);
/* KV cells per sequence after capping (what -E2BIG is measured against). */
uint32_t rt_sched_n_ctx(const struct rt_sched *s);

/* ------------------------------------------------------------------ generation jobs */

struct rt_job_params {
  const slm_token *prompt;         /* copied; n_prompt >= 1 */
  int32_t n_prompt;
  int32_t max_tokens;              /* > 0; generation also ends when the sequence's context is
                                    * full (RT_FINISH_CONTEXT) */
  struct slm_sampler_params sampling;   /* temperature <= 0: greedy (reproducible) */
  const char *const *stops;        /* stop strings, copied; none when n_stops is 0; at most 16,
                                    * each valid UTF-8 of at most 256 bytes ("" never matches) */
  size_t n_stops;
  bool ignore_eos;                 /* never sample an EOG token (its logit is masked, as llama.cpp's
                                    * ignore_eos does): generation ends only by max_tokens, a stop
                                    * string or the context (benchmarks) */
  bool logprobs;                   /* report each generated token with its log-probability */
  int32_t top_logprobs;            /* and the top-n alternatives (0..20); needs logprobs */
  /* Structured output (optional): every generated text is in the constraint's language (a JSON
   * Schema, a regex, choices: slm.h "constrained decoding"), completed within max_tokens (the
   * matcher's budget); the job ends RT_FINISH_DONE when nothing can follow. Its vocabulary index
   * must be the model's. The job holds its own matcher (and so a reference) until it ends. */
  struct slm_constraint *constraint;
};

enum rt_finish {
  RT_FINISH_NONE = 0,      /* still running */
  RT_FINISH_EOG,           /* the model ended its turn (EOS/EOT/...); the token is not text */
  RT_FINISH_DONE,          /* the constraint's text is complete (nothing can follow); the last
                            * token is text */
  RT_FINISH_STOP,          /* a stop string matched (stop_index says which); it is not released */
  RT_FINISH_LENGTH,        /* max_tokens generated */
  RT_FINISH_CONTEXT,       /* the sequence's context is full */
  RT_FINISH_CANCELLED,     /* rt_job_cancel / rt_job_release / rt_sched_free */
  RT_FINISH_SHUTDOWN,      /* still queued at rt_sched_drain */
  RT_FINISH_ERROR,         /* the engine failed (error says why) */
};

/* Submits a job. Returns 0 and *out (the caller holds one reference), or:
 *   -EAGAIN     n_slots jobs running and n_queue waiting: the queue is full
 *   -E2BIG      n_prompt + 1 > n_ctx: the prompt does not fit the context
 *   -EINVAL     bad parameters (no prompt, a token out of range, max_tokens <= 0, top_logprobs
 *               out of 0..20 or without logprobs, stop strings beyond the limits above)
 *   -ESHUTDOWN  draining or stopped
 *   -ENOMEM */
int rt_sched_submit(struct rt_sched *s, const struct rt_job_params *p, struct rt_job **out);

/* One generated token, for logprobs. TOP points at n_top alternatives, best first. */
struct rt_job_token {
  slm_token token;
  float logprob;
  const struct slm_token_prob *top;
  int32_t n_top;
};

/* What a job produced since the previous rt_job_take. Pointers stay valid until the next
 * rt_job_take or rt_job_release on the same job. */
struct rt_job_delta {
  const char *text;               /* newly released text: valid UTF-8 (the model's bytes, with
                                   * any invalid sequence replaced by U+FFFD), stop-safe,
                                   * NUL-terminated ("" when text_len is 0). It is the tokens'
                                   * pieces as they are: special tokens render as nothing, the
                                   * SentencePiece leading space stays, no clean-up of spaces */
  size_t text_len;
  const struct rt_job_token *tokens;   /* with logprobs: the tokens whose text was released (in
                                        * order; a token cut by a stop string is included) */
  size_t n_tokens;
  /* the rest is set once, on the take that sees the end */
  enum rt_finish finish;          /* RT_FINISH_NONE while running */
  int stop_index;                 /* RT_FINISH_STOP: index into params.stops */
  const char *error;              /* RT_FINISH_ERROR: message */
  /* usage and timings, current as of this take */
  int32_t n_prompt;               /* prompt tokens */
  int32_t n_cached;               /* of which reused from a slot's cache (not recomputed) */
  int32_t n_generated;            /* tokens sampled (an EOG token counts; stop-cut ones too) */
  int64_t queued_us;              /* submit -> slot assigned (0 until then) */
  int64_t prefill_us;             /* slot assigned -> first token sampled (0 until then) */
  int64_t decode_us;              /* first token -> last token sampled */
};

/* Swaps out the job's output. Returns 1 if the delta holds anything new (text, tokens, or the
 * finish seen for the first time), 0 if nothing happened since the last take. After the end,
 * every take reports the same finish (and returns 0). */
int rt_job_take(struct rt_job *j, struct rt_job_delta *d);
/* Asks the scheduler to stop the job before its next decode step (idempotent). The job then
 * finishes as RT_FINISH_CANCELLED (unless it had already finished). */
void rt_job_cancel(struct rt_job *j);
/* Drops the caller's reference (cancelling the job if it still runs). Accepts NULL. */
void rt_job_release(struct rt_job *j);

/* ------------------------------------------------------------------ embedding jobs */

/* Submits N_INPUTS texts (token arrays; each 1..n_ctx tokens; 1..2048 inputs) to embed in one
 * job. The result (rt_job_embeddings) is n_inputs x n_embd floats, mean-pooled over each input's
 * tokens and L2-normalized. Errors as rt_sched_submit (-E2BIG: an input longer than n_ctx), and
 * -ENOTSUP when the scheduler has no embeddings. While generation jobs run, an embedding batch
 * holds at most prefill_chunk tokens between two generation steps (a longer input goes in chunks,
 * its mean accumulated), so streams keep going. */
int rt_sched_submit_embed(struct rt_sched *s, const slm_token *const *inputs, const int32_t *lens,
                          size_t n_inputs, struct rt_job **out);
/* After rt_job_take reported RT_FINISH_EOG for an embedding job: its vectors (NULL before).
 * Valid until rt_job_release. *n_embd gets the vector size. */
const float *rt_job_embeddings(const struct rt_job *j, int32_t *n_embd);

/* ------------------------------------------------------------------ metrics */

/* Counters of the generation context (embedding batches are not steps). */
struct rt_sched_stats {
  uint32_t queued;                /* jobs waiting for a slot (or the embedding context) now */
  uint32_t active;                /* sequences in slots now */
  uint32_t last_batch;            /* tokens in the last decode step */
  uint64_t steps;                 /* decode steps run */
  uint64_t batch_tokens;          /* tokens over all steps (batch size = batch_tokens / steps) */
  uint64_t prompt_tokens;         /* prompt tokens computed (cache hits excluded) */
  uint64_t cached_tokens;         /* prompt tokens reused from slot caches */
  uint64_t generated_tokens;      /* tokens sampled */
  uint64_t decode_us;             /* time in slm_decode */
  uint64_t jobs_done, jobs_rejected;
};
void rt_sched_stats(const struct rt_sched *s, struct rt_sched_stats *out);

#endif
