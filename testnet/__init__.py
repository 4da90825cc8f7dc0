"""The seeded in-process simulator and the local testnet launcher."""
