"""What generated images are worth: KID in a fixed feature space, a real-vs-real floor and a
nearest-neighbour copy check (notebook 03). The paired recall difference of notebook 04 is
``metrics.compare(..., subset=)``.

Kernel Inception Distance (Binkowski et al., 2018) is the unbiased squared MMD between two
feature sets with the polynomial kernel ``k(x, y) = (x.y / d + 1)^3``, averaged over random
subsets; its spread over subsets is the error bar. Unlike FID it is unbiased for small sets,
which matters with 20 validation images of a class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics.pairwise import pairwise_distances_argmin_min, polynomial_kernel

from skinlib import pretrained

INCEPTION_FEATURES = "inception_v3_imagenet_avgpool"
BASELINE_FEATURES = "02_baseline_cnn_penultimate"
_INCEPTION_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased squared MMD between two feature sets under the polynomial kernel."""
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"MMD needs at least 2 samples per set, got {m} and {n}")
    kernel = dict(degree=3, gamma=1.0 / x.shape[1], coef0=1.0)  # KID's (x.y / d + 1)^3
    kxx, kyy = polynomial_kernel(x, **kernel), polynomial_kernel(y, **kernel)
    kxy = polynomial_kernel(x, y, **kernel)
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def kid(x, y, *, n_subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> dict:
    """Kernel Inception Distance between feature sets ``x`` and ``y``.

    Returns:
        ``{"kid": mean over subsets, "kid_std": standard deviation over subsets (the usual KID
        error bar), "subset_size", "n_subsets", "n_x", "n_y"}``.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"KID needs two 2-d feature arrays of equal width, got {x.shape} and "
                         f"{y.shape}")
    m = int(min(subset_size, len(x), len(y)))
    rng = np.random.default_rng(seed)
    values = np.array([mmd2_unbiased(x[rng.choice(len(x), m, replace=False)],
                                     y[rng.choice(len(y), m, replace=False)])
                       for _ in range(int(n_subsets))])
    return {"kid": float(values.mean()), "kid_std": float(values.std(ddof=1)),
            "subset_size": m, "n_subsets": int(n_subsets), "n_x": len(x), "n_y": len(y)}


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
