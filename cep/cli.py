"""The ``cep`` command line: parses flags and calls the application layer; no logic here.

Exit codes: 0 success; 1 rule errors (``check``, ``run`` refuses to start); 2 usage or
configuration errors (bad flag values, unreadable input); 3 a file run that read no event,
only dead letters (the first reasons are printed).

Conventions every command keeps: rule paths are positional arguments or ``--rules``/``-r``
(both may be mixed); ``--input-format`` and ``--output-format`` are named apart; choices are
listed in ``--help``; a duration needs a unit (``500ms``, ``5s``, ``2m``, ``1h``, ``1d``);
``-h`` is ``--help``; help text is written to fit an 80-column terminal.
"""

# No ``from __future__ import annotations`` here: typer reads every command's parameter
# annotations on each start, and as strings each would be compiled and evaluated again (about
# 12 ms of every start).  Names imported only for type checking stay quoted.

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from typer.core import TyperGroup

from cep.app.gc_policy import collect_less
from cep.app.rules import RuleSet, load_rule_set, render_diagnostics
from cep.app.settings import CheckFlags, ExplainFlags, ReplayFlags, RunFlags
from cep.cli_flags import takes
from cep.errors import CepError

if TYPE_CHECKING:
    from collections.abc import Callable

    from typer import _click as click

    from cep.app.file_checkpoint import FileCheckpoints
    from cep.app.settings import FileRun
    from cep.compiler.compiled import CompiledRule
    from cep.config import Config
    from cep.diagnostics import Diagnostic

COMMAND_ORDER = ("run", "check", "test", "replay", "explain", "map")
"""How ``cep --help`` lists the commands: in the order of use, ``run`` first."""


class _Commands(TyperGroup):
    """Lists commands in :data:`COMMAND_ORDER` (any other after them, in definition order)."""

    def list_commands(self, ctx: "click.Context") -> list[str]:
        names = super().list_commands(ctx)
        rank = {n: i for i, n in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda n: rank.get(n, len(rank)))


app = typer.Typer(
    name="cep",
    cls=_Commands,
    help=(
        "Complex-event-processing rules, compiled to per-key NFAs with Flink CEP "
        "semantics.\n\n"
        "Write rules in .cep files, run them over JSON lines or CSV with `cep run`, "
        "validate them with `cep check`, test them with `cep test`, and look at the "
        "compiled automaton with `cep explain`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

EXIT_OK, EXIT_RULES, EXIT_USAGE, EXIT_NO_EVENTS, EXIT_TOO_MANY_DEAD = 0, 1, 2, 3, 4


def _version(value: bool) -> None:
    if value:
        from cep import __version__

        typer.echo(f"cep {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True,
        help="Print the version and exit.")] = False,
) -> None:
    """Complex-event-processing rules, compiled to per-key NFAs."""


def _rule_paths(positional: list[str] | None, option: list[str] | None) -> list[str]:
    """Rule paths given as arguments and with ``--rules``, in that order."""
    return [*(positional or []), *(option or [])]


def _fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    typer.echo(f"cep: error: {message}", err=True)
    return typer.Exit(code)


_SIGMA_PIPELINE_HELP = ("pySigma processing pipeline for the Sigma rules (.yml): a shipped "
                        "name (windows-xml, windows-flat, winlogbeat) or a pipeline file; "
                        "repeatable, applied in order (default: the config's [rules] "
                        "sigma_pipelines).")


def _pipelines(option: list[str] | None, cfg: "Config | None") -> tuple[str, ...]:
    """The Sigma pipelines of a command: ``--sigma-pipeline`` or the config's."""
    if option:
        return tuple(option)
    return tuple(cfg.rules.sigma_pipelines) if cfg is not None else ()


def _load(paths: list[str], quiet_warnings: bool = False,
          more: "Callable[[RuleSet], list[Diagnostic]] | None" = None,
          strict: bool = False, sigma_pipelines: tuple[str, ...] = (),
          defer: bool = False) -> RuleSet:
    """Load (Sigma files through ``sigma_pipelines``), print the diagnostics (with
    ``more``'s, computed from the loaded set; with ``strict``, warnings become errors).
    ``defer``: for commands that run the rules, conditions, header filters and emits are
    generated and compiled on first use (:func:`cep.app.rules.load_rule_set`)."""
    for p in paths:
        if not Path(p).exists():
            raise _fail(f"no such rule file or directory: {p}")
    rs = load_rule_set(paths, sigma_pipelines, defer=defer)
    if more is not None:
        rs.diagnostics += more(rs)
    if strict:
        from dataclasses import replace

        rs.diagnostics = [replace(d, severity="error") for d in rs.diagnostics]
    shown = rs if not quiet_warnings else RuleSet(diagnostics=rs.errors, files=rs.files)
    if shown.diagnostics:
        typer.echo(render_diagnostics(shown), err=True)
    return rs


