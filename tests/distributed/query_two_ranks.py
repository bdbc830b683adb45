"""Run under ``torchrun --nproc_per_node 2``: a distributed query equals a single-process one.

Every rank fits the same network (same seed, one thread), queries with
``distributed=True`` for several option sets, and rank 0 compares each result
with the same strategy run alone (``distributed=False``), then writes "OK".
"""

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
module = torch.nn.Sequential(torch.nn.Linear(64, 24), torch.nn.Tanh(), torch.nn.Linear(24, 10))
net = NeuralNetClassifier(
    module,
    criterion=torch.nn.CrossEntropyLoss,
    lr=0.05,
    max_epochs=10,
    train_split=None,
    verbose=0,
).fit(X[:150], y[:150])
X_pool = X[300:1301]  # 1,001 samples: the shards differ in size

for options in (
    dict(),
    dict(inverse_hvp="lissa", lissa_depth=200),
    dict(selection="diverse"),
):
    common = dict(X_labeled=X[:150], y_labeled=y[:150], return_scores=True, random_state=0)
    distributed = InfluenceQueryStrategy(
        X[150:250], y[150:250], distributed=True, **common, **options
    )
    idx, scores = distributed(net, X_pool, n_instances=25)
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, idx.tolist())
    assert all(g == gathered[0] for g in gathered), f"ranks disagree: {options}"
    if rank == 0:
        alone = InfluenceQueryStrategy(X[150:250], y[150:250], **common, **options)
        idx_alone, _ = alone(net, X_pool, n_instances=25)
        np.testing.assert_array_equal(idx, idx_alone, err_msg=str(options))
        np.testing.assert_allclose(
            distributed.scores_,
            alone.scores_,
            rtol=1e-5,
            atol=1e-6 * np.abs(alone.scores_).max(),
            err_msg=str(options),
        )
        assert distributed.diagnostics_.n_pool == len(X_pool)
        assert distributed.diagnostics_.solver.method == alone.diagnostics_.solver.method

# A failure on rank 0 (here: LiSSA at a scale far too small diverges) reaches every rank.
failing = InfluenceQueryStrategy(
    X[150:250],
    y[150:250],
    inverse_hvp="lissa",
    lissa_scale=1e-6,
    distributed=True,
    X_labeled=X[:150],
    y_labeled=y[:150],
    random_state=0,
)
try:
    failing(net, X_pool, n_instances=5)
except Exception as exc:
    print(f"rank {rank} raised {type(exc).__name__}", flush=True)
else:
    sys.exit(f"rank {rank}: no error")

# A failure on one rank only (here: rank 1's shard) also reaches every rank.
if rank == 1:
    from skisal.engine.influence import InfluenceEngine

    def broken_scores(self, *args, **kwargs):
        raise ArithmeticError("shard failed")

    InfluenceEngine.scores = broken_scores
try:
    InfluenceQueryStrategy(
        X[150:250], y[150:250], distributed=True, X_labeled=X[:150], y_labeled=y[:150]
    )(net, X_pool, n_instances=5)
except Exception as exc:
    print(f"rank {rank} shard failure: {type(exc).__name__}: {exc}", flush=True)
else:
    sys.exit(f"rank {rank}: no error from the failed shard")

dist.barrier()
if rank == 0:
    print("OK", flush=True)
# Every check is done. Leave without tearing gloo down: once in a CI run, a rank aborted in
# teardown after this point ("terminate called without an active exception", SIGABRT),
# which says nothing about the code under test.
sys.stdout.flush()
os._exit(0)
