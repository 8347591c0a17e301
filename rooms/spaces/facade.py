"""``Spaces``: the one object the HTTP API, the socket.io namespace and the recorder use
for everything about spaces; it delegates to the part that owns each concern."""

from __future__ import annotations

import time
from collections.abc import Callable

from rooms.cases.cases import Cases
from rooms.cases.keys import CaseKeys
from rooms.spaces.events import SpaceEvent, SpaceEvents
from rooms.spaces.files import SpaceFiles
from rooms.spaces.members import SpaceMembers
from rooms.spaces.messages import SpaceMessages
from rooms.spaces.recordings import SpaceRecordings
from rooms.spaces.spaces import SpaceDirectory
from rooms.storage.store import Store
from rooms.vault.store import SpaceVault


class Spaces:
    """Owns spaces, their membership, messages and files (rows and vault blobs).

    Each concern lives in its own part (``SpaceDirectory``, ``SpaceMembers``,
    ``SpaceMessages``, ``SpaceFiles``, ``SpaceRecordings``); this class wires them to one
    store, case keys, vault, clock and listener list and exposes their operations.
    """

    def __init__(
        self,
        store: Store,
        cases: Cases,
        keys: CaseKeys,
        vault: SpaceVault,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.cases = cases
        self.keys = keys
        self.vault = vault
        self.clock = clock
        self.__events = SpaceEvents()
        directory = SpaceDirectory(store, cases, keys, self.__events, clock)
        members = SpaceMembers(directory)
        messages = SpaceMessages(directory)
        files = SpaceFiles(directory, vault)
        recordings = SpaceRecordings(directory)
        # events
        self.listen = self.__events.listen
        self.publish = self.__events.publish
        # spaces
        self.create = directory.create
        self.get = directory.get
        self.update = directory.update
        self.spaces_for = directory.spaces_for
        # members
        self.is_member = members.is_member
        self.require_member = members.require_member
        self.add_member = members.add_member
        self.remove_member = members.remove_member
        self.members = members.members
        # messages
        self.post = messages.post
        self.edit = messages.edit
        self.delete = messages.delete
        self.history = messages.history
        self.mark_read = messages.mark_read
        # files and recordings
        self.upload = files.upload
        self.files = files.files
        self.file = files.file
        self.open_file = files.open_file
        self.add_recording = recordings.add_recording

    async def case_closed(self, case_id: str, space_ids: tuple[str, ...]) -> None:
        """A closed case's spaces are gone (``rooms.cases.closing.CaseClosedListener``)."""
        await self.publish(SpaceEvent("space.closed", case_id, None, space_ids=space_ids))