@app.command()
@takes(CheckFlags)
def check(flags: CheckFlags) -> None:
    """Validate rule files: every error, each as `file:line:col`.

    Reports all errors of all files in one run, with the offending line and a
    caret, plus warnings (for example a looping stage without `within`:
    unbounded state; a pattern whose partial matches per key grow faster
    than linearly).  With --schema, fields are checked against the event
    schema; without one, a field compared with literals of different types
    across the rules is a warning.  Exit status 0 when there are no errors, 1
    otherwise (2: the --config plan cannot run, e.g. repartition = false but
    needed, or the schema cannot be read).

    Example: cep check rules/ --schema rules/schema.yaml
    """
    from cep.app.rules import file_checks

    cfg = _config(flags.config) if flags.config is not None else None
    paths = flags.all_rules or (list(cfg.rules.paths) if cfg is not None else [])
    if not paths:
        raise _fail("no rules: give rule paths (cep check PATH... or --rules PATH)")
    try:
        more = file_checks(flags.schema or (cfg.rules.schema if cfg is not None else None))
    except CepError as exc:
        raise _fail(str(exc), exc.exit_code) from None
    if cfg is not None and cfg.sources:
        more = _with_sources(more, list(cfg.sources))
    rs = _load(paths, more=more, strict=flags.strict,
               sigma_pipelines=_pipelines(list(flags.sigma_pipelines), cfg))
    n_files, n_warn = len(rs.files), len(rs.diagnostics) - len(rs.errors)
    if rs.errors:
        typer.echo(f"{len(rs.errors)} error(s), {n_warn} warning(s) in {n_files} file(s)",
                   err=True)
        raise typer.Exit(EXIT_RULES)
    typer.echo(f"ok: {sum(len(f.rules) for f in rs.files)} rule(s) in {n_files} file(s), "
               f"{n_warn} warning(s)")
    if cfg is not None and cfg.kafka is not None and cfg.kafka_sources:
        _print_plan(cfg, rs.rules)


def _with_sources(more: "Callable[[RuleSet], list[Diagnostic]]", inputs: list[str]
                  ) -> "Callable[[RuleSet], list[Diagnostic]]":
    """``more`` and the check that every ``from`` names a source of the config or a derived
    stream (:func:`cep.lang.streams.check_sources`)."""
    from cep.lang.streams import check_sources

    return lambda rs: more(rs) + check_sources(rs.files, inputs)


def _print_plan(cfg: "Config", rules: list["CompiledRule"]) -> None:
    """Each rule's path through the config's Kafka sources (direct, or through which
    repartition topic); exit 2 when a rule cannot be served."""
    from cep.app.kafka_plan import plan_rules

    assert cfg.kafka is not None
    try:
        plan = plan_rules(cfg.kafka_sources, rules, cfg.kafka.group_id, cfg.kafka.repartition)
    except CepError as exc:
        raise _fail(str(exc), exc.exit_code) from None
    for line in plan.lines():
        typer.echo(f"plan: {line}")


@app.command("test")
def test_cmd(
    paths: Annotated[list[str] | None, typer.Argument(
        help="Test files (*.test.yaml) or directories searched recursively.",
        show_default=False)] = None,
    rules: Annotated[list[str] | None, typer.Option(
        "--rules", "-r", help="Rule or test directories, as PATHS; repeatable.")] = None,
    junit: Annotated[
        str | None, typer.Option("--junit", help="Also write the results as JUnit XML here.")
    ] = None,
) -> None:
    """Run rule tests: each *.test.yaml feeds rules, checks the output.

    A test lists input events in arrival order (or an input_file), optionally
    an `arrival` order with `{watermark: T}` steps and a max_out_of_orderness,
    and what must come out: `expect` (alerts: rule, key, a subset of data,
    optionally `match` as input indices), `expect_timeouts`, `expect_late`,
    `expect_dead_letters`.  An alert nobody expected fails the test.  Each
    failure prints a diff; rule files under PATHS that no test covers are
    listed as warnings.  The format: docs/testing.md.

    Exit status: 0 all pass, 1 a test fails, 2 a test file or its rules do
    not load.

    Examples:

      cep test rules/

      cep test rules/login --junit build/rule-tests.xml
    """
    from cep.ruletest import run_suite

    paths = _rule_paths(paths, rules)
    if not paths:
        raise _fail("no tests: give paths (cep test PATH... or --rules PATH)")
    result = run_suite(paths, typer.echo, lambda s: typer.echo(s, err=True), junit=junit)
    raise typer.Exit(result.exit_code)


