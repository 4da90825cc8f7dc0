"""Result certificates: 2f+1 committee signatures over a task's accepted result, checkable by
anyone offline with nothing but the network's genesis.

When a member's ledger accepts a task's result, the member signs the *result statement*
(domain ``RESULT``: network, shard, epoch, ledger op number, job, task, status, exit code,
output hash and size, how many distinct volunteers reported that result, and the hash and
size of the task's stderr) and sends it to the job's submitter (``ResultVote``). 2f+1 distinct members' signatures
make the certificate. With the epoch chain up to its epoch (``consensus.chain``), a verifier
that trusts only the genesis can check that the signers were the shard's committee then.
With the output file, it checks the output too.

The chain is not in each certificate: it grows with the network's age (each notice the whole
membership: 94 KB at 1,000 members, so a 3,000-task job at epoch 20 wrote 11 GB of
certificates when each carried it), and a job's certificates share it. A result directory
holds it once (``epoch_chain.json``, ``chain_doc``), and the verifier follows it once
(``ChainFollower``). Certificates that carry their own chain (written before, and an FL
update's) verify with it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from consensus.chain import ChainFollower, follow
from consensus.checkpoint import InvalidProof
from consensus.crypto import Ed25519Verifier
from consensus.quorum import quorum_size
from daemon.errors import DaemonError
from daemon.genesis import Genesis
from protocol import domains
from protocol.canonical import packb
from protocol.errors import RemoteProtocolError
from protocol.identity import NodeIdentity, node_id_from_public_key, verify_signature
from protocol.messages.tasks import TaskStatus

FORMAT = "novacron-result-certificate-v3"
"""v3 signs how many distinct volunteers agreed, and the task's stderr (hash and size); v2
signed the exit code (v1 left it out). v2 certificates still verify, but state no agreement
count, so ``verify --min-agree`` fails them."""
FORMAT_V2 = "novacron-result-certificate-v2"
EMPTY_SHA256 = hashlib.sha256(b"").digest()
CHAIN_FORMAT = "novacron-epoch-chain-v1"


def statement(network: str, shard: int, epoch: int, seq: int, job: bytes, task: int,
              status: int, exit_code: int, output_hash: bytes, output_size: int,
              agreed: int | None, stderr_hash: bytes = EMPTY_SHA256, stderr_size: int = 0) -> bytes:
    """The signed bytes. ``agreed`` None: the v2 statement (no count, no stderr)."""
    fields: list[Any] = [network, shard, epoch, seq, job, task, status, exit_code, output_hash,
                         output_size]
    if agreed is not None:
        fields += [agreed, stderr_hash, stderr_size]
    return domains.RESULT + packb(fields)


def sign_vote(identity: NodeIdentity, *fields: Any) -> bytes:
    return identity.sign(statement(*fields))


@dataclass(frozen=True)
class ResultCertificate:
    network: str
    shard: int
    epoch: int
    seq: int
    job: bytes
    task: int
    status: int
    exit_code: int
    output_hash: bytes
    output_size: int
    committee: tuple[bytes, ...]
    signatures: tuple[tuple[int, bytes], ...]
    chain: tuple[bytes, ...] = ()
    agreed: int | None = None
    """Distinct volunteers whose results matched the accepted one (None: a v2 certificate,
    which did not say)."""
    stderr_hash: bytes = EMPTY_SHA256
    stderr_size: int = 0

    def statement(self) -> bytes:
        return statement(self.network, self.shard, self.epoch, self.seq, self.job, self.task,
                         self.status, self.exit_code, self.output_hash, self.output_size,
                         self.agreed, self.stderr_hash, self.stderr_size)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "format": FORMAT if self.agreed is not None else FORMAT_V2, "network": self.network,
            "shard": self.shard, "epoch": self.epoch,
            "seq": self.seq, "job": self.job.hex(), "task": self.task,
            "status": TaskStatus(self.status).name, "exit_code": self.exit_code,
            "output_sha256": self.output_hash.hex(),
            "output_size": self.output_size,
        }
        if self.agreed is not None:
            doc.update(agreed=self.agreed, stderr_sha256=self.stderr_hash.hex(),
                       stderr_size=self.stderr_size)
        doc.update({
            "committee": [node_id_from_public_key(pk) for pk in self.committee],
            "signatures": [{"member": i, "signature": sig.hex()} for i, sig in self.signatures],
            "epoch_chain": [raw.hex() for raw in self.chain],
        })
        return doc

    @classmethod
    def from_json(cls, doc: Any) -> "ResultCertificate":
        from protocol.identity import public_key_from_node_id

        if not isinstance(doc, dict) or doc.get("format") not in (FORMAT, FORMAT_V2):
            raise CertificateError(f"not a NovaCron result certificate (format must be {FORMAT!r})")
        v3 = doc["format"] == FORMAT
        try:
            return cls(
                network=str(doc["network"]), shard=int(doc["shard"]), epoch=int(doc["epoch"]),
                seq=int(doc["seq"]), job=bytes.fromhex(doc["job"]), task=int(doc["task"]),
                status=int(TaskStatus[doc["status"]]), exit_code=int(doc["exit_code"]),
                output_hash=bytes.fromhex(doc["output_sha256"]),
                output_size=int(doc["output_size"]),
                committee=tuple(public_key_from_node_id(m) for m in doc["committee"]),
                signatures=tuple((int(s["member"]), bytes.fromhex(s["signature"]))
                                 for s in doc["signatures"]),
                chain=tuple(bytes.fromhex(x) for x in doc.get("epoch_chain", [])),
                agreed=int(doc["agreed"]) if v3 else None,
                stderr_hash=bytes.fromhex(doc["stderr_sha256"]) if v3 else EMPTY_SHA256,
                stderr_size=int(doc["stderr_size"]) if v3 else 0)
        except (KeyError, ValueError, TypeError, RemoteProtocolError) as err:
            raise CertificateError(f"certificate is damaged: {type(err).__name__}: {err}") from None


class CertificateError(DaemonError):
    pass


@dataclass(frozen=True)
class Check:
    ok: bool
    what: str


def chain_doc(network: str, notices: tuple[bytes, ...]) -> dict[str, Any]:
    """The epoch chain as a result directory keeps it (``epoch_chain.json``)."""
    return {"format": CHAIN_FORMAT, "network": network, "notices": [n.hex() for n in notices]}


def chain_from_doc(doc: Any, genesis: Genesis) -> ChainFollower:
    """A follower of an ``epoch_chain.json`` from ``genesis``; ``CertificateError`` if it is
    not one, or is for another network."""
    if not isinstance(doc, dict) or doc.get("format") != CHAIN_FORMAT:
        raise CertificateError(f"not a NovaCron epoch chain (format must be {CHAIN_FORMAT!r})")
    if doc.get("network") != genesis.network:
        raise CertificateError(f"the epoch chain is for network {doc.get('network')!r}, the "
                               f"genesis for {genesis.network!r}")
    try:
        notices = tuple(bytes.fromhex(x) for x in doc["notices"])
    except (KeyError, TypeError, ValueError) as err:
        raise CertificateError(f"the epoch chain is damaged: {err}") from None
    return ChainFollower(genesis.epoch0(), genesis.directory_params(), notices,
                         Ed25519Verifier(genesis.network))


def verify_certificate(cert: ResultCertificate, genesis: Genesis | None,
                       output: bytes | None, min_agree: int | None = None,
                       chain: ChainFollower | None = None) -> list[Check]:
    """Every check, passed or failed, in order (all must pass). With ``min_agree``, the
    certificate must state that at least that many distinct volunteers agreed. ``chain``: the
    epoch chain for a certificate that does not carry its own (``chain_from_doc``)."""
    checks: list[Check] = []
    n = len(cert.committee)
    need = quorum_size(n)  # 2f+1 when n = 3f+1: any two such sets share a correct member
    valid = set()
    stmt = cert.statement()
    for index, sig in cert.signatures:
        if 0 <= index < n and verify_signature(cert.committee[index], stmt, sig):
            valid.add(index)
    checks.append(Check(len(valid) >= need,
                        f"signatures: {len(valid)} valid of {n} committee members, {need} needed"))
    if cert.agreed is None:
        checks.append(Check(min_agree is None, "agreement: not stated (a v2 certificate, from "
                            "before certificates counted the volunteers that agreed)"))
    else:
        enough = min_agree is None or cert.agreed >= min_agree
        want = f", {min_agree} required" if min_agree is not None else ""
        checks.append(Check(enough, f"agreement: {cert.agreed} distinct volunteer(s) reported "
                            f"this result{want}"))
    if output is not None:
        digest = hashlib.sha256(output).digest()
        checks.append(Check(digest == cert.output_hash and len(output) == cert.output_size,
                            f"output: {len(output)} bytes, SHA-256 "
                            f"{'matches' if digest == cert.output_hash else 'does NOT match'} the certificate"))
    if genesis is None:
        checks.append(Check(True, "committee: not checked against a genesis (pass --genesis)"))
        return checks
    if genesis.network != cert.network:
        checks.append(Check(False, f"network: certificate is for {cert.network!r}, genesis for {genesis.network!r}"))
        return checks
    if not cert.chain and cert.epoch > 0 and chain is None:
        checks.append(Check(False, f"epoch chain: none given for epoch {cert.epoch} (a result "
                            "directory keeps it in epoch_chain.json)"))
        return checks
    try:
        if cert.chain or chain is None:
            cfg = follow(genesis.epoch0(), genesis.directory_params(), cert.chain,
                         Ed25519Verifier(genesis.network))
        else:
            cfg = chain.config(cert.epoch)
    except (InvalidProof, RemoteProtocolError) as err:
        checks.append(Check(False, f"epoch chain: {err}"))
        return checks
    if cfg.epoch != cert.epoch:
        checks.append(Check(False, f"epoch chain reaches epoch {cfg.epoch}, certificate is for {cert.epoch}"))
        return checks
    members = cfg.committees.get(cert.shard)
    checks.append(Check(members == cert.committee,
                        f"committee: shard {cert.shard} of epoch {cert.epoch} "
                        f"{'is' if members == cert.committee else 'is NOT'} the one the genesis "
                        f"and {cfg.epoch} epoch notice(s) lead to"))
    return checks


def dumps(certs: list[ResultCertificate]) -> str:
    return json.dumps([c.to_json() for c in certs], indent=1)
