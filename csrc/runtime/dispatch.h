// Kernel lookup for the front ends: each operation's chain of variants (runtime/dispatch.cpp) resolved for a
// CPU path, or the variant force_kernel_variant() pinned.
#pragma once

#include <string>

#include "medqk/medqk.h"

namespace medqk {
namespace runtime {

// The kernel of operation `Op` that runs under CPU path `isa`: the variant its chain picks, or the one
// force_kernel_variant() pinned. `Op` is the operation's tag in its kernel header (kernels/<op>.h, e.g.
// kernels::PqAssignOp); Op::Fn is what one variant provides (a function, or a layout and its kernels).
// The chains are declared once, in runtime/dispatch.cpp, one MEDQK_OPERATION each.
template <class Op>
const typename Op::Fn& kernel(Isa isa);

// Variant `name` of operation `Op` (nullptr if this binary does not contain it), for tests that call the
// raw kernel.
template <class Op>
const typename Op::Fn* kernel_variant_by_name(const std::string& name);

}  // namespace runtime
}  // namespace medqk
