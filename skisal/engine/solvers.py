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
        (CG, exact; LiSSA when ``check_residual`` is on).
    scale : float or None
        LiSSA scale used.
    top_eigenvalue : float or None
        Power-iteration estimate of the damped Hessian's top eigenvalue
        (LiSSA with ``scale="auto"``), or the exact one (``"exact"``).
    min_eigenvalue : float or None
        Smallest eigenvalue of the damped Hessian (``"exact"`` only); a
        negative value means a non-convex point that damping did not fix.
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
            If the damped Hessian is not positive definite.

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
        if float(eigenvalues[0]) <= 0:
            raise SolverDivergenceError(
                "inverse_hvp='exact': the damped Hessian is not positive definite (smallest "
                f"eigenvalue {float(eigenvalues[0]):.3g}); use curvature='gauss_newton' or "
                f"increase damping above {-float(eigenvalues[0]):.3g}."
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

    When the budget runs out before ``tol`` is met, the result is returned
    with ``report.converged`` False and a note. Negative curvature (an
    indefinite damped Hessian) raises instead.

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
            If a Hessian-vector product is not finite, or the damped Hessian
            has non-positive curvature along a search direction.

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
        b_norm = b.norm().clamp_min(1e-300)
        x = torch.zeros_like(b)
        r = b.clone()
        z = precondition(r)
        p = z.clone()
        rz = torch.dot(r, z)
        trace = []
        bar = tqdm(
            total=self.max_iter, desc=f"s_test ({method})", disable=not progress, leave=False
        )
        for _ in range(self.max_iter):
            hp = hessian.matvec(p.to(v.dtype)).to(torch.float64)
            curvature = torch.dot(p, hp)
            if not torch.isfinite(curvature):
                raise SolverDivergenceError(
                    f"inverse_hvp={method!r}: a Hessian-vector product is not finite; the "
                    "network's loss is not twice differentiable at this point or overflows."
                )
            if curvature <= 0:
                raise SolverDivergenceError(
                    f"inverse_hvp={method!r} met negative curvature (p^T (H + damping I) p = "
                    f"{float(curvature):.3g}): the damped Hessian is not positive definite. "
                    "Use curvature='gauss_newton' (positive semi-definite) or increase damping: "
                    "the model is not at a convex minimum."
                )
            alpha = rz / curvature
            x = x + alpha * p
            r = r - alpha * hp
            rel = float(r.norm() / b_norm)
            trace.append(rel)
            bar.update(1)
            if rel <= self.tol:
                break
            z = precondition(r)
            rz_new = torch.dot(r, z)
            p = z + (rz_new / rz) * p
            rz = rz_new
        bar.close()
        report.iterations = [len(trace)]
        report.norm_trace = [trace]
        report.relative_residual = self._residual(hessian, x, b)
        report.converged = report.relative_residual <= max(self.tol, 10 * _floor(v.dtype))
        if not report.converged:
            report.notes.append(
                f"{method.upper()} stopped after {len(trace)} iterations at relative residual "
                f"{report.relative_residual:.2e} (tol {self.tol:g}); raise cg_max_iter or damping."
            )
        report.hessian_vector_products = hessian.hvp_count
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
    and within ``10 * ||v|| * min(j + 1, scale / damping)``, a bound every
    convergent run satisfies. With ``scale="auto"`` the scale is
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
            the automatic scale was doubled three times.

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
            except SolverDivergenceError:
                if self.scale != "auto" or attempt == self._auto_retries:
                    raise
                report.notes.append(f"diverged at scale {scale:.4g}; retried at {2 * scale:.4g}")
                report.iterations.clear()
                report.norm_trace.clear()
                scale *= 2
        report.scale = scale
        report.hessian_vector_products = hessian.hvp_count
        return estimate, report

    def _run(self, hessian, v, rng, scale, report, progress):
        v_norm = float(v.norm())
        ceiling = scale / hessian.damping if hessian.damping > 0 else math.inf
        total = torch.zeros_like(v)
        record_every = max(1, self.depth // 200)
        bar = tqdm(
            total=self.repeats * self.depth,
            desc="s_test (LiSSA)",
            disable=not progress,
            leave=False,
        )
        converged = True
        for _ in range(self.repeats):
            h = v.clone()
            trace = [v_norm / scale]
            steps = 0
            done = False
            for steps in range(1, self.depth + 1):
                h_new = v + h - hessian.matvec(h, hessian.sample(rng)) / scale
                norm = float(h_new.norm())  # one sync per step, not per sample
                change = float((h_new - h).norm())
                h = h_new
                bar.update(1)
                if steps % record_every == 0:
                    trace.append(norm / scale)
                bound = self._growth_slack * v_norm * min(steps + 1, ceiling)
                if not math.isfinite(norm) or norm > bound:
                    bar.close()
                    raise SolverDivergenceError(
                        f"inverse_hvp='lissa' diverged at step {steps} (||h|| = {norm:.3g}, "
                        f"bound {bound:.3g}) with scale={scale:.4g}, damping={hessian.damping:g}. "
                        "scale must exceed the top eigenvalue of the damped Hessian: use "
                        "lissa_scale='auto' or a larger scale, increase damping, use "
                        "curvature='gauss_newton', or inverse_hvp='cg'."
                    )
                if change <= self.tol * norm:
                    done = True
                    break
            converged &= done
            trace.append(float(h.norm()) / scale)
            report.iterations.append(steps)
            report.norm_trace.append(trace)
            total += h / scale
        bar.close()
        report.converged = converged
        if not converged:
            report.notes.append(
                f"LiSSA used its full depth ({self.depth}) without meeting tol={self.tol:g} "
                "(minibatch Hessians keep the iterate moving): raise lissa_repeats to average "
                "the noise, raise lissa_depth, or use inverse_hvp='cg' or 'pcg' for a solve "
                "that converges."
            )
        return total / self.repeats
