"""The runtime: the only place that awaits. It drives strategies against backends."""
