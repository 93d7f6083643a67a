"""The gRPC door: the `certa.v1.ReasoningService` servicer, the interceptor mapping errors to statuses, and the
mapping of core values to protobuf messages."""
