// Tile geometry, fragment layout and scaling arithmetic of the tensor-core MX matmul.
//
// Everything the kernel computes about indices and scales is a __host__ __device__
// function here, so that tests/test_cuda_host.py can build this header with g++, replay
// one thread block lane by lane (the mma itself replaced by a model written from the PTX
// ISA tables) and compare with the NumPy reference without a GPU.
//
// The kernel (mx_matmul_mma.cu) computes, for each output C[r, c],
//     C = 2^-S * sum over K blocks b of  s_b * 2^(XA_b + XB_b + S)
// where s_b, the block sum of 32 exact element products, comes out of mma.sync in float32
// and S is one integer shift per thread block, chosen from the block's largest scales so
// that the scaled running sum cannot overflow and anything that flush-to-zero removes is
// below 2^-147 in real terms (see mx_mma_tile_shift).  The factor 2^(x + S) is built from
// its exponent in integer arithmetic, and the final multiply by 2^-S is an integer
// rounding with gradual underflow, so -ftz=true never flushes a result the spec keeps.
#pragma once

#include "mx_arith.cuh"
#include "mx_dot.cuh"

// ---------------------------------------------------------------------------------------
// Tile geometry: a thread block computes MX_MMA_BM x MX_MMA_BN outputs with 8 warps in a
// 2 x 4 grid; each warp owns 64 x 32 outputs, i.e. 4 x 4 mma tiles of 16 x 8.  The K step
// is one MX block (32 elements), two m16n8k16 steps.
// ---------------------------------------------------------------------------------------

enum {
    MX_MMA_BM = 128,
    MX_MMA_BN = 128,
    MX_MMA_WARPS_M = 2,
    MX_MMA_WARPS_N = 4,
    MX_MMA_THREADS = 32 * MX_MMA_WARPS_M * MX_MMA_WARPS_N,
    MX_MMA_WM = MX_MMA_BM / MX_MMA_WARPS_M,  // 64 rows per warp
    MX_MMA_WN = MX_MMA_BN / MX_MMA_WARPS_N,  // 32 columns per warp
    MX_MMA_FM = MX_MMA_WM / 16,              // 4 mma tiles down
    MX_MMA_FN = MX_MMA_WN / 8,               // 4 mma tiles across
    // Shared tiles hold float16 values, one row (A) or column (B) of 32 K values each,
    // padded to 40 halves (20 words): the 8 rows x 4 words a fragment load touches fall
    // in 32 different banks.
    MX_MMA_LDS = 40,
    MX_MMA_SLOW = -1  // mx_mma_tile_shift: no shift works, use the exact per-output path
};

#if MX_BLOCK_SIZE != 32
#error "the mma matmul takes one MX block per K step: two m16n8k16 steps of 16"
#endif
static_assert(MX_MMA_THREADS == 2 * MX_MMA_BM && MX_MMA_BM == MX_MMA_BN,
              "staging: each thread stages half a row of A and half a column of B");

// Two adjacent float16 values of a shared tile as one 32-bit word (4-byte aligned: row
// starts are multiples of 80 bytes and the offsets within a row even).
MX_HD mx_u32 mx_load_pair(const unsigned short* p) {
#if defined(__CUDA_ARCH__)
    return *reinterpret_cast<const mx_u32*>(p);
#else
    mx_u32 w;
    __builtin_memcpy(&w, p, sizeof w);
    return w;
#endif
}

MX_HD void mx_store_pair(unsigned short* p, mx_u32 w) {
#if defined(__CUDA_ARCH__)
    *reinterpret_cast<mx_u32*>(p) = w;
#else
    __builtin_memcpy(p, &w, sizeof w);
#endif
}

// Where thread block `block` of the flattened grid sits: batch, tile row, tile column.
struct MxTile {
    long long batch;
    long long row0;  // first output row of the tile
    long long col0;  // first output column
};

MX_HD MxTile mx_mma_tile(long long block, long long m, long long n) {
    const long long tiles_n = (n + MX_MMA_BN - 1) / MX_MMA_BN;
    const long long tiles_m = (m + MX_MMA_BM - 1) / MX_MMA_BM;
    MxTile t;
    t.col0 = (block % tiles_n) * MX_MMA_BN;
    t.row0 = ((block / tiles_n) % tiles_m) * MX_MMA_BM;
    t.batch = block / (tiles_n * tiles_m);
    return t;
}

MX_HD long long mx_mma_grid(long long batch, long long m, long long n) {
    return batch * ((m + MX_MMA_BM - 1) / MX_MMA_BM) * ((n + MX_MMA_BN - 1) / MX_MMA_BN);
}

