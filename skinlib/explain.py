"""Class activation maps: an own Grad-CAM, tf-keras-vis Grad-CAM / Grad-CAM++ / Score-CAM,
overlays, and the cascading randomisation sanity check of Adebayo et al. (2018), judged
against a null of independently initialised models.

Every function takes a flat functional Keras model whose input is RGB in [0, 255] (the
baseline CNN, the ResNet50 transfer model, the fused expert model) and a batch of images
``(n, h, w, 3)`` at the model's input size. Maps are float32 ``(n, h, w)`` in [0, 1], one per
image; the class scored is the pre-softmax logit where the output layer is a softmax.
"""

from __future__ import annotations

import re

import numpy as np

from skinlib.models.transfer import PREPROCESS_LAYER

METHODS = ("gradcam", "gradcam++", "scorecam")


def feature_layer(model, min_side: int = 2):
    """The last convolutional feature map of a model (the layer Grad-CAM differentiates).

    That is the last layer with a 4-D output (``n, h, w, c``) at or after the last convolution,
    e.g. ``conv5_block3_out`` of ResNet50 or the last block's output of the baseline CNN. A map
    smaller than ``min_side`` on a side has no location to show (ResNet50 at 32 px ends in
    1x1), so then the last map that is at least that large is taken.
    """
    maps = _feature_maps(model)
    for layer in reversed(maps):
        if min(layer.output.shape[1:3]) >= min_side:
            return layer
    return maps[-1]


def _feature_maps(model) -> list:
    """The layers with a 4-D output at or after the first convolution, in model order."""
    import keras

    plain_convs = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
    convs = [i for i, layer in enumerate(model.layers) if isinstance(layer, plain_convs)]
    if not convs:
        raise ValueError(f"model {model.name!r} has no convolutional layer: Grad-CAM needs one "
                         "(pass layer= to choose a layer with a 4-D output)")
    return [layer for layer in model.layers[convs[0]:]
            if len(layer.output.shape) == 4 and _single_node(layer)]


def model_to_explain(run) -> str:
    """The model notebooks 07 and 11 explain: notebook 06's ResNet50 when it was fine-tuned from
    pretrained weights and the run folder has its metrics, else the baseline CNN of notebook 02.

    A ResNet50 trained from scratch (``06_resnet50_scratch``) is never picked: on a CPU profile's
    budget it is a control row that has barely learnt, and its maps teach nothing about where a
    classifier looks.
    """
    from skinlib.training.transfer import TRANSFER_NAME

    if (run.metrics / f"{TRANSFER_NAME}.json").exists():
        return TRANSFER_NAME
    return "02_baseline_cnn"


def _single_node(layer) -> bool:
    """A layer called once (so ``layer.output`` is well defined in the model graph)."""
    return len(getattr(layer, "_inbound_nodes", [None])) <= 1


def _layer(model, layer):
    """A layer object from None (automatic), a name or a layer."""
    if layer is None:
        return feature_layer(model)
    if isinstance(layer, str):
        return model.get_layer(layer)
    return layer


def _check_images(model, images) -> np.ndarray:
    """Images as float32 ``(n, h, w, 3)`` at the model's input size."""
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    want = tuple(model.inputs[0].shape[1:3])
    if x.ndim != 4 or tuple(x.shape[1:3]) != want:
        raise ValueError(f"images have shape {x.shape}; the model wants (n, {want[0]}, "
                         f"{want[1]}, 3): resize them first (skinlib.pipeline.load_array)")
    return x


def _class_indices(class_idx, n: int) -> np.ndarray:
    """One class index per image."""
    idx = np.broadcast_to(np.asarray(class_idx, dtype=int), (n,)).copy()
    return idx


