// The two-pass MX matmul's device passes around the cuBLAS GEMM (see mx_fold.cuh):
// mx_fold_bf16_packed / mx_fold_bf16_codes decode one K tile of an operand to bfloat16 with
// the block scales and the operand's shift folded in, one thread per block (OCP packed
// bytes, or unpacked codes of a general block format); mx_two_pass_epilogue rescales the
// float32 GEMM result in place.  The format is the compile-time MX_FORMAT / MX_FORMAT_BLOCK.
//
// The fold's output is rows x tile_kb blocks of bfloat16 (the GEMM's operand, K contiguous);
// *flag is set (never cleared) when a block is not covered by the host's plan.
#include "mx_fold.cuh"
#include "mx_index.cuh"

#define MX_FOLD_KERNEL(NAME, THREAD)                                                          \
    extern "C" __global__ void NAME(const unsigned char* __restrict__ src,                   \
                                    const unsigned char* __restrict__ scales,                \
                                    unsigned short* __restrict__ out, long long rows,        \
                                    long long n_kb, long long kb0, long long tile_kb,        \
                                    int shift, int min_byte, unsigned* __restrict__ flag) {  \
        const long long t = mx_thread_index();                                               \
        if (t >= rows * tile_kb) return;                                                     \
        constexpr MxFormat kFormat = MX_FORMAT;                                              \
        constexpr MxBlockFormat kBlock = MX_FORMAT_BLOCK;                                    \
        if (THREAD(kFormat, kBlock, t, src, scales, out, n_kb, kb0, tile_kb, shift,          \
                   min_byte)) {                                                              \
            atomicOr(flag, 1u);                                                              \
        }                                                                                    \
    }

MX_FOLD_KERNEL(mx_fold_bf16_packed, mx_fold_thread_packed)
MX_FOLD_KERNEL(mx_fold_bf16_codes, mx_fold_thread_codes)

// c (n float32 bits) <- c * 2^-shift * a_tensor_scale * b_tensor_scale (float32 bits),
// rounded once to float32.
extern "C" __global__ void mx_two_pass_epilogue(mx_u32* __restrict__ c, long long n, int shift,
                                                mx_u32 a_tensor_scale, mx_u32 b_tensor_scale) {
    const long long t = mx_thread_index();
    if (t >= n) return;
    c[t] = mx_two_pass_result_bits(c[t], shift, a_tensor_scale, b_tensor_scale);
}
