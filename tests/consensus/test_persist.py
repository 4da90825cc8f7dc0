"""The replica's durable records read back as they were written."""

import pytest

from consensus.checkpoint import Stable
from consensus.log import Slot
from protocol.messages.pbft import PreparedCert
from consensus.persist import (
    encode_newview, encode_slot, encode_stable, encode_view, load, slot_key,
)
from protocol.errors import LocalProtocolError


def test_round_trip():
    cert = PreparedCert(2, 7, b"d" * 32, b"\x07", (b"s" * 64, b"t" * 64, b"u" * 64))
    s = Slot(7, pp_view=2, digest=b"d" * 32, pp_raw=b"pp", pp_vote=b"v" * 64, prepared_view=2,
             prepared_cert=cert,
             committed=True, committed_view=2, qc_votes={0: b"s0", 3: b"s3"}, qc_checked=True)
    rec = load({"view": encode_view(3, True), slot_key(7): encode_slot(s),
                "stable": encode_stable(Stable(4, b"x" * 32, (b"c1",)), b"snap"),
                "newview": encode_newview(3, b"nv", (b"vc1", b"vc2"))})
    assert (rec.view, rec.view_changing, rec.newview) == (3, True, (3, b"nv", (b"vc1", b"vc2")))
    assert rec.stable == Stable(4, b"x" * 32, (b"c1",)) and rec.snapshot == b"snap"
    r = rec.slots[7]
    assert (r.pp_view, r.digest, r.pp_raw, r.pp_vote, r.prepared_view, r.prepared_cert,
            r.committed, r.committed_view, r.qc_votes, r.qc_checked) == (
        2, b"d" * 32, b"pp", b"v" * 64, 2, cert, True, 2, {0: b"s0", 3: b"s3"}, True)


def test_damage_is_a_local_error():
    with pytest.raises(LocalProtocolError, match="damaged"):
        load({"view": encode_view(1, False)[:-1] + b"\x00\x00"})
