// 1x1 convolution of channels-last float32 tensors (N, H, W, Ci) with a (1, 1, Ci, Co) kernel, and both
// gradients, as three TensorFlow CPU ops. keras_norm/native.py compiles this file on first use.
//
// Over the P = H * W positions of an example a 1x1 convolution is a matrix product:
//   y = x w   (P x Co),   dx = dy w^T   (P x Ci),   dw = sum over examples of x^T dy   (Ci x Co).
// It reads each activation once and does 2 * Ci * Co flops per position, so what it costs is memory traffic
// and per-op overhead; the kernel makes one pass per op, one vector of 8 or 16 channels at a time for the
// model's transition (16 -> 8 channels), plain loops for other widths. With AVX-512 (chosen at run time) the
// input gradient's 16 channels are one register, and dw is accumulated transposed, 16 input channels to a register:
// the same operations in the same order, half the instructions.
// Examples are spread over TensorFlow's intra-op threads; dw is summed per example, then over examples in
// example order: the same bits whatever the number of threads.

#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "common.h"

namespace keras_norm {
namespace {


// out (P x M) = a (P x K) b (K x M), any widths.
void RowsTimes(const float* a, const float* b, int64_t rows, int64_t k, int64_t m, float* out) {
  for (int64_t p = 0; p < rows; ++p)
    for (int64_t j = 0; j < m; ++j) {
      float sum = 0.f;
      for (int64_t i = 0; i < k; ++i) sum += a[p * k + i] * b[i * m + j];
      out[p * m + j] = sum;
    }
}

// The same for K and M known at compile time (M = 8 or 16 floats: one vector): b's K rows stay in registers
// and each position's M sums are one vector.
// FOUR: four positions at once, four independent chains of multiply-adds (for M = 8: with M = 16 the baseline
// instruction set runs out of registers).
template <int K, int M, bool FOUR>
KN_INLINE void RowsTimesV(const float* a, const float* b, int64_t rows, float* out) {
  typedef float V __attribute__((vector_size(M * sizeof(float))));
  V rows_of_b[K];
  for (int i = 0; i < K; ++i) std::memcpy(&rows_of_b[i], b + i * M, sizeof(V));
  int64_t p = 0;
  for (; FOUR && p + 4 <= rows; p += 4) {
    V acc0 = {}, acc1 = {}, acc2 = {}, acc3 = {};
    for (int i = 0; i < K; ++i) {
      acc0 += a[p * K + i] * rows_of_b[i];
      acc1 += a[(p + 1) * K + i] * rows_of_b[i];
      acc2 += a[(p + 2) * K + i] * rows_of_b[i];
      acc3 += a[(p + 3) * K + i] * rows_of_b[i];
    }
    std::memcpy(out + p * M, &acc0, sizeof(V));
    std::memcpy(out + (p + 1) * M, &acc1, sizeof(V));
    std::memcpy(out + (p + 2) * M, &acc2, sizeof(V));
    std::memcpy(out + (p + 3) * M, &acc3, sizeof(V));
  }
  for (; p < rows; ++p) {
    V acc = {};
    for (int i = 0; i < K; ++i) acc += a[p * K + i] * rows_of_b[i];
    std::memcpy(out + p * M, &acc, sizeof(V));
  }
}

// part (K x M) = a^T b for a (P x K) and b (P x M), any widths.
void TransposeTimes(const float* a, const float* b, int64_t rows, int64_t k, int64_t m, float* part) {
  std::fill(part, part + k * m, 0.f);
  for (int64_t p = 0; p < rows; ++p)
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < m; ++j) part[i * m + j] += a[p * k + i] * b[p * m + j];
}

template <int K, int M>
void TransposeTimesV(const float* a, const float* b, int64_t rows, float* part) {
  typedef float V __attribute__((vector_size(M * sizeof(float))));
  V acc[K] = {};
  for (int64_t p = 0; p < rows; ++p) {
    V row;
    std::memcpy(&row, b + p * M, sizeof(V));
    for (int i = 0; i < K; ++i) acc[i] += a[p * K + i] * row;
  }
  std::memcpy(part, acc, sizeof acc);
}

#if defined(__x86_64__)
// The transition's input gradient with its 16 channels in one AVX-512 register.
KN_AVX512_FMA void RowsTimes8x16Avx512(const float* a, const float* b, int64_t rows, float* out) {
  RowsTimesV<8, 16, false>(a, b, rows, out);
}

// The transition's dw (16 x 8) as its transpose: acc[j] (the 16 input channels of output channel j) += b[p][j] *
// a's row p, each sum in position order as TransposeTimesV's.
KN_AVX512_FMA void TransposeTimes16x8Avx512(const float* a, const float* b, int64_t rows, float* part) {
  __m512 acc[8];
  for (int j = 0; j < 8; ++j) acc[j] = _mm512_setzero_ps();
  for (int64_t p = 0; p < rows; ++p) {
    const __m512 row = _mm512_loadu_ps(a + p * 16);
    for (int j = 0; j < 8; ++j) acc[j] = _mm512_fmadd_ps(_mm512_set1_ps(b[p * 8 + j]), row, acc[j]);
  }
  float t[8][16];
  for (int j = 0; j < 8; ++j) _mm512_storeu_ps(t[j], acc[j]);
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 8; ++j) part[i * 8 + j] = t[j][i];
}
#endif

