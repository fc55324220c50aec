/*
 * pull.c: `tiergate pull NAME|URL [-o DIR]`: fetch a GGUF model file over HTTP(S), resumable and
 * checked, plus the catalogue of well-known small instruct models that NAME picks from.
 *
 * DESIGN
 * A command-line tool, not the event loop: one blocking libcurl easy transfer at a time.
 *   1. Resolve NAME (catalogue: Hugging Face repo + file, size and sha256 where verified; the base
 *      URL can be replaced by $TIERGATE_PULL_MIRROR) or take URL as given. The file is DIR/FILE.
 *   2. DIR/FILE already there: check it (GGUF header, size, sha256 when known) and stop there.
 *   3. Otherwise append to DIR/FILE.part. When it holds bytes from an earlier run, they are hashed
 *      first and the request asks for the rest with `Range: bytes=N-`. The answer decides:
 *      206 with Content-Range starting at N: append; 200: the server ignored the range, start over;
 *      416 with a .part exactly as long as the file: nothing left to fetch; anything else: error.
 *   4. The first 8 bytes must be a GGUF header (magic "GGUF", version 2 or 3); the body is hashed
 *      (SHA-256, below) and written as it arrives. After the last byte: size and sha256 checks,
 *      fsync, and only then the rename FILE.part -> FILE. A wrong header, size or hash deletes the
 *      .part; a network error, a write error or Ctrl-C keeps it for the next run to resume.
 * Output contract: stdout gets the final path alone on one line and nothing else; everything else
 * (progress, notes, one-line errors) goes to stderr. Exit 0 ok, 1 failed, 2 usage error.
 * Progress: on a terminal one line redrawn in place (\r); otherwise plain lines, at most every 5 s
 * or every 10%, never a carriage return.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "router/router.h"

#define PULL_DEFAULT_BASE "https://huggingface.co"
#define PULL_DEFAULT_DIR "models"
#define PULL_PATH_MAX 4096
#define PULL_URL_MAX 4096
#define PULL_BASE_MAX 1024           /* $TIERGATE_PULL_MIRROR */
#define PULL_HEAD_MAX 64             /* first bytes kept to check the header and describe them */
#define PULL_READ_CHUNK (1u << 20)   /* hashing an existing file, bytes per read */

/* ------------------------------------------------------------------------------------------ */
/* SHA-256 (FIPS 180-4), streaming. No library of ours or of Debian's base set provides one.    */

struct pull_sha256 {
  uint32_t h[8];
  uint64_t bytes;      /* message length so far */
  uint8_t block[64];
  size_t fill;         /* bytes waiting in block */
};

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

static uint32_t sha_rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha_init(struct pull_sha256 *s) {
  static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(s->h, iv, sizeof iv);
  s->bytes = 0;
  s->fill = 0;
}

static void sha_block(struct pull_sha256 *s, const uint8_t *p) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
           (uint32_t)p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = sha_rotr(w[i - 15], 7) ^ sha_rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = sha_rotr(w[i - 2], 17) ^ sha_rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
  uint32_t e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = h + (sha_rotr(e, 6) ^ sha_rotr(e, 11) ^ sha_rotr(e, 25)) + ((e & f) ^ (~e & g)) +
                  sha_k[i] + w[i];
    uint32_t t2 = (sha_rotr(a, 2) ^ sha_rotr(a, 13) ^ sha_rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  s->h[0] += a;
  s->h[1] += b;
  s->h[2] += c;
  s->h[3] += d;
  s->h[4] += e;
  s->h[5] += f;
  s->h[6] += g;
  s->h[7] += h;
}

static void sha_update(struct pull_sha256 *s, const void *data, size_t n) {
  const uint8_t *p = data;
  s->bytes += n;
  if (s->fill) {
    size_t take = 64 - s->fill < n ? 64 - s->fill : n;
    memcpy(s->block + s->fill, p, take);
    s->fill += take;
    p += take;
    n -= take;
    if (s->fill < 64) return;
    sha_block(s, s->block);
    s->fill = 0;
  }
  for (; n >= 64; p += 64, n -= 64) sha_block(s, p);
  memcpy(s->block, p, n);
  s->fill = n;
}

/* Finishes S (it cannot be updated after) and writes the digest as 64 lowercase hex + NUL. */
static void sha_final_hex(struct pull_sha256 *s, char out[65]) {
  uint64_t bits = s->bytes * 8;
  uint8_t pad[72] = {0x80};
  size_t padlen = (s->fill < 56 ? 56 : 120) - s->fill;
  for (int i = 0; i < 8; i++) pad[padlen + i] = (uint8_t)(bits >> (56 - 8 * i));
  sha_update(s, pad, padlen + 8);
  for (int i = 0; i < 8; i++) snprintf(out + 8 * i, 9, "%08" PRIx32, s->h[i]);
}

/* ------------------------------------------------------------------------------------------ */
/* The catalogue. Every size and sha256 below was read from a public source (listed per entry);  */
/* where none could be found they are 0 / NULL and `tiergate pull --list` says "unknown".        */

struct pull_model {
  const char *name;    /* what the user types (case-insensitive) */
  const char *alias;   /* a second accepted name, or NULL */
  const char *about;   /* one line for --list */
  const char *repo;    /* Hugging Face repository */
  const char *file;    /* file in the repository = the local file name */
  uint64_t size;       /* bytes; 0 = unknown */
  const char *sha256;  /* lowercase hex of the whole file; NULL = unknown */
};

