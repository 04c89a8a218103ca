"""`lab grade DIR`: the lecture's socket assignment, graded on a lab of real containers.

    harness.py   the check registry, and Grading: the lab and the student's servers
    checks.py    the checks themselves (points, level, one sentence each)
    run.py       one submission: copy it, bring the lab up, run the checks, tear down
    report.py    the terminal table, JUnit XML and Gradescope's results.json
"""
