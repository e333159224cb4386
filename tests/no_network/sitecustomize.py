"""Loaded by every Python process started with this folder on PYTHONPATH (tests/test_run.py): any attempt to resolve
a name or open a connection to another machine is written to $ZOO_NETWORK_LOG and fails as an unreachable network.
Connections to this machine (wandb's own service, DDP's rendezvous) still work."""
import os
import socket

LOCAL = {"127.0.0.1", "::1", "localhost", "0.0.0.0", None}
_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


def refuse(what: str):
    with open(os.environ["ZOO_NETWORK_LOG"], "a") as log:
        log.write(f"{what}\n")
    raise OSError(101, f"network is unreachable (tests/no_network): {what}")


def remote(sock: socket.socket, address) -> bool:
    return sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOCAL


def connect(self, address):
    return refuse(f"connect {address}") if remote(self, address) else _connect(self, address)


def connect_ex(self, address):
    return refuse(f"connect {address}") if remote(self, address) else _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    return refuse(f"resolve {host}") if host not in LOCAL else _getaddrinfo(host, *args, **kwargs)


socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
