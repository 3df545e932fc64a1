"""Reading the mapped columns of a dataset (format ``hf``): dotted paths into struct columns
(:func:`column_path`) and a digest of the values read (:class:`ContentDigest`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any


class ContentDigest:
    """sha256 of the values read from a dataset, independent of how they are batched.

    Each mapped column feeds running hashes: the value lengths (int64 little-endian, -1
    for null; a list column's list lengths go to a hash of their own, one per nesting
    level) and the value bytes (UTF-8; other scalar types as their string form). The
    digest is a sha256 over the column names, the row count and those per-column hashes,
    so it depends only on the values rnnflow reads, in order: not on the cache location,
    the Arrow file layout, the ``datasets``/``pyarrow`` versions or columns the mapping
    leaves out.
    """

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        self.rows = 0
        #: column → (data hash, lengths hash per nesting level)
        self._hashes: dict[str, tuple[Any, dict[int, Any]]] = {
            c: (hashlib.sha256(), {}) for c in self.columns
        }

    def update(self, table: Any) -> None:
        """Feed one ``pyarrow.Table`` holding (at least) the digest's columns."""
        self.rows += table.num_rows
        for col in self.columns:
            data, lengths = self._hashes[col]
            for chunk in table.column(col).chunks:
                _feed(lengths, data, chunk, 0)

    def hexdigest(self) -> str:
        h = hashlib.sha256(json.dumps({"columns": self.columns, "rows": self.rows}).encode())
        for col in self.columns:
            data, lengths = self._hashes[col]
            h.update(b"".join(lengths[d].digest() for d in sorted(lengths)) + data.digest())
        return h.hexdigest()


def _feed(lengths: dict[int, Any], data: Any, arr: Any, depth: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        n = pc.fill_null(pc.list_value_length(arr).cast(pa.int64()), -1)
        level = lengths.setdefault(depth, hashlib.sha256())
        level.update(n.to_numpy(zero_copy_only=False).astype("<i8").tobytes())
        _feed(lengths, data, pc.list_flatten(arr), depth + 1)
        return
    if not pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.large_string())
    n = pc.fill_null(pc.binary_length(arr).cast(pa.int64()), -1)
    lengths.setdefault(depth, hashlib.sha256()).update(
        n.to_numpy(zero_copy_only=False).astype("<i8").tobytes()
    )
    values = pc.fill_null(arr, "")
    if not isinstance(values, pa.Array):
        values = pa.array(values)
    if len(values) == 0:
        return
    offsets_buf, data_buf = values.buffers()[1], values.buffers()[2]
    offsets = np.frombuffer(offsets_buf, dtype="<i8")[
        values.offset : values.offset + len(values) + 1
    ]
    if data_buf is not None and offsets[-1] > offsets[0]:
        data.update(memoryview(data_buf)[int(offsets[0]) : int(offsets[-1])])


def column_path(table: Any, path: str) -> Any:
    """The column ``path`` of a ``pyarrow.Table``: a top-level column, or a dotted path into
    struct columns (``translation.es``) and lists of structs (``messages.content``: a list
    of each message's content). Raises ``KeyError`` naming what exists."""
    if path in table.column_names:
        return table.column(path)
    head, *rest = path.split(".")
    if head not in table.column_names:
        raise KeyError(f"no column {head!r} (have {table.column_names})")
    col = table.column(head).combine_chunks()
    for i, name in enumerate(rest):
        where = ".".join([head, *rest[:i]])
        col = _field(col, name, where)
    return col


def _field(arr: Any, name: str, where: str) -> Any:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    listed = pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)
    struct = arr.type.value_type if listed else arr.type
    fields = [f.name for f in struct] if pa.types.is_struct(struct) else []
    if name not in fields:
        raise KeyError(f"{where} has no field {name!r} (type {arr.type})")
    if not listed:
        return pc.struct_field(arr, name)
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False)
    offsets = pa.array(np.r_[0, np.cumsum(lengths, dtype=np.int64)])
    values = pc.struct_field(arr.flatten(), name)
    return pa.LargeListArray.from_arrays(offsets, values, mask=arr.is_null())
