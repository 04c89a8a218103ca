"""`lab grade DIR`: the lecture's socket assignment, graded on a lab of real containers.

    harness.py   the check registry, and Grading: the lab and the student's servers
    checks.py    the checks themselves (points, level, one sentence each)
    run.py       one submission: copy it, bring the lab up, run the checks, tear down
    report.py    the terminal table, JUnit XML and Gradescope's results.json

`lab grade --class DIR`: a whole class (docs/grading-a-class.md).

    classroom.py       the class's submissions in each layout; hostile ones refused with a reason
    batch.py           worker processes, resume, the progress; OUT/ and its files
    reuse.py           one lab per worker, its hosts made new for every student; one capture
    gradebook.py       gradebook.csv, the summary, PrairieLearn's and GitHub Classroom's shapes
    student_report.py  a student's report.html
    demo.py            a class of the lecture and its classic bugs (docs, tests, benchmark)
"""
