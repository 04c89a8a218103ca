"""`pytest scenarios/` runs every shipped scenario as a test (socketlab's pytest plugin).

The grading scenarios judge a student's folder, so they run only when one is given:
`pytest scenarios/grading --socketlab-work path/to/submission`."""


def pytest_ignore_collect(collection_path, config):
    if collection_path.name == "grading" and not config.getoption("socketlab_work"):
        return True
    return None
