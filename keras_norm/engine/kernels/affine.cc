// Affine (projective) transform of channels-last float32 images with bilinear interpolation and a constant
// fill: what keras.layers.RandomRotation(fill_mode="constant") asks of TensorFlow's
// ImageProjectiveTransformV3, which computes every output value on its own through Eigen's generic
// generator; here each pixel's point is computed once for all its channels. keras_norm/native.py compiles
// this file on first use.
//
// For output pixel (x, y) of image n with transform t = (a0, a1, a2, b0, b1, b2, c0, c1), the input point is
//   k = c0 * x + c1 * y + 1,  u = (a0 * x + a1 * y + a2) / k,  v = (b0 * x + b1 * y + b2) / k
// and the output is fill when k = 0, otherwise the bilinear mix of the point's four neighbours, a neighbour
// outside the image reading as fill (so the image's edge blends into the fill):
//   out = (v1 - v) * ((u1 - u) * in[v0, u0] + (u - u0) * in[v0, u1])
//       + (v - v0) * ((u1 - u) * in[v1, u0] + (u - u0) * in[v1, u1]),   u0 = floor(u), u1 = u0 + 1, ...
// The same float operations in the same order as TensorFlow's op, so the same values; multiply-adds are not
// fused (TensorFlow's CPU build does not fuse them either). Single-channel images (MNIST) take 16 output
// pixels of a row at once with AVX-512 when the CPU has it (chosen at run time, like conv3x3.cc, and
// KERAS_NORM_CONV_ISA=baseline forces the scalar code), the same operations lane by lane.

#pragma GCC optimize("fp-contract=off")

#include <cmath>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "common.h"

namespace keras_norm {
namespace {

struct Image {
  const float* data;
  int64_t h, w, c;
  float fill;
  // The input value at (row, col, channel), or fill outside the image (an index of -1).
  float At(int64_t row, int64_t col, int64_t ch) const {
    return (row >= 0 && col >= 0) ? data[(row * w + col) * c + ch] : fill;
  }
};

// The index of a whole-number coordinate f in [0, size), else -1 (also for NaN and values too large for an int).
int64_t IndexOr(float f, int64_t size) { return (f >= 0 && f < size) ? static_cast<int64_t>(f) : -1; }

// One output image: out (h, w, c) from `in` under transform t[0..7].
void TransformImage(const Image& in, const float* t, float* out) {
  for (int64_t oy = 0; oy < in.h; ++oy) {
    for (int64_t ox = 0; ox < in.w; ++ox) {
      float* o = out + (oy * in.w + ox) * in.c;
      const float x = static_cast<float>(ox), y = static_cast<float>(oy);
      const float k = t[6] * x + t[7] * y + 1.f;
      if (k == 0) {  // the point is at infinity
        for (int64_t ch = 0; ch < in.c; ++ch) o[ch] = in.fill;
        continue;
      }
      const float u = (t[0] * x + t[1] * y + t[2]) / k, v = (t[3] * x + t[4] * y + t[5]) / k;
      const float u0 = std::floor(u), v0 = std::floor(v), u1 = u0 + 1, v1 = v0 + 1;
      const int64_t c0 = IndexOr(u0, in.w), c1 = IndexOr(u1, in.w), r0 = IndexOr(v0, in.h), r1 = IndexOr(v1, in.h);
      for (int64_t ch = 0; ch < in.c; ++ch) {
        const float top = (u1 - u) * in.At(r0, c0, ch) + (u - u0) * in.At(r0, c1, ch);
        const float bottom = (u1 - u) * in.At(r1, c0, ch) + (u - u0) * in.At(r1, c1, ch);
        o[ch] = (v1 - v) * top + (v - v0) * bottom;
      }
    }
  }
}

#if defined(__x86_64__)
#define KN_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw")))

// TransformImage for one channel, 16 pixels of a row per step (lanes past the row's end are not stored).
KN_AVX512 void TransformImage1(const Image& in, const float* t, float* out) {
  const __m512 fill = _mm512_set1_ps(in.fill), one = _mm512_set1_ps(1.f), zero = _mm512_setzero_ps();
  const __m512 width = _mm512_set1_ps(static_cast<float>(in.w)), height = _mm512_set1_ps(static_cast<float>(in.h));
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i w_int = _mm512_set1_epi32(static_cast<int>(in.w));
  const auto mul = [](__m512 a, __m512 b) { return _mm512_mul_ps(a, b); };
  const auto add = [](__m512 a, __m512 b) { return _mm512_add_ps(a, b); };
  const auto sub = [](__m512 a, __m512 b) { return _mm512_sub_ps(a, b); };
  // Whole-number coordinates f with 0 <= f < size (false for NaN), and the neighbour read with fill.
  const auto inside = [&](__m512 f, __m512 size) {
    return _mm512_cmp_ps_mask(f, zero, _CMP_GE_OQ) & _mm512_cmp_ps_mask(f, size, _CMP_LT_OQ);
  };
  const auto read = [&](__mmask16 ok, __m512i row, __m512i col) {
    const __m512i index = _mm512_add_epi32(_mm512_mullo_epi32(row, w_int), col);
    return _mm512_mask_i32gather_ps(fill, ok, index, in.data, 4);
  };
  for (int64_t oy = 0; oy < in.h; ++oy) {
    const __m512 y = _mm512_set1_ps(static_cast<float>(oy));
    for (int64_t ox = 0; ox < in.w; ox += 16) {
      const __m512 x = _mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(ox)), iota));
      const __m512 k = add(add(mul(_mm512_set1_ps(t[6]), x), mul(_mm512_set1_ps(t[7]), y)), one);
      const __m512 u = _mm512_div_ps(add(add(mul(_mm512_set1_ps(t[0]), x), mul(_mm512_set1_ps(t[1]), y)),
                                         _mm512_set1_ps(t[2])), k);
      const __m512 v = _mm512_div_ps(add(add(mul(_mm512_set1_ps(t[3]), x), mul(_mm512_set1_ps(t[4]), y)),
                                         _mm512_set1_ps(t[5])), k);
      const __m512 u0 = _mm512_roundscale_ps(u, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
      const __m512 v0 = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
      const __m512 u1 = add(u0, one), v1 = add(v0, one);
      const __mmask16 in_c0 = inside(u0, width), in_c1 = inside(u1, width);
      const __mmask16 in_r0 = inside(v0, height), in_r1 = inside(v1, height);
      const __m512i c0 = _mm512_maskz_cvttps_epi32(in_c0, u0), c1 = _mm512_maskz_cvttps_epi32(in_c1, u1);
      const __m512i r0 = _mm512_maskz_cvttps_epi32(in_r0, v0), r1 = _mm512_maskz_cvttps_epi32(in_r1, v1);
      const __m512 wu0 = sub(u1, u), wu1 = sub(u, u0);
      const __m512 top = add(mul(wu0, read(in_r0 & in_c0, r0, c0)), mul(wu1, read(in_r0 & in_c1, r0, c1)));
      const __m512 bottom = add(mul(wu0, read(in_r1 & in_c0, r1, c0)), mul(wu1, read(in_r1 & in_c1, r1, c1)));
      __m512 result = add(mul(sub(v1, v), top), mul(sub(v, v0), bottom));
      result = _mm512_mask_mov_ps(result, _mm512_cmp_ps_mask(k, zero, _CMP_EQ_OQ), fill);  // point at infinity
      const int64_t lanes = std::min<int64_t>(16, in.w - ox);
      _mm512_mask_storeu_ps(out + oy * in.w + ox, static_cast<__mmask16>((1u << lanes) - 1), result);
    }
  }
}
#endif

