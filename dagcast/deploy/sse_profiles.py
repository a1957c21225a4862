"""The SSE deployment profiles of `dagcast deploy --sse-profile`: what each needs from the caller and
the template.yaml parameters it becomes (docs/deploy.md § SSE profiles).

on-demand          one viewer per Lambda environment; the SSE function's reserved concurrency caps
                   the viewers and keeps them out of the task Lambdas' share of the region's pool
managed-instances  many viewers per environment on a capacity provider in the caller's VPC: needs
                   subnets and security groups, and a way from there to DynamoDB and Secrets
                   Manager (endpoints that exist, or made by the stack: the VPC and route tables)

This module only checks flags and spells parameters; it calls nothing. The defaults are the
template's (tests/unit/test_sse_profiles.py holds them equal): every deploy passes the whole
profile, so what a stage runs is what the last command said, not what an earlier one left behind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ON_DEMAND = "on-demand"
MANAGED_INSTANCES = "managed-instances"
PROFILES = (ON_DEMAND, MANAGED_INSTANCES)
VPC_ENDPOINTS = ("existing", "create")

# template.yaml's defaults of the same parameters
RESERVED_CONCURRENCY = 100
PER_ENVIRONMENT_CONCURRENCY = 64  # AWS allows 64 per vCPU; the managed function has 1 vCPU
MAX_VCPUS = 16

# flag → the id pattern each comma-separated value must match
_ID_PATTERNS = {
    "--sse-subnets": r"subnet-[0-9a-f]+",
    "--sse-security-groups": r"sg-[0-9a-f]+",
    "--sse-vpc-id": r"vpc-[0-9a-f]+",
    "--sse-route-tables": r"rtb-[0-9a-f]+",
}


_BASE = ("--sse-subnets", "--sse-security-groups")
_ENDPOINT_FLAGS = ("--sse-vpc-id", "--sse-route-tables")


def _missing(given: set[str], flags: tuple[str, ...]) -> list[str]:
    return [flag for flag in flags if flag not in given]


@dataclass(frozen=True)
class SseProfile:
    """One profile with its flags as given (None / "" = not given)."""

    profile: str = ON_DEMAND
    reserved_concurrency: int | None = None
    subnets: str = ""
    security_groups: str = ""
    per_environment_concurrency: int | None = None
    max_vcpus: int | None = None
    vpc_endpoints: str | None = None
    vpc_id: str = ""
    route_tables: str = ""

    def _given(self) -> dict[str, object]:
        return {
            "--sse-reserved-concurrency": self.reserved_concurrency,
            "--sse-subnets": self.subnets,
            "--sse-security-groups": self.security_groups,
            "--sse-concurrency": self.per_environment_concurrency,
            "--sse-max-vcpus": self.max_vcpus,
            "--sse-vpc-endpoints": self.vpc_endpoints,
            "--sse-vpc-id": self.vpc_id,
            "--sse-route-tables": self.route_tables,
        }

    def problems(self) -> list[str]:
        """What is wrong with the flags, as usage errors; empty when they make a profile."""
        if self.profile not in PROFILES:
            return [f"--sse-profile must be one of {', '.join(PROFILES)}"]
        given = {flag for flag, value in self._given().items() if value not in (None, "")}
        managed = self.profile == MANAGED_INSTANCES
        own = (
            {"--sse-reserved-concurrency"}
            if not managed
            else set(self._given()) - {"--sse-reserved-concurrency"}
        )
        found = [f"{flag} does not apply to --sse-profile {self.profile}" for flag in sorted(given - own)]
        if managed:
            found += [f"--sse-profile {MANAGED_INSTANCES} needs {flag}" for flag in _missing(given, _BASE)]
            vpc = [f for f in _ENDPOINT_FLAGS if f in given]
            if self.vpc_endpoints == "create":
                found += [f"--sse-vpc-endpoints create needs {f}" for f in _missing(given, _ENDPOINT_FLAGS)]
            elif vpc:
                found += [f"{f} applies only with --sse-vpc-endpoints create" for f in vpc]
        found += self._bad_values()
        return found

    def _bad_values(self) -> list[str]:
        found = [
            f"{flag}: {value!r} is not a comma-separated list of {pattern.split('-')[0]}-… ids"
            for flag, pattern in _ID_PATTERNS.items()
            for value in [str(self._given()[flag])]
            if value and not all(re.fullmatch(pattern, v) for v in value.split(","))
        ]
        for flag, low, high in (
            ("--sse-reserved-concurrency", 1, None),
            ("--sse-concurrency", 1, 64),
            ("--sse-max-vcpus", 2, None),
        ):
            value = self._given()[flag]
            if isinstance(value, int) and (value < low or (high is not None and value > high)):
                found.append(f"{flag} must be {low}–{high}" if high else f"{flag} must be at least {low}")
        if self.vpc_endpoints not in (None, *VPC_ENDPOINTS):
            found.append(f"--sse-vpc-endpoints must be one of {', '.join(VPC_ENDPOINTS)}")
        return found

    def parameters(self) -> dict[str, str]:
        """The template parameters of the profile, all of them, defaults spelled out."""
        if self.profile == ON_DEMAND:
            reserved = self.reserved_concurrency or RESERVED_CONCURRENCY
            return {"SseProfile": ON_DEMAND, "SseReservedConcurrency": str(reserved)}
        params = {
            "SseProfile": MANAGED_INSTANCES,
            "SseSubnetIds": self.subnets,
            "SseSecurityGroupIds": self.security_groups,
            "SsePerEnvironmentConcurrency": str(
                self.per_environment_concurrency or PER_ENVIRONMENT_CONCURRENCY
            ),
            "SseMaxVCpuCount": str(self.max_vcpus or MAX_VCPUS),
            "SseVpcEndpoints": self.vpc_endpoints or "existing",
        }
        if self.vpc_endpoints == "create":
            params |= {"SseVpcId": self.vpc_id, "SseRouteTableIds": self.route_tables}
        return params
