/*
 * fuzz_replay.c: replays a libFuzzer corpus through a target's LLVMFuzzerTestOneInput without
 * libFuzzer, so every normal (sanitized) test run re-checks the corpus and past findings. Linked
 * with one fuzz target per test (tests/<part>/fuzz_*.c).
 *
 *   fuzz_replay [--prefixes N] [--min-files N] DIR_OR_FILE...
 *
 * Each input is passed as an exact-size heap copy (ASan sees any overread). --prefixes N also
 * feeds every prefix of up to N bytes of each input: truncated headers and cut UTF-8 cheaply.
 * Exits 0 when every input ran and at least --min-files (default 1) were found; a crash fails
 * the test.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path, long prefixes) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "fuzz_replay: cannot open %s\n", path);
    return -1;
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
  size_t got = buf && n > 0 ? fread(buf, 1, (size_t)n, f) : 0;
  fclose(f);
  if (!buf || got != (size_t)(n > 0 ? n : 0)) {
    fprintf(stderr, "fuzz_replay: cannot read %s\n", path);
    free(buf);
    return -1;
  }
  LLVMFuzzerTestOneInput(buf, got);
  for (size_t k = 0; k < got && k < (size_t)prefixes; k++) {
    uint8_t *p = malloc(k ? k : 1);
    if (!p) break;
    memcpy(p, buf, k);
    LLVMFuzzerTestOneInput(p, k);
    free(p);
  }
  free(buf);
  return 0;
}

int main(int argc, char **argv) {
  long prefixes = 0, min_files = 1;
  int files = 0, errors = 0;
  for (int i = 1; i < argc; i++) {
    if (i + 1 < argc && !strcmp(argv[i], "--prefixes")) {
      prefixes = strtol(argv[++i], NULL, 10);
      continue;
    }
    if (i + 1 < argc && !strcmp(argv[i], "--min-files")) {
      min_files = strtol(argv[++i], NULL, 10);
      continue;
    }
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      fprintf(stderr, "fuzz_replay: %s: not found\n", argv[i]);
      errors++;
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      errors += run_file(argv[i], prefixes) != 0;
      files++;
      continue;
    }
    DIR *d = opendir(argv[i]);
    struct dirent *e;
    while (d && (e = readdir(d))) {
      if (e->d_name[0] == '.') continue;
      char path[4096];
      snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
      errors += run_file(path, prefixes) != 0;
      files++;
    }
    if (d) closedir(d);
  }
  printf("fuzz_replay: %d input(s), %d error(s)\n", files, errors);
  if (files < min_files) fprintf(stderr, "fuzz_replay: only %d input(s), expected %ld\n", files, min_files);
  return errors || files < min_files ? 1 : 0;
}
