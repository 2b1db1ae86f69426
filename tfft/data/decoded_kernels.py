"""numba kernels of the decoded cache (`tfft.data.decoded_cache`): the copies in and out of its blocks.

Imported lazily (importing numba takes a moment). Every kernel is `nogil`: the copies run while
other pipeline threads hold the GIL, so a filling or gathering batch never stalls the decode,
resize or warp of another (the per-image NumPy copies they replace held it throughout).

A store's images live in two flat uint8 blocks, memory (`mem`) and the spill file mapped in
memory (`spill`); image i is `nbytes[i]` bytes at `offset[i]` of block `where[i]` (0: mem,
1: spill). An image kept resized (its `DecodedBatch.shapes` row (0, 0, 3)) holds its float32
values' bytes.
"""

from __future__ import annotations

import numba

_JIT = dict(nogil=True, cache=True, error_model="numpy")


@numba.njit(**_JIT)
def put_rows(mem, spill, raw, resized_bytes, rows, where, offset, nbytes, is_resized):
    """Copy batch rows `rows` (raw uint8 [B, L], or resized float32 viewed as uint8 [B, 4R]) to
    their places: row rows[k] to block where[k] at offset[k], nbytes[k] bytes."""
    for k in range(rows.shape[0]):
        src = resized_bytes[rows[k]] if is_resized[k] else raw[rows[k]]
        dst = mem if where[k] == 0 else spill
        start, count = offset[k], nbytes[k]
        for j in range(count):
            dst[start + j] = src[j]


@numba.njit(**_JIT)
def gather_rows(mem, spill, where, offset, nbytes, is_resized, raw_out, resized_out):
    """Batch row k from its place (as `put_rows` left it) into raw_out [B, L] uint8 or, kept
    resized, resized_out [B, 4R] (float32 bytes); the rest of each row zero, as `padded_batch`
    pads."""
    for k in range(where.shape[0]):
        src = mem if where[k] == 0 else spill
        start, count = offset[k], nbytes[k]
        if is_resized[k]:
            row, other = resized_out[k], raw_out[k]
        else:
            row, other = raw_out[k], resized_out[k]
        for j in range(count):
            row[j] = src[start + j]
        for j in range(count, row.shape[0]):
            row[j] = 0
        for j in range(other.shape[0]):
            other[j] = 0
