"""The call results' texts: the shipped codes in each language, the floor's own as configured.

The desk offers a campaign's results and the QA console names a call's
result; both read the label here, in the reader's language where the
catalogue has the code, else the label the floor configured.
"""

from __future__ import annotations

from collections.abc import Iterable

from dialer.api.messages import register, text_or
from dialer.config import Config, DispositionConfig

register(
    {
        "disposition.sale": {"en": "Sale", "zh-CN": "成交"},
        "disposition.interested": {"en": "Interested", "zh-CN": "有意向"},
        "disposition.not_interested": {"en": "Not interested", "zh-CN": "无意向"},
        "disposition.callback": {"en": "Call back", "zh-CN": "预约回拨"},
        "disposition.no_answer": {"en": "No answer", "zh-CN": "无人接听"},
        "disposition.wrong_number": {"en": "Wrong number", "zh-CN": "号码错误"},
        "disposition.dnc": {"en": "Do not call", "zh-CN": "勿再拨打"},
    }
)


def label(disposition: DispositionConfig, locale: str) -> str:
    return text_or(f"disposition.{disposition.code}", disposition.label, locale)


def labels(dispositions: Iterable[DispositionConfig], locale: str) -> dict[str, str]:
    return {d.code: label(d, locale) for d in dispositions}


def floor_labels(config: Config, locale: str) -> dict[str, str]:
    """Every result the floor defines, by code: a CDR may carry any of them."""
    return labels(config.agent_policy.dispositions, locale)
