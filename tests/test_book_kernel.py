"""The book's kernel client finds a reply whose wake-up was lost after one slice, not at the cell timeout."""

import asyncio
import time
from queue import Empty

import pytest

from tools import nbkernel as _nbkernel
from tools.nbkernel import SlicedWaitChannel, SlicedWaitClient, SlicedWaitKernelManager


class _LostWakeUpSocket:
    """A socket that already holds a message but whose poll only notices it when its timeout ends,
    as zmq.asyncio does after a lost edge-triggered wake-up."""

    def __init__(self, holds_message: bool = True) -> None:
        self.holds_message = holds_message
        self.polls: list[float | None] = []

    async def poll(self, timeout_ms: int | None = None) -> int:
        self.polls.append(timeout_ms)
        await asyncio.sleep((timeout_ms or 0) / 1000)
        return int(self.holds_message)


def _channel(socket: _LostWakeUpSocket) -> SlicedWaitChannel:
    channel = SlicedWaitChannel.__new__(SlicedWaitChannel)  # no real zmq socket or session needed
    channel.socket = socket

    async def recv(**_kwargs):
        return {"msg_type": "execute_reply"}

    channel._recv = recv
    return channel


def test_a_reply_with_a_lost_wake_up_arrives_after_one_slice(monkeypatch):
    monkeypatch.setattr(_nbkernel, "SLICE_S", 0.05)
    socket = _LostWakeUpSocket()
    start = time.monotonic()
    message = asyncio.run(_channel(socket).get_msg(timeout=30))
    assert message["msg_type"] == "execute_reply"
    assert time.monotonic() - start < 1.0, "a plain zmq.asyncio wait would sit out the whole 30 s"
    assert socket.polls == [50]


def test_no_reply_still_times_out_at_the_full_timeout(monkeypatch):
    monkeypatch.setattr(_nbkernel, "SLICE_S", 0.05)
    socket = _LostWakeUpSocket(holds_message=False)
    start = time.monotonic()
    with pytest.raises(Empty):
        asyncio.run(_channel(socket).get_msg(timeout=0.3))
    assert 0.28 < time.monotonic() - start < 1.0 and len(socket.polls) >= 6


def test_the_book_kernel_manager_hands_out_the_sliced_wait_client():
    manager = SlicedWaitKernelManager()
    assert manager.client_factory is SlicedWaitClient
    assert SlicedWaitClient.shell_channel_class.default_value is SlicedWaitChannel
    assert SlicedWaitClient.iopub_channel_class.default_value is SlicedWaitChannel
