"""Backend adapters: the `Backend` port (`port`), one package per server kind (`triton`, `openai`) and the helpers they
share, built from URLs by `factory`."""
