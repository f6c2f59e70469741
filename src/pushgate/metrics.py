"""The standard metrics, with scikit-learn's definitions (the ``metrics`` extra).

========================  ===================================================================
task                      metrics (keys usable in a thresholds file)
========================  ===================================================================
classification (binary)   ``example_count``, ``accuracy``, ``auc``, ``precision``, ``recall``,
                          ``log_loss``
regression                ``example_count``, ``mse``, ``rmse``, ``mae``
========================  ===================================================================

Classification takes the model's score as the probability of class 1 and calls an example
positive when its score is above 0.5, as TFMA's ``BinaryAccuracy``, ``Precision`` and ``Recall``
do (``score > 0.5``: a score of exactly 0.5 is negative). ``auc`` is ROC AUC; it is left out
when the labels hold a single class (it is undefined), and a threshold on it then fails as a
missing metric. ``task="auto"`` picks classification when every label is 0 or 1 and every score
lies in [0, 1], regression otherwise.

Metrics are accumulated as the predictions stream in (:class:`Accumulator`): counts, the
confusion counts at 0.5, the sums of log loss, squared and absolute errors, so memory does not grow
with the data. ``auc`` is exact (scikit-learn's ``roc_auc_score``) while the examples fit in
:data:`AUC_EXACT_BUDGET`; past it, it is TFMA's thresholded ROC AUC (:data:`AUC_THRESHOLDS`
thresholds, as ``tfma.metrics.AUC``'s default, interpolation summation), and
:attr:`Accumulator.auc_method` says which.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from pushgate.errors import InputError, MissingDependencyError, UsageError

Task = Literal["auto", "classification", "regression"]
TASKS: tuple[str, ...] = ("auto", "classification", "regression")
#: where ``evaluate`` computes them: ``local``, one runtime process streaming batches; ``beam``,
#: an Apache Beam pipeline (here, not in :mod:`pushgate.evaluator`, so the CLI's parser can offer
#: them without importing the evaluator)
RUNNERS: tuple[str, ...] = ("local", "beam")
DECISION_THRESHOLD = 0.5


def infer_task(labels: Sequence[float], scores: Sequence[float]) -> str:
    """``classification`` for 0/1 labels with scores in [0, 1], else ``regression``."""
    if all(y in (0.0, 1.0) for y in labels) and all(0.0 <= s <= 1.0 for s in scores):
        return "classification"
    return "regression"


AUC_EXACT_BUDGET = 4_000_000
"""Examples up to which ``auc`` is exact: their scores and labels are kept (about 36 MB)."""
AUC_THRESHOLDS = 10_000
"""TFMA's default ``num_thresholds`` for ``AUC`` (binary_confusion_matrices)."""
_TFMA_EPSILON = 1e-7


def tfma_thresholds(num: int = AUC_THRESHOLDS) -> list[float]:
    """TFMA's ``_interpolated_thresholds``: ``-eps``, ``(i + 1) / (num - 1)``, ``1 + eps``."""
    inner = [(i + 1) * 1.0 / (num - 1) for i in range(num - 2)]
    return [-_TFMA_EPSILON, *inner, 1.0 + _TFMA_EPSILON]


