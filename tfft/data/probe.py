"""Header probing and the scan: what each image file is, and whether it decodes.

Every image file is probed once (PIL reads only the header: format, mode, size, EXIF orientation)
and given a decode *route* (`tfft.data.decode.ROUTE_TF` or `ROUTE_PIL`, see `tfft.data.decode`);
`scan_files` probes many files in parallel and verifies that each one decodes (JPEGs at 1/8
scale), so unreadable files are found when a source is listed, never mid-epoch. The persistent
index (`tfft.data.index`) keeps these results on disk between processes.
"""

from __future__ import annotations

import dataclasses
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np

from tfft.data import decode as _decode
from tfft.data import fs as _fs
from tfft.data import streams
from tfft.data.decode import ROUTE_PIL, ROUTE_TF, exif_orientation, pil_decode_checked, quiet_pil


@dataclass
class Probe:
    """What the header scan learned about one file.

    `route` is `ROUTE_TF`, `ROUTE_PIL`, or None when the file is unreadable (`reason` says why).
    `kinds` tags odd formats: cmyk, 16bit, palette, grayscale, alpha, exif_rotated, animated,
    large, webp, gif, bmp, tiff, progressive.
    """

    path: str
    route: Optional[int] = None
    reason: Optional[str] = None
    format: Optional[str] = None
    mode: Optional[str] = None
    width: int = 0
    height: int = 0
    orientation: int = 1
    kinds: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.route is not None


def _png_bit_depth(source: Union[str, bytes]) -> int:
    try:
        if isinstance(source, bytes):
            head = source[:26]
        else:
            with open(source, "rb") as handle:
                head = handle.read(26)
        return head[24] if len(head) >= 26 and head[:8] == b"\x89PNG\r\n\x1a\n" else 8
    except OSError:
        return 8


@dataclass
class _Header:
    """What the header says beyond `Probe`'s fields, for the format rules."""

    transparency: bool
    animated: bool
    progressive: bool
    source: Union[str, bytes]  # the file, or its bytes (PNG's bit depth is read from it)


def probe_header(path: Union[str, os.PathLike, bytes]) -> Probe:
    """Read one file's header (no pixel decoding) and choose its decode route.

    The header is read (`_read_header`), the size checked, then the rules of the file's format
    family (`FORMAT_RULES`: JPEG, PNG, GIF, BMP, WebP; any other format goes to PIL) and the rules
    every format shares (`_shared_rules`) tag its kinds and say whether TensorFlow decodes it
    exactly as PIL would.

    Args:
        path: an image file, or its encoded bytes.

    Returns:
        A `Probe`; `probe.route is None` with a `reason` when the header cannot be read.

    Example:
    >>> probe_header("photos/cat/001.jpg").route  # doctest: +SKIP
    0
    """
    data = bytes(path) if isinstance(path, (bytes, bytearray)) else None
    probe = Probe(path="<bytes>" if data is not None else os.fspath(path))
    header = _read_header(probe, data)
    if header is None:
        return probe
    pixels = probe.width * probe.height
    if pixels <= 0:
        probe.reason = f"image has no pixels ({probe.width}x{probe.height})"
        return probe
    if pixels > _decode.MAX_PIXELS:
        probe.reason = (f"image too large ({probe.width}x{probe.height} = {pixels:,} pixels "
                        f"> {_decode.MAX_PIXELS:,})")
        return probe
    if probe.format == "MPO":  # multi-picture JPEG from cameras: TF reads the first picture too
        probe.format = "JPEG"
    family_native = FORMAT_RULES.get(probe.format, _other_format)(probe, header)
    native = _shared_rules(probe, header, pixels) and family_native
    probe.route = ROUTE_TF if native else ROUTE_PIL
    return probe


def _read_header(probe: Probe, data: Optional[bytes]) -> Optional[_Header]:
    """Open the file with PIL (header only) and fill `probe`'s format, mode, size and
    orientation; None, with `probe.reason` set, when it cannot be read."""
    from PIL import Image

    try:
        size = len(data) if data is not None else os.path.getsize(probe.path)
    except OSError as exc:
        probe.reason = f"cannot read file ({exc.strerror or exc})"
        return None
    if size == 0:
        probe.reason = "empty file (0 bytes)"
        return None
    quiet_pil()
    try:
        img = Image.open(io.BytesIO(data) if data is not None else probe.path)
        try:
            fmt, mode = img.format, img.mode
            width, height = img.size
            orientation = exif_orientation(img) if fmt in ("JPEG", "PNG", "WEBP", "TIFF", "MPO") else 1
            header = _Header(
                transparency="transparency" in img.info,
                animated=bool(getattr(img, "is_animated", False)) if fmt in ("WEBP",) else False,
                progressive=bool(img.info.get("progressive") or img.info.get("progression")),
                source=data if data is not None else probe.path)
        finally:
            img.close()
    except Image.DecompressionBombError:
        probe.reason = "image too large (PIL decompression-bomb limit)"
        return None
    except Exception as exc:  # PIL raises many types for garbage
        probe.reason = f"not a readable image ({_short(exc)})"
        return None
    probe.format, probe.mode, probe.width, probe.height, probe.orientation = (
        fmt, mode, width, height, orientation)
    return header


