"""The standard metrics, with scikit-learn's definitions (the ``metrics`` extra).

========================  ===================================================================
task                      metrics (keys usable in a thresholds file)
========================  ===================================================================
classification (binary)   ``example_count``, ``accuracy``, ``auc``, ``precision``, ``recall``,
                          ``log_loss``
regression                ``example_count``, ``mse``, ``rmse``, ``mae``
========================  ===================================================================

Classification takes the model's score as the probability of class 1 and decides at 0.5 (TFMA's
default threshold). ``auc`` is ROC AUC; it is left out when the labels hold a single class (it is
undefined), and a threshold on it then fails as a missing metric. ``task="auto"`` picks
classification when every label is 0 or 1 and every score lies in [0, 1], regression otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from pushgate.errors import InputError, MissingDependencyError, UsageError

Task = Literal["auto", "classification", "regression"]
TASKS: tuple[str, ...] = ("auto", "classification", "regression")
DECISION_THRESHOLD = 0.5


def infer_task(labels: Sequence[float], scores: Sequence[float]) -> str:
    """``classification`` for 0/1 labels with scores in [0, 1], else ``regression``."""
    if all(y in (0.0, 1.0) for y in labels) and all(0.0 <= s <= 1.0 for s in scores):
        return "classification"
    return "regression"


def compute(
    labels: Sequence[float], scores: Sequence[float], task: str = "auto"
) -> dict[str, float]:
    """The metrics of ``scores`` against ``labels``; see the module docstring for which."""
    if task not in TASKS:
        raise UsageError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    if len(labels) != len(scores):
        raise InputError(f"{len(labels)} labels but {len(scores)} predictions")
    if not labels:
        raise InputError("no examples to compute metrics from")
    if any(math.isnan(s) for s in scores):
        raise InputError("the model predicted NaN for some examples; metrics are undefined")
    try:
        import numpy as np
        from sklearn import metrics as skm
    except ImportError as e:
        raise MissingDependencyError("computing metrics", "metrics") from e

    if task == "auto":
        task = infer_task(labels, scores)
    y = np.asarray(labels, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    out: dict[str, float] = {"example_count": float(len(y))}
    if task == "classification":
        bad = sorted({float(v) for v in y if v not in (0.0, 1.0)})
        if bad:
            raise InputError(
                f"classification needs labels 0 or 1, found {bad[:5]}; use --task regression"
            )
        if s.min() < 0.0 or s.max() > 1.0:
            raise InputError(
                "classification needs scores in [0, 1] (probabilities of class 1); "
                f"the model gave [{s.min()}, {s.max()}]. Use --task regression, or a probability "
                "output (--prediction-key)"
            )
        y_int = y.astype(int)
        pred = (s >= DECISION_THRESHOLD).astype(int)
        out["accuracy"] = float(skm.accuracy_score(y_int, pred))
        out["precision"] = float(skm.precision_score(y_int, pred, zero_division=0))
        out["recall"] = float(skm.recall_score(y_int, pred, zero_division=0))
        out["log_loss"] = float(skm.log_loss(y_int, s, labels=[0, 1]))
        if len(set(y_int.tolist())) == 2:
            out["auc"] = float(skm.roc_auc_score(y_int, s))
    else:
        mse = float(skm.mean_squared_error(y, s))
        out["mse"] = mse
        out["rmse"] = math.sqrt(mse)
        out["mae"] = float(skm.mean_absolute_error(y, s))
    return out
