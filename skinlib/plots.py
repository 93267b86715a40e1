"""Every figure of the series: EDA, training histories, evaluation, image grids, CAM checks.

Each function returns a matplotlib ``Figure`` built with the object-oriented API (no pyplot
state, safe under the Agg backend); the caller shows it or passes it to :func:`save`. Class
colours and names come from :mod:`skinlib.info`. No TensorFlow here.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import auc, roc_curve

from skinlib import config, info
from skinlib.metrics import expected_calibration_error, reliability_table

_GREY = "#777777"
# Human titles of the metric keys of :func:`skinlib.metrics.evaluate` (axis titles, legends).
METRIC_LABELS = {
    "balanced_accuracy": "balanced accuracy",
    "balanced_accuracy_argmax": "balanced accuracy (plain argmax)",
    "macro_auc": "macro AUC (one-vs-rest)",
    "accuracy": "accuracy",
    "macro_f1": "macro F1",
    "mel_sensitivity_at_spec80": "mel sensitivity at 80% specificity",
    "ece": "expected calibration error (lower is better)",
    "minority_recall": "mean recall of the minority classes",
    "loss": "training loss",
    "val_loss": "validation loss",
}


def metric_label(key: str) -> str:
    """The human title of a metric key (``"macro_auc"`` -> ``"macro AUC (one-vs-rest)"``)."""
    return METRIC_LABELS.get(key, key.replace("_", " "))


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def save(fig: Figure, run_or_dir, name: str) -> Path:
    """Save a figure as PNG (dpi 120) under the run's ``figures/`` and return the path.

    Args:
        fig: the figure (not closed here).
        run_or_dir: a ``RunDir``, a run folder (``figures/`` is added) or a ``figures`` folder.
        name: file name; ``.png`` is added when it has no suffix.
    """
    folder = getattr(run_or_dir, "figures", None)
    if folder is None:
        folder = Path(run_or_dir)
        if folder.name != "figures":
            folder = folder / "figures"
    name = str(name)
    if not name or os.sep in name or "/" in name or name.startswith("."):
        raise ValueError(f"figure name {name!r} must be a plain file name like 'class_counts'")
    path = Path(folder) / (name if Path(name).suffix else f"{name}.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def _color(dx: str) -> str:
    return info.COLORS.get(dx, _GREY)


def _classes(df: pd.DataFrame) -> list[str]:
    """Class order of a catalog: ``df.attrs["classes"]``, else the dataset's, else sorted dx."""
    if "dx" not in df.columns:
        raise ValueError(f"catalog has no 'dx' column (columns: {list(df.columns)}); "
                         f"load it with skinlib.data")
    present = set(df["dx"].dropna().astype(str))
    order = df.attrs.get("classes")
    if order is None:
        order = next((meta["classes"] for meta in info.DATASETS.values()
                      if present <= set(meta["classes"])), sorted(present))
    return [c for c in order if c in present]


def _need(df: pd.DataFrame, *cols: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"catalog lacks column(s) {missing} (has {list(df.columns)})")


def _figure(nrows=1, ncols=1, figsize=(7, 4), **kw) -> tuple[Figure, np.ndarray]:
    """A Figure with a grid of axes (always a 2-D array)."""
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def _annotated_heatmap(ax, matrix, row_labels, col_labels, fmt=".2f", vmax=None, cmap="Blues"):
    """Seaborn heat map with each cell's value written in it (``fmt``), plus a colour bar.

    Seaborn writes dark or light text by each cell's luminance, so labels stay readable on any
    colormap; NaN cells are left blank.
    """
    import seaborn as sns

    m = np.asarray(matrix, dtype=float)
    top = np.nanmax(m) if vmax is None and np.isfinite(m).any() else (vmax or 1.0)
    sns.heatmap(m, ax=ax, cmap=cmap, vmin=0, vmax=top, annot=True, fmt=fmt,
                annot_kws={"fontsize": 9}, xticklabels=col_labels, yticklabels=row_labels)
    ax.tick_params(axis="y", labelrotation=0)
    ax.tick_params(axis="x", labelrotation=45)
    for tick in ax.get_xticklabels():
        tick.set_horizontalalignment("right")


def _stacked_share(df: pd.DataFrame, column: str, title: str) -> Figure:
    """Horizontal 100% stacked bars: the share of each value of ``column`` within each dx."""
    _need(df, column)
    classes = _classes(df)
    table = pd.crosstab(df["dx"].astype(str), df[column].fillna("missing").astype(str))
    table = table.reindex(classes).fillna(0)
    share = table.div(table.sum(axis=1).replace(0, 1), axis=0)
    fig, axes = _figure(figsize=(7, 0.45 * len(classes) + 1.5))
    ax = axes[0, 0]
    left = np.zeros(len(classes))
    cmap = mpl.colormaps["tab10"]
    for i, value in enumerate(share.columns):
        ax.barh(classes, share[value], left=left, label=str(value), color=cmap(i % 10))
        left += share[value].to_numpy()
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of images")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    return fig


def _to_display(img) -> np.ndarray:
    """An image array as float [0, 1] for imshow: uint8 or [0, 255], or [-1, 1] (GAN output)."""
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    a = a.astype(np.float32)
    if a.size and a.min() < 0:
        a = (a + 1.0) / 2.0
    elif a.size and a.max() > 1.0:
        a = a / 255.0
    return np.clip(a, 0.0, 1.0)


# --------------------------------------------------------------------------------------------
# EDA (notebook 01)
# --------------------------------------------------------------------------------------------

def class_counts(df: pd.DataFrame) -> Figure:
    """Bars of images per dx with their counts; the imbalance ratio (largest / smallest) in the
    title."""
    classes = _classes(df)
    counts = df["dx"].astype(str).value_counts().reindex(classes).fillna(0).astype(int)
    fig, axes = _figure()
    ax = axes[0, 0]
    bars = ax.bar(classes, counts.to_numpy(), color=[_color(c) for c in classes])
    ax.bar_label(bars, labels=[f"{v:,}" for v in counts], fontsize=9)
    for tick, c in zip(ax.get_xticklabels(), classes):
        tick.set_color(_color(c))
    ratio = counts.max() / max(counts.min(), 1)
    ax.set_title(f"{len(df):,} images, {len(classes)} classes; imbalance ratio {ratio:.0f}:1 "
                 f"({counts.idxmax()} / {counts.idxmin()})")
    ax.set_ylabel("images")
    return fig


