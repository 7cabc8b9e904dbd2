// The intrinsics of the target's baseline SIMD (SSE2 is part of x86-64, NEON of AArch64), for the runtime
// helpers that use them in files built without any ISA flag (round.h, topk.h).
#pragma once

#if defined(__SSE2__)
#include <emmintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#endif
