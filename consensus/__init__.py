"""Sharded PBFT committees for NovaCron's hard state (filled in by the consensus issue)."""