static const struct pull_model pull_catalogue[] = {
    /* huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/blob/1582e3f6bea2e0ff446796639c35cc44175afb2e/
     * qwen2.5-0.5b-instruct-q8_0.gguf (LFS SHA256, "676 MB"); 675,710,816 bytes as recorded by
     * several projects pinning revision 9217f5db79a29953eb74d5343926648285ec7e67. */
    {"qwen2.5-0.5b-instruct", "qwen2.5-0.5b-instruct-q8_0",
     "Qwen2.5 0.5B Instruct, Q8_0 (Qwen's own GGUF)", "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
     "qwen2.5-0.5b-instruct-q8_0.gguf", 675710816,
     "ca59ca7f13d0e15a8cfa77bd17e65d24f6844b554a7b6c12e07a5f89ff76844e"},
    /* .../Qwen/Qwen2.5-0.5B-Instruct-GGUF/blob/12145bd1d629190a4d44254073650877954d02c9/
     * qwen2.5-0.5b-instruct-q4_k_m.gguf (LFS SHA256, "491 MB"); 491,400,032 bytes likewise. */
    {"qwen2.5-0.5b-instruct-q4_k_m", NULL, "Qwen2.5 0.5B Instruct, Q4_K_M (Qwen's own GGUF)",
     "Qwen/Qwen2.5-0.5B-Instruct-GGUF", "qwen2.5-0.5b-instruct-q4_k_m.gguf", 491400032,
     "74a4da8c9fdbcd15bd1f6d01d621410d31c6fc00986f5eb687824e7b93d7a9db"},
    /* The publisher's own repository (its file name is referenced by many projects); no source
     * for this file's size or sha256 was found, so neither is checked. */
    {"smollm2-135m-instruct", NULL, "SmolLM2 135M Instruct, Q8_0 (HuggingFaceTB's own GGUF)",
     "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", "smollm2-135m-instruct-q8_0.gguf", 0, NULL},
    /* .../HuggingFaceTB/SmolLM2-360M-Instruct-GGUF/blob/2633adad3eb0aec759aec7f41db367d974571ecf/
     * smollm2-360m-instruct-q8_0.gguf (LFS SHA256, "386 MB"); 386,404,992 bytes as recorded by
     * projects pinning revision 593b5a2e04c8f3e4ee880263f93e0bd2901ad47f. */
    {"smollm2-360m-instruct", NULL, "SmolLM2 360M Instruct, Q8_0 (HuggingFaceTB's own GGUF)",
     "HuggingFaceTB/SmolLM2-360M-Instruct-GGUF", "smollm2-360m-instruct-q8_0.gguf", 386404992,
     "48ab3034d0dd401fbc721eb1df3217902fee7dab9078992d66431f09b7750201"},
    /* Qwen/Qwen3-0.6B-GGUF Qwen3-0.6B-Q8_0.gguf: 639,446,688 bytes and this sha256, recorded by
     * several projects (revisions 23749fefcc72300e3a2ad315e1317431b06b590a, 1eaf4d9657fe...). */
    {"qwen3-0.6b", "qwen3-0.6b-q8_0", "Qwen3 0.6B, Q8_0 (Qwen's own GGUF)", "Qwen/Qwen3-0.6B-GGUF",
     "Qwen3-0.6B-Q8_0.gguf", 639446688,
     "9465e63a22add5354d9bb4b99e90117043c7124007664907259bd16d043bb031"},
    /* Meta publishes no GGUF. .../bartowski/Llama-3.2-1B-Instruct-GGUF/blob/
     * d52af3776f99ddf220e5ffd3f93b2a4e4df105be/Llama-3.2-1B-Instruct-Q4_K_M.gguf (LFS SHA256,
     * "808 MB"); 807,694,464 bytes as recorded by projects pinning revision 067b946cf014b7c6... */
    {"llama-3.2-1b-instruct", "llama-3.2-1b-instruct-q4_k_m",
     "Llama 3.2 1B Instruct, Q4_K_M (bartowski's GGUF; Llama 3.2 Community License)",
     "bartowski/Llama-3.2-1B-Instruct-GGUF", "Llama-3.2-1B-Instruct-Q4_K_M.gguf", 807694464,
     "6f85a640a97cf2bf5b8e764087b1e83da0fdb51d7c9fab7d0fece9385611df83"},
};

#define PULL_N_MODELS (sizeof pull_catalogue / sizeof pull_catalogue[0])

static const struct pull_model *catalogue_find(const char *name) {
  for (size_t i = 0; i < PULL_N_MODELS; i++) {
    const struct pull_model *m = &pull_catalogue[i];
    if (!strcasecmp(name, m->name) || (m->alias && !strcasecmp(name, m->alias))) return m;
  }
  return NULL;
}

/* The catalogue's base URL: $TIERGATE_PULL_MIRROR (without a trailing '/') or Hugging Face.
 * 0, or -ENAMETOOLONG when the mirror does not fit OUT (PULL_BASE_MAX). */
static int catalogue_base(char out[PULL_BASE_MAX]) {
  const char *m = getenv("TIERGATE_PULL_MIRROR");
  if (!m || !*m) m = PULL_DEFAULT_BASE;
  if (strlen(m) >= PULL_BASE_MAX) return -ENAMETOOLONG;
  size_t n = strlen(m);
  memcpy(out, m, n + 1);
  while (n > 0 && out[n - 1] == '/') out[--n] = 0;
  return 0;
}

