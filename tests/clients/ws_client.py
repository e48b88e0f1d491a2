#!/usr/bin/env python3
"""Drives examples/chat.rs with Python's `websockets` library, a client
nobody here wrote: echo of text and binary, a fragmented message, ping/pong,
a 16 MiB message, the close handshake with its code, and two chat clients in
one room seeing each other.

    python3 tests/clients/ws_client.py PORT

Exit status 0 on success, 1 on a failed check, 77 when websockets is not
installed.
"""
import asyncio
import sys

try:
    import websockets
    from websockets.asyncio.client import connect
except ImportError:
    print("websocket client check: skipped, websockets is not installed (pip install websockets)")
    sys.exit(77)


async def echo(port):
    url = f"ws://127.0.0.1:{port}/echo"
    async with connect(url, max_size=32 * 1024 * 1024) as ws:
        await ws.send("héllo ✓")
        assert await ws.recv() == "héllo ✓"
        await ws.send(b"\x00\x01\xff")
        assert await ws.recv() == b"\x00\x01\xff"
        # Fragmented: websockets sends an iterable as one message in frames.
        await ws.send(["frag", "men", "ted"])
        assert await ws.recv() == "fragmented"
        latency = await (await ws.ping(b"are you there"))
        assert latency >= 0
        big = bytes(range(256)) * (16 * 1024 * 1024 // 256)
        await ws.send(big)
        got = await ws.recv()
        assert got == big, f"16 MiB message came back as {len(got)} bytes"
        await ws.close(code=1000, reason="done")
        assert ws.close_code == 1000, ws.close_code
    return "echo: text, binary, fragments, ping, 16 MiB, close 1000"


async def chat(port):
    base = f"ws://127.0.0.1:{port}/ws"
    async with connect(f"{base}?room=py&name=alice") as alice, connect(f"{base}?room=py&name=bob") as bob:
        async def until(ws, wanted):
            while True:
                line = await asyncio.wait_for(ws.recv(), 5)
                if line == wanted:
                    return
        await until(alice, "* bob joined py")
        await alice.send("hi bob")
        await until(bob, "alice: hi bob")
        await bob.send("hi alice")
        await until(alice, "bob: hi alice")
    # A client that names no room lands in the lobby.
    async with connect(base) as guest:
        assert await asyncio.wait_for(guest.recv(), 5) == "* guest joined lobby"
    return "chat: two clients in one room see each other; no room means the lobby"


async def main():
    port = int(sys.argv[1])
    for check in (echo, chat):
        print(f"websocket client check: {await check(port)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except (AssertionError, websockets.exceptions.WebSocketException, asyncio.TimeoutError) as e:
        print(f"websocket client check: FAILED: {e!r}")
        sys.exit(1)