@app.command()
@takes(ReplayFlags)
def replay(flags: ReplayFlags) -> None:
    """Replay history through rules, or backtest a rule change.

    The live code path, without touching any consumer group's offsets.

    Kafka: every partition of the topics is assigned directly (no group, no
    commits), from --from/--from-offset (default: the beginning) to
    --to/--to-offset (default: the end when the replay starts).  Times select
    by message timestamp; event time still comes from the data.  Files:
    --input, read in order.  At the end every window is decided (unless
    --keep-open).  A progress bar and a summary table (alerts per rule and
    severity, late events, dead letters, peak partial matches) follow.

    --compare OLD NEW runs both rule sets over the same history in one pass
    and reports, per rule, the keys that alert only in new, the keys that stop
    alerting, and the keys whose alerts changed in count or window (alerts
    paired by key and overlapping time); then, as detail, the alerts paired by
    their matched events (topic/partition/offset or file/line).

    Examples:

      cep replay -r rules/ -t auth --bootstrap 127.0.0.1:9092 \\
          --from 2024-05-01T00:00:00Z --to 2024-05-02T00:00:00Z -o alerts.jsonl

      cep replay -r rules/ -c cep.toml --from-offset 0:1000,1:1200

      cep replay --compare old/ rules/ -i events.jsonl --report diff.json
    """
    from rich.console import Console

    from cep.app.replay import run_request
    from cep.app.settings import SettingsError, resolve_replay

    cfg = _config(flags.config) if flags.config else None
    pipelines = _pipelines(list(flags.sigma_pipelines), cfg)

    def load(paths: list[str]) -> list["CompiledRule"] | None:
        rs = _load(paths, sigma_pipelines=pipelines, defer=True)
        return rs.rules if rs.ok else None

    try:
        plan = resolve_replay(flags, sys.stderr.isatty())
        for warning in plan.warnings:
            typer.echo(f"cep: warning: {warning}", err=True)
        console = Console(stderr=plan.summary_to_stderr)
        if not console.is_terminal:
            console = Console(stderr=plan.summary_to_stderr, width=120)
        collect_less(loading=True)
        code = run_request(plan, console, load)
    except SettingsError as exc:
        raise _fail(str(exc)) from None
    except CepError as exc:
        raise _fail(str(exc), exc.exit_code) from None
    except OSError as exc:
        raise _fail(str(exc)) from None
    except Exception as exc:  # the broker: KafkaError and its kin
        if type(exc).__module__.startswith("aiokafka"):
            raise _fail(f"Kafka: {type(exc).__name__}: {exc}", EXIT_RULES) from None
        raise
    raise typer.Exit(code)


