// axpy: out = alpha * x + y. The trivial op that exercises the whole native path.
#pragma once

#include <cstdint>

#include "common.h"

namespace signbench::axpy {

void cpu(std::uintptr_t x, std::uintptr_t y, std::uintptr_t out, std::int64_t n, double alpha,
         int dtype);

// Launches on the CUDA stream given as an integer handle.
void cuda(std::uintptr_t x, std::uintptr_t y, std::uintptr_t out, std::int64_t n, double alpha,
          int dtype, std::uintptr_t stream);

}  // namespace signbench::axpy
