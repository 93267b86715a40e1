"""The sentence printed under a figure of notebooks 02-07 and 12, built from the numbers the
figure shows, so the prose of a notebook cannot go stale when a run changes.

Each function takes what the matching :mod:`skinlib.plots` function drew and returns one or two
sentences (a ``str``). Notebook 01's readings live in :mod:`skinlib.eda`. No TensorFlow here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from skinlib.metrics import expected_calibration_error
from skinlib.plots import history_frame, restored_epoch


def history(hist, stage_boundary: int | None = None) -> str:
    """Under :func:`skinlib.plots.history`: the restored epoch and what the losses did."""
    frame, epochs = history_frame(hist)
    best = restored_epoch(frame, epochs, stage_boundary)
    text = (f"Training loss went from {frame['loss'].iloc[0]:.3f} to {frame['loss'].iloc[-1]:.3f}"
            f" over {len(frame)} epochs")
    if best is None:
        return text + "; no validation loss was logged."
    val = frame["val_loss"].to_numpy()
    i = list(epochs).index(best)
    rise = val[-1] - val[i]
    text += (f"; validation loss was lowest at epoch {best} ({val[i]:.3f}), the epoch whose "
             "weights were kept. ")
    if i == len(val) - 1:
        return text + ("That is the last epoch run: validation loss had not turned up yet, so "
                       "more epochs might help.")
    return text + (f"After it, validation loss rose by {rise:.3f} while training loss kept "
                   "falling: over-fitting, which early stopping cut off."
                   if rise > 0.01 * abs(val[i]) else
                   "It stayed about there afterwards: training had levelled off.")


def learning_curves(histories: dict, stage_boundaries: dict | None = None) -> str:
    """Under :func:`skinlib.plots.learning_curves`: each model's restored epoch and its lowest
    validation loss, and which model reached the lowest."""
    best = {}
    for name, hist in histories.items():
        frame, epochs = history_frame(hist)
        boundary = (stage_boundaries or {}).get(name)
        epoch = restored_epoch(frame, epochs, None if boundary is None else boundary + 1)
        if epoch is not None:
            best[name] = (epoch, len(frame), float(frame["val_loss"].iloc[
                list(epochs).index(epoch)]))
    if not best:
        return "No validation loss was logged, so no epoch was chosen by it."
    low = min(best, key=lambda n: best[n][2])
    return ("Kept epoch (of those run) and its validation loss: "
            + "; ".join(f"{n} {e} of {k} ({v:.3f})" for n, (e, k, v) in best.items())
            + f". Lowest: {low}. Validation losses of models trained on differently balanced "
            "data are not comparable one to one; the test metrics below are.")


def roc(result: dict) -> str:
    """Under :func:`skinlib.plots.roc_curves`: macro AUC, best and worst separated class."""
    auc = pd.Series({c: v.get("auc") for c, v in result["per_class"].items()}).dropna()
    return (f"Macro AUC {result['macro_auc']:.3f}, the mean of the {len(auc)} one-vs-rest AUCs. "
            f"Best separated: {auc.idxmax()} (AUC {auc.max():.3f}); worst: {auc.idxmin()} "
            f"({auc.min():.3f}). An AUC is the chance that a random image of the class gets a "
            "higher score for it than a random image of another class: it ranks, so it does not "
            "depend on the decision rule.")


def reliability(y_true, probs, name: str = "the model", n_bins: int = 15) -> str:
    """Under :func:`skinlib.plots.reliability_diagram`: ECE, and the mean confidence of the top
    label against how often it is right."""
    p = np.asarray(probs, dtype=float)
    confidence = float(p.max(axis=1).mean())
    accuracy = float((p.argmax(axis=1) == np.asarray(y_true)).mean())
    gap = confidence - accuracy
    return (f"ECE of {name}: {expected_calibration_error(y_true, p, n_bins):.3f} (the gap "
            "between confidence and accuracy per bin, weighted by the images in it). On average "
            f"the top label is given {confidence:.2f} and is right {accuracy:.2f} of the time: "
            + ("over-confident." if gap > 0.02 else "under-confident." if gap < -0.02
               else "about calibrated."))


def gan_losses(losses: dict[str, pd.DataFrame]) -> str:
    """Under :func:`skinlib.plots.gan_losses`: the last logged losses of each class and whether
    the discriminator beat chance (its loss below 2 ln 2)."""
    parts, winning = [], []
    for dx, df in losses.items():
        d, g = float(df["d_loss"].iloc[-1]), float(df["g_loss"].iloc[-1])
        parts.append(f"{dx} D {d:.2f} / G {g:.2f}")
        if d < np.log(2):
            winning.append(dx)
    return (f"Losses at the last logged step: {'; '.join(parts)}. A discriminator loss below "
            "2 ln 2 = 1.39 means it tells real from generated better than chance; "
            + (f"it has all but won for {', '.join(winning)} (below half that), where the "
               "generator gets little signal." if winning else
               "none has run away from its generator (none below half of 2 ln 2)."))


def gan_samples(dx: str, steps: list[int], n_real: int) -> str:
    """Under a class's real-vs-generated grid of notebook 03."""
    first, last = min(steps), max(steps)
    return (f"{dx}: the first row holds {n_real} real training images; the next rows the same "
            f"fixed latent vectors decoded at step {first} and at step {last} of "
            f"{len(steps)} checkpoints, so any change between them is training, not chance.")


