"""What generated images are worth: KID in a fixed feature space against a real-vs-real floor,
with bootstrap intervals, and a nearest-neighbour copy check (notebook 03). The paired recall
difference of notebook 04 is ``metrics.compare(..., subset=)``.

Kernel Inception Distance (Binkowski et al., 2018) is the unbiased squared MMD between two
feature sets with the polynomial kernel ``k(x, y) = (x.y / d + 1)^3``; unlike FID it is
unbiased for small sets, which matters with 20 validation images of a class. Here it is
computed on all images of both sets, and its uncertainty is a bootstrap over *both* sets: a
resample draws the generated and the real images (the real ones by lesion, when their lesions
are given) with replacement and recomputes the estimator with the pairs of an image with itself
left out, so duplicates add no bias. (The usual spread over random subsets understates the
uncertainty when the subset is the whole real set, as it is for a rare class.) A class with
fewer than ``min_real`` real held-out images is too small to judge.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics.pairwise import pairwise_distances_argmin_min, polynomial_kernel

from skinlib import pretrained
from skinlib.metrics import bootstrap_record, bootstrap_weights, resampling_units

INCEPTION_FEATURES = "inception_v3_imagenet_avgpool"
BASELINE_FEATURES = "02_baseline_cnn_penultimate"
_INCEPTION_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
MIN_REAL = 20  # fewer real held-out images of a class than this: KID is not judged


def _kernels(*sets: np.ndarray) -> dict:
    """KID's polynomial kernel (x.y / d + 1)^3 between every pair of feature sets."""
    kw = dict(degree=3, gamma=1.0 / sets[0].shape[1], coef0=1.0)
    return {(i, j): polynomial_kernel(sets[i], sets[j], **kw)
            for i in range(len(sets)) for j in range(i, len(sets))}


