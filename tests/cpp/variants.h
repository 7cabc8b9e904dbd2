// The cross-ISA harness of the C++ tests: every variant of an operation this CPU can run, as the dispatch
// declares them (csrc/runtime/dispatch.cpp), so a kernel added to a chain is tested without editing a list.
#pragma once

#include <cstdio>
#include <string>

#include "medqk/medqk.h"

namespace medqk_test {

// Calls body(isa, variant) once per runnable variant of `op`, with that variant forced (every front end then
// runs it, whatever ISA it is given; `isa` is the variant's own path), and returns `op` to its chain after.
template <class Body>
void for_each_variant(const char* op, Body body) {
  for (const medqk::KernelVariantInfo& v : medqk::kernel_variants(op)) {
    if (!v.runnable) continue;
    if (medqk::force_kernel_variant(op, v.name) != medqk::ForceResult::ok) {
      std::printf("%s: cannot force variant %s\n", op, v.name.c_str());
      continue;
    }
    std::printf("%s: testing variant=%s (isa=%s)\n", op, v.name.c_str(), medqk::isa_name(v.isa));
    body(v.isa, v.name);
  }
  medqk::force_kernel_variant(op, "");
}

}  // namespace medqk_test
