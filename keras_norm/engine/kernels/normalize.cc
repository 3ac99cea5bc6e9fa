// Batch and group normalization of channels-last float32 tensors (N, H, W, C), optionally followed by a
// ReLU, as two TensorFlow CPU ops: the forward pass and the backward pass. Each reads the activations
// twice (statistics, then outputs). keras_norm/native.py compiles this file on first use and wraps the
// two ops in a custom gradient.
//
// Statistics: with batch = true (BN) per channel c over (N, H, W); otherwise (GN; LN is groups = 1, IN
// is groups = C) per example n and group g of C/G channels over (H, W, C/G). M values each:
//   mean = sum(x) / M,  var = max(0, sum(x^2) / M - mean^2),  rstd = 1 / sqrt(var + eps)
//   z = x * a + b  with  a = rstd * gamma_c,  b = beta_c - mean * a;   y = z, or max(z, 0) with relu
// Backward, with g = dy (times 1[z > 0] with relu) and t1 = sum(g), t2 = sum(g * x) per example and
// channel over (H, W):
//   dbeta_c = sum t1,  dgamma_c = sum rstd * (t2 - mean * t1)
//   dx = a * g + p * x + q,  where, over the M values of a statistic,
//   p = -rstd^2 * m2,  q = rstd * (mean * rstd * m2 - m1),  m1 = sum(gamma_c * t1) / M,
//   m2 = sum(gamma_c * rstd * (t2 - mean * t1)) / M
// which is the textbook rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = gamma * g.
// Examples are spread over TensorFlow's intra-op threads; per-example sums are added in example order,
// so results do not depend on the number of threads.

#include <cmath>
#include <limits>
#include <vector>

#include "common.h"

