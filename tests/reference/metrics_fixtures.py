"""Writes tests/fixtures/metrics.txt: GLUE metrics computed by scikit-learn
and scipy on seeded inputs, for tests/check_data.c to match.

One case a line: METRIC VALUE N A_1..A_N B_1..B_N, where A is the prediction
and B the gold label (for correlations, the two series). Scores are rounded
to halves so that Spearman has ties to average.

Run from the source tree: /usr/bin/python3 tests/reference/metrics_fixtures.py
"""
import os

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "metrics.txt")


def line(name, value, a, b):
    fmt = (lambda v: repr(float(v))) if np.asarray(a).dtype.kind == "f" else str
    return " ".join([name, repr(float(value)), str(len(a))] + [fmt(v) for v in a] +
                    [fmt(v) for v in b])


def main():
    rng = np.random.default_rng(7)
    out = []
    for n, k in [(37, 2), (200, 2), (90, 3)]:
        gold = rng.integers(0, k, n)
        pred = np.where(rng.random(n) < 0.7, gold, rng.integers(0, k, n))
        out.append(line("accuracy", accuracy_score(gold, pred), pred, gold))
        out.append(line("matthews", matthews_corrcoef(gold, pred), pred, gold))
        if k == 2:
            out.append(line("f1", f1_score(gold, pred), pred, gold))
    const, gold = np.zeros(10, int), rng.integers(0, 2, 10)  # a constant predictor
    out.append(line("matthews", matthews_corrcoef(gold, const), const, gold))
    for n in [25, 150]:
        x = np.round(rng.normal(2.5, 1.2, n) * 2) / 2
        y = np.round((0.6 * x + rng.normal(0, 0.8, n)) * 2) / 2
        x, y = x.astype(np.float32), y.astype(np.float32)
        out.append(line("pearson", pearsonr(x.astype(np.float64), y.astype(np.float64))[0], x, y))
        out.append(line("spearman", spearmanr(x, y).correlation, x, y))
    with open(OUT, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