/* Writes the download URL of M into OUT; 0, or -ENAMETOOLONG. */
static int catalogue_url(const struct pull_model *m, char *out, size_t cap) {
  char base[PULL_BASE_MAX];
  if (catalogue_base(base)) return -ENAMETOOLONG;
  int n = snprintf(out, cap, "%s/%s/resolve/main/%s", base, m->repo, m->file);
  return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Small helpers.                                                                                */

static bool pull_quiet;   /* --quiet: nothing on stderr but errors */

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...) {
  if (pull_quiet) return;
  va_list ap;
  va_start(ap, fmt);
  fputs("tiergate pull: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("tiergate pull: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* Human size: "512 B", "3.2 KiB", "644.4 MiB", "1.2 GiB". */
static const char *human(uint64_t n, char *buf, size_t cap) {
  static const char *unit[] = {"KiB", "MiB", "GiB", "TiB"};
  if (n < 1024) {
    snprintf(buf, cap, "%" PRIu64 " B", n);
    return buf;
  }
  double v = (double)n / 1024;
  int u = 0;
  while (v >= 1024 && u < 3) {
    v /= 1024;
    u++;
  }
  snprintf(buf, cap, "%.1f %s", v, unit[u]);
  return buf;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static bool is_hex64(const char *s) {
  size_t n = 0;
  for (; s[n]; n++)
    if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f') ||
          (s[n] >= 'A' && s[n] <= 'F')))
      return false;
  return n == 64;
}

/* Writes all of BUF at the current offset of FD; 0 or -errno. */
static int write_all(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Is H[0..N) the start of a GGUF file? 0 if so; otherwise -EINVAL with the reason in WHY:
 * "too short", "GGUF version N (2 or 3 supported)", or "" (not GGUF at all: caller describes). */
static int gguf_head_check(const uint8_t *h, size_t n, char *why, size_t cap) {
  why[0] = 0;
  if (n < 8 || memcmp(h, "GGUF", 4)) {
    if (n < 8 && n >= 4 && !memcmp(h, "GGUF", 4)) snprintf(why, cap, "only %zu bytes", n);
    return -EINVAL;
  }
  uint32_t v = (uint32_t)h[4] | (uint32_t)h[5] << 8 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 24;
  if (v != 2 && v != 3) {
    snprintf(why, cap, "GGUF version %" PRIu32 " (versions 2 and 3 are supported)", v);
    return -EINVAL;
  }
  return 0;
}

/* What do the first bytes H[0..N) of a non-GGUF body look like? One phrase for an error line,
 * e.g. `an HTML page (starts "<!DOCTYPE html><html lang=...")`. CTYPE: Content-Type or "". */
static void describe_head(const uint8_t *h, size_t n, const char *ctype, char *out, size_t cap) {
  size_t i = 0;
  if (n >= 3 && h[0] == 0xef && h[1] == 0xbb && h[2] == 0xbf) i = 3;   /* UTF-8 BOM */
  while (i < n && (h[i] == ' ' || h[i] == '\t' || h[i] == '\r' || h[i] == '\n')) i++;
  char low[PULL_HEAD_MAX + 1];
  size_t m = 0;
  for (size_t j = i; j < n && m < PULL_HEAD_MAX; j++)
    low[m++] = (char)(h[j] >= 'A' && h[j] <= 'Z' ? h[j] + 32 : h[j]);
  low[m] = 0;
  bool printable = true;
  for (size_t j = 0; j < n; j++)
    if (h[j] < 0x20 && h[j] != '\t' && h[j] != '\r' && h[j] != '\n') printable = false;
  const char *kind = "binary data, not GGUF";
  if (n == 0) kind = "an empty body";
  else if (!strncmp(low, "<!doctype html", 14) || !strncmp(low, "<html", 5) ||
           strcasestr(ctype, "text/html"))
    kind = "an HTML page";
  else if (!strncmp(low, "version https://git-lfs", 23))
    kind = "a Git LFS pointer, not the file itself";
  else if (low[0] == '<') kind = "XML or HTML text";
  else if (low[0] == '{' || low[0] == '[') kind = "JSON text";
  else if (printable) kind = "plain text";
  char shown[4 * 24 + 1];
  size_t k = 0;
  for (size_t j = 0; j < n && j < 24; j++) {
    unsigned c = h[j];
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') shown[k++] = (char)c;
    else k += (size_t)snprintf(shown + k, sizeof shown - k, "\\x%02x", c);
  }
  shown[k] = 0;
  if (n == 0) snprintf(out, cap, "%s", kind);
  else snprintf(out, cap, "%s (starts \"%s%s\"%s%s)", kind, shown, n > 24 ? "..." : "",
                *ctype ? ", content-type " : "", ctype);
}

/* ------------------------------------------------------------------------------------------ */
/* Progress on stderr.                                                                           */

struct pull_progress {
  bool on;            /* false with --quiet */
  bool tty;           /* stderr is a terminal: redraw one line */
  bool drawn;         /* a tty line is on screen (needs a newline before other output) */
  uint64_t base;      /* bytes already there when this transfer started */
  uint64_t total;     /* whole file, 0 = unknown */
  double t0, t_last;  /* start, last output (monotonic seconds) */
  int last_decile;    /* non-tty: last 10% step printed */
  uint64_t shown;     /* bytes in the last line printed */
};

static void progress_start(struct pull_progress *pg, uint64_t base, uint64_t total) {
  pg->base = base;
  pg->total = total;
  pg->t0 = pg->t_last = now_s();
  pg->last_decile = total ? (int)(base * 10 / total) : 0;
}

/* Shows HAVE bytes of the file done; FINAL forces a last line (and ends a tty line). */
static void progress_show(struct pull_progress *pg, uint64_t have, bool final) {
  if (!pg->on) return;
  double t = now_s();
  int decile = pg->total ? (int)(have * 10 / pg->total) : 0;
  if (!final) {
    if (pg->tty && t - pg->t_last < 0.1) return;
    if (!pg->tty && t - pg->t_last < 5.0 && decile <= pg->last_decile) return;
  } else if (!pg->tty && pg->shown == have && have) {
    return;   /* the 100% line is already out */
  }
  pg->t_last = t;
  pg->last_decile = decile;
  pg->shown = have;
  double dt = t - pg->t0;
  double speed = dt > 0.001 ? (double)(have - pg->base) / dt : 0;
  char done[32], tot[32], spd[32], eta[32] = "";
  human(have, done, sizeof done);
  human((uint64_t)speed, spd, sizeof spd);
  if (pg->total && speed > 0 && have < pg->total && !final) {
    uint64_t s = (uint64_t)((double)(pg->total - have) / speed + 0.5);
    if (s >= 3600)
      snprintf(eta, sizeof eta, "  ETA %" PRIu64 ":%02" PRIu64 ":%02" PRIu64, s / 3600,
               s / 60 % 60, s % 60);
    else snprintf(eta, sizeof eta, "  ETA %" PRIu64 ":%02" PRIu64, s / 60, s % 60);
  }
  char line[200];
  if (pg->total)
    snprintf(line, sizeof line, "%3d%%  %s / %s  %s/s%s",
             (int)(have >= pg->total ? 100 : have * 100 / pg->total), done,
             human(pg->total, tot, sizeof tot), spd, eta);
  else snprintf(line, sizeof line, "%s  %s/s", done, spd);
  if (pg->tty) {
    fprintf(stderr, "\r  %s\033[K", line);
    pg->drawn = !final;
    if (final) fputc('\n', stderr);
  } else {
    fprintf(stderr, "tiergate pull: %s\n", line);
  }
  fflush(stderr);
}

/* Ends a tty progress line so that a message can follow on its own line. */
static void progress_break(struct pull_progress *pg) {
  if (pg->drawn) {
    fputc('\n', stderr);
    pg->drawn = false;
  }
}

/* ------------------------------------------------------------------------------------------ */
/* One HTTP transfer into FILE.part.                                                            */

enum pull_fail {
  PF_NONE,
  PF_HTTP,       /* an HTTP status we cannot use: keep nothing new */
  PF_NOT_GGUF,   /* the body is not a GGUF file: delete the .part */
  PF_RANGE,      /* a 206 for the wrong range: keep the .part */
  PF_SIZE,       /* the file has another size than expected: delete the .part */
  PF_WRITE,      /* writing the .part failed (no space, ...): keep it */
  PF_STOP,       /* SIGINT/SIGTERM: keep it */
};

struct pull_xfer {
  const char *url;
  const char *dir;            /* for the free-space check */
  const char *part;           /* path of FILE.part */
  int fd;                     /* FILE.part, open for writing at its end */
  uint64_t start;             /* bytes in the .part when the request went out */
  uint64_t have;              /* bytes in the .part now (all hashed into sha) */
  uint64_t expect_size;       /* 0 = unknown */
  uint64_t total;             /* whole file size once the server said, 0 = unknown */
  struct pull_sha256 sha;

  /* The response being received (reset at every status line: redirects have their own). */
  long status;
  char reason[64];
  char content_range[128];
  char content_type[64];
  int64_t content_length;     /* -1 = none */
  bool has_location;

  bool accepted;              /* the final response's headers were accepted: body is the file */
  bool done_by_416;           /* the .part already held the whole file */
  bool restart;               /* the .part did not fit the remote file: empty it and retry */
  uint8_t head[PULL_HEAD_MAX];
  size_t head_len;
  bool head_ok;               /* first 8 bytes checked (or the .part's were) */

  enum pull_fail why;
  char msg[1024];
  struct pull_progress pg;
};

static volatile sig_atomic_t pull_stop;

static void on_signal(int sig) {
  (void)sig;
  pull_stop = 1;
}

static uint64_t parse_u64(const char *s, const char **end) {
  uint64_t v = 0;
  while (*s >= '0' && *s <= '9') v = v * 10 + (uint64_t)(*s++ - '0');
  *end = s;
  return v;
}

/* Copies a header value (trimmed, capped to CAP) into DST; bytes outside printable ASCII become
 * '?': these strings end up on the user's terminal. */
static void copy_value(char *dst, size_t cap, const char *v, size_t n) {
  while (n && (*v == ' ' || *v == '\t')) v++, n--;
  while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ')) n--;
  if (n >= cap) n = cap - 1;
  for (size_t i = 0; i < n; i++) dst[i] = v[i] >= 0x20 && v[i] < 0x7f ? v[i] : '?';
  dst[n] = 0;
}

static const char *status_reason(long code, const char *given) {
  if (given && *given) return given;
  switch (code) {
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 410: return "Gone";
  case 429: return "Too Many Requests";
  case 500: return "Internal Server Error";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  default: return "";
  }
}

/* Called at the end of the final response's headers: decides what the body is. false aborts. */
static bool accept_response(struct pull_xfer *x) {
  uint64_t a = 0, c = 0;
  bool c_known = false, ab_known = false;
  const char *cr = x->content_range, *e;
  if (!strncasecmp(cr, "bytes ", 6)) {
    cr += 6;
    if (*cr == '*') cr++;
    else {
      a = parse_u64(cr, &e);
      if (e != cr && *e == '-') {
        const char *f = e + 1;
        (void)parse_u64(f, &e);   /* the last byte: implied by the total */
        ab_known = e != f;
      }
      cr = e;
    }
    if (*cr == '/' && cr[1] >= '0' && cr[1] <= '9') {
      c = parse_u64(cr + 1, &e);
      c_known = true;
    }
  }
  if (x->status == 206) {
    if (!ab_known || a != x->start) {
      x->why = PF_RANGE;
      snprintf(x->msg, sizeof x->msg,
               "%s: asked for the bytes from %" PRIu64 " and got 206 with Content-Range '%s'",
               x->url, x->start, x->content_range);
      return false;
    }
    x->total = c_known ? c : 0;
  } else if (x->status == 200) {
    if (x->start > 0) {   /* the server ignored Range: the body is the whole file */
      if (ftruncate(x->fd, 0) || lseek(x->fd, 0, SEEK_SET) < 0) {
        x->why = PF_WRITE;
        snprintf(x->msg, sizeof x->msg, "cannot empty %s: %s", x->part, strerror(errno));
        return false;
      }
      note("the server ignored the Range request (200, not 206): starting over from byte 0");
      x->start = x->have = 0;
      sha_init(&x->sha);
      x->head_len = 0;
      x->head_ok = false;
    }
    x->total = x->content_length >= 0 ? (uint64_t)x->content_length : 0;
  } else if (x->status == 416 && x->start > 0) {
    uint64_t whole = c_known ? c : x->expect_size;
    if (whole && whole == x->start) {   /* nothing left to fetch: the checks decide */
      x->done_by_416 = true;
      x->total = whole;
    } else {
      x->restart = true;   /* the .part is longer than the file, or the server will not say */
      x->why = PF_RANGE;
      snprintf(x->msg, sizeof x->msg, "%s: the server refused the range from byte %" PRIu64
               " (416, file size %s)", x->url, x->start, c_known ? "given" : "not given");
      return false;
    }
  } else {
    x->why = PF_HTTP;
    const char *hint = "";
    if (x->status == 401 || x->status == 403)
      hint = " (the repository may be gated or private)";
    snprintf(x->msg, sizeof x->msg, "%s: HTTP %ld %s%s", x->url, x->status,
             status_reason(x->status, x->reason), hint);
    return false;
  }
  if (x->total && x->expect_size && x->total != x->expect_size) {
    x->why = PF_SIZE;
    snprintf(x->msg, sizeof x->msg,
             "%s: the server offers %" PRIu64 " bytes but %" PRIu64 " are expected "
             "(pass --sha256 HEX to accept another version of the file)",
             x->url, x->total, x->expect_size);
    return false;
  }
  if (x->total) {
    struct statvfs vfs;
    uint64_t need = x->total > x->have ? x->total - x->have : 0;
    if (!statvfs(x->dir, &vfs) && (uint64_t)vfs.f_bavail * vfs.f_frsize < need) {
      char n1[32], n2[32];
      x->why = PF_WRITE;
      snprintf(x->msg, sizeof x->msg, "no space left: %s needs %s more but %s has %s free",
               x->part, human(need, n1, sizeof n1), x->dir,
               human((uint64_t)vfs.f_bavail * vfs.f_frsize, n2, sizeof n2));
      return false;
    }
  }
  x->accepted = true;
  progress_start(&x->pg, x->have, x->total);
  return true;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud) {
  struct pull_xfer *x = ud;
  size_t n = size * nitems;
  if (x->accepted) return n;   /* trailers */
  if (n >= 5 && !strncmp(buf, "HTTP/", 5)) {
    const char *sp = memchr(buf, ' ', n);
    x->status = sp ? strtol(sp + 1, NULL, 10) : 0;
    x->reason[0] = x->content_range[0] = x->content_type[0] = 0;
    x->content_length = -1;
    x->has_location = false;
    if (sp) {
      const char *r = memchr(sp + 1, ' ', n - (size_t)(sp + 1 - buf));
      if (r) copy_value(x->reason, sizeof x->reason, r + 1, n - (size_t)(r + 1 - buf));
    }
    return n;
  }
  if (n <= 2) {   /* the blank line that ends a response's headers */
    if (x->status < 200) return n;                               /* 100 Continue */
    if (x->status >= 300 && x->status < 400 && x->has_location) return n;   /* followed */
    return accept_response(x) ? n : 0;
  }
  const char *colon = memchr(buf, ':', n);
  if (!colon) return n;
  size_t klen = (size_t)(colon - buf), vlen = n - klen - 1;
  if (klen == 13 && !strncasecmp(buf, "content-range", 13))
    copy_value(x->content_range, sizeof x->content_range, colon + 1, vlen);
  else if (klen == 12 && !strncasecmp(buf, "content-type", 12))
    copy_value(x->content_type, sizeof x->content_type, colon + 1, vlen);
  else if (klen == 8 && !strncasecmp(buf, "location", 8))
    x->has_location = true;
  else if (klen == 14 && !strncasecmp(buf, "content-length", 14)) {
    char v[32];
    const char *e;
    copy_value(v, sizeof v, colon + 1, vlen);
    if (v[0] >= '0' && v[0] <= '9') x->content_length = (int64_t)parse_u64(v, &e);
  }
  return n;
}

/* Appends P[0..N) to the .part (hash, count, progress); false aborts the transfer. */
static bool append_body(struct pull_xfer *x, const void *p, size_t n) {
  if (x->total && x->have + n > x->total) {
    x->why = PF_SIZE;
    snprintf(x->msg, sizeof x->msg, "%s: the server sent more than the %" PRIu64 " bytes it announced",
             x->url, x->total);
    return false;
  }
  int rc = write_all(x->fd, p, n);
  if (rc) {
    char h[32];
    x->why = PF_WRITE;
    snprintf(x->msg, sizeof x->msg, "cannot write %s: %s (%s kept there)", x->part,
             strerror(-rc), human(x->have, h, sizeof h));
    return false;
  }
  sha_update(&x->sha, p, n);
  x->have += n;
  return true;
}

static size_t on_body(char *buf, size_t size, size_t nitems, void *ud) {
  struct pull_xfer *x = ud;
  size_t n = size * nitems;
  if (!x->accepted || x->done_by_416) return n;   /* a body that is not the file: drop it */
  const uint8_t *p = (const uint8_t *)buf;
  size_t rest = n;
  if (!x->head_ok) {   /* hold the first bytes until the header can be checked */
    size_t take = PULL_HEAD_MAX - x->head_len < rest ? PULL_HEAD_MAX - x->head_len : rest;
    memcpy(x->head + x->head_len, p, take);
    x->head_len += take;
    p += take;
    rest -= take;
    if (x->head_len < 8) return n;
    char why[96], what[256];
    if (gguf_head_check(x->head, x->head_len, why, sizeof why)) {
      if (!why[0]) describe_head(x->head, x->head_len, x->content_type, what, sizeof what);
      x->why = PF_NOT_GGUF;
      snprintf(x->msg, sizeof x->msg, "%s is not a GGUF file: %s%s", x->url, why[0] ? why : what,
               strstr(x->url, "/blob/") ? " (for Hugging Face use the /resolve/ URL, not /blob/)"
                                        : "");
      return 0;
    }
    x->head_ok = true;
    if (!append_body(x, x->head, x->head_len)) return 0;
  }
  if (rest && !append_body(x, p, rest)) return 0;
  progress_show(&x->pg, x->have, false);
  return n;
}

static int on_xferinfo(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
  struct pull_xfer *x = ud;
  (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
  if (pull_stop) {
    x->why = PF_STOP;
    snprintf(x->msg, sizeof x->msg, "interrupted");
    return 1;
  }
  if (x->accepted && !x->done_by_416) progress_show(&x->pg, x->have, false);   /* stalls too */
  return 0;
}

/* Runs one GET of X->url for the bytes from X->start on. Returns libcurl's code; X->why says
 * whether one of our checks stopped it. */
static CURLcode transfer(struct pull_xfer *x, char *errbuf) {
  CURL *c = curl_easy_init();
  if (!c) return CURLE_FAILED_INIT;
  char range[32];
  errbuf[0] = 0;
  curl_easy_setopt(c, CURLOPT_URL, x->url);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);   /* Hugging Face redirects to its CDN */
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  curl_easy_setopt(c, CURLOPT_USERAGENT, "tiergate-pull/1");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);    /* a stall of 60 s is an error */
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 256L * 1024);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_xferinfo);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  if (x->start > 0) {
    snprintf(range, sizeof range, "%" PRIu64 "-", x->start);
    curl_easy_setopt(c, CURLOPT_RANGE, range);
  }
  CURLcode rc = curl_easy_perform(c);
  curl_easy_cleanup(c);
  return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Files.                                                                                        */

