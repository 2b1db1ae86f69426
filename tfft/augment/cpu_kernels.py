"""numba kernels of `tfft.augment.cpu_warp` (imported lazily: importing numba takes a moment)."""

from __future__ import annotations

import numba
import numpy as np

from tfft.data.resize_kernels import EXACT, resize_into

f32, i32, u64 = np.float32, np.int32, np.uint64
COORD_LIMIT = f32(1.0e7)  # keeps float -> int conversions defined for degenerate matrices
_JIT = dict(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
NEAREST, CONSTANT, REFLECT, WRAP = 0, 1, 2, 3


@numba.njit(**_JIT)
def reflect(i, n):
    """scipy `reflect` (half-sample symmetric, period 2n) for an integer index."""
    n2 = 2 * n
    i = i % n2
    if i < 0:
        i += n2
    return n2 - 1 - i if i >= n else i


@numba.njit(**_JIT)
def scipy_wrap(c, top):
    """scipy's legacy `wrap` for a coordinate: unchanged in [0, top], else modulo top (= n-1)."""
    if c >= f32(0.0) and c <= top:
        return c
    period = max(top, f32(1.0))
    r = f32(np.fmod(c, period))
    if r != f32(0.0) and r < f32(0.0):
        r += period
    return r * min(top, f32(1.0))


@numba.njit(**_JIT)
def _source_xy(mt, xj, yi, affine):
    """The input coordinate (x, y) output pixel (xj, yi) samples; mt: the 9 matrix entries."""
    x = mt[0] * xj + mt[1] * yi + mt[2]
    y = mt[3] * xj + mt[4] * yi + mt[5]
    if not affine:
        w = mt[6] * xj + mt[7] * yi + mt[8]
        x = min(max(x / w, -COORD_LIMIT), COORD_LIMIT)
        y = min(max(y / w, -COORD_LIMIT), COORD_LIMIT)
    return x, y


@numba.njit(**_JIT)
def _blend(src, p00, p01, p10, p11, fx, fy, out, k):
    """out[k:k+3] = bilinear blend of the RGB pixels at flat offsets p.. (unsigned: no wraparound)."""
    gx, gy = f32(1.0) - fx, f32(1.0) - fy
    for c in range(3):
        cu = u64(c)
        top = f32(src[p00 + cu]) * gx + f32(src[p01 + cu]) * fx
        bottom = f32(src[p10 + cu]) * gx + f32(src[p11 + cu]) * fx
        out[k + cu] = top * gy + bottom * fy


@numba.njit(**_JIT)
def _row_coords(m, yi, mode, affine, height, width, fxa, fya, ix0, ix1, iy0, iy1, inside):
    """Pass 1 over one output row (nearest, constant, reflect): bilinear weights and clamped offsets.

    Branch-free per pixel for `nearest` and `constant` (int32 arithmetic), so LLVM vectorises it
    (AVX2: 8 pixels an instruction); the expressions are those of the XLA warp, in its order.
    """
    mt = (m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8])  # scalars: no aliasing with the outputs
    tol, top_x, top_y = f32(1e-3), f32(width - 1), f32(height - 1)
    zero, one, three, last_x, last_y, row = i32(0), i32(1), i32(3), i32(width - 1), i32(height - 1), i32(width * 3)
    for j in range(fxa.shape[0]):
        x, y = _source_xy(mt, f32(j), yi, affine)
        if mode == CONSTANT:
            inside[j] = (x >= -tol) & (x <= top_x + tol) & (y >= -tol) & (y <= top_y + tol)
        x0f, y0f = np.floor(x), np.floor(y)
        fxa[j], fya[j] = x - x0f, y - y0f
        x0, y0 = i32(x0f), i32(y0f)
        x1, y1 = x0 + one, y0 + one
        if mode == REFLECT:
            x0, x1 = i32(reflect(x0, width)), i32(reflect(x1, width))
            y0, y1 = i32(reflect(y0, height)), i32(reflect(y1, height))
        else:
            x0, x1 = min(max(x0, zero), last_x), min(max(x1, zero), last_x)
            y0, y1 = min(max(y0, zero), last_y), min(max(y1, zero), last_y)
        ix0[j], ix1[j], iy0[j], iy1[j] = x0 * three, x1 * three, y0 * row, y1 * row


