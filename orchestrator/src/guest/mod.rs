//! The guest channel: SSH exec, kmsg cursor, slab snapshot, kmemleak, taint.
