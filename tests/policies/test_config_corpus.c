/*
 * test_config_corpus.c: replays every file of tests/policies/corpus/config/ (fuzz seeds and former
 * findings) through the fuzz target's entry point, without libFuzzer, so the sanitizer build
 * checks them in every run. Each file is also cut at every byte, which ends documents mid-token,
 * mid-scalar and mid-${...}.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "tests/check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(void) {
  const char *src = getenv("TIERGATE_SOURCE_DIR");
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/tests/policies/corpus/config", src ? src : ".");
  /* fixed environment so replays are deterministic: one variable set, one empty, one unset */
  setenv("TG_FUZZ_SET", "127.0.0.1:8080", 1);
  setenv("TG_FUZZ_EMPTY", "", 1);
  unsetenv("TG_FUZZ_UNSET");
  DIR *dp = opendir(dir);
  CHECK_MSG(dp != NULL, "cannot open %s", dir);
  if (!dp) return check_done();
  int n = 0;
  struct dirent *de;
  while ((de = readdir(dp))) {
    if (de->d_name[0] == '.') continue;
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    FILE *fp = fopen(path, "rb");
    CHECK_MSG(fp != NULL, "cannot read %s", path);
    if (!fp) continue;
    uint8_t *buf = malloc(1 << 20);
    size_t got = fread(buf, 1, 1 << 20, fp);
    fclose(fp);
    LLVMFuzzerTestOneInput(buf, got);
    for (size_t k = 0; k < got && k < 4096; k++) LLVMFuzzerTestOneInput(buf, k);
    free(buf);
    n++;
  }
  closedir(dp);
  CHECK_MSG(n >= 10, "only %d corpus files in %s", n, dir);
  printf("replayed %d corpus files\n", n);
  return check_done();
}
