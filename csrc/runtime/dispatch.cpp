// Runtime ISA choice = "built into this binary" AND "the CPU has it", best first, overridable once by
// the environment (MEDQK_ISA) and later by set_isa(). Kernels are looked up per call from a table that
// is filled once; the hot loops never test CPU features.
#include "runtime/dispatch.h"

#include <atomic>
#include <cstdlib>
#include <string>

namespace medqk {
namespace {

const char* const kIsaNames[kNumIsas] = {"scalar", "avx2", "neon", "neon_dotprod", "avx512vnni", "amx"};

struct KernelTable {
  const kernels::GemmS8Kernel* gemm_s8[kNumIsas] = {};
  kernels::Lut4ScanFn lut4_scan[kNumIsas] = {};
  kernels::F16ScoresFn f16_scores[kNumIsas] = {};
  kernels::S8ScoreCandidatesFn s8_score[kNumIsas] = {};
  kernels::PqAssignFn pq_assign[kNumIsas] = {};
  kernels::Pq8ScanFn pq8_scan[kNumIsas] = {};
  kernels::Pq8ScanGroupFn pq8_scan_group[kNumIsas] = {};  // only where it beats one query at a time
  kernels::QuantizeRowsFn quantize_rows[kNumIsas] = {};
};

const KernelTable& table() {
  static const KernelTable t = [] {
    KernelTable k;
    static const kernels::GemmS8Kernel scalar_gemm = {kernels::scalar::kGemmS8PanelCols,
                                                      kernels::scalar::gemm_s8s8_s32_packed_bytes,
                                                      kernels::scalar::gemm_s8s8_s32_pack,
                                                      kernels::scalar::gemm_s8s8_s32, nullptr};
    k.gemm_s8[static_cast<int>(Isa::scalar)] = &scalar_gemm;
    k.lut4_scan[static_cast<int>(Isa::scalar)] = kernels::scalar::lut4_scan;
    k.f16_scores[static_cast<int>(Isa::scalar)] = kernels::scalar::f16_scores;
    k.s8_score[static_cast<int>(Isa::scalar)] = kernels::scalar::s8_score_candidates;
    k.pq_assign[static_cast<int>(Isa::scalar)] = kernels::scalar::pq_assign;
    k.pq8_scan[static_cast<int>(Isa::scalar)] = kernels::scalar::pq8_scan;
    k.quantize_rows[static_cast<int>(Isa::scalar)] = kernels::scalar::quantize_rows_s8;
#if defined(MEDQK_BUILD_AVX2)
    static const kernels::GemmS8Kernel avx2_gemm = {kernels::avx2::kGemmS8PanelCols,
                                                    kernels::avx2::gemm_s8s8_s32_packed_bytes,
                                                    kernels::avx2::gemm_s8s8_s32_pack,
                                                    kernels::avx2::gemm_s8s8_s32, nullptr};
    k.gemm_s8[static_cast<int>(Isa::avx2)] = &avx2_gemm;
    k.lut4_scan[static_cast<int>(Isa::avx2)] = kernels::avx2::lut4_scan;
    k.f16_scores[static_cast<int>(Isa::avx2)] = kernels::avx2::f16_scores;
    k.s8_score[static_cast<int>(Isa::avx2)] = kernels::avx2::s8_score_candidates;
    k.pq_assign[static_cast<int>(Isa::avx2)] = kernels::avx2::pq_assign;
    // AVX2 has only 16-entry byte shuffles: 16 sub-table lookups per code for one query, the group scan
    // (query-minor tables) for several (kernels/avx2/pq8_scan_avx2.cpp)
    k.pq8_scan[static_cast<int>(Isa::avx2)] = kernels::avx2::pq8_scan;
    k.pq8_scan_group[static_cast<int>(Isa::avx2)] = kernels::avx2::pq8_scan_group;
    k.quantize_rows[static_cast<int>(Isa::avx2)] = kernels::avx2::quantize_rows_s8;
#endif
#if defined(MEDQK_BUILD_AVX512VNNI)
    static const kernels::GemmS8Kernel avx512vnni_gemm = {kernels::avx512vnni::kGemmS8PanelCols,
                                                          kernels::avx512vnni::gemm_s8s8_s32_packed_bytes,
                                                          kernels::avx512vnni::gemm_s8s8_s32_pack,
                                                          kernels::avx512vnni::gemm_s8s8_s32,
                                                          kernels::avx512vnni::gemm_s8s8_f32};
    k.gemm_s8[static_cast<int>(Isa::avx512vnni)] = &avx512vnni_gemm;
    // the table scan by vpermb where the CPU has AVX-512 VBMI, by vpshufb otherwise
    k.lut4_scan[static_cast<int>(Isa::avx512vnni)] =
        cpu_features().avx512vbmi ? kernels::avx512vnni::lut4_scan_vbmi : kernels::avx512vnni::lut4_scan;
    k.f16_scores[static_cast<int>(Isa::avx512vnni)] = kernels::avx2::f16_scores;  // F16C is part of the path
    k.s8_score[static_cast<int>(Isa::avx512vnni)] = kernels::avx2::s8_score_candidates;
    k.pq_assign[static_cast<int>(Isa::avx512vnni)] = kernels::avx2::pq_assign;   // FMA is part of the path
    // vpermi2b needs AVX-512 VBMI (Ice Lake, Zen 4 and later), which the avx512vnni path does not require
    const kernels::Pq8ScanFn pq8_avx512 =
        cpu_features().avx512vbmi ? kernels::avx512vnni::pq8_scan : kernels::avx2::pq8_scan;
    k.pq8_scan[static_cast<int>(Isa::avx512vnni)] = pq8_avx512;
    k.pq8_scan_group[static_cast<int>(Isa::avx512vnni)] =
        cpu_features().avx512vbmi ? nullptr : kernels::avx2::pq8_scan_group;
    k.quantize_rows[static_cast<int>(Isa::avx512vnni)] = kernels::avx2::quantize_rows_s8;
#endif
#if defined(MEDQK_BUILD_AMX)
    // AMX adds the GEMM; the other operations run the AVX-512 / AVX2 kernels (the amx path requires them)
    static const kernels::GemmS8Kernel amx_gemm = {kernels::amx::kGemmS8PanelCols,
                                                   kernels::amx::gemm_s8s8_s32_packed_bytes,
                                                   kernels::amx::gemm_s8s8_s32_pack, kernels::amx::gemm_s8s8_s32,
                                                   nullptr};
    k.gemm_s8[static_cast<int>(Isa::amx)] = &amx_gemm;
    k.lut4_scan[static_cast<int>(Isa::amx)] =
        cpu_features().avx512vbmi ? kernels::avx512vnni::lut4_scan_vbmi : kernels::avx512vnni::lut4_scan;
    k.f16_scores[static_cast<int>(Isa::amx)] = kernels::avx2::f16_scores;
    k.s8_score[static_cast<int>(Isa::amx)] = kernels::avx2::s8_score_candidates;
    k.pq_assign[static_cast<int>(Isa::amx)] = kernels::avx2::pq_assign;
    k.pq8_scan[static_cast<int>(Isa::amx)] =
        cpu_features().avx512vbmi ? kernels::avx512vnni::pq8_scan : kernels::avx2::pq8_scan;
    k.pq8_scan_group[static_cast<int>(Isa::amx)] =
        cpu_features().avx512vbmi ? nullptr : kernels::avx2::pq8_scan_group;
    k.quantize_rows[static_cast<int>(Isa::amx)] = kernels::avx2::quantize_rows_s8;
#endif
#if defined(MEDQK_BUILD_NEON)
    static const kernels::GemmS8Kernel neon_gemm = {kernels::neon::kGemmS8PanelCols,
                                                    kernels::neon::gemm_s8s8_s32_packed_bytes,
                                                    kernels::neon::gemm_s8s8_s32_pack,
                                                    kernels::neon::gemm_s8s8_s32, nullptr};
    k.gemm_s8[static_cast<int>(Isa::neon)] = &neon_gemm;
    k.lut4_scan[static_cast<int>(Isa::neon)] = kernels::neon::lut4_scan;
    k.f16_scores[static_cast<int>(Isa::neon)] = kernels::neon::f16_scores;
    k.s8_score[static_cast<int>(Isa::neon)] = kernels::neon::s8_score_candidates;
    k.pq_assign[static_cast<int>(Isa::neon)] = kernels::neon::pq_assign;
    k.pq8_scan[static_cast<int>(Isa::neon)] = kernels::neon::pq8_scan;
    // the portable loop is NEON code on aarch64 (the compiler vectorizes it at the baseline)
    k.quantize_rows[static_cast<int>(Isa::neon)] = kernels::scalar::quantize_rows_s8;
#endif
#if defined(MEDQK_BUILD_NEON_DOTPROD)
    static const kernels::GemmS8Kernel neon_dotprod_gemm = {kernels::neon_dotprod::kGemmS8PanelCols,
                                                            kernels::neon_dotprod::gemm_s8s8_s32_packed_bytes,
                                                            kernels::neon_dotprod::gemm_s8s8_s32_pack,
                                                            kernels::neon_dotprod::gemm_s8s8_s32, nullptr};
    k.gemm_s8[static_cast<int>(Isa::neon_dotprod)] = &neon_dotprod_gemm;
    // table lookups gain nothing from sdot: the dotprod path reuses the armv8-a scan
    k.lut4_scan[static_cast<int>(Isa::neon_dotprod)] = kernels::neon::lut4_scan;
    k.f16_scores[static_cast<int>(Isa::neon_dotprod)] = kernels::neon::f16_scores;
    k.s8_score[static_cast<int>(Isa::neon_dotprod)] = kernels::neon::s8_score_candidates;
    k.pq_assign[static_cast<int>(Isa::neon_dotprod)] = kernels::neon::pq_assign;  // float: sdot has nothing to add
    k.pq8_scan[static_cast<int>(Isa::neon_dotprod)] = kernels::neon::pq8_scan;
    k.quantize_rows[static_cast<int>(Isa::neon_dotprod)] = kernels::scalar::quantize_rows_s8;
#endif
    return k;
  }();
  return t;
}

bool cpu_has(Isa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Isa::scalar: return true;
    case Isa::avx2: return f.avx2 && f.fma && f.f16c;
    case Isa::neon: return f.asimd;
    case Isa::neon_dotprod: return f.asimd && f.asimddp;
    case Isa::avx512vnni: return f.avx2 && f.fma && f.f16c && f.avx512f && f.avx512bw && f.avx512vnni;
    case Isa::amx: return f.avx2 && f.fma && f.f16c && f.avx512f && f.avx512bw && f.avx512vnni && f.amx_int8;
  }
  return false;
}

struct ActiveIsa {
  std::atomic<int> isa;
  std::string env_error;
  ActiveIsa() : isa(static_cast<int>(best_isa())) {
    const char* env = std::getenv("MEDQK_ISA");
    if (env == nullptr || *env == '\0') return;
    Isa wanted;
    if (!isa_from_name(env, &wanted)) {
      env_error = std::string("MEDQK_ISA='") + env + "' is not an ISA medqk knows (scalar, avx2, avx512vnni, amx, neon, neon_dotprod)";
    } else if (!isa_supported(wanted)) {
      env_error = std::string("MEDQK_ISA='") + env + "' is not available here (" +
                  (isa_built(wanted) ? "this CPU lacks it" : "this build does not contain it") + ")";
    } else {
      isa.store(static_cast<int>(wanted));
    }
  }
};

ActiveIsa& active() {
  static ActiveIsa a;
  return a;
}

}  // namespace

