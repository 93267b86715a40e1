"""Profiles: every knob of the series in one place.

``smoke`` runs in seconds on synthetic data (tests, CI), ``quick`` runs in minutes on a 2-core
CPU on the real images, ``full`` uses the seed papers' settings and wants a GPU. A notebook's
papermill parameters override fields with :func:`get_profile` (``None`` means "keep the
profile's value").
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

PROFILES = ("smoke", "quick", "full")
# The series, in the order it runs (``notebooks/<name>.ipynb``).
NOTEBOOKS = (
    "01_eda",
    "02_baseline_cnn",
    "03_dcgan_minority",
    "04_gan_augmented_cnn",
    "05_class_experts_kfold_bma",
    "06_resnet50_transfer",
    "07_gradcam",
    "08_source_shift",
    "09_drift_monitor",
    "10_metadata_fusion",
    "11_lime_shap",
    "12_results",
)


def notebook_name(name: str) -> str:
    """The series' notebook called ``name`` or numbered ``name`` (``"3"``, ``"03"``)."""
    hits = [n for n in NOTEBOOKS if n == name or n.startswith(str(name).zfill(2) + "_")]
    if not hits:
        raise ValueError(f"{name!r} names no notebook of the series: choose from "
                         f"{', '.join(n[:2] for n in NOTEBOOKS)} or a full name such as "
                         f"{NOTEBOOKS[1]}")
    return hits[0]


# Notebooks whose metrics JSON holds models scored on the shared test split (the results table).
MODEL_NOTEBOOKS = ("02_baseline_cnn", "04_gan_augmented_cnn", "05_class_experts_kfold_bma",
                   "06_resnet50_transfer")


