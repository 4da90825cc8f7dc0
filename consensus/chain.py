"""The epoch chain: from the genesis to any epoch's committees, checkable offline.

Each ``EpochNotice`` carries the directory's final state of an epoch and 2f+1 signed
checkpoints over it from that epoch's directory committee. Starting from the genesis (whose
committees everyone derives alike), each notice is checked against the committee the chain has
reached so far, and yields the next epoch's configuration. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from consensus.checkpoint import InvalidProof
from consensus.committee import DIRECTORY_SHARD
from consensus.directory import DirectoryMachine, DirectoryParams, EpochConfig
from consensus.reconfig import Handoff, verify_handoff
from consensus.statemachine import Service, state_digest
from protocol.messages.pbft import EpochNotice


def next_config(notice: EpochNotice, current: EpochConfig, params: DirectoryParams,
                verifier: Any) -> EpochConfig:
    """Epoch ``current.epoch + 1``'s configuration, or ``InvalidProof``."""
    if notice.epoch != current.epoch:
        raise InvalidProof(f"notice ends epoch {notice.epoch}, the chain is at {current.epoch}")
    verify_handoff(Handoff(DIRECTORY_SHARD, notice.epoch, notice.seq, notice.state_digest,
                           notice.proof), current.committees[DIRECTORY_SHARD], verifier)
    if state_digest(notice.state) != notice.state_digest:
        raise InvalidProof("epoch notice state does not match its certified digest")
    service = Service(DirectoryMachine(params))
    service.restore(notice.state)
    directory: DirectoryMachine = service.machine  # type: ignore[assignment]
    if directory.epoch != notice.epoch + 1:
        raise InvalidProof("epoch notice does not advance the epoch")
    return directory.config()


def follow(start: EpochConfig, params: DirectoryParams, notices: Iterable[bytes],
           verifier: Any) -> EpochConfig:
    """Apply sealed notices in order; raises ``InvalidProof`` / ``RemoteProtocolError``."""
    cfg = start
    for raw in notices:
        env = verifier.open(raw)
        if not isinstance(env.body, EpochNotice):
            raise InvalidProof(f"expected an epoch notice, got {env.type}")
        cfg = next_config(env.body, cfg, params, verifier)
    return cfg
