/*
 * cn.h: private interface of slm/constrain/, the constrained-decoding part of the engine (JSON
 * Schema, regular expressions and literal choices compiled to token masks). Nothing outside
 * slm/ (and its tests) includes this; the public API is the "constrained decoding" section of
 * slm/slm.h.
 *
 * DESIGN
 * The pipeline, one file per stage:
 *   json.c      a small JSON parser (DOM in an arena, members in document order, numbers kept as
 *               text) for schemas; also JSON equality and compact serialization
 *   cpset.c     sets of Unicode code points as sorted interval lists
 *   regex.c     ECMA-262 regular expressions (the subset JSON Schema uses) -> NFA over code points
 *   cdfa.c      deterministic automata over code points: subset construction, products,
 *               complement; string values, object keys and number texts all live here, so
 *               boolean combinations of them are exact
 *   minimize.c  DFA minimization (Valmari) for code point automata and byte machines
 *   numlang.c   number texts as automata: ranges, integers, multipleOf
 *   formats.c   the string formats as regular expressions
 *   schema.c    a schema document: drafts, $ref resolution, the keyword table
 *   normal.c    schemas -> a normal form: per JSON type, unions of conjunctions, negation pushed
 *               to the leaves, sound by construction (each step keeps a subset of the meaning);
 *               enum and const values are checked against the rest of their schema here
 *               (three-valued: a value that cannot be judged is left out, never let through)
 *   gstr.c      a code point language as JSON string literals (every escape form) or raw UTF-8
 *   gram.c      byte-level grammar builder: NFA fragments with calls -> one DFA per machine
 *   emit.c      normal form -> grammar (objects, arrays, strings in their JSON encodings)
 *   match.c     the runtime matcher: a set of call stacks over the machines
 *   toktrie.c   per-vocabulary token tables (a token trie in preorder, slices)
 *   mask.c      token masks: cached per machine state, walked over the trie otherwise
 *   api.c       the public functions
 * Errors at compile time carry the keyword and the JSON pointer of the schema location
 * (struct cn_err).
 */
#ifndef SLM_CONSTRAIN_CN_H
#define SLM_CONSTRAIN_CN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- memory */

/* Bump allocator: many small objects freed together. Chunks are malloc'd as needed. */
struct cn_arena {
  struct cn_chunk *head;
  size_t used_bytes;     /* total bytes handed out (for limits) */
  size_t limit_bytes;    /* 0 = no limit; cn_alloc returns NULL past it */
};
void cn_arena_init(struct cn_arena *a, size_t limit_bytes);
void cn_arena_free(struct cn_arena *a);
/* N bytes, 16-byte aligned, zeroed; NULL when out of memory or past the limit. */
void *cn_alloc(struct cn_arena *a, size_t n);
void *cn_memdup(struct cn_arena *a, const void *p, size_t n);   /* adds a NUL after the copy */

/* Grows *P (elements of ELEM bytes, capacity *CAP) to hold at least NEED. Returns 0 or -ENOMEM
 * (then *P is unchanged). Caps: NEED above 2^31 elements fails. */
int cn_grow(void *pp, size_t *cap, size_t need, size_t elem);

/* ---------------------------------------------------------------- key map (util.c) */

/* Open-addressing map from keys (arrays of uint32) to dense ids 0, 1, 2, ... in insertion order.
 * Keys are copied into a pool: key i is pool[key_off[i] .. key_off[i + 1]). */
struct cn_keymap {
  uint32_t *slot_id;    /* id + 1, 0 = empty */
  uint32_t *slot_hash;
  size_t mask;
  uint32_t *pool;
  size_t pool_n, pool_cap;
  size_t *key_off;      /* key of id i: pool[key_off[i] .. key_off[i + 1]) */
  size_t nkeys, cap_keys;
};
int cn_km_init(struct cn_keymap *m);
void cn_km_free(struct cn_keymap *m);
/* Id of KEY (N words), inserting it if new (*ADDED); UINT32_MAX when out of memory. */
uint32_t cn_km_get(struct cn_keymap *m, const uint32_t *key, size_t n, bool *added);
uint32_t cn_hash_u32s(const uint32_t *k, size_t n);

/* ---------------------------------------------------------------- errors */

/* A compile error: the keyword it is about (may be ""), the JSON pointer of the schema location
 * ("" for the root), and a message. */
