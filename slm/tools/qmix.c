/*
 * qmix.c: which tensor type each tensor gets when a model is quantized to a "file type", the way
 * llama.cpp's llama-quantize decides it (src/llama-quant.cpp: llama_tensor_get_type and
 * tensor_type_fallback), restricted to the file types the engine supports. Shared by
 * `slm quantize` and `slm mkmodel`, so a mkmodel Q4_K_M file has the tensor types a real one has.
 *
 * The rules, for a tensor that may be quantized at all (2-D or more, name ending in "weight", not
 * a norm):
 *  - output.weight (and token_embd.weight when the output is tied to it): Q8_0 if its rows are not
 *    a multiple of the file type's block, else Q6_K unless the file type is Q8_0.
 *  - attn_v: Q4_K_M/Q5_K_M use Q6_K on "more bits" layers (the first and last eighth and every
 *    third in between); Q4_K_S uses Q5_K on the first 4.
 *  - ffn_down: same "more bits" rule for Q4_K_M/Q5_K_M (Q6_K); Q4_K_S uses Q5_K on the first
 *    eighth of the layers.
 *  - attn_qkv (fused): Q5_K for Q4_K_M, Q6_K for Q5_K_M.
 *  - then, for every quantized choice, rows that are not a multiple of the type's block fall back:
 *    Q4_K->Q5_0, Q5_K->Q5_1, Q6_K->Q8_0 (and F16 if even 32 does not divide the row).
 * Counters (attn_v index, ffn_down index) advance in llama.cpp's tensor order: global tensors
 * first, then layer by layer, names sorted within each (slm_qmix_cmp_names).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "slm/tools/tools.h"

static const struct slm_ftype_info ftypes[] = {
  { "F32", 0, SLM_TYPE_F32, "all weights F32" },
  { "F16", 1, SLM_TYPE_F16, "2-D weights F16" },
  { "BF16", 32, SLM_TYPE_BF16, "2-D weights BF16" },
  { "Q8_0", 7, SLM_TYPE_Q8_0, "8-bit, blocks of 32" },
  { "Q4_0", 2, SLM_TYPE_Q4_0, "4-bit, blocks of 32, output Q6_K" },
  { "Q4_1", 3, SLM_TYPE_Q4_1, "4-bit with minimum, output Q6_K" },
  { "Q5_0", 8, SLM_TYPE_Q5_0, "5-bit, blocks of 32, output Q6_K" },
  { "Q5_1", 9, SLM_TYPE_Q5_1, "5-bit with minimum, output Q6_K" },
  { "Q4_K_S", 14, SLM_TYPE_Q4_K, "Q4_K, a few attn_v/ffn_down Q5_K" },
  { "Q4_K_M", 15, SLM_TYPE_Q4_K, "Q4_K, half of attn_v/ffn_down Q6_K" },
  { "Q4_K", 15, SLM_TYPE_Q4_K, "alias for Q4_K_M (as in llama-quantize)" },
  { "Q5_K_S", 16, SLM_TYPE_Q5_K, "Q5_K everywhere" },
  { "Q5_K_M", 17, SLM_TYPE_Q5_K, "Q5_K, half of attn_v/ffn_down Q6_K" },
  { "Q5_K", 17, SLM_TYPE_Q5_K, "alias for Q5_K_M (as in llama-quantize)" },
  { "Q6_K", 18, SLM_TYPE_Q6_K, "6-bit K quants" },
};

const struct slm_ftype_info *slm_ftype_find(const char *name) {
  for (size_t i = 0; i < sizeof ftypes / sizeof ftypes[0]; i++)
    if (!strcasecmp(name, ftypes[i].name)) return &ftypes[i];
  return NULL;
}

const struct slm_ftype_info *slm_ftype_at(size_t i) {
  return i < sizeof ftypes / sizeof ftypes[0] ? &ftypes[i] : NULL;
}

const char *slm_ftype_name(uint32_t ftype) {
  for (size_t i = 0; i < sizeof ftypes / sizeof ftypes[0]; i++)
    if (ftypes[i].ftype == ftype) return ftypes[i].name;
  return NULL;
}

/* ---------------------------------------------------------------- ordering */

static int layer_of(const char *name) {
  int l = -1;
  if (sscanf(name, "blk.%d.", &l) != 1) l = -1;
  return l;
}

int slm_qmix_cmp_names(const char *a, const char *b) {
  int la = layer_of(a), lb = layer_of(b);
  if (la != lb) return la < lb ? -1 : 1;
  return strcmp(a, b);
}

/* ---------------------------------------------------------------- chooser */

enum cat { CAT_OTHER, CAT_OUTPUT, CAT_TOKEN_EMBD, CAT_QKV, CAT_KV_B, CAT_V, CAT_K, CAT_Q, CAT_O,
           CAT_UP, CAT_GATE, CAT_DOWN };

