import pytest


@pytest.fixture(scope="session")
def lab(socketlab_session):
    """One lab for the whole suite: four clients, the uppercase servers on port 12000."""
    return socketlab_session(clients=4)
