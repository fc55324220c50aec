/*
 * vocab_priv.h: the inside of struct slm_vocab, shared by the files that build and use it
 * (vocab.c: loading, pieces, detokenization; tokenizer.c: special-token partition and dispatch;
 * tok_spm.c, tok_bpe.c: the two tokenizer algorithms). Nothing outside slm/ includes this.
 *
 * DESIGN
 * Everything a tokenize call needs is computed once at load and never changes afterwards, so one
 * vocab serves any number of threads without locks:
 *   - toks[]: (text, score, attributes) per id; text points into the GGUF mapping.
 *   - a string table: ids [0, n_tokens) are the tokens; for byte-level BPE, ids [n_tokens, n_str)
 *     are "extra" strings that appear in merges but are not tokens (rare; kept so that merges on
 *     them behave exactly as in llama.cpp). One open-addressing hash maps bytes -> string id.
 *   - merges (BPE): (left string id, right string id) -> (rank, merged string id), so the merge
 *     loop works on integers and never builds strings.
 *   - pieces: the bytes each token renders to (byte tokens decoded, "▁" turned back into spaces,
 *     the GPT-2 byte alphabet decoded), precomputed in one buffer.
 *   - the special tokens llama.cpp's partition step looks for, in its order (longest first), and
 *     a byte trie over them so a call only runs the partition for specials present in its text.
 *   - compiled pcre2 pre-tokenizer patterns (JIT where available). Match data is per call.
 */
#ifndef SLM_VOCAB_PRIV_H
#define SLM_VOCAB_PRIV_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "slm/vocab.h"

/* Token attributes, the same bits llama.cpp derives from tokenizer.ggml.token_type. */
enum {
  VA_UNDEFINED = 0,
  VA_UNKNOWN = 1 << 0,
  VA_UNUSED = 1 << 1,
  VA_NORMAL = 1 << 2,
  VA_CONTROL = 1 << 3,
  VA_USER_DEFINED = 1 << 4,
  VA_BYTE = 1 << 5,
  VA_LSTRIP = 1 << 7,
  VA_RSTRIP = 1 << 8,
};

/* GGUF tokenizer.ggml.token_type values. */
enum {
  VT_UNDEFINED = 0, VT_NORMAL = 1, VT_UNKNOWN = 2, VT_CONTROL = 3, VT_USER_DEFINED = 4,
  VT_UNUSED = 5, VT_BYTE = 6,
};

/* Pre-tokenizer families (tokenizer.ggml.pre), each a list of pcre2 patterns applied in turn. */
enum vocab_pre {
  PRE_NONE = 0,     /* SPM: no regex pre-split */
  PRE_DEFAULT,      /* BPE without a known pre-tokenizer: llama.cpp's "default" list */
  PRE_LLAMA3,       /* llama3, llama-v3, llama-bpe, falcon3, ... */
  PRE_QWEN2,        /* qwen2, deepseek-r1-qwen, stablelm2, megrez */
  PRE_GPT2,         /* gpt-2, phi-2, mpt, olmo, jais, ... */
  PRE_SMOLLM,       /* smollm, starcoder, refact, command-r, codeshell, exaone, minerva-7b */
};

#define VOCAB_MAX_REGEX 4
#define VOCAB_MAX_EOG 32

struct vocab_tok {
  const char *text;   /* into the GGUF mapping (or the extras arena); not NUL-terminated */
  uint32_t len;
  float score;
  uint16_t attr;      /* VA_* bits */
};

struct vocab_hslot { uint32_t id1; uint32_t hash; };   /* id1 = string id + 1; 0 = empty */

struct vocab_mslot {
  uint64_t key;       /* (left << 32) | right; UINT64_MAX = empty */
  int32_t rank;
  int32_t result;     /* string id of left+right */
};

/* One node of the special-token trie (children as a sibling list; the root's children are
 * indexed by first byte in root_child). */
struct vocab_trie {
  int32_t child, sibling;
  int32_t special;    /* index into specials[] of the token ending here, or -1 */
  uint8_t byte;
};

struct vocab_chunk;   /* arena block for extra strings */

struct slm_vocab {
  enum slm_vocab_kind kind;
  enum vocab_pre pre;
  char pre_name[64];
  char model_name[32];

  int32_t n_tokens;
  int32_t n_str;                 /* tokens + extra strings */
  struct vocab_tok *strs;        /* n_str entries; the first n_tokens are the tokens */
  struct vocab_hslot *hslots;
  uint32_t hmask;
  struct vocab_chunk *chunks;    /* storage of the extra strings */

  /* byte-level BPE */
  struct vocab_mslot *mslots;
  uint64_t mmask;
  int32_t n_merges;
  int32_t byte_sid[256];         /* string id of the one-char string encoding byte b (or -1) */
  char byte_enc[256][3];         /* GPT-2 alphabet: byte -> UTF-8 of its stand-in code point */
  uint8_t byte_enc_len[256];
  int16_t byte_dec[324];         /* stand-in code point (< 324) -> byte, or -1 */
  pcre2_code *re[VOCAB_MAX_REGEX];
  bool re_jit[VOCAB_MAX_REGEX];
  int n_re;
  bool ignore_merges;            /* llama3: a word that is a token is emitted whole */
  /* Memo per token (WHOLE_*): does the merge step (BPE merges or SPM bigrams) turn the token's
   * own text into exactly that one token? Filled lazily as a by-product of tokenizing (a word
   * that is a token runs the merge loop once; the answer is stored), after which such a word
   * skips the loop with the same result. Atomic bytes with relaxed order: every thread computes
   * the same deterministic value, so concurrent fills are benign and the vocab stays logically
   * immutable. */
  _Atomic uint8_t *whole;