// Entry i (row-major in the BM x BN tile) of a tile on the exact path: the output through
// mx_row_dot, rounded once to float32.  Entries outside the matrix are skipped.  The kernel
// and its host replay both call this.
MX_HD void mx_mma_exact_entry(int i, const MxFormat& fa, const unsigned char* a_codes,
                              const unsigned char* a_scales, const MxFormat& fb,
                              const unsigned char* b_codes, const unsigned char* b_scales,
                              mx_u32* out, const MxTile& tile, long long m, long long n,
                              long long n_kb) {
    const long long row = tile.row0 + i / MX_MMA_BN;
    const long long col = tile.col0 + i % MX_MMA_BN;
    if (row >= m || col >= n) return;
    const long long a_row = tile.batch * m + row;
    const long long b_row = tile.batch * n + col;
    const double dot = mx_row_dot(fa, a_codes + a_row * n_kb * MX_BLOCK_SIZE,
                                  a_scales + a_row * n_kb, fb,
                                  b_codes + b_row * n_kb * MX_BLOCK_SIZE,
                                  b_scales + b_row * n_kb, n_kb);
    out[a_row * n + col] = mx_f64_to_f32_bits(mx_f64_bits(dot));
}

// ---------------------------------------------------------------------------------------
// Fragment layout of mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 (PTX ISA, "Matrix
// Fragments for mma.m16n8k16 with floating point type").  group = lane / 4 and
// tig = lane % 4.  A (16 x 16, row-major) sits in 4 registers of two halves each; B
// (16 x 8, K x N) in 2 registers; C and D (16 x 8 float32) in 4 registers.
// ---------------------------------------------------------------------------------------

struct MxRowCol {
    int row;  // A: row (M); B: K; C: row (M)
    int col;  // A: K; B: column (N); C: column (N)
};

// A register reg (0..3), half h (0 low, 1 high).
MX_HD MxRowCol mx_mma_frag_a(int lane, int reg, int h) {
    MxRowCol p;
    p.row = lane / 4 + 8 * (reg & 1);
    p.col = 2 * (lane % 4) + h + 8 * (reg >> 1);
    return p;
}

// B register reg (0..1), half h: row is K, col is N.
MX_HD MxRowCol mx_mma_frag_b(int lane, int reg, int h) {
    MxRowCol p;
    p.row = 2 * (lane % 4) + h + 8 * reg;
    p.col = lane / 4;
    return p;
}

// C/D register i (0..3).
MX_HD MxRowCol mx_mma_frag_c(int lane, int i) {
    MxRowCol p;
    p.row = lane / 4 + 8 * (i >> 1);
    p.col = 2 * (lane % 4) + (i & 1);
    return p;
}

// Origin of mma tile (fm, fn) of warp `warp` inside the thread block's output tile.
MX_HD MxRowCol mx_mma_warp_tile(int warp, int fm, int fn) {
    MxRowCol p;
    p.row = (warp / MX_MMA_WARPS_N) * MX_MMA_WM + 16 * fm;
    p.col = (warp % MX_MMA_WARPS_N) * MX_MMA_WN + 8 * fn;
    return p;
}

// A registers of mma tile row m0 (tile coordinates) at K offset k0 (0 or 16), from the
// shared A tile (MX_MMA_BM rows of MX_MMA_LDS halves).  The two halves of a register are
// adjacent in K (low half first), so each register is one aligned 32-bit shared load.
MX_HD void mx_mma_load_a(const unsigned short* tile, int lane, int m0, int k0, mx_u32 a[4]) {
    for (int reg = 0; reg < 4; ++reg) {
        const MxRowCol p = mx_mma_frag_a(lane, reg, 0);
        a[reg] = mx_load_pair(tile + (m0 + p.row) * MX_MMA_LDS + k0 + p.col);
    }
}

// B registers of mma tile column n0 at K offset k0, from the shared B tile (MX_MMA_BN
// columns of MX_MMA_LDS halves, K contiguous: the "col" layout mma expects).
MX_HD void mx_mma_load_b(const unsigned short* tile, int lane, int n0, int k0, mx_u32 b[2]) {
    for (int reg = 0; reg < 2; ++reg) {
        const MxRowCol p = mx_mma_frag_b(lane, reg, 0);
        b[reg] = mx_load_pair(tile + (n0 + p.col) * MX_MMA_LDS + k0 + p.row);
    }
}

// ---------------------------------------------------------------------------------------
// Staging: element codes to exact float16 bits in shared memory
// ---------------------------------------------------------------------------------------

