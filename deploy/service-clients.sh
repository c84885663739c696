#!/usr/bin/env bash
# Registers, once, the internal service clients the suite's own calls need under a purpose
# (consent's rights exports, orders' corrections, transfer's order fetches) in the identity database of
# `make run`, and writes their settings to .run/data/service-clients.env for honcho.
# The env file sits beside the SQLite databases: removing .run/data resets both together.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
env_file=$repo/.run/data/service-clients.env
python=$repo/.venv/bin/python
token_url="http://127.0.0.1:${IDENTITY_PORT:-8001}/oauth2/token"

[[ -f $env_file ]] && { echo "service clients: $env_file (kept)"; exit 0; }
mkdir -p "$(dirname "$env_file")"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

register() {  # PREFIX NAME SCOPE
    local out id secret
    out=$(cd "$repo" && "$python" -m services.identity create-service-client \
        --name "$2" --scope "$3")
    id=$(sed -n 's/^client_id: //p' <<<"$out")
    secret=$(sed -n 's/^client_secret: //p' <<<"$out")
    [[ -n $id && -n $secret ]] || { echo "service clients: could not register $2" >&2; exit 1; }
    printf '%s_IDENTITY_TOKEN_URL=%s\n%s_SERVICE_CLIENT_ID=%s\n%s_SERVICE_CLIENT_SECRET=%s\n' \
        "$1" "$token_url" "$1" "$id" "$1" "$secret" >>"$tmp"
}

register CONSENT consent service:rights.access
register ORDERS orders service:rights.access
register TRANSFER transfer service:cross_border.transfer
chmod 600 "$tmp"
mv "$tmp" "$env_file"
trap - EXIT
echo "service clients: registered consent, orders and transfer ($env_file)"
