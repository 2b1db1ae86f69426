"""The Optuna storage of a `tfft tune` study: opened with a heartbeat, its URL shown without its
password, a missing database driver named.

A process killed mid-trial stops beating; `2 * heartbeat` seconds after its last beat another
process of the study fails that trial (Optuna's `fail_stale_trials`) and runs a new one.
"""

from __future__ import annotations

import re
import time
import warnings
from typing import Any, Optional

from tfft.errors import UserError

HEARTBEAT_S = 30  # a killed process's trial is failed (and replaced) about 2 x this later

_DRIVERS = {  # the module SQLAlchemy imports for a URL -> what to pip install
    "psycopg": '"psycopg[binary]"', "psycopg2": "psycopg2-binary", "pymysql": "PyMySQL",
    "MySQLdb": "mysqlclient", "asyncpg": "asyncpg", "pg8000": "pg8000", "mysql": "mysql-connector-python",
}


def masked(url: str) -> str:
    """`url` with its password (user info or a `password=` query parameter) replaced by `***`:
    what tfft prints or writes of a storage URL.

    Example:
    >>> masked("postgresql://tfft:s3cret@db.example:5432/studies")
    'postgresql://tfft:***@db.example:5432/studies'
    >>> masked("sqlite:///runs/tune/study.db")
    'sqlite:///runs/tune/study.db'
    """
    text = re.sub(r"(://[^/@:]*:)[^@]*@", r"\1***@", str(url))
    return re.sub(r"([?&]password=)[^&]*", r"\1***", text, flags=re.IGNORECASE)


def _scrub(text: str, url: str) -> str:
    """`text` (a driver's error message) with `url` masked and its password removed."""
    text = str(text).replace(url, masked(url))
    found = re.search(r"://[^/@:]*:([^@]*)@", url) or re.search(r"[?&]password=([^&]*)", url, re.IGNORECASE)
    if found and found.group(1):
        text = text.replace(found.group(1), "***")
    return text


def _missing_module(exc: BaseException) -> Optional[str]:
    """The module whose import failed, from an ImportError or the ImportError it was raised from."""
    while exc is not None:
        if isinstance(exc, ImportError) and exc.name:
            return exc.name.split(".")[0]
        exc = exc.__cause__ or exc.__context__
    return None


def open_storage(optuna: Any, url: str, heartbeat: int) -> Any:
    """Optuna's RDBStorage at `url`, with a heartbeat: a process killed mid-trial stops beating,
    and its trial is failed (and replaced) `2 * heartbeat` seconds after its last beat.

    Args:
        optuna: the imported `optuna` module.
        url: a SQLAlchemy URL (`sqlite:///...`, `postgresql://...`, `mysql+pymysql://...`).
        heartbeat: seconds between a running trial's beats.

    Returns:
        An `optuna.storages.RDBStorage`.

    Raises:
        UserError: the URL's driver module is missing (named, with what to pip install), or
            the database cannot be opened; the URL is shown with its password masked.
    """
    engine_kwargs = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:  # a database that cannot be reached (or a driver that is missing) fails at once, not after the retries
        _connect_once(url, engine_kwargs)
    except ImportError as exc:
        raise _driver_error(exc, url) from None
    except Exception as exc:
        raise _unopened(exc, url) from None
    last: Optional[Exception] = None
    for attempt in range(5):  # two processes creating the same new database race on its tables
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat, grace_period=2 * heartbeat,
                    heartbeat_stale_trial_callback=_report_stale)
        except ImportError as exc:
            raise _driver_error(exc, url) from None
        except Exception as exc:  # sqlalchemy's OperationalError and friends
            last = exc
            time.sleep(0.5 + attempt)
    raise _unopened(last, url)


def _connect_once(url: str, engine_kwargs: dict) -> None:
    """Open and close one connection to `url` (SQLAlchemy's error if it cannot be opened)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, **engine_kwargs)
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


def _driver_error(exc: ImportError, url: str) -> UserError:
    """The `--storage` error for a URL whose database driver (psycopg, PyMySQL) is not installed."""
    scheme = url.split("://", 1)[0]
    module = _missing_module(exc)
    if module is None:
        return UserError("--storage", f"cannot open {masked(url)}: {_scrub(exc, url)}",
                         "install the database driver SQLAlchemy names")
    return UserError("--storage", f"{scheme}:// needs the {module} module, which is not installed "
                     f"(opening {masked(url)})", f"pip install {_DRIVERS.get(module, module)}")


def _unopened(exc: Optional[Exception], url: str) -> UserError:
    return UserError("--storage", f"cannot open {masked(url)}: {_scrub(exc, url)}",
                     "check the URL (e.g. sqlite:///study.db, postgresql://user:pass@host/db)")


def _report_stale(study: Any, trial: Any) -> None:
    """Optuna's callback for a trial whose process stopped beating (killed, or its machine lost)."""
    print(f"trial {trial.number}: its process stopped (no heartbeat): failed, a new trial replaces it",
          flush=True)
