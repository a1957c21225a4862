"""What differs between regions for `dagcast deploy`: the partition of an ARN and the Lambda Web
Adapter layer the SSE function needs.

ARNs are ``arn:<partition>:…``: ``aws`` in the commercial regions, ``aws-cn`` in China,
``aws-us-gov`` in GovCloud (template.yaml uses ``${AWS::Partition}``; this is the same rule for the
ARNs deploy writes before the stack exists). The Web Adapter layer is published by AWS
(github.com/awslabs/aws-lambda-web-adapter) from one account in every commercial region and from one
account per China region; there is no published layer in GovCloud or other partitions, where
`--web-adapter-layer` names one the user published.
"""

from __future__ import annotations

WEB_ADAPTER_VERSION = 25
_COMMERCIAL_PUBLISHER = "753240598075"
_CHINA_PUBLISHERS = {"cn-north-1": "041581134020", "cn-northwest-1": "069767869989"}
_PARTITIONS = (
    ("cn-", "aws-cn"),
    ("us-gov-", "aws-us-gov"),
    ("us-iso-", "aws-iso"),
    ("us-isob-", "aws-iso-b"),
)


class RegionError(ValueError):
    """No published Web Adapter layer in the region."""


def partition(region: str) -> str:
    return next((name for prefix, name in _PARTITIONS if region.startswith(prefix)), "aws")


def web_adapter_layer(region: str) -> str:
    """The x86_64 layer's ARN in ``region``."""
    name = partition(region)
    publisher = _CHINA_PUBLISHERS.get(region) if name == "aws-cn" else None
    if name == "aws":
        publisher = _COMMERCIAL_PUBLISHER
    if publisher is None:
        raise RegionError(
            f"AWS publishes no Lambda Web Adapter layer in {region} ({name}): publish one "
            "(github.com/awslabs/aws-lambda-web-adapter) and pass --web-adapter-layer ARN"
        )
    return f"arn:{name}:lambda:{region}:{publisher}:layer:LambdaAdapterLayerX86:{WEB_ADAPTER_VERSION}"
