// The simple matmul for any pair of block formats (MX9/6/4, NVFP4, OCP): one thread per
// output, mx_block_row_dot over the K elements.  Operand formats are the compile-time
// MX_FORMAT_A / MX_FORMAT_A_BLOCK and MX_FORMAT_B / MX_FORMAT_B_BLOCK.  a_codes (batch, M,
// a_len) with a_scales (batch, M, a_len / block size A), b likewise with N and b_len; the
// first k_len <= min(a_len, b_len) elements of each row meet; out (batch, M, N) float32
// bits.  The tensor scales are float32 bits (ignored by formats without one).
#include "mx_block_arith.cuh"
#include "mx_index.cuh"

constexpr MxBlockFormat kLayoutA = MX_FORMAT_A_BLOCK;
constexpr MxBlockFormat kLayoutB = MX_FORMAT_B_BLOCK;
typedef MxCodeType<kLayoutA.code_bytes>::type MxCodeA;
typedef MxCodeType<kLayoutB.code_bytes>::type MxCodeB;

extern "C" __global__ void mx_matmul_block(const MxCodeA* __restrict__ a_codes,
                                           const unsigned char* __restrict__ a_scales,
                                           const MxCodeB* __restrict__ b_codes,
                                           const unsigned char* __restrict__ b_scales,
                                           mx_u32* __restrict__ out, long long batch,
                                           long long m, long long n, long long a_len,
                                           long long b_len, long long k_len,
                                           mx_u32 a_tensor_scale, mx_u32 b_tensor_scale) {
    const long long t = mx_thread_index();
    if (t >= batch * m * n) return;
    constexpr MxFormat kFormatA = MX_FORMAT_A;
    constexpr MxFormat kFormatB = MX_FORMAT_B;
    constexpr MxBlockFormat kBlockA = MX_FORMAT_A_BLOCK;
    constexpr MxBlockFormat kBlockB = MX_FORMAT_B_BLOCK;
    const long long col = t % n;
    const long long row = (t / n) % m;
    const long long bat = t / (n * m);
    const long long a_row = bat * m + row;
    const long long b_row = bat * n + col;
    const unsigned char* a_row_scales = a_scales + a_row * (a_len / kBlockA.block_size);
    const unsigned char* b_row_scales = b_scales + b_row * (b_len / kBlockB.block_size);
    const double dot = mx_block_row_dot(kFormatA, kBlockA, a_codes + a_row * a_len, a_row_scales,
                                        mx_tensor_scale(a_tensor_scale), kFormatB, kBlockB,
                                        b_codes + b_row * b_len, b_row_scales,
                                        mx_tensor_scale(b_tensor_scale), k_len);
    out[t] = mx_f64_to_f32_bits(mx_f64_bits(dot));
}
