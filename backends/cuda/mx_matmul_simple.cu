// The simple, obviously correct MX matmul: one thread per output element, looping over the
// K blocks with mx_row_dot.  Operand formats are the compile-time MX_FORMAT_A, MX_FORMAT_B.
// a_codes (batch, M, KB, 32), a_scales (batch, M, KB), b_codes (batch, N, KB, 32),
// b_scales (batch, N, KB); out (batch, M, N) float32 (written as bits).
#include "mx_dot.cuh"
#include "mx_index.cuh"

extern "C" __global__ void mx_matmul_simple(const unsigned char* __restrict__ a_codes,
                                            const unsigned char* __restrict__ a_scales,
                                            const unsigned char* __restrict__ b_codes,
                                            const unsigned char* __restrict__ b_scales,
                                            mx_u32* __restrict__ out, long long batch, long long m,
                                            long long n, long long n_kb) {
    const long long t = mx_thread_index();
    if (t >= batch * m * n) return;
    constexpr MxFormat kFormatA = MX_FORMAT_A;
    constexpr MxFormat kFormatB = MX_FORMAT_B;
    const long long col = t % n;
    const long long row = (t / n) % m;
    const long long bat = t / (n * m);
    const long long a_row = bat * m + row;
    const long long b_row = bat * n + col;
    const double dot = mx_row_dot(kFormatA, a_codes + a_row * n_kb * MX_BLOCK_SIZE,
                                  a_scales + a_row * n_kb, kFormatB,
                                  b_codes + b_row * n_kb * MX_BLOCK_SIZE,
                                  b_scales + b_row * n_kb, n_kb);
    out[t] = mx_f64_to_f32_bits(mx_f64_bits(dot));
}
