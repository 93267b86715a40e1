"""Class activation maps: an own Grad-CAM, tf-keras-vis Grad-CAM / Grad-CAM++ / Score-CAM,
overlays, and the randomisation sanity check of Adebayo et al. (2018).

Every function takes a flat functional Keras model whose input is RGB in [0, 255] (the
baseline CNN, the ResNet50 transfer model, the fused expert model) and a batch of images
``(n, h, w, 3)`` at the model's input size. Maps are float32 ``(n, h, w)`` in [0, 1], one per
image; the class scored is the pre-softmax logit where the output layer is a softmax.
"""

from __future__ import annotations

import numpy as np

METHODS = ("gradcam", "gradcam++", "scorecam")


def feature_layer(model, min_side: int = 2):
    """The last convolutional feature map of a model (the layer Grad-CAM differentiates).

    That is the last layer with a 4-D output (``n, h, w, c``) at or after the last convolution,
    e.g. ``conv5_block3_out`` of ResNet50 or the last block's output of the baseline CNN. A map
    smaller than ``min_side`` on a side has no location to show (ResNet50 at 32 px ends in
    1x1), so then the last map that is at least that large is taken.
    """
    import keras

    plain_convs = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
    convs = [i for i, layer in enumerate(model.layers) if isinstance(layer, plain_convs)]
    if not convs:
        raise ValueError(f"model {model.name!r} has no convolutional layer: Grad-CAM needs one "
                         "(pass layer= to choose a layer with a 4-D output)")
    maps = [layer for layer in model.layers[convs[0]:]
            if len(layer.output.shape) == 4 and _single_node(layer)]
    for layer in reversed(maps):
        if min(layer.output.shape[1:3]) >= min_side:
            return layer
    return maps[-1]


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
    import tensorflow as tf

    x = _check_images(model, images)
    idx = _class_indices(class_idx, len(x))
    grad_model, dense = _logit_model(model, _layer(model, layer))
    xt = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        feats, scores = grad_model(xt, training=False)
        tape.watch(feats)
        if dense is not None:
            scores = tf.matmul(tf.cast(scores, tf.float32), tf.cast(dense.kernel, tf.float32))
            if dense.use_bias:
                scores = scores + tf.cast(dense.bias, tf.float32)
        picked = tf.gather(tf.cast(scores, tf.float32), idx, axis=1, batch_dims=1)
    grads = tf.cast(tape.gradient(picked, feats), tf.float32)
    feats = tf.cast(feats, tf.float32)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.reduce_sum(feats * weights, axis=-1)
    cam = (tf.nn.relu(cam) if relu else cam).numpy()
    if upsample:
        cam = resize_maps(cam, x.shape[1:3])
    return normalize_maps(cam)


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


def randomized_copy(model, seed: int = 0):
    """The same architecture with freshly initialised (random) weights."""
    import keras

    keras.utils.set_random_seed(int(seed))
    clone = keras.models.clone_model(model)
    clone.build(model.inputs[0].shape)
    return clone


def randomization_check(model, images, class_idx, layer=None, seed: int = 0) -> dict:
    """Model-parameter randomisation test (Adebayo et al. 2018, "Sanity checks for saliency
    maps"): Grad-CAM of the trained model against Grad-CAM of a randomly initialised copy.

    Maps that explain the model must change when its weights are destroyed; a high rank
    correlation would mean the maps mostly reflect the input or the architecture. The ranks
    are taken on the signed maps (before Grad-CAM's ReLU), because a random network's
    rectified map is often all zero, which has no ranking.

    Returns:
        ``{"spearman_mean", "spearman_per_image", "n_images", "n_flat", "layer"}`` plus the
        rectified maps ``maps_trained`` and ``maps_random`` (arrays, for figures); ``n_flat``
        counts images where a signed map was constant (excluded from the mean).
    """
    x = _check_images(model, images)
    name = _layer(model, layer).name
    rand = randomized_copy(model, seed)
    rho = rank_correlation(gradcam(model, x, class_idx, name, relu=False),
                           gradcam(rand, x, class_idx, name, relu=False))
    trained = gradcam(model, x, class_idx, name)
    random_maps = gradcam(rand, x, class_idx, name)
    ok = np.isfinite(rho)
    return {"spearman_mean": float(rho[ok].mean()) if ok.any() else float("nan"),
            "spearman_per_image": [None if not np.isfinite(r) else round(float(r), 4)
                                   for r in rho],
            "n_images": int(len(x)), "n_flat": int((~ok).sum()), "layer": name,
            "maps_trained": trained, "maps_random": random_maps}


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
