"""Sigma files compiled in forked workers give exactly what one process gives: the same
rules, names (also where two files share a stem), diagnostics and left-out rules, with or
without the compiled-file cache; a worker that fails only costs time."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cep.sigma import load as load_module
from cep.sigma.load import SigmaLoad, load_sigma
from cep.sigma.parallel import map_forked

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

RULE = """\
title: Tool {n}
id: {uuid}
status: test
author: someone
level: high
logsource:
  product: windows
  category: process_creation
detection:
  selection:
    Image|endswith: '\\tool{n}.exe'
    CommandLine|contains|all: ['-a{n}', '-b']
  condition: selection
"""

PLACEHOLDER = """\
title: Placeholder {n}
id: {uuid}
logsource:
  product: windows
detection:
  selection:
    CommandLine|expand: '%admins%'
  condition: selection
"""


def _tree(root: Path, files: int) -> Path:
    """``files`` Sigma files under ``root``: plain rules, rules left out (a placeholder),
    a broken file, and files of one stem in two directories (their names depend on the
    order of the files)."""
    for n in range(files):
        sub = root / f"d{n % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        uuid = f"{n:08x}-3b5e-4c56-9d2a-6a6d2f0c1a11"
        text = (PLACEHOLDER if n % 17 == 0 else RULE).format(n=n, uuid=uuid)
        stem = f"same{n % 5}" if n % 11 == 0 else f"rule{n}"
        (sub / f"{stem}.yml").write_text(text)
    (root / "d0" / "broken.yml").write_text("title: x\ndetection: [\n")
    return root


def _same(a: SigmaLoad, b: SigmaLoad) -> None:
    assert a.files == b.files
    assert a.diagnostics == b.diagnostics
    assert a.rejected == b.rejected


def _parses_here(monkeypatch: pytest.MonkeyPatch, seen: Path | None = None) -> list[str]:
    """The files parsed in this process (a forked worker's parses are not seen here).  With
    ``seen`` (a directory), the workers note each file they parse there, and this process
    waits at its first parse until they have parsed 20: a share of the files is surely
    theirs, whatever the machine's load."""
    calls: list[str] = []
    real = load_module._parse
    here = os.getpid()

    def counting(path: Path, text: str) -> object:
        if os.getpid() != here:
            if seen is not None:
                (seen / f"{os.getpid()}-{len(os.listdir(seen))}").touch()
            return real(path, text)
        if seen is not None and not calls:
            deadline = time.monotonic() + 30
            while len(os.listdir(seen)) < 20 and time.monotonic() < deadline:
                time.sleep(0.001)
        calls.append(str(path))
        return real(path, text)

    monkeypatch.setattr(load_module, "_parse", counting)
    return calls


@pytest.mark.parametrize("cache", [True, False])
def test_forked_compilation_equals_one_process(tmp_path: Path, cache: bool,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    if cache:
        monkeypatch.delenv("CEP_NO_GRAMMAR_CACHE", raising=False)
    else:
        monkeypatch.setenv("CEP_NO_GRAMMAR_CACHE", "1")
    root = _tree(tmp_path / "rules", 150)
    monkeypatch.setattr(load_module, "worker_count", lambda jobs: 1)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache-serial"))
    serial = load_sigma([root])
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache-forked"))
    monkeypatch.setattr(load_module, "worker_count", lambda jobs: 3)
    (tmp_path / "seen").mkdir()
    calls = _parses_here(monkeypatch, tmp_path / "seen")
    forked = load_sigma([root])
    _same(forked, serial)
    names = [r.name for f in forked.files for r in f.rules]
    assert len(names) == len(set(names)) > 100
    assert any(n.startswith("same0_") for n in names)  # (a stem taken by an earlier file)
    assert any("left out" in d.message for d in forked.diagnostics)
    assert any(d.severity == "error" for d in forked.diagnostics)
    # The workers parsed 20 files or more; this process parsed the others, the broken file,
    # and the files whose names an earlier file took, once more (at most 9).
    assert str(root / "d0" / "broken.yml") in calls
    assert len(calls) < 151 - 20 + 12
    if cache:  # the bundle written from a forked load serves the next load alone
        calls.clear()
        _same(load_sigma([root]), serial)
        assert str(root / "d0" / "broken.yml") in calls
        assert all(c.endswith("broken.yml") or Path(c).stem.startswith("same") for c in calls)


def _square_unless_child(parent: int, n: int) -> int:
    if os.getpid() != parent and n == 7:
        raise RuntimeError("a worker fails")
    return n * n


def test_a_failing_worker_only_costs_time() -> None:
    parent = os.getpid()
    jobs = list(range(40))
    got = map_forked(lambda n: _square_unless_child(parent, n), jobs, workers=3)
    assert got == [n * n for n in jobs]


def _pid_once_shared(seen: Path, job: str) -> tuple[int, str]:
    """``(pid, job)``, once at least two processes have run a job: each notes its pid in
    ``seen`` and the first waits there for a second, so the work is shared whatever the
    machine's load (a fast first worker could otherwise take every job)."""
    (seen / str(os.getpid())).touch()
    deadline = time.monotonic() + 30
    while len(os.listdir(seen)) < 2 and time.monotonic() < deadline:
        time.sleep(0.001)
    return os.getpid(), job


def test_results_come_back_in_job_order(tmp_path: Path) -> None:
    jobs = [f"job{n}" for n in range(301)]
    got = map_forked(lambda j: _pid_once_shared(tmp_path, j), jobs, workers=4)
    assert [j for _, j in got] == jobs
    assert len({pid for pid, _ in got}) > 1  # (the work was shared)


def _wait_for(path: Path) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.01)
    return False


def test_work_run_behind_is_done_by_another_process(tmp_path: Path) -> None:
    # (in a new process: this one may run other threads, and then forks nothing)
    out = tmp_path / "pid"
    script = ("import os, sys\nfrom pathlib import Path\n"
              "from cep.sigma.parallel import run_behind\n"
              "out = Path(sys.argv[1])\n"
              "print(os.getpid(), run_behind(lambda: out.write_text(str(os.getpid()))))\n")
    res = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True,
                         text=True, check=True, timeout=60)
    caller, behind = res.stdout.split()
    if behind == "False":
        assert len(os.sched_getaffinity(0)) == 1  # (it forks wherever there are two CPUs)
        assert not out.exists()
        return
    assert _wait_for(out)
    assert out.read_text() != caller


