// The tensor-core MX matmul: a block-scaled GEMM on mma.sync m16n8k16 (float16 inputs,
// float32 accumulators).  Operand formats are the compile-time MX_FORMAT_A, MX_FORMAT_B;
// the layout is the simple kernel's: a_codes (batch, M, KB, 32), a_scales (batch, M, KB),
// b_codes (batch, N, KB, 32), b_scales (batch, N, KB); out (batch, M, N) float32 bits.
// One thread block (MX_MMA_THREADS threads) per MX_MMA_BM x MX_MMA_BN output tile of the
// flattened grid mx_mma_grid(batch, M, N).
//
// Per thread block:
//  1. scan the tile's scale bytes: NaN rows and columns, and the shift S
//     (mx_mma_tile_shift); a tile whose scales span too much for float32 is computed
//     exactly, one output per thread at a time, with the simple kernel's mx_row_dot;
//  2. per K block: stage both operands' codes as exact float16 in shared memory and the
//     factor exponents of the block's scales (their global loads were issued during the
//     previous block's mma work); two m16n8k16 steps give each output's block sum in
//     float32; add it times 2^(XA + XB + S) to the running float32 sum;
//  3. write 2^-S times the sum (integer rounding, subnormals kept), NaN where a row or
//     column holds a NaN scale.
// All index and scale arithmetic is in mx_mma_tile.cuh and is replayed on the host by
// tests/test_cuda_host.py.
#include "mx_dot.cuh"
#include "mx_mma_tile.cuh"
#include "mx_index.cuh"

__device__ __forceinline__ void mx_mma_16816(float d[4], const mx_u32 a[4], const mx_u32 b[2],
                                             const float c[4]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]),
          "f"(c[1]), "f"(c[2]), "f"(c[3]));
}

// The exact path for one tile: every output of the tile through mx_row_dot.
__device__ void mx_mma_tile_exact(const MxFormat& fa, const unsigned char* a_codes,
                                  const unsigned char* a_scales, const MxFormat& fb,
                                  const unsigned char* b_codes, const unsigned char* b_scales,
                                  mx_u32* out, const MxTile& tile, long long m, long long n,
                                  long long n_kb) {
    for (int i = threadIdx.x; i < MX_MMA_BM * MX_MMA_BN; i += MX_MMA_THREADS) {
        mx_mma_exact_entry(i, fa, a_codes, a_scales, fb, b_codes, b_scales, out, tile, m, n,
                           n_kb);
    }
}

