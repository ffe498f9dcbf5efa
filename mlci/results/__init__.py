"""The results document: typed, frozen sections, its schema, reading, writing and merging."""

from mlci.results.document import (
    SCHEMA_VERSION,
    SECTIONS,
    ConfigRef,
    Conversion,
    DataRecord,
    MergeError,
    ModelInput,
    ModelRecord,
    Results,
    StageOutcome,
    dumps,
    load,
    merge,
    parse,
    schema,
)

__all__ = [
    "SCHEMA_VERSION",
    "SECTIONS",
    "ConfigRef",
    "Conversion",
    "DataRecord",
    "MergeError",
    "ModelInput",
    "ModelRecord",
    "Results",
    "StageOutcome",
    "dumps",
    "load",
    "merge",
    "parse",
    "schema",
]
