"""Delta-state CRDTs for NovaCron's soft state (filled in by the CRDT issue)."""
