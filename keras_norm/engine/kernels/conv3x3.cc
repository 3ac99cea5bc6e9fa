// A direct 3x3 convolution (stride 1, VALID padding, channels-last float32) and its two gradients as
// TensorFlow CPU ops, for the narrow layers of the project's CNN (8 and 16 channels: one vector register).
// keras_norm/engine/native.py compiles this file with normalize.cc and wraps the ops in a custom gradient.
//
// x: (N, H, W, Ci), w: (3, 3, Ci, Co) (Keras's kernel layout), y: (N, H-2, W-2, Co):
//   y[n, i, j, o]     = sum_{a, b, c} x[n, i+a, j+b, c] * w[a, b, c, o]
//   dx[n, i, j, c]    = sum_{a, b, o} dy[n, i-a, j-b, o] * w[a, b, c, o]   (dy is zero outside its range)
//   dw[a, b, c, o]    = sum_{n, i, j} x[n, i+a, j+b, c] * dy[n, i, j, o]
// dx is the forward convolution of dy, zero-padded by 2, with the kernel flipped in (a, b) and its
// channel axes swapped, so one routine computes both (skipping the kernel rows that would read only the
// padding's zero rows). Output channels (8 or 16) sit in one vector; a block of up to 14 output positions
// (a row split into nearly equal blocks) is computed at once so that each weight vector loaded serves
// that many fused multiply-adds whose other operand is an input value broadcast from memory. Other channel
// counts take scalar loops. The vector code is compiled twice, for AVX-512 and for the baseline set,
// and chosen at run time (compiling TensorFlow's headers with -march=native breaks).
//
// Examples are spread over TensorFlow's intra-op threads. dw is summed per example, then over examples
// in example order: the same bits whatever the number of threads.

#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "common.h"