struct cn_err {
  char keyword[64];
  char pointer[256];
  char msg[256];
};
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
int cn_errf(struct cn_err *e, const char *keyword, const char *pointer, const char *fmt, ...);

/* ---------------------------------------------------------------- UTF-8 */

/* Decodes one strictly valid UTF-8 sequence at P (N bytes available): returns its length (1-4)
 * and the code point in *CP, or 0 if the bytes are not valid UTF-8 (overlong, surrogate, past
 * U+10FFFF, truncated). */
int cn_utf8_dec(const uint8_t *p, size_t n, uint32_t *cp);
/* Encodes CP (not a surrogate, <= 0x10FFFF) into OUT; returns the byte count (1-4). */
int cn_utf8_enc(uint32_t cp, uint8_t *out);

/* ---------------------------------------------------------------- JSON (json.c) */

enum cj_type { CJ_NULL = 0, CJ_FALSE, CJ_TRUE, CJ_NUMBER, CJ_STRING, CJ_ARRAY, CJ_OBJECT };

struct cj_member;

/* One JSON value. Strings are decoded to UTF-8 (NUL-terminated for convenience, may contain NUL
 * bytes: use len). A string with an unpaired surrogate escape has CJ_F_BADSTR set (its text
 * holds U+FFFD there). Numbers keep their source text. */
struct cj_val {
  uint8_t type;
  uint8_t flags;
  uint32_t len;          /* string bytes, number text bytes, array items, object members */
  union {
    const char *s;       /* CJ_STRING: decoded UTF-8; CJ_NUMBER: the text */
    struct cj_val *items;
    struct cj_member *members;
  } u;
  double num;            /* CJ_NUMBER: strtod of the text (may be +-inf for huge values) */
  uint32_t src_off, src_len;   /* where the value is in the parsed text */
};
enum { CJ_F_BADSTR = 1, CJ_F_INT = 2 /* number text without fraction or exponent */ };

struct cj_member {
  const char *key;       /* decoded UTF-8, NUL-terminated */
  uint32_t klen;
  uint8_t kflags;        /* CJ_F_BADSTR */
  struct cj_val val;
};

/* Parses LEN bytes of TEXT (one JSON value, surrounding whitespace allowed) into A. Nesting
 * deeper than MAX_DEPTH and invalid UTF-8 are errors. Returns the root or NULL with a message
 * ("offset N: ...") in ERR (capacity ERRLEN). */
struct cj_val *cj_parse(struct cn_arena *a, const char *text, size_t len, int max_depth,
                        char *err, size_t errlen);

/* The member KEY of object O (first one with that key), or NULL. */
const struct cj_val *cj_get(const struct cj_val *o, const char *key);
/* Three-valued results (also used by the validator). */
enum cn_tri { CN_FALSE = 0, CN_TRUE = 1, CN_UNKNOWN = 2 };
/* JSON Schema equality: numbers by value (1 == 1.0), objects regardless of member order, true
 * != 1. UNKNOWN where the exact decimal value and the IEEE double (what most validators
 * compare) disagree. */
enum cn_tri cj_equal(const struct cj_val *a, const struct cj_val *b);
/* Compares two number texts by exact decimal value: -1, 0, 1. */
int cj_num_cmp_exact(const char *a, size_t alen, const char *b, size_t blen);
/* Appends the compact serialization of V to *BUF (growable; *LEN bytes used, *CAP allocated):
 * members in order, strings escaped minimally (", \, control characters), numbers as written.
 * Returns 0 or -ENOMEM. */
int cj_write(const struct cj_val *v, char **buf, size_t *len, size_t *cap);
/* Copies TEXT without the whitespace outside strings into OUT (at least LEN bytes); returns the
 * new length. For a JSON text known to be valid. */
size_t cj_compact(const char *text, size_t len, char *out);

/* ---------------------------------------------------------------- code point sets (cpset.c) */

#define CN_CP_MAX 0x10FFFFu
/* A set of code points as sorted, disjoint, non-adjacent closed intervals. Surrogates
 * (U+D800-U+DFFF) are never members: every constructor removes them. Heap-allocated. */
