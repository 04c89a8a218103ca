"""socketlab: a containerised, multi-host lab for socket programming.

This file stays free of imports on purpose: `lab.programs` is copied into the
host image, where only the Python standard library exists.
"""
