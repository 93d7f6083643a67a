"""The certa.v1 API's generated code, from the client package (clients/python: certa_client.v1).

There is one copy: two copies of one .proto file in a process clash in protobuf's descriptor pool, so the server
imports the client's (`make proto` regenerates it; `from certa.v1 import reasoning_pb2` keeps working).
"""

from certa_client.v1 import reasoning_pb2, reasoning_pb2_grpc

__all__ = ["reasoning_pb2", "reasoning_pb2_grpc"]
