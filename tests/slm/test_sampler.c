/*
 * test_sampler.c: the sampler on synthetic logits (greedy ties, top-k/top-p/min-p truncation,
 * temperature, penalties, seeds, log-probabilities) and stop-string scanning. Uses the
 * stories260K vocabulary (512 tokens) loaded vocabulary-only, so no forward pass is involved.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slm/slm.h"
#include "tests/check.h"

#define NV 512

static struct slm_model *m;

static int draw_counts(struct slm_sampler_params p, const float *lg, int n, int *counts) {
  struct slm_sampler *s = slm_sampler_new(m, &p);
  CHECK(s != NULL);
  if (!s) return 0;
  memset(counts, 0, sizeof(int) * NV);
  for (int i = 0; i < n; i++) {
    slm_token t = slm_sampler_sample(s, lg, NULL);
    CHECK(t >= 0 && t < NV);
    if (t >= 0 && t < NV) counts[t]++;
  }
  slm_sampler_free(s);
  return 1;
}

static void test_greedy(void) {
  float lg[NV];
  for (int i = 0; i < NV; i++) lg[i] = -(float)(i % 7);
  lg[100] = 3.0f;
  lg[40] = 3.0f;   /* tie: lowest id wins */
  struct slm_sampler_params p = slm_sampler_default_params();
  p.temperature = 0;
  struct slm_sampler *s = slm_sampler_new(m, &p);
  CHECK_EQ_INT(slm_sampler_sample(s, lg, NULL), 40);
  lg[100] = 3.5f;
  CHECK_EQ_INT(slm_sampler_sample(s, lg, NULL), 100);
  slm_sampler_free(s);
}

static void test_logprobs(void) {
  float lg[NV];
  for (int i = 0; i < NV; i++) lg[i] = (float)(i % 13) * 0.1f;
  lg[7] = 5.0f;
  lg[300] = 4.0f;
  struct slm_sampler_params p = slm_sampler_default_params();
  p.temperature = 0;
  p.n_probs = 3;
  struct slm_sampler *s = slm_sampler_new(m, &p);
  struct slm_token_prob tp[4];
  slm_token t = slm_sampler_sample(s, lg, tp);
  CHECK_EQ_INT(t, 7);
  CHECK_EQ_INT(tp[0].token, 7);
  CHECK_EQ_INT(tp[1].token, 7);
  CHECK_EQ_INT(tp[2].token, 300);
  double sum = 0, mx = 5.0;
  for (int i = 0; i < NV; i++) sum += exp(lg[i] - mx);
  CHECK_NEAR(tp[0].logprob, -log(sum), 1e-4);
  CHECK_NEAR(tp[2].logprob, 4.0 - mx - log(sum), 1e-4);
  CHECK(tp[3].logprob <= tp[2].logprob);
  slm_sampler_free(s);
}

static void test_topk_topp_minp(void) {
  float lg[NV];
  for (int i = 0; i < NV; i++) lg[i] = -10.0f;
  lg[1] = 2.0f; lg[2] = 1.5f; lg[3] = 1.0f; lg[4] = 0.5f;
  int counts[NV];
  struct slm_sampler_params p = slm_sampler_default_params();
  p.temperature = 1.0f;
  p.top_p = 1.0f;
  p.min_p = 0.0f;

  p.top_k = 1;   /* top-k 1 is greedy */
  draw_counts(p, lg, 200, counts);
  CHECK_EQ_INT(counts[1], 200);

  p.top_k = 2;
  draw_counts(p, lg, 4000, counts);
  CHECK_EQ_INT(counts[1] + counts[2], 4000);
  /* p(1)/p(2) = e^0.5 = 1.65: expect ~2490 vs ~1510 */
  CHECK_MSG(counts[1] > 2300 && counts[1] < 2700, "top-k 2 split %d/%d", counts[1], counts[2]);

  /* top-p: probabilities of 1..4 (others ~0): .415 .252 .153 .093 ... keep until cum >= 0.6 -> {1,2} */
  p.top_k = 0;
  p.top_p = 0.6f;
  draw_counts(p, lg, 2000, counts);
  CHECK_EQ_INT(counts[1] + counts[2], 2000);
  CHECK(counts[2] > 0);

  /* min-p 0.5: keep p >= 0.5 * p_max: e^-0.5 = .61 passes (id 2), e^-1 = .37 does not */
  p.top_p = 1.0f;
  p.min_p = 0.5f;
  draw_counts(p, lg, 2000, counts);
  CHECK_EQ_INT(counts[1] + counts[2], 2000);

  /* temperature: high temperature flattens; low sharpens */
  p.min_p = 0.0f;
  p.top_k = 4;
  p.temperature = 0.1f;
  draw_counts(p, lg, 1000, counts);
  CHECK(counts[1] > 990);
  p.temperature = 100.0f;
  draw_counts(p, lg, 4000, counts);
  for (int i = 1; i <= 4; i++) CHECK_MSG(counts[i] > 850 && counts[i] < 1150, "flat %d: %d", i, counts[i]);

  /* no truncation at all over the full vocabulary still returns valid tokens */
  p.top_k = 0;
  p.temperature = 1.0f;
  draw_counts(p, lg, 100, counts);
}

