// 2x2 max pooling with stride 2 and VALID padding of channels-last float32 tensors (N, H, W, C), and its
// gradient, as two TensorFlow CPU ops: Keras's MaxPooling2D(2) in training. keras_norm/engine/native.py
// compiles this file with the other kernels.
//
//   y[n, i, j, c] = x[n, 2i + a*, 2j + b*, c],   (a*, b*) = the first maximum of the window in the order
//                   (0, 0), (0, 1), (1, 0), (1, 1) (a later value replaces it only if strictly greater)
//   dx[n, 2i + a, 2j + b, c] = dy[n, i, j, c] if (a, b) = (a*, b*), else 0 (and 0 in an odd last row or column)
// which is what TensorFlow's MaxPool and MaxPoolGrad compute, ties included (tests/test_pooling.py). Each op is
// one pass over x (the gradient finds the maxima again instead of storing where they were), eight channels at a
// time. Examples are spread over TensorFlow's intra-op threads.

#include "common.h"

namespace keras_norm {
namespace {


// One example's shape: h x w positions of c channels in, (h / 2) x (w / 2) out.
struct PoolShape {
  int64_t h, w, c;
  int64_t oh() const { return h / 2; }
  int64_t ow() const { return w / 2; }
};

// The window of output (i, j): pointers to its four inputs, in TensorFlow's order.
struct Window {
  const float *p00, *p01, *p10, *p11;
  Window(const float* x, const PoolShape& s, int64_t i, int64_t j)
      : p00(x + (2 * i * s.w + 2 * j) * s.c), p01(p00 + s.c), p10(p00 + s.w * s.c), p11(p10 + s.c) {}
};

// Eight channels at a time (GCC/Clang vector extension), without branches: where ties and signs fall is data,
// and branching on it mispredicts. Then a scalar loop for the channels left (the same selects).
typedef float v8 __attribute__((vector_size(32)));
typedef int i8 __attribute__((vector_size(32)));

template <typename V>
KN_INLINE V Load(const float* p) { V v; std::memcpy(&v, p, sizeof v); return v; }
template <typename V>
KN_INLINE void Store(float* p, V v) { std::memcpy(p, &v, sizeof v); }

// Over channels [k, k + width of V): the window's maximum, and which of its four values it is.
template <typename V, typename M>
KN_INLINE V Maximum(const Window& win, int64_t k, M* c1, M* c2, M* c3) {
  V m = Load<V>(win.p00 + k);
  const V v1 = Load<V>(win.p01 + k), v2 = Load<V>(win.p10 + k), v3 = Load<V>(win.p11 + k);
  *c1 = v1 > m;  // a later value wins only if strictly greater
  m = *c1 ? v1 : m;
  *c2 = v2 > m;
  m = *c2 ? v2 : m;
  *c3 = v3 > m;
  return *c3 ? v3 : m;
}

void PoolExample(const float* __restrict x, const PoolShape& s, float* __restrict y) {
  for (int64_t i = 0; i < s.oh(); ++i)
    for (int64_t j = 0; j < s.ow(); ++j) {
      const Window win(x, s, i, j);
      float* out = y + (i * s.ow() + j) * s.c;
      int64_t k = 0;
      i8 c1, c2, c3;
      for (; k + 8 <= s.c; k += 8) Store(out + k, Maximum<v8>(win, k, &c1, &c2, &c3));
      bool b1, b2, b3;
      for (; k < s.c; ++k) out[k] = Maximum<float>(win, k, &b1, &b2, &b3);
    }
}

// dx of one window over channels [k, k + width of V): dy where its maximum was, zeros elsewhere.
template <typename V, typename M>
KN_INLINE void Route(const Window& win, const float* g, int64_t k, float* d00, float* d01, float* d10, float* d11) {
  M c1, c2, c3;
  Maximum<V>(win, k, &c1, &c2, &c3);
  const V dy = Load<V>(g + k), zero = V{} * 0;
  const M at2 = c2 && !c3, at1 = c1 && !c2 && !c3;
  Store(d11 + k, c3 ? dy : zero);
  Store(d10 + k, at2 ? dy : zero);
  Store(d01 + k, at1 ? dy : zero);
  Store(d00 + k, (c1 || c2 || c3) ? zero : dy);
}

void PoolGradExample(const float* __restrict x, const float* __restrict dy, const PoolShape& s,
                     float* __restrict dx) {
  if (s.h % 2 || s.w % 2) std::fill(dx, dx + s.h * s.w * s.c, 0.f);  // the rows and columns no window reads
  for (int64_t i = 0; i < s.oh(); ++i)
    for (int64_t j = 0; j < s.ow(); ++j) {
      const Window win(x, s, i, j);
      const float* g = dy + (i * s.ow() + j) * s.c;
      float* d00 = dx + (2 * i * s.w + 2 * j) * s.c;
      float *d01 = d00 + s.c, *d10 = d00 + s.w * s.c, *d11 = d10 + s.c;
      int64_t k = 0;
      for (; k + 8 <= s.c; k += 8) Route<v8, i8>(win, g, k, d00, d01, d10, d11);
      for (; k < s.c; ++k) Route<float, bool>(win, g, k, d00, d01, d10, d11);
    }
}

::tensorflow::Status CheckInput(const Tensor& x) {
  if (x.dims() != 4)
    return ::tensorflow::errors::InvalidArgument("x must be 4-D (N, H, W, C), got ", x.shape().DebugString());
  return ::tensorflow::OkStatus();
}

// y = maxpool(x).
class MaxPool2x2Op : public OpKernel {
 public:
  explicit MaxPool2x2Op(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x_t = ctx->input(0);
    OP_REQUIRES_OK(ctx, CheckInput(x_t));
    const PoolShape s{x_t.dim_size(1), x_t.dim_size(2), x_t.dim_size(3)};
    const int64_t n = x_t.dim_size(0);
    float* y;
    OP_REQUIRES_OK(ctx, NewOutput(ctx, 0, TensorShape({n, s.oh(), s.ow(), s.c}), &y));
    const float* x = Data(x_t);
    ForEachExample(ctx, n, s.h * s.w * s.c, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) PoolExample(x + i * s.h * s.w * s.c, s, y + i * s.oh() * s.ow() * s.c);
    });
  }
};