namespace keras_norm {
namespace {

// Eight floats, one AVX register (GCC/Clang vector extension; SSE or scalar code on other targets).
typedef float v8 __attribute__((vector_size(32)));
inline v8 Load(const float* p) { v8 v; std::memcpy(&v, p, sizeof v); return v; }
inline void Store(float* p, v8 v) { std::memcpy(p, &v, sizeof v); }

// Loops over one example's H*W positions. V > 0: C = 8 * V channels held in vector registers;
// V == 0: any C, scalar code. RELU: g = dy where x * a + b > 0, else 0.

// s_c = sum(g), q_c = sum(g * x); forward passes dy = x and RELU = false (sum and sum of squares).
template <int V, bool RELU>
void Sums(const float* __restrict dy, const float* __restrict x, const float* __restrict a,
          const float* __restrict b, int64_t hw, int64_t c, float* __restrict s, float* __restrict q) {
  if (V > 0) {
    v8 ls[V > 0 ? V : 1], lq[V > 0 ? V : 1], va[V > 0 ? V : 1], vb[V > 0 ? V : 1];
    const v8 zero = {};
    for (int v = 0; v < V; ++v) {
      ls[v] = lq[v] = zero;
      if (RELU) { va[v] = Load(a + 8 * v); vb[v] = Load(b + 8 * v); }
    }
    for (int64_t p = 0; p < hw; ++p)
      for (int v = 0; v < V; ++v) {
        const int64_t i = (p * V + v) * 8;
        const v8 xv = Load(x + i);
        v8 g = Load(dy + i);
        if (RELU) g = xv * va[v] + vb[v] > zero ? g : zero;
        ls[v] += g;
        lq[v] += g * xv;
      }
    for (int v = 0; v < V; ++v) { Store(s + 8 * v, ls[v]); Store(q + 8 * v, lq[v]); }
  } else {
    std::fill(s, s + c, 0.f);
    std::fill(q, q + c, 0.f);
    for (int64_t p = 0; p < hw; ++p)
      for (int64_t k = 0; k < c; ++k) {
        const float xv = x[p * c + k];
        const float g = (!RELU || xv * a[k] + b[k] > 0.f) ? dy[p * c + k] : 0.f;
        s[k] += g;
        q[k] += g * xv;
      }
  }
}

// y = x * a + b (then max(., 0) with RELU).
template <int V, bool RELU>
void Affine(const float* __restrict x, const float* __restrict a, const float* __restrict b, int64_t hw, int64_t c,
            float* __restrict y) {
  if (V > 0) {
    v8 va[V > 0 ? V : 1], vb[V > 0 ? V : 1];
    const v8 zero = {};
    for (int v = 0; v < V; ++v) { va[v] = Load(a + 8 * v); vb[v] = Load(b + 8 * v); }
    for (int64_t p = 0; p < hw; ++p)
      for (int v = 0; v < V; ++v) {
        const int64_t i = (p * V + v) * 8;
        v8 z = Load(x + i) * va[v] + vb[v];
        if (RELU) z = z > zero ? z : zero;
        Store(y + i, z);
      }
  } else {
    for (int64_t p = 0; p < hw; ++p)
      for (int64_t k = 0; k < c; ++k) {
        const float z = x[p * c + k] * a[k] + b[k];
        y[p * c + k] = RELU ? std::max(z, 0.f) : z;
      }
  }
}

// dx = g * a + x * pc + qc, with g as in Sums.
template <int V, bool RELU>
void InputGrad(const float* __restrict dy, const float* __restrict x, const float* __restrict a,
               const float* __restrict b, const float* __restrict pc, const float* __restrict qc, int64_t hw,
               int64_t c, float* __restrict dx) {
  if (V > 0) {
    v8 va[V > 0 ? V : 1], vb[V > 0 ? V : 1], vp[V > 0 ? V : 1], vq[V > 0 ? V : 1];
    const v8 zero = {};
    for (int v = 0; v < V; ++v) {
      va[v] = Load(a + 8 * v); vb[v] = Load(b + 8 * v); vp[v] = Load(pc + 8 * v); vq[v] = Load(qc + 8 * v);
    }
    for (int64_t p = 0; p < hw; ++p)
      for (int v = 0; v < V; ++v) {
        const int64_t i = (p * V + v) * 8;
        const v8 xv = Load(x + i);
        v8 g = Load(dy + i);
        if (RELU) g = xv * va[v] + vb[v] > zero ? g : zero;
        Store(dx + i, g * va[v] + xv * vp[v] + vq[v]);
      }
  } else {
    for (int64_t p = 0; p < hw; ++p)
      for (int64_t k = 0; k < c; ++k) {
        const float xv = x[p * c + k];
        const float g = (!RELU || xv * a[k] + b[k] > 0.f) ? dy[p * c + k] : 0.f;
        dx[p * c + k] = g * a[k] + xv * pc[k] + qc[k];
      }
  }
}

// fn<V, RELU>(args...) for the channel counts 8, 16, 32 and 64, the scalar loops for the others.
#define KERAS_NORM_DISPATCH(fn, c, relu, ...)                                     \
  do {                                                                           \
    if (relu) {                                                                  \
      switch (c) {                                                               \
        case 8: fn<1, true>(__VA_ARGS__); break;                                 \
        case 16: fn<2, true>(__VA_ARGS__); break;                                \
        case 32: fn<4, true>(__VA_ARGS__); break;                                \
        case 64: fn<8, true>(__VA_ARGS__); break;                                \
        default: fn<0, true>(__VA_ARGS__);                                       \
      }                                                                          \
    } else {                                                                     \
      switch (c) {                                                               \
        case 8: fn<1, false>(__VA_ARGS__); break;                                \
        case 16: fn<2, false>(__VA_ARGS__); break;                               \
        case 32: fn<4, false>(__VA_ARGS__); break;                               \
        case 64: fn<8, false>(__VA_ARGS__); break;                               \
        default: fn<0, false>(__VA_ARGS__);                                      \
      }                                                                          \
    }                                                                            \
  } while (0)

// The shape of a normalization: n examples of hw positions and c channels; one statistic per example
// and group (batch = false) or per channel (batch = true), over m values.
struct Layout {
  int64_t n, hw, c, groups;
  bool batch;
  int64_t stats_rows() const { return batch ? 1 : n; }     // rows of mean / variance
  int64_t stats_cols() const { return batch ? c : groups; }
  int64_t channels_per_stat() const { return batch ? 1 : c / groups; }
  double m() const { return static_cast<double>(batch ? n * hw : hw * (c / groups)); }
  int64_t stat(int64_t k) const { return batch ? k : k / (c / groups); }  // column of channel k
  int64_t row(int64_t i) const { return batch ? 0 : i; }                 // row of example i
};

::tensorflow::Status MakeLayout(const Tensor& x, const Tensor& gamma, const Tensor& beta, int groups, bool batch,
                                Layout* layout) {
  if (x.dims() != 4) return ::tensorflow::errors::InvalidArgument("x must be 4-D (N, H, W, C)");
  const int64_t c = x.dim_size(3);
  if (gamma.dims() != 1 || gamma.dim_size(0) != c || beta.shape() != gamma.shape())
    return ::tensorflow::errors::InvalidArgument("gamma and beta must have one value per channel");
  if (!batch && c % groups != 0) return ::tensorflow::errors::InvalidArgument("groups must divide the channels");
  *layout = Layout{x.dim_size(0), x.dim_size(1) * x.dim_size(2), c, groups, batch};
  return ::tensorflow::Status();
}

// Runs fn(begin, end) over ranges of examples on TensorFlow's intra-op thread pool; small tensors run
// on the calling thread, where waking other threads would cost more than it saves.
void ForEachExample(OpKernelContext* ctx, const Layout& l, int64_t cost_per_value,
                    const std::function<void(int64_t, int64_t)>& fn) {
  constexpr int64_t kMinParallel = int64_t{1} << 17;  // values; measured on the project's 2-core machine
  if (l.n * l.hw * l.c < kMinParallel) {
    fn(0, l.n);
    return;
  }
  ForEachExample(ctx, l.n, l.hw * l.c * cost_per_value, fn);
}

// The statistics that examples [i0, i1) contribute to (one example's groups, or with batch statistics all
// examples' channels): index range [first, first + count) of mean / variance.
void StatRange(const Layout& l, int64_t i0, int64_t i1, int64_t* first, int64_t* count) {
  *first = l.row(i0) * l.stats_cols();
  *count = (l.row(i1 - 1) + 1) * l.stats_cols() - *first;
}

// Mean and variance from the per-example channel sums (sums[i][0:c] of x, sums[i][c:2c] of x^2) of
// examples [i0, i1), added in example order.
void Statistics(const Layout& l, const float* sums, int64_t i0, int64_t i1, float* mean, float* variance) {
  int64_t first, count;
  StatRange(l, i0, i1, &first, &count);
  std::vector<double> s(count, 0.0), q(count, 0.0);
  for (int64_t i = i0; i < i1; ++i)
    for (int64_t k = 0; k < l.c; ++k) {
      const int64_t j = l.row(i) * l.stats_cols() + l.stat(k) - first;
      s[j] += sums[i * 2 * l.c + k];
      q[j] += sums[i * 2 * l.c + l.c + k];
    }
  for (int64_t j = 0; j < count; ++j) {
    const double mu = s[j] / l.m();
    mean[first + j] = static_cast<float>(mu);
    variance[first + j] = static_cast<float>(std::max(0.0, q[j] / l.m() - mu * mu));
  }
}

// a and b (see the top of the file) for stats rows [r0, r1): coef[r][0:c] = a, coef[r][c:2c] = b.
void AffineCoefficients(const Layout& l, const float* mean, const float* variance, const float* gamma,
                        const float* beta, float epsilon, int64_t r0, int64_t r1, float* coef) {
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t k = 0; k < l.c; ++k) {
      const int64_t j = r * l.stats_cols() + l.stat(k);
      const double rstd = 1.0 / std::sqrt(static_cast<double>(variance[j]) + epsilon);
      coef[r * 2 * l.c + k] = static_cast<float>(rstd * gamma[k]);
      coef[r * 2 * l.c + l.c + k] = static_cast<float>(beta[k] - mean[j] * rstd * gamma[k]);
    }
}

// p and q (see the top of the file) for the statistics of examples [i0, i1), from their sums
// (sums[i][0:c] = t1, sums[i][c:2c] = t2). Replaces t2 by sum_hw(g * xhat), dgamma's share of example i.
void GradCoefficients(const Layout& l, const float* mean, const float* variance, const float* gamma, float epsilon,
                      int64_t i0, int64_t i1, float* sums, float* pq) {
  int64_t first, count;
  StatRange(l, i0, i1, &first, &count);
  std::vector<double> m1(count, 0.0), m2(count, 0.0);
  for (int64_t i = i0; i < i1; ++i)
    for (int64_t k = 0; k < l.c; ++k) {
      const int64_t j = l.row(i) * l.stats_cols() + l.stat(k);
      const double rstd = 1.0 / std::sqrt(static_cast<double>(variance[j]) + epsilon);
      const double t1 = sums[i * 2 * l.c + k], t2 = sums[i * 2 * l.c + l.c + k];
      const double g_xhat = rstd * (t2 - mean[j] * t1);
      sums[i * 2 * l.c + l.c + k] = static_cast<float>(g_xhat);
      m1[j - first] += gamma[k] * t1;
      m2[j - first] += gamma[k] * g_xhat;
    }
  for (int64_t r = l.row(i0); r <= l.row(i1 - 1); ++r)
    for (int64_t k = 0; k < l.c; ++k) {
      const int64_t j = r * l.stats_cols() + l.stat(k);
      const double rstd = 1.0 / std::sqrt(static_cast<double>(variance[j]) + epsilon);
      const double mm1 = m1[j - first] / l.m(), mm2 = m2[j - first] / l.m();
      pq[r * 2 * l.c + k] = static_cast<float>(-rstd * rstd * mm2);
      pq[r * 2 * l.c + l.c + k] = static_cast<float>(rstd * (mean[j] * rstd * mm2 - mm1));
    }
}

// The attributes both ops share (see REGISTER_OP below).
class NormalizeOpBase : public OpKernel {
 public:
  explicit NormalizeOpBase(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("groups", &groups_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("batch", &batch_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon", &epsilon_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("relu", &relu_));
  }

 protected:
  int groups_;
  bool batch_, relu_;
  float epsilon_;
};

class NormalizeOp : public NormalizeOpBase {
 public:
  explicit NormalizeOp(OpKernelConstruction* ctx) : NormalizeOpBase(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x_t = ctx->input(0);
    const Tensor& gamma_t = ctx->input(1);
    const Tensor& beta_t = ctx->input(2);
    Layout l;
    OP_REQUIRES_OK(ctx, MakeLayout(x_t, gamma_t, beta_t, groups_, batch_, &l));
    const TensorShape stats_shape = batch_ ? TensorShape({l.c}) : TensorShape({l.n, l.groups});
    float *y, *mean, *variance;
    OP_REQUIRES_OK(ctx, NewOutput(ctx, 0, x_t.shape(), &y));
    OP_REQUIRES_OK(ctx, NewOutput(ctx, 1, stats_shape, &mean));
    OP_REQUIRES_OK(ctx, NewOutput(ctx, 2, stats_shape, &variance));
    if (l.n == 0 || l.hw == 0) {  // e.g. a replica's empty share of a batch: no values, undefined statistics
      std::fill(mean, mean + stats_shape.num_elements(), std::numeric_limits<float>::quiet_NaN());
      std::fill(variance, variance + stats_shape.num_elements(), std::numeric_limits<float>::quiet_NaN());
      return;
    }
    Tensor sums_t, coef_t;
    float *sums, *coef;
    OP_REQUIRES_OK(ctx, NewTemp(ctx, TensorShape({l.n, 2 * l.c}), &sums_t, &sums));
    OP_REQUIRES_OK(ctx, NewTemp(ctx, TensorShape({l.stats_rows(), 2 * l.c}), &coef_t, &coef));
    const float* x = Data(x_t);
    const float* gamma = Data(gamma_t);
    const float* beta = Data(beta_t);
    const int64_t size = l.hw * l.c;
    auto sum = [&](int64_t i) {
      KERAS_NORM_DISPATCH(Sums, l.c, false, x + i * size, x + i * size, nullptr, nullptr, l.hw, l.c,
                          sums + i * 2 * l.c, sums + i * 2 * l.c + l.c);
    };
    auto apply = [&](int64_t i) {
      const float* ab = coef + l.row(i) * 2 * l.c;
      KERAS_NORM_DISPATCH(Affine, l.c, relu_, x + i * size, ab, ab + l.c, l.hw, l.c, y + i * size);
    };
    if (batch_) {  // statistics need every example: sum all, then normalize all
      ForEachExample(ctx, l, 2, [&](int64_t begin, int64_t end) { for (int64_t i = begin; i < end; ++i) sum(i); });
      Statistics(l, sums, 0, l.n, mean, variance);
      AffineCoefficients(l, mean, variance, gamma, beta, epsilon_, 0, 1, coef);
      ForEachExample(ctx, l, 2, [&](int64_t begin, int64_t end) { for (int64_t i = begin; i < end; ++i) apply(i); });
    } else {  // one example at a time, while its values are still in cache
      ForEachExample(ctx, l, 4, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          sum(i);
          Statistics(l, sums, i, i + 1, mean, variance);
          AffineCoefficients(l, mean, variance, gamma, beta, epsilon_, i, i + 1, coef);
          apply(i);
        }
      });
    }
  }
};

class NormalizeGradOp : public NormalizeOpBase {
 public:
  explicit NormalizeGradOp(OpKernelConstruction* ctx) : NormalizeOpBase(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy_t = ctx->input(0);
    const Tensor& x_t = ctx->input(1);
    const Tensor& gamma_t = ctx->input(2);
    const Tensor& beta_t = ctx->input(3);
    const Tensor& mean_t = ctx->input(4);
    const Tensor& var_t = ctx->input(5);
    Layout l;
    OP_REQUIRES_OK(ctx, MakeLayout(x_t, gamma_t, beta_t, groups_, batch_, &l));
    OP_REQUIRES(ctx, dy_t.shape() == x_t.shape(), ::tensorflow::errors::InvalidArgument("dy and x differ in shape"));
    OP_REQUIRES(ctx, mean_t.NumElements() == l.stats_rows() * l.stats_cols() && var_t.shape() == mean_t.shape(),
                ::tensorflow::errors::InvalidArgument("mean and variance do not match the normalization"));
    float *dx, *dgamma_out, *dbeta_out;
    OP_REQUIRES_OK(ctx, NewOutput(ctx, 0, x_t.shape(), &dx));
    OP_REQUIRES_OK(ctx, NewOutput(ctx, 1, gamma_t.shape(), &dgamma_out));
    OP_REQUIRES_OK(ctx, NewOutput(ctx, 2, gamma_t.shape(), &dbeta_out));
    if (l.n == 0 || l.hw == 0) {  // no values: nothing flows back
      std::fill(dgamma_out, dgamma_out + l.c, 0.f);
      std::fill(dbeta_out, dbeta_out + l.c, 0.f);
      return;
    }
    Tensor sums_t, coef_t, pq_t;
    float *sums, *coef, *pq;
    OP_REQUIRES_OK(ctx, NewTemp(ctx, TensorShape({l.n, 2 * l.c}), &sums_t, &sums));
    OP_REQUIRES_OK(ctx, NewTemp(ctx, TensorShape({l.stats_rows(), 2 * l.c}), &coef_t, &coef));
    OP_REQUIRES_OK(ctx, NewTemp(ctx, TensorShape({l.stats_rows(), 2 * l.c}), &pq_t, &pq));
    const float* dy = Data(dy_t);
    const float* x = Data(x_t);
    const float* gamma = Data(gamma_t);
    const float* beta = Data(beta_t);
    const float* mean = Data(mean_t);
    const float* variance = Data(var_t);
    const int64_t size = l.hw * l.c;
    auto sum = [&](int64_t i) {
      const float* ab = coef + l.row(i) * 2 * l.c;
      KERAS_NORM_DISPATCH(Sums, l.c, relu_, dy + i * size, x + i * size, ab, ab + l.c, l.hw, l.c,
                          sums + i * 2 * l.c, sums + i * 2 * l.c + l.c);
    };
    auto input_grad = [&](int64_t i) {
      const float* ab = coef + l.row(i) * 2 * l.c;
      const float* p = pq + l.row(i) * 2 * l.c;
      KERAS_NORM_DISPATCH(InputGrad, l.c, relu_, dy + i * size, x + i * size, ab, ab + l.c, p, p + l.c, l.hw, l.c,
                          dx + i * size);
    };
    if (batch_) {
      AffineCoefficients(l, mean, variance, gamma, beta, epsilon_, 0, 1, coef);
      ForEachExample(ctx, l, 3, [&](int64_t begin, int64_t end) { for (int64_t i = begin; i < end; ++i) sum(i); });
      GradCoefficients(l, mean, variance, gamma, epsilon_, 0, l.n, sums, pq);
      ForEachExample(ctx, l, 3, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) input_grad(i);
      });
    } else {
      ForEachExample(ctx, l, 6, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          AffineCoefficients(l, mean, variance, gamma, beta, epsilon_, i, i + 1, coef);
          sum(i);
          GradCoefficients(l, mean, variance, gamma, epsilon_, i, i + 1, sums, pq);
          input_grad(i);
        }
      });
    }
    // dgamma and dbeta: the examples' shares, added in example order.
    std::vector<double> dgamma(l.c, 0.0), dbeta(l.c, 0.0);
    for (int64_t i = 0; i < l.n; ++i)
      for (int64_t k = 0; k < l.c; ++k) {
        dbeta[k] += sums[i * 2 * l.c + k];
        dgamma[k] += sums[i * 2 * l.c + l.c + k];
      }
    for (int64_t k = 0; k < l.c; ++k) {
      dgamma_out[k] = static_cast<float>(dgamma[k]);
      dbeta_out[k] = static_cast<float>(dbeta[k]);
    }
  }
};