def _logit_model(model, layer):
    """A model giving ``(feature map, class scores)``; scores are logits under a softmax."""
    import keras

    out = model.layers[-1]
    act = getattr(out, "activation", None)
    if isinstance(out, keras.layers.Dense) and getattr(act, "__name__", "") == "softmax":
        return keras.Model(model.inputs, [layer.output, out.input]), out
    if isinstance(out, keras.layers.Activation) and getattr(act, "__name__", "") == "softmax":
        return keras.Model(model.inputs, [layer.output, out.input]), None
    return keras.Model(model.inputs, [layer.output, model.outputs[0]]), None


def normalize_maps(maps) -> np.ndarray:
    """Scale each map to [0, 1] (a constant map becomes all zeros)."""
    m = np.asarray(maps, dtype=np.float32)
    lo = m.min(axis=(1, 2), keepdims=True)
    span = m.max(axis=(1, 2), keepdims=True) - lo
    return np.where(span > 0, (m - lo) / np.where(span > 0, span, 1), 0).astype(np.float32)


def resize_maps(maps, size: tuple[int, int]) -> np.ndarray:
    """Linear (order-1 spline, corners aligned) resize of ``(n, h, w)`` maps to ``size``."""
    from scipy.ndimage import zoom

    m = np.asarray(maps, np.float32)
    factors = (1.0, int(size[0]) / m.shape[1], int(size[1]) / m.shape[2])
    return zoom(m, factors, order=1)


def gradcam(model, images, class_idx, layer=None, *, upsample: bool = True,
            relu: bool = True) -> np.ndarray:
    """Grad-CAM written with ``tf.GradientTape``.

    The gradient of the class logit with respect to the feature map, averaged over space, weighs
    the channels; the weighted sum goes through a ReLU, is resized to the input and scaled to
    [0, 1] per image.

    Hand-written on purpose, beside tf-keras-vis (:func:`keras_vis_cam`): notebook 07 shows the
    algorithm in a dozen readable lines and checks two independent implementations against each
    other (:func:`agreement`; tests: correlation > 0.99); and it scores the logit through the
    output Dense's kernel instead of cloning the model per call (``ReplaceToLinear``), which
    keeps ``predict --gradcam`` cheap.

    Args:
        model: a Keras classifier with one image input.
        images: ``(n, h, w, 3)`` RGB in [0, 255] at the model's input size.
        class_idx: one class index, or one per image.
        layer: feature layer (name or layer); default :func:`feature_layer`.
        upsample: resize the maps to the input size (else keep the feature-map size).
        relu: keep only positive evidence (Grad-CAM); ``False`` keeps the signed map.

    Returns:
        float32 maps ``(n, h, w)`` in [0, 1].
    """
    x = _check_images(model, images)
    cam = cam_function(model, layer)(x, _class_indices(class_idx, len(x))).numpy()
    if relu:
        cam = np.maximum(cam, 0)
    if upsample:
        cam = resize_maps(cam, x.shape[1:3])
    return normalize_maps(cam)


def cam_function(model, layer=None):
    """The algorithm of :func:`gradcam` as a function ``(images, class indices) -> signed maps
    (n, h, w)`` at feature-map size (wrap it in ``tf.function`` to call it many times: it reads
    the model's weights as they are at each call)."""
    import tensorflow as tf

    grad_model, dense = _logit_model(model, _layer(model, layer))

    def cam(x, idx):
        with tf.GradientTape() as tape:
            feats, scores = grad_model(tf.convert_to_tensor(x), training=False)
            tape.watch(feats)
            if dense is not None:
                scores = tf.matmul(tf.cast(scores, tf.float32), tf.cast(dense.kernel, tf.float32))
                if dense.use_bias:
                    scores = scores + tf.cast(dense.bias, tf.float32)
            picked = tf.gather(tf.cast(scores, tf.float32), idx, axis=1, batch_dims=1)
        grads = tf.cast(tape.gradient(picked, feats), tf.float32)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        return tf.reduce_sum(tf.cast(feats, tf.float32) * weights, axis=-1)

    return cam


