// kv_write_<x>_<o>: rows [T, kv, D] into a cache [C, kv, D] at positions [T],
// converting to the cache's dtype; one thread per element. A position
// outside the cache writes nothing and is reported in status (code 2).
#include "compat.h"
#include "dtypes.h"

template <int X, int O>
__device__ void kv_write_impl(const void* x, View vx, const void* pos, View vpos, void* o, View vo,
                              u64 n, u32 row, u32 capacity, u32* status) {
    for (u64 e = blockIdx.x * (u64)blockDim.x + threadIdx.x; e < n; e += (u64)gridDim.x * blockDim.x) {
        const u32 p = (u32)load_i32(pos, vpos, at(vpos, e / row));
        if (p >= capacity) {
            if (e % row == 0) {
                atomicMax(&status[0], 2u);
                status[1] = p;
            }
            continue;
        }
        store<O>(o, vo, at(vo, (u64)p * row + e % row), load<X>(x, vx, at(vx, e)));
    }
}

#define KV_WRITE(X, O)                                                                             \
    extern "C" __global__ void kv_write_##X##_##O(const void* x, View vx, const void* pos,         \
                                                  View vpos, void* o, View vo, u64 n, u32 row,     \
                                                  u32 capacity, u32* status) {                     \
        kv_write_impl<DT_##X, DT_##O>(x, vx, pos, vpos, o, vo, n, row, capacity, status);          \
    }
#define KV_WRITE_X(O, _) FLOATS_2(KV_WRITE, O)
FLOATS_1(KV_WRITE_X, _)
