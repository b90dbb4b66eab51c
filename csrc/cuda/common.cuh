// What every CUDA kernel of sap_kernels shares: the tile shape, per-dtype access to magnitudes
// and their bits, and a bump allocator over the caller's workspace.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "sap_kernels/scalar_type.h"

namespace sap_kernels::cuda {

// A tile: kItems consecutive entries per thread ("blocked" arrangement), kThreads threads.
constexpr int kThreads = 256;
constexpr int kItems = 8;
constexpr int kTile = kThreads * kItems;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Per dtype: Bits, the magnitude as a float (16/32-bit) or double, the selection key (the bits
// of |w|, monotone in |w|: 15, 31 or 63 bits) and the scale key (the bits of |w| as a float32,
// or as a float64 for float64 params), whose exponent field gives the power-of-two scale.
struct Float32Traits {
  using Bits = uint32_t;
  static constexpr int kKeyBits = 31;
  static constexpr bool kFloat64 = false;
  __device__ static float magnitude(Bits b) { return __uint_as_float(b & 0x7fffffffu); }
  __device__ static double wide(Bits b) { return static_cast<double>(magnitude(b)); }
  __device__ static uint64_t key(Bits b) { return b & 0x7fffffffu; }
  __device__ static uint64_t scale_key(Bits b) { return b & 0x7fffffffu; }
};

struct BFloat16Traits {
  using Bits = uint16_t;
  static constexpr int kKeyBits = 15;
  static constexpr bool kFloat64 = false;
  __device__ static float magnitude(Bits b) {
    return __uint_as_float(static_cast<uint32_t>(b & 0x7fffu) << 16);
  }
  __device__ static double wide(Bits b) { return static_cast<double>(magnitude(b)); }
  __device__ static uint64_t key(Bits b) { return b & 0x7fffu; }
  __device__ static uint64_t scale_key(Bits b) { return __float_as_uint(magnitude(b)); }
};

struct Float16Traits {
  using Bits = uint16_t;
  static constexpr int kKeyBits = 15;
  static constexpr bool kFloat64 = false;
  __device__ static float magnitude(Bits b) {
    return __half2float(__ushort_as_half(static_cast<unsigned short>(b & 0x7fffu)));
  }
  __device__ static double wide(Bits b) { return static_cast<double>(magnitude(b)); }
  __device__ static uint64_t key(Bits b) { return b & 0x7fffu; }
  __device__ static uint64_t scale_key(Bits b) { return __float_as_uint(magnitude(b)); }
};

struct Float64Traits {
  using Bits = uint64_t;
  static constexpr int kKeyBits = 63;
  static constexpr bool kFloat64 = true;
  __device__ static float magnitude(Bits b) { return static_cast<float>(wide(b)); }
  __device__ static double wide(Bits b) {
    return __longlong_as_double(static_cast<long long>(b & 0x7fffffffffffffffull));
  }
  __device__ static uint64_t key(Bits b) { return b & 0x7fffffffffffffffull; }
  __device__ static uint64_t scale_key(Bits b) { return b & 0x7fffffffffffffffull; }
};

// f(Traits{}) for the Traits of dtype: the one switch over dtypes of every entry point.
template <class F>
bool for_dtype(ScalarType dtype, F&& f) {
  switch (dtype) {
    case ScalarType::kFloat32:
      return f(Float32Traits{});
    case ScalarType::kFloat64:
      return f(Float64Traits{});
    case ScalarType::kFloat16:
      return f(Float16Traits{});
    case ScalarType::kBFloat16:
      return f(BFloat16Traits{});
  }
  return false;
}

// 2^n as a double, from its bits (n in [-1022, 1023]).
__device__ __forceinline__ double power_of_two(int64_t n) {
  return __longlong_as_double((n + 1023) << 52);
}

// The entries [tile_start, tile_start + kTile) of a tile, thread t holding t*kItems onwards:
// their bits and whether each is live (inside the buffer and, with a mask, marked).
template <class Traits>
__device__ void load_tile(const void* params, const uint8_t* mask, int64_t numel,
                          int64_t tile_start, typename Traits::Bits bits[kItems],
                          bool live[kItems]) {
  const auto* data = static_cast<const typename Traits::Bits*>(params);
  const int64_t base = tile_start + static_cast<int64_t>(threadIdx.x) * kItems;
#pragma unroll
  for (int i = 0; i < kItems; ++i) {
    const int64_t index = base + i;
    const bool inside = index < numel;
    bits[i] = inside ? data[index] : 0;
    live[i] = inside && (mask == nullptr || mask[index] != 0);
  }
}

// Hands out pieces of the caller's workspace, each 256-byte aligned.
class Workspace {
 public:
  Workspace(void* base, size_t bytes) : base_(static_cast<char*>(base)), bytes_(bytes) {}
  template <class T>
  T* take(int64_t count) {
    const size_t size = (static_cast<size_t>(count) * sizeof(T) + 255) / 256 * 256;
    T* piece = reinterpret_cast<T*>(base_ + used_);
    used_ += size;
    return used_ <= bytes_ ? piece : nullptr;
  }
  // The bytes `take` calls of these sizes use (to size a workspace before it exists).
  template <class T>
  static size_t bytes_for(int64_t count) {
    return (static_cast<size_t>(count) * sizeof(T) + 255) / 256 * 256;
  }

 private:
  char* base_;
  size_t bytes_;
  size_t used_ = 0;
};

}  // namespace sap_kernels::cuda