def keras_vis_cam(model, images, class_idx, method: str = "gradcam", layer=None, *,
                  max_n: int | None = None, upsample: bool = True) -> np.ndarray:
    """Grad-CAM, Grad-CAM++ or Score-CAM from tf-keras-vis on the same feature layer.

    The model is cloned with a linear output (``ReplaceToLinear``), so the score is the logit
    as in :func:`gradcam`; the caller's model is not changed.

    Args:
        method: ``gradcam``, ``gradcam++`` or ``scorecam``.
        max_n: Score-CAM only: use the ``max_n`` channels of highest variance (default all;
            every channel costs one forward pass of the batch).
        upsample: resize the maps to the input size.

    Returns:
        float32 maps ``(n, h, w)`` in [0, 1].
    """
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    if method not in METHODS:
        raise ValueError(f"method={method!r}: use one of {METHODS}")
    x = _check_images(model, images)
    idx = _class_indices(class_idx, len(x)).tolist()
    name = _layer(model, layer).name
    cls = {"gradcam": Gradcam, "gradcam++": GradcamPlusPlus, "scorecam": Scorecam}[method]
    vis = cls(model, model_modifier=ReplaceToLinear(), clone=True)
    kwargs = dict(penultimate_layer=name, seek_penultimate_conv_layer=False,
                  expand_cam=upsample)
    if method == "scorecam":
        kwargs["max_N"] = -1 if max_n is None else int(max_n)
    cam = vis(CategoricalScore(idx), x, **kwargs)
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim == 2:
        cam = cam[None]
    return normalize_maps(np.nan_to_num(cam))


def map_correlation(a, b) -> np.ndarray:
    """Pearson correlation of two stacks of maps, one value per image (NaN if one is flat)."""
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(axis=1) / den, np.nan)


def rank_correlation(a, b) -> np.ndarray:
    """Spearman rank correlation of two stacks of maps, one value per image."""
    from scipy.stats import rankdata

    ra = np.stack([rankdata(m.ravel()) for m in np.asarray(a)])
    rb = np.stack([rankdata(m.ravel()) for m in np.asarray(b)])
    return map_correlation(ra, rb)


def agreement(model, images, class_idx, layer=None) -> dict:
    """How closely the own Grad-CAM and tf-keras-vis's agree, at feature-map and input size.

    Returns:
        ``{"feature_corr", "input_corr"}``: the lowest per-image Pearson correlation at each
        size, and ``"max_abs_diff"`` of the feature-size maps.
    """
    own = gradcam(model, images, class_idx, layer, upsample=False)
    vis = keras_vis_cam(model, images, class_idx, "gradcam", layer, upsample=False)
    own_up = gradcam(model, images, class_idx, layer)
    vis_up = keras_vis_cam(model, images, class_idx, "gradcam", layer)
    return {"feature_corr": _lowest(map_correlation(own, vis)),
            "input_corr": _lowest(map_correlation(own_up, vis_up)),
            "max_abs_diff": float(np.abs(own - vis).max())}


