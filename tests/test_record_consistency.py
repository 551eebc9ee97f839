"""The quantisation bound of reportgen.record_consistency against scikit-learn on real scores."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score

from reportgen.gate import correctness_record, score_record
from reportgen.paired_bootstrap import SCORE_LEVELS
from reportgen.record_consistency import MAX_TIED_PAIRS, _auc_and_ties, records_disagreement


def _run(scores: np.ndarray, y: np.ndarray) -> dict:
    """A minimal earlier-run document whose metrics scikit-learn computed from the unquantised scores."""
    pred = (scores >= 0.5).astype(int)
    return {
        "model": {"threshold": 0.5},
        "metrics": {"test": {"roc_auc": roc_auc_score(y, scores), "pr_auc": average_precision_score(y, scores),
                             "accuracy": float(np.mean(pred == y))}},
        "gate": {"test_outcomes": correctness_record(y, pred, 1), "test_scores": score_record(y, scores, 1)},
    }


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_breast_cancer(return_X_y=True)
    model = LogisticRegression(max_iter=5000).fit(x[::2], y[::2])
    margin = model.decision_function(x[1::2])
    return 1 / (1 + np.exp(-margin / np.abs(margin).max() * 8)), y[1::2]  # unsaturated: no two rows share a 16-bit level


def test_honest_records_agree_with_scikit_learns_metrics(cancer) -> None:
    scores, y = cancer
    assert np.unique(np.rint(scores * SCORE_LEVELS)).size == y.size  # so PR AUC is compared exactly
    assert records_disagreement(_run(scores, y), y, 1) is None


def test_the_tie_bound_holds_when_quantisation_merges_different_scores(cancer) -> None:
    """Scores squeezed into a few quantisation steps: order is lost for many pairs, the bound t/2 still covers it."""
    scores, y = cancer
    squeezed = 0.5 + (scores - 0.5) * 6 / SCORE_LEVELS  # within 3 levels of the threshold: many ties
    levels = np.rint(squeezed * SCORE_LEVELS).astype(np.uint16)
    auc_q, tied = _auc_and_ties(levels, y == 1)
    assert tied > 0 and abs(auc_q - roc_auc_score(y, squeezed)) <= tied / 2
    assert auc_q == pytest.approx(roc_auc_score(y, levels))
    # so many tied pairs leave the AUC undetermined: the record is not trusted
    assert tied > MAX_TIED_PAIRS and "are tied" in records_disagreement(_run(squeezed, y), y, 1)
    mild = 0.5 + (scores - 0.5) * 100 / SCORE_LEVELS  # a few ties only: within the bound, trusted
    auc_q, tied = _auc_and_ties(np.rint(mild * SCORE_LEVELS).astype(np.uint16), y == 1)
    assert 0 < tied <= MAX_TIED_PAIRS and records_disagreement(_run(mild, y), y, 1) is None


def test_a_recorded_auc_or_ap_the_scores_do_not_give_is_named(cancer) -> None:
    scores, y = cancer
    document = _run(scores, y)
    document["metrics"]["test"]["roc_auc"] -= 0.01
    assert "ROC AUC is recorded as" in records_disagreement(document, y, 1)
    document = _run(scores, y)
    document["metrics"]["test"]["pr_auc"] += 0.001
    assert "PR AUC is recorded as" in records_disagreement(document, y, 1)
    document = _run(scores, y)
    document["metrics"]["test"]["accuracy"] += 1 / y.size
    assert "accuracy is recorded as" in records_disagreement(document, y, 1)
