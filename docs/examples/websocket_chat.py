#!/usr/bin/env python3
"""Sends each MESSAGE as a text message over a WebSocket and prints each answer, then closes.

    websocket_chat.py URL MESSAGE...

A small WebSocket client for trying `doppel record` in front of a WebSocket server (the
README's "WebSocket" section). Needs Python's websockets package (Debian: python3-websockets).
"""
import asyncio
import sys

import websockets


async def chat(url, messages):
    async with websockets.connect(url, open_timeout=10, close_timeout=10) as ws:
        for message in messages:
            await ws.send(message)
            answer = await asyncio.wait_for(ws.recv(), timeout=10)
            print(answer)


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: websocket_chat.py URL MESSAGE...")
    try:
        asyncio.run(chat(sys.argv[1], sys.argv[2:]))
    except (OSError, asyncio.TimeoutError, websockets.WebSocketException) as e:
        sys.exit(f"websocket_chat.py: {sys.argv[1]}: {e}")


if __name__ == "__main__":
    main()