class Accumulator:
    """The metrics of a stream of ``(labels, scores)`` batches, in bounded memory."""

    def __init__(self, task: str = "auto", auc_exact_budget: int = AUC_EXACT_BUDGET) -> None:
        if task not in TASKS:
            raise UsageError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
        try:
            import numpy as np
        except ImportError as e:
            raise MissingDependencyError("computing metrics", "metrics") from e
        self._np = np
        self.task = task
        self.n = 0
        self.binary_labels = True
        self.unit_scores = True
        self._bad_labels: set[float] = set()
        self._min_score = math.inf
        self._max_score = -math.inf
        self.tp = self.fp = self.tn = self.fn = 0
        self._log_loss = 0.0
        self._sq = 0.0
        self._abs = 0.0
        self._budget = auc_exact_budget
        self._kept: list[tuple[object, object]] | None = []
        self._thresholds = np.asarray(tfma_thresholds(), dtype=np.float64)
        self._pos = np.zeros(len(self._thresholds) + 1, dtype=np.int64)
        self._neg = np.zeros(len(self._thresholds) + 1, dtype=np.int64)

    def add(self, labels: Sequence[float], scores: Sequence[float]) -> None:
        """One batch: a label and a score per example."""
        np = self._np
        y = np.asarray(labels, dtype=np.float64)
        s = np.asarray(scores, dtype=np.float64)
        if len(y) != len(s):
            raise InputError(f"{len(y)} labels but {len(s)} predictions")
        if len(y) == 0:
            return
        if np.isnan(s).any():
            raise InputError("the model predicted NaN for some examples; metrics are undefined")
        self.n += len(y)
        pos = y == 1.0
        neg = y == 0.0
        if self.binary_labels and not bool((pos | neg).all()):
            self.binary_labels = False
        if len(self._bad_labels) < 5:
            self._bad_labels.update(float(v) for v in y[~(pos | neg)][:5])
        self._min_score = min(self._min_score, float(s.min()))
        self._max_score = max(self._max_score, float(s.max()))
        self.unit_scores = self._min_score >= 0.0 and self._max_score <= 1.0
        err = y - s
        self._sq += float(np.dot(err, err))
        self._abs += float(np.abs(err).sum())
        if not (self.binary_labels and self.unit_scores):
            self._kept = None if self.task == "regression" else self._kept
            return
        predicted = s > DECISION_THRESHOLD  # TFMA / Keras: positive above the threshold
        self.tp += int((predicted & pos).sum())
        self.fp += int((predicted & neg).sum())
        self.fn += int((~predicted & pos).sum())
        self.tn += int((~predicted & neg).sum())
        eps = np.finfo(np.float64).eps  # scikit-learn's log_loss: clip each column to [eps, 1-eps]
        p1 = np.clip(s, eps, 1 - eps)
        p0 = np.clip(1 - s, eps, 1 - eps)
        self._log_loss += float(-(np.log(p1[pos]).sum() + np.log(p0[neg]).sum()))
        # TFMA's confusion matrices: an example is positive at threshold t when score > t.
        bucket = np.searchsorted(self._thresholds, s, side="left")
        self._pos += np.bincount(bucket[pos], minlength=len(self._pos))
        self._neg += np.bincount(bucket[neg], minlength=len(self._neg))
        if self._kept is not None:
            if self.n > self._budget:
                self._kept = None
            else:
                self._kept.append((y.astype(np.int8), s))

    def merge(self, other: Accumulator) -> None:
        """Add ``other``'s examples to these (a Beam combiner merging workers' accumulators).

        The result is the one :meth:`add` would give for both streams in one, whatever the order:
        the kept scores stay while the examples together fit in the exact-AUC budget.
        """
        if other.task != self.task or other._budget != self._budget:
            raise ValueError("cannot merge accumulators of different tasks or AUC budgets")
        if other.n == 0:
            return
        self.n += other.n
        self.binary_labels = self.binary_labels and other.binary_labels
        if len(self._bad_labels) < 5:
            self._bad_labels.update(sorted(other._bad_labels)[:5])
        self._min_score = min(self._min_score, other._min_score)
        self._max_score = max(self._max_score, other._max_score)
        self.unit_scores = self._min_score >= 0.0 and self._max_score <= 1.0
        self._sq += other._sq
        self._abs += other._abs
        self.tp += other.tp
        self.fp += other.fp
        self.tn += other.tn
        self.fn += other.fn
        self._log_loss += other._log_loss
        self._pos += other._pos
        self._neg += other._neg
        if self._kept is None or other._kept is None or self.n > self._budget:
            self._kept = None
        else:
            self._kept.extend(other._kept)
        if not (self.binary_labels and self.unit_scores) and self.task == "regression":
            self._kept = None

    def __getstate__(self) -> dict[str, object]:
        # numpy itself is not picklable: Beam ships accumulators between workers by pickle
        return {k: v for k, v in self.__dict__.items() if k != "_np"}

    def __setstate__(self, state: dict[str, object]) -> None:
        import numpy as np

        self.__dict__.update(state)
        self._np = np

    @property
    def auc_method(self) -> str:
        """``exact`` or ``thresholded`` (TFMA's, :data:`AUC_THRESHOLDS` thresholds)."""
        return "exact" if self._kept is not None else "thresholded"

    def _thresholded_auc(self) -> float:
        # tfma.metrics.AUC (confusion_matrix_metrics.py, v0.47.0), ROC, interpolation.
        np = self._np
        tp = np.cumsum(self._pos[::-1])[::-1][1:].astype(np.float64)  # score > thresholds[j]
        fp = np.cumsum(self._neg[::-1])[::-1][1:].astype(np.float64)
        fn = self._pos.sum() - tp
        tn = self._neg.sum() - fp
        with np.errstate(divide="ignore", invalid="ignore"):
            recall = tp / (tp + fn)
            fp_rate = fp / (fp + tn)
        heights = (recall[:-1] + recall[1:]) / 2.0
        return float(np.nansum((fp_rate[:-1] - fp_rate[1:]) * heights))

    def result(self) -> dict[str, float]:
        """The metrics so far; see the module docstring for which."""
        if self.n == 0:
            raise InputError("no examples to compute metrics from")
        task = self.task
        if task == "auto":
            task = "classification" if self.binary_labels and self.unit_scores else "regression"
        out: dict[str, float] = {"example_count": float(self.n)}
        if task == "classification":
            if not self.binary_labels:
                raise InputError(
                    f"classification needs labels 0 or 1, found {sorted(self._bad_labels)[:5]}; "
                    "use --task regression"
                )
            if not self.unit_scores:
                raise InputError(
                    "classification needs scores in [0, 1] (probabilities of class 1); the model "
                    f"gave [{self._min_score}, {self._max_score}]. Use --task regression, or a "
                    "probability output (--prediction-key)"
                )
            n = float(self.n)
            out["accuracy"] = (self.tp + self.tn) / n
            out["precision"] = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
            out["recall"] = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
            out["log_loss"] = self._log_loss / n
            positives = self.tp + self.fn
            if 0 < positives < self.n:
                out["auc"] = (
                    self._exact_auc() if self._kept is not None else self._thresholded_auc()
                )
        else:
            mse = self._sq / self.n
            out["mse"] = mse
            out["rmse"] = math.sqrt(mse)
            out["mae"] = self._abs / self.n
        return out

    def _exact_auc(self) -> float:
        try:
            from sklearn import metrics as skm
        except ImportError as e:
            raise MissingDependencyError("computing metrics", "metrics") from e
        np = self._np
        assert self._kept is not None
        y = np.concatenate([k[0] for k in self._kept])
        s = np.concatenate([k[1] for k in self._kept])
        return float(skm.roc_auc_score(y, s))


def compute(
    labels: Sequence[float], scores: Sequence[float], task: str = "auto"
) -> dict[str, float]:
    """The metrics of ``scores`` against ``labels`` in one batch (see :class:`Accumulator`)."""
    if len(labels) != len(scores):
        raise InputError(f"{len(labels)} labels but {len(scores)} predictions")
    acc = Accumulator(task)
    acc.add(labels, scores)
    return acc.result()
