// kv_write_<x>_<o>: rows [T, kv, D] into a cache [C, kv, D] at positions [T],
// converting to the cache's dtype; one thread per element. A position
// outside the cache writes nothing and is reported in status (code 2).
#include "compat.h"

DEVICE void kv_write_impl(const int X, const int O, IN x, View vx, IN pos, View vpos, OUT o,
                          View vo, u64 n, u32 row, u32 capacity, GLOBAL u32* status) {
    GRID_STRIDE(e, n) {
        const u32 p = (u32)load_i32(pos, vpos, at(vpos, e / row));
        if (p >= capacity) {
            if (e % row == 0) {
                ATOMIC_MAX(&status[0], STATUS_POSITION_OUT_OF_RANGE);
                status[1] = p;
            }
            continue;
        }
        store(O, o, vo, at(vo, (u64)p * row + e % row), load(X, x, vx, at(vx, e)));
    }
}

#define KV_WRITE(X, O)                                                                             \
    KERNEL(kv_write_##X##_##O)(IN x, View vx, IN pos, View vpos, OUT o, View vo, u64 n, u32 row,   \
                               u32 capacity, GLOBAL u32* status) {                                 \
        kv_write_impl(DT_##X, DT_##O, x, vx, pos, vpos, o, vo, n, row, capacity, status);          \
    }
#define KV_WRITE_X(O, _) FLOATS_2(KV_WRITE, O)
FLOATS_1(KV_WRITE_X, _)
