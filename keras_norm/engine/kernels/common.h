// What the kernels share: TensorFlow's op headers and names, spreading examples (or other units of work) over
// the intra-op threads, summing per-example parts in example order, and the run-time choice of instruction
// set. Each kernel file includes it once; everything here is internal to that file.

#ifndef KERAS_NORM_KERNELS_COMMON_H_
#define KERAS_NORM_KERNELS_COMMON_H_

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

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

// The examples of a ForEachExample call, cut into `count` nearly equal chunks that threads take in turn.
struct Chunks {
  std::atomic<int64_t> next{0}, done{0};
  int64_t n = 0, count = 0;
  const std::function<void(int64_t, int64_t)>* fn = nullptr;  // valid until done == count
  std::mutex mu;
  std::condition_variable finished;

  // Runs chunks until none is left to take (a thread that comes late finds none and never touches fn).
  void Work() {
    for (int64_t k; (k = next.fetch_add(1)) < count;) {
      (*fn)(n * k / count, n * (k + 1) / count);
      if (done.fetch_add(1) + 1 == count) {
        std::lock_guard<std::mutex> lock(mu);
        finished.notify_all();
      }
    }
  }
};

constexpr int64_t kMostChunks = 64, kLeastChunkCost = 20000;

// Runs fn(begin, end) over ranges of the n examples on the calling thread and TensorFlow's intra-op threads.
// The examples are cut into up to kMostChunks chunks (none cheaper than kLeastChunkCost, in the units of
// `cost_per_example`) that every thread takes from a shared counter, so a thread that starts late or is busy
// with another op leaves its share to the others instead of holding the op up (TensorFlow's Shard gives each
// thread a fixed share; on these two-core machines most interleaved runs were faster without it: performance.md).
inline void ForEachExample(OpKernelContext* ctx, int64_t n, int64_t cost_per_example,
                           const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  const int64_t count = std::min({n, kMostChunks, std::max<int64_t>(1, n * cost_per_example / kLeastChunkCost)});
  if (workers->NumThreads() <= 1 || count <= 1) return fn(0, n);
  auto chunks = std::make_shared<Chunks>();
  chunks->n = n;
  chunks->count = count;
  chunks->fn = &fn;
  for (int t = 0; t < workers->NumThreads(); ++t) workers->Schedule([chunks] { chunks->Work(); });
  chunks->Work();
  std::unique_lock<std::mutex> lock(chunks->mu);
  chunks->finished.wait(lock, [&] { return chunks->done.load() == count; });
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