@numba.njit(**_JIT)
def _warp_rows(src, height, width, m, mode, affine, cval, out, out_height, out_width):
    """Bilinear warp of flat src [H*W*3] by m [9] into flat out [H'*W'*3] (float32), row by row.

    `geometry._gather_warp`'s arithmetic in two passes per output row: `_row_coords` (vectorised),
    then the gathers and blends. 30-40% less time than one fused loop per pixel for `nearest` and
    `constant`, 10-15% for `reflect` (224x224: `benchmarks/bench_warp_kernel.py`; the first pass
    compiles to AVX2 `vroundps`/`vcvttps2dq`/`vpminsd` on ymm registers).
    """
    fxa, fya = np.empty(out_width, f32), np.empty(out_width, f32)
    ix0, ix1, iy0, iy1 = (np.empty(out_width, i32), np.empty(out_width, i32), np.empty(out_width, i32),
                          np.empty(out_width, i32))
    inside = np.ones(out_width, np.bool_)
    k = u64(0)
    for i in range(out_height):
        _row_coords(m, f32(i), mode, affine, height, width, fxa, fya, ix0, ix1, iy0, iy1, inside)
        for j in range(out_width):
            if mode == CONSTANT and not inside[j]:
                out[k], out[k + u64(1)], out[k + u64(2)] = cval, cval, cval
            else:
                _blend(src, u64(iy0[j] + ix0[j]), u64(iy0[j] + ix1[j]), u64(iy1[j] + ix0[j]),
                       u64(iy1[j] + ix1[j]), fxa[j], fya[j], out, k)
            k += u64(3)


@numba.njit(**_JIT)
def _warp_wrap(src, height, width, m, affine, out, out_height, out_width):
    """`wrap` mode, one fused loop per pixel: in `_warp_rows`' first pass scipy's wrap made the
    warp 1.6x slower than this loop, so `wrap` keeps it."""
    top_x, top_y = f32(width - 1), f32(height - 1)
    mt = (m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8])
    k = u64(0)
    for i in range(out_height):
        for j in range(out_width):
            x, y = _source_xy(mt, f32(j), f32(i), affine)
            x, y = scipy_wrap(x, top_x), scipy_wrap(y, top_y)
            x0f, y0f = np.floor(x), np.floor(y)
            x0, y0 = int(x0f), int(y0f)
            x0, x1 = min(max(x0, 0), width - 1), min(max(x0 + 1, 0), width - 1)
            y0, y1 = min(max(y0, 0), height - 1), min(max(y0 + 1, 0), height - 1)
            _blend(src, u64((y0 * width + x0) * 3), u64((y0 * width + x1) * 3), u64((y1 * width + x0) * 3),
                   u64((y1 * width + x1) * 3), x - x0f, y - y0f, out, k)
            k += u64(3)


@numba.njit(**_JIT)
def warp(src, m, mode, cval, out):
    """Warp src [H, W, 3] (any real dtype, C-contiguous) by m [3, 3] into out [H', W', 3] float32.

    `mode`: 0 nearest, 1 constant (cval), 2 reflect, 3 wrap. Flat offsets are int32: src must
    hold fewer than 2**31 values (`cpu_warp` checks).
    """
    height, width = src.shape[0], src.shape[1]
    oh, ow = out.shape[0], out.shape[1]
    flat, dst, mm = src.reshape(-1), out.reshape(-1), m.reshape(-1)
    affine = mm[6] == f32(0.0) and mm[7] == f32(0.0) and mm[8] == f32(1.0)
    # One call site per fill mode: each compiles to its own loop, without the others' branches.
    if mode == NEAREST:
        _warp_rows(flat, height, width, mm, NEAREST, affine, cval, dst, oh, ow)
    elif mode == CONSTANT:
        _warp_rows(flat, height, width, mm, CONSTANT, affine, cval, dst, oh, ow)
    elif mode == REFLECT:
        _warp_rows(flat, height, width, mm, REFLECT, affine, cval, dst, oh, ow)
    else:
        _warp_wrap(flat, height, width, mm, affine, dst, oh, ow)


# --------------------------------------------------------------------------------------------
# The warp fused with the pipeline's resize (`tfft.data.resize_kernels`, bitwise `decode.resize`).


@numba.njit(**EXACT)
def resize_warp_batch(raw, shapes, resized, m, mode, cval, out):
    """Resize each image of a decoded batch to out's size (`resize_into`) and warp it by m[i] into
    out[i]; one scratch image, reused, holds each resized image while it is warped."""
    scratch = np.empty(out.shape[1:], f32)
    for i in range(out.shape[0]):
        resize_into(raw, shapes, resized, i, scratch)
        warp(scratch, m[i], mode, cval, out[i])
