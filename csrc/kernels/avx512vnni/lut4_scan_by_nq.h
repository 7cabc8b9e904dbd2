// The entry point of the two AVX-512 4-bit scans (lut4_scan_avx512.cpp: vpshufb, lut4_scan_avx512vbmi.cpp:
// vpermb), written once: each file includes this inside its own namespace (avx512vnni, avx512vbmi) after
// defining scan_queries<NQ> (NQ = 1 .. kLut4MaxQueries queries over the same codes) in its anonymous
// namespace, so that namespace's lut4_scan runs that file's kernels, built with its flags. A batch is one
// call of scan_queries: its queries share every load of the codes.

void lut4_scan(const uint8_t* lut, std::size_t lut_stride, std::size_t nq, std::size_t d_even, const uint8_t* packed,
               std::size_t nblocks, uint32_t* out, std::size_t out_stride, const int32_t* thresholds, uint32_t* masks) {
  static_assert(kLut4MaxQueries == 4, "one case per batch size");
  switch (nq) {
    case 1: return scan_queries<1>(lut, lut_stride, d_even, packed, nblocks, out, out_stride, thresholds, masks);
    case 2: return scan_queries<2>(lut, lut_stride, d_even, packed, nblocks, out, out_stride, thresholds, masks);
    case 3: return scan_queries<3>(lut, lut_stride, d_even, packed, nblocks, out, out_stride, thresholds, masks);
    default: return scan_queries<4>(lut, lut_stride, d_even, packed, nblocks, out, out_stride, thresholds, masks);
  }
}
