// The dispatch table: one row per ISA for each operation, filled once.
#pragma once

#include "kernels/gemm_s8s8_s32.h"
#include "kernels/lut4_scan.h"
#include "kernels/f16_scores.h"
#include "kernels/pq8_scan.h"
#include "kernels/quantize_rows.h"
#include "kernels/s8_score.h"
#include "kernels/pq_assign.h"
#include "medqk/medqk.h"

namespace medqk {
namespace runtime {

// nullptr when `isa` is not built into this binary.
const kernels::GemmS8Kernel* gemm_s8_kernel(Isa isa);
kernels::Lut4ScanFn lut4_scan_kernel(Isa isa);
kernels::Pq8ScanFn pq8_scan_kernel(Isa isa);
// nullptr also where the ISA has no group scan faster than scanning query by query (pq8_search_topk then
// does that).
kernels::Pq8ScanGroupFn pq8_scan_group_kernel(Isa isa);
kernels::QuantizeRowsFn quantize_rows_kernel(Isa isa);
kernels::F16ScoresFn f16_scores_kernel(Isa isa);
kernels::S8ScoreCandidatesFn s8_score_kernel(Isa isa);
kernels::PqAssignFn pq_assign_kernel(Isa isa);

}  // namespace runtime
}  // namespace medqk
