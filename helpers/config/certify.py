"""The ``certify`` section: which certificates run, and their options."""
from __future__ import annotations

import dataclasses

from ..params import Choice, ListOf, Number, Params, param
from ..registry import CERTIFICATES


@dataclasses.dataclass(frozen=True)
class CertifySection(Params):
    """``certify``: the certificates that bound robust accuracy from below at every budget of
    ``attack.epsilons`` (``certify.<name>``: a certificate's parameters, see the certificates table)."""

    components = CERTIFICATES

    methods: tuple[str, ...] = param(["interval", "crown", "lipschitz", "smoothing"],
                                     ListOf(Choice(CERTIFICATES.names), unique=True),
                                     "certificates to compute; a point counts as certified (L∞) when any L∞ one "
                                     "certifies it; smoothing certifies the smoothed classifier in L2")
    l2_radii: tuple[float, ...] = param([0.0, 0.125, 0.25, 0.375, 0.5], ListOf(Number(0)),
                                        "L2 radii at which the L2 certificates (smoothing) are reported")
    params: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def used_components(cls, values):
        return set(values["methods"])
