"""``routeiq-router``: run the service (``serve``) or ask it (``route``, ``routers``,
``health``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

from router_service.client import ClientTLS, RouterClient, bearer_metadata, parse_candidates
from router_service.config import load_settings
from router_service.errors import BundleError, ConfigError
from router_service.proto import pb
from router_service.runner import run
from router_service.security.auth import hash_token

__all__ = ["main"]


def _serve(args: argparse.Namespace) -> int:
    server: dict[str, Any] = {}
    if args.host is not None:
        server["host"] = args.host
    if args.port is not None:
        server["port"] = args.port
    if args.workers is not None:
        server["workers"] = args.workers
    overrides: dict[str, Any] = {"server": server} if server else {}
    if args.bundle:
        overrides["bundles"] = [str(p) for p in args.bundle]
    try:
        return run(load_settings(args.config, **overrides))
    except (ConfigError, BundleError) as exc:
        print(f"routeiq-router: {exc}", file=sys.stderr)
        return 2


def _tls(args: argparse.Namespace) -> ClientTLS | None:
    given = (args.ca, args.cert, args.key, args.server_name)
    tls = ClientTLS.from_env("ROUTEIQ_TLS")
    if args.tls or any(v is not None for v in given):
        base = tls or ClientTLS()
        tls = ClientTLS(
            ca_file=args.ca or base.ca_file,
            cert_file=args.cert or base.cert_file,
            key_file=args.key or base.key_file,
            server_name=args.server_name or base.server_name,
        )
    return tls


def _client(args: argparse.Namespace) -> RouterClient:
    token = os.environ.get("ROUTEIQ_TOKEN") or None
    return RouterClient(args.target, args.timeout, _tls(args), token)


def _health(args: argparse.Namespace) -> int:
    """The standard ``grpc.health.v1.Health/Check`` of ``--service`` (empty: the server as a
    whole). Exit code 0 only when the answer is SERVING; 1 for any other status or a failed
    call (unreachable, deadline, refused). For container HEALTHCHECKs and exec probes."""
    tls = _tls(args)
    channel = (
        grpc.insecure_channel(args.target)
        if tls is None
        else grpc.secure_channel(args.target, tls.credentials(), options=tls.options())
    )
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=args.service),
            timeout=args.timeout,
            metadata=bearer_metadata(os.environ.get("ROUTEIQ_TOKEN") or None),
        )
    except grpc.RpcError as exc:
        print(f"routeiq-router: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    finally:
        channel.close()
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(status)
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


def _print(message: Any, as_json: bool) -> None:
    """The message as JSON. A candidate the router could not score (score -inf) prints
    ``"score": null`` rather than protobuf's ``"-Infinity"`` string, which is not a number."""
    data = json_format.MessageToDict(message, preserving_proto_field_name=True)
    for score in data.get("scores", []):
        if isinstance(score.get("score"), str):
            score["score"] = None
    print(json.dumps(data, indent=None if as_json else 2))


def _route(args: argparse.Namespace) -> int:
    client = _client(args)
    try:
        answer = client.route(
            args.prompt,
            parse_candidates(args.candidates),
            router=args.router,
            cost_weight=args.cost_weight,
            request_id=args.request_id,
        )
    except grpc.RpcError as exc:
        print(f"routeiq-router: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"routeiq-router: {exc}", file=sys.stderr)
        return 2
    finally:
        client.close()
    if args.json:
        _print(answer, True)
    else:
        source = pb.Source.Name(answer.source)
        print(
            f"{answer.model}  ({source}: router {answer.router}@{answer.router_version}, "
            f"{answer.reason}, {answer.latency_us} µs)"
        )
    return 0


def _routers(args: argparse.Namespace) -> int:
    client = _client(args)
    try:
        _print(client.list_routers(), args.json)
    except grpc.RpcError as exc:
        print(f"routeiq-router: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="routeiq-router", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gRPC routing-decision service")
    serve.add_argument("--config", type=Path, help="YAML config file (else $ROUTEIQ_CONFIG)")
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default 50051; 0 = any free)")
    serve.add_argument("--workers", type=int, help="processes sharing the port (default 1)")
    serve.add_argument(
        "--bundle", type=Path, action="append", help="router bundle directory to serve (repeatable)"
    )
    serve.set_defaults(func=_serve)

    for name, func, helptext in (
        ("route", _route, "ask the service for one decision"),
        ("routers", _routers, "list the routers the service has loaded"),
        ("health", _health, "standard gRPC health check: exit 0 only when SERVING"),
    ):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument(
            "--target",
            default=os.environ.get("ROUTEIQ_TARGET", "127.0.0.1:50051"),
            help="service address (default $ROUTEIQ_TARGET, else 127.0.0.1:50051)",
        )
        cmd.add_argument("--timeout", type=float, default=5.0, help="deadline in seconds")
        if name != "health":
            cmd.add_argument("--json", action="store_true", help="print the answer as JSON")
        cmd.epilog = "A bearer token for the service's auth is read from $ROUTEIQ_TOKEN."
        tls = cmd.add_argument_group("TLS (defaults: $ROUTEIQ_TLS_CA, _CERT, _KEY, _SERVER_NAME)")
        tls.add_argument("--tls", action="store_true", help="TLS with the system's CA roots")
        tls.add_argument("--ca", type=Path, help="CA certificate(s) that sign the service's")
        tls.add_argument("--cert", type=Path, help="client certificate (mutual TLS)")
        tls.add_argument("--key", type=Path, help="client certificate's private key")
        tls.add_argument("--server-name", help="name expected in the service's certificate")
        cmd.set_defaults(func=func)
        if name == "health":
            cmd.add_argument(
                "--service",
                default="",
                help="service name to check, e.g. routeiq.router.v1.Router (default: the server)",
            )
        if name == "route":
            cmd.add_argument("--prompt", required=True)
            cmd.add_argument(
                "--candidates",
                required=True,
                help="comma-separated NAME or NAME:INPUT_PRICE:OUTPUT_PRICE",
            )
            cmd.add_argument("--router", default="", help="router name (default: the default)")
            cmd.add_argument(
                "--cost-weight", type=float, help="λ (default: the router's calibrated one)"
            )
            cmd.add_argument("--request-id", default="")
    hashed = sub.add_parser(
        "hash-token", help="print the sha256 of a token read from stdin (for auth.tokens)"
    )
    hashed.set_defaults(func=_hash_token)
    return parser


def _hash_token(args: argparse.Namespace) -> int:
    token = sys.stdin.readline().strip()
    if not token:
        print("routeiq-router: no token on stdin", file=sys.stderr)
        return 2
    print(hash_token(token))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
