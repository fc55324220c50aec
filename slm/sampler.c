/*
 * sampler.c: choosing the next token from logits, and stop-string scanning.
 *
 * The chain, in llama.cpp's order: penalties (repetition, presence, frequency over the last
 * penalty_last_n tokens) -> greedy if temperature <= 0 -> top-k -> top-p -> min-p -> temperature
 * -> draw. Top-p and min-p see the probabilities before temperature, as in llama.cpp.
 * Log-probabilities are reported on the full vocabulary after penalties and temperature (greedy
 * counts as temperature 1), before any truncation.
 *
 * All buffers (n_vocab-sized) are allocated by slm_sampler_new; sampling allocates nothing (the
 * mask buffer of constrained sampling is made on its first use). Ties always resolve to the
 * lowest token id, so results do not depend on sort stability.
 *
 * Under a constraint (slm_sampler_sample_constrained) the chain runs over the allowed tokens
 * only. Greedy and top-k need just the best allowed tokens, so candidates are taken in logit
 * order and checked one by one (a few byte steps each); the full mask is computed only when
 * that does not find them quickly, when top-k is off, or when log-probabilities are wanted.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "slm/internal.h"

struct slm_sampler {
  struct slm_sampler_params p;
  int32_t n_vocab;
  uint64_t rng;
  float *work;        /* [n_vocab] logits after penalties */
  int32_t *idx;       /* [n_vocab] candidate ids */
  int32_t *idx2;      /* [n_vocab] for the top-n report */
  float *prob;        /* [n_vocab] candidate probabilities */
  int32_t *count;     /* [n_vocab] occurrences in the penalty window (kept all-zero between calls) */
  slm_token *hist;    /* ring of the last penalty_last_n tokens */
  int32_t hist_n, hist_head;
  uint32_t *mask;     /* constrained sampling: allowed-token bits (made on first use) */
  int32_t mask_words;
};

struct slm_sampler_params slm_sampler_default_params(void) {
  return (struct slm_sampler_params){
      .temperature = 0.8f,
      .top_k = 40,
      .top_p = 0.95f,
      .min_p = 0.05f,
      .repeat_penalty = 1.0f,
      .presence_penalty = 0.0f,
      .frequency_penalty = 0.0f,
      .penalty_last_n = 64,
      .seed = 0xC0FFEE,
      .n_probs = 0,
  };
}

