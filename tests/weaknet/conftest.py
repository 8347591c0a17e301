import pytest

from tests.support.weaknet import WeakNet, need_weaknet


@pytest.fixture
async def net():
    """A :class:`WeakNet` for the test, removed after it (namespaces, links, children)."""
    need_weaknet()
    async with WeakNet() as weak_net:
        yield weak_net