def _lowest(values) -> float:
    """The smallest finite value (NaN when there is none)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.min()) if len(v) else float("nan")


FIXED_LAYERS = (PREPROCESS_LAYER,)  # layers that hold no learnt weights: never randomised
CHECK_CELLS = (6, 8)  # the randomisation check wants a map of at least this many cells
_BLOCK = re.compile(r"(conv\d+_block\d+|block\d+|conv\d+)_")  # ResNet / baseline CNN blocks


def check_layer(model, min_cells=CHECK_CELLS):
    """The deepest feature map of at least ``min_cells`` (sides compared sorted, so 8x8 passes
    6x8): where the randomisation check can rank enough cells (a 2x2 map is 4 numbers).

    E.g. ResNet50 at 64x64 px: ``conv3_block4_out`` (8x8; ``conv5_block3_out`` is 2x2); the
    baseline CNN at 48x64: ``block4_relu2`` (6x8).
    """
    need = sorted(int(v) for v in min_cells)
    for layer in reversed(_feature_maps(model)):
        if all(a >= b for a, b in zip(sorted(layer.output.shape[1:3]), need)):
            return layer
    raise ValueError(f"model {model.name!r} has no feature map of at least {need[0]}x{need[1]} "
                     f"cells at input {tuple(model.inputs[0].shape[1:3])}: rebuild it for larger "
                     "images or pass layer= to choose one")


def cascade_steps(model) -> list[tuple[str, list[str]]]:
    """The cascade of the randomisation check: ``(label, layer names)`` from the output towards
    the input, one step per block (``conv4_block2``, ``block3``) or per layer outside blocks.

    Only layers with weights take part, except :data:`FIXED_LAYERS` (fixed preprocessing).
    """
    steps: dict[str, list[str]] = {}
    for layer in reversed(model.layers):
        if not layer.weights or layer.name in FIXED_LAYERS:
            continue
        block = _BLOCK.match(layer.name)
        steps.setdefault(block.group(1) if block else layer.name, []).append(layer.name)
    return list(steps.items())


def randomized_copy(model, seed: int = 0):
    """The same architecture with freshly initialised (random) weights; fixed layers
    (:data:`FIXED_LAYERS`) keep the model's weights."""
    import keras

    keras.utils.set_random_seed(int(seed))
    clone = keras.models.clone_model(model)
    clone.build(model.inputs[0].shape)
    for layer in model.layers:
        if layer.name in FIXED_LAYERS:
            clone.get_layer(layer.name).set_weights(layer.get_weights())
    return clone


def ssim(a, b, filter_size: int = 3, sigma: float = 1.0) -> np.ndarray:
    """Structural similarity of two stacks of maps, one value per image (``tf.image.ssim``
    with a small Gaussian window, as maps of 6x8 cells are smaller than the usual 11x11)."""
    import tensorflow as tf

    a, b = (tf.constant(normalize_maps(m)[..., None]) for m in (a, b))
    size = min(int(filter_size), *a.shape[1:3])
    return tf.image.ssim(a, b, max_val=1.0, filter_size=size, filter_sigma=sigma).numpy()


def _cascade_maps(model, layer: str, x, idx, seed: int):
    """Signed Grad-CAM maps after each step of :func:`cascade_steps`, randomising cumulatively
    from the output down: a copy of the model takes each step's weights from a random
    initialisation. Returns ``(steps, maps (depths, n, h, w))``."""
    import keras
    import tensorflow as tf

    source = randomized_copy(model, seed)
    work = keras.models.clone_model(model)
    work.build(model.inputs[0].shape)
    work.set_weights(model.get_weights())
    cam = tf.function(cam_function(work, layer))  # traced once; reads the weights of each step
    xt, it = tf.constant(x), tf.constant(idx)
    steps, out = cascade_steps(model), []
    for _, names in steps:
        for name in names:
            work.get_layer(name).set_weights(source.get_layer(name).get_weights())
        out.append(normalize_maps(cam(xt, it).numpy()))
    return steps, np.stack(out)


def _spread(values) -> dict:
    """Median, quartiles and the per-image values (rounded) of one distribution."""
    v = np.asarray(values, dtype=float)
    f = v[np.isfinite(v)]
    q = np.percentile(f, [25, 50, 75]) if len(f) else [np.nan] * 3
    return {"median": _json_float(q[1]), "iqr": [_json_float(q[0]), _json_float(q[2])],
            "values": [None if not np.isfinite(x) else round(float(x), 4) for x in v]}


def _json_float(x) -> float | None:
    """A float for JSON (NaN -> None)."""
    return float(x) if np.isfinite(x) else None


