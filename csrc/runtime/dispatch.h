// Kernel lookup for the front ends: each operation's chain of variants (runtime/dispatch.cpp) resolved for a
// CPU path, or the variant force_kernel_variant() pinned.
#pragma once

#include <string>

#include "kernels/f16_scores.h"
#include "kernels/gemm_s8s8_s32.h"
#include "kernels/gemm_w4a8.h"
#include "kernels/lut4_scan.h"
#include "kernels/pq8_scan.h"
#include "kernels/pq_assign.h"
#include "kernels/quantize_rows.h"
#include "kernels/s8_score.h"
#include "medqk/medqk.h"

namespace medqk {
namespace runtime {

// nullptr when `isa` is not built into this binary.
const kernels::GemmS8Kernel* gemm_s8_kernel(Isa isa);
// The W4A8 layout and kernel that run under `isa` now (a forced variant included).
const kernels::GemmW4Kernel* gemm_w4_kernel(Isa isa);
kernels::Lut4ScanFn lut4_scan_kernel(Isa isa);
// The 8-bit scan of one query, and its group form where that beats scanning query by query (else nullptr:
// pq8_search_topk then scans one query at a time).
struct Pq8Kernel {
  kernels::Pq8ScanFn scan;
  kernels::Pq8ScanGroupFn group;
};
Pq8Kernel pq8_kernel(Isa isa);
// The 4-bit scan of variant `name` (nullptr if not built), for tests that call the raw kernel.
kernels::Lut4ScanFn lut4_scan_variant(const std::string& name);
kernels::QuantizeRowsFn quantize_rows_kernel(Isa isa);
kernels::F16ScoresFn f16_scores_kernel(Isa isa);
kernels::S8ScoreCandidatesFn s8_score_kernel(Isa isa);
kernels::PqAssignFn pq_assign_kernel(Isa isa);

}  // namespace runtime
}  // namespace medqk
