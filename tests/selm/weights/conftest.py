"""Fixtures of the weight tests: a conversion that records what it was given, and a machine
whose only way out is a proxy."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest
from release_fakes import clear_proxies, stub_conversion


@pytest.fixture
def conversions(monkeypatch):
    return stub_conversion(monkeypatch)


@pytest.fixture
def proxy_only(monkeypatch):
    """HTTPS_PROXY and HTTP_PROXY name a proxy listening on this machine; every TCP
    connection made with `socket.create_connection` to anything but `address` is refused
    (`tried` lists them all), as on a network with no direct egress."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    address = listener.getsockname()[:2]
    proxy = f"http://{address[0]}:{address[1]}"
    clear_proxies(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", proxy)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    real = socket.create_connection
    state = SimpleNamespace(proxy=proxy, address=address, tried=[])

    def connect(where, *args, **kwargs):
        state.tried.append(tuple(where[:2]))
        if tuple(where[:2]) != state.address:
            raise ConnectionRefusedError(111, "Connection refused")
        return real(where, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", connect)
    yield state
    listener.close()
