// Runtime ISA choice = "built into this binary" AND "the CPU has it", best first, overridable once by
// the environment (MEDQK_ISA) and later by set_isa().
//
// Each operation declares its kernels once, as a chain of variants best first: the variant's name, the ISA
// path it belongs to, the CPU features it needs beyond that path, and the function. The active ISA runs the
// first variant its path includes (an amx CPU runs avx512vnni and avx2 kernels; neon_dotprod runs neon ones)
// whose extra features the CPU has. The chain is walked once per call (a handful of compares, never in a hot
// loop). force_kernel_variant() pins one variant for tests and benchmarks: every kernel the CPU can run is
// reachable, not only the one the chain picks.
#include "runtime/dispatch.h"

#include <atomic>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/f16_scores.h"
#include "kernels/gelu.h"
#include "kernels/gemm_s8s8_s32.h"
#include "kernels/gemm_w4a8.h"
#include "kernels/lut4_scan.h"
#include "kernels/pq8_scan.h"
#include "kernels/pq_assign.h"
#include "kernels/quantize_rows.h"
#include "kernels/rabitq_scan.h"
#include "kernels/s8_score.h"

namespace medqk {
namespace {

// CPU features a variant needs beyond its ISA path (the path's own features are checked by cpu_has)
enum Needs : unsigned { kNoExtra = 0, kVbmi = 1, kVpopcntdq = 2 };

bool cpu_has_needs(unsigned needs) {
  return ((needs & kVbmi) == 0 || cpu_features().avx512vbmi) &&
         ((needs & kVpopcntdq) == 0 || cpu_features().avx512vpopcntdq);
}

const char* needs_name(unsigned needs) {
  return (needs & kVbmi) != 0 ? "avx512vbmi" : (needs & kVpopcntdq) != 0 ? "avx512vpopcntdq" : "";
}

// The ISAs, declared once, best first: name, the path it falls back to (whose kernels it also runs and
// whose CPU features it also requires), whether this binary contains it, and the CPU features it adds.
struct IsaEntry {
  Isa isa;
  const char* name;
  Isa fallback;  // scalar's is itself
  bool built;
  bool (*adds)(const CpuFeatures& f);
};

constexpr IsaEntry kIsas[] = {
#if defined(MEDQK_BUILD_AMX)
    {Isa::amx, "amx", Isa::avx512vnni, true, [](const CpuFeatures& f) { return f.amx_int8; }},
#else
    {Isa::amx, "amx", Isa::avx512vnni, false, [](const CpuFeatures& f) { return f.amx_int8; }},
#endif
    {Isa::avx512vnni, "avx512vnni", Isa::avx2,
#if defined(MEDQK_BUILD_AVX512VNNI)
     true,
#else
     false,
#endif
     [](const CpuFeatures& f) { return f.avx512f && f.avx512bw && f.avx512vnni; }},
    {Isa::avx2, "avx2", Isa::scalar,
#if defined(MEDQK_BUILD_AVX2)
     true,
#else
     false,
#endif
     [](const CpuFeatures& f) { return f.avx2 && f.fma && f.f16c; }},
    {Isa::neon_dotprod, "neon_dotprod", Isa::neon,
#if defined(MEDQK_BUILD_NEON_DOTPROD)
     true,
#else
     false,
#endif
     [](const CpuFeatures& f) { return f.asimddp; }},
    {Isa::neon, "neon", Isa::scalar,
#if defined(MEDQK_BUILD_NEON)
     true,
#else
     false,
#endif
     [](const CpuFeatures& f) { return f.asimd; }},
    {Isa::scalar, "scalar", Isa::scalar, true, [](const CpuFeatures&) { return true; }},
};
static_assert(sizeof(kIsas) / sizeof(kIsas[0]) == kNumIsas, "one entry per Isa");

const IsaEntry* entry(Isa isa) {
  for (const IsaEntry& e : kIsas) {
    if (e.isa == isa) return &e;
  }
  return nullptr;
}

// Whether the CPU has an ISA path: its own features and those of every path it falls back to.
bool cpu_has(Isa isa) {
  for (const IsaEntry* e = entry(isa); e != nullptr; e = entry(e->fallback)) {
    if (!e->adds(cpu_features())) return false;
    if (e->isa == e->fallback) break;
  }
  return entry(isa) != nullptr;
}

// Whether a CPU path runs kernels of ISA `kernel`: `kernel` is on its fallback chain.
bool path_includes(Isa path, Isa kernel) {
  for (const IsaEntry* e = entry(path); e != nullptr; e = entry(e->fallback)) {
    if (e->isa == kernel) return true;
    if (e->isa == e->fallback) break;
  }
  return false;
}

std::string isa_names() {
  std::string out;
  for (const IsaEntry& e : kIsas) out += std::string(out.empty() ? "" : ", ") + e.name;
  return out;
}

class Operation {
 public:
  Operation(const char* name, bool forceable) : name_(name), forceable_(forceable) {}
  virtual ~Operation() = default;
  const char* name() const { return name_; }
  virtual std::size_t size() const = 0;
  virtual const char* variant_name(std::size_t i) const = 0;
  virtual Isa variant_isa(std::size_t i) const = 0;
  virtual unsigned variant_needs(std::size_t i) const = 0;

