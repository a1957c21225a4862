"""Where a stage's alarms notify: the template's AlarmEmail / AlarmTopicArn, from `dagcast deploy
--alarm-email / --alarm-topic`.

The flags are written into the stage's ``dagcast_alarms`` in .chalice/config.json (``{"email": …,
"topic": …}``) and every deploy passes what the stage holds, so a deploy without the flags keeps the
alarms' destination (``sam deploy`` gives a parameter it is not passed its default: the
subscription would be dropped). An empty value switches a destination off. Not an environment
variable: no function reads it. Chalice ignores keys it does not know.

Not done here: confirming the e-mail subscription (AWS mails a link to the address), or checking
that a topic of yours exists and lets CloudWatch publish to it (`dagcast verify` sets each alarm's
state to see).
"""

from __future__ import annotations

import re
from typing import Any

CONFIG_KEY = "dagcast_alarms"
# template.yaml parameter of each setting
PARAMETERS = {"email": "AlarmEmail", "topic": "AlarmTopicArn"}
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_TOPIC = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}")


class AlarmSettingError(ValueError):
    """An alarm destination SNS or CloudFormation would refuse."""


def problems(settings: dict[str, str]) -> list[str]:
    found = []
    email, topic = settings.get("email", ""), settings.get("topic", "")
    if email and not _EMAIL.fullmatch(email):
        found.append(f"--alarm-email {email!r} is not an e-mail address")
    if topic and not _TOPIC.fullmatch(topic):
        found.append(f"--alarm-topic {topic!r} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)")
    return found


def apply(config: dict[str, Any], stage: str, flags: dict[str, str]) -> dict[str, str]:
    """Write ``flags`` (given ones only) into the stage's setting in ``config`` (changed in place)
    and return the template parameters of what the stage then holds (none for an empty value)."""
    stage_settings = config["stages"][stage]
    held = {**stage_settings.get(CONFIG_KEY, {}), **flags}
    wrong = problems(held)
    if wrong:
        raise AlarmSettingError(f"stage {stage}: " + "; ".join(wrong))
    if flags:
        stage_settings[CONFIG_KEY] = {key: value for key, value in held.items() if key in PARAMETERS}
    return {PARAMETERS[key]: value for key, value in held.items() if key in PARAMETERS and value}
