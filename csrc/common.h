// Shared helpers for SignBench's native kernels.
//
// Python passes raw tensor pointers (tensor.data_ptr()) as integers; kernels never see a
// torch::Tensor, so the extension builds without libtorch. Dtypes travel as small integer codes
// that harness/ops/_native.py maps from torch dtypes.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace signbench {

enum class DType : int { Float32 = 0, Float64 = 1, Float16 = 2, BFloat16 = 3 };

inline DType to_dtype(int code) {
  if (code < 0 || code > 3) {
    throw std::invalid_argument("signbench native: unknown dtype code " + std::to_string(code));
  }
  return static_cast<DType>(code);
}

template <typename T>
inline T* as_ptr(std::uintptr_t address) {
  return reinterpret_cast<T*>(address);
}

}  // namespace signbench