  bool runnable(std::size_t i) const { return cpu_has(variant_isa(i)) && cpu_has_needs(variant_needs(i)); }
  // The variant that runs under CPU path `path`: the forced one, else the first of the chain that fits
  std::size_t choose(Isa path) const {
    const int forced = forced_.load(std::memory_order_relaxed);
    if (forced >= 0) return static_cast<std::size_t>(forced);
    for (std::size_t i = 0; i < size(); ++i) {
      if (path_includes(path, variant_isa(i)) && cpu_has_needs(variant_needs(i))) return i;
    }
    return size() - 1;  // every chain ends with scalar
  }
  int find(const std::string& variant) const {
    for (std::size_t i = 0; i < size(); ++i) {
      if (variant == variant_name(i)) return static_cast<int>(i);
    }
    return -1;
  }
  ForceResult force(const std::string& variant) {
    if (variant.empty()) {
      forced_.store(-1);
      return ForceResult::ok;
    }
    if (!forceable_) return ForceResult::not_forceable;
    const int i = find(variant);
    if (i < 0) return ForceResult::unknown_variant;
    if (!runnable(static_cast<std::size_t>(i))) return ForceResult::not_runnable;
    forced_.store(i);
    return ForceResult::ok;
  }

 private:
  const char* name_;
  bool forceable_;
  std::atomic<int> forced_{-1};
};

template <class Fn>
struct Variant {
  const char* name;
  Isa isa;
  unsigned needs;
  Fn fn;
};

template <class Fn>
class Chain final : public Operation {
 public:
  Chain(const char* name, bool forceable, std::initializer_list<Variant<Fn>> variants)
      : Operation(name, forceable), variants_(variants) {}
  std::size_t size() const override { return variants_.size(); }
  const char* variant_name(std::size_t i) const override { return variants_[i].name; }
  Isa variant_isa(std::size_t i) const override { return variants_[i].isa; }
  unsigned variant_needs(std::size_t i) const override { return variants_[i].needs; }
  const Fn& get(Isa path) const { return variants_[choose(path)].fn; }
  const Fn* by_name(const std::string& variant) const {
    const int i = find(variant);
    return i < 0 ? nullptr : &variants_[static_cast<std::size_t>(i)].fn;
  }

