import os
import signal
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(min(2, torch.get_num_threads()))
# A suite started in the background by a non-interactive shell (`... &`) has SIGINT ignored,
# and every process it starts inherits that: the tests that press Ctrl-C on a child saw
# nothing happen (the child's Python leaves an ignored SIGINT ignored, as reportgen does).
# Python's own handler, as in a terminal; children start with the default action.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    """One results cache for the session, set before any fixture runs: module fixtures and the
    Ray workers they start (which keep the environment of ``ray.init``) write there too, never
    into the user's cache, and no result left there by an earlier run is read as a new one.
    The model cache stays shared (fetching is expensive)."""
    before = os.environ.get("REPORTGEN_CACHE")
    real_models = Path(before or Path.home() / ".cache" / "reportgen") / "models"
    cache = tmp_path_factory.getbasetemp() / "reportgen-cache"
    cache.mkdir(exist_ok=True)
    if not (cache / "models").exists() and real_models.exists():
        (cache / "models").symlink_to(real_models)
    os.environ["REPORTGEN_CACHE"] = str(cache)
    yield cache
    if before is None:
        os.environ.pop("REPORTGEN_CACHE", None)
    else:
        os.environ["REPORTGEN_CACHE"] = before


@pytest.fixture(autouse=True)
def _isolated_cache(_session_cache, monkeypatch):
    """Each test starts with the session's cache (a test that moved it is undone)."""
    monkeypatch.setenv("REPORTGEN_CACHE", str(_session_cache))
    from reportgen import cache_files  # a cache one test made unwritable is not the next's

    monkeypatch.setattr(cache_files, "_unwritable", set())
    monkeypatch.setattr(cache_files, "_said", set())


@pytest.fixture(scope="module")
def one_thread():
    """Tiny float64 matmuls gain nothing from threads and crawl on an oversubscribed box."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer():
    """The tiny word-level tokenizer of `tiny_models`, shared by the tiny-model graph tests."""
    from tiny_models import tiny_tokenizer

    return tiny_tokenizer()
