"""Generated protobuf and gRPC code of the certa.v1 API (`make proto` regenerates it from proto/; never edit)."""