@app.command()
@takes(ExplainFlags)
def explain(flags: ExplainFlags) -> None:
    """Show the compiled NFA of each rule: states, edges and conditions; or,
    with --trace, why a rule did or did not fire for one key.

    Each state with its take/ignore/proceed edges and their conditions.
    --output-format dot writes Graphviz source of one node per stage of the
    pattern (quantifier, contiguity and window as labels; long conditions in a
    legend), or of the NFA's states with --states; png and svg draw it with
    Graphviz's `dot` program (apt-get install graphviz).

    --trace RULE --key FIELD=VALUE --input FILE runs the rule over the file
    as cep run does and prints, for that key, every event's fate: the stage
    that took it, the conditions that rejected it (with the values they
    read), late, dead-lettered, partial matches expired; then the partial
    matches alive at the end.

    Examples:

      cep explain rules/login/brute_force.cep --rule login_brute_force

      cep explain rules/login --format png -o nfa.png

      cep explain rules/login --trace login_brute_force --key user.name=alice
          --input events.jsonl
    """
    from cep.compiler.explain import explain_text

    fmt, output = flags.output_format, flags.output
    path = ", ".join(paths := flags.all_rules)
    if not paths:
        raise _fail("no rules: give rule paths (cep explain PATH... or --rules PATH)")
    if fmt == "png" and output is None and sys.stdout.isatty():
        raise _fail("--format png writes binary data: give --output FILE.png")
    rs = _load(paths, quiet_warnings=True, sigma_pipelines=tuple(flags.sigma_pipelines))
    if not rs.ok:
        raise typer.Exit(EXIT_RULES)
    if flags.trace is not None:
        _trace(rs.rules, flags)
        return
    chosen = [r for r in rs.rules if flags.rule is None or r.name == flags.rule]
    if not chosen:
        raise _fail(f"no rule named {flags.rule!r} in {path}")
    if fmt == "text":
        _write_out(output, "\n".join(explain_text(r) for r in chosen).encode())
        return
    from cep.compiler.dot import GraphvizMissing, dot_text, render
    from cep.compiler.stage_dot import stage_dot_text

    try:
        dot = dot_text(chosen) if flags.states else stage_dot_text(chosen)
        _write_out(output, dot.encode() if fmt == "dot" else render(dot, fmt))
    except GraphvizMissing as exc:
        raise _fail(str(exc)) from None
    except (RuntimeError, OSError, ValueError) as exc:
        raise _fail(str(exc)) from None


def _trace(compiled: list["CompiledRule"], flags: ExplainFlags) -> None:
    """``cep explain --trace``: the fates of one key's events (:mod:`cep.app.trace`)."""
    from cep.app.settings import SettingsError
    from cep.app.trace import trace_key
    from cep.io.codecs import decode_lines
    from cep.io.sources import open_input

    name, input_path = flags.trace, flags.input_path
    rule = next((r for r in compiled if r.name == name), None)
    if rule is None:
        raise _fail(f"no rule named {name!r}")
    if input_path is None:
        raise _fail("--trace needs the events: give --input FILE")
    wanted = dict(k.partition("=")[::2] for k in flags.keys)
    try:
        spec, max_ooo = flags.trace_time()
        with open_input(input_path) as fh:
            result = trace_key(rule, wanted, decode_lines(fh, "json", spec), max_ooo)
    except (ValueError, SettingsError) as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"cannot read {input_path}: {exc}") from None
    shown = ", ".join(f"{k}={v}" for k, v in wanted.items())
    typer.echo(f"rule {rule.name}, key {shown}: {result.events} event(s)")
    for f in result.fates:
        where = f"line {f.line:>6}  ts {f.ts}" if f.line else " " * 30
        typer.echo(f"{where}  {f.what:<10} {f.detail}")
    typer.echo(f"alive at the end: {len(result.alive)} partial match(es)")
    for pm in result.alive:
        typer.echo(f"  {pm}")


def _write_out(path: str | None, data: bytes) -> None:
    if path is None or path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    with open(path, "wb") as fh:
        fh.write(data)


