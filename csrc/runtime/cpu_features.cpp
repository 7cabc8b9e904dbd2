// CPU feature detection, done once per process.
//   x86-64: cpuid leaves 1 and 7, and xgetbv to check that the OS saves the YMM/ZMM state
//           (a CPU flag alone is not enough: AVX under an OS that does not save YMM faults).
//   aarch64: getauxval(AT_HWCAP / AT_HWCAP2), which the kernel fills from the ID registers.
#include <thread>

#include "medqk/medqk.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#define MEDQK_X86 1
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#define MEDQK_ARM64_LINUX 1
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1 << 13)
#endif
#endif

namespace medqk {
namespace {

#if MEDQK_X86
unsigned long long read_xcr0() {
  unsigned int eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}

// Linux enables the 8 KiB AMX tile state per process, on request (arch_prctl ARCH_REQ_XCOMP_PERM for
// XFEATURE_XTILEDATA); without it the first tile instruction kills the process with SIGILL.
bool request_amx_permission() {
#if defined(__linux__)
  constexpr long kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
#if MEDQK_X86
  unsigned int eax = 0, ebx = 0, ecx = 0, edx = 0;
  unsigned int max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf >= 1) {
    __cpuid_count(1, 0, eax, ebx, ecx, edx);
    f.sse2 = (edx >> 26) & 1;
    const bool osxsave = (ecx >> 27) & 1;
    const bool avx = (ecx >> 28) & 1;
    const bool fma = (ecx >> 12) & 1;
    const bool f16c = (ecx >> 29) & 1;
    unsigned long long xcr0 = osxsave ? read_xcr0() : 0;
    const bool ymm_saved = (xcr0 & 0x6) == 0x6;                 // XMM and YMM state
    const bool zmm_saved = ymm_saved && (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM_Hi256, Hi16_ZMM
    if (max_leaf >= 7) {
      unsigned int a7, b7, c7, d7;
      __cpuid_count(7, 0, a7, b7, c7, d7);
      const bool avx2 = (b7 >> 5) & 1;
      f.avx2 = avx && avx2 && ymm_saved;
      f.fma = avx && fma && ymm_saved;
      f.f16c = avx && f16c && ymm_saved;
      f.avx512f = ((b7 >> 16) & 1) && zmm_saved;
      f.avx512bw = ((b7 >> 30) & 1) && zmm_saved;
      f.avx512vnni = ((c7 >> 11) & 1) && zmm_saved;
      f.avx512vbmi = ((c7 >> 1) & 1) && zmm_saved;
      f.avx512vpopcntdq = ((c7 >> 14) & 1) && zmm_saved;
      unsigned int a71, b71, c71, d71;
      __cpuid_count(7, 1, a71, b71, c71, d71);
      f.avx_vnni = ((a71 >> 4) & 1) && ymm_saved;
      const bool amx = ((d7 >> 24) & 1) && ((d7 >> 25) & 1);           // AMX-TILE, AMX-INT8
      const bool tiles_saved = (xcr0 & (3ull << 17)) == (3ull << 17);  // XTILECFG, XTILEDATA
      f.amx_int8 = amx && tiles_saved && zmm_saved && request_amx_permission();
    }
  }
#elif MEDQK_ARM64_LINUX
  const unsigned long hw = getauxval(AT_HWCAP);
  const unsigned long hw2 = getauxval(AT_HWCAP2);
  f.asimd = (hw & HWCAP_ASIMD) != 0;
  f.asimddp = (hw & HWCAP_ASIMDDP) != 0;
  f.i8mm = (hw2 & HWCAP2_I8MM) != 0;
#elif defined(__aarch64__)
  f.asimd = true;  // ASIMD is mandatory in armv8-a
#endif
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

int hardware_threads() {
  static const int n = [] {
    unsigned int h = std::thread::hardware_concurrency();
    return h == 0 ? 1 : static_cast<int>(h);
  }();
  return n;
}

}  // namespace medqk
