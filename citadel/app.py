"""The host supervisor: Citadel's supervision tree, assembled.

::

    citadel (root, one_for_one)
     ├─ store        single writer of the SQLite file
     ├─ broadcaster  the one Socket.IO actor
     ├─ retention    purges old audit, notifications, revocations, bans (citadel.store.retention)
     ├─ audit        writes the tally of anonymous refusals every minute (citadel.web.audit)
     ├─ fleet        dynamic supervisor: one supervisor per game server (citadel.servers.fleet)
     └─ http         uvicorn: REST (Litestar) + Socket.IO on one socket

`open_citadel` opens the data dir (store, JWT secret), binds the listening socket, creates the
first admin, starts the tree, and on exit stops it in reverse order. The admin comes after
everything that commonly fails at start (a port in use, a bad secret file), and a generated
password is also written to ``<data-dir>/admin-password`` (0600) before the user is created,
so it cannot be lost in the noise of a failed start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import anyio

from actors import (
    Address,
    ChildSpec,
    DynamicSupervisor,
    Registry,
    ReportBus,
    ReportKind,
    SupervisorRef,
    open_supervisor,
)
from citadel.auth import (
    AuthError,
    LoginThrottle,
    Principal,
    TokenIssuer,
    TokenVerifier,
    hash_password,
    load_jwt_secret,
)
from citadel.config import Config, ConfigError, ServerConfig, check_server, server_conflict
from citadel.files import write_private
from citadel.realtime import ClientScope, ConnectRefused, FanoutEngine, build_asgi_app
from citadel.realtime.broadcaster import (
    AuthChanged,
    Broadcaster,
    BroadcasterMessage,
    SnapshotCache,
    Verified,
    publish,
)
from citadel.servers.fleet import Fleet, Source, StoreRunStore
from citadel.store import Store
from citadel.store.actor import StoreActor, StoreOp, run_in_store
from citadel.store.retention import Retention
from citadel.web.app import build_app, refuse_encoded_slashes
from citadel.web.audit import AuditFlusher, AuditTally
from citadel.web.context import ApiContext
from citadel.web.server import HttpServer, bind_socket, configure_socketio_logging

log = logging.getLogger("citadel")

ADMIN_PASSWORD_ENV: Final = "CITADEL_ADMIN_PASSWORD"
ADMIN_PASSWORD_FILE: Final = "admin-password"
ROOT_INTENSITY: Final = 10
ROOT_PERIOD: Final = 60.0
FLEET_INTENSITY: Final = 50
FLEET_PERIOD: Final = 60.0


@dataclass
class Citadel:
    """A running Citadel: where it listens and handles on its parts (for the CLI and tests)."""

    url: str
    data_dir: Path
    root: SupervisorRef
    registry: Registry
    reports: ReportBus
    store: Store
    issuer: TokenIssuer
    verifier: TokenVerifier
    engine: FanoutEngine
    broadcaster: Address[BroadcasterMessage]
    fleet: Fleet
    admin_password: str | None = None
    admin_password_file: Path | None = None
    audit_tally: AuditTally = field(default_factory=AuditTally)
    ready: bool = field(default=False)


def scope_of(principal: Principal) -> ClientScope:
    """The Socket.IO delivery scope of a verified principal."""
    return ClientScope(
        servers=principal.servers,
        permissions=principal.permissions,
        is_admin="*" in principal.permissions and principal.servers is None,
    )


def ensure_admin(
    store: Store, environ: dict[str, str] | os._Environ[str], data_dir: Path | None = None
) -> str | None:
    """Create ``admin`` on first start. Returns the generated password, if one was made.

    A generated password is first written to ``<data_dir>/admin-password`` (mode 0600), then
    the user is created: whatever happens to the printed banner, the password is on disk
    until the operator deletes the file.
    """
    if store.count_users() > 0:
        return None
    password = environ.get(ADMIN_PASSWORD_ENV)
    generated = None
    if not password:
        password = generated = secrets.token_urlsafe(15)
        if data_dir is not None:
            write_private(data_dir / ADMIN_PASSWORD_FILE, f"{generated}\n".encode())
    store.create_user("admin", hash_password(password), "admin")
    return generated


def gather_servers(
    config: Config, store: Store, demo: list[ServerConfig]
) -> list[tuple[ServerConfig, Source]]:
    """Servers from the config file, then the API-created ones, then the demo's.

    A stored server that today's checks refuse (stored by an older Citadel), or that binds a UDP
    port an earlier server binds (the file was edited since), is still supervised: it is logged
    as an error naming the key, and an operator fixes it with ``PATCH`` (which checks it all).
    Refusing to start would take every other server down with it.
    """
    found: list[tuple[ServerConfig, Source]] = [(s, "config") for s in config.servers]
    known = {s.id for s, _ in found}
    for stored in store.list_servers():
        if stored.id not in known:
            found.append((stored.config, "api"))
            known.add(stored.id)
    found.extend((s, "demo") for s in demo if s.id not in known)
    for index, (server, source) in enumerate(found):
        try:
            check_server(server, absolute_install_dir=source == "api")
        except ConfigError as error:
            log.error("server %r (%s): %s", server.id, source, error)
        earlier = ((f"server {s.id!r}", s) for s, _ in found[:index])
        conflict = server_conflict(server, earlier)
        if conflict is not None:
            log.error("server %r (%s): %s", server.id, source, conflict)
    return found


class _AuthWatcher:
    def __init__(self, broadcaster: Callable[[], Address[BroadcasterMessage] | None]) -> None:
        self._broadcaster = broadcaster

    def auth_changed(self, username: str | None) -> None:
        address = self._broadcaster()
        if address is None:
            return
        with contextlib.suppress(Exception):  # a restarting broadcaster re-checks every second
            address.cast_nowait(AuthChanged(username))


@contextlib.asynccontextmanager
async def open_citadel(
    config: Config,
    *,
    data_dir: Path,
    host: str,
    port: int,
    demo: list[ServerConfig] | None = None,
    environ: dict[str, str] | None = None,
) -> AsyncIterator[Citadel]:
    """Run Citadel for the duration of the block."""
    env: Any = environ if environ is not None else os.environ
    await anyio.Path(data_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    store = Store.open(data_dir)
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(store.close)
        secret = load_jwt_secret(data_dir, env)
        # Bind before creating the first admin: a port in use must not eat its password.
        sock = bind_socket(host, port)
        stack.callback(sock.close)
        admin_password = ensure_admin(store, env, data_dir)
        password_file = data_dir / ADMIN_PASSWORD_FILE
        issuer = TokenIssuer(secret)
        verifier = TokenVerifier(secret, store)
        servers = gather_servers(config, store, demo or [])
        reports = ReportBus()
        registry = Registry()
        reports.subscribe(_log_report)
        audit_tally = AuditTally()

        def authenticate(auth: Any, environ: Any) -> ClientScope:
            token = auth.get("token") if auth else None
            try:
                principal = verifier.verify(token if isinstance(token, str) else None)
            except AuthError as error:
                raise ConnectRefused(error.reason) from None
            return scope_of(principal)

        def recheck(auth: Any) -> Verified | None:
            token = auth.get("token") if auth else None
            try:
                principal = verifier.verify(token if isinstance(token, str) else None)
            except AuthError:
                return None
            return Verified(user=principal.user, scope=scope_of(principal))

        configure_socketio_logging()
        engine = FanoutEngine(authenticate)
        cache = SnapshotCache()

        bound_host, bound_port = sock.getsockname()[:2]
        started: dict[str, bool] = {"ready": False}

        def readiness() -> tuple[bool, dict[str, Any]]:
            return started["ready"], {"clients": engine.statistics().clients}

        children = [
            ChildSpec("store", start=lambda: StoreActor(store), name="store"),
            ChildSpec(
                "broadcaster",
                start=lambda: Broadcaster(engine, cache, recheck),
                name="broadcaster",
            ),
        ]
        async with open_supervisor(
            children,
            name="citadel",
            reports=reports,
            registry=registry,
            intensity=ROOT_INTENSITY,
            period=ROOT_PERIOD,
        ) as root:
            db: Address[StoreOp] = _lookup(registry, "store")
            broadcaster: Address[BroadcasterMessage] = _lookup(registry, "broadcaster")

            async def to_broadcaster(event: Any) -> bool:
                address = registry.whereis("broadcaster")
                return address is not None and await publish(address, event)

            await root.start_child(
                ChildSpec("retention", start=lambda: Retention(db), name="retention")
            )
            await root.start_child(
                ChildSpec("audit", start=lambda: AuditFlusher(db, audit_tally), name="audit")
            )
            fleet = Fleet(
                registry,
                to_broadcaster,
                StoreRunStore(store, lambda apply: run_in_store(db, apply)),
            )
            stack.push_async_callback(fleet.close)
            # The snapshot shows only servers that exist, even if a serverRemoved was lost.
            cache.track(lambda: fleet.runtimes)
            await root.start_child(
                ChildSpec(
                    "fleet",
                    start=lambda: DynamicSupervisor(intensity=FLEET_INTENSITY, period=FLEET_PERIOD),
                    name="fleet",
                    # Servers stop in parallel inside; each is bounded by its own ladder.
                    shutdown=float("inf"),
                )
            )
            fleet.attach(_lookup(registry, "fleet"))
            # Runs of servers gone from the configuration are stopped before any server starts.
            await fleet.start(servers)
            api = build_app(
                ApiContext(
                    store=store,
                    db=db,
                    issuer=issuer,
                    verifier=verifier,
                    throttle=LoginThrottle(),
                    servers=fleet,
                    auth_watcher=_AuthWatcher(lambda: registry.whereis("broadcaster")),
                    ready=readiness,
                    audit_tally=audit_tally,
                )
            )
            asgi = build_asgi_app(engine, refuse_encoded_slashes(api))
            await root.start_child(ChildSpec("http", start=lambda: HttpServer(asgi, sock)))
            started["ready"] = True
            display_host = f"[{bound_host}]" if ":" in bound_host else bound_host
            yield Citadel(
                url=f"http://{display_host}:{bound_port}",
                data_dir=data_dir,
                root=root,
                registry=registry,
                reports=reports,
                store=store,
                issuer=issuer,
                verifier=verifier,
                engine=engine,
                broadcaster=broadcaster,
                fleet=fleet,
                admin_password=admin_password,
                admin_password_file=password_file if password_file.exists() else None,
                audit_tally=audit_tally,
                ready=True,
            )
            started["ready"] = False
            # Stop every game server at once (each with its own bounded ladder) instead of one
            # after another as the supervisor's reverse-order shutdown would.
            await fleet.stop_all()


def _lookup(registry: Registry, name: str) -> Any:
    address = registry.whereis(name)
    if address is None:  # pragma: no cover - the child was started just above
        raise RuntimeError(f"{name} did not register")
    return address


def _log_report(report: Any) -> None:
    level = logging.ERROR if report.kind in (ReportKind.CRASH, ReportKind.GIVE_UP) else logging.INFO
    log.log(
        level, "%s: %s/%s: %s", report.kind.value, report.supervisor, report.offender, report.reason
    )