# One rule per format family: tag the file's kinds, return whether TF decodes it natively.
def _jpeg(probe: Probe, header: _Header) -> bool:
    native = True
    if probe.mode in ("CMYK", "YCbCr"):
        probe.kinds.append("cmyk")
        native = False
    elif probe.mode not in ("RGB", "L"):
        native = False
    if header.progressive:
        probe.kinds.append("progressive")
    return native


def _png(probe: Probe, header: _Header) -> bool:
    if _png_bit_depth(header.source) == 16:
        probe.kinds.append("16bit")
    return probe.mode in ("RGB", "RGBA", "L", "LA", "P", "I;16", "I;16B", "I;16L", "I", "1")


def _gif(probe: Probe, header: _Header) -> bool:
    probe.kinds.append("gif")
    return not header.transparency  # TF blanks transparent pixels; PIL keeps the palette colour


def _bmp(probe: Probe, header: _Header) -> bool:
    probe.kinds.append("bmp")
    return probe.mode in ("RGB", "RGBA")  # TF misreads palette BMPs


def _webp(probe: Probe, header: _Header) -> bool:
    probe.kinds.append("webp")
    if header.animated:
        probe.kinds.append("animated")
        return False
    return True


def _other_format(probe: Probe, header: _Header) -> bool:
    probe.kinds.append(str(probe.format).lower())  # TIFF and the rest: PIL decodes them
    return False


FORMAT_RULES = {"JPEG": _jpeg, "PNG": _png, "GIF": _gif, "BMP": _bmp, "WEBP": _webp}


def _shared_rules(probe: Probe, header: _Header, pixels: int) -> bool:
    """The kinds any format can have (palette, grayscale, alpha, EXIF rotation, large); False
    when one of them sends the file to PIL."""
    mode, kinds = probe.mode, probe.kinds
    if mode == "P" or mode == "PA":
        kinds.append("palette")
    if mode in ("L", "LA", "1", "I", "I;16", "I;16B", "I;16L", "F"):
        kinds.append("grayscale")
    if "A" in mode or header.transparency:
        kinds.append("alpha")
    native = True
    if probe.orientation != 1:
        kinds.append("exif_rotated")
        native = False
    if pixels > _decode.LARGE_PIXELS:
        kinds.append("large")
        native = False
    return native


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def _verify_pil(probe: Probe) -> Probe:
    """Fully decode a PIL-routed file (cheaply, at 1/8 scale for JPEG) to catch truncation."""
    try:
        arr = pil_decode_checked(probe.path, (8, 8), True, verify=True)
        if arr.ndim != 3 or arr.shape[-1] != 3 or arr.size == 0:
            raise ValueError(f"decoded to shape {arr.shape}")
    except Exception as exc:
        probe.route = None
        probe.reason = f"cannot decode ({_short(exc)})"
    return probe


def _verify_tf(probes: list[Probe]) -> None:
    """Decode TF-routed files with TF itself (exact); mark those that fail as unreadable.

    Runs as one parallel tf.data pass with `ignore_errors`, so it costs about one decode of each
    file (JPEGs at 1/8 scale: the entropy decoding, where truncation shows, is still complete).
    """
    if not probes:
        return
    import tensorflow as tf

    paths = [p.path for p in probes]

    def check(index, path):
        data = tf.io.read_file(path)
        image = tf.cond(
            tf.io.is_jpeg(data),
            lambda: tf.io.decode_jpeg(data, channels=3, ratio=8),
            lambda: tf.io.decode_image(data, channels=3, expand_animations=False))
        return index, tf.shape(image)

    ds = tf.data.Dataset.from_tensor_slices((np.arange(len(paths), dtype=np.int64), paths))
    ds = ds.map(check, num_parallel_calls=streams.PARALLEL, deterministic=False)
    ds = ds.ignore_errors().batch(1024).with_options(streams.options())
    good = np.zeros(len(paths), dtype=bool)
    for index, _ in ds.as_numpy_iterator():
        good[index] = True
    for probe, ok in zip(probes, good):
        if not ok:
            # Ask PIL for a reason, and use it when PIL reads what TF could not.
            _verify_pil(probe)
            if probe.ok:
                probe.route = ROUTE_PIL
            elif not probe.reason:
                probe.reason = "cannot decode (TensorFlow rejected the image data)"


