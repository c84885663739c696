#!/usr/bin/env bash
# Sets up, once, the stand-in payment provider of `make run` (deploy/payment_provider): its
# own key pair, its set-up at orders (provider id ptn_standin, notifications signed with that
# key) and the shop's public key for it, which the stand-in verifies the shop's requests
# with. Everything lives under .run/data/payment-provider: removing .run/data resets it
# together with the databases.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
dir=$repo/.run/data/payment-provider
python=$repo/.venv/bin/python
export PAYMENT_PROVIDER_KEY_FILE=$dir/provider-key.pem
shop_key=$dir/shop-public-key.pem

[[ -f $shop_key ]] && { echo "payment provider: $dir (kept)"; exit 0; }
mkdir -p "$dir"
cd "$repo"
"$python" -m deploy.payment_provider public-key >"$dir/provider-public-key.pem"
"$python" -m services.orders set-up-payment-provider --provider-id ptn_standin \
    --name "Stand-in Pay" --api-url "http://127.0.0.1:${PAYMENT_PROVIDER_PORT:-8005}" \
    --public-key-file "$dir/provider-public-key.pem" >"$shop_key.tmp"
mv "$shop_key.tmp" "$shop_key"
echo "payment provider: set up ptn_standin ($dir)"
