// The dispatch policy: scalar always there, best first, unsupported ISAs refused without a crash.
#include <cstdio>

#include "medqk/medqk.h"

int main() {
  int failures = 0;
  auto expect = [&](bool ok, const char* what) {
    if (!ok) {
      std::printf("FAIL: %s\n", what);
      ++failures;
    }
  };
  const medqk::CpuFeatures& f = medqk::cpu_features();
  std::printf("cpu: sse2=%d avx2=%d fma=%d f16c=%d avx512f=%d avx512vnni=%d avx_vnni=%d asimd=%d asimddp=%d i8mm=%d\n",
              f.sse2, f.avx2, f.fma, f.f16c, f.avx512f, f.avx512vnni, f.avx_vnni, f.asimd, f.asimddp, f.i8mm);
  std::printf("supported:");
  for (medqk::Isa isa : medqk::supported_isas()) std::printf(" %s", medqk::isa_name(isa));
  std::printf("\nactive: %s\n", medqk::isa_name(medqk::active_isa()));

  expect(medqk::isa_supported(medqk::Isa::scalar), "scalar is always supported");
  expect(medqk::supported_isas().back() == medqk::Isa::scalar, "scalar is the last resort");
  expect(medqk::best_isa() == medqk::supported_isas().front(), "best_isa is the first supported");
#if defined(__x86_64__)
  expect(f.sse2, "x86-64 always has SSE2");
  expect(!medqk::isa_supported(medqk::Isa::neon), "no NEON on x86");
  expect(medqk::isa_supported(medqk::Isa::avx512vnni) == (f.avx2 && f.avx512f && f.avx512bw && f.avx512vnni),
         "avx512vnni follows cpuid and the OS saving ZMM state");
  expect(medqk::isa_supported(medqk::Isa::avx2) == (f.avx2 && f.fma && f.f16c), "avx2 follows cpuid");
  expect(!medqk::set_isa(medqk::Isa::neon_dotprod), "set_isa refuses an ISA this CPU lacks");
#elif defined(__aarch64__)
  expect(f.asimd, "aarch64 always has ASIMD");
  expect(!medqk::isa_supported(medqk::Isa::avx2), "no AVX2 on aarch64");
  expect(!medqk::isa_supported(medqk::Isa::avx512vnni), "no AVX-512 on aarch64");
  expect(medqk::isa_supported(medqk::Isa::neon_dotprod) == f.asimddp, "neon_dotprod follows HWCAP_ASIMDDP");
  if (!f.asimddp) expect(!medqk::set_isa(medqk::Isa::neon_dotprod), "set_isa refuses dotprod without it");
#endif
  expect(medqk::set_isa(medqk::Isa::scalar) && medqk::active_isa() == medqk::Isa::scalar, "set_isa(scalar)");
  medqk::Isa parsed;
  expect(medqk::isa_from_name("neon_dotprod", &parsed) && parsed == medqk::Isa::neon_dotprod, "isa names parse");
  expect(!medqk::isa_from_name("sse9", &parsed), "unknown names are refused");
  std::printf("%d failures\n", failures);
  return failures == 0 ? 0 : 1;
}
