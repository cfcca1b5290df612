"""Where the ECS tasks and the load balancer go: the VPC and subnets given, or the default VPC.

The default VPC's subnets are public (routed to an internet gateway, no NAT gateway), so tasks
placed there get a public IP to reach Kinesis, ECR and Finnhub; their security groups still admit
nothing from the internet (the ingest tasks: only the load balancer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tradestream.deploy.errors import TargetError
from tradestream.deploy.options import DeployOptions


@dataclass(frozen=True)
class Network:
    vpc_id: str
    public_subnets: tuple[str, ...]
    task_subnets: tuple[str, ...]
    assign_public_ip: str  # ENABLED | DISABLED, for the tasks


def network(ec2: Any, options: DeployOptions) -> Network:
    if options.vpc_id:
        public = tuple(options.public_subnets)
        if len(public) < 2:
            raise TargetError("give at least two public subnets (in two AZs) for the load balancer")
        private = tuple(options.task_subnets)
        # Tasks in the public subnets need a public IP; in private ones, the NAT gateway's.
        return Network(
            options.vpc_id, public, private or public, "DISABLED" if private else "ENABLED"
        )
    return _default_vpc(ec2)


def _default_vpc(ec2: Any) -> Network:
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise TargetError(
            "this region has no default VPC: pass --vpc-id with --public-subnets (and optionally "
            "--task-subnets, private subnets with a NAT gateway)"
        )
    vpc_id = vpcs[0]["VpcId"]
    subnets = ec2.describe_subnets(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "default-for-az", "Values": ["true"]},
        ]
    )["Subnets"]
    # One per AZ, in a stable order, so redeploying does not shuffle the service's subnets.
    by_zone = {s["AvailabilityZone"]: s["SubnetId"] for s in subnets}
    chosen = tuple(by_zone[zone] for zone in sorted(by_zone))
    if len(chosen) < 2:
        raise TargetError(f"the default VPC {vpc_id} has fewer than two subnets in distinct AZs")
    return Network(vpc_id, chosen, chosen, "ENABLED")
