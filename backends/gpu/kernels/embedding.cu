// get_rows_<t>_<o>: out[i] = table[ids[i]], one thread per output element,
// dequantizing the rows it picks. An id outside the table fills its row with
// zeros and is reported in status (code 1, the id), read at the next wait.
#include "compat.h"

DEVICE void get_rows_impl(const int T, const int O, IN t, View vt, IN ids, View vids, OUT o,
                          View vo, u64 n, u32 h, u32 vocab, GLOBAL u32* status) {
    GRID_STRIDE(e, n * h) {
        const u32 id = (u32)load_i32(ids, vids, at(vids, e / h));
        float v = 0.0f;
        if (id < vocab) {
            v = load(T, t, vt, at(vt, (u64)id * h + e % h));
        } else if (e % h == 0) {
            ATOMIC_MAX(&status[0], STATUS_ROW_OUT_OF_RANGE);
            status[1] = id;
        }
        store(O, o, vo, at(vo, e), v);
    }
}

#define GET_ROWS(T, O)                                                                             \
    KERNEL(get_rows_##T##_##O)(IN t, View vt, IN ids, View vids, OUT o, View vo, u64 n, u32 h,     \
                               u32 vocab, GLOBAL u32* status) {                                    \
        get_rows_impl(DT_##T, DT_##O, t, vt, ids, vids, o, vo, n, h, vocab, status);               \
    }
#define GET_ROWS_T(O, _) PREPARED_2(GET_ROWS, O)
FLOATS_1(GET_ROWS_T, _)
