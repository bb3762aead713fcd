"""Noise ceilings and statistics shared by the metric plugins and benchmarks.

* :mod:`.reliability`: split-half reliability with the Spearman-Brown correction;
* :mod:`.subjects`: leave-one-subject-out ("upper") and pairwise subject-to-subject ("lower") ceilings, on features
  and on stored score arrays;
* :mod:`.resampling`: bootstrap confidence intervals over subjects or stimuli, permutation p-values.

A library, not a registered plugin (it provides no metric of its own); importing it stays light.
"""