def randomization_verdict(abs_rho: dict, null, *, alpha: float = 0.05,
                          n_bootstrap: int = 2000, seed: int = 0) -> dict:
    """Whether the maps at each randomised depth are still more alike the trained maps than
    maps of two independently initialised models are alike each other (the null).

    Per depth: a bootstrap (images resampled, the depth's values and the null independently)
    of median |rho| minus the null's median |rho|; its one-sided lower ``1 - alpha`` bound
    above 0 means "insensitive" (still alike: the map does not follow the weights), else
    "sensitive" (fallen to the null level); "undetermined" without finite values.

    Args:
        abs_rho: depth label -> |Spearman rho| per image against the trained maps, in cascade
            order (output first).
        null: |rho| per image pair of the null.

    Returns:
        ``{"per_depth": {label: {"median", "null_median", "diff_lower", "verdict"}},
        "first_null_depth"`` (the first depth from which every deeper one is "sensitive"; None
        if the fully randomised model's maps are still above the null) ``, "verdict"}``: overall
        "sensitive" when such a depth exists.
    """
    rng = np.random.default_rng(seed)
    nul = np.abs(np.asarray(null, dtype=float))
    nul = nul[np.isfinite(nul)]
    per = {}
    for label, values in abs_rho.items():
        v = np.abs(np.asarray(values, dtype=float))
        v = v[np.isfinite(v)]
        if not len(v) or not len(nul):
            per[label] = {"median": None, "null_median": None, "diff_lower": None,
                          "verdict": "undetermined"}
            continue
        diffs = (np.median(v[rng.integers(0, len(v), (n_bootstrap, len(v)))], axis=1)
                 - np.median(nul[rng.integers(0, len(nul), (n_bootstrap, len(nul)))], axis=1))
        lower = float(np.quantile(diffs, alpha))
        per[label] = {"median": float(np.median(v)), "null_median": float(np.median(nul)),
                      "diff_lower": lower,
                      "verdict": "insensitive" if lower > 0 else "sensitive"}
    return {"per_depth": per, **_first_null(per)}


def _first_null(per: dict) -> dict:
    """``first_null_depth`` and the overall ``verdict`` of :func:`randomization_verdict`."""
    verdicts = [d["verdict"] for d in per.values()]
    if not verdicts or all(v == "undetermined" for v in verdicts):
        return {"first_null_depth": None, "verdict": "undetermined"}
    first = None
    for label, v in zip(reversed(list(per)), reversed(verdicts)):
        if v != "sensitive":
            break
        first = label
    return {"first_null_depth": first, "verdict": "sensitive" if first else "insensitive"}


