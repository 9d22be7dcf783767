// Declarations of the CUDA launchers bound in bindings.cpp (compiled only with SIGNBENCH_WITH_CUDA).
// Every launcher takes the caller's CUDA stream as an integer handle and launches on it.
#pragma once

#include <cstdint>

#include "common.h"

namespace signbench::cuda {

void axpy(std::uintptr_t x, std::uintptr_t y, std::uintptr_t out, std::int64_t n, double alpha,
          int dtype, std::uintptr_t stream);

}  // namespace signbench::cuda
