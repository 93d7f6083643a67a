"""Python client of the Certa reasoning API (gRPC).

    from certa_client import Client, sampling, self_consistency, solve_request

    with Client("127.0.0.1:50051") as client:
        response = client.solve("What is 17 * 23?")  # Dynasor-CoT, preset mid
        print(response.result.answer, response.result.usage.probe_tokens)
        voted = client.solve(solve_request("What is 17 * 23?", self_consistency(max_samples=10),
                                           sampling_params=sampling(0.7)))

`Target` carries the address, TLS and credentials; `certa_client.build` builds requests; `certa_client.v1` is the
generated code of certa/v1/reasoning.proto.
"""

from certa_client.build import (
    batch_request,
    dynasor_cot,
    majority_vote,
    plain,
    sampling,
    self_consistency,
    solve_request,
)
from certa_client.client import AsyncClient, Client
from certa_client.errors import code_name, partial_result
from certa_client.target import Target
from certa_client.v1 import reasoning_pb2 as pb
from certa_client.v1 import reasoning_pb2_grpc as pb_grpc

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "Client",
    "Target",
    "__version__",
    "batch_request",
    "code_name",
    "dynasor_cot",
    "majority_vote",
    "partial_result",
    "pb",
    "pb_grpc",
    "plain",
    "sampling",
    "self_consistency",
    "solve_request",
]
