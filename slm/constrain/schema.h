/*
 * schema.h: private to the JSON Schema stage (schema.c: the document; normal.c: normal forms;
 * emit.c: normal forms to grammar).
 *
 * DESIGN
 * A schema location (sloc) is a subschema of the document. A *node* is a conjunction of signed
 * locations ("this instance satisfies A, and not B, ..."), interned so that equal conjunctions
 * are one node; object property values and array items refer to nodes, so recursion in the
 * schema is recursion in the node graph. The *normal form* (struct nf) of a node describes its
 * instances per JSON type: null and booleans as flags, numbers and strings as automata (exact
 * set operations), arrays and objects as unions of specs whose members are again nodes.
 * Negation never happens on a normal form: every keyword says what it allows (positive) and
 * what violates it (negative), so not/oneOf/if push negation down to the keywords. Each step
 * keeps a subset of the schema's meaning (never more), which is what makes the result sound.
 * Parts that cannot be represented are marked unsupported with the keyword that caused them;
 * they become an error only if they survive into the grammar (a type excluded elsewhere drops
 * them).
 */
#ifndef SLM_CONSTRAIN_SCHEMA_H
#define SLM_CONSTRAIN_SCHEMA_H

#include "slm/constrain/cn.h"

/* ---------------------------------------------------------------- the document (schema.c) */

enum sdraft { DR_UNKNOWN = 0, DR_4, DR_6, DR_7, DR_2019, DR_2020 };

struct sloc {
  const struct cj_val *v;      /* an object or a boolean */
  const char *ptr;             /* JSON pointer in the document */
  uint32_t res;                /* resource (base URI) it belongs to */
};
struct sres { const char *uri; uint32_t loc; };
struct sanchor { const char *name; uint32_t loc; };

struct sdoc {
  struct cn_arena *a;
  enum sdraft draft;
  struct sloc *locs;
  size_t nlocs, cap_locs;
  uint32_t *lslot;             /* loc id + 1 by value pointer */
  size_t lmask;
  struct sres *res;
  size_t nres, cap_res;
  struct sanchor *anc;
  size_t nanc, cap_anc;
  struct cn_err *err;
  int rc;                      /* first error */
};
/* Loads ROOT: the draft, resources ($id / id) and anchors. Returns 0 or -EINVAL / -ENOMEM. */
int sd_load(struct sdoc *d, struct cn_arena *a, const struct cj_val *root, struct cn_err *err);
void sd_free(struct sdoc *d);
/* The location of V (interned; PTR copied); UINT32_MAX on out of memory. */
uint32_t sd_loc(struct sdoc *d, const struct cj_val *v, const char *ptr, uint32_t res);
/* The location of keyword KEY's value of loc L (a subschema), child index IDX >= 0 for arrays
 * (allOf/1), or member name NAME (properties/NAME). */
uint32_t sd_child(struct sdoc *d, uint32_t l, const char *key, int idx, const char *name);
/* Resolves $ref REF found in loc FROM. Returns 0 and *OUT, or -EINVAL (with an error). */
int sd_ref(struct sdoc *d, uint32_t from, const char *ref, uint32_t *out);

/* ---------------------------------------------------------------- normal forms (normal.c) */

#define NODE_TRUE 0u
#define NODE_FALSE 1u
#define NONE32 UINT32_MAX

enum { PK_NONE = 0, PK_ALL = 1, PK_SOME = 2 };
enum { TY_NUM = 0, TY_STR = 1, TY_ARR = 2, TY_OBJ = 3 };   /* parts that may be unsupported */

struct numpart {
  uint8_t kind;                /* PK_*; PK_ALL with intonly: every integer text */
  uint8_t intonly;
  struct cdfa *d;              /* PK_SOME */
};
struct strpart {
  uint8_t kind;
  struct cdfa *d;
};

struct arrspec {
  uint32_t np;
  uint32_t *prefix;            /* nodes of positions 0 .. np-1 */
  uint32_t rest;               /* node of the items after them */
  uint32_t min, max;           /* max NONE32: no bound */
  uint32_t cont;               /* "contains" node or NONE32 */
  uint32_t cfrom;              /* contains counts positions >= cfrom only */
  uint32_t cmin, cmax;         /* counted items in [cmin, cmax] (cmax NONE32: no bound) */
  uint8_t uniq;                /* 1: items unique, 2: some item repeated (check only) */
  const char *uptr;            /* where uniqueItems is (for errors) */
};

