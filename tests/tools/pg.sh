#!/usr/bin/env bash
# pg.sh - a throw-away PostgreSQL server for the tests and the bench.
#
#   pg.sh start DIR [PORT]  initdb + pg_ctl start in DIR (created, must not
#                           hold a server yet), listening only on 127.0.0.1
#                           at PORT (default: a free one), unix sockets in
#                           DIR; creates database wbmb and role wbmb (password
#                           in DIR/password, scram over TCP). Prints nothing;
#                           DIR/conninfo holds the bridge's conninfo
#                           (without the password), DIR/port the port.
#   pg.sh stop DIR          pg_ctl stop -m fast (no-op when not running)
#   pg.sh kill DIR          pg_ctl stop -m immediate: the server dies as in a
#                           crash; a later `start DIR` recovers from its WAL
#   pg.sh restart DIR       start again after stop/kill, same port
#   pg.sh standby DIR PRIMARY_DIR
#                           a streaming-replication standby of the server in
#                           PRIMARY_DIR (pg_basebackup -R over its socket),
#                           in DIR on a free port, started; same roles and
#                           password
#   pg.sh promote DIR       pg_ctl promote: the standby becomes a primary
#   pg.sh psql DIR SQL      runs SQL as the superuser on database wbmb,
#                           unaligned, tuples only
#   pg.sh with CMD [ARG...] starts a server in a new temp folder, runs CMD
#                           with WBMB_TEST_PG_DIR naming it, stops and
#                           removes it; CMD's exit status
#
# The server runs as an unprivileged user: when run as root (CI), as
# $WBMB_PG_USER (default wbmbtest, created as a system user when missing),
# through runuser. Binaries from $PGBIN (default /usr/lib/postgresql/15/bin,
# Debian's postgresql-15).
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PG_USER=${WBMB_PG_USER:-wbmbtest}

as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u "$PG_USER" -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

cmd=${1:?usage: pg.sh start|stop|kill|restart|standby|promote|psql DIR ... | with CMD...}
if [ "$cmd" = with ]; then
    shift
    top=$(mktemp -d "${TMPDIR:-/tmp}/wbmb-pg.XXXXXX")
    trap '"$0" stop "$top/srv"; rm -rf "$top"' EXIT
    "$0" start "$top/srv"
    rc=0
    WBMB_TEST_PG_DIR="$top/srv" "$@" || rc=$?
    exit $rc
fi
dir=${2:?usage: pg.sh $cmd DIR}

case $cmd in
start)
    [ -x "$PGBIN/initdb" ] || { echo "pg.sh: no $PGBIN/initdb (install postgresql-15)" >&2; exit 1; }
    if [ "$(id -u)" -eq 0 ] && ! id -u "$PG_USER" >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER"
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" -eq 0 ]; then
        chown "$PG_USER" "$dir"
        # The tests' folders are root's 0700 mktemp ones: let the server's
        # user through (o+x, not o+r) the ones between DIR and the temp root.
        p=$(dirname "$dir")
        tmp=$(cd "${TMPDIR:-/tmp}" && pwd)
        while [ "${p#"$tmp"/}" != "$p" ]; do
            chmod o+x "$p"
            p=$(dirname "$p")
        done
    fi
    port=${3:-$(free_port)}
    echo "$port" >"$dir/port"
    head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$dir/password"
    chmod 600 "$dir/password"
    as_pg "$PGBIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
        --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 40
shared_buffers = 32MB
password_encryption = scram-sha-256
log_min_messages = warning
CONF
    # Superuser over the socket without a password (the tests' psql); the
    # bridge's role over TCP with its password only.
    cat >"$dir/data/pg_hba.conf" <<HBA
local all postgres trust
local replication postgres trust
host all wbmb 127.0.0.1/32 scram-sha-256
HBA
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null ||
        { cat "$dir/server.log" >&2; exit 1; }
    pw=$(cat "$dir/password")
    as_pg "$PGBIN/psql" -h "$dir" -p "$port" -U postgres -d postgres -qAt -v ON_ERROR_STOP=1 \
        -c "CREATE ROLE wbmb LOGIN PASSWORD '$pw'" -c "CREATE DATABASE wbmb OWNER wbmb" >/dev/null
    echo "host=127.0.0.1 port=$port dbname=wbmb user=wbmb" >"$dir/conninfo"
    ;;
standby)
    primary=$(cd "${3:?usage: pg.sh standby DIR PRIMARY_DIR}" && pwd)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [ "$(id -u)" -eq 0 ] && chown "$PG_USER" "$dir"
    port=$(free_port)
    echo "$port" >"$dir/port"
    cp "$primary/password" "$dir/password"
    as_pg "$PGBIN/pg_basebackup" -h "$primary" -p "$(cat "$primary/port")" -U postgres \
        -D "$dir/data" -R -X stream >"$dir/basebackup.log" 2>&1 || { cat "$dir/basebackup.log" >&2; exit 1; }
    # The copy has the primary's settings; later lines win.
    cat >>"$dir/data/postgresql.conf" <<CONF
port = $port
unix_socket_directories = '$dir'
CONF
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null ||
        { cat "$dir/server.log" >&2; exit 1; }
    echo "host=127.0.0.1 port=$port dbname=wbmb user=wbmb" >"$dir/conninfo"
    ;;
promote)
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" -w -t 60 promote >/dev/null
    ;;
restart)
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null ||
        { cat "$dir/server.log" >&2; exit 1; }
    ;;
stop | kill)
    mode=fast
    [ "$cmd" = kill ] && mode=immediate
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m "$mode" -w -t 60 stop >/dev/null 2>&1 || true
    fi
    ;;
psql)
    as_pg "$PGBIN/psql" -h "$dir" -p "$(cat "$dir/port")" -U postgres -d wbmb -qAtX \
        -v ON_ERROR_STOP=1 -c "${3:?SQL}"
    ;;
*)
    echo "pg.sh: unknown command $cmd" >&2
    exit 2
    ;;
esac
