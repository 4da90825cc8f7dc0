"""The directory committee's state machine: who is a member, and which epoch it is.

The directory committee (shard ``committee.DIRECTORY_SHARD``) orders three operations, each a
client request signed by the node it concerns (``Request.operation`` is a msgpack array):

- ``["join", nonce]``   -- the signer asks to become a member from the next epoch; ``nonce`` is
                           its proof of work (``consensus.pow``) at the network's difficulty.
- ``["leave"]``         -- the signer (a member) leaves at the next epoch.
- ``["evict", pk, e]``  -- a member of epoch ``e``'s directory committee reports that member
                           ``pk`` has been silent too long (``daemon.committees.epochs``
                           decides when). Once f+1 of that committee agree (so at least one
                           honest member has seen the silence), ``pk`` is out at the next
                           epoch, unless that would leave fewer than ``min_committee``
                           members. A volunteer who vanished without ``leave`` would otherwise
                           stay in the sortition forever, and enough of them would halt a
                           committee; an evicted node that comes back simply joins again.
- ``["advance", e]``    -- a current member proposes moving to epoch ``e`` = current + 1; the
                           first one ordered wins, the others are stale no-ops.

Advancing applies the pending joins, leaves and evictions, derives the next epoch's randomness as
BLAKE2b(previous randomness, epoch, membership digest) and with it the committees
(``committee.assign_committees``: no node on more than ``committee.seat_cap`` of them), so
every honest node that follows the directory's log computes the same committees. Committee size follows the membership: the smallest 3f+1 whose
hypergeometric failure probability meets the target, or everyone if the network is too small.

Known limit: the randomness is predictable one epoch ahead, so a patient adversary can grind
keys (paying proof of work for each) to land in a chosen committee. Unbiasable randomness
(threshold signatures or a VRF-based beacon ordered by the directory) would close that.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from consensus.committee import DIRECTORY_SHARD, assign_committees, committee_size, max_faulty
from consensus.pow import check_pow
from consensus.statemachine import ClientRequest
from protocol.canonical import packb, unpackb
from protocol.errors import LocalProtocolError, MalformedMessage


@dataclass(frozen=True, slots=True)
class DirectoryParams:
    network: str
    difficulty: int
    shards: int
    byzantine_fraction: float = 0.2
    target_failure: float = 1e-6
    min_committee: int = 4


@dataclass(frozen=True, slots=True)
class EpochConfig:
    epoch: int
    randomness: bytes
    members: tuple[bytes, ...]
    committee_size: int
    committees: dict[int, tuple[bytes, ...]]


def next_randomness(prev: bytes, epoch: int, members: tuple[bytes, ...]) -> bytes:
    return hashlib.blake2b(prev + struct.pack(">Q", epoch) + b"".join(members),
                           digest_size=32, person=b"nc-epoch-rand").digest()


def size_for(params: DirectoryParams, population: int) -> int:
    try:
        return committee_size(population, params.byzantine_fraction, params.target_failure,
                              params.min_committee)
    except LocalProtocolError:
        return population


class DirectoryMachine:
    """Implements ``consensus.statemachine.StateMachine``."""

    __slots__ = ("params", "epoch", "randomness", "members", "joining", "leaving", "evicting",
                 "_directory")

    def __init__(self, params: DirectoryParams, genesis_members: tuple[bytes, ...] = (),
                 genesis_randomness: bytes = b"\x00" * 32) -> None:
        self.params = params
        self.epoch = 0
        self.randomness = genesis_randomness
        self.members: tuple[bytes, ...] = tuple(sorted(set(genesis_members)))
        self.joining: set[bytes] = set()
        self.leaving: set[bytes] = set()
        self.evicting: dict[bytes, set[bytes]] = {}
        """Member -> the directory committee members who reported it silent this epoch."""
        self._directory: tuple[bytes, ...] | None = None

    def directory_committee(self) -> tuple[bytes, ...]:
        if self._directory is None:
            self._directory = self.config().committees[DIRECTORY_SHARD]
        return self._directory

    def evicted(self) -> set[bytes]:
        """Members enough of the directory committee reported silent: out at the next epoch."""
        need = max_faulty(len(self.directory_committee())) + 1
        return {m for m, voters in self.evicting.items() if len(voters) >= need}

    def config(self) -> EpochConfig:
        size = size_for(self.params, len(self.members))
        return EpochConfig(self.epoch, self.randomness, self.members, size,
                           assign_committees(self.randomness, self.members, self.params.shards,
                                             size))

    def apply(self, request: ClientRequest) -> bytes:
        try:
            op = unpackb(request.operation)
        except MalformedMessage:
            return b"error: not msgpack"
        if not isinstance(op, list) or not op or not isinstance(op[0], str):
            return b"error: bad operation"
        who = request.client
        if op[0] == "join" and len(op) == 2 and type(op[1]) is int:
            if who in self.members or who in self.joining:
                return b"already"
            if not check_pow(self.params.network, who, op[1], self.params.difficulty):
                return b"error: proof of work does not meet the difficulty"
            self.joining.add(who)
            self.leaving.discard(who)
            return b"ok"
        if op[0] == "leave" and len(op) == 1:
            if who not in self.members:
                self.joining.discard(who)
                return b"ok"
            self.leaving.add(who)
            return b"ok"
        if op[0] == "evict" and len(op) == 3 and isinstance(op[1], bytes) and type(op[2]) is int:
            if op[2] != self.epoch:
                return b"stale"
            if who not in self.directory_committee():
                return b"error: only the directory committee reports silent members"
            if op[1] not in self.members or op[1] == who:
                return b"error: not another member"
            self.evicting.setdefault(op[1], set()).add(who)
            return b"evicted at the next epoch" if op[1] in self.evicted() else b"ok"
        if op[0] == "advance" and len(op) == 2 and type(op[1]) is int:
            if who not in self.members:
                return b"error: only members advance the epoch"
            if op[1] != self.epoch + 1:
                return b"stale"
            staying = (set(self.members) | self.joining) - self.leaving
            evicted = self.evicted()
            if len(staying - evicted) >= self.params.min_committee:
                staying -= evicted
            self.members = tuple(sorted(staying))
            self.epoch += 1
            self.randomness = next_randomness(self.randomness, self.epoch, self.members)
            self.joining.clear()
            self.leaving.clear()
            self.evicting.clear()
            self._directory = None
            return f"epoch {self.epoch}".encode()
        return b"error: unknown operation"

    def snapshot(self) -> bytes:
        evicting = [[m, sorted(v)] for m, v in sorted(self.evicting.items())]
        return packb([self.epoch, self.randomness, list(self.members), sorted(self.joining),
                      sorted(self.leaving), evicting], maps=False)

    def restore(self, snapshot: bytes) -> None:
        v = unpackb(snapshot, max_size=1 << 40, max_items=1 << 24)
        try:
            # Snapshots from before evictions have five fields.
            epoch, rand, members, joining, leaving, *rest = v
            self.epoch, self.randomness = int(epoch), bytes(rand)
            self.members = tuple(bytes(m) for m in members)
            self.joining, self.leaving = {bytes(m) for m in joining}, {bytes(m) for m in leaving}
            self.evicting = {bytes(m): {bytes(x) for x in voters} for m, voters in rest[0]} \
                if rest else {}
            self._directory = None
        except (TypeError, ValueError):
            raise MalformedMessage("directory snapshot has the wrong shape") from None
