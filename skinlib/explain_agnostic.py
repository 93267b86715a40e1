"""Model-agnostic explanations: SHAP Partition-explainer attributions over image regions, and
how well they agree with Grad-CAM (:mod:`skinlib.explain`).

SHAP's Partition explainer only queries the model: it hides rectangles of the image (inpainted
from their surroundings, or blurred) and measures how the class score moves, recursing into
the rectangles that matter most until ``max_evals`` model calls are spent. The result (Owen
values over a hierarchy of axis-aligned rectangles) adds up to ``f(image) - f(all hidden)``.

Every function takes a flat Keras classifier whose input is RGB in [0, 255] (as in
:mod:`skinlib.explain`); the score explained is the pre-softmax logit, the score Grad-CAM
differentiates, so both methods explain the same number. Maps are ``(n, h, w)`` float arrays.
"""

from __future__ import annotations

import math

import numpy as np

MASKERS = ("inpaint_telea", "inpaint_ns", "blur")


def logit_function(model, batch_size: int = 64):
    """A function ``images (n, h, w, 3) -> class logits (n, k)`` as float64 NumPy.

    Where the output layer is a ``Dense`` with a softmax, the logits are its pre-activation
    (features times kernel plus bias); otherwise the model's output is taken as the score.
    """
    import keras

    out = model.layers[-1]
    act = getattr(getattr(out, "activation", None), "__name__", "")
    if isinstance(out, keras.layers.Dense) and act == "softmax":
        head = keras.Model(model.inputs, out.input)
        kernel = np.asarray(out.kernel, np.float64)
        bias = np.asarray(out.bias, np.float64) if out.use_bias else 0.0
    else:
        head, kernel, bias = model, None, 0.0

    import tensorflow as tf

    # one trace for every batch size (shap's batches vary; each retrace of ResNet50 costs s)
    spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)
    run = tf.function(lambda t: head(t, training=False), input_signature=[spec])

    def scores(images) -> np.ndarray:
        x = np.asarray(images, np.float32)
        parts = [np.asarray(run(tf.constant(x[i:i + batch_size])), np.float64)
                 for i in range(0, len(x), batch_size)]
        h = np.concatenate(parts)
        return h if kernel is None else h @ kernel + bias

    return scores


