"""numba kernels of `tfft.augment.cpu_warp` (imported lazily: importing numba takes a moment)."""

from __future__ import annotations

import numba
import numpy as np

f32 = np.float32
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
def _warp(src, height, width, m, mode, affine, cval, out, out_height, out_width):
    """Bilinear warp of flat src [H*W*3] by m [9] into flat out [H'*W'*3] (float32).

    The arithmetic of `geometry._gather_warp`, pixel by pixel. `mode` is a constant at each call
    site in `warp`, so LLVM compiles one loop per fill mode without the other modes' branches;
    `affine` stays a runtime flag (own call sites for it too measured 3% faster, not worth four
    more copies).
    """
    one, tol = f32(1.0), f32(1e-3)
    top_x, top_y = f32(width - 1), f32(height - 1)
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8]
    k = 0
    for i in range(out_height):
        yi = f32(i)
        for j in range(out_width):
            xj = f32(j)
            x = m00 * xj + m01 * yi + m02
            y = m10 * xj + m11 * yi + m12
            if not affine:
                w = m20 * xj + m21 * yi + m22
                x = min(max(x / w, -COORD_LIMIT), COORD_LIMIT)
                y = min(max(y / w, -COORD_LIMIT), COORD_LIMIT)
            if mode == CONSTANT and (x < -tol or x > top_x + tol or y < -tol or y > top_y + tol):
                out[k] = cval
                out[k + 1] = cval
                out[k + 2] = cval
                k += 3
                continue
            if mode == WRAP:
                x, y = scipy_wrap(x, top_x), scipy_wrap(y, top_y)
            x0f, y0f = np.floor(x), np.floor(y)
            fx, fy = x - x0f, y - y0f
            x0, y0 = int(x0f), int(y0f)
            x1, y1 = x0 + 1, y0 + 1
            if mode == REFLECT:
                x0, x1 = reflect(x0, width), reflect(x1, width)
                y0, y1 = reflect(y0, height), reflect(y1, height)
            else:
                x0, x1 = min(max(x0, 0), width - 1), min(max(x1, 0), width - 1)
                y0, y1 = min(max(y0, 0), height - 1), min(max(y1, 0), height - 1)
            p00, p01 = (y0 * width + x0) * 3, (y0 * width + x1) * 3
            p10, p11 = (y1 * width + x0) * 3, (y1 * width + x1) * 3
            gx, gy = one - fx, one - fy
            for c in range(3):
                top = f32(src[p00 + c]) * gx + f32(src[p01 + c]) * fx
                bottom = f32(src[p10 + c]) * gx + f32(src[p11 + c]) * fx
                out[k + c] = top * gy + bottom * fy
            k += 3


@numba.njit(**_JIT)
def warp(src, m, mode, cval, out):
    """Warp src [H, W, 3] (any real dtype, C-contiguous) by m [3, 3] into out [H', W', 3] float32.

    `mode`: 0 nearest, 1 constant (cval), 2 reflect, 3 wrap.
    """
    height, width = src.shape[0], src.shape[1]
    oh, ow = out.shape[0], out.shape[1]
    flat, dst, mm = src.reshape(-1), out.reshape(-1), m.reshape(-1)
    affine = mm[6] == f32(0.0) and mm[7] == f32(0.0) and mm[8] == f32(1.0)
    # One call site per fill mode: each compiles to its own loop.
    if mode == NEAREST:
        _warp(flat, height, width, mm, NEAREST, affine, cval, dst, oh, ow)
    elif mode == CONSTANT:
        _warp(flat, height, width, mm, CONSTANT, affine, cval, dst, oh, ow)
    elif mode == REFLECT:
        _warp(flat, height, width, mm, REFLECT, affine, cval, dst, oh, ow)
    else:
        _warp(flat, height, width, mm, WRAP, affine, cval, dst, oh, ow)