namespace keras_norm {
namespace {

// One example's shape: an input of h x w positions and ci channels, co output channels. The input's first
// and last `pad` rows are zeros (the padding of dy for dx): the kernel rows that would read only them are
// skipped.
struct Shape {
  int64_t h, w, ci, co, pad = 0;
  int64_t oh() const { return h - 2; }
  int64_t ow() const { return w - 2; }
  int64_t first_row(int64_t i) const { return std::max<int64_t>(0, pad - i); }   // kernel rows [first, last)
  int64_t last_row(int64_t i) const { return std::min<int64_t>(3, h - pad - i); }  // of output row i
};

// The most output positions (or pairs of them) computed at once: accumulators held in registers.
constexpr int64_t kMostBlockAvx512 = 14, kMostBlockBaseline = 8;

// The start of the k-th of `count` nearly equal blocks that [0, n) splits into.
KN_INLINE int64_t BlockStart(int64_t n, int64_t count, int64_t k) { return n * k / count; }

// Expands to call(b) for the block size b = n (1 <= n <= 14), a compile-time constant.
#define KN_WITH_BLOCK(n, call)                                                                          \
  switch (n) {                                                                                          \
    case 1: call(1); break; case 2: call(2); break; case 3: call(3); break; case 4: call(4); break;     \
    case 5: call(5); break; case 6: call(6); break; case 7: call(7); break; case 8: call(8); break;     \
    case 9: call(9); break; case 10: call(10); break; case 11: call(11); break;                         \
    case 12: call(12); break; case 13: call(13); break; case 14: call(14); break;                       \
  }

template <int CO>
struct Vec {
  typedef float type __attribute__((vector_size(CO * 4)));
};

template <int CO>
KN_INLINE typename Vec<CO>::type LoadV(const float* p) {
  typename Vec<CO>::type v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <int CO>
KN_INLINE void StoreV(float* p, typename Vec<CO>::type v) { std::memcpy(p, &v, sizeof v); }

// Output positions [j, j + B) of row i: B accumulators, each weight vector used B times. CI: the input
// channels as a compile-time constant (the channel loop unrolls), or 0 for s.ci.
template <int CO, int B, int CI>
KN_INLINE void ForwardBlock(const float* __restrict x, const float* __restrict w, const Shape& s, int64_t i,
                            int64_t j, float* __restrict y) {
  const int64_t ci = CI > 0 ? CI : s.ci;
  typedef typename Vec<CO>::type V;
  V acc[B];
  for (int b = 0; b < B; ++b) acc[b] = V{};
  for (int64_t a = s.first_row(i); a < s.last_row(i); ++a)
    for (int k = 0; k < 3; ++k) {
      const float* xp = x + ((i + a) * s.w + j + k) * ci;
      const float* wp = w + (a * 3 + k) * ci * CO;
      for (int64_t c = 0; c < ci; ++c) {
        const V wv = LoadV<CO>(wp + c * CO);
        for (int b = 0; b < B; ++b) acc[b] += xp[b * ci + c] * wv;
      }
    }
  for (int b = 0; b < B; ++b) StoreV<CO>(y + (i * s.ow() + j + b) * CO, acc[b]);
}

// Each row in nearly equal blocks of at most MOST positions.
template <int CO, int MOST, int CI>
KN_INLINE void ForwardExampleCi(const float* x, const float* w, const Shape& s, float* y) {
  const int64_t count = (s.ow() + MOST - 1) / MOST;
  for (int64_t i = 0; i < s.oh(); ++i)
    for (int64_t k = 0; k < count; ++k) {
      const int64_t j = BlockStart(s.ow(), count, k);
#define KN_CALL(b) ForwardBlock<CO, b, CI>(x, w, s, i, j, y)
      KN_WITH_BLOCK(BlockStart(s.ow(), count, k + 1) - j, KN_CALL)
#undef KN_CALL
    }
}

template <int CO, int MOST>
KN_INLINE void ForwardExample(const float* x, const float* w, const Shape& s, float* y) {
  if (s.ci == 8) ForwardExampleCi<CO, MOST, 8>(x, w, s, y);
  else if (s.ci == 16) ForwardExampleCi<CO, MOST, 16>(x, w, s, y);
  else ForwardExampleCi<CO, MOST, 0>(x, w, s, y);
}

// dw of one example for input channels [c0, c0 + CB) and kernel row a: 3 x CB accumulators (kernel
// column x channel) held over all output positions; each dy vector serves 3 * CB multiply-adds.
template <int CO, int CB>
KN_INLINE void FilterGradRows(const float* __restrict x, const float* __restrict dy, const Shape& s, int64_t c0,
                              int a, float* __restrict dw) {
  typedef typename Vec<CO>::type V;
  V acc[3][CB];
  for (int k = 0; k < 3; ++k)
    for (int c = 0; c < CB; ++c) acc[k][c] = V{};
  for (int64_t i = 0; i < s.oh(); ++i)
    for (int64_t j = 0; j < s.ow(); ++j) {
      const V g = LoadV<CO>(dy + (i * s.ow() + j) * CO);
      const float* xp = x + ((i + a) * s.w + j) * s.ci + c0;
      for (int k = 0; k < 3; ++k)
        for (int c = 0; c < CB; ++c) acc[k][c] += xp[k * s.ci + c] * g;
    }
  for (int k = 0; k < 3; ++k)
    for (int c = 0; c < CB; ++c) StoreV<CO>(dw + ((a * 3 + k) * s.ci + c0 + c) * CO, acc[k][c]);
}

template <int CO>
KN_INLINE void FilterGradExample(const float* x, const float* dy, const Shape& s, float* dw) {
  for (int a = 0; a < 3; ++a) {
    int64_t c = 0;
    for (; c + 8 <= s.ci; c += 8) FilterGradRows<CO, 8>(x, dy, s, c, a, dw);
    if (c + 4 <= s.ci) { FilterGradRows<CO, 4>(x, dy, s, c, a, dw); c += 4; }
    if (c + 2 <= s.ci) { FilterGradRows<CO, 2>(x, dy, s, c, a, dw); c += 2; }
    if (c < s.ci) FilterGradRows<CO, 1>(x, dy, s, c, a, dw);
  }
}

// The scalar loops, for any channel count.
void ForwardScalar(const float* x, const float* w, const Shape& s, float* y) {
  std::fill(y, y + s.oh() * s.ow() * s.co, 0.f);
  for (int64_t i = 0; i < s.oh(); ++i)
    for (int64_t j = 0; j < s.ow(); ++j)
      for (int a = 0; a < 3; ++a)
        for (int k = 0; k < 3; ++k)
          for (int64_t c = 0; c < s.ci; ++c) {
            const float xv = x[((i + a) * s.w + j + k) * s.ci + c];
            const float* wp = w + ((a * 3 + k) * s.ci + c) * s.co;
            float* yp = y + (i * s.ow() + j) * s.co;
            for (int64_t o = 0; o < s.co; ++o) yp[o] += xv * wp[o];
          }
}

void FilterGradScalar(const float* x, const float* dy, const Shape& s, float* dw) {
  std::fill(dw, dw + 9 * s.ci * s.co, 0.f);
  for (int64_t i = 0; i < s.oh(); ++i)
    for (int64_t j = 0; j < s.ow(); ++j)
      for (int a = 0; a < 3; ++a)
        for (int k = 0; k < 3; ++k)
          for (int64_t c = 0; c < s.ci; ++c) {
            const float xv = x[((i + a) * s.w + j + k) * s.ci + c];
            const float* g = dy + (i * s.ow() + j) * s.co;
            float* d = dw + ((a * 3 + k) * s.ci + c) * s.co;
            for (int64_t o = 0; o < s.co; ++o) d[o] += xv * g[o];
          }
}


// Entry points: the same inlined code compiled for AVX-512 and for the baseline instruction set.
#define KN_ENTRY(name, target_attr)                                                                  \
  target_attr void Forward##name(const float* x, const float* w, const Shape& s, float* y) {          \
    if (s.co == 16) ForwardExample<16, kMostBlock##name>(x, w, s, y);                               \
    else ForwardExample<8, kMostBlock##name>(x, w, s, y);                                           \
  }                                                                                                 \
  target_attr void FilterGrad##name(const float* x, const float* dy, const Shape& s, float* dw) {    \
    if (s.co == 16) FilterGradExample<16>(x, dy, s, dw);                                            \
    else FilterGradExample<8>(x, dy, s, dw);                                                        \
  }

#if defined(__x86_64__)
KN_ENTRY(Avx512, KN_AVX512_FMA)
#endif
KN_ENTRY(Baseline, )
#undef KN_ENTRY

#if defined(__x86_64__)
// Eight output channels fill half a register. With AVX-512, two neighbouring output positions share one,
// interleaved channel by channel ([p0 c0, p1 c0, p0 c1, p1 c1, ...]): the input pair
// (x[i][j][c], x[i][j+1][c]) is one 64-bit broadcast, and each weight appears twice in its vector.
// `pairs` holds every such pair of the input, row by row (BuildPairs). Output positions [j, j + 2 B) of
// row i go to out[0 : 16 B]. CI as in ForwardBlock.
template <int B, int CI>
KN_AVX512_FMA KN_INLINE void PairBlock(const float* __restrict pairs, const float* __restrict wdup, const Shape& s,
                                   int64_t i, int64_t j, float* __restrict out) {
  const int64_t ci = CI > 0 ? CI : s.ci;
  __m512 acc[B];
  for (int b = 0; b < B; ++b) acc[b] = _mm512_setzero_ps();
  for (int64_t a = s.first_row(i); a < s.last_row(i); ++a)
    for (int k = 0; k < 3; ++k) {
      const float* pp = pairs + ((i + a) * s.w + j + k) * ci * 2;
      const float* wp = wdup + (a * 3 + k) * ci * 16;
      for (int64_t c = 0; c < ci; ++c) {
        const __m512 wv = _mm512_loadu_ps(wp + c * 16);
        for (int b = 0; b < B; ++b) {
          double pair;
          std::memcpy(&pair, pp + (2 * b * ci + c) * 2, sizeof pair);
          acc[b] = _mm512_fmadd_ps(_mm512_castpd_ps(_mm512_set1_pd(pair)), wv, acc[b]);
        }
      }
    }
  const __m512i order = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  for (int b = 0; b < B; ++b) _mm512_storeu_ps(out + 16 * b, _mm512_permutexvar_ps(order, acc[b]));
}

// pairs[r][j][c] = (x[r - pad][j - pad][c], x[r - pad][j + 1 - pad][c]), zero outside x: the pairs of x
// (h x w x ci) padded by `pad`, (h + 2 pad) x (w + 2 pad) of them per channel (the last of a row ends in 0).
KN_AVX512_FMA void BuildPairs(const float* __restrict x, int64_t h, int64_t w, int64_t ci, int64_t pad,
                          float* __restrict pairs) {
  const int64_t ph = h + 2 * pad, pw = w + 2 * pad;
  auto at = [&](int64_t r, int64_t j, int64_t c) {
    return (r < 0 || r >= h || j < 0 || j >= w) ? 0.f : x[(r * w + j) * ci + c];
  };
  if (ci == 1 && pad == 0) {  // the first layer's image: 16 columns at a time, (x[j], x[j + 1]) interleaved
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    auto mask = [](int64_t n) { return static_cast<__mmask16>(n >= 16 ? 0xFFFF : n <= 0 ? 0 : (1u << n) - 1); };
    for (int64_t r = 0; r < h; ++r)
      for (int64_t j = 0; j < w; j += 16) {
        const int64_t n = std::min<int64_t>(16, w - j);  // columns [j, j + n): their pairs
        const __m512 a = _mm512_maskz_loadu_ps(mask(n), x + r * w + j);
        const __m512 b = _mm512_maskz_loadu_ps(mask(w - j - 1), x + r * w + j + 1);  // zero past the row
        float* p = pairs + (r * w + j) * 2;
        _mm512_mask_storeu_ps(p, mask(2 * n), _mm512_permutex2var_ps(a, lo, b));
        _mm512_mask_storeu_ps(p + 16, mask(2 * n - 16), _mm512_permutex2var_ps(a, hi, b));
      }
    return;
  }
  if (ci % 16 != 0) {
    for (int64_t r = 0; r < ph; ++r)
      for (int64_t j = 0; j < pw; ++j)
        for (int64_t c = 0; c < ci; ++c) {
          float* p = pairs + ((r * pw + j) * ci + c) * 2;
          p[0] = at(r - pad, j - pad, c);
          p[1] = at(r - pad, j + 1 - pad, c);
        }
    return;
  }
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t r = 0; r < ph; ++r)
    for (int64_t j = 0; j < pw; ++j)
      for (int64_t c = 0; c < ci; c += 16) {  // (a, b): x at columns j - pad and j + 1 - pad, or zeros
        const int64_t xr = r - pad, xj = j - pad;
        const bool row = xr >= 0 && xr < h;
        const float* xp = x + (xr * w + xj) * ci + c;
        const __m512 a = row && xj >= 0 && xj < w ? _mm512_loadu_ps(xp) : zero;
        const __m512 b = row && xj + 1 >= 0 && xj + 1 < w ? _mm512_loadu_ps(xp + ci) : zero;
        float* p = pairs + ((r * pw + j) * ci + c) * 2;
        _mm512_storeu_ps(p, _mm512_permutex2var_ps(a, lo, b));
        _mm512_storeu_ps(p + 16, _mm512_permutex2var_ps(a, hi, b));
      }
}

