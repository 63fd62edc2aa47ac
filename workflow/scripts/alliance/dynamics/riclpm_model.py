"""The RI-CLPM as a structural model: free parameters, implied moments and their Jacobian.

Observed variables, in this order: ``x1..xK, y1..yK`` (p = 2K). Latent variables: the random
intercepts ``RIx``, ``RIy`` (loadings fixed at 1 on every wave of their variable) and one within
component per observed variable, ``wx1..wxK, wy1..wyK`` (loading 1, observed residual variance
fixed at 0). With ``B`` the (2K x 2K) matrix of lagged paths among the within components, ``Psi``
their (residual) covariance (wave 1: free 2x2 block; waves t >= 2: the innovations, a free 2x2
block per wave, no covariances across waves), ``Phi`` the 2x2 covariance of the random
intercepts (uncorrelated with the within components) and ``L`` the (2K x 2) loadings of the
intercepts::

    mu    = free intercept per observed variable
    A     = (I - B)^-1
    Sigma = L Phi L' + A Psi A'

which is ``Lambda (I - B_full)^-1 Psi_full (I - B_full)^-T Lambda'`` of the LISREL form with
the latent intercepts and within components stacked. Derivatives, for the Jacobian:
``dSigma/dPhi_ab = L_a L_b' (+ transpose)``, ``dSigma/dPsi_ij = A_i A_j' (+ transpose)`` and
``dSigma/dB_ij = A_i C_j' + C_j A_i'`` with ``C = A Psi A'`` (columns ``A_i``, ``C_j``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PATHS = (  # name, label, outcome variable, predictor variable (0 = x, 1 = y)
    ("alpha", "a", 0, 0),
    ("beta", "b", 0, 1),
    ("gamma", "c", 1, 0),
    ("delta", "d", 1, 1),
)


@dataclass(frozen=True)
class Param:
    """One free parameter: its name, lavaan-style lhs/op/rhs, kind and where it sits."""

    name: str
    lhs: str
    op: str
    rhs: str
    label: str
    kind: str  # "path", "phi", "psi", "mean"
    cells: tuple[tuple[int, int], ...]  # matrix cells (path/phi/psi) or ((j, j),) for a mean

    @property
    def is_variance(self) -> bool:
        return self.kind in ("phi", "psi") and self.cells[0][0] == self.cells[0][1]


class RICLPMSpec:
    """Free parameters and moment structure of a K-wave RI-CLPM (paths free per wave or equal)."""

    def __init__(self, waves: int, constrain_paths: bool, x_names: list[str], y_names: list[str]):
        if waves < 3:
            raise ValueError(
                f"the RI-CLPM needs at least 3 waves to be identified (got {waves}); with 2 waves the "
                "random intercepts cannot be separated from the within-person covariances"
            )
        self.waves = waves
        self.constrain_paths = constrain_paths
        self.observed = list(x_names) + list(y_names)
        self.params = self._build()
        self.q = len(self.params)
        self.p = 2 * waves
        self.loadings = np.zeros((self.p, 2))
        self.loadings[:waves, 0] = 1.0
        self.loadings[waves:, 1] = 1.0
        # cell index arrays per kind, for the vectorised Jacobian and gradient
        self._cells = {}
        for kind in ("path", "phi", "psi", "mean"):
            ks, iis, js = [], [], []
            for k, par in enumerate(self.params):
                if par.kind == kind:
                    for i, j in par.cells:
                        ks.append(k), iis.append(i), js.append(j)
            self._cells[kind] = (np.array(ks, dtype=int), np.array(iis, dtype=int), np.array(js, dtype=int))

    def within(self, var: int, t: int) -> int:
        """Index of the within component of variable ``var`` (0 = x, 1 = y) at wave ``t`` (1-based)."""
        return var * self.waves + t - 1

    def _build(self) -> list[Param]:
        k = self.waves
        wname = ("wx", "wy")
        out: list[Param] = []
        for name, label, to, frm in PATHS:
            cells = tuple((self.within(to, t), self.within(frm, t - 1)) for t in range(2, k + 1))
            if self.constrain_paths:
                out.append(Param(name, f"{wname[to]}[t]", "~", f"{wname[frm]}[t-1]", label, "path", cells))
            else:
                for t, cell in zip(range(2, k + 1), cells):
                    out.append(Param(f"{name}{t}", f"{wname[to]}{t}", "~", f"{wname[frm]}{t - 1}", "", "path", (cell,)))
        out += [
            Param("var_RIx", "RIx", "~~", "RIx", "", "phi", ((0, 0),)),
            Param("var_RIy", "RIy", "~~", "RIy", "", "phi", ((1, 1),)),
            Param("cov_RIx_RIy", "RIx", "~~", "RIy", "", "phi", ((0, 1),)),
            Param("var_wx1", "wx1", "~~", "wx1", "", "psi", ((self.within(0, 1),) * 2,)),
            Param("var_wy1", "wy1", "~~", "wy1", "", "psi", ((self.within(1, 1),) * 2,)),
            Param("cov_wx1_wy1", "wx1", "~~", "wy1", "", "psi", ((self.within(0, 1), self.within(1, 1)),)),
        ]
        for t in range(2, k + 1):
            ix, iy = self.within(0, t), self.within(1, t)
            out += [
                Param(f"var_u{t}", f"wx{t}", "~~", f"wx{t}", "", "psi", ((ix, ix),)),
                Param(f"var_v{t}", f"wy{t}", "~~", f"wy{t}", "", "psi", ((iy, iy),)),
                Param(f"cov_u{t}_v{t}", f"wx{t}", "~~", f"wy{t}", "", "psi", ((ix, iy),)),
            ]
        for j, name in enumerate(self.observed):
            var = "x" if j < k else "y"
            out.append(Param(f"mean_{var}{j % k + 1}", name, "~1", "", "", "mean", ((j, j),)))
        return out

    # ------------------------------------------------------------------ moments
    def matrices(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(mu, Phi, Psi, B) at ``theta``."""
        mu = np.zeros(self.p)
        phi = np.zeros((2, 2))
        psi = np.zeros((self.p, self.p))
        b = np.zeros((self.p, self.p))
        for value, par in zip(theta, self.params):
            for i, j in par.cells:
                if par.kind == "mean":
                    mu[i] = value
                elif par.kind == "path":
                    b[i, j] = value
                else:
                    target = phi if par.kind == "phi" else psi
                    target[i, j] = target[j, i] = value
        return mu, phi, psi, b

    def implied(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Implied mean and covariance plus the pieces the Jacobian and standardisation need."""
        mu, phi, psi, b = self.matrices(theta)
        a = np.linalg.solve(np.eye(self.p) - b, np.eye(self.p))
        c = a @ psi @ a.T
        c = (c + c.T) / 2.0
        sigma = self.loadings @ phi @ self.loadings.T + c
        return {"mu": mu, "sigma": sigma, "phi": phi, "psi": psi, "B": b, "A": a, "C": c}

    def jacobian(self, parts: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(d_mu (q, p), d_sigma (q, p, p)): derivatives of mu and Sigma with respect to theta."""
        a, c, lam = parts["A"], parts["C"], self.loadings
        d_mu = np.zeros((self.q, self.p))
        k, i, _ = self._cells["mean"]
        d_mu[k, i] = 1.0
        d_sigma = np.zeros((self.q, self.p, self.p))
        k, i, j = self._cells["path"]
        m = a[:, i].T[:, :, None] * c[j, :][:, None, :]  # outer(A_i, C_j) per cell
        np.add.at(d_sigma, k, m + m.transpose(0, 2, 1))
        for kind, cols in (("phi", lam), ("psi", a)):
            k, i, j = self._cells[kind]
            m = cols[:, i].T[:, :, None] * cols[:, j].T[:, None, :]
            m = np.where((i == j)[:, None, None], m, m + m.transpose(0, 2, 1))
            np.add.at(d_sigma, k, m)
        return d_mu, d_sigma

    def gradient(self, parts: dict[str, np.ndarray], g_mu: np.ndarray, g_sigma: np.ndarray) -> np.ndarray:
        """dlogL/dtheta from the moment derivatives (g_mu, G = dlogL/dSigma, symmetric) without the Jacobian:
        ``(L'GL)_ab``, ``(A'GA)_ij`` (twice for a covariance) and ``2 (A'GC)_ij`` for a path."""
        a, c, lam = parts["A"], parts["C"], self.loadings
        grad = np.zeros(self.q)
        k, i, _ = self._cells["mean"]
        grad[k] = g_mu[i]
        ga = g_sigma @ a
        k, i, j = self._cells["path"]
        np.add.at(grad, k, 2.0 * (ga.T @ c)[i, j])
        for kind, m in (("phi", lam.T @ g_sigma @ lam), ("psi", a.T @ ga)):
            k, i, j = self._cells[kind]
            np.add.at(grad, k, np.where(i == j, 1.0, 2.0) * m[i, j])
        return grad

    # ------------------------------------------------------------------ starting values
    def start_from_moments(self, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
        """Starting values from (saturated) moments: intercept (co)variances from the covariances at
        lags >= 2, the within covariances as the rest, and per-wave least-squares lagged paths."""
        k = self.waves
        var_scale = np.diag(cov)
        lag2 = [(s, t) for s in range(k) for t in range(k) if abs(s - t) >= 2]
        phi = np.array(
            [
                [np.mean([cov[s, t] for s, t in lag2]), np.mean([cov[s, k + t] for s, t in lag2])],
                [0.0, np.mean([cov[k + s, k + t] for s, t in lag2])],
            ]
        )
        phi[1, 0] = phi[0, 1]
        floor = 0.05 * np.array([var_scale[:k].mean(), var_scale[k:].mean()])
        phi[0, 0], phi[1, 1] = max(phi[0, 0], floor[0]), max(phi[1, 1], floor[1])
        bound = 0.9 * np.sqrt(phi[0, 0] * phi[1, 1])
        phi[0, 1] = phi[1, 0] = float(np.clip(phi[0, 1], -bound, bound))
        within = cov - self.loadings @ phi @ self.loadings.T

        def block(s: int, t: int) -> np.ndarray:
            rows = [self.within(0, s), self.within(1, s)]
            cols = [self.within(0, t), self.within(1, t)]
            return within[np.ix_(rows, cols)]

        paths = []
        for t in range(2, k + 1):
            prev = _make_pd(block(t - 1, t - 1), var_scale[[self.within(0, t - 1), self.within(1, t - 1)]])
            paths.append(np.clip(np.linalg.solve(prev, block(t - 1, t)).T, -0.9, 0.9))
        if self.constrain_paths:
            paths = [np.mean(paths, axis=0)] * (k - 1)
        values: dict[str, float] = {"var_RIx": phi[0, 0], "var_RIy": phi[1, 1], "cov_RIx_RIy": phi[0, 1]}
        w1 = _make_pd(block(1, 1), var_scale[[self.within(0, 1), self.within(1, 1)]])
        values.update({"var_wx1": w1[0, 0], "var_wy1": w1[1, 1], "cov_wx1_wy1": w1[0, 1]})
        for t, bt in zip(range(2, k + 1), paths):
            prev = _make_pd(block(t - 1, t - 1), var_scale[[self.within(0, t - 1), self.within(1, t - 1)]])
            scale = var_scale[[self.within(0, t), self.within(1, t)]]
            resid = _make_pd(block(t, t) - bt @ prev @ bt.T, scale)
            values.update({f"var_u{t}": resid[0, 0], f"var_v{t}": resid[1, 1], f"cov_u{t}_v{t}": resid[0, 1]})
            for name, _, to, frm in PATHS:
                values[f"{name}{t}"] = bt[to, frm]
                values[name] = bt[to, frm]
        for j, par in enumerate(p for p in self.params if p.kind == "mean"):
            values[par.name] = mean[par.cells[0][0]]
        return np.array([values[par.name] for par in self.params])

    def start_default(self, mean: np.ndarray, cov: np.ndarray, paths: float = 0.2) -> np.ndarray:
        """Alternative start: half of each variance stable, half within; carry-overs ``paths``, cross-lags 0."""
        k = self.waves
        var = np.diag(cov)
        values: dict[str, float] = {
            "var_RIx": 0.5 * var[:k].mean(),
            "var_RIy": 0.5 * var[k:].mean(),
            "cov_RIx_RIy": 0.0,
            "var_wx1": 0.5 * var[0],
            "var_wy1": 0.5 * var[k],
            "cov_wx1_wy1": 0.0,
        }
        for t in range(2, k + 1):
            values.update(
                {
                    f"var_u{t}": 0.5 * var[t - 1] * (1 - paths**2),
                    f"var_v{t}": 0.5 * var[k + t - 1] * (1 - paths**2),
                    f"cov_u{t}_v{t}": 0.0,
                }
            )
            values.update({f"alpha{t}": paths, f"beta{t}": 0.0, f"gamma{t}": 0.0, f"delta{t}": paths})
        values.update({"alpha": paths, "beta": 0.0, "gamma": 0.0, "delta": paths})
        for par in self.params:
            if par.kind == "mean":
                values[par.name] = mean[par.cells[0][0]]
        return np.array([values[par.name] for par in self.params])

    # ------------------------------------------------------------------ standardised solution
    def standardized(self, theta: np.ndarray, parts: dict[str, np.ndarray]) -> list[np.ndarray]:
        """lavaan's std.all per parameter, one value per cell (per wave for an equality-constrained path).

        Paths: est * sd(predictor) / sd(outcome), with the model-implied SDs of the within
        components; variances of exogenous components 1, innovation variances the unexplained
        proportion; covariances scaled by the absolute (residual) variances (lavaan's cov.std =
        TRUE); a variance over a non-positive total variance is NaN (lavaan's NA);
        intercepts divided by the implied SD of the observed variable.
        """
        c, phi, psi, sigma = parts["C"], parts["phi"], parts["psi"], parts["sigma"]
        with np.errstate(invalid="ignore", divide="ignore"):  # NaN where a variance is <= 0, as lavaan
            return self._standardized(theta, c, phi, psi, sigma)

    def _standardized(self, theta, c, phi, psi, sigma) -> list[np.ndarray]:
        out = []
        for value, par in zip(theta, self.params):
            vals = []
            for i, j in par.cells:
                if par.kind == "path":
                    vals.append(value * np.sqrt(c[j, j] / c[i, i]))
                elif par.kind == "mean":
                    vals.append(value / np.sqrt(sigma[i, i]))
                else:
                    m = phi if par.kind == "phi" else psi
                    total = phi if par.kind == "phi" else c
                    if i == j:  # est / (sd * sd): NaN for a non-positive total variance, as lavaan
                        vals.append(value / np.sqrt(total[i, i]) ** 2)
                    else:  # lavaan takes abs() of the (residual) variances here (Heywood cases)
                        vals.append(value / np.sqrt(abs(m[i, i]) * abs(m[j, j])))
            out.append(np.array(vals))
        return out


def _make_pd(block: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """A 2x2 covariance made positive definite: variances floored at 5 % of ``scale``, correlation in [-0.9, 0.9]."""
    out = (np.array(block, dtype=float) + np.array(block, dtype=float).T) / 2.0
    out[0, 0] = max(out[0, 0], 0.05 * scale[0])
    out[1, 1] = max(out[1, 1], 0.05 * scale[1])
    bound = 0.9 * np.sqrt(out[0, 0] * out[1, 1])
    out[0, 1] = out[1, 0] = float(np.clip(out[0, 1], -bound, bound))
    return out