_CACHE: dict[tuple[str, int, int], Probe] = {}


def _cache_key(path: str) -> Optional[tuple[str, int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.path.abspath(path), st.st_mtime_ns, st.st_size)


def remember(probe: Probe, absolute: str, stat: tuple[int, int, int]) -> None:
    """Keep a verified `probe` found elsewhere (the persistent index, `tfft.data.index`) for this
    process's later scans; `absolute` is its path made absolute, `stat` the file's (size,
    mtime_ns, inode) it was verified for."""
    _CACHE[(absolute, stat[1], stat[0])] = probe


def scan_files(paths: Sequence[Union[str, os.PathLike]], *, verify: bool = True,
               workers: Optional[int] = None) -> list[Probe]:
    """Probe and (optionally) fully verify image files, in parallel, with an in-memory cache.

    The header probe runs in a thread pool; verification decodes each file once: TF-routed files
    with TF in one parallel tf.data pass (exactly what training will do), PIL-routed files with
    PIL in the thread pool. Results are cached per (path, mtime, size) for the process.

    Args:
        paths: image files.
        verify: also decode fully to catch truncated or corrupt data (default True).
        workers: threads for the probe (default: 4 per CPU, at most 32).

    Returns:
        One `Probe` per path, in order.

    Example:
    >>> bad = [p for p in scan_files(["a.jpg", "b.png"]) if not p.ok]  # doctest: +SKIP
    """
    paths = [os.fspath(p) for p in paths]
    results: list[Optional[Probe]] = [None] * len(paths)
    todo: list[int] = []
    keys = [_cache_key(p) for p in paths]
    for i, key in enumerate(keys):
        cached = _CACHE.get(key) if key is not None else None
        if cached is not None:
            results[i] = dataclasses.replace(cached, path=paths[i], kinds=list(cached.kinds))
        else:
            todo.append(i)
    workers = workers or min(32, 4 * (os.cpu_count() or 1))
    if todo:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            probes = list(pool.map(probe_header, [paths[i] for i in todo]))
        if verify:
            _verify_tf([p for p in probes if p.route == ROUTE_TF])
            pil = [p for p in probes if p.route == ROUTE_PIL]
            if pil:
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    list(pool.map(_verify_pil, pil))
        for i, probe in zip(todo, probes):
            results[i] = probe
            if verify and keys[i] is not None:
                _CACHE[keys[i]] = probe
    return [r for r in results if r is not None]


REMOTE_NEEDS_PIL = ("needs PIL decoding (EXIF rotation, CMYK, 16-bit, ...), which reads local files only; "
                    "copy the folder to a local disk or `tfft data pack` it")


def _probe_remote(path: str) -> Probe:
    try:
        probe = dataclasses.replace(probe_header(_fs.read_bytes(path)), path=path)
    except Exception as exc:  # a file the file system cannot read
        return Probe(path=path, reason=f"cannot read file ({type(exc).__name__})")
    if probe.route == ROUTE_PIL:
        probe.route, probe.reason = None, REMOTE_NEEDS_PIL
    return probe


def scan_remote(paths: Sequence[str], workers: Optional[int] = None) -> list[Probe]:
    """Probe files on another file system (`gs://`, `ram://`, ...) from their bytes (read once
    through `tf.io.gfile`, in a thread pool). Such files must decode with TensorFlow's own decoders:
    one that needs PIL (EXIF rotation, CMYK, 16-bit) gets `route None` and `REMOTE_NEEDS_PIL`.

    Example:
    >>> [p.ok for p in scan_remote(["ram://photos/cat/1.jpg"])]  # doctest: +SKIP
    [True]
    """
    paths = [os.fspath(p) for p in paths]
    if len(paths) < 2:
        return [_probe_remote(p) for p in paths]
    with ThreadPoolExecutor(max_workers=workers or min(32, 4 * (os.cpu_count() or 1))) as pool:
        return list(pool.map(_probe_remote, paths))


def clear_cache() -> None:
    """Forget every cached scan result."""
    _CACHE.clear()


__all__ = ["Probe", "probe_header", "scan_files", "scan_remote", "clear_cache", "remember", "REMOTE_NEEDS_PIL"]