/* splitmix64: small, fast, and the same sequence on every platform */
static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static double rng_uniform(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

struct slm_sampler *slm_sampler_new(const struct slm_model *m, const struct slm_sampler_params *pp) {
  if (!m) return NULL;
  struct slm_sampler *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->p = pp ? *pp : slm_sampler_default_params();
  if (s->p.penalty_last_n < 0) s->p.penalty_last_n = 0;
  if (s->p.penalty_last_n > 1 << 20) s->p.penalty_last_n = 1 << 20;
  if (s->p.n_probs < 0) s->p.n_probs = 0;
  s->n_vocab = slm_n_vocab(m);
  if (s->p.n_probs > s->n_vocab - 1) s->p.n_probs = s->n_vocab - 1;
  size_t nv = (size_t)(s->n_vocab > 0 ? s->n_vocab : 1);
  s->work = malloc(nv * sizeof *s->work);
  s->idx = malloc(nv * sizeof *s->idx);
  s->idx2 = malloc(nv * sizeof *s->idx2);
  s->prob = malloc(nv * sizeof *s->prob);
  s->count = calloc(nv, sizeof *s->count);
  s->hist = malloc((size_t)(s->p.penalty_last_n > 0 ? s->p.penalty_last_n : 1) * sizeof *s->hist);
  if (!s->work || !s->idx || !s->idx2 || !s->prob || !s->count || !s->hist || s->n_vocab <= 0) {
    slm_sampler_free(s);
    return NULL;
  }
  s->rng = s->p.seed;
  return s;
}

void slm_sampler_free(struct slm_sampler *s) {
  if (!s) return;
  free(s->work); free(s->idx); free(s->idx2); free(s->prob); free(s->count); free(s->hist);
  free(s->mask);
  free(s);
}

void slm_sampler_reset(struct slm_sampler *s) {
  s->hist_n = s->hist_head = 0;
  s->rng = s->p.seed;
}

void slm_sampler_accept(struct slm_sampler *s, slm_token t) {
  if (s->p.penalty_last_n == 0 || t < 0 || t >= s->n_vocab) return;
  s->hist[s->hist_head] = t;
  s->hist_head = (s->hist_head + 1) % s->p.penalty_last_n;
  if (s->hist_n < s->p.penalty_last_n) s->hist_n++;
}

/* ---- ordering: higher value first, then lower id */

static inline bool before(const float *v, int32_t a, int32_t b) {
  return v[a] > v[b] || (v[a] == v[b] && a < b);
}

/* Reorders ids[0..n) so that its first K are the K best (in any order). Quickselect, O(n). */
static void select_top(const float *v, int32_t *ids, int32_t n, int32_t k) {
  int32_t lo = 0, hi = n - 1;
  while (lo < hi) {
    int32_t mid = lo + (hi - lo) / 2;
    /* median of three as pivot */
    int32_t a = ids[lo], b = ids[mid], c = ids[hi], piv;
    if (before(v, a, b)) piv = before(v, b, c) ? b : (before(v, a, c) ? c : a);
    else piv = before(v, a, c) ? a : (before(v, b, c) ? c : b);
    int32_t i = lo, j = hi;
    while (i <= j) {
      while (before(v, ids[i], piv)) i++;
      while (before(v, piv, ids[j])) j--;
      if (i <= j) {
        int32_t t = ids[i]; ids[i] = ids[j]; ids[j] = t;
        i++, j--;
      }
    }
    if (k - 1 <= j) hi = j;
    else if (k - 1 >= i) lo = i;
    else break;
  }
}

/* Sorts ids[0..n) best first: insertion sort for short runs, qsort otherwise (its comparator
 * reads the values through a thread-local pointer, so samplers on different threads do not clash). */
static _Thread_local const float *tl_vals;
static int cmp_ids_tl(const void *pa, const void *pb) {
  int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
  return before(tl_vals, a, b) ? -1 : (before(tl_vals, b, a) ? 1 : 0);
}
static void sort_ids(const float *v, int32_t *ids, int32_t n) {
  if (n <= 32) {
    for (int32_t i = 1; i < n; i++) {
      int32_t x = ids[i], j = i - 1;
      while (j >= 0 && before(v, x, ids[j])) ids[j + 1] = ids[j], j--;
      ids[j + 1] = x;
    }
    return;
  }
  tl_vals = v;
  qsort(ids, (size_t)n, sizeof *ids, cmp_ids_tl);
}

/* The K best of ids 0..N-1 into OUT[0..K), sorted (K <= N): one pass, inserting only what beats
 * the current K-th (few inserts for any logits: the running K-th best rises fast). */
static void top_sorted(const float *v, int32_t n, int32_t k, int32_t *out) {
  for (int32_t i = 0; i < k; i++) {
    int32_t j = i - 1;
    while (j >= 0 && before(v, i, out[j])) out[j + 1] = out[j], j--;
    out[j + 1] = i;
  }
  for (int32_t i = k; i < n; i++) {
    if (!before(v, i, out[k - 1])) continue;
    int32_t j = k - 2;
    while (j >= 0 && before(v, i, out[j])) out[j + 1] = out[j], j--;
    out[j + 1] = i;
  }
}

static int32_t argmax(const float *v, int32_t n) {
  int32_t best = 0;
  for (int32_t i = 1; i < n; i++)
    if (v[i] > v[best]) best = i;   /* strict: ties keep the lowest id */
  return best;
}

static void apply_penalties(struct slm_sampler *s, float *w) {
  const struct slm_sampler_params *p = &s->p;
  if (s->hist_n == 0) return;
  if (p->repeat_penalty == 1.0f && p->presence_penalty == 0.0f && p->frequency_penalty == 0.0f)
    return;
  for (int32_t i = 0; i < s->hist_n; i++) s->count[s->hist[i]]++;
  for (int32_t i = 0; i < s->hist_n; i++) {
    slm_token t = s->hist[i];
    int32_t n = s->count[t];
    if (n == 0) continue;   /* already done */
    if (p->repeat_penalty != 1.0f && p->repeat_penalty > 0.0f)
      w[t] = w[t] > 0 ? w[t] / p->repeat_penalty : w[t] * p->repeat_penalty;
    w[t] -= (float)n * p->frequency_penalty + p->presence_penalty;
    s->count[t] = 0;
  }
}

/* Top-p, min-p (these on the probabilities before temperature), temperature and the draw over
 * the candidates s->idx[0 .. n) (what top-k left); MX is the largest logit among them. */
static slm_token draw(struct slm_sampler *s, const float *w, int32_t n, float mx, float temp) {
  const struct slm_sampler_params *p = &s->p;
  slm_token chosen;
  if (p->top_p < 1.0f) {
    /* probabilities over the current candidates (before temperature) */
    double sum = 0;
    for (int32_t i = 0; i < n; i++) sum += exp((double)w[s->idx[i]] - mx);
    /* sort a growing best prefix until it holds top_p of the mass */
    int32_t m = n < 64 ? n : 64;
    for (;;) {
      if (m < n) select_top(w, s->idx, n, m);
      sort_ids(w, s->idx, m);
      double cum = 0;
      int32_t keep = m;
      for (int32_t i = 0; i < m; i++) {
        cum += exp((double)w[s->idx[i]] - mx) / sum;
        if (cum >= p->top_p) {
          keep = i + 1;
          break;
        }
      }
      if (keep < m || m == n) {
        n = keep;
        break;
      }
      m = m * 4 < n ? m * 4 : n;
    }
  }
  if (p->min_p > 0.0f) {
    /* keep p >= min_p * p_max, i.e. logit >= max + log(min_p) */
    float cut = mx + logf(p->min_p);
    int32_t k = 0;
    for (int32_t i = 0; i < n; i++)
      if (w[s->idx[i]] >= cut) s->idx[k++] = s->idx[i];
    n = k > 0 ? k : 1;   /* the best token always passes (it has p = p_max) */
  }
  /* temperature and the draw; order of candidates does not matter for the draw's
   * distribution but must be deterministic: it is (quickselect and sorts are). */
  double sum = 0;
  for (int32_t i = 0; i < n; i++) {
    double e = exp(((double)w[s->idx[i]] - mx) / temp);
    s->prob[i] = (float)e;
    sum += e;
  }
  double r = rng_uniform(&s->rng) * sum, acc = 0;
  chosen = s->idx[n - 1];
  for (int32_t i = 0; i < n; i++) {
    acc += s->prob[i];
    if (r < acc) {
      chosen = s->idx[i];
      break;
    }
  }
  return chosen;
}

slm_token slm_sampler_sample(struct slm_sampler *s, const float *logits, struct slm_token_prob *top) {
  const struct slm_sampler_params *p = &s->p;
  const int32_t nv = s->n_vocab;
  float *w = s->work;
  memcpy(w, logits, (size_t)nv * sizeof *w);
  apply_penalties(s, w);
  bool greedy = !(p->temperature > 0.0f);
  float temp = greedy ? 1.0f : p->temperature;
  slm_token chosen;

  if (greedy) {
    chosen = argmax(w, nv);
  } else {
    int32_t n = nv;
    for (int32_t i = 0; i < nv; i++) s->idx[i] = i;
    if (p->top_k > 0 && p->top_k < n) {
      select_top(w, s->idx, n, p->top_k);
      n = p->top_k;
    }
    float mx = w[argmax(w, nv)];
    chosen = draw(s, w, n, mx, temp);
  }

  if (top) {
    /* log-softmax of w / temp over the whole vocabulary */
    float mx = w[argmax(w, nv)];
    double sum = 0;
    for (int32_t i = 0; i < nv; i++) sum += exp(((double)w[i] - mx) / temp);
    double lse = mx / temp + log(sum);
    top[0].token = chosen;
    top[0].logprob = (float)((double)w[chosen] / temp - lse);
    int32_t k = p->n_probs;
    if (k > 0) {
      for (int32_t i = 0; i < nv; i++) s->idx2[i] = i;
      select_top(w, s->idx2, nv, k);
      sort_ids(w, s->idx2, k);
      for (int32_t i = 0; i < k; i++) {
        top[1 + i].token = s->idx2[i];
        top[1 + i].logprob = (float)((double)w[s->idx2[i]] / temp - lse);
      }
    }
  }
  slm_sampler_accept(s, chosen);
  return chosen;
}

/* ---------------------------------------------------------------- under a constraint */

static uint32_t *mask_buf(struct slm_sampler *s, int32_t nv) {
  int32_t words = (nv + 31) / 32;
  if (s->mask_words < words) {
    uint32_t *m = realloc(s->mask, (size_t)words * sizeof *m);
    if (!m) return NULL;
    s->mask = m;
    s->mask_words = words;
  }
  return s->mask;
}

slm_token slm_sampler_sample_constrained(struct slm_sampler *s, const float *logits,
                                         struct slm_matcher *mt, struct slm_token_prob *top) {
  if (!mt) return slm_sampler_sample(s, logits, top);
  const struct slm_sampler_params *p = &s->p;
  const int32_t nv = s->n_vocab;
  float *w = s->work;
  memcpy(w, logits, (size_t)nv * sizeof *w);
  apply_penalties(s, w);
  bool greedy = !(p->temperature > 0.0f);
  float temp = greedy ? 1.0f : p->temperature;
  slm_token chosen = -1;
  bool full = top != NULL || (!greedy && p->top_k <= 0);
  if (!full) {
    /* the WANT best allowed tokens, in logit order: check a growing best prefix */
    int32_t want = greedy ? 1 : (p->top_k < nv ? p->top_k : nv);
    int32_t m = greedy ? 8 : (want * 4 > 64 ? want * 4 : 64);
    if (m > nv) m = nv;
    int32_t got = 0;
    /* greedy: the best allowed among the 8, then the 32 best overall (one pass each, no
     * selection over the vocabulary); past them the segments below */
    int32_t checked = 0;   /* the best CHECKED tokens are refused already */
    for (int32_t k = 8; greedy && !got && checked < 32 && checked < nv; k *= 4) {
      if (k > nv) k = nv;
      top_sorted(w, nv, k, s->idx);
      for (int32_t i = checked; i < k && !got; i++)
        if (slm_matcher_token_allowed(mt, s->idx[i])) s->idx2[got++] = s->idx[i];
      checked = k;
      if (!got) m = k * 4 < nv ? k * 4 : nv;
    }
    /* else the best in growing segments: (value, id) is a total order, so each segment is the
     * next best of the rest and the checked prefix never needs selecting again (it was selected
     * and sorted over the whole vocabulary each round: most of a constrained step) */
    for (int32_t i = 0; got < want && i < nv; i++) s->idx[i] = i;
    for (int32_t done = 0; got < want;) {
      if (m < nv) select_top(w, s->idx + done, nv - done, m - done);
      sort_ids(w, s->idx + done, m - done);
      for (int32_t i = done > checked ? done : checked; i < m && got < want; i++)
        if (slm_matcher_token_allowed(mt, s->idx[i])) s->idx2[got++] = s->idx[i];
      done = m;
      if (got == want || m == nv) break;
      if (m >= 4096) {   /* most of the best are refused: the mask is cheaper now */
        full = true;
        break;
      }
      m = m * 4 < nv ? m * 4 : nv;
    }
    if (!full) {
      if (got == 0) return -1;
      if (greedy) {
        chosen = s->idx2[0];
      } else {
        memcpy(s->idx, s->idx2, (size_t)got * sizeof *s->idx);
        chosen = draw(s, w, got, w[s->idx[0]], temp);
      }
    }
  }
  uint32_t *bits = NULL;
  if (full || top) {
    int32_t mv = slm_matcher_n_vocab(mt);
    bits = mask_buf(s, mv > nv ? mv : nv);
    if (!bits) return -1;
    int32_t na = slm_matcher_fill_mask(mt, bits);
    if (na <= 0) return -1;
    if (full) {
      int32_t n = 0;
      for (int32_t t = 0; t < nv && t < mv; t++)
        if (bits[t >> 5] >> (t & 31) & 1) s->idx[n++] = t;
      if (n == 0) return -1;
      if (greedy) {
        chosen = s->idx[0];
        for (int32_t i = 1; i < n; i++)
          if (w[s->idx[i]] > w[chosen]) chosen = s->idx[i];   /* strict: ties keep the lowest id */
      } else {
        if (p->top_k > 0 && p->top_k < n) {
          select_top(w, s->idx, n, p->top_k);
          n = p->top_k;
        }
        float mx = w[s->idx[0]];
        for (int32_t i = 1; i < n; i++)
          if (w[s->idx[i]] > mx) mx = w[s->idx[i]];
        chosen = draw(s, w, n, mx, temp);
      }
    }
  }
  if (top) {
    /* log-softmax of w / temp over the allowed tokens */
    int32_t mv = slm_matcher_n_vocab(mt), n = 0;
    float mx = -INFINITY;
    for (int32_t t = 0; t < nv && t < mv; t++)
      if (bits[t >> 5] >> (t & 31) & 1) {
        s->idx2[n++] = t;
        if (w[t] > mx) mx = w[t];
      }
    double sum = 0;
    for (int32_t i = 0; i < n; i++) sum += exp(((double)w[s->idx2[i]] - mx) / temp);
    double lse = mx / temp + log(sum);
    top[0].token = chosen;
    top[0].logprob = (float)((double)w[chosen] / temp - lse);
    int32_t k = p->n_probs < n ? p->n_probs : n;
    if (k > 0) {
      select_top(w, s->idx2, n, k);
      sort_ids(w, s->idx2, k);
    }
    for (int32_t i = 0; i < p->n_probs; i++) {
      top[1 + i].token = i < k ? s->idx2[i] : -1;
      top[1 + i].logprob = i < k ? (float)((double)w[s->idx2[i]] / temp - lse) : -INFINITY;
    }
  }
  slm_sampler_accept(s, chosen);
  return chosen;
}

/* ---------------------------------------------------------------- stop strings */

int64_t slm_stop_scan(const char *text, size_t len, const char *const *stops, size_t n_stops,
                      size_t *safe) {
  int64_t first = -1;
  size_t hold = 0;   /* bytes at the end that may begin a stop string */
  for (size_t i = 0; i < n_stops; i++) {
    const char *st = stops[i];
    size_t sl = st ? strlen(st) : 0;
    if (sl == 0) continue;
    if (len >= sl) {
      for (size_t off = 0; off + sl <= len; off++)
        if (text[off] == st[0] && !memcmp(text + off, st, sl)) {
          if (first < 0 || (int64_t)off < first) first = (int64_t)off;
          break;
        }
    }
    /* longest suffix of text that is a proper prefix of st */
    size_t maxk = sl - 1 < len ? sl - 1 : len;
    for (size_t k = maxk; k > hold; k--)
      if (!memcmp(text + len - k, st, k)) {
        hold = k;
        break;
      }
  }
  if (safe) *safe = first >= 0 ? (size_t)first : len - hold;
  return first;
}
