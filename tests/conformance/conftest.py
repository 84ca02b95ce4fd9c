"""The fail2ban package, fetched once per test session, or a skip saying why not
(a failure on CI, where `apt-get download` must work: system.py)."""

from __future__ import annotations

import pytest

from conformance.fetch import CorpusUnavailable, Package, load_package
from system import missing


@pytest.fixture(scope="session")
def package() -> Package:
    try:
        return load_package()
    except CorpusUnavailable as exc:
        missing(f"fail2ban corpus unavailable: {exc}")
