"""Within-person dynamics of alliance and symptoms: a process simulator with known truth
(:mod:`alliance.dynamics.process`), the random-intercept cross-lagged panel model estimated by
full-information maximum likelihood (:mod:`alliance.dynamics.riclpm`; its model in
:mod:`~alliance.dynamics.riclpm_model`, the FIML moments in :mod:`~alliance.dynamics.fiml`, the
optimiser in :mod:`~alliance.dynamics.optimise`, lavaan's fit measures in
:mod:`~alliance.dynamics.fit_measures`) and a recovery study (:mod:`alliance.dynamics.recovery`)."""