/* Hashes FD from offset 0 to its end into S, counting *N bytes and keeping the first bytes in
 * HEAD (PULL_HEAD_MAX, *HEAD_LEN of them). 0 or -errno. */
static int hash_fd(int fd, struct pull_sha256 *s, uint64_t *n, uint8_t *head, size_t *head_len) {
  char *buf = malloc(PULL_READ_CHUNK);
  if (!buf) return -ENOMEM;
  int rc = 0;
  *n = 0;
  *head_len = 0;
  if (lseek(fd, 0, SEEK_SET) < 0) rc = -errno;
  while (!rc) {
    ssize_t r = read(fd, buf, PULL_READ_CHUNK);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) rc = -errno;
    if (r <= 0) break;
    if (*head_len < PULL_HEAD_MAX) {
      size_t take = PULL_HEAD_MAX - *head_len < (size_t)r ? PULL_HEAD_MAX - *head_len : (size_t)r;
      memcpy(head + *head_len, buf, take);
      *head_len += take;
    }
    sha_update(s, buf, (size_t)r);
    *n += (uint64_t)r;
  }
  free(buf);
  return rc;
}

/* DIR/FILE exists: is it the file we want? Prints the verdict. 0: it is (already there);
 * 1: it is not (error printed). */
static int check_existing(const char *path, uint64_t expect_size, const char *expect_sha) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    fail("cannot read %s: %s", path, strerror(errno));
    return 1;
  }
  struct pull_sha256 s;
  uint8_t head[PULL_HEAD_MAX];
  size_t head_len;
  uint64_t n;
  char why[96], what[256], got[65];
  sha_init(&s);
  if (expect_sha || expect_size) note("checking %s", path);
  int rc = hash_fd(fd, &s, &n, head, &head_len);
  close(fd);
  if (rc) {
    fail("cannot read %s: %s", path, strerror(-rc));
    return 1;
  }
  if (gguf_head_check(head, head_len, why, sizeof why)) {
    if (!why[0]) describe_head(head, head_len, "", what, sizeof what);
    fail("%s exists and is not a GGUF file: %s; move it away to download again", path,
         why[0] ? why : what);
    return 1;
  }
  if (expect_size && n != expect_size) {
    fail("%s exists with %" PRIu64 " bytes, expected %" PRIu64 "; move it away to download again",
         path, n, expect_size);
    return 1;
  }
  sha_final_hex(&s, got);
  if (expect_sha && strcmp(got, expect_sha)) {
    fail("%s exists but its sha256 is %s, expected %s; move it away to download again", path, got,
         expect_sha);
    return 1;
  }
  note("already there: %s (%" PRIu64 " bytes, sha256 %s%s)", path, n, got,
       expect_sha ? ", verified" : ", none known to compare");
  return 0;
}