::tensorflow::Status StatsShape(::tensorflow::shape_inference::InferenceContext* c, int input,
                                ::tensorflow::shape_inference::ShapeHandle* out) {
  int groups;
  bool batch;
  TF_RETURN_IF_ERROR(c->GetAttr("groups", &groups));
  TF_RETURN_IF_ERROR(c->GetAttr("batch", &batch));
  *out = batch ? c->MakeShape({c->Dim(c->input(input), 3)}) : c->MakeShape({c->Dim(c->input(input), 0), groups});
  return ::tensorflow::Status();
}

}  // namespace

REGISTER_OP("KerasNormNormalize")
    .Input("x: float")
    .Input("gamma: float")
    .Input("beta: float")
    .Attr("groups: int >= 1 = 1")
    .Attr("batch: bool = false")
    .Attr("epsilon: float")
    .Attr("relu: bool = false")
    .Output("y: float")
    .Output("mean: float")
    .Output("variance: float")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      ::tensorflow::shape_inference::ShapeHandle stats;
      TF_RETURN_IF_ERROR(StatsShape(c, 0, &stats));
      c->set_output(0, c->input(0));
      c->set_output(1, stats);
      c->set_output(2, stats);
      return ::tensorflow::Status();
    });

REGISTER_OP("KerasNormNormalizeGrad")
    .Input("dy: float")
    .Input("x: float")
    .Input("gamma: float")
    .Input("beta: float")
    .Input("mean: float")
    .Input("variance: float")
    .Attr("groups: int >= 1 = 1")
    .Attr("batch: bool = false")
    .Attr("epsilon: float")
    .Attr("relu: bool = false")
    .Output("dx: float")
    .Output("dgamma: float")
    .Output("dbeta: float")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(1));
      c->set_output(1, c->input(2));
      c->set_output(2, c->input(2));
      return ::tensorflow::Status();
    });

REGISTER_KERNEL_BUILDER(Name("KerasNormNormalize").Device(::tensorflow::DEVICE_CPU), NormalizeOp);
REGISTER_KERNEL_BUILDER(Name("KerasNormNormalizeGrad").Device(::tensorflow::DEVICE_CPU), NormalizeGradOp);

}  // namespace keras_norm
