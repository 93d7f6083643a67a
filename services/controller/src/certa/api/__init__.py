"""The gRPC API: validation, mapping and the servicer; thin by design."""