def randomization_check(model, images, class_idx, layer=None, seed: int = 0, *,
                        n_null: int = 3, n_bootstrap: int = 2000) -> dict:
    """Cascading model-parameter randomisation test (Adebayo et al. 2018, "Sanity checks for
    saliency maps") of Grad-CAM, against a null of independently initialised models.

    The weights are re-initialised block by block from the output towards the input
    (:func:`cascade_steps`); after each step the signed Grad-CAM maps (before the ReLU: a random
    network's rectified map is often all zero) at feature-map size on ``layer`` (default
    :func:`check_layer`, >= 6x8 cells) are compared with the trained model's by |Spearman rho|
    and SSIM. The null: the same between ``n_null`` randomly initialised models, pairwise.
    :func:`randomization_verdict` decides per depth.

    Returns:
        JSON-ready ``layer``, ``feature_map``, ``n_images``, ``steps`` (one dict per depth:
        ``randomised`` block, ``layers``, ``abs_rho`` and ``ssim`` spreads, ``verdict``,
        ``diff_lower``), ``null`` (``abs_rho``/``ssim`` spreads, ``n_models``),
        ``first_null_depth``, ``verdict``; and arrays ``maps_trained`` ``(n, h, w)`` and
        ``maps_cascade`` ``(depths, n, h, w)`` (signed maps scaled to [0, 1]).
    """
    from itertools import combinations

    x = _check_images(model, images)
    lay = check_layer(model) if layer is None else _layer(model, layer)

    def maps(m):
        return gradcam(m, x, class_idx, lay.name, upsample=False, relu=False)

    trained = maps(model)
    steps, cascade = _cascade_maps(model, lay.name, x, _class_indices(class_idx, len(x)), seed)
    nulls = [maps(randomized_copy(model, seed + 1 + k)) for k in range(max(2, n_null))]
    pairs = list(combinations(nulls, 2))
    null_rho = np.abs(np.concatenate([rank_correlation(a, b) for a, b in pairs]))
    rho = {label: np.abs(rank_correlation(trained, m)) for (label, _), m in zip(steps, cascade)}
    verdict = randomization_verdict(rho, null_rho, n_bootstrap=n_bootstrap, seed=seed)
    rows = [{"randomised": label, "layers": len(names), "abs_rho": _spread(rho[label]),
             "ssim": _spread(ssim(trained, m)), **{k: verdict["per_depth"][label][k]
                                                   for k in ("verdict", "diff_lower")}}
            for (label, names), m in zip(steps, cascade)]
    null = {"abs_rho": _spread(null_rho), "n_models": len(nulls),
            "ssim": _spread(np.concatenate([ssim(a, b) for a, b in pairs]))}
    return {"layer": lay.name, "feature_map": list(lay.output.shape[1:3]), "n_images": len(x),
            "steps": rows, "null": null, "first_null_depth": verdict["first_null_depth"],
            "verdict": verdict["verdict"], "maps_trained": trained, "maps_cascade": cascade}


def cascade_table(check: dict):
    """One row per cascade depth of a :func:`randomization_check`: medians, quartiles, verdict."""
    import pandas as pd

    rows = [{"randomised down to": r["randomised"], "layers": r["layers"],
             "median |rho|": r["abs_rho"]["median"], "|rho| IQR": r["abs_rho"]["iqr"],
             "median SSIM": r["ssim"]["median"], "lower bound - null": r["diff_lower"],
             "verdict": r["verdict"]} for r in check["steps"]]
    null = check["null"]
    rows.append({"randomised down to": f"null ({null['n_models']} random models)",
                 "median |rho|": null["abs_rho"]["median"], "|rho| IQR": null["abs_rho"]["iqr"],
                 "median SSIM": null["ssim"]["median"]})
    return pd.DataFrame(rows).round(3)


def randomization_summary(check: dict) -> str:
    """What a :func:`randomization_check` found, in two sentences."""
    steps, null = [r["randomised"] for r in check["steps"]], check["null"]["abs_rho"]
    h, w = check["feature_map"]
    head = (f"Layer {check['layer']} ({h}x{w} cells), {check['n_images']} images, "
            f"{len(steps)} cascade steps from the output down; null median |rho| "
            f"{null['median'] or float('nan'):.2f} (quartiles {null['iqr'][0] or float('nan'):.2f}"
            f"-{null['iqr'][1] or float('nan'):.2f}). ")
    first = check["first_null_depth"]
    if check["verdict"] == "sensitive":
        return head + (f"The maps fall to the null level once the weights are randomised down "
                       f"to {first} (step {steps.index(first) + 1} of {len(steps)}) and stay "
                       "there: Grad-CAM on this model follows its learnt weights.")
    if check["verdict"] == "insensitive":
        return head + (f"Even randomised down to {steps[-1]}, the maps stay more alike the "
                       "trained ones than two random models' maps are alike each other: they "
                       "show the input or the architecture more than what the model learnt.")
    return head + "Too few images with a ranked map to judge."


