"""`signals chaos`: a seeded fault campaign over the local stack, checked against a ledger (docs/reliability.md)."""
