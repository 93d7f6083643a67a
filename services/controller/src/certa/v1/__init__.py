"""Generated protobuf and gRPC code for the certa.v1 API (`make proto` regenerates it; never edit)."""