struct cpset {
  uint32_t *r;     /* pairs: r[2i] = lo, r[2i+1] = hi */
  size_t n;        /* number of intervals */
  size_t cap;      /* pairs allocated */
};
void cpset_init(struct cpset *s);
void cpset_free(struct cpset *s);
int cpset_add(struct cpset *s, uint32_t lo, uint32_t hi);         /* 0 or -ENOMEM */
int cpset_add_set(struct cpset *s, const struct cpset *o);
int cpset_copy(struct cpset *dst, const struct cpset *src);
int cpset_negate(struct cpset *s);                                 /* in place, w.r.t. all chars */
int cpset_intersect(struct cpset *s, const struct cpset *o);       /* in place */
bool cpset_has(const struct cpset *s, uint32_t cp);
bool cpset_empty(const struct cpset *s);

/* ---------------------------------------------------------------- automata over code points (cdfa.c) */

/* An NFA over code points (Thompson construction target of regex.c and the builders below).
 * Edge labels: >= 0 an index into sets[], or one of the special labels. Heap-allocated. */
enum { CN_EPS = -1, CN_BEGIN = -2 /* ^: only at the start */, CN_END = -3 /* $: only at the end */ };
struct cnfa_edge { uint32_t from, to; int32_t label; };
struct cnfa {
  uint32_t n;                  /* states */
  struct cnfa_edge *e;
  size_t ne, cap_e;
  struct cpset *sets;
  size_t nsets, cap_sets;
  uint32_t start, accept;
  size_t max_states;           /* 0 = no limit; past it cnfa_state fails */
};
void cnfa_init(struct cnfa *a, size_t max_states);
void cnfa_free(struct cnfa *a);
/* A new state; UINT32_MAX when out of memory or past max_states. */
uint32_t cnfa_state(struct cnfa *a);
int cnfa_edge(struct cnfa *a, uint32_t from, uint32_t to, int32_t label);
/* An edge labelled with a copy of SET. */
int cnfa_set_edge(struct cnfa *a, uint32_t from, uint32_t to, const struct cpset *set);
int cnfa_range_edge(struct cnfa *a, uint32_t from, uint32_t to, uint32_t lo, uint32_t hi);

/* A DFA over code points: state 0 is the start; state s has edges [off[s], off[s+1]) sorted by
 * lo, disjoint; a code point without an edge rejects. Immutable once built; heap-allocated. */
struct cdfa_edge { uint32_t lo, hi; uint32_t to; };
struct cdfa {
  uint32_t n;
  uint32_t *off;               /* n + 1 */
  struct cdfa_edge *e;
  uint8_t *acc;                /* n */
};
void cdfa_free(struct cdfa *d);   /* frees the contents, not D */
/* Subset construction (with ^/$ assertions) + minimization. Returns 0, -ENOMEM, or -E2BIG past
 * MAX_STATES DFA states. */
int cdfa_from_nfa(const struct cnfa *a, size_t max_states, struct cdfa *out);
enum cdfa_op { CDFA_AND, CDFA_OR, CDFA_DIFF /* a and not b */ };
int cdfa_product(const struct cdfa *a, const struct cdfa *b, enum cdfa_op op, size_t max_states,
                 struct cdfa *out);
int cdfa_complement(const struct cdfa *a, struct cdfa *out);
int cdfa_copy(const struct cdfa *a, struct cdfa *out);
/* Minimal equivalent DFA, without states that cannot reach acceptance. */
int cdfa_minimize(const struct cdfa *a, struct cdfa *out);
bool cdfa_is_empty(const struct cdfa *d);
/* Accepts every string? */
bool cdfa_is_all(const struct cdfa *d);
/* Builders: exactly the UTF-8 string S; every string; strings of MIN..MAX code points (MAX < 0:
 * no upper bound) over SET (NULL: every code point); the empty language. */
int cdfa_literal(const char *s, size_t len, struct cdfa *out);
int cdfa_all(struct cdfa *out);
int cdfa_length(uint32_t min, int64_t max, const struct cpset *set, size_t max_states,
                struct cdfa *out);
int cdfa_none(struct cdfa *out);
/* Runs D over the UTF-8 text S; invalid UTF-8 rejects. */
bool cdfa_match(const struct cdfa *d, const char *s, size_t len);
/* The state after code point CP from state S, or UINT32_MAX. */
uint32_t cdfa_step(const struct cdfa *d, uint32_t s, uint32_t cp);
/* Length in code points of the shortest accepted string, or -1 if empty. */
int64_t cdfa_min_len(const struct cdfa *d);
/* Writes one shortest accepted string (UTF-8, at most CAP bytes) into BUF; returns its length in
 * bytes or -1 (empty language or no room). */
