"""Run under ``torchrun --nproc_per_node 2``: ranks that hold different inputs all raise.

Each scenario gives rank 1 something rank 0 does not have (a shorter pool, a
different model, a different option, a pool with a NaN) and queries with
``distributed=True``. Every rank must raise at once, with the same message for
a mismatch, instead of aborting in a mismatched collective, waiting forever,
or returning a result that matches neither rank. Each rank prints one line per
scenario, ``rank R <scenario>: <ExceptionType>: <message>``, then "DONE".
"""

import copy
import os
import sys

import numpy as np
import torch
import torch.distributed as dist
from sklearn.datasets import load_digits
from skorch import NeuralNetClassifier

from skisal import InfluenceQueryStrategy

torch.set_num_threads(1)
dist.init_process_group("gloo")
rank = dist.get_rank()

X, y = load_digits(return_X_y=True)
X, y = (X / 16.0).astype(np.float32), y.astype(np.int64)
torch.manual_seed(0)
module = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.Tanh(), torch.nn.Linear(16, 10))
net = NeuralNetClassifier(
    module,
    criterion=torch.nn.CrossEntropyLoss,
    lr=0.05,
    max_epochs=5,
    train_split=None,
    verbose=0,
).fit(X[:150], y[:150])
other_net = copy.deepcopy(net)
with torch.no_grad():
    other_net.module_[2].weight[0, 0] += 1e-3  # one weight differs

X_pool = X[300:1301]  # 1,001 samples
nan_pool = X_pool.copy()
nan_pool[7, 3] = np.nan
common = dict(X_labeled=X[:150], y_labeled=y[:150], distributed=True, random_state=0)
scenarios = {
    "shorter pool": (net, X_pool[: 1001 - 5 * rank], {}),
    "different model": (other_net if rank == 1 else net, X_pool, {}),
    "different option": (net, X_pool, {"damping": 1e-3 * 10**rank}),
    "nan pool": (net, nan_pool if rank == 1 else X_pool, {}),
}


def say(line: str) -> None:
    """One write per line: a pipe keeps writes under PIPE_BUF whole, so ranks do not interleave."""
    sys.stdout.flush()
    os.write(sys.stdout.fileno(), (line + "\n").encode())


for name, (estimator, pool, options) in scenarios.items():
    strategy = InfluenceQueryStrategy(X[150:250], y[150:250], **common, **options)
    try:
        strategy(estimator, pool, n_instances=5)
    except Exception as exc:
        message = " ".join(str(exc).split())
        say(f"rank {rank} {name}: {type(exc).__name__}: {message}")
    else:
        say(f"rank {rank} {name}: no error")

dist.barrier()  # the group is still usable: no rank was left inside a collective
say(f"rank {rank} DONE")
# Leave without tearing gloo down (see query_two_ranks.py: a rare SIGABRT in teardown).
sys.stdout.flush()
os._exit(0)