def test_a_cache_written_behind_serves_the_next_load(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CEP_NO_GRAMMAR_CACHE", raising=False)
    root = _tree(tmp_path / "rules", 20)
    first = load_sigma([root], write_behind=True)
    bundles = tmp_path / "cache" / "cep" / "sigma"
    deadline = time.monotonic() + 30
    while not list(bundles.glob("*.pickle")) and time.monotonic() < deadline:
        time.sleep(0.01)
    calls = _parses_here(monkeypatch)
    _same(load_sigma([root]), first)
    assert calls and all(c.endswith("broken.yml") or Path(c).stem.startswith("same")
                         for c in calls)


def _fails_here(parent: int, n: int) -> int:
    if os.getpid() == parent:
        raise ValueError(f"job {n} fails in the caller")
    time.sleep(0.01)
    return n


def test_a_failure_in_the_caller_leaves_no_worker_behind() -> None:
    parent = os.getpid()
    before = _children()
    with pytest.raises(ValueError, match="fails in the caller"):
        map_forked(lambda n: _fails_here(parent, n), list(range(400)), workers=3)
    assert _children() <= before  # (stopped and reaped: no worker, no zombie)


def _children() -> set[int]:
    """The pids of this process's children (running or zombie), from /proc."""
    found = set()
    for task in Path("/proc/self/task").iterdir():
        text = (task / "children").read_text() if (task / "children").exists() else ""
        found |= {int(p) for p in text.split()}
    return found


def test_each_result_is_taken_once_by_the_calling_process(tmp_path: Path) -> None:
    parent = os.getpid()
    taken: list[tuple[int, tuple[int, str]]] = []
    jobs = [f"job{n}" for n in range(200)]

    def fn(job: str) -> tuple[int, str] | None:
        if os.getpid() != parent and job == "job7":
            raise RuntimeError("a worker fails")  # (its jobs are computed here, and taken)
        return None if job.endswith("3") else _pid_once_shared(tmp_path, job)

    got = map_forked(fn, jobs, workers=3, taken=lambda r: taken.append((os.getpid(), r)))
    assert {pid for pid, _ in taken} == {parent}
    assert sorted(r for _, r in taken) == sorted(r for r in got if r is not None)
    assert len(taken) == 180


def test_rules_built_while_files_compile_are_the_rules_built_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cep.app import rules as rules_module
    from cep.app.rules import load_rule_set

    monkeypatch.setenv("CEP_NO_GRAMMAR_CACHE", "1")
    root = _tree(tmp_path / "rules", 150)
    (root / "d0" / "broken.yml").unlink()
    monkeypatch.setattr(load_module, "worker_count", lambda jobs: 1)
    serial = load_rule_set([str(root)], defer=True)
    builds: list[str] = []
    real = rules_module.build_rule

    def counting(rule: object, *args: object, **kwargs: object) -> object:
        builds.append(getattr(rule, "name", ""))
        return real(rule, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(rules_module, "build_rule", counting)
    monkeypatch.setattr(load_module, "worker_count", lambda jobs: 3)
    (tmp_path / "seen").mkdir()
    _parses_here(monkeypatch, tmp_path / "seen")  # (the workers surely take a share)
    forked = load_rule_set([str(root)], defer=True)
    assert forked.ok and len(forked.rules) > 100

    def shape(rs: rules_module.RuleSet) -> list[tuple[str, str, str, str]]:
        return [(r.name, r.version, r.text, r.file) for r in rs.rules]

    assert shape(forked) == shape(serial)
    # each rule built once, but those of the files compiled again in order (a stem that an
    # earlier file took: at most 14 files of one rule)
    assert len(forked.rules) <= len(builds) <= len(forked.rules) + 14
