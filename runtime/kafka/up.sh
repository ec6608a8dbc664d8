#!/usr/bin/env bash
# Start a single-node Apache Kafka broker (KRaft, combined broker+controller)
# bound to 127.0.0.1, for development and tests. No Docker, no Kafka tarball:
# the broker jars and their runtime dependencies come from Maven Central.
#
# Usage: runtime/kafka/up.sh [--port N] [--keep-data]
#
# Progress goes to stderr; the LAST line of stdout is the bootstrap address
# (127.0.0.1:PORT), so callers can do: BOOTSTRAP=$(runtime/kafka/up.sh | tail -n1)
# Running it again while the broker is up and healthy just prints the address.
# See runtime/kafka/README.md for the environment variables.
set -euo pipefail

# --- Pinned versions -------------------------------------------------------
# Kafka broker (org.apache.kafka:kafka_2.13). 4.3.1 is the newest 4.x release
# whose complete artifact set is on Maven Central (4.4.0 lacks kafka-tools-api).
KAFKA_VERSION="4.3.1"
# SLF4J -> log4j2 binding; same log4j2 version that kafka-server depends on.
LOG4J_VERSION="2.25.4"
DEPENDENCY_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd -- "$SCRIPT_DIR/../.." && pwd)"

# shellcheck source=common.sh
source "$SCRIPT_DIR/common.sh"

usage() {
    cat >&2 <<'EOF'
Usage: runtime/kafka/up.sh [--port N] [--keep-data]

Starts a single-node Kafka broker on 127.0.0.1:N (default 9092, or
$CEP_KAFKA_PORT) and prints the bootstrap address as the last line of stdout.

  --keep-data   restart on the data a previous start on this port left behind
                (topics, offsets, transactions survive, as after a broker
                crash); without it every start begins from an empty broker.
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

CACHE_ROOT="${CEP_KAFKA_CACHE:-$HOME/.cache/cep-kafka}"
VERSION_DIR="$CACHE_ROOT/$KAFKA_VERSION"
LIBS_DIR="$VERSION_DIR/libs"
COMPLETE_MARKER="$VERSION_DIR/.complete"
READY_TIMEOUT="${CEP_KAFKA_TIMEOUT:-90}"
HEAP_OPTS="${CEP_KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
EXTRA_JVM_OPTS="${CEP_KAFKA_JVM_OPTS:-}"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"

[[ "$READY_TIMEOUT" =~ ^[0-9]+$ ]] || die "invalid CEP_KAFKA_TIMEOUT: $READY_TIMEOUT"

# Beside the data dir's other files (common.sh: set_data_dir).
LOG4J_FILE="$DATA_DIR/log4j2.properties"
BOOTSTRAP="127.0.0.1:$PORT"

# --- Helpers ---------------------------------------------------------------

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Print the PID of the broker this script started for DATA_DIR, if it runs.
# The command line is checked so a recycled PID is never mistaken for it.
running_broker_pid() {
    local pid
    [[ -f "$PID_FILE" ]] || return 1
    pid="$(<"$PID_FILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] && is_our_broker "$pid" && printf '%s\n' "$pid"
}

# Last lines of the broker log, for error messages.
show_log_tail() {
    if [[ -f "$LOG_FILE" ]]; then
        log "last lines of $LOG_FILE:"
        tail -n 40 "$LOG_FILE" >&2 || true
    fi
}

# SIGTERM, then SIGKILL after 20 s; used when a start attempt fails.
stop_pid() {
    local pid="$1" i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 200; i++)); do
        [[ -n "$(proc_cmdline "$pid")" ]] || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

# Java 17+ is required by the Kafka 4 broker.
check_java() {
    local spec
    command -v "$JAVA" >/dev/null 2>&1 || die "java not found (install a JDK 17+, e.g. apt-get install openjdk-17-jdk-headless)"
    spec="$("$JAVA" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p')"
    spec="${spec%%.*}"
    if ! [[ "$spec" =~ ^[0-9]+$ ]] || ((spec < 17)); then
        die "Kafka $KAFKA_VERSION needs Java 17 or newer (found: ${spec:-unknown})"
    fi
}

