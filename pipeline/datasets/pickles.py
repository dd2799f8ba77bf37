"""Read a pickled feature file without loading its arrays: a restricted, lazy unpickler.

Feature files (MultiBench, MulT, MMSA) are pickled dicts of numpy arrays. ``pickle.load`` builds
every array in memory (about the file's size, 4-5 GB for MOSEI) before a single row can be used.
`open_pickle` walks the same opcode stream with the pure-Python unpickler, but when it meets the
payload of a large bytes object (``BINBYTES``/``BINBYTES8``/``BYTEARRAY8`` of at least
`LAZY_BYTES`, written outside any protocol-4 frame, which is where both picklers put large
payloads) it records the payload's offset in the file and seeks past it. A numpy array built on
such a payload becomes a `FileArray`: shape, dtype and offset, whose rows are read from the file on
demand (``read(start, stop)``). Everything else (labels, ids, texts, small arrays) is built in
memory as ``pickle.load`` would build it. Protocol-2 pickles store array bytes as latin-1 text,
which cannot be located in the file: their arrays are built in memory (correct, not lazy).

Contracts:

- **Only data, never code.** Globals are limited to what pickled numpy arrays, dtypes and scalars
  need (`ALLOWED`); any other global (``os.system``, a class of some package) refuses the file in
  one line naming it. Nothing the file names is imported.
- **Damage is one line.** A file that is not a pickle (HTML page, zip or gzip archive, zeros from a
  broken mirror), a truncated one, or one that stops parsing raises `PickleFileError` (a
  `UserError`) naming the file, the byte offset and where in the structure it happened (the last
  split and key the parser passed, from ``landmarks``).
- **Row reads are exact.** `FileArray.read` reads exactly the bytes of the rows asked for; a file
  that shrank since it was parsed is an error, never zero rows.
"""

from __future__ import annotations

import io
import pickle
import struct
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmpipe.store.errors import UserError

LAZY_BYTES = 1 << 20  # payloads of at least 1 MiB stay in the file; smaller ones are read
_PEEK = 16  # bytes of a non-pickle file shown in its error


class PickleFileError(UserError):
    """A file that cannot be read as the pickle it should be; the message names the file."""


@dataclass(frozen=True)
class FileArray:
    """A C-ordered numpy array whose bytes lie in ``path`` from ``offset``: rows read on demand."""

    path: Path
    offset: int
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.row_bytes if self.shape else self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, start: int = 0, stop: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``start:stop`` (``(stop - start, *shape[1:])`` in the stored dtype), read straight
        into ``out`` when it is given (C-contiguous, that shape and dtype)."""
        stop = self.shape[0] if stop is None else stop
        if not 0 <= start <= stop <= self.shape[0]:
            raise IndexError(f"rows {start}:{stop} outside 0:{self.shape[0]}")
        shape = (stop - start, *self.shape[1:])
        if out is None:
            out = np.empty(shape, dtype=self.dtype)
        elif out.shape != shape or out.dtype != self.dtype or not out.flags.c_contiguous:
            raise ValueError(f"out must be C-contiguous {self.dtype} {shape}, got {out.dtype} {out.shape}")
        want = out.nbytes
        if want:
            with open(self.path, "rb", buffering=0) as handle:
                handle.seek(self.offset + start * self.row_bytes)
                got = handle.readinto(memoryview(out.reshape(-1).view(np.uint8)))
            if got != want:
                raise PickleFileError(f"{self.path}: ended {want - (got or 0)} bytes early while reading rows "
                                      f"{start}:{stop} of a {self.dtype} array (has the file changed since it "
                                      "was opened?)")
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self.read()
        return whole if dtype is None else whole.astype(dtype, copy=False)


Array = np.ndarray | FileArray


@dataclass(frozen=True)
class _Span:
    """A bytes payload left in the file."""

    offset: int
    size: int


class _PendingArray:
    """What ``numpy ... _reconstruct(ndarray, (0,), b'b')`` returns here; its ``__setstate__``
    (the BUILD that follows) receives shape, dtype and bytes and settles what it becomes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.value: Any = None

    def __setstate__(self, state: tuple) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError(f"a numpy array's state is {type(state).__name__}, not a 4/5-tuple")
        shape, dtype, fortran, data = state[-4:]
        self.value = _array(self.path, data, np.dtype(dtype), tuple(int(n) for n in shape),
                            "F" if fortran else "C")


