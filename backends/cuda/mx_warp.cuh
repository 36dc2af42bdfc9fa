// Warp-level reductions over aligned groups of lanes, one group per block of elements.
// Device only; every lane of the warp must call them (the masks are full), so kernels keep
// whole warps running and let out-of-range lanes take part with neutral values.
#pragma once

#include "mx_arith.cuh"

// The largest key over each aligned group of `width` lanes (a power of two, at most 32).
__device__ __forceinline__ mx_u64 mx_group_max(mx_u64 key, int width) {
    for (int offset = width / 2; offset > 0; offset >>= 1) {
        const mx_u64 other = __shfl_xor_sync(0xFFFFFFFFu, key, offset);
        key = other > key ? other : key;
    }
    return key;
}

// Whether pred holds on any lane of the aligned group of `width` lanes holding this lane.
__device__ __forceinline__ bool mx_group_any(bool pred, int width) {
    const unsigned ballot = __ballot_sync(0xFFFFFFFFu, pred);
    const unsigned first = (threadIdx.x & 31u) & ~(unsigned)(width - 1);
    const unsigned mask = width == 32 ? 0xFFFFFFFFu : ((1u << width) - 1u) << first;
    return (ballot & mask) != 0u;
}