def gan_vs_real(rows: dict[str, dict]) -> str:
    """Under :func:`skinlib.plots.gan_vs_real`: the copy check in numbers (``rows``: dx ->
    :func:`skinlib.gan_quality.copy_check` dict)."""
    parts = [f"{dx} {r['median_nn_distance_generated']:.0f} vs {r['median_nn_distance_val']:.0f}"
             for dx, r in rows.items()]
    ratios = {dx: r["nn_ratio"] for dx, r in rows.items() if r.get("nn_ratio") is not None}
    low = min(ratios, key=ratios.get) if ratios else None
    return ("Median pixel distance to the nearest training image, generated vs real validation "
            f"images: {'; '.join(parts)}. "
            + (f"The lowest ratio is {low}'s ({ratios[low]:.2f}); " if low else "")
            + "a ratio well below 1 (generated images much closer to training images than new "
            "real ones are) would mean the GAN copies.")


def kid_vs_floor(table: pd.DataFrame) -> str:
    """Under :func:`skinlib.plots.kid_vs_floor`: how far each class's KID is above its floor."""
    gap = (table["kid"] - table["floor"]).sort_values()
    return ("KID above the real-vs-real floor: "
            + "; ".join(f"{dx} +{g:.3g}" if g >= 0 else f"{dx} {g:.3g}" for dx, g in gap.items())
            + f". Closest to real: {gap.index[0]}; furthest: {gap.index[-1]}. A gap larger than "
            "the spreads of both points is a difference the validation images can tell.")


def added_images(added: dict[str, int], real: pd.Series) -> str:
    """Under notebook 04's grid of added GAN images: how many were added to which class."""
    got = {dx: int(n) for dx, n in added.items() if n}
    if not got:
        return "No GAN image was added: every minority class already reached the target count."
    return ("GAN images added to training: "
            + "; ".join(f"{dx} +{n:,} to {int(real.get(dx, 0)):,} real" for dx, n in got.items())
            + f" ({sum(got.values()):,} in all). The grid shows a few of each class, titled with "
            "it; compare them with notebook 03's real images of the same class.")


def recall_comparison(base: dict, new: dict, base_name: str, new_name: str) -> str:
    """Under a two-model :func:`skinlib.plots.per_class_recall`: per-class recall changes."""
    diff = pd.Series({c: new["per_class"][c]["recall"] - base["per_class"][c]["recall"]
                      for c in new["per_class"] if c in base["per_class"]}).dropna()
    up, down = diff.idxmax(), diff.idxmin()
    return (f"{new_name} has higher recall than {base_name} on {int((diff > 0).sum())} of "
            f"{len(diff)} classes; the largest gain is {up} ({diff[up]:+.2f}), the largest loss "
            f"{down} ({diff[down]:+.2f}). A rare class has few test images, so one image moves "
            "its recall by several points.")


def rare_classes(test: pd.DataFrame, n: int = 3) -> str:
    """The ``n`` classes with the fewest test images, with their counts."""
    counts = test["dx"].value_counts().sort_values()
    rare = ", ".join(f"{dx} ({k} test images)" for dx, k in counts.head(n).items())
    return (f"Rarest classes in this test split: {rare}. One image there moves recall by "
            f"{1 / counts.iloc[0]:.0%} or more, so their cells change most from model to model.")
