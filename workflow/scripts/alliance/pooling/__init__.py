"""Pooling stage: several studies in one run, individual-patient-data meta-analysis (docs/methods.md section 11).

* ``config``: the pooled config's studies, effects and multiverse grid, checked;
* ``harmonise``: each study's clean tables on the common scale, and what was done to them;
* ``specifications``: the pooled effects and the multiverse's specifications as models of the suite;
* ``study_fits``: stage one, a specification fitted in one study;
* ``meta``: the random-effects meta-analysis (REML, Knapp-Hartung), as metafor computes it;
* ``two_stage``: stage two, every pooled effect with its tables;
* ``one_stage``: all studies in one mixed model, study as a level;
* ``multiverse``: a specification across the studies, the curve and its summary;
* ``truth``: estimates beside a simulator's truth.
"""