// float16 bits of decode(code) (scale 2^0).  Every element value of every spec format is
// a float16 exactly (at most 8 significant bits, between 2^-16 and 57344; _cuda_sources
// checks this), so the tensor cores multiply the exact values.
MX_HD unsigned short mx_decode_f16_bits(const MxFormat& f, unsigned code) {
    const MxElement el = mx_element(f, code);
    const unsigned sign = el.neg ? 0x8000u : 0u;
    if (el.kind == MX_ELEM_NAN) return (unsigned short)0x7E00u;
    if (el.kind == MX_ELEM_INF) return (unsigned short)(sign | 0x7C00u);
    if (el.n == 0) return (unsigned short)sign;
    const int lead = 31 - mx_clz32(el.n);
    const int e = lead + el.p;
    if (e >= -14) {
        return (unsigned short)(sign | ((unsigned)(e + 15) << 10) |
                                ((el.n << (10 - lead)) & 0x3FFu));
    }
    return (unsigned short)(sign | (el.n << (el.p + 24)));  // subnormal: p >= -24
}

// Staging is split in two so that the kernel can issue the global loads of the next K
// block before the mma work of this one: fetch (global memory to registers) and put
// (registers to shared memory).  Thread t of MX_MMA_THREADS handles half (t % 2) of row
// t / 2 of both operand tiles, and the scale byte of A row t (t < MX_MMA_BM) or of B
// column t - MX_MMA_BM.
struct MxStaged {
    mx_u32 a[4];     // 16 codes of A, little-endian
    mx_u32 b[4];     // 16 codes of B
    unsigned scale;  // one scale byte
};

// 16 codes of K block kb of operand row row0 + t / 2 (code 0, i.e. +0, past `rows`);
// codes is (rows, n_kb, 32) bytes, 16-byte aligned.
MX_HD void mx_mma_fetch_codes(const unsigned char* codes, long long row0, long long rows,
                              long long n_kb, long long kb, int t, mx_u32 w[4]) {
    const long long row = row0 + t / 2;
    for (int i = 0; i < 4; ++i) w[i] = 0;
    if (row >= rows) return;
    const unsigned char* src = codes + (row * n_kb + kb) * MX_BLOCK_SIZE + 16 * (t % 2);
#if defined(__CUDA_ARCH__)
    const uint4 v = *reinterpret_cast<const uint4*>(src);
    w[0] = v.x;
    w[1] = v.y;
    w[2] = v.z;
    w[3] = v.w;
#else
    for (int i = 0; i < 16; ++i) w[i / 4] |= (mx_u32)src[i] << (8 * (i % 4));
#endif
}

// Decode 16 fetched codes through `table` (256 float16 bit patterns) into the shared tile.
MX_HD void mx_mma_put_codes(const mx_u32 w[4], const unsigned short* table,
                            unsigned short* tile, int t) {
    unsigned short* dst = tile + (t / 2) * MX_MMA_LDS + 16 * (t % 2);
    for (int i = 0; i < 16; i += 2) {
        const unsigned lo = (w[i / 4] >> (8 * (i % 4))) & 0xFFu;
        const unsigned hi = (w[i / 4] >> (8 * (i % 4) + 8)) & 0xFFu;
        mx_store_pair(dst + i, (mx_u32)table[lo] | ((mx_u32)table[hi] << 16));
    }
}

MX_HD void mx_mma_fetch(const unsigned char* a_codes, const unsigned char* a_scales,
                        const unsigned char* b_codes, const unsigned char* b_scales,
                        long long row0, long long col0, long long m, long long n,
                        long long n_kb, long long kb, int t, MxStaged& st) {
    mx_mma_fetch_codes(a_codes, row0, m, n_kb, kb, t, st.a);
    mx_mma_fetch_codes(b_codes, col0, n, n_kb, kb, t, st.b);
    const bool is_a = t < MX_MMA_BM;
    const long long row = is_a ? row0 + t : col0 + (t - MX_MMA_BM);
    const bool inside = row < (is_a ? m : n);
    st.scale = inside ? (is_a ? a_scales : b_scales)[row * n_kb + kb] : 0u;
}

// ---------------------------------------------------------------------------------------
// Scales
// ---------------------------------------------------------------------------------------

// Largest non-NaN scale byte of one operand row over all n_kb blocks (0 if none), and
// whether any block's scale is the NaN code (the reference makes that output row NaN:
// its decoded NaNs meet every element of the other operand, zeros included).
struct MxRowScan {
    int max_byte;
    int has_nan;
};

MX_HD MxRowScan mx_mma_scan_row(const unsigned char* scales, long long n_kb) {
    MxRowScan s;
    s.max_byte = 0;
    s.has_nan = 0;
    for (long long kb = 0; kb < n_kb; ++kb) {
        const int b = scales[kb];
        if (b == MX_SCALE_NAN_CODE) {
            s.has_nan = 1;
        } else if (b > s.max_byte) {
            s.max_byte = b;
        }
    }
    return s;
}