int cdfa_shortest(const struct cdfa *d, char *buf, size_t cap);
/* Calls CB(string, bytes, CTX) for every string of the finite language of D, in code point order
 * (D must be finite: see cdfa_finite). Returns 0, CB's non-zero result, or -E2BIG past MAX
 * strings or 1 KiB strings. */
int cdfa_enumerate(const struct cdfa *d, size_t max, int (*cb)(const char *s, size_t n, void *ctx),
                   void *ctx);
/* Is the language finite? Then *COUNT gets the number of strings (capped at CAP + 1). */
bool cdfa_finite(const struct cdfa *d, size_t cap, size_t *count);

/* ---------------------------------------------------------------- regular expressions (regex.c) */

/* How classes whose meaning differs between regex engines are read. STRICT: what every engine
 * (ECMA-262 with or without the u flag, Python's re) matches: \d = [0-9], \w = [A-Za-z0-9_],
 * "." and negated classes exclude line terminators and astral characters, $ only at the end.
 * LOOSE: what any of them matches (its complement is what none matches). A pattern used
 * positively is compiled STRICT; under a negation LOOSE, and then complemented. */
enum rx_mode { RX_STRICT = 0, RX_LOOSE = 1 };
/* Compiles PATTERN (UTF-8, LEN bytes) into NFA A with search semantics when SEARCH (JSON
 * Schema's "pattern": a match anywhere in the string) or whole-string semantics otherwise. On
 * an unsupported or malformed construct returns -EINVAL with a message in MSG (capacity CAP),
 * e.g. "backreference \\1 is not supported". -E2BIG when the automaton would be too large. */
int rx_compile(const char *pattern, size_t len, enum rx_mode mode, bool search, struct cnfa *a,
               char *msg, size_t cap);
/* rx_compile + cdfa_from_nfa. */
int rx_to_cdfa(const char *pattern, size_t len, enum rx_mode mode, bool search, size_t max_states,
               struct cdfa *out, char *msg, size_t cap);

/* ---------------------------------------------------------------- grammars (gram.c, gstr.c) */

/* A grammar is a set of machines: deterministic automata over bytes whose states may also
 * "call" another machine (push a return state, run the callee to one of its accepting states,
 * pop). Machine 0 is the root. Recursion ($ref cycles, arbitrary JSON values) goes through calls;
 * everything else is inlined. Builders work on NFAs per machine ("gnfa"), gb_finish determinizes
 * and minimizes each machine and lays out the runtime tables below. */
enum { GB_EPS = -2, GB_BYTES = -1 };
struct gnfa_edge { uint32_t from, to; int32_t kind; /* GB_EPS, GB_BYTES, or >= 0 a callee */ uint8_t lo, hi; };
struct gb_machine {
  uint32_t n;
  struct gnfa_edge *e;
  size_t ne, cap_e;
  uint32_t start, accept;
};
struct gb {
  struct gb_machine *m;
  size_t nm, cap_m;
  size_t max_nfa_states;     /* per machine */
  size_t max_dfa_states;     /* all machines together */
  bool ws_flexible;          /* JSON whitespace between tokens (else none) */
  bool all_escapes;          /* strings: every JSON encoding (else raw UTF-8 + required escapes) */
  int err;                   /* sticky: the first error (-ENOMEM, -E2BIG) */
  int any;                   /* the any-value machine (gb_any_value), or -1 */
  const void **mfrag;        /* per machine: its body is this cached automaton (gb_str_machine) */
  size_t cap_mfrag;
  struct { const struct cdfa *d; int m; } strm[64];   /* string machines made, by automaton */
  int nstrm;
  /* one-character machines (gstr.c), by code point set */
  struct cn_keymap chm;
  int *chm_id;
  size_t chm_cap;
  bool chm_init;
};
void gb_init(struct gb *b);
void gb_free(struct gb *b);
/* A new machine (its start state made); returns its id or -1. */
int gb_machine(struct gb *b);
uint32_t gb_state(struct gb *b, int m);   /* UINT32_MAX on error (then b->err is set) */
void gb_eps(struct gb *b, int m, uint32_t from, uint32_t to);
void gb_bytes(struct gb *b, int m, uint32_t from, uint32_t to, uint8_t lo, uint8_t hi);
void gb_call(struct gb *b, int m, uint32_t from, uint32_t to, int callee);
/* The bytes of S from FROM; returns the end state. */
uint32_t gb_lit(struct gb *b, int m, uint32_t from, const char *s, size_t len);
/* Optional JSON whitespace at FROM (a loop when ws_flexible); returns the state after it. */
uint32_t gb_ws(struct gb *b, int m, uint32_t from);
/* gstr.c: the language of D (code points) embedded at FROM as a JSON string literal (quotes
 * included; escapes per b->all_escapes), or as raw UTF-8 (RAW). Returns the end state. */