def images_per_lesion(df: pd.DataFrame) -> Figure:
    """Left: lesions by their number of images on a log axis, so the tail of lesions with many
    images shows, each bar with its count. Right: the classes' share within each bar (stacking
    on a log axis would distort the shares)."""
    _need(df, "lesion_id")
    classes = _classes(df)
    per = df.groupby("lesion_id").agg(n=("dx", "size"), dx=("dx", "first"))
    totals = per["n"].value_counts().sort_index()
    fig, axes = _figure(1, 2, figsize=(10, 3.8), width_ratios=[1, 1.15])
    ax = axes[0, 0]
    bars = ax.bar(totals.index, totals.to_numpy(), color=_GREY, log=True)
    ax.bar_label(bars, labels=[f"{n:,}" for n in totals], fontsize=9, padding=2)
    ax.set_ylim(0.7, totals.max() * 3)
    ax.set_xticks(totals.index)
    ax.set_xlabel("images per lesion")
    ax.set_ylabel("lesions (log scale)")
    ax.set_title(f"{len(per):,} lesions in {len(df):,} images "
                 f"({(per['n'] > 1).mean():.0%} have several)", fontsize=10)
    ax = axes[0, 1]
    share = pd.crosstab(per["n"], per["dx"].astype(str), normalize="index")
    share = share.reindex(columns=[c for c in classes if c in share.columns])
    left = np.zeros(len(share))
    for c in share.columns:
        ax.barh([str(k) for k in share.index], share[c], left=left, color=_color(c), label=c)
        left += share[c].to_numpy()
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the lesions")
    ax.set_ylabel("images per lesion")
    ax.set_title("Which classes those lesions belong to", fontsize=10)
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))
    return fig


def age_by_dx(df: pd.DataFrame) -> Figure:
    """Seaborn box plot of patient age per dx, each box's median written above it (missing
    ages dropped and counted in the title)."""
    import seaborn as sns

    _need(df, "age")
    classes = _classes(df)
    data = pd.DataFrame({"dx": df["dx"].astype(str),
                         "age": pd.to_numeric(df["age"], errors="coerce")})
    fig, axes = _figure()
    ax = axes[0, 0]
    sns.boxplot(data=data.dropna(), x="dx", y="age", order=classes, hue="dx", hue_order=classes,
                palette={c: _color(c) for c in classes}, showfliers=False, legend=False, ax=ax,
                boxprops={"alpha": 0.8})
    medians = data.groupby("dx")["age"].median().reindex(classes)
    for i, m in enumerate(medians):
        if np.isfinite(m):
            ax.annotate(f"{m:.0f}", (i, m), xytext=(0, 3), textcoords="offset points",
                        ha="center", fontsize=9, fontweight="bold",
                        path_effects=[patheffects.withStroke(linewidth=2.5, foreground="white")])
    for tick, c in zip(ax.get_xticklabels(), classes):
        tick.set_color(_color(c))
    ax.set_xlabel("")
    ax.set_ylabel("age (years)")
    ax.set_title(f"Age by diagnosis, median on each box "
                 f"({int(data['age'].isna().sum())} images without age)")
    return fig


def sex_by_dx(df: pd.DataFrame) -> Figure:
    """Share of each sex within each dx (100% stacked bars)."""
    return _stacked_share(df, "sex", "Sex by diagnosis")


def dx_type_by_dx(df: pd.DataFrame) -> Figure:
    """How each dx was confirmed (histopathology, follow-up, consensus, confocal)."""
    return _stacked_share(df, "dx_type", "Ground-truth method by diagnosis")


def localization_by_dx(df: pd.DataFrame, top: int = 12) -> Figure:
    """Heat map of dx x body site: each row is the share of that dx's images per site (the
    ``top`` most common sites are shown, so a row may sum to less than 1)."""
    _need(df, "localization")
    classes = _classes(df)
    table = pd.crosstab(df["dx"].astype(str), df["localization"].fillna("missing").astype(str))
    table = table.reindex(classes).fillna(0)
    share = table.div(table.sum(axis=1).replace(0, 1), axis=0)
    sites = table.sum(axis=0).sort_values(ascending=False).index[:top]
    fig, axes = _figure(figsize=(0.6 * len(sites) + 3, 0.45 * len(classes) + 2))
    _annotated_heatmap(axes[0, 0], share[sites].to_numpy(), classes, list(sites))
    axes[0, 0].set_title(f"Body site by diagnosis (row share, top {len(sites)} sites)")
    return fig


