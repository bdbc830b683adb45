"""Solvers without iteration: the identity ablation and the dense exact solve."""

from __future__ import annotations

import torch

from ..exceptions import SolverDivergenceError
from ._remedies import damping_remedy
from .inverse_hvp import InverseHVPSolver, SolverReport

__all__ = ["ExactSolver", "IdentitySolver"]


class IdentitySolver(InverseHVPSolver):
    """``s_test = v``: the paper's "gradient similarity" ablation (``H^-1`` replaced by ``I``).

    Needs no curvature, so no labelled data; ignores ``damping``. Selected by
    ``InfluenceQueryStrategy(inverse_hvp="identity")`` or
    :func:`skisal.gradient_similarity`.

    Examples
    --------
    >>> from skisal.engine import IdentitySolver
    >>> v = torch.tensor([1.0, -2.0])
    >>> s_test, report = IdentitySolver().solve(None, v, np.random.RandomState(0))
    >>> s_test, s_test is v, report.method  # a copy of v
    (tensor([ 1., -2.]), False, 'identity')
    """

    name = "identity"
    needs_hessian = False

    def solve(self, hessian, v, rng, progress=False):
        """Return a copy of ``v`` and a report (see :meth:`InverseHVPSolver.solve`).

        Parameters
        ----------
        hessian : DampedCurvature or None
            Accepted for the common solver interface; ignored (``needs_hessian``
            is False, so the engine passes None).
        v : torch.Tensor
            The flat reference gradient ``grad l(R)``.
        rng : numpy.random.RandomState or None
            Accepted for the common solver interface; the identity draws nothing.
        progress : bool, default=False
            Accepted for the common solver interface; there is nothing to show.

        Returns
        -------
        s_test : torch.Tensor
            A copy of ``v``.
        report : SolverReport
            Method "identity", zero damping.
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
        Refuse larger problems (the dense matrix needs ``8 * dim**2`` bytes).

    Examples
    --------
    >>> from skisal import SkorchClassifierAdapter
    >>> from skisal.engine import (BoundModel, DampedCurvature, ExactSolver, ParameterSpace,
    ...     select_parameters)
    >>> space = ParameterSpace(select_parameters(net.module_))
    >>> model = BoundModel(SkorchClassifierAdapter(), net, net.module_, space, torch.device("cpu"))
    >>> hessian = DampedCurvature(model, X_labeled, y_labeled, damping=0.1, batch_size=20)
    >>> v = model.loss_gradient(X_reference, y_reference, batch_size=10)  # grad l(R)
    >>> s_test, report = ExactSolver().solve(hessian, v, np.random.RandomState(0))
    >>> report.min_eigenvalue > 0, report.relative_residual < 1e-6
    (True, True)
    >>> bool(torch.allclose(hessian.matvec(s_test), v, atol=1e-5))  # solves the system
    True
    >>> ExactSolver(max_parameters=4).solve(hessian, v, None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: inverse_hvp='exact' needs a dense 10x10 Hessian; it is limited to 4 ...
    """

    name = "exact"

    def __init__(self, max_parameters: int = 5000) -> None:
        self.max_parameters = max_parameters

    def solve(self, hessian, v, rng, progress=False):
        """Solve densely (see :meth:`InverseHVPSolver.solve`).

        Parameters
        ----------
        hessian : DampedCurvature
            Products with the damped curvature (the dense matrix is built from them).
        v : torch.Tensor
            The flat reference gradient ``grad l(R)``.
        rng : numpy.random.RandomState or None
            Accepted for the common solver interface; the dense solve is
            deterministic.
        progress : bool, default=False
            Accepted for the common solver interface; the dense solve has no
            iterations to show.

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
            If the damped curvature is not positive definite, or its smallest
            eigenvalue is within the parameters' round-off of the largest.
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
                + damping_remedy(hessian, smallest - floor, exact=True)
            )
        x = torch.linalg.solve(matrix, v.to(torch.float64))
        report.relative_residual = float(
            (matrix @ x - v.to(torch.float64)).norm() / v.to(torch.float64).norm().clamp_min(1e-300)
        )
        report.hessian_vector_products = hessian.hvp_count
        return x.to(v.dtype), report