uint32_t gb_cdfa(struct gb *b, int m, uint32_t from, const struct cdfa *d, bool raw);
/* The same built state by state (gb_cdfa embeds a cached minimal automaton instead where it can). */
uint32_t gb_cdfa_direct(struct gb *b, int m, uint32_t from, const struct cdfa *d, bool raw);
/* A machine for the JSON strings whose value is in D (D must live until gb_finish); the same
 * machine for the same D. Small automata come from the process-wide cache without being
 * determinized again. Returns the machine or -1. */
int gb_str_machine(struct gb *b, const struct cdfa *d);
/* A JSON number at FROM (INT_ONLY: -?(0|[1-9][0-9]*)); returns the end state. */
uint32_t gb_number(struct gb *b, int m, uint32_t from, bool int_only);
/* A builtin machine for any JSON value (made once per builder). */
int gb_any_value(struct gb *b);

struct gm {                  /* one machine at run time */
  uint32_t base, n;          /* global state ids base .. base + n - 1; base is the start */
  uint32_t ncls;
  uint8_t cls[256];          /* byte -> class */
  uint8_t first[32];         /* bytes that can begin the machine (bit set) */
};
struct gcall { uint32_t machine; uint32_t ret; /* global id of the return state */ };
struct cn_grammar {
  uint32_t nm, ns;           /* machines, global states */
  struct gm *m;
  uint32_t *mach;            /* ns: machine of a state */
  int32_t *next;             /* transitions: next[row[g] + m.cls[byte]] = global target or -1 */
  uint32_t *row;             /* ns */
  uint8_t *acc;              /* ns: accepting (the machine may return / the root may end) */
  uint8_t *simple;           /* ns: not accepting (a byte never returns from the frame) */
  uint32_t *call_off;        /* ns + 1 */
  struct gcall *calls;
  uint32_t *dist;            /* ns: fewest bytes to an accepting state of the same machine */
  uint16_t *cfi;             /* ns: index into cfset of the bytes that may enter a call of the
                                state (0: the state has no calls) */
  uint8_t (*cfset)[32];
  uint32_t ncfset;
  uint32_t dgrow;            /* most one byte can add to the bytes still needed (a bound) */
  bool empty;                /* the root accepts nothing */
};
/* Determinizes every machine (root = machine 0), drops what cannot lead to acceptance, checks
 * that no machine is nullable or left-recursive. Returns 0, -ENOMEM, -E2BIG (too many states),
 * or -ELOOP (left recursion; a callee that can be empty). */
int gb_finish(struct gb *b, struct cn_grammar *g);
void cn_grammar_free(struct cn_grammar *g);
static inline int32_t gr_next(const struct cn_grammar *g, uint32_t s, uint8_t byte) {
  return g->next[g->row[s] + g->m[g->mach[s]].cls[byte]];
}


/* ---------------------------------------------------------------- run time (match.c) */

/* A stack of machine frames is a pair (top state, parent node); parent nodes are interned in the
 * matcher so that stacks share their tails. Node 0 is the bottom (no parent); CN_BASE stands for
 * "some parent not known here" (walks cached per state, see mask.c). */
#define CN_BASE (UINT32_MAX - 1)
struct mnode {
  uint32_t gs;         /* the frame's return state (global id) */
  uint32_t parent;     /* node id, 0 (bottom) or CN_BASE */
  uint32_t dist_sum;   /* dist[gs] + parent's dist_sum: bytes to close this frame and all below */
  uint16_t depth;      /* frames below the top, this one included */
  uint8_t all_acc;     /* gs and every frame below accepting */
};
struct mpair { uint32_t g, p; };