def example_grid(df: pd.DataFrame, per_class: int = 6, seed: int = 0) -> Figure:
    """Thumbnails of ``per_class`` random images of each dx, one row per class named at its
    left (code and name)."""
    from PIL import Image

    _need(df, "path")
    classes = _classes(df)
    fig, axes = _figure(len(classes), per_class, figsize=(1.4 * per_class + 1.2,
                                                           1.2 * len(classes)))
    rng = np.random.default_rng(seed)
    for r, c in enumerate(classes):
        rows = df[df["dx"] == c]
        pick = rows.iloc[np.sort(rng.choice(len(rows), min(per_class, len(rows)), replace=False))]
        for j in range(per_class):
            ax = axes[r, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if j == 0:
                ax.set_ylabel(f"{c}\n{textwrap.fill(info.class_name(c), 16)}", color=_color(c),
                              fontsize=8, fontweight="bold", rotation=0, ha="right", va="center")
            if j >= len(pick):
                continue
            path = pick["path"].iloc[j]
            try:
                with Image.open(path) as im:
                    im.thumbnail((256, 256))
                    ax.imshow(np.asarray(im.convert("RGB")))
            except (OSError, ValueError) as e:
                ax.text(0.5, 0.5, f"unreadable\n{Path(path).name}", ha="center", va="center",
                        fontsize=6, color="red", transform=ax.transAxes)
                ax.set_title(type(e).__name__, fontsize=6)
    fig.suptitle(f"{per_class} random images per class (seed {seed})")
    return fig


def image_stats(stats: dict) -> Figure:
    """Image sizes (left) and mean R, G, B per dx (right) of a random sample of the files
    (``stats`` from :func:`skinlib.eda.image_sample`)."""
    fig, axes = _figure(1, 2, figsize=(11, 4))
    ax = axes[0, 0]
    size_counts = stats["sizes"]
    if len(size_counts):
        wh = np.array(size_counts.index.tolist())
        ax.scatter(wh[:, 0], wh[:, 1], s=20 + 200 * size_counts.to_numpy() / size_counts.max(),
                   color=_GREY, alpha=0.7)
        for (w, h), n in size_counts.head(5).items():
            ax.annotate(f"{w}x{h} ({n})", (w, h), fontsize=8, xytext=(4, 4),
                        textcoords="offset points")
    ax.set_xlabel("width (px)")
    ax.set_ylabel("height (px)")
    ax.set_title(f"Image sizes ({stats['n']} sampled, {stats['bad']} unreadable)")
    ax = axes[0, 1]
    colour = stats["colour"]
    x = np.arange(len(colour))
    for i, (ch, col) in enumerate(zip("RGB", ("#d62728", "#2ca02c", "#1f77b4"))):
        ax.bar(x + (i - 1) * 0.27, colour[ch], width=0.27, color=col, label=ch)
    ax.set_xticks(x, colour.index)
    for tick, c in zip(ax.get_xticklabels(), colour.index):
        tick.set_color(_color(c))
    ax.set_ylim(0, 255)
    ax.set_ylabel("mean channel value")
    ax.set_title("Mean colour per class")
    ax.legend(fontsize=8, frameon=False)
    return fig


# --------------------------------------------------------------------------------------------
# training and evaluation
# --------------------------------------------------------------------------------------------

def history_frame(hist) -> tuple[pd.DataFrame, np.ndarray]:
    """A Keras ``History.history`` dict or CSVLogger frame as ``(frame, 1-based epochs)``."""
    frame = pd.DataFrame(dict(hist)) if isinstance(hist, dict) else pd.DataFrame(hist).copy()
    if frame.empty:
        raise ValueError("history is empty: did training run for at least one epoch?")
    epochs = frame.pop("epoch").to_numpy() + 1 if "epoch" in frame else np.arange(1, len(frame) + 1)
    return frame, epochs


def restored_epoch(frame: pd.DataFrame, epochs, last_stage_start: int | None = None
                   ) -> int | None:
    """The 1-based epoch whose weights training kept: the lowest validation loss, counted from
    the first row of the last stage (``last_stage_start``, 0-based); None without val_loss."""
    if "val_loss" not in frame or frame["val_loss"].isna().all():
        return None
    val = frame["val_loss"].iloc[last_stage_start or 0:]
    return int(np.asarray(epochs)[frame.index.get_loc(val.idxmin())])


def history(hist, *, stage_boundary: int | None = None) -> Figure:
    """Training and validation loss per epoch (and balanced accuracy where it was logged; plain
    accuracy is left out: it rewards the majority class), with the restored epoch marked.

    Args:
        hist: a Keras ``History.history`` dict or a CSVLogger DataFrame (``epoch`` column).
        stage_boundary: number of epochs of a first training stage (dotted line where the
            second starts; the restored epoch is then the second stage's best).
    """
    frame, epochs = history_frame(hist)
    panels = [b for b in ("loss", "balanced_accuracy") if b in frame or f"val_{b}" in frame]
    if not panels:
        raise ValueError(f"history has no loss column (has {list(frame.columns)})")
    best = restored_epoch(frame, epochs, stage_boundary)
    fig, axes = _figure(1, len(panels), figsize=(4.6 * len(panels), 3.4))
    for ax, base in zip(axes[0], panels):
        for col, label, style in ((base, "training", "-"), (f"val_{base}", "validation", "--")):
            if col in frame:
                ax.plot(epochs, frame[col], style, marker="o", ms=3, label=label)
        if stage_boundary is not None:
            ax.axvline(stage_boundary + 0.5, color=_GREY, ls=":", label="stage 2 starts")
        if best is not None:
            ax.axvline(best, color="black", lw=1, ls="-.", label=f"restored: epoch {best}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_title(base.replace("_", " "))
        ax.legend(fontsize=8, frameon=False)
    return fig


def confusion_matrix(result: dict, normalize: bool = True) -> Figure:
    """Confusion matrix of an :func:`metrics.evaluate` dict (rows = true; row-normalised)."""
    cm = np.asarray(result["confusion_matrix"], dtype=float)
    classes = result["classes"]
    if normalize:
        cm = cm / np.where(cm.sum(axis=1, keepdims=True) == 0, 1, cm.sum(axis=1, keepdims=True))
    fig, axes = _figure(figsize=(0.7 * len(classes) + 2.5, 0.6 * len(classes) + 1.5))
    ax = axes[0, 0]
    _annotated_heatmap(ax, cm, classes, classes, fmt=".2f" if normalize else ".0f",
                       vmax=1.0 if normalize else None)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ba = result.get("balanced_accuracy")
    ax.set_title(f"{result.get('model', '')} decision={result.get('decision', 'argmax')}"
                 + (f", balanced acc {ba:.3f}" if ba is not None else ""), fontsize=10)
    return fig


def _recalls(results: dict[str, dict]) -> tuple[list[str], list[str], np.ndarray]:
    """(models, classes, recall matrix) from several evaluate() dicts; NaN where undefined."""
    if not results:
        raise ValueError("results is empty: pass {model name: evaluate() dict}")
    models = list(results)
    classes = list(next(iter(results.values()))["classes"])
    recall = [[r["per_class"].get(c, {}).get("recall") for c in classes]
              for r in results.values()]
    return models, classes, np.array([[np.nan if v is None else v for v in row]
                                      for row in recall], dtype=float)


def per_class_recall(results: dict[str, dict]) -> Figure:
    """Grouped bars: one group per class, one bar per model."""
    models, classes, rec = _recalls(results)
    fig, axes = _figure(figsize=(max(7, 1.1 * len(classes) * max(1, len(models) / 3)), 4))
    ax = axes[0, 0]
    width = 0.8 / len(models)
    x = np.arange(len(classes))
    for i, name in enumerate(models):
        ax.bar(x + (i - (len(models) - 1) / 2) * width, rec[i], width=width, label=name,
               color=mpl.colormaps["tab10"](i % 10))
    ax.set_xticks(x, classes)
    for tick, c in zip(ax.get_xticklabels(), classes):
        tick.set_color(_color(c))
    ax.set_ylim(0, 1)
    ax.set_ylabel("recall (sensitivity)")
    ax.set_title("Recall per class")
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))
    return fig


