"""The PBFT replica's clocks: when to suspect the primary, when to ask peers, how to pace.

A mixin of ``consensus.replica.Replica`` (fields declared in ``consensus.replica_base``), pure
like the rest: time comes in through ``tick``. What it decides, each tick (``_timers``):

- *suspicion*: a backup with work pending and no execution for the view-change timeout starts
  a view change (``GENESIS_TIMEOUTS`` timeouts before the committee's first batch ever); the
  timeout is the base the shell sets from measured round trips (``retune``) or
  ``PACE_TIMEOUTS`` times the committee's smoothed wait for an execution, whichever is longer
  (``_paced_timeout``): a slow committee is not a faulty one;
- *the new view*: not in time after a quorum left the view, the next view, with the timeout
  doubled, unless the NEW-VIEW is here and waits only for view changes it names
  (``_new_view_arriving``);
- *status*: sent only once the replica's head stood still a resend interval (``_head``), and
  ever less often while it is left behind in a view change (``_still_left_behind``);
- *short of a quorum* (``reach``): the timers stand still and re-sends slow down by
  ``SHORT_RESEND``; time the shell spent on the replica's own work does not count (``busy``).
"""

from __future__ import annotations

import dataclasses

from consensus.log import Slot
from consensus.replica_base import ReplicaBase
from protocol.messages.pbft import Status

SHORT_RESEND = 8
"""Status intervals between re-sends while a quorum is not reachable (2 s at the 0.25 s base:
still soon enough to dial the members as they appear)."""

NEW_VIEW_PATIENCE = 4
"""Timeouts a replica holding the new primary's NEW-VIEW waits for the view changes it names
before it suspects that primary too (a Byzantine one naming view changes nobody has costs
this many timeouts, once per view)."""



GENESIS_TIMEOUTS = 4.0
"""Before a committee's first batch ever executed, a backup waits this many timeouts before it
suspects the primary: the first batch waits for members still dialling each other. At one
timeout, 3-5 of a 19-member committee forming over 30 daemons on ``planet`` lines asked for
view 1 or 2 at every start while the others carried on, and those left behind were
most of the f+1 whose requests pull a whole committee into a view change later."""

LEFT_BEHIND_BACKOFF = 16
"""A replica left behind in a view change sends its status at most this many resend intervals
apart while nothing changes for it (``Replica._still_left_behind``)."""

LAG_PATIENCE = 4.0
"""Timeouts a replica that is catching up (``Timers._lagging``) waits before it blames the
primary after all."""

PACE_TIMEOUTS = 4.0
"""The view-change timeout is at least this many times the committee's smoothed wait for an
execution (``Replica._paced_timeout``)."""