struct cn_match {
  const struct cn_grammar *gr;
  int max_depth;             /* most frames on a stack (pushes beyond are dropped) */
  uint32_t max_cfg;          /* most stacks tracked at once (more are dropped) */
  struct mnode *nodes;
  size_t nn, cap_nodes;
  uint32_t *hslot;           /* node id + 1 per slot, 0 = empty */
  size_t hmask;
  struct mpair *cfg;         /* the current configuration: sorted, no duplicates */
  uint32_t ncfg;
  struct mpair *scratch;     /* max_cfg */
  int err;
};
int cn_match_init(struct cn_match *m, const struct cn_grammar *gr, int max_depth, uint32_t max_cfg);
void cn_match_free(struct cn_match *m);
void cn_match_reset(struct cn_match *m);
/* Node of (GS, PARENT), interned; UINT32_MAX when out of memory. */
uint32_t cn_match_node(struct cn_match *m, uint32_t gs, uint32_t parent);
/* Appends every stack reachable from (G, P) by consuming BYTE to OUT (*N used, CAP max; no
 * duplicates). When ESC is not NULL, a pop of CN_BASE is not followed but sets *ESC. */
void cn_match_step(struct cn_match *m, uint32_t g, uint32_t p, uint8_t byte, struct mpair *out,
                   uint32_t *n, uint32_t cap, bool *esc);
/* Feeds LEN bytes; returns 0, or -1 if some byte is not allowed (the configuration is then left
 * unchanged). */
int cn_match_bytes(struct cn_match *m, const uint8_t *s, size_t len);
/* Could the text end here? */
bool cn_match_can_end(const struct cn_match *m);
/* Fewest bytes still needed to be able to end (UINT32_MAX/4 or more: never). */
uint32_t cn_match_dist(const struct cn_match *m);
/* Drops nodes no current stack uses (ids change). Call between steps only. */
int cn_match_gc(struct cn_match *m);


/* ---------------------------------------------------------------- token tables (toktrie.c) */

/* The vocabulary as a byte trie in preorder: node i's subtree is [i, skip). Node 0 is the root.
 * A token's bytes are what slm_token_to_piece gives without special rendering (BPE bytes
 * decoded, SentencePiece's "\u2581" as ' ', <0xNN> as the byte). Control, unknown and unused
 * tokens and empty pieces are never allowed (TT_NEVER); end-of-generation tokens are allowed
 * exactly when the constraint can end (TT_EOG). */
enum { TT_BYTES = 0, TT_EOG = 1, TT_NEVER = 2 };
struct tt_node {
  uint32_t skip;       /* first node after this subtree */
  int32_t tok;         /* a token ending here, or -1 (others with the same bytes: same_next) */
  uint16_t depth;      /* bytes from the root */
  uint8_t byte;        /* the byte leading here */
};
struct cn_toktrie {
  int32_t n_vocab;     /* mask width: the model's n_vocab */
  uint32_t nn;
  struct tt_node *nodes;
  int32_t *same_next;  /* n_vocab: next token with the same bytes, -1 */
  uint32_t *tok_off;   /* n_vocab + 1 */
  uint8_t *bytes;
  uint8_t *kind;       /* n_vocab: TT_* */
  int32_t *eog;
  int n_eog;
  uint16_t max_len;    /* longest token in bytes */
  /* the slice of JSON string content: tokens made of whole characters other than '"', '\\' and
   * the controls (a bit set), and the trie of every other token */
  uint32_t *content;
  uint32_t ncontent;
  struct tt_node *rnodes;
  uint32_t rnn;
};
/* Builds the tables from token byte strings: TOKS[i] (LENS[i] bytes) with KIND[i]. Returns 0 or
 * -ENOMEM. */
int cn_toktrie_build(struct cn_toktrie *t, int32_t n_vocab, const uint8_t *const *toks,
                     const uint32_t *lens, const uint8_t *kind);
void cn_toktrie_free(struct cn_toktrie *t);

/* ---------------------------------------------------------------- masks (mask.c) */

/* Per-state cache of the tokens a state accepts without returning below it (entries are built
 * by the first matcher that needs them and then shared read-only; a slot is set once with an
 * atomic compare-and-swap, so any number of threads may fill and read it). */
struct cn_mcache;
struct cn_mcache *cn_mcache_new(uint32_t n_states, size_t limit_bytes);
void cn_mcache_free(struct cn_mcache *c);
size_t cn_mcache_bytes(const struct cn_mcache *c);

/* Scratch for mask computations (one per matcher). */
struct cn_walker {
  struct mpair *cfg;   /* (max_len + 1) x width */
  uint32_t *ncfg;
  uint32_t width;
  uint32_t *tmpbits;   /* n_vocab bits */
  int32_t *esc;
  size_t nesc, cap_esc;
  uint32_t maxrel;
  bool resid;          /* esc are nodes of the residual trie */
};
int cn_walker_init(struct cn_walker *w, const struct cn_toktrie *tt, uint32_t width);
void cn_walker_free(struct cn_walker *w);
/* The allowed tokens of M's configuration into BITS (n_vocab bits, bit t of word t / 32).
 * Returns the number of allowed tokens. */
