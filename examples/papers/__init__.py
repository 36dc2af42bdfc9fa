"""The MX papers' model-level claims, reproduced on a small MLP with mxarray.

Modules, one job each: the data set (``data``), the network written against the array
API with MX GEMMs (``mlp``), the experiments that time and record runs
(``experiments``), the papers' claims and their verdicts (``claims``) and the figures
(``figures``).  ``examples/mx_papers.py`` runs them all.
"""
