"""Executors: how ready steps reach the code that runs them (:mod:`.base`), in this process
(:mod:`.local`) or on arq workers over Redis (:mod:`.arq`). Only the arq executor imports arq."""
