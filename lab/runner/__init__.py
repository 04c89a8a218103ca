"""Running a scenario: schedule (pure), processes on hosts, the run itself, artifacts."""
