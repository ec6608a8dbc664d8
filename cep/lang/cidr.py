"""CIDR blocks as rule text writes them (``cidr("10.0.0.0/8", …)``): parsed and validated
here, for the checker and the compiler alike (:mod:`cep.compiler.matchers` builds the test)."""

from __future__ import annotations

import ipaddress

__all__ = ["MatcherError", "parse_network"]


class MatcherError(ValueError):
    """A literal that cannot be a matcher (an invalid CIDR block)."""


# --------------------------------------------------------------------------- CIDR


def parse_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """``"10.0.0.0/8"`` → the network; a bare address is a block of one.  Raises
    :class:`MatcherError` naming the problem (not a network, host bits set: with the block
    that was probably meant)."""
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise MatcherError(f"{text!r} is not an IPv4 or IPv6 network") from None
        raise MatcherError(f"{text!r} has host bits set: the block is {loose}") from None
