"""Rhizome's domain: pilots, experiments, statistics, decisions and the SQL store.

Imports nothing else of ours.
"""

from experiments.native import extend

extend(__name__, __path__)
