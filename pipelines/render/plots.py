"""The report's figures: training curves, confusion matrices and sample thumbnails, as PNG
bytes (matplotlib, imported on first use)."""

from __future__ import annotations

import io
from typing import Any

from pipelines import render as R


def history_png(name: str, rows: list[dict[str, Any]]) -> bytes:
    """Train/validation loss and the validation metric per epoch."""
    from matplotlib.ticker import MaxNLocator

    plt = R.pyplot()
    epochs = [int(r["epoch"]) for r in rows]
    key = next((k for k in rows[0] if k.startswith("val_") and k != "val_loss"), None)
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.plot(epochs, [float(r["train_loss"]) for r in rows], "o-", label="train loss")
    ax.plot(epochs, [float(r["val_loss"]) for r in rows], "s-", label="validation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    lines = ax.get_lines()
    if key:
        ax2 = ax.twinx()
        ax2.plot(epochs, [float(r[key]) for r in rows], "^--", color="tab:green", label=key)
        ax2.set_ylabel(key.removeprefix("val_"))
        lines = lines + ax2.get_lines()
    ax.legend(
        lines,
        [ln.get_label() for ln in lines],
        fontsize=8,
        ncol=3,
        frameon=False,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.2),
    )
    ax.set_title(name)
    return R.figure_png(fig)


def confusion_png(name: str, pairs: list[tuple[int, int]]) -> bytes:
    """Counts of (actual, predicted) as a heatmap, annotated."""
    import numpy as np

    plt = R.pyplot()
    k = max(max(a, p) for a, p in pairs) + 1
    mat = np.zeros((k, k), dtype=int)
    np.add.at(mat, tuple(np.array(pairs).T), 1)
    fig, ax = plt.subplots(figsize=(0.45 * k + 2, 0.45 * k + 1.5))
    im = ax.imshow(np.log1p(mat), cmap="Blues")
    for (i, j), v in np.ndenumerate(mat):
        if v:
            ax.text(
                j,
                i,
                str(v),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if np.log1p(v) > np.log1p(mat.max()) / 2 else "black",
            )
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    acc = np.trace(mat) / max(mat.sum(), 1)
    ax.set_title(f"{name}: test confusion (accuracy {acc:.4f})")
    fig.colorbar(im, ax=ax, fraction=0.046, label="log(1 + count)")
    return R.figure_png(fig)


def _label(v: Any) -> str:
    return R.fmt(v, R.EMPTY)


def digit_items(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict]]:
    """Sample rows that carry an image → (thumbnails, the rows without their image).

    Thumbnails: ``{index, actual, predicted, correct, src, png}``; empty when no row has an
    image (then the rows are shown as a table).
    """
    items, table = [], []
    for i, row in enumerate(rows):
        table.append(R.without_images(row))
        found = R.row_image(row)
        if found is None:
            continue
        actual, predicted = row.get("actual"), row.get("predicted")
        items.append(
            {
                "index": row.get("index", i),
                "actual": _label(actual),
                "predicted": _label(predicted),
                "correct": actual == predicted,
                "src": R.data_uri(found[1]),
                "png": found[1],
            }
        )
    return items, table


def digits_png(name: str, items: list[dict[str, Any]]) -> bytes:
    """The thumbnails as one figure (for index.md): a grid, actual → predicted over each."""
    import matplotlib.image as mpimg

    plt = R.pyplot()
    ncol = min(len(items), 8)
    nrow = -(-len(items) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(1.1 * ncol, 1.3 * nrow), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, d in zip(axes.flat, items):
        ax.imshow(
            mpimg.imread(io.BytesIO(d["png"]), format="png"), cmap="gray", interpolation="nearest"
        )  # cmap: grayscale PNGs (RGBA ones keep theirs)
        ax.set_title(
            f"{d['actual']} → {d['predicted']}",
            fontsize=8,
            color="black" if d["correct"] else "#b00",
        )
    fig.suptitle(f"{name}: actual → predicted", fontsize=9)
    return R.figure_png(fig)
