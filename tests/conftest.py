"""Test-wide settings: no network, a private cache, deterministic CPU threads."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

# Tiny models gain nothing from threads, and OpenMP's spinning threads make a busy 2-core
# machine (CI) crawl; set before torch is imported, so subprocesses inherit it too.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# One cache for the whole session: converted weights and datasets are built once per run, and
# a developer's own ~/.cache/autotl is never touched.
os.environ["AUTOTL_CACHE_DIR"] = os.environ.get(
    "AUTOTL_TEST_CACHE_DIR", tempfile.mkdtemp(prefix="autotl-test-cache-")
)

# tests/plugins holds plugin modules that tests register by hand.
sys.path.insert(0, str(Path(__file__).parent / "plugins"))

# The fixtures plugin authors get (tests/testing/test_fixtures.py checks them).
pytest_plugins = ["autotl.testing.fixtures"]


@pytest.fixture(scope="session")
def benchmark_script():  # noqa: ANN201
    """``load(name)``: the script ``benchmarks/<name>.py`` as a module (benchmarks/ is not
    a package)."""
    import importlib.util

    def load(name: str):  # noqa: ANN202
        path = Path(__file__).parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"{name}_script", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load

@pytest.fixture
def user_globals():  # noqa: ANN201
    """A notebook user's own matplotlib backend and Optuna log level, put back afterwards:
    library code must leave both as it found them."""
    import matplotlib
    import optuna

    backend, verbosity = matplotlib.get_backend(), optuna.logging.get_verbosity()
    matplotlib.use("pdf")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield {"backend": "pdf", "optuna_verbosity": optuna.logging.WARNING}
    matplotlib.use(backend)
    optuna.logging.set_verbosity(verbosity)


# -- PostgreSQL (tests marked `postgres`) ------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_cluster():  # noqa: ANN201
    """A throwaway PostgreSQL cluster for the session (autotl.testing.postgres). Without
    PostgreSQL the tests that use it are skipped, except in CI (CI=true), where they fail: a
    green CI must have run them."""
    from autotl.testing.postgres import Cluster, ClusterUnavailable

    try:
        import psycopg  # noqa: F401

        cluster = Cluster().start()
    except (ClusterUnavailable, ImportError, OSError) as exc:
        message = f"PostgreSQL is unavailable: {exc}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + " (CI=true: postgres tests must run, not skip)")
        pytest.skip(message)
    yield cluster
    cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster):  # noqa: ANN001, ANN201
    """The URL of a fresh, empty database in the session's cluster."""
    return postgres_cluster.url(postgres_cluster.create_database())
