"""The toolchain images (`lab images build --with c|java`): the host image plus a compiler or
a JDK, built by the same path; a student's C or Java program compiles and runs on them, our
programs are still there, and `lab doctor` lists them."""
import json
import subprocess

from lab import engine, labels
from lab.images import definition


def _run(image: str, script: str) -> subprocess.CompletedProcess:
    # create + start (never a pull); removed whatever happens
    c = engine.client()
    ctr = c.containers.create(image, ["sh", "-c", script], network_mode="none",
                              labels={labels.LABEL: "1"})
    try:
        ctr.start()
        code = ctr.wait(timeout=300)["StatusCode"]
        return subprocess.CompletedProcess(script, code, ctr.logs().decode(), "")
    finally:
        ctr.remove(force=True)


def test_the_c_image_compiles_and_runs_a_program_and_keeps_our_programs(toolchain_images):
    tag = toolchain_images["c"]
    image = engine.client().images.get(tag)
    assert image.labels[labels.LABEL_IMAGE] == "c"
    assert image.labels[labels.LABEL_PROGRAMS] == definition.programs_digest(definition.context_files())
    r = _run(tag, "cd /tmp && printf '#include <stdio.h>\\nint main(void){puts(\"compiled\");return 0;}\\n' > a.c"
                  " && printf 'a: a.c\\n\\tcc -o a a.c\\n' > Makefile && make -s && ./a && command -v host-role")
    assert r.returncode == 0 and "compiled" in r.stdout and "/usr/local/bin/host-role" in r.stdout, r.stdout


def test_the_java_image_compiles_and_runs_a_program(toolchain_images):
    tag = toolchain_images["java"]
    assert engine.client().images.get(tag).labels[labels.LABEL_IMAGE] == "java"
    r = _run(tag, "cd /tmp && printf 'class A { public static void main(String[] a) { System.out.println(\"ran\"); } }'"
                  " > A.java && javac A.java && java -Xmx64m A && command -v tcp-client")
    assert r.returncode == 0 and "ran" in r.stdout and "tcp-client" in r.stdout, r.stdout


def test_lab_doctor_lists_the_built_toolchain_images(toolchain_images, lab_command):
    done = lab_command("doctor", "--json", check=False, timeout=300)
    checks = {c["name"]: c for c in json.loads(done.stdout)}
    detail = checks["toolchain images"]["detail"]
    assert f"c ({toolchain_images['c']})" in detail and f"java ({toolchain_images['java']})" in detail, detail
