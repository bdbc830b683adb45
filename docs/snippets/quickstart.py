"""The quickstart of the documentation, runnable: ISAL in a modAL loop on synthetic data.

``scripts/docs.sh`` runs it before building the docs (under ten seconds on one CPU thread), and
``docs/quickstart.md`` shows it. Run it yourself with ``python docs/snippets/quickstart.py``.
"""


import numpy as np
import torch
from modAL.models import ActiveLearner
from sklearn.datasets import make_classification
from skorch import NeuralNetClassifier

from skisal import InfluenceQueryStrategy

torch.manual_seed(0)
torch.set_num_threads(1)  # a tiny network: threads cost more than they save

# Synthetic data: 3 classes, 20 features. y_oracle plays the annotator.
X, y = make_classification(
    n_samples=700, n_features=20, n_informative=6, n_classes=3, class_sep=1.5, random_state=0
)
X, y = X.astype(np.float32), y.astype(np.int64)
X_init, y_init = X[:30], y[:30]  # the initial labelled set
X_val, y_val = X[30:130], y[30:130]  # the reference set R (the paper: the validation set)
X_pool, y_oracle = X[130:500], y[130:500]  # the unlabelled pool
X_test, y_test = X[500:], y[500:]


class MyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.ReLU())
        self.out = torch.nn.Linear(32, 3)

    def forward(self, X):
        return self.out(self.hidden(X))


print("Influence I(z, R): the predicted effect of labelling pool sample z on the loss over the")
print(f"reference set R ({len(X_val)} samples). Negative: the loss should fall; lower is better.")

# [start-ten-lines]
strategy = InfluenceQueryStrategy(X_reference=X_val, y_reference=y_val, random_state=0)
net = NeuralNetClassifier(MyNet, criterion=torch.nn.CrossEntropyLoss, optimizer=torch.optim.Adam,
                          lr=0.01, max_epochs=50, train_split=None, verbose=0)
learner = ActiveLearner(estimator=net, query_strategy=strategy,
                        X_training=X_init, y_training=y_init)
for query in range(1, 6):
    idx, X_selected = learner.query(X_pool, n_instances=20)  # by the default, "auto"
    picked = strategy.scores_[idx]  # their influence I(z, R); lower = more helpful
    learner.teach(X_pool[idx], y_oracle[idx])  # the annotator labels them
    X_pool, y_oracle = np.delete(X_pool, idx, axis=0), np.delete(y_oracle, idx)
    print(f"query {query} ({strategy.diagnostics_.selection}): influence {picked.min():.1f} to "
          f"{picked.max():.1f}; {len(learner.y_training)} labels, test accuracy "
          f"{learner.score(X_test, y_test):.2f}")
scores = strategy.influence(learner, X_pool)  # I(z, R) for every pool sample, lower = better
# [end-ten-lines]

# [start-inspect]
print(strategy.diagnostics_)  # what the last computation did, in words
print(f"the {len(scores)} samples left in the pool: influence {scores.min():.1f} to "
      f"{scores.max():.1f}, median {np.median(scores):.1f}")
print("the five most helpful of them:", np.argsort(scores)[:5])
# [end-inspect]
assert scores.shape == (len(X_pool),) and np.isfinite(scores).all()
assert len(learner.y_training) == 30 + 5 * 20