void Product(const float* a, const float* b, int64_t rows, int64_t k, int64_t m, float* out) {
  if (k == 16 && m == 8) return RowsTimesV<16, 8, true>(a, b, rows, out);  // the transition, forward
#if defined(__x86_64__)
  if (k == 8 && m == 16 && HasAvx512()) return RowsTimes8x16Avx512(a, b, rows, out);
#endif
  if (k == 8 && m == 16) return RowsTimesV<8, 16, false>(a, b, rows, out);  // and its input gradient
  RowsTimes(a, b, rows, k, m, out);
}

void ProductTransposed(const float* a, const float* b, int64_t rows, int64_t k, int64_t m, float* part) {
#if defined(__x86_64__)
  if (k == 16 && m == 8 && HasAvx512()) return TransposeTimes16x8Avx512(a, b, rows, part);
#endif
  if (k == 16 && m == 8) return TransposeTimesV<16, 8>(a, b, rows, part);
  TransposeTimes(a, b, rows, k, m, part);
}

bool IsKernel(const Tensor& w) { return w.dims() == 4 && w.dim_size(0) == 1 && w.dim_size(1) == 1; }

// y = x w (forward), or dx = dy w^T (input gradient): one matrix product per example.
class Conv1x1Op : public OpKernel {
 public:
  explicit Conv1x1Op(OpKernelConstruction* ctx, bool transposed) : OpKernel(ctx), transposed_(transposed) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& in_t = ctx->input(0);
    const Tensor& w_t = ctx->input(1);
    const int64_t in_channels = transposed_ ? 3 : 2;  // w's dimension that matches the input's channels
    OP_REQUIRES(ctx, in_t.dims() == 4 && IsKernel(w_t) && w_t.dim_size(in_channels) == in_t.dim_size(3),
                ::tensorflow::errors::InvalidArgument("input ", in_t.shape().DebugString(), " does not match the 1x1 kernel ",
                                                      w_t.shape().DebugString()));
    const int64_t n = in_t.dim_size(0), rows = in_t.dim_size(1) * in_t.dim_size(2);
    const int64_t k = in_t.dim_size(3), m = w_t.dim_size(transposed_ ? 2 : 3);
    float* out;
    OP_REQUIRES_OK(ctx, NewOutput(ctx, 0, TensorShape({n, in_t.dim_size(1), in_t.dim_size(2), m}), &out));
    const float* w = Data(w_t);
    std::vector<float> b(w, w + k * m);  // w is Ci x Co; the input gradient multiplies by its transpose
    if (transposed_)
      for (int64_t i = 0; i < m; ++i)
        for (int64_t o = 0; o < k; ++o) b[o * m + i] = w[i * k + o];
    const float* in = Data(in_t);
    ForEachExample(ctx, n, 2 * rows * k * m, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) Product(in + i * rows * k, b.data(), rows, k, m, out + i * rows * m);
    });
  }

 private:
  const bool transposed_;
};