template <int CI>
KN_AVX512_FMA KN_INLINE void PairsForward8Ci(const float* pairs, const float* w, const Shape& s, float* y) {
  static thread_local std::vector<float> wdup;
  wdup.resize(9 * s.ci * 16);
  for (int64_t t = 0; t < 9 * s.ci; ++t)
    for (int o = 0; o < 16; ++o) wdup[t * 16 + o] = w[t * 8 + o / 2];
  const int64_t pairs_in_row = s.ow() / 2, count = (pairs_in_row + kMostBlockAvx512 - 1) / kMostBlockAvx512;
  for (int64_t i = 0; i < s.oh(); ++i) {
    float* row = y + i * s.ow() * 8;
    for (int64_t k = 0; k < count; ++k) {  // nearly equal blocks of at most kMostBlockAvx512 pairs
      const int64_t j = 2 * BlockStart(pairs_in_row, count, k);
#define KN_CALL(b) PairBlock<b, CI>(pairs, wdup.data(), s, i, j, row + j * 8)
      KN_WITH_BLOCK(BlockStart(pairs_in_row, count, k + 1) - j / 2, KN_CALL)
#undef KN_CALL
    }
    if (s.ow() % 2) {
      const int64_t j = s.ow() - 1;  // an odd last position: its pair's second half is outside the output
      float two[16];
      PairBlock<1, CI>(pairs, wdup.data(), s, i, j, two);
      std::memcpy(row + j * 8, two, 8 * sizeof(float));
    }
  }
}