int64_t cn_mask(struct cn_match *m, const struct cn_toktrie *tt, struct cn_mcache *cache,
                struct cn_walker *w, uint32_t *bits);
/* Whether token T is allowed (a direct walk of its bytes; no cache). */
bool cn_token_ok(struct cn_match *m, const struct cn_toktrie *tt, int32_t t);


/* ---------------------------------------------------------------- JSON Schema (schema.c, normal.c, emit.c) */

struct cn_schema_opts {
  bool relaxed;              /* ignore inexpressible keywords instead of refusing */
  bool openapi_nullable;
  size_t max_states;         /* automaton budget */
};
/* Compiles the schema TEXT into B's root machine (machine 0, created by the caller, whose start
 * and accept states frame the document). On success *RELAXED gets a malloc'd, comma-separated
 * list of ignored keywords (or NULL). Returns 0 or a negative errno with E filled. */
int cn_schema_compile(struct gb *b, int root, const char *text, size_t len,
                      const struct cn_schema_opts *o, struct cn_err *e, char **relaxed);


/* ---------------------------------------------------------------- number texts (numlang.c) */

/* Languages of JSON number texts, as automata over their ASCII characters. Predicates are
 * decided on texts without an exponent, whose value is then exact; a text with a fraction must
 * have at most 15 significant digits, so that comparing it as an IEEE double (what Python's and
 * most validators do) gives the same answer as comparing the exact decimal. */
/* A decimal: sign, integer digits without leading zeros ("" for 0), fraction digits without
 * trailing zeros. */
struct cn_dec {
  bool neg;
  char ip[48], fp[48];   /* truncated past 47 digits: such numbers are refused */
  int nip, nfp;
  bool too_long;
};
/* Parses a JSON number text (exponents allowed) into D. */
void cn_dec_from_text(const char *t, size_t n, struct cn_dec *d);
bool cn_dec_is_zero(const struct cn_dec *d);
bool cn_dec_is_int(const struct cn_dec *d);
/* Writes D as a text without exponent ("-12.5", "0") into BUF (at least 100 bytes). */
void cn_dec_text(const struct cn_dec *d, char *buf);

enum cn_cmp { CMP_GE, CMP_GT, CMP_LE, CMP_LT };
/* Texts (no exponent) whose value compares to B as OP. Returns 0 or a negative errno. */
int num_cmp(const struct cn_dec *b, enum cn_cmp op, struct cdfa *out);
/* Texts (no exponent) whose value equals one of the N decimals in VALS (NEG: none of them). */
int num_values(const struct cn_dec *vals, size_t n, bool neg, struct cdfa *out);
/* Integer texts (no fraction, no exponent); texts with a fraction that is not all zeros. */
int num_int(struct cdfa *out);
int num_nonint(struct cdfa *out);
/* Texts whose value is a multiple of K (K >= 1) / is not; up to 100000. -E2BIG past that. */
int num_multiple(uint64_t k, bool neg, struct cdfa *out);
/* Every JSON number text without exponent (respecting the 15-digit rule for fractions). */
int num_plain(struct cdfa *out);


/* ---------------------------------------------------------------- formats (formats.c) */

/* The whole-string regex of format NAME, or NULL. *KNOWN: a format validators check (NULL with
 * *KNOWN set means we cannot express it). */
const char *cn_format_regex(const char *name, bool *known);


/* ---------------------------------------------------------------- minimization (minimize.c) */

/* Minimizes the partial DFA with N states and M transitions TAIL[t] --LABEL[t]--> HEAD[t] (at
 * most one per (tail, label)), accepting states ACC, start START. BLOCK_OF[q] receives the state
 * of q in the minimal automaton (the start's is 0), or UINT32_MAX for states that cannot be
 * reached or cannot reach acceptance; *NBLOCKS their number (0: empty language). Returns 0 or
 * -ENOMEM. */
int cn_minimize(uint32_t n, uint32_t m, const uint32_t *tail, const uint32_t *label,
                const uint32_t *head, const uint8_t *acc, uint32_t start, uint32_t *block_of,
                uint32_t *nblocks);

#endif
