"""Where a study lives: opening Optuna storages with heartbeats, and storage URLs made safe to
print.

A storage URL may carry a password (``postgresql://user:secret@host/db``); :func:`mask_url` is
the one way such a URL reaches a log line, a report, ``recommendation.json`` or an error.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from autotl.errors import StorageError

log = logging.getLogger(__name__)

# A trial whose process dies (killed, out of memory, power loss) stays RUNNING in storage;
# Optuna fails it once its heartbeat is older than the grace period and we queue it again.
# SearchConfig's heartbeat_seconds / grace_seconds override these defaults.
HEARTBEAT_SECONDS = 30
GRACE_SECONDS = 120
# A killed trial is queued again up to this many times (each re-run can be killed too).
MAX_RETRY = 3
CONNECT_TIMEOUT_SECONDS = 10
# Lost mid-study, the database is retried this many times in a row, waiting 10 s, 20 s, 30 s.
STORAGE_RETRIES = 3
STORAGE_RETRY_SECONDS = 10.0
HEARTBEAT_ATTR = "autotl:heartbeat"
MASK = "***"
JOURNAL_SCHEME = "journal"
_SECRET_KEYS = {"password", "pass", "passwd", "pwd", "secret", "token", "sslpassword"}


def mask_url(url: str | None) -> str:
    """``url`` with any password replaced by ``***``: the one in ``user:password@`` and any
    query parameter named like one (libpq also reads ``?password=``)."""
    if not url:
        return ""
    text = str(url)
    try:
        parts = urlsplit(text)
    except ValueError:  # not a URL at all: mask anything that looks like user:password@
        return re.sub(r"(//[^/:@\s]*:)[^@/\s]*@", rf"\1{MASK}@", text)
    # Replace the parts in place: urlunsplit would drop the empty host of sqlite:////abs/path.
    if "@" in parts.netloc:
        userinfo, _, hostport = parts.netloc.rpartition("@")
        if ":" in userinfo:
            masked = f"{userinfo.split(':', 1)[0]}:{MASK}@{hostport}"
            text = text.replace(f"//{parts.netloc}", f"//{masked}", 1)
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if any(k.lower() in _SECRET_KEYS for k, _ in pairs):
            query = urlencode([(k, MASK if k.lower() in _SECRET_KEYS else v) for k, v in pairs],
                              safe="*/")
            text = text.replace(f"?{parts.query}", f"?{query}", 1)
    return text


def storage_host(url: str) -> str:
    """The host a storage URL points at, for error messages: a server name, a Unix socket
    folder, or the file of an SQLite/journal storage."""
    if journal_path(url) is not None:
        return str(journal_path(url))
    parts = urlsplit(url)
    if parts.scheme.startswith("sqlite"):
        return parts.path.removeprefix("/") or "(memory)"
    host = parts.hostname
    if not host:
        host = dict(parse_qsl(parts.query)).get("host", "localhost (default socket)")
    return f"{host}:{parts.port}" if parts.port else host


def engine_url(url: str) -> str:
    """The SQLAlchemy URL to open: ``postgresql://`` names SQLAlchemy's psycopg2 driver; when
    only psycopg 3 is installed (autotl's extra), use that one instead."""
    scheme, sep, rest = url.partition("://")
    if scheme in ("postgresql", "postgres") and sep:
        import importlib.util

        if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg"):
            return f"postgresql+psycopg://{rest}"
        return f"postgresql://{rest}"
    return url


def journal_url(path: str | Path) -> str:
    """The storage URL of a journal file: ``journal:///abs/path.journal``."""
    return f"{JOURNAL_SCHEME}://{Path(path).resolve()}"


def journal_path(url: str) -> Path | None:
    """The file behind a journal URL (``journal:///…`` or a bare ``….journal`` path), else
    None."""
    if url.startswith(f"{JOURNAL_SCHEME}://"):
        return Path(url.removeprefix(f"{JOURNAL_SCHEME}://"))
    if "://" not in url and url.endswith(".journal"):
        return Path(url)
    return None


def open_storage(url: str, *, heartbeat_seconds: int = HEARTBEAT_SECONDS,
                 grace_seconds: int = GRACE_SECONDS) -> Any:
    """The study's storage with a heartbeat, so a trial left RUNNING by a dead process is
    failed and queued again instead of haunting the study: Optuna's RDB storage for
    ``sqlite://``/``postgresql://``/``mysql://`` URLs, its journal file storage for
    ``journal:///path`` (safe for several processes on one host or a shared file system). An
    unreachable database raises :class:`StorageError` naming the host (never the password)."""
    import warnings

    import optuna

    path = journal_path(url)
    if path is not None:
        return _open_journal(path, heartbeat_seconds, grace_seconds)

    target = engine_url(url)
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if target.startswith("postgresql"):
        engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                target, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_seconds,
                grace_period=grace_seconds, heartbeat_stale_trial_callback=requeue_stale_trial)
    except ModuleNotFoundError as exc:
        raise StorageError(
            f"the storage {mask_url(url)} needs the Python package {exc.name!r}, which is not "
            f"installed; install it (for PostgreSQL: pip install 'psycopg[binary]')."
        ) from None
    except Exception as exc:  # noqa: BLE001 — sqlalchemy's errors quote the URL: mask it
        reason = describe_error(exc).replace(url, mask_url(url)).replace(target, mask_url(target))
        raise StorageError(
            f"cannot open the study database on {storage_host(url)} ({mask_url(url)}): "
            f"{reason}. Check that the server is running and reachable from this host and "
            "that the URL's user, password and database are right; without --storage the "
            "study is kept in a local file."
        ) from None


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the database going away (not a bug, not a bad request), also where
    another exception was raised while handling it (Optuna's trial bookkeeping asserts when
    it cannot record a trial's end)."""
    try:
        from sqlalchemy import exc as sa
    except ImportError:  # pragma: no cover
        return False
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (sa.OperationalError, sa.InterfaceError)) or (
                isinstance(current, sa.DBAPIError) and current.connection_invalidated):
            return True
        current = current.__cause__ or current.__context__
    return False