// y (8 channels) of one example from the pairs of its input (s: the padded input's shape).
KN_AVX512_FMA void PairsForward8(const float* pairs, const float* w, const Shape& s, float* y) {
  if (s.ci == 1) PairsForward8Ci<1>(pairs, w, s, y);
  else if (s.ci == 8) PairsForward8Ci<8>(pairs, w, s, y);
  else if (s.ci == 16) PairsForward8Ci<16>(pairs, w, s, y);
  else PairsForward8Ci<0>(pairs, w, s, y);
}

// dw of one example with one input channel and eight output channels (the first layer), from the pairs of
// its input: all nine taps in one pass, two output positions per vector. dy's channels at positions j and
// j + 1 are interleaved ([dy(j, 0), dy(j + 1, 0), dy(j, 1), ...]) so that one 64-bit broadcast of the pair
// (x[i + a][j + k], x[i + a][j + 1 + k]) multiplies each by its own input; even and odd lanes are added at
// the end.
KN_AVX512_FMA void FilterGradPairs1x8(const float* __restrict pairs, const float* __restrict dy, const Shape& s,
                                  float* __restrict dw) {
  const __m512i interleave = _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
  __m512 acc[9];
  for (int t = 0; t < 9; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t i = 0; i < s.oh(); ++i)
    for (int64_t j = 0; j < s.ow(); j += 2) {
      const float* g = dy + (i * s.ow() + j) * 8;  // an odd last position pairs with zeros
      const __m512 both = j + 1 < s.ow() ? _mm512_loadu_ps(g) : _mm512_zextps256_ps512(_mm256_loadu_ps(g));
      const __m512 gv = _mm512_permutexvar_ps(interleave, both);
      for (int a = 0; a < 3; ++a)
        for (int k = 0; k < 3; ++k) {
          double pair;
          std::memcpy(&pair, pairs + ((i + a) * s.w + j + k) * 2, sizeof pair);
          acc[a * 3 + k] = _mm512_fmadd_ps(_mm512_castpd_ps(_mm512_set1_pd(pair)), gv, acc[a * 3 + k]);
        }
    }
  const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 2, 4, 6, 8, 10, 12, 14);
  for (int t = 0; t < 9; ++t) {  // lane 2c + lane 2c + 1 -> dw[t][c]
    const __m512 sum = _mm512_add_ps(acc[t], _mm512_permute_ps(acc[t], 0xB1));
    _mm256_storeu_ps(dw + t * 8, _mm512_castps512_ps256(_mm512_permutexvar_ps(evens, sum)));
  }
}

