"""Writes tests/fixtures/logreg.safetensors: scikit-learn's multinomial
LogisticRegression (lbfgs, tight tolerance) on a small synthetic problem, the
independent reference for tasks/logreg.c."""
import os
import sys

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, os.path.dirname(__file__))
import st  # noqa: E402

rng = np.random.default_rng(7)
N, D, K = 300, 6, 4
centers = rng.normal(0, 1.5, (K, D))
y = rng.integers(0, K, N)
X = centers[y] + rng.normal(0, 1.0, (N, D))
C = 0.3
clf = LogisticRegression(C=C, multi_class="multinomial", solver="lbfgs", tol=1e-12,
                         max_iter=100000).fit(X, y)
out = os.path.join(os.path.dirname(__file__), "..", "fixtures", "logreg.safetensors")
st.save(out, {
    "X": torch.tensor(X, dtype=torch.float32),
    "y": torch.tensor(y, dtype=torch.int32),
    "C": torch.tensor([C], dtype=torch.float32),
    "coef": torch.tensor(clf.coef_, dtype=torch.float32),
    "intercept": torch.tensor(clf.intercept_, dtype=torch.float32),
    "probs": torch.tensor(clf.predict_proba(X), dtype=torch.float32),
})
print("wrote", out)
