// 64-bit thread and thread-block numbers of a 1-D launch.  Device only.
//
// blockIdx.x and blockDim.x are 32-bit unsigned values, and their product wraps past 2^32
// threads; kernels index arrays of more than 2^31 elements or bytes, so every global index
// starts here, with the product formed in 64 bits.  tests/test_cuda_offsets.py requires it:
// no kernel source outside this header names blockIdx, blockDim or gridDim.
#pragma once

// The global number of this thread: blockIdx.x * blockDim.x + threadIdx.x, in 64 bits.
__device__ __forceinline__ long long mx_thread_index() {
    return (long long)blockIdx.x * (long long)blockDim.x + (long long)threadIdx.x;
}

// The number of this thread block (one output tile of a tiled kernel), in 64 bits.
__device__ __forceinline__ long long mx_block_index() { return (long long)blockIdx.x; }
