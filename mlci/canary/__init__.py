"""Canary analysis: a shadow replay to two Open Inference Protocol endpoints, live metrics from
Prometheus, and a statistical judge whose decision (promote to the next traffic weight, hold,
or roll back) becomes the ``canary`` section of results.json, evidence for the same gate.

Modules: config (the ``canary:`` section), stats and judge (pure), oip (requests and
predictions), replay (the mirrored client), shadow (what the answers say), prometheus and live
(the queries), engine (images through the Docker Engine API), stage (all of it together).
"""
