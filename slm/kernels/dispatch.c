/*
 * dispatch.c: CPU detection and the kernel tables.
 *
 * One table per level, built once: level L starts as a copy of level L-1 and the ISA file of L
 * overwrites what it implements (dav1d's ascending fill), so every entry is always callable.
 * Only levels the CPU and the OS support are built: AVX state needs XCR0 bits 1-2 (XMM, YMM)
 * and AVX-512 state bits 5-7 (opmask, ZMM0-15 upper halves, ZMM16-31), read with XGETBV once
 * CPUID says OSXSAVE. A CPU can have the instructions while the OS does not save the registers
 * (some hypervisors, kernels booted with noxsave): then the level is not used.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "slm/kernels/impl.h"
#include "slm/kernels/kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define SLM_X86 1
#else
#define SLM_X86 0
#endif

static struct slm_kernels tables[SLM_CPU_LEVEL_COUNT];
static enum slm_cpu_level detected;
static pthread_once_t once = PTHREAD_ONCE_INIT;

#if SLM_X86
static uint64_t read_xcr0(void) {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return ((uint64_t)edx << 32) | eax;
}

static enum slm_cpu_level detect_x86(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return SLM_CPU_REF;
  const int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
  if (!osxsave || !avx) return SLM_CPU_REF;
  const uint64_t xcr0 = read_xcr0();
  if ((xcr0 & 0x6) != 0x6) return SLM_CPU_REF;
  if (__get_cpuid_max(0, NULL) < 7) return SLM_CPU_REF;
  __cpuid_count(7, 0, a, b, c, d);
  const int avx2 = (b >> 5) & 1;
  const int avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1, avx512bw = (b >> 30) & 1,
            avx512vl = (b >> 31) & 1, vnni = (c >> 11) & 1;
  const unsigned max_sub = a;
  int bf16 = 0;
  if (max_sub >= 1) {
    __cpuid_count(7, 1, a, b, c, d);
    bf16 = (a >> 5) & 1;
  }
  if (!(avx2 && fma && f16c)) return SLM_CPU_REF;
  if (!(avx512f && avx512dq && avx512bw && avx512vl) || (xcr0 & 0xe6) != 0xe6) return SLM_CPU_AVX2;
  if (!vnni) return SLM_CPU_AVX512;
  if (!bf16) return SLM_CPU_AVX512_VNNI;
  return SLM_CPU_AVX512_BF16;
}
#endif

static void build_tables(void) {
#if SLM_X86
  detected = detect_x86();
#else
  detected = SLM_CPU_REF;
#endif
  slm_kernels_fill_ref(&tables[SLM_CPU_REF]);
#if SLM_X86
  static void (*const fill[SLM_CPU_LEVEL_COUNT])(struct slm_kernels *) = {
    [SLM_CPU_AVX2] = slm_kernels_fill_avx2,
    [SLM_CPU_AVX512] = slm_kernels_fill_avx512,
    [SLM_CPU_AVX512_VNNI] = slm_kernels_fill_avx512_vnni,
    [SLM_CPU_AVX512_BF16] = slm_kernels_fill_avx512_bf16,
  };
  for (int l = SLM_CPU_AVX2; l <= (int)detected; l++) {
    tables[l] = tables[l - 1];
    fill[l](&tables[l]);
    tables[l].level = (enum slm_cpu_level)l;
  }
#endif
}

static const char *const level_names[SLM_CPU_LEVEL_COUNT] = {"ref", "avx2", "avx512", "vnni", "bf16"};

const char *slm_cpu_level_name(enum slm_cpu_level level) {
  return (unsigned)level < SLM_CPU_LEVEL_COUNT ? level_names[level] : "unknown";
}

enum slm_cpu_level slm_cpu_detect(void) {
  pthread_once(&once, build_tables);
  return detected;
}

/* SLM_CPU_MAX=ref|avx2|avx512|vnni|bf16 (or the level number); anything else is ignored. */
static enum slm_cpu_level env_max(void) {
  const char *e = getenv("SLM_CPU_MAX");
  if (!e || !*e) return SLM_CPU_LEVEL_COUNT - 1;
  for (int l = 0; l < SLM_CPU_LEVEL_COUNT; l++)
    if (strcmp(e, level_names[l]) == 0 || (e[0] == '0' + l && e[1] == 0)) return (enum slm_cpu_level)l;
  return SLM_CPU_LEVEL_COUNT - 1;
}

const struct slm_kernels *slm_kernels_init(enum slm_cpu_level max_level) {
  enum slm_cpu_level l = slm_cpu_detect();
  if ((unsigned)max_level < (unsigned)l) l = max_level;
  enum slm_cpu_level e = env_max();
  if (e < l) l = e;
  return &tables[l];
}

const struct slm_kernels *slm_kernels_at(enum slm_cpu_level level) {
  if ((unsigned)level > (unsigned)slm_cpu_detect()) return NULL;
  return &tables[level];
}