/* Makes sure DIR is a writable directory, creating it (one level) when missing. 0 or 2. */
static int prepare_dir(const char *dir) {
  struct stat st;
  if (stat(dir, &st)) {
    if (errno != ENOENT || mkdir(dir, 0755)) {
      fail("cannot use the directory %s: %s", dir, strerror(errno));
      return 2;
    }
  } else if (!S_ISDIR(st.st_mode)) {
    fail("%s is not a directory", dir);
    return 2;
  }
  if (access(dir, W_OK | X_OK)) {
    fail("cannot write into %s: %s", dir, strerror(errno));
    return 2;
  }
  return 0;
}

/* The file name at the end of URL's path (before ? or #), if it is a plain one. 0 or -EINVAL. */
static int url_file_name(const char *url, char *out, size_t cap) {
  const char *p = strstr(url, "://");
  p = p ? p + 3 : url;
  const char *end = p + strcspn(p, "?#");
  const char *slash = NULL;
  for (const char *q = p; q < end; q++)
    if (*q == '/') slash = q;
  if (!slash) return -EINVAL;
  const char *name = slash + 1;
  size_t n = (size_t)(end - name);
  if (n == 0 || n >= cap || n > 255 || name[0] == '.') return -EINVAL;
  for (size_t i = 0; i < n; i++) {
    char ch = name[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '.' || ch == '-' || ch == '_' || ch == '+'))
      return -EINVAL;
  }
  memcpy(out, name, n);
  out[n] = 0;
  return 0;
}