struct orule {
  const char *name;            /* a literal key (NUL-terminated, may contain NUL: nlen) */
  uint32_t nlen;
  struct cdfa *keys;           /* or a key language (name NULL) */
  uint32_t node;               /* value of every present key in it */
};
struct objspec {
  struct orule *rules;
  uint32_t nr;
  const char **req;            /* required names */
  uint32_t *reqlen;
  uint32_t nreq;
  struct cdfa *pnames;         /* every key in this language (NULL: any) */
  uint32_t minp, maxp;         /* maxp NONE32: no bound */
  struct cdfa *wkeys;          /* a witness: some key in wkeys with value in wnode (NULL: none) */
  uint32_t wnode;
};

struct nf {
  uint8_t null_ok;
  uint8_t bools;               /* bit 0: false, bit 1: true */
  struct numpart num;
  struct strpart str;
  uint8_t arr_all, obj_all;
  struct arrspec **arr;
  uint32_t narr;
  struct objspec **obj;
  uint32_t nobj;
  const struct cj_val **carr, **cobj;   /* concrete arrays / objects (enum, const) */
  uint32_t ncarr, ncobj;
  uint8_t unsup;               /* bit TY_*: that part cannot be expressed */
  const char *ukw[4], *uptr[4], *umsg[4];   /* which keyword, where, why (umsg may be NULL) */
};

struct nnode {                 /* its literals (sorted: loc << 1 | negated) are nodemap's key */
  struct nf *nf;
  uint8_t state;               /* 0 not computed, 1 computing, 2 done */
  int8_t empty;                /* -1 unknown, 0 no, 1 yes, 2 being decided */
  int machine;                 /* emit: its machine, or -1 */
  uint32_t inlined;            /* emit: times inlined */
};

struct nctx {
  struct sdoc *doc;
  struct cn_arena *a;
  const struct cn_schema_opts *o;
  struct nnode *nodes;
  size_t nn, cap_nodes;
  struct cn_keymap nodemap;
  struct nf **locnf;           /* per loc: [pos, neg] */
  uint8_t *locstate;           /* per loc and sign: 0, 1 computing, 2 done */
  size_t cap_loc;
  struct cdfa **dfas;          /* to free */
  size_t ndfas, cap_dfas;
  char relaxed[512];           /* keywords ignored (relaxed mode) */
  struct cn_err *err;
  int rc;
  int depth;
};

int nx_init(struct nctx *x, struct sdoc *d, const struct cn_schema_opts *o, struct cn_err *err);
void nx_free(struct nctx *x);
/* The node of one signed location; of the conjunction of two nodes. NONE32 on error. */
uint32_t nx_lit(struct nctx *x, uint32_t loc, bool neg);
uint32_t nx_and(struct nctx *x, uint32_t a, uint32_t b);
/* The normal form of a node (NULL on error: x->rc, x->err). */
struct nf *nx_nf(struct nctx *x, uint32_t node);
/* Is the node certainly empty? (false when unsure) */
bool nx_empty(struct nctx *x, uint32_t node);
bool nf_empty(struct nctx *x, const struct nf *f);
/* Does concrete value V satisfy the node / normal form? */
enum cn_tri nx_member(struct nctx *x, uint32_t node, const struct cj_val *v);
/* The value node of literal key K (KL bytes) under the rules of S (NODE_FALSE: forbidden). */
uint32_t nx_key_node(struct nctx *x, const struct objspec *s, const char *k, uint32_t kl);
bool nx_rule_matches(const struct orule *r, const char *k, uint32_t kl);
/* The node of "not N" when N is TRUE, FALSE or one literal; NONE32 otherwise. */
uint32_t nx_not(struct nctx *x, uint32_t n);
/* A new automaton owned by the context (freed with it). */
struct cdfa *nx_dfa(struct nctx *x);
/* Records keyword KW as ignored (relaxed mode). */
void nx_relax(struct nctx *x, const char *kw);
/* Sets the error (first one wins); returns -EINVAL. */
int nx_fail(struct nctx *x, int rc, const char *kw, const char *ptr, const char *msg);

/* ---------------------------------------------------------------- emit (emit.c) */

int em_compile(struct nctx *x, struct gb *b, int root, uint32_t node);

#endif
