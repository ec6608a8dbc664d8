#!/usr/bin/env bash
# Stop the Kafka broker started by runtime/kafka/up.sh and remove its data dir
# (--keep-data: keep it, so that up.sh --keep-data restarts on the same topics).
#
# Usage: runtime/kafka/down.sh [--port N] [--keep-data]
#
# SIGTERM first (controlled shutdown), SIGKILL if it is still alive after
# CEP_KAFKA_STOP_TIMEOUT seconds (default 20). Exits 0 when nothing runs.
# Uses the same CEP_KAFKA_PORT / CEP_KAFKA_HOME as up.sh to find the broker.
set -euo pipefail

# shellcheck source=common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"

usage() {
    cat >&2 <<'EOF'
Usage: runtime/kafka/down.sh [--port N] [--keep-data]

Stops the broker that runtime/kafka/up.sh started for port N (default 9092,
or $CEP_KAFKA_PORT) and deletes its data directory.

  --keep-data   leave the data directory in place: `up.sh --keep-data` then
                restarts the broker with its topics, offsets and transactions
                (a planned broker restart).
EOF
}

# --- Arguments and settings ------------------------------------------------
PORT="${CEP_KAFKA_PORT:-9092}"
KEEP_DATA=0
while (($#)); do
    case "$1" in
        --keep-data) KEEP_DATA=1; shift ;;
        --port) (($# >= 2)) || die "--port needs a value"; PORT="$2"; shift 2 ;;
        --port=*) PORT="${1#--port=}"; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage; die "unknown argument: $1" ;;
    esac
done
set_data_dir
STOP_TIMEOUT="${CEP_KAFKA_STOP_TIMEOUT:-20}"
[[ "$STOP_TIMEOUT" =~ ^[0-9]+$ ]] || die "invalid CEP_KAFKA_STOP_TIMEOUT: $STOP_TIMEOUT"

# Nothing to do when up.sh never made this data dir.
if [[ ! -d "$DATA_DIR" ]]; then
    log "no broker data in $DATA_DIR; nothing to stop"
    exit 0
fi

# Serialise with up.sh for the same data dir.
exec 9>"$DATA_DIR.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi

# --- Stop the broker -------------------------------------------------------
pid=""
if [[ -f "$PID_FILE" ]]; then
    pid="$(<"$PID_FILE")"
fi
if [[ "$pid" =~ ^[0-9]+$ ]] && is_our_broker "$pid"; then
    log "stopping Kafka broker (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + STOP_TIMEOUT))
    while is_our_broker "$pid" && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if is_our_broker "$pid"; then
        log "still running after ${STOP_TIMEOUT}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for _ in {1..50}; do
            is_our_broker "$pid" || break
            sleep 0.1
        done
    fi
    is_our_broker "$pid" && die "could not stop pid $pid"
    log "stopped"
else
    log "no running broker for $DATA_DIR"
fi

# --- Remove the data dir (only if up.sh created it) ------------------------
if ((KEEP_DATA)); then
    log "kept $DATA_DIR (up.sh --port $PORT --keep-data restarts on it)"
elif [[ -f "$OWNER_MARKER" ]]; then
    rm -rf -- "$DATA_DIR"
    log "removed $DATA_DIR"
else
    log "$DATA_DIR was not created by up.sh; left in place"
fi