@app.command()
@takes(RunFlags)
def run(flags: RunFlags) -> None:
    """Run rules over events: JSON lines or CSV in, alerts out.

    Events are matched in event-time order: each is buffered until the
    watermark (largest event time seen - max out-of-orderness - 1 ms) passes
    it; an event at or below the watermark on arrival is late.  At the end of
    the input every window is decided.  Input files may be gzip, bz2 or zstd
    compressed (found by their first bytes).

    With --config, rules, sources and sinks come from a cep.toml; when it has
    Kafka sources (and no --input is given) the run consumes them as a
    consumer-group member until SIGTERM.

    A long run (--follow, standard input, Kafka) reloads its rules when a rule
    file changes, on SIGHUP and on POST /-/reload: all or nothing, keeping the
    partial matches of unchanged rules (see docs/operations.md).

    With --checkpoint-dir (or \\[state] checkpoint_dir) a file run checkpoints
    its state, how far it read and its output files' lengths; run again after
    a crash, it resumes there.

    Exit status: 0 done, 1 rule errors, 2 usage errors, 3 a file that gave
    no event at all, only dead letters (the first reasons are printed), 4
    more dead letters than --max-dead-letter-ratio allows.

    Example: cep run rules/login --input events.jsonl --output alerts.jsonl
    """
    from cep.app.logs import setup_logging
    from cep.app.settings import SettingsError, resolve_file_run

    setup_logging(flags.log_format, logging.WARNING)
    cfg = _config(flags.config) if flags.config else None
    rules = flags.all_rules or list(cfg.rules.paths if cfg else ())
    if not rules:
        raise _fail("no rules: give rule paths (cep run PATH... or --rules PATH) or [rules] "
                    "paths in the --config file")
    if cfg is not None and cfg.uses_kafka and flags.input_path is None:
        _run_kafka(cfg, rules, flags.quiet, flags.http, flags.log_format,
                   _pipelines(list(flags.sigma_pipelines), cfg))
        return
    try:
        plan = resolve_file_run(flags, cfg, sys.stderr.isatty())
    except SettingsError as exc:
        raise _fail(str(exc)) from None
    for warning in plan.warnings:
        typer.echo(f"cep: warning: {warning}", err=True)
    pipelines = _pipelines(list(flags.sigma_pipelines), cfg)
    collect_less(loading=True)  # already while the rules load: thousands of Sigma rules
    # make millions of containers, and the default thresholds' collections cost a sixth
    rs = _load(rules, sigma_pipelines=pipelines, defer=True)
    if not rs.ok:
        typer.echo(f"cep: {len(rs.errors)} rule error(s); no events processed", err=True)
        raise typer.Exit(EXIT_RULES)
    if not rs.rules:
        raise _fail("no rules found under " + ", ".join(rules))
    _serve_file(rs.rules, rules, plan, cfg, flags.quiet, flags.log_format,
                flags.max_dead_letter_ratio, pipelines)


def _serve_file(compiled: list["CompiledRule"], rule_paths: list[str], plan: "FileRun",
                cfg: "Config | None", quiet: bool, log_format: str,
                max_dead: float | None = None, sigma_pipelines: tuple[str, ...] = ()) -> None:
    """Run a resolved file run: open its outputs (appending after a checkpoint), serve it,
    print the summary line and what the input's quality suggests; exit 3 when a file gave
    only dead letters, 4 when more than ``max_dead`` of it were dead letters."""
    from cep.app.logs import setup_logging
    from cep.app.pipeline import serve_file
    from cep.app.run_report import input_advice, summary_line
    from cep.io.sinks import JsonLinesSink, SinkSet

    input_path = plan.options.path
    checkpoints, append = _file_checkpoints(plan.checkpoint_dir, input_path, cfg,
                                            list(plan.outputs.values()))
    sink_set = SinkSet({name: JsonLinesSink(path, append)
                        for name, path in plan.outputs.items()})
    ops = None
    if plan.watch or plan.http:
        from cep.app.ops import Operations

        setup_logging(log_format, logging.WARNING if quiet else logging.INFO)
        ops = Operations("file", rule_paths, compiled, watch=plan.watch, http=plan.http,
                         sigma_pipelines=sigma_pipelines)
    collect_less()
    try:
        summary = serve_file(compiled, plan.options, sink_set, ops, checkpoints)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except CepError as exc:
        raise _fail(str(exc), exc.exit_code) from None
    except (OSError, EOFError) as exc:  # a truncated or corrupt compressed input, say
        raise _fail(f"cannot read {input_path}: {exc}") from None
    except Exception as exc:
        if type(exc).__module__.startswith("zstandard"):
            raise _fail(f"cannot read {input_path}: zstd: {exc}") from None
        raise
    finally:
        sink_set.close()
    if not quiet:
        typer.echo("cep: " + summary_line(summary, plan), err=True)
        for advice in input_advice(summary, plan):
            typer.echo(advice, err=True)
    if input_path != "-" and summary.events == 0 and summary.dead_letters:
        _no_events(input_path, summary.dead_letters, summary.first_dead_letters)
    total = summary.events + summary.dead_letters
    if max_dead is not None and total and summary.dead_letters / total > max_dead:
        raise _fail(f"{summary.dead_letters / total:.1%} of the input went to the dead letters "
                    f"(--max-dead-letter-ratio {max_dead:g})", EXIT_TOO_MANY_DEAD)


