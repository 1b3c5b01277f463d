"""The gateway keeps its connection to a runner between requests (runner_connections.py): a
connect per request was part of the time the gateway added to every chat."""

import os
import time
from pathlib import Path

import httpx

from modelrunner.runner_connections import RunnerConnections
from modelrunner.runners import socket_path

MODEL = "ai/smollm2"


def chat(server):
    answer = httpx.post(server.url + "/engines/v1/chat/completions", timeout=120,
                        json={"model": MODEL, "max_tokens": 1, "temperature": 0,
                              "messages": [{"role": "user", "content": "Say hi."}]})
    assert answer.status_code == 200, answer.text


def runner_connections(server):
    """The inodes of the connections the SmolLM2 runner has accepted and holds open."""
    [runner] = [r for r in httpx.get(server.url + "/engines/ps", timeout=30).json()
                if r["model_name"].endswith("smollm2:latest") and r["mode"] == "completion"]
    path = runner["address"].removeprefix("unix://")
    fds = Path(f"/proc/{runner['pid']}/fd")
    held = {link.removeprefix("socket:[").rstrip("]") for link in
            (_readlink(fd) for fd in fds.iterdir()) if link and link.startswith("socket:[")}
    accepted = set()
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        # Num RefCount Protocol Flags Type St Inode Path: St 03 is connected (a listening
        # socket is 01)
        if len(fields) >= 8 and fields[7] == path and fields[5] == "03" and fields[6] in held:
            accepted.add(fields[6])
    return accepted


def _readlink(path):
    try:
        return str(path.readlink())
    except OSError:
        return None


def test_chats_in_a_row_go_over_one_kept_connection_to_the_runner(server):
    chat(server)  # loads the runner if needed
    chat(server)
    first = runner_connections(server)
    chat(server)
    assert first and first & runner_connections(server), \
        "each chat opened a new connection to the runner"


def runner_address(server):
    chat(server)  # loads the runner if needed
    [runner] = [r for r in httpx.get(server.url + "/engines/ps", timeout=30).json()
                if r["model_name"].endswith("smollm2:latest") and r["mode"] == "completion"]
    return runner["address"]


def kept(connections, address):
    """A connection to ``address`` that answered a health check and went back to be kept."""
    conn, _ = connections.take(address)
    conn.request("GET", "/health")
    resp = conn.getresponse()
    resp.read()
    connections.give_back(address, conn, resp)
    return conn


def test_a_runner_on_its_way_out_gets_no_request_on_a_kept_connection(server):
    """The scheduler renames a runner's socket while it saves its prompt caches, so that no
    request reaches it; a kept connection still did (the gateway's early requests)."""
    address = runner_address(server)
    connections = RunnerConnections()
    kept(connections, address)
    path = socket_path(address)
    os.rename(path, path + ".stopping")
    try:
        _, reused = connections.take(address)
    finally:
        os.rename(path + ".stopping", path)
    assert not reused, "a request went to a runner whose socket was hidden"


def test_connections_to_runners_no_request_names_again_are_closed(server):
    """Each runner has a new address; a worker kept its connections to gone runners (a
    descriptor each, for its life: one per request of a keep_alive 0 model)."""
    address = runner_address(server)
    connections = RunnerConnections()
    connections.MAX_IDLE = 0.05
    old = kept(connections, address)
    time.sleep(0.1)
    kept(connections, socket_path(address))  # the same runner under another address
    assert old.sock is None, "a connection no request can use again is still open"
