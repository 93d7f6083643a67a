"""Per-tenant quotas shared by every replica: the port (`port`), its Redis and in-process adapters."""