def _array(path: Path, data: Any, dtype: np.dtype, shape: tuple[int, ...], order: str) -> Array:
    if dtype.hasobject:  # an object array: its elements were pickled one by one (a list)
        values = np.empty(len(data), dtype=object)
        values[:] = [v.value if isinstance(v, _PendingArray) else v for v in data]
        return values.reshape(shape, order=order)
    if isinstance(data, _Span):
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if expected != data.size:
            raise pickle.UnpicklingError(f"an array of {shape} {dtype} holds {data.size} bytes, not {expected}")
        if order == "C" or len(shape) < 2:
            return FileArray(path, data.offset, shape, dtype)
        flat = FileArray(path, data.offset, (expected // dtype.itemsize,), dtype).read()
        return np.ascontiguousarray(flat.reshape(shape, order="F"))
    if isinstance(data, str):  # protocol 2 without _codecs (Python 2 str read as latin-1 text)
        data = data.encode("latin1")
    return np.frombuffer(bytes(data), dtype=dtype).reshape(shape, order=order).copy()


def _reconstruct(subtype: Any, shape: Any, code: Any, path: Path) -> _PendingArray:
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"numpy array subclass {getattr(subtype, '__name__', subtype)!r}")
    return _PendingArray(path)


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: str, path: Path) -> Array:
    return _array(path, buffer, np.dtype(dtype), tuple(int(n) for n in shape), order)


def _encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode``: how protocol 2 pickles bytes (numpy's array payloads among them)."""
    return text.encode(encoding)


# (module, name) -> a factory of the callable the file may name, given the file's path
ALLOWED: dict[tuple[str, str], Callable[[Path], Any]] = {
    **{(module, "_reconstruct"): (lambda path: lambda *a: _reconstruct(*a, path=path))
       for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(module, "_frombuffer"): (lambda path: lambda *a: _frombuffer(*a, path=path))
       for module in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): lambda path: np.ndarray,
    ("numpy", "dtype"): lambda path: np.dtype,
    ("_codecs", "encode"): lambda path: _encode,
    ("collections", "OrderedDict"): lambda path: OrderedDict,
    ("builtins", "set"): lambda path: set,
    ("builtins", "frozenset"): lambda path: frozenset,
    ("builtins", "bytearray"): lambda path: bytearray,
    ("builtins", "complex"): lambda path: complex,
    ("builtins", "bytes"): lambda path: bytes,  # protocol 2: an empty bytes object
    ("__builtin__", "bytes"): lambda path: bytes,
    ("__builtin__", "set"): lambda path: set,  # Python 2 spellings
    ("__builtin__", "bytearray"): lambda path: bytearray,
}


def _scalar(dtype: Any, data: Any = None) -> Any:
    """``numpy ... scalar(dtype, bytes)``: one numpy scalar."""
    if data is None:
        return np.zeros((), dtype=dtype)[()]
    if isinstance(data, str):
        data = data.encode("latin1")
    return np.frombuffer(bytes(data), dtype=dtype, count=1)[0]


for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    ALLOWED[(_module, "scalar")] = lambda path: _scalar


class _Truncated(Exception):
    def __init__(self, wanted: int, got: int, payload: bool = False) -> None:
        self.wanted, self.got, self.payload = wanted, got, payload


class _LazyUnpickler(pickle._Unpickler):  # the pure-Python unpickler: its opcodes can be overridden
    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, handle: io.BufferedReader, path: Path, size: int, landmarks: tuple[Collection[str],
                 Collection[str]]) -> None:
        super().__init__(handle, encoding="latin1")
        self._handle, self._path, self._size = handle, path, size
        self._splits, self._keys = landmarks
        self.split: str | None = None
        self.key: str | None = None
        read = handle.read

        def exact_read(n: int) -> bytes:
            data = read(n)
            if len(data) != n:
                raise _Truncated(n, len(data))
            return data

        self._file_read = exact_read

    # -- where am I: the last split and key names the parser passed ---------------------------------
    def _note(self) -> None:
        value = self.stack[-1] if self.stack else None
        if type(value) is str:
            if value in self._splits:
                self.split, self.key = value, None
            elif value in self._keys:
                self.key = value

    def where(self) -> str:
        if self.split is None:
            return "before any split"
        return f"split {self.split!r}" + (f", key {self.key!r}" if self.key else "")

    # -- large payloads stay in the file --------------------------------------------------------------
    def _payload(self, n: int) -> Any:
        frame = self._unframer.current_frame
        if frame is not None:
            if frame.read(1):
                frame.seek(-1, io.SEEK_CUR)
                return self.read(n)  # inside a frame: small by construction
            self._unframer.current_frame = None
        if n < LAZY_BYTES:
            return self.read(n)
        offset = self._handle.tell()
        if offset + n > self._size:
            raise _Truncated(n, self._size - offset, payload=True)
        self._handle.seek(n, io.SEEK_CUR)
        return _Span(offset, n)

    def find_class(self, module: str, name: str) -> Any:
        factory = ALLOWED.get((module, name))
        if factory is None:
            raise PickleFileError(f"{self._path}: {self.where()}: the pickle refers to {module}.{name}, which no "
                                  "feature file holds (a pickle can run code); not loaded")
        return factory(self._path)


def _load_binbytes(self: _LazyUnpickler) -> None:
    (n,) = struct.unpack("<I", self.read(4))
    self.append(self._payload(n))