// dw of the first layer (one input channel, eight output channels).
void FilterGradPairs(const float* x, const float* dy, const Shape& s, float* dw) {
  static thread_local std::vector<float> pairs;
  pairs.resize(s.h * s.w * 2);
  BuildPairs(x, s.h, s.w, 1, 0, pairs.data());
  FilterGradPairs1x8(pairs.data(), dy, s, dw);
}

// y (8 channels) of one example whose input is x (h x w x s.ci) zero-padded by `pad` (s: the padded shape).
void ForwardPairs8(const float* x, int64_t h, int64_t w, int64_t pad, const float* kernel, const Shape& s,
                   float* y) {
  static thread_local std::vector<float> pairs;
  pairs.resize(s.h * s.w * s.ci * 2);
  BuildPairs(x, h, w, s.ci, pad, pairs.data());
  PairsForward8(pairs.data(), kernel, s, y);
}
#endif

void Forward(const float* x, const float* w, const Shape& s, float* y) {
  if (s.co != 8 && s.co != 16) return ForwardScalar(x, w, s, y);
#if defined(__x86_64__)
  if (HasAvx512() && s.co == 8) return ForwardPairs8(x, s.h, s.w, 0, w, s, y);
  if (HasAvx512()) return ForwardAvx512(x, w, s, y);
#endif
  ForwardBaseline(x, w, s, y);
}

// dx of one example: the forward convolution of its dy (oh x ow x co, zero-padded by 2: s) with `flipped`.
void InputGrad(const float* dy, const float* flipped, const Shape& s, float* dx) {
  const int64_t oh = s.h - 4, ow = s.w - 4;
#if defined(__x86_64__)
  if (HasAvx512() && s.co == 8) return ForwardPairs8(dy, oh, ow, 2, flipped, s, dx);  // pads while pairing
#endif
  static thread_local std::vector<float> padded;
  padded.assign(s.h * s.w * s.ci, 0.f);
  for (int64_t r = 0; r < oh; ++r)
    std::memcpy(&padded[((r + 2) * s.w + 2) * s.ci], dy + r * ow * s.ci, ow * s.ci * sizeof(float));
  Forward(padded.data(), flipped, s, dx);
}

