"""On-disk formats of mmpipe: manifests, feature arrays, fingerprints, and the two tiny generic
utilities (registry, config overrides) that every other layer shares.

`store` is the bottom layer: it imports nothing else of mmpipe, so `pipeline`, `adapters` and
`evaluate` may all depend on it.
"""
