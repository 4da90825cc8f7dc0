"""The replica's durable records read back as they were written."""

import pytest

from consensus.checkpoint import Stable
from consensus.log import Slot
from consensus.persist import (
    encode_newview, encode_slot, encode_stable, encode_view, load, slot_key,
)
from protocol.errors import LocalProtocolError


def test_round_trip():
    s = Slot(7, pp_view=2, digest=b"d" * 32, pp_raw=b"pp", prepared_view=2,
             prepared_proof=(b"d" * 32, b"pp", (b"p1", b"p2")),
             committed=True, committed_view=2, qc_votes={0: b"s0", 3: b"s3"}, qc_checked=True)
    rec = load({"view": encode_view(3, True), slot_key(7): encode_slot(s),
                "stable": encode_stable(Stable(4, b"x" * 32, (b"c1",)), b"snap"),
                "newview": encode_newview(3, b"nv")})
    assert (rec.view, rec.view_changing, rec.newview) == (3, True, (3, b"nv"))
    assert rec.stable == Stable(4, b"x" * 32, (b"c1",)) and rec.snapshot == b"snap"
    r = rec.slots[7]
    assert (r.pp_view, r.digest, r.pp_raw, r.prepared_view, r.prepared_proof, r.committed,
            r.committed_view, r.qc_votes, r.qc_checked) == (
        2, b"d" * 32, b"pp", 2, (b"d" * 32, b"pp", (b"p1", b"p2")), True, 2,
        {0: b"s0", 3: b"s3"}, True)


def test_damage_is_a_local_error():
    with pytest.raises(LocalProtocolError, match="damaged"):
        load({"view": encode_view(1, False)[:-1] + b"\x00\x00"})