def roc_curves(y_true, probs, classes) -> Figure:
    """One-vs-rest ROC curve per class plus the macro average; AUC in the legend."""
    y = np.asarray(y_true).astype(int)
    p = np.asarray(probs, dtype=float)
    if p.shape != (len(y), len(classes)):
        raise ValueError(f"probs has shape {p.shape}, expected ({len(y)}, {len(classes)})")
    fig, axes = _figure(figsize=(5.5, 5))
    ax = axes[0, 0]
    grid = np.linspace(0, 1, 201)
    tprs = []
    for c, dx in enumerate(classes):
        pos = y == c
        if not pos.any() or pos.all():
            continue
        fpr, tpr, _ = roc_curve(pos, p[:, c], drop_intermediate=False)
        ax.plot(fpr, tpr, color=_color(dx), lw=1.3, label=f"{dx} (AUC {auc(fpr, tpr):.3f})")
        tprs.append(np.interp(grid, fpr, tpr))
    if tprs:
        macro = np.mean(tprs, axis=0)
        ax.plot(grid, macro, color="black", lw=2.2, ls="--",
                label=f"macro (AUC {auc(grid, macro):.3f})")
    ax.plot([0, 1], [0, 1], color=_GREY, lw=0.8, ls=":")
    ax.set_xlabel("false positive rate (1 - specificity)")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.set_title("One-vs-rest ROC")
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    ax.set_aspect("equal")
    return fig


def reliability_diagram(y_true, probs_by_name: dict[str, np.ndarray], n_bins: int = 15) -> Figure:
    """Accuracy against confidence of the top label for several models or calibrations on one
    axes (ECE in the legend), with the share of images per bin below."""
    if not probs_by_name:
        raise ValueError("probs_by_name is empty: pass {name: probs}")
    fig, axes = _figure(2, 1, figsize=(5.5, 6), sharex=True, height_ratios=[3, 1])
    top, bottom = axes[0, 0], axes[1, 0]
    width = 1.0 / n_bins / (len(probs_by_name) + 1)
    for i, (name, probs) in enumerate(probs_by_name.items()):
        color = mpl.colormaps["tab10"](i % 10)
        table = reliability_table(y_true, probs, n_bins)
        ece = expected_calibration_error(y_true, probs, n_bins)
        full = table[table["count"] > 0]
        top.plot(full["confidence"], full["accuracy"], marker="o", ms=4, color=color,
                 label=f"{name} (ECE {ece:.3f})")
        bottom.bar(table["lower"] + (i + 0.5) * width, table["count"] / table["count"].sum(),
                   width=width, color=color, align="edge")
    top.plot([0, 1], [0, 1], color=_GREY, ls=":", label="perfect calibration")
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1.03)  # points at accuracy 1 stay visible
    top.set_title("Reliability diagram (top label)")
    top.legend(fontsize=8, frameon=False, loc="upper left")
    bottom.set_xlim(0, 1)
    bottom.set_xlabel("confidence")
    bottom.set_ylabel("share")
    return fig


def _notebook_of(name: str, result: dict) -> str:
    """The notebook a model comes from ("02_baseline_cnn"), from its names; "" if none."""
    for text in (str(result.get("model", "")), name, Path(str(result.get("source", ""))).stem):
        hits = [n for n in config.NOTEBOOKS if text[:3] == n[:3] and text[:2].isdigit()]
        if hits:
            return hits[0]
    return ""


def metric_bars(results: dict[str, dict],
                metrics: tuple[str, ...] = ("balanced_accuracy", "macro_auc")) -> Figure:
    """One panel per metric, one horizontal bar per model with its bootstrap 95% CI and value;
    bars are coloured by the notebook that trained the model (legend below)."""
    if not results:
        raise ValueError("results is empty: pass {model name: evaluate() dict}")
    models = list(results)
    books = [_notebook_of(name, r) for name, r in results.items()]
    palette = {b: mpl.colormaps["Dark2"](i % 8) for i, b in enumerate(dict.fromkeys(books))}
    fig, axes = _figure(1, len(metrics), figsize=(1.6 + 3.2 * len(metrics),
                                                  0.34 * len(models) + 1.6), sharey=True)
    y = np.arange(len(models))
    for ax, metric in zip(axes[0], metrics):
        values = np.array([np.nan if r.get(metric) is None else r[metric]
                           for r in results.values()], dtype=float)
        err = np.zeros((2, len(models)))
        for i, r in enumerate(results.values()):
            ci = (r.get("ci95") or {}).get(metric)
            if ci is not None and np.isfinite(values[i]):
                err[:, i] = [max(values[i] - ci[0], 0), max(ci[1] - values[i], 0)]
        ax.barh(y, values, xerr=err, capsize=3, color=[palette[b] for b in books],
                error_kw={"lw": 1})
        for i, v in enumerate(values):
            if np.isfinite(v):
                ax.text(v + err[1, i] + 0.01, i, f"{v:.3f}", va="center", fontsize=9)
        ax.set_xlim(0, 1.2)
        ax.set_xticks(np.linspace(0, 1, 6))
        ax.set_title(metric_label(metric), fontsize=10)
    axes[0, 0].set_yticks(y, models)
    axes[0, 0].invert_yaxis()
    fig.legend(handles=[Patch(color=c, label=b.replace("_", " ") or "other")
                        for b, c in palette.items()], loc="outside lower center",
               ncols=min(4, len(palette)), fontsize=9, frameon=False,
               title="bar colour: the notebook that trained the model (error bar: 95% CI)",
               title_fontsize=9)
    return fig


