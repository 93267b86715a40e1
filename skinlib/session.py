"""What every notebook does first: resolve the profile, open the run folder, load the catalog
and the shared lesion-grouped split, and record the environment.

A notebook's ``parameters`` cell holds ``profile``, ``data``, ``run_dir``, ``overrides`` and
``force``; it then calls :func:`start` with them, so papermill, nbval and "Run all" agree.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata

import pandas as pd

from skinlib import decision, info
from skinlib.config import Profile, get_profile
from skinlib.rundir import RunDir, default_run_dir
from skinlib.splits import catalog_hash


@dataclass
class Session:
    """One notebook's view of a run: profile, run folder, catalog with splits, classes."""

    profile: Profile
    run: RunDir
    catalog: pd.DataFrame
    data: str
    force: bool = False
    classes: list[str] = field(default_factory=list)

    @property
    def n_classes(self) -> int:
        """Number of classes of the dataset."""
        return len(self.classes)

    def frame(self, split: str) -> pd.DataFrame:
        """Catalog rows of one split (``train``, ``val``, ``test`` or ``trainval``)."""
        if split == "trainval":
            return self.catalog[self.catalog["split"].isin(["train", "val"])].reset_index(drop=True)
        if split not in ("train", "val", "test"):
            raise ValueError(f"split={split!r}: use train, val, test or trainval")
        return self.catalog[self.catalog["split"] == split].reset_index(drop=True)

    def priors(self) -> "list[float]":
        """Class frequencies of the training split (for the prior-corrected decision)."""
        return decision.priors(self.frame("train")["label"], self.n_classes).tolist()

    def meta(self, model: str, *, image_size, train_seconds: float, n_train: int) -> dict:
        """The run facts every metrics JSON carries beside the ``evaluate`` dict."""
        data_desc = self.data
        if "200x150" in str(self.catalog["path"].iloc[0]):
            data_desc += " (HAM10000 downscaled to 200x150)"
        return {"model": model, "profile": self.profile.name, "data": data_desc,
                "split": f"lesion-grouped test split, seed {self.profile.seed}",
                "image_size": list(image_size), "n_train": int(n_train),
                "n_test": int((self.catalog["split"] == "test").sum()),
                "train_seconds": round(float(train_seconds), 2)}

    def require(self, relpath: str, notebook: str):
        """The path of an artifact an earlier notebook wrote, or a clear error naming it
        (:meth:`skinlib.rundir.RunDir.require`)."""
        return self.run.require(relpath, notebook, self.profile.name)


def start(profile: str | None = None, data: str | None = None, run_dir: str | None = None,
          overrides: dict | None = None, force: bool = False, *, with_splits: bool = True,
          quiet: bool = False) -> Session:
    """Open a notebook's session.

    Args:
        profile: ``smoke``, ``quick`` or ``full`` (default ``$SKINLIB_PROFILE`` or quick).
        data: ``auto``, ``synthetic``, ``kaggle`` or a folder; ``None`` or ``auto`` with the
            smoke profile means the profile's own source.
        run_dir: the run folder (default ``$SKINLIB_RUN_DIR`` or ``runs/<profile>``).
        overrides: profile fields to change, e.g. ``{"epochs": 3}``.
        force: retrain models that a previous run of this folder already finished.
        with_splits: attach ``split``/``fold`` columns (the shared split is made once).
        quiet: print nothing.
    """
    from skinlib import data as data_mod
    from skinlib import splits as splits_mod
    from skinlib.training.fit import device_summary, set_seed

    prof = get_profile(profile, **(overrides or {}))
    source = prof.data if data in (None, "", "auto") and prof.data != "auto" else (data or "auto")
    run = RunDir(run_dir or default_run_dir(prof.name)).ensure()
    set_seed(prof.seed, deterministic=prof.name == "smoke")
    catalog = data_mod.load_catalog(source, dataset=prof.dataset, run_dir=run, profile=prof)
    if with_splits:
        sp = splits_mod.load_or_make_splits(
            catalog, run, val_frac=prof.val_frac, test_frac=prof.test_frac,
            k_folds=prof.k_folds, seed=prof.seed)
        catalog = splits_mod.attach(catalog, sp)
    classes = list(catalog.attrs.get("classes") or info.classes(prof.dataset))
    session = Session(profile=prof, run=run, catalog=catalog, data=str(source), force=force,
                      classes=classes)
    record_environment(session)
    if not quiet:
        print(f"profile={prof.name} data={source} run folder={run.root}\n"
              f"{len(catalog):,} images, {catalog['lesion_id'].nunique():,} lesions, "
              f"{len(classes)} classes; {device_summary()}")
    return session


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape results."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in ("tensorflow", "keras", "numpy", "pandas", "scikit-learn", "pillow",
                 "opencv-python-headless", "tf-keras-vis", "papermill"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def record_environment(session: Session) -> None:
    """Write ``logs/environment.json``: versions, device, profile, data source, catalog hash."""
    from skinlib.notebook import device_line

    rec = {"versions": package_versions(), "device": device_line(),
           "profile": session.profile.to_dict(),
           "data": session.data, "n_images": len(session.catalog),
           "catalog_sha256": catalog_hash(session.catalog)}
    session.run.write_record("logs/environment.json", rec)
