"""The pandas frame Great Expectations checks (:func:`view`): GX checks scalar columns, so
list columns are summarised into derived scalar columns before validation: ``<col>.len``
(elements; characters for strings), ``<col>.min`` and ``<col>.max`` (numeric lists)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


def _list_summary(col: pa.ChunkedArray | pa.Array, name: str) -> dict[str, pa.Array]:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    out: dict[str, pa.Array] = {}
    typ = arr.type
    if pa.types.is_fixed_size_list(typ) or pa.types.is_list(typ) or pa.types.is_large_list(typ):
        lengths = pc.list_value_length(arr)
        out[f"{name}.len"] = lengths
        inner = typ.value_type
        if pa.types.is_integer(inner) or pa.types.is_floating(inner):
            stats = _row_min_max(arr)
            if stats is None:
                stats = _row_min_max_grouped(arr)
            # Rows with empty lists get null min/max (and are caught by .len checks).
            for stat, full in zip(("min", "max"), stats):
                out[f"{name}.{stat}"] = pa.array(full, from_pandas=True)
    elif pa.types.is_string(typ) or pa.types.is_large_string(typ):
        out[f"{name}.len"] = pc.utf8_length(arr)
        # + the word separator a SentencePiece-style tokenizer puts before the first word
        out[f"{name}.len1"] = pc.add(out[f"{name}.len"], 1)
    return out


def _row_min_max(arr: pa.Array) -> tuple[Any, Any] | None:
    """Per-row min and max of a numeric list column as float64 (NaN for empty rows), by
    numpy reductions over the flat values; None where nulls or NaNs need Arrow's rules."""
    import numpy as np

    if arr.null_count:
        return None
    flat = arr.flatten()  # respects slicing
    if flat.null_count:
        return None
    values = flat.to_numpy()
    if values.dtype.kind == "f" and np.isnan(values).any():
        return None
    n = len(arr)
    if pa.types.is_fixed_size_list(arr.type):
        width = arr.type.list_size
        if n == 0 or width == 0:
            return np.full(n, np.nan), np.full(n, np.nan)
        rows = values.reshape(n, width)
        return rows.min(axis=1).astype("float64"), rows.max(axis=1).astype("float64")
    offsets = arr.offsets.to_numpy()
    offsets = offsets - offsets[0]
    lengths = np.diff(offsets)
    nonempty = lengths > 0
    lo, hi = np.full(n, np.nan), np.full(n, np.nan)
    if nonempty.any():
        starts = offsets[:-1][nonempty]
        lo[nonempty] = np.minimum.reduceat(values, starts).astype("float64")
        hi[nonempty] = np.maximum.reduceat(values, starts).astype("float64")
    return lo, hi


def _row_min_max_grouped(arr: pa.Array) -> tuple[Any, Any]:
    """Per-row min and max by an Arrow group-by (skips null elements)."""
    import numpy as np

    n = len(arr)
    flat = pc.list_flatten(arr)
    parents = pc.list_parent_indices(arr)
    grouped = (
        pa.table({"p": parents, "v": flat}).group_by("p").aggregate([("v", "min"), ("v", "max")])
    )
    idx = grouped["p"].to_numpy()
    result = []
    for stat in ("min", "max"):
        full = np.full(n, np.nan)
        full[idx] = grouped[f"v_{stat}"].to_numpy().astype("float64")
        result.append(full)
    return result[0], result[1]


def view(table: pa.Table) -> Any:
    """A pandas frame GX can check: scalar columns as they are, list/string summaries added."""
    cols: dict[str, pa.Array] = {}
    for name in table.column_names:
        col = table.column(name)
        typ = col.type
        if pa.types.is_nested(typ):
            cols.update(_list_summary(col, name))
        else:
            cols[name] = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
            if pa.types.is_string(typ) or pa.types.is_large_string(typ):
                cols.update(_list_summary(col, name))
    return pa.table(cols).to_pandas()
