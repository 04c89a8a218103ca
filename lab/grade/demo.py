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
