"""Inverse Hessian-vector product solvers: ``s_test = (H + damping I)^-1 v``.

Every solver solves the same damped system, so ``damping`` means the same thing
whichever solver is chosen. Subclasses change only :meth:`InverseHVPSolver.solve`.

Mapping from the ISAL reference code: its LiSSA update
``h <- v + (1 - d) h - H h / scale`` converges to ``(H + d*scale I) h = scale v``.
Its ``(d, scale) = (0.01, 1e4)`` is therefore skisal's ``damping = d * scale =
100`` (up to the factor ``scale`` on ``s_test``, which leaves the ranking
unchanged), with ``scale = 1e4``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..exceptions import SolverDivergenceError
from .curvature import DampedHessian

__all__ = [
    "ConjugateGradientSolver",
    "ExactSolver",
    "IdentitySolver",
    "InverseHVPSolver",
    "LissaSolver",
    "SolverReport",
    "top_eigenvalue",
]


@dataclass
class SolverReport:
    """What a solver did: inspect ``strategy.diagnostics_.solver`` after a query.

    Parameters
    ----------
    method : str
        Solver name.
    damping : float
        Damping of the solved system.
    iterations : list of int
        Iterations (CG) or recursion steps (LiSSA, one entry per repeat).
    converged : bool
        Whether the stopping criterion was met within the budget.
    relative_residual : float or None
        ``||(H + damping I) x - v|| / ||v||``, measured once after solving
        (CG, PCG, Lanczos, exact; K-FAC when ``check_residual`` is on). An
        iterative solve ending at 1 or more (no better than ``s_test = 0``)
        raises :class:`~skisal.exceptions.SolverDivergenceError` instead.
    scale : float or None
        LiSSA scale used.
    top_eigenvalue : float or None
        Power-iteration estimate of the damped Hessian's top eigenvalue
        (LiSSA with ``scale="auto"``), or the exact one (``"exact"``).
    min_eigenvalue : float or None
        Smallest eigenvalue of the damped Hessian (``"exact"``, and Lanczos's
        estimate); damping must exceed ``damping - min_eigenvalue`` to make
        the system positive definite.
    norm_trace : list of list of float
        LiSSA: ``||h_j|| / scale`` along the recursion, per repeat. CG: the
        relative residual per iteration.
    hessian_vector_products : int
        Single-sample Hessian-vector products spent.
    power_iteration_products : int
        Of those, the ones the top-eigenvalue estimate took (LiSSA with
        ``scale="auto"``; 0 otherwise).
    notes : list of str
        Anything worth knowing (retries, fallbacks).

    Examples
    --------
    After a query, ``strategy.diagnostics_.solver`` is one of these; a solver
    returns one with ``s_test``:

    >>> from skisal import SolverReport
    >>> report = SolverReport(method="cg", damping=0.01, iterations=[12],
    ...                       relative_residual=3e-6)
    >>> report.converged, report.notes
    (True, [])
    """

    method: str
    damping: float
    iterations: list[int] = field(default_factory=list)
    converged: bool = True
    relative_residual: float | None = None
    scale: float | None = None
    top_eigenvalue: float | None = None
    min_eigenvalue: float | None = None
    norm_trace: list[list[float]] = field(default_factory=list)
    hessian_vector_products: int = 0
    power_iteration_products: int = 0
    notes: list[str] = field(default_factory=list)


class InverseHVPSolver(ABC):
    """Base class: solve ``(H + damping I) x = v`` given products with the damped Hessian.

    A solver receives a :class:`~skisal.engine.DampedHessian` (products with
    ``H + damping I`` over the labelled set, or minibatches of it) and the
    reference gradient ``v``, and returns ``s_test`` with a
    :class:`~skisal.SolverReport`. :class:`~skisal.engine.InfluenceEngine`
    accepts any subclass; :class:`~skisal.InfluenceQueryStrategy` picks one
    by its ``inverse_hvp`` name.

    Attributes
    ----------
    name : str
        Short name, recorded in the report.
    needs_hessian : bool
        False for solvers that never touch the Hessian: they receive
        ``hessian=None`` and need no labelled data.

    Examples
    --------
    A solver that ignores the curvature, ``s_test = v / damping`` (what every
    damped solve tends to as ``damping`` grows):

    >>> import numpy as np, torch
    >>> from skisal.engine import InverseHVPSolver, SolverReport
    >>> class ScaledGradient(InverseHVPSolver):
    ...     name = "scaled_gradient"
    ...     needs_hessian = False
    ...     def __init__(self, damping=1.0):
    ...         self.damping = damping
    ...     def solve(self, hessian, v, rng, progress=False):
    ...         report = SolverReport(method=self.name, damping=self.damping)
    ...         return v / self.damping, report
    >>> s_test, report = ScaledGradient(2.0).solve(None, torch.ones(3),
    ...                                            np.random.RandomState(0))
    >>> s_test, report.method
    (tensor([0.5000, 0.5000, 0.5000]), 'scaled_gradient')
    """

    name: str = "base"
    #: False for solvers that never touch the Hessian (no labelled data needed).
    needs_hessian: bool = True

    @abstractmethod
    def solve(
        self,
        hessian: DampedHessian | None,
        v: torch.Tensor,
        rng: np.random.RandomState,
        progress: bool = False,
    ) -> tuple[torch.Tensor, SolverReport]:
        """Return ``s_test = (H + damping I)^-1 v`` and a report.

        Parameters
        ----------
        hessian : DampedHessian or None
            Products with the damped Hessian; None for a solver whose
            ``needs_hessian`` is False.
        v : torch.Tensor
            The flat reference gradient ``grad l(R)``.
        rng : numpy.random.RandomState
            Randomness of stochastic solvers (minibatches, start vectors).
        progress : bool, default=False
            Show a tqdm bar.

        Returns
        -------
        s_test : torch.Tensor
            Same shape, dtype and device as ``v``.
        report : SolverReport
            What the solver did.

        Raises
        ------
        skisal.SolverDivergenceError
            If the solve diverges or the damped Hessian is not positive
            definite (solvers that can tell).

        Examples
        --------
        Every solver is called the same way; :class:`IdentitySolver` needs no
        Hessian:

        >>> import numpy as np, torch
        >>> from skisal.engine import IdentitySolver
        >>> v = torch.tensor([0.5, -1.0])
        >>> s_test, report = IdentitySolver().solve(None, v, np.random.RandomState(0))
        >>> s_test, report.method, report.converged
        (tensor([ 0.5000, -1.0000]), 'identity', True)
        """

    @staticmethod
    def _residual(hessian: DampedHessian, x: torch.Tensor, v: torch.Tensor) -> float:
        r = hessian.matvec(x.to(v.dtype)) - v
        return float(r.norm() / v.norm().clamp_min(torch.finfo(v.dtype).tiny))


def top_eigenvalue(
    hessian: DampedHessian,
    indices: np.ndarray,
    rng: np.random.RandomState,
    iterations: int = 20,
    tol: float = 1e-3,
) -> float:
    """Largest-magnitude eigenvalue of ``H_S + damping I`` by power iteration.

    Parameters
    ----------
    hessian : DampedHessian
        The operator.
    indices : ndarray
        The samples ``S`` the Hessian is taken over (fixed across iterations
        so that the iteration converges).
    rng : numpy.random.RandomState
        Source of the start vector.
    iterations : int, default=20
        Maximum number of products.
    tol : float, default=1e-3
        Stop when the estimate changes by less than this relative amount.

    Returns
    -------
    float
        The estimate (a lower bound of the magnitude before convergence).

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skorch import NeuralNetClassifier
    >>> from skisal import SkorchClassifierAdapter
    >>> from skisal.engine import (BoundModel, DampedHessian, ParameterSpace,
    ...     top_eigenvalue, select_parameters)
    >>> _ = torch.manual_seed(0)
    >>> X = np.random.RandomState(0).randn(40, 3).astype(np.float32)
    >>> y = (X[:, 0] > 0).astype(np.int64)
    >>> net = NeuralNetClassifier(torch.nn.Linear, module__in_features=3,
    ...     module__out_features=2, criterion=torch.nn.CrossEntropyLoss, max_epochs=3,
    ...     train_split=None, verbose=0).fit(X, y)
    >>> space = ParameterSpace(select_parameters(net.module_))
    >>> model = BoundModel(SkorchClassifierAdapter(), net, net.module_, space,
    ...     torch.device("cpu"))
    >>> hessian = DampedHessian(model, X, y, damping=0.1, batch_size=40)
    >>> v = model.loss_gradient(X, y, batch_size=40)  # grad l(R), here with R = X
    >>> estimate = top_eigenvalue(hessian, np.arange(len(X)), np.random.RandomState(0))
    >>> exact = float(torch.linalg.eigvalsh(hessian.dense())[-1])
    >>> abs(estimate - exact) <= 0.02 * exact
    True
    """
    start = rng.standard_normal(hessian.dim)
    x = torch.as_tensor(start, dtype=hessian.model.space.dtype).to(hessian.model.space.device)
    x = x / x.norm()
    estimate = 0.0
    for _ in range(iterations):
        y = hessian.matvec(x, indices)
        new = float(torch.dot(x, y))
        norm = y.norm()
        if not torch.isfinite(norm) or norm == 0:
            break
        x = y / norm
        if estimate and abs(new - estimate) <= tol * abs(new):
            estimate = new
            break
        estimate = new
    return abs(estimate)


class IdentitySolver(InverseHVPSolver):
    """``s_test = v``: the paper's "gradient similarity" ablation (``H^-1`` replaced by ``I``).

    Needs no Hessian, so no labelled data; ignores ``damping``. Selected by
    ``InfluenceQueryStrategy(inverse_hvp="identity")`` or
    :func:`skisal.gradient_similarity`.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skisal.engine import IdentitySolver
    >>> s_test, report = IdentitySolver().solve(None, torch.tensor([1.0, -2.0]),
    ...                                         np.random.RandomState(0))
    >>> s_test, report.method
    (tensor([ 1., -2.]), 'identity')
    """

    name = "identity"
    needs_hessian = False

    def solve(self, hessian, v, rng, progress=False):
        """Return a copy of ``v`` and a report (see :meth:`InverseHVPSolver.solve`).

        Parameters
        ----------
        hessian : DampedHessian or None
            Products with the damped Hessian: not used, may be None.
        v : torch.Tensor
            The flat reference gradient ``grad l(R)``.
        rng : numpy.random.RandomState
            Not used.
        progress : bool, default=False
            Not used.

        Returns
        -------
        s_test : torch.Tensor
            Same shape, dtype and device as ``v``.
        report : SolverReport
            Method "identity", zero damping.

        Examples
        --------
        >>> import numpy as np, torch
        >>> from skisal.engine import IdentitySolver
        >>> v = torch.tensor([1.0, 2.0])
        >>> s_test, report = IdentitySolver().solve(None, v, np.random.RandomState(0))
        >>> s_test, s_test is v
        (tensor([1., 2.]), False)
        """
        return v.clone(), SolverReport(method=self.name, damping=0.0, converged=True)


class ExactSolver(InverseHVPSolver):
    """Dense solve in float64: exact up to round-off, for small parameter counts.

    Builds the dense ``H + damping I`` with one product per parameter, checks
    its eigenvalues and solves directly. The report has the smallest and
    largest eigenvalue.

    Parameters
    ----------
    max_parameters : int, default=5000
        Refuse larger problems (the dense Hessian needs ``8 * dim**2`` bytes).

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skorch import NeuralNetClassifier
    >>> from skisal import SkorchClassifierAdapter
    >>> from skisal.engine import (BoundModel, DampedHessian, ParameterSpace,
    ...     ExactSolver, select_parameters)
    >>> _ = torch.manual_seed(0)
    >>> X = np.random.RandomState(0).randn(40, 3).astype(np.float32)
    >>> y = (X[:, 0] > 0).astype(np.int64)
    >>> net = NeuralNetClassifier(torch.nn.Linear, module__in_features=3,
    ...     module__out_features=2, criterion=torch.nn.CrossEntropyLoss, max_epochs=3,
    ...     train_split=None, verbose=0).fit(X, y)
    >>> space = ParameterSpace(select_parameters(net.module_))
    >>> model = BoundModel(SkorchClassifierAdapter(), net, net.module_, space,
    ...     torch.device("cpu"))
    >>> hessian = DampedHessian(model, X, y, damping=0.1, batch_size=40)
    >>> v = model.loss_gradient(X, y, batch_size=40)  # grad l(R), here with R = X
    >>> s_test, report = ExactSolver().solve(hessian, v, np.random.RandomState(0))
    >>> report.min_eigenvalue > 0, report.relative_residual < 1e-6
    (True, True)
    """

    name = "exact"

    def __init__(self, max_parameters: int = 5000) -> None:
        self.max_parameters = max_parameters

    def solve(self, hessian, v, rng, progress=False):
        """Solve densely (see :meth:`InverseHVPSolver.solve`).

        Parameters
        ----------
        hessian : DampedHessian
            Products with the damped Hessian (the dense matrix is built from them).
        v : torch.Tensor
            The flat reference gradient ``grad l(R)``.
        rng : numpy.random.RandomState
            Not used.
        progress : bool, default=False
            Not used.

        Returns
        -------
        s_test : torch.Tensor
            Same shape, dtype and device as ``v``.
        report : SolverReport
            With the smallest and largest eigenvalue and the residual.

        Raises
        ------
        ValueError
            If the parameter count exceeds ``max_parameters``.
        skisal.SolverDivergenceError
            If the damped Hessian is not positive definite, or its smallest
            eigenvalue is within the parameters' round-off of the largest.

        Examples
        --------
        >>> import numpy as np, torch
        >>> from skorch import NeuralNetClassifier
        >>> from skisal import SkorchClassifierAdapter
        >>> from skisal.engine import (BoundModel, DampedHessian, ParameterSpace,
        ...     ExactSolver, select_parameters)
        >>> _ = torch.manual_seed(0)
        >>> X = np.random.RandomState(0).randn(40, 3).astype(np.float32)
        >>> y = (X[:, 0] > 0).astype(np.int64)
        >>> net = NeuralNetClassifier(torch.nn.Linear, module__in_features=3,
        ...     module__out_features=2, criterion=torch.nn.CrossEntropyLoss, max_epochs=3,
        ...     train_split=None, verbose=0).fit(X, y)
        >>> space = ParameterSpace(select_parameters(net.module_))
        >>> model = BoundModel(SkorchClassifierAdapter(), net, net.module_, space,
        ...     torch.device("cpu"))
        >>> hessian = DampedHessian(model, X, y, damping=0.1, batch_size=40)
        >>> v = model.loss_gradient(X, y, batch_size=40)  # grad l(R), here with R = X
        >>> s_test, report = ExactSolver().solve(hessian, v, np.random.RandomState(0))
        >>> bool(torch.allclose(hessian.matvec(s_test), v, atol=1e-5))  # solves the system
        True
        >>> ExactSolver(max_parameters=4).solve(hessian, v, None)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: inverse_hvp='exact' needs a dense 8x8 Hessian; it is limited to 4 ...
        """
        if hessian.dim > self.max_parameters:
            raise ValueError(
                f"inverse_hvp='exact' needs a dense {hessian.dim}x{hessian.dim} Hessian; it is "
                f"limited to {self.max_parameters} parameters. Use inverse_hvp='cg' or "
                "'lissa', or restrict `parameters` (e.g. to the last layer)."
            )
        matrix = hessian.dense(torch.float64)
        eigenvalues = torch.linalg.eigvalsh(matrix)
        report = SolverReport(
            method=self.name,
            damping=hessian.damping,
            top_eigenvalue=float(eigenvalues[-1]),
            min_eigenvalue=float(eigenvalues[0]),
        )
        smallest, largest = float(eigenvalues[0]), float(eigenvalues[-1])
        # The entries come from products in the parameters' dtype: eigenvalues within its
        # round-off of the largest one are noise, and so is a solve along them.
        floor = 4 * torch.finfo(v.dtype).eps * max(largest, 0.0)
        if smallest <= floor:
            state = (
                "is not positive definite"
                if smallest <= 0
                else f"is singular to {str(v.dtype).replace('torch.', '')} precision"
            )
            raise SolverDivergenceError(
                f"inverse_hvp='exact': H + damping I {state} (its smallest eigenvalue is "
                f"{smallest:.3g}, its largest {largest:.3g}, at damping={hessian.damping:g}). "
                + _damping_remedy(hessian, smallest - floor, exact=True)
            )
        x = torch.linalg.solve(matrix, v.to(torch.float64))
        report.relative_residual = float(
            (matrix @ x - v.to(torch.float64)).norm() / v.to(torch.float64).norm().clamp_min(1e-300)
        )
        report.hessian_vector_products = hessian.hvp_count
        return x.to(v.dtype), report


class ConjugateGradientSolver(InverseHVPSolver):
    """(Preconditioned) conjugate gradient over the labelled set: deterministic and accurate.

    Vectors are kept in float64; Hessian-vector products run in the model's
    dtype, which sets the attainable residual (about 1e-5 in float32).

    Once the updated residual meets ``tol``, the true residual is
    recomputed from the solution (float32 products let the two drift apart
    on an ill-conditioned system), and CG restarts from it while that still
    gains. A solve that stops above ``tol`` (budget spent, or drift) is
    returned with ``report.converged`` False and a note naming the cause and
    its remedy; one whose relative residual is 1 or more (no better than
    ``s_test = 0``) raises, and so does negative curvature (an indefinite
    damped Hessian).

    With a ``preconditioner`` (an approximation ``M`` of the damped curvature
    whose inverse is cheap, such as :class:`~skisal.engine.kfac.KroneckerCurvature`),
    each iteration works on ``M^-1 r`` instead of the residual ``r``: the
    number of iterations then depends on how well ``M`` matches the
    curvature, not on the curvature's condition number.

    Parameters
    ----------
    tol : float, default=1e-5
        Stop when ``||r|| <= tol * ||v||``.
    max_iter : int, default=100
        Maximum number of iterations (each one full pass over the labelled set).
    preconditioner : object, optional
        Has ``fit(hessian, rng)`` (returning the fitted object) and
        ``solve(r, damping)`` returning ``M^-1 r``; fitted once per solve.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skorch import NeuralNetClassifier
    >>> from skisal import SkorchClassifierAdapter
    >>> from skisal.engine import (BoundModel, DampedHessian, ParameterSpace,
    ...     ConjugateGradientSolver, select_parameters)
    >>> _ = torch.manual_seed(0)
    >>> X = np.random.RandomState(0).randn(40, 3).astype(np.float32)
    >>> y = (X[:, 0] > 0).astype(np.int64)
    >>> net = NeuralNetClassifier(torch.nn.Linear, module__in_features=3,
    ...     module__out_features=2, criterion=torch.nn.CrossEntropyLoss, max_epochs=3,
    ...     train_split=None, verbose=0).fit(X, y)
    >>> space = ParameterSpace(select_parameters(net.module_))
    >>> model = BoundModel(SkorchClassifierAdapter(), net, net.module_, space,
    ...     torch.device("cpu"))
    >>> hessian = DampedHessian(model, X, y, damping=0.1, batch_size=40)
    >>> v = model.loss_gradient(X, y, batch_size=40)  # grad l(R), here with R = X
    >>> s_test, report = ConjugateGradientSolver().solve(hessian, v, np.random.RandomState(0))
    >>> report.method, report.converged, report.relative_residual < 1e-4
    ('cg', True, True)
    """

    name = "cg"

    def __init__(self, tol: float = 1e-5, max_iter: int = 100, preconditioner: Any = None) -> None:
        self.tol = tol
        self.max_iter = max_iter
        self.preconditioner = preconditioner

    def solve(self, hessian, v, rng, progress=False):
        """Solve by conjugate gradient (see :meth:`InverseHVPSolver.solve`).

        Parameters
        ----------
        hessian : DampedHessian
            Products with the damped Hessian over the whole labelled set.
        v : torch.Tensor
            The flat reference gradient ``grad l(R)``.
        rng : numpy.random.RandomState
            Not used (CG is deterministic).
        progress : bool, default=False
            Show a tqdm bar over the iterations.

        Returns
        -------
        s_test : torch.Tensor
            Same shape, dtype and device as ``v``.
        report : SolverReport
            With the iterations, the residual per iteration and the final residual.

        Raises
        ------
        skisal.SolverDivergenceError
            If a Hessian-vector product is not finite, the damped Hessian
            has non-positive curvature along a search direction, or the
            final relative residual is 1 or more.

        Examples
        --------
        >>> import numpy as np, torch
        >>> from skorch import NeuralNetClassifier
        >>> from skisal import SkorchClassifierAdapter
        >>> from skisal.engine import (BoundModel, DampedHessian, ParameterSpace,
        ...     ConjugateGradientSolver, select_parameters)
        >>> _ = torch.manual_seed(0)
        >>> X = np.random.RandomState(0).randn(40, 3).astype(np.float32)
        >>> y = (X[:, 0] > 0).astype(np.int64)
        >>> net = NeuralNetClassifier(torch.nn.Linear, module__in_features=3,
        ...     module__out_features=2, criterion=torch.nn.CrossEntropyLoss, max_epochs=3,
        ...     train_split=None, verbose=0).fit(X, y)
        >>> space = ParameterSpace(select_parameters(net.module_))
        >>> model = BoundModel(SkorchClassifierAdapter(), net, net.module_, space,
        ...     torch.device("cpu"))
        >>> hessian = DampedHessian(model, X, y, damping=0.1, batch_size=40)
        >>> v = model.loss_gradient(X, y, batch_size=40)  # grad l(R), here with R = X
        >>> solver = ConjugateGradientSolver(tol=1e-5, max_iter=2)  # too few iterations
        >>> s_test, report = solver.solve(hessian, v, np.random.RandomState(0))
        >>> report.iterations, report.converged, len(report.notes)
        ([2], False, 1)
        """
        method = self.name if self.preconditioner is None else "pcg"
        report = SolverReport(method=method, damping=hessian.damping)
        precondition = self._fit_preconditioner(hessian, rng, report)
        b = v.to(torch.float64)
        if not bool(b.any()):  # v = 0: s_test = 0 exactly (a zero direction has no curvature)
            report.iterations, report.relative_residual = [0], 0.0
            report.hessian_vector_products = hessian.hvp_count
            return torch.zeros_like(v), report
        b_norm = b.norm().clamp_min(1e-300)
        accept = max(self.tol, 10 * _floor(v.dtype))
        x = torch.zeros_like(b)
        r = b.clone()
        z = precondition(r)
        p = z.clone()
        rz = torch.dot(r, z)
        trace = []
        residual = None  # the true relative residual of the current x, once measured
        last_restart = math.inf  # the true residual CG last restarted from
        restarts = 0
        stop = "budget"
        bar = tqdm(
            total=self.max_iter, desc=f"s_test ({method})", disable=not progress, leave=False
        )
        for _ in range(self.max_iter):
            hp = hessian.matvec(p.to(v.dtype)).to(torch.float64)
            curvature = torch.dot(p, hp)
            if not torch.isfinite(curvature):
                bar.close()
                raise SolverDivergenceError(
                    f"inverse_hvp={method!r}: a Hessian-vector product is not finite; the "
                    "network's loss is not twice differentiable at this point or overflows."
                )
            if curvature <= 0:
                bar.close()
                quotient = float(curvature / torch.dot(p, p).clamp_min(1e-300))
                raise SolverDivergenceError(
                    f"inverse_hvp={method!r} met {'negative' if quotient < 0 else 'zero'} "
                    f"curvature after {len(trace)} "
                    f"iterations (Rayleigh quotient p^T (H + damping I) p / p^T p = "
                    f"{quotient:.3g} along a search direction): H + damping I is not positive "
                    "definite. " + _damping_remedy(hessian, quotient, exact=False)
                )
            alpha = rz / curvature
            x = x + alpha * p
            r = r - alpha * hp
            rel = float(r.norm() / b_norm)
            trace.append(rel)
            bar.update(1)
            if rel <= self.tol:
                # The recurrence says converged; products in float32 let it drift from the
                # true residual, so measure that (the product the report needs anyway).
                true_r = b - hessian.matvec(x).to(torch.float64)
                residual = float(true_r.norm() / b_norm)
                if residual <= accept:
                    stop = "tol"
                    break
                # Restart from the true residual while restarts still gain a factor 2.
                if residual > 0.5 * last_restart:
                    stop = "drift"
                    break
                last_restart = residual
                restarts += 1
                r = true_r
                z = precondition(r)
                p = z.clone()
                rz = torch.dot(r, z)
                continue
            residual = None  # x moved on
            z = precondition(r)
            rz_new = torch.dot(r, z)
            p = z + (rz_new / rz) * p
            rz = rz_new
        bar.close()
        report.iterations = [len(trace)]
        report.norm_trace = [trace]
        if residual is None:  # the budget ran out: measure the true residual once
            residual = self._residual(hessian, x, b)
        report.relative_residual = residual
        report.converged = residual <= accept
        report.hessian_vector_products = hessian.hvp_count
        if restarts:
            report.notes.append(
                f"{method.upper()} restarted {restarts} time(s) from the recomputed residual "
                "(its recurrence had drifted from it)."
            )
        if residual >= 1:
            raise SolverDivergenceError(
                f"inverse_hvp={method!r} ended at relative residual {residual:.3g} after "
                f"{len(trace)} iterations, no better than s_test = 0 (relative residual 1): "
                "the solve is meaningless. " + _conditioning_remedy(hessian, "raise damping")
            )
        if not report.converged:
            if stop == "drift":
                cause = (
                    f"its recurrence met cg_tol={self.tol:g} after {len(trace)} iterations, but "
                    f"the residual recomputed from the solution is {residual:.2e}: the "
                    f"Hessian-vector products ({str(v.dtype).replace('torch.', '')}) are too "
                    "inexact for how ill-conditioned H + damping I is (saturated outputs make "
                    "the curvature nearly singular), and more iterations do not help. "
                    + _conditioning_remedy(
                        hessian,
                        f"raise damping, or accept this residual with cg_tol >= {residual:.1e}",
                    )
                )
            elif hessian.damping <= 0:
                cause = (
                    f"it used all cg_max_iter={self.max_iter} iterations and stopped at "
                    f"relative residual {residual:.2e} (tol {self.tol:g}). At damping=0, "
                    f"H + damping I (curvature={getattr(hessian, 'curvature', 'unknown')!r}) "
                    "is singular or nearly so, which more iterations do not cure: use "
                    "damping > 0 (the default is 0.01)."
                )
            else:
                cause = (
                    f"it used all cg_max_iter={self.max_iter} iterations and stopped at "
                    f"relative residual {residual:.2e} (tol {self.tol:g}); raise cg_max_iter, "
                    "or raise damping (a better conditioned system converges in fewer "
                    "iterations)."
                )
            report.notes.append(f"{method.upper()} did not converge: {cause}")
        return x.to(v.dtype), report

    def _fit_preconditioner(
        self, hessian: DampedHessian, rng: np.random.RandomState, report: SolverReport
    ) -> Any:
        """``r -> M^-1 r`` (the identity without a preconditioner)."""
        if self.preconditioner is None:
            return lambda r: r
        fitted = self.preconditioner.fit(hessian, rng)
        report.notes.extend(getattr(fitted, "notes_", []))
        return lambda r: fitted.solve(r, hessian.damping)


def _damping_remedy(hessian: DampedHessian, smallest: float, exact: bool) -> str:
    """What makes ``H + damping I`` positive definite, given its smallest eigenvalue.

    ``smallest`` is an eigenvalue of the *damped* matrix (``exact``) or a
    Rayleigh quotient of it, which bounds the smallest eigenvalue from above:
    damping must then exceed ``damping - smallest`` (exactly, or at least).
    Gauss-Newton and Fisher are positive semi-definite, so a non-positive
    value there is a singular matrix plus round-off, not a non-convex point.
    """
    damping = hessian.damping
    needed = f"{'' if exact else 'at least '}{damping - smallest:.4g}"
    curvature = getattr(hessian, "curvature", None)  # None: an operator of the caller's
    if curvature is None:
        return f"Increase damping above {needed} (damping={damping:g} now)."
    if curvature == "hessian":
        return (
            f"The model is not at a minimum of the loss, where curvature='hessian' is "
            f"indefinite: increase damping above {needed} (damping={damping:g} now), or use "
            "curvature='gauss_newton' (positive semi-definite)."
        )
    if damping <= 0:
        return (
            f"curvature={curvature!r} is positive semi-definite but singular here "
            "(zero up to round-off), and damping=0 leaves it singular: use damping > 0 "
            "(the default is 0.01)."
        )
    return (
        f"curvature={curvature!r} is positive semi-definite, so this is round-off of "
        f"a nearly singular matrix that damping={damping:g} does not cover: increase damping "
        f"above {needed} (the default is 0.01; a damping that small leaves the system "
        "ill-conditioned)."
    )


def _conditioning_remedy(hessian: DampedHessian, remedy: str) -> str:
    """Why a positive (semi-)definite solve fails: ``H + damping I`` is (nearly) singular."""
    if hessian.damping <= 0:
        return (
            "H + damping I is singular or too ill-conditioned at damping=0 (curvature="
            f"{getattr(hessian, 'curvature', 'unknown')!r}): use damping > 0 (the default is "
            "0.01)."
        )
    return f"H + damping I is too ill-conditioned at damping={hessian.damping:g}: {remedy}."


def _floor(dtype: torch.dtype) -> float:
    """Residual attainable with Hessian-vector products in ``dtype``."""
    return 1e-4 if dtype in (torch.float32, torch.float16, torch.bfloat16) else 1e-10


class LissaSolver(InverseHVPSolver):
    """LiSSA (Agarwal et al. 2017), the paper's Algorithm 3, with damping and scale.

    The recursion ``h_j = v + h_{j-1} - (H_j + damping I) h_{j-1} / scale``,
    with ``H_j`` the Hessian of a random minibatch of the labelled set,
    converges to ``scale * (H + damping I)^-1 v`` when ``scale`` exceeds the
    largest eigenvalue of every ``H_j + damping I``; ``s_test = h / scale``,
    averaged over ``repeats`` independent runs.

    Divergence never passes silently: every step checks that ``h_j`` is finite
    and within ``10 * ||v|| * (j + 1)`` (``min(j + 1, scale / damping)`` for
    the positive semi-definite Gauss-Newton and Fisher), a bound every
    convergent run satisfies. When the minibatch is the whole labelled set
    the recursion is deterministic, and the Rayleigh quotient of its
    residual comes free each step: negative in 3 consecutive steps proves
    ``H + damping I`` indefinite, which raises at once (no scale fixes it).
    With minibatches, an estimate from an indefinite curvature
    (``curvature="hessian"``) or from a run whose scale had to be doubled is
    checked with one product over the whole set (``report.relative_residual``):
    non-positive curvature along it, or a relative residual of 1 or more,
    raises. With ``scale="auto"`` the scale is
    ``1.5 x`` a power-iteration estimate of the top eigenvalue (over a probe
    of two minibatches, at least 64 samples, to 1% relative change: a few
    hundred single-sample products, ``report.power_iteration_products``) and
    is doubled (at most three times, noted in the report) if the run
    diverges; a fixed scale raises
    :class:`~skisal.exceptions.SolverDivergenceError` instead.

    Parameters
    ----------
    depth : int, default=1000
        Recursion steps per repeat.
    repeats : int, default=1
        Independent runs averaged (the paper used 4).
    scale : float or "auto", default="auto"
        Must exceed the top eigenvalue of the damped minibatch Hessians.
    tol : float, default=1e-6
        Early stop when ``||h_j - h_{j-1}|| <= tol * ||h_j||``.
    power_iterations : int, default=20
        Budget of the top-eigenvalue estimate (``scale="auto"``).

    Examples
    --------
    With minibatches as large as the labelled set (``batch_size=40`` below),
    every step uses the full Hessian and LiSSA converges to CG's answer; with
    smaller ones it stops at a noise floor that more ``repeats`` lower.

    >>> import numpy as np, torch
    >>> from skorch import NeuralNetClassifier
    >>> from skisal import SkorchClassifierAdapter
    >>> from skisal.engine import (BoundModel, DampedHessian, ParameterSpace,
    ...     ConjugateGradientSolver, LissaSolver, select_parameters)
    >>> _ = torch.manual_seed(0)
    >>> X = np.random.RandomState(0).randn(40, 3).astype(np.float32)
    >>> y = (X[:, 0] > 0).astype(np.int64)
    >>> net = NeuralNetClassifier(torch.nn.Linear, module__in_features=3,
    ...     module__out_features=2, criterion=torch.nn.CrossEntropyLoss, max_epochs=3,
    ...     train_split=None, verbose=0).fit(X, y)
    >>> space = ParameterSpace(select_parameters(net.module_))
    >>> model = BoundModel(SkorchClassifierAdapter(), net, net.module_, space,
    ...     torch.device("cpu"))
    >>> hessian = DampedHessian(model, X, y, damping=0.1, batch_size=40)
    >>> v = model.loss_gradient(X, y, batch_size=40)  # grad l(R), here with R = X
    >>> s_lissa, report = LissaSolver(depth=200).solve(hessian, v, np.random.RandomState(0))
    >>> report.converged, report.scale > report.top_eigenvalue
    (True, True)
    >>> s_cg, _ = ConjugateGradientSolver().solve(hessian, v, np.random.RandomState(0))
    >>> bool((s_lissa - s_cg).norm() <= 1e-3 * s_cg.norm())
    True
    """

    name = "lissa"
    _growth_slack = 10.0
    #: Full batch: a step's curvature counts as negative beyond this many eps * ||h|| ...
    _noise_factor = 16.0
    #: ... in this many consecutive steps (round-off flips single signs near convergence).
    _negative_steps = 3
    _auto_safety = 1.5
    _auto_retries = 3
    #: The power iteration's probe: this many minibatches, at least ``_auto_probe_min`` samples.
    _auto_probe_batches = 2
    _auto_probe_min = 64
    #: Relative change of the estimate at which the power iteration stops.
    _auto_tol = 1e-2

    def __init__(
        self,
        depth: int = 1000,
        repeats: int = 1,
        scale: float | str = "auto",
        tol: float = 1e-6,
        power_iterations: int = 20,
    ) -> None:
        self.depth = depth
        self.repeats = repeats
        self.scale = scale
        self.tol = tol
        self.power_iterations = power_iterations

    def solve(self, hessian, v, rng, progress=False):
        """Run the recursion ``repeats`` times and average (see :meth:`InverseHVPSolver.solve`).

        Parameters
        ----------
        hessian : DampedHessian
            Products with the damped Hessian (minibatches of ``hessian.batch_size`` samples).
        v : torch.Tensor
            The flat reference gradient ``grad l(R)``.
        rng : numpy.random.RandomState
            Draws the minibatches and the power iteration's start vector.
        progress : bool, default=False
            Show a tqdm bar over the recursion steps.

        Returns
        -------
        s_test : torch.Tensor
            Same shape, dtype and device as ``v``.
        report : SolverReport
            With the steps per repeat, the norm trace, the scale and any retries.

        Raises
        ------
        skisal.SolverDivergenceError
            If a run diverges at a fixed ``scale``, or still diverges after
            the automatic scale was doubled three times; or ``H + damping I``
            is shown not positive definite; or the checked estimate's relative
            residual is 1 or more.

        Examples
        --------
        >>> import numpy as np, torch
        >>> from skorch import NeuralNetClassifier
        >>> from skisal import SkorchClassifierAdapter
        >>> from skisal.engine import (BoundModel, DampedHessian, ParameterSpace,
        ...     LissaSolver, select_parameters)
        >>> _ = torch.manual_seed(0)
        >>> X = np.random.RandomState(0).randn(40, 3).astype(np.float32)
        >>> y = (X[:, 0] > 0).astype(np.int64)
        >>> net = NeuralNetClassifier(torch.nn.Linear, module__in_features=3,
        ...     module__out_features=2, criterion=torch.nn.CrossEntropyLoss, max_epochs=3,
        ...     train_split=None, verbose=0).fit(X, y)
        >>> space = ParameterSpace(select_parameters(net.module_))
        >>> model = BoundModel(SkorchClassifierAdapter(), net, net.module_, space,
        ...     torch.device("cpu"))
        >>> hessian = DampedHessian(model, X, y, damping=0.1, batch_size=40)
        >>> v = model.loss_gradient(X, y, batch_size=40)  # grad l(R), here with R = X
        >>> s_test, report = LissaSolver(depth=100, repeats=2).solve(
        ...     hessian, v, np.random.RandomState(0))
        >>> len(report.iterations), report.scale > report.top_eigenvalue
        (2, True)
        >>> too_small = LissaSolver(depth=100, scale=0.01)  # below the top eigenvalue
        >>> too_small.solve(hessian, v, np.random.RandomState(0))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        skisal.exceptions.SolverDivergenceError: inverse_hvp='lissa' diverged at step ...
        """
        report = SolverReport(method=self.name, damping=hessian.damping)
        if self.scale == "auto":
            # A small probe and a loose tolerance: the probe's own sampling noise (about
            # 10% at 64 samples) dwarfs a tighter estimate, and the safety factor and the
            # doubling on divergence absorb both (576 products instead of 3,584 for a
            # 256-sample probe to 0.1% on the benchmark's problem, with the same errors).
            size = max(self._auto_probe_batches * hessian.batch_size, self._auto_probe_min)
            probe = hessian.sample(rng, size=size)
            before = hessian.hvp_count
            report.top_eigenvalue = top_eigenvalue(
                hessian, probe, rng, self.power_iterations, tol=self._auto_tol
            )
            report.power_iteration_products = hessian.hvp_count - before
            scale = self._auto_safety * max(report.top_eigenvalue, hessian.damping, 1e-12)
        else:
            scale = float(self.scale)
        for attempt in range(self._auto_retries + 1):
            try:
                estimate = self._run(hessian, v, rng, scale, report, progress)
                break
            except _Outgrown as exc:
                if self.scale != "auto" or attempt == self._auto_retries:
                    raise SolverDivergenceError(
                        self._divergence_message(exc, hessian, scale, attempt)
                    ) from None
                report.notes.append(f"diverged at scale {scale:.4g}; retried at {2 * scale:.4g}")
                report.iterations.clear()
                report.norm_trace.clear()
                scale *= 2
        report.scale = scale
        psd = getattr(hessian, "curvature", None) in ("gauss_newton", "fisher")
        if hessian.batch_size < hessian.n and (attempt or not psd):
            # Minibatches hide an indefinite H + damping I (and a run the doubled scale
            # merely slowed down): one product over the whole set checks the estimate.
            self._check_estimate(hessian, v, estimate, report, attempt)
        report.hessian_vector_products = hessian.hvp_count
        return estimate, report

    @staticmethod
    def _check_estimate(hessian, v, estimate, report, doubled):
        """Raise unless ``estimate`` has positive curvature and beats ``s_test = 0``."""
        product = hessian.matvec(estimate)
        curvature, residual, size = torch.stack(
            [
                torch.dot(estimate, product) / torch.dot(estimate, estimate).clamp_min(1e-300),
                (product - v).norm() / v.norm().clamp_min(1e-300),
                estimate.norm(),
            ]
        ).tolist()
        report.relative_residual = residual
        if size == 0:  # v = 0: s_test = 0 is exact
            return
        doubling = (
            f" (lissa_scale='auto' doubled its scale {doubled} times, which no scale fixes)"
            if doubled
            else ""
        )
        if curvature <= 0:
            raise SolverDivergenceError(
                "inverse_hvp='lissa': H + damping I is not positive definite: the estimate s "
                f"has s^T (H + damping I) s / s^T s = {curvature:.3g} over the whole labelled "
                f"set{doubling}, so it is meaningless. "
                + _damping_remedy(hessian, curvature, exact=False)
            )
        if residual >= 1:
            raise SolverDivergenceError(
                f"inverse_hvp='lissa' ended at relative residual {residual:.3g} over the whole "
                f"labelled set{doubling}, no better than s_test = 0 (relative residual 1): the "
                "estimate is meaningless. Either H + damping I is (nearly) indefinite or "
                f"ill-conditioned at damping={hessian.damping:g} (raise damping; "
                "inverse_hvp='cg' raises on an indefinite system), or the minibatch noise "
                f"swamps it (raise hessian_batch_size={hessian.batch_size} towards "
                f"{hessian.n}, or lissa_repeats)."
            )

    def _run(self, hessian, v, rng, scale, report, progress):
        v_norm = float(v.norm())
        curvature = getattr(hessian, "curvature", None)
        # ||h_j|| <= ||v|| * scale / damping holds only where every H_j is positive
        # semi-definite (Gauss-Newton, Fisher); an indefinite H has smaller eigenvalues.
        psd = curvature in ("gauss_newton", "fisher")
        ceiling = scale / hessian.damping if psd and hessian.damping > 0 else math.inf
        # With the whole labelled set in every step the recursion is deterministic: the
        # step h_{j+1} - h_j = v - H_d h_j / scale is the residual of h_j / scale, and two
        # consecutive steps differ by H_d times the first over scale, so its Rayleigh
        # quotient comes free (one dot product): a negative one proves H_d indefinite.
        full = hessian.batch_size >= hessian.n
        noise = self._noise_factor * float(torch.finfo(v.dtype).eps)
        total = torch.zeros_like(v)
        record_every = max(1, self.depth // 200)
        bar = tqdm(
            total=self.repeats * self.depth,
            desc="s_test (LiSSA)",
            disable=not progress,
            leave=False,
        )
        converged = True
        last_change = 0.0
        try:
            for _ in range(self.repeats):
                h = v.clone()
                trace = [v_norm / scale]
                steps = 0
                done = False
                previous, previous_norm, negative, quotient = None, 0.0, 0, None
                for steps in range(1, self.depth + 1):
                    h_new = v + h - hessian.matvec(h, hessian.sample(rng)) / scale
                    step = h_new - h
                    stats = [h_new.norm(), step.norm()]
                    if full and previous is not None:
                        stats.append(torch.dot(previous, previous - step))
                    values = torch.stack(stats).tolist()  # one sync per step, not per sample
                    norm, change = values[0], values[1]
                    h = h_new
                    bar.update(1)
                    if steps % record_every == 0:
                        trace.append(norm / scale)
                    if len(values) == 3 and previous_norm > 0:
                        quotient = scale * values[2] / previous_norm**2
                        # A step carries round-off of about eps * ||h||: count only beyond it.
                        if values[2] < -noise * norm * previous_norm:
                            negative += 1
                        else:
                            negative = 0
                    bound = self._growth_slack * v_norm * min(steps + 1, ceiling)
                    if not math.isfinite(norm) or norm > bound:
                        if negative:
                            raise self._indefinite(hessian, steps, quotient)
                        raise _Outgrown(steps, norm, bound, full, quotient)
                    if negative >= self._negative_steps:
                        raise self._indefinite(hessian, steps, quotient)
                    previous, previous_norm = step, change
                    if change <= self.tol * norm:
                        done = True
                        break
                converged &= done
                last_change = change / max(norm, 1e-300)
                trace.append(float(h.norm()) / scale)
                report.iterations.append(steps)
                report.norm_trace.append(trace)
                total += h / scale
        finally:
            bar.close()
        report.converged = converged
        if not converged and full and last_change <= noise:
            report.notes.append(
                f"LiSSA used its full depth ({self.depth}) without meeting tol={self.tol:g}: "
                f"its steps stalled at {last_change:.1e} of ||h||, the round-off of "
                f"{str(v.dtype).replace('torch.', '')} products, below which no step resolves; "
                f"set lissa_tol above {last_change:.1e}."
            )
        elif not converged and full:
            report.notes.append(
                f"LiSSA used its full depth ({self.depth}) without meeting tol={self.tol:g} "
                f"(its last step moved h by {last_change:.2e} of its norm). Every step used "
                f"the whole labelled set (hessian_batch_size >= {hessian.n} samples), so this "
                "is no minibatch noise: the recursion contracts at rate 1 - (smallest "
                "eigenvalue of H + damping I) / scale, and H + damping I is ill-conditioned "
                f"(or not positive definite) at damping={hessian.damping:g}. Raise damping or "
                "lissa_depth, or use inverse_hvp='cg' or 'pcg' (they raise on an indefinite "
                "system)."
            )
        elif not converged:
            report.notes.append(
                f"LiSSA used its full depth ({self.depth}) without meeting tol={self.tol:g} "
                "(minibatch Hessians keep the iterate moving): raise lissa_repeats to average "
                "the noise, raise lissa_depth, or use inverse_hvp='cg' or 'pcg' for a solve "
                "that converges."
            )
        return total / self.repeats

    @staticmethod
    def _indefinite(hessian, steps, quotient):
        """The error for a proof (full batch) that ``H + damping I`` is not positive definite."""
        return SolverDivergenceError(
            f"inverse_hvp='lissa': H + damping I is not positive definite, so the recursion "
            f"cannot converge: by step {steps} its residual grew along a direction of "
            f"negative curvature (Rayleigh quotient {quotient:.3g}). Every step used the "
            f"whole labelled set ({hessian.n} samples), so this is no minibatch noise and no "
            "scale fixes it. " + _damping_remedy(hessian, quotient, exact=False)
        )

    def _divergence_message(self, exc, hessian, scale, doubled):
        """Why a run outgrew its bound, and what to change, for the case at hand."""
        parts = [
            f"inverse_hvp='lissa' diverged at step {exc.step} (||h|| = {exc.norm:.3g}, bound "
            f"{exc.bound:.3g}) with scale={scale:.4g}, damping={hessian.damping:g}."
        ]
        along_top = exc.full and exc.quotient is not None and exc.quotient > scale
        if exc.full:
            parts.append(
                "Every step used the whole labelled set (no minibatch noise), so the "
                "recursion itself does not contract: scale must exceed the top eigenvalue of "
                "the damped Hessian"
                + (
                    f" (its residual grew along curvature {exc.quotient:.3g}, above scale)."
                    if along_top
                    else "."
                )
            )
        else:
            parts.append(
                "scale must exceed the top eigenvalue of the damped Hessian of every "
                f"minibatch (hessian_batch_size={hessian.batch_size} of {hessian.n} samples; "
                "larger minibatches vary less)."
            )
        if getattr(hessian, "curvature", None) not in ("gauss_newton", "fisher") and not along_top:
            parts.append(
                "With curvature='hessian', H + damping I (or a minibatch's) may also have "
                "negative eigenvalues, which no scale fixes: inverse_hvp='cg' or 'exact' "
                "raise if so; then raise damping or use curvature='gauss_newton'."
            )
        if self.scale == "auto":
            parts.append(
                f"lissa_scale='auto' already doubled its estimate {doubled} times: pass a "
                "larger lissa_scale, raise damping, or use inverse_hvp='cg'."
            )
        else:
            parts.append(
                "Use lissa_scale='auto' or a larger lissa_scale, raise damping, or use "
                "inverse_hvp='cg'."
            )
        return " ".join(parts)


class _Outgrown(Exception):  # internal signal: never escapes LissaSolver.solve
    """A LiSSA run left the bound of a convergent run: retry at a larger automatic scale."""

    def __init__(self, step, norm, bound, full, quotient):
        super().__init__(step)
        self.step, self.norm, self.bound = step, norm, bound
        self.full, self.quotient = full, quotient
