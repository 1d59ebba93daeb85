"""Gets tokens from tessera-server with ZITADEL's Python SDK, zitadel-client 4.1.9.

Run by tests/python_client.rs with the interpreter of a virtual environment that has
zitadel-client installed. It uses the SDK's authenticators exactly as a ZITADEL user
would:

- ClientCredentialsAuthenticator, built from the host, a client ID and a secret;
- two WebTokenAuthenticators built from ONE service-account key file, which get their
  tokens within one unix second. The SDK signs its assertions with a whole-second
  "iat" and no "jti", so the two assertions are byte-identical; both must be accepted.

The host is passed as the full http URL (http://127.0.0.1:PORT): the SDK prefixes
"https://" only to a host without a scheme, fetches
{host}/.well-known/openid-configuration, and uses the host as the assertions' audience.

Prints one JSON object on standard output; any failure raises (a traceback on standard
error and a non-zero exit status).
"""

import argparse
import json
import sys
import time

from zitadel_client.auth.client_credentials_authenticator import (
    ClientCredentialsAuthenticator,
)
from zitadel_client.auth.web_token_authenticator import WebTokenAuthenticator

ATTEMPTS = 5


def sleep_to_next_second() -> None:
    """Sleeps until just after the next unix second begins."""
    now = time.time()
    time.sleep(1 - (now - int(now)) + 0.02)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--key-file", required=True)
    args = parser.parse_args()

    credentials = ClientCredentialsAuthenticator.builder(
        args.host, args.client_id, args.client_secret
    ).build()
    client_credentials_token = credentials.get_auth_token()
    headers = credentials.get_auth_headers()
    if headers != {"Authorization": "Bearer " + client_credentials_token}:
        raise AssertionError(f"unexpected auth headers: {headers}")

    for attempt in range(1, ATTEMPTS + 1):
        # Built before the second starts: each fetches the discovery document.
        first = WebTokenAuthenticator.from_json(args.host, args.key_file)
        second = WebTokenAuthenticator.from_json(args.host, args.key_file)
        sleep_to_next_second()
        before = int(time.time())
        first_token = first.get_auth_token()
        second_token = second.get_auth_token()
        after = int(time.time())
        if before == after:
            break
        print(
            f"attempt {attempt} crossed a second boundary ({before} -> {after})",
            file=sys.stderr,
        )
    else:
        raise SystemExit(f"could not get both tokens within one second in {ATTEMPTS} attempts")

    json.dump(
        {
            "host": credentials.get_host(),
            "client_credentials": {"token": client_credentials_token},
            "web_token": {
                "tokens": [first_token, second_token],
                "second": before,
                "attempts": attempt,
            },
        },
        sys.stdout,
    )
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
