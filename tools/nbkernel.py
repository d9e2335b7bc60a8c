"""A kernel client for executing the book that cannot sleep through a reply.

``nbclient`` talks to the kernel through ``zmq.asyncio``, which learns of a new message from an
edge-triggered file descriptor. We saw that wake-up get lost (pyzmq 27, jupyter_client 8.10):
the kernel had answered and gone idle, and the client went on waiting until the cell's timeout
(900 s in ``make book``), when its final check found the reply that had been there all along.
Waiting in short slices makes that final check happen every ``SLICE_S`` seconds instead, so a
lost wake-up costs at most that long.
"""

from __future__ import annotations

import time
from queue import Empty
from typing import Any

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.manager import AsyncKernelManager
from traitlets import Type, default

#: Longest wait between two checks of a socket for a message that is already there.
SLICE_S = 1.0


class SlicedWaitChannel(AsyncZMQSocketChannel):
    """``get_msg`` that waits for at most ``SLICE_S`` at a time, up to ``timeout`` in all."""

    async def get_msg(self, timeout: float | None = None) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = SLICE_S if deadline is None else min(SLICE_S, max(0.0, deadline - time.monotonic()))
            try:
                return await super().get_msg(timeout=left)
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise


class SlicedWaitClient(AsyncKernelClient):
    """``AsyncKernelClient`` whose message channels are ``SlicedWaitChannel``s."""

    shell_channel_class = Type(SlicedWaitChannel)  # type: ignore[assignment]
    iopub_channel_class = Type(SlicedWaitChannel)  # type: ignore[assignment]
    stdin_channel_class = Type(SlicedWaitChannel)  # type: ignore[assignment]
    control_channel_class = Type(SlicedWaitChannel)  # type: ignore[assignment]


class SlicedWaitKernelManager(AsyncKernelManager):
    """The kernel manager to hand ``nbclient.NotebookClient(kernel_manager_class=...)``."""

    @default("client_factory")
    def _client_factory_default(self) -> type:
        return SlicedWaitClient
