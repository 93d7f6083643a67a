"""How the `certa` command reaches a controller: the options that make a `certa_client.Target`.

`CERTA_ADDRESS`, `CERTA_API_KEY` (or a JWT), `CERTA_TLS`, `CERTA_CA_FILE` (TLS, verifying the server against this
CA), `CERTA_SERVER_NAME` and, for mutual TLS, `CERTA_CLIENT_CERT_FILE` / `CERTA_CLIENT_KEY_FILE` are the defaults
of the matching options (read by `Target.from_env`). `CERTA_TENANT` names the tenant only for a controller whose
authentication is disabled (local development).
"""

from __future__ import annotations

import argparse

from certa_client import Target


def add_target_options(parser: argparse.ArgumentParser) -> None:
    env = Target.from_env()
    parser.add_argument("--address", default=env.address,
                        help=f"the controller's gRPC address (default: $CERTA_ADDRESS or {Target.address})")
    parser.add_argument("--api-key", default=env.api_key,
                        help="API key or JWT, sent as 'authorization: Bearer' (default: $CERTA_API_KEY)")
    parser.add_argument("--tls", action="store_true", default=env.tls,
                        help="use TLS, trusting the system's CAs (default: $CERTA_TLS; implied by --ca-file)")
    parser.add_argument("--ca-file", default=env.ca_file,
                        help="use TLS, trusting this CA (default: $CERTA_CA_FILE; plaintext when empty)")
    parser.add_argument("--server-name", default=env.server_name,
                        help="name expected in the server's certificate, when the address does not carry it "
                             "(default: $CERTA_SERVER_NAME)")
    parser.add_argument("--client-cert", default=env.client_cert_file,
                        help="mutual TLS: client certificate, PEM (default: $CERTA_CLIENT_CERT_FILE)")
    parser.add_argument("--client-key", default=env.client_key_file,
                        help="mutual TLS: client key, PEM (default: $CERTA_CLIENT_KEY_FILE)")
    parser.add_argument("--tenant", default=env.tenant,
                        help="tenant, for a controller running with authentication disabled (development; "
                             "default: $CERTA_TENANT)")


def target_from_args(args: argparse.Namespace) -> Target:
    """The target the options name (ValueError when they contradict each other, e.g. a certificate without key)."""
    return Target(
        address=args.address,
        api_key=args.api_key,
        tls=args.tls,
        ca_file=args.ca_file,
        client_cert_file=args.client_cert,
        client_key_file=args.client_key,
        server_name=args.server_name,
        tenant=args.tenant,
    )