static enum cat category(const char *n) {
  if (!strcmp(n, "output.weight")) return CAT_OUTPUT;
  if (!strcmp(n, "token_embd.weight") || !strcmp(n, "per_layer_token_embd.weight")) return CAT_TOKEN_EMBD;
  if (strstr(n, "attn_qkv.weight")) return CAT_QKV;
  if (strstr(n, "attn_kv_b.weight")) return CAT_KV_B;
  if (strstr(n, "attn_v.weight")) return CAT_V;
  if (strstr(n, "attn_k.weight")) return CAT_K;
  if (strstr(n, "attn_q.weight")) return CAT_Q;
  if (strstr(n, "attn_output.weight")) return CAT_O;
  if (strstr(n, "ffn_up")) return CAT_UP;
  if (strstr(n, "ffn_gate")) return CAT_GATE;
  if (strstr(n, "ffn_down")) return CAT_DOWN;
  return CAT_OTHER;
}

static bool is_attn_v(enum cat c) { return c == CAT_V || c == CAT_QKV || c == CAT_KV_B; }

bool slm_qmix_counts_as_attn_v(const char *name) { return is_attn_v(category(name)); }

void slm_qmix_init(struct slm_qmix *q, const struct slm_ftype_info *ft, bool pure, int n_layer,
                   bool tied, int n_attention_wv) {
  memset(q, 0, sizeof *q);
  q->ft = ft;
  q->pure = pure;
  q->n_layer = n_layer;
  q->tied = tied;
  q->n_attention_wv = n_attention_wv;
}

/* llama.cpp's tensor_allows_quantization for the architectures we handle. */
static bool allows_quantization(const char *n, uint32_t n_dims) {
  if (n_dims < 2) return false;
  size_t len = strlen(n);
  if (len < 6 || strcmp(n + len - 6, "weight")) return false;
  if (strstr(n, "_norm.weight")) return false;
  if (strstr(n, "ffn_gate_inp.weight")) return false;
  if (!strcmp(n, "position_embd.weight") || !strcmp(n, "token_types.weight")) return false;
  return true;
}

static bool is_quantized(enum slm_type t) {
  return t != SLM_TYPE_F32 && t != SLM_TYPE_F16 && t != SLM_TYPE_BF16;
}

static bool use_more_bits(int i_layer, int n_layers) {
  return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

static enum slm_type fallback(struct slm_qmix *q, int64_t ncols, enum slm_type t) {
  int blck = slm_type_infos[t].blck;
  if (ncols % blck == 0) return t;
  q->n_fallback++;
  enum slm_type r = t;
  switch (t) {
    case SLM_TYPE_Q2_K: case SLM_TYPE_Q3_K: r = SLM_TYPE_Q4_0; break;
    case SLM_TYPE_Q4_K: r = SLM_TYPE_Q5_0; break;
    case SLM_TYPE_Q5_K: r = SLM_TYPE_Q5_1; break;
    case SLM_TYPE_Q6_K: r = SLM_TYPE_Q8_0; break;
    default: break;   /* a 32-block type: F16 below */
  }
  if (ncols % slm_type_infos[r].blck) r = SLM_TYPE_F16;
  return r;
}

enum slm_type slm_qmix_choose(struct slm_qmix *q, const char *name, uint32_t n_dims, int64_t ne0,
                              enum slm_type cur) {
  if (!allows_quantization(name, n_dims)) return cur;
  uint32_t ft = q->ft->ftype;
  enum slm_type t = q->ft->default_type;
  if (!is_quantized(t)) return t;
  if (!q->pure) {
    enum cat c = category(name);
    if (c == CAT_OUTPUT || (q->tied && c == CAT_TOKEN_EMBD)) {
      if (ne0 % slm_type_infos[t].blck) t = SLM_TYPE_Q8_0;
      else if (t != SLM_TYPE_Q8_0) t = SLM_TYPE_Q6_K;
    } else if (c == CAT_TOKEN_EMBD) {
      /* unchanged for the file types we support */
    } else if (is_attn_v(c)) {
      if ((ft == 15 || ft == 17) && use_more_bits(q->i_attention_wv, q->n_attention_wv)) t = SLM_TYPE_Q6_K;
      else if (ft == 14 && q->i_attention_wv < 4) t = SLM_TYPE_Q5_K;
      q->i_attention_wv++;
    } else if (c == CAT_DOWN) {
      int il = q->i_ffn_down, nl = q->n_layer;
      if (ft == 15) {
        if (use_more_bits(il, nl)) t = SLM_TYPE_Q6_K;
      } else if (ft == 17 && use_more_bits(il, nl)) {
        t = SLM_TYPE_Q6_K;
      } else if (ft == 14 && il < nl / 8) {
        t = SLM_TYPE_Q5_K;
      }
      q->i_ffn_down++;
    } else if (c == CAT_QKV) {
      if (ft == 15) t = SLM_TYPE_Q5_K;
      else if (ft == 17) t = SLM_TYPE_Q6_K;
    }
  }
  return fallback(q, ne0, t);
}
