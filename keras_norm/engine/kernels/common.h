// What the kernels share: TensorFlow's op headers and names, spreading examples (or other units of work) over
// the calling thread and the kernels' helper threads, summing per-example parts in example order, and the
// run-time choice of instruction set. Each kernel file includes it once; everything here is internal to that
// file but the helper threads, which all kernel files share (namespace keras_norm::threads).

#ifndef KERAS_NORM_KERNELS_COMMON_H_
#define KERAS_NORM_KERNELS_COMMON_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace keras_norm {
namespace threads {

// The examples of a ForEachExample call, cut into `count` nearly equal chunks that threads take in turn.
struct Chunks {
  std::atomic<int64_t> next{0}, done{0};
  int64_t n = 0, count = 0;
  const std::function<void(int64_t, int64_t)>* fn = nullptr;  // valid until done == count

  // Runs chunks until none is left to take (a thread that comes late finds none and never touches fn).
  void Work() {
    for (int64_t k; (k = next.fetch_add(1, std::memory_order_relaxed)) < count;) {
      (*fn)(n * k / count, n * (k + 1) / count);
      done.fetch_add(1, std::memory_order_release);  // the chunk's outputs are written before it counts as done
    }
  }
};

// Threads of the kernels' own that take chunks beside the calling thread, shared by all kernel files (an inline
// function's static is one object across them). A thread woken from sleep starts late on these machines: for
// TensorFlow's intra-op threads, 60 us (median) and 450 us (90th percentile) after the op scheduled it, while a
// whole op of a step takes 50-500 us. So a helper that finishes a job keeps polling for the next one for
// kSpinMicros (a step starts an op every few tens of microseconds), yielding its core to any runnable thread
// meanwhile, and only then sleeps.
class Helpers {
 public:
  static constexpr int kSpinMicros = 500;

  // The process's helpers, `count` of them, started on first use and never stopped.
  static Helpers& Get(int count) {
    static Helpers* helpers = new Helpers(count);  // never destroyed: the threads may outlive static destructors
    return *helpers;
  }

  // Gives `chunks` to every idle helper (one busy with another op's chunks is left alone).
  void Offer(const std::shared_ptr<Chunks>& chunks) {
    for (auto& slot : slots_) {
      std::lock_guard<std::mutex> lock(slot->mu);
      if (slot->job || slot->busy) continue;
      slot->job = chunks;
      slot->posted.store(true, std::memory_order_release);
      slot->wake.notify_one();
    }
  }

  // Takes `chunks` back from the helpers that have not started on it, so that they are free for the next op.
  void Retract(const std::shared_ptr<Chunks>& chunks) {
    for (auto& slot : slots_) {
      std::lock_guard<std::mutex> lock(slot->mu);
      if (slot->job != chunks) continue;
      slot->job.reset();
      slot->posted.store(false, std::memory_order_relaxed);
    }
  }

 private:
  struct Slot {
    std::mutex mu;
    std::condition_variable wake;
    std::shared_ptr<Chunks> job;  // guarded by mu
    bool busy = false;            // guarded by mu
    std::atomic<bool> posted{false};
  };

  explicit Helpers(int count) {
    for (int i = 0; i < count; ++i) {
      slots_.push_back(std::make_unique<Slot>());
      std::thread([slot = slots_.back().get()] { Loop(slot); }).detach();
    }
  }

  static void Loop(Slot* slot) {
    for (;;) {
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinMicros);
      while (!slot->posted.load(std::memory_order_acquire) && std::chrono::steady_clock::now() < until)
        std::this_thread::yield();
      std::shared_ptr<Chunks> job;
      {
        std::unique_lock<std::mutex> lock(slot->mu);
        slot->wake.wait(lock, [slot] { return slot->job != nullptr; });
        job = std::move(slot->job);
        slot->job.reset();
        slot->posted.store(false, std::memory_order_relaxed);
        slot->busy = true;
      }
      job->Work();
      std::lock_guard<std::mutex> lock(slot->mu);
      slot->busy = false;
    }
  }

  std::vector<std::unique_ptr<Slot>> slots_;
};

}  // namespace threads
}  // namespace keras_norm

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

constexpr int64_t kMostChunks = 64, kLeastChunkCost = 20000;

// Runs fn(begin, end) over ranges of the n examples on the calling thread and the kernels' helper threads (one
// fewer than TensorFlow's intra-op threads: the calling thread is the other). The examples are cut into up to
// kMostChunks chunks (none cheaper than kLeastChunkCost, in the units of `cost_per_example`) that every thread
// takes from a shared counter, so a thread that starts late or is busy with another op leaves its share to the
// others instead of holding the op up (TensorFlow's Shard gives each thread a fixed share; on these two-core
// machines most interleaved runs were faster without it, and faster again with helpers that do not sleep
// between ops: performance.md).
inline void ForEachExample(OpKernelContext* ctx, int64_t n, int64_t cost_per_example,
                           const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  const int intra_op_threads = ctx->device()->tensorflow_cpu_worker_threads()->workers->NumThreads();
  const int64_t count = std::min({n, kMostChunks, std::max<int64_t>(1, n * cost_per_example / kLeastChunkCost)});
  if (intra_op_threads <= 1 || count <= 1) return fn(0, n);
  auto chunks = std::make_shared<threads::Chunks>();
  chunks->n = n;
  chunks->count = count;
  chunks->fn = &fn;
  threads::Helpers& helpers = threads::Helpers::Get(intra_op_threads - 1);
  helpers.Offer(chunks);
  chunks->Work();
  helpers.Retract(chunks);
  // What is left is the helpers' last chunks, each a small part of the op: wait for them without sleeping.
  while (chunks->done.load(std::memory_order_acquire) != count) std::this_thread::yield();
}

// The op set-up every kernel does: the float data of an input, and new output and temporary tensors with their
// data (used as `OP_REQUIRES_OK(ctx, NewOutput(ctx, 0, shape, &y));`).
inline const float* Data(const Tensor& t) { return t.flat<float>().data(); }

inline ::tensorflow::Status NewOutput(OpKernelContext* ctx, int index, const TensorShape& shape, float** data) {
  Tensor* t = nullptr;
  TF_RETURN_IF_ERROR(ctx->allocate_output(index, shape, &t));
  *data = t->flat<float>().data();
  return ::tensorflow::OkStatus();
}

// A temporary float tensor that `*keep` holds for as long as the op needs it.
inline ::tensorflow::Status NewTemp(OpKernelContext* ctx, const TensorShape& shape, Tensor* keep, float** data) {
  TF_RETURN_IF_ERROR(ctx->allocate_temp(::tensorflow::DT_FLOAT, shape, keep));
  *data = keep->flat<float>().data();
  return ::tensorflow::OkStatus();
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
