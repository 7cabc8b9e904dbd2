// std::vector storage on a 64-byte boundary, for the tables the scan kernels read in 64-byte rows: malloc
// aligns to 16 bytes, and a 64-byte table row that straddles two cache lines costs two line reads per
// load in the scan's innermost loop.
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace medqk {
namespace runtime {

template <typename T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <typename U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64))); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t(64)); }
  template <typename U>
  bool operator==(const CacheLineAllocator<U>&) const {
    return true;
  }
  template <typename U>
  bool operator!=(const CacheLineAllocator<U>&) const {
    return false;
  }
};

template <typename T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

}  // namespace runtime
}  // namespace medqk
