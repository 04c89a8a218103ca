"""A run's outcome for people (terminal table), machines (JSON) and CI (JUnit XML)."""