def describe_error(exc: BaseException) -> str:
    """An exception's own message without SQLAlchemy's "(Background on this error …)"."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0].rstrip(".")


def requeue_stale_trial(study: Any, trial: Any) -> None:
    """Heartbeat callback: queue a dead process's trial again, marked ``retried``, up to
    :data:`MAX_RETRY` times per config (a retry can be killed too). (Optuna's
    RetryHeartbeatStaleTrialCallback does the same but keeps the user attributes as they
    were, and a running trial cannot read the system attributes where it notes the retry.)"""
    import optuna

    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    if len(history) > MAX_RETRY:
        log.warning("trial %d stopped without a result again; not retried (%d tries)",
                    trial.number, len(history))
        return
    log.warning("trial %d stopped without a result (its process was killed or crashed); "
                "marked failed and queued again", trial.number)
    study.add_trial(optuna.create_trial(
        state=optuna.trial.TrialState.WAITING, params=trial.params,
        distributions=trial.distributions,
        user_attrs={**trial.user_attrs, "origin": "retried", "retry_of": trial.number},
        system_attrs={**trial.system_attrs, "failed_trial": history[0],
                      "retry_history": history}))


def trial_seed(trial: Any, base: int) -> int:
    """The seed ``trial`` trains with: the one it recorded when it first started, which a
    retried or requeued trial carries (so a resumed grid trains what an uninterrupted one
    would), else the study's ``base`` seed + the trial's number."""
    seed = trial.user_attrs.get("seed")
    return int(seed) if seed is not None else base + trial.number


def is_retry(trial: Any) -> bool:
    """A queued config that ran before and was cut short: its process died (the heartbeat
    queued it again) or the user pressed Ctrl-C."""
    return "failed_trial" in trial.system_attrs or "requeued_from" in trial.user_attrs


def retries_first(study: Any) -> Any:
    """Make ``study`` start a queued retry before any other waiting trial.

    Optuna starts waiting trials by number, and a retry is queued when its trial is found dead,
    behind the prior's and the known-good configs still waiting; a search whose budget is
    training seconds then spends it before reaching the retry, and a killed config is never
    measured. Claiming the retry is the same atomic WAITING → RUNNING step Optuna takes (it
    fails if another worker took it first), so workers sharing the study stay safe. Optuna
    has no public hook for the order, hence the override of its queue's one method."""
    import optuna

    running, waiting = optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING
    pop_in_order = study._pop_waiting_trial_id

    def pop_retry_first() -> int | None:
        for trial in study.get_trials(deepcopy=False, states=(waiting,)):
            if not is_retry(trial):
                continue
            try:
                if study._storage.set_trial_state_values(trial._trial_id, state=running):
                    return trial._trial_id
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # finished by another process meanwhile
        return pop_in_order()

    study._pop_waiting_trial_id = pop_retry_first
    return study


def _open_journal(path: Path, heartbeat_seconds: int, grace_seconds: int) -> Any:
    from optuna.storages.journal import JournalFileBackend

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(str(path))
    except OSError as exc:
        raise StorageError(f"cannot open the study journal {path}: {exc.strerror or exc}; "
                           "pass a writable file or folder (--out or --storage).") from None
    return _heartbeat_journal()(backend, heartbeat_seconds=heartbeat_seconds,
                                grace_seconds=grace_seconds)


@functools.cache
def _heartbeat_journal() -> type:
    """Optuna's JournalStorage with the heartbeat its RDB storage has (the journal has none):
    a running trial's heartbeat is a system attribute with the writer's clock, so the
    processes sharing a journal must share a clock (one host, or hosts kept in time)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages._heartbeat import BaseHeartbeat

    class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
        def __init__(self, backend: Any, *, heartbeat_seconds: int,
                     grace_seconds: int) -> None:
            super().__init__(backend)
            self.heartbeat_interval = heartbeat_seconds
            self.grace_period = grace_seconds

        def record_heartbeat(self, trial_id: int) -> None:
            try:
                self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # another process took it for dead meanwhile; its result is refused

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            now = time.time()
            return [t._trial_id for t in self.get_all_trials(
                        study_id, deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
                    if now - t.system_attrs.get(HEARTBEAT_ATTR, now) > self.grace_period]

        def get_heartbeat_interval(self) -> int | None:
            return self.heartbeat_interval

        def get_heartbeat_stale_trial_callback(self) -> Callable[[Any, Any], None] | None:
            return requeue_stale_trial

    return HeartbeatJournalStorage
