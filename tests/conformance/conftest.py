"""The fail2ban package, fetched once per test session, or a skip saying why not."""

from __future__ import annotations

import pytest

from conformance.fetch import CorpusUnavailable, Package, load_package


@pytest.fixture(scope="session")
def package() -> Package:
    try:
        return load_package()
    except CorpusUnavailable as exc:
        pytest.skip(f"fail2ban corpus unavailable: {exc}")
