"""`python -m hub serve` starts the hub; `python -m hub token ...` prints a token;
`python -m hub archive ...` handles archived session logs (storage/archive_cli.py)."""

from __future__ import annotations

import argparse
import os
import signal
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hub")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the hub")
    serve.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=os.environ.get("PORT", "8000"))
    serve.add_argument("--no-links", action="store_true", help="don't print the page links")

    token = commands.add_parser("token", help="print a signed token (uses HUB_SECRET)")
    token.add_argument("--account", required=True)
    token.add_argument("--user", required=True)
    token.add_argument("--role", required=True, choices=("participant", "instructor", "observer", "admin"))
    token.add_argument("--session", action="append", dest="sessions", help="restrict to this session id")
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    token.add_argument("--name", help="display name")
    token.add_argument("--kid", help="signing key id (with HUB_SECRETS)")

    commands.add_parser("archive", help="archived session logs: list, export, restore, run", add_help=False)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["archive"]:  # its own parser: python -m hub archive --help
        from storage.archive_cli import main as archive_main

        return archive_main(argv[1:])

    args = parser.parse_args(argv)
    from hub.config import ConfigError, Settings

    if args.command == "serve":
        return _serve(args.host, args.port, links=not args.no_links)

    from handlers.auth import Authenticator, AuthError

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not settings.secret_keys:
        print("error: HUB_SECRET is not set; tokens cannot be signed", file=sys.stderr)
        return 2
    if args.ttl <= 0:
        print("error: --ttl must be a positive number of seconds", file=sys.stderr)
        return 2
    try:
        token_text = Authenticator(settings).issue(
            args.account, args.user, args.role, args.sessions, args.ttl, args.name, args.kid
        )
    except AuthError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    print(token_text)
    return 0


def _serve(host: str, port: int, links: bool) -> int:
    """Exit status: 0 stopped, 2 did not start (one line on stderr says why), 130 Ctrl-C."""
    from hub.config import ConfigError, Settings
    from hub.logs import configure

    try:
        settings = Settings.from_env()
        configure(settings.log_format)
        from handlers.server import serve

        stopped_by = serve(settings, host, port, links=links)
    except ConfigError as exc:  # one clear line instead of a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C: the server has drained and stopped (uvicorn re-raises the signal once it
        # is done), or it came before the server started. Either way nothing is left to say.
        return 130
    return 130 if stopped_by == signal.SIGINT else 0


if __name__ == "__main__":
    sys.exit(main())