// dx = the gradient of y = maxpool(x) for dL/dy = dy.
class MaxPool2x2GradOp : public OpKernel {
 public:
  explicit MaxPool2x2GradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x_t = ctx->input(0);
    const Tensor& dy_t = ctx->input(1);
    OP_REQUIRES_OK(ctx, CheckInput(x_t));
    const PoolShape s{x_t.dim_size(1), x_t.dim_size(2), x_t.dim_size(3)};
    const int64_t n = x_t.dim_size(0);
    OP_REQUIRES(ctx, dy_t.shape() == TensorShape({n, s.oh(), s.ow(), s.c}),
                ::tensorflow::errors::InvalidArgument("dy ", dy_t.shape().DebugString(), " does not match x ",
                                                      x_t.shape().DebugString()));
    float* dx;
    OP_REQUIRES_OK(ctx, NewOutput(ctx, 0, x_t.shape(), &dx));
    const float* x = Data(x_t);
    const float* dy = Data(dy_t);
    ForEachExample(ctx, n, 2 * s.h * s.w * s.c, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        PoolGradExample(x + i * s.h * s.w * s.c, dy + i * s.oh() * s.ow() * s.c, s, dx + i * s.h * s.w * s.c);
    });
  }
};

}  // namespace

REGISTER_OP("KerasNormMaxPool2x2")
    .Input("x: float")
    .Output("y: float")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      ::tensorflow::shape_inference::ShapeHandle x;
      ::tensorflow::shape_inference::DimensionHandle h, w;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &x));
      TF_RETURN_IF_ERROR(c->Divide(c->Dim(x, 1), 2, /*evenly_divisible=*/false, &h));
      TF_RETURN_IF_ERROR(c->Divide(c->Dim(x, 2), 2, /*evenly_divisible=*/false, &w));
      c->set_output(0, c->MakeShape({c->Dim(x, 0), h, w, c->Dim(x, 3)}));
      return ::tensorflow::OkStatus();
    })
    .Doc("2x2 max pooling, stride 2, VALID, NHWC (keras_norm/engine/kernels/maxpool.cc).");

REGISTER_OP("KerasNormMaxPool2x2Grad")
    .Input("x: float")
    .Input("dy: float")
    .Output("dx: float")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(0));
      return ::tensorflow::OkStatus();
    })
    .Doc("Gradient of KerasNormMaxPool2x2 with respect to x.");

REGISTER_KERNEL_BUILDER(Name("KerasNormMaxPool2x2").Device(::tensorflow::DEVICE_CPU), MaxPool2x2Op);
REGISTER_KERNEL_BUILDER(Name("KerasNormMaxPool2x2Grad").Device(::tensorflow::DEVICE_CPU), MaxPool2x2GradOp);

}  // namespace keras_norm