def _no_events(input_path: str, dead: int, first: list[str]) -> None:
    """A file that gave only dead letters: say why (the first reasons), exit 3."""
    typer.echo(f"cep: error: no event read from {input_path}: all {dead:,} input(s) were "
               "dead letters; the first:", err=True)
    for reason in first:
        typer.echo(f"  {reason}", err=True)
    typer.echo("  (wrong --input-format, --columns, --event-time, --time-unit or "
               "--time-format?)", err=True)
    raise typer.Exit(EXIT_NO_EVENTS)


@app.command("map")
def map_cmd(
    name: Annotated[str, typer.Argument(
        metavar="NAME", help="The mapping: ssh, windows-csv, windows-raw, creditcard, lanl.",
        show_default=False)],
    input_path: Annotated[str, typer.Argument(
        metavar="FILE", help="The source file (gzip, bz2 or zstd too), or - for "
        "standard input.", show_default=False)],
    output: Annotated[str | None, typer.Option(
        "--output", "-o", help="Write here instead of standard output.")] = None,
) -> None:
    """Map a log file to the rule library's schema, as JSON lines.

    The shipped mappings of docs/schema.md: each source row becomes one event
    with `ts` in epoch ms and the schema's fields; every source field the
    mapping does not rename is kept, under the source's own namespace
    (winlog.event_data for Windows, ssh, ulb).

    Example:

      cep map windows-raw capture.json.gz | cep run rules/ --input -
    """
    from cep.mapping import DATASETS, write_jsonl

    if name not in DATASETS:
        raise _fail(f"unknown mapping {name!r}: use one of {', '.join(DATASETS)}")
    if input_path != "-" and not Path(input_path).is_file():
        raise _fail(f"no such input file: {input_path}")
    out = sys.stdout if output in (None, "-") else open(output, "w", encoding="utf-8")  # noqa: SIM115
    try:
        n = write_jsonl(DATASETS[name](input_path), out)
    except (OSError, EOFError, ValueError, KeyError, UnicodeDecodeError) as exc:
        raise _fail(f"cannot map {input_path} as {name}: {type(exc).__name__}: {exc}") from None
    except BrokenPipeError:  # (the reader stopped early: head)
        raise typer.Exit(0) from None
    finally:
        if out is not sys.stdout:
            out.close()
        else:
            out.flush()
    typer.echo(f"cep: {n:,} events mapped ({name})", err=True)


sigma_app = typer.Typer(help="Sigma rules: convert them to the engine's rule text.",
                        no_args_is_help=True)
app.add_typer(sigma_app, name="sigma")


@sigma_app.command("convert")
def sigma_convert(
    paths: Annotated[list[str], typer.Argument(
        metavar="RULE.yml...", help="Sigma rule files or directories.", show_default=False)],
    sigma_pipeline: Annotated[list[str] | None, typer.Option(
        "--sigma-pipeline", help=_SIGMA_PIPELINE_HELP)] = None,
    output: Annotated[str | None, typer.Option(
        "--output", "-o", help="Write here instead of standard output.")] = None,
) -> None:
    """Print the .cep rules that Sigma rules compile to (what cep run runs).

    Rules the engine cannot run exactly are left out with a warning that
    says why; a file pySigma rejects is an error (exit 1).

    Example: cep sigma convert rules/windows/process_creation/x.yml > x.cep
    """
    from cep.lang.format import format_rules
    from cep.sigma.load import load_sigma
    from cep.sigma.pipelines import PipelineError, load_keyed_pipeline

    for p in paths:
        if not Path(p).exists():
            raise _fail(f"no such rule file or directory: {p}")
    try:
        pipeline, key = load_keyed_pipeline(_pipelines(sigma_pipeline, None))
    except PipelineError as exc:
        raise _fail(str(exc)) from None
    loaded = load_sigma(paths, pipeline, key)
    shown = RuleSet(diagnostics=loaded.diagnostics, files=loaded.files)
    if shown.diagnostics:
        typer.echo(render_diagnostics(shown), err=True)
    text = "\n".join(format_rules(f.rules) for f in loaded.files if f.rules)
    _write_out(output, text.encode("utf-8"))
    if shown.errors:
        raise typer.Exit(EXIT_RULES)


