// A host build of the shared __host__ __device__ arithmetic, for testing without a GPU.
//
// Compiled with the host compiler (g++ -x c++) and the -D definitions of
// mxarray._cuda_sources; called from Python through ctypes by tests/test_cuda_host.py.
// Each entry point runs the same header functions as the kernels, one block at a time
// where a kernel uses one warp, and can run with the x86 MXCSR flush-to-zero and
// denormals-are-zero bits set (ftz != 0) to show that flushing changes no bit.
#include <xmmintrin.h>

#include "../mx_dot.cuh"

namespace {

// Sets MXCSR FTZ (bit 15) and DAZ (bit 6) for its lifetime when asked to.
class FlushToZero {
  public:
    explicit FlushToZero(int on) : saved_(_mm_getcsr()) {
        if (on) _mm_setcsr(saved_ | 0x8040u);
    }
    ~FlushToZero() { _mm_setcsr(saved_); }
    FlushToZero(const FlushToZero&) = delete;
    FlushToZero& operator=(const FlushToZero&) = delete;

  private:
    unsigned saved_;
};

MxValue unpack_input(const void* in, int input_bits, long long i) {
    if (input_bits == 16) return mx_unpack_f16(static_cast<const unsigned short*>(in)[i]);
    if (input_bits == 32) return mx_unpack_f32(static_cast<const mx_u32*>(in)[i]);
    return mx_unpack_f64(static_cast<const mx_u64*>(in)[i]);
}

}  // namespace

extern "C" {

// Bits of the MXCSR flush-to-zero and denormals-are-zero flags, for the test to confirm
// that they were really set inside a call.
unsigned mx_host_ftz_flags(int ftz) {
    FlushToZero guard(ftz);
    return _mm_getcsr() & 0x8040u;
}

// Quantize n_blocks rows of MX_BLOCK_SIZE float16/32/64 values given as raw bits.
void mx_host_quantize(const void* in, int input_bits, long long n_blocks, const MxFormat* f,
                      int rounding, int scale_mode, mx_u64 seed, unsigned char* codes,
                      unsigned char* scales, int ftz) {
    FlushToZero guard(ftz);
    for (long long b = 0; b < n_blocks; ++b) {
        MxValue v[MX_BLOCK_SIZE];
        mx_u64 key = 0;
        bool bad = false;
        for (int lane = 0; lane < MX_BLOCK_SIZE; ++lane) {
            v[lane] = unpack_input(in, input_bits, b * MX_BLOCK_SIZE + lane);
            const mx_u64 k = mx_magnitude_key(v[lane]);
            key = k > key ? k : key;
            bad = bad || v[lane].cls == MX_NONFINITE;
        }
        const int x = mx_shared_exponent(*f, key, scale_mode);
        for (int lane = 0; lane < MX_BLOCK_SIZE; ++lane) {
            const long long t = b * MX_BLOCK_SIZE + lane;
            codes[t] = bad ? 0
                           : (unsigned char)mx_encode(*f, v[lane], x, rounding, seed, (mx_u64)t);
        }
        scales[b] = (unsigned char)(bad ? MX_SCALE_NAN_CODE : x + MX_SCALE_BIAS);
    }
}

// Dequantize n elements to float32 (out_bits 32) or float64 (out_bits 64) bits.
void mx_host_dequantize(const unsigned char* codes, const unsigned char* scales, long long n,
                        const MxFormat* f, int out_bits, void* out, int ftz) {
    FlushToZero guard(ftz);
    for (long long t = 0; t < n; ++t) {
        const unsigned s = scales[t / MX_BLOCK_SIZE];
        if (out_bits == 32) {
            static_cast<mx_u32*>(out)[t] = mx_decode_f32_bits(*f, codes[t], s);
        } else {
            static_cast<mx_u64*>(out)[t] = mx_decode_f64_bits(*f, codes[t], s);
        }
    }
}

void mx_host_pack(const unsigned char* codes, unsigned char* packed, long long n_groups,
                  const MxFormat* f) {
    for (long long g = 0; g < n_groups; ++g) {
        mx_pack_group(*f, codes + g * f->pack_elements, packed + g * f->pack_bytes);
    }
}

void mx_host_unpack(const unsigned char* packed, unsigned char* codes, long long n_groups,
                    const MxFormat* f) {
    for (long long g = 0; g < n_groups; ++g) {
        mx_unpack_group(*f, packed + g * f->pack_bytes, codes + g * f->pack_elements);
    }
}

// The simple matmul kernel's arithmetic, one output at a time (float32 result bits).
void mx_host_matmul(const unsigned char* a_codes, const unsigned char* a_scales,
                    const MxFormat* fa, const unsigned char* b_codes,
                    const unsigned char* b_scales, const MxFormat* fb, long long m, long long n,
                    long long n_kb, mx_u32* out, int ftz) {
    FlushToZero guard(ftz);
    for (long long row = 0; row < m; ++row) {
        for (long long col = 0; col < n; ++col) {
            const double dot = mx_row_dot(*fa, a_codes + row * n_kb * MX_BLOCK_SIZE,
                                          a_scales + row * n_kb, *fb,
                                          b_codes + col * n_kb * MX_BLOCK_SIZE,
                                          b_scales + col * n_kb, n_kb);
            out[row * n + col] = mx_f64_to_f32_bits(mx_f64_bits(dot));
        }
    }
}

void mx_host_f64_to_f32(const mx_u64* in, mx_u32* out, long long n, int ftz) {
    FlushToZero guard(ftz);
    for (long long i = 0; i < n; ++i) out[i] = mx_f64_to_f32_bits(in[i]);
}

}  // extern "C"
