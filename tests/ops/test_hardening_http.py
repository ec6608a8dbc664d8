"""The HTTP side of a long run under hostile input, over real 127.0.0.1 sockets: what a
reload may disclose, who may ask for one, which Host and Origin are served, how many
connections and how slow, and how often a reload runs."""

from __future__ import annotations

from pathlib import Path

from tests.reload.runner import CepRun, write_rule

RULE = "rule r\n  pattern\n    begin a where x == 1\nend\n"
SECRET = "hunter2-in-the-environment"


def test_a_link_to_the_process_environment_is_refused_not_echoed(tmp_path: Path) -> None:
    """D08: a symbolic link in the rule directory to /proc/self/environ (or /etc/passwd) is
    reported by name; its content appears in no answer, no status and no log line."""
    rules, inp = tmp_path / "rules", tmp_path / "in.jsonl"
    rules.mkdir()
    write_rule(rules / "r.cep", RULE)
    inp.touch()
    cep = CepRun(["--rules", str(rules), "--input", str(inp), "--follow", "-o", "/dev/null"],
                 tmp_path / "cep.log", env={"DEMO_SECRET": SECRET})
    try:
        (rules / "env.cep").symlink_to("/proc/self/environ")
        (rules / "passwd.cep").symlink_to("/etc/passwd")
        code, doc = cep.post("/-/reload")
        assert code == 422
        assert sorted(Path(e["file"]).name for e in doc["errors"]) == ["env.cep", "passwd.cep"]
        assert all("outside the rule directories" in e["message"] for e in doc["errors"])
        status = cep.get("/status")[1].decode()
        assert "env.cep" in status
        for shown in (str(doc), status, cep.log()):
            assert SECRET not in shown and "root:x:0:0" not in shown
        assert cep.versions() == {"r": cep.versions()["r"]}  # the running rule stays
    finally:
        cep.kill()