class Timers(ReplicaBase):
    """The replica's timers (module docstring)."""

    def busy(self, seconds: float) -> None:
        """The shell spent ``seconds`` carrying out this replica's own work (executing a big
        batch, snapshotting a checkpoint, persisting it) and read no messages meanwhile. That
        time is ours, not the primary's: the view-change timers do not count it. (Without this
        a replica that took longer than the timeout to execute a big job's batch suspected its
        primary as soon as it looked up, and big jobs caused a view change after another.)"""
        if seconds <= 0:
            return
        if self.progress_at is not None:
            self.progress_at += seconds
        if self.nv_wait_since is not None:
            self.nv_wait_since += seconds

    def reach(self, reachable: int) -> None:
        """The shell can reach ``reachable`` members now (this one included): below a quorum,
        the view-change timers stand still and re-sends slow down (module docstring)."""
        self.short_of_quorum = reachable < self.cfg.quorum

    def resting(self) -> bool:
        """Nothing for this replica's timers to do until input comes: no request or batch
        pending, none committed and unexecuted, no view change, no state or batch body to
        fetch, no restart to announce. A shell may then tick it less often
        (``daemon.committees.service``), as long as any message or request brings the next
        tick at once: the timers of work start from the tick that first sees it."""
        return not (self._has_work() or self.view_changing or self.restarted or
                    self.nv_pending is not None or self._refs_waiting or
                    any(s.requests is None and seq > self.last_executed
                        for seq, s in self.log.slots.items()))

    @property
    def resend_interval(self) -> float:
        """Seconds between status (and view-change) re-sends."""
        return self.cfg.status_interval * (SHORT_RESEND if self.short_of_quorum else 1)

    def _carrying_on(self) -> tuple[int, int]:
        """(view, members) of the lower view most members were lately seen working in, when
        this replica is view changing; (-1, 0) otherwise."""
        if not self.view_changing:
            return -1, 0
        # Lower-view members answer our status (``Recovery._on_status``): a status every
        # resend interval, or every ``_status_wait`` once left behind.
        since = self.now - 4 * self.resend_interval - self._status_wait
        views: dict[int, int] = {}
        for view, changing, at in self.peer_views.values():
            if at >= since and not changing and view < self.view:
                views[view] = views.get(view, 0) + 1
        if not views:
            return -1, 0
        top = max(views, key=lambda v: (views[v], v))
        return top, views[top]

    def _timers(self) -> None:
        now = self.now
        if self.short_of_quorum:
            self.busy(now - self._ticked_at)  # nobody to vote a primary out with: no blame
        self._ticked_at = now
        resend = self.resend_interval
        work = self._has_work()
        if not work and not self.view_changing:
            self._calm_at = now
        if not self.view_changing:
            if not work:
                self.progress_at = None
            elif self.progress_at is None:
                self.progress_at = now
            elif now - self.progress_at > self.timeout * (
                    GENESIS_TIMEOUTS if self.last_executed == 0 else 1):
                if self._lagging(now):
                    self.progress_at = now  # catching up: the committee is not stalled
                    self.timeouts_excused += 1
                else:
                    self._suspect_primary(now - self.progress_at)
        else:
            if self.nv_wait_since is not None and now - self.nv_wait_since > self.timeout and \
                    not self._new_view_arriving(now):
                waited, self.timeout = self.timeout, min(2 * self.timeout,
                                                         self.cfg.max_view_change_timeout)
                self._start_view_change(self.view + 1, "new view late: none within "
                                        f"{waited:.1f} s of a quorum leaving")
            elif self.my_vc is not None and now - self.vc_sent_at > max(2 * resend,
                                                                         self.vc_resend_wait):
                self.vc_sent_at = now
                self.vc_resend_wait = min(2 * max(self.vc_resend_wait, 2 * resend),
                                          self.cfg.max_view_change_timeout)
                for i in self._vc_resend_targets():
                    self._send(i, self.my_vc)
        self._poll_fetch()
        self._fetch_batches()
        if self._refs_waiting:
            self._ask_refs()
        if self.nv_pending is not None and self.view_changing and \
                now - self.last_status >= self.cfg.status_interval:
            pending, self.nv_pending = self.nv_pending, None  # asks again for what it lacks
            self._on_new_view(self.cfg.primary(pending.body.view), pending.body, pending)
        head = self._head()
        if head != self._head_seen:
            self._head_seen, self._head_at = head, now
        quiet = now - self._head_at < min(resend, self.timeout / 2) and \
            self.view_changes_in_a_row == 0 and \
            not (self.view_changing or self.fetch is not None)
        behind = self._still_left_behind(head)
        wait = self._status_wait if behind else resend
        if (work or self.view_changing or self.restarted) and not quiet and \
                now - self.last_status >= wait:
            self._status_wait = min(2 * wait, LEFT_BEHIND_BACKOFF * resend) if behind else resend
            # A restarted replica asks until its head has stood still for a timeout: an idle
            # committee sends it nothing else, and each peer answers a status with a bounded
            # number of commit proofs at most every two of its own status intervals
            # (``Recovery._on_status``). One ask left it two batches behind for good, until
            # new work came (which a restarted member's own clock tick used to bring). Like
            # any status it goes only while its head stands still (``quiet``): one that keeps
            # up with a busy committee asks for nothing.
            if self.restarted and now - self._head_at >= max(4 * resend, self.timeout):
                self.restarted = False
            self.last_status, self._status_head = now, head
            self._broadcast(Status(self.cfg.shard, self.cfg.epoch, self.view, self.view_changing,
                                   self.stable.seq, self.last_executed))
            if not self.is_primary and not self.view_changing and not self.cfg.by_reference:
                for r in list(self.pending.values())[: self.cfg.batch_size]:
                    self._send(self.primary, r.raw)
            elif not self.is_primary and not self.view_changing:
                self._forward_unordered()

    def _suspect_primary(self, waited: float) -> None:
        """No execution for a timeout, and not for our own lag: ask for the next view."""
        self.progress_at = self._lagging_since = None
        pace = f"{self.pace:.2f} s" if self.pace is not None else "none yet"
        first = f" x {GENESIS_TIMEOUTS:g} before the first batch" if self.last_executed == 0 else ""
        self._start_view_change(self.view + 1, f"timeout: no execution for {waited:.1f} s "
                                f"(timeout {self.timeout:.1f} s{first}, pace {pace})")

    def _lagging(self, now: float) -> bool:
        """This replica is behind a committee that carries on, for less than ``LAG_PATIENCE``
        timeouts after its first timeout found it so: it fetches a stable checkpoint's state,
        or a quorum committed the batch after its last execution (it lacks the batch or its
        order). Its lack of execution is then its own lag, not a stalled primary, and a view
        change would only take it out of the view the others work in.

        On a 30-daemon ``planet`` testnet, members on slow lines fetching snapshots during a
        job timed out, asked for the next view alone (a quorum carried on) and stayed there
        for the rest of the job: five of 19 at once, one short of the committee stopping,
        each re-sending its view change and fetching every later checkpoint's state. The
        patience is bounded, so a fetch that never ends (or a primary that orders for the
        others and never for us, once we have caught up) still ends in a view change. Only
        the batch right after our last execution counts: batches committed past a sequence
        number nobody committed are a Byzantine primary's hole, which the others wait on too
        (``scripts/sim_consensus.py`` seed 1253: Twins)."""
        following = self.log.get(self.last_executed + 1)
        behind = self.fetch is not None or (
            following is not None and self._committed_by_a_quorum(following))
        if not behind:
            self._lagging_since = None
            return False
        if self._lagging_since is None:
            self._lagging_since = now
        return now - self._lagging_since < LAG_PATIENCE * self.timeout

    def _committed_by_a_quorum(self, s: Slot) -> bool:
        """Committed here, or a quorum's commits in this view agree on a batch we lack."""
        if s.committed:
            return True
        counts: dict[bytes, int] = {}
        for vote in s.commits.get(self.view, {}).values():
            counts[vote.digest] = counts.get(vote.digest, 0) + 1
        return max(counts.values(), default=0) >= self.cfg.quorum

    def _still_left_behind(self, head: tuple[int, bool, int, int]) -> bool:
        """Left behind in a view change (a quorum seen carrying on in a lower view), with the
        head where the last status left it.

        PBFT cannot take such a replica back; it follows the committee's commits, which its
        status asks for, and nothing else it sends can move anything. Each member of the lower
        view answers each status, so on a 30-daemon ``planet`` testnet the five members that
        forming left behind sent 24-37 frames a second each, and kept the other 14 at 6-8,
        with nothing to order: about a fifth of the idle CPU of 30 daemons on two cores, which
        every commit then queued behind. Such a replica's statuses go ever less often
        (``_timers``: doubling, up to ``LEFT_BEHIND_BACKOFF`` resend intervals apart); a head
        that moves (a commit proof executed, a new view) brings them back to every interval."""
        return head == self._status_head and self.view_changing and \
            self._carrying_on()[1] >= self.cfg.quorum

    def _head(self) -> tuple[int, bool, int, int]:
        """Where this replica stands on its next batch: view, view change, last executed, and
        the next batch's phase (0 nothing, 1 pre-prepared, 2 prepared, 3 committed).

        Status only asks peers for what did not come, so it goes once the head stood still a
        resend interval (``_timers``), not every interval while work is pending. On a
        30-daemon WAN testnet a ``kv put`` took 0.6-0.9 s, so each of 19 members sent two or
        three statuses to all 18 others per put, and each answered with its votes again:
        a third of the committee's frames, on a machine whose CPU the puts saturated (commit
        latency there was queueing, not the network)."""
        s = self.log.get(self.last_executed + 1)
        phase = 0
        if s is not None and s.committed:
            phase = 3
        elif s is not None and s.prepared_view == self.view:
            phase = 2
        elif s is not None and s.pp_view == self.view:
            phase = 1
        return (self.view, self.view_changing, self.last_executed, phase)

    def _learn_pace(self, waited: float) -> None:
        """One normal-case wait for an execution (work pending, no view change since the last
        execution): the committee's pace, smoothed."""
        if waited < 0:
            return
        self.pace = waited if self.pace is None else 0.75 * self.pace + 0.25 * waited

    def _paced_timeout(self) -> float:
        """The view-change timeout after an execution: the base (round trips, ``retune``), or
        ``PACE_TIMEOUTS`` times the committee's pace if that is longer, at most the cap. A
        committee that executes a batch every few seconds (a 19-member one of 30 daemons on
        two cores: CPU, not the primary) is slow, not faulty; with the base alone every
        backup suspected each new primary within its first batch, and view followed view."""
        base = self.cfg.view_change_timeout
        if self.pace is None:
            return base
        return min(max(base, PACE_TIMEOUTS * self.pace), max(base, self.cfg.max_view_change_timeout))

    def _new_view_arriving(self, now: float) -> bool:
        """The new primary's NEW-VIEW is here and waits only for view changes it names that
        have not reached us (asked for every status interval): the primary did its part, so
        do not suspect it yet, up to ``NEW_VIEW_PATIENCE`` timeouts. Timing out here put
        replicas on slow lines a view ahead of a quorum that never followed."""
        pending = self.nv_pending
        return (pending is not None and pending.body.view == self.view and
                self.nv_wait_since is not None and
                now - self.nv_wait_since <= NEW_VIEW_PATIENCE * self.timeout)

    def retune(self, view_change_timeout: float, status_interval: float) -> None:
        """Set the base timers (the shell scales them by the committee's measured round trip:
        ``daemon.p2p.rtt``). A running timeout is never shortened below the new base."""
        if view_change_timeout <= 0 or status_interval <= 0:
            raise ValueError("timers must be > 0")
        self.cfg = dataclasses.replace(self.cfg, view_change_timeout=view_change_timeout,
                                       status_interval=status_interval,
                                       max_view_change_timeout=max(
                                           self.cfg.max_view_change_timeout, view_change_timeout))
        self.timeout = max(self.timeout, view_change_timeout)
