"""Celery's filesystem broker (the embedded default), with each message written atomically.

kombu's filesystem transport creates a message file and then writes it under a flock, but its reader moves
files without taking that lock. A reader that lists the folder between the two takes an empty message, and
the worker stops with "Unrecoverable error: JSONDecodeError" (celery/kombu#1551). Here a message is written
under a name the reader ignores and then renamed into place, which is atomic within one folder.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

PARTIAL_SUFFIX = ".partial"  # "<ms>_<uuid>.<queue>.msg.partial" never matches the reader's "<queue>.msg"


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        """Put `payload` onto `queue`: written whole under a hidden name, then renamed into place."""
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + PARTIAL_SUFFIX
        try:
            with open(partial, "wb") as stream:
                stream.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as error:
            raise ChannelError(f"Cannot add file {final!r} to directory") from error


class Transport(filesystem.Transport):
    Channel = Channel


def install() -> None:
    """Make `filesystem://` broker URLs use this transport (before any connection is made)."""
    TRANSPORT_ALIASES["filesystem"] = f"{__name__}:Transport"