void FilterGrad(const float* x, const float* dy, const Shape& s, float* dw) {
  if (s.co != 8 && s.co != 16) return FilterGradScalar(x, dy, s, dw);
#if defined(__x86_64__)
  if (HasAvx512() && s.ci == 1 && s.co == 8) return FilterGradPairs(x, dy, s, dw);
  if (HasAvx512()) return FilterGradAvx512(x, dy, s, dw);
#endif
  FilterGradBaseline(x, dy, s, dw);
}

::tensorflow::Status CheckKernel(const Tensor& w, int64_t ci) {
  if (w.dims() != 4 || w.dim_size(0) != 3 || w.dim_size(1) != 3 || w.dim_size(2) != ci)
    return ::tensorflow::errors::InvalidArgument("the kernel must be (3, 3, input channels, output channels), got ",
                                                 w.shape().DebugString());
  return ::tensorflow::OkStatus();
}

// y = conv(x, w).
class Conv3x3Op : public OpKernel {
 public:
  explicit Conv3x3Op(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x_t = ctx->input(0);
    const Tensor& w_t = ctx->input(1);
    OP_REQUIRES(ctx, x_t.dims() == 4 && x_t.dim_size(1) >= 3 && x_t.dim_size(2) >= 3,
                ::tensorflow::errors::InvalidArgument("x must be (N, H >= 3, W >= 3, C), got ", x_t.shape().DebugString()));
    OP_REQUIRES_OK(ctx, CheckKernel(w_t, x_t.dim_size(3)));
    const Shape s{x_t.dim_size(1), x_t.dim_size(2), x_t.dim_size(3), w_t.dim_size(3)};
    const int64_t n = x_t.dim_size(0);
    float* y;
    OP_REQUIRES_OK(ctx, NewOutput(ctx, 0, TensorShape({n, s.oh(), s.ow(), s.co}), &y));
    const float* x = Data(x_t);
    const float* w = Data(w_t);
    ForEachExample(ctx, n, s.oh() * s.ow() * s.co * s.ci * 9, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) Forward(x + i * s.h * s.w * s.ci, w, s, y + i * s.oh() * s.ow() * s.co);
    });
  }
};

// dx = conv(pad(dy, 2), flip(w) with its channel axes swapped).
class Conv3x3InputGradOp : public OpKernel {
 public:
  explicit Conv3x3InputGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy_t = ctx->input(0);
    const Tensor& w_t = ctx->input(1);
    OP_REQUIRES(ctx, dy_t.dims() == 4 && w_t.dims() == 4 && w_t.dim_size(0) == 3 && w_t.dim_size(1) == 3 &&
                         w_t.dim_size(3) == dy_t.dim_size(3),
                ::tensorflow::errors::InvalidArgument("dy ", dy_t.shape().DebugString(), " does not match the kernel ",
                                                      w_t.shape().DebugString()));
    const int64_t n = dy_t.dim_size(0), oh = dy_t.dim_size(1), ow = dy_t.dim_size(2);
    const int64_t ci = w_t.dim_size(2), co = w_t.dim_size(3);
    float* dx;
    OP_REQUIRES_OK(ctx, NewOutput(ctx, 0, TensorShape({n, oh + 2, ow + 2, ci}), &dx));
    const float* w = Data(w_t);
    std::vector<float> flipped(9 * ci * co);  // flipped[2-a][2-b][o][c] = w[a][b][c][o]
    for (int a = 0; a < 3; ++a)
      for (int b = 0; b < 3; ++b)
        for (int64_t c = 0; c < ci; ++c)
          for (int64_t o = 0; o < co; ++o)
            flipped[(((2 - a) * 3 + 2 - b) * co + o) * ci + c] = w[((a * 3 + b) * ci + c) * co + o];
    const Shape s{oh + 4, ow + 4, co, ci, 2};  // the padded dy as input, dx as output
    const float* dy = Data(dy_t);
    ForEachExample(ctx, n, (oh + 2) * (ow + 2) * ci * co * 9, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) InputGrad(dy + i * oh * ow * co, flipped.data(), s, dx + i * s.oh() * s.ow() * ci);
    });
  }
};

