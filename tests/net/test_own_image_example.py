"""examples/own-image as an engineer uses it: the service's image built from the folder's
Dockerfile (on the host image here, where no registry is reachable), then the folder's
pytest file run with the plugin: under loss every answer arrives, cut off a client times out."""
import os
import secrets
import subprocess
import sys
from pathlib import Path

import docker.errors

from lab import engine, labels
from lab.images import definition

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "own-image"


def test_the_own_image_example_passes(tmp_path):
    tag = f"socketlab-test-own-image-example:{secrets.token_hex(3)}"
    api = engine.client().api
    for chunk in api.build(path=str(EXAMPLE), tag=tag, buildargs={"BASE": definition.HOST_IMAGE}, pull=False,
                           rm=True, forcerm=True, decode=True, labels={labels.LABEL: "1"}):
        assert "error" not in chunk, chunk
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_service.py"],
                              cwd=EXAMPLE, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "OWN_IMAGE_EXAMPLE": tag})
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        assert "2 passed" in done.stdout, done.stdout[-2000:]
    finally:
        try:
            engine.client().images.remove(tag, force=True)
        except docker.errors.NotFound:
            pass