def recall_heatmap(results: dict[str, dict]) -> Figure:
    """Models x classes heat map of recall."""
    models, classes, rec = _recalls(results)
    fig, axes = _figure(figsize=(0.8 * len(classes) + 3, 0.5 * len(models) + 2))
    _annotated_heatmap(axes[0, 0], rec, models, classes, vmax=1.0, cmap="viridis")
    for tick, c in zip(axes[0, 0].get_xticklabels(), classes):
        tick.set_color(_color(c))
    axes[0, 0].set_title("Recall per class and model")
    return fig


def image_grid(images, titles=None, ncols: int = 8, suptitle: str | None = None) -> Figure:
    """A grid of images: uint8 or float in [0, 255], [0, 1] or [-1, 1]; RGB or grayscale.

    Used for GAN samples, nearest neighbours and CAM overlays. Unused cells are blank.
    """
    imgs = list(images)
    if not imgs:
        raise ValueError("image_grid got no images")
    if titles is not None and len(titles) != len(imgs):
        raise ValueError(f"{len(titles)} titles for {len(imgs)} images")
    ncols = max(1, min(ncols, len(imgs)))
    nrows = -(-len(imgs) // ncols)
    fig, axes = _figure(nrows, ncols, figsize=(1.5 * ncols, 1.5 * nrows + (0.4 if suptitle else 0)))
    for i, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if i >= len(imgs):
            continue
        a = _to_display(imgs[i])
        ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=1)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=7)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def learning_curves(histories: dict[str, pd.DataFrame], metrics: tuple[str, ...] = (
        "loss", "val_loss"), stage_boundaries: dict[str, int | None] | None = None) -> Figure:
    """One panel per logged quantity, one line per model (K-fold folds, or the arms of a
    comparison); a star marks each model's restored epoch (lowest validation loss) and a
    dotted line where its second training stage starts.

    Args:
        histories: model name -> epoch log (CSVLogger frame or History dict).
        metrics: columns to draw.
        stage_boundaries: model name -> last epoch of stage 1, 0-based (``None``: one stage).
    """
    if not histories:
        raise ValueError("histories is empty: pass {model name: history}")
    fig, axes = _figure(1, len(metrics), figsize=(4.6 * len(metrics), 3.4))
    for i, (name, hist) in enumerate(histories.items()):
        frame, epochs = history_frame(hist)
        color = mpl.colormaps["tab10"](i % 10)
        boundary = (stage_boundaries or {}).get(name)
        best = restored_epoch(frame, epochs, None if boundary is None else boundary + 1)
        for ax, metric in zip(axes[0], metrics):
            if metric not in frame:
                continue
            ax.plot(epochs, frame[metric], marker="o", ms=3, color=color, label=name)
            if best is not None:
                ax.plot([best], frame[metric].to_numpy()[list(epochs).index(best)], marker="*",
                        ms=12, color=color, mec="black", ls="none")
            if boundary is not None:
                ax.axvline(boundary + 1.5, color=color, ls=":", lw=1)
    for ax, metric in zip(axes[0], metrics):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_title(metric_label(metric))
        ax.legend(fontsize=8, frameon=False)
    fig.suptitle("star: the epoch whose weights were kept (lowest validation loss)", fontsize=9)
    return fig


# What each logged GAN loss is (skinlib.models.dcgan.DCGAN.train_step), for legends.
GAN_LOSSES = {
    "d_loss": "discriminator: -log D(x) on real (smoothed label) - log(1 - D(G(z))) on generated",
    "g_loss": "generator: -log D(G(z)) (non-saturating)",
}


