"""The embedded default's filesystem broker: a reader never takes a message that is still being written."""

from __future__ import annotations

import json
import threading
from queue import Empty

from kombu import Connection
from kombu.transport import filesystem

from workers import broker_files


def folder_options(tmp_path) -> dict:
    queue = tmp_path / "queue"
    queue.mkdir()
    return {"data_folder_in": str(queue), "data_folder_out": str(queue), "store_processed": False,
            "control_folder": str(tmp_path / "control")}


def read(channel) -> object:
    """What one read of the queue gives: the message, or the exception raised (as the worker would meet it)."""
    try:
        return channel._get("send")
    except Exception as error:
        return error


def read_while_writing(transport, tmp_path, monkeypatch, module) -> tuple[object, object, object]:
    """Put a message whose serialisation is held up and read the queue meanwhile; then, once the put is
    done, read twice more. Returns the three reads."""
    writing, finish = threading.Event(), threading.Event()
    real_dumps = module.dumps

    def slow_dumps(payload):
        writing.set()
        finish.wait(10)
        return real_dumps(payload)

    monkeypatch.setattr(module, "dumps", slow_dumps)
    with Connection("filesystem://", transport=transport, transport_options=folder_options(tmp_path)) as connection:
        channel = connection.default_channel
        writer = threading.Thread(target=channel._put, args=("send", {"body": "hello"}))
        writer.start()
        assert writing.wait(10)
        meanwhile = read(channel)
        finish.set()
        writer.join(10)
        return meanwhile, read(channel), read(channel)


def test_kombus_own_transport_hands_out_a_half_written_message(tmp_path, monkeypatch):
    # given kombu's filesystem transport (the reason for workers.broker_files), a message being written
    meanwhile, _, _ = read_while_writing(filesystem.Transport, tmp_path, monkeypatch, filesystem)
    # then a reader meanwhile takes the empty file and fails to decode it
    assert isinstance(meanwhile, json.JSONDecodeError), \
        "kombu no longer hands out half-written messages: workers.broker_files can go"


def test_a_message_being_written_is_invisible_until_whole(tmp_path, monkeypatch):
    # given Blast's transport and a message being written
    meanwhile, then, after = read_while_writing(broker_files.Transport, tmp_path, monkeypatch, broker_files)
    # then a reader meanwhile finds the queue empty, and the whole message once, when it is written
    assert isinstance(meanwhile, Empty)
    assert then == {"body": "hello"}
    assert isinstance(after, Empty)
    assert not list((tmp_path / "queue").iterdir())


def test_filesystem_broker_urls_use_blasts_transport(tmp_path):
    import workers.app  # noqa: F401  (installs the transport, as every Blast process does)

    with Connection("filesystem://", transport_options=folder_options(tmp_path)) as connection:
        assert isinstance(connection.transport, broker_files.Transport)
