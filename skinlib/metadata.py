"""The patient metadata as a model input (notebook 10): age, sex and localization as one float
vector per image, fitted on the training split only.

- age: standardised with the training median and spread; a missing age becomes the training
  median plus an indicator ``age_missing`` = 1, so the model can tell imputed from real;
- sex and localization: one-hot over the levels seen in training; ``unknown`` is always a level
  of its own, and a missing value (empty, NaN) or a level training never saw goes there.

Every such case is counted (:meth:`MetaEncoder.counts`), never dropped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

UNKNOWN = "unknown"
CATEGORICAL = ("sex", "localization")
COLUMNS = ("age", *CATEGORICAL)


def _need(frame: pd.DataFrame) -> None:
    """Refuse a frame without the metadata columns."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"the frame lacks metadata column(s) {missing}: pass catalog rows "
                         "(the catalog always has age, sex and localization, empty if unknown)")


def ages(frame: pd.DataFrame) -> pd.Series:
    """Age as float, NaN where missing or not a number."""
    _need(frame)
    return pd.to_numeric(frame["age"], errors="coerce").astype(float)


def levels(frame: pd.DataFrame, column: str) -> pd.Series:
    """A categorical column as clean lowercase text; empty and NaN become :data:`UNKNOWN`."""
    _need(frame)
    text = frame[column].astype("string").str.strip().str.lower()
    return text.where(text.notna() & (text != ""), UNKNOWN).astype(str)


@dataclass(frozen=True)
class MetaEncoder:
    """The fitted encoding: training median and scale of age, the levels of each category."""

    age_median: float
    age_scale: float
    sex_levels: tuple[str, ...]
    localization_levels: tuple[str, ...]

    @classmethod
    def fit(cls, train: pd.DataFrame) -> "MetaEncoder":
        """Fit on training rows: median and standard deviation of the known ages, the levels."""
        age = ages(train).dropna()
        if age.empty:
            raise ValueError("no training row has an age: the metadata model needs some ages")
        scale = float(age.std(ddof=0)) if len(age) > 1 else 0.0

        def seen(col):
            return tuple(sorted(set(levels(train, col)) | {UNKNOWN}))

        return cls(float(age.median()), scale if scale > 0 else 1.0, seen("sex"),
                   seen("localization"))

    @property
    def feature_names(self) -> list[str]:
        """Names of the vector's entries, in order."""
        return (["age", "age_missing"] + [f"sex={v}" for v in self.sex_levels]
                + [f"localization={v}" for v in self.localization_levels])

    def _categories(self, frame: pd.DataFrame, column: str) -> pd.Series:
        """A column's levels, with levels unseen in training mapped to :data:`UNKNOWN`."""
        known = getattr(self, f"{column}_levels")
        values = levels(frame, column)
        return values.where(values.isin(known), UNKNOWN)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """The ``(n, len(feature_names))`` float32 matrix of a frame's rows, in row order."""
        age = ages(frame)
        parts = [((age.fillna(self.age_median) - self.age_median) / self.age_scale).to_numpy(),
                 age.isna().to_numpy(dtype=float)]
        for column in CATEGORICAL:
            known = list(getattr(self, f"{column}_levels"))
            codes = self._categories(frame, column).map(known.index).to_numpy()
            parts.append(np.eye(len(known))[codes].T)
        return np.vstack([np.atleast_2d(p) for p in parts]).T.astype(np.float32)

    def counts(self, frame: pd.DataFrame) -> dict:
        """What the encoding had to fill in: per column, rows ``missing`` (empty/NaN), plus for
        the categories rows given as ``unknown`` and rows with a level ``unseen`` in training."""
        _need(frame)
        out = {"n_rows": int(len(frame)), "age": {"missing": int(ages(frame).isna().sum())}}
        for column in CATEGORICAL:
            raw = frame[column].astype("string").str.strip()
            missing = raw.isna() | (raw == "")
            given_unknown = ~missing & (raw.str.lower() == UNKNOWN)
            unseen = ~missing & ~given_unknown & ~levels(frame, column).isin(
                getattr(self, f"{column}_levels"))
            out[column] = {"missing": int(missing.sum()), "unknown": int(given_unknown.sum()),
                           "unseen": int(unseen.sum())}
        return out

    def to_dict(self) -> dict:
        """JSON-ready fields (for the run folder, beside the model)."""
        return {**asdict(self), "feature_names": self.feature_names}

    @classmethod
    def from_dict(cls, d: dict) -> "MetaEncoder":
        """The encoder :meth:`to_dict` wrote."""
        return cls(float(d["age_median"]), float(d["age_scale"]), tuple(d["sex_levels"]),
                   tuple(d["localization_levels"]))


def count_table(encoder: MetaEncoder, frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """What the encoding filled in, one column per frame (e.g. train/val/test): rows
    ``age missing``, ``sex missing``, ``sex unknown``, ``sex unseen``, and so on, plus ``rows``."""
    table = {}
    for name, frame in frames.items():
        c = encoder.counts(frame)
        col = {"rows": c["n_rows"], "age missing": c["age"]["missing"]}
        col.update({f"{column} {what}": c[column][what] for column in CATEGORICAL
                    for what in ("missing", "unknown", "unseen")})
        table[name] = col
    return pd.DataFrame(table)
