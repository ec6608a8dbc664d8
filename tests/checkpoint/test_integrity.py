"""Checkpoint contents are not trusted: the frame's SHA-256 is checked on load, ``meta`` is
validated, and a resume truncates only the files the run itself writes (real runs, real
checkpoint files)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgpack
import pytest

from cep.checkpoint import CheckpointError, decode, encode, read_meta
from cep.checkpoint.snapshot import MAGIC, payload
from cep.nfa.pattern import PatternSpec, StageSpec
from cep.operator.cep_operator import CepOperator
from tests.helpers import Recorder, field_is, rule_of

ROOT = Path(__file__).resolve().parents[2]
RULE = "rule r\n  pattern\n    begin a where a == 1\nend\n"


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False,
                           ext_hook=lambda c, x: msgpack.ExtType(c, x))


def _reframe(doc: Any) -> bytes:
    """What someone who can write the checkpoint can do: a valid frame around any content."""
    body = msgpack.packb(doc, use_bin_type=True)
    return MAGIC + hashlib.sha256(body).digest() + body


def _run(tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cep.cli", "run", "--rules", str(tmp / "r.cep"),
         "--input", str(tmp / "in.jsonl"), "--checkpoint-dir", str(tmp / "ck"),
         "-o", str(tmp / "al.jsonl"), "-q", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.fixture
def checkpointed(tmp_path: Path) -> Path:
    """A finished run with its checkpoint: one alert written, the checkpoint file returned."""
    (tmp_path / "r.cep").write_text(RULE)
    (tmp_path / "in.jsonl").write_text('{"ts":1,"a":1}\n')
    done = _run(tmp_path)
    assert done.returncode == 0, done.stderr
    (ckpt,) = (tmp_path / "ck").glob("*.ckpt")
    return ckpt


def test_a_crafted_output_in_meta_truncates_nothing_but_the_run_s_own(
        tmp_path: Path, checkpointed: Path) -> None:
    """D16: meta.outputs naming another file (valid checksum and all) leaves it alone."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious content\n")
    doc = _unpack(payload(checkpointed.read_bytes())[0])
    doc["meta"]["outputs"][str(victim)] = 3
    checkpointed.write_bytes(_reframe(doc))
    alerts = (tmp_path / "al.jsonl").read_bytes()
    done = _run(tmp_path)
    assert done.returncode == 0, done.stderr
    assert victim.read_text() == "precious content\n"
    assert f"records output {victim}, which this run does not write: left alone" in done.stderr
    assert (tmp_path / "al.jsonl").read_bytes() == alerts  # resumed, nothing written twice


def test_the_run_s_own_output_is_still_cut_back_on_resume(tmp_path: Path,
                                                           checkpointed: Path) -> None:
    out = tmp_path / "al.jsonl"
    alerts = out.read_bytes()
    out.write_bytes(alerts + b'{"half written')  # what a kill leaves after the checkpoint
    done = _run(tmp_path)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == alerts


def test_a_damaged_checkpoint_is_a_clear_error(tmp_path: Path, checkpointed: Path) -> None:
    data = bytearray(checkpointed.read_bytes())
    data[-1] ^= 1  # one flipped bit, checksum not recomputed
    checkpointed.write_bytes(bytes(data))
    done = _run(tmp_path)
    assert done.returncode == 2
    assert "checksum mismatch" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("change, message", [
    ({"outputs": ["/etc/passwd"]}, "meta.outputs is not a map of file names to sizes"),
    ({"outputs": {"x": -1}}, "meta.outputs is not a map of file names to sizes"),
    ({"outputs": {"x": "3"}}, "meta.outputs is not a map of file names to sizes"),
    ({"lines": "7"}, "meta.lines is not a count"),
    ({"seq": -5}, "meta.seq is not a count"),
    ({"input_bytes": 1.5}, "meta.input_bytes is not a count"),
    ({"input": "/elsewhere/in.jsonl"}, "it was written for another input"),
])
def test_malformed_meta_is_a_clear_error(tmp_path: Path, checkpointed: Path,
                                         change: dict[str, Any], message: str) -> None:
    doc = _unpack(payload(checkpointed.read_bytes())[0])
    doc["meta"].update(change)
    checkpointed.write_bytes(_reframe(doc))
    before = (tmp_path / "al.jsonl").read_bytes()
    done = _run(tmp_path)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "remove it to start over" in done.stderr
    assert "Traceback" not in done.stderr
    assert (tmp_path / "al.jsonl").read_bytes() == before


# --------------------------------------------------------------------------- the frame


def _op() -> CepOperator:
    spec = PatternSpec((StageSpec("a", "begin", field_is("name", "a")),))
    return CepOperator([rule_of(spec)], Recorder())


def test_every_byte_of_a_snapshot_is_covered_by_its_checksum() -> None:
    data = encode(_op(), {"x": 1})
    assert data.startswith(MAGIC)
    for at in (len(MAGIC), len(MAGIC) + 31, len(data) // 2, len(data) - 1):
        bad = bytearray(data)
        bad[at] ^= 0x40
        with pytest.raises(CheckpointError, match="checksum mismatch"):
            decode(bytes(bad), _op())
    with pytest.raises(CheckpointError, match="shorter than its header"):
        read_meta(data[:20])


def test_an_unframed_snapshot_reads_as_version_1_only() -> None:
    body, framed = payload(encode(_op(), {"x": 1}))
    assert framed
    doc = _unpack(body)
    with pytest.raises(CheckpointError, match="without its checksum frame"):
        read_meta(body)  # a version 2 payload must come framed
    doc["version"] = 1  # written before the checksum existed: still read
    assert decode(msgpack.packb(doc, use_bin_type=True), _op()).meta == {"x": 1}
    doc["meta"] = {1: "x"}
    with pytest.raises(CheckpointError, match="meta is not a map of names"):
        decode(msgpack.packb(doc, use_bin_type=True), _op())
