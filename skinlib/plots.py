"""Every figure of the series: EDA, training histories, evaluation, image grids, CAM checks.

Each function returns a matplotlib ``Figure`` built with the object-oriented API (no pyplot
state, safe under the Agg backend); the caller shows it or passes it to :func:`save`. Class
colours and names come from :mod:`skinlib.info`. No TensorFlow here.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import auc, roc_curve

from skinlib import info
from skinlib.metrics import expected_calibration_error, reliability_table

_GREY = "#777777"


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
                annot_kws={"fontsize": 8}, xticklabels=col_labels, yticklabels=row_labels)
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
    ax.bar_label(bars, labels=[f"{v:,}" for v in counts], fontsize=8)
    ratio = counts.max() / max(counts.min(), 1)
    ax.set_title(f"{len(df):,} images, {len(classes)} classes; imbalance ratio {ratio:.0f}:1 "
                 f"({counts.idxmax()} / {counts.idxmin()})")
    ax.set_ylabel("images")
    return fig


def images_per_lesion(df: pd.DataFrame) -> Figure:
    """Histogram of images per lesion, stacked by the lesion's dx."""
    _need(df, "lesion_id")
    classes = _classes(df)
    per = df.groupby("lesion_id").agg(n=("dx", "size"), dx=("dx", "first"))
    top = int(per["n"].max())
    bins = np.arange(1, top + 2) - 0.5
    fig, axes = _figure()
    ax = axes[0, 0]
    data = [per.loc[per["dx"] == c, "n"].to_numpy() for c in classes]
    ax.hist(data, bins=bins, stacked=True, label=classes, color=[_color(c) for c in classes])
    ax.set_xticks(range(1, top + 1))
    ax.set_xlabel("images per lesion")
    ax.set_ylabel("lesions")
    ax.set_title(f"{len(per):,} lesions in {len(df):,} images "
                 f"({(per['n'] > 1).mean():.0%} of lesions have several images)")
    ax.legend(fontsize=8, frameon=False)
    return fig