@dataclass(frozen=True)
class Profile:
    """All settings of one run. Sizes are ``(height, width)``; HAM10000 images are 4:3.

    The field defaults are the ``full`` profile: the seed papers' settings, for a GPU.
    """

    name: str
    data: str = "auto"  # auto | synthetic | kaggle | a folder path
    dataset: str = "ham10000"
    seed: int = 42
    # --- data -------------------------------------------------------------------------
    fake_images: int = 0  # images of the fake look-alike dataset (data="synthetic")
    val_frac: float = 0.15
    test_frac: float = 0.15
    k_folds: int = 5
    # --- input pipeline ---------------------------------------------------------------
    image_size: tuple[int, int] = (96, 128)
    batch_size: int = 32
    augment: bool = True
    # where training augments: pipeline (tf.data on the CPU) | model (uint8 batches to the
    # device, augmented there) | auto (model when a GPU is visible)
    augment_on: str = "auto"
    balance: str = "weights"  # weights | resample | none
    # --- baseline CNN (notebook 02) ---------------------------------------------------
    cnn_arch: str = "seed"  # seed (3 blocks + Flatten + Dense 512) | gap | gap1 | narrow | sep (GAP)
    lr_schedule: str = "plateau"  # plateau (ReduceLROnPlateau) | cosine | none
    epochs: int = 50
    learning_rate: float = 1e-3
    patience: int = 8
    decision: str = "argmax"  # argmax | prior_corrected | thresholds (04's arms use it too)
    # seeds per model of the key comparisons: 02's baseline and 04's three arms (each trained
    # with 02's recipe and budget: epochs, schedule, decision rule)
    repeats: int = 3
    repeats_large: int = 3  # seeds of the large models compared with 02: 05's BMA, 06's ResNet50
    # notebook 12: sizes of the leakage pairs (28x28 sits beside DermaMNIST); () = image_size
    leakage_sizes: tuple = ((96, 128), (28, 28))
    n_bootstrap: int = 2000
    # --- DCGAN (notebooks 03, 04) -----------------------------------------------------
    gan_classes: tuple[str, ...] = ("akiec", "bcc", "df", "mel", "vasc")
    gan_size: int = 128
    gan_latent_dim: int = 100
    gan_batch_size: int = 32
    gan_steps: int = 10000
    gan_checkpoint_every: int = 1000
    gan_diffaugment: bool = True
    gan_filters: int = 256  # widest layer of the generator and the discriminator
    gan_target_count: int = 1000  # training images per minority class after adding GAN images
    kid_samples: int = 500
    kid_min_real: int = 20  # fewer real validation images of a class: its KID is not judged
    kid_features: str = "auto"  # auto (InceptionV3 if loadable, else 02 CNN) | inception | baseline
    # --- class experts + K-fold BMA (notebook 05) -------------------------------------
    expert_epochs: int = 30
    expert_finetune_epochs: int = 5
    # --- ResNet50 transfer (notebook 06) ----------------------------------------------
    transfer_size: tuple[int, int] = (224, 224)
    transfer_weights: str | None = "imagenet"  # imagenet | None | path to a .h5/.weights.h5
    transfer_epochs_stage1: int = 10
    transfer_epochs_stage2: int = 20
    transfer_unfreeze_from: int = 100
    # --- explanations (notebook 07) ---------------------------------------------------
    cam_examples_per_class: int = 3
    scorecam_max_n: int = 32
    # --- model-agnostic explanations (notebook 11) ------------------------------------
    shap_max_evals: int = 1000  # model calls per image of SHAP's Partition explainer
    # inpaint_telea | inpaint_ns (OpenCV per masked image: ~5-150 ms at 224 px on a CPU) |
    # blur | blur(k,k) (one blur per image: cheap, but a blurred lesion keeps its colour)
    shap_masker: str = "inpaint_telea"
    shap_max_images: int = 0  # images explained, spread over 07's picks (0: all of them)

    def replace(self, **overrides) -> "Profile":
        """A copy with the given fields changed.

        ``None`` means "keep the profile's value" (a notebook knob left at None); to set a
        field to None itself (e.g. ``transfer_weights``), pass the string ``"none"``.
        """
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown profile field(s) {unknown}; known fields: {sorted(known)}")
        changes = {k: _coerce(getattr(self, k), v) for k, v in overrides.items() if v is not None}
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain dict (JSON-ready) of every field."""
        return dataclasses.asdict(self)


def _coerce(current, value):
    """Turn a papermill/CLI value into the type of the field it overrides."""
    if isinstance(value, str) and value.strip().lower() in ("none", "null"):
        return None
    if isinstance(current, tuple) and isinstance(value, str):
        parts = [p for p in value.replace("x", ",").split(",") if p.strip()]
        return tuple(type(current[0])(p.strip()) if current else p.strip() for p in parts)
    if isinstance(current, list | tuple) and isinstance(value, list):
        return tuple(value)
    if isinstance(current, bool) and isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(current, int) and not isinstance(current, bool) and isinstance(value, str):
        return int(value)
    if isinstance(current, float) and isinstance(value, str | int):
        return float(value)
    return value


_BASE = {
    "smoke": Profile(
        name="smoke", data="synthetic", fake_images=420, k_folds=2,
        image_size=(24, 32), batch_size=32, epochs=8, patience=8, n_bootstrap=100,
        cnn_arch="gap", balance="none", decision="prior_corrected", lr_schedule="cosine",
        repeats=1, repeats_large=1, leakage_sizes=(),
        gan_size=32, gan_batch_size=16, gan_steps=30, gan_checkpoint_every=10,
        gan_target_count=60, kid_samples=48, gan_filters=32, kid_features="baseline",
        expert_epochs=4, expert_finetune_epochs=1,
        transfer_size=(32, 32), transfer_weights=None,
        transfer_epochs_stage1=1, transfer_epochs_stage2=1,
        cam_examples_per_class=1, scorecam_max_n=4,
        shap_max_evals=64, shap_max_images=6,
    ),
    "quick": Profile(
        name="quick", data="auto", k_folds=3,
        image_size=(48, 64), batch_size=64, epochs=22, patience=6, n_bootstrap=1000,
        cnn_arch="gap1", balance="none", decision="prior_corrected", lr_schedule="cosine",
        repeats=2, repeats_large=1, leakage_sizes=((28, 28),),
        gan_size=64, gan_batch_size=32, gan_steps=400, gan_checkpoint_every=100,
        gan_target_count=500, kid_samples=200, gan_filters=128,
        expert_epochs=4, expert_finetune_epochs=1,
        transfer_size=(64, 64), transfer_weights="imagenet",
        transfer_epochs_stage1=2, transfer_epochs_stage2=2,
        cam_examples_per_class=2, scorecam_max_n=16,
        shap_max_evals=400,
    ),
    "full": Profile(name="full"),  # the field defaults
}


def get_profile(name: str | None = None, **overrides) -> Profile:
    """The named profile (default ``$SKINLIB_PROFILE`` or ``quick``) with overrides applied."""
    name = name or os.environ.get("SKINLIB_PROFILE") or "quick"
    if name not in _BASE:
        raise ValueError(f"unknown profile {name!r}: use one of {', '.join(PROFILES)}")
    return _BASE[name].replace(**overrides)
