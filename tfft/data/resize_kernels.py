"""numba kernels of the pipeline's resize: `tfft.data.decode.resize`, bitwise, on the CPU.

Imported lazily (importing numba takes a moment) by `tfft.data.pipeline.resize_decoded` and by the
augmentation's fused resize-and-warp (`tfft.augment.cpu_kernels`).

TensorFlow's x86-64 wheels are built without FMA, so its resize kernels round every multiply and
add on their own: these loops are compiled without `contract` to do the same, in TF's order
(bitwise there: `tests/data/test_resize_kernels.py`; where TF's build fuses them, to float
rounding). `fastmath=False` must be explicit: numba compiles a callee with its caller's fastmath
flags unless the callee sets its own (seen here: the warp's `contract` reached the resize).
"""

from __future__ import annotations

import numba
import numpy as np

f32, i32, u64 = np.float32, np.int32, np.uint64
EXACT = dict(nogil=True, cache=True, error_model="numpy", fastmath=False)
FLT_MIN = f32(1.1754943508222875e-38)


@numba.njit(**EXACT)
def _bilinear_taps(out_size, in_size, channels, lower, upper, lerp):
    """TF's `compute_interpolation_weights(HalfPixelScaler)`: per output index the two source
    indices (times `channels`, plus the channel) and the weight of the upper one."""
    scale = f32(in_size) / f32(out_size)
    top = i32(in_size - 1)
    for i in range(out_size):
        x = (f32(i) + f32(0.5)) * scale - f32(0.5)
        xf = np.floor(x)
        lo, hi = max(i32(xf), i32(0)), min(i32(np.ceil(x)), top)
        for c in range(channels):
            lower[i * channels + c], upper[i * channels + c] = lo * channels + c, hi * channels + c
            lerp[i * channels + c] = x - xf


@numba.njit(**EXACT)
def resize_bilinear(src, out):
    """`tf.image.resize(float32(src), out.shape[:2], "bilinear", antialias=False)` into out.

    TF's `compute_lerp(tl, tr, bl, br, fx, fy)` is `top + (bottom - top) * fy` with `top` and
    `bottom` interpolated along x: each source row is interpolated along x once (the same `top`
    for every output row that reads it), then output rows blend two of them, both passes
    contiguous. 0.10 ms of CPU for 180x180 -> 224x224 here, TF's kernel 0.13 ms
    (`benchmarks/bench_warp_kernel.py`).
    """
    height, width = src.shape[0], src.shape[1]
    oh, ow = out.shape[0], out.shape[1]
    flat, dst, n = src.reshape(-1), out.reshape(-1), ow * 3
    xl, xu, xf = np.empty(n, i32), np.empty(n, i32), np.empty(n, f32)
    yl, yu, yf = np.empty(oh, i32), np.empty(oh, i32), np.empty(oh, f32)
    _bilinear_taps(ow, width, 3, xl, xu, xf)
    _bilinear_taps(oh, height, 1, yl, yu, yf)
    rows = np.empty((height, n), f32)
    for r in range(yl[0], yu[oh - 1] + 1):
        base, row = u64(r * width * 3), rows[r]
        for k in range(n):
            a, b = f32(flat[base + u64(xl[k])]), f32(flat[base + u64(xu[k])])
            row[k] = a + (b - a) * xf[k]
    for i in range(oh):
        top, bottom, fy, start = rows[yl[i]], rows[yu[i]], yf[i], i * n
        for k in range(n):
            t = top[k]
            dst[start + k] = t + (bottom[k] - t) * fy


@numba.njit(**EXACT)
def _triangle_spans(out_size, in_size):
    """TF's `ComputeSpansCore` for the triangle kernel with antialiasing (scale out/in, no
    translation): the first source index of each output index and its normalised weights."""
    inv_scale = f32(1.0) / (f32(out_size) / f32(in_size))
    kernel_scale = max(inv_scale, f32(1.0))
    span = min(2 * int(np.ceil(kernel_scale)) + 1, in_size)
    starts, weights = np.zeros(out_size, i32), np.zeros((out_size, span), f32)
    one_over, taps = f32(1.0) / kernel_scale, np.empty(span, f32)
    for x in range(out_size):
        sample = (f32(x) + f32(0.5)) * inv_scale
        if sample < f32(0.0) or sample > f32(in_size):
            continue
        start = min(max(int(np.ceil(sample - kernel_scale - f32(0.5))), 0), in_size - 1)
        end = min(max(int(np.floor(sample + kernel_scale - f32(0.5))), 0), in_size - 1) + 1
        total = f32(0.0)
        for t in range(end - start):
            d = abs((f32(start + t) + f32(0.5) - sample) * one_over)
            taps[t] = f32(1.0) - d if d < f32(1.0) else f32(0.0)
            total += taps[t]
        if abs(total) >= f32(1000.0) * FLT_MIN:
            inverse = f32(1.0) / total
            for t in range(end - start):
                weights[x, t] = taps[t] * inverse
        starts[x] = start
    return starts, weights