  /* SPM */
  int32_t byte_tok[256];         /* <0xNN> (or the one-byte token) for byte fallback, -1 if none */
  bool spm_words;                /* no token has "▁" after another character: see tok_spm.c */

  /* special ids (-1 = none) */
  int32_t bos, eos, eot, eom, unk, pad, sep, mask, nl;
  int32_t eog[VOCAB_MAX_EOG];
  int n_eog;

  bool add_bos, add_eos, add_space_prefix, clean_spaces, remove_extra_ws;
  int32_t max_token_len;

  /* rendered pieces (render_special = true), pieces[piece_off[i] .. piece_off[i+1]) */
  char *pieces;
  uint32_t *piece_off;

  /* special tokens, llama.cpp's cache_special_tokens order (longest text first) */
  int32_t *specials;
  int32_t n_specials;
  struct vocab_trie *trie;
  int32_t n_trie;
  int32_t root_child[256];

  char *chat_template;           /* NUL-terminated copy, or NULL */
};

/* vocab.c: string table lookups. */
uint32_t slm_vocab_hash(const void *p, size_t n);
/* Id of the string (any id < n_str), or -1. */
int32_t slm_vocab_find_str(const struct slm_vocab *v, const char *p, size_t n);
/* Token id of TEXT, or -1 (extra strings are not tokens). */
static inline int32_t slm_vocab_find_tok(const struct slm_vocab *v, const char *p, size_t n) {
  int32_t id = slm_vocab_find_str(v, p, n);
  return id < v->n_tokens ? id : -1;
}
/* Merge of strings A and B: rank (>= 0) and *result, or -1 if A B is not a merge. */
int32_t slm_vocab_merge(const struct slm_vocab *v, int32_t a, int32_t b, int32_t *result);

/* Output sink of a tokenize call: writes while there is room, always counts. */
struct tok_out {
  slm_token *out;
  int64_t cap;
  int64_t n;
};
static inline void tok_emit(struct tok_out *o, int32_t t) {
  if (o->n < o->cap) o->out[o->n] = t;
  o->n++;
}

/* Per-call scratch buffers: grow-only, freed by tok_scratch_free. */
struct tok_scratch {
  void *buf[8];
  size_t cap[8];
  pcre2_match_data *md;
};
/* Returns buffer SLOT with at least N bytes (contents not kept across growth), or NULL. */
void *tok_scratch_get(struct tok_scratch *s, int slot, size_t n);
void tok_scratch_free(struct tok_scratch *s);

/* Scratch slots (each tokenizer file owns the ones it uses). */
enum { SCR_TEXT = 0, SCR_SYMS, SCR_HEAP, SCR_SEGS, SCR_SEGS2, SCR_WORD, SCR_FRAG, SCR_FRAG2 };

/* tok_spm.c: SentencePiece-style tokenization of one raw fragment (already space-prefixed and
 * escaped by the caller: TEXT uses "▁" for spaces). Returns 0 or -ENOMEM. */
int slm_tok_spm(const struct slm_vocab *v, const char *text, size_t len, struct tok_out *o,
                struct tok_scratch *s);
/* tok_bpe.c: byte-level BPE of one raw fragment. Returns 0 or a negative errno. */
int slm_tok_bpe(const struct slm_vocab *v, const char *text, size_t len, struct tok_out *o,
                struct tok_scratch *s);
/* tok_bpe.c: BPE merges of one pre-tokenized word (raw bytes). */
int slm_tok_bpe_word(const struct slm_vocab *v, const uint8_t *w, size_t m, struct tok_out *o,
                     struct tok_scratch *s);
/* tok_bpe.c: compiles the pre-tokenizer patterns of v->pre. Returns 0 or -EINVAL with a message. */
int slm_tok_bpe_init(struct slm_vocab *v, char *err, size_t errlen);
void slm_tok_bpe_free(struct slm_vocab *v);
enum { WHOLE_UNKNOWN = 0, WHOLE_YES = 1, WHOLE_NO = 2 };
static inline int vocab_whole_get(const struct slm_vocab *v, int32_t id) {
  return atomic_load_explicit(&v->whole[id], memory_order_relaxed);
}
static inline void vocab_whole_set(const struct slm_vocab *v, int32_t id, bool yes) {
  atomic_store_explicit(&v->whole[id], (uint8_t)(yes ? WHOLE_YES : WHOLE_NO),
                        memory_order_relaxed);
}

/* The GPT-2 byte alphabet: stand-in code point of byte B. */
uint32_t slm_bpe_byte_cp(uint8_t b);

/* utf8.c-style helpers (tokenizer.c): length of the strictly valid UTF-8 sequence at P (1..4),
 * or 0 if the bytes at P do not start one. */
size_t slm_utf8_valid_len(const uint8_t *p, size_t n);
/* Bytes of the UTF-8 sequence the lead byte C announces (1 for continuation/invalid bytes), as
 * llama.cpp's unicode_len_utf8. */
static inline size_t slm_utf8_lead_len(uint8_t c) {
  static const uint8_t lut[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return lut[c >> 4];
}

#endif