def _mmd2(k: dict, i: int, j: int, wi: np.ndarray, wj: np.ndarray) -> np.ndarray:
    """Unbiased squared MMD between sets i and j for each row of image draw counts (``wi``
    ``(B, n_i)``, ``wj`` ``(B, n_j)``), pairs of an image with itself left out."""
    def within(kk, w):
        num = ((w @ kk) * w).sum(axis=1) - (w ** 2) @ np.diag(kk)
        den = w.sum(axis=1) ** 2 - (w ** 2).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return num / den  # NaN when a resample drew one image only

    kij = k[i, j] if (i, j) in k else k[j, i].T
    cross = ((wi @ kij) * wj).sum(axis=1) / (wi.sum(axis=1) * wj.sum(axis=1))
    return within(k[i, i], wi) + within(k[j, j], wj) - 2.0 * cross


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased squared MMD between two feature sets under the polynomial kernel."""
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"MMD needs at least 2 samples per set, got {m} and {n}")
    k = _kernels(np.asarray(x, np.float64), np.asarray(y, np.float64))
    return float(_mmd2(k, 0, 1, np.ones((1, m)), np.ones((1, n)))[0])


def _units(groups, n: int) -> np.ndarray:
    """Resampling units of a feature set: its lesions if given, else each image."""
    return np.arange(n) if groups is None else resampling_units(groups, n)[0]


def _interval(values: np.ndarray) -> list | None:
    """Percentile 95% interval of the finite values (None if none)."""
    v = values[np.isfinite(values)]
    return None if v.size == 0 else np.percentile(v, [2.5, 97.5]).tolist()


def kid(x, y, *, groups_y=None, n_bootstrap: int = 1000, seed: int = 0,
        min_real: int = MIN_REAL) -> dict:
    """Kernel Inception Distance between feature sets ``x`` (e.g. generated) and ``y`` (real
    held-out images), with a bootstrap CI over both sets.

    Args:
        groups_y: lesion ids of the ``y`` images (resampled by lesion), or None (by image).
        min_real: fewer ``y`` images than this and ``too_small`` is True.

    Returns:
        ``{"kid", "ci95", "kid_std" (bootstrap SD), "n_x", "n_y", "too_small", "min_real",
        "bootstrap"}``.
    """
    return kid_against_floor(x, None, y, groups_real=groups_y, n_bootstrap=n_bootstrap,
                             seed=seed, min_real=min_real)


def kid_against_floor(generated, train, real, *, groups_train=None, groups_real=None,
                      n_bootstrap: int = 1000, seed: int = 0, min_real: int = MIN_REAL) -> dict:
    """KID of generated vs real held-out features, beside the floor: KID of real training vs
    the same held-out features (generated images cannot be expected to beat real ones).

    Every resample draws the held-out set once for both, so ``excess`` (KID - floor) gets a
    paired CI. With ``train=None`` only the KID is computed (:func:`kid`). ``train`` may be any
    reference set, e.g. another GAN's images (the DiffAugment ablation of notebook 03).

    Returns:
        ``kid``, ``ci95``, ``kid_std``; with ``train``: ``floor``, ``floor_ci95``, ``excess``,
        ``excess_ci95``; ``n_x`` (generated), ``n_train``, ``n_y`` (real), ``too_small``
        (fewer than ``min_real`` real images: too few to judge), ``min_real``, ``bootstrap``.
    """
    sets = [np.asarray(generated, np.float64), np.asarray(real, np.float64)]
    sets += [] if train is None else [np.asarray(train, np.float64)]
    if any(s.ndim != 2 or s.shape[1] != sets[0].shape[1] for s in sets) or min(map(len, sets)) < 2:
        raise ValueError(f"KID needs 2-d feature arrays of equal width with at least 2 rows, "
                         f"got shapes {[s.shape for s in sets]}")
    k = _kernels(*sets)
    units = [np.arange(len(sets[0])), _units(groups_real, len(sets[1]))]
    units += [] if train is None else [_units(groups_train, len(sets[2]))]
    pairs = {"kid": (0, 1)} if train is None else {"kid": (0, 1), "floor": (2, 1)}
    point = {n: float(_mmd2(k, i, j, np.ones((1, len(sets[i]))), np.ones((1, len(sets[j]))))[0])
             for n, (i, j) in pairs.items()}
    boot = {n: [] for n in pairs}
    for W in bootstrap_weights(units, int(n_bootstrap), seed):
        for n, (i, j) in pairs.items():
            boot[n].append(_mmd2(k, i, j, W[i], W[j]))
    boot = {n: np.concatenate(v) if v else np.empty(0) for n, v in boot.items()}
    out = {"kid": point["kid"], "ci95": _interval(boot["kid"]),
           "kid_std": _finite_sd(boot["kid"])}
    if train is not None:
        out.update(floor=point["floor"], floor_ci95=_interval(boot["floor"]),
                   excess=point["kid"] - point["floor"],
                   excess_ci95=_interval(boot["kid"] - boot["floor"]), n_train=len(sets[2]))
    return {**out, "n_x": len(sets[0]), "n_y": len(sets[1]), "too_small": len(sets[1]) < min_real,
            "min_real": int(min_real), "bootstrap": bootstrap_record(
                "lesion" if groups_real is not None else "image", n_bootstrap,
                sum(u.max() + 1 for u in units), seed)}


def kid_verdict(k: dict) -> str:
    """One line on a :func:`kid_against_floor` result: too small to judge, or whether the
    generated images sit further from the real held-out ones than real training images do."""
    if k["too_small"]:
        return (f"too few real held-out images to judge ({k['n_y']} < {k['min_real']}): "
                "the KID and its interval are shown but say little")
    ci = k.get("excess_ci95")
    if ci is None:
        return "no interval (too few bootstrap resamples)"
    if ci[0] > 0:
        return "further from the real images than real training images are (CI of KID - floor > 0)"
    return "not distinguishable from the real-vs-real floor (CI of KID - floor holds 0)"


def class_lesions(session, dx: str, split: str) -> np.ndarray:
    """Lesion ids of one class's images of a split, in the order ``gan.class_images`` loads them."""
    frame = session.frame(split)
    return frame.loc[frame["dx"] == dx, "lesion_id"].to_numpy()


def class_quality(session, dx: str, extract) -> tuple[dict, np.ndarray, np.ndarray]:
    """How good one class's GAN is (notebook 03): :func:`kid_against_floor` of its generated
    images against the class's validation images, with the training images as the floor (each
    real set resampled by lesion), its verdict (:func:`kid_verdict`) and :func:`copy_check`.

    Args:
        extract: uint8 images -> features (:func:`feature_extractor`).

    Returns:
        ``(row, generated images, training images)``; ``row`` holds ``n_train``, ``n_val``, the
        KID figures, ``verdict`` and the copy check.
    """
    from skinlib import gan

    p = session.profile
    train_x, val_x = gan.class_images(session, dx, "train"), gan.class_images(session, dx, "val")
    fake_x = gan.generate(session.run, dx, p.kid_samples, seed=p.seed)
    k = kid_against_floor(extract(fake_x), extract(train_x), extract(val_x),
                          groups_train=class_lesions(session, dx, "train"),
                          groups_real=class_lesions(session, dx, "val"),
                          n_bootstrap=p.n_bootstrap, seed=p.seed, min_real=p.kid_min_real)
    row = {"n_train": len(train_x), "n_val": len(val_x), **k, "verdict": kid_verdict(k),
           **copy_check(fake_x, train_x, val_x)}
    return row, fake_x, train_x


