// Per-row dynamic int8 quantization (medqk.h: quantize_rows_s8), written once and compiled per ISA: each
// ISA file includes this inside its own namespace (medqk::kernels::scalar, ::avx2), so the definition below
// becomes that namespace's quantize_rows_s8, built with that file's flags (no inline function is shared
// between ISA files, so none built with -mavx2 can be picked for a CPU without AVX2). The scalar file
// builds it at the baseline ISA (SSE2 / NEON vectorized by the compiler), the AVX2 file with -mavx2
// (8 lanes and a native 32-bit max). -ffp-contract=off on the library keeps x * inv and the rounding
// addition apart (no FMA), so every build gives the Numba twin's codes bit for bit.
// The including file includes <cstring> and kernels/quantize_rows.h first (std headers cannot be
// included inside a namespace).

constexpr float kTinyRow = 0x1p-119f;  // FLT_MIN * 128

bool quantize_rows_s8(const float* x, std::size_t m, std::size_t k, std::size_t ldx, int8_t* q, float* scales) {
  for (std::size_t i = 0; i < m; ++i) {
    const float* xi = x + i * ldx;
    // max |x| on the bit patterns: for non-negative floats the integer order is the float order, and
    // NaN / Inf (exponent all ones) compare above every finite value, so one integer max reduction, which
    // the compiler vectorizes (a float max reduction it would not, without -ffast-math), finds both.
    // (signed int32: the sign bit is cleared, and SSE2 has a signed 32-bit compare but no unsigned one)
    int32_t max_bits = 0;
    for (std::size_t p = 0; p < k; ++p) {
      int32_t bits;
      std::memcpy(&bits, xi + p, 4);
      bits &= 0x7fffffff;
      max_bits = bits > max_bits ? bits : max_bits;
    }
    if (max_bits >= 0x7f800000) return false;
    float amax;
    std::memcpy(&amax, &max_bits, 4);
    // The same float32 operations as the Numba twin (medqk.kernels._numba.quantize_rows_s8), so the
    // codes agree bit for bit: inv = 127 / amax in float32, then round half to even. A row whose max|x|
    // is below kTinyRow (2^-119, where amax / 127 would be subnormal and, below ~3.7e-37, 127 / amax
    // overflows to inf) counts as a zero row: all codes 0, scale 1; its error is under 1.5e-36.
    const bool live = amax >= kTinyRow;
    const float inv = live ? 127.0f / amax : 1.0f;
    scales[i] = live ? amax / 127.0f : 1.0f;
    int8_t* qi = q + i * k;
    for (std::size_t p = 0; p < k; ++p) {
      // |x * inv| <= 127 up to one rounding, so the clamp can wait for the integer (float compares with
      // ternaries would block vectorization without -ffast-math). Adding and removing 1.5 * 2^23 rounds
      // |v| < 2^22 half to even (the default rounding mode) and, unlike nearbyint, vectorizes at SSE2.
      const float v = (xi[p] * inv + 12582912.0f) - 12582912.0f;
      int32_t i32 = static_cast<int32_t>(v);
      i32 = i32 > 127 ? 127 : (i32 < -127 ? -127 : i32);
      qi[p] = static_cast<int8_t>(i32);
    }
  }
  return true;
}