def age_by_dx(df: pd.DataFrame) -> Figure:
    """Box plot of patient age per dx (missing ages dropped and counted in the title)."""
    _need(df, "age")
    classes = _classes(df)
    age = pd.to_numeric(df["age"], errors="coerce")
    data = [age[(df["dx"] == c) & age.notna()].to_numpy() for c in classes]
    fig, axes = _figure()
    ax = axes[0, 0]
    box = ax.boxplot(data, patch_artist=True, showfliers=False)
    ax.set_xticks(range(1, len(classes) + 1), classes)
    for patch, c in zip(box["boxes"], classes):
        patch.set_facecolor(_color(c))
        patch.set_alpha(0.8)
    ax.set_ylabel("age (years)")
    ax.set_title(f"Age by diagnosis ({int(age.isna().sum())} images without age)")
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
    """Thumbnails of ``per_class`` random images of each dx, one row per class."""
    from PIL import Image

    _need(df, "path")
    classes = _classes(df)
    fig, axes = _figure(len(classes), per_class, figsize=(1.4 * per_class, 1.2 * len(classes)))
    rng = np.random.default_rng(seed)
    for r, c in enumerate(classes):
        rows = df[df["dx"] == c]
        pick = rows.iloc[np.sort(rng.choice(len(rows), min(per_class, len(rows)), replace=False))]
        for j in range(per_class):
            ax = axes[r, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if j == 0:
                ax.set_ylabel(c, color=_color(c), fontsize=10, fontweight="bold")
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


def image_stats(df: pd.DataFrame, sample: int = 500, seed: int = 0) -> Figure:
    """Image sizes (left) and mean R, G, B per dx (right) from a random sample of images."""
    from PIL import Image

    _need(df, "path")
    classes = _classes(df)
    rows = df.sample(n=min(sample, len(df)), random_state=seed)
    sizes, means, bad = [], [], 0
    for path, dx in zip(rows["path"], rows["dx"].astype(str)):
        try:
            with Image.open(path) as im:
                sizes.append(im.size)
                small = im.convert("RGB")
                small.thumbnail((64, 64))
                means.append((dx, *np.asarray(small, dtype=np.float64).reshape(-1, 3).mean(0)))
        except (OSError, ValueError):
            bad += 1
    fig, axes = _figure(1, 2, figsize=(11, 4))
    ax = axes[0, 0]
    if sizes:
        size_counts = pd.Series(sizes).value_counts()
        wh = np.array(size_counts.index.tolist())
        ax.scatter(wh[:, 0], wh[:, 1], s=20 + 200 * size_counts.to_numpy() / size_counts.max(),
                   color=_GREY, alpha=0.7)
        for (w, h), n in size_counts.head(5).items():
            ax.annotate(f"{w}x{h} ({n})", (w, h), fontsize=7, xytext=(4, 4),
                        textcoords="offset points")
    ax.set_xlabel("width (px)")
    ax.set_ylabel("height (px)")
    ax.set_title(f"Image sizes ({len(sizes)} sampled, {bad} unreadable)")
    ax = axes[0, 1]
    stats = pd.DataFrame(means, columns=["dx", "R", "G", "B"]).groupby("dx").mean()
    stats = stats.reindex([c for c in classes if c in stats.index])
    x = np.arange(len(stats))
    for i, (ch, col) in enumerate(zip("RGB", ("#d62728", "#2ca02c", "#1f77b4"))):
        ax.bar(x + (i - 1) * 0.27, stats[ch], width=0.27, color=col, label=ch)
    ax.set_xticks(x, stats.index)
    ax.set_ylim(0, 255)
    ax.set_ylabel("mean channel value")
    ax.set_title("Mean colour per class")
    ax.legend(fontsize=8, frameon=False)
    return fig


# --------------------------------------------------------------------------------------------
# training and evaluation
# --------------------------------------------------------------------------------------------

def history(hist, *, stage_boundary: int | None = None) -> Figure:
    """Loss and metric curves, train and validation, one panel per quantity.

    Args:
        hist: a Keras ``History.history`` dict or a CSVLogger DataFrame (``epoch`` column).
        stage_boundary: epoch at which a second training stage starts (dashed vertical line).
    """
    frame = pd.DataFrame(dict(hist)) if isinstance(hist, dict) else pd.DataFrame(hist).copy()
    if frame.empty:
        raise ValueError("history is empty: did training run for at least one epoch?")
    epochs = frame.pop("epoch").to_numpy() + 1 if "epoch" in frame else np.arange(1, len(frame) + 1)
    skip = {"lr", "learning_rate"}
    bases = [c for c in frame.columns if not c.startswith("val_") and c not in skip]
    bases += [c[4:] for c in frame.columns if c.startswith("val_") and c[4:] not in frame.columns]
    bases = sorted(bases, key=lambda b: (b != "loss", b))
    if not bases:
        raise ValueError(f"history has no metric columns (has {list(frame.columns)})")
    fig, axes = _figure(1, len(bases), figsize=(4 * len(bases), 3.3))
    for ax, base in zip(axes[0], bases):
        for col, label, style in ((base, "train", "-"), (f"val_{base}", "val", "--")):
            if col in frame:
                ax.plot(epochs, frame[col], style, marker="o", ms=3, label=label)
        if stage_boundary is not None:
            ax.axvline(stage_boundary + 0.5, color=_GREY, ls=":", label="stage 2")
        ax.set_xlabel("epoch")
        ax.set_title(base)
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
    top.set_ylim(0, 1)
    top.set_title("Reliability diagram (top label)")
    top.legend(fontsize=8, frameon=False, loc="upper left")
    bottom.set_xlim(0, 1)
    bottom.set_xlabel("confidence")
    bottom.set_ylabel("share")
    return fig


def metric_bars(results: dict[str, dict],
                metrics: tuple[str, ...] = ("balanced_accuracy", "macro_auc")) -> Figure:
    """One panel per metric, one bar per model, bootstrap 95% CI as error bars."""
    if not results:
        raise ValueError("results is empty: pass {model name: evaluate() dict}")
    models = list(results)
    fig, axes = _figure(1, len(metrics), figsize=(max(4, 0.8 * len(models) + 1.5) * len(metrics),
                                                  4))
    colors = [mpl.colormaps["tab10"](i % 10) for i in range(len(models))]
    for ax, metric in zip(axes[0], metrics):
        values = np.array([np.nan if r.get(metric) is None else r[metric]
                           for r in results.values()], dtype=float)
        err = np.zeros((2, len(models)))
        for i, r in enumerate(results.values()):
            ci = (r.get("ci95") or {}).get(metric)
            if ci is not None and np.isfinite(values[i]):
                err[:, i] = [max(values[i] - ci[0], 0), max(ci[1] - values[i], 0)]
        bars = ax.bar(range(len(models)), values, yerr=err, capsize=4, color=colors)
        ax.bar_label(bars, labels=["" if np.isnan(v) else f"{v:.3f}" for v in values],
                     fontsize=7, padding=2, label_type="center")
        ax.set_xticks(range(len(models)), models, rotation=30, ha="right")
        ax.set_ylim(0, 1)
        ax.set_title(metric.replace("_", " "))
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


def fold_curves(histories: dict[str, pd.DataFrame], metrics: tuple[str, ...] = (
        "val_loss", "val_accuracy"), stage_boundaries: dict[str, int | None] | None = None
                ) -> Figure:
    """One panel per metric, one line per fold (K-fold training); a dotted line marks where a
    fold's second training stage starts.

    Args:
        histories: fold name -> epoch log (CSVLogger frame or History dict).
        metrics: columns to draw.
        stage_boundaries: fold name -> last epoch of stage 1 (``None``: one stage).
    """
    if not histories:
        raise ValueError("histories is empty: pass {fold name: history}")
    fig, axes = _figure(1, len(metrics), figsize=(4.5 * len(metrics), 3.3))
    for i, (name, hist) in enumerate(histories.items()):
        frame = pd.DataFrame(dict(hist)) if isinstance(hist, dict) else pd.DataFrame(hist)
        color = mpl.colormaps["tab10"](i % 10)
        epochs = np.arange(1, len(frame) + 1)
        boundary = (stage_boundaries or {}).get(name)
        for ax, metric in zip(axes[0], metrics):
            if metric not in frame:
                continue
            ax.plot(epochs, frame[metric], marker="o", ms=3, color=color, label=name)
            if boundary is not None:
                ax.axvline(boundary + 1.5, color=color, ls=":", lw=1)
    for ax, metric in zip(axes[0], metrics):
        ax.set_xlabel("epoch")
        ax.set_title(metric.replace("_", " "))
        ax.legend(fontsize=8, frameon=False)
    return fig


def gan_losses(losses: dict[str, pd.DataFrame]) -> Figure:
    """One panel per class: discriminator and generator loss against training step."""
    if not losses:
        raise ValueError("gan_losses got no classes: pass {dx: losses DataFrame}")
    fig, axes = _figure(1, len(losses), figsize=(3.2 * len(losses), 3), sharey=True)
    for ax, (dx, df) in zip(axes[0], losses.items()):
        _need(df, "step", "d_loss", "g_loss")
        ax.plot(df["step"], df["d_loss"], marker=".", color=_color(dx), label="discriminator")
        ax.plot(df["step"], df["g_loss"], marker=".", color=_GREY, ls="--", label="generator")
        ax.set_title(dx, color=_color(dx))
        ax.set_xlabel("step")
    axes[0, 0].set_ylabel("loss")
    axes[0, 0].legend(fontsize=8, frameon=False)
    return fig


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