 private:
  std::vector<Variant<Fn>> variants_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------------
// The operations, each declared once: MEDQK_OPERATION(name, tag, forceable, variants best first). A
// variant is written once, inside the ON_<ISA>(...) of its ISA, which keeps it only where that ISA is built
// into this binary; every chain ends with scalar. Adding a kernel: one line in its chain. Adding an
// operation: its tag in its kernel header and one MEDQK_OPERATION here (the getter runtime::kernel<Op>,
// the table of kernel_variants() and medqk.info()["kernels"] follow). Adding an ISA: its IsaEntry above
// and its ON_<ISA> below, then a line in each chain it has a kernel for.
// ---------------------------------------------------------------------------------------------------
#if defined(MEDQK_BUILD_AMX)
#define ON_AMX(...) __VA_ARGS__,
#else
#define ON_AMX(...)
#endif
#if defined(MEDQK_BUILD_AVX512VNNI)
#define ON_AVX512VNNI(...) __VA_ARGS__,
#else
#define ON_AVX512VNNI(...)
#endif
#if defined(MEDQK_BUILD_AVX2)
#define ON_AVX2(...) __VA_ARGS__,
#else
#define ON_AVX2(...)
#endif
#if defined(MEDQK_BUILD_NEON_DOTPROD)
#define ON_NEON_DOTPROD(...) __VA_ARGS__,
#else
#define ON_NEON_DOTPROD(...)
#endif
#if defined(MEDQK_BUILD_NEON)
#define ON_NEON(...) __VA_ARGS__,
#else
#define ON_NEON(...)
#endif

namespace runtime {
namespace {

// The operations in declaration order (kernel_variants(), medqk.info()); each MEDQK_OPERATION adds its own.
std::vector<Operation*>& registry() {
  static std::vector<Operation*> ops;
  return ops;
}
struct Registration {
  explicit Registration(Operation& op) { registry().push_back(&op); }
};

template <class Op>
Chain<typename Op::Fn>& chain();  // one specialization per MEDQK_OPERATION

}  // namespace

template <class Op>
const typename Op::Fn& kernel(Isa isa) {
  return chain<Op>().get(isa);
}

template <class Op>
const typename Op::Fn* kernel_variant_by_name(const std::string& name) {
  return chain<Op>().by_name(name);
}

// The chain of `tag`, its getters, and its place in the table, from one declaration.
#define MEDQK_OPERATION(name, tag, forceable, ...)            \
  namespace {                                                 \
  template <>                                                 \
  Chain<tag::Fn>& chain<tag>() {                              \
    static Chain<tag::Fn> c(#name, forceable, {__VA_ARGS__}); \
    return c;                                                 \
  }                                                           \
  const Registration registration_##name(chain<tag>());       \
  }                                                           \
  template const tag::Fn& kernel<tag>(Isa);                   \
  template const tag::Fn* kernel_variant_by_name<tag>(const std::string&);

namespace k = kernels;
constexpr bool kForceable = true;

// The GEMM's packed layout belongs to its ISA (pack_s8 / gemm_s8s8_s32_packed take the ISA), so each
// path runs its own kernel and the GEMM is chosen with set_isa, not forced.
#define GEMM_S8(ns)                                                                                              \
  k::GemmS8Kernel {                                                                                              \
    k::ns::kGemmS8PanelCols, k::ns::gemm_s8s8_s32_packed_bytes, k::ns::gemm_s8s8_s32_pack, k::ns::gemm_s8s8_s32, \
        GEMM_S8_F32_##ns                                                                                         \
  }
#define GEMM_S8_F32_amx nullptr
#define GEMM_S8_F32_avx512vnni k::avx512vnni::gemm_s8s8_f32  // the fused float epilogue
#define GEMM_S8_F32_avx2 nullptr
#define GEMM_S8_F32_neon_dotprod nullptr
#define GEMM_S8_F32_neon nullptr
#define GEMM_S8_F32_scalar nullptr
MEDQK_OPERATION(gemm_s8s8_s32, k::GemmS8Op, !kForceable,                                               //
                ON_AMX({"amx", Isa::amx, kNoExtra, GEMM_S8(amx)})                                      //
                ON_AVX512VNNI({"avx512vnni", Isa::avx512vnni, kNoExtra, GEMM_S8(avx512vnni)})          //
                ON_AVX2({"avx2", Isa::avx2, kNoExtra, GEMM_S8(avx2)})                                  //
                ON_NEON_DOTPROD({"neon_dotprod", Isa::neon_dotprod, kNoExtra, GEMM_S8(neon_dotprod)})  //
                ON_NEON({"neon", Isa::neon, kNoExtra, GEMM_S8(neon)})                                  //
                {"scalar", Isa::scalar, kNoExtra, GEMM_S8(scalar)})

// The 4-bit scan: vpermb (VBMI, 32-bit sums), vpshufb on 512 bits, on 256 bits; NEON tbl (table lookups gain
// nothing from sdot)
MEDQK_OPERATION(lut4_scan, k::Lut4ScanOp, kForceable,                                                 //
                ON_AVX512VNNI({"avx512vbmi", Isa::avx512vnni, kVbmi, k::avx512vnni::lut4_scan_vbmi})  //
                ON_AVX512VNNI({"avx512vnni", Isa::avx512vnni, kNoExtra, k::avx512vnni::lut4_scan})    //
                ON_AVX2({"avx2", Isa::avx2, kNoExtra, k::avx2::lut4_scan})                            //
                ON_NEON({"neon", Isa::neon, kNoExtra, k::neon::lut4_scan})                            //
                {"scalar", Isa::scalar, kNoExtra, k::scalar::lut4_scan})

// The 8-bit scan, one query at a time, and (where it beats that) its group form over kPq8Group queries:
// AVX2 has only 16-entry byte shuffles (16 sub-table lookups per code), so sharing each code byte across a
// group wins; vpermi2b (AVX-512 VBMI: Ice Lake, Zen 4 and later) and NEON tbl look up 128 / 64 entries at
// once, and one query at a time is faster there.
MEDQK_OPERATION(pq8_scan, k::Pq8ScanOp, kForceable,                                                        //
                ON_AVX512VNNI({"avx512vbmi", Isa::avx512vnni, kVbmi, {k::avx512vnni::pq8_scan, nullptr}})  //
                ON_AVX2({"avx2", Isa::avx2, kNoExtra, {k::avx2::pq8_scan, k::avx2::pq8_scan_group}})       //
                ON_NEON({"neon", Isa::neon, kNoExtra, {k::neon::pq8_scan, nullptr}})                       //
                {"scalar", Isa::scalar, kNoExtra, {k::scalar::pq8_scan, nullptr}})

// The 1-bit RaBitQ AND-popcount scan: vpopcntq (AVX-512 VPOPCNTDQ: Ice Lake, Zen 4 and later), vpshufb
// nibble counts summed by vpsadbw, NEON cnt
MEDQK_OPERATION(rabitq_scan, k::RabitqScanOp, kForceable,  //
                ON_AVX512VNNI({"avx512vpopcntdq", Isa::avx512vnni, kVpopcntdq,
                               k::avx512vnni::rabitq_scan_vpopcntdq})         //
                ON_AVX2({"avx2", Isa::avx2, kNoExtra, k::avx2::rabitq_scan})  //
                ON_NEON({"neon", Isa::neon, kNoExtra, k::neon::rabitq_scan})  //
                {"scalar", Isa::scalar, kNoExtra, k::scalar::rabitq_scan})

// fp16 scores: F16C (part of the avx2 path) converts; no VNNI or dotprod form
MEDQK_OPERATION(f16_scores, k::F16ScoresOp, kForceable,                      //
                ON_AVX2({"avx2", Isa::avx2, kNoExtra, k::avx2::f16_scores})  //
                ON_NEON({"neon", Isa::neon, kNoExtra, k::neon::f16_scores})  //
                {"scalar", Isa::scalar, kNoExtra, k::scalar::f16_scores})

// the +rerank:int8 candidate scoring: float multiply-adds in a fixed order, no VNNI or dotprod form
MEDQK_OPERATION(s8_score_candidates, k::S8ScoreOp, kForceable,                        //
                ON_AVX2({"avx2", Isa::avx2, kNoExtra, k::avx2::s8_score_candidates})  //
                ON_NEON({"neon", Isa::neon, kNoExtra, k::neon::s8_score_candidates})  //
                {"scalar", Isa::scalar, kNoExtra, k::scalar::s8_score_candidates})

// the float PQ assignment: FMA is part of the avx2 path; sdot has nothing to add
MEDQK_OPERATION(pq_assign, k::PqAssignOp, kForceable,                       //
                ON_AVX2({"avx2", Isa::avx2, kNoExtra, k::avx2::pq_assign})  //
                ON_NEON({"neon", Isa::neon, kNoExtra, k::neon::pq_assign})  //
                {"scalar", Isa::scalar, kNoExtra, k::scalar::pq_assign})

// the row quantization: the portable loop is NEON code on aarch64 (the compiler vectorizes it at the
// baseline), so only x86 has a kernel of its own
MEDQK_OPERATION(quantize_rows_s8, k::QuantizeRowsOp, kForceable,                   //
                ON_AVX2({"avx2", Isa::avx2, kNoExtra, k::avx2::quantize_rows_s8})  //
                {"scalar", Isa::scalar, kNoExtra, k::scalar::quantize_rows_s8})

// The W4A8 weight GEMM: each variant is a layout and its kernel. It is forceable (tests reach every variant);
// a caller packs and multiplies under one choice (the Python PackedW4 records the variant and checks it).
MEDQK_OPERATION(gemm_w4a8, k::GemmW4A8Op, kForceable,                                                        //
                ON_AVX512VNNI({"avx512vnni", Isa::avx512vnni, kNoExtra, &k::avx512vnni::kGemmW4A8})          // vpdpbusd
                ON_AVX2({"avx2", Isa::avx2, kNoExtra, &k::avx2::kGemmW4A8})                                  //
                ON_NEON_DOTPROD({"neon_dotprod", Isa::neon_dotprod, kNoExtra, &k::neon_dotprod::kGemmW4A8})  // sdot
                ON_NEON({"neon", Isa::neon, kNoExtra, &k::neon::kGemmW4A8})  // tbl, smull + smlal2 + sadalp
                {"scalar", Isa::scalar, kNoExtra, &k::scalar::kGemmW4A8})

// the encoder's fused attention: FMA and the polynomial exp are part of the avx2 path
MEDQK_OPERATION(attention_f32, k::AttentionOp, kForceable,                       //
                ON_AVX2({"avx2", Isa::avx2, kNoExtra, k::avx2::attention_head})  //
                {"scalar", Isa::scalar, kNoExtra, k::scalar::attention_head})

// the encoder's GELU: FMA and the polynomial exp are part of the avx2 path
MEDQK_OPERATION(gelu_f32, k::GeluOp, kForceable,                       //
                ON_AVX2({"avx2", Isa::avx2, kNoExtra, k::avx2::gelu})  //
                {"scalar", Isa::scalar, kNoExtra, k::scalar::gelu})

}  // namespace runtime

namespace {

const std::vector<Operation*>& operations() { return runtime::registry(); }

Operation* find_operation(const std::string& op) {
  for (Operation* o : operations()) {
    if (op == o->name()) return o;
  }
  return nullptr;
}

struct ActiveIsa {
  std::atomic<int> isa;
  std::string env_error;
  ActiveIsa() : isa(static_cast<int>(best_isa())) {
    const char* env = std::getenv("MEDQK_ISA");
    if (env == nullptr || *env == '\0') return;
    Isa wanted;
    if (!isa_from_name(env, &wanted)) {
      env_error = std::string("MEDQK_ISA='") + env + "' is not an ISA medqk knows (" + isa_names() + ")";
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
  const IsaEntry* e = entry(isa);
  return e != nullptr ? e->name : "unknown";
}

bool isa_from_name(const std::string& name, Isa* out) {
  for (const IsaEntry& e : kIsas) {
    if (name == e.name) {
      *out = e.isa;
      return true;
    }
  }
  return false;
}

bool isa_built(Isa isa) {
  const IsaEntry* e = entry(isa);
  return e != nullptr && e->built;
}

bool isa_supported(Isa isa) { return isa_built(isa) && cpu_has(isa); }

std::vector<Isa> built_isas() {
  std::vector<Isa> out;
  for (const IsaEntry& e : kIsas) {
    if (e.built) out.push_back(e.isa);
  }
  return out;
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (const IsaEntry& e : kIsas) {
    if (isa_supported(e.isa)) out.push_back(e.isa);
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

std::vector<std::string> kernel_operations() {
  std::vector<std::string> out;
  for (const Operation* op : operations()) out.emplace_back(op->name());
  return out;
}

std::vector<KernelVariantInfo> kernel_variants(const std::string& op) {
  std::vector<KernelVariantInfo> out;
  const Operation* o = find_operation(op);
  if (o == nullptr) return out;
  for (std::size_t i = 0; i < o->size(); ++i) {
    out.push_back({o->variant_name(i), o->variant_isa(i), needs_name(o->variant_needs(i)), o->runnable(i)});
  }
  return out;
}

std::string kernel_variant(const std::string& op, Isa isa) {
  const Operation* o = find_operation(op);
  return o == nullptr ? std::string() : std::string(o->variant_name(o->choose(isa)));
}

ForceResult force_kernel_variant(const std::string& op, const std::string& variant) {
  Operation* o = find_operation(op);
  return o == nullptr ? ForceResult::unknown_operation : o->force(variant);
}

}  // namespace medqk