static void test_seed(void) {
  float lg[NV];
  for (int i = 0; i < NV; i++) lg[i] = sinf((float)i) * 2.0f;
  struct slm_sampler_params p = slm_sampler_default_params();
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0;
  p.temperature = 1.0f;
  p.seed = 42;
  struct slm_sampler *a = slm_sampler_new(m, &p), *b = slm_sampler_new(m, &p);
  p.seed = 43;
  struct slm_sampler *c = slm_sampler_new(m, &p);
  int same_ab = 0, same_ac = 0;
  slm_token first[50];
  for (int i = 0; i < 50; i++) {
    slm_token ta = slm_sampler_sample(a, lg, NULL), tb = slm_sampler_sample(b, lg, NULL);
    slm_token tc = slm_sampler_sample(c, lg, NULL);
    first[i] = ta;
    same_ab += ta == tb;
    same_ac += ta == tc;
  }
  CHECK_EQ_INT(same_ab, 50);
  CHECK(same_ac < 25);
  slm_sampler_reset(a);   /* reset restarts the RNG */
  int again = 0;
  for (int i = 0; i < 50; i++) again += slm_sampler_sample(a, lg, NULL) == first[i];
  CHECK_EQ_INT(again, 50);
  slm_sampler_free(a);
  slm_sampler_free(b);
  slm_sampler_free(c);
}

static void test_penalties(void) {
  float lg[NV];
  for (int i = 0; i < NV; i++) lg[i] = 0.0f;
  lg[10] = 2.0f;
  lg[11] = 1.9f;
  lg[12] = -1.0f;
  struct slm_sampler_params p = slm_sampler_default_params();
  p.temperature = 0;
  p.repeat_penalty = 1.2f;
  struct slm_sampler *s = slm_sampler_new(m, &p);
  slm_sampler_accept(s, 10);   /* 2.0 / 1.2 = 1.67 < 1.9 */
  CHECK_EQ_INT(slm_sampler_sample(s, lg, NULL), 11);
  /* 11 is now in the history too: 1.9/1.2 = 1.58 < 1.67 -> 10 */
  CHECK_EQ_INT(slm_sampler_sample(s, lg, NULL), 10);
  slm_sampler_free(s);

  /* frequency: 10 seen twice: 2.0 - 2*0.1 = 1.8 < 1.9 */
  p.repeat_penalty = 1.0f;
  p.frequency_penalty = 0.1f;
  s = slm_sampler_new(m, &p);
  slm_sampler_accept(s, 10);
  CHECK_EQ_INT(slm_sampler_sample(s, lg, NULL), 10);   /* 2.0 - 0.1 = 1.9: tie with 11, lower id */
  CHECK_EQ_INT(slm_sampler_sample(s, lg, NULL), 11);   /* now 1.8 */
  slm_sampler_free(s);

  /* presence: once is enough; window limits the memory */
  p.frequency_penalty = 0;
  p.presence_penalty = 0.5f;
  p.penalty_last_n = 2;
  s = slm_sampler_new(m, &p);
  slm_sampler_accept(s, 10);
  CHECK_EQ_INT(slm_sampler_sample(s, lg, NULL), 11);   /* 10: 1.5 */
  slm_sampler_accept(s, 100);
  slm_sampler_accept(s, 101);   /* 10 and 11 out of the window of 2 */
  CHECK_EQ_INT(slm_sampler_sample(s, lg, NULL), 10);
  slm_sampler_free(s);
}

static void test_stop_scan(void) {
  const char *stops[] = {"</s>", "\n\n", "STOP"};
  size_t safe = 0;
  CHECK_EQ_INT(slm_stop_scan("hello", 5, stops, 3, &safe), -1);
  CHECK_EQ_INT(safe, 5);
  CHECK_EQ_INT(slm_stop_scan("hello </", 8, stops, 3, &safe), -1);
  CHECK_EQ_INT(safe, 6);   /* "</" may grow into "</s>" */
  CHECK_EQ_INT(slm_stop_scan("hello </s> more", 15, stops, 3, &safe), 6);
  CHECK_EQ_INT(safe, 6);
  CHECK_EQ_INT(slm_stop_scan("a\n\nSTOP", 7, stops, 3, &safe), 1);
  CHECK_EQ_INT(slm_stop_scan("xSTO", 4, stops, 3, &safe), -1);
  CHECK_EQ_INT(safe, 1);
  CHECK_EQ_INT(slm_stop_scan("", 0, stops, 3, &safe), -1);
  CHECK_EQ_INT(safe, 0);
  CHECK_EQ_INT(slm_stop_scan("abc", 3, NULL, 0, &safe), -1);
  CHECK_EQ_INT(safe, 3);
}

int main(void) {
  struct slm_model_params mp = slm_model_default_params();
  mp.vocab_only = true;
  char err[256];
  m = slm_model_load(check_shared_path("models/stories260K.gguf"), &mp, err, sizeof err);
  CHECK_MSG(m != NULL, "load: %s", err);
  if (!m) return check_done();
  CHECK_EQ_INT(slm_n_vocab(m), NV);
  test_greedy();
  test_logprobs();
  test_topk_topp_minp();
  test_seed();
  test_penalties();
  test_stop_scan();
  slm_model_free(m);
  return check_done();
}
