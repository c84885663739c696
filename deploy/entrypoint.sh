#!/bin/sh
# The image's entry point: `gateway`, `identity`, `orders`, `consent` or `transfer` serves
# that app on $PORT (8000); `migrate [apps...]` upgrades the databases (all apps by default)
# and exits; anything else runs as given (e.g. `python -m services.orders sweep`).
set -eu
# Secrets as files (compose and Kubernetes mount them): <APP>_NAME_FILE=/path sets
# <APP>_NAME to the file's content, so no secret is written into the orchestrator's config.
# Only the apps' own prefixes: SSL_CERT_FILE and the like keep their meaning.
apps='PRIVACY\|IDENTITY\|ORDERS\|CONSENT\|TRANSFER\|GATEWAY'
for variable in $(env | sed -n "s/^\(\($apps\)_[A-Z0-9_]*\)_FILE=.*/\1/p"); do
    eval "path=\${${variable}_FILE}"
    # shellcheck disable=SC2154 # set by the eval above
    value=$(cat "$path")
    export "$variable=$value"
    unset "${variable}_FILE"
done
port="${PORT:-8000}"
serve() {
    # exec: uvicorn becomes PID 1, so the platform's SIGTERM reaches it directly. Within
    # the grace period (PRIVACY_SHUTDOWN_GRACE_S, Kubernetes' 30 s): PRIVACY_SHUTDOWN_DELAY_S
    # of serving on, up to GRACEFUL_SHUTDOWN_S for in-flight requests, the rest for the
    # app to flush its events and stop its loops (README "Graceful shutdown").
    factory="$1"
    shift
    exec uvicorn --factory "$factory" --host 0.0.0.0 --port "$port" --no-access-log \
        --no-proxy-headers --timeout-graceful-shutdown "${GRACEFUL_SHUTDOWN_S:-20}" "$@"
}
app="${1:-gateway}"
[ "$#" -gt 0 ] && shift
case "$app" in
    gateway) serve gateway.main:create_app --loop uvloop --http gateway.protocol:GuardedHttpToolsProtocol "$@" ;;
    identity | orders | consent | transfer) serve "services.$app.main:create_app" "$@" ;;
    migrate)
        if [ "$#" -eq 0 ]; then
            set -- services.identity services.orders services.consent services.transfer gateway
        fi
        exec python -m kit.migrations upgrade "$@" ;;
    *) exec "$app" "$@" ;;
esac
