// medqk._core: validate, release the GIL, call the C++ API. No arithmetic here.
//
// The Python layer (python/medqk) validates arguments first with friendlier messages shared by the
// Numba backend; the checks here keep direct callers of _core from ever reaching a kernel with a bad
// pointer or size. Inputs are used in place (no copies): they must be C-contiguous with the exact dtype,
// except the matrices of the GEMM, pack and row-quantization entry points, whose C API takes a row stride:
// there any view with contiguous rows is read in place (require_rows).
//
// Every binding reads the same way: check each argument (require* return its data pointer), allocate the
// outputs (Out, TopkOut take their pointers while the GIL is held), call the C++ API in without_gil, return.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "medqk/medqk.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace py = pybind11;

namespace {

// True when every byte is <= 127 (the table-scan kernels add two entries in 8 bits): one OR over the bytes,
// which vectorizes, where a max_element (0.4 us per IVF query over its 1.5 KB of tables) did not.
bool all_at_most_127(const uint8_t* p, std::size_t n) {
  uint8_t any = 0;
  for (std::size_t i = 0; i < n; ++i) any |= p[i];
  return (any & 0x80) == 0;
}

#ifndef MEDQK_VERSION
#define MEDQK_VERSION "0+unknown"
#endif

// Runs f with the GIL released, so that other Python threads run during the kernel. f sees only raw
// pointers and sizes taken above it, never a Python object.
template <typename F>
auto without_gil(F&& f) -> decltype(f()) {
  py::gil_scoped_release release;
  return f();
}

// Dimension d of a checked array, as the C API's size type.
std::size_t extent(const py::array& x, int d) { return static_cast<std::size_t>(x.shape(d)); }

// The top-k reservoirs key ids in 32 bits (runtime/topk.h).
void check_ids_fit(std::size_t n) {
  if (n >= (std::size_t(1) << 32)) throw py::value_error("at most 2^32 - 1 stored vectors per index");
}

void check_k(std::size_t k) {
  if (k == 0) throw py::value_error("k must be >= 1");
}

template <typename T>
void require_dtype(const py::array& x, const char* name) {
  if (!py::isinstance<py::array_t<T>>(x) || !x.dtype().equal(py::dtype::of<T>())) {
    throw py::type_error(std::string(name) + " must be a numpy array of dtype " +
                         std::string(py::str(py::dtype::of<T>())) + ", got " + std::string(py::str(x.dtype())));
  }
}

// x: a C-contiguous ndim-D array of dtype T with no empty dimension, read in place. Returns its data.
template <typename T>
const T* require(const py::array& x, const char* name, int ndim) {
  require_dtype<T>(x, name);
  if (x.ndim() != ndim) {
    throw py::value_error(std::string(name) + " must be " + std::to_string(ndim) + "-D, got " +
                          std::to_string(x.ndim()) + "-D");
  }
  if (!(x.flags() & py::array::c_style)) {
    throw py::value_error(std::string(name) + " must be C-contiguous (use numpy.ascontiguousarray)");
  }
  for (int d = 0; d < ndim; ++d) {
    if (x.shape(d) == 0) throw py::value_error(std::string(name) + " must not have an empty dimension");
  }
  return static_cast<const T*>(x.data());
}

// x: as require, 1-D with exactly len entries; wrong_length is the message when it has another length.
template <typename T>
const T* require_len(const py::array& x, const char* name, std::size_t len, const char* wrong_length) {
  const T* p = require<T>(x, name, 1);
  if (extent(x, 0) != len) throw py::value_error(wrong_length);
  return p;
}

// An optional 1-D float32 argument of len entries: nullptr for None. keep holds the array until the kernel
// has run (a sequence passed instead of an array is converted to a new one).
const float* optional_f32(const py::object& x, const char* name, std::size_t len, const char* wrong_length,
                          py::array& keep) {
  if (x.is_none()) return nullptr;
  keep = x.cast<py::array>();
  return require_len<float>(keep, name, len, wrong_length);
}

// Lookup tables of the 4-bit and 8-bit scans: the kernels add two entries in 8 bits, so each is <= 127.
const uint8_t* require_at_most_127(const py::array& tables, const char* too_large) {
  const uint8_t* p = static_cast<const uint8_t*>(tables.data());
  if (!all_at_most_127(p, static_cast<std::size_t>(tables.size()))) throw py::value_error(too_large);
  return p;
}

// A 2-D view whose rows are contiguous, read in place with its row stride (the C API's lda / ldb / ldx):
// row-strided slices such as x[::2] or x[:, :k] of a wider array, and int8 views of other buffers, need no
// copy. Returns the row stride in elements. Fortran order, negative strides and column steps are refused
// here; the Python layer copies those to C order once before calling.
template <typename T>
std::size_t require_rows(const py::array& x, const char* name) {
  require_dtype<T>(x, name);
  if (x.ndim() != 2) {
    throw py::value_error(std::string(name) + " must be 2-D, got " + std::to_string(x.ndim()) + "-D");
  }
  if (x.shape(0) == 0 || x.shape(1) == 0) throw py::value_error(std::string(name) + " must not be empty");
  const auto item = static_cast<py::ssize_t>(sizeof(T));
  // a single column or a single row has no stride to speak of (numpy may report any value for it)
  const bool rows_contiguous = x.shape(1) == 1 || x.strides(1) == item;
  const bool row_stride_ok = x.shape(0) == 1 || (x.strides(0) >= 0 && x.strides(0) % item == 0);
  const bool aligned = reinterpret_cast<std::uintptr_t>(x.data()) % alignof(T) == 0;
  if (!rows_contiguous || !row_stride_ok || !aligned) {
    throw py::value_error(std::string(name) +
                          " must have contiguous, aligned rows and a non-negative row stride "
                          "(use numpy.ascontiguousarray)");
  }
  return x.shape(0) == 1 ? extent(x, 1) : static_cast<std::size_t>(x.strides(0) / item);
}

// An output array and its data pointer, taken while the GIL is held.
template <typename T>
struct Out {
  py::array_t<T> array;
  T* data;
};

// A new C-contiguous output array.
template <typename T>
Out<T> output(py::array::ShapeContainer shape) {
  py::array_t<T> array(std::move(shape));
  T* data = array.mutable_data();
  return {std::move(array), data};
}

// The (nq, k) outputs of a top-k search: scores float32 and ids int64.
struct TopkOut {
  Out<float> scores;
  Out<int64_t> ids;
  TopkOut(std::size_t nq, std::size_t k) : scores(output<float>({nq, k})), ids(output<int64_t>({nq, k})) {}
  py::tuple tuple() const { return py::make_tuple(scores.array, ids.array); }
};

medqk::Isa isa_or_throw(const std::string& name) {
  medqk::Isa isa;
  if (!medqk::isa_from_name(name, &isa)) {
    std::string known;
    for (int i = 0; i < medqk::kNumIsas; ++i) {
      known += std::string(i ? ", " : "") + medqk::isa_name(static_cast<medqk::Isa>(i));
    }
    throw py::value_error("unknown ISA '" + name + "' (known: " + known + ")");
  }
  return isa;
}

// For large arrays the kernels stream again and again (packed GEMM weights): from 2 MiB up, on a 2 MiB
// boundary with transparent huge pages requested (Linux), so that a 16 MiB GEMV walks 8 pages rather than
// 4096; smaller ones on a cache line.
template <typename T>
struct StreamAllocator {
  using value_type = T;
  static constexpr std::size_t kHuge = std::size_t(2) << 20;
  StreamAllocator() = default;
  template <typename U>
  StreamAllocator(const StreamAllocator<U>&) {}
  static std::size_t align_for(std::size_t bytes) { return bytes >= kHuge ? kHuge : 64; }
  T* allocate(std::size_t n) {
    const std::size_t bytes = n * sizeof(T), align = align_for(bytes);
    void* p = ::operator new(bytes, std::align_val_t(align));
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    // the whole 2 MiB regions of the array (a tail stays on small pages); advice only: a refusal changes nothing
    if (align == kHuge) madvise(p, bytes / kHuge * kHuge, MADV_HUGEPAGE);
#endif
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t n) { ::operator delete(p, std::align_val_t(align_for(n * sizeof(T)))); }
  template <typename U>
  bool operator==(const StreamAllocator<U>&) const {
    return true;
  }
  template <typename U>
  bool operator!=(const StreamAllocator<U>&) const {
    return false;
  }
};

// B packed for one ISA; immutable once made.
struct PackedS8 {
  medqk::Isa isa;
  std::size_t n, k;
  std::vector<uint8_t, StreamAllocator<uint8_t>> data;  // huge pages from 2 MiB up
};

std::shared_ptr<PackedS8> pack_s8(const py::array& b, const std::string& isa_name) {
  const std::size_t ldb = require_rows<int8_t>(b, "b");
  const medqk::Isa isa = isa_name.empty() ? medqk::active_isa() : isa_or_throw(isa_name);
  if (!medqk::isa_supported(isa)) throw py::value_error("ISA '" + isa_name + "' is not available here");
  auto p = std::make_shared<PackedS8>();
  p->isa = isa;
  p->n = extent(b, 0);
  p->k = extent(b, 1);
  if (p->k > medqk::kMaxGemmK) throw py::value_error("b has K > 131071: int32 accumulation could overflow");
  p->data.resize(medqk::pack_s8_bytes(isa, p->n, p->k));
  const int8_t* src = static_cast<const int8_t*>(b.data());
  without_gil([&] { medqk::pack_s8(isa, src, p->n, p->k, ldb, p->data.data()); });
  return p;
}

void check_a_columns(const py::array& a, std::size_t k) {
  if (extent(a, 1) != k) {
    throw py::value_error("a has K=" + std::to_string(a.shape(1)) + " columns but b has K=" + std::to_string(k));
  }
}

// The GEMM's a: any view with contiguous rows (require_rows), K columns. Returns its row stride.
std::size_t check_gemm_a(const py::array& a, std::size_t k) {
  const std::size_t lda = require_rows<int8_t>(a, "a");
  check_a_columns(a, k);
  return lda;
}

py::array_t<int32_t> gemm_packed(const py::array& a, const PackedS8& b, int threads) {
  const std::size_t lda = check_gemm_a(a, b.k);
  const std::size_t m = extent(a, 0);
  const int8_t* ap = static_cast<const int8_t*>(a.data());
  auto c = output<int32_t>({m, b.n});
  without_gil([&] { medqk::gemm_s8s8_s32_packed(b.isa, ap, m, b.k, lda, b.data.data(), b.n, c.data, b.n, threads); });
  return c.array;
}

py::array_t<int32_t> gemm(const py::array& a, const py::array& b, int threads) {
  const std::size_t ldb = require_rows<int8_t>(b, "b");
  const std::size_t n = extent(b, 0), k = extent(b, 1);
  if (k > medqk::kMaxGemmK) throw py::value_error("K > 131071: int32 accumulation could overflow");
  const std::size_t lda = check_gemm_a(a, k);
  const std::size_t m = extent(a, 0);
  const int8_t* ap = static_cast<const int8_t*>(a.data());
  const int8_t* bp = static_cast<const int8_t*>(b.data());
  auto c = output<int32_t>({m, n});
  without_gil([&] { medqk::gemm_s8s8_s32(ap, m, k, lda, bp, n, ldb, c.data, n, threads); });
  return c.array;
}

// W4A8 weights packed for the gemm_w4a8 variant that ran under `isa` at packing time; immutable once made.
struct PackedW4 {
  medqk::Isa isa;
  std::string variant;  // the layout's owner: a product under another variant would misread it
  std::size_t n, k, group_size, groups;
  std::vector<uint8_t, StreamAllocator<uint8_t>> data;  // huge pages from 2 MiB up
};

std::shared_ptr<PackedW4> pack_w4(const py::array& codes, const py::array& levels, std::size_t group_size,
                                  const std::string& isa_name) {
  const std::size_t ldc = require_rows<uint8_t>(codes, "codes");
  const std::size_t n = extent(codes, 0), k = extent(codes, 1);
  const int8_t* lp = require<int8_t>(levels, "levels", 2);
  if (extent(levels, 0) != n || extent(levels, 1) != 16) {
    throw py::value_error("levels must have shape (N, 16)");
  }
  if (group_size == 0 || group_size % 32 != 0 || group_size > medqk::kMaxW4GroupSize) {
    throw py::value_error("group_size must be a positive multiple of 32, at most 65536");
  }
  if (k > medqk::kMaxGemmK) throw py::value_error("codes has K > 131071: int32 accumulation could overflow");
  const uint8_t* cp = static_cast<const uint8_t*>(codes.data());
  for (std::size_t j = 0; j < n; ++j) {
    uint8_t any = 0;
    for (std::size_t p = 0; p < k; ++p) any |= cp[j * ldc + p];
    if (any >= 16) throw py::value_error("codes must be < 16");
  }
  for (std::size_t i = 0; i < n * 16; ++i) {
    if (lp[i] == -128) throw py::value_error("levels must be in [-127, 127]");
  }
  const medqk::Isa isa = isa_name.empty() ? medqk::active_isa() : isa_or_throw(isa_name);
  if (!medqk::isa_supported(isa)) throw py::value_error("ISA '" + isa_name + "' is not available here");
  auto p = std::make_shared<PackedW4>();
  p->isa = isa;
  p->variant = medqk::kernel_variant("gemm_w4a8", isa);
  p->n = n;
  p->k = k;
  p->group_size = group_size;
  p->groups = (k + group_size - 1) / group_size;
  p->data.resize(medqk::pack_w4_bytes(isa, n, k, group_size));
  without_gil([&] { medqk::pack_w4(isa, cp, n, k, ldc, lp, group_size, p->data.data()); });
  return p;
}

// The W4A8 product's a (any view with contiguous rows, K columns) against weights packed by the variant that
// runs now. Returns a's row stride.
std::size_t check_w4_call(const py::array& a, const PackedW4& w) {
  const std::size_t lda = require_rows<int8_t>(a, "a");
  if (extent(a, 1) != w.k) {
    throw py::value_error("a has K=" + std::to_string(a.shape(1)) +
                          " columns but the weights have K=" + std::to_string(w.k));
  }
  const std::string now = medqk::kernel_variant("gemm_w4a8", w.isa);
  if (now != w.variant) {
    throw py::value_error("the weights were packed for gemm_w4a8 variant '" + w.variant + "' but '" + now +
                          "' would run now: pack them again");
  }
  return lda;
}

py::array_t<int32_t> gemm_w4a8_s32(const py::array& a, const PackedW4& w, int threads) {
  const std::size_t lda = check_w4_call(a, w);
  const std::size_t m = extent(a, 0);
  const int8_t* ap = static_cast<const int8_t*>(a.data());
  auto d = output<int32_t>({m, w.n, w.groups});
  without_gil([&] { medqk::gemm_w4a8_s32(w.isa, ap, m, w.k, lda, w.data.data(), w.n, w.group_size, d.data, threads); });
  return d.array;
}

py::array_t<float> gemm_w4a8_f32(const py::array& a, const py::array& row_scale, const PackedW4& w,
                                 const py::array& scales, const py::object& zeros, const py::object& bias,
                                 int threads) {
  const std::size_t lda = check_w4_call(a, w);
  const std::size_t m = extent(a, 0);
  const float* rs = require_len<float>(row_scale, "row_scale", m, "row_scale must have M entries");
  const float* sp = require<float>(scales, "scales", 2);
  if (extent(scales, 0) != w.n || extent(scales, 1) != w.groups) {
    throw py::value_error("scales must have shape (N, G)");
  }
  py::array zeros_arr;
  const int8_t* zp = nullptr;
  if (!zeros.is_none()) {
    zeros_arr = zeros.cast<py::array>();
    zp = require<int8_t>(zeros_arr, "zeros", 2);
    if (extent(zeros_arr, 0) != w.n || extent(zeros_arr, 1) != w.groups) {
      throw py::value_error("zeros must have shape (N, G)");
    }
    for (std::size_t i = 0; i < w.n * w.groups; ++i) {
      if (zp[i] < 0 || zp[i] > 15) throw py::value_error("zeros must be in [0, 15]");
    }
  }
  py::array bias_arr;
  const float* bp = optional_f32(bias, "bias", w.n, "bias must have N entries", bias_arr);
  const int8_t* ap = static_cast<const int8_t*>(a.data());
  auto out = output<float>({m, w.n});
  without_gil([&] {
    medqk::gemm_w4a8_f32(w.isa, ap, m, w.k, lda, w.data.data(), w.n, w.group_size, rs, sp, zp, bp, out.data, threads);
  });
  return out.array;
}

py::tuple quantize_rows_s8(const py::array& x) {
  const std::size_t ldx = require_rows<float>(x, "x");
  const std::size_t m = extent(x, 0), k = extent(x, 1);
  const float* xp = static_cast<const float*>(x.data());
  auto q = output<int8_t>({m, k});
  auto scales = output<float>({m});
  if (!without_gil([&] { return medqk::quantize_rows_s8(xp, m, k, ldx, q.data, scales.data); })) {
    throw py::value_error("x contains NaN or Inf");
  }
  return py::make_tuple(q.array, scales.array);
}

// Float in, float out: per-row dynamic int8 quantization of x, the GEMM against packed int8 weights,
// then per-row x per-column rescaling and bias; one call, GIL released throughout.
py::array_t<float> linear_s8(const py::array& x, const PackedS8& w, const py::array& w_scales, const py::object& bias,
                             int threads) {
  const std::size_t ldx = require_rows<float>(x, "x");
  if (extent(x, 1) != w.k) {
    throw py::value_error("x has " + std::to_string(x.shape(1)) + " features but the layer expects " +
                          std::to_string(w.k));
  }
  const float* sp = require_len<float>(w_scales, "weight_scales", w.n, "weight_scales must have N entries");
  py::array bias_arr;
  const float* bias_p = optional_f32(bias, "bias", w.n, "bias must have N entries", bias_arr);
  const std::size_t m = extent(x, 0);
  const float* xp = static_cast<const float*>(x.data());
  auto out = output<float>({m, w.n});
  const bool ok = without_gil([&] {
    // Per-thread scratch reused across calls: fresh megabytes would cost a page fault per 4 KiB on every call.
    thread_local std::vector<int8_t> q;
    thread_local std::vector<float> row_scales;
    if (q.size() < m * w.k) q.resize(m * w.k);
    if (row_scales.size() < m) row_scales.resize(m);
    const bool finite = medqk::quantize_rows_s8(xp, m, w.k, ldx, q.data(), row_scales.data());
    if (finite) {
      medqk::gemm_s8s8_f32_packed(w.isa, q.data(), m, w.k, w.k, w.data.data(), w.n, row_scales.data(), sp, bias_p,
                                  out.data, threads);
    }
    if (q.size() > (std::size_t(64) << 20)) std::vector<int8_t>().swap(q);  // do not pin a one-off huge buffer
    return finite;
  });
  if (!ok) throw py::value_error("x contains NaN or Inf");
  return out.array;
}

// The allow-bitmap of a search over n rows (medqk.h), or nullptr for None: uint8, C-contiguous, 1-D,
// ceil(n / 8) bytes.
const uint8_t* optional_allow(const py::object& allow, std::size_t n) {
  if (allow.is_none()) return nullptr;
  const auto arr = py::reinterpret_borrow<py::array>(allow);
  if (!py::isinstance<py::array>(allow) || arr.ndim() != 1 || !arr.dtype().equal(py::dtype::of<uint8_t>()) ||
      !(arr.flags() & py::array::c_style) || static_cast<std::size_t>(arr.shape(0)) != (n + 7) / 8) {
    throw py::value_error("allow must be a C-contiguous uint8 bitmap of ceil(n / 8) = " + std::to_string((n + 7) / 8) +
                          " bytes (numpy.packbits(mask, bitorder='little')) or None");
  }
  return static_cast<const uint8_t*>(arr.data());
}

// Top-k inner-product search over an int8 database packed as a PackedS8 (see medqk.h).
py::tuple s8_search_topk(const py::array& a, const PackedS8& db, const py::array& alpha, const py::object& bias,
                         std::size_t topk, int threads, const py::object& allow) {
  const int8_t* ap = require<int8_t>(a, "a", 2);
  check_a_columns(a, db.k);
  check_ids_fit(db.n);
  const std::size_t nq = extent(a, 0);
  const float* alpha_p = require_len<float>(alpha, "alpha", nq, "alpha must have one entry per query");
  py::array bias_arr;
  const float* bias_p = optional_f32(bias, "bias", db.n, "bias must have one entry per vector", bias_arr);
  check_k(topk);
  const uint8_t* allow_p = optional_allow(allow, db.n);
  TopkOut out(nq, topk);
  without_gil([&] {
    medqk::s8_search_topk(db.isa, ap, nq, db.k, db.data.data(), db.n, alpha_p, bias_p, topk, out.scores.data,
                          out.ids.data, threads, allow_p);
  });
  return out.tuple();
}

py::array_t<uint8_t> lut4_pack(const py::array& codes) {
  const uint8_t* cp = require<uint8_t>(codes, "codes", 2);
  const std::size_t n = extent(codes, 0), d = extent(codes, 1);
  auto packed = output<uint8_t>({medqk::lut4_packed_bytes(n, d)});
  without_gil([&] { medqk::lut4_pack(cp, n, d, packed.data); });
  return packed.array;
}

// Vectors v0 .. v0 + n - 1 of a lut4_pack layout (ntotal vectors of d sub-codes) decoded to int8 (n, d_out):
// out[:, dim[j]] += table[j][code of sub-code sub[j]], clamped to -127..127.
py::array_t<int8_t> lut4_decode_s8(const py::array& packed, std::size_t ntotal, std::size_t d, const py::array& sub,
                                   const py::array& dim, const py::array& table, std::size_t d_out, std::size_t v0,
                                   std::size_t n) {
  const uint8_t* pp = require<uint8_t>(packed, "packed", 1);
  const int32_t* sp = require<int32_t>(sub, "sub", 1);
  const int32_t* dp = require<int32_t>(dim, "dim", 1);
  const int16_t* tp = require<int16_t>(table, "table", 2);
  const std::size_t e = extent(sub, 0);
  if (extent(dim, 0) != e || extent(table, 0) != e || table.shape(1) != 16) {
    throw py::value_error("sub, dim and table must have one entry each: shapes (e,), (e,), (e, 16)");
  }
  if (d == 0 || extent(packed, 0) != medqk::lut4_packed_bytes(ntotal, d)) {
    throw py::value_error("packed does not hold ntotal vectors of d sub-codes (use lut4_pack)");
  }
  if (v0 > ntotal || n > ntotal - v0) throw py::value_error("v0 + n is past the stored vectors");
  for (std::size_t j = 0; j < e; ++j) {
    if (sp[j] < 0 || static_cast<std::size_t>(sp[j]) >= d) throw py::value_error("sub entries must be in 0..d-1");
    if (dp[j] < 0 || static_cast<std::size_t>(dp[j]) >= d_out) {
      throw py::value_error("dim entries must be in 0..d_out-1");
    }
  }
  auto out = output<int8_t>({n, d_out});
  without_gil([&] { medqk::lut4_decode_s8(pp, d, v0, n, e, sp, dp, tp, d_out, out.data); });
  return out.array;
}

// Top-k over 4-bit codes packed by lut4_pack, one uint8 table of 16 entries per subspace and query.
py::tuple lut4_search_topk(const py::array& luts, const py::array& packed, std::size_t n, std::size_t d,
                           const py::array& alpha, const py::array& beta, std::size_t topk, int threads, bool sorted,
                           const py::object& allow) {
  require<uint8_t>(luts, "luts", 3);
  check_ids_fit(n);
  const std::size_t nq = extent(luts, 0), d_even = d + (d & 1);
  if (extent(luts, 1) != d_even || luts.shape(2) != 16) {
    throw py::value_error("luts must have shape (nq, d rounded up to even, 16)");
  }
  if (d == 0 || d > medqk::kLut4MaxSubspaces) {
    throw py::value_error("d must be in 1.." + std::to_string(medqk::kLut4MaxSubspaces) +
                          " (4-bit table sums must stay below 2^23, exact in float32), got " + std::to_string(d));
  }
  const uint8_t* pp = require_len<uint8_t>(packed, "packed", medqk::lut4_packed_bytes(n, d),
                                           "packed does not hold n vectors of d sub-codes (use lut4_pack)");
  const char* per_query = "alpha and beta must have one entry per query";
  const float* ap = require_len<float>(alpha, "alpha", nq, per_query);
  const float* bp = require_len<float>(beta, "beta", nq, per_query);
  check_k(topk);
  const uint8_t* lp = require_at_most_127(luts, "luts entries must be <= 127 (make them with lut4_quantize_tables)");
  const uint8_t* allow_p = optional_allow(allow, n);
  TopkOut out(nq, topk);
  without_gil([&] {
    medqk::lut4_search_topk(medqk::active_isa(), lp, nq, d, pp, n, ap, bp, topk, out.scores.data, out.ids.data, threads,
                            sorted, allow_p);
  });
  return out.tuple();
}

// A new C-contiguous uint8 output whose data starts on a 64-byte boundary, owned by a capsule. For the 4-bit
// tables: the scan kernels load 64-byte table rows, and numpy's 16-byte alignment split each across two
// cache lines (1M x pq96x4fs at nq = 32: 1.14 -> 1.37 G codes/s with aligned tables).
Out<uint8_t> aligned_u8(const std::vector<py::ssize_t>& shape) {
  std::size_t n = 1;
  for (py::ssize_t s : shape) n *= static_cast<std::size_t>(s);
  void* p = std::aligned_alloc(64, std::max<std::size_t>(64, (n + 63) / 64 * 64));
  if (p == nullptr) throw std::bad_alloc();
  py::capsule owner(p, [](void* q) { std::free(q); });
  return {py::array_t<uint8_t>(shape, static_cast<uint8_t*>(p), owner), static_cast<uint8_t*>(p)};
}

py::tuple lut4_quantize_tables(const py::array& tables) {
  const float* tp = require<float>(tables, "tables", 3);
  const std::size_t nq = extent(tables, 0), s = extent(tables, 1);
  if (tables.shape(2) != 16) throw py::value_error("tables must have shape (nq, S, 16)");
  auto luts = aligned_u8({static_cast<py::ssize_t>(nq), static_cast<py::ssize_t>(s + (s & 1)), 16});
  auto alpha = output<float>({nq}), beta = output<float>({nq});
  without_gil([&] { medqk::lut4_quantize_tables(tp, nq, s, luts.data, alpha.data, beta.data); });
  return py::make_tuple(luts.array, alpha.array, beta.array);
}

py::array_t<float> lut4_score_candidates(const py::array& tables, const py::array& packed, std::size_t n,
                                         const py::array& cand) {
  const float* tp = require<float>(tables, "tables", 3);
  const std::size_t nq = extent(tables, 0), s = extent(tables, 1);
  if (tables.shape(2) != 16) throw py::value_error("tables must have shape (nq, S, 16)");
  const uint8_t* pp = require_len<uint8_t>(packed, "packed", medqk::lut4_packed_bytes(n, s),
                                           "packed does not hold n vectors of S sub-codes");
  const int64_t* cp = require<int64_t>(cand, "cand", 2);
  if (extent(cand, 0) != nq) throw py::value_error("cand must have one row per query");
  const std::size_t kc = extent(cand, 1);
  for (std::size_t i = 0; i < nq * kc; ++i) {
    if (cp[i] >= static_cast<int64_t>(n)) throw py::value_error("cand holds an id past the stored vectors");
  }
  auto scores = output<float>({nq, kc});
  without_gil([&] { medqk::lut4_score_candidates(tp, nq, s, pp, cp, kc, scores.data); });
  return scores.array;
}

// IVF search over 4-bit codes grouped by inverted list (see medqk.h: ivf_lut4_search). The list layout
// is checked here in full (O(nlist)), so a corrupt or hand-made layout never reaches the scan.
py::tuple ivf_lut4_search(const py::array& luts, const py::array& probes, const py::array& probe_keys,
                          const py::array& packed, const py::array& list_blocks, const py::array& list_starts,
                          const py::array& list_ids, std::size_t topk, int threads, const py::object& allow) {
  require<uint8_t>(luts, "luts", 4);
  const int64_t* pp = require<int64_t>(probes, "probes", 2);
  const int32_t* kp = require<int32_t>(probe_keys, "probe_keys", 2);
  const uint8_t* cp = require<uint8_t>(packed, "packed", 1);
  const int64_t* lb = require<int64_t>(list_blocks, "list_blocks", 1);
  const int64_t* ls = require<int64_t>(list_starts, "list_starts", 1);
  const std::size_t nq = extent(luts, 0), nlut = extent(luts, 1), d_even = extent(luts, 2), d = d_even;
  const std::size_t nprobe = extent(probes, 1);
  if (d == 0 || d > medqk::kLut4MaxSubspaces || (d & 1) || luts.shape(3) != 16) {
    throw py::value_error("luts must be (nq, nlut, S rounded up to even, 16) with 1 <= S <= " +
                          std::to_string(medqk::kLut4MaxSubspaces) + " (sums below 2^23: keys below 2^24)");
  }
  if (extent(probe_keys, 0) != nq || extent(probe_keys, 1) != nprobe || extent(probes, 0) != nq) {
    throw py::value_error("probes and probe_keys must both be (nq, nprobe)");
  }
  if (nlut != 1 && nlut != nprobe) throw py::value_error("luts must hold 1 or nprobe table sets per query");
  const std::size_t nlist = extent(list_blocks, 0) - 1;
  if (nlist == 0 || extent(list_starts, 0) != nlist + 1) {
    throw py::value_error("list_blocks and list_starts must both have nlist + 1 entries");
  }
  if (lb[0] != 0 || ls[0] != 0) throw py::value_error("list_blocks and list_starts must start at 0");
  for (std::size_t l = 0; l < nlist; ++l) {
    const int64_t n_l = ls[l + 1] - ls[l];
    if (n_l < 0 || lb[l + 1] - lb[l] != (n_l + 31) / 32) {
      throw py::value_error("list " + std::to_string(l) + " has inconsistent list_blocks / list_starts");
    }
  }
  if (extent(packed, 0) != static_cast<std::size_t>(lb[nlist]) * 16 * d_even) {
    throw py::value_error("packed does not hold list_blocks[-1] blocks of S sub-codes");
  }
  if (list_ids.ndim() != 1 || extent(list_ids, 0) != static_cast<std::size_t>(ls[nlist]) ||
      !list_ids.dtype().equal(py::dtype::of<int64_t>()) || !(list_ids.flags() & py::array::c_style)) {
    throw py::value_error("list_ids must be a C-contiguous int64 array of list_starts[-1] ids");
  }
  const int64_t* idp = static_cast<const int64_t*>(list_ids.data());
  if (nprobe >= 65536) throw py::value_error("nprobe must be below 65536");
  std::vector<int64_t> row(nprobe);
  for (std::size_t q = 0; q < nq; ++q) {
    row.assign(pp + q * nprobe, pp + (q + 1) * nprobe);
    std::sort(row.begin(), row.end());
    for (std::size_t p = 0; p < nprobe; ++p) {
      if (row[p] < -1 || row[p] >= static_cast<int64_t>(nlist)) throw py::value_error("probes holds a bad list id");
      if (p > 0 && row[p] >= 0 && row[p] == row[p - 1]) throw py::value_error("probes repeats a list in one row");
    }
  }
  for (std::size_t i = 0; i < nq * nprobe; ++i) {
    if (kp[i] < 0 || kp[i] > (1 << 23)) throw py::value_error("probe_keys must be in 0..2^23");
  }
  if (topk == 0) throw py::value_error("k must be at least 1");
  const uint8_t* lutp = require_at_most_127(luts, "luts entries must be <= 127 (use ivf_quantize_tables)");
  const uint8_t* allow_p = optional_allow(allow, static_cast<std::size_t>(ls[nlist]));  // over list_ids' values
  TopkOut out(nq, topk);  // scores are the keys the lists were ranked by
  without_gil([&] {
    medqk::ivf_lut4_search(medqk::active_isa(), lutp, nq, d, nlut, pp, kp, nprobe, cp, lb, ls, idp, nlist, topk,
                           out.scores.data, out.ids.data, threads, allow_p);
  });
  return out.tuple();
}

py::tuple ivf_quantize_tables(const py::array& tables) {
  const float* tp = require<float>(tables, "tables", 4);
  const std::size_t nq = extent(tables, 0), nlut = extent(tables, 1), s = extent(tables, 2);
  if (tables.shape(3) != 16) throw py::value_error("tables must have shape (nq, nlut, S, 16)");
  auto luts = aligned_u8(
      {static_cast<py::ssize_t>(nq), static_cast<py::ssize_t>(nlut), static_cast<py::ssize_t>(s + (s & 1)), 16});
  auto step = output<float>({nq});
  auto offsets = output<double>({nq, nlut});
  without_gil([&] { medqk::ivf_quantize_tables(tp, nq, nlut, s, luts.data, step.data, offsets.data); });
  return py::make_tuple(luts.array, step.array, offsets.array);
}

py::tuple select_topk_f32(const py::array& scores, std::size_t k, int threads, const py::object& allow,
                          std::size_t allow_first) {
  const float* sp = require<float>(scores, "scores", 2);
  const std::size_t nq = extent(scores, 0), n = extent(scores, 1);
  if (k == 0 || k > n) throw py::value_error("k must be in 1..scores.shape[1]");
  const uint8_t* allow_p = nullptr;
  if (!allow.is_none()) {  // a bitmap over at least allow_first + n rows
    const auto arr = py::reinterpret_borrow<py::array>(allow);
    if (!py::isinstance<py::array>(allow) || arr.ndim() != 1 || !arr.dtype().equal(py::dtype::of<uint8_t>()) ||
        !(arr.flags() & py::array::c_style) || static_cast<std::size_t>(arr.shape(0)) * 8 < allow_first + n) {
      throw py::value_error(
          "allow must be a C-contiguous uint8 bitmap covering bits allow_first .. allow_first + "
          "scores.shape[1] - 1 (" +
          std::to_string((allow_first + n + 7) / 8) + " bytes at least)");
    }
    allow_p = static_cast<const uint8_t*>(arr.data());
  }
  TopkOut best(nq, k);
  without_gil(
      [&] { medqk::select_topk_f32(sp, nq, n, k, best.scores.data, best.ids.data, threads, allow_p, allow_first); });
  return best.tuple();
}

// The candidate re-scoring inputs: queries qs (nq, d) float32, codes (n, d) int8, cand (nq, kc) int64.
struct Candidates {
  const float* qs;
  const int8_t* codes;
  const int64_t* cand;
  std::size_t nq, d, n, kc;
};

Candidates require_candidates(const py::array& qs, const py::array& codes, const py::array& cand) {
  Candidates c{require<float>(qs, "qs", 2),
               require<int8_t>(codes, "codes", 2),
               require<int64_t>(cand, "cand", 2),
               extent(qs, 0),
               extent(qs, 1),
               extent(codes, 0),
               extent(cand, 1)};
  if (extent(codes, 1) != c.d) throw py::value_error("codes and qs differ in dimension");
  if (extent(cand, 0) != c.nq) throw py::value_error("cand must have one row per query");
  return c;
}

py::array_t<float> s8_score_candidates(const py::array& qs, const py::array& codes, const py::array& cand,
                                       int threads) {
  const Candidates c = require_candidates(qs, codes, cand);
  auto out = output<float>({c.nq, c.kc});
  without_gil([&] {
    medqk::s8_score_candidates(medqk::active_isa(), c.qs, c.nq, c.d, c.codes, c.n, c.cand, c.kc, out.data, threads);
  });
  return out.array;
}

py::tuple s8_rerank_topk(const py::array& qs, const py::array& codes, const py::array& cand, const py::object& qbias,
                         const py::object& sqnorms, std::size_t k, int threads) {
  const Candidates c = require_candidates(qs, codes, cand);
  check_k(k);
  py::array qb, sq;
  const float* bp = optional_f32(qbias, "qbias", c.nq, "qbias must have one value per query", qb);
  const float* np_ = optional_f32(sqnorms, "sqnorms", c.n, "sqnorms must have one value per code row", sq);
  TopkOut out(c.nq, k);
  without_gil([&] {
    medqk::s8_rerank_topk(medqk::active_isa(), c.qs, c.nq, c.d, c.codes, c.n, c.cand, c.kc, bp, np_, k, out.scores.data,
                          out.ids.data, threads);
  });
  return out.tuple();
}

py::array_t<float> pq_tables(const py::array& x, const py::array& centroids, bool l2, int threads) {
  const float* xp = require<float>(x, "x", 2);
  const float* cp = require<float>(centroids, "centroids", 3);
  const std::size_t nq = extent(x, 0), m = extent(centroids, 0), k = extent(centroids, 1), dsub = extent(centroids, 2);
  if (extent(x, 1) != m * dsub) throw py::value_error("x must have M * dsub columns, like centroids (M, K, dsub)");
  auto out = output<float>({nq, m, k});
  without_gil([&] { medqk::pq_tables(xp, nq, m, dsub, cp, k, l2, out.data, threads); });
  return out.array;
}

// Byte codes (n, M) -> the packed layout of the 8-bit scan (medqk.h: pq8_pack), flat uint8.
py::array_t<uint8_t> pq8_pack(const py::array& codes) {
  const uint8_t* cp = require<uint8_t>(codes, "codes", 2);
  const std::size_t n = extent(codes, 0), m = extent(codes, 1);
  if (m == 0 || m > 256) throw py::value_error("codes must have 1 to 256 columns (M)");
  auto out = output<uint8_t>({medqk::pq8_packed_bytes(n, m)});
  without_gil([&] { medqk::pq8_pack(cp, n, m, out.data); });
  return out.array;
}

const uint8_t* require_pq8_packed(const py::array& packed, std::size_t n, std::size_t m) {
  const uint8_t* p = require<uint8_t>(packed, "packed", 1);
  if (m == 0 || m > 256) throw py::value_error("M must be 1 to 256");
  if (extent(packed, 0) != medqk::pq8_packed_bytes(n, m)) {
    throw py::value_error("packed must hold pq8_packed_bytes(n, M) = " + std::to_string(medqk::pq8_packed_bytes(n, m)) +
                          " bytes, got " + std::to_string(packed.shape(0)));
  }
  return p;
}

// The 8-bit scan kernel alone: lut (M, 256) uint8 <= 127 over n packed vectors -> (sums (n_pad,) uint16,
// masks (n_pad / 64,) uint64 of sums >= thr).
py::tuple pq8_scan(const py::array& lut, const py::array& packed, std::size_t n, unsigned thr) {
  require<uint8_t>(lut, "lut", 2);
  if (lut.shape(1) != 256) throw py::value_error("lut must have shape (M, 256)");
  const std::size_t m = extent(lut, 0);
  const uint8_t* pp = require_pq8_packed(packed, n, m);
  if (thr > 65535) throw py::value_error("thr must be <= 65535");
  const uint8_t* lp = require_at_most_127(lut, "lut entries must be <= 127");
  const std::size_t nblocks = (n + 64 - 1) / 64;
  auto sums = output<uint16_t>({nblocks * 64});
  auto masks = output<uint64_t>({nblocks});
  without_gil([&] {
    medqk::pq8_scan(medqk::active_isa(), lp, m, pp, nblocks, static_cast<uint16_t>(thr), sums.data, masks.data);
  });
  return py::make_tuple(sums.array, masks.array);
}

// The group scan alone: lut_t (M, 256, 16) uint8 <= 127 (query-minor tables of 16 queries), thr (16,)
// uint16 -> (hits (count,) uint32 = v * 16 + g, hit_sums (count,) uint16) of every sum >= thr[g], in
// order of v then g, over the n packed vectors and the padding of the last block.
py::tuple pq8_scan_group(const py::array& lut_t, const py::array& packed, std::size_t n, const py::array& thr) {
  require<uint8_t>(lut_t, "lut_t", 3);
  if (lut_t.shape(1) != 256 || lut_t.shape(2) != 16) throw py::value_error("lut_t must have shape (M, 256, 16)");
  const std::size_t m = extent(lut_t, 0);
  const uint8_t* pp = require_pq8_packed(packed, n, m);
  const uint16_t* tp = require_len<uint16_t>(thr, "thr", 16, "thr must have shape (16,)");
  const uint8_t* lp = require_at_most_127(lut_t, "lut_t entries must be <= 127");
  const std::size_t nblocks = (n + 64 - 1) / 64;
  // the hit count is known only after the scan: it fills scratch of the largest size, then copies out
  std::vector<uint32_t> hits(nblocks * 64 * 16);
  std::vector<uint16_t> hit_sums(nblocks * 64 * 16);
  const std::size_t cnt = without_gil(
      [&] { return medqk::pq8_scan_group(medqk::active_isa(), lp, m, pp, nblocks, tp, hits.data(), hit_sums.data()); });
  auto h = output<uint32_t>({cnt});
  auto hs = output<uint16_t>({cnt});
  std::copy(hits.begin(), hits.begin() + cnt, h.data);
  std::copy(hit_sums.begin(), hit_sums.begin() + cnt, hs.data);
  return py::make_tuple(h.array, hs.array);
}

py::tuple pq8_search_topk(const py::array& tables, const py::array& packed, std::size_t n, std::size_t topk,
                          int threads, const py::object& allow) {
  const float* tp = require<float>(tables, "tables", 3);
  if (tables.shape(2) != 256) throw py::value_error("tables must have shape (nq, M, 256)");
  const std::size_t nq = extent(tables, 0), m = extent(tables, 1);
  const uint8_t* pp = require_pq8_packed(packed, n, m);
  check_ids_fit(n);
  check_k(topk);
  const uint8_t* allow_p = optional_allow(allow, n);
  TopkOut out(nq, topk);
  without_gil([&] {
    medqk::pq8_search_topk(medqk::active_isa(), tp, nq, m, pp, n, topk, out.scores.data, out.ids.data, threads,
                           allow_p);
  });
  return out.tuple();
}

py::tuple f16_search_topk(const py::array& q, const py::array& x, float alpha, const py::object& bias, std::size_t topk,
                          int threads, const py::object& allow) {
  const float* qp = require<float>(q, "q", 2);
  const uint16_t* xp = require<uint16_t>(x, "x", 2);
  const std::size_t nq = extent(q, 0), d = extent(q, 1), n = extent(x, 0);
  check_ids_fit(n);
  if (extent(x, 1) != d) throw py::value_error("x and q differ in dimension");
  py::array bias_arr;
  const float* bias_p = optional_f32(bias, "bias", n, "bias must have one entry per vector", bias_arr);
  check_k(topk);
  const uint8_t* allow_p = optional_allow(allow, n);
  TopkOut out(nq, topk);
  without_gil([&] {
    medqk::f16_search_topk(medqk::active_isa(), qp, nq, d, xp, n, alpha, bias_p, topk, out.scores.data, out.ids.data,
                           threads, allow_p);
  });
  return out.tuple();
}

// Product quantization inputs: x (n, M * dsub) float32 and centroids (M, K, dsub) float32, K <= 256 (uint8 codes).
struct PqInputs {
  const float* x;
  const float* centroids;
  std::size_t n, m, k, dsub;
};

PqInputs require_pq_inputs(const py::array& x, const py::array& centroids) {
  PqInputs p{require<float>(x, "x", 2),
             require<float>(centroids, "centroids", 3),
             extent(x, 0),
             extent(centroids, 0),
             extent(centroids, 1),
             extent(centroids, 2)};
  if (p.k > 256) throw py::value_error("centroids must have at most 256 centroids per subspace (uint8 codes)");
  if (extent(x, 1) != p.m * p.dsub) {
    throw py::value_error("x has " + std::to_string(x.shape(1)) +
                          " columns but centroids cover M * dsub = " + std::to_string(p.m * p.dsub));
  }
  return p;
}

// Nearest centroid per (row, subspace): codes uint8 (n, M) and squared distances float32 (n, M).
py::tuple pq_assign(const py::array& x, const py::array& centroids, int threads) {
  const PqInputs p = require_pq_inputs(x, centroids);
  auto codes = output<uint8_t>({p.n, p.m});
  auto dist = output<float>({p.n, p.m});
  without_gil([&] {
    medqk::pq_assign(medqk::active_isa(), p.x, p.n, p.m, p.k, p.dsub, p.centroids, codes.data, dist.data, threads);
  });
  return py::make_tuple(codes.array, dist.array);
}

// Fused self-attention: q, k, v (batch * length, heads * dh) float32 with contiguous rows (column slices of one
// fused projection are read in place), lengths (batch,) int64 in [0, length]. Returns out (batch * length,
// heads * dh) float32. Finiteness is the caller's (medqk.kernels.attention_f32 checks it).
py::array_t<float> attention_f32(const py::array& q, const py::array& k, const py::array& v, const py::array& lengths,
                                 std::size_t heads, double scale, int threads) {
  const std::size_t ldq = require_rows<float>(q, "q"), ldk = require_rows<float>(k, "k");
  const std::size_t ldv = require_rows<float>(v, "v");
  const std::size_t tokens = extent(q, 0), hidden = extent(q, 1);
  for (const py::array* x : {&k, &v}) {
    if (extent(*x, 0) != tokens || extent(*x, 1) != hidden) {
      throw py::value_error("q, k and v must have the same shape");
    }
  }
  if (heads == 0 || hidden % heads != 0) {
    throw py::value_error("heads must divide the " + std::to_string(hidden) + " columns of q");
  }
  const int64_t* len = require<int64_t>(lengths, "lengths", 1);
  const std::size_t batch = extent(lengths, 0);
  if (tokens % batch != 0) throw py::value_error("q's rows must be batch * length (batch = lengths.size)");
  const std::size_t length = tokens / batch;
  for (std::size_t b = 0; b < batch; ++b) {
    if (len[b] < 0 || static_cast<std::size_t>(len[b]) > length) {
      throw py::value_error("lengths must be in [0, " + std::to_string(length) + "]");
    }
  }
  auto out = output<float>({tokens, hidden});
  const float* qp = static_cast<const float*>(q.data());
  const float* kp = static_cast<const float*>(k.data());
  const float* vp = static_cast<const float*>(v.data());
  without_gil([&] {
    medqk::attention_f32(medqk::active_isa(), qp, ldq, kp, ldk, vp, ldv, batch, length, heads, hidden / heads, len,
                         static_cast<float>(scale), out.data, hidden, threads);
  });
  return out.array;
}

// GELU of every value of a C-contiguous float32 array of any shape: into a new array of that shape, or over x
// itself when inplace (x must then be writeable).
py::array_t<float> gelu_f32(py::array x, int threads, bool inplace) {
  require_dtype<float>(x, "x");
  if (!(x.flags() & py::array::c_style)) throw py::value_error("x must be C-contiguous (use numpy.ascontiguousarray)");
  if (inplace && !x.writeable()) throw py::value_error("x must be writeable for inplace=True");
  py::array_t<float> out =
      inplace ? py::array_t<float>(x) : py::array_t<float>(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  const float* xp = static_cast<const float*>(x.data());
  float* op = out.mutable_data();
  const auto n = static_cast<std::size_t>(x.size());
  without_gil([&] { medqk::gelu_f32(medqk::active_isa(), xp, n, op, threads); });
  return out;
}

py::array_t<uint8_t> pq_anisotropic(const py::array& x, const py::array& centroids, const py::array& codes, double eta,
                                    int passes, int threads) {
  const PqInputs p = require_pq_inputs(x, centroids);
  const uint8_t* in = require<uint8_t>(codes, "codes", 2);
  if (extent(codes, 0) != p.n || extent(codes, 1) != p.m) {
    throw py::value_error("codes must have shape (n, M), one row per row of x");
  }
  if (!(eta >= 1.0) || !std::isfinite(eta)) throw py::value_error("eta must be a finite number >= 1");
  if (passes < 0) throw py::value_error("passes must be >= 0");
  for (std::size_t i = 0; i < p.n * p.m; ++i) {
    if (in[i] >= p.k) throw py::value_error("codes must be < K (the centroids per subspace)");
  }
  auto out = output<uint8_t>({p.n, p.m});  // starts from the given codes, improved in place
  std::copy(in, in + p.n * p.m, out.data);
  without_gil([&] { medqk::pq_anisotropic(p.x, p.n, p.m, p.k, p.dsub, p.centroids, eta, passes, out.data, threads); });
  return out.array;
}

py::tuple pq_centroid_sums(const py::array& x, const py::array& codes, std::size_t k, int threads) {
  const float* xp = require<float>(x, "x", 2);
  const uint8_t* cp = require<uint8_t>(codes, "codes", 2);
  const std::size_t n = extent(x, 0), m = extent(codes, 1);
  if (k == 0 || k > 256) throw py::value_error("k must be 1..256");
  if (extent(codes, 0) != n) throw py::value_error("codes must have one row per row of x");
  if (extent(x, 1) % m != 0) {
    throw py::value_error("x has " + std::to_string(x.shape(1)) +
                          " columns, not a multiple of M = " + std::to_string(m));
  }
  const std::size_t dsub = extent(x, 1) / m;
  for (std::size_t i = 0; i < n * m; ++i) {
    if (cp[i] >= k) throw py::value_error("codes must be < k");
  }
  auto sums = output<double>({m, k, dsub});
  auto counts = output<int64_t>({m, k});
  without_gil([&] { medqk::pq_centroid_sums(xp, n, m, k, dsub, cp, sums.data, counts.data, threads); });
  return py::make_tuple(sums.array, counts.array);
}

py::dict cpu_features_dict() {
  const medqk::CpuFeatures& f = medqk::cpu_features();
  py::dict d;
#if defined(__x86_64__) || defined(_M_X64)
  d["arch"] = "x86_64";
  d["sse2"] = f.sse2;
  d["avx2"] = f.avx2;
  d["fma"] = f.fma;
  d["f16c"] = f.f16c;
  d["avx512f"] = f.avx512f;
  d["avx512bw"] = f.avx512bw;
  d["avx512vnni"] = f.avx512vnni;
  d["avx512vbmi"] = f.avx512vbmi;
  d["avx512vpopcntdq"] = f.avx512vpopcntdq;
  d["amx_int8"] = f.amx_int8;
  d["avx_vnni"] = f.avx_vnni;
#elif defined(__aarch64__)
  d["arch"] = "aarch64";
  d["asimd"] = f.asimd;
  d["asimddp"] = f.asimddp;
  d["i8mm"] = f.i8mm;
#else
  d["arch"] = "other";
#endif
  return d;
}

// ---- 1-bit RaBitQ (medqk.h: rabitq_pack, rabitq_scan_ints, rabitq_search_topk) ----
// The codec's byte codes (n, ceil(dim / 8)) -> (packed uint64 words, pop int32 (n,)).
py::tuple rabitq_pack(const py::array& codes, std::size_t dim) {
  const uint8_t* cp = require<uint8_t>(codes, "codes", 2);
  const std::size_t n = extent(codes, 0);
  if (dim == 0 || extent(codes, 1) != (dim + 7) / 8) {
    throw py::value_error("codes must have ceil(dim / 8) = " + std::to_string((dim + 7) / 8) + " columns for dim " +
                          std::to_string(dim) + ", got " + std::to_string(codes.shape(1)));
  }
  auto packed = output<uint64_t>({medqk::rabitq_packed_words(n, dim)});
  auto pop = output<int32_t>({n});
  without_gil([&] { medqk::rabitq_pack(cp, n, dim, packed.data, pop.data); });
  return py::make_tuple(packed.array, pop.array);
}

const uint64_t* require_rabitq_packed(const py::array& packed, std::size_t n, std::size_t dim) {
  const uint64_t* p = require<uint64_t>(packed, "packed", 1);
  if (dim == 0 || extent(packed, 0) != medqk::rabitq_packed_words(n, dim)) {
    throw py::value_error(
        "packed must hold rabitq_packed_words(n, dim) = " + std::to_string(medqk::rabitq_packed_words(n, dim)) +
        " words (rabitq_pack), got " + std::to_string(packed.shape(0)));
  }
  return p;
}

// Query bit planes (nq, bits, ceil(dim / 8)) uint8, 1 <= bits <= 8.
const uint8_t* require_rabitq_planes(const py::array& planes, std::size_t dim) {
  const uint8_t* p = require<uint8_t>(planes, "planes", 3);
  if (extent(planes, 1) > 8 || extent(planes, 2) != (dim + 7) / 8) {
    throw py::value_error("planes must have shape (nq, bits <= 8, ceil(dim / 8) = " + std::to_string((dim + 7) / 8) +
                          ")");
  }
  return p;
}

py::array_t<int32_t> rabitq_scan_ints(const py::array& packed, std::size_t n, std::size_t dim, const py::array& planes,
                                      int threads) {
  const uint64_t* pp = require_rabitq_packed(packed, n, dim);
  const uint8_t* qp = require_rabitq_planes(planes, dim);
  const std::size_t nq = extent(planes, 0), bits = extent(planes, 1);
  auto out = output<int32_t>({nq, n});
  without_gil([&] { medqk::rabitq_scan_ints(medqk::active_isa(), pp, n, dim, qp, nq, bits, out.data, threads); });
  return out.array;
}

py::tuple rabitq_search_topk(const py::array& packed, const py::array& pop, const py::array& mult, const py::array& add,
                             std::size_t dim, const py::array& planes, const py::array& a, const py::array& c1,
                             const py::array& c2, const py::array& c3, std::size_t topk, int threads,
                             const py::object& allow) {
  const int32_t* popp = require<int32_t>(pop, "pop", 1);
  const std::size_t n = extent(pop, 0);
  const uint64_t* pp = require_rabitq_packed(packed, n, dim);
  const float* mp = require_len<float>(mult, "mult", n, "mult must have one value per vector (like pop)");
  const float* ap = require_len<float>(add, "add", n, "add must have one value per vector (like pop)");
  const uint8_t* qp = require_rabitq_planes(planes, dim);
  const std::size_t nq = extent(planes, 0);
  const char* per_query = "a, c1, c2 and c3 must have one value per query (planes.shape[0])";
  const medqk::RabitqQueries queries{qp,
                                     nq,
                                     extent(planes, 1),
                                     require_len<float>(a, "a", nq, per_query),
                                     require_len<float>(c1, "c1", nq, per_query),
                                     require_len<float>(c2, "c2", nq, per_query),
                                     require_len<float>(c3, "c3", nq, per_query)};
  check_ids_fit(n);
  check_k(topk);
  const uint8_t* allow_p = optional_allow(allow, n);
  TopkOut out(nq, topk);
  without_gil([&] {
    medqk::rabitq_search_topk(medqk::active_isa(), pp, popp, mp, ap, n, dim, queries, topk, out.scores.data,
                              out.ids.data, threads, allow_p);
  });
  return out.tuple();
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "medqk native kernels (C++, per-ISA SIMD). Use the medqk package, not this module directly.";
  m.attr("__version__") = MEDQK_VERSION;
  m.attr("MAX_GEMM_K") = medqk::kMaxGemmK;
  m.attr("LUT4_MAX_SUBSPACES") = medqk::kLut4MaxSubspaces;

  m.def("cpu_features", &cpu_features_dict, "Features detected on this CPU (cpuid + xgetbv / getauxval).");
  m.def("isas_built", [] {
    std::vector<std::string> out;
    for (medqk::Isa isa : medqk::built_isas()) out.emplace_back(medqk::isa_name(isa));
    return out;
  });
  m.def("isas_supported", [] {
    std::vector<std::string> out;
    for (medqk::Isa isa : medqk::supported_isas()) out.emplace_back(medqk::isa_name(isa));
    return out;
  });
  m.def("active_isa", [] { return std::string(medqk::isa_name(medqk::active_isa())); });
  m.def("set_isa", [](const std::string& name) {
    const medqk::Isa isa = isa_or_throw(name);
    if (!medqk::set_isa(isa)) {
      throw py::value_error("ISA '" + name + "' is not available here (" +
                            (medqk::isa_built(isa) ? "this CPU lacks it" : "this build does not contain it") + ")");
    }
  });
  m.def("isa_env_error", [] { return medqk::isa_env_error(); });
  m.def("kernel_operations", &medqk::kernel_operations);
  m.def(
      "kernel_variants",
      [](const std::string& op) {
        const std::vector<medqk::KernelVariantInfo> variants = medqk::kernel_variants(op);
        if (variants.empty()) throw py::value_error("unknown kernel operation '" + op + "'");
        py::list out;
        for (const medqk::KernelVariantInfo& v : variants) {
          py::dict d;
          d["name"] = v.name;
          d["isa"] = std::string(medqk::isa_name(v.isa));
          d["needs"] = v.needs;
          d["runnable"] = v.runnable;
          out.append(d);
        }
        return out;
      },
      py::arg("op"));
  m.def(
      "kernel_variant",
      [](const std::string& op, const std::string& isa) {
        std::string v = medqk::kernel_variant(op, isa.empty() ? medqk::active_isa() : isa_or_throw(isa));
        if (v.empty()) throw py::value_error("unknown kernel operation '" + op + "'");
        return v;
      },
      py::arg("op"), py::arg("isa") = "");
  m.def(
      "force_kernel_variant",
      [](const std::string& op, const std::string& variant) {
        switch (medqk::force_kernel_variant(op, variant)) {
          case medqk::ForceResult::ok: return;
          case medqk::ForceResult::unknown_operation: throw py::value_error("unknown kernel operation '" + op + "'");
          case medqk::ForceResult::unknown_variant:
            throw py::value_error("operation '" + op + "' has no variant '" + variant + "' in this build");
          case medqk::ForceResult::not_runnable:
            throw py::value_error("variant '" + variant + "' of '" + op + "' cannot run on this CPU");
          case medqk::ForceResult::not_forceable:
            throw py::value_error("'" + op + "' is chosen by ISA (its packed layout belongs to the ISA): use set_isa");
        }
      },
      py::arg("op"), py::arg("variant"));
  m.def("hardware_threads", &medqk::hardware_threads);

  py::class_<PackedS8, std::shared_ptr<PackedS8>>(m, "PackedS8")
      .def_property_readonly("n", [](const PackedS8& p) { return p.n; })
      .def_property_readonly("k", [](const PackedS8& p) { return p.k; })
      .def_property_readonly("isa", [](const PackedS8& p) { return std::string(medqk::isa_name(p.isa)); })
      .def_property_readonly("nbytes", [](const PackedS8& p) { return p.data.size(); });

  m.def("pack_s8", &pack_s8, py::arg("b"), py::arg("isa") = "");
  m.def("gemm_s8s8_s32", &gemm, py::arg("a"), py::arg("b"), py::arg("threads") = 0);
  m.def("gemm_s8s8_s32_packed", &gemm_packed, py::arg("a"), py::arg("b"), py::arg("threads") = 0);
  m.def("quantize_rows_s8", &quantize_rows_s8, py::arg("x"));
  py::class_<PackedW4, std::shared_ptr<PackedW4>>(m, "PackedW4")
      .def_property_readonly("n", [](const PackedW4& p) { return p.n; })
      .def_property_readonly("k", [](const PackedW4& p) { return p.k; })
      .def_property_readonly("group_size", [](const PackedW4& p) { return p.group_size; })
      .def_property_readonly("isa", [](const PackedW4& p) { return std::string(medqk::isa_name(p.isa)); })
      .def_property_readonly("variant", [](const PackedW4& p) { return p.variant; })
      .def_property_readonly("nbytes", [](const PackedW4& p) { return p.data.size(); });
  m.def("pack_w4", &pack_w4, py::arg("codes"), py::arg("levels"), py::arg("group_size"), py::arg("isa") = "");
  m.def("gemm_w4a8_s32", &gemm_w4a8_s32, py::arg("a"), py::arg("w"), py::arg("threads") = 0);
  m.def("gemm_w4a8_f32", &gemm_w4a8_f32, py::arg("a"), py::arg("row_scale"), py::arg("w"), py::arg("scales"),
        py::arg("zeros"), py::arg("bias"), py::arg("threads") = 0);
  m.def("f16_search_topk", &f16_search_topk, py::arg("q"), py::arg("x"), py::arg("alpha"), py::arg("bias"),
        py::arg("k"), py::arg("threads") = 0, py::arg("allow") = py::none());
  m.def("pq8_pack", &pq8_pack, py::arg("codes"));
  m.def("pq8_scan", &pq8_scan, py::arg("lut"), py::arg("packed"), py::arg("n"), py::arg("thr"));
  m.def("pq8_scan_group", &pq8_scan_group, py::arg("lut_t"), py::arg("packed"), py::arg("n"), py::arg("thr"));
  m.def("pq8_search_topk", &pq8_search_topk, py::arg("tables"), py::arg("packed"), py::arg("n"), py::arg("k"),
        py::arg("threads") = 0, py::arg("allow") = py::none());
  m.def("pq_tables", &pq_tables, py::arg("x"), py::arg("centroids"), py::arg("l2"), py::arg("threads"));
  m.def("pq_assign", &pq_assign, py::arg("x"), py::arg("centroids"), py::arg("threads") = 0);
  m.def("attention_f32", &attention_f32, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("lengths"), py::arg("heads"),
        py::arg("scale"), py::arg("threads") = 0);
  m.def("gelu_f32", &gelu_f32, py::arg("x"), py::arg("threads") = 0, py::arg("inplace") = false);
  m.def("lut4_pack", &lut4_pack, py::arg("codes"));
  m.def("lut4_decode_s8", &lut4_decode_s8, py::arg("packed"), py::arg("ntotal"), py::arg("d"), py::arg("sub"),
        py::arg("dim"), py::arg("table"), py::arg("d_out"), py::arg("v0"), py::arg("n"));
  m.def("lut4_quantize_tables", &lut4_quantize_tables, py::arg("tables"));
  m.def("lut4_score_candidates", &lut4_score_candidates, py::arg("tables"), py::arg("packed"), py::arg("n"),
        py::arg("cand"));
  m.def("lut4_search_topk", &lut4_search_topk, py::arg("luts"), py::arg("packed"), py::arg("n"), py::arg("d"),
        py::arg("alpha"), py::arg("beta"), py::arg("k"), py::arg("threads") = 0, py::arg("sorted") = true,
        py::arg("allow") = py::none());
  m.def("ivf_lut4_search", &ivf_lut4_search, py::arg("luts"), py::arg("probes"), py::arg("probe_keys"),
        py::arg("packed"), py::arg("list_blocks"), py::arg("list_starts"), py::arg("list_ids"), py::arg("k"),
        py::arg("threads") = 0, py::arg("allow") = py::none());
  m.def("ivf_quantize_tables", &ivf_quantize_tables, py::arg("tables"));
  m.def("select_topk_f32", &select_topk_f32, py::arg("scores"), py::arg("k"), py::arg("threads") = 0,
        py::arg("allow") = py::none(), py::arg("allow_first") = 0);
  m.def("s8_score_candidates", &s8_score_candidates, py::arg("qs"), py::arg("codes"), py::arg("cand"),
        py::arg("threads") = 0);
  m.def("pq_anisotropic", &pq_anisotropic, py::arg("x"), py::arg("centroids"), py::arg("codes"), py::arg("eta"),
        py::arg("passes"), py::arg("threads") = 0);
  m.def("pq_centroid_sums", &pq_centroid_sums, py::arg("x"), py::arg("codes"), py::arg("k"), py::arg("threads") = 0);
  m.def("s8_rerank_topk", &s8_rerank_topk, py::arg("qs"), py::arg("codes"), py::arg("cand"), py::arg("qbias"),
        py::arg("sqnorms"), py::arg("k"), py::arg("threads") = 0);
  m.def("s8_search_topk", &s8_search_topk, py::arg("a"), py::arg("db"), py::arg("alpha"), py::arg("bias"), py::arg("k"),
        py::arg("threads") = 0, py::arg("allow") = py::none());
  m.def("linear_s8", &linear_s8, py::arg("x"), py::arg("w"), py::arg("weight_scales"), py::arg("bias"),
        py::arg("threads") = 0);
  m.def("rabitq_pack", &rabitq_pack, py::arg("codes"), py::arg("dim"));
  m.def("rabitq_scan_ints", &rabitq_scan_ints, py::arg("packed"), py::arg("n"), py::arg("dim"), py::arg("planes"),
        py::arg("threads") = 0);
  m.def("rabitq_search_topk", &rabitq_search_topk, py::arg("packed"), py::arg("pop"), py::arg("mult"), py::arg("add"),
        py::arg("dim"), py::arg("planes"), py::arg("a"), py::arg("c1"), py::arg("c2"), py::arg("c3"), py::arg("k"),
        py::arg("threads") = 0, py::arg("allow") = py::none());
}