def gan_losses(losses: dict[str, pd.DataFrame]) -> Figure:
    """One panel per class: discriminator (solid, class colour) and generator (dashed grey) loss
    against training step, each with its definition in the legend; dotted lines mark each loss
    when the discriminator answers 1/2 everywhere (2 ln 2 for D, ln 2 for G)."""
    if not losses:
        raise ValueError("gan_losses got no classes: pass {dx: losses DataFrame}")
    ncols = min(3, len(losses))
    nrows = -(-len(losses) // ncols)
    fig, axes = _figure(nrows, ncols, figsize=(3.6 * ncols, 2.8 * nrows + 0.8), sharey=True)
    for ax, (dx, df) in zip(axes.ravel(), losses.items()):
        _need(df, "step", "d_loss", "g_loss")
        ax.plot(df["step"], df["d_loss"], marker=".", color=_color(dx))
        ax.plot(df["step"], df["g_loss"], marker=".", color=_GREY, ls="--")
        ax.axhline(2 * np.log(2), color=_color(dx), ls=":", lw=0.8)
        ax.axhline(np.log(2), color=_GREY, ls=":", lw=0.8)
        ax.set_title(f"{dx}: {info.class_name(dx)}", color=_color(dx), fontsize=10)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
    for ax in axes.ravel()[len(losses):]:
        ax.set_axis_off()
    for row in axes:
        row[0].set_ylabel("loss")
    fig.legend(handles=[Line2D([], [], color="black", marker=".", label=GAN_LOSSES["d_loss"]),
                        Line2D([], [], color=_GREY, marker=".", ls="--",
                               label=GAN_LOSSES["g_loss"]),
                        Line2D([], [], color=_GREY, ls=":",
                               label="dotted: each loss if D(.) = 1/2 everywhere "
                                     "(D: 2 ln 2 = 1.39, G: ln 2 = 0.69)")],
               loc="outside lower center", fontsize=8, frameon=False, ncols=1)
    return fig


def gan_vs_real(blocks: dict[str, dict], n: int = 4) -> Figure:
    """One row per class: ``n`` real training images | ``n`` generated images | the nearest
    real training image of each generated one (pixel distance above it).

    Args:
        blocks: dx -> ``{"real", "generated", "nearest"}`` image arrays and ``"distances"``
            (one per generated image).
    """
    if not blocks:
        raise ValueError("gan_vs_real got no classes: pass {dx: {real, generated, nearest, "
                         "distances}}")
    groups = (("real", "real training images"), ("generated", "generated by the GAN"),
              ("nearest", "nearest training image to each"))
    fig = Figure(figsize=(3 * n * 1.05 + 1, 1.15 * len(blocks) + 0.7), layout="constrained")
    for sub, (key, title) in zip(fig.subfigures(1, 3, wspace=0.02), groups):
        axes = sub.subplots(len(blocks), n, squeeze=False)
        sub.suptitle(title, fontsize=10)
        for r, (dx, block) in enumerate(blocks.items()):
            for j, ax in enumerate(axes[r]):
                ax.set_xticks([])
                ax.set_yticks([])
                if j < len(block[key]):
                    ax.imshow(_to_display(block[key][j]), vmin=0, vmax=1)
                near = key == "nearest" and j < len(block["distances"])
                ax.set_title(f"d={block['distances'][j]:.0f}" if near else " ", fontsize=8)
            if key == "real":
                axes[r, 0].set_ylabel(dx, color=_color(dx), fontsize=10, fontweight="bold")
    return fig


def kid_vs_floor(table: pd.DataFrame) -> Figure:
    """KID of generated vs real validation images per class (filled, class colour) beside the
    real-vs-real floor (hollow grey), each with its bootstrap 95% CI (``ci95``, ``floor_ci95`` of
    :func:`skinlib.gan_quality.kid_against_floor`); lower is closer. A KID beyond three times
    the classes' median sits at the right edge as an arrow with its value, so one failed GAN
    does not flatten the rest."""
    _need(table, "kid", "ci95", "floor", "floor_ci95")
    classes = list(table.index)
    kid = table["kid"].to_numpy(dtype=float)
    cap = 3 * np.nanmedian(np.abs(kid))
    off = (kid > cap) if cap > 0 else np.zeros(len(kid), bool)
    fig, axes = _figure(figsize=(6.5, 0.55 * len(classes) + 1.8))
    ax = axes[0, 0]
    y = np.arange(len(classes))
    ax.errorbar(table["floor"], y + 0.12, xerr=_ci_err(table["floor"], table["floor_ci95"]),
                fmt="o", mfc="white", color=_GREY, capsize=3)
    kid_err = _ci_err(table["kid"], table["ci95"])
    for i, dx in enumerate(classes):
        if off[i]:
            ax.plot(cap, i - 0.12, marker=">", ms=9, color=_color(dx))
            ax.annotate(f"{kid[i]:.3g}", (cap, i - 0.12), xytext=(-8, 0), fontsize=9,
                        textcoords="offset points", ha="right", va="center", color=_color(dx))
        else:
            ax.errorbar(kid[i], i - 0.12, xerr=kid_err[:, [i]], fmt="o",
                        color=_color(dx), capsize=3)
    if off.any():
        floor = np.nanmin(table["floor"].to_numpy(dtype=float))
        ax.set_xlim(max(ax.get_xlim()[0], min(-0.3 * cap, 1.2 * floor)), cap * 1.05)
    ax.axvline(0, color="black", lw=0.6)
    ax.set_yticks(y, classes)
    for tick, c in zip(ax.get_yticklabels(), classes):
        tick.set_color(_color(c))
    ax.invert_yaxis()
    ax.set_xlabel("KID (lower: closer to the real validation images)")
    ax.set_title("KID of each GAN against the real-vs-real floor (bootstrap 95% CI)",
                 fontsize=10)
    fig.legend(handles=[Line2D([], [], color=_GREY, marker="o", mfc="white", ls="none",
                               label="floor: real training vs real validation"),
                        Line2D([], [], color="black", marker="o", ls="none",
                               label="generated vs real validation (class colour)")],
               fontsize=8, frameon=False, loc="outside lower center", ncols=2)
    return fig


def _ci_err(point: pd.Series, cis: pd.Series) -> np.ndarray:
    """``(2, n)`` error-bar lengths below and above each point from its ``[lo, hi]`` CI (NaN
    where the CI is missing)."""
    ci = np.array([c if c is not None and np.ndim(c) == 1 else [np.nan, np.nan] for c in cis],
                  dtype=float).reshape(-1, 2)
    p = point.to_numpy(dtype=float)
    return np.clip(np.vstack([p - ci[:, 0], ci[:, 1] - p]), 0, None)


def cam_grid(images, overlays: dict[str, list], titles=None, suptitle: str | None = None
             ) -> Figure:
    """One row per image: the image, then one CAM overlay per method (columns named)."""
    imgs = list(images)
    if not imgs:
        raise ValueError("cam_grid got no images")
    methods = list(overlays)
    for name in methods:
        if len(overlays[name]) != len(imgs):
            raise ValueError(f"{len(overlays[name])} {name} overlays for {len(imgs)} images")
    ncols = 1 + len(methods)
    fig, axes = _figure(len(imgs), ncols, figsize=(1.9 * ncols, 1.9 * len(imgs) + 0.5))
    for r, img in enumerate(imgs):
        for c, (name, pic) in enumerate([("image", img)] + [(m, overlays[m][r])
                                                            for m in methods]):
            ax = axes[r, c]
            ax.set_axis_off()
            ax.imshow(_to_display(pic), vmin=0, vmax=1)
            if r == 0:
                ax.set_title(name, fontsize=8)
        if titles is not None:
            axes[r, 0].text(-0.05, 0.5, str(titles[r]), transform=axes[r, 0].transAxes,
                            rotation=90, ha="right", va="center", fontsize=7)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def agreement_null(result: dict) -> Figure:
    """Agreement of two explanation methods per image against two nulls, one panel per measure.

    ``result`` is :func:`skinlib.explain_agnostic.compare`'s dict: observed per-image values
    (dots and their median), the ``other``-image null (grey histogram and its median) and the
    ``shuffled`` null (outline); the IoU panel marks the chance level of random maps.
    """
    fig, axes = _figure(1, 2, figsize=(10, 3.6))
    labels = {"spearman": "Spearman rank correlation", "iou": f"IoU of the top "
              f"{result['top_frac']:.0%} regions"}
    for ax, key in zip(axes[0], ("spearman", "iou")):
        obs = np.asarray(result["observed"][key], float)
        other = np.asarray(result["null"]["other"][key], float)
        shuffled = np.asarray(result["null"]["shuffled"][key], float)
        bins = np.linspace(-1 if key == "spearman" else 0, 1, 21)
        ax.hist(other[np.isfinite(other)], bins=bins, density=True, color="#cccccc",
                label="null: another image's map")
        ax.hist(shuffled[np.isfinite(shuffled)], bins=bins, density=True, histtype="step",
                color=_GREY, label="null: cells shuffled")
        top = ax.get_ylim()[1]
        ax.plot(obs, np.full(len(obs), 0.9 * top), "o", color="C3", alpha=0.7,
                label="same image")
        for values, colour in ((other, _GREY), (obs, "C3")):
            if np.isfinite(values).any():
                ax.axvline(np.nanmedian(values), color=colour, lw=1.5)
        if key == "iou":
            ax.axvline(result["chance_iou"], color="k", ls=":", lw=1, label="random maps")
        ax.set_xlabel(labels[key])
        ax.set_yticks([])
    axes[0, 1].legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    fig.suptitle(f"SHAP vs Grad-CAM on a {result['grid'][0]}x{result['grid'][1]} grid "
                 "(vertical lines: medians)")
    return fig


# --------------------------------------------------------------------------------------------
# drift monitoring (notebook 09, python -m skinlib monitor)
# --------------------------------------------------------------------------------------------

def _hist_pair(ax, ref, batch, title: str) -> None:
    """Overlaid density histograms of a reference and a batch."""
    bins = np.histogram_bin_edges(np.concatenate([ref, batch]), bins=30)
    ax.hist(ref, bins=bins, density=True, alpha=0.5, color=_GREY, label="reference")
    ax.hist(batch, bins=bins, density=True, alpha=0.5, color="#d62728", label="batch")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)