void Transform(const Image& in, const float* t, float* out) {
#if defined(__x86_64__)
  if (in.c == 1 && in.h * in.w < (int64_t{1} << 31) && HasAvx512()) return TransformImage1(in, t, out);
#endif
  TransformImage(in, t, out);
}

class AffineTransformOp : public OpKernel {
 public:
  explicit AffineTransformOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& images = ctx->input(0);
    const Tensor& transforms = ctx->input(1);
    const Tensor& fill = ctx->input(2);
    OP_REQUIRES(ctx, images.dims() == 4,
                ::tensorflow::errors::InvalidArgument("images must be (N, H, W, C), got ", images.shape().DebugString()));
    const int64_t n = images.dim_size(0);
    OP_REQUIRES(ctx, transforms.dims() == 2 && transforms.dim_size(1) == 8 &&
                         (transforms.dim_size(0) == n || transforms.dim_size(0) == 1),
                ::tensorflow::errors::InvalidArgument("transforms must be (N or 1, 8), got ",
                                                      transforms.shape().DebugString()));
    OP_REQUIRES(ctx, fill.NumElements() == 1, ::tensorflow::errors::InvalidArgument("fill_value must be a scalar"));
    float* out;
    OP_REQUIRES_OK(ctx, NewOutput(ctx, 0, images.shape(), &out));
    Image in{Data(images), images.dim_size(1), images.dim_size(2), images.dim_size(3), Data(fill)[0]};
    const int64_t size = in.h * in.w * in.c;
    const float* t = Data(transforms);
    const bool shared = transforms.dim_size(0) == 1;
    ForEachExample(ctx, n, 40 * in.h * in.w, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        Image image = in;
        image.data += i * size;
        Transform(image, t + (shared ? 0 : 8 * i), out + i * size);
      }
    });
  }
};

}  // namespace
}  // namespace keras_norm

REGISTER_OP("KerasNormAffineTransform")
    .Input("images: float")
    .Input("transforms: float")
    .Input("fill_value: float")
    .Output("transformed: float")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(0));
      return ::tensorflow::OkStatus();
    })
    .Doc("ImageProjectiveTransformV3 with BILINEAR interpolation and CONSTANT fill "
         "(keras_norm/engine/kernels/affine.cc).");

REGISTER_KERNEL_BUILDER(Name("KerasNormAffineTransform").Device(::tensorflow::DEVICE_CPU),
                        keras_norm::AffineTransformOp);