/* Is S an http:// or https:// URL with a host? */
static bool is_http_url(const char *s) {
  const char *rest;
  if (!strncasecmp(s, "http://", 7)) rest = s + 7;
  else if (!strncasecmp(s, "https://", 8)) rest = s + 8;
  else return false;
  return *rest && *rest != '/' && *rest != '?' && *rest != '#';
}

/* ------------------------------------------------------------------------------------------ */
/* The command.                                                                                  */

static void pull_usage(FILE *f) {
  fputs("usage: tiergate pull NAME|URL [-o DIR] [--sha256 HEX] [-q|--quiet]\n"
        "       tiergate pull --list\n"
        "\n"
        "Downloads a GGUF model file into DIR and prints its path on stdout (alone, last line).\n"
        "\n"
        "  NAME              a catalogue name, e.g. qwen2.5-0.5b-instruct (see --list)\n"
        "  URL               an http:// or https:// URL of a .gguf file (for Hugging Face the\n"
        "                    .../resolve/main/FILE.gguf URL); the file keeps the URL's name\n"
        "  -o, --output DIR  where to put it (default $TIERGATE_MODELS, else ./models; created\n"
        "                    when missing, one level)\n"
        "  --sha256 HEX      the file's expected sha256 (default: the catalogue's when known);\n"
        "                    replaces the catalogue's size and hash checks\n"
        "  -q, --quiet       print nothing but the path (errors still go to stderr)\n"
        "  --list            print the catalogue: names, files, sizes, sha256, URLs\n"
        "  -h, --help        this text\n"
        "\n"
        "The download goes to FILE.part; run the same command again after an interruption and it\n"
        "resumes with an HTTP Range request. FILE appears only once its GGUF header, size and\n"
        "sha256 check out; a wrong one deletes FILE.part. A FILE already there with the right\n"
        "hash is not downloaded again. TIERGATE_PULL_MIRROR=URL replaces " PULL_DEFAULT_BASE "\n"
        "in catalogue URLs. Progress goes to stderr: one redrawn line on a terminal, plain lines\n"
        "otherwise.\n"
        "Exit status: 0 done (or already there), 1 download or check failed, 2 usage error.\n",
        f);
}