const char* isa_name(Isa isa) {
  const int i = static_cast<int>(isa);
  return (i >= 0 && i < kNumIsas) ? kIsaNames[i] : "unknown";
}

bool isa_from_name(const std::string& name, Isa* out) {
  for (int i = 0; i < kNumIsas; ++i) {
    if (name == kIsaNames[i]) {
      *out = static_cast<Isa>(i);
      return true;
    }
  }
  return false;
}

bool isa_built(Isa isa) {
  const int i = static_cast<int>(isa);
  return i >= 0 && i < kNumIsas && table().gemm_s8[i] != nullptr;
}

bool isa_supported(Isa isa) { return isa_built(isa) && cpu_has(isa); }

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::amx, Isa::avx512vnni, Isa::avx2, Isa::neon_dotprod, Isa::neon, Isa::scalar}) {
    if (isa_supported(isa)) out.push_back(isa);
  }
  return out;
}

Isa best_isa() { return supported_isas().front(); }

Isa active_isa() { return static_cast<Isa>(active().isa.load()); }

bool set_isa(Isa isa) {
  if (!isa_supported(isa)) return false;
  active().isa.store(static_cast<int>(isa));
  return true;
}

const std::string& isa_env_error() { return active().env_error; }

namespace runtime {

const kernels::GemmS8Kernel* gemm_s8_kernel(Isa isa) {
  const int i = static_cast<int>(isa);
  return (i >= 0 && i < kNumIsas) ? table().gemm_s8[i] : nullptr;
}

kernels::F16ScoresFn f16_scores_kernel(Isa isa) {
  const int i = static_cast<int>(isa);
  return (i >= 0 && i < kNumIsas) ? table().f16_scores[i] : nullptr;
}

kernels::S8ScoreCandidatesFn s8_score_kernel(Isa isa) {
  const int i = static_cast<int>(isa);
  return (i >= 0 && i < kNumIsas) ? table().s8_score[i] : nullptr;
}

kernels::PqAssignFn pq_assign_kernel(Isa isa) {
  const int i = static_cast<int>(isa);
  return (i >= 0 && i < kNumIsas) ? table().pq_assign[i] : nullptr;
}

kernels::Pq8ScanFn pq8_scan_kernel(Isa isa) {
  const int i = static_cast<int>(isa);
  return (i >= 0 && i < kNumIsas) ? table().pq8_scan[i] : nullptr;
}

kernels::Pq8ScanGroupFn pq8_scan_group_kernel(Isa isa) {
  const int i = static_cast<int>(isa);
  return (i >= 0 && i < kNumIsas) ? table().pq8_scan_group[i] : nullptr;
}

kernels::QuantizeRowsFn quantize_rows_kernel(Isa isa) {
  const int i = static_cast<int>(isa);
  return (i >= 0 && i < kNumIsas) ? table().quantize_rows[i] : nullptr;
}

kernels::Lut4ScanFn lut4_scan_kernel(Isa isa) {
  const int i = static_cast<int>(isa);
  return (i >= 0 && i < kNumIsas) ? table().lut4_scan[i] : nullptr;
}

}  // namespace runtime
}  // namespace medqk
