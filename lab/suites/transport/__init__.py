"""The transport-behaviour suite: what TCP and UDP do under loss, reordering, duplication,
delay, bandwidth limits and partitions, measured on one lab of real containers.

    pytest --pyargs lab.suites.transport            # about two minutes on 2 cores
    pytest --pyargs lab.suites.transport -k loss    # a part of it

Counts are judged with exact binomial intervals at 99.999 % (lab/scenario/stats.py);
times only as comparisons within one run, with the physics as the bound (a 40 ms delay
adds at least 40 ms; 500 kB through 2 Mbit/s take at least 2 s)."""
