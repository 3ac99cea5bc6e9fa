// What the kernels share: TensorFlow's op headers and names, spreading examples (or other units of work) over
// the intra-op threads, summing per-example parts in example order, and the run-time choice of instruction
// set. Each kernel file includes it once; everything here is internal to that file.

#ifndef KERAS_NORM_KERNELS_COMMON_H_
#define KERAS_NORM_KERNELS_COMMON_H_

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

namespace keras_norm {
namespace {

#define KN_INLINE inline __attribute__((always_inline))
// The AVX-512 (and FMA) code of the conv kernels, chosen at run time; affine.cc has its own, without FMA, so that
// its arithmetic stays TensorFlow's.
#define KN_AVX512_FMA __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,fma")))

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;

// Runs fn(begin, end) over ranges of the n examples on TensorFlow's intra-op threads.
inline void ForEachExample(OpKernelContext* ctx, int64_t n, int64_t cost_per_example,
                           const std::function<void(int64_t, int64_t)>& fn) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  ::tensorflow::Shard(workers->NumThreads(), workers, n, cost_per_example, fn);
}

// out[j] = sum over the n parts (in order) of parts[i * size + j]: the same bits whatever the thread count.
inline void SumInOrder(const float* parts, int64_t n, int64_t size, float* out) {
  std::fill(out, out + size, 0.f);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < size; ++j) out[j] += parts[i * size + j];
}

// Whether the CPU has the AVX-512 subsets the kernels use; KERAS_NORM_CONV_ISA=baseline says no (to test the
// baseline code on an AVX-512 machine).
inline bool HasAvx512() {
#if defined(__x86_64__)
  static const bool forced_off = std::getenv("KERAS_NORM_CONV_ISA") != nullptr &&
                                 std::strcmp(std::getenv("KERAS_NORM_CONV_ISA"), "baseline") == 0;
  static const bool has = !forced_off && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                          __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw");
  return has;
#else
  return false;
#endif
}

}  // namespace
}  // namespace keras_norm

#endif  // KERAS_NORM_KERNELS_COMMON_H_