def masker_spec(masker: str, image_size) -> str:
    """The ``shap.maskers.Image`` mask value for a masker name.

    ``inpaint_telea`` / ``inpaint_ns`` fill a hidden region from its border (OpenCV
    inpainting: a hidden lesion becomes skin); ``blur`` (a box blur a quarter of the short
    side wide) keeps a hidden region's average colour; ``blur(k,k)`` sets the kernel.
    """
    if masker in ("inpaint_telea", "inpaint_ns") or (masker.startswith("blur(")
                                                     and masker.endswith(")")):
        return masker
    if masker == "blur":
        k = max(3, min(int(s) for s in image_size) // 4)
        return f"blur({k},{k})"
    raise ValueError(f"masker={masker!r}: use one of {MASKERS} or 'blur(k,k)'")


def shap_values(model, images, class_idx, *, max_evals: int, masker: str = "inpaint_telea",
                batch_size: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    """SHAP Partition-explainer attributions of one class logit per image.

    Args:
        model: a Keras classifier, input RGB in [0, 255] at ``images``' size.
        images: ``(n, h, w, 3)`` in [0, 255].
        class_idx: one class index, or one per image (the logit explained).
        max_evals: model calls per image (the budget: more calls, finer rectangles).
        masker: see :func:`masker_spec`.
        batch_size: masked images per model call.
        seed: seeds the tie-break of shap's priority queue (it draws from NumPy's global
            generator, whose state is restored afterwards), so a run is repeatable.

    Returns:
        ``values``: signed attributions ``(n, h, w)`` summed over the colour channels
        (positive = evidence for the class); ``base``: the logit of each fully hidden image
        and ``score`` of each image ``(n,)``. The values of an image add up to
        ``score - base`` (SHAP's efficiency; :func:`additivity_error`).
    """
    import warnings

    with warnings.catch_warnings():  # shap 0.51's colour maps use soon-deprecated matplotlib
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import shap

    x = np.asarray(images, np.float32)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"images have shape {x.shape}: pass RGB (n, h, w, 3) in [0, 255]")
    if int(max_evals) < 4:
        raise ValueError(f"max_evals={max_evals}: SHAP needs at least 4 model calls per image")
    idx = np.broadcast_to(np.asarray(class_idx, dtype=int), (len(x),))
    scores = logit_function(model, batch_size)
    explainer = shap.PartitionExplainer(
        scores, shap.maskers.Image(masker_spec(masker, x.shape[1:3]), x.shape[1:]))
    values, base = [], []
    state = np.random.get_state()
    try:
        for i, c in enumerate(idx):
            np.random.seed(int(seed) + i)
            out = explainer(x[i:i + 1], max_evals=int(max_evals), batch_size=int(batch_size),
                            outputs=[int(c)], silent=True)
            values.append(np.asarray(out.values, np.float64)[0, ..., 0].sum(axis=-1))
            base.append(float(np.ravel(out.base_values)[0]))
    finally:
        np.random.set_state(state)
    return {"values": np.stack(values), "base": np.asarray(base),
            "score": scores(x)[np.arange(len(x)), idx]}


def additivity_error(result: dict) -> float:
    """Largest ``|sum of an image's values - (score - base)|`` over images, relative to the
    largest ``|score - base|`` (0 when SHAP's efficiency holds)."""
    total = np.asarray(result["values"], np.float64).sum(axis=(1, 2))
    gap = np.asarray(result["score"]) - np.asarray(result["base"])
    return float(np.abs(total - gap).max() / max(np.abs(gap).max(), 1e-12))


def common_grid(cam_shape, image_shape, min_side: int = 8) -> tuple[int, int]:
    """The grid both maps are compared on: the CAM's feature-map grid, each cell split into
    ``f x f`` so the short side has at least ``min_side`` cells (a 2x2 map has too few cells
    to rank), and no finer than the image."""
    h, w = (int(s) for s in cam_shape)
    f = max(1, math.ceil(min_side / min(h, w)))
    return min(h * f, int(image_shape[0])), min(w * f, int(image_shape[1]))


def to_grid(maps, size) -> np.ndarray:
    """Area-average ``(n, H, W)`` maps onto a coarser ``size`` grid (each cell the mean of the
    pixels it covers, fractional overlaps weighted), float64 ``(n, h, w)``."""
    import cv2

    m = np.asarray(maps, np.float32)
    h, w = (int(s) for s in size)
    if m.ndim != 3 or h > m.shape[1] or w > m.shape[2]:
        raise ValueError(f"maps of shape {m.shape} cannot be averaged onto a {h}x{w} grid: "
                         "pass (n, H, W) maps with H >= h and W >= w")
    return np.stack([cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA)
                     for a in m]).astype(np.float64)


def top_region(maps, frac: float) -> np.ndarray:
    """Boolean masks of each map's top ``frac`` cells (ties at the cut included)."""
    m = np.asarray(maps, np.float64).reshape(len(maps), -1)
    k = max(1, int(round(frac * m.shape[1])))
    cut = -np.sort(-m, axis=1)[:, k - 1:k]
    return (m >= cut).reshape(np.shape(maps))


