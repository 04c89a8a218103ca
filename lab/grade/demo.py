"""A class to grade: the lecture's programs and the classic bugs students hand in, for the
docs, the tests and benchmarks/grade_class.py.

    python -m lab.grade.demo CLASS_DIR [--copies N] [--gradescope]

makes CLASS_DIR/<variant>[-<n>]/ with the four programs (or a Gradescope export layout
with ``submission_metadata.yml``).  ``EXPECTED_LOST`` says which checks of the default
level each variant loses, and why.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict

import yaml

LECTURE: Dict[str, str] = {
    "TCPServer.py": """from socket import *
import os
serverPort = int(os.environ.get('SERVER_PORT', 12000))
serverSocket = socket(AF_INET, SOCK_STREAM)
serverSocket.bind(('', serverPort))
serverSocket.listen(1)
print('The server is ready to receive')
while True:
    connectionSocket, addr = serverSocket.accept()
    sentence = connectionSocket.recv(1024).decode()
    capitalizedSentence = sentence.upper()
    connectionSocket.send(capitalizedSentence.encode())
    connectionSocket.close()
""",
    "UDPServer.py": """from socket import *
import os
serverPort = int(os.environ.get('SERVER_PORT', 12000))
serverSocket = socket(AF_INET, SOCK_DGRAM)
serverSocket.bind(('', serverPort))
print('The server is ready to receive')
while True:
    message, clientAddress = serverSocket.recvfrom(2048)
    modifiedMessage = message.decode().upper()
    serverSocket.sendto(modifiedMessage.encode(), clientAddress)
""",
    "TCPClient.py": """from socket import *
import os
serverName = os.environ.get('SERVER_NAME', 'server')
serverPort = int(os.environ.get('SERVER_PORT', 12000))
clientSocket = socket(AF_INET, SOCK_STREAM)
clientSocket.connect((serverName, serverPort))
sentence = input('Input lowercase sentence:')
clientSocket.send(sentence.encode())
modifiedSentence = clientSocket.recv(1024)
print('From Server: ', modifiedSentence.decode())
clientSocket.close()
""",
    "UDPClient.py": """from socket import *
import os
serverName = os.environ.get('SERVER_NAME', 'server')
serverPort = int(os.environ.get('SERVER_PORT', 12000))
clientSocket = socket(AF_INET, SOCK_DGRAM)
message = input('Input lowercase sentence:')
clientSocket.sendto(message.encode(), (serverName, serverPort))
modifiedMessage, serverAddress = clientSocket.recvfrom(2048)
print(modifiedMessage.decode())
clientSocket.close()
""",
}

# variant -> file -> (old, new) replacements in the lecture's text
BUGS: Dict[str, Dict[str, list]] = {
    "lecture": {},
    "localhost": {f: [("os.environ.get('SERVER_NAME', 'server')", "'localhost'")]
                  for f in ("TCPClient.py", "UDPClient.py")},
    "loopback": {f: [("bind(('', serverPort))", "bind(('127.0.0.1', serverPort))")]
                 for f in ("TCPServer.py", "UDPServer.py")},
    "python2": {
        "TCPServer.py": [("print('The server is ready to receive')", "print 'The server is ready to receive'")],
        "UDPServer.py": [("print('The server is ready to receive')", "print 'The server is ready to receive'")],
        "TCPClient.py": [("input(", "raw_input("), ("print('From Server: ', modifiedSentence.decode())",
                                                     "print 'From Server: ', modifiedSentence")],
        "UDPClient.py": [("input(", "raw_input("), ("print(modifiedMessage.decode())", "print modifiedMessage")],
    },
    "send-str": {
        "TCPServer.py": [("send(capitalizedSentence.encode())", "send(capitalizedSentence)")],
        "TCPClient.py": [("send(sentence.encode())", "send(sentence)")],
    },
    "one-shot": {"TCPServer.py": [("while True:\n    connectionSocket", "if True:\n    connectionSocket")]},
    "wrong-port": {f: [("int(os.environ.get('SERVER_PORT', 12000))", "12001")] for f in LECTURE},
}

_SERVER_TCP = {"tcp_server_replies_in_upper_case", "tcp_server_answers_several_clients", "tcp_server_works_with_nc"}
_SERVER_UDP = {"udp_server_replies_in_upper_case", "udp_server_answers_several_clients", "udp_server_works_with_nc"}
_CLIENT_TCP = {"tcp_client_gets_the_reply", "tcp_client_works_with_nc"}
_CLIENT_UDP = {"udp_client_gets_the_reply", "udp_client_works_with_nc"}

# The checks of the default level each variant loses (the rest it passes).
EXPECTED_LOST = {
    "lecture": set(),
    "localhost": _CLIENT_TCP | _CLIENT_UDP,                       # its clients talk to themselves
    "loopback": _SERVER_TCP | _SERVER_UDP,                        # nobody through the router reaches it
    "python2": _SERVER_TCP | _SERVER_UDP | _CLIENT_TCP | _CLIENT_UDP | {"tcp_client_reports_a_refused_connection"},
    "send-str": _SERVER_TCP | _CLIENT_TCP,                        # TypeError: a bytes-like object is required
    "one-shot": _SERVER_TCP - {"tcp_server_replies_in_upper_case"},   # serves its first client only
    "wrong-port": _SERVER_TCP | _SERVER_UDP | _CLIENT_TCP | _CLIENT_UDP,  # refused on 12000 still says refused
}


def variant_files(variant: str) -> Dict[str, str]:
    files = dict(LECTURE)
    for name, changes in BUGS[variant].items():
        for old, new in changes:
            assert old in files[name], (variant, name, old)
            files[name] = files[name].replace(old, new)
    return files


def make_class(folder: Path, copies: int = 1, variants=None, gradescope: bool = False) -> Dict[str, str]:
    """Write the class; returns submission folder name -> variant."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    made, metadata = {}, {}
    for n in range(copies):
        for i, variant in enumerate(variants or BUGS):
            name = variant if copies == 1 else f"{variant}-{n + 1}"
            if gradescope:
                number = 100000 + n * 100 + i
                name = f"submission_{number}"
                metadata[name] = {":submitters": [{":name": f"Student {variant} {n + 1}", ":sid": str(number),
                                                   ":email": f"{variant}.{n + 1}@example.edu"}],
                                  ":created_at": "2026-12-01 10:00:00 +0000", ":score": None}
            sub = folder / name
            sub.mkdir(exist_ok=True)
            for file, text in variant_files(variant).items():
                (sub / file).write_text(text)
            made[name] = variant
    if gradescope:
        (folder / "submission_metadata.yml").write_text(yaml.safe_dump(metadata, sort_keys=True))
    return made


