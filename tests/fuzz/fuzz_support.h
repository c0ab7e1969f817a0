// Shared by the fuzz targets: invariant checks that stop the fuzzer (a crash it records).
#pragma once

#include <cstdio>
#include <cstdlib>

// A broken invariant is a crash for libFuzzer: the input is saved as an artifact.
#define FUZZ_CHECK(cond)                                                                       \
  do {                                                                                         \
    if (!(cond)) {                                                                             \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);        \
      std::abort();                                                                            \
    }                                                                                          \
  } while (0)
