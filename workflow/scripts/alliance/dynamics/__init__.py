"""Within-person dynamics of alliance and symptoms: a process simulator with known truth
(:mod:`alliance.dynamics.process`), the random-intercept cross-lagged panel model estimated by
full-information maximum likelihood (:mod:`alliance.dynamics.riclpm`, on the moment machinery of
:mod:`alliance.dynamics.fiml`) and a recovery study (:mod:`alliance.dynamics.recovery`)."""
