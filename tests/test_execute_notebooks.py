"""scripts/execute_notebooks.py: its kernel channel polls in short slices, so a missed wake-up
of ZeroMQ's poll costs one slice instead of a whole cell timeout (issue: stalled executions)."""

import asyncio
import sys
from pathlib import Path
from queue import Empty

import pytest
import zmq
import zmq.asyncio
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.session import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import execute_notebooks  # noqa: E402


async def _channel_pair():
    context = zmq.asyncio.Context()
    receiver, sender = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
    receiver.bind("inproc://short-poll-test")
    sender.connect("inproc://short-poll-test")
    session = Session(key=b"")
    return context, execute_notebooks.ShortPollChannel(receiver, session), sender, session


def test_a_message_whose_wake_up_was_missed_arrives_after_one_slice(monkeypatch):
    monkeypatch.setattr(execute_notebooks, "POLL_SLICE_S", 0.05)
    polls = []
    real_get_msg = AsyncZMQSocketChannel.get_msg

    async def first_poll_misses(self, timeout=None):
        polls.append(timeout)
        if len(polls) == 1:  # the message is there, but this poll never wakes up
            await asyncio.sleep(timeout)
            raise Empty
        return await real_get_msg(self, timeout)

    monkeypatch.setattr(AsyncZMQSocketChannel, "get_msg", first_poll_misses)

    async def scenario():
        context, channel, sender, session = await _channel_pair()
        session.send(sender, session.msg("execute_reply", {"status": "ok"}))
        reply = await channel.get_msg(timeout=300)  # a cell timeout
        context.destroy(linger=0)
        return reply

    reply = asyncio.run(scenario())
    assert reply["header"]["msg_type"] == "execute_reply"
    assert len(polls) == 2 and all(t <= 0.05 for t in polls)  # two short polls, not one of 300 s


def test_no_message_still_raises_empty_at_the_deadline(monkeypatch):
    monkeypatch.setattr(execute_notebooks, "POLL_SLICE_S", 0.05)

    async def scenario():
        context, channel, _, _ = await _channel_pair()
        try:
            await channel.get_msg(timeout=0.2)
        finally:
            context.destroy(linger=0)

    with pytest.raises(Empty):
        asyncio.run(scenario())


def test_execute_runs_the_cells_and_shuts_its_kernel_down(tmp_path, monkeypatch):
    import nbformat
    import psutil

    path = tmp_path / "tiny.ipynb"
    nbformat.write(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")]), path
    )
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    execute_notebooks.execute(path, timeout=120)
    executed = nbformat.read(path, as_version=4)
    assert executed.cells[0].outputs[0]["text"] == "42\n"
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    assert [p for p in left if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
