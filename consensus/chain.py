"""The epoch chain: from the genesis to any epoch's committees, checkable offline.

Each ``EpochNotice`` carries the directory's final state of an epoch and 2f+1 signed
checkpoints over it from that epoch's directory committee. Starting from the genesis (whose
committees everyone derives alike), each notice is checked against the committee the chain has
reached so far, and yields the next epoch's configuration. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
    cfg = config_of(notice.state, params)
    if cfg.epoch != notice.epoch + 1:
        raise InvalidProof("epoch notice does not advance the epoch")
    return cfg


def config_of(state: bytes, params: DirectoryParams) -> EpochConfig:
    """The configuration a directory state (a notice's, checked or trusted) sets up."""
    service = Service(DirectoryMachine(params))
    service.restore(state)
    directory: DirectoryMachine = service.machine  # type: ignore[assignment]
    return directory.config()


def open_notice(raw: bytes, verifier: Any) -> EpochNotice:
    """A sealed notice's body; ``InvalidProof`` if the envelope holds anything else."""
    env = verifier.open(raw)
    if not isinstance(env.body, EpochNotice):
        raise InvalidProof(f"expected an epoch notice, got {env.type}")
    return env.body


def follow(start: EpochConfig, params: DirectoryParams, notices: Iterable[bytes],
           verifier: Any) -> EpochConfig:
    """Apply sealed notices in order; raises ``InvalidProof`` / ``RemoteProtocolError``.
    Keeps only the configuration reached (``ChainFollower`` keeps each)."""
    cfg = start
    for raw in notices:
        cfg = next_config(open_notice(raw, verifier), cfg, params, verifier)
    return cfg


class ChainFollower:
    """One chain, followed once from ``start``: the configuration of each epoch it reaches,
    kept. Checking a job's certificates against it checks each notice once; following the
    chain again for each certificate cost (tasks x epochs) notices' signatures."""

    def __init__(self, start: EpochConfig, params: DirectoryParams, notices: Sequence[bytes],
                 verifier: Any) -> None:
        self.configs = [start]
        self._params, self._notices, self._verifier = params, notices, verifier

    @property
    def start(self) -> int:
        return self.configs[0].epoch

    def config(self, epoch: int) -> EpochConfig:
        """Epoch ``epoch``'s configuration; ``InvalidProof`` / ``RemoteProtocolError`` if the
        chain does not reach it, or a notice on the way does not check."""
        if epoch < self.start:
            raise InvalidProof(f"the chain starts at epoch {self.start}, not before {epoch}")
        while len(self.configs) <= epoch - self.start:
            k = len(self.configs) - 1
            if k >= len(self._notices):
                raise InvalidProof(f"the chain reaches epoch {self.start + k}, not {epoch}")
            notice = open_notice(self._notices[k], self._verifier)
            self.configs.append(next_config(notice, self.configs[-1], self._params,
                                            self._verifier))
        return self.configs[epoch - self.start]