// The thread block's shift S, from the largest scale bytes of its A rows and B columns,
// or MX_MMA_SLOW.  With x = XA + XB and ea, eb the formats' max_normal_exp, every block
// sum has |s| <= 32 * 2^(ea+1) * 2^(eb+1) = 2^(7+ea+eb), and there are at most
// 2^c >= n_kb blocks.
//  * No overflow: the scaled running sum is at most 2^(c+7+ea+eb+xmax+S) <= 2^127 when
//    S <= S_hi = 120 - c - ea - eb - xmax; then x + S + 127 <= 247 as well, so every
//    factor 2^(x+S) is a normal float32 built from its exponent.
//  * Small terms: a factor with x + S <= -127 is taken as 0 (the term dropped is below
//    2^(7+ea+eb-127) scaled), and flush-to-zero of a product or a sum loses less than
//    2^-126 scaled; both are below 2^-147 in real terms when S >= S_lo = 27 + ea + eb,
//    so each K block adds under 2^-146, far inside the spec's (2K+1) * 2^-150.
// S = S_hi when S_hi >= S_lo; otherwise the tile's scales span too much for one float32
// range and the kernel computes it exactly, one output at a time.
MX_HD int mx_mma_tile_shift(int max_a_byte, int max_b_byte, long long n_kb,
                            const MxFormat& fa, const MxFormat& fb) {
    const int c = n_kb <= 1 ? 0 : 64 - mx_clz64((mx_u64)(n_kb - 1));
    const int xmax = max_a_byte + max_b_byte - 2 * MX_SCALE_BIAS;
    const int e = fa.max_normal_exp + fb.max_normal_exp;
    const int s_hi = 120 - c - e - xmax;
    return s_hi >= 27 + e ? s_hi : MX_MMA_SLOW;
}

// Per-row and per-column halves of the factor's float32 exponent field, pre-shifted:
// a_part(XA) + b_part(XB) = (XA + XB + S + 127) << 23 exactly.  NaN scale bytes count as
// byte 0 here (their outputs are overwritten with NaN), which keeps the sum in range.
MX_HD int mx_mma_a_part(unsigned byte, int shift) {
    const int b = byte == MX_SCALE_NAN_CODE ? 0 : (int)byte;
    return (b - MX_SCALE_BIAS + shift) * (1 << 23);
}

MX_HD int mx_mma_b_part(unsigned byte) {
    const int b = byte == MX_SCALE_NAN_CODE ? 0 : (int)byte;
    return b * (1 << 23);
}

// Registers to shared memory: the decoded codes and this thread's factor half.
MX_HD void mx_mma_put(const MxStaged& st, const unsigned short* table_a,
                      const unsigned short* table_b, unsigned short* tile_a,
                      unsigned short* tile_b, int* part_a, int* part_b, int shift, int t) {
    mx_mma_put_codes(st.a, table_a, tile_a, t);
    mx_mma_put_codes(st.b, table_b, tile_b, t);
    if (t < MX_MMA_BM) {
        part_a[t] = mx_mma_a_part(st.scale, shift);
    } else {
        part_b[t - MX_MMA_BM] = mx_mma_b_part(st.scale);
    }
}

// float32 bits of 2^(x + S), or 0 when x + S <= -127 (below every normal float32).
MX_HD mx_u32 mx_mma_factor_bits(int a_part, int b_part) {
    const int sum = a_part + b_part;
    return sum > 0 ? (mx_u32)sum : 0u;
}

// float32 bits of value * 2^-shift (shift >= 0) rounded to nearest even, subnormals kept,
// zeros, infinities and NaNs passed through.  Integer-only, so -ftz cannot flush it.
MX_HD mx_u32 mx_f32_scale_down_bits(mx_u32 bits, int shift) {
    const mx_u32 sign = bits & 0x80000000u;
    const int field = (int)((bits >> 23) & 0xFFu);
    mx_u32 sig = bits & 0x7FFFFFu;
    if (field == 0xFF) return bits;
    if (field == 0 && sig == 0) return bits;
    int e = field - 127;  // value = sig * 2^(e - 23) with sig's leading one at bit 23
    if (field == 0) {
        const int lead = 31 - mx_clz32(sig);
        sig <<= 23 - lead;
        e = -149 + lead;
    } else {
        sig |= 0x800000u;
    }
    e -= shift;
    if (e >= -126) return sign | ((mx_u32)(e + 127) << 23) | (sig & 0x7FFFFFu);
    const int drop = -126 - e;  // bits of sig below the subnormal quantum 2^-149
    if (drop > 24) return sign;  // below half the smallest subnormal
    const mx_u32 keep = sig >> drop;
    const mx_u32 rem = sig & ((1u << drop) - 1u);
    const mx_u32 half = 1u << (drop - 1);
    const mx_u32 up = (rem > half || (rem == half && (keep & 1u))) ? 1u : 0u;
    return sign | (keep + up);  // a carry into bit 23 gives the smallest normal: correct
}