class Conv1x1ForwardOp : public Conv1x1Op {
 public:
  explicit Conv1x1ForwardOp(OpKernelConstruction* ctx) : Conv1x1Op(ctx, false) {}
};

class Conv1x1InputGradOp : public Conv1x1Op {
 public:
  explicit Conv1x1InputGradOp(OpKernelConstruction* ctx) : Conv1x1Op(ctx, true) {}
};

// dw = sum over examples (in example order) of x^T dy.
class Conv1x1FilterGradOp : public OpKernel {
 public:
  explicit Conv1x1FilterGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x_t = ctx->input(0);
    const Tensor& dy_t = ctx->input(1);
    OP_REQUIRES(ctx, x_t.dims() == 4 && dy_t.dims() == 4 && dy_t.dim_size(0) == x_t.dim_size(0) &&
                         dy_t.dim_size(1) == x_t.dim_size(1) && dy_t.dim_size(2) == x_t.dim_size(2),
                ::tensorflow::errors::InvalidArgument("x ", x_t.shape().DebugString(), " and dy ",
                                                      dy_t.shape().DebugString(), " do not match"));
    const int64_t n = x_t.dim_size(0), rows = x_t.dim_size(1) * x_t.dim_size(2);
    const int64_t ci = x_t.dim_size(3), co = dy_t.dim_size(3), size = ci * co;
    float* dw;
    OP_REQUIRES_OK(ctx, NewOutput(ctx, 0, TensorShape({1, 1, ci, co}), &dw));
    Tensor parts_t;
    float* parts;
    OP_REQUIRES_OK(ctx, NewTemp(ctx, TensorShape({n, size}), &parts_t, &parts));
    const float* x = Data(x_t);
    const float* dy = Data(dy_t);
    ForEachExample(ctx, n, 2 * rows * size, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        ProductTransposed(x + i * rows * ci, dy + i * rows * co, rows, ci, co, parts + i * size);
    });
    SumInOrder(parts, n, size, dw);
  }
};

using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

// (N, H, W) of input `input` and the channels of dimension `channel_dim` of input `other`.
::tensorflow::Status SameImage(InferenceContext* c, int input, int other, int channel_dim) {
  ShapeHandle in, ker;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(input), 4, &in));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(other), 4, &ker));
  c->set_output(0, c->MakeShape({c->Dim(in, 0), c->Dim(in, 1), c->Dim(in, 2), c->Dim(ker, channel_dim)}));
  return ::tensorflow::OkStatus();
}

}  // namespace
}  // namespace keras_norm

REGISTER_OP("KerasNormConv1x1")
    .Input("x: float")
    .Input("w: float")
    .Output("y: float")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) { return keras_norm::SameImage(c, 0, 1, 3); })
    .Doc("1x1 convolution, NHWC (keras_norm/engine/kernels/conv1x1.cc).");

REGISTER_OP("KerasNormConv1x1InputGrad")
    .Input("dy: float")
    .Input("w: float")
    .Output("dx: float")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) { return keras_norm::SameImage(c, 0, 1, 2); })
    .Doc("Gradient of KerasNormConv1x1 with respect to x.");

REGISTER_OP("KerasNormConv1x1FilterGrad")
    .Input("x: float")
    .Input("dy: float")
    .Output("dw: float")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      ::tensorflow::shape_inference::ShapeHandle x, dy;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &x));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 4, &dy));
      c->set_output(0, c->MakeShape({1, 1, c->Dim(x, 3), c->Dim(dy, 3)}));
      return ::tensorflow::OkStatus();
    })
    .Doc("Gradient of KerasNormConv1x1 with respect to w.");

REGISTER_KERNEL_BUILDER(Name("KerasNormConv1x1").Device(::tensorflow::DEVICE_CPU), keras_norm::Conv1x1ForwardOp);
REGISTER_KERNEL_BUILDER(Name("KerasNormConv1x1InputGrad").Device(::tensorflow::DEVICE_CPU),
                        keras_norm::Conv1x1InputGradOp);
REGISTER_KERNEL_BUILDER(Name("KerasNormConv1x1FilterGrad").Device(::tensorflow::DEVICE_CPU),
                        keras_norm::Conv1x1FilterGradOp);
