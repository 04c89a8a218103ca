#!/usr/bin/env bash
# Gradescope runs this once, when it builds the autograder image. socketlab needs Python 3.9+,
# and a Docker Engine on the machine that runs run_autograder.
set -eu
apt-get install -y python3-venv python3-pip mmdebstrap
python3 -m venv /autograder/source/venv
/autograder/source/venv/bin/pip install socketlab      # or: pip install /autograder/source/socketlab
/autograder/source/venv/bin/lab images build            # the lab's host image (about a minute)