# A submission that tries to leave things for the next student on the same lab: a detached
# process that keeps port 12000 (answering wrongly), files in /work, /tmp and /root.
LEAVES_THINGS = '''import subprocess, sys
open('/work/leftover.txt', 'w').write('from the last student')
open('/tmp/leftover.txt', 'w').write('from the last student')
open('/root/leftover.txt', 'w').write('from the last student')
squatter = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", 12000)); s.listen(5)
while True:
    c, _ = s.accept(); c.recv(1024); c.sendall(b"LEFT OVER"); c.close()
"""
subprocess.Popen([sys.executable, '-c', squatter], start_new_session=True,
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
'''


def make_hostile(folder: Path) -> Dict[str, str]:
    """Submissions that would break a grader, each with the words its row's reason holds
    ("" for the ones that are graded): an archive that does not unpack, a 2 GB (sparse)
    file, a symlink to /etc/passwd, a name with a newline, a zip of a good submission,
    a tar that writes outside itself."""
    import io
    import tarfile
    import zipfile
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bad.zip").write_bytes(b"PK\x03\x04 this is not a zip")
    big = folder / "big"
    big.mkdir()
    (big / "TCPServer.py").write_text(LECTURE["TCPServer.py"])
    with open(big / "movie.mp4", "wb") as f:
        f.truncate(2 << 30)
    link = folder / "link"
    link.mkdir()
    (link / "TCPServer.py").symlink_to("/etc/passwd")
    odd = folder / "new\nline"
    odd.mkdir()
    (odd / "UDPServer.py").write_text(LECTURE["UDPServer.py"])
    with zipfile.ZipFile(folder / "zipped.zip", "w") as z:
        z.writestr("hw/UDPServer.py", LECTURE["UDPServer.py"])
    with tarfile.open(folder / "escape.tar.gz", "w:gz") as t:
        info = tarfile.TarInfo("../../outside.py")
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
    return {"bad.zip": "does not unpack", "big": "movie.mp4 is 2,147.5 MB", "link": "symlink to /etc/passwd",
            "new\nline": "", "zipped.zip": "", "escape.tar.gz": "outside itself"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.grade.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--gradescope", action="store_true", help="Gradescope's export layout, with names")
    args = parser.parse_args(argv)
    made = make_class(args.folder, args.copies, gradescope=args.gradescope)
    print(f"{len(made)} submissions in {args.folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