static void pull_list(void) {
  char base[PULL_BASE_MAX], url[PULL_URL_MAX], h[32];
  if (catalogue_base(base)) snprintf(base, sizeof base, "(TIERGATE_PULL_MIRROR too long)");
  printf("tiergate pull catalogue (base %s; TIERGATE_PULL_MIRROR replaces it)\n", base);
  for (size_t i = 0; i < PULL_N_MODELS; i++) {
    const struct pull_model *m = &pull_catalogue[i];
    if (catalogue_url(m, url, sizeof url)) snprintf(url, sizeof url, "(URL too long)");
    if (m->alias) printf("\n%s  (also %s)\n", m->name, m->alias);
    else printf("\n%s\n", m->name);
    printf("  %s\n  file    %s\n", m->about, m->file);
    if (m->size) printf("  size    %" PRIu64 " bytes (%s)\n", m->size, human(m->size, h, sizeof h));
    else printf("  size    unknown (not verified)\n");
    if (m->sha256) printf("  sha256  %s\n", m->sha256);
    else printf("  sha256  unknown (not verified: nothing is compared; --sha256 HEX to check)\n");
    printf("  url     %s\n", url);
  }
}

static void unknown_name(const char *name) {
  char list[1024];
  size_t k = 0;
  for (size_t i = 0; i < PULL_N_MODELS && k < sizeof list; i++)
    k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", i ? ", " : "", pull_catalogue[i].name);
  fail("unknown model '%s'; catalogue names: %s (or give an http(s) URL; tiergate pull --list)",
       name, list);
}

struct pull_args {
  const char *target;
  const char *dir;
  char sha[65];
  bool have_sha;
};

/* Parses ARGV (ARGV[0] = "pull"). 0: go on; 1: done (help/list printed, exit 0); 2: usage error. */
static int parse_args(int argc, char **argv, struct pull_args *a) {
  memset(a, 0, sizeof *a);
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i], *val = NULL;
    if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
      pull_usage(stdout);
      return 1;
    }
    if (!strcmp(s, "--list")) {
      pull_list();
      return 1;
    }
    if (!strcmp(s, "-q") || !strcmp(s, "--quiet")) {
      pull_quiet = true;
      continue;
    }
    bool is_o = !strcmp(s, "-o") || !strcmp(s, "--output");
    bool is_sha = !strcmp(s, "--sha256");
    if (is_o || is_sha) {
      if (i + 1 >= argc) {
        fail("%s needs a value", s);
        return 2;
      }
      val = argv[++i];
    } else if (!strncmp(s, "--output=", 9)) {
      is_o = true;
      val = s + 9;
    } else if (!strncmp(s, "--sha256=", 9)) {
      is_sha = true;
      val = s + 9;
    }
    if (is_o) {
      if (!*val) {
        fail("-o needs a directory");
        return 2;
      }
      a->dir = val;
    } else if (is_sha) {
      if (!is_hex64(val)) {
        fail("--sha256 wants 64 hex digits, got '%s'", val);
        return 2;
      }
      for (int k = 0; k < 64; k++) a->sha[k] = (char)(val[k] >= 'A' && val[k] <= 'F' ? val[k] + 32 : val[k]);
      a->sha[64] = 0;
      a->have_sha = true;
    } else if (s[0] == '-' && s[1]) {
      fail("unknown option '%s'", s);
      pull_usage(stderr);
      return 2;
    } else if (a->target) {
      fail("one model at a time: '%s' and '%s'", a->target, s);
      return 2;
    } else {
      a->target = s;
    }
  }
  if (!a->target) {
    pull_usage(stderr);
    return 2;
  }
  return 0;
}