def _resize_batches(images: np.ndarray, size, batch: int = 128):
    """Yield float32 batches of ``images`` resized to ``size`` (height, width), in [0, 255]."""
    import tensorflow as tf

    for i in range(0, len(images), batch):
        x = tf.convert_to_tensor(images[i:i + batch], tf.float32)
        yield tf.image.resize(x, size, method="bilinear", antialias=True)


def feature_extractor(mode: str = "auto", baseline_path=None):
    """A function uint8 images -> feature matrix, and the name of its feature space.

    Args:
        mode: ``inception`` (ImageNet InceptionV3, global-pooled, 299 px), ``baseline`` (the
            penultimate layer of the notebook-02 CNN at ``baseline_path``) or ``auto``
            (InceptionV3 when its weights can be had, else the baseline).
        baseline_path: ``models/02_baseline_cnn.keras`` of the run.

    Returns:
        ``(extract, name)``; ``name`` is recorded in the metrics JSON.
    """
    import keras

    if mode not in ("auto", "inception", "baseline"):
        raise ValueError(f"kid_features={mode!r}: use auto, inception or baseline")
    if mode in ("auto", "inception"):
        net = None
        if pretrained.available(_INCEPTION_FILE):
            try:
                net = keras.applications.InceptionV3(include_top=False, weights="imagenet",
                                                     pooling="avg", input_shape=(299, 299, 3))
            except Exception as err:  # download refused or corrupt cache: say why, fall back
                print(f"InceptionV3 ImageNet weights could not be loaded ({err}); "
                      "falling back to the baseline CNN's features")
        if net is not None:
            pre = keras.applications.inception_v3.preprocess_input

            def extract(images):
                return np.concatenate([net.predict(pre(b), verbose=0)
                                       for b in _resize_batches(images, (299, 299), 64)])
            return extract, INCEPTION_FEATURES
        if mode == "inception":
            raise RuntimeError("kid_features='inception' but the InceptionV3 ImageNet weights "
                               "are neither cached nor downloadable; use kid_features='auto'")
    if baseline_path is None or not Path(baseline_path).exists():
        raise ValueError(f"baseline_path={baseline_path!r} is not a file: pass the run's "
                         "models/02_baseline_cnn.keras (RunDir.require finds it, or names the "
                         "notebook to run); its features serve KID when InceptionV3 is not loadable")
    model = keras.models.load_model(baseline_path)
    body = keras.Model(model.inputs, model.layers[-2].output, name="kid_features")
    size = tuple(model.input_shape[1:3])

    def extract(images):
        feats = [body.predict(b, verbose=0) for b in _resize_batches(images, size)]
        return np.concatenate(feats).reshape(len(images), -1)
    return extract, BASELINE_FEATURES


def nearest_neighbours(queries: np.ndarray, references: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Index and Euclidean distance of each query's closest reference (rows flattened)."""
    q = np.asarray(queries, np.float32).reshape(len(queries), -1)
    r = np.asarray(references, np.float32).reshape(len(references), -1)
    if len(r) == 0:
        raise ValueError("nearest_neighbours got no reference images")
    return pairwise_distances_argmin_min(q, r)


def copy_check(generated: np.ndarray, train: np.ndarray, val: np.ndarray) -> dict:
    """Are generated images closer to the training images than new real images are?

    Compares each generated image's pixel distance to its nearest training image with the
    same for each real validation image. A ratio well below 1 means the GAN copies.
    """
    _, d_gen = nearest_neighbours(generated, train)
    _, d_val = nearest_neighbours(val, train)
    med_gen, med_val = float(np.median(d_gen)), float(np.median(d_val))
    return {"median_nn_distance_generated": med_gen, "median_nn_distance_val": med_val,
            "nn_ratio": med_gen / med_val if med_val > 0 else None,
            "min_nn_distance_generated": float(d_gen.min())}


def neighbour_block(train: np.ndarray, generated: np.ndarray, n: int = 4) -> dict:
    """The first ``n`` real and generated images of a class and, for each generated one, its
    nearest training image and their pixel distance (the input of ``plots.gan_vs_real``)."""
    gen = np.asarray(generated)[:n]
    idx, dist = nearest_neighbours(gen, train)
    return {"real": np.asarray(train)[:n], "generated": gen,
            "nearest": np.asarray(train)[idx], "distances": dist}


def _finite_sd(values: np.ndarray) -> float | None:
    """SD of the finite bootstrap values (a resample of a tiny set can leave one image, whose
    unbiased MMD is undefined); None when fewer than two are finite."""
    finite = np.asarray(values, np.float64)
    finite = finite[np.isfinite(finite)]
    return float(np.std(finite, ddof=1)) if len(finite) > 1 else None
