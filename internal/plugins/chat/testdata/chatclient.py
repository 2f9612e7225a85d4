#!/usr/bin/env python3
"""A chat client written from the protocol description alone, to show the
wire format is language-neutral. Usage: chatclient.py HOST PORT [--users]
or chatclient.py HOST PORT HOST2 PORT2 (two instances sharing one Redis:
bob logs in on the second, and his second login on the first)

Runs a fixed conversation against a fresh server and exits 0 if every reply
is as documented, 1 (with the reason on stderr) otherwise. With --users the
server must have been started with --users naming a file where alice's
password is "secret" and bob's "hunter2"; the conversation then checks that
a verify needs the right password."""

import json
import socket
import struct
import sys

HEADER = struct.Struct("!3I")  # length (incl. header), version, command


class Client:
    def __init__(self, host, port, version=1):
        self.sock = socket.create_connection((host, port), timeout=5)
        self.version = version
        self.buf = b""

    def send(self, command, body=None, version=None):
        data = b"" if body is None else json.dumps(body).encode("utf-8")
        v = self.version if version is None else version
        self.sock.sendall(HEADER.pack(HEADER.size + len(data), v, command) + data)

    def recv(self):
        """Returns (version, command, body) of the next frame, or None at EOF."""
        while True:
            if len(self.buf) >= HEADER.size:
                length, version, command = HEADER.unpack_from(self.buf)
                if len(self.buf) >= length:
                    body = self.buf[HEADER.size:length]
                    self.buf = self.buf[length:]
                    return version, command, json.loads(body.decode("utf-8")) if body else None
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk

    def expect(self, command, **fields):
        frame = self.recv()
        check(frame is not None, "connection closed while waiting for %d" % command)
        version, got, body = frame
        check(got == command, "got command %d %r, want %d" % (got, body, command))
        check(version == self.version, "reply version %d, want %d" % (version, self.version))
        for k, v in fields.items():
            check(body.get(k) == v, "command %d: %s=%r, want %r (%r)" % (command, k, body.get(k), v, body))
        return body

    def login(self, phone, password=None):
        body = {"phone_number": phone}
        if password is not None:
            body["password"] = password
        self.send(1, body)
        self.expect(101, code=1)


def check(cond, why):
    if not cond:
        sys.stderr.write("chatclient.py: " + why + "\n")
        sys.exit(1)


def with_users(host, port):
    alice, bob = Client(host, port), Client(host, port)
    alice.login("alice", "secret")
    bob.login("bob", "hunter2")

    # Without the right password nothing changes: 401, and alice keeps
    # her session.
    mallory = Client(host, port)
    for body in ({"phone_number": "alice"},
                 {"phone_number": "alice", "password": "hunter2"},
                 {"phone_number": "carol", "password": "secret"}):
        mallory.send(1, body)
        mallory.expect(199, code=401, error="wrong ID or password")
    mallory.send(2, {"chat_from": "alice", "chat_to": "bob", "chat_content": "x"})
    mallory.expect(199, code=401)
    bob.send(2, {"chat_from": "bob", "chat_to": "alice", "chat_content": "still there?"})
    alice.expect(102, chat_from="bob", chat_content="still there?")
    print("ok")


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    if sys.argv[3:] == ["--users"]:
        return with_users(host, port)
    host2, port2 = (sys.argv[3], int(sys.argv[4])) if len(sys.argv) == 5 else (host, port)
    alice, bob, carol = Client(host, port), Client(host2, port2, version=2), Client(host, port)
    alice.login("alice")
    bob.login("bob")
    carol.login(8613800138000)

    alice.send(5)  # heartbeat: no reply
    alice.send(2, {"chat_from": "alice", "chat_to": "bob", "chat_content": "h\u00e9llo \u4f60\u597d"})
    bob.expect(102, chat_from="alice", chat_content="h\u00e9llo \u4f60\u597d")

    bob.send(3, {"chat_from": "bob", "chat_to": ["alice", "8613800138000"], "chat_content": "group"})
    alice.expect(103, chat_from="bob", chat_content="group")
    carol.expect(103, chat_from="bob", chat_content="group")

    carol.send(4, {"chat_from": 8613800138000, "chat_content": "all"})
    alice.expect(104, chat_from=8613800138000, chat_content="all")
    bob.expect(104, chat_from=8613800138000, chat_content="all")

    alice.send(2, {"chat_from": "alice", "chat_to": "nobody", "chat_content": "x"})
    alice.expect(199, code=410, undelivered=["nobody"])
    alice.send(2, {"chat_from": "bob", "chat_to": "carol", "chat_content": "spoof"})
    alice.expect(199, code=403)
    alice.send(42)
    alice.expect(199, code=404)

    # A bad length: error reply, then the server closes the connection.
    alice.sock.sendall(HEADER.pack(4, 1, 5))
    alice.expect(199, code=411)
    check(alice.recv() is None, "connection still open after a bad length")

    # A second login takes the ID over.
    bob2 = Client(host, port)
    bob2.login("bob")
    bob.expect(199, code=409)
    check(bob.recv() is None, "old connection still open after a second login")
    carol.send(2, {"chat_from": 8613800138000, "chat_to": "bob", "chat_content": "new bob"})
    bob2.expect(102, chat_from=8613800138000, chat_content="new bob")
    print("ok")


if __name__ == "__main__":
    main()
