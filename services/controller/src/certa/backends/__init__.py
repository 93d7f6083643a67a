"""Backend adapters: the `Backend` port (`base`) and its implementations, built from URLs by `factory`."""
