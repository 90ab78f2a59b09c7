"""The generated Router API modules, under short names."""

from router_service._proto.routeiq.router.v1 import router_pb2 as pb
from router_service._proto.routeiq.router.v1 import router_pb2_grpc as pb_grpc

__all__ = ["SERVICE_NAME", "pb", "pb_grpc"]

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Router"].full_name
