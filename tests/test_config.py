"""``cep.toml`` loading: typed values, every problem named with file:line, secrets hidden."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cep.config import Secret, load_config, parse_config, parse_duration
from cep.errors import ConfigError
from cep.io.kafka import client_options, describe_options

ROOT = Path(__file__).resolve().parent.parent

FULL = """\
[kafka]
bootstrap_servers = "b1:9092, b2:9092"
group_id = "detect"
exactly_once = false
security_protocol = "SASL_SSL"
sasl_mechanism = "SCRAM-SHA-512"
sasl_plain_username = "cep"
sasl_plain_password = "hunter2-very-secret"
checkpoint_interval = "250ms"
max_event_bytes = 4096

[sources.auth]
kind = "kafka"
topic = "auth-events"
format = "msgpack"
event_time = "meta.time"
event_time_unit = "s"
max_out_of_orderness = "5s"
idle_timeout = 30000

[sinks.alerts]
kind = "kafka"
topic = "alerts"

[state]
max_partial_matches_per_key = 50
checkpoint_dir = "ckpt"

[rules]
paths = ["rules"]
reload = false

[metrics]
http = "127.0.0.1:9464"
"""


def test_a_full_config_becomes_typed_values(tmp_path: Path) -> None:
    path = tmp_path / "cep.toml"
    path.write_text(FULL)
    cfg = load_config(path)
    k = cfg.kafka
    assert k is not None and k.bootstrap_servers == ("b1:9092", "b2:9092")
    assert k.group_id == "detect" and k.exactly_once is False and k.max_event_bytes == 4096
    assert k.changelog == "detect.changelog"
    src = cfg.sources["auth"]
    assert (src.kind, src.topic, src.format, src.event_time, src.event_time_unit) == (
        "kafka", "auth-events", "msgpack", "meta.time", "s")
    assert src.max_out_of_orderness_ms == 5000 and src.idle_timeout_ms == 30000
    assert cfg.sinks["alerts"].topic == "alerts"
    assert cfg.state.checkpoint_interval_ms == 250 and cfg.state.max_partial_matches_per_key == 50
    assert cfg.state.checkpoint_dir == str(tmp_path / "ckpt")
    assert cfg.rules.paths == (str(tmp_path / "rules"),) and cfg.rules.reload is False
    assert cfg.metrics.http == "127.0.0.1:9464" and cfg.uses_kafka


def test_defaults_without_kafka() -> None:
    cfg = parse_config('[sources.input]\nkind = "file"\npath = "-"\n')
    assert cfg.kafka is None and not cfg.uses_kafka
    assert cfg.state.checkpoint_interval_ms == 100 and cfg.state.checkpoint_records == 10_000
    assert cfg.sources["input"].path == "-"
    kafka = parse_config('[kafka]\ngroup_id = "g"\n').kafka
    assert kafka is not None and kafka.exactly_once is True


def test_unknown_keys_are_errors_naming_key_file_and_line() -> None:
    text = FULL.replace('topic = "auth-events"', 'topic = "auth-events"\ncolour = "red"')
    text += "\n[extras]\nx = 1\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text.replace("exactly_once = false", "exactly_once = false\nacks = 1"),
                     "conf/cep.toml")
    message = str(err.value)
    assert "conf/cep.toml:5: unknown key 'acks' in [kafka]" in message
    assert "conf/cep.toml:16: unknown key 'colour' in [sources.auth]" in message
    assert "conf/cep.toml:38: unknown table or key 'extras'" in message
    assert message.index(":5:") < message.index(":16:") < message.index(":38:")


@pytest.mark.parametrize("snippet, expected", [
    ('[kafka]\nexactly_once = "yes"\n', "[kafka].exactly_once must be a boolean"),
    ('[kafka]\nmax_event_bytes = true\n', "[kafka].max_event_bytes must be an integer"),
    ('[kafka]\nmax_partition_fetch_bytes = 0\n',
     "[kafka].max_partition_fetch_bytes must be positive"),
    ('[sources.a]\nkind = "kafka"\n', "[sources.a] is a Kafka source and needs a topic"),
    ('[sources.a]\nkind = "queue"\ntopic = "t"\n', "[sources.a].kind is 'queue'"),
    ('[sources.a]\nkind = "kafka"\ntopic = "t"\nmax_out_of_orderness = "soon"\n',
     "not a duration: 'soon'"),
    ('[sources.a]\nkind = "kafka"\ntopic = "t"\nformat = "csv"\n', "csv is for files"),
    ('[sinks.alerts]\nkind = "file"\n', "[sinks.alerts] is a file sink and needs a path"),
    ('[kafka]\nsecurity_protocol = "SASL_SSL"\n', "needs sasl_mechanism"),
    ('[kafka]\ncheckpoint_interval = "1s"\n[state]\ncheckpoint_interval = "2s"\n',
     "set in both [state] and [kafka]"),
    ('[kafka]\nsasl_plain_password = "${CEP_TEST_UNSET_VARIABLE}"\n',
     "unset environment variable CEP_TEST_UNSET_VARIABLE"),
    ('kafka = 3\n', "kafka must be a table"),
    ("[kafka\n", "invalid TOML"),
])
def test_invalid_values_are_reported(snippet: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=None) as err:
        parse_config(snippet)
    assert expected in str(err.value)


def test_secrets_never_show_in_reprs_logs_or_option_descriptions(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cfg = parse_config(FULL)
    assert cfg.kafka is not None
    assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg.kafka)
    assert repr(cfg.kafka.sasl_plain_password) == "Secret('***')"
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("cep.test").info("config %s %r", cfg, cfg.kafka)
    assert "hunter2" not in caplog.text
    plain = parse_config(FULL.replace('"SASL_SSL"', '"SASL_PLAINTEXT"'))
    assert plain.kafka is not None
    opts = client_options(plain.kafka)
    assert opts["sasl_plain_password"] == "hunter2-very-secret"  # reaches the client only
    assert opts["sasl_mechanism"] == "SCRAM-SHA-512" and opts["sasl_plain_username"] == "cep"
    assert "hunter2" not in describe_options(opts) and "***" in describe_options(opts)


def test_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CEP_TEST_PASSWORD", "from-env")
    k = parse_config('[kafka]\nsasl_plain_password = "${CEP_TEST_PASSWORD}"\n').kafka
    assert k is not None and k.sasl_plain_password == Secret("from-env")


@pytest.mark.parametrize("text, ms", [("100ms", 100), ("5s", 5000), ("1.5m", 90_000),
                                      ("2h", 7_200_000), ("1d", 86_400_000), (250, 250)])
def test_durations(text: str | int, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("bad", ["5", "fast", -1, True, "5 minutes"])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize("name", ["cep.kafka.toml", "cep.local.toml"])
def test_sample_configs_load(name: str) -> None:
    cfg = load_config(ROOT / "runtime" / name)
    assert cfg.sources and cfg.rules.paths


def test_ssl_settings_become_the_clients_ssl_context(tmp_path: Path) -> None:
    import ssl

    ca = Path("/etc/ssl/certs/ca-certificates.crt")
    if not ca.exists():
        pytest.skip("no system CA bundle to load")
    k = parse_config(f'[kafka]\nsecurity_protocol = "SSL"\nssl_cafile = "{ca}"\n'
                     "ssl_check_hostname = false\n").kafka
    assert k is not None
    opts = client_options(k)
    ctx = opts["ssl_context"]
    assert isinstance(ctx, ssl.SSLContext) and ctx.check_hostname is False
    assert opts["security_protocol"] == "SSL" and "sasl_mechanism" not in opts
    assert "ssl_context=<ssl>" in describe_options(opts)


def test_the_fetch_size_per_partition_defaults_to_8_mib() -> None:
    default = parse_config('[kafka]\nbootstrap_servers = "b:9092"\n').kafka
    assert default is not None and default.max_partition_fetch_bytes == 8 << 20
    smaller = parse_config('[kafka]\nmax_partition_fetch_bytes = 1048576\n').kafka
    assert smaller is not None and smaller.max_partition_fetch_bytes == 1 << 20


def test_max_events_per_match_is_a_positive_state_setting() -> None:
    from cep.operator.records import MAX_EVENTS_PER_MATCH

    assert parse_config("").state.max_events_per_match == MAX_EVENTS_PER_MATCH == 1_000
    assert parse_config("[state]\nmax_events_per_match = 25\n").state.max_events_per_match == 25
    with pytest.raises(ConfigError, match=r"\[state\].max_events_per_match must be positive"):
        parse_config("[state]\nmax_events_per_match = 0\n")


def test_every_option_is_declared_once_and_the_docs_table_is_made_from_the_declarations(
        ) -> None:
    from cep.config import (
        KafkaConfig,
        MetricsConfig,
        RulesConfig,
        SinkConfig,
        SourceConfig,
        StateConfig,
        options_markdown,
    )
    from cep.settings import declared

    docs = (Path(__file__).resolve().parents[1] / "docs" / "kafka.md").read_text()
    assert options_markdown() in docs, (
        "docs/kafka.md's option table differs from the declarations: paste the output of "
        "python -c 'from cep.config import options_markdown; print(options_markdown())'")
    for cls in (SourceConfig, SinkConfig, KafkaConfig, StateConfig, RulesConfig, MetricsConfig):
        decl = declared(cls)
        assert len({d.setting.key for d in decl}) == len(decl)
        # the default an unconfigured table gets is the declared one
        if cls not in (SourceConfig, SinkConfig):
            made = cls()
            assert all(getattr(made, d.name) == d.default for d in decl)


def test_a_declared_option_is_read_by_its_kind() -> None:
    cfg = parse_config(
        '[kafka]\nbootstrap_servers = "a:1, b:2"\nsession_timeout = "3s"\n'
        'repartition_partitions = 4\n[state]\nmax_future_skew = "off"\ncheckpoint_dir = "ck"\n'
        '[rules]\npaths = "r"\n', "/x/cep.toml")
    assert cfg.kafka is not None
    assert cfg.kafka.bootstrap_servers == ("a:1", "b:2")
    assert cfg.kafka.session_timeout_ms == 3000 and cfg.kafka.repartition_partitions == 4
    assert cfg.state.max_future_skew_ms is None and cfg.state.checkpoint_dir == "/x/ck"
    assert cfg.rules.paths == ("/x/r",)
    with pytest.raises(ConfigError, match=r"\[kafka\].bootstrap_servers must be a list"):
        parse_config('[kafka]\nbootstrap_servers = []\n')
    with pytest.raises(ConfigError, match=r"\[kafka\].repartition_partitions must be positive"):
        parse_config('[kafka]\nrepartition_partitions = 0\n')