@app.command("infer-schema")
def infer_schema_cmd(
    input_path: Annotated[str, typer.Option(
        "--input", "-i", help="JSON lines (gzip, bz2 or zstd too), or - for standard input.",
        show_default=False)],
    output: Annotated[str | None, typer.Option(
        "--output", "-o", help="Write the schema here instead of standard output.")] = None,
    limit: Annotated[int | None, typer.Option(
        "--limit", help="Read at most this many events.", min=1)] = None,
) -> None:
    """Write an event schema from data: every field path seen, its types and share.

    Nested objects become dotted paths (`user.name`); each field gets the
    types its values had and the share of events that held it. Review the
    result (add `enum`s, `prefix.*` for open namespaces), then check rules
    against it with `cep check --schema`.

    Example: cep infer-schema -i events.jsonl -o schema.yaml
    """
    from cep.app.infer_schema import infer_from_file
    from cep.lang.schema import schema_yaml

    if input_path != "-" and not Path(input_path).is_file():
        raise _fail(f"no such input file: {input_path}")
    try:
        found = infer_from_file(input_path, limit)
    except (OSError, EOFError) as exc:
        raise _fail(f"cannot read {input_path}: {exc}") from None
    text = schema_yaml(found.schema, f"inferred from {found.events:,} events of {input_path}")
    _write_out(output, text.encode())
    skipped = f", {found.skipped:,} line(s) not JSON objects left out" if found.skipped else ""
    typer.echo(f"cep: {len(found.schema.fields):,} fields in {found.events:,} events{skipped}",
               err=True)


def _file_checkpoints(directory: str | None, input_path: str, cfg: "Config | None",
                      outputs: list[str]) -> "tuple[FileCheckpoints | None, bool]":
    """The run's checkpoints (or None) and whether output files are appended to: when the
    input has a checkpoint, the run's ``outputs`` are first cut back to their checkpointed
    lengths (no other file is touched)."""
    if not directory:
        return None, False
    if input_path == "-":
        raise _fail("checkpoints need a file input, not standard input")
    from cep.app.file_checkpoint import FileCheckpoints

    state = cfg.state if cfg is not None else None
    ckpt = FileCheckpoints(directory, input_path,
                           state.checkpoint_interval_ms if state else 1000,
                           state.checkpoint_records if state else 10_000)
    try:
        meta = ckpt.pending()
        if meta is None:
            return ckpt, False
        ckpt.truncate_outputs(meta, outputs)
    except CepError as exc:
        raise _fail(str(exc), exc.exit_code) from None
    except OSError as exc:
        raise _fail(f"checkpoint {ckpt.store.path(ckpt.name)}: {exc}") from None
    return ckpt, True


def _config(path: str) -> "Config":
    from cep.config import load_config

    try:
        return load_config(path)
    except CepError as exc:
        raise _fail(str(exc), exc.exit_code) from None


def _run_kafka(cfg: "Config", rules: list[str], quiet: bool, http: str | None,
               log_format: str, sigma_pipelines: tuple[str, ...] = ()) -> None:
    """Kafka mode: consume until SIGTERM, then drain, checkpoint and exit 0."""
    from cep.app.kafka_pipeline import run_kafka
    from cep.app.logs import setup_logging
    from cep.app.ops import Operations

    setup_logging(log_format, logging.WARNING if quiet else logging.INFO)
    collect_less(loading=True)  # already while the rules load, as in file mode
    rs = _load(rules, sigma_pipelines=sigma_pipelines, defer=True)
    if not rs.ok:
        typer.echo(f"cep: {len(rs.errors)} rule error(s); not started", err=True)
        raise typer.Exit(EXIT_RULES)
    if not rs.rules:
        raise _fail("no rules found under " + ", ".join(rules))
    asked = http or cfg.metrics.http
    ops = Operations("kafka", rules, rs.rules, watch=cfg.rules.reload,
                     http=asked or "127.0.0.1:9464", http_required=bool(asked),
                     sigma_pipelines=sigma_pipelines)
    collect_less()  # with the rules made, as in file mode
    try:
        stats = run_kafka(cfg, rs.rules, ops)
    except CepError as exc:
        raise _fail(str(exc), exc.exit_code) from None
    if not quiet:
        typer.echo(f"cep: {stats.events:,} events, {stats.sinks.get('alerts', 0):,} alerts, "
                   f"{stats.dead_letters:,} dead letters, {stats.checkpoints:,} checkpoints",
                   err=True)


def main() -> None:
    """Console-script entry point (also ``python -m cep.cli``, named ``cep`` in messages)."""
    app(prog_name="cep")


if __name__ == "__main__":
    main()