def top_iou(a, b, frac: float = 0.2) -> np.ndarray:
    """Intersection over union of two stacks of maps' top ``frac`` regions, one per image
    (NaN where a map is flat, which has no top region)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"maps of shapes {a.shape} and {b.shape}: bring both to one grid "
                         "first (to_grid)")
    ta = top_region(a, frac).reshape(len(a), -1)
    tb = top_region(b, frac).reshape(len(b), -1)
    iou = (ta & tb).sum(axis=1) / (ta | tb).sum(axis=1)
    flat = (np.ptp(a.reshape(len(a), -1), axis=1) == 0) | (np.ptp(b.reshape(len(b), -1),
                                                                 axis=1) == 0)
    return np.where(flat, np.nan, iou)


def chance_iou(frac: float) -> float:
    """Expected top-region IoU of two independent random maps: ``f / (2 - f)``."""
    return frac / (2 - frac)


def agreement(a, b, frac: float = 0.2) -> dict[str, np.ndarray]:
    """Per-image Spearman rank correlation and top-``frac`` IoU of two map stacks on one grid."""
    from skinlib.explain import rank_correlation

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"maps of shapes {a.shape} and {b.shape}: bring both to one grid "
                         "first (to_grid)")
    if not len(a):
        return {"spearman": np.zeros(0), "iou": np.zeros(0)}
    return {"spearman": rank_correlation(a, b), "iou": top_iou(a, b, frac)}


def null_agreement(shap_maps, cam_maps, frac: float = 0.2, seed: int = 0) -> dict:
    """What agreement looks like when the maps are unrelated.

    ``other``: each SHAP map against the Grad-CAM of every *other* image (keeps what all maps
    share, such as a pull to the image centre); ``shuffled``: each SHAP map against its own
    Grad-CAM with the cells permuted (no spatial structure at all).

    Returns:
        ``{"other": {"spearman", "iou", "image", "cam"}, "shuffled": {"spearman", "iou"}}``,
        arrays over pairs; ``image`` / ``cam`` index the SHAP map and the Grad-CAM of a pair.
    """
    s, c = np.asarray(shap_maps, np.float64), np.asarray(cam_maps, np.float64)
    n = len(s)
    i, j = (a.ravel() for a in np.meshgrid(np.arange(n), np.arange(n), indexing="ij"))
    keep = i != j
    other = agreement(s[i[keep]], c[j[keep]], frac)
    rng = np.random.default_rng(seed)
    flat = c.reshape(n, -1)
    shuffled = np.stack([row[rng.permutation(row.size)] for row in flat]).reshape(c.shape)
    return {"other": {**other, "image": i[keep], "cam": j[keep]},
            "shuffled": agreement(s, shuffled, frac)}


def permutation_p(matrix, n_perm: int = 2000, seed: int = 0) -> float:
    """One-sided p-value that matched maps agree more than re-paired ones.

    ``matrix[i, j]`` is the agreement of image ``i``'s SHAP map with image ``j``'s Grad-CAM.
    The statistic is the mean of the diagonal (each image with its own map); the null draws
    ``n_perm`` random re-pairings (permutations of the Grad-CAMs among the images).
    ``(1 + #{null >= observed}) / (1 + n_perm)``; NaN when nothing is finite.
    """
    m = np.asarray(matrix, np.float64)
    n = len(m)
    diag = np.diag(m)
    if not np.isfinite(diag).any():
        return float("nan")
    t = np.nanmean(diag)
    perms = np.argsort(np.random.default_rng(seed).random((int(n_perm), n)), axis=1)
    paired = m[np.arange(n), perms]
    ok = np.isfinite(paired).any(axis=1)
    null = np.array([np.nanmean(row) for row in paired[ok]])
    return float((1 + (null >= t - 1e-12).sum()) / (1 + len(null)))


def compare(shap_maps, cam_maps, grid, frac: float = 0.2, seed: int = 0) -> dict:
    """SHAP against Grad-CAM on a common grid, with the nulls of :func:`null_agreement`.

    Args:
        shap_maps, cam_maps: ``(n, H, W)`` maps of the same images and classes (signed maps
            rank best: a rectified Grad-CAM is often zero over most cells).
        grid: ``(h, w)`` both are area-averaged onto (:func:`common_grid`).

    Returns:
        ``observed`` (per-image ``spearman``, ``iou``), ``null`` (as :func:`null_agreement`),
        ``p_value`` per measure (:func:`permutation_p`), ``grid``, ``top_frac``,
        ``chance_iou``.
    """
    s, c = to_grid(shap_maps, grid), to_grid(cam_maps, grid)
    observed = agreement(s, c, frac)
    null = null_agreement(s, c, frac, seed)
    n, p = len(s), {}
    for key in ("spearman", "iou"):
        m = np.diag(observed[key]).astype(np.float64)
        m[null["other"]["image"], null["other"]["cam"]] = null["other"][key]
        p[key] = permutation_p(m, seed=seed) if n > 1 else float("nan")
    return {"observed": observed, "null": null, "p_value": p, "grid": list(grid),
            "top_frac": frac, "chance_iou": chance_iou(frac)}


def summary(result: dict) -> dict:
    """The JSON-ready numbers of :func:`compare`: medians of observed and null agreement, the
    permutation p-value and how many images fall below the ``other`` null's median."""
    out = {"grid": result["grid"], "top_frac": result["top_frac"],
           "chance_iou": round(result["chance_iou"], 4)}
    for key in ("spearman", "iou"):
        obs = result["observed"][key]
        other = result["null"]["other"][key]
        ok = np.isfinite(obs)
        null_median = _median(other)
        p = result["p_value"][key]
        out[key] = {
            "per_image": [None if not np.isfinite(v) else round(float(v), 4) for v in obs],
            "median": _median(obs), "n_images": int(ok.sum()),
            "null_other_median": null_median, "n_null_pairs": int(np.isfinite(other).sum()),
            "null_shuffled_median": _median(result["null"]["shuffled"][key]),
            "n_below_null_median": (None if null_median is None
                                    else int((obs[ok] < null_median).sum())),
            "p_value": None if not np.isfinite(p) else round(float(p), 4)}
    return out


def verdict(summ: dict, alpha: float = 0.05) -> str:
    """One sentence on whether the SHAP maps match their own image's Grad-CAM better than
    another image's (the Spearman permutation test of :func:`compare` at level ``alpha``)."""
    rho = summ["spearman"]
    p = rho["p_value"]
    if p is None:
        return "too few images to compare the maps with a null."
    if p < alpha and rho["median"] > rho["null_other_median"]:
        return (f"the SHAP maps rank the cells more like their own image's Grad-CAM than like "
                f"another image's (permutation p = {p:.3f}): the two methods put this model's "
                "evidence in overlapping places.")
    return (f"the SHAP maps agree with their own image's Grad-CAM no better than with another "
            f"image's (permutation p = {p:.3f}): what agreement there is comes from what all "
            "maps share (such as the centre), not from each image's own evidence.")


def _median(values) -> float | None:
    """Median of the finite values (None when there are none)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    return round(float(np.median(v)), 4) if len(v) else None


def subsample(picks, n: int):
    """``n`` rows spread evenly over ``picks`` (all of them when ``n`` is 0 or too large), so
    a small budget still reaches every class of :func:`skinlib.explain.pick_examples`."""
    if n <= 0 or n >= len(picks):
        return picks.reset_index(drop=True)
    rows = np.unique(np.linspace(0, len(picks) - 1, int(n)).round().astype(int))
    return picks.iloc[rows].reset_index(drop=True)


def signed_overlay(image, values, *, alpha: float = 0.7) -> np.ndarray:
    """Signed attributions over a grey copy of an image: red where they support the class,
    blue where they oppose it, stronger where larger (scaled by the map's largest ``|value|``).

    Returns:
        uint8 RGB at the image's size.
    """
    import cv2

    img = np.clip(np.asarray(image, np.float32), 0, 255)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image has shape {img.shape}: pass RGB (H, W, 3)")
    v = cv2.resize(np.asarray(values, np.float32), img.shape[1::-1],
                   interpolation=cv2.INTER_NEAREST)
    v = v / max(float(np.abs(v).max()), 1e-12)
    grey = np.repeat(img.mean(axis=2, keepdims=True), 3, axis=2)
    colour = np.where(v[..., None] > 0, [255.0, 0.0, 0.0], [0.0, 0.0, 255.0])
    w = float(alpha) * np.abs(v)[..., None]
    return np.clip(grey * (1 - w) + colour * w, 0, 255).astype(np.uint8)