def _load_binbytes8(self: _LazyUnpickler) -> None:
    (n,) = struct.unpack("<Q", self.read(8))
    self.append(self._payload(n))


def _load_bytearray8(self: _LazyUnpickler) -> None:
    (n,) = struct.unpack("<Q", self.read(8))
    payload = self._payload(n)
    self.append(payload if isinstance(payload, _Span) else bytearray(payload))


def _noting(load: Callable[[Any], None]) -> Callable[[Any], None]:
    def noted(self: _LazyUnpickler) -> None:
        load(self)
        self._note()

    return noted


_LazyUnpickler.dispatch[pickle.BINBYTES[0]] = _load_binbytes
_LazyUnpickler.dispatch[pickle.BINBYTES8[0]] = _load_binbytes8
_LazyUnpickler.dispatch[pickle.BYTEARRAY8[0]] = _load_bytearray8
for _opcode in (pickle.SHORT_BINUNICODE, pickle.BINUNICODE, pickle.BINUNICODE8, pickle.UNICODE, pickle.BINGET,
                pickle.LONG_BINGET, pickle.GET, pickle.SHORT_BINSTRING, pickle.BINSTRING):
    _LazyUnpickler.dispatch[_opcode[0]] = _noting(pickle._Unpickler.dispatch[_opcode[0]])


def _what_it_is(head: bytes) -> str:
    """A guess at what a non-pickle file is, from its first bytes."""
    known = {b"PK\x03\x04": "a zip archive (unzip it first)", b"\x1f\x8b": "gzip-compressed (gunzip it first)",
             b"\x89HDF": "an HDF5 file (the SDK's .csd/.hdf5, not a feature pickle)",
             b"version https://git-lfs": "a git-lfs pointer (fetch the file with `git lfs pull`)"}
    for magic, what in known.items():
        if head.startswith(magic):
            return what
    if head.lstrip().lower().startswith((b"<!doctype", b"<html")):
        return "an HTML page (a download link's error or sign-in page)"
    if head and not head.strip(b"\x00"):
        return "zeros (an incomplete or broken download)"
    return f"it starts with {head[:_PEEK]!r}"


def open_pickle(path: Path, landmarks: tuple[Collection[str], Collection[str]] = ((), ())) -> Any:
    """The object pickled in ``path``, its large arrays as `FileArray` (see the module docstring).

    ``landmarks`` = (split names, key names) whose last occurrence locates an error in the file.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(64)
        if size == 0:
            raise PickleFileError(f"{path}: the file is empty (0 bytes), not a pickle")
        if head[:1] != pickle.PROTO or len(head) < 2 or not 2 <= head[1] <= pickle.HIGHEST_PROTOCOL:
            raise PickleFileError(f"{path}: not a pickle file: {_what_it_is(head)}")
        handle.seek(0)
        unpickler = _LazyUnpickler(handle, path, size, landmarks)
        try:
            loaded = unpickler.load()
        except _Truncated as cut:
            place = (f"inside the array data of {unpickler.where()} ({cut.wanted:,} bytes, {cut.got:,} left)"
                     if cut.payload else f"after {unpickler.where()}")
            raise PickleFileError(f"{path}: truncated ({size:,} bytes): the file ends {place}; an incomplete "
                                  "download? (compare its size and checksum with the source)") from None
        except PickleFileError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
                struct.error, UnicodeDecodeError, MemoryError, RecursionError) as error:
            offset = handle.tell()
            detail = (str(error).strip().splitlines() or [type(error).__name__])[0][:120]
            raise PickleFileError(f"{path}: not a readable pickle at byte {offset:,} of {size:,}, in "
                                  f"{unpickler.where()} ({type(error).__name__}: {detail})") from None
        trailing = size - handle.tell()
    if trailing > 0:
        raise PickleFileError(f"{path}: {trailing:,} bytes follow the end of the pickle (two files joined, or a "
                              "damaged download)")
    return _settle(loaded, {})


def _settle(value: Any, seen: dict[int, Any]) -> Any:
    """Replace every pending array by what it became, through dicts, lists and tuples."""
    key = id(value)
    if key in seen:
        return seen[key]
    if isinstance(value, _PendingArray):
        if value.value is None:
            raise PickleFileError(f"{value.path}: a numpy array without its data (a damaged pickle)")
        result: Any = value.value
    elif isinstance(value, dict):
        result = type(value)() if isinstance(value, OrderedDict) else {}
        seen[key] = result
        for k, v in value.items():
            result[k] = _settle(v, seen)
        return result
    elif isinstance(value, list):
        result = []
        seen[key] = result
        result.extend(_settle(v, seen) for v in value)
        return result
    elif isinstance(value, tuple):
        result = tuple(_settle(v, seen) for v in value)
    else:
        result = value
    seen[key] = result
    return result

