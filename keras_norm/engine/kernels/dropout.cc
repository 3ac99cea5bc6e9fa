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

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "common.h"
#include "tensorflow/core/framework/tensor_util.h"
#include "tensorflow/core/kernels/random_ops_util.h"
#include "tensorflow/core/lib/random/random_distributions.h"

namespace keras_norm {
namespace {

using ::tensorflow::random::PhiloxRandom;
using Uniform = ::tensorflow::random::UniformDistribution<PhiloxRandom, float>;

constexpr int kPhilox = 1, kAutoSelect = 3;  // TensorFlow's Algorithm enum: on the CPU, auto-select is Philox

#if defined(__x86_64__)
// lo and hi 32 bits of a * b for 16 unsigned 32-bit lanes, b the same in every lane (AVX-512 multiplies the
// even lanes, 32 x 32 -> 64 bits; the odd ones are shifted down to them).
KN_AVX512_FMA KN_INLINE void MultiplyHighLow16(__m512i a, __m512i b, __m512i* lo, __m512i* hi) {
  const __m512i even = _mm512_mul_epu32(a, b), odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), b);
  *lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
  *hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
}

// The mask of groups [g, g + 16) (64 values): PhiloxRandom's ten rounds and UniformDistribution's float, as
// TensorFlow's scalar code computes them, for 16 counters at once (lane l: the generator skipped g + l times).
KN_AVX512_FMA void MaskOf16Groups(const PhiloxRandom& base, int64_t g, float rate, float scale, float* out) {
  alignas(64) uint32_t words[4][16];
  for (int l = 0; l < 16; ++l) {
    PhiloxRandom gen = base;
    gen.Skip(g + l);
    for (int i = 0; i < 4; ++i) words[i][l] = gen.counter()[i];
  }
  __m512i c0 = _mm512_load_si512(words[0]), c1 = _mm512_load_si512(words[1]);
  __m512i c2 = _mm512_load_si512(words[2]), c3 = _mm512_load_si512(words[3]);
  uint32_t k0 = base.key()[0], k1 = base.key()[1];
  const __m512i ma = _mm512_set1_epi32(0xD2511F53), mb = _mm512_set1_epi32(0xCD9E8D57);  // kPhiloxM4x32A, B
  for (int round = 0; round < 10; ++round, k0 += 0x9E3779B9, k1 += 0xBB67AE85) {  // kPhiloxW32A, B
    __m512i lo0, hi0, lo1, hi1;
    MultiplyHighLow16(c0, ma, &lo0, &hi0);
    MultiplyHighLow16(c2, mb, &lo1, &hi1);
    c0 = _mm512_xor_si512(_mm512_xor_si512(hi1, c1), _mm512_set1_epi32(k0));
    c1 = lo1;
    c2 = _mm512_xor_si512(_mm512_xor_si512(hi0, c3), _mm512_set1_epi32(k1));
    c3 = lo0;
  }
  // Uint32ToFloat: the 23 low bits as the mantissa of a float in [1, 2), minus 1; then the mask's value.
  __m512 m[4];
  const __m512i word[4] = {c0, c1, c2, c3};
  for (int i = 0; i < 4; ++i) {
    const __m512i bits = _mm512_or_si512(_mm512_and_si512(word[i], _mm512_set1_epi32(0x7fffff)),
                                         _mm512_set1_epi32(0x3f800000));
    const __m512 u = _mm512_sub_ps(_mm512_castsi512_ps(bits), _mm512_set1_ps(1.f));
    m[i] = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(u, _mm512_set1_ps(rate), _CMP_GE_OQ), _mm512_set1_ps(scale));
  }
  // Value i of group l goes to out[4 l + i]: interleave m0 with m1 and m2 with m3, then their pairs.
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const __m512i pairs_lo = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11);
  const __m512i pairs_hi = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
  const __m512d a[2] = {_mm512_castps_pd(_mm512_permutex2var_ps(m[0], lo, m[1])),
                        _mm512_castps_pd(_mm512_permutex2var_ps(m[0], hi, m[1]))};
  const __m512d b[2] = {_mm512_castps_pd(_mm512_permutex2var_ps(m[2], lo, m[3])),
                        _mm512_castps_pd(_mm512_permutex2var_ps(m[2], hi, m[3]))};
  for (int h = 0; h < 2; ++h) {
    _mm512_storeu_pd(reinterpret_cast<double*>(out + 32 * h), _mm512_permutex2var_pd(a[h], pairs_lo, b[h]));
    _mm512_storeu_pd(reinterpret_cast<double*>(out + 32 * h + 16), _mm512_permutex2var_pd(a[h], pairs_hi, b[h]));
  }
}
#endif

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
    float* mask;
    OP_REQUIRES_OK(ctx, NewOutput(ctx, 0, shape, &mask));
    const PhiloxRandom base = ::tensorflow::GetPhiloxRandomFromCounterKeyMem(
        reinterpret_cast<const uint64_t*>(counter_t.flat<::tensorflow::uint64>().data()),
        reinterpret_cast<const uint64_t*>(key_t.flat<::tensorflow::uint64>().data()));
    const int64_t size = shape.num_elements(), groups = (size + Uniform::kResultElementCount - 1) /
                                                      Uniform::kResultElementCount;
    const float rate = rate_, scale = scale_;
    ForEachExample(ctx, groups, 50, [&](int64_t begin, int64_t end) {  // "examples": groups of four values
      int64_t g = begin;
#if defined(__x86_64__)
      if (HasAvx512())
        for (; g + 16 <= end && (g + 16) * 4 <= size; g += 16) MaskOf16Groups(base, g, rate, scale, mask + g * 4);
#endif
      PhiloxRandom gen = base;
      gen.Skip(g);
      Uniform uniform;
      for (; g < end; ++g) {
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