def cascade_panels(check: dict, images, n_images: int = 3, n_depths: int = 5):
    """Images and overlay columns for :func:`skinlib.plots.cam_grid`: the trained map, then the
    maps after ``n_depths`` cascade steps spread from the top to the bottom.

    Returns:
        ``(images, {column title: [overlay per image]})``.
    """
    imgs = np.asarray(images)[:n_images]
    steps = check["steps"]
    picks = np.unique(np.linspace(0, len(steps) - 1, min(n_depths, len(steps))).round()).astype(int)
    cols = {"trained": [overlay(im, m) for im, m in zip(imgs, check["maps_trained"])]}
    for d in picks:
        maps = check["maps_cascade"][d]
        cols[f"to {steps[d]['randomised']}"] = [overlay(im, m) for im, m in zip(imgs, maps)]
    return imgs, cols


def overlay(image, cam, *, alpha: float = 0.4, colormap: int | None = None) -> np.ndarray:
    """A CAM drawn over an image with an OpenCV colour map, at the image's own size.

    Args:
        image: RGB ``(H, W, 3)`` uint8 (or float in [0, 255]) of any size.
        cam: ``(h, w)`` map in [0, 1]; resized to ``(H, W)``.
        alpha: weight of the colour map.
        colormap: an OpenCV colour map (default ``cv2.COLORMAP_JET``).

    Returns:
        uint8 RGB ``(H, W, 3)``.
    """
    import cv2

    img = np.clip(np.asarray(image, dtype=np.float32), 0, 255).astype(np.uint8)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image has shape {img.shape}: pass RGB (H, W, 3)")
    h, w = img.shape[:2]
    heat = cv2.resize(np.asarray(cam, np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    heat = np.uint8(255 * np.clip(heat, 0, 1))
    colour = cv2.applyColorMap(heat, cv2.COLORMAP_JET if colormap is None else colormap)
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(colour, float(alpha), img, 1.0 - float(alpha), 0)


def explain_all(model, images, class_idx, *, methods=METHODS, layer=None,
                scorecam_max_n: int | None = None) -> dict[str, np.ndarray]:
    """Maps of several methods for the same images: ``{"own gradcam": ..., "gradcam": ...}``."""
    out = {"own gradcam": gradcam(model, images, class_idx, layer)}
    for m in methods:
        out[m] = keras_vis_cam(model, images, class_idx, m, layer,
                               max_n=scorecam_max_n if m == "scorecam" else None)
    return out


def pick_examples(labels, preds, per_class: int = 2, seed: int = 0):
    """Up to ``per_class`` correct and ``per_class`` wrong predictions of every true class.

    Returns:
        A DataFrame with ``index`` (row in the inputs), ``label``, ``pred`` and ``correct``,
        ordered by class, correct ones first.
    """
    import pandas as pd

    y, p = np.asarray(labels).astype(int), np.asarray(preds).astype(int)
    rng = np.random.default_rng(seed)
    rows = []
    for c in np.unique(y):
        for correct in (True, False):
            idx = np.flatnonzero((y == c) & ((p == y) == correct))
            for i in sorted(rng.choice(idx, min(per_class, len(idx)), replace=False)):
                rows.append({"index": int(i), "label": int(c), "pred": int(p[i]),
                             "correct": correct})
    return pd.DataFrame(rows, columns=["index", "label", "pred", "correct"])


def border_share(maps, frac: float = 0.1) -> dict:
    """Share of the maps' mass in the outer ``frac`` frame of the image, against the frame's
    share of the area (what a map spread evenly would put there)."""
    m = np.asarray(maps, dtype=np.float64)
    h, w = m.shape[1:3]
    bh, bw = max(1, int(round(h * frac))), max(1, int(round(w * frac)))
    inner = np.zeros((h, w), bool)
    inner[bh:h - bh, bw:w - bw] = True
    total = m.sum(axis=(1, 2))
    share = np.where(total > 0, m[:, ~inner].sum(axis=1) / np.where(total > 0, total, 1), np.nan)
    return {"mass_share": float(np.nanmean(share)) if np.isfinite(share).any() else float("nan"),
            "area_share": float((~inner).mean()), "frac": frac}
