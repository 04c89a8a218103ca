"""socketlab: a containerised, multi-host lab for socket programming.

The host image holds only `lab/programs/` (what runs inside the hosts, standard
library only); there `lab` is a namespace package and this file is absent.
"""
