"""Per-vendor headers that make a desk phone answer an INVITE by itself.

A persistent agent connection calls the agent's phone once at sign-in and
keeps that leg up, so the phone must pick up without a key press. Vendors
disagree on the signal: the de-facto ``Call-Info: answer-after=0`` (from the
expired draft-ietf-sip-answermode predecessor) is honoured by most, Polycom
keys on an ``Alert-Info`` ring class configured for auto-answer, and Cisco
SPA and Snom also accept an intercom ``Alert-Info`` value. Sending all the
variants a vendor understands is harmless, so each profile lists them.
"""

from __future__ import annotations

from types import MappingProxyType

from dialer.sip.errors import LocalProtocolError

_PROFILES: MappingProxyType[str, tuple[tuple[str, str], ...]] = MappingProxyType(
    {
        "generic": (
            ("Call-Info", "<sip:127.0.0.1>;answer-after=0"),
            ("Alert-Info", "<http://127.0.0.1>;info=alert-autoanswer"),
        ),
        "yealink": (("Call-Info", "<sip:127.0.0.1>;answer-after=0"),),
        "polycom": (("Alert-Info", "info=Auto Answer"),),
        "grandstream": (("Call-Info", "<sip:127.0.0.1>;answer-after=0"),),
        "snom": (
            ("Call-Info", "<sip:127.0.0.1>;answer-after=0"),
            ("Alert-Info", "<http://www.notused.com>;info=alert-autoanswer;delay=0"),
        ),
        "cisco": (("Call-Info", "<sip:127.0.0.1>;answer-after=0"),),
        # baresip 1.0 ignores these headers and answers by its account's
        # answermode=auto setting; the header is sent for newer versions.
        "baresip": (("Call-Info", "<sip:127.0.0.1>;answer-after=0"),),
    }
)


def auto_answer_headers(vendor: str) -> tuple[tuple[str, str], ...]:
    """The extra INVITE headers for ``vendor``; unknown vendors are our config error."""
    try:
        return _PROFILES[vendor]
    except KeyError:
        known = ", ".join(sorted(_PROFILES))
        raise LocalProtocolError(
            f"no auto-answer profile for vendor {vendor!r} (known: {known})"
        ) from None


def vendors() -> tuple[str, ...]:
    return tuple(sorted(_PROFILES))
