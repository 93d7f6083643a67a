"""Online budget pools shared by every replica: the port (`port`), its Redis and in-process adapters.

The model they apply is `certa.core.budget_pool`.
"""