@numba.njit(**EXACT)
def _add_scaled(dst, weight, src):
    for k in range(dst.shape[0]):
        dst[k] += weight * f32(src[k])


@numba.njit(**EXACT)
def resize_antialias(src, out):
    """`clip(tf.image.resize(float32(src), out.shape[:2], "bilinear", antialias=True), 0, 255)`.

    TF's `ScaleAndTranslate` (triangle kernel): rows first (`GatherRows`), then columns
    (`GatherColumns`), each output a sum from 0 over the span in order. Here the column pass runs
    tap by tap over a whole output row (the same additions per output, in the same order), over a
    zero-padded row so taps past the edge add `0 * 0`. 0.41 ms of CPU for 375x500 -> 224x224
    here, TF's kernel 1.7 ms (`benchmarks/bench_warp_kernel.py`).
    """
    height, width = src.shape[0], src.shape[1]
    oh, ow = out.shape[0], out.shape[1]
    row_starts, row_weights = _triangle_spans(oh, height)
    col_starts, col_weights = _triangle_spans(ow, width)
    flat, dst, n = src.reshape(-1), out.reshape(-1), width * 3
    row_span, col_span = row_weights.shape[1], col_weights.shape[1]
    padded = np.zeros(n + 3 * col_span, f32)
    mid = padded[:n]
    offsets, weights = np.empty((col_span, ow), i32), np.empty((col_span, ow), f32)
    for t in range(col_span):
        for x in range(ow):
            offsets[t, x], weights[t, x] = (col_starts[x] + t) * 3, col_weights[x, t]
    for y in range(oh):
        mid[:] = f32(0.0)
        start = row_starts[y]
        for t in range(min(start + row_span, height) - start):
            _add_scaled(mid, row_weights[y, t], flat[(start + t) * n:(start + t + 1) * n])
        acc = dst[y * ow * 3:(y + 1) * ow * 3]
        acc[:] = f32(0.0)
        for t in range(col_span):
            offset, weight = offsets[t], weights[t]
            for x in range(ow):
                p, w = u64(offset[x]), weight[x]
                acc[3 * x] += w * padded[p]
                acc[3 * x + 1] += w * padded[p + u64(1)]
                acc[3 * x + 2] += w * padded[p + u64(2)]
        for k in range(ow * 3):
            acc[k] = min(max(acc[k], f32(0.0)), f32(255.0))


@numba.njit(**EXACT)
def resize(src, out):
    """`tfft.data.decode.resize` of src [h, w, 3] (any real dtype) into out [H, W, 3] float32:
    antialiased when either side shrinks, plain bilinear otherwise, a cast when sizes agree."""
    height, width, oh, ow = src.shape[0], src.shape[1], out.shape[0], out.shape[1]
    if height > oh or width > ow:
        resize_antialias(src, out)
    elif height == oh and width == ow:
        flat, dst = src.reshape(-1), out.reshape(-1)
        for k in range(dst.shape[0]):
            dst[k] = f32(flat[k])
    else:
        resize_bilinear(src, out)


@numba.njit(**EXACT)
def resize_into(raw, shapes, resized, i, out):
    """Image i of a decoded batch (see `tfft.data.DecodedBatch`) resized into out [H, W, 3].

    raw [B, L] uint8: image i's h*w*3 values first (`shapes[i]` = (h, w, 3)), through `resize`;
    an image with shapes[i, 0] == 0 is already resized, in `resized[i]` ([B, H*W*3] float32).
    """
    height, width, three = np.int64(shapes[i, 0]), np.int64(shapes[i, 1]), np.int64(3)
    if height == 0:
        out[:] = resized[i].reshape(out.shape)
    else:
        resize(raw[i, :height * width * three].reshape((height, width, three)), out)


@numba.njit(**EXACT)
def resize_batch(raw, shapes, resized, out):
    """Every image of a decoded batch resized (`resize_into`) into out [B, H, W, 3]."""
    for i in range(out.shape[0]):
        resize_into(raw, shapes, resized, i, out[i])