extern "C" __global__ void __launch_bounds__(MX_MMA_THREADS, 1)
    mx_matmul_mma(const unsigned char* __restrict__ a_codes,
                  const unsigned char* __restrict__ a_scales,
                  const unsigned char* __restrict__ b_codes,
                  const unsigned char* __restrict__ b_scales, mx_u32* __restrict__ out,
                  long long batch, long long m, long long n, long long n_kb) {
    constexpr MxFormat kFormatA = MX_FORMAT_A;
    constexpr MxFormat kFormatB = MX_FORMAT_B;
    __shared__ __align__(16) unsigned short tile_a[MX_MMA_BM * MX_MMA_LDS];
    __shared__ __align__(16) unsigned short tile_b[MX_MMA_BN * MX_MMA_LDS];
    __shared__ unsigned short table_a[256];
    __shared__ unsigned short table_b[256];
    __shared__ int part_a[MX_MMA_BM];
    __shared__ int part_b[MX_MMA_BN];
    __shared__ unsigned char nan_a[MX_MMA_BM];
    __shared__ unsigned char nan_b[MX_MMA_BN];
    __shared__ int max_a;
    __shared__ int max_b;
    __shared__ int shift;

    const int t = threadIdx.x;
    const int lane = t % 32;
    const int warp = t / 32;
    const MxTile tile = mx_mma_tile(mx_block_index(), m, n);
    if (tile.batch >= batch) return;  // the grid is exact; a larger launch writes nothing
    const unsigned char* a_codes_b = a_codes + tile.batch * m * n_kb * MX_BLOCK_SIZE;
    const unsigned char* b_codes_b = b_codes + tile.batch * n * n_kb * MX_BLOCK_SIZE;
    const unsigned char* a_scales_b = a_scales + tile.batch * m * n_kb;
    const unsigned char* b_scales_b = b_scales + tile.batch * n * n_kb;

    // 1. scales of the tile: NaN rows/columns and the largest bytes, then the shift
    if (t == 0) {
        max_a = 0;
        max_b = 0;
    }
    for (int i = t; i < 256; i += MX_MMA_THREADS) {
        table_a[i] = mx_decode_f16_bits(kFormatA, (unsigned)i);
        table_b[i] = mx_decode_f16_bits(kFormatB, (unsigned)i);
    }
    __syncthreads();
    for (int i = t; i < MX_MMA_BM + MX_MMA_BN; i += MX_MMA_THREADS) {
        const bool is_a = i < MX_MMA_BM;
        const int r = is_a ? i : i - MX_MMA_BM;
        const long long row = (is_a ? tile.row0 : tile.col0) + r;
        MxRowScan s;
        s.max_byte = 0;
        s.has_nan = 0;
        if (row < (is_a ? m : n)) {
            s = mx_mma_scan_row((is_a ? a_scales_b : b_scales_b) + row * n_kb, n_kb);
        }
        (is_a ? nan_a : nan_b)[r] = (unsigned char)s.has_nan;
        atomicMax(is_a ? &max_a : &max_b, s.max_byte);
    }
    __syncthreads();
    if (t == 0) shift = mx_mma_tile_shift(max_a, max_b, n_kb, kFormatA, kFormatB);
    __syncthreads();
    const int S = shift;
    if (S == MX_MMA_SLOW) {
        mx_mma_tile_exact(kFormatA, a_codes, a_scales, kFormatB, b_codes, b_scales, out, tile,
                          m, n, n_kb);
        return;
    }

    // 2. the K loop, one MX block per step
    float acc[MX_MMA_FM][MX_MMA_FN][4];
#pragma unroll
    for (int fm = 0; fm < MX_MMA_FM; ++fm)
#pragma unroll
        for (int fn = 0; fn < MX_MMA_FN; ++fn)
#pragma unroll
            for (int i = 0; i < 4; ++i) acc[fm][fn][i] = 0.0f;
    const float zero[4] = {0.0f, 0.0f, 0.0f, 0.0f};

    MxStaged staged;
    if (n_kb > 0) {
        mx_mma_fetch(a_codes_b, a_scales_b, b_codes_b, b_scales_b, tile.row0, tile.col0, m, n,
                     n_kb, 0, t, staged);
    }
    for (long long kb = 0; kb < n_kb; ++kb) {
        __syncthreads();  // the previous step's readers are done with the shared tiles
        mx_mma_put(staged, table_a, table_b, tile_a, tile_b, part_a, part_b, S, t);
        __syncthreads();
        if (kb + 1 < n_kb) {  // the next block's loads fly while the tensor cores work
            mx_mma_fetch(a_codes_b, a_scales_b, b_codes_b, b_scales_b, tile.row0, tile.col0,
                         m, n, n_kb, kb + 1, t, staged);
        }

        float sum[MX_MMA_FM][MX_MMA_FN][4];
#pragma unroll
        for (int k0 = 0; k0 < MX_BLOCK_SIZE; k0 += 16) {
            mx_u32 a[MX_MMA_FM][4];
            mx_u32 b[MX_MMA_FN][2];
#pragma unroll
            for (int fm = 0; fm < MX_MMA_FM; ++fm) {
                mx_mma_load_a(tile_a, lane, mx_mma_warp_tile(warp, fm, 0).row, k0, a[fm]);
            }
#pragma unroll
            for (int fn = 0; fn < MX_MMA_FN; ++fn) {
                mx_mma_load_b(tile_b, lane, mx_mma_warp_tile(warp, 0, fn).col, k0, b[fn]);
            }
#pragma unroll
            for (int fm = 0; fm < MX_MMA_FM; ++fm) {
#pragma unroll
                for (int fn = 0; fn < MX_MMA_FN; ++fn) {
                    if (k0 == 0) {
                        mx_mma_16816(sum[fm][fn], a[fm], b[fn], zero);
                    } else {
                        mx_mma_16816(sum[fm][fn], a[fm], b[fn], sum[fm][fn]);
                    }
                }
            }
        }
#pragma unroll
        for (int fm = 0; fm < MX_MMA_FM; ++fm) {
#pragma unroll
            for (int fn = 0; fn < MX_MMA_FN; ++fn) {
                const MxRowCol o = mx_mma_warp_tile(warp, fm, fn);
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    const MxRowCol p = mx_mma_frag_c(lane, i);
                    const mx_u32 f =
                        mx_mma_factor_bits(part_a[o.row + p.row], part_b[o.col + p.col]);
                    acc[fm][fn][i] = fmaf(sum[fm][fn][i], __uint_as_float(f), acc[fm][fn][i]);
                }
            }
        }
    }

    // 3. unscale and store
#pragma unroll
    for (int fm = 0; fm < MX_MMA_FM; ++fm) {
#pragma unroll
        for (int fn = 0; fn < MX_MMA_FN; ++fn) {
            const MxRowCol o = mx_mma_warp_tile(warp, fm, fn);
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const MxRowCol p = mx_mma_frag_c(lane, i);
                const int r = o.row + p.row;
                const int c = o.col + p.col;
                const long long row = tile.row0 + r;
                const long long col = tile.col0 + c;
                if (row >= m || col >= n) continue;
                const mx_u32 sum_bits = __float_as_uint(acc[fm][fn][i]);
                const mx_u32 bits =
                    (nan_a[r] || nan_b[c]) ? 0x7FC00000u : mx_f32_scale_down_bits(sum_bits, S);
                out[(tile.batch * m + row) * n + col] = bits;
            }
        }
    }
}
