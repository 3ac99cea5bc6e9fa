// The dropout mask Keras draws, as one TensorFlow CPU op: keras_norm/engine/dropout.py multiplies by it.
//
//   mask[k] = scale if u[k] >= rate else 0,   u = StatelessRandomUniformV2(shape, key, counter) with Philox
//
// u is computed as TensorFlow's own kernel computes it, with TensorFlow's own generator and distribution
// (tensorflow/core/lib/random): Philox seeded by (key, counter), element k the (k mod 4)-th float of the
// generator's output after skipping k / 4 outputs. With TensorFlow's op the dropout then needs a compare, a cast
// and a multiply over u, each a pass; here the groups of four are spread over the intra-op threads and written as
// the mask directly. Same values (tests/test_engine.py compares FastDropout with Keras's Dropout
// bit for bit).

#include "common.h"
#include "tensorflow/core/framework/tensor_util.h"
#include "tensorflow/core/kernels/random_ops_util.h"
#include "tensorflow/core/lib/random/random_distributions.h"

namespace keras_norm {
namespace {

using ::tensorflow::random::PhiloxRandom;
using Uniform = ::tensorflow::random::UniformDistribution<PhiloxRandom, float>;

constexpr int kPhilox = 1, kAutoSelect = 3;  // TensorFlow's Algorithm enum: on the CPU, auto-select is Philox

class DropoutMaskOp : public OpKernel {
 public:
  explicit DropoutMaskOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("rate", &rate_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("scale", &scale_));
  }

  void Compute(OpKernelContext* ctx) override {
    TensorShape shape;
    OP_REQUIRES_OK(ctx, ::tensorflow::tensor::MakeShape(ctx->input(0), &shape));
    const Tensor& key_t = ctx->input(1);
    const Tensor& counter_t = ctx->input(2);
    const int alg = ctx->input(3).scalar<int32_t>()();
    OP_REQUIRES(ctx, alg == kPhilox || alg == kAutoSelect,
                ::tensorflow::errors::InvalidArgument("only the Philox generator is supported, got algorithm ", alg));
    OP_REQUIRES(ctx, key_t.NumElements() == 1 && counter_t.NumElements() >= 2,
                ::tensorflow::errors::InvalidArgument("key must have 1 element and counter at least 2"));
    Tensor* mask_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, shape, &mask_t));
    const PhiloxRandom base = ::tensorflow::GetPhiloxRandomFromCounterKeyMem(
        reinterpret_cast<const uint64_t*>(counter_t.flat<::tensorflow::uint64>().data()),
        reinterpret_cast<const uint64_t*>(key_t.flat<::tensorflow::uint64>().data()));
    float* mask = mask_t->flat<float>().data();
    const int64_t size = shape.num_elements(), groups = (size + Uniform::kResultElementCount - 1) /
                                                      Uniform::kResultElementCount;
    const float rate = rate_, scale = scale_;
    ForEachExample(ctx, groups, 50, [&](int64_t begin, int64_t end) {  // "examples": groups of four values
      PhiloxRandom gen = base;
      gen.Skip(begin);
      Uniform uniform;
      for (int64_t g = begin; g < end; ++g) {
        const auto u = uniform(&gen);
        for (int i = 0; i < Uniform::kResultElementCount; ++i) {
          const int64_t k = g * Uniform::kResultElementCount + i;
          if (k < size) mask[k] = u[i] >= rate ? scale : 0.f;
        }
      }
    });
  }

 private:
  float rate_, scale_;
};

}  // namespace

REGISTER_OP("KerasNormDropoutMask")
    .Input("shape: int32")
    .Input("key: uint64")
    .Input("counter: uint64")
    .Input("alg: int32")
    .Attr("rate: float")
    .Attr("scale: float")
    .Output("mask: float")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      ::tensorflow::shape_inference::ShapeHandle out;
      TF_RETURN_IF_ERROR(c->MakeShapeFromShapeTensor(0, &out));
      c->set_output(0, out);
      return ::tensorflow::OkStatus();
    })
    .Doc("Keras's dropout mask: scale where stateless_random_uniform(shape, key, counter) >= rate, else 0.");

REGISTER_KERNEL_BUILDER(Name("KerasNormDropoutMask").Device(::tensorflow::DEVICE_CPU).HostMemory("shape"),
                        DropoutMaskOp);

}  // namespace keras_norm