# --- Step 1: fetch the broker jars (once per version) ----------------------
# A throwaway pom depending on kafka_2.13 (+ a logging backend) is resolved by
# Maven into a temp dir, which is then renamed into place and marked complete.
# A lock serialises concurrent first runs.
fetch_kafka() {
    [[ -f "$COMPLETE_MARKER" ]] && return 0
    command -v mvn >/dev/null 2>&1 || die "mvn not found; Maven is needed once to fetch Kafka $KAFKA_VERSION (apt-get install maven)"
    mkdir -p "$VERSION_DIR"
    (
        if command -v flock >/dev/null 2>&1; then flock 8; fi
        # Another process may have finished the download while we waited.
        [[ -f "$COMPLETE_MARKER" ]] && exit 0
        log "fetching Kafka $KAFKA_VERSION and its runtime dependencies into $LIBS_DIR (one time)"
        tmp="$(mktemp -d "$VERSION_DIR/.fetch.XXXXXX")"
        trap 'rm -rf -- "$tmp"' EXIT
        cat >"$tmp/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.cep</groupId>
  <artifactId>cep-kafka-broker</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
        # Maven's output is kept aside (stdout is reserved for the address) and
        # shown only when the fetch fails.
        if ! mvn -B -q -Dstyle.color=never -f "$tmp/pom.xml" "$DEPENDENCY_PLUGIN:copy-dependencies" \
            -DincludeScope=runtime -DoutputDirectory="$tmp/libs" >"$tmp/mvn.log" 2>&1; then
            tail -n 40 "$tmp/mvn.log" >&2
            die "Maven could not fetch Kafka $KAFKA_VERSION (is Maven Central reachable?)"
        fi
        [[ -f "$tmp/libs/kafka_2.13-$KAFKA_VERSION.jar" ]] || die "fetch incomplete: kafka_2.13-$KAFKA_VERSION.jar missing"
        rm -rf -- "$LIBS_DIR"
        mv -- "$tmp/libs" "$LIBS_DIR"
        (cd "$LIBS_DIR" && ls) >"$COMPLETE_MARKER"
        log "fetched $(wc -l <"$COMPLETE_MARKER") jars ($(du -sh "$LIBS_DIR" | cut -f1))"
    ) 8>"$VERSION_DIR/.lock"
}

# --- Readiness probe -------------------------------------------------------
# A listening port is not enough (requests are only served once the broker is
# registered and unfenced), so a real client asks for the cluster metadata.
# Preferred: aiokafka from the project's venv (also proves the project's client
# speaks to this broker); fallback: Kafka's Java AdminClient.
PROBE_PY=""
pick_probe() {
    local candidate
    for candidate in "${CEP_KAFKA_PYTHON:-}" "$REPO_ROOT/.venv/bin/python" python3; do
        [[ -n "$candidate" ]] || continue
        if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import aiokafka' 2>/dev/null; then
            PROBE_PY="$candidate"
            return 0
        fi
    done
    # No Python with aiokafka: use a single-file Java program (run from source).
    cat >"$DATA_DIR/ReadyProbe.java" <<'EOF'
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;

/** Exit 0 when the broker at args[0] answers DescribeCluster with a broker. */
public class ReadyProbe {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        props.put("request.timeout.ms", "5000");
        props.put("default.api.timeout.ms", "8000");
        try (Admin admin = Admin.create(props)) {
            int brokers = admin.describeCluster().nodes().get(8, TimeUnit.SECONDS).size();
            System.exit(brokers > 0 ? 0 : 1);
        } catch (Exception e) {
            System.exit(1);
        }
    }
}
EOF
}

