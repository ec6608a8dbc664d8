"""The shipped schema mappings: public log formats to the rule library's event schema
(docs/schema.md).

Each ``*_events`` function streams one dataset and yields one schema event (a JSON-ready dict)
per input row, in the dataset's arrival order, without dropping or reordering anything: the
engine, not the mapping, decides what is late.  Every event carries its event time in ``ts``
(epoch milliseconds), so the mapped stream runs with ``cep run``'s defaults.  A source field
the mapping does not rename is kept, under the dataset's own namespace (``winlog.event_data``
for Windows, ``ssh``, ``ulb``), so rules can use fields the schema does not name (Sysmon's
``Image``, ``ParentImage``, ``CommandLine``).  Inputs may be gzip, bz2 or zstd compressed
(:func:`cep.io.sources.open_input`).

``cep map NAME FILE`` writes a mapping's events as JSON lines, ready for ``cep run``::

    cep map ssh ../shared/data/ssh-auth-logs/events.csv | cep run rules/login --input -
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TextIO

from cep.io.sources import open_input

__all__ = [
    "ssh_events", "windows_csv_events", "windows_raw_events", "creditcard_events",
    "lanl_events", "write_jsonl", "DATASETS",
]


def _text(path: str | Path) -> TextIO:
    """``path`` as UTF-8 text for the csv and json modules, decompressed when it is gzip,
    bz2 or zstd (``-`` is standard input)."""
    return io.TextIOWrapper(open_input(str(path)), encoding="utf-8", newline="")


def _keep(ev: dict[str, Any], namespace: str, row: dict[str, Any], renamed: set[str]) -> None:
    """Every field of ``row`` that is not in ``renamed`` (and has a value), under
    ``ev[namespace]`` (a dotted path) by its own name, which may contain dots."""
    rest = {k: v for k, v in row.items()
            if k not in renamed and v not in (None, "", "-") and k is not None}
    if not rest:
        return
    cur = ev
    for part in namespace.split("."):
        cur = cur.setdefault(part, {})
    for k, v in rest.items():
        cur.setdefault(k, v)

# --------------------------------------------------------------------------- helpers


def _epoch_ms(dt: datetime) -> int:
    return round(dt.timestamp() * 1000)


def _iso_ms(text: str, tz: timezone = UTC) -> int:
    """``YYYY-MM-DD[T ]HH:MM:SS`` without an offset, read in time zone ``tz``."""
    return _epoch_ms(datetime.fromisoformat(text).replace(tzinfo=tz))


def _ip(text: str | None) -> str | None:
    """The address as an IP (IPv4-mapped IPv6 unwrapped), or None when it is not an IP."""
    if not text:
        return None
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return str(addr)


def _int(text: Any) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def _set(obj: dict[str, Any], path: str, value: Any) -> None:
    """``obj["a"]["b"] = value`` for ``path`` ``a.b``; absent (None/empty) values are left out."""
    if value is None or value == "":
        return
    parts = path.split(".")
    cur = obj
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = value


def _source(ev: dict[str, Any], address: str | None, port: Any = None,
            domain: str | None = None) -> None:
    """``source.*``: ``ip`` only for real IPs, ``domain`` for a client host name,
    ``address`` always the best identifier of the client (the IP, else the host name)."""
    ip = _ip(address)
    _set(ev, "source.ip", ip)
    _set(ev, "source.port", _int(port))
    if domain and domain != "-":
        _set(ev, "source.domain", domain)
    if ip is not None:
        _set(ev, "source.address", ip)
    elif address and address != "-":
        _set(ev, "source.address", address)
    elif domain and domain != "-":
        _set(ev, "source.address", domain)


# --------------------------------------------------------------------------- ssh-auth-logs

_SSH_LOGIN = {"FAILED_PASSWORD": "failure", "ACCEPTED": "success"}


def ssh_events(path: str | Path) -> Iterator[dict[str, Any]]:
    """``ssh-auth-logs/events.csv`` (parsed sshd/PAM syslog), one event per row.

    Only ``FAILED_PASSWORD`` and ``ACCEPTED`` become ``event.action: login``: sshd also logs a
    PAM ``AUTH_FAILURE`` (and often ``INVALID_USER``) for the same attempt, so counting those
    as logins would count one password twice.  They keep their kind, lower-cased, as action.
    The syslog time has no zone: it is read as UTC.  Columns not renamed (``invalid_user``,
    ``method``) are kept under ``ssh``.
    """
    with _text(path) as fh:
        for row in csv.DictReader(fh):
            kind = row["event"]
            ev: dict[str, Any] = {"ts": _iso_ms(row["ts"])}
            _set(ev, "event.dataset", "ssh")
            _set(ev, "event.code", kind)
            if kind in _SSH_LOGIN:
                _set(ev, "event.action", "login")
                _set(ev, "event.outcome", _SSH_LOGIN[kind])
            else:
                _set(ev, "event.action", kind.lower())
            _set(ev, "event.repeat_count", _int(row["repeat"]))
            _set(ev, "user.name", row["user"])
            _source(ev, row["src_ip"], row["src_port"])
            _set(ev, "host.name", row["host"])
            _set(ev, "process.name", row["program"])
            _set(ev, "process.pid", _int(row["pid"]))
            _set(ev, "log.file.path", row["source"])
            _set(ev, "log.file.line", _int(row["line_no"]))
            _set(ev, "message", row["message"])
            _keep(ev, "ssh", row, _SSH_RENAMED)
            yield ev


_SSH_RENAMED = {"ts", "event", "repeat", "user", "src_ip", "src_port", "host", "program", "pid",
                "source", "line_no", "message"}


# --------------------------------------------------------------------------- windows security

WINDOWS_TZ = timezone(timedelta(hours=-4))
"""The OTRF lab hosts log ``EventTime`` in local time, UTC-4 (SOURCE.md)."""

_WIN_ACTION = {
    4624: ("login", "success"),
    4625: ("login", "failure"),
    4634: ("logoff", "success"),
    4647: ("logoff", "success"),
    4648: ("explicit_credentials_login", None),
    4672: ("special_privileges_assigned", "success"),
    4768: ("kerberos_tgt_request", None),
    4769: ("kerberos_service_ticket", None),
    4770: ("kerberos_service_ticket_renewed", None),
    4771: ("kerberos_preauth", "failure"),
    4776: ("credential_validation", None),
}
"""Security EventID → (``event.action``, ``event.outcome``); None: outcome from ``Status``."""

_WIN_CSV_RENAMED = {"event_time_local", "host", "EventID", "RecordNumber", "received_utc",
                    "label"}
_WIN_RAW_RENAMED = {"EventTime", "Hostname", "EventID", "RecordNumber", "Channel", "@timestamp"}
"""Windows fields that become schema fields (CSV export, raw capture); every other one is
kept under ``winlog.event_data`` by its own name."""


def _windows_event(event_id: int, time_local: str, host: str | None, data: dict[str, Any],
                   record: Any, channel: str | None, renamed: set[str]) -> dict[str, Any]:
    ev: dict[str, Any] = {"ts": _iso_ms(time_local, WINDOWS_TZ)}
    _set(ev, "event.dataset", "windows." + channel.lower() if channel else "windows")
    _set(ev, "event.code", str(event_id))
    action, outcome = (_WIN_ACTION.get(event_id, (None, None)) if channel == "Security"
                       else (None, None))
    _set(ev, "event.action", action)
    if action is not None:
        status = data.get("Status")
        if outcome is None and status:
            outcome = "success" if status.lower() == "0x0" else "failure"
        _set(ev, "event.outcome", outcome)
        user = data.get("TargetUserName")
        domain = data.get("TargetDomainName")
        if user and "@" in user:  # 4769: "account@REALM"
            user, domain = user.split("@", 1)
        if user and user != "-":
            _set(ev, "user.name", user)
            _set(ev, "user.domain", domain if domain != "-" else None)
        _source(ev, data.get("IpAddress"), data.get("IpPort"),
                data.get("WorkstationName") or data.get("Workstation"))
    _set(ev, "host.name", host)
    _set(ev, "winlog.channel", channel)
    _set(ev, "winlog.event_id", event_id)
    _set(ev, "winlog.record_id", _int(record))
    _keep(ev, "winlog.event_data", data, renamed)
    return ev


def windows_csv_events(path: str | Path) -> Iterator[dict[str, Any]]:
    """``windows-security-mordor/security_auth_events.csv`` (Security auth events, sorted by
    event time); the ground-truth ``label`` column becomes ``labels.technique``."""
    with _text(path) as fh:
        for row in csv.DictReader(fh):
            ev = _windows_event(int(row["EventID"]), row["event_time_local"], row["host"],
                                row, row["RecordNumber"], "Security", _WIN_CSV_RENAMED)
            _set(ev, "labels.technique", row["label"])
            _set(ev, "event.ingested", row["received_utc"])
            yield ev


def windows_raw_events(path: str | Path) -> Iterator[dict[str, Any]]:
    """The raw OTRF capture (``purplesharp_…json.gz``), every channel, in arrival
    (``@timestamp``) order.  Event time is ``EventTime`` (host local time, UTC-4)."""
    with _text(path) as fh:
        for line in fh:
            if not line.strip():
                continue
            raw = json.loads(line)
            ev = _windows_event(int(raw["EventID"]), raw["EventTime"], raw.get("Hostname"),
                                raw, raw.get("RecordNumber"), raw.get("Channel"),
                                _WIN_RAW_RENAMED)
            _set(ev, "event.ingested", raw.get("@timestamp"))
            yield ev


# --------------------------------------------------------------------------- creditcard-ulb


def creditcard_events(path: str | Path) -> Iterator[dict[str, Any]]:
    """``creditcard-ulb`` (card payments, ``Time`` in seconds from the first transaction).

    No card, merchant or customer exists in the data, so ``card.id``, ``merchant.id`` and
    ``user.name`` are absent.  The dataset has no model score either; ``event.risk_score`` is
    the negated PCA component ``V14`` (the component most reported as separating fraud), a
    stand-in so that score-threshold rules can run.  The label stays under ``ulb.class``;
    the other columns (the PCA components) are kept under ``ulb`` as numbers.
    """
    with _text(path) as fh:
        for row in csv.DictReader(fh):
            ev: dict[str, Any] = {"ts": int(row["Time"]) * 1000}
            _set(ev, "event.dataset", "creditcard.ulb")
            _set(ev, "event.action", "payment")
            _set(ev, "event.outcome", "success")
            _set(ev, "event.risk_score", round(-float(row["V14"]), 4))
            _set(ev, "transaction.id", row["row_id"])
            ev.setdefault("transaction", {})["amount_minor"] = round(float(row["Amount"]) * 100)
            _set(ev, "transaction.currency", "EUR")
            ev["ulb"] = {"row_id": int(row["row_id"]), "class": int(row["Class"])}
            _keep(ev, "ulb", {k: float(v) for k, v in row.items() if k not in _ULB_RENAMED and v},
                  _ULB_RENAMED)
            yield ev


_ULB_RENAMED = {"row_id", "Time", "Amount", "Class"}


# --------------------------------------------------------------------------- lanl-auth-sample

_LANL_ACTION = {
    "LogOn": "login", "LogOff": "logoff", "TGS": "kerberos_service_ticket",
    "TGT": "kerberos_tgt_request", "AuthMap": "auth_map",
}


def lanl_events(path: str | Path) -> Iterator[dict[str, Any]]:
    """``lanl-auth-sample`` (no header): time, source user@domain, destination user@domain,
    source computer, destination computer, auth type, logon type, orientation, result."""
    with _text(path) as fh:
        for row in csv.reader(fh):
            t, src_user, dst_user, src_pc, dst_pc, auth, logon, orient, result = row
            ev: dict[str, Any] = {"ts": int(t) * 1000}
            _set(ev, "event.dataset", "lanl.auth")
            _set(ev, "event.action", _LANL_ACTION.get(orient, orient.lower()))
            _set(ev, "event.outcome", "success" if result == "Success" else "failure")
            name, _, domain = src_user.partition("@")
            _set(ev, "user.name", name)
            _set(ev, "user.domain", domain)
            name, _, domain = dst_user.partition("@")
            _set(ev, "user.target.name", name)
            _set(ev, "user.target.domain", domain)
            _source(ev, None, None, src_pc if src_pc != "?" else None)
            _set(ev, "host.name", dst_pc if dst_pc != "?" else None)
            _set(ev, "lanl.auth_type", auth if auth != "?" else None)
            _set(ev, "lanl.logon_type", logon if logon != "?" else None)
            yield ev


# --------------------------------------------------------------------------- output

DATASETS = {  # name (``cep map NAME``) → mapping
    "ssh": ssh_events,
    "windows-csv": windows_csv_events,
    "windows-raw": windows_raw_events,
    "creditcard": creditcard_events,
    "lanl": lanl_events,
}


def write_jsonl(events: Iterator[dict[str, Any]], out: Any) -> int:
    """Write events as JSON lines to a text stream; returns how many."""
    n = 0
    dumps = json.dumps
    for ev in events:
        out.write(dumps(ev, separators=(",", ":"), ensure_ascii=False))
        out.write("\n")
        n += 1
    return n
