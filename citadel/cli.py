"""``citadel``: serve, mint a token for scripts, manage users.

::

    citadel serve [--config FILE] [--host H] [--port P] [--data-dir DIR] [--demo N]
    citadel token --user NAME [--ttl SECONDS (default 3600)] [--data-dir DIR | --config FILE]
    citadel user add NAME [--role ROLE] [--password-stdin]
    citadel user passwd NAME [--password-stdin]

Flags win over the ``[citadel]`` table of the config file, which wins over the defaults.
Exit status: 0 on success, 2 for bad usage or configuration, 1 for other failures.
"""

from __future__ import annotations

import argparse
import getpass
import importlib.util
import logging
import signal
import sys
from pathlib import Path

import anyio

from citadel.auth import (
    DEFAULT_SCRIPT_TOKEN_TTL,
    DEFAULT_TOKEN_TTL,
    MAX_TOKEN_TTL,
    check_ttl,
    check_username,
)
from citadel.config import (
    DEFAULT_DATA_DIR,
    DEFAULT_HOST,
    DEFAULT_PORT,
    Config,
    ConfigError,
    load_config,
)

#: Production runs anyio on asyncio, on uvloop when it is installed (not on Windows).
_HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None


class UsageError(Exception):
    """Bad command-line input; printed without a traceback, exit status 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="citadel", description="Host supervisor for game servers."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the host supervisor")
    serve.add_argument("--config", type=Path, help="TOML configuration file")
    serve.add_argument("--host", help=f"listen address (default {DEFAULT_HOST})")
    serve.add_argument("--port", type=int, help=f"listen port (default {DEFAULT_PORT})")
    serve.add_argument("--data-dir", type=Path, help=f"data directory (default {DEFAULT_DATA_DIR})")
    serve.add_argument(
        "--demo", type=int, default=0, metavar="N", help="add N simulated DayZ servers"
    )
    serve.add_argument("-v", "--verbose", action="store_true", help="log more")

    token = commands.add_parser(
        "token",
        help="print a JWT for a user (for scripts)",
        description="Print a JWT for a user, for scripts. Tokens from POST /api/auth/login "
        f"live {DEFAULT_TOKEN_TTL / 3600:.0f} hours; these live --ttl seconds.",
    )
    token.add_argument("--user", required=True)
    token.add_argument(
        "--ttl",
        type=_ttl,
        default=DEFAULT_SCRIPT_TOKEN_TTL,
        help=f"lifetime in seconds (default {DEFAULT_SCRIPT_TOKEN_TTL:.0f}, "
        f"at most {MAX_TOKEN_TTL:.0f}: a year)",
    )
    _data_dir_args(token)

    user = commands.add_parser("user", help="manage users")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    add = user_commands.add_parser("add", help="create a user")
    add.add_argument("name", type=_username, help="1-64 of: A-Z a-z 0-9 _ . -")
    add.add_argument("--role", default="viewer")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    _data_dir_args(add)
    passwd = user_commands.add_parser("passwd", help="set a user's password (revokes old tokens)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true")
    _data_dir_args(passwd)
    return parser


def _ttl(text: str) -> float:
    try:
        return check_ttl(float(text))
    except ValueError as error:
        message = str(error) if "lifetime" in str(error) else f"not a number: {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def _username(text: str) -> str:
    try:
        return check_username(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _data_dir_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML configuration file")
    parser.add_argument("--data-dir", type=Path)


def _config(path: Path | None) -> Config:
    return load_config(path) if path is not None else Config()


def _data_dir(args: argparse.Namespace, config: Config) -> Path:
    return Path(args.data_dir) if args.data_dir else Path(config.citadel.data_dir)


def _read_password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise UsageError("the passwords differ")
    if len(password) < 8:
        raise UsageError("a password needs at least 8 characters")
    return password


def _cmd_token(args: argparse.Namespace) -> int:
    from citadel.auth import TokenIssuer, load_jwt_secret
    from citadel.store import Store

    config = _config(args.config)
    data_dir = _data_dir(args, config)
    if not data_dir.is_dir():
        raise UsageError(f"no data directory at {data_dir}; run `citadel serve` once first")
    with Store.open(data_dir) as store:
        user = store.get_user(args.user)
        if user is None:
            raise UsageError(f"no user {args.user!r}")
        if user.disabled:
            raise UsageError(f"user {args.user!r} is disabled")
        issued = TokenIssuer(load_jwt_secret(data_dir), ttl=args.ttl).issue(user)
    print(issued.token)
    return 0


def _cmd_user(args: argparse.Namespace) -> int:
    from citadel.auth import hash_password
    from citadel.store import Conflict, Store

    config = _config(args.config)
    data_dir = _data_dir(args, config)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with Store.open(data_dir) as store:
        if args.user_command == "add":
            if store.get_role(args.role) is None:
                raise UsageError(f"no role {args.role!r}")
            if store.get_user(args.name) is not None:
                raise UsageError(f"user {args.name!r} already exists")
            password = _read_password(args.password_stdin)
            try:
                store.create_user(args.name, hash_password(password), args.role)
            except Conflict as error:
                raise UsageError(str(error)) from None
            print(f"created user {args.name!r} with role {args.role!r}")
        else:
            if store.get_user(args.name) is None:
                raise UsageError(f"no user {args.name!r}")
            password = _read_password(args.password_stdin)
            store.set_password(args.name, hash_password(password))
            print(f"password of {args.name!r} changed; older tokens no longer work")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from citadel.lock import data_dir_lock
    from citadel.serve import ServeOptions, serve

    config = _config(args.config)
    settings = config.citadel
    port = args.port if args.port is not None else settings.port
    if not 0 <= port <= 65535:
        raise UsageError("--port must be between 0 and 65535")
    if args.demo < 0 or args.demo > 200:
        raise UsageError("--demo takes a number of servers from 0 to 200")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    options = ServeOptions(
        config=config,
        host=args.host or settings.host,
        port=port,
        data_dir=_data_dir(args, config).absolute(),
        demo=args.demo,
    )
    with data_dir_lock(options.data_dir):  # before anything touches the data dir
        anyio.run(serve, options, backend="asyncio", backend_options={"use_uvloop": _HAVE_UVLOOP})
    return 0


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``citadel`` command."""
    args = _parser().parse_args(argv)
    handlers = {"serve": _cmd_serve, "token": _cmd_token, "user": _cmd_user}
    try:
        status = handlers[args.command](args)
    except (UsageError, ConfigError) as error:
        print(f"citadel: {error}", file=sys.stderr)
        status = 2
    except OSError as error:
        print(f"citadel: {error}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        status = 128 + signal.SIGINT
    raise SystemExit(status)