probe_once() {
    if [[ -n "$PROBE_PY" ]]; then
        "$PROBE_PY" - "$BOOTSTRAP" >/dev/null 2>&1 <<'EOF'
import asyncio
import sys

from aiokafka.admin import AIOKafkaAdminClient


async def probe(bootstrap: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
    finally:
        await admin.close()
    return bool(cluster["brokers"])


sys.exit(0 if asyncio.run(asyncio.wait_for(probe(sys.argv[1]), 10)) else 1)
EOF
    else
        "$JAVA" -Dcep.kafka.log.level=OFF -Dlog4j2.configurationFile="$LOG4J_FILE" \
            -cp "$LIBS_DIR/*" "$DATA_DIR/ReadyProbe.java" "$BOOTSTRAP" >/dev/null 2>&1
    fi
}

# Wait until broker $1 serves clients; fail if it dies or the timeout passes.
wait_ready() {
    local pid="$1" deadline=$((SECONDS + READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        if [[ -z "$(proc_cmdline "$pid")" ]]; then
            show_log_tail
            die "the Kafka broker (pid $pid) exited during startup"
        fi
        if port_open "$PORT" && probe_once; then
            return 0
        fi
        sleep 0.5
    done
    return 1
}

# --- Main ------------------------------------------------------------------
# Serialise up.sh/down.sh for the same data dir (the lock file lives beside it).
mkdir -p -- "$(dirname -- "$DATA_DIR")"
exec 9>"$DATA_DIR.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi

# Already running? Then only make sure it is healthy and print the address.
if pid="$(running_broker_pid)"; then
    pick_probe
    if wait_ready "$pid"; then
        log "broker already running (pid $pid, data $DATA_DIR)"
        printf '%s\n' "$BOOTSTRAP"
        exit 0
    fi
    show_log_tail
    die "a broker (pid $pid) runs for $DATA_DIR but does not answer on $BOOTSTRAP; run runtime/kafka/down.sh --port $PORT"
fi

port_open "$PORT" && die "port $PORT on 127.0.0.1 is already used by another process (choose one with --port N)"

check_java
fetch_kafka

# Controller listener: CEP_KAFKA_CONTROLLER_PORT, else the first free port
# after the client port.
if ((KEEP_DATA)) && [[ -f "$DATA_DIR/logs/meta.properties" && -f "$CONFIG_FILE" ]]; then
    # The quorum was formatted with this controller address: keep it.
    CONTROLLER_PORT="$(sed -n 's/^controller\.quorum\.bootstrap\.servers=127\.0\.0\.1://p' "$CONFIG_FILE")"
    [[ "$CONTROLLER_PORT" =~ ^[0-9]+$ ]] || die "cannot read the controller port from $CONFIG_FILE"
    port_open "$CONTROLLER_PORT" && die "controller port $CONTROLLER_PORT is already in use"
elif [[ -n "${CEP_KAFKA_CONTROLLER_PORT:-}" ]]; then
    CONTROLLER_PORT="$CEP_KAFKA_CONTROLLER_PORT"
    [[ "$CONTROLLER_PORT" =~ ^[0-9]+$ && "$CONTROLLER_PORT" != "$PORT" ]] || die "invalid CEP_KAFKA_CONTROLLER_PORT: $CONTROLLER_PORT"
    port_open "$CONTROLLER_PORT" && die "controller port $CONTROLLER_PORT is already in use"
else
    CONTROLLER_PORT=$((PORT + 1))
    while port_open "$CONTROLLER_PORT"; do
        CONTROLLER_PORT=$((CONTROLLER_PORT + 1))
        ((CONTROLLER_PORT <= 65535 && CONTROLLER_PORT <= PORT + 100)) || die "no free controller port after $PORT"
    done
fi

# Fresh data dir for every start (a stale one from a killed broker is wiped,
# but only if this script created it), unless --keep-data finds a formatted one.
REUSE=0
if ((KEEP_DATA)) && [[ -f "$OWNER_MARKER" && -f "$DATA_DIR/logs/meta.properties" ]]; then
    REUSE=1
    log "keeping the data in $DATA_DIR"
elif [[ -e "$DATA_DIR" ]]; then
    if [[ -f "$OWNER_MARKER" ]]; then
        rm -rf -- "$DATA_DIR"
    elif [[ -n "$(ls -A -- "$DATA_DIR" 2>/dev/null)" ]]; then
        die "$DATA_DIR exists and was not created by this script; refusing to wipe it (set CEP_KAFKA_HOME)"
    fi
fi
mkdir -p -- "$DATA_DIR/logs"
: >"$OWNER_MARKER"

# Broker configuration: one KRaft node acting as broker and controller, every
# listener on loopback, internal topics with replication factor 1 (a single
# node can never satisfy the default of 3, which would break consumer groups
# and transactions).
cat >"$CONFIG_FILE" <<EOF
# Generated by runtime/kafka/up.sh; rewritten on every start.
node.id=1
process.roles=broker,controller
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
log.dirs=$DATA_DIR/logs

num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
delete.topic.enable=true

offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
# Optional extra broker settings, appended verbatim (later keys win).
if [[ -n "${CEP_KAFKA_EXTRA_CONFIG:-}" ]]; then
    printf '\n# CEP_KAFKA_EXTRA_CONFIG\n%s\n' "$CEP_KAFKA_EXTRA_CONFIG" >>"$CONFIG_FILE"
fi

# log4j2 to the console (redirected to kafka.log); level via a system property.
cat >"$LOG4J_FILE" <<'EOF'
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = ${sys:cep.kafka.log.level:-INFO}
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = ${sys:cep.kafka.log.level:-INFO}
logger.state.name = state.change.logger
logger.state.level = WARN
EOF

read -r -a heap_opts <<<"$HEAP_OPTS"
read -r -a extra_opts <<<"$EXTRA_JVM_OPTS"
jvm_opts=(
    ${heap_opts[@]+"${heap_opts[@]}"}
    -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
    -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$LOG4J_FILE"
    ${extra_opts[@]+"${extra_opts[@]}"}
)

# Format the log dir with a random cluster id. --standalone makes this node the
# single voter of a dynamic KRaft quorum (controller.quorum.bootstrap.servers).
# A Kafka cluster id is 16 random bytes in URL-safe base64 without padding; one
# starting with '-' would read as a command-line flag, so draw again.
cluster_id="-"
while [[ "$cluster_id" == -* ]]; do
    cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
done
if ((REUSE)); then
    : # already formatted
else
log "formatting $DATA_DIR/logs (cluster id $cluster_id)"
if ! "$JAVA" -Dcep.kafka.log.level=WARN -Dlog4j2.configurationFile="$LOG4J_FILE" -cp "$LIBS_DIR/*" \
    kafka.tools.StorageTool format --cluster-id "$cluster_id" --config "$CONFIG_FILE" --standalone \
    >"$LOG_FILE" 2>&1; then
    show_log_tail
    die "kafka-storage format failed"
fi
fi

# Start the broker in the background, detached from this shell (nohup, no
# stdin, output to kafka.log, lock fd closed so it is not held by the broker).
log "starting Kafka $KAFKA_VERSION on $BOOTSTRAP (controller 127.0.0.1:$CONTROLLER_PORT, data $DATA_DIR)"
started=$SECONDS
nohup "$JAVA" "${jvm_opts[@]}" -cp "$LIBS_DIR/*" kafka.Kafka "$CONFIG_FILE" \
    >>"$LOG_FILE" 2>&1 </dev/null 9>&- &
pid=$!
printf '%s\n' "$pid" >"$PID_FILE"

pick_probe
if ! wait_ready "$pid"; then
    show_log_tail
    stop_pid "$pid"
    die "the Kafka broker did not become ready within ${READY_TIMEOUT}s (log: $LOG_FILE)"
fi
log "ready after $((SECONDS - started))s (pid $pid, log $LOG_FILE)"
printf '%s\n' "$BOOTSTRAP"
