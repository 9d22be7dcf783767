// Declarations of the C++ (CPU) kernels bound in bindings.cpp.
#pragma once

#include <cstdint>

#include "common.h"

namespace signbench::cpu {

void axpy(std::uintptr_t x, std::uintptr_t y, std::uintptr_t out, std::int64_t n, double alpha,
          int dtype);

}  // namespace signbench::cpu