// dw = sum over examples (in example order) of each example's dw.
class Conv3x3FilterGradOp : public OpKernel {
 public:
  explicit Conv3x3FilterGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x_t = ctx->input(0);
    const Tensor& dy_t = ctx->input(1);
    OP_REQUIRES(ctx, x_t.dims() == 4 && dy_t.dims() == 4 && dy_t.dim_size(0) == x_t.dim_size(0) &&
                         dy_t.dim_size(1) == x_t.dim_size(1) - 2 && dy_t.dim_size(2) == x_t.dim_size(2) - 2,
                ::tensorflow::errors::InvalidArgument("x ", x_t.shape().DebugString(), " and dy ",
                                                      dy_t.shape().DebugString(), " do not match"));
    const Shape s{x_t.dim_size(1), x_t.dim_size(2), x_t.dim_size(3), dy_t.dim_size(3)};
    const int64_t n = x_t.dim_size(0), size = 9 * s.ci * s.co;
    float* dw;
    OP_REQUIRES_OK(ctx, NewOutput(ctx, 0, TensorShape({3, 3, s.ci, s.co}), &dw));
    Tensor parts_t;
    float* parts;
    OP_REQUIRES_OK(ctx, NewTemp(ctx, TensorShape({n, size}), &parts_t, &parts));
    const float* x = Data(x_t);
    const float* dy = Data(dy_t);
    ForEachExample(ctx, n, s.oh() * s.ow() * size, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        FilterGrad(x + i * s.h * s.w * s.ci, dy + i * s.oh() * s.ow() * s.co, s, parts + i * size);
    });
    SumInOrder(parts, n, size, dw);
  }
};

using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

// (N, H, W, C) with H and W shifted by `delta` (unknown stays unknown) and C from dimension `c` of `other`.
::tensorflow::Status Shifted(InferenceContext* c, int input, int64_t delta, int other, int channel_dim) {
  ShapeHandle in, out;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(input), 4, &in));
  DimensionHandle h, w;
  if (delta < 0) {
    TF_RETURN_IF_ERROR(c->Subtract(c->Dim(in, 1), -delta, &h));
    TF_RETURN_IF_ERROR(c->Subtract(c->Dim(in, 2), -delta, &w));
  } else {
    TF_RETURN_IF_ERROR(c->Add(c->Dim(in, 1), delta, &h));
    TF_RETURN_IF_ERROR(c->Add(c->Dim(in, 2), delta, &w));
  }
  ShapeHandle ker;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(other), 4, &ker));
  c->set_output(0, c->MakeShape({c->Dim(in, 0), h, w, c->Dim(ker, channel_dim)}));
  return ::tensorflow::OkStatus();
}

}  // namespace

REGISTER_OP("KerasNormConv3x3")
    .Input("x: float")
    .Input("w: float")
    .Output("y: float")
    .SetShapeFn([](InferenceContext* c) { return Shifted(c, 0, -2, 1, 3); })
    .Doc("3x3 convolution, stride 1, VALID padding, NHWC (keras_norm/engine/kernels/conv3x3.cc).");

REGISTER_OP("KerasNormConv3x3InputGrad")
    .Input("dy: float")
    .Input("w: float")
    .Output("dx: float")
    .SetShapeFn([](InferenceContext* c) { return Shifted(c, 0, 2, 1, 2); })
    .Doc("Gradient of KerasNormConv3x3 with respect to x.");

REGISTER_OP("KerasNormConv3x3FilterGrad")
    .Input("x: float")
    .Input("dy: float")
    .Output("dw: float")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle x, dy;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &x));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 4, &dy));
      c->set_output(0, c->MakeShape({3, 3, c->Dim(x, 3), c->Dim(dy, 3)}));
      return ::tensorflow::OkStatus();
    })
    .Doc("Gradient of KerasNormConv3x3 with respect to w.");

REGISTER_KERNEL_BUILDER(Name("KerasNormConv3x3").Device(::tensorflow::DEVICE_CPU), Conv3x3Op);
REGISTER_KERNEL_BUILDER(Name("KerasNormConv3x3InputGrad").Device(::tensorflow::DEVICE_CPU), Conv3x3InputGradOp);
REGISTER_KERNEL_BUILDER(Name("KerasNormConv3x3FilterGrad").Device(::tensorflow::DEVICE_CPU), Conv3x3FilterGradOp);

}  // namespace keras_norm