/* Downloads URL into PATH via PART and checks it. 0 ok, 1 failed. */
static int download(const char *url, const char *dir, const char *path, const char *part,
                    uint64_t expect_size, const char *expect_sha) {
  int fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    fail("cannot open %s: %s", part, strerror(errno));
    return 1;
  }
  struct stat st;
  if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
    fail("%s is not a regular file", part);
    close(fd);
    return 1;
  }
  struct pull_xfer *x = calloc(1, sizeof *x);
  if (!x) {
    close(fd);
    fail("out of memory");
    return 1;
  }
  x->url = url;
  x->dir = dir;
  x->part = part;
  x->fd = fd;
  x->expect_size = expect_size;
  x->pg.on = !pull_quiet;
  x->pg.tty = isatty(STDERR_FILENO);
  sha_init(&x->sha);
  int ret = 1;
  if (st.st_size > 0) {   /* an earlier run's bytes: hash them, then ask for the rest */
    char why[96], h[32];
    uint64_t n;
    note("found %s (%s): checking it to resume", part, human((uint64_t)st.st_size, h, sizeof h));
    int rc = hash_fd(fd, &x->sha, &n, x->head, &x->head_len);
    if (rc) {
      fail("cannot read %s: %s", part, strerror(-rc));
      goto out;
    }
    bool bad = n < 8 || gguf_head_check(x->head, x->head_len, why, sizeof why) ||
               (expect_size && n > expect_size);
    if (bad) {
      note("%s does not start a GGUF file of the expected size: starting over", part);
      if (ftruncate(fd, 0)) {
        fail("cannot empty %s: %s", part, strerror(errno));
        goto out;
      }
      sha_init(&x->sha);
      n = 0;
    } else {
      x->head_ok = true;
    }
    x->start = x->have = n;
    x->head_len = 0;
  }
  if (lseek(fd, (off_t)x->have, SEEK_SET) < 0) {
    fail("cannot seek in %s: %s", part, strerror(errno));
    goto out;
  }
  note("%s %s -> %s", x->start ? "resuming" : "downloading", url, path);
  if (x->start) note("asking for the bytes from %" PRIu64 " on (HTTP Range)", x->start);

  char errbuf[CURL_ERROR_SIZE];
  CURLcode rc = transfer(x, errbuf);
  if (x->restart) {   /* the .part does not belong to this file: once more from zero */
    note("%s; starting over", x->msg);
    if (ftruncate(fd, 0) || lseek(fd, 0, SEEK_SET) < 0) {
      fail("cannot empty %s: %s", part, strerror(errno));
      goto out;
    }
    struct pull_progress pg = x->pg;
    memset(x, 0, sizeof *x);
    x->url = url;
    x->dir = dir;
    x->part = part;
    x->fd = fd;
    x->expect_size = expect_size;
    x->pg = pg;
    sha_init(&x->sha);
    rc = transfer(x, errbuf);
  }
  progress_break(&x->pg);
  char h1[32];
  if (x->why != PF_NONE) {
    fail("%s", x->msg);
    if (x->why == PF_NOT_GGUF || x->why == PF_SIZE || x->have == 0) {
      if (!unlink(part) && x->have) note("removed %s", part);
    } else {
      note("kept %s of it in %s: run the same command again to resume", human(x->have, h1, sizeof h1),
           part);
    }
    goto out;
  }
  if (rc != CURLE_OK) {
    fail("%s: %s%s%s", url, curl_easy_strerror(rc), errbuf[0] ? ": " : "", errbuf);
    if (x->have == 0) unlink(part);
    else note("kept %s in %s: run the same command again to resume", human(x->have, h1, sizeof h1),
              part);
    goto out;
  }
  if (!x->head_ok && !x->done_by_416) {   /* the body ended before 8 bytes */
    char why[96], what[256];
    if (gguf_head_check(x->head, x->head_len, why, sizeof why) && !why[0])
      describe_head(x->head, x->head_len, x->content_type, what, sizeof what);
    fail("%s is not a GGUF file: %s", url, why[0] ? why : what);
    unlink(part);
    goto out;
  }
  if (x->total && x->have != x->total) {
    fail("%s: the transfer ended at %" PRIu64 " of %" PRIu64 " bytes", url, x->have, x->total);
    note("kept them in %s: run the same command again to resume", part);
    goto out;
  }
  if (expect_size && x->have != expect_size) {
    fail("%s has %" PRIu64 " bytes, expected %" PRIu64 "; removed %s", url, x->have, expect_size,
         part);
    unlink(part);
    goto out;
  }
  progress_show(&x->pg, x->have, true);
  char got[65];
  sha_final_hex(&x->sha, got);
  if (expect_sha && strcmp(got, expect_sha)) {
    fail("sha256 mismatch for %s: expected %s, got %s; removed %s", path, expect_sha, got, part);
    unlink(part);
    goto out;
  }
  if (fsync(fd)) {
    fail("cannot write %s: %s", part, strerror(errno));
    goto out;
  }
  if (rename(part, path)) {
    fail("cannot rename %s to %s: %s", part, path, strerror(errno));
    goto out;
  }
  note("saved %s (%" PRIu64 " bytes, sha256 %s%s)", path, x->have, got,
       expect_sha ? ", verified" : ", none known to compare");
  ret = 0;
out:
  close(fd);
  free(x);
  return ret;
}

int rt_pull_main(int argc, char **argv) {
  struct pull_args a;
  pull_quiet = false;
  int rc = parse_args(argc, argv, &a);
  if (rc) return rc == 1 ? 0 : 2;

  char url[PULL_URL_MAX], file[256];
  const struct pull_model *m = NULL;
  if (is_http_url(a.target)) {
    if (strlen(a.target) >= sizeof url) {
      fail("URL too long");
      return 2;
    }
    snprintf(url, sizeof url, "%s", a.target);
    if (url_file_name(url, file, sizeof file)) {
      fail("cannot take a plain file name from the end of %s", url);
      return 2;
    }
  } else if (strstr(a.target, "://")) {
    fail("only http:// and https:// URLs are supported, not '%s'", a.target);
    return 2;
  } else {
    m = catalogue_find(a.target);
    if (!m) {
      unknown_name(a.target);
      return 2;
    }
    if (catalogue_url(m, url, sizeof url)) {
      fail("TIERGATE_PULL_MIRROR is too long");
      return 2;
    }
    if (!is_http_url(url)) {
      fail("TIERGATE_PULL_MIRROR must be an http:// or https:// URL, not '%s'", url);
      return 2;
    }
    snprintf(file, sizeof file, "%s", m->file);
  }
  /* --sha256 names the file exactly; it replaces what the catalogue says (size included). */
  const char *expect_sha = a.have_sha ? a.sha : m ? m->sha256 : NULL;
  uint64_t expect_size = !a.have_sha && m ? m->size : 0;

  char dir[PULL_PATH_MAX], path[PULL_PATH_MAX], part[PULL_PATH_MAX + 8];
  const char *env_dir = getenv("TIERGATE_MODELS");
  const char *d = a.dir ? a.dir : env_dir && *env_dir ? env_dir : PULL_DEFAULT_DIR;
  if (strlen(d) >= sizeof dir) {
    fail("directory path too long");
    return 2;
  }
  snprintf(dir, sizeof dir, "%s", d);
  size_t dl = strlen(dir);
  while (dl > 1 && dir[dl - 1] == '/') dir[--dl] = 0;
  if (dl + 1 + strlen(file) + 6 >= sizeof path) {
    fail("directory path too long");
    return 2;
  }
  snprintf(path, sizeof path, "%s/%s", dir, file);
  snprintf(part, sizeof part, "%s.part", path);
  if ((rc = prepare_dir(dir))) return rc;

  struct stat st;
  if (!stat(path, &st)) {   /* already there? */
    if (!S_ISREG(st.st_mode)) {
      fail("%s exists and is not a regular file", path);
      return 1;
    }
    rc = check_existing(path, expect_size, expect_sha);
    if (!rc) printf("%s\n", path);
    return rc;
  }

  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    fail("cannot initialise libcurl");
    return 1;
  }
  struct sigaction sa, old_int, old_term, old_pipe;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  pull_stop = 0;
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, &old_pipe);
  rc = download(url, dir, path, part, expect_size, expect_sha);
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  sigaction(SIGPIPE, &old_pipe, NULL);
  curl_global_cleanup();
  if (!rc) {
    printf("%s\n", path);
    fflush(stdout);
  }
  return rc;
}
