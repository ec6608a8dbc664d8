# Shared by up.sh and down.sh (sourced, not run): logging, where a broker's data lives, and
# how to recognise the broker process started for it.

log() { printf 'cep-kafka: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Validate PORT (1..65534, the next port is the controller's by default) and set the data
# directory and the files in it.  OWNER_MARKER proves the dir was made by up.sh, so up.sh and
# down.sh never delete a directory they did not create.
set_data_dir() {
    [[ "$PORT" =~ ^[0-9]{1,5}$ ]] || die "invalid port: $PORT"
    PORT=$((10#$PORT))
    ((PORT >= 1 && PORT <= 65534)) || die "invalid port: $PORT"
    DATA_DIR="${CEP_KAFKA_HOME:-/tmp/cep-kafka-$PORT}"
    DATA_DIR="${DATA_DIR%/}"
    [[ -n "$DATA_DIR" ]] || die "CEP_KAFKA_HOME must not be /"
    OWNER_MARKER="$DATA_DIR/.cep-kafka"
    PID_FILE="$DATA_DIR/kafka.pid"
    LOG_FILE="$DATA_DIR/kafka.log"
    CONFIG_FILE="$DATA_DIR/server.properties"
}

# Command line of process $1 (empty when it is gone or a zombie).
proc_cmdline() {
    if [[ -r "/proc/$1/cmdline" ]]; then
        tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true
    else
        ps -p "$1" -o args= 2>/dev/null || true
    fi
}

# True while PID $1 is the broker started for DATA_DIR (the command line is checked so a
# recycled PID is never mistaken for it).
is_our_broker() {
    case "$(proc_cmdline "$1")" in
        *kafka.Kafka*"$CONFIG_FILE"*) return 0 ;;
        *) return 1 ;;
    esac
}
