"""The reachability monitor (seed 003): targets, probes, workers and their conductor.

Kept free of imports here, so that the API can read the target definitions
(:mod:`vitrail.monitor.targets`, pure validation) without loading the rest.
"""