def drift(reference, batch, report: dict, card) -> Figure:
    """Six panels of a :func:`skinlib.monitor.compare` report: brightness, saturation,
    sharpness, confidence, class mix, and the embeddings on the reference's first two principal
    components; each titled with its test's p-value."""
    from sklearn.decomposition import PCA

    from skinlib.monitor import STATS, format_report

    tests = report["tests"]
    fig, axes = _figure(2, 3, figsize=(13, 7))
    for ax, name in zip(axes[0], ("brightness", "saturation", "sharpness")):
        i = STATS.index(name)
        _hist_pair(ax, reference.stats[:, i], batch.stats[:, i],
                   f"{name} (KS p = {tests[name]['p_value']:.2g})")
    _hist_pair(axes[1, 0], card.calibrate(reference.probs).max(axis=1),
               card.calibrate(batch.probs).max(axis=1),
               f"confidence (KS p = {tests['confidence']['p_value']:.2g})")
    mix, x = tests["class_mix"], np.arange(len(card.classes))
    bars = {"reference": mix["reference_mix"], "batch": mix["batch_mix"]}
    if card.training_priors is not None:
        bars["training priors"] = card.training_priors
    for j, (label, values) in enumerate(bars.items()):
        axes[1, 1].bar(x + (j - 1) * 0.27, values, width=0.27, label=label)
    axes[1, 1].set_xticks(x, card.classes)
    axes[1, 1].set_title(f"decided class mix (chi2 p = {mix['p_value']:.2g})", fontsize=10)
    axes[1, 1].legend(fontsize=8)
    pca = PCA(2).fit(reference.embeddings)
    for feats, colour, label in ((reference, _GREY, "reference"), (batch, "#d62728", "batch")):
        xy = pca.transform(feats.embeddings)
        axes[1, 2].scatter(xy[:, 0], xy[:, 1], s=6, alpha=0.5, c=colour, label=label)
    axes[1, 2].set_title(f"embedding, PCA (MMD p = {tests['embedding_mmd']['p_value']:.2g})",
                         fontsize=10)
    axes[1, 2].legend(fontsize=8)
    fig.suptitle(format_report(report).splitlines()[0], fontsize=10)
    return fig


def drift_detection(table: pd.DataFrame, false_alarm: float | None = None,
                    alpha: float | None = None) -> Figure:
    """Detection rate against corruption strength level, one line per corruption, with the
    in-distribution false-alarm rate as a dashed line (:func:`skinlib.monitor.detection_rates`)."""
    fig, axes = _figure(figsize=(7, 4))
    ax = axes[0, 0]
    for kind, part in table.groupby("corruption", sort=False):
        ax.plot(part["level"], part["detection_rate"], marker="o",
                label=f"{kind} ({', '.join(f'{s:g}' for s in part['strength'])})")
    if false_alarm is not None:
        ax.axhline(false_alarm, ls="--", c="k", lw=1, label=f"false alarms ({false_alarm:.0%})")
    if alpha is not None:
        ax.axhline(alpha, ls=":", c="grey", lw=1, label=f"alpha = {alpha:g}")
    ax.set(xlabel="strength level (mildest = 1)", ylabel="batches flagged", ylim=(-0.03, 1.03))
    ax.set_xticks(sorted(table["level"].unique()))
    ax.legend(fontsize=8)
    return fig


