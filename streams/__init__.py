"""The event contract and the faust stream processors."""

from experiments.native import extend

extend(__name__, __path__)
