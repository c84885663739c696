"""``python -m deploy.payment_provider public-key``: make the stand-in provider's key pair
when it has none yet (``PAYMENT_PROVIDER_KEY_FILE``) and print its public key (PEM), for
its set-up at the shop."""

from __future__ import annotations

import sys

from deploy.payment_provider.main import Settings, own_key
from kit.payment_signature import public_key_pem


def main() -> int:
    if sys.argv[1:] != ["public-key"]:
        sys.stderr.write("usage: python -m deploy.payment_provider public-key\n")
        return 2
    sys.stdout.write(public_key_pem(own_key(Settings().key_file)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
