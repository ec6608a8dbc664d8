"""Checkpoints: versioned msgpack snapshots of operator state and where they are kept.

:mod:`cep.checkpoint.snapshot` encodes and restores a
:class:`~cep.operator.cep_operator.CepOperator`;
:mod:`cep.checkpoint.store` keeps snapshots in a local directory (file mode) with atomic writes.
The Kafka changelog lives with the other Kafka code in :mod:`cep.io.kafka`.
"""

from cep.checkpoint.snapshot import (
    FORMAT_VERSION,
    CheckpointError,
    RestoreReport,
    decode,
    encode,
    read_meta,
)
from cep.checkpoint.store import DirectoryStore

__all__ = ["FORMAT_VERSION", "CheckpointError", "RestoreReport", "decode", "encode", "read_meta",
           "DirectoryStore"]