def upload_result(image, overlay, row: dict) -> Figure:
    """One uploaded image (:func:`skinlib.predict.explain_upload`): the image, its Grad-CAM
    overlay and the probabilities, titled with the decision and the input check."""
    fig, axes = _figure(1, 3, figsize=(12, 3.8), width_ratios=[1, 1, 1.1])
    axes = axes[0]
    axes[0].imshow(image)
    axes[0].set_title(f"{Path(row['image']).name} ({row['size'][0]}x{row['size'][1]})",
                      fontsize=10)
    axes[1].imshow(overlay)
    axes[1].set_title(f"Grad-CAM for {row['class']}", fontsize=10)
    for ax in axes[:2]:
        ax.axis("off")
    codes = list(row["probs"])
    axes[2].barh(codes[::-1], [row["probs"][c] for c in codes[::-1]],
                 color=[info.COLORS.get(c, _GREY) if c == row["class"] else "#cccccc"
                        for c in codes[::-1]])
    axes[2].set(xlim=(0, 1), xlabel="probability (calibrated where a temperature was fitted)")
    check = ("no input check (the model has no card)" if row["input_score"] is None else
             f"input check {row['input_score']:.0f}/100: "
             + ("FLAGGED, unlike the validation images" if row["flagged"] else "ok"))
    fig.suptitle(f"decided: {row['name']} ({row['class']}) by the {row.get('rule', 'argmax')} "
                 f"rule; {check}", fontsize=11)
    return fig


def randomization_cascade(check: dict) -> Figure:
    """|Spearman rho| and SSIM against the trained maps per randomised depth (box per depth,
    red where the verdict is "insensitive"), beside the null band of two random models (the
    shaded 2.5-97.5 percentiles, the dashed line its median): an ``explain.randomization_check``
    dict."""
    steps, null = check["steps"], check["null"]
    labels = [s["randomised"] for s in steps]
    fig, axes = _figure(2, 1, figsize=(max(6.0, 0.38 * len(steps) + 2), 6), sharex=True)
    for ax, key, name in zip(axes[:, 0], ("abs_rho", "ssim"), ("|Spearman rho|", "SSIM")):
        data = [[v for v in s[key]["values"] if v is not None] for s in steps]
        base = np.array([v for v in null[key]["values"] if v is not None], dtype=float)
        if len(base):
            lo, mid, hi = np.percentile(base, [2.5, 50, 97.5])
            ax.axhspan(lo, hi, color=_GREY, alpha=0.25, label="null: two random models (95%)")
            ax.axhline(mid, color=_GREY, ls="--", lw=1)
        box = ax.boxplot([d or [np.nan] for d in data], positions=range(len(steps)),
                         widths=0.6, patch_artist=True, showfliers=False)
        for patch, s in zip(box["boxes"], steps):
            patch.set_facecolor("#d62728" if s["verdict"] == "insensitive" else "#9ecae1")
        ax.set_ylabel(name)
        ax.set_ylim(min(0.0, ax.get_ylim()[0]), 1.02)
    axes[0, 0].legend(fontsize=8, frameon=False, loc="upper right")
    axes[0, 0].set_title(f"Cascading randomisation of {check.get('layer', 'the model')}'s "
                         f"Grad-CAM, output first (red: still above the null)", fontsize=9)
    axes[1, 0].set_xticks(range(len(steps)), labels, rotation=90, fontsize=7)
    axes[1, 0].set_xlabel("randomised down to (cumulative)")
    return fig


def leakage(measurement: dict) -> Figure:
    """The leakage measurement of notebook 12 (:func:`skinlib.leakage.run`): left, each seed's
    balanced accuracy on the leaky image-level test set and on unseen lesions (one line per seed:
    the same model on both); right, leaky minus unseen per metric with its lesion-level 95% CI."""
    from skinlib.leakage import DIFF_METRICS, TEST_SETS

    sizes = measurement["sizes"]
    fig, axes = _figure(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [1, 1.3]})
    left, right = axes[0]
    sets = list(TEST_SETS)
    rows = []
    for i, m in enumerate(sizes):
        label = "x".join(map(str, m["image_size"]))
        for j, r in enumerate(m["runs"]):
            left.plot(sets, [r[t]["balanced_accuracy"] for t in sets], marker="o", alpha=0.8,
                      ls=("-", "--", ":", "-.")[i % 4], color=f"C{j}",
                      label=f"{label}, seed {r['seed']}")
        rows += [(f"{label}: {metric_label(k)}", d) for k, d in m["difference"].items()
                 if k in DIFF_METRICS]
    left.set_xticks(range(len(sets)), [TEST_SETS[t] for t in sets])
    left.set(ylabel="balanced accuracy", title="the same model on two test sets",
             xlim=(-0.3, len(sets) - 0.7))
    left.legend(fontsize=8)
    y = np.arange(len(rows))
    means = np.array([d["mean"] for _, d in rows])
    err = np.array([[d["mean"] - d["ci95"][0], d["ci95"][1] - d["mean"]] for _, d in rows]).T
    right.errorbar(means, y, xerr=err, fmt="o", color="k", capsize=4)
    for yi, (_, d) in zip(y, rows):
        right.scatter([s["diff"] for s in d["per_seed"]], [yi] * len(d["per_seed"]),
                      marker="|", s=200, color=_GREY, zorder=3)
        right.annotate(d["verdict"], (d["mean"], yi), xytext=(0, 9),
                       textcoords="offset points", ha="center", va="bottom", fontsize=9)
    right.axvline(0, color=_GREY, lw=1, ls="--")
    right.set_yticks(y, [name for name, _ in rows])
    right.set(xlabel="leaky − unseen (95% lesion-level CI; grey: seeds)",
              title="what the image-level split adds", ylim=(-0.6, len(rows) - 0.4))
    lo, hi = min(0.0, float(np.min(means - err[0]))), max(0.0, float(np.max(means + err[1])))
    right.set_xlim(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo))
    return fig
