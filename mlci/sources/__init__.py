"""Where models come from and where promotion goes.

A model or baseline in mlci.yaml names a *source*: a local path, a file at a git ref, an OCI
artifact following the CNCF ModelPack specification, an MLflow model registry version or
alias, or an HTTPS URL pinned by sha256 (:mod:`mlci.sources.reference` parses them). Every
source is fetched into a cache keyed by sha256, checked against its digest (and a signature
policy when the configuration asks for one), and only then loaded (:mod:`mlci.sources.fetch`).

Promotion moves a production *pointer* (a registry tag, an MLflow alias, a git tag) to exactly
the digest the gate decided on, and keeps the history of every move next to the pointer, so
that rollback needs nothing but the pointer's own store (:mod:`mlci.sources.promote`).
"""
